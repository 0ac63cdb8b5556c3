//! Group membership: the state shared by `poll` and the heartbeat task, and the task itself.
//!
//! The broker assigns partitions and moves one in two steps: it first drops the partition
//! from the old owner's assignment, and hands it to the new owner only once a heartbeat of
//! the old owner no longer lists it as owned. So the heartbeat task reports what `poll` has
//! published as owned (not what the broker assigned), and `poll` publishes a release only
//! after committing the partition; the broker never sees a partition free while its last
//! position is uncommitted.
//!
//! When the broker no longer knows the member (its session expired, or the group was
//! deleted), the task rejoins as a new member and bumps the epoch; `poll` sees the new epoch
//! and forgets every position it had, since none of those partitions are its own any more.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use switchyard_protocol::{ErrorCode, ResetPolicyWire};
use tokio::sync::Notify;

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::types::{GroupAssignment, JoinRequest, JoinedGroup};

/// Shortest heartbeat period used, whatever the server suggests: a floor that keeps a
/// misconfigured server from turning heartbeats into a busy loop.
const MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(50);

/// What a member needs to talk to its group.
pub(crate) struct GroupContext {
    pub client: Client,
    pub group: String,
    pub topic: String,
    pub client_name: String,
    pub session_timeout_ms: u32,
    pub reset: ResetPolicyWire,
}

impl GroupContext {
    /// Joins as a new member.
    pub async fn join(&self) -> Result<JoinedGroup> {
        let joined = self
            .client
            .join_group(JoinRequest {
                group: self.group.clone(),
                topic: self.topic.clone(),
                member_id: None,
                client_name: self.client_name.clone(),
                session_timeout_ms: self.session_timeout_ms,
                reset: self.reset,
            })
            .await?;
        tracing::debug!(
            group = %self.group,
            member = %joined.member_id,
            generation = joined.generation,
            assignment = ?joined.assignment,
            "joined"
        );
        Ok(joined)
    }
}

/// Membership as both sides see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupState {
    pub member_id: String,
    pub generation: u32,
    /// What the broker last said this member may consume.
    pub assignment: Vec<u32>,
    /// What `poll` says this member consumes; reported in heartbeats.
    pub owned: Vec<u32>,
    /// Bumped on every (re)join; positions from an older epoch are void.
    pub epoch: u64,
    pub heartbeat_interval: Duration,
}

/// The shared membership plus the signals between `poll` and the heartbeat task.
pub(crate) struct Membership {
    state: Mutex<GroupState>,
    /// Set when the heartbeat task stopped for good; `poll` returns it.
    failure: Mutex<Option<ClientError>>,
    /// Asks the heartbeat task to beat now (after a release).
    pub beat_now: Notify,
    /// Tells an idle `poll` that the assignment changed.
    pub assignment_changed: Notify,
}

impl Membership {
    pub fn new(joined: JoinedGroup) -> Self {
        Membership {
            state: Mutex::new(state_after_join(joined, 1)),
            failure: Mutex::new(None),
            beat_now: Notify::new(),
            assignment_changed: Notify::new(),
        }
    }

    pub fn snapshot(&self) -> GroupState {
        lock(&self.state).clone()
    }

    /// Publishes what `poll` owns; refused (false) if a rejoin happened since `epoch`.
    pub fn publish_owned(&self, epoch: u64, owned: Vec<u32>) -> bool {
        let mut state = lock(&self.state);
        if state.epoch != epoch {
            return false;
        }
        state.owned = owned;
        true
    }

    pub fn failure(&self) -> Option<ClientError> {
        lock(&self.failure).clone()
    }

    fn apply_heartbeat(&self, member_id: &str, answer: GroupAssignment) {
        let changed = {
            let mut state = lock(&self.state);
            if state.member_id != member_id {
                return;
            }
            let changed = state.assignment != answer.assignment;
            state.generation = answer.generation;
            state.assignment = answer.assignment;
            changed
        };
        if changed {
            self.assignment_changed.notify_one();
        }
    }

    fn apply_rejoin(&self, joined: JoinedGroup) {
        {
            let mut state = lock(&self.state);
            let epoch = state.epoch + 1;
            *state = state_after_join(joined, epoch);
        }
        self.assignment_changed.notify_one();
    }

    fn fail(&self, error: ClientError) {
        *lock(&self.failure) = Some(error);
        self.assignment_changed.notify_one();
    }
}

fn state_after_join(joined: JoinedGroup, epoch: u64) -> GroupState {
    let interval = Duration::from_millis(u64::from(joined.heartbeat_interval_ms));
    GroupState {
        member_id: joined.member_id,
        generation: joined.generation,
        assignment: joined.assignment,
        owned: Vec::new(),
        epoch,
        heartbeat_interval: interval.max(MIN_HEARTBEAT_INTERVAL),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every value under these locks is replaced whole, so a panic cannot leave it torn.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether an error means the broker no longer counts this member and it must rejoin.
pub(crate) fn is_membership_lost(error: &ClientError) -> bool {
    [
        ErrorCode::UnknownMember,
        ErrorCode::IllegalGeneration,
        ErrorCode::UnknownGroup,
    ]
    .iter()
    .any(|code| error.has_code(*code))
}

/// Heartbeats every interval (or at once when asked), follows the assignment, and rejoins
/// when the membership is lost. Ends when the connection is lost; runs until aborted.
pub(crate) async fn heartbeat_loop(context: Arc<GroupContext>, membership: Arc<Membership>) {
    loop {
        let interval = membership.snapshot().heartbeat_interval;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = membership.beat_now.notified() => {}
        }

        let state = membership.snapshot();
        let beat = context.client.heartbeat(
            &context.group,
            &state.member_id,
            state.generation,
            &state.owned,
        );
        match beat.await {
            Ok(answer) => membership.apply_heartbeat(&state.member_id, answer),
            Err(error) if is_membership_lost(&error) => {
                tracing::warn!(
                    group = %context.group,
                    member = %state.member_id,
                    %error,
                    "group membership lost; rejoining as a new member"
                );
                match context.join().await {
                    Ok(joined) => membership.apply_rejoin(joined),
                    Err(error) if error.is_connection_lost() => return membership.fail(error),
                    // Retried at the next interval: the old id fails again and leads here.
                    Err(error) => tracing::warn!(group = %context.group, %error, "rejoin failed"),
                }
            }
            Err(error) if error.is_connection_lost() => {
                tracing::warn!(group = %context.group, %error, "heartbeats stopped");
                return membership.fail(error);
            }
            Err(error) => tracing::warn!(group = %context.group, %error, "heartbeat failed"),
        }
    }
}
