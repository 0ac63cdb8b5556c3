//! Sparse indexes of a segment: offset → file position, and timestamp → offset.
//!
//! An entry is added every `index_interval_bytes` of data, so a lookup lands at most that many
//! bytes before the wanted batch and a read scans only those. The indexes of the active segment
//! live in memory and are written out when the segment is sealed; they are always rebuilt from
//! the data on recovery, so a torn index can never point past valid data.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{LogError, Result};

/// Bytes of one offset index entry: relative offset (u32) and position (u32), big-endian.
pub const OFFSET_ENTRY_LEN: usize = 8;
/// Bytes of one time index entry: timestamp (i64) and relative offset (u32), big-endian.
pub const TIME_ENTRY_LEN: usize = 12;

/// One entry of the offset index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// One entry of the time index: the largest timestamp seen up to the batch at
/// `relative_offset` (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

/// Both indexes of one segment.
#[derive(Debug, Default, Clone)]
pub struct SegmentIndex {
    offsets: Vec<OffsetEntry>,
    times: Vec<TimeEntry>,
    bytes_since_entry: u64,
}

impl SegmentIndex {
    /// Notes a batch appended at `position`; adds entries when the interval has passed.
    pub fn on_append(
        &mut self,
        relative_offset: u32,
        position: u32,
        batch_len: u64,
        max_timestamp_so_far: i64,
        interval_bytes: u64,
    ) {
        if self.offsets.is_empty() || self.bytes_since_entry >= interval_bytes {
            self.offsets.push(OffsetEntry {
                relative_offset,
                position,
            });
            let newer = self
                .times
                .last()
                .is_none_or(|last| max_timestamp_so_far > last.timestamp);
            if newer {
                self.times.push(TimeEntry {
                    timestamp: max_timestamp_so_far,
                    relative_offset,
                });
            }
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += batch_len;
    }

    /// Position of the last indexed batch whose relative offset is `<= relative_offset`.
    pub fn lookup_offset(&self, relative_offset: u32) -> u32 {
        let index = self
            .offsets
            .partition_point(|entry| entry.relative_offset <= relative_offset);
        index
            .checked_sub(1)
            .map_or(0, |found| self.offsets[found].position)
    }

    /// Relative offset from which to scan for the first record with timestamp >= `timestamp`:
    /// the last entry whose running maximum is still below it.
    pub fn lookup_time(&self, timestamp: i64) -> u32 {
        let index = self
            .times
            .partition_point(|entry| entry.timestamp < timestamp);
        index
            .checked_sub(1)
            .map_or(0, |found| self.times[found].relative_offset)
    }

    /// Writes both indexes next to the segment, replacing older files.
    pub fn write(&self, offset_path: &Path, time_path: &Path) -> Result<()> {
        let mut offsets = Vec::with_capacity(self.offsets.len() * OFFSET_ENTRY_LEN);
        for entry in &self.offsets {
            offsets.extend_from_slice(&entry.relative_offset.to_be_bytes());
            offsets.extend_from_slice(&entry.position.to_be_bytes());
        }
        let mut times = Vec::with_capacity(self.times.len() * TIME_ENTRY_LEN);
        for entry in &self.times {
            times.extend_from_slice(&entry.timestamp.to_be_bytes());
            times.extend_from_slice(&entry.relative_offset.to_be_bytes());
        }
        write_synced(offset_path, &offsets)?;
        write_synced(time_path, &times)
    }

    /// Loads the indexes of a sealed segment. `None` when a file is missing or fails the
    /// sanity checks (size, monotonic entries, positions inside the data), so the caller
    /// rebuilds from the data instead.
    pub fn load(offset_path: &Path, time_path: &Path, data_len: u64) -> Option<SegmentIndex> {
        let offsets_raw = fs::read(offset_path).ok()?;
        let times_raw = fs::read(time_path).ok()?;
        if offsets_raw.len() % OFFSET_ENTRY_LEN != 0 || times_raw.len() % TIME_ENTRY_LEN != 0 {
            return None;
        }
        let offsets: Vec<OffsetEntry> = offsets_raw
            .chunks_exact(OFFSET_ENTRY_LEN)
            .map(|chunk| OffsetEntry {
                relative_offset: u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
                position: u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]),
            })
            .collect();
        let times: Vec<TimeEntry> = times_raw
            .chunks_exact(TIME_ENTRY_LEN)
            .map(|chunk| {
                let mut ts = [0u8; 8];
                ts.copy_from_slice(&chunk[..8]);
                TimeEntry {
                    timestamp: i64::from_be_bytes(ts),
                    relative_offset: u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]),
                }
            })
            .collect();
        let offsets_ok = offsets.windows(2).all(|pair| {
            pair[0].relative_offset < pair[1].relative_offset && pair[0].position < pair[1].position
        }) && offsets
            .iter()
            .all(|entry| u64::from(entry.position) < data_len.max(1));
        let times_ok = times.windows(2).all(|pair| {
            pair[0].timestamp < pair[1].timestamp
                && pair[0].relative_offset < pair[1].relative_offset
        });
        if !(offsets_ok && times_ok) || (offsets.is_empty() && data_len > 0) {
            return None;
        }
        Some(SegmentIndex {
            offsets,
            times,
            bytes_since_entry: 0,
        })
    }

    pub fn entries(&self) -> usize {
        self.offsets.len()
    }
}

fn write_synced(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp).map_err(|err| LogError::io(&tmp, err))?;
    file.write_all(contents)
        .map_err(|err| LogError::io(&tmp, err))?;
    file.sync_data().map_err(|err| LogError::io(&tmp, err))?;
    fs::rename(&tmp, path).map_err(|err| LogError::io(path, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built() -> SegmentIndex {
        let mut index = SegmentIndex::default();
        // Ten batches of 100 bytes and 10 records each, timestamps rising by 10 per batch.
        for batch in 0..10u32 {
            index.on_append(batch * 10, batch * 100, 100, i64::from(batch) * 10 + 9, 250);
        }
        index
    }

    #[test]
    fn offset_lookup_lands_at_or_before_the_batch() {
        let index = built();
        assert_eq!(index.lookup_offset(0), 0);
        assert_eq!(index.lookup_offset(35), 300);
        assert_eq!(index.lookup_offset(99), 900);
    }

    #[test]
    fn time_lookup_lands_before_the_first_newer_record() {
        let index = built();
        assert_eq!(index.lookup_time(0), 0);
        let start = index.lookup_time(55);
        assert!(
            start <= 50,
            "scan must start at or before offset 50, got {start}"
        );
    }

    #[test]
    fn persisted_index_loads_back_and_damage_is_detected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (offsets, times) = (dir.path().join("a.index"), dir.path().join("a.timeindex"));
        let index = built();
        index.write(&offsets, &times).expect("write");
        let loaded = SegmentIndex::load(&offsets, &times, 1000).expect("loads");
        assert_eq!(loaded.lookup_offset(35), 300);
        fs::write(&offsets, [0u8; 5]).expect("garble");
        assert!(SegmentIndex::load(&offsets, &times, 1000).is_none());
    }
}
