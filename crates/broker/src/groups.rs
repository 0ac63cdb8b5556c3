//! Consumer groups on the broker: the coordinator's state plus the durable offset store.

use crate::broker::{Broker, Groups};
use crate::error::{BrokerError, Result};
use crate::group::{Assignment, Group, ResetPolicy};
use crate::names;

/// Shortest session a member may ask for: below this, normal scheduling hiccups would expire
/// healthy members.
pub const MIN_SESSION_TIMEOUT_MS: u32 = 1_000;
/// Longest session: a crashed member's partitions must not sit idle for longer.
pub const MAX_SESSION_TIMEOUT_MS: u32 = 300_000;

/// One partition of a group, with where the group stands in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPartition {
    pub partition: u32,
    pub committed: Option<u64>,
    pub log_start: u64,
    pub log_end: u64,
    /// Records the group has still to read: log end − max(committed, log start), where a
    /// missing commit counts as where the reset policy would start.
    pub lag: u64,
}

/// A member and what it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub client_name: String,
    pub partitions: Vec<u32>,
}

/// A group's members, assignment and progress.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub name: String,
    pub topic: String,
    pub generation: u32,
    pub reset: ResetPolicy,
    pub members: Vec<MemberDescription>,
    pub partitions: Vec<GroupPartition>,
}

/// One line of a group listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub name: String,
    pub topic: String,
    pub members: u32,
    pub generation: u32,
}

impl Broker {
    /// Joins `group` (creating it bound to `topic` if new) and returns the assignment.
    pub fn join_group(
        &self,
        group: &str,
        topic: &str,
        member_id: Option<&str>,
        client_name: &str,
        session_timeout_ms: u32,
        reset: ResetPolicy,
    ) -> Result<Assignment> {
        self.check_running()?;
        names::validate("group", group)?;
        if self.inner.queues.read().contains_key(group) {
            return Err(BrokerError::InvalidConfig(format!(
                "`{group}` is a queue, not a consumer group; read it with `switchyard receive \
                 {group}`"
            )));
        }
        // A subscription's group reads its log, which `group_topic` names for its patterns.
        if let Some(log) = self.subscription_log(group) {
            if topic != log.topic {
                return Err(BrokerError::InvalidConfig(format!(
                    "group `{group}` is the subscription on `{}`, not on `{topic}`; consume it \
                     with those patterns",
                    log.spec.source
                )));
            }
        } else if topic.contains(['*', '>', ',']) {
            return Err(BrokerError::InvalidConfig(format!(
                "`{topic}` is a pattern, and group `{group}` is not a subscription on it; \
                 create one first: switchyard sub create '{topic}' {group}"
            )));
        }
        let partitions = self.topic(topic)?.partition_count();
        if !(MIN_SESSION_TIMEOUT_MS..=MAX_SESSION_TIMEOUT_MS).contains(&session_timeout_ms) {
            return Err(BrokerError::InvalidConfig(format!(
                "session timeout {session_timeout_ms} ms is out of range; use \
                 {MIN_SESSION_TIMEOUT_MS} to {MAX_SESSION_TIMEOUT_MS} ms"
            )));
        }
        let now = self.now_ms();
        let mut groups = self.inner.groups.lock();
        let Groups { live, store } = &mut *groups;
        if let Some(existing) = live.get(group) {
            if existing.topic != topic {
                return Err(BrokerError::GroupTopicMismatch {
                    group: group.to_string(),
                    existing: existing.topic.clone(),
                    requested: topic.to_string(),
                });
            }
        } else {
            store.create_group(group, topic, reset, false)?;
            let created = Group::new(group.to_string(), topic.to_string(), reset, partitions);
            live.insert(group.to_string(), created);
            tracing::info!(group, topic, "group created");
        }
        let state = live
            .get_mut(group)
            .ok_or_else(|| BrokerError::UnknownGroup(group.into()))?;
        state.expire(now);
        state.resize(partitions);
        let assignment = state.join(member_id, client_name, i64::from(session_timeout_ms), now);
        tracing::info!(
            group,
            member = %assignment.member_id,
            generation = assignment.generation,
            "member joined"
        );
        Ok(assignment)
    }

    /// A member's heartbeat, with the partitions it holds; returns what it may hold now.
    pub fn heartbeat(&self, group: &str, member_id: &str, owned: &[u32]) -> Result<Assignment> {
        let now = self.now_ms();
        let mut groups = self.inner.groups.lock();
        let state = groups
            .live
            .get_mut(group)
            .ok_or_else(|| BrokerError::UnknownGroup(group.to_string()))?;
        state.expire(now);
        state.heartbeat(member_id, owned, now)
    }

    pub fn leave_group(&self, group: &str, member_id: &str) -> Result<()> {
        let mut groups = self.inner.groups.lock();
        let state = groups
            .live
            .get_mut(group)
            .ok_or_else(|| BrokerError::UnknownGroup(group.to_string()))?;
        state.leave(member_id)?;
        tracing::info!(group, member = member_id, "member left");
        Ok(())
    }

    /// Commits offsets (the next offset to read) for partitions the member owns.
    pub fn commit_offsets(
        &self,
        group: &str,
        member_id: &str,
        offsets: &[(u32, u64)],
    ) -> Result<()> {
        self.check_running()?;
        let now = self.now_ms();
        let mut groups = self.inner.groups.lock();
        let Groups { live, store } = &mut *groups;
        let state = live
            .get_mut(group)
            .ok_or_else(|| BrokerError::UnknownGroup(group.into()))?;
        state.expire(now);
        let topic = self.topic(&state.topic)?;
        for (partition, offset) in offsets {
            state.check_commit(member_id, *partition)?;
            let end = topic.partition(*partition)?.log.end_offset();
            if *offset > end {
                return Err(BrokerError::OffsetOutOfRange {
                    topic: topic.name.clone(),
                    partition: *partition,
                    offset: *offset,
                    log_start: 0,
                    log_end: end,
                });
            }
        }
        store.commit(group, offsets)
    }

    /// Committed offsets of a group, each moved into the log's current bounds by the group's
    /// reset policy (a commit before the log start, after retention, or past the end).
    pub fn committed_offsets(&self, group: &str) -> Result<Vec<(u32, u64)>> {
        let description = self.describe_group(group)?;
        Ok(description
            .partitions
            .iter()
            .filter_map(|p| p.committed.map(|committed| (p.partition, committed)))
            .map(|(partition, committed)| {
                let p = &description.partitions[partition as usize];
                (
                    partition,
                    clamp(committed, p.log_start, p.log_end, description.reset),
                )
            })
            .collect())
    }

    pub fn list_groups(&self) -> Vec<GroupSummary> {
        let groups = self.inner.groups.lock();
        groups
            .live
            .values()
            .map(|group| GroupSummary {
                name: group.name.clone(),
                topic: group.topic.clone(),
                members: group.member_count() as u32,
                generation: group.generation,
            })
            .collect()
    }

    pub fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let (topic_name, generation, reset, members, committed) = {
            let mut groups = self.inner.groups.lock();
            let now = self.now_ms();
            let Groups { live, store } = &mut *groups;
            let state = live
                .get_mut(group)
                .ok_or_else(|| BrokerError::UnknownGroup(group.into()))?;
            state.expire(now);
            let members: Vec<MemberDescription> = state
                .members()
                .map(|member| MemberDescription {
                    member_id: member.id.clone(),
                    client_name: member.client_name.clone(),
                    partitions: state.owned_by(&member.id),
                })
                .collect();
            let committed = store
                .get(group)
                .map(|record| record.offsets.clone())
                .unwrap_or_default();
            (
                state.topic.clone(),
                state.generation,
                state.reset,
                members,
                committed,
            )
        };
        let topic = self.topic(&topic_name)?;
        let partitions = topic
            .partitions()
            .iter()
            .map(|partition| {
                let log_start = partition.log.start_offset();
                let log_end = partition.log.end_offset();
                let committed = committed.get(&partition.id).copied();
                let position = match committed {
                    Some(offset) => offset.max(log_start).min(log_end),
                    None if reset == ResetPolicy::Earliest => log_start,
                    None => log_end,
                };
                GroupPartition {
                    partition: partition.id,
                    committed,
                    log_start,
                    log_end,
                    lag: log_end - position,
                }
            })
            .collect();
        Ok(GroupDescription {
            name: group.into(),
            topic: topic_name,
            generation,
            reset,
            members,
            partitions,
        })
    }

    pub fn delete_group(&self, group: &str) -> Result<()> {
        if let Some(log) = self.subscription_log(group) {
            return Err(BrokerError::InvalidConfig(format!(
                "group `{group}` is the subscription on `{}`; delete it with `switchyard sub \
                 delete {group}`",
                log.spec.source
            )));
        }
        let mut groups = self.inner.groups.lock();
        if groups.live.remove(group).is_none() {
            return Err(BrokerError::UnknownGroup(group.to_string()));
        }
        groups.store.delete_group(group)?;
        tracing::info!(group, "group deleted");
        Ok(())
    }

    /// Drops members whose sessions expired, in every group.
    pub fn expire_members(&self) {
        let now = self.now_ms();
        let mut groups = self.inner.groups.lock();
        for group in groups.live.values_mut() {
            for member in group.expire(now) {
                tracing::info!(group = %group.name, member = %member, "member session expired");
            }
        }
    }

    pub(crate) fn delete_groups_of_topic(&self, topic: &str) -> Result<()> {
        let mut groups = self.inner.groups.lock();
        let doomed: Vec<String> = groups
            .live
            .values()
            .filter(|group| group.topic == topic)
            .map(|group| group.name.clone())
            .collect();
        for name in doomed {
            groups.live.remove(&name);
            groups.store.delete_group(&name)?;
        }
        Ok(())
    }

    pub(crate) fn resize_groups_of_topic(&self, topic: &str, partitions: u32) {
        let mut groups = self.inner.groups.lock();
        for group in groups
            .live
            .values_mut()
            .filter(|group| group.topic == topic)
        {
            group.resize(partitions);
        }
    }

    pub(crate) fn sync_offsets(&self) -> Result<()> {
        self.inner.groups.lock().store.sync()
    }
}

/// Moves a committed offset into `[log_start, log_end]` by the reset policy.
fn clamp(committed: u64, log_start: u64, log_end: u64, reset: ResetPolicy) -> u64 {
    if committed > log_end {
        log_end
    } else if committed < log_start {
        match reset {
            ResetPolicy::Earliest => log_start,
            ResetPolicy::Latest => log_end,
        }
    } else {
        committed
    }
}
