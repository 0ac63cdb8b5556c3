//! Membership and partition assignment of stream subscriptions (consumer groups).
//!
//! Pure state, no I/O: the broker feeds it joins, heartbeats, leaves and the clock, and it
//! answers with assignments. Assignment is computed by the broker (as in Kafka's newer
//! consumer protocol), not by a group leader, and moves a partition in two steps: the old
//! owner is first told to give it up, and only once its next heartbeat no longer lists the
//! partition (or its session expires) is the partition handed to the new owner. So a
//! partition never has two owners at once, and a commit is accepted only from the owner.

use std::collections::BTreeMap;

use crate::error::{BrokerError, Result};

/// Where a group member starts when the group has no committed offset for a partition, or
/// when the committed offset is no longer in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ResetPolicy {
    #[default]
    Earliest,
    Latest,
}

/// One member of a group.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub client_name: String,
    pub session_timeout_ms: i64,
    pub last_seen_ms: i64,
    /// Order of joining, for exclusive groups: the earliest member is the active one.
    pub joined: u64,
}

/// Who owns a partition now and who should.
#[derive(Debug, Clone, Default)]
struct Slot {
    owner: Option<String>,
    target: Option<String>,
}

/// A consumer group bound to one topic.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub topic: String,
    pub reset: ResetPolicy,
    /// An exclusive subscription: one active member holds every partition; the others wait
    /// and take over, in the order they joined, when it leaves or its session expires.
    pub exclusive: bool,
    pub generation: u32,
    members: BTreeMap<String, Member>,
    slots: Vec<Slot>,
    next_member: u64,
}

/// What a member is told after a join or heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub member_id: String,
    pub generation: u32,
    pub partitions: Vec<u32>,
}

impl Group {
    pub fn new(name: String, topic: String, reset: ResetPolicy, partitions: u32) -> Self {
        Group {
            name,
            topic,
            reset,
            exclusive: false,
            generation: 0,
            members: BTreeMap::new(),
            slots: vec![Slot::default(); partitions as usize],
            next_member: 0,
        }
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Partitions currently owned by `member`.
    pub fn owned_by(&self, member: &str) -> Vec<u32> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.owner.as_deref() == Some(member))
            .map(|(partition, _)| partition as u32)
            .collect()
    }

    /// Adds a member (or refreshes one that rejoins with its id) and returns its assignment.
    pub fn join(
        &mut self,
        member_id: Option<&str>,
        client_name: &str,
        session_timeout_ms: i64,
        now_ms: i64,
    ) -> Assignment {
        let known = member_id
            .filter(|id| self.members.contains_key(*id))
            .map(str::to_string);
        let id = known.unwrap_or_else(|| {
            self.next_member += 1;
            format!("{client_name}-{}-{}", self.generation + 1, self.next_member)
        });
        let is_new = !self.members.contains_key(&id);
        let joined = self
            .members
            .get(&id)
            .map_or(self.next_member, |member| member.joined);
        self.members.insert(
            id.clone(),
            Member {
                id: id.clone(),
                client_name: client_name.to_string(),
                session_timeout_ms,
                last_seen_ms: now_ms,
                joined,
            },
        );
        if is_new {
            self.rebalance();
        }
        self.grant(&id)
    }

    /// Records a heartbeat: `owned` is what the member holds now. Partitions it dropped are
    /// released; it is granted what is assigned to it and free.
    pub fn heartbeat(&mut self, member_id: &str, owned: &[u32], now_ms: i64) -> Result<Assignment> {
        let member = self
            .members
            .get_mut(member_id)
            .ok_or_else(|| BrokerError::UnknownMember {
                group: self.name.clone(),
                member: member_id.to_string(),
            })?;
        member.last_seen_ms = now_ms;
        for (partition, slot) in self.slots.iter_mut().enumerate() {
            let released = !owned.contains(&(partition as u32));
            if slot.owner.as_deref() == Some(member_id) && released {
                // Only a partition that is moving elsewhere is released on the member's say;
                // one still assigned to it stays owned, so its next heartbeat re-grants it.
                if slot.target.as_deref() != Some(member_id) {
                    slot.owner = None;
                }
            }
        }
        Ok(self.grant(member_id))
    }

    /// Removes a member; its partitions are reassigned.
    pub fn leave(&mut self, member_id: &str) -> Result<()> {
        if self.members.remove(member_id).is_none() {
            return Err(BrokerError::UnknownMember {
                group: self.name.clone(),
                member: member_id.to_string(),
            });
        }
        self.release_all(member_id);
        self.rebalance();
        Ok(())
    }

    /// Removes members whose session timed out; returns their ids.
    pub fn expire(&mut self, now_ms: i64) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|member| now_ms - member.last_seen_ms > member.session_timeout_ms)
            .map(|member| member.id.clone())
            .collect();
        for id in &expired {
            self.members.remove(id);
            self.release_all(id);
        }
        if !expired.is_empty() {
            self.rebalance();
        }
        expired
    }

    /// Grows the group to a topic that gained partitions.
    pub fn resize(&mut self, partitions: u32) {
        if partitions as usize > self.slots.len() {
            self.slots.resize(partitions as usize, Slot::default());
            self.rebalance();
        }
    }

    /// Checks that `member` may commit `partition`. An empty member id is a standalone
    /// commit, allowed only while the group has no members.
    pub fn check_commit(&self, member: &str, partition: u32) -> Result<()> {
        if member.is_empty() && self.members.is_empty() {
            return Ok(());
        }
        if !self.members.contains_key(member) {
            return Err(BrokerError::UnknownMember {
                group: self.name.clone(),
                member: member.to_string(),
            });
        }
        let owner = self
            .slots
            .get(partition as usize)
            .and_then(|slot| slot.owner.as_deref());
        if owner != Some(member) {
            return Err(BrokerError::NotPartitionOwner {
                group: self.name.clone(),
                member: member.to_string(),
                partition,
            });
        }
        Ok(())
    }

    fn release_all(&mut self, member_id: &str) {
        for slot in &mut self.slots {
            if slot.owner.as_deref() == Some(member_id) {
                slot.owner = None;
            }
        }
    }

    /// Spreads partitions over members in contiguous ranges, members sorted by id, like
    /// Kafka's range assignor; a partition whose target does not change keeps its owner.
    fn rebalance(&mut self) {
        self.generation += 1;
        if self.exclusive {
            let active = self.members.values().min_by_key(|member| member.joined);
            let active = active.map(|member| member.id.clone());
            for slot in &mut self.slots {
                slot.target = active.clone();
            }
            return;
        }
        let members: Vec<&String> = self.members.keys().collect();
        let partitions = self.slots.len();
        for (partition, slot) in self.slots.iter_mut().enumerate() {
            slot.target = if members.is_empty() {
                None
            } else {
                Some(members[partition * members.len() / partitions.max(1)].clone())
            };
        }
    }

    /// Hands `member` every partition targeted at it that nobody else owns, and returns what
    /// it may hold now: those, minus the ones it must give up.
    fn grant(&mut self, member: &str) -> Assignment {
        let mut partitions = Vec::new();
        for (partition, slot) in self.slots.iter_mut().enumerate() {
            if slot.target.as_deref() == Some(member) {
                if slot.owner.is_none() {
                    slot.owner = Some(member.to_string());
                }
                if slot.owner.as_deref() == Some(member) {
                    partitions.push(partition as u32);
                }
            }
        }
        Assignment {
            member_id: member.to_string(),
            generation: self.generation,
            partitions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(group: &Group) -> Vec<Option<String>> {
        group.slots.iter().map(|slot| slot.owner.clone()).collect()
    }

    #[test]
    fn first_member_gets_everything() {
        let mut group = Group::new("g".into(), "t".into(), ResetPolicy::Earliest, 4);
        let joined = group.join(None, "c", 10_000, 0);
        assert_eq!(joined.partitions, vec![0, 1, 2, 3]);
    }

    #[test]
    fn partitions_move_only_after_the_old_owner_lets_go() {
        let mut group = Group::new("g".into(), "t".into(), ResetPolicy::Earliest, 4);
        let a = group.join(None, "a", 10_000, 0);
        let b = group.join(None, "b", 10_000, 0);
        // b's share is still owned by a: b gets nothing yet.
        assert!(b.partitions.is_empty());
        // a's heartbeat tells it to keep only its new share.
        let a_now = group
            .heartbeat(&a.member_id, &[0, 1, 2, 3], 1)
            .expect("heartbeat");
        assert_eq!(a_now.partitions.len(), 2);
        // a drops the others; then b gets them.
        group
            .heartbeat(&a.member_id, &a_now.partitions, 2)
            .expect("heartbeat");
        let b_now = group.heartbeat(&b.member_id, &[], 2).expect("heartbeat");
        assert_eq!(b_now.partitions.len(), 2);
        let all = owners(&group);
        assert!(
            all.iter().all(Option::is_some),
            "every partition has exactly one owner"
        );
    }

    #[test]
    fn expired_member_loses_its_partitions() {
        let mut group = Group::new("g".into(), "t".into(), ResetPolicy::Earliest, 2);
        let a = group.join(None, "a", 1_000, 0);
        let b = group.join(None, "b", 1_000, 0);
        group.heartbeat(&b.member_id, &[], 900).expect("b alive");
        assert_eq!(group.expire(1_500), vec![a.member_id.clone()]);
        let b_now = group.heartbeat(&b.member_id, &[], 1_500).expect("b alive");
        assert_eq!(b_now.partitions, vec![0, 1]);
        assert!(group.heartbeat(&a.member_id, &[], 1_600).is_err());
    }

    #[test]
    fn exclusive_group_has_one_active_member_and_fails_over_in_join_order() {
        let mut group = Group::new("g".into(), "t".into(), ResetPolicy::Earliest, 3);
        group.exclusive = true;
        let a = group.join(None, "a", 1_000, 0);
        let b = group.join(None, "b", 1_000, 0);
        let c = group.join(None, "c", 1_000, 0);
        assert_eq!(a.partitions, vec![0, 1, 2]);
        assert!(b.partitions.is_empty() && c.partitions.is_empty());
        group.leave(&a.member_id).expect("leave");
        let b_now = group.heartbeat(&b.member_id, &[], 1).expect("heartbeat");
        assert_eq!(
            b_now.partitions,
            vec![0, 1, 2],
            "the next to join takes over"
        );
        assert!(group
            .heartbeat(&c.member_id, &[], 1)
            .expect("hb")
            .partitions
            .is_empty());
    }

    #[test]
    fn commits_only_from_the_owner() {
        let mut group = Group::new("g".into(), "t".into(), ResetPolicy::Earliest, 2);
        let a = group.join(None, "a", 1_000, 0);
        assert!(group.check_commit(&a.member_id, 0).is_ok());
        assert!(group.check_commit("stranger", 0).is_err());
        group.leave(&a.member_id).expect("leave");
        assert!(
            group.check_commit("", 0).is_ok(),
            "standalone commit on an empty group"
        );
    }
}
