//! Claim-check blobs: large payloads stored beside the log, referred to by a record header.
//!
//! A record over the claim-check threshold would bloat segments, replication of the log and
//! every fetch, so the client uploads its value as a blob and produces a small record whose
//! `sy-blob` header names it. Storage sits behind [`BlobStore`] so that a remote backend
//! (S3 through `object_store`) can replace the local folder later; only [`local`] exists.
//!
//! Life cycle: chunks land in a pending upload, the last one completes it; the append of a
//! record that refers to it turns it into that record's *reference*. Any later record that
//! carries the same header (a rule's copy in another topic, a dead letter, a redrive) adds a
//! reference of its own, so the bytes are shared, not copied. Retention and topic deletion
//! remove the references of the records they remove, and the bytes go with the last one: a
//! blob lives exactly as long as some retained record, in any topic, refers to it.
//!
//! Adding a reference (check, append, add) and removing one run under the store's lock, so a
//! copy being appended cannot lose its blob to the retention of the record it copies.
//! Start-up repairs what a crash can leave: references the records of active segments lack,
//! references whose records are gone, and uploads no record refers to.

pub mod local;

use std::path::Path;

use bytes::Bytes;
use parking_lot::MutexGuard;
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

/// Whether `name` is one of the claim-check headers, which travel with a record wherever the
/// broker copies it (rules, dead letters, redrives) even though they are reserved.
pub fn is_blob_header(name: &str) -> bool {
    name == BLOB_HEADER || name == BLOB_SIZE_HEADER
}

/// The record a reference belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordAt<'a> {
    pub topic: &'a str,
    pub partition: u32,
    pub offset: u64,
}

/// Where blobs live. Methods are synchronous, as the log's are; the server calls them on
/// its blocking pool. Callers that add or remove references hold [`BlobStore::lock`].
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Writes one chunk of pending blob `id` at `offset`; chunks come in order from 0.
    fn put_chunk(&self, id: &str, offset: u64, data: &[u8]) -> Result<()>;
    /// Checks that pending blob `id` holds `total` bytes, makes it durable and complete.
    fn complete(&self, id: &str, total: u64) -> Result<()>;
    /// Whether a record may refer to blob `id`: a complete upload, or referred to already.
    fn is_available(&self, id: &str) -> bool;
    /// Durably notes that records of `topic` referring to blob `id` are about to be
    /// appended, so that start-up looks for references a crash left out in that topic only.
    fn prepare(&self, id: &str, topic: &str) -> Result<()>;
    /// Records, durably, that the record `at` refers to blob `id`; the first reference takes
    /// the complete upload. Idempotent.
    fn add_ref(&self, id: &str, at: &RecordAt<'_>) -> Result<()>;
    /// Whether the reference of the record `at` to blob `id` is recorded.
    fn has_ref(&self, id: &str, at: &RecordAt<'_>) -> bool;
    /// Drops the reference of the record `at`; the bytes go with the last reference.
    fn remove_ref(&self, id: &str, at: &RecordAt<'_>) -> Result<()>;
    /// The references of `topic`: blob id, partition and offset of each.
    fn refs(&self, topic: &str) -> Result<Vec<(String, u32, u64)>>;
    /// The topics that hold references.
    fn ref_topics(&self) -> Result<Vec<String>>;
    /// Reads up to `max` bytes of blob `id` (referred to, or a complete upload) from
    /// `offset`; also its total size.
    fn get_range(&self, id: &str, offset: u64, max: usize) -> Result<(u64, Bytes)>;
    /// Ids of the complete uploads no record refers to yet.
    fn pending_ids(&self) -> Result<Vec<String>>;
    /// Deletes complete upload `id`; absent is not an error.
    fn delete_pending(&self, id: &str) -> Result<()>;
    /// Drops every reference of `topic`.
    fn delete_topic(&self, topic: &str) -> Result<()>;
    /// Whether `topic` has any reference at all, so retention can skip reading segments.
    fn has_topic(&self, topic: &str) -> bool;
    /// The lock that orders adding references against removing them.
    fn lock(&self) -> MutexGuard<'_, ()>;
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

/// One record's reference to a blob, as found in encoded batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    /// The blob id, as the header holds it.
    pub id: String,
    /// The record's offset as encoded.
    pub offset: u64,
    /// The record's place in its batch, which an append adds to the assigned base offset.
    pub delta: u64,
}

/// The blob references of the records of `batches` (concatenated encoded batches, read up
/// to the first that does not parse). Cheap when no record has a header of that name: a
/// substring scan decides first, so plain produce pays one `memmem` pass.
pub fn mentions(batches: &Bytes) -> Vec<Mention> {
    if memchr::memmem::find(batches, BLOB_HEADER.as_bytes()).is_none() {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut rest = batches.clone();
    while let Ok(batch) = Batch::parse(&rest, usize::MAX) {
        rest = rest.slice(batch.header.total_len()..);
        for record in batch.records() {
            for (name, value) in &record.headers {
                if name == BLOB_HEADER {
                    found.push(Mention {
                        id: String::from_utf8_lossy(value).into_owned(),
                        offset: record.offset,
                        delta: record.offset.saturating_sub(batch.header.base_offset),
                    });
                }
            }
        }
    }
    found
}

/// The blob references of the records of a segment's data file; none when unreadable.
pub fn mentions_in_file(path: &Path) -> Vec<Mention> {
    match std::fs::read(path) {
        Ok(bytes) => mentions(&Bytes::from(bytes)),
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

    /// Fails when a referenced blob is neither a complete upload nor referred to already,
    /// before anything is appended to `topic`, and prepares the references. Returns the
    /// store's lock when there is any reference, to be held until [`Broker::attach_blobs`].
    pub(crate) fn check_blobs(
        &self,
        topic: &str,
        mentions: &[Mention],
    ) -> Result<Option<MutexGuard<'_, ()>>> {
        if mentions.is_empty() {
            return Ok(None);
        }
        let guard = self.inner.blobs.lock();
        for mention in mentions {
            validate_id(&mention.id)?;
            if !self.inner.blobs.is_available(&mention.id) {
                return Err(BrokerError::Blob {
                    id: mention.id.clone(),
                    reason: "the record refers to a blob that is not completely uploaded (or \
                             whose records are all gone); send its last BlobPut chunk before \
                             producing"
                        .into(),
                });
            }
        }
        for mention in mentions {
            self.inner.blobs.prepare(&mention.id, topic)?;
        }
        Ok(Some(guard))
    }

    /// Records the references of a batch appended at `base_offset` of `topic`/`partition`.
    /// The caller holds the lock [`Broker::check_blobs`] returned.
    pub(crate) fn attach_blobs(
        &self,
        topic: &str,
        partition: u32,
        base_offset: u64,
        mentions: &[Mention],
    ) -> Result<()> {
        for mention in mentions {
            let at = RecordAt {
                topic,
                partition,
                offset: base_offset + mention.delta,
            };
            self.inner.blobs.add_ref(&mention.id, &at)?;
        }
        Ok(())
    }

    /// Drops the references of records that retention removed from `topic`/`partition`.
    pub(crate) fn release_blobs(
        &self,
        topic: &str,
        partition: u32,
        mentions: &[Mention],
    ) -> Result<()> {
        if mentions.is_empty() {
            return Ok(());
        }
        let _guard = self.inner.blobs.lock();
        for mention in mentions {
            let at = RecordAt {
                topic,
                partition,
                offset: mention.offset,
            };
            self.inner.blobs.remove_ref(&mention.id, &at)?;
        }
        Ok(())
    }

    /// Drops every reference of a deleted topic; blobs other topics refer to stay.
    pub(crate) fn delete_topic_blobs(&self, topic: &str) -> Result<()> {
        let _guard = self.inner.blobs.lock();
        self.inner.blobs.delete_topic(topic)
    }

    /// At start-up, repairs what a crash can leave behind:
    ///
    /// - a record of a partition's active segment whose reference is not recorded (a crash
    ///   between append and reference) gets it, from its upload or another reference; only
    ///   topics with prepared references are read;
    /// - a reference whose record is gone (retention or a topic deletion cut short, or a
    ///   record the crash lost before its fsync) is dropped;
    /// - an upload no record refers to is deleted.
    pub(crate) fn recover_blobs(&self) -> Result<()> {
        let store = &self.inner.blobs;
        let pending = store.pending_ids()?;
        let ref_topics = store.ref_topics()?;
        if pending.is_empty() && ref_topics.is_empty() {
            return Ok(());
        }
        let topics = self.inner.topics.read().clone();
        // Only a topic that has (or was about to have) a reference can lack one.
        for topic in topics.values().filter(|topic| store.has_topic(&topic.name)) {
            for partition in topic.partitions() {
                for mention in mentions_in_file(&partition.log.active_segment_path()) {
                    let at = RecordAt {
                        topic: &topic.name,
                        partition: partition.id,
                        offset: mention.offset,
                    };
                    if validate_id(&mention.id).is_err() || store.has_ref(&mention.id, &at) {
                        continue;
                    }
                    if store.is_available(&mention.id) {
                        store.add_ref(&mention.id, &at)?;
                    } else {
                        tracing::warn!(
                            blob = %mention.id, topic = %topic.name, partition = partition.id,
                            offset = mention.offset, "a record refers to a blob that is gone"
                        );
                    }
                }
            }
        }
        for name in ref_topics {
            let Some(topic) = topics.get(&name) else {
                tracing::info!(topic = %name, "dropping the blob references of a deleted topic");
                store.delete_topic(&name)?;
                continue;
            };
            for (id, partition, offset) in store.refs(&name)? {
                let live = topic
                    .partition(partition)
                    .ok()
                    .is_some_and(|p| (p.log.start_offset()..p.log.end_offset()).contains(&offset));
                if !live {
                    tracing::info!(blob = %id, topic = %name, partition, offset,
                        "dropping a blob reference whose record is gone");
                    let at = RecordAt {
                        topic: &name,
                        partition,
                        offset,
                    };
                    store.remove_ref(&id, &at)?;
                }
            }
        }
        for id in store.pending_ids()? {
            tracing::info!(blob = %id, "deleting orphan blob");
            store.delete_pending(&id)?;
        }
        Ok(())
    }
}
