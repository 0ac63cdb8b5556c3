//! The events: topics, payloads and the linkage headers, plus `setup`, `upload` and `trace`.
//!
//! Events are published to the subject of their topic, so the broker stores them and says
//! where (partition and offset), and live subscribers (analytics) see them as well.

use std::path::Path;

use anyhow::{bail, Context};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use switchyard_client::{
    Client, ErrorCode, OffsetSpec, PublishRecordWire, SubscriptionModeWire, SubscriptionOptions,
    TopicConfigWire,
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

/// The payload of every event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    /// The file the event is about (upload, thumbnail, encoding or CDN copy).
    pub path: String,
    pub size: u64,
    /// Why, for video.rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Where an event is stored: `topic/partition/offset`.
pub fn location(topic: &str, partition: u32, offset: u64) -> String {
    format!("{topic}/{partition}/{offset}")
}

pub async fn connect(server: &str) -> anyhow::Result<Client> {
    Client::connect(server)
        .await
        .with_context(|| format!("cannot connect to the broker at {server}"))
}

/// Publishes `event` to `topic` with the linkage headers; returns where it was stored.
pub async fn publish(
    client: &Client,
    topic: &str,
    event: &Event,
    caused_by: Option<&str>,
) -> anyhow::Result<String> {
    let mut headers = vec![(VIDEO_ID.to_string(), Bytes::from(event.id.clone()))];
    if let Some(cause) = caused_by {
        headers.push((CAUSED_BY.to_string(), Bytes::from(cause.to_string())));
    }
    let record = PublishRecordWire {
        key: Some(Bytes::from(event.id.clone())),
        value: Some(Bytes::from(serde_json::to_vec(event)?)),
        headers,
    };
    let published = (client.publish(topic, record).await)
        .with_context(|| format!("cannot publish to `{topic}`"))?;
    let Some(stored) = published.stored else {
        bail!("`{topic}` is not a topic; run `video setup` first");
    };
    Ok(location(topic, stored.partition, stored.offset))
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

/// Copies `file` into DIR/uploads and publishes video.uploaded.
pub async fn upload(server: &str, dir: &Path, file: &Path, id: Option<&str>) -> anyhow::Result<()> {
    let id = match id {
        Some(id) => id.to_string(),
        None => (file.file_stem().and_then(|stem| stem.to_str()))
            .context("cannot take an id from the file name; pass --id")?
            .to_string(),
    };
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    {
        bail!("id `{id}` must be letters, digits, `-` or `_`");
    }
    let uploads = dir.join("uploads");
    std::fs::create_dir_all(&uploads)
        .with_context(|| format!("cannot create {}", uploads.display()))?;
    let target = uploads.join(&id);
    let size = std::fs::copy(file, &target)
        .with_context(|| format!("cannot copy {} to {}", file.display(), target.display()))?;
    let client = connect(server).await?;
    let event = Event {
        id: id.clone(),
        path: target.display().to_string(),
        size,
        reason: None,
    };
    let at = publish(&client, UPLOADED, &event, None).await?;
    println!("uploaded {id} ({size} bytes) as {at}");
    Ok(())
}

/// Prints every event whose `video-id` is `id`, topic by topic in pipeline order.
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
                let page = (client.fetch(topic, partition, next, 1 << 20, Default::default()))
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
                    if json {
                        let line = serde_json::json!({
                            "topic": topic, "partition": partition, "offset": record.offset,
                            "at": at, "caused_by": cause,
                        });
                        println!("{line}");
                    } else {
                        let cause = cause.unwrap_or_else(|| "-".into());
                        println!("{topic:<18} {at:<24} caused-by {cause}");
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
