//! Claim-check blobs: large payloads stored beside the log, referred to by a record header.
//!
//! A record over the claim-check threshold would bloat segments, replication of the log and
//! every fetch, so the client uploads its value as a blob and produces a small record whose
//! `sy-blob` header names it. Storage sits behind [`BlobStore`] so that a remote backend
//! (S3 through `object_store`) can replace the local folder later; only [`local`] exists.
//!
//! Life cycle: chunks land in `pending/<id>.part`; the last chunk renames it `pending/<id>`;
//! the append of a record that refers to it moves it to `<topic>/<id>`. Start-up deletes
//! pending blobs no record refers to, topic deletion and retention delete the topic's.

pub mod local;

use std::path::Path;

use bytes::Bytes;
use switchyard_log::Batch;

use crate::broker::Broker;
use crate::error::{BrokerError, Result};

/// Header naming the blob that holds a record's value.
pub const BLOB_HEADER: &str = "sy-blob";
/// Header holding the blob's size in bytes (decimal text).
pub const BLOB_SIZE_HEADER: &str = "sy-blob-size";
/// Largest chunk of one `BlobPut`.
pub const MAX_CHUNK_BYTES: usize = 8 << 20;
/// Default largest blob.
pub const DEFAULT_MAX_BLOB_BYTES: u64 = 64 << 20;

/// Where blobs live. Methods are synchronous, as the log's are; the server calls them on
/// its blocking pool.
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Writes one chunk of pending blob `id` at `offset`; chunks come in order from 0.
    fn put_chunk(&self, id: &str, offset: u64, data: &[u8]) -> Result<()>;
    /// Checks that pending blob `id` holds `total` bytes, makes it durable and complete.
    fn complete(&self, id: &str, total: u64) -> Result<()>;
    /// Whether pending blob `id` is complete (uploaded, not yet attached to a topic).
    fn is_complete(&self, id: &str) -> bool;
    /// Moves complete pending blob `id` under `topic`.
    fn attach(&self, id: &str, topic: &str) -> Result<()>;
    /// Reads up to `max` bytes of blob `id` of any topic from `offset`; also its total size.
    fn get_range(&self, id: &str, offset: u64, max: usize) -> Result<(u64, Bytes)>;
    /// Deletes blob `id` of `topic` (`None`: a pending one); absent is not an error.
    fn delete(&self, topic: Option<&str>, id: &str) -> Result<()>;
    /// Ids of the blobs of `topic` (`None`: complete pending ones).
    fn list(&self, topic: Option<&str>) -> Result<Vec<String>>;
    /// Deletes every blob of `topic`.
    fn delete_topic(&self, topic: &str) -> Result<()>;
    /// Whether `topic` has any blob at all, so retention can skip reading segments.
    fn has_topic(&self, topic: &str) -> bool;
}

/// Checks a client-chosen blob id: 1 to 64 characters of `[A-Za-z0-9_-]`. The id becomes a
/// file name, so this is also what keeps it from naming another folder.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        return Ok(());
    }
    Err(BrokerError::InvalidName {
        kind: "blob",
        name: id.chars().take(80).collect(),
        reason: "use 1 to 64 characters of A-Z, a-z, 0-9, `_` and `-`".into(),
    })
}

/// The blob ids referred to by the records of `batches` (concatenated encoded batches, read
/// up to the first that does not parse). Cheap when no record has a header of that name: a
/// substring scan decides first, so plain produce pays one `memmem` pass.
pub fn referenced_ids(batches: &Bytes) -> Vec<String> {
    if memchr::memmem::find(batches, BLOB_HEADER.as_bytes()).is_none() {
        return Vec::new();
    }
    let mut ids = Vec::new();
    let mut rest = batches.clone();
    while let Ok(batch) = Batch::parse(&rest, usize::MAX) {
        rest = rest.slice(batch.header.total_len()..);
        for record in batch.records() {
            for (name, value) in &record.headers {
                if name == BLOB_HEADER {
                    ids.push(String::from_utf8_lossy(value).into_owned());
                }
            }
        }
    }
    ids
}

/// The blob ids referred to by the records of a segment's data file; none when unreadable.
pub fn ids_in_file(path: &Path) -> Vec<String> {
    match std::fs::read(path) {
        Ok(bytes) => referenced_ids(&Bytes::from(bytes)),
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "cannot read segment for blobs");
            Vec::new()
        }
    }
}

impl Broker {
    /// Stores one chunk of an upload; the last one completes the blob.
    pub fn put_blob(
        &self,
        id: &str,
        offset: u64,
        total: u64,
        data: &[u8],
        last: bool,
    ) -> Result<()> {
        self.check_running()?;
        validate_id(id)?;
        let end = offset.saturating_add(data.len() as u64);
        if data.len() > MAX_CHUNK_BYTES || total > self.max_blob_bytes() || end > total {
            return Err(BrokerError::Blob {
                id: id.to_string(),
                reason: format!(
                    "chunks are at most {MAX_CHUNK_BYTES} bytes, blobs at most {} bytes \
                     (max_payload_bytes), and a chunk must end within the total",
                    self.max_blob_bytes()
                ),
            });
        }
        self.inner.blobs.put_chunk(id, offset, data)?;
        if last {
            self.inner.blobs.complete(id, total)?;
        }
        Ok(())
    }

    /// Reads up to `max` bytes of blob `id` from `offset`, and its total size.
    pub fn get_blob(&self, id: &str, offset: u64, max: u32) -> Result<(u64, Bytes)> {
        validate_id(id)?;
        let max = (max as usize).min(MAX_CHUNK_BYTES);
        self.inner.blobs.get_range(id, offset, max)
    }

    /// Largest blob accepted.
    pub fn max_blob_bytes(&self) -> u64 {
        self.inner.max_blob_bytes
    }

    /// Fails when a referenced blob is not a complete upload, before anything is appended.
    pub(crate) fn check_blobs(&self, ids: &[String]) -> Result<()> {
        for id in ids {
            validate_id(id)?;
            if !self.inner.blobs.is_complete(id) {
                return Err(BrokerError::Blob {
                    id: id.clone(),
                    reason: "the record refers to a blob that is not completely uploaded; \
                             send its last BlobPut chunk before producing"
                        .into(),
                });
            }
        }
        Ok(())
    }

    /// Moves the blobs of an appended batch under its topic.
    pub(crate) fn attach_blobs(&self, topic: &str, ids: &[String]) -> Result<()> {
        for id in ids {
            self.inner.blobs.attach(id, topic)?;
        }
        Ok(())
    }

    /// At start-up: attaches a pending blob that a record in the last segment of a partition
    /// refers to (a crash between append and move) and deletes every other one.
    pub(crate) fn recover_blobs(&self) -> Result<()> {
        let pending = self.inner.blobs.list(None)?;
        if pending.is_empty() {
            return Ok(());
        }
        let topics: Vec<_> = self.inner.topics.read().values().cloned().collect();
        let mut owners = std::collections::HashMap::new();
        for topic in &topics {
            for partition in topic.partitions() {
                for id in ids_in_file(&partition.log.active_segment_path()) {
                    owners.insert(id, topic.name.clone());
                }
            }
        }
        for id in pending {
            match owners.get(&id) {
                Some(topic) => self.inner.blobs.attach(&id, topic)?,
                None => {
                    tracing::info!(blob = %id, "deleting orphan blob");
                    self.inner.blobs.delete(None, &id)?;
                }
            }
        }
        Ok(())
    }
}
