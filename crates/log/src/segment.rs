//! One segment: a data file of batches plus its sparse indexes.
//!
//! A segment is named by the offset of its first record (`00000000000000000000.log`). Only the
//! last segment of a partition is written to; older ones are sealed and never change until
//! retention deletes them whole.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::batch::{self, BatchHeader, HEADER_LEN};
use crate::error::{LogError, Result};
use crate::index::SegmentIndex;

/// How much of a segment is read at once during a scan: large enough that a scan of a
/// gigabyte segment costs a few hundred reads, small enough to stay out of the way in memory.
const SCAN_CHUNK: usize = 4 << 20;

/// File name stem of a segment: its base offset, zero-padded so names sort by offset.
pub fn file_stem(base_offset: u64) -> String {
    format!("{base_offset:020}")
}

/// A segment of a partition log.
#[derive(Debug)]
pub struct Segment {
    pub base_offset: u64,
    /// Offset the next appended record would get.
    pub next_offset: u64,
    /// Bytes of valid data.
    pub size: u64,
    /// Largest record timestamp in the segment, `i64::MIN` when empty.
    pub max_timestamp: i64,
    /// Wall-clock time (ms) the segment was opened for writing, for rolling by age.
    pub created_ms: i64,
    pub index: SegmentIndex,
    pub path: PathBuf,
    pub file: Arc<File>,
}

/// What a scan found where it stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum ScanEnd {
    /// The data ended exactly at a batch boundary.
    Clean,
    /// The bytes from `position` on are not a whole valid batch.
    Invalid { position: u64, reason: String },
}

impl Segment {
    pub fn data_path(dir: &Path, base_offset: u64) -> PathBuf {
        dir.join(format!("{}.log", file_stem(base_offset)))
    }

    fn index_paths(&self) -> (PathBuf, PathBuf) {
        (
            self.path.with_extension("index"),
            self.path.with_extension("timeindex"),
        )
    }

    /// Creates a new, empty segment.
    pub fn create(dir: &Path, base_offset: u64, now_ms: i64) -> Result<Segment> {
        let path = Self::data_path(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|err| LogError::io(&path, err))?;
        Ok(Segment {
            base_offset,
            next_offset: base_offset,
            size: 0,
            max_timestamp: i64::MIN,
            created_ms: now_ms,
            index: SegmentIndex::default(),
            path,
            file: Arc::new(file),
        })
    }

    /// Opens an existing segment and rebuilds its state by scanning every batch and checking
    /// its checksum. Returns the segment (valid up to the first bad byte) and how the scan
    /// ended; the caller decides whether to truncate.
    pub fn recover(
        path: &Path,
        base_offset: u64,
        interval_bytes: u64,
        now_ms: i64,
    ) -> Result<(Segment, ScanEnd)> {
        let file = open_rw(path)?;
        let mut segment = Segment {
            base_offset,
            next_offset: base_offset,
            size: 0,
            max_timestamp: i64::MIN,
            created_ms: now_ms,
            index: SegmentIndex::default(),
            path: path.to_path_buf(),
            file: Arc::new(file),
        };
        let end = segment.scan_from(0, true, interval_bytes, true)?;
        if segment.size > 0 && segment.max_timestamp != i64::MIN {
            segment.created_ms = segment.created_ms.min(segment.max_timestamp);
        }
        Ok((segment, end))
    }

    /// Opens a sealed segment whose records end at `next_offset`, trusting its index files
    /// when they pass sanity checks and rebuilding them from the data otherwise.
    pub fn open_sealed(path: &Path, base_offset: u64, interval_bytes: u64) -> Result<Segment> {
        let file = open_rw(path)?;
        let data_len = file
            .metadata()
            .map_err(|err| LogError::io(path, err))?
            .len();
        let mut segment = Segment {
            base_offset,
            next_offset: base_offset,
            size: 0,
            max_timestamp: i64::MIN,
            created_ms: 0,
            index: SegmentIndex::default(),
            path: path.to_path_buf(),
            file: Arc::new(file),
        };
        let (offset_path, time_path) = segment.index_paths();
        match SegmentIndex::load(&offset_path, &time_path, data_len) {
            Some(index) => {
                // The index gets us near the end; read headers from its last entry onward to
                // learn the last offset and timestamp without reading the whole segment.
                let last = index.lookup_offset(u32::MAX);
                segment.size = u64::from(last);
                segment.index = index;
                segment.scan_from(u64::from(last), false, interval_bytes, false)?;
                segment.next_offset = segment.next_offset.max(base_offset);
            }
            None => {
                tracing::warn!(segment = %path.display(), "index missing or damaged; rebuilding");
                segment.scan_from(0, true, interval_bytes, true)?;
                segment.write_index()?;
            }
        }
        segment.created_ms = segment.max_timestamp.max(0);
        Ok(segment)
    }

    /// Reads batches from `position` to the end of the file, updating size, next offset,
    /// max timestamp and (when `build_index`) the index. Stops at the first invalid batch.
    fn scan_from(
        &mut self,
        position: u64,
        verify_crc: bool,
        interval_bytes: u64,
        build_index: bool,
    ) -> Result<ScanEnd> {
        let file_len = self
            .file
            .metadata()
            .map_err(|err| LogError::io(&self.path, err))?
            .len();
        let mut pos = position;
        let mut buf = BytesMut::new();
        let mut buf_start = pos;
        let mut expected_base: Option<u64> = if position == 0 {
            Some(self.base_offset)
        } else {
            None
        };
        loop {
            if pos >= file_len {
                return Ok(ScanEnd::Clean);
            }
            // Make sure the whole next batch is in the buffer.
            let in_buf = (pos - buf_start) as usize;
            let need = match batch::peek_total_len(&buf[in_buf..]) {
                Some(total) => total,
                None => batch::PREFIX_LEN,
            };
            if buf.len() - in_buf < need.max(HEADER_LEN) {
                let want = need.max(SCAN_CHUNK) as u64;
                let want = want.min(file_len - pos) as usize;
                buf = read_exact_at(&self.file, &self.path, pos, want)?;
                buf_start = pos;
            }
            let in_buf = (pos - buf_start) as usize;
            let invalid = |reason: String| {
                Ok(ScanEnd::Invalid {
                    position: pos,
                    reason,
                })
            };
            let header = match BatchHeader::parse(&buf[in_buf..]) {
                Ok(header) => header,
                Err(err) => return invalid(err.to_string()),
            };
            let total = header.total_len();
            if buf.len() - in_buf < total {
                return invalid(format!(
                    "batch of {total} bytes is cut off after {} bytes",
                    buf.len() - in_buf
                ));
            }
            let bytes = &buf[in_buf..in_buf + total];
            if verify_crc {
                let computed = batch::compute_crc(bytes);
                if computed != header.crc {
                    return invalid(format!(
                        "checksum mismatch (stored {:#010x}, computed {computed:#010x})",
                        header.crc
                    ));
                }
            }
            if header.record_count == 0 {
                return invalid("batch holds no records".into());
            }
            if let Some(expected) = expected_base {
                if header.base_offset != expected {
                    return invalid(format!(
                        "batch starts at offset {} but {expected} was expected",
                        header.base_offset
                    ));
                }
            }
            expected_base = Some(header.next_offset());
            self.note_batch(&header, pos, interval_bytes, build_index);
            pos += total as u64;
        }
    }

    fn note_batch(&mut self, header: &BatchHeader, position: u64, interval: u64, index: bool) {
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        if index {
            let relative = (header.base_offset - self.base_offset) as u32;
            self.index.on_append(
                relative,
                position as u32,
                header.total_len() as u64,
                self.max_timestamp,
                interval,
            );
        }
        self.next_offset = header.next_offset();
        self.size = position + header.total_len() as u64;
    }

    /// Cuts the data file back to `size` bytes.
    pub fn truncate(&mut self, size: u64) -> Result<()> {
        self.file
            .set_len(size)
            .map_err(|err| LogError::io(&self.path, err))?;
        self.file
            .sync_all()
            .map_err(|err| LogError::io(&self.path, err))?;
        self.size = size;
        Ok(())
    }

    /// Appends a batch whose base offset is already stamped to `self.next_offset`.
    pub fn append(&mut self, batch: &[u8], header: &BatchHeader, interval: u64) -> Result<()> {
        self.file
            .write_all_at(batch, self.size)
            .map_err(|err| LogError::io(&self.path, err))?;
        let position = self.size;
        self.note_batch(header, position, interval, true);
        Ok(())
    }

    /// Writes the indexes to disk; done when the segment is sealed or the log closes.
    pub fn write_index(&self) -> Result<()> {
        let (offset_path, time_path) = self.index_paths();
        self.index.write(&offset_path, &time_path)
    }

    /// Deletes the segment's files.
    pub fn delete(&self) -> Result<()> {
        let (offset_path, time_path) = self.index_paths();
        for path in [&self.path, &offset_path, &time_path] {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(LogError::io(path, err)),
            }
        }
        Ok(())
    }
}

fn open_rw(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|err| LogError::io(path, err))
}

/// Reads `len` bytes at `position`; fewer only if the file is shorter.
pub fn read_exact_at(file: &File, path: &Path, position: u64, len: usize) -> Result<BytesMut> {
    let mut buf = BytesMut::zeroed(len);
    let mut filled = 0;
    while filled < len {
        let read = file
            .read_at(&mut buf[filled..], position + filled as u64)
            .map_err(|err| LogError::io(path, err))?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    buf.truncate(filled);
    Ok(buf)
}

/// Reads whole batches from `file` starting at `position` (a batch boundary), stopping before
/// `limit` bytes and after roughly `max_bytes`; the first batch is returned whole even when it
/// is larger than `max_bytes`, so a consumer can always make progress.
pub fn read_batches(
    file: &File,
    path: &Path,
    position: u64,
    limit: u64,
    max_bytes: usize,
) -> Result<Bytes> {
    let available = limit.saturating_sub(position) as usize;
    let mut buf = read_exact_at(
        file,
        path,
        position,
        available.min(max_bytes.max(HEADER_LEN)),
    )?;
    let first = batch::peek_total_len(&buf).unwrap_or(0);
    if first > buf.len() && first <= available {
        buf = read_exact_at(file, path, position, first)?;
    }
    // Keep only whole batches.
    let mut whole = 0;
    while let Some(total) = batch::peek_total_len(&buf[whole..]) {
        if whole + total > buf.len() {
            break;
        }
        whole += total;
    }
    buf.truncate(whole);
    Ok(buf.freeze())
}
