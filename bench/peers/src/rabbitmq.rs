//! RabbitMQ over AMQP 0.9.1: a durable classic queue, persistent messages, publisher
//! confirms with a bounded window, and competing consumers with `basic.qos` prefetch and
//! manual acks.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

use crate::run::Run;
use crate::Settings;

/// AMQP delivery mode of a persistent message.
const PERSISTENT: u8 = 2;

pub async fn run(settings: &Settings) -> anyhow::Result<serde_json::Value> {
    // A fresh, empty, durable queue.
    let setup = connect(&settings.url).await?;
    let channel = setup.create_channel().await?;
    channel
        .queue_delete(
            settings.queue.as_str().into(),
            QueueDeleteOptions::default(),
        )
        .await?;
    channel
        .queue_declare(
            settings.queue.as_str().into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await?;

    // Every connection is open and every consumer subscribed before the clock starts.
    let mut consumers = Vec::new();
    for index in 0..settings.consumers {
        let connection = connect(&settings.url).await?;
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(settings.prefetch, BasicQosOptions::default())
            .await?;
        let deliveries = channel
            .basic_consume(
                settings.queue.as_str().into(),
                format!("peer-bench-{index}").as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        consumers.push((connection, deliveries));
    }
    let mut producers = Vec::new();
    for _ in 0..settings.producers {
        let connection = connect(&settings.url).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        producers.push((connection, channel));
    }

    let run = Arc::new(Run::new(settings.count, settings.size));
    let (mut consumer_tasks, mut producer_tasks) = (Vec::new(), Vec::new());
    for (connection, mut deliveries) in consumers {
        let run = Arc::clone(&run);
        consumer_tasks.push(tokio::spawn(async move {
            let _connection = connection;
            while let Some(delivery) = deliveries.next().await {
                let delivery = delivery?;
                delivery.ack(BasicAckOptions::default()).await?;
                run.acked(&delivery.data);
            }
            anyhow::Ok(())
        }));
    }
    for (connection, channel) in producers {
        let (run, queue, window) = (Arc::clone(&run), settings.queue.clone(), settings.window);
        producer_tasks.push(tokio::spawn(async move {
            let _connection = connection;
            produce(&channel, &queue, window, &run).await
        }));
    }

    run.finish(producer_tasks, consumer_tasks, settings.timeout)
        .await?;
    Ok(run.report(
        "rabbitmq",
        serde_json::json!({
            "producers": settings.producers,
            "consumers": settings.consumers,
            "size": settings.size,
            "window": settings.window,
            "prefetch": settings.prefetch,
            "queue": "durable classic, persistent messages, publisher confirms, manual acks",
        }),
    ))
}

/// Publishes claimed records until none are left, with at most `window` unconfirmed.
async fn produce(
    channel: &lapin::Channel,
    queue: &str,
    window: usize,
    run: &Run,
) -> anyhow::Result<()> {
    let mut unconfirmed = FuturesUnordered::new();
    while run.claim() {
        if unconfirmed.len() >= window {
            confirmed(unconfirmed.next().await, run)?;
        }
        let sent = Instant::now();
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                &run.payload(),
                BasicProperties::default().with_delivery_mode(PERSISTENT),
            )
            .await?;
        unconfirmed.push(async move { (sent, confirm.await) });
    }
    while let Some(next) = unconfirmed.next().await {
        confirmed(Some(next), run)?;
    }
    Ok(())
}

/// Checks one publisher confirm and records its latency.
fn confirmed(
    next: Option<(Instant, lapin::Result<lapin::Confirmation>)>,
    run: &Run,
) -> anyhow::Result<()> {
    let Some((sent, confirmation)) = next else {
        return Ok(());
    };
    anyhow::ensure!(confirmation?.is_ack(), "RabbitMQ nacked a publish");
    run.confirmed(sent);
    Ok(())
}

async fn connect(url: &str) -> anyhow::Result<Connection> {
    Connection::connect(url, ConnectionProperties::default())
        .await
        .with_context(|| format!("cannot connect to RabbitMQ at {url}"))
}
