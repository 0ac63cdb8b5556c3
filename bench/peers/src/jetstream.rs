//! NATS JetStream: a work-queue stream on file storage, publishes acknowledged by the server
//! with a bounded window, and competing clients of one durable pull consumer that fetch
//! batches and ack each message explicitly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::stream::{Config, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, Context as JetStream};
use futures::stream::FuturesUnordered;
use futures::StreamExt;

use crate::run::Run;
use crate::Settings;

/// How long one pull request waits for its batch to fill before it is sent again.
const FETCH_EXPIRES: Duration = Duration::from_secs(1);

pub async fn run(settings: &Settings) -> anyhow::Result<serde_json::Value> {
    // A fresh work-queue stream: a message is removed once acked, as in a queue.
    let setup = connect(&settings.url).await?;
    let _ = setup.delete_stream(&settings.queue).await;
    let subject = format!("{}.records", settings.queue);
    let stream = setup
        .create_stream(Config {
            name: settings.queue.clone(),
            subjects: vec![subject.clone()],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            ..Default::default()
        })
        .await
        .context("cannot create the JetStream stream")?;
    stream
        .create_consumer(pull::Config {
            durable_name: Some("peer-bench".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .context("cannot create the JetStream consumer")?;

    // Every connection is open before the clock starts.
    let mut consumers = Vec::new();
    for _ in 0..settings.consumers {
        let context = connect(&settings.url).await?;
        let consumer: PullConsumer = context
            .get_stream(&settings.queue)
            .await?
            .get_consumer("peer-bench")
            .await
            .map_err(|err| anyhow::anyhow!("cannot open the JetStream consumer: {err}"))?;
        consumers.push(consumer);
    }
    let mut producers = Vec::new();
    for _ in 0..settings.producers {
        producers.push(connect(&settings.url).await?);
    }

    let run = Arc::new(Run::new(settings.count, settings.size));
    let (mut consumer_tasks, mut producer_tasks) = (Vec::new(), Vec::new());
    for consumer in consumers {
        let (run, fetch) = (Arc::clone(&run), settings.fetch);
        consumer_tasks.push(tokio::spawn(async move {
            consume(&consumer, fetch, &run).await
        }));
    }
    for context in producers {
        let (run, subject, window) = (Arc::clone(&run), subject.clone(), settings.window);
        producer_tasks.push(tokio::spawn(async move {
            produce(&context, &subject, window, &run).await
        }));
    }

    run.finish(producer_tasks, consumer_tasks, settings.timeout)
        .await?;
    Ok(run.report(
        "jetstream",
        serde_json::json!({
            "producers": settings.producers,
            "consumers": settings.consumers,
            "size": settings.size,
            "window": settings.window,
            "fetch": settings.fetch,
            "queue": "work-queue stream, file storage, publish acks, pull consumer, explicit acks",
        }),
    ))
}

async fn connect(url: &str) -> anyhow::Result<JetStream> {
    let client = async_nats::connect(url)
        .await
        .with_context(|| format!("cannot connect to NATS at {url}"))?;
    Ok(jetstream::new(client))
}

/// Publishes claimed records until none are left, with at most `window` unacknowledged.
async fn produce(
    context: &JetStream,
    subject: &str,
    window: usize,
    run: &Run,
) -> anyhow::Result<()> {
    let mut unconfirmed = FuturesUnordered::new();
    while run.claim() {
        if unconfirmed.len() >= window {
            confirmed(unconfirmed.next().await, run)?;
        }
        let sent = Instant::now();
        let ack = context
            .publish(subject.to_owned(), run.payload().into())
            .await?;
        unconfirmed.push(async move { (sent, ack.await) });
    }
    while let Some(next) = unconfirmed.next().await {
        confirmed(Some(next), run)?;
    }
    Ok(())
}

type PublishOutcome = (
    Instant,
    Result<jetstream::publish::PublishAck, jetstream::context::PublishError>,
);

/// Checks one publish acknowledgement and records its latency.
fn confirmed(next: Option<PublishOutcome>, run: &Run) -> anyhow::Result<()> {
    let Some((sent, ack)) = next else {
        return Ok(());
    };
    ack.context("JetStream did not store a publish")?;
    run.confirmed(sent);
    Ok(())
}

/// Fetches batches and acks each message until every record was acked.
async fn consume(consumer: &PullConsumer, fetch: usize, run: &Run) -> anyhow::Result<()> {
    while !run.is_done() {
        let mut batch = consumer
            .batch()
            .max_messages(fetch)
            .expires(FETCH_EXPIRES)
            .messages()
            .await?;
        while let Some(message) = batch.next().await {
            let message = message.map_err(|err| anyhow::anyhow!("{err}"))?;
            message
                .ack()
                .await
                .map_err(|err| anyhow::anyhow!("{err}"))?;
            run.acked(&message.payload);
        }
    }
    Ok(())
}
