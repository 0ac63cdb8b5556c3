//! One open queue: its state machine, journal, dedup table, and the reading of records from
//! the log into the state.
//!
//! Every method takes the queue's mutex for its whole step, reads or appends to the topic's
//! logs while holding it (lock order: queue, then partition), writes the resulting events to
//! the journal and flushes it before returning, so what a caller was told survives a crash.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use switchyard_log::{parse_batches, Record};
use tokio::sync::Notify;

use crate::error::{BrokerError, Result};
use crate::queue::config::QueueConfig;
use crate::queue::dedup::DedupTable;
use crate::queue::delay::DelayStore;
use crate::queue::journal::{Durable, Event, Journal, Restored};
use crate::queue::state::{Completion, Pos, QueueState, RecordMeta};
use crate::topic::Topic;

/// Header that holds a record's due time (ms since the epoch, decimal) when it was delayed.
pub const HEADER_DUE: &str = "sy-due-ms";
/// Header that holds a record's priority (decimal).
pub const HEADER_PRIORITY: &str = "sy-priority";
/// Header that holds a record's expiry time (ms since the epoch, decimal).
pub const HEADER_EXPIRES: &str = "sy-expires-ms";
/// Header that holds a record's deduplication id.
pub const HEADER_DEDUP: &str = "sy-dedup-id";

/// Most records a queue keeps in memory at once. Records past it stay in the log until
/// earlier ones are done; this bounds memory whatever the backlog.
pub const MAX_ADMITTED: usize = 100_000;
/// Bytes read from the log per partition per step when admitting records.
const READ_BYTES: usize = 1 << 20;

pub(crate) struct QueueInner {
    pub state: QueueState,
    pub journal: Journal,
    pub dedup: DedupTable,
    /// Records delayed far ahead, set aside on disk.
    pub delayed: DelayStore,
    /// Records admitted since start, kept so a delivery needs no second read of the log.
    pub cache: HashMap<Pos, Record>,
    /// Records removed by retention before they were acked.
    pub lost: u64,
}

/// An open queue.
pub struct Queue {
    pub name: String,
    pub topic: Arc<Topic>,
    pub(crate) inner: Mutex<QueueInner>,
    /// Fires when records may have become deliverable.
    pub ready: Notify,
    /// Fires when records left the queue, for producers waiting for room.
    pub room: Notify,
    /// Records that do not pass are skipped.
    filter: Option<crate::route::Filter>,
    config_path: PathBuf,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Folder of a topic's queue subscriptions.
pub fn queues_dir(topic_dir: &Path) -> PathBuf {
    topic_dir.join("queues")
}

impl Queue {
    /// Opens the queue `name` on `topic`, replaying its journal.
    pub fn open(name: &str, topic: Arc<Topic>, config: QueueConfig, now: i64) -> Result<Queue> {
        let dir = queues_dir(&topic.dir);
        std::fs::create_dir_all(&dir).map_err(|err| BrokerError::io(&dir, err))?;
        let config_path = dir.join(format!("{name}.json"));
        let (journal, restored) = Journal::open(&dir.join(format!("{name}.journal")))?;
        let seed = now as u64 ^ (std::process::id() as u64).rotate_left(32);
        let mut state = QueueState::new(config.clone(), topic.partition_count(), seed);
        for (partition, offset) in &restored.cursors {
            state.advance_cursor(*partition, *offset);
        }
        for (pos, (meta, deliveries)) in &restored.entries {
            state.admit(*pos, *meta, *deliveries, now);
        }
        for (pos, error) in &restored.errors {
            state.set_last_error(*pos, error.clone());
        }
        let mut dedup = DedupTable::default();
        for (id, pos, at) in restored.dedup {
            dedup.insert(id, pos, at);
        }
        dedup.prune(now, config.dedup_window_ms);
        let delayed = DelayStore::open(&dir.join(format!("{name}.delayed")))?;
        let inner = QueueInner {
            state,
            journal,
            dedup,
            delayed,
            cache: HashMap::new(),
            lost: 0,
        };
        let filter = config
            .filter
            .as_deref()
            .map(crate::route::Filter::parse)
            .transpose()
            .map_err(|err| BrokerError::InvalidConfig(err.to_string()))?;
        Ok(Queue {
            name: name.to_string(),
            topic,
            inner: Mutex::new(inner),
            ready: Notify::new(),
            room: Notify::new(),
            filter,
            config_path,
        })
    }

    /// Writes the journal's queued events to the page cache, which survives a crash of the
    /// process. On a topic with fsync policy `always` the returned ticket must be waited on,
    /// after the queue's lock is released, before the caller answers anyone: concurrent
    /// requests then share one fsync.
    pub(crate) fn persist(&self, inner: &mut QueueInner) -> Result<Durable> {
        if self.always() {
            inner.journal.flush_for_sync()
        } else {
            inner.journal.flush()?;
            Ok(Durable::now())
        }
    }

    /// Whether the topic's fsync policy is `always`.
    pub fn always(&self) -> bool {
        self.topic.config().fsync == switchyard_log::FsyncPolicy::Always
    }

    /// Whether the queue skips records by a filter.
    pub fn has_filter(&self) -> bool {
        self.filter.is_some()
    }

    /// Deletes the queue's settings, journal and set-aside records.
    pub(crate) fn remove_files(&self) -> Result<()> {
        let dir = self.config_path.with_extension("delayed");
        let journal = self.config_path.with_extension("journal");
        for file in [&self.config_path, &journal] {
            match std::fs::remove_file(file) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(BrokerError::io(file, err)),
            }
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(BrokerError::io(&dir, err)),
        }
    }

    /// Persists the queue's settings.
    pub fn write_config(&self, config: &QueueConfig) -> Result<()> {
        let json = serde_json::to_vec_pretty(config)
            .map_err(|err| BrokerError::InvalidConfig(err.to_string()))?;
        crate::topic::write_atomically(&self.config_path, &json)
    }

    pub fn config(&self) -> QueueConfig {
        self.inner.lock().state.config().clone()
    }

    /// Records in the log that the queue has not admitted yet, over all partitions.
    pub(crate) fn unscanned(&self, inner: &QueueInner) -> u64 {
        self.topic
            .partitions()
            .iter()
            .map(|p| p.log.end_offset().saturating_sub(inner.state.cursor(p.id)))
            .sum()
    }

    /// Admits records from the log until `wanted` are ready or nothing more can be admitted.
    pub(crate) fn fill(&self, inner: &mut QueueInner, wanted: usize, now: i64) -> Result<()> {
        let partitions = self.topic.partitions();
        inner.state.grow_partitions(partitions.len() as u32);
        // Highest partition first: with priorities, partition p holds priority p.
        for partition in partitions.iter().rev() {
            loop {
                if inner.state.ready_len() >= wanted || inner.state.len() >= MAX_ADMITTED {
                    return Ok(());
                }
                let cursor = inner.state.cursor(partition.id);
                if cursor >= partition.log.end_offset() {
                    break;
                }
                let read = match partition.log.read(cursor, READ_BYTES) {
                    Ok(read) => read,
                    Err(switchyard_log::LogError::OffsetOutOfRange { log_start, .. })
                        if cursor < log_start =>
                    {
                        self.lose_before(inner, partition.id, log_start, now);
                        continue;
                    }
                    Err(err) => {
                        return Err(BrokerError::from_log(&self.topic.name, partition.id, err))
                    }
                };
                let batches = parse_batches(&read.batches).map_err(|err| {
                    BrokerError::from_log(&self.topic.name, partition.id, err.into())
                })?;
                let mut set_aside = false;
                for record in batches.iter().flat_map(|batch| batch.records()) {
                    if record.offset < cursor {
                        continue;
                    }
                    let pos = (partition.id, record.offset);
                    if self
                        .filter
                        .as_ref()
                        .is_some_and(|filter| !filter.matches(&record))
                    {
                        inner.state.advance_cursor(pos.0, pos.1 + 1);
                        set_aside = true;
                        continue;
                    }
                    let meta = meta_of(&record);
                    if DelayStore::wants(meta.due_ms, now) {
                        inner.delayed.add(pos, meta)?;
                        inner.state.advance_cursor(pos.0, pos.1 + 1);
                        set_aside = true;
                        continue;
                    }
                    inner.journal.push(&Event::Admit { pos, meta });
                    inner.state.admit(pos, meta, 0, now);
                    remember_dedup_id(inner, &record, pos);
                    inner.cache.insert(pos, record);
                }
                if set_aside {
                    let offset = inner.state.cursor(partition.id);
                    inner.journal.push(&Event::Scanned {
                        partition: partition.id,
                        offset,
                    });
                }
            }
        }
        Ok(())
    }

    /// Admits the far-delayed records whose time has come near. Their bucket files are
    /// deleted only once the journal holding them is on disk.
    pub(crate) fn load_delayed(&self, inner: &mut QueueInner, now: i64) -> Result<()> {
        let due = inner.delayed.take_due(now)?;
        if due.is_empty() {
            return Ok(());
        }
        for (_, records) in &due {
            for (pos, meta) in records {
                inner.journal.push(&Event::Admit {
                    pos: *pos,
                    meta: *meta,
                });
                inner.state.admit(*pos, *meta, 0, now);
            }
        }
        inner.journal.sync()?;
        for (start, _) in due {
            inner.delayed.remove(start)?;
        }
        Ok(())
    }

    /// Lowest offset of `partition` the queue still needs, in memory or set aside.
    pub(crate) fn floor(&self, inner: &QueueInner, partition: u32) -> u64 {
        let in_memory = inner.state.floor(partition);
        inner
            .delayed
            .floor(partition)
            .map_or(in_memory, |aside| aside.min(in_memory))
    }

    /// Records before `start` were removed by retention: what was pending there is lost.
    pub(crate) fn lose_before(&self, inner: &mut QueueInner, partition: u32, start: u64, now: i64) {
        let never_admitted = start.saturating_sub(inner.state.cursor(partition));
        let pending = inner.state.pending_below(partition, start);
        if never_admitted == 0 && pending.is_empty() {
            return;
        }
        for pos in &pending {
            inner.state.complete(*pos, Completion::Dropped, now);
            inner.cache.remove(pos);
        }
        let lost = never_admitted + pending.len() as u64;
        inner.state.advance_cursor(partition, start);
        inner.journal.push(&Event::Cursor {
            partition,
            offset: start,
        });
        inner.lost += lost;
        tracing::warn!(
            queue = %self.name,
            partition,
            lost,
            "retention removed records this queue had not acked"
        );
    }

    /// The records at `positions`, from the cache or else from the log.
    /// `None` where the log no longer holds the record.
    pub(crate) fn records(
        &self,
        inner: &mut QueueInner,
        positions: &[Pos],
    ) -> Result<Vec<Option<Record>>> {
        let mut found: HashMap<Pos, Record> = HashMap::new();
        let mut missing: Vec<Pos> = Vec::new();
        for pos in positions {
            match inner.cache.get(pos) {
                Some(record) => {
                    found.insert(*pos, record.clone());
                }
                None => missing.push(*pos),
            }
        }
        missing.sort_unstable();
        let mut index = 0;
        while index < missing.len() {
            let (partition, offset) = missing[index];
            let log = &self.topic.partition(partition)?.log;
            let read = log
                .read(offset, READ_BYTES)
                .map_err(|err| BrokerError::from_log(&self.topic.name, partition, err))?;
            let batches = parse_batches(&read.batches)
                .map_err(|err| BrokerError::from_log(&self.topic.name, partition, err.into()))?;
            let before = index;
            for record in batches.iter().flat_map(|batch| batch.records()) {
                while index < missing.len()
                    && missing[index].0 == partition
                    && missing[index].1 < record.offset
                {
                    index += 1;
                }
                if index < missing.len() && missing[index] == (partition, record.offset) {
                    found.insert(missing[index], record);
                    index += 1;
                }
            }
            if index == before {
                // The record is not in the log any more: skip it rather than loop.
                index += 1;
            }
        }
        Ok(positions.iter().map(|pos| found.remove(pos)).collect())
    }

    /// The live state as journal events, for compaction.
    pub(crate) fn live(&self, inner: &QueueInner) -> Restored {
        let mut restored = Restored::default();
        for partition in 0..inner.state.partitions() {
            restored
                .cursors
                .insert(partition, inner.state.cursor(partition));
        }
        restored.entries = inner.state.snapshot_entries();
        restored.errors = inner.state.snapshot_errors();
        restored.dedup = inner.dedup.entries();
        restored
    }
}

/// Registers the dedup id a record carries, if the table does not know it: a send that
/// was stored but whose journal entry a crash cut off is still deduplicated.
fn remember_dedup_id(inner: &mut QueueInner, record: &Record, pos: Pos) {
    let id = record.headers.iter().find(|(name, _)| name == HEADER_DEDUP);
    let Some(id) = id.and_then(|(_, value)| std::str::from_utf8(value).ok()) else {
        return;
    };
    if !inner.dedup.contains(id) {
        inner.dedup.insert(id.to_string(), pos, record.timestamp);
        inner.journal.push(&Event::Dedup {
            id: id.to_string(),
            pos,
            at_ms: record.timestamp,
        });
    }
}

/// The queue metadata of a record, from its headers.
pub fn meta_of(record: &Record) -> RecordMeta {
    let header = |name: &str| {
        record
            .headers
            .iter()
            .find(|(header, _)| header == name)
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
            .and_then(|text| text.parse::<i64>().ok())
    };
    RecordMeta {
        timestamp: record.timestamp,
        size: record.value.as_ref().map_or(0, Bytes::len) as u32,
        key_hash: record.key.as_deref().map(fnv1a),
        priority: header(HEADER_PRIORITY).map_or(0, |p| p.clamp(0, 255) as u8),
        due_ms: header(HEADER_DUE).unwrap_or(0),
        expires_ms: header(HEADER_EXPIRES),
    }
}

/// FNV-1a: a stable 64-bit hash of a key, the same across restarts and builds.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
