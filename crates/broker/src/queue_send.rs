//! Sending to a queue: admission against the queue's limits, dedup, priorities and delays
//! stamped as headers, one batch per partition appended under the queue's lock, and the
//! fsyncs an `always` topic needs left to the caller ([`PendingSync`]).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use switchyard_log::partitioner::partition_for_key;
use switchyard_log::{BatchBuilder, Header};

use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::queue::config::{Overflow, QueueConfig};
use crate::queue::journal::Event;
use crate::queue::service::{
    self, Queue, HEADER_DEDUP, HEADER_DUE, HEADER_EXPIRES, HEADER_PRIORITY,
};
use crate::queue::state::{Completion, Pos};
use crate::queues::{PendingSync, RESERVED_PREFIX};

/// A record to send to a queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    /// `None`: the queue's default delay; `Some(0)`: deliverable at once.
    pub delay_ms: Option<u64>,
    pub priority: Option<u8>,
    pub dedup_id: Option<String>,
    /// `None`: the queue's default time-to-live.
    pub ttl_ms: Option<u64>,
}

/// What became of one sent record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Stored at this partition and offset.
    Stored(Pos),
    /// Not stored: its dedup id was first seen on the record at this position.
    Duplicate(Pos),
    /// Not stored: the queue is full; retry later.
    Full { limit: String },
}

impl Broker {
    /// Sends records to a queue. Each gets its own outcome: records that fit are stored in
    /// order; once the queue is full, the rest of the call is refused (or, with
    /// `drop-oldest`, the oldest ready records make room).
    pub fn send(&self, queue: &str, records: Vec<SendRecord>) -> Result<Vec<SendOutcome>> {
        let (outcomes, pending) = self.send_durably(queue, records)?;
        pending.wait(self)?;
        Ok(outcomes)
    }

    /// `send` without waiting for fsyncs: the records are stored and the outcomes final, but
    /// on an `always` topic the caller must [`PendingSync::wait`] before confirming them.
    /// A server calls this inline, keeping the order of a connection's sends, and waits
    /// elsewhere.
    pub fn send_durably(
        &self,
        queue: &str,
        records: Vec<SendRecord>,
    ) -> Result<(Vec<SendOutcome>, PendingSync)> {
        for record in &records {
            validate_headers(&record.headers)?;
        }
        if let Some(priority) = records.iter().filter_map(|record| record.priority).max() {
            let priorities = self.queue(queue)?.inner.lock().state.config().priorities;
            if priority >= priorities.max(1) {
                return Err(BrokerError::InvalidConfig(format!(
                    "priority {priority} is out of range: queue `{queue}` has {priorities} \
                     (0 to {}); nothing was sent",
                    priorities.max(1) - 1
                )));
            }
        }
        self.send_pending(queue, records)
    }

    /// `send` for the broker's own records, which may carry reserved headers.
    pub(crate) fn send_unchecked(
        &self,
        queue: &str,
        records: Vec<SendRecord>,
    ) -> Result<Vec<SendOutcome>> {
        let (outcomes, pending) = self.send_pending(queue, records)?;
        pending.wait(self)?;
        Ok(outcomes)
    }

    fn send_pending(
        &self,
        queue: &str,
        records: Vec<SendRecord>,
    ) -> Result<(Vec<SendOutcome>, PendingSync)> {
        self.check_running()?;
        let queue = self.queue(queue)?;
        let now = self.now_ms();
        let mut inner = queue.inner.lock();
        let config = inner.state.config().clone();
        inner.dedup.prune(now, config.dedup_window_ms);
        let partitions = queue.topic.partition_count();
        let dedup_ids = records.iter().any(|record| record.dedup_id.is_some());
        if config.max_bytes.is_some() || (dedup_ids && queue.unscanned(&inner) > 0) {
            // Byte counts, and dedup ids of records a crash left out of the journal, are
            // known only for admitted records: admit what the log holds.
            queue.fill(&mut inner, service::MAX_ADMITTED, now)?;
        }
        let mut depth = inner.state.len() as u64 + queue.unscanned(&inner);
        let mut bytes = inner.state.bytes();
        let mut outcomes: Vec<Option<SendOutcome>> = vec![None; records.len()];
        let mut batches: BTreeMap<u32, (BatchBuilder, Vec<usize>)> = BTreeMap::new();
        let mut first_of_id: BTreeMap<String, usize> = BTreeMap::new();
        let mut to_sync = BTreeSet::new();
        for (index, record) in records.iter().enumerate() {
            if let Some(id) = &record.dedup_id {
                if let Some(pos) = inner.dedup.lookup(id, now, config.dedup_window_ms) {
                    outcomes[index] = Some(SendOutcome::Duplicate(pos));
                    continue;
                }
                if first_of_id.contains_key(id) {
                    continue; // resolved to the first copy's position after the append
                }
                first_of_id.insert(id.clone(), index);
            }
            let size = record.value.as_ref().map_or(0, Bytes::len) as u64;
            if let Some(limit) = full(&config, depth, bytes, size) {
                let freed = config.overflow == Overflow::DropOldest && {
                    // Earlier records of this call must be in the log to be droppable.
                    self.append_pending(
                        &queue,
                        &mut inner,
                        &mut batches,
                        &records,
                        &mut outcomes,
                        &mut to_sync,
                        now,
                    )?;
                    queue.fill(&mut inner, 1, now)?;
                    drop_oldest(&queue, &mut inner, now)
                };
                if !freed {
                    outcomes[index] = Some(SendOutcome::Full { limit });
                    continue;
                }
                depth -= 1;
            }
            depth += 1;
            bytes += size;
            let partition = choose_partition(record, &config, partitions, index);
            let (builder, members) = batches.entry(partition).or_default();
            builder.push(now, &stamped(record, &config, now));
            members.push(index);
        }
        self.append_pending(
            &queue,
            &mut inner,
            &mut batches,
            &records,
            &mut outcomes,
            &mut to_sync,
            now,
        )?;
        let journal = queue.persist(&mut inner)?;
        drop(inner);
        let pending = PendingSync {
            topic: queue.topic.name.clone(),
            partitions: to_sync.into_iter().collect(),
            journal,
        };
        queue.ready.notify_waiters();
        // A later copy of an id first sent in this same call is a duplicate of that copy.
        let resolved = (0..records.len())
            .map(|index| match outcomes[index].clone() {
                Some(outcome) => outcome,
                None => {
                    let id = records[index].dedup_id.as_deref().unwrap_or_default();
                    match first_of_id
                        .get(id)
                        .and_then(|first| outcomes[*first].clone())
                    {
                        Some(SendOutcome::Stored(pos)) => SendOutcome::Duplicate(pos),
                        Some(other) => other,
                        None => SendOutcome::Full {
                            limit: "max_records".into(),
                        },
                    }
                }
            })
            .collect();
        Ok((resolved, pending))
    }

    /// Appends the batches built so far by a send and records their outcomes and dedup ids.
    #[allow(clippy::too_many_arguments)] // one call's working state, borrowed piecewise
    fn append_pending(
        &self,
        queue: &Queue,
        inner: &mut service::QueueInner,
        batches: &mut BTreeMap<u32, (BatchBuilder, Vec<usize>)>,
        records: &[SendRecord],
        outcomes: &mut [Option<SendOutcome>],
        to_sync: &mut BTreeSet<u32>,
        now: i64,
    ) -> Result<()> {
        for (partition, (builder, members)) in std::mem::take(batches) {
            // Appended now; an `always` topic's fsync waits until the queue's lock is free.
            let appended = self.append_and_copy(&queue.topic.name, partition, &builder.finish())?;
            if appended.needs_sync {
                to_sync.insert(partition);
            }
            let info = appended.info;
            for (position, index) in members.into_iter().enumerate() {
                let pos = (partition, info.base_offset + position as u64);
                outcomes[index] = Some(SendOutcome::Stored(pos));
                if let Some(id) = &records[index].dedup_id {
                    inner.dedup.insert(id.clone(), pos, now);
                    inner.journal.push(&Event::Dedup {
                        id: id.clone(),
                        pos,
                        at_ms: now,
                    });
                }
            }
        }
        Ok(())
    }
}

fn validate_headers(headers: &[Header]) -> Result<()> {
    match headers
        .iter()
        .find(|(name, _)| name.starts_with(RESERVED_PREFIX))
    {
        Some((name, _)) => Err(BrokerError::InvalidConfig(format!(
            "header `{name}` uses the reserved prefix `{RESERVED_PREFIX}`; rename it"
        ))),
        None => Ok(()),
    }
}

/// The limit a record of `size` bytes would break, if any.
fn full(config: &QueueConfig, depth: u64, bytes: u64, size: u64) -> Option<String> {
    if config.max_records.is_some_and(|max| depth >= max) {
        return Some(format!(
            "max_records = {}",
            config.max_records.unwrap_or_default()
        ));
    }
    if config.max_bytes.is_some_and(|max| bytes + size > max) {
        return Some(format!(
            "max_bytes = {}",
            config.max_bytes.unwrap_or_default()
        ));
    }
    None
}

/// Drops the oldest ready record for `drop-oldest` overflow; false if nothing is ready.
fn drop_oldest(queue: &Queue, inner: &mut service::QueueInner, now: i64) -> bool {
    let Some(pos) = inner.state.oldest_ready() else {
        return false;
    };
    inner.state.complete(pos, Completion::Dropped, now);
    inner.cache.remove(&pos);
    inner.journal.push(&Event::Done {
        pos,
        how: Completion::Dropped,
    });
    tracing::debug!(queue = %queue.name, partition = pos.0, offset = pos.1, "dropped oldest");
    true
}

fn choose_partition(
    record: &SendRecord,
    config: &QueueConfig,
    partitions: u32,
    index: usize,
) -> u32 {
    if config.priorities > 1 {
        return u32::from(record.priority.unwrap_or(0).min(config.priorities - 1));
    }
    match &record.key {
        Some(key) => partition_for_key(key, partitions),
        None => index as u32 % partitions.max(1),
    }
}

/// The record as stored: the broker's headers for delay, priority, expiry and dedup added.
fn stamped(record: &SendRecord, config: &QueueConfig, now: i64) -> switchyard_log::RecordBuf {
    let text = |value: i64| Bytes::from(value.to_string().into_bytes());
    let mut headers = record.headers.clone();
    let delay = record.delay_ms.unwrap_or(config.default_delay_ms);
    if delay > 0 {
        headers.push((HEADER_DUE.into(), text(now.saturating_add(delay as i64))));
    }
    if let Some(priority) = record.priority.filter(|p| *p > 0 && config.priorities > 1) {
        headers.push((
            HEADER_PRIORITY.into(),
            text(i64::from(priority.min(config.priorities - 1))),
        ));
    }
    if let Some(ttl) = record.ttl_ms.or(config.ttl_ms) {
        headers.push((HEADER_EXPIRES.into(), text(now.saturating_add(ttl as i64))));
    }
    if let Some(id) = &record.dedup_id {
        headers.push((HEADER_DEDUP.into(), Bytes::from(id.clone().into_bytes())));
    }
    switchyard_log::RecordBuf {
        key: record.key.clone(),
        value: record.value.clone(),
        headers,
    }
}
