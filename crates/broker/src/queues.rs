//! Queues on the broker: create, send, receive, ack, nack, extend, stats, dead letters.
//!
//! The state of each queue lives in [`crate::queue::service::Queue`]; the methods here find
//! the queue, take the clock, and do the cross-queue work (dead-lettering into another
//! queue) outside any one queue's lock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use switchyard_log::partitioner::partition_for_key;
use switchyard_log::{BatchBuilder, Header, Record};

use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::names;
use crate::queue::config::{Overflow, QueueConfig};
use crate::queue::journal::{Durable, Event};
use crate::queue::service::{
    self, Queue, HEADER_DEDUP, HEADER_DUE, HEADER_EXPIRES, HEADER_PRIORITY,
};
use crate::queue::state::{Completion, Pos, Prefetch, TokenError};
use crate::topic::Topic;
use crate::topic_config::TopicConfig;

/// Header prefix reserved for the broker's own headers on queue records.
pub const RESERVED_PREFIX: &str = "sy-";

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

/// What must reach stable storage before a send or ack on an `always` topic is answered:
/// partitions to fsync (shared with concurrent producers) and a point of the queue's journal.
#[must_use = "wait on it before answering"]
#[derive(Debug)]
pub struct PendingSync {
    topic: String,
    partitions: Vec<u32>,
    journal: Durable,
}

impl PendingSync {
    /// Whether there is nothing to wait for (the topic does not fsync every change).
    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty() && self.journal.is_now()
    }

    /// Waits, blocking, for the fsyncs; concurrent callers share them.
    pub fn wait(self, broker: &Broker) -> Result<()> {
        for partition in self.partitions {
            broker.sync_partition(&self.topic, partition)?;
        }
        self.journal.wait()
    }
}

/// A record handed to a consumer under a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub token: String,
    pub partition: u32,
    pub deliveries: u32,
    pub record: Record,
}

/// A queue's depth by stage, and totals since the broker started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Deliverable now (including records not yet read from the log).
    pub ready: u64,
    pub in_flight: u64,
    /// Waiting for a delay or a retry backoff.
    pub delayed: u64,
    /// Ordered queues: behind another record of the same key.
    pub blocked: u64,
    /// Records in the dead-letter queue.
    pub dead_lettered: u64,
    pub oldest_ready_age_ms: Option<u64>,
    pub delivered_total: u64,
    pub acked_total: u64,
    pub dead_lettered_total: u64,
    pub expired_total: u64,
    pub dropped_total: u64,
    pub lost_total: u64,
}

impl Broker {
    /// Creates a queue: a topic of the same name with a queue subscription, and its
    /// dead-letter queue when that does not exist yet.
    pub fn create_queue(&self, name: &str, topic: TopicConfig, config: QueueConfig) -> Result<()> {
        self.create_queue_on(name, name, topic, config)
    }

    /// Creates the queue subscription `name` on topic `topic_name`, creating the topic with
    /// the `topic` settings when it does not exist. Other subscriptions of the topic see the
    /// same records.
    pub fn create_queue_on(
        &self,
        topic_name: &str,
        name: &str,
        topic: TopicConfig,
        config: QueueConfig,
    ) -> Result<()> {
        self.check_running()?;
        names::validate("queue", name)?;
        config.validate().map_err(BrokerError::InvalidConfig)?;
        if self.inner.queues.read().contains_key(name) {
            return Err(BrokerError::QueueExists(name.to_string()));
        }
        if self.inner.groups.lock().live.contains_key(name) {
            return Err(BrokerError::InvalidConfig(format!(
                "a consumer group or stream subscription named `{name}` exists, and queues \
                 share their names with groups; pick another name"
            )));
        }
        if let Some(dead_letter) = &config.dead_letter {
            names::validate("dead-letter queue", dead_letter)?;
            if dead_letter == name {
                return Err(BrokerError::InvalidConfig(format!(
                    "queue `{name}` cannot be its own dead-letter queue"
                )));
            }
            // Groups and queues share one namespace: a dead-letter queue must not take the
            // name of a consumer group (a stream subscription, say).
            if self.inner.groups.lock().live.contains_key(dead_letter) {
                return Err(BrokerError::InvalidConfig(format!(
                    "dead-letter queue `{dead_letter}` of queue `{name}` would take the name of \
                     consumer group `{dead_letter}`; pick another with --dead-letter"
                )));
            }
        }
        let partitions = if config.priorities > 1 {
            u32::from(config.priorities)
        } else {
            topic.partitions
        };
        match self.topic(topic_name) {
            Ok(_) => {}
            Err(BrokerError::UnknownTopic(_)) => self.create_topic(
                topic_name,
                TopicConfig {
                    partitions,
                    ..topic.clone()
                },
            )?,
            Err(err) => return Err(err),
        }
        let handle = self.topic(topic_name)?;
        if config.priorities > 1 && handle.partition_count() < u32::from(config.priorities) {
            return Err(BrokerError::InvalidConfig(format!(
                "topic `{topic_name}` has {} partitions but a queue with {} priorities needs \
                 one per priority",
                handle.partition_count(),
                config.priorities
            )));
        }
        let queue = Queue::open(name, handle, config.clone(), self.now_ms())?;
        queue.write_config(&config)?;
        self.inner
            .queues
            .write()
            .insert(name.to_string(), Arc::new(queue));
        tracing::info!(queue = name, "queue created");
        if let Some(dead_letter) = &config.dead_letter {
            if !self.inner.queues.read().contains_key(dead_letter) {
                // A dead letter leaves only by redrive, ack or retention: every refused
                // redrive counts a delivery, and a count limit would drop it.
                let dlq = QueueConfig {
                    dead_letter: None,
                    max_deliveries: u32::MAX,
                    ..QueueConfig::default()
                };
                self.create_queue(
                    dead_letter,
                    TopicConfig {
                        partitions: 1,
                        ..topic
                    },
                    dlq,
                )?;
            }
        }
        Ok(())
    }

    /// Deletes a queue and its topic. Its dead-letter queue stays. A queue subscription
    /// reads a topic it does not own, so it is deleted as a subscription instead.
    pub fn delete_queue(&self, name: &str) -> Result<()> {
        let queue = self.queue(name)?;
        if queue.topic.name != name {
            let source = self
                .subscription_log(name)
                .map_or_else(|| queue.topic.name.clone(), |log| log.spec.source.clone());
            return Err(BrokerError::InvalidConfig(format!(
                "queue `{name}` is a subscription on `{source}`; delete it with \
                 `switchyard sub delete {name}`"
            )));
        }
        self.delete_topic(name)
    }

    /// The open queue, or an error naming it.
    pub fn queue(&self, name: &str) -> Result<Arc<Queue>> {
        self.inner
            .queues
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| BrokerError::UnknownQueue(name.to_string()))
    }

    /// Names of all queues.
    pub fn list_queues(&self) -> Vec<String> {
        self.inner.queues.read().keys().cloned().collect()
    }

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
            // A queue subscription on patterns reads its own log (`__sub.NAME`), which only
            // the broker writes: sends and redrives to the queue go there directly.
            let batch = builder.finish();
            let appended = if crate::subscription_log::is_internal(&queue.topic.name) {
                self.append_unchecked(&queue.topic.name, partition, &batch)?
            } else {
                self.append(&queue.topic.name, partition, &batch)?
            };
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

    /// Leases up to `max` records to `consumer` without waiting.
    pub fn receive(
        &self,
        queue: &str,
        consumer: &str,
        max: usize,
        visibility_ms: Option<u64>,
        prefetch: Prefetch,
    ) -> Result<Vec<Delivery>> {
        self.receive_where(queue, consumer, max, visibility_ms, prefetch, |_| true)
    }

    pub(crate) fn receive_where(
        &self,
        queue: &str,
        consumer: &str,
        max: usize,
        visibility_ms: Option<u64>,
        prefetch: Prefetch,
        wanted: impl Fn(Pos) -> bool,
    ) -> Result<Vec<Delivery>> {
        self.check_running()?;
        let queue = self.queue(queue)?;
        self.tick_queue(&queue)?;
        let now = self.now_ms();
        let mut inner = queue.inner.lock();
        queue.fill(&mut inner, max, now)?;
        let visibility = visibility_ms.unwrap_or(inner.state.config().visibility_ms);
        let lent = inner
            .state
            .lease_where(consumer, max, visibility, prefetch, now, wanted);
        for lease in &lent {
            inner.journal.push(&Event::Deliver {
                pos: lease.pos,
                deliveries: lease.deliveries,
            });
        }
        let positions: Vec<Pos> = lent.iter().map(|lease| lease.pos).collect();
        let records = queue.records(&mut inner, &positions)?;
        let mut deliveries = Vec::with_capacity(lent.len());
        for (lease, record) in lent.into_iter().zip(records) {
            let Some(record) = record else {
                // The log lost it (retention without protection): count it, deliver the rest.
                inner.state.complete(lease.pos, Completion::Dropped, now);
                inner.journal.push(&Event::Done {
                    pos: lease.pos,
                    how: Completion::Dropped,
                });
                inner.lost += 1;
                continue;
            };
            deliveries.push(Delivery {
                token: lease.token,
                partition: lease.pos.0,
                deliveries: lease.deliveries,
                record,
            });
        }
        // Deliveries are written before the answer (they survive a crash of the process)
        // but not waited on for an fsync even on an `always` topic: losing one to a power
        // cut only undercounts a delivery, and the next ack or periodic sync covers it.
        inner.journal.flush()?;
        drop(inner);
        Ok(deliveries)
    }

    /// Acks deliveries; each token gets its own result.
    pub fn ack(&self, queue: &str, tokens: &[String]) -> Result<Vec<Result<()>>> {
        let (results, pending) = self.ack_durably(queue, tokens)?;
        pending.wait(self)?;
        Ok(results)
    }

    /// `ack` without waiting for the fsync an `always` topic needs before the answer; the
    /// caller must [`PendingSync::wait`] before telling the consumer.
    pub fn ack_durably(
        &self,
        queue: &str,
        tokens: &[String],
    ) -> Result<(Vec<Result<()>>, PendingSync)> {
        let queue = self.queue(queue)?;
        let now = self.now_ms();
        let mut inner = queue.inner.lock();
        let results = tokens
            .iter()
            .map(|token| {
                let pos = inner
                    .state
                    .ack(token, now)
                    .map_err(|err| token_error(&queue, err))?;
                inner.cache.remove(&pos);
                inner.journal.push(&Event::Done {
                    pos,
                    how: Completion::Acked,
                });
                Ok(())
            })
            .collect();
        let journal = queue.persist(&mut inner)?;
        drop(inner);
        queue.room.notify_waiters();
        queue.ready.notify_waiters();
        let pending = PendingSync {
            topic: queue.topic.name.clone(),
            partitions: vec![],
            journal,
        };
        Ok((results, pending))
    }

    /// Gives a delivery back, to be delivered again after `delay_ms` (or the queue's retry
    /// backoff), or dead-lettered if it has had its deliveries.
    pub fn nack(
        &self,
        queue: &str,
        token: &str,
        delay_ms: Option<u64>,
        error: Option<String>,
    ) -> Result<()> {
        let queue = self.queue(queue)?;
        let now = self.now_ms();
        let doomed = {
            let mut inner = queue.inner.lock();
            let failed = error.clone();
            let (pos, doomed) = inner
                .state
                .nack(token, delay_ms, error, now)
                .map_err(|err| token_error(&queue, err))?;
            // Journaled so that a dead letter made after a restart still says why.
            if let (Some(error), None) = (failed, &doomed) {
                inner.journal.push(&Event::Failed { pos, error });
            }
            (queue.persist(&mut inner)?, doomed)
        };
        let (durable, doomed) = doomed;
        durable.wait()?;
        if let Some(doomed) = doomed {
            self.bury(&queue, vec![doomed])?;
        }
        queue.ready.notify_waiters();
        Ok(())
    }

    /// Extends a lease to `visibility_ms` from now.
    pub fn extend(&self, queue: &str, token: &str, visibility_ms: u64) -> Result<()> {
        let queue = self.queue(queue)?;
        let now = self.now_ms();
        let mut inner = queue.inner.lock();
        inner
            .state
            .extend(token, visibility_ms, now)
            .map_err(|err| token_error(&queue, err))?;
        Ok(())
    }

    /// Depth and totals of a queue.
    pub fn queue_stats(&self, name: &str) -> Result<QueueStats> {
        let queue = self.queue(name)?;
        self.tick_queue(&queue)?;
        let now = self.now_ms();
        let mut inner = queue.inner.lock();
        // Records the filter skips are no backlog: read ahead so they are not counted. Any
        // other queue reads at least one record, so the oldest ready one has an age even when
        // it was only just sent (or redriven).
        let wanted = if queue.has_filter() {
            service::MAX_ADMITTED
        } else {
            1
        };
        queue.fill(&mut inner, wanted, now)?;
        // Only admissions: durable with the next periodic sync.
        inner.journal.flush()?;
        let mut counts = inner.state.counts(now);
        counts.delayed += inner.delayed.len();
        let totals = inner.state.totals;
        let unscanned = queue.unscanned(&inner);
        let dead_letter = inner.state.config().dead_letter.clone();
        let lost = inner.lost;
        drop(inner);
        let dead_lettered = match dead_letter.and_then(|dlq| self.queue(&dlq).ok()) {
            Some(dlq) => {
                let dlq_inner = dlq.inner.lock();
                dlq_inner.state.len() as u64 + dlq.unscanned(&dlq_inner)
            }
            None => 0,
        };
        Ok(QueueStats {
            ready: counts.ready + unscanned,
            in_flight: counts.in_flight,
            delayed: counts.delayed,
            blocked: counts.held,
            dead_lettered,
            oldest_ready_age_ms: counts.oldest_ready_ms.map(|age| age.max(0) as u64),
            delivered_total: totals.delivered,
            acked_total: totals.acked,
            dead_lettered_total: totals.dead_lettered,
            expired_total: totals.expired,
            dropped_total: totals.dropped,
            lost_total: lost,
        })
    }

    /// When the queue's next timer fires (a delay ends, a lease expires), for long-polls.
    pub fn queue_next_timer(&self, name: &str) -> Option<i64> {
        let queue = self.queue(name).ok()?;
        let inner = queue.inner.lock();
        match (inner.state.next_timer(), inner.delayed.next_load()) {
            (Some(timer), Some(load)) => Some(timer.min(load)),
            (timer, load) => timer.or(load),
        }
    }

    /// Fires a queue's due timers and buries the records that died.
    pub(crate) fn tick_queue(&self, queue: &Arc<Queue>) -> Result<()> {
        let now = self.now_ms();
        let (doomed, woke) = {
            let mut inner = queue.inner.lock();
            let ready_before = inner.state.ready_len();
            for partition in queue.topic.partitions() {
                let start = partition.log.start_offset();
                queue.lose_before(&mut inner, partition.id, start, now);
            }
            queue.load_delayed(&mut inner, now)?;
            let doomed = inner.state.tick(now);
            let woke = inner.state.ready_len() > ready_before;
            if inner.journal.wants_compaction() {
                let live = queue.live(&inner);
                inner.journal.compact(&live)?;
            }
            inner.journal.flush()?;
            (doomed, woke)
        };
        if !doomed.is_empty() {
            self.bury(queue, doomed)?;
        }
        if woke {
            queue.ready.notify_waiters();
        }
        Ok(())
    }

    /// Ticks every queue; called by the maintenance thread.
    pub fn tick_queues(&self) {
        let queues: Vec<Arc<Queue>> = self.inner.queues.read().values().cloned().collect();
        for queue in queues {
            if let Err(err) = self.tick_queue(&queue) {
                tracing::error!(queue = %queue.name, error = %err, "queue maintenance failed");
            }
        }
    }

    /// Syncs every queue's journal to disk.
    pub(crate) fn sync_queue_journals(&self) -> Result<()> {
        let queues: Vec<Arc<Queue>> = self.inner.queues.read().values().cloned().collect();
        for queue in queues {
            let mut inner = queue.inner.lock();
            inner.delayed.sync()?;
            inner.journal.sync()?;
        }
        Ok(())
    }

    /// Lowest offset of a partition that a retention-protecting queue, or the group of the
    /// subscription whose log it is, still needs.
    pub(crate) fn retention_floor(&self, topic: &str, partition: u32) -> u64 {
        // A subscription's own log keeps what its group has not committed, as a queue keeps
        // what is not acked: those records exist only for that subscriber.
        if let Some(name) = topic.strip_prefix(crate::subscription_log::LOG_TOPIC_PREFIX) {
            let groups = self.inner.groups.lock();
            if let Some(record) = groups.store.get(name).filter(|r| r.topic == topic) {
                return record.offsets.get(&partition).copied().unwrap_or(0);
            }
        }
        let queues: Vec<Arc<Queue>> = self.inner.queues.read().values().cloned().collect();
        queues
            .iter()
            .filter(|queue| queue.topic.name == topic)
            .filter_map(|queue| {
                let inner = queue.inner.lock();
                inner
                    .state
                    .config()
                    .protect_from_retention
                    .then(|| queue.floor(&inner, partition))
            })
            .min()
            .unwrap_or(u64::MAX)
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

fn token_error(queue: &Queue, err: TokenError) -> BrokerError {
    match err {
        TokenError::Malformed(token) => BrokerError::InvalidToken {
            queue: queue.name.clone(),
            token,
        },
        TokenError::Expired(pos) => BrokerError::LeaseExpired {
            queue: queue.name.clone(),
            partition: pos.0,
            offset: pos.1,
        },
    }
}

/// Loads the queues of every topic at start-up.
pub(crate) fn load_queues(
    topics: &BTreeMap<String, Arc<Topic>>,
    now: i64,
) -> Result<BTreeMap<String, Arc<Queue>>> {
    let mut queues = BTreeMap::new();
    for topic in topics.values() {
        let dir = service::queues_dir(&topic.dir);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.map_err(|err| BrokerError::io(&dir, err))?;
            let path = entry.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            let raw = std::fs::read(&path).map_err(|err| BrokerError::io(&path, err))?;
            let config: QueueConfig = serde_json::from_slice(&raw).map_err(|err| {
                BrokerError::InvalidConfig(format!(
                    "{} is not a queue config: {err}",
                    path.display()
                ))
            })?;
            let queue = Queue::open(name, Arc::clone(topic), config, now)?;
            queues.insert(name.to_string(), Arc::new(queue));
        }
    }
    Ok(queues)
}
