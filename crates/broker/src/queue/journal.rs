//! The durable record of a queue's state: `queues/<name>.journal` in its topic's folder.
//!
//! Each change of the state machine is one event, framed `u32 length | u32 crc32c | payload`
//! and appended before the request that caused it is answered, so it survives a crash of the
//! broker process (and, after the periodic fsync, of the machine). Replaying the events up to
//! the first torn one rebuilds which records are done, which are pending, how often each was
//! delivered, and the dedup table. On open, and whenever it has grown large, the journal is
//! rewritten as a snapshot of the live state.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{BrokerError, Result};
use crate::queue::state::{Completion, Pos, RecordMeta};

/// Journal size that triggers a rewrite as a snapshot: big enough to be rare, small enough
/// that replaying it at start-up takes well under a second.
pub const COMPACT_BYTES: u64 = 64 << 20;

/// One change of a queue's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The record at `pos` entered the queue's state.
    Admit { pos: Pos, meta: RecordMeta },
    /// The record was delivered for the `deliveries`-th time.
    Deliver { pos: Pos, deliveries: u32 },
    /// The record left the queue.
    Done { pos: Pos, how: Completion },
    /// Records of `partition` before `offset` are done (e.g. removed by retention).
    Cursor { partition: u32, offset: u64 },
    /// A dedup id was first seen at `at_ms` on the record at `pos`.
    Dedup { id: String, pos: Pos, at_ms: i64 },
    /// The queue has read `partition` up to `offset` (exclusive); records it did not admit
    /// were filtered out, or set aside on disk (delayed far ahead).
    Scanned { partition: u32, offset: u64 },
    /// A consumer gave the record back saying why (the dead letter's `sy-dlq-error`).
    Failed { pos: Pos, error: String },
}

/// What replaying a journal found.
#[derive(Debug, Default, Clone)]
pub struct Restored {
    pub cursors: BTreeMap<u32, u64>,
    /// Pending records with their metadata and deliveries so far.
    pub entries: BTreeMap<Pos, (RecordMeta, u32)>,
    pub dedup: Vec<(String, Pos, i64)>,
    /// The last reason a consumer gave for each pending record it gave back.
    pub errors: BTreeMap<Pos, String>,
    pub truncated_bytes: u64,
}

/// What concurrent callers share to make a journal durable with one fsync for many of them
/// (group commit): the file, how many bytes were written, and how many are known durable.
#[derive(Debug)]
pub struct JournalSync {
    path: PathBuf,
    file: Arc<File>,
    written: AtomicU64,
    durable: AtomicU64,
    leader: Mutex<()>,
}

impl JournalSync {
    /// Returns once the first `target` bytes written are on stable storage. The first
    /// caller syncs everything written so far; those behind it usually find their bytes
    /// already covered.
    pub fn sync_to(&self, target: u64) -> Result<()> {
        if self.durable.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        let _leader = self.leader.lock();
        if self.durable.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        let written = self.written.load(Ordering::Acquire);
        self.file
            .sync_data()
            .map_err(|err| BrokerError::io(&self.path, err))?;
        self.durable.fetch_max(written, Ordering::AcqRel);
        Ok(())
    }
}

/// A point in a journal that must be durable before an answer goes out.
#[must_use = "a durability ticket must be waited on before answering"]
#[derive(Debug)]
pub struct Durable(Option<(Arc<JournalSync>, u64)>);

impl Durable {
    /// Nothing to wait for.
    pub fn now() -> Durable {
        Durable(None)
    }

    /// Whether there is nothing to wait for.
    pub fn is_now(&self) -> bool {
        self.0.is_none()
    }

    /// Waits (blocking) until the journal is durable up to the ticket's point.
    pub fn wait(self) -> Result<()> {
        match self.0 {
            Some((sync, target)) => sync.sync_to(target),
            None => Ok(()),
        }
    }
}

/// The open journal of one queue.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Arc<File>,
    shared: Arc<JournalSync>,
    buf: Vec<u8>,
    size: u64,
    /// Whether bytes were written since the last sync.
    dirty: bool,
}

impl Journal {
    /// Opens the journal at `path`, replays it, and rewrites it compactly.
    pub fn open(path: &Path) -> Result<(Journal, Restored)> {
        let mut restored = Restored::default();
        if path.exists() {
            let bytes = fs::read(path).map_err(|err| BrokerError::io(path, err))?;
            let valid = replay(&bytes, &mut restored);
            restored.truncated_bytes = (bytes.len() - valid) as u64;
            if restored.truncated_bytes > 0 {
                tracing::warn!(
                    journal = %path.display(),
                    truncated_bytes = restored.truncated_bytes,
                    "queue journal had a torn tail; it was cut"
                );
            }
        }
        let snapshot = snapshot(&restored);
        crate::topic::write_atomically(path, &snapshot)?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|err| BrokerError::io(path, err))?;
        let file = Arc::new(file);
        let shared = sync_state(path, &file, snapshot.len() as u64);
        let journal = Journal {
            path: path.to_path_buf(),
            file,
            shared,
            buf: Vec::new(),
            size: snapshot.len() as u64,
            dirty: false,
        };
        Ok((journal, restored))
    }

    /// Queues an event; it reaches the file at the next [`Journal::flush`].
    pub fn push(&mut self, event: &Event) {
        frame(event, &mut self.buf);
    }

    /// Writes queued events to the file (one system call); after this they survive a crash
    /// of the process.
    pub fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&self.buf)
            .map_err(|err| BrokerError::io(&self.path, err))?;
        self.size += self.buf.len() as u64;
        self.shared
            .written
            .fetch_add(self.buf.len() as u64, Ordering::AcqRel);
        self.buf.clear();
        self.dirty = true;
        Ok(())
    }

    /// Forces the journal to stable storage.
    pub fn sync(&mut self) -> Result<()> {
        self.flush()?;
        if !self.dirty {
            return Ok(());
        }
        self.dirty = false;
        self.shared
            .sync_to(self.shared.written.load(Ordering::Acquire))
    }

    /// Writes the queued events and returns the point that must become durable; waiting on
    /// it outside the queue's lock lets concurrent requests share one fsync.
    pub fn flush_for_sync(&mut self) -> Result<Durable> {
        if self.buf.is_empty() {
            // This request changed nothing that needs to be durable.
            return Ok(Durable::now());
        }
        self.flush()?;
        let target = self.shared.written.load(Ordering::Acquire);
        Ok(Durable(Some((Arc::clone(&self.shared), target))))
    }

    /// Whether the journal has grown enough to be rewritten.
    pub fn wants_compaction(&self) -> bool {
        self.size > COMPACT_BYTES
    }

    /// Replaces the journal with `live`, the current state written as events.
    pub fn compact(&mut self, live: &Restored) -> Result<()> {
        self.flush()?;
        let snapshot = snapshot(live);
        crate::topic::write_atomically(&self.path, &snapshot)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|err| BrokerError::io(&self.path, err))?;
        self.file = Arc::new(file);
        self.size = snapshot.len() as u64;
        // The snapshot was synced when written; waiters on the old file are covered by it.
        self.shared = sync_state(&self.path, &self.file, self.size);
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Group-commit state for a journal file whose first `size` bytes are already durable.
fn sync_state(path: &Path, file: &Arc<File>, size: u64) -> Arc<JournalSync> {
    Arc::new(JournalSync {
        path: path.to_path_buf(),
        file: Arc::clone(file),
        written: AtomicU64::new(size),
        durable: AtomicU64::new(size),
        leader: Mutex::new(()),
    })
}

/// Appends one framed event to `buf`.
pub(crate) fn frame(event: &Event, buf: &mut Vec<u8>) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 8]);
    encode(event, buf);
    let payload_len = (buf.len() - start - 8) as u32;
    let crc = crc32c::crc32c(&buf[start + 8..]);
    buf[start..start + 4].copy_from_slice(&payload_len.to_be_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

/// The live state as a sequence of framed events.
fn snapshot(state: &Restored) -> Vec<u8> {
    let mut buf = Vec::new();
    for (partition, offset) in &state.cursors {
        frame(
            &Event::Cursor {
                partition: *partition,
                offset: *offset,
            },
            &mut buf,
        );
    }
    for (pos, (meta, deliveries)) in &state.entries {
        frame(
            &Event::Admit {
                pos: *pos,
                meta: *meta,
            },
            &mut buf,
        );
        if *deliveries > 0 {
            frame(
                &Event::Deliver {
                    pos: *pos,
                    deliveries: *deliveries,
                },
                &mut buf,
            );
        }
    }
    for (pos, error) in &state.errors {
        frame(
            &Event::Failed {
                pos: *pos,
                error: error.clone(),
            },
            &mut buf,
        );
    }
    for (id, pos, at_ms) in &state.dedup {
        frame(
            &Event::Dedup {
                id: id.clone(),
                pos: *pos,
                at_ms: *at_ms,
            },
            &mut buf,
        );
    }
    buf
}

/// Applies every whole event of `bytes` to `restored`; returns the length that was valid.
fn replay(bytes: &[u8], restored: &mut Restored) -> usize {
    let (events, valid) = read_frames(bytes);
    for event in events {
        apply(restored, event);
    }
    valid
}

/// Decodes framed events up to the first torn or corrupt one; returns them and the valid
/// length.
pub(crate) fn read_frames(bytes: &[u8]) -> (Vec<Event>, usize) {
    let mut events = Vec::new();
    let mut pos = 0;
    while let Some(head) = bytes.get(pos..pos + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let Some(payload) = bytes.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let Some(event) = decode(payload) else { break };
        events.push(event);
        pos += 8 + len;
    }
    (events, pos)
}

fn apply(restored: &mut Restored, event: Event) {
    match event {
        Event::Admit { pos, meta } => {
            let cursor = restored.cursors.entry(pos.0).or_default();
            if pos.1 >= *cursor {
                *cursor = pos.1 + 1;
            }
            restored.entries.entry(pos).or_insert((meta, 0));
        }
        Event::Deliver { pos, deliveries } => {
            if let Some(entry) = restored.entries.get_mut(&pos) {
                entry.1 = entry.1.max(deliveries);
            }
        }
        Event::Done { pos, .. } => {
            restored.entries.remove(&pos);
            restored.errors.remove(&pos);
        }
        Event::Cursor { partition, offset } => {
            let cursor = restored.cursors.entry(partition).or_default();
            *cursor = (*cursor).max(offset);
            restored
                .entries
                .retain(|pos, _| pos.0 != partition || pos.1 >= offset);
            restored
                .errors
                .retain(|pos, _| pos.0 != partition || pos.1 >= offset);
        }
        Event::Failed { pos, error } => {
            if restored.entries.contains_key(&pos) {
                restored.errors.insert(pos, error);
            }
        }
        Event::Dedup { id, pos, at_ms } => restored.dedup.push((id, pos, at_ms)),
        Event::Scanned { partition, offset } => {
            let cursor = restored.cursors.entry(partition).or_default();
            *cursor = (*cursor).max(offset);
        }
    }
}

const ADMIT: u8 = 1;
const DELIVER: u8 = 2;
const DONE: u8 = 3;
const CURSOR: u8 = 4;
const DEDUP: u8 = 5;
const SCANNED: u8 = 6;
const FAILED: u8 = 7;

fn put_pos(buf: &mut Vec<u8>, pos: Pos) {
    buf.extend_from_slice(&pos.0.to_be_bytes());
    buf.extend_from_slice(&pos.1.to_be_bytes());
}

fn encode(event: &Event, buf: &mut Vec<u8>) {
    match event {
        Event::Admit { pos, meta } => {
            buf.push(ADMIT);
            put_pos(buf, *pos);
            buf.extend_from_slice(&meta.timestamp.to_be_bytes());
            buf.extend_from_slice(&meta.size.to_be_bytes());
            buf.extend_from_slice(&meta.key_hash.unwrap_or(0).to_be_bytes());
            buf.push(u8::from(meta.key_hash.is_some()));
            buf.push(meta.priority);
            buf.extend_from_slice(&meta.due_ms.to_be_bytes());
            buf.extend_from_slice(&meta.expires_ms.unwrap_or(0).to_be_bytes());
            buf.push(u8::from(meta.expires_ms.is_some()));
        }
        Event::Deliver { pos, deliveries } => {
            buf.push(DELIVER);
            put_pos(buf, *pos);
            buf.extend_from_slice(&deliveries.to_be_bytes());
        }
        Event::Done { pos, how } => {
            buf.push(DONE);
            put_pos(buf, *pos);
            buf.push(match how {
                Completion::Acked => 0,
                Completion::DeadLettered => 1,
                Completion::Expired => 2,
                Completion::Dropped => 3,
            });
        }
        Event::Cursor { partition, offset } => {
            buf.push(CURSOR);
            put_pos(buf, (*partition, *offset));
        }
        Event::Scanned { partition, offset } => {
            buf.push(SCANNED);
            put_pos(buf, (*partition, *offset));
        }
        Event::Failed { pos, error } => {
            buf.push(FAILED);
            put_pos(buf, *pos);
            buf.extend_from_slice(error.as_bytes());
        }
        Event::Dedup { id, pos, at_ms } => {
            buf.push(DEDUP);
            put_pos(buf, *pos);
            buf.extend_from_slice(&at_ms.to_be_bytes());
            buf.extend_from_slice(id.as_bytes());
        }
    }
}

/// Reads fixed-size big-endian fields off the front of a payload.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_at_checked(N)?;
        self.0 = rest;
        head.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
    fn pos(&mut self) -> Option<Pos> {
        Some((self.u32()?, self.u64()?))
    }
}

fn decode(payload: &[u8]) -> Option<Event> {
    let mut fields = Fields(payload);
    let event = match fields.u8()? {
        ADMIT => {
            let pos = fields.pos()?;
            let timestamp = fields.i64()?;
            let size = fields.u32()?;
            let key = fields.u64()?;
            let has_key = fields.u8()? == 1;
            let priority = fields.u8()?;
            let due_ms = fields.i64()?;
            let expires = fields.i64()?;
            let has_expiry = fields.u8()? == 1;
            let meta = RecordMeta {
                timestamp,
                size,
                key_hash: has_key.then_some(key),
                priority,
                due_ms,
                expires_ms: has_expiry.then_some(expires),
            };
            Event::Admit { pos, meta }
        }
        DELIVER => Event::Deliver {
            pos: fields.pos()?,
            deliveries: fields.u32()?,
        },
        DONE => {
            let pos = fields.pos()?;
            let how = match fields.u8()? {
                0 => Completion::Acked,
                1 => Completion::DeadLettered,
                2 => Completion::Expired,
                _ => Completion::Dropped,
            };
            Event::Done { pos, how }
        }
        CURSOR => {
            let (partition, offset) = fields.pos()?;
            Event::Cursor { partition, offset }
        }
        SCANNED => {
            let (partition, offset) = fields.pos()?;
            Event::Scanned { partition, offset }
        }
        FAILED => {
            let pos = fields.pos()?;
            let error = String::from_utf8(fields.0.to_vec()).ok()?;
            fields.0 = &[];
            Event::Failed { pos, error }
        }
        DEDUP => {
            let pos = fields.pos()?;
            let at_ms = fields.i64()?;
            let id = String::from_utf8(fields.0.to_vec()).ok()?;
            fields.0 = &[];
            Event::Dedup { id, pos, at_ms }
        }
        _ => return None,
    };
    fields.0.is_empty().then_some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> RecordMeta {
        RecordMeta {
            timestamp: 5,
            size: 9,
            key_hash: Some(77),
            priority: 2,
            due_ms: 100,
            expires_ms: None,
        }
    }

    #[test]
    fn replay_rebuilds_pending_records_and_survives_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("q.journal");
        {
            let (mut journal, restored) = Journal::open(&path).expect("open");
            assert!(restored.entries.is_empty());
            for offset in 0..3 {
                journal.push(&Event::Admit {
                    pos: (0, offset),
                    meta: meta(),
                });
            }
            journal.push(&Event::Deliver {
                pos: (0, 1),
                deliveries: 2,
            });
            journal.push(&Event::Done {
                pos: (0, 0),
                how: Completion::Acked,
            });
            journal.push(&Event::Dedup {
                id: "d1".into(),
                pos: (0, 2),
                at_ms: 9,
            });
            journal.flush().expect("flush");
        }
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(&[0, 0, 0, 40, 9, 9]).expect("torn tail");
        drop(file);
        let (_, restored) = Journal::open(&path).expect("reopen");
        assert_eq!(restored.cursors.get(&0), Some(&3));
        assert_eq!(restored.entries.len(), 2);
        assert_eq!(restored.entries.get(&(0, 1)), Some(&(meta(), 2)));
        assert_eq!(restored.dedup, vec![("d1".to_string(), (0, 2), 9)]);
        // The reopened journal is a compact snapshot that replays the same way.
        let (_, again) = Journal::open(&path).expect("third open");
        assert_eq!(again.entries, restored.entries);
    }
}
