//! Subscription logs: a subscription bound to a pattern (or to several), or a filtered
//! stream subscription, reads a log of its own that the broker fills as records arrive.
//!
//! A subscription on one topic reads that topic's log directly: fanout without copying. A
//! subscription over `orders.*.created,orders.eu.>` cannot, because its records live in
//! many logs and it must see them once each, in the order they were published. So the
//! broker keeps a log for it, `__sub.<name>`, and copies into it every record of a
//! matching topic that passes the subscription's filter, at the moment the record is
//! appended (RabbitMQ's topic exchange routing into a queue, or SNS into SQS, work the
//! same way). This gives:
//!
//! - one order across topics: the order in which the appends happened, so records
//!   published one after another arrive in that order;
//! - once-only delivery when several patterns match the same topic;
//! - filtering before storage: skipped records are never sent and never count as lag;
//! - every mode for free: the subscription's consumer group or queue reads the log like
//!   any topic, and topics created later are covered as soon as they are written to.
//!
//! The copies are derived data. Each carries `sy-source: topic/partition/offset`, and a
//! producer's acknowledgement does not wait for its copies: if the broker dies before a
//! copy reaches the disk, the next start reads the log's tail, sees where copying had got
//! to, and copies the rest from the source again (see `store` and `copy`). Copying is per
//! source partition from a cursor, under the subscription's lock, so concurrent producers
//! never reorder one partition's records.

mod copy;
pub(crate) mod store;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::route::{Filter, PatternSet};
use crate::subscription_log::store::{Checkpoint, Cursors, LogFiles, LogSpec};
use crate::topic_config::TopicConfig;

/// Prefix of a subscription log's topic name; the subscription's name follows.
pub const LOG_TOPIC_PREFIX: &str = "__sub.";

/// Header naming the record a copy came from, as `topic/partition/offset`.
pub const SOURCE_HEADER: &str = "sy-source";

/// How often the maintenance thread writes checkpoints.
pub const CHECKPOINT_INTERVAL_MS: i64 = 1000;

/// The name of the topic holding subscription `name`'s log.
pub fn log_topic(name: &str) -> String {
    format!("{LOG_TOPIC_PREFIX}{name}")
}

/// Whether `topic` is one of the broker's own topics, which clients do not write.
pub fn is_internal(topic: &str) -> bool {
    topic.starts_with(crate::route::subject::INTERNAL_PREFIX)
}

/// One subscription log, as the copier uses it.
pub(crate) struct SubscriptionLog {
    pub spec: LogSpec,
    pub source: PatternSet,
    pub filter: Option<Filter>,
    pub topic: String,
    files: LogFiles,
    pub state: Mutex<CopyState>,
}

/// Where copying stands; guarded by the subscription's lock.
#[derive(Debug, Default)]
pub(crate) struct CopyState {
    pub cursors: Cursors,
    /// Whether cursors moved since the last checkpoint.
    pub dirty: bool,
}

impl SubscriptionLog {
    fn compile(spec: LogSpec, files: LogFiles) -> Result<SubscriptionLog> {
        let (source, filter) = parse_source(&spec.name, &spec.source, spec.filter.as_deref())?;
        Ok(SubscriptionLog {
            topic: log_topic(&spec.name),
            spec,
            source,
            filter,
            files,
            state: Mutex::new(CopyState::default()),
        })
    }

    /// Whether records of `topic` are copied here.
    pub fn reads(&self, topic: &str) -> bool {
        !is_internal(topic)
            && self.source.matches(topic)
            && !self.spec.exclude.iter().any(|t| t == topic)
    }
}

/// Parses a subscription's pattern set and filter, with messages that name the subscription.
pub(crate) fn parse_source(
    name: &str,
    source: &str,
    filter: Option<&str>,
) -> Result<(PatternSet, Option<Filter>)> {
    let source = PatternSet::parse(source)
        .map_err(|err| BrokerError::InvalidConfig(format!("subscription `{name}`: {err}")))?;
    if let Some(internal) = source
        .patterns()
        .iter()
        .find(|pattern| is_internal(pattern.as_str()))
    {
        return Err(BrokerError::InvalidConfig(format!(
            "subscription `{name}`: `{internal}` names the broker's own topics (prefix `__`), \
             which subscriptions cannot read"
        )));
    }
    let filter = filter
        .map(Filter::parse)
        .transpose()
        .map_err(|err| BrokerError::InvalidConfig(format!("subscription `{name}`: {err}")))?;
    Ok((source, filter))
}

/// The subscription logs of a broker, by subscription name.
#[derive(Default)]
pub(crate) struct SubscriptionLogs {
    pub root: PathBuf,
    pub logs: BTreeMap<String, Arc<SubscriptionLog>>,
    /// Set when a copy failed: the maintenance thread then catches every log up at its next
    /// tick instead of at its next checkpoint.
    pub retry: AtomicBool,
}

impl Broker {
    /// Creates the topic and the files of subscription `name`'s log, not yet filled:
    /// existing matching topics are to be copied from `starts` (per topic, one offset per
    /// partition). The caller creates the group or queue that reads it, then calls
    /// [`Broker::open_subscription_log`]; a crash in between leaves a log without a spec,
    /// which the next start removes.
    pub(crate) fn prepare_subscription_log(
        &self,
        spec: LogSpec,
        partitions: u32,
        starts: BTreeMap<String, Vec<u64>>,
    ) -> Result<SubscriptionLog> {
        let root = self.inner.subscription_logs.read().root.clone();
        let files = LogFiles::new(&root, &spec.name);
        let log = SubscriptionLog::compile(spec, files)?;
        let config = TopicConfig {
            partitions,
            ..self.topic_defaults()
        };
        match self.create_internal_topic(&log.topic, config) {
            Err(BrokerError::TopicExists(_)) => {
                return Err(BrokerError::InvalidConfig(format!(
                    "a subscription named `{}` already exists; pick another name",
                    log.spec.name
                )))
            }
            other => other?,
        }
        let mut cursors = Cursors::new();
        for (topic, offsets) in starts {
            let entry = cursors.entry(topic).or_default();
            for (partition, offset) in offsets.into_iter().enumerate() {
                entry.insert(partition as u32, offset);
            }
        }
        let checkpoint = Checkpoint {
            log_ends: vec![0; partitions as usize],
            cursors: cursors.clone(),
        };
        log.files.save_checkpoint(&checkpoint)?;
        log.state.lock().cursors = cursors;
        Ok(log)
    }

    /// Makes a prepared log part of the broker: its spec is written (from now on a restart
    /// keeps it), its copier starts, and the history it starts from is copied before this
    /// returns.
    pub(crate) fn open_subscription_log(
        &self,
        log: SubscriptionLog,
    ) -> Result<Arc<SubscriptionLog>> {
        log.files.save_spec(&log.spec)?;
        let log = Arc::new(log);
        self.inner
            .subscription_logs
            .write()
            .logs
            .insert(log.spec.name.clone(), Arc::clone(&log));
        self.copy_all(&log, None);
        Ok(log)
    }

    /// Removes subscription `name`'s log, its topic (with the group or queue reading it)
    /// and its files; also those of a log that was only prepared.
    pub(crate) fn delete_subscription_log(&self, name: &str) -> Result<()> {
        self.inner.subscription_logs.write().logs.remove(name);
        let topic = log_topic(name);
        match self.delete_internal_topic(&topic) {
            Ok(()) => {}
            Err(BrokerError::UnknownTopic(_)) => {
                // The topic is gone already: drop what would still read it.
                self.delete_groups_of_topic(&topic)?;
                self.inner
                    .queues
                    .write()
                    .retain(|_, queue| queue.topic.name != topic);
            }
            Err(err) => return Err(err),
        }
        let root = self.inner.subscription_logs.read().root.clone();
        LogFiles::new(&root, name).remove()
    }

    /// The log of subscription `name`, if it has one.
    pub(crate) fn subscription_log(&self, name: &str) -> Option<Arc<SubscriptionLog>> {
        self.inner.subscription_logs.read().logs.get(name).cloned()
    }

    /// Loads every subscription log at start-up and brings each up to date with its sources.
    pub(crate) fn open_subscription_logs(&self) -> Result<()> {
        let root = self.inner.subscription_logs.read().root.clone();
        let specs = LogFiles::load_all(&root)?;
        // A log whose creation was cut short has a topic but no spec, or lost its reader.
        let complete: Vec<String> = specs
            .iter()
            .filter(|(_, spec)| {
                self.has_reader(&spec.name) && self.topic(&log_topic(&spec.name)).is_ok()
            })
            .map(|(_, spec)| log_topic(&spec.name))
            .collect();
        for (topic, _) in self.list_topics() {
            if topic.starts_with(LOG_TOPIC_PREFIX) && !complete.contains(&topic) {
                let name = &topic[LOG_TOPIC_PREFIX.len()..];
                tracing::info!(
                    subscription = name,
                    "removing an incompletely created subscription"
                );
                self.delete_subscription_log(name)?;
            }
        }
        for (files, spec) in specs {
            if !complete.contains(&log_topic(&spec.name)) {
                tracing::warn!(
                    subscription = %spec.name,
                    "subscription lost its log or its reader; removing what is left of it"
                );
                self.delete_subscription_log(&spec.name)?;
                continue;
            }
            let log = SubscriptionLog::compile(spec, files)?;
            let checkpoint = log.files.load_checkpoint()?;
            let (cursors, copied) = self.recover_cursors(&log, checkpoint)?;
            log.state.lock().cursors = cursors;
            let log = Arc::new(log);
            self.copy_all(&log, Some(&copied));
            self.inner
                .subscription_logs
                .write()
                .logs
                .insert(log.spec.name.clone(), log);
        }
        Ok(())
    }

    /// Whether a group or queue named `name` reads the log of subscription `name`.
    fn has_reader(&self, name: &str) -> bool {
        let topic = log_topic(name);
        let group = self
            .inner
            .groups
            .lock()
            .live
            .get(name)
            .is_some_and(|group| group.topic == topic);
        group
            || self
                .inner
                .queues
                .read()
                .get(name)
                .is_some_and(|queue| queue.topic.name == topic)
    }

    /// Copies what was just appended to `topic`/`partition` into every subscription log
    /// that reads the topic. A failure is logged: the record is stored, and its copy is
    /// retried by the next append or maintenance tick.
    pub(crate) fn copy_appended(&self, topic: &str, partition: u32) {
        let readers: Vec<Arc<SubscriptionLog>> = {
            let logs = self.inner.subscription_logs.read();
            if logs.logs.is_empty() {
                return;
            }
            logs.logs
                .values()
                .filter(|log| log.reads(topic))
                .cloned()
                .collect()
        };
        for log in readers {
            let mut state = log.state.lock();
            let source = [(topic.to_string(), partition)];
            if let Err(err) = self.copy_merged(&log, &mut state, &source, None) {
                tracing::warn!(
                    subscription = %log.spec.name, topic, partition, error = %err,
                    "copy into the subscription log failed; retrying at the next tick"
                );
                self.retry_copies_soon();
            }
        }
    }

    fn all_subscription_logs(&self) -> Vec<Arc<SubscriptionLog>> {
        let logs = self.inner.subscription_logs.read();
        logs.logs.values().cloned().collect()
    }

    fn retry_copies_soon(&self) {
        let logs = self.inner.subscription_logs.read();
        logs.retry.store(true, Ordering::Release);
    }

    /// Catches every log up if a copy failed since the last call; what the maintenance
    /// thread does at each tick (copying itself happens on the append path).
    pub(crate) fn retry_failed_copies(&self) {
        let failed = {
            let logs = self.inner.subscription_logs.read();
            logs.retry.swap(false, Ordering::AcqRel)
        };
        if failed {
            self.copy_all_logs();
        }
    }

    /// Brings every subscription log up to date; the maintenance thread's safety net.
    pub fn copy_all_logs(&self) {
        let logs = self.all_subscription_logs();
        for log in logs {
            self.copy_all(&log, None);
        }
    }

    /// Copies whatever is missing from every source partition of `log`, merged by time,
    /// skipping what start-up found `copied` already.
    fn copy_all(&self, log: &SubscriptionLog, copied: Option<&copy::Copied>) {
        let sources: Vec<(String, u32)> = self
            .list_topics()
            .into_iter()
            .filter(|(topic, _)| log.reads(topic))
            .flat_map(|(topic, partitions)| (0..partitions).map(move |p| (topic.clone(), p)))
            .collect();
        let mut state = log.state.lock();
        if let Err(err) = self.copy_merged(log, &mut state, &sources, copied) {
            tracing::warn!(
                subscription = %log.spec.name, error = %err,
                "copy into the subscription log failed; retrying at the next tick"
            );
            self.retry_copies_soon();
        }
    }

    /// Writes a checkpoint for every subscription log whose cursors moved: its log is
    /// synced first, so the checkpoint never claims copies that are not on disk.
    pub fn checkpoint_subscription_logs(&self) -> Result<()> {
        let logs = self.all_subscription_logs();
        for log in logs {
            self.checkpoint(&log)?;
        }
        Ok(())
    }

    fn checkpoint(&self, log: &SubscriptionLog) -> Result<()> {
        let (cursors, log_ends, partitions) = {
            let mut state = log.state.lock();
            if !state.dirty {
                return Ok(());
            }
            state.dirty = false;
            let topic = self.topic(&log.topic)?;
            let partitions = topic.partitions();
            let ends = partitions.iter().map(|p| p.log.end_offset()).collect();
            (state.cursors.clone(), ends, partitions)
        };
        for partition in &partitions {
            if let Err(err) = partition.log.sync() {
                log.state.lock().dirty = true;
                return Err(BrokerError::from_log(&log.topic, partition.id, err));
            }
        }
        log.files.save_checkpoint(&Checkpoint { log_ends, cursors })
    }

    /// The topic a publish to `subject` is stored in: the topic of that name, created on
    /// the spot when it is missing and a subscription's patterns match the subject (so that
    /// the subscription gets the record), or `None` when nothing durable wants it.
    pub fn topic_for_publish(&self, subject: &str) -> Result<Option<Arc<crate::topic::Topic>>> {
        match self.topic(subject) {
            Ok(topic) => return Ok(Some(topic)),
            Err(BrokerError::UnknownTopic(_)) => {}
            Err(err) => return Err(err),
        }
        let wanted = {
            let logs = self.inner.subscription_logs.read();
            logs.logs.values().any(|log| log.reads(subject))
        };
        // A subject that cannot be a topic name (too long, say) reaches ephemeral
        // subscribers only, as without durable subscriptions.
        if !wanted || crate::names::validate("topic", subject).is_err() {
            return Ok(None);
        }
        match self.create_topic(subject, self.topic_defaults()) {
            Ok(()) => tracing::info!(topic = subject, "topic created by a publish"),
            // Another publish created it first.
            Err(BrokerError::TopicExists(_)) => {}
            Err(err) => return Err(err),
        }
        self.topic(subject).map(Some)
    }

    /// Forgets the cursors of a deleted topic, so that a topic created later under the
    /// same name is copied from its start.
    pub(crate) fn forget_source_topic(&self, topic: &str) -> Result<()> {
        let logs = self.all_subscription_logs();
        for log in logs {
            let removed = {
                let mut state = log.state.lock();
                let removed = state.cursors.remove(topic).is_some();
                state.dirty |= removed;
                removed
            };
            if removed {
                self.checkpoint(&log)?;
            }
        }
        Ok(())
    }
}
