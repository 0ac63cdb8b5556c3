//! The services, one per process, each reading its durable queue subscription(s) and
//! publishing the next event itself.
//!
//! A delivery is acked once its work is done and its event published; a failure nacks it so
//! the broker redelivers it. Work is idempotent (files are rewritten whole, `ready` keeps
//! its join state as marker files), so a redelivery after a crash only repeats it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::ValueEnum;
use switchyard_client::{Client, DeliveryWire, ReceiveOptions};
use tokio::sync::Mutex;

use crate::events::{self, Event, CAUSED_BY};
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

pub async fn run(server: &str, service: Service, dir: &Path) -> anyhow::Result<()> {
    let client = events::connect(server).await?;
    let dir = dir.to_path_buf();
    match service {
        Service::Scanner => consume(&client, "video-scanner", |d| scan(&client, d)).await,
        Service::Thumbnail => {
            consume(&client, "video-thumbnail", |d| thumbnail(&client, &dir, d)).await
        }
        Service::Encoder => consume(&client, "video-encoder", |d| encode(&client, &dir, d)).await,
        Service::Ready => ready(&client, &dir).await,
        Service::Cdn => consume(&client, "video-cdn", |d| cdn(&client, &dir, d)).await,
        Service::Analytics => analytics(&client).await,
        Service::Recommend => {
            events::create_queue_subscription(&client, events::PUBLISHED, RECOMMEND).await?;
            consume(&client, RECOMMEND, |d| recommend(&dir, d)).await
        }
    }
}

/// Receives from queue `queue` forever, acking what `handle` did and nacking what it failed.
async fn consume<F, Fut>(client: &Client, queue: &str, mut handle: F) -> anyhow::Result<()>
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
        let deliveries = (client.receive(queue, &options).await)
            .with_context(|| format!("cannot receive from `{queue}`"))?;
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

/// The event of a delivery and where it came from (`topic/partition/offset`).
fn event_of(topic: &str, delivery: &DeliveryWire) -> anyhow::Result<(Event, String)> {
    let value = delivery.value.as_deref().unwrap_or_default();
    let event: Event = serde_json::from_slice(value)
        .with_context(|| format!("{topic} offset {} is not a video event", delivery.offset))?;
    if event.id.is_empty()
        || !event
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    {
        bail!(
            "{topic} offset {} has a bad id `{}`",
            delivery.offset,
            event.id
        );
    }
    Ok((
        event,
        events::location(topic, delivery.partition, delivery.offset),
    ))
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

/// video.uploaded → video.scanned when the file exists and has the magic, else
/// video.rejected.
async fn scan(client: &Client, delivery: DeliveryWire) -> anyhow::Result<()> {
    let (event, at) = event_of(events::UPLOADED, &delivery)?;
    let verdict = match std::fs::read(&event.path) {
        Ok(bytes) if media::is_clean(&bytes) => None,
        Ok(_) => Some("no media magic: file rejected".to_string()),
        Err(error) => Some(format!("cannot read {}: {error}", event.path)),
    };
    let (topic, event) = match verdict {
        None => (events::SCANNED, event),
        Some(reason) => (
            events::REJECTED,
            Event {
                reason: Some(reason),
                ..event
            },
        ),
    };
    let stored = events::publish(client, topic, &event, Some(&at)).await?;
    say(&format!("scanner: {} {at} -> {stored}", event.id));
    Ok(())
}

/// video.scanned → DIR/thumbs/ID.thumb → video.thumbnailed.
async fn thumbnail(client: &Client, dir: &Path, delivery: DeliveryWire) -> anyhow::Result<()> {
    let (event, at) = event_of(events::SCANNED, &delivery)?;
    let bytes =
        std::fs::read(&event.path).with_context(|| format!("cannot read {}", event.path))?;
    let thumb = media::thumbnail(&bytes);
    let path = dir.join("thumbs").join(format!("{}.thumb", event.id));
    write_file(&path, thumb)?;
    let next = Event {
        path: path.display().to_string(),
        size: thumb.len() as u64,
        ..event
    };
    let stored = events::publish(client, events::THUMBNAILED, &next, Some(&at)).await?;
    say(&format!("thumbnail: {} {at} -> {stored}", next.id));
    Ok(())
}

/// video.scanned → DIR/encoded/ID.enc → video.encoded.
async fn encode(client: &Client, dir: &Path, delivery: DeliveryWire) -> anyhow::Result<()> {
    let (event, at) = event_of(events::SCANNED, &delivery)?;
    let bytes =
        std::fs::read(&event.path).with_context(|| format!("cannot read {}", event.path))?;
    let encoded = media::encode(&bytes);
    let path = encoded_path(dir, &event.id);
    write_file(&path, &encoded)?;
    let next = Event {
        path: path.display().to_string(),
        size: encoded.len() as u64,
        ..event
    };
    let stored = events::publish(client, events::ENCODED, &next, Some(&at)).await?;
    say(&format!("encoder: {} {at} -> {stored}", next.id));
    Ok(())
}

fn encoded_path(dir: &Path, id: &str) -> PathBuf {
    dir.join("encoded").join(format!("{id}.enc"))
}

/// Joins video.thumbnailed and video.encoded per id into video.ready.
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
            consume(&client, queue, |delivery| {
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
    let (event, at) = event_of(topic, &delivery)?;
    let state = dir.join("state").join("ready");
    let _held = lock.lock().await;
    write_file(&state.join(format!("{}.{half}", event.id)), at.as_bytes())?;
    let done = state.join(format!("{}.done", event.id));
    if done.exists() {
        return Ok(());
    }
    let thumb = std::fs::read_to_string(state.join(format!("{}.thumb", event.id)));
    let enc = std::fs::read_to_string(state.join(format!("{}.enc", event.id)));
    let (Ok(thumb), Ok(enc)) = (thumb, enc) else {
        say(&format!(
            "ready: {} has {half}, waiting for the other half",
            event.id
        ));
        return Ok(());
    };
    let encoded = encoded_path(dir, &event.id);
    let size = std::fs::metadata(&encoded)
        .with_context(|| format!("cannot stat {}", encoded.display()))?
        .len();
    let next = Event {
        id: event.id.clone(),
        path: encoded.display().to_string(),
        size,
        reason: None,
    };
    let cause = format!("{thumb},{enc}");
    let stored = events::publish(client, events::READY, &next, Some(&cause)).await?;
    write_file(&done, stored.as_bytes())?;
    say(&format!("ready: {} {cause} -> {stored}", next.id));
    Ok(())
}

/// video.ready → DIR/cdn/ID (a copy of the encoding) → video.published.
async fn cdn(client: &Client, dir: &Path, delivery: DeliveryWire) -> anyhow::Result<()> {
    let (event, at) = event_of(events::READY, &delivery)?;
    let bytes =
        std::fs::read(&event.path).with_context(|| format!("cannot read {}", event.path))?;
    let path = dir.join("cdn").join(&event.id);
    write_file(&path, &bytes)?;
    let next = Event {
        path: path.display().to_string(),
        size: bytes.len() as u64,
        ..event
    };
    let stored = events::publish(client, events::PUBLISHED, &next, Some(&at)).await?;
    say(&format!("cdn: {} {at} -> {stored}", next.id));
    Ok(())
}

/// Added later: reads video.published from the start and notes each video in
/// DIR/recommend/ID, needing no change to any other service.
async fn recommend(dir: &Path, delivery: DeliveryWire) -> anyhow::Result<()> {
    let (event, at) = event_of(events::PUBLISHED, &delivery)?;
    write_file(&dir.join("recommend").join(&event.id), at.as_bytes())?;
    say(&format!("recommend: {} from {at}", event.id));
    Ok(())
}

/// Counts every `video.>` event per subject, live, and prints the counts after each.
async fn analytics(client: &Client) -> anyhow::Result<()> {
    let mut subscription =
        (client.subscribe("video.>", None).await).context("cannot subscribe to `video.>`")?;
    say("analytics: subscribed to video.>");
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(message) = subscription.next().await {
        *counts.entry(message.subject.clone()).or_default() += 1;
        let id = message.header_str(events::VIDEO_ID).unwrap_or("?");
        let cause = message.header_str(CAUSED_BY).unwrap_or("-");
        say(&format!(
            "analytics: {} {id} caused-by {cause}",
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
