//! Queues on the broker: create, receive, ack, nack, extend, stats; sending is in
//! `queue_send`, dead letters in `dead_letters`.
//!
//! The state of each queue lives in [`crate::queue::service::Queue`]; the methods here find
//! the queue, take the clock, and do the cross-queue work (dead-lettering into another
//! queue) outside any one queue's lock.

use std::collections::BTreeMap;
use std::sync::Arc;

use switchyard_log::Record;

use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::names;
use crate::queue::config::QueueConfig;
use crate::queue::journal::{Durable, Event};
use crate::queue::service::{self, Queue};
use crate::queue::state::{Completion, Pos, Prefetch, TokenError};
use crate::topic::Topic;
use crate::topic_config::TopicConfig;

/// Header prefix reserved for the broker's own headers on queue records.
pub const RESERVED_PREFIX: &str = "sy-";

/// What must reach stable storage before a send or ack on an `always` topic is answered:
/// partitions to fsync (shared with concurrent producers) and a point of the queue's journal.
#[must_use = "wait on it before answering"]
#[derive(Debug)]
pub struct PendingSync {
    pub(crate) topic: String,
    pub(crate) partitions: Vec<u32>,
    pub(crate) journal: Durable,
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
