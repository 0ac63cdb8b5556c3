//! The broker: topics on disk, opened and recovered at start, created and deleted at run time.
//!
//! `Broker` is a cheap handle (`Clone`) over shared state; the server holds one and so can an
//! application that embeds the broker in-process. Data paths (produce, fetch) and groups are
//! implemented in `data.rs` and `groups.rs` as further `impl Broker` blocks.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use switchyard_log::{PartitionLog, RecoveryReport};

use crate::clock::{Clock, SystemClock};
use crate::error::{BrokerError, Result};
use crate::group::{Group, OffsetStore};
use crate::names;
use crate::topic::{self, Partition, Topic};
use crate::topic_config::TopicConfig;

/// How to open a broker.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    pub data_dir: PathBuf,
    /// Settings given to a topic created without them.
    pub topic_defaults: TopicConfig,
    pub clock: Arc<dyn Clock>,
    /// Largest claim-check blob accepted (`max_payload_bytes`).
    pub max_blob_bytes: u64,
}

impl BrokerOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        BrokerOptions {
            data_dir: data_dir.into(),
            topic_defaults: TopicConfig::default(),
            clock: Arc::new(SystemClock),
            max_blob_bytes: crate::blobs::DEFAULT_MAX_BLOB_BYTES,
        }
    }
}

/// What recovery found in one partition at start-up.
#[derive(Debug, Clone)]
pub struct PartitionRecovery {
    pub topic: String,
    pub partition: u32,
    pub report: RecoveryReport,
}

/// Sizes and bounds of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStats {
    pub partition: u32,
    pub start_offset: u64,
    pub end_offset: u64,
    pub size_bytes: u64,
    pub segments: u32,
}

/// A topic with its settings and partitions' state.
#[derive(Debug, Clone)]
pub struct TopicDescription {
    pub name: String,
    pub config: TopicConfig,
    pub partitions: Vec<PartitionStats>,
}

pub(crate) struct Groups {
    pub live: BTreeMap<String, Group>,
    pub store: OffsetStore,
}

pub(crate) struct Inner {
    pub data_dir: PathBuf,
    pub topics_dir: PathBuf,
    pub topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    pub groups: Mutex<Groups>,
    pub clock: Arc<dyn Clock>,
    pub defaults: TopicConfig,
    pub shutting_down: AtomicBool,
    /// Flips to true when shutdown begins, so that waiting requests answer at once.
    pub stopping: tokio::sync::watch::Sender<bool>,
    pub syncer: crate::syncer::Syncer,
    pub queues: RwLock<BTreeMap<String, Arc<crate::queue::service::Queue>>>,
    /// Event rules and the router's cursors (see `rules`).
    pub rules: Mutex<crate::rules::store::RuleStore>,
    /// Claim-check blobs (see `blobs`).
    pub blobs: Arc<dyn crate::blobs::BlobStore>,
    pub max_blob_bytes: u64,
    /// Logs of subscriptions bound to patterns or filtered (see `subscription_log`).
    pub subscription_logs: RwLock<crate::subscription_log::SubscriptionLogs>,
    /// The open, exclusively locked `<data_dir>/.lock`; the lock goes with the last handle.
    _lock: fs::File,
}

/// A handle to the broker's shared state.
#[derive(Clone)]
pub struct Broker {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("data_dir", &self.inner.data_dir)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// Opens the broker's data folder, creating it when absent, and recovers every partition.
    pub fn open(options: BrokerOptions) -> Result<(Broker, Vec<PartitionRecovery>)> {
        options
            .topic_defaults
            .validate()
            .map_err(BrokerError::InvalidConfig)?;
        // Lock before touching anything: a second broker on the folder would corrupt it.
        let lock = lock_data_dir(&options.data_dir)?;
        let topics_dir = options.data_dir.join("topics");
        fs::create_dir_all(&topics_dir).map_err(|err| BrokerError::io(&topics_dir, err))?;
        let now = options.clock.now_ms();
        let mut topics = BTreeMap::new();
        let mut recoveries = Vec::new();
        for entry in fs::read_dir(&topics_dir).map_err(|err| BrokerError::io(&topics_dir, err))? {
            let entry = entry.map_err(|err| BrokerError::io(&topics_dir, err))?;
            let dir = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name.contains(".deleted-") || !dir.join(topic::CONFIG_FILE).exists() {
                // An interrupted delete or create: finish it.
                tracing::info!(folder = %dir.display(), "removing incomplete topic folder");
                fs::remove_dir_all(&dir).map_err(|err| BrokerError::io(&dir, err))?;
                continue;
            }
            let (topic, reports) = load_topic(&name, &dir, now)?;
            recoveries.extend(reports);
            topics.insert(name, Arc::new(topic));
        }
        let queues = crate::queues::load_queues(&topics, now)?;
        let store = OffsetStore::open(&options.data_dir.join("groups"))?;
        let live = store
            .groups()
            .iter()
            .map(|(name, record)| {
                let partitions = topics.get(&record.topic).map_or(0, |t| t.partition_count());
                let mut group =
                    Group::new(name.clone(), record.topic.clone(), record.reset, partitions);
                group.exclusive = record.exclusive;
                (name.clone(), group)
            })
            .collect();
        let rules = crate::rules::store::RuleStore::open(&options.data_dir.join("rules"))?;
        let blobs = crate::blobs::local::LocalBlobStore::open(&options.data_dir.join("blobs"))?;
        let subscription_logs = crate::subscription_log::SubscriptionLogs {
            root: options.data_dir.join("subscription-logs"),
            logs: BTreeMap::new(),
            retry: AtomicBool::new(false),
        };
        let inner = Inner {
            subscription_logs: RwLock::new(subscription_logs),
            blobs: Arc::new(blobs),
            max_blob_bytes: options.max_blob_bytes,
            rules: Mutex::new(rules),
            data_dir: options.data_dir,
            topics_dir,
            topics: RwLock::new(topics),
            groups: Mutex::new(Groups { live, store }),
            clock: options.clock,
            defaults: options.topic_defaults,
            shutting_down: AtomicBool::new(false),
            stopping: tokio::sync::watch::Sender::new(false),
            syncer: crate::syncer::Syncer::default(),
            queues: RwLock::new(queues),
            _lock: lock,
        };
        let broker = Broker {
            inner: Arc::new(inner),
        };
        broker.open_subscription_logs()?;
        broker.recover_blobs()?;
        Ok((broker, recoveries))
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Settings a new topic gets for what its creator leaves out.
    pub fn topic_defaults(&self) -> TopicConfig {
        self.inner.defaults.clone()
    }

    pub(crate) fn check_running(&self) -> Result<()> {
        if self.inner.shutting_down.load(Ordering::Acquire) {
            return Err(BrokerError::ShuttingDown);
        }
        Ok(())
    }

    /// The topic, or an error naming it.
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.inner
            .topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| BrokerError::UnknownTopic(name.to_string()))
    }

    /// Creates a topic with its partitions' folders; the settings file is written last, so a
    /// crash half-way leaves a folder that the next start removes.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<()> {
        names::validate("topic", name)?;
        refuse_internal("create", name)?;
        if name.split('.').any(str::is_empty) {
            return Err(BrokerError::InvalidName {
                kind: "topic",
                name: name.to_string(),
                reason: "topic names are subjects, and this one has an empty token (a dot at \
                         either end or two in a row)"
                    .into(),
            });
        }
        self.create_internal_topic(name, config)
    }

    /// Creates a topic whose name may start with `__`, for the broker's own use.
    pub(crate) fn create_internal_topic(&self, name: &str, config: TopicConfig) -> Result<()> {
        self.check_running()?;
        names::validate("topic", name)?;
        config.validate().map_err(BrokerError::InvalidConfig)?;
        let mut topics = self.inner.topics.write();
        if topics.contains_key(name) {
            return Err(BrokerError::TopicExists(name.to_string()));
        }
        let dir = self.inner.topics_dir.join(name);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|err| BrokerError::io(&dir, err))?;
        }
        let now = self.now_ms();
        let partitions = (0..config.partitions)
            .map(|id| open_partition(name, &dir, id, &config, now).map(|(partition, _)| partition))
            .collect::<Result<Vec<_>>>()?;
        topic::write_config(&dir, &config)?;
        tracing::info!(
            topic = name,
            partitions = config.partitions,
            "topic created"
        );
        topics.insert(
            name.to_string(),
            Arc::new(Topic::new(name.into(), dir, config, partitions)),
        );
        Ok(())
    }

    /// Deletes a topic, its data, and the groups that read it.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        refuse_internal("delete", name)?;
        self.delete_internal_topic(name)?;
        self.forget_source_topic(name)
    }

    /// Deletes a topic whose name may start with `__`.
    pub(crate) fn delete_internal_topic(&self, name: &str) -> Result<()> {
        self.check_running()?;
        let topic = self.inner.topics.write().remove(name);
        let topic = topic.ok_or_else(|| BrokerError::UnknownTopic(name.to_string()))?;
        // Rename first so a crash mid-delete never leaves a half-deleted topic that loads.
        let tomb = self
            .inner
            .topics_dir
            .join(format!("{name}.deleted-{}", self.now_ms()));
        fs::rename(&topic.dir, &tomb).map_err(|err| BrokerError::io(&topic.dir, err))?;
        fs::remove_dir_all(&tomb).map_err(|err| BrokerError::io(&tomb, err))?;
        self.delete_topic_blobs(name)?;
        self.delete_groups_of_topic(name)?;
        self.inner
            .queues
            .write()
            .retain(|_, queue| queue.topic.name != name);
        tracing::info!(topic = name, "topic deleted");
        Ok(())
    }

    /// Names and partition counts of all topics, sorted by name.
    pub fn list_topics(&self) -> Vec<(String, u32)> {
        let topics = self.inner.topics.read();
        topics
            .values()
            .map(|topic| (topic.name.clone(), topic.partition_count()))
            .collect()
    }

    pub fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let topic = self.topic(name)?;
        let partitions = topic
            .partitions()
            .iter()
            .map(|partition| PartitionStats {
                partition: partition.id,
                start_offset: partition.log.start_offset(),
                end_offset: partition.log.end_offset(),
                size_bytes: partition.log.size_bytes(),
                segments: partition.log.segment_count() as u32,
            })
            .collect();
        Ok(TopicDescription {
            name: topic.name.clone(),
            config: topic.config(),
            partitions,
        })
    }

    /// Raises a topic's partition count to `total`. Partitions can only be added: removing
    /// one would lose its records and move keys.
    pub fn add_partitions(&self, name: &str, total: u32) -> Result<()> {
        self.check_running()?;
        let topic = self.topic(name)?;
        let current = topic.partition_count();
        if total <= current {
            return Err(BrokerError::InvalidConfig(format!(
                "topic `{name}` already has {}; the new total must be larger",
                crate::error::partition_count(current)
            )));
        }
        let mut config = topic.config();
        config.partitions = total;
        config.validate().map_err(BrokerError::InvalidConfig)?;
        let now = self.now_ms();
        let new = (current..total)
            .map(|id| open_partition(name, &topic.dir, id, &config, now).map(|(p, _)| p))
            .collect::<Result<Vec<_>>>()?;
        topic::write_config(&topic.dir, &config)?;
        topic.add_partitions(new, config);
        self.resize_groups_of_topic(name, total);
        tracing::info!(topic = name, from = current, to = total, "partitions added");
        Ok(())
    }

    /// Tells requests that wait (long-polls) to answer now: the server is stopping.
    pub fn begin_shutdown(&self) {
        self.inner.stopping.send_replace(true);
    }

    /// Resolves once [`Broker::begin_shutdown`] was called.
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.stopping.subscribe()
    }

    /// Stops accepting changes and makes everything durable.
    pub fn shutdown(&self) -> Result<()> {
        self.inner.shutting_down.store(true, Ordering::Release);
        self.inner.syncer.stop();
        let topics: Vec<Arc<Topic>> = self.inner.topics.read().values().cloned().collect();
        for topic in topics {
            for partition in topic.partitions() {
                partition
                    .log
                    .close()
                    .map_err(|err| BrokerError::from_log(&topic.name, partition.id, err))?;
            }
        }
        self.inner.groups.lock().store.sync()?;
        self.sync_queue_journals()?;
        tracing::info!("broker state flushed");
        Ok(())
    }
}

/// Refuses a client's `action` on one of the broker's own topics.
pub(crate) fn refuse_internal(action: &str, topic: &str) -> Result<()> {
    if !crate::subscription_log::is_internal(topic) {
        return Ok(());
    }
    let owner = topic
        .strip_prefix(crate::subscription_log::LOG_TOPIC_PREFIX)
        .map(|name| format!("; `{topic}` is the log of subscription `{name}`"))
        .unwrap_or_default();
    Err(BrokerError::InvalidName {
        kind: "topic",
        name: topic.to_string(),
        reason: format!(
            "names starting with `__` are the broker's own, so clients cannot {action} them{owner}"
        ),
    })
}

/// Name of the lock file in the data folder.
pub const LOCK_FILE: &str = ".lock";

/// Creates `data_dir` when absent and takes an exclusive lock on its lock file, held for as
/// long as the returned file is open. The operating system drops the lock when the process
/// dies, so a crash never leaves a stale lock behind.
fn lock_data_dir(data_dir: &Path) -> Result<fs::File> {
    fs::create_dir_all(data_dir).map_err(|err| BrokerError::io(data_dir, err))?;
    let path = data_dir.join(LOCK_FILE);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|err| BrokerError::io(&path, err))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(BrokerError::DataDirInUse {
            dir: data_dir.display().to_string(),
            lock: path.display().to_string(),
        }),
        Err(fs::TryLockError::Error(err)) => Err(BrokerError::io(&path, err)),
    }
}

fn load_topic(name: &str, dir: &Path, now: i64) -> Result<(Topic, Vec<PartitionRecovery>)> {
    let path = dir.join(topic::CONFIG_FILE);
    let raw = fs::read(&path).map_err(|err| BrokerError::io(&path, err))?;
    let config: TopicConfig = serde_json::from_slice(&raw).map_err(|err| {
        BrokerError::InvalidConfig(format!(
            "{} is not a valid topic config: {err}",
            path.display()
        ))
    })?;
    let mut partitions = Vec::new();
    let mut reports = Vec::new();
    for id in 0..config.partitions {
        let (partition, report) = open_partition(name, dir, id, &config, now)?;
        if report.truncated_bytes > 0 || !report.problems.is_empty() {
            tracing::warn!(
                topic = name,
                partition = id,
                truncated_bytes = report.truncated_bytes,
                problems = report.problems.len(),
                "partition recovered with repairs"
            );
        }
        reports.push(PartitionRecovery {
            topic: name.to_string(),
            partition: id,
            report,
        });
        partitions.push(partition);
    }
    Ok((
        Topic::new(name.to_string(), dir.to_path_buf(), config, partitions),
        reports,
    ))
}

fn open_partition(
    topic: &str,
    dir: &Path,
    id: u32,
    config: &TopicConfig,
    now: i64,
) -> Result<(Partition, RecoveryReport)> {
    let path = Topic::partition_dir(dir, id);
    let (log, report) = PartitionLog::open(&path, config.log_config(), now)
        .map_err(|err| BrokerError::from_log(topic, id, err))?;
    Ok((Partition::new(id, log), report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_broker_on_one_data_folder_is_refused_until_the_first_is_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (first, _) = Broker::open(BrokerOptions::new(dir.path())).expect("first open");
        let err = Broker::open(BrokerOptions::new(dir.path())).expect_err("second open");
        let text = err.to_string();
        assert!(matches!(err, BrokerError::DataDirInUse { .. }), "{text}");
        assert!(text.contains("is in use by another broker"), "{text}");
        assert!(text.contains(".lock"), "{text}");
        assert!(text.contains("--data-dir"), "{text}");
        drop(first);
        Broker::open(BrokerOptions::new(dir.path())).expect("open after the first is gone");
    }
}
