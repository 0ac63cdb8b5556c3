//! The log of one partition: an ordered set of segments, the last one active.
//!
//! Appends are serialised by one mutex that is held only for the write system call; reads
//! take it just long enough to find the file and position, then read without it, so slow
//! consumers never hold up producers. Durability is separate from appending: `sync` forces
//! what has been written to disk, and concurrent callers share one fsync (group commit).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::batch::{self, Batch, BatchHeader, HEADER_LEN};
use crate::config::LogConfig;
use crate::error::{LogError, Result};
use crate::segment::{self, ScanEnd, Segment};

/// What an append stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: u64,
    pub record_count: u32,
}

/// Batches read from the log, with the bounds of the log at the time of the read.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole batches; the first may start before the requested offset.
    pub batches: Bytes,
    pub log_start: u64,
    pub log_end: u64,
}

/// What recovery found when the log was opened.
#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    pub segments: usize,
    pub truncated_bytes: u64,
    pub problems: Vec<String>,
}

/// What retention removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RetentionReport {
    pub segments_removed: usize,
    pub bytes_removed: u64,
}

struct State {
    segments: BTreeMap<u64, Segment>,
    config: LogConfig,
}

impl State {
    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn start_offset(&self) -> u64 {
        self.segments
            .values()
            .next()
            .map_or(0, |segment| segment.base_offset)
    }
}

/// A partition's durable, append-only log.
pub struct PartitionLog {
    dir: PathBuf,
    state: Mutex<State>,
    sync_lock: Mutex<()>,
    end_offset: AtomicU64,
    durable_offset: AtomicU64,
    dirty: AtomicBool,
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl PartitionLog {
    /// Opens the log in `dir`, creating it when absent, and recovers its tail.
    pub fn open(dir: &Path, config: LogConfig, now_ms: i64) -> Result<(Self, RecoveryReport)> {
        config.validate().map_err(LogError::Config)?;
        fs::create_dir_all(dir).map_err(|err| LogError::io(dir, err))?;
        let bases = list_segments(dir)?;
        let mut report = RecoveryReport::default();
        let mut segments = BTreeMap::new();
        let interval = config.index_interval_bytes;
        for (position, base) in bases.iter().enumerate() {
            let path = Segment::data_path(dir, *base);
            let is_last = position + 1 == bases.len();
            let segment = if is_last {
                recover_tail(&path, *base, interval, now_ms, &mut report)?
            } else {
                Segment::open_sealed(&path, *base, interval)?
            };
            if let Some(next) = bases.get(position + 1) {
                if segment.next_offset != *next {
                    report.problems.push(format!(
                        "segment {} ends at offset {} but the next segment starts at {next}; \
                         offsets in between cannot be served",
                        path.display(),
                        segment.next_offset
                    ));
                }
            }
            segments.insert(*base, segment);
        }
        if segments.is_empty() {
            segments.insert(0, Segment::create(dir, 0, now_ms)?);
        }
        report.segments = segments.len();
        for problem in &report.problems {
            tracing::error!(log = %dir.display(), "{problem}");
        }
        let state = State { segments, config };
        let end = state.active().next_offset;
        let log = PartitionLog {
            dir: dir.to_path_buf(),
            state: Mutex::new(state),
            sync_lock: Mutex::new(()),
            end_offset: AtomicU64::new(end),
            durable_offset: AtomicU64::new(end),
            dirty: AtomicBool::new(false),
        };
        Ok((log, report))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Offset the next record will get.
    pub fn end_offset(&self) -> u64 {
        self.end_offset.load(Ordering::Acquire)
    }

    /// Offset of the oldest retained record.
    pub fn start_offset(&self) -> u64 {
        self.state.lock().start_offset()
    }

    /// Bytes of data in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.state
            .lock()
            .segments
            .values()
            .map(|segment| segment.size)
            .sum()
    }

    pub fn segment_count(&self) -> usize {
        self.state.lock().segments.len()
    }

    pub fn set_config(&self, config: LogConfig) -> Result<()> {
        config.validate().map_err(LogError::Config)?;
        self.state.lock().config = config;
        Ok(())
    }

    /// Validates an encoded batch, gives it the next offsets and appends it.
    pub fn append(&self, batch: &Bytes, now_ms: i64) -> Result<AppendInfo> {
        let mut state = self.state.lock();
        let parsed = Batch::parse(batch, state.config.max_record_bytes)?;
        let mut header = parsed.header;
        self.roll_if_needed(&mut state, header.total_len() as u64, now_ms)?;
        let interval = state.config.index_interval_bytes;
        let active = state.active_mut();
        header.base_offset = active.next_offset;
        let mut bytes = batch[..header.total_len()].to_vec();
        batch::stamp_base_offset(&mut bytes, header.base_offset);
        active.append(&bytes, &header, interval)?;
        let end = active.next_offset;
        self.end_offset.store(end, Ordering::Release);
        self.dirty.store(true, Ordering::Release);
        Ok(AppendInfo {
            base_offset: header.base_offset,
            record_count: header.record_count,
        })
    }

    fn roll_if_needed(&self, state: &mut State, incoming: u64, now_ms: i64) -> Result<()> {
        let config = state.config.clone();
        let active = state.active();
        let full = active.size + incoming > config.segment_bytes;
        let age = Duration::from_millis(now_ms.saturating_sub(active.created_ms).max(0) as u64);
        let old = age >= config.segment_age;
        if active.size == 0 || !(full || old) {
            return Ok(());
        }
        // Seal the active segment: its data and index are made durable once, here, so that
        // recovery only ever has to scan the newest segment.
        active
            .file
            .sync_data()
            .map_err(|err| LogError::io(&active.path, err))?;
        active.write_index()?;
        let base = active.next_offset;
        let segment = Segment::create(&self.dir, base, now_ms)?;
        state.segments.insert(base, segment);
        tracing::debug!(log = %self.dir.display(), base_offset = base, "rolled segment");
        Ok(())
    }

    /// Reads whole batches starting with the one that holds `offset`, about `max_bytes` of
    /// them. Reading at the end offset returns no batches.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<ReadResult> {
        let (file, path, mut position, limit, base, log_start, log_end) = {
            let state = self.state.lock();
            let log_start = state.start_offset();
            let log_end = state.active().next_offset;
            if offset < log_start || offset > log_end {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    log_start,
                    log_end,
                });
            }
            if offset == log_end {
                return Ok(ReadResult {
                    batches: Bytes::new(),
                    log_start,
                    log_end,
                });
            }
            let segment = find_segment(&state.segments, offset);
            let relative = (offset - segment.base_offset).min(u64::from(u32::MAX)) as u32;
            let position = u64::from(segment.index.lookup_offset(relative));
            (
                Arc::clone(&segment.file),
                segment.path.clone(),
                position,
                segment.size,
                segment.base_offset,
                log_start,
                log_end,
            )
        };

        // Skip the few batches between the index entry and the one holding `offset`.
        while position < limit {
            let head = segment::read_exact_at(&file, &path, position, HEADER_LEN)?;
            let header = BatchHeader::parse(&head)
                .map_err(|err| corrupt(&path, position, offset, err.to_string()))?;
            if header.last_offset() >= offset {
                break;
            }
            position += header.total_len() as u64;
        }
        let batches = segment::read_batches(&file, &path, position, limit, max_bytes)?;
        let batches = verify_served(batches, &path, position, offset)?;
        if batches.is_empty() {
            return Err(corrupt(
                &path,
                position,
                offset,
                format!("no readable batch holds offset {offset} (segment starting at {base})"),
            ));
        }
        Ok(ReadResult {
            batches,
            log_start,
            log_end,
        })
    }

    /// The offset of the first record with a timestamp at or after `timestamp`, or the end
    /// offset when there is none.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<u64> {
        let candidates: Vec<(Arc<fs::File>, PathBuf, u64, u64, u64)> = {
            let state = self.state.lock();
            state
                .segments
                .values()
                .filter(|segment| segment.max_timestamp >= timestamp)
                .map(|segment| {
                    let relative = segment.index.lookup_time(timestamp);
                    let position = u64::from(segment.index.lookup_offset(relative));
                    (
                        Arc::clone(&segment.file),
                        segment.path.clone(),
                        position,
                        segment.size,
                        segment.base_offset,
                    )
                })
                .collect()
        };
        for (file, path, mut position, limit, base) in candidates {
            while position < limit {
                let head = segment::read_exact_at(&file, &path, position, HEADER_LEN)?;
                let header = BatchHeader::parse(&head)
                    .map_err(|err| corrupt(&path, position, base, err.to_string()))?;
                if header.max_timestamp >= timestamp {
                    let raw = segment::read_exact_at(&file, &path, position, header.total_len())?;
                    let parsed = Batch::parse(&raw.freeze(), usize::MAX).map_err(|err| {
                        corrupt(&path, position, header.base_offset, err.to_string())
                    })?;
                    if let Some(record) = parsed.records().find(|r| r.timestamp >= timestamp) {
                        return Ok(record.offset);
                    }
                }
                position += header.total_len() as u64;
            }
        }
        Ok(self.end_offset())
    }

    /// Forces everything appended so far to stable storage. Callers that arrive while an
    /// fsync is running wait for it and then usually find their data already covered.
    pub fn sync(&self) -> Result<()> {
        let target = self.end_offset();
        if self.durable_offset.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        let _leader = self.sync_lock.lock();
        if self.durable_offset.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        let (file, path, end) = {
            let state = self.state.lock();
            let active = state.active();
            (
                Arc::clone(&active.file),
                active.path.clone(),
                active.next_offset,
            )
        };
        self.dirty.store(false, Ordering::Release);
        file.sync_data().map_err(|err| LogError::io(&path, err))?;
        self.durable_offset.fetch_max(end, Ordering::AcqRel);
        Ok(())
    }

    /// Offset up to which (exclusive) everything is known to be on stable storage.
    pub fn durable_offset(&self) -> u64 {
        self.durable_offset.load(Ordering::Acquire)
    }

    /// Whether anything was appended since the last `sync`.
    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    /// Removes whole sealed segments that are older than `max_age` (by their newest record)
    /// or that take the log over `max_bytes`. The active segment is never removed, nor any
    /// segment holding an offset at or after `keep_from` (what readers still need).
    pub fn enforce_retention(
        &self,
        now_ms: i64,
        max_age: Option<Duration>,
        max_bytes: Option<u64>,
        keep_from: u64,
    ) -> Result<RetentionReport> {
        self.enforce_retention_with(now_ms, max_age, max_bytes, keep_from, &mut |_| {})
    }

    /// As [`PartitionLog::enforce_retention`], calling `before_delete` with the data file of
    /// each segment about to go, so the caller can still read its records (the broker uses
    /// it to delete the claim-check blobs they refer to).
    pub fn enforce_retention_with(
        &self,
        now_ms: i64,
        max_age: Option<Duration>,
        max_bytes: Option<u64>,
        keep_from: u64,
        before_delete: &mut dyn FnMut(&Path),
    ) -> Result<RetentionReport> {
        let mut report = RetentionReport::default();
        let mut state = self.state.lock();
        let mut total: u64 = state.segments.values().map(|segment| segment.size).sum();
        while state.segments.len() > 1 {
            let oldest = state
                .segments
                .values()
                .next()
                .expect("more than one segment");
            let age_ms = max_age.map(|age| i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
            let too_old =
                age_ms.is_some_and(|age| oldest.max_timestamp < now_ms.saturating_sub(age));
            let too_big = max_bytes.is_some_and(|limit| total > limit);
            if !(too_old || too_big) || oldest.next_offset > keep_from {
                break;
            }
            let base = oldest.base_offset;
            let segment = state.segments.remove(&base).expect("oldest segment exists");
            before_delete(&segment.path);
            segment.delete()?;
            total -= segment.size;
            report.segments_removed += 1;
            report.bytes_removed += segment.size;
        }
        Ok(report)
    }

    /// Flushes data and the active segment's index; the log stays usable.
    pub fn close(&self) -> Result<()> {
        self.sync()?;
        let state = self.state.lock();
        state.active().write_index()
    }

    /// Removes the log's folder and everything in it.
    pub fn delete(self) -> Result<()> {
        fs::remove_dir_all(&self.dir).map_err(|err| LogError::io(&self.dir, err))
    }

    /// Writes raw bytes at the end of the active segment without validation; for tests that
    /// simulate torn writes.
    #[doc(hidden)]
    pub fn active_segment_path(&self) -> PathBuf {
        self.state.lock().active().path.clone()
    }

    #[doc(hidden)]
    pub fn write_raw_for_test(&self, bytes: &[u8]) -> Result<()> {
        let state = self.state.lock();
        let active = state.active();
        let len = active
            .file
            .metadata()
            .map_err(|err| LogError::io(&active.path, err))?
            .len();
        active
            .file
            .write_all_at(bytes, len)
            .map_err(|err| LogError::io(&active.path, err))
    }
}

fn find_segment(segments: &BTreeMap<u64, Segment>, offset: u64) -> &Segment {
    segments
        .range(..=offset)
        .next_back()
        .or_else(|| segments.iter().next())
        .map(|(_, segment)| segment)
        .expect("a log always has a segment")
}

fn corrupt(path: &Path, position: u64, offset: u64, reason: String) -> LogError {
    LogError::Corrupt {
        path: path.to_path_buf(),
        position,
        offset,
        reason,
    }
}

/// Checks the checksum of every batch about to be served. Batches before a bad one are still
/// served; a bad first batch is an error, so corruption is reported, never skipped.
fn verify_served(batches: Bytes, path: &Path, position: u64, offset: u64) -> Result<Bytes> {
    let mut good = 0;
    while good < batches.len() {
        let header = match BatchHeader::parse(&batches[good..]) {
            Ok(header) => header,
            Err(err) => return corrupt_or_prefix(batches, good, path, position, offset, err),
        };
        let end = good + header.total_len();
        let computed = batch::compute_crc(&batches[good..end]);
        if computed != header.crc {
            let err = crate::error::BatchError::Checksum {
                stored: header.crc,
                computed,
            };
            return corrupt_or_prefix(batches, good, path, position, offset, err);
        }
        good = end;
    }
    Ok(batches)
}

fn corrupt_or_prefix(
    batches: Bytes,
    good: usize,
    path: &Path,
    position: u64,
    offset: u64,
    err: crate::error::BatchError,
) -> Result<Bytes> {
    if good > 0 {
        return Ok(batches.slice(..good));
    }
    Err(corrupt(path, position, offset, err.to_string()))
}

fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).map_err(|err| LogError::io(dir, err))? {
        let entry = entry.map_err(|err| LogError::io(dir, err))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".log") {
            if let Ok(base) = stem.parse::<u64>() {
                bases.push(base);
            }
        } else if name.ends_with(".tmp") {
            // A half-written index from a crash; the real one is rebuilt or still in place.
            let _ = fs::remove_file(entry.path());
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

fn recover_tail(
    path: &Path,
    base: u64,
    interval: u64,
    now_ms: i64,
    report: &mut RecoveryReport,
) -> Result<Segment> {
    let (mut segment, end) = Segment::recover(path, base, interval, now_ms)?;
    if let ScanEnd::Invalid { position, reason } = end {
        let file_len = segment
            .file
            .metadata()
            .map_err(|err| LogError::io(path, err))?
            .len();
        let cut = file_len - position;
        segment.truncate(position)?;
        report.truncated_bytes += cut;
        tracing::warn!(
            segment = %path.display(),
            truncated_bytes = cut,
            position,
            reason = %reason,
            "recovery truncated the incomplete tail of the log"
        );
    }
    Ok(segment)
}
