//! The services, one per process, each reading its durable queue subscription(s) and
//! publishing the next event itself.
//!
//! The media arrive in the deliveries: `receive` hands a claim-checked payload back as its
//! bytes, so the thumbnail, encoder and CDN services just read `delivery.value`. The scanner
//! and `ready` pass media on unchanged, so they receive references (`receive_unresolved`)
//! and forward them: the scanner downloads the clip once to check it, `ready` never does.
//!
//! A delivery is acked once its work is done and its event published; a failure nacks it so
//! the broker redelivers it. Work is idempotent (files are rewritten whole, `ready` keeps
//! its join state as marker files), so a redelivery after a crash only repeats it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::ValueEnum;
use switchyard_client::{Client, DeliveryWire, ReceiveOptions};
use tokio::sync::Mutex;

use crate::events::{self, Payload, CAUSED_BY, VIDEO_ID};
use crate::media;

/// The services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Service {
    Scanner,
    Thumbnail,
    Encoder,
    Ready,
    Cdn,
    Analytics,
    Recommend,
}

/// The durable subscriptions `setup` creates: (topic, subscription).
pub const SUBSCRIPTIONS: [(&str, &str); 6] = [
    (events::UPLOADED, "video-scanner"),
    (events::SCANNED, "video-thumbnail"),
    (events::SCANNED, "video-encoder"),
    (events::THUMBNAILED, "video-ready-thumbnailed"),
    (events::ENCODED, "video-ready-encoded"),
    (events::READY, "video-cdn"),
];

/// The subscription `recommend` creates for itself when it first starts: a new reader of
/// video.published from its earliest record, so it sees the whole history.
const RECOMMEND: &str = "video-recommend";

/// Whether a service wants payloads as bytes or, to pass them on, as they are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    Resolved,
    References,
}

pub async fn run(server: &str, service: Service, dir: &Path) -> anyhow::Result<()> {
    use Media::{References, Resolved};
    let client = events::connect(server).await?;
    let dir = dir.to_path_buf();
    let c = &client;
    match service {
        Service::Scanner => consume(c, "video-scanner", References, |d| scan(c, d)).await,
        Service::Thumbnail => consume(c, "video-thumbnail", Resolved, |d| thumbnail(c, d)).await,
        Service::Encoder => consume(c, "video-encoder", Resolved, |d| encode(c, d)).await,
        Service::Ready => ready(c, &dir).await,
        Service::Cdn => consume(c, "video-cdn", Resolved, |d| cdn(c, &dir, d)).await,
        Service::Analytics => analytics(c).await,
        Service::Recommend => {
            events::create_queue_subscription(c, events::PUBLISHED, RECOMMEND).await?;
            consume(c, RECOMMEND, Resolved, |d| recommend(&dir, d)).await
        }
    }
}

/// Receives from queue `queue` forever, acking what `handle` did and nacking what it failed.
async fn consume<F, Fut>(
    client: &Client,
    queue: &str,
    media: Media,
    mut handle: F,
) -> anyhow::Result<()>
where
    F: FnMut(DeliveryWire) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let options = ReceiveOptions {
        consumer: queue.to_string(),
        max: 10,
        wait: Duration::from_millis(500),
        ..ReceiveOptions::default()
    };
    say(&format!("{queue}: waiting for events"));
    loop {
        let deliveries = match media {
            Media::Resolved => client.receive(queue, &options).await,
            Media::References => client.receive_unresolved(queue, &options).await,
        };
        let deliveries = deliveries.with_context(|| format!("cannot receive from `{queue}`"))?;
        for delivery in deliveries {
            let token = delivery.token.clone();
            let at = (delivery.partition, delivery.offset);
            match handle(delivery).await {
                Ok(()) => {
                    let acks = (client.ack(queue, std::slice::from_ref(&token)).await)
                        .with_context(|| format!("cannot ack on `{queue}`"))?;
                    if let Some(Err(error)) = acks.into_iter().next() {
                        say(&format!("{queue}: ack of {at:?} failed: {error}"));
                    }
                }
                Err(error) => {
                    say(&format!("{queue}: {at:?} failed, retried later: {error:#}"));
                    let error = format!("{error:#}");
                    (client.nack(queue, &token, None, Some(&error)).await)
                        .with_context(|| format!("cannot nack on `{queue}`"))?;
                }
            }
        }
    }
}

/// Prints a line and flushes, so a supervisor reading a pipe or file sees it at once.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The upload id of a delivery and where it came from (`topic/partition/offset`).
fn event_of(topic: &str, delivery: &DeliveryWire) -> anyhow::Result<(String, String)> {
    let id = (delivery.headers.iter())
        .find(|(name, _)| name == VIDEO_ID)
        .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
        .with_context(|| format!("{topic} offset {} has no {VIDEO_ID}", delivery.offset))?;
    events::check_id(&id).with_context(|| format!("{topic} offset {}", delivery.offset))?;
    Ok((
        id,
        events::location(topic, delivery.partition, delivery.offset),
    ))
}

/// The payload of a resolved delivery.
fn bytes_of(delivery: &DeliveryWire) -> Bytes {
    delivery.value.clone().unwrap_or_default()
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    // Written aside and renamed, so a reader never sees half a file.
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("cannot rename to {}", path.display()))
}

/// video.uploaded → video.scanned (the same media, by reference) when the clip has the
/// magic, else video.rejected (the reason).
async fn scan(client: &Client, delivery: DeliveryWire) -> anyhow::Result<()> {
    let (id, at) = event_of(events::UPLOADED, &delivery)?;
    let media = Payload::of_stored(delivery.value.as_ref(), &delivery.headers);
    let bytes = media.read(client).await?;
    let (topic, payload) = if media::is_clean(&bytes) {
        (events::SCANNED, media)
    } else {
        let reason = format!("{id}: no media magic in {} bytes: rejected", bytes.len());
        (events::REJECTED, Payload::Bytes(Bytes::from(reason)))
    };
    let stored = events::publish(client, topic, &id, payload, Some(&at)).await?;
    say(&format!("scanner: {id} {at} -> {stored}"));
    Ok(())
}

/// video.scanned → video.thumbnailed holding the thumbnail.
async fn thumbnail(client: &Client, delivery: DeliveryWire) -> anyhow::Result<()> {
    let (id, at) = event_of(events::SCANNED, &delivery)?;
    let thumb = media::thumbnail(&bytes_of(&delivery));
    let size = thumb.len();
    let payload = Payload::Bytes(thumb.into());
    let stored = events::publish(client, events::THUMBNAILED, &id, payload, Some(&at)).await?;
    say(&format!("thumbnail: {id} {at} -> {stored} ({size} bytes)"));
    Ok(())
}

/// video.scanned → video.encoded holding the encoding.
async fn encode(client: &Client, delivery: DeliveryWire) -> anyhow::Result<()> {
    let (id, at) = event_of(events::SCANNED, &delivery)?;
    let encoded = media::encode(&bytes_of(&delivery));
    let size = encoded.len();
    let payload = Payload::Bytes(encoded.into());
    let stored = events::publish(client, events::ENCODED, &id, payload, Some(&at)).await?;
    say(&format!("encoder: {id} {at} -> {stored} ({size} bytes)"));
    Ok(())
}

/// Joins video.thumbnailed and video.encoded per id into video.ready, which carries the
/// encoding by reference.
///
/// The state is one marker file per (id, half) holding the half's event location, under
/// DIR/state/ready, so a restart loses no half-joined id; a `.done` marker makes the join
/// publish once. The lock keeps the two halves' tasks from both seeing a complete pair.
async fn ready(client: &Client, dir: &Path) -> anyhow::Result<()> {
    let lock = Arc::new(Mutex::new(()));
    let halves = [
        (events::THUMBNAILED, "video-ready-thumbnailed", "thumb"),
        (events::ENCODED, "video-ready-encoded", "enc"),
    ];
    let mut tasks = Vec::new();
    for (topic, queue, half) in halves {
        let (client, dir, lock) = (client.clone(), dir.to_path_buf(), Arc::clone(&lock));
        tasks.push(tokio::spawn(async move {
            consume(&client, queue, Media::References, |delivery| {
                join_half(&client, &dir, &lock, topic, half, delivery)
            })
            .await
        }));
    }
    for task in tasks {
        task.await.context("a ready task panicked")??;
    }
    Ok(())
}

async fn join_half(
    client: &Client,
    dir: &Path,
    lock: &Mutex<()>,
    topic: &str,
    half: &str,
    delivery: DeliveryWire,
) -> anyhow::Result<()> {
    let (id, at) = event_of(topic, &delivery)?;
    let state = dir.join("state").join("ready");
    let _held = lock.lock().await;
    write_file(&state.join(format!("{id}.{half}")), at.as_bytes())?;
    let done = state.join(format!("{id}.done"));
    if done.exists() {
        return Ok(());
    }
    let thumb = std::fs::read_to_string(state.join(format!("{id}.thumb")));
    let enc = std::fs::read_to_string(state.join(format!("{id}.enc")));
    let (Ok(thumb), Ok(enc)) = (thumb, enc) else {
        say(&format!(
            "ready: {id} has {half}, waiting for the other half"
        ));
        return Ok(());
    };
    let encoding = stored_payload(client, &enc).await?;
    let cause = format!("{thumb},{enc}");
    let stored = events::publish(client, events::READY, &id, encoding, Some(&cause)).await?;
    write_file(&done, stored.as_bytes())?;
    say(&format!("ready: {id} {cause} -> {stored}"));
    Ok(())
}

/// The payload of the event stored at `at`, as stored: a reference stays a reference.
async fn stored_payload(client: &Client, at: &str) -> anyhow::Result<Payload> {
    let (topic, partition, offset) = events::parse_location(at)?;
    let page = (client.fetch_unresolved(topic, partition, offset, 1 << 20, Duration::ZERO))
        .await
        .with_context(|| format!("cannot fetch {at}"))?;
    let record = (page.records.iter())
        .find(|record| record.offset == offset)
        .with_context(|| format!("{at} is no longer stored"))?;
    Ok(Payload::of_stored(record.value.as_ref(), &record.headers))
}

/// video.ready → DIR/cdn/ID (the encoding, from the event) → video.published, which names
/// the file.
async fn cdn(client: &Client, dir: &Path, delivery: DeliveryWire) -> anyhow::Result<()> {
    let (id, at) = event_of(events::READY, &delivery)?;
    let bytes = bytes_of(&delivery);
    let path = dir.join("cdn").join(&id);
    write_file(&path, &bytes)?;
    let note = serde_json::json!({ "url": path.display().to_string(), "size": bytes.len() });
    let payload = Payload::Bytes(Bytes::from(note.to_string()));
    let stored = events::publish(client, events::PUBLISHED, &id, payload, Some(&at)).await?;
    say(&format!(
        "cdn: {id} {at} -> {stored} ({} bytes)",
        bytes.len()
    ));
    Ok(())
}

/// Added later: reads video.published from the start and notes each video in
/// DIR/recommend/ID, needing no change to any other service.
async fn recommend(dir: &Path, delivery: DeliveryWire) -> anyhow::Result<()> {
    let (id, at) = event_of(events::PUBLISHED, &delivery)?;
    write_file(&dir.join("recommend").join(&id), at.as_bytes())?;
    say(&format!("recommend: {id} from {at}"));
    Ok(())
}

/// Counts every `video.>` event per subject, live, and prints the counts after each.
/// Pushes arrive with claim-checked payloads resolved, so the sizes it notes are the media's;
/// a counter that never looks at the bytes could skip the downloads with `try_next`.
async fn analytics(client: &Client) -> anyhow::Result<()> {
    let mut subscription =
        (client.subscribe("video.>", None).await).context("cannot subscribe to `video.>`")?;
    say("analytics: subscribed to video.>");
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(message) = subscription.next().await {
        *counts.entry(message.subject.clone()).or_default() += 1;
        let id = message.header_str(VIDEO_ID).unwrap_or("?");
        let cause = message.header_str(CAUSED_BY).unwrap_or("-");
        // A pushed claim-check reference arrives resolved: this is the payload's real size.
        let size = message.value.as_ref().map_or(0, |value| value.len());
        say(&format!(
            "analytics: {} {id} caused-by {cause} ({size} bytes)",
            message.subject
        ));
        say(&format!(
            "analytics summary: {} (dropped {})",
            serde_json::to_string(&counts)?,
            subscription.dropped()
        ));
    }
    bail!("the subscription to `video.>` ended: the connection closed")
}
