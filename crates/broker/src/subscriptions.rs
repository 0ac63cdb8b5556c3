//! Subscriptions: named, durable readers of a topic, each in its own mode, all reading the
//! same log (fanout without copying).
//!
//! - `stream`: a consumer group (see `groups.rs`);
//! - `exclusive`: a consumer group whose earliest member holds every partition, the others
//!   standing by to take over in the order they joined;
//! - `queue`: competing consumers with leases (see `queues.rs`), optionally filtered.
//!
//! A subscription created later starts where it is told: the earliest retained record, the
//! end of the log, or the first record at or after a time. The start is fixed at creation
//! (committed offsets for groups, cursors for queues), so records sent between creating the
//! subscription and its first consumer joining are not missed.

use crate::broker::{Broker, Groups};
use crate::data::OffsetSpec;
use crate::error::{BrokerError, Result};
use crate::group::{Group, ResetPolicy};
use crate::names;
use crate::queue::config::QueueConfig;
use crate::queue::journal::Event;
use crate::topic_config::TopicConfig;

/// How a subscription hands out records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionMode {
    Stream,
    Exclusive,
    Queue,
}

/// Where a new subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Earliest,
    Latest,
    /// The first record at or after this time (ms since the epoch).
    Time(i64),
}

/// What to create.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionSpec {
    pub mode: SubscriptionMode,
    /// Queue mode only: records that do not pass are skipped by the broker.
    pub filter: Option<String>,
    pub start: StartAt,
    /// Queue mode: the queue's settings (its `filter` is taken from `filter` above).
    pub queue: QueueConfig,
}

/// One subscription, for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionSummary {
    pub name: String,
    pub topic: String,
    pub mode: SubscriptionMode,
}

impl Broker {
    /// Creates subscription `name` on `topic`.
    pub fn create_subscription(
        &self,
        topic: &str,
        name: &str,
        spec: SubscriptionSpec,
    ) -> Result<()> {
        self.check_running()?;
        names::validate("subscription", name)?;
        let handle = self.topic(topic)?;
        let taken = self.inner.queues.read().contains_key(name)
            || self.inner.groups.lock().live.contains_key(name);
        if taken {
            return Err(BrokerError::InvalidConfig(format!(
                "a subscription named `{name}` already exists; pick another name"
            )));
        }
        let starts = self.start_offsets(topic, handle.partition_count(), spec.start)?;
        match spec.mode {
            SubscriptionMode::Queue => {
                let config = QueueConfig {
                    filter: spec.filter,
                    ..spec.queue
                };
                self.create_queue_on(topic, name, TopicConfig::default(), config)?;
                let queue = self.queue(name)?;
                let mut inner = queue.inner.lock();
                for (partition, offset) in starts.iter().copied().enumerate() {
                    inner.state.advance_cursor(partition as u32, offset);
                    inner.journal.push(&Event::Scanned {
                        partition: partition as u32,
                        offset,
                    });
                }
                queue.persist(&mut inner)?.wait()?;
            }
            SubscriptionMode::Stream | SubscriptionMode::Exclusive => {
                if spec.filter.is_some() {
                    // TODO: filter stream subscriptions at fetch time — needs a fetch that
                    // names its group, so the broker can skip records and re-batch the rest.
                    return Err(BrokerError::InvalidConfig(
                        "filters are supported on queue subscriptions only, for now; create \
                         the subscription with mode queue"
                            .into(),
                    ));
                }
                let exclusive = spec.mode == SubscriptionMode::Exclusive;
                let mut groups = self.inner.groups.lock();
                let Groups { live, store } = &mut *groups;
                store.create_group(name, topic, ResetPolicy::Earliest, exclusive)?;
                let offsets: Vec<(u32, u64)> = starts
                    .iter()
                    .enumerate()
                    .map(|(p, offset)| (p as u32, *offset))
                    .collect();
                store.commit(name, &offsets)?;
                let partitions = handle.partition_count();
                let mut group = Group::new(
                    name.to_string(),
                    topic.to_string(),
                    ResetPolicy::Earliest,
                    partitions,
                );
                group.exclusive = exclusive;
                live.insert(name.to_string(), group);
            }
        }
        tracing::info!(topic, subscription = name, mode = ?spec.mode, "subscription created");
        Ok(())
    }

    /// Every subscription, or those of one topic.
    pub fn list_subscriptions(&self, topic: Option<&str>) -> Vec<SubscriptionSummary> {
        let wanted = |name: &str| topic.is_none_or(|topic| topic == name);
        let mut all: Vec<SubscriptionSummary> = {
            let groups = self.inner.groups.lock();
            groups
                .live
                .values()
                .filter(|group| wanted(&group.topic))
                .map(|group| SubscriptionSummary {
                    name: group.name.clone(),
                    topic: group.topic.clone(),
                    mode: if group.exclusive {
                        SubscriptionMode::Exclusive
                    } else {
                        SubscriptionMode::Stream
                    },
                })
                .collect()
        };
        let queues = self.inner.queues.read();
        all.extend(
            queues
                .values()
                .filter(|queue| wanted(&queue.topic.name))
                .map(|queue| SubscriptionSummary {
                    name: queue.name.clone(),
                    topic: queue.topic.name.clone(),
                    mode: SubscriptionMode::Queue,
                }),
        );
        all.sort_by(|a, b| (&a.topic, &a.name).cmp(&(&b.topic, &b.name)));
        all
    }

    /// Deletes a subscription; its topic and the other subscriptions are untouched.
    pub fn delete_subscription(&self, name: &str) -> Result<()> {
        if self.inner.groups.lock().live.contains_key(name) {
            return self.delete_group(name);
        }
        let queue = self.queue(name)?;
        self.inner.queues.write().remove(name);
        queue.remove_files()?;
        tracing::info!(subscription = name, "subscription deleted");
        Ok(())
    }

    /// Per partition, the offset where a subscription starting at `start` begins.
    fn start_offsets(&self, topic: &str, partitions: u32, start: StartAt) -> Result<Vec<u64>> {
        let spec = match start {
            StartAt::Earliest => OffsetSpec::Earliest,
            StartAt::Latest => OffsetSpec::Latest,
            StartAt::Time(ms) => OffsetSpec::Timestamp(ms),
        };
        (0..partitions)
            .map(|partition| self.list_offset(topic, partition, spec))
            .collect()
    }
}
