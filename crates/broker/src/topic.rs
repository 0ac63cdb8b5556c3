//! A topic: its settings and the logs of its partitions.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use switchyard_log::PartitionLog;
use tokio::sync::Notify;

use crate::error::{BrokerError, Result};
use crate::topic_config::TopicConfig;

/// One partition: its log, a signal that fires on every append (for long-polling readers),
/// and the durable end offset (for producers waiting on an fsync).
#[derive(Debug)]
pub struct Partition {
    pub id: u32,
    pub log: PartitionLog,
    pub appended: Notify,
    /// Offset below which every record is on stable storage; updated by the sync workers.
    pub durable: tokio::sync::watch::Sender<crate::syncer::Durability>,
    /// Whether the partition is waiting in the sync workers' queue.
    pub(crate) sync_queued: std::sync::atomic::AtomicBool,
}

impl Partition {
    pub(crate) fn new(id: u32, log: PartitionLog) -> Partition {
        let offset = log.durable_offset();
        let durable = tokio::sync::watch::Sender::new(crate::syncer::Durability {
            offset,
            error: None,
        });
        Partition {
            id,
            log,
            appended: Notify::new(),
            durable,
            sync_queued: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// A topic with its partitions.
#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub dir: PathBuf,
    config: RwLock<TopicConfig>,
    partitions: RwLock<Vec<Arc<Partition>>>,
}

/// File holding a topic's settings; written last on creation, so a folder without it is an
/// interrupted creation.
pub const CONFIG_FILE: &str = "topic.json";

impl Topic {
    pub fn new(
        name: String,
        dir: PathBuf,
        config: TopicConfig,
        partitions: Vec<Partition>,
    ) -> Self {
        Topic {
            name,
            dir,
            config: RwLock::new(config),
            partitions: RwLock::new(partitions.into_iter().map(Arc::new).collect()),
        }
    }

    pub fn config(&self) -> TopicConfig {
        self.config.read().clone()
    }

    pub fn partition_count(&self) -> u32 {
        self.partitions.read().len() as u32
    }

    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().clone()
    }

    /// The partition with this id, or an error that says how many there are.
    pub fn partition(&self, id: u32) -> Result<Arc<Partition>> {
        let partitions = self.partitions.read();
        partitions
            .get(id as usize)
            .cloned()
            .ok_or_else(|| BrokerError::PartitionOutOfRange {
                topic: self.name.clone(),
                partition: id,
                partitions: partitions.len() as u32,
            })
    }

    pub(crate) fn add_partitions(&self, new: Vec<Partition>, config: TopicConfig) {
        let mut partitions = self.partitions.write();
        partitions.extend(new.into_iter().map(Arc::new));
        *self.config.write() = config;
    }

    pub fn partition_dir(dir: &Path, id: u32) -> PathBuf {
        dir.join(id.to_string())
    }
}

/// Writes a topic's settings atomically: a crash leaves the old file or the new one.
pub fn write_config(dir: &Path, config: &TopicConfig) -> Result<()> {
    let json = serde_json::to_vec_pretty(config)
        .map_err(|err| BrokerError::InvalidConfig(err.to_string()))?;
    write_atomically(&dir.join(CONFIG_FILE), &json)
}

/// Writes `contents` to a temporary file, syncs it and renames it over `path`.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(|err| BrokerError::io(&tmp, err))?;
    file.write_all(contents)
        .map_err(|err| BrokerError::io(&tmp, err))?;
    file.sync_all().map_err(|err| BrokerError::io(&tmp, err))?;
    std::fs::rename(&tmp, path).map_err(|err| BrokerError::io(path, err))?;
    if let Some(parent) = path.parent() {
        if let Ok(dir) = std::fs::File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}
