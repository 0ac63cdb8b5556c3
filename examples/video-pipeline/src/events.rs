//! The events: topics, payloads and the linkage headers, plus `setup`, `upload` and `trace`.
//!
//! The media travel in the events themselves, not as file paths: video.uploaded holds the
//! uploaded file's bytes, video.thumbnailed the thumbnail, video.encoded and video.ready the
//! encoding. A payload over the claim-check threshold (256 KiB) is uploaded to the broker as
//! a blob and the event carries only a reference, which a consumer's receive or push turns
//! back into the bytes. A service that passes media on unchanged (the scanner, `ready`)
//! forwards the reference instead ([`Payload::Reference`]): the new event shares the blob,
//! so a clip is stored once however many topics it flows through, and the broker keeps it
//! as long as any event refers to it.
//!
//! Events are published to the subject of their topic, so the broker stores them and says
//! where (partition and offset), and live subscribers (analytics) see them as well.

use std::path::Path;

use anyhow::{bail, Context};
use bytes::Bytes;
use switchyard_client::{
    Client, ErrorCode, OffsetSpec, PublishRecordWire, SubscriptionModeWire, SubscriptionOptions,
    TopicConfigWire, BLOB_HEADER, BLOB_SIZE_HEADER, DEFAULT_CLAIM_CHECK_THRESHOLD,
};

pub const UPLOADED: &str = "video.uploaded";
pub const SCANNED: &str = "video.scanned";
pub const REJECTED: &str = "video.rejected";
pub const THUMBNAILED: &str = "video.thumbnailed";
pub const ENCODED: &str = "video.encoded";
pub const READY: &str = "video.ready";
pub const PUBLISHED: &str = "video.published";

/// Every topic, in pipeline order (what `trace` prints in).
pub const TOPICS: [&str; 7] = [
    UPLOADED,
    SCANNED,
    REJECTED,
    THUMBNAILED,
    ENCODED,
    READY,
    PUBLISHED,
];

/// Header naming the upload an event is about.
pub const VIDEO_ID: &str = "video-id";
/// Header naming the event(s) this one reacted to: `topic/partition/offset`, comma separated.
pub const CAUSED_BY: &str = "caused-by";

/// What an event carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// Bytes: inline when small, a new blob when over the claim-check threshold.
    Bytes(Bytes),
    /// The claim-check reference of a stored event (blob id and size), passed on as is.
    Reference { blob: Bytes, size: Bytes },
}

impl Payload {
    /// The payload of a record as the broker stores it (not resolved): its reference when it
    /// has one, else its value.
    pub fn of_stored(value: Option<&Bytes>, headers: &[(String, Bytes)]) -> Payload {
        let header = |name: &str| {
            (headers.iter())
                .find(|(header, _)| header == name)
                .map(|(_, value)| value.clone())
        };
        match (header(BLOB_HEADER), header(BLOB_SIZE_HEADER)) {
            (Some(blob), Some(size)) => Payload::Reference { blob, size },
            _ => Payload::Bytes(value.cloned().unwrap_or_default()),
        }
    }

    /// The bytes, downloaded from the broker for a reference.
    pub async fn read(&self, client: &Client) -> anyhow::Result<Bytes> {
        match self {
            Payload::Bytes(bytes) => Ok(bytes.clone()),
            Payload::Reference { blob, .. } => {
                let id = String::from_utf8_lossy(blob);
                (client.get_blob(&id).await).with_context(|| format!("cannot read blob `{id}`"))
            }
        }
    }
}

/// Where an event is stored: `topic/partition/offset`.
pub fn location(topic: &str, partition: u32, offset: u64) -> String {
    format!("{topic}/{partition}/{offset}")
}

/// `topic/partition/offset` back into its parts.
pub fn parse_location(at: &str) -> anyhow::Result<(&str, u32, u64)> {
    let mut parts = at.rsplitn(3, '/');
    let (Some(offset), Some(partition), Some(topic)) = (parts.next(), parts.next(), parts.next())
    else {
        bail!("`{at}` is not topic/partition/offset");
    };
    let partition = (partition.parse()).with_context(|| format!("bad partition in `{at}`"))?;
    let offset = (offset.parse()).with_context(|| format!("bad offset in `{at}`"))?;
    Ok((topic, partition, offset))
}

pub async fn connect(server: &str) -> anyhow::Result<Client> {
    Client::connect(server)
        .await
        .with_context(|| format!("cannot connect to the broker at {server}"))
}

/// Publishes the event about upload `id` to `topic` with the linkage headers; returns where
/// it was stored.
pub async fn publish(
    client: &Client,
    topic: &str,
    id: &str,
    payload: Payload,
    caused_by: Option<&str>,
) -> anyhow::Result<String> {
    let mut headers = vec![(VIDEO_ID.to_string(), Bytes::from(id.to_string()))];
    if let Some(cause) = caused_by {
        headers.push((CAUSED_BY.to_string(), Bytes::from(cause.to_string())));
    }
    let value = match payload {
        Payload::Bytes(bytes) => Some(bytes),
        Payload::Reference { blob, size } => {
            headers.push((BLOB_HEADER.to_string(), blob));
            headers.push((BLOB_SIZE_HEADER.to_string(), size));
            None
        }
    };
    let record = PublishRecordWire {
        key: Some(Bytes::from(id.to_string())),
        value,
        headers,
    };
    let published = (client.publish_checked(topic, record, DEFAULT_CLAIM_CHECK_THRESHOLD))
        .await
        .with_context(|| format!("cannot publish to `{topic}`"))?;
    let Some(stored) = published.stored else {
        bail!("`{topic}` is not a topic; run `video setup` first");
    };
    Ok(location(topic, stored.partition, stored.offset))
}

/// Checks an upload id: it names files, so letters, digits, `-` and `_` only.
pub fn check_id(id: &str) -> anyhow::Result<()> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    {
        bail!("id `{id}` must be letters, digits, `-` or `_`");
    }
    Ok(())
}

/// Whether an error is "it exists already", which setup takes as done.
fn exists(error: &switchyard_client::ClientError) -> bool {
    matches!(
        error.code(),
        Some(ErrorCode::TopicExists) | Some(ErrorCode::QueueExists)
    ) || error.to_string().contains("exists")
}

/// Creates the topics (one partition each) and a durable queue subscription per service
/// and input topic, from the earliest record.
pub async fn setup(server: &str) -> anyhow::Result<()> {
    let client = connect(server).await?;
    for topic in TOPICS {
        match client
            .create_topic(topic, 1, TopicConfigWire::default())
            .await
        {
            Ok(()) => println!("created topic {topic}"),
            Err(error) if exists(&error) => println!("topic {topic} exists"),
            Err(error) => return Err(error).context(format!("cannot create `{topic}`")),
        }
    }
    for (topic, name) in crate::services::SUBSCRIPTIONS {
        create_queue_subscription(&client, topic, name).await?;
    }
    Ok(())
}

/// Creates queue subscription `name` on `topic` from the earliest record, unless it exists.
pub async fn create_queue_subscription(
    client: &Client,
    topic: &str,
    name: &str,
) -> anyhow::Result<()> {
    let options = SubscriptionOptions {
        mode: SubscriptionModeWire::Queue,
        start: OffsetSpec::Earliest,
        ..SubscriptionOptions::default()
    };
    match client.create_subscription(topic, name, options).await {
        Ok(()) => println!("created subscription {name} on {topic}"),
        Err(error) if exists(&error) => println!("subscription {name} exists"),
        Err(error) => {
            return Err(error).context(format!("cannot create subscription `{name}`"));
        }
    }
    Ok(())
}

/// Publishes video.uploaded holding the bytes of `file`.
pub async fn upload(server: &str, file: &Path, id: Option<&str>) -> anyhow::Result<()> {
    let id = match id {
        Some(id) => id.to_string(),
        None => (file.file_stem().and_then(|stem| stem.to_str()))
            .context("cannot take an id from the file name; pass --id")?
            .to_string(),
    };
    check_id(&id)?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let size = bytes.len();
    let client = connect(server).await?;
    let at = publish(&client, UPLOADED, &id, Payload::Bytes(bytes.into()), None).await?;
    println!("uploaded {id} ({size} bytes) as {at}");
    Ok(())
}

/// Prints every event whose `video-id` is `id`, topic by topic in pipeline order, with the
/// size of its payload and whether it is a claim-check reference.
pub async fn trace(server: &str, id: &str, json: bool) -> anyhow::Result<()> {
    let client = connect(server).await?;
    let topics = client.list_topics().await.context("cannot list topics")?;
    let mut found = 0;
    for topic in TOPICS {
        let Some(summary) = topics.iter().find(|summary| summary.name == topic) else {
            continue;
        };
        for partition in 0..summary.partitions {
            let mut next = (client.list_offsets(topic, partition, OffsetSpec::Earliest))
                .await
                .with_context(|| format!("cannot read the start of `{topic}`"))?;
            loop {
                // Unresolved: the trace needs the headers, not the media.
                let page = client
                    .fetch_unresolved(topic, partition, next, 1 << 20, Default::default())
                    .await
                    .with_context(|| format!("cannot fetch `{topic}` at {next}"))?;
                if page.records.is_empty() {
                    break;
                }
                next = page.next_offset(next);
                for record in &page.records {
                    let header = |name: &str| {
                        (record.headers.iter())
                            .find(|(header, _)| header == name)
                            .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
                    };
                    if header(VIDEO_ID).as_deref() != Some(id) {
                        continue;
                    }
                    found += 1;
                    let at = location(topic, partition, record.offset);
                    let cause = header(CAUSED_BY);
                    let blob = header(BLOB_HEADER);
                    let size = match header(BLOB_SIZE_HEADER) {
                        Some(size) => size.parse::<u64>().unwrap_or_default(),
                        None => record.value.as_ref().map_or(0, |value| value.len() as u64),
                    };
                    if json {
                        let line = serde_json::json!({
                            "topic": topic, "partition": partition, "offset": record.offset,
                            "at": at, "caused_by": cause, "size": size, "blob": blob,
                        });
                        println!("{line}");
                    } else {
                        let cause = cause.unwrap_or_else(|| "-".into());
                        let blob = blob.map_or_else(|| "inline".into(), |id| format!("blob {id}"));
                        println!("{topic:<18} {at:<24} caused-by {cause} ({size} bytes, {blob})");
                    }
                }
            }
        }
    }
    if found == 0 {
        bail!("no event has video-id `{id}`");
    }
    Ok(())
}
