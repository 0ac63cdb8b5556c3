//! Subscriptions: named, durable readers of a topic, each in its own mode, all reading the
//! same log (fanout without copying); or readers of patterns, or filtered stream readers,
//! each reading a log of its own that the broker fills (see `subscription_log`).
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

use std::collections::BTreeMap;

use crate::broker::{Broker, Groups};
use crate::data::OffsetSpec;
use crate::error::{BrokerError, Result};
use crate::group::{Group, ResetPolicy};
use crate::names;
use crate::queue::config::QueueConfig;
use crate::queue::journal::Event;
use crate::route::PatternSet;
use crate::subscription_log::parse_source;
use crate::subscription_log::store::LogSpec;
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
    /// Records that do not pass are skipped by the broker: a queue skips them as it scans
    /// its topic, the other modes get a log of their own that holds only those that pass.
    pub filter: Option<String>,
    pub start: StartAt,
    /// Queue mode: the queue's settings (its `filter` is taken from `filter` above).
    pub queue: QueueConfig,
    /// Partitions of the subscription's own log, when it has one; 0 takes the default, 1.
    pub log_partitions: u32,
}

/// One subscription, for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionSummary {
    pub name: String,
    pub topic: String,
    pub mode: SubscriptionMode,
}

impl Broker {
    /// Creates subscription `name` on `source`: one topic, or a pattern set such as
    /// `a.A,a.*.B`. A subscription on one topic reads that topic; one on patterns, or a
    /// filtered stream or exclusive one, reads a log of its own (see `subscription_log`).
    pub fn create_subscription(
        &self,
        source: &str,
        name: &str,
        spec: SubscriptionSpec,
    ) -> Result<()> {
        self.check_running()?;
        names::validate("subscription", name)?;
        let taken = self.inner.queues.read().contains_key(name)
            || self.inner.groups.lock().live.contains_key(name)
            || self.subscription_log(name).is_some();
        if taken {
            return Err(BrokerError::InvalidConfig(format!(
                "a subscription named `{name}` already exists; pick another name"
            )));
        }
        let (patterns, _) = parse_source(name, source, spec.filter.as_deref())?;
        let single = patterns.as_single_literal().map(str::to_string);
        if let Some(topic) = &single {
            crate::broker::refuse_internal("subscribe to", topic)?;
            let handle = self.topic(topic)?;
            let direct = spec.filter.is_none() || spec.mode == SubscriptionMode::Queue;
            if direct {
                if spec.log_partitions > 1 {
                    return Err(BrokerError::InvalidConfig(format!(
                        "subscription `{name}` reads topic `{topic}` itself, so it has no log \
                         to partition; leave out the partition count (it has {})",
                        crate::error::partition_count(handle.partition_count())
                    )));
                }
                let starts = self.start_offsets(topic, handle.partition_count(), spec.start)?;
                self.attach_reader(topic, name, spec, &starts)?;
                tracing::info!(topic, subscription = name, "subscription created");
                return Ok(());
            }
        }
        // A queue's dead letters must not be copied back into the queue's own log.
        let exclude: Vec<String> = match spec.mode {
            SubscriptionMode::Queue => spec.queue.dead_letter.iter().cloned().collect(),
            _ => Vec::new(),
        };
        let mut starts = BTreeMap::new();
        for (topic, partitions) in self.list_topics() {
            let excluded = exclude.contains(&topic);
            if !crate::subscription_log::is_internal(&topic)
                && patterns.matches(&topic)
                && !excluded
            {
                let offsets = self.start_offsets(&topic, partitions, spec.start)?;
                starts.insert(topic, offsets);
            }
        }
        let log_name = crate::subscription_log::log_topic(name);
        if log_name.len() > names::MAX_NAME_LEN {
            let most = names::MAX_NAME_LEN - crate::subscription_log::LOG_TOPIC_PREFIX.len();
            return Err(BrokerError::InvalidName {
                kind: "subscription",
                name: name.to_string(),
                reason: format!(
                    "it is {} characters long; a subscription with a log of its own (on \
                     patterns, or filtered) may have at most {most}",
                    name.len()
                ),
            });
        }
        let log_spec = LogSpec {
            name: name.to_string(),
            source: patterns.to_string(),
            filter: spec.filter.clone(),
            exclude,
        };
        let partitions = spec.log_partitions.max(1);
        let log = self.prepare_subscription_log(log_spec, partitions, starts)?;
        let reader = SubscriptionSpec {
            // Filtered on the way into the log already.
            filter: None,
            ..spec
        };
        let starts = vec![0; partitions as usize];
        let attached = self.attach_reader(&log.topic, name, reader, &starts);
        if let Err(err) = attached.and_then(|()| self.open_subscription_log(log).map(drop)) {
            self.delete_subscription_log(name)?;
            return Err(err);
        }
        tracing::info!(source = %patterns, subscription = name, "subscription created");
        Ok(())
    }

    /// Creates the group or queue named `name` that reads `topic` from `starts`.
    fn attach_reader(
        &self,
        topic: &str,
        name: &str,
        spec: SubscriptionSpec,
        starts: &[u64],
    ) -> Result<()> {
        let handle = self.topic(topic)?;
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
        Ok(())
    }

    /// The topic a member of group `group` reads when it asks for `requested`: the
    /// subscription's own log when the group belongs to a subscription with one and
    /// `requested` names its source (`a.>`) or the log itself, else `requested`.
    pub fn group_topic(&self, group: &str, requested: &str) -> String {
        let Some(log) = self.subscription_log(group) else {
            return requested.to_string();
        };
        let names_source = PatternSet::parse(requested).is_ok_and(|set| set == log.source);
        if names_source {
            log.topic.clone()
        } else {
            requested.to_string()
        }
    }

    /// Every subscription, or those of one topic.
    pub fn list_subscriptions(&self, topic: Option<&str>) -> Vec<SubscriptionSummary> {
        let wanted = |name: &str| topic.is_none_or(|topic| topic == name);
        let mut all: Vec<SubscriptionSummary> = {
            let groups = self.inner.groups.lock();
            groups
                .live
                .values()
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
        all.extend(queues.values().map(|queue| SubscriptionSummary {
            name: queue.name.clone(),
            topic: queue.topic.name.clone(),
            mode: SubscriptionMode::Queue,
        }));
        for summary in &mut all {
            if let Some(log) = self.subscription_log(&summary.name) {
                if summary.topic == log.topic {
                    summary.topic = log.spec.source.clone();
                }
            }
        }
        // A subscription on patterns is one of a topic's when its patterns match the topic.
        all.retain(|summary| {
            wanted(&summary.topic)
                || topic.is_some_and(|topic| {
                    self.subscription_log(&summary.name)
                        .is_some_and(|log| log.reads(topic))
                })
        });
        all.sort_by(|a, b| (&a.topic, &a.name).cmp(&(&b.topic, &b.name)));
        all
    }

    /// Deletes a subscription; its topic and the other subscriptions are untouched.
    pub fn delete_subscription(&self, name: &str) -> Result<()> {
        if self.subscription_log(name).is_some() {
            // Deleting its log deletes the group or queue reading it.
            self.delete_subscription_log(name)?;
            tracing::info!(subscription = name, "subscription deleted");
            return Ok(());
        }
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
