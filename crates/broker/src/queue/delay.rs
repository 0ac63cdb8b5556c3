//! Records delayed far into the future, set aside on disk so that millions of them cost no
//! memory.
//!
//! When a queue reads a record from the log whose due time is more than [`HORIZON_MS`]
//! away, it does not keep it in its state: it appends the record's position and metadata to
//! a bucket file, one per [`BUCKET_MS`] of due time, in `queues/<name>.delayed/`. Only a
//! small index (per bucket: how many records, and the lowest offset per partition, which
//! retention must keep) stays in memory. When a bucket's start comes within the horizon, its
//! file is read back and its records are admitted to the state as waiting records; the file
//! is deleted once the journal that now holds them is on disk.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{BrokerError, Result};
use crate::queue::journal::{frame, read_frames, Event};
use crate::queue::state::{Pos, RecordMeta};

/// Records due further ahead than this are set aside on disk: one minute keeps the set of
/// records in memory to what is due soon, while a bucket is loaded well before it is due.
pub const HORIZON_MS: i64 = 60_000;
/// Width of one bucket file in due time.
pub const BUCKET_MS: i64 = 60_000;

/// The records of one bucket file, and the bucket's start.
pub type DueBucket = (i64, Vec<(Pos, RecordMeta)>);

#[derive(Debug, Default, Clone)]
struct Bucket {
    count: u64,
    lowest: BTreeMap<u32, u64>,
}

/// The on-disk store of far-delayed records of one queue.
#[derive(Debug)]
pub struct DelayStore {
    dir: PathBuf,
    buckets: BTreeMap<i64, Bucket>,
    /// Whether records were set aside since the last sync.
    dirty: bool,
}

impl DelayStore {
    /// Opens the store in `dir`, indexing the bucket files already there.
    pub fn open(dir: &Path) -> Result<DelayStore> {
        fs::create_dir_all(dir).map_err(|err| BrokerError::io(dir, err))?;
        let mut store = DelayStore {
            dir: dir.to_path_buf(),
            buckets: BTreeMap::new(),
            dirty: false,
        };
        for entry in fs::read_dir(dir).map_err(|err| BrokerError::io(dir, err))? {
            let entry = entry.map_err(|err| BrokerError::io(dir, err))?;
            let name = entry.file_name();
            let Some(start) = name.to_str().and_then(|n| n.strip_suffix(".spill")) else {
                continue;
            };
            let Ok(start) = start.parse::<i64>() else {
                continue;
            };
            for (pos, _) in read_bucket(&entry.path())? {
                store.note(start, pos);
            }
        }
        Ok(store)
    }

    /// Whether a record due at `due_ms` should be set aside rather than kept in memory.
    pub fn wants(due_ms: i64, now: i64) -> bool {
        due_ms > now.saturating_add(HORIZON_MS)
    }

    /// Sets a record aside; it is on disk (in the page cache) when this returns.
    pub fn add(&mut self, pos: Pos, meta: RecordMeta) -> Result<()> {
        let start = meta.due_ms.div_euclid(BUCKET_MS) * BUCKET_MS;
        let path = self.bucket_path(start);
        let mut buf = Vec::new();
        frame(&Event::Admit { pos, meta }, &mut buf);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|err| BrokerError::io(&path, err))?;
        file.write_all(&buf)
            .map_err(|err| BrokerError::io(&path, err))?;
        self.note(start, pos);
        self.dirty = true;
        Ok(())
    }

    /// Reads and forgets the buckets that start within the horizon of `now`. The caller
    /// admits the records, makes its journal durable, then calls [`DelayStore::remove`].
    pub fn take_due(&mut self, now: i64) -> Result<Vec<DueBucket>> {
        let due: Vec<i64> = self
            .buckets
            .range(..=now.saturating_add(HORIZON_MS))
            .map(|(start, _)| *start)
            .collect();
        let mut taken = Vec::new();
        for start in due {
            taken.push((start, read_bucket(&self.bucket_path(start))?));
        }
        Ok(taken)
    }

    /// Deletes a bucket whose records are now in the journal.
    pub fn remove(&mut self, start: i64) -> Result<()> {
        self.buckets.remove(&start);
        let path = self.bucket_path(start);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(BrokerError::io(&path, err)),
        }
    }

    /// Records set aside.
    pub fn len(&self) -> u64 {
        self.buckets.values().map(|bucket| bucket.count).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Lowest offset of `partition` that is set aside here.
    pub fn floor(&self, partition: u32) -> Option<u64> {
        self.buckets
            .values()
            .filter_map(|bucket| bucket.lowest.get(&partition))
            .min()
            .copied()
    }

    /// When the next bucket must be loaded.
    pub fn next_load(&self) -> Option<i64> {
        self.buckets.keys().next().map(|start| start - HORIZON_MS)
    }

    /// Forces the bucket files to stable storage.
    pub fn sync(&mut self) -> Result<()> {
        if !std::mem::take(&mut self.dirty) {
            return Ok(());
        }
        for start in self.buckets.keys() {
            let path = self.bucket_path(*start);
            if let Ok(file) = OpenOptions::new().append(true).open(&path) {
                file.sync_data()
                    .map_err(|err| BrokerError::io(&path, err))?;
            }
        }
        Ok(())
    }

    fn note(&mut self, start: i64, pos: Pos) {
        let bucket = self.buckets.entry(start).or_default();
        bucket.count += 1;
        let lowest = bucket.lowest.entry(pos.0).or_insert(pos.1);
        *lowest = (*lowest).min(pos.1);
    }

    fn bucket_path(&self, start: i64) -> PathBuf {
        self.dir.join(format!("{start}.spill"))
    }
}

fn read_bucket(path: &Path) -> Result<Vec<(Pos, RecordMeta)>> {
    let bytes = fs::read(path).map_err(|err| BrokerError::io(path, err))?;
    let (events, _) = read_frames(&bytes);
    Ok(events
        .into_iter()
        .filter_map(|event| match event {
            Event::Admit { pos, meta } => Some((pos, meta)),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(due_ms: i64) -> RecordMeta {
        RecordMeta {
            timestamp: 0,
            size: 1,
            key_hash: None,
            priority: 0,
            due_ms,
            expires_ms: None,
        }
    }

    #[test]
    fn far_records_wait_on_disk_until_their_bucket_is_near() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = DelayStore::open(dir.path()).expect("open");
        assert!(DelayStore::wants(10 * BUCKET_MS, 0));
        store.add((0, 5), meta(10 * BUCKET_MS + 1)).expect("add");
        store.add((0, 3), meta(20 * BUCKET_MS)).expect("add");
        assert_eq!(store.len(), 2);
        assert_eq!(store.floor(0), Some(3));
        assert!(store.take_due(0).expect("take").is_empty());
        // The index survives a reopen.
        let mut store = DelayStore::open(dir.path()).expect("reopen");
        let due = store.take_due(10 * BUCKET_MS - HORIZON_MS).expect("take");
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1[0].0, (0, 5));
        store.remove(due[0].0).expect("remove");
        assert_eq!(store.len(), 1);
        assert_eq!(store.floor(0), Some(3));
    }
}
