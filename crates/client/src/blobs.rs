//! Claim-check: values too large for a record travel as broker blobs.
//!
//! A value over the producer's threshold is uploaded with `BlobPut` chunks and the record
//! carries only the `sy-blob` (id) and `sy-blob-size` headers. Fetches put the value back
//! (`BlobGet` in chunks) and drop the two headers, so a consumer sees the record as sent:
//! stream fetches and consumers, queue receives and pub/sub pushes alike, each with a way to
//! keep the reference instead (`fetch_unresolved`, `receive_unresolved`,
//! `Subscription::try_next`).

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use switchyard_log::{Record, RecordBuf};
use switchyard_protocol::{DeliveryWire, PublishRecordWire, Request, Response};

use crate::client::Client;
use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::pubsub::{Message, Published};

/// Header naming the blob that holds a record's value.
pub const BLOB_HEADER: &str = "sy-blob";
/// Header holding the blob's size in bytes, as decimal text.
pub const BLOB_SIZE_HEADER: &str = "sy-blob-size";
/// Default value size above which the producer uses a blob: 256 KiB, a quarter of the
/// default `max_record_bytes`, so ordinary batches stay small.
pub const DEFAULT_CLAIM_CHECK_THRESHOLD: usize = 256 * 1024;
/// Largest payload, the server's default `max_payload_bytes`.
pub const MAX_PAYLOAD_BYTES: usize = 64 << 20;
/// Largest chunk of one `BlobPut` or `BlobGet`.
pub const BLOB_CHUNK_BYTES: usize = 8 << 20;
/// Room in a frame for the request header and fields besides the chunk.
const CHUNK_OVERHEAD_BYTES: usize = 1024;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A fresh blob id: time, process and a counter, unique enough across producers.
fn new_blob_id() -> String {
    let count = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let now = switchyard_log::now_ms();
    format!("b{now:x}-{:x}-{count:x}", std::process::id())
}

impl Client {
    fn blob_chunk(&self) -> usize {
        let room = (self.connection().max_frame() as usize).saturating_sub(CHUNK_OVERHEAD_BYTES);
        BLOB_CHUNK_BYTES.min(room).max(1)
    }

    /// Uploads `data` as blob `id` (1 to 64 of `[A-Za-z0-9_-]`) in chunks.
    pub async fn put_blob(&self, id: &str, data: &Bytes) -> Result<()> {
        if data.len() > MAX_PAYLOAD_BYTES {
            return Err(ClientError::PayloadTooLarge {
                size: data.len(),
                limit: MAX_PAYLOAD_BYTES,
            });
        }
        let chunk = self.blob_chunk();
        let total = data.len() as u64;
        let mut offset = 0;
        loop {
            let end = (offset + chunk).min(data.len());
            let last = end == data.len();
            self.call_empty(Request::BlobPut {
                id: id.to_string(),
                offset: offset as u64,
                total,
                data: data.slice(offset..end),
                last,
            })
            .await?;
            if last {
                return Ok(());
            }
            offset = end;
        }
    }

    /// Downloads the whole of blob `id`.
    pub async fn get_blob(&self, id: &str) -> Result<Bytes> {
        let max = u32::try_from(self.blob_chunk()).unwrap_or(u32::MAX);
        let mut out = BytesMut::new();
        loop {
            let request = Request::BlobGet {
                id: id.to_string(),
                offset: out.len() as u64,
                max,
            };
            let response = self.connection().call(request).await?;
            let Response::Blob { total, data } = response else {
                return Err(self.unexpected(&response));
            };
            if data.is_empty() || out.len() as u64 + data.len() as u64 >= total {
                out.extend_from_slice(&data);
                return Ok(out.freeze());
            }
            out.extend_from_slice(&data);
        }
    }

    /// Replaces a value over `threshold` by an uploaded blob and the two headers.
    pub(crate) async fn check_in(
        &self,
        mut record: RecordBuf,
        threshold: usize,
    ) -> Result<RecordBuf> {
        let Some(value) = record.value.take_if(|value| value.len() > threshold) else {
            return Ok(record);
        };
        let id = new_blob_id();
        self.put_blob(&id, &value).await?;
        record.headers.push((BLOB_HEADER.into(), Bytes::from(id)));
        let size = Bytes::from(value.len().to_string());
        record.headers.push((BLOB_SIZE_HEADER.into(), size));
        Ok(record)
    }

    /// Publishes `record` to `subject` the way the producer stores a value: one over
    /// `threshold` is uploaded as a blob first and the record carries the reference, which
    /// subscribers resolve. Meant for a topic's subject: the stored record keeps the blob,
    /// whereas an upload no record refers to is deleted at the broker's next start and cannot
    /// be read before then.
    pub async fn publish_checked(
        &self,
        subject: &str,
        mut record: PublishRecordWire,
        threshold: usize,
    ) -> Result<Published> {
        if let Some(value) = record.value.take_if(|value| value.len() > threshold) {
            let id = new_blob_id();
            self.put_blob(&id, &value).await?;
            record.headers.push((BLOB_HEADER.into(), Bytes::from(id)));
            let size = Bytes::from(value.len().to_string());
            record.headers.push((BLOB_SIZE_HEADER.into(), size));
        }
        self.publish(subject, record).await
    }

    /// Puts the value back into every record that refers to a blob, removing the headers.
    pub async fn resolve_blobs(&self, records: &mut [Record]) -> Result<()> {
        for record in records {
            self.resolve_value(&mut record.value, &mut record.headers)
                .await?;
        }
        Ok(())
    }

    /// Puts the value back into every queue delivery that refers to a blob, removing the
    /// headers; [`Client::receive`] does this for you.
    pub async fn resolve_deliveries(&self, deliveries: &mut [DeliveryWire]) -> Result<()> {
        for delivery in deliveries {
            self.resolve_value(&mut delivery.value, &mut delivery.headers)
                .await?;
        }
        Ok(())
    }

    /// Puts the value back into a pub/sub message that refers to a blob, removing the
    /// headers; [`crate::Subscription::next`] does this for you.
    pub async fn resolve_message(&self, message: &mut Message) -> Result<()> {
        self.resolve_value(&mut message.value, &mut message.headers)
            .await
    }

    /// The one resolution every path shares: when `headers` name a blob, download it into
    /// `value` and drop the two claim-check headers; otherwise leave both alone.
    async fn resolve_value(
        &self,
        value: &mut Option<Bytes>,
        headers: &mut Vec<(String, Bytes)>,
    ) -> Result<()> {
        let Some(id) = headers
            .iter()
            .find(|(name, _)| name == BLOB_HEADER)
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
        else {
            return Ok(());
        };
        *value = Some(self.get_blob(&id).await?);
        headers.retain(|(name, _)| name != BLOB_HEADER && name != BLOB_SIZE_HEADER);
        Ok(())
    }
}

/// A pushed message with its claim-check reference resolved. A push has no caller to fail,
/// so a blob that cannot be read leaves the reference in place, with a warning.
pub(crate) async fn resolve_pushed(connection: &Connection, mut message: Message) -> Message {
    if !message.headers.iter().any(|(name, _)| name == BLOB_HEADER) {
        return message;
    }
    let client = Client::from_connection(connection.clone());
    if let Err(err) = client.resolve_message(&mut message).await {
        tracing::warn!(subject = %message.subject, error = %err,
            "cannot fetch the blob of a pushed message; handing out the reference");
    }
    message
}
