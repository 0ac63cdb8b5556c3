//! [`Consumer`]: one member of a consumer group, reading the partitions the broker assigns it.
//!
//! Each [`Consumer::poll`] runs three steps:
//!
//! 1. With auto-commit, commit the positions the previous poll returned: the application has
//!    had those records and come back for more, so they count as processed.
//! 2. Follow the assignment the heartbeat task last received: commit and release revoked
//!    partitions (then heartbeat at once, so the broker can hand them on), and give new ones
//!    a start position — the group's commit, else the configured [`StartPosition`].
//! 3. Return whatever the fetches kept in flight for every owned partition bring back,
//!    advancing the positions past it.
//!
//! Delivery is at least once: records returned but not yet committed when a member dies are
//! read again by the partition's next owner.
//!
//! - `membership`: shared group state and the heartbeat task.
//! - `positions`: pure bookkeeping of positions and commits.
//! - `fetcher`: the fetches in flight.

mod fetcher;
mod membership;
mod positions;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use switchyard_log::Record;
use switchyard_protocol::{ErrorCode, OffsetSpec, PartitionOffset, ResetPolicyWire};
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::error::{ClientError, Result};
use fetcher::{FetchSpec, Fetcher};
use membership::{heartbeat_loop, is_membership_lost, GroupContext, Membership};
use positions::Positions;

/// Default session timeout: a crashed member's partitions move on within ten seconds, while
/// a pause of a few heartbeats does not cost a healthy member its partitions.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Default soft limit on bytes per fetch: one default-sized batch.
pub const DEFAULT_MAX_BYTES: u32 = 1024 * 1024;

/// Default longest wait for data: short enough that an idle poll loop still reacts to
/// rebalances twice a second.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(500);

/// Where to start in a partition the group has no committed offset for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    /// The first record still stored.
    Earliest,
    /// Only records appended from now on.
    Latest,
    /// A given offset, in every partition; where a partition ends below it, its end.
    Offset(u64),
    /// The first record stamped at or after this many milliseconds since the Unix epoch.
    Timestamp(i64),
}

impl StartPosition {
    /// The group reset policy this start maps to: `Latest` stays latest, all else earliest.
    fn reset_policy(self) -> ResetPolicyWire {
        match self {
            StartPosition::Latest => ResetPolicyWire::Latest,
            _ => ResetPolicyWire::Earliest,
        }
    }
}

/// How a consumer joins and reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerOptions {
    /// Group to join; created bound to `topic` if it does not exist.
    pub group: String,
    /// Topic to consume.
    pub topic: String,
    /// Shows up in group descriptions.
    pub client_name: String,
    /// Membership expires after this long without a heartbeat (1 s to 300 s).
    pub session_timeout: Duration,
    /// Start for partitions without a committed offset.
    pub start: StartPosition,
    /// Commit returned positions at the next poll and on close.
    pub auto_commit: bool,
    /// Soft limit on bytes per partition fetch.
    pub max_bytes: u32,
    /// Longest a poll waits for data.
    pub max_wait: Duration,
    /// Put claim-check values back (default); `false` hands out the blob references.
    pub resolve_blobs: bool,
}

impl ConsumerOptions {
    /// Options for consuming `topic` in `group`, with every other setting at its default.
    pub fn new(group: &str, topic: &str) -> Self {
        ConsumerOptions {
            group: group.to_string(),
            topic: topic.to_string(),
            client_name: "switchyard-consumer".into(),
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            start: StartPosition::Earliest,
            auto_commit: true,
            max_bytes: DEFAULT_MAX_BYTES,
            max_wait: DEFAULT_MAX_WAIT,
            resolve_blobs: true,
        }
    }
}

/// A record with the partition it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub partition: u32,
    pub record: Record,
}

/// A member of a consumer group. Dropping it without [`Consumer::close`] stops heartbeats;
/// the broker moves its partitions on once the session times out.
pub struct Consumer {
    context: Arc<GroupContext>,
    membership: Arc<Membership>,
    heartbeat_task: JoinHandle<()>,
    start: StartPosition,
    auto_commit: bool,
    fetch: FetchSpec,
    positions: Positions,
    fetcher: Fetcher,
    /// Membership epoch the positions belong to.
    epoch: u64,
}

impl Consumer {
    /// Joins the group and starts heartbeating. Partitions are taken up by the first poll.
    pub async fn join(client: Client, options: ConsumerOptions) -> Result<Consumer> {
        let session_timeout_ms =
            u32::try_from(options.session_timeout.as_millis()).map_err(|_| {
                ClientError::InvalidOption {
                    option: "session_timeout",
                    reason: "must be at most 300 s".into(),
                }
            })?;
        let mut context = GroupContext {
            client: client.clone(),
            group: options.group,
            topic: options.topic,
            client_name: options.client_name,
            session_timeout_ms,
            reset: options.start.reset_policy(),
        };
        let joined = context.join().await?;
        // A subscription bound to patterns is read from its own log, which the broker names.
        context.topic.clone_from(&joined.topic);
        let context = Arc::new(context);
        let membership = Arc::new(Membership::new(joined));
        let epoch = membership.snapshot().epoch;
        let heartbeat_task = tokio::spawn(heartbeat_loop(
            Arc::clone(&context),
            Arc::clone(&membership),
        ));
        let fetch = FetchSpec {
            client,
            topic: context.topic.as_str().into(),
            max_bytes: options.max_bytes,
            max_wait: options.max_wait,
            resolve_blobs: options.resolve_blobs,
        };
        Ok(Consumer {
            context,
            membership,
            heartbeat_task,
            start: options.start,
            auto_commit: options.auto_commit,
            fetch,
            positions: Positions::default(),
            fetcher: Fetcher::default(),
            epoch,
        })
    }

    /// The member id the broker knows this consumer by (changes after a rejoin).
    pub fn member_id(&self) -> String {
        self.membership.snapshot().member_id
    }

    /// Partitions this consumer reads now, ascending.
    pub fn assignment(&self) -> Vec<u32> {
        self.positions.owned()
    }

    /// The offset of the next record to be returned from `partition`, if owned.
    pub fn position(&self, partition: u32) -> Option<u64> {
        self.positions.get(partition)
    }

    /// Returns the next records of the owned partitions, waiting up to `max_wait` when there
    /// are none. See the module documentation for the steps.
    pub async fn poll(&mut self) -> Result<Vec<ConsumedRecord>> {
        if let Some(error) = self.membership.failure() {
            return Err(error);
        }
        if self.auto_commit {
            self.commit_positions(None, false).await?;
        }
        self.reconcile().await?;

        if self.positions.is_empty() {
            // Nothing to read until the broker assigns something.
            let changed = self.membership.assignment_changed.notified();
            let _ = tokio::time::timeout(self.fetch.max_wait, changed).await;
            return Ok(Vec::new());
        }
        self.fetch_round().await
    }

    /// Commits the current positions of every owned partition now.
    pub async fn commit(&mut self) -> Result<()> {
        self.commit_positions(None, true).await
    }

    /// Moves the position of an owned partition; the next poll reads from there.
    pub async fn seek(&mut self, partition: u32, position: StartPosition) -> Result<()> {
        if self.positions.get(partition).is_none() {
            return Err(ClientError::NotAssigned {
                topic: self.context.topic.clone(),
                partition,
            });
        }
        let offset = self.resolve(partition, position).await?;
        self.fetcher.cancel(partition);
        self.positions.set(partition, offset);
        tracing::debug!(topic = %self.context.topic, partition, offset, "seek");
        Ok(())
    }

    /// Commits (with auto-commit) and leaves the group, so its partitions move on at once.
    pub async fn close(mut self) -> Result<()> {
        // Stop heartbeats first: one arriving after the leave would rejoin.
        self.heartbeat_task.abort();
        let _ = (&mut self.heartbeat_task).await;
        self.fetcher.cancel_all();

        let committed = if self.auto_commit {
            self.commit_positions(None, true).await
        } else {
            Ok(())
        };
        let member_id = self.member_id();
        let left = self
            .context
            .client
            .leave_group(&self.context.group, &member_id)
            .await;
        tracing::debug!(group = %self.context.group, member = %member_id, "left");
        committed.and(left)
    }

    /// Step 2 of a poll: take up what the broker assigned, give up what it revoked.
    async fn reconcile(&mut self) -> Result<()> {
        let state = self.membership.snapshot();
        if state.epoch != self.epoch {
            // A rejoin voided every partition held before it.
            self.forget_all(state.epoch);
        }
        let (revoked, added) = self.positions.diff(&state.assignment);
        if revoked.is_empty() && added.is_empty() {
            return Ok(());
        }

        // Commit revoked partitions while this member still owns them, then let go.
        if self.auto_commit && !revoked.is_empty() {
            self.commit_positions(Some(&revoked), false).await?;
        }
        for partition in &revoked {
            self.fetcher.cancel(*partition);
            self.positions.remove(*partition);
        }

        // New partitions start at the group's commit, else at the configured start.
        if !added.is_empty() {
            let committed = self.committed_offsets().await?;
            for partition in added {
                let commit = committed.get(&partition).copied();
                let offset = match commit {
                    Some(offset) => offset,
                    None => self.resolve_start(partition).await?,
                };
                self.positions.insert(partition, offset, commit);
            }
        }

        let owned = self.positions.owned();
        tracing::debug!(group = %self.context.group, ?owned, ?revoked, "assignment followed");
        if !self.membership.publish_owned(self.epoch, owned) {
            let epoch = self.membership.snapshot().epoch;
            self.forget_all(epoch);
            return Ok(());
        }
        if !revoked.is_empty() {
            self.membership.beat_now.notify_one();
        }
        Ok(())
    }

    /// Step 3 of a poll: collect completed fetches, keep every owned partition fetching.
    async fn fetch_round(&mut self) -> Result<Vec<ConsumedRecord>> {
        for (partition, offset) in self.positions.iter() {
            self.fetcher.ensure(&self.fetch, partition, offset);
        }
        let completed = self.fetcher.completed().await;

        // Only fetches that still match the position count (not revoked or sought since).
        let current: Vec<_> = completed
            .into_iter()
            .filter(|done| self.positions.get(done.partition) == Some(done.offset))
            .collect();

        // All or nothing: on a hard error no position moves, so nothing is skipped.
        let mut out_of_range = Vec::new();
        for done in &current {
            match &done.result {
                Err(error) if error.has_code(ErrorCode::OffsetOutOfRange) => {
                    out_of_range.push(done.partition)
                }
                Err(error) => return Err(error.clone()),
                Ok(_) => {}
            }
        }
        for partition in out_of_range {
            self.reset_out_of_range(partition).await?;
        }

        let mut records = Vec::new();
        for done in current {
            let Ok(fetched) = done.result else { continue };
            self.positions
                .set(done.partition, fetched.next_offset(done.offset));
            let partition = done.partition;
            records.extend(
                fetched
                    .records
                    .into_iter()
                    .map(|record| ConsumedRecord { partition, record }),
            );
        }
        Ok(records)
    }

    async fn reset_out_of_range(&mut self, partition: u32) -> Result<()> {
        let reset = match self.start.reset_policy() {
            ResetPolicyWire::Latest => StartPosition::Latest,
            ResetPolicyWire::Earliest => StartPosition::Earliest,
        };
        let offset = self.resolve(partition, reset).await?;
        tracing::warn!(
            topic = %self.context.topic,
            partition,
            from = self.positions.get(partition),
            to = offset,
            "position out of range; reset"
        );
        self.positions.set(partition, offset);
        Ok(())
    }

    /// Commits positions not yet committed (of `only`, when given). A partition the broker
    /// says this member no longer owns is dropped, not an error; a lost membership is an
    /// error only when `explicit`, since the heartbeat task is already rejoining.
    async fn commit_positions(&mut self, only: Option<&[u32]>, explicit: bool) -> Result<()> {
        let offsets = self.positions.uncommitted(only);
        if offsets.is_empty() {
            return Ok(());
        }
        let state = self.membership.snapshot();
        if state.epoch != self.epoch {
            // These positions belong to a membership that is gone; the next poll drops them
            // and the partitions' new owners start from the last commit.
            tracing::warn!(group = %self.context.group, "membership lost; commit skipped");
            return Ok(());
        }
        match self.send_commit(&state, &offsets).await {
            Ok(()) => Ok(()),
            Err(error) if error.has_code(ErrorCode::NotPartitionOwner) => {
                self.commit_one_by_one(&state, &offsets).await
            }
            Err(error) if is_membership_lost(&error) && !explicit => {
                tracing::warn!(group = %self.context.group, %error, "commit skipped");
                self.membership.beat_now.notify_one();
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// After a refused commit, finds out which partitions moved away and drops them.
    async fn commit_one_by_one(
        &mut self,
        state: &membership::GroupState,
        offsets: &[PartitionOffset],
    ) -> Result<()> {
        let mut dropped = false;
        for commit in offsets {
            match self.send_commit(state, std::slice::from_ref(commit)).await {
                Ok(()) => {}
                Err(error) if error.has_code(ErrorCode::NotPartitionOwner) => {
                    tracing::warn!(
                        group = %self.context.group,
                        partition = commit.partition,
                        %error,
                        "partition moved before its commit; dropped"
                    );
                    self.fetcher.cancel(commit.partition);
                    self.positions.remove(commit.partition);
                    dropped = true;
                }
                Err(error) => return Err(error),
            }
        }
        if dropped {
            self.membership
                .publish_owned(self.epoch, self.positions.owned());
            self.membership.beat_now.notify_one();
        }
        Ok(())
    }

    async fn send_commit(
        &mut self,
        state: &membership::GroupState,
        offsets: &[PartitionOffset],
    ) -> Result<()> {
        let context = &self.context;
        context
            .client
            .commit_offsets(&context.group, &state.member_id, state.generation, offsets)
            .await?;
        tracing::debug!(group = %context.group, ?offsets, "committed");
        self.positions.mark_committed(offsets);
        Ok(())
    }

    async fn committed_offsets(&self) -> Result<HashMap<u32, u64>> {
        let offsets = self
            .context
            .client
            .fetch_offsets(&self.context.group)
            .await?;
        Ok(offsets
            .into_iter()
            .map(|commit| (commit.partition, commit.offset))
            .collect())
    }

    /// Where a partition without a commit starts. An offset given as the start applies to
    /// every partition; in one whose end is below it, reading starts at the end (the next
    /// record appended), not back at the earliest record as a fetch out of range would.
    async fn resolve_start(&self, partition: u32) -> Result<u64> {
        let StartPosition::Offset(offset) = self.start else {
            return self.resolve(partition, self.start).await;
        };
        let end = self.resolve(partition, StartPosition::Latest).await?;
        if offset > end {
            tracing::debug!(
                topic = %self.context.topic,
                partition,
                offset,
                end,
                "start offset is past the end; starting at the end"
            );
        }
        Ok(offset.min(end))
    }

    /// The offset a start position stands for in `partition`.
    async fn resolve(&self, partition: u32, position: StartPosition) -> Result<u64> {
        let spec = match position {
            StartPosition::Offset(offset) => return Ok(offset),
            StartPosition::Earliest => OffsetSpec::Earliest,
            StartPosition::Latest => OffsetSpec::Latest,
            StartPosition::Timestamp(ms) => OffsetSpec::Timestamp(ms),
        };
        let client = &self.context.client;
        client
            .list_offsets(&self.context.topic, partition, spec)
            .await
    }

    fn forget_all(&mut self, epoch: u64) {
        self.fetcher.cancel_all();
        self.positions.clear();
        self.epoch = epoch;
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.heartbeat_task.abort();
    }
}
