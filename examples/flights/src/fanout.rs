//! Fanout: the flights handed to many readers at once, live and durably.
//!
//! - `replay` publishes rows through `Publish` to the subject `flights`. Since a topic has
//!   that name, each publish is appended to the topic and also delivered to whoever
//!   subscribes to the subject at that moment. (A plain produce reaches only the topic.)
//! - `board` is a departures board: an ephemeral subscriber, optionally filtered by origin,
//!   printing one line per flight as it is published. It sees only what is published while
//!   it is connected, at most once.
//! - `origin-subscriptions` creates one durable, filtered queue subscription per airport
//!   (`from-EWR`, `from-JFK`, `from-LGA`), reads each to the end, and counts what it read.
//!
//! Filters match the record headers `origin`, `carrier` and `dest` that `load` and `replay`
//! attach to every record.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use serde_json::{Map, Value};
use switchyard_client::{
    Client, ClientError, ErrorCode, OffsetSpec, PublishRecordWire, ReceiveOptions,
    SubscriptionModeWire, SubscriptionOptions, TopicConfigWire,
};

use crate::data::{csv_reader, read_csv_from_zip, RowEncoder};

/// The airports of the data, one durable subscription each.
pub const ORIGINS: [&str; 3] = ["EWR", "JFK", "LGA"];

/// What `replay` publishes, and how fast.
pub struct ReplaySpec<'a> {
    pub server: &'a str,
    pub data: &'a Path,
    /// Subject, and topic of that name.
    pub topic: &'a str,
    /// Partitions of the topic when `replay` creates it.
    pub partitions: u32,
    /// Rows to leave out at the start of the file.
    pub skip: usize,
    /// Most rows to publish; `None` for the rest of the file.
    pub limit: Option<usize>,
    /// Records per second; 0 for as fast as the broker takes them.
    pub rate: f64,
    /// Records per publish.
    pub batch: usize,
}

/// Runs `flights replay`: creates the topic unless it exists, then publishes the rows.
pub async fn replay(spec: &ReplaySpec<'_>) -> anyhow::Result<()> {
    if spec.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if !(spec.rate >= 0.0 && spec.rate.is_finite()) {
        bail!("--rate must be a number of records per second, 0 for no limit");
    }
    let text = read_csv_from_zip(spec.data)?;
    let client = connect(spec.server).await?;
    let topic = spec.topic;
    match (client.create_topic(topic, spec.partitions, TopicConfigWire::default())).await {
        Ok(()) => eprintln!("created topic `{topic}`"),
        Err(ClientError::Server {
            code: ErrorCode::TopicExists,
            ..
        }) => {}
        Err(error) => {
            return Err(error).with_context(|| format!("cannot create topic `{topic}`"));
        }
    }

    let mut reader = csv_reader(&text);
    let encoder = RowEncoder::new(reader.headers().context("cannot read the CSV header")?);
    let rows = reader.records().enumerate().skip(spec.skip);
    let rows = rows.take(spec.limit.unwrap_or(usize::MAX));
    let started = Instant::now();
    let mut published = 0u64;
    let mut batch = Vec::with_capacity(spec.batch);
    for (index, row) in rows {
        // Line 1 is the header.
        let line = index as u64 + 2;
        let row = row.with_context(|| format!("cannot read CSV line {line}"))?;
        let value = serde_json::to_vec(&encoder.encode(&row, line)?)?;
        batch.push(PublishRecordWire {
            key: encoder
                .key(&row)
                .map(|key| Bytes::copy_from_slice(key.as_bytes())),
            value: Some(Bytes::from(value)),
            headers: encoder.headers(&row),
        });
        if batch.len() == spec.batch {
            published += publish(&client, topic, &mut batch).await?;
            pace(started, published, spec.rate).await;
        }
    }
    published += publish(&client, topic, &mut batch).await?;
    println!("{published} records published");
    Ok(())
}

/// Publishes and empties `batch`; returns how many records it held.
async fn publish(
    client: &Client,
    subject: &str,
    batch: &mut Vec<PublishRecordWire>,
) -> anyhow::Result<u64> {
    if batch.is_empty() {
        return Ok(0);
    }
    let records = std::mem::take(batch);
    let count = records.len() as u64;
    let published = (client.publish_many(subject, records).await)
        .with_context(|| format!("cannot publish to `{subject}`"))?;
    if published.stored.is_none() {
        bail!("the publish to `{subject}` was not stored: is there a topic of that name?");
    }
    Ok(count)
}

/// Sleeps until `published` records are due at `rate` per second since `started`.
async fn pace(started: Instant, published: u64, rate: f64) {
    if rate <= 0.0 {
        return;
    }
    let due = Duration::from_secs_f64(published as f64 / rate);
    if let Some(wait) = due.checked_sub(started.elapsed()) {
        tokio::time::sleep(wait).await;
    }
}

/// Runs `flights board`: prints flights published to `subject` as they come, those from
/// `origin` only when given, and stops after `count` of them when given.
pub async fn board(
    server: &str,
    subject: &str,
    origin: Option<&str>,
    count: Option<u64>,
) -> anyhow::Result<()> {
    if let Some(origin) = origin {
        if origin.is_empty() || !origin.chars().all(|c| c.is_ascii_alphanumeric()) {
            bail!("--origin must be an airport code such as JFK, not `{origin}`");
        }
    }
    let client = connect(server).await?;
    let filter = origin.map(|origin| format!("origin = {origin}"));
    let mut subscription = (client.subscribe(subject, filter.as_deref()).await)
        .with_context(|| format!("cannot subscribe to `{subject}`"))?;
    // Tells a script that what is published from now on reaches the board.
    eprintln!("subscribed");
    let mut shown = 0u64;
    while count.is_none_or(|count| shown < count) {
        let Some(message) = subscription.next().await else {
            bail!("the connection to the broker ended after {shown} flights");
        };
        println!(
            "{}",
            board_line(message.value.as_deref().unwrap_or_default())
        );
        shown += 1;
    }
    eprintln!("shown {shown} flights, dropped {}", subscription.dropped());
    Ok(())
}

/// One board line for a flight's JSON record: scheduled date and time, carrier and flight
/// number, destination, and the departure delay (or `cancelled` when it never left).
pub fn board_line(value: &[u8]) -> String {
    let Ok(flight) = serde_json::from_slice::<Map<String, Value>>(value) else {
        return "(not a flight record)".to_string();
    };
    let number = |name: &str| flight.get(name).and_then(Value::as_i64);
    let text = |name: &str| {
        (flight.get(name).and_then(Value::as_str))
            .unwrap_or("?")
            .to_string()
    };
    let date = match (number("year"), number("month"), number("day")) {
        (Some(year), Some(month), Some(day)) => format!("{year}-{month:02}-{day:02}"),
        _ => "????-??-??".to_string(),
    };
    let time = number("sched_dep_time").map_or("??:??".to_string(), |hhmm| {
        format!("{:02}:{:02}", hhmm / 100, hhmm % 100)
    });
    let flight_number = number("flight").map_or("?".to_string(), |n| n.to_string());
    let delay = match flight.get("dep_delay").and_then(Value::as_f64) {
        Some(minutes) => format!("{minutes:+} min"),
        None => "cancelled".to_string(),
    };
    format!(
        "{date} {time}  {}{flight_number:<5} {}  {delay}",
        text("carrier"),
        text("dest")
    )
}

/// Runs `flights origin-subscriptions`: one queue subscription per airport, each drained
/// concurrently; prints the counts as JSON.
pub async fn origin_subscriptions(
    server: &str,
    topic: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let client = connect(server).await?;
    for origin in ORIGINS {
        let name = subscription_name(origin);
        let options = SubscriptionOptions {
            mode: SubscriptionModeWire::Queue,
            filter: Some(format!("origin = {origin}")),
            start: OffsetSpec::Earliest,
            ..SubscriptionOptions::default()
        };
        (client.create_subscription(topic, &name, options).await).with_context(|| {
            format!(
                "cannot create subscription `{name}` on `{topic}` (to start over: \
                 `switchyard sub delete {name}`)"
            )
        })?;
    }
    let deadline = Instant::now() + timeout;
    let mut drains = Vec::new();
    for origin in ORIGINS {
        let client = connect(server).await?;
        drains.push(tokio::spawn(async move {
            drain(&client, origin, deadline).await
        }));
    }
    let mut counts = BTreeMap::new();
    for (origin, drain) in ORIGINS.iter().zip(drains) {
        let count = drain.await.context("a drain task panicked")??;
        counts.insert(*origin, count);
    }
    println!("{}", serde_json::to_string(&counts)?);
    Ok(())
}

/// The subscription of flights from `origin`.
fn subscription_name(origin: &str) -> String {
    format!("from-{origin}")
}

/// Receives and acks every record of `from-ORIGIN` until it holds nothing; returns how many
/// distinct records were acked. Each record's `origin` header must be `origin`.
async fn drain(client: &Client, origin: &str, deadline: Instant) -> anyhow::Result<u64> {
    let queue = subscription_name(origin);
    let options = ReceiveOptions {
        consumer: format!("origin-subscriptions-{origin}"),
        max: 1_000,
        wait: Duration::from_millis(500),
        ..ReceiveOptions::default()
    };
    let mut seen = HashSet::new();
    loop {
        if Instant::now() > deadline {
            bail!(
                "`{queue}` was not drained in time ({} records so far)",
                seen.len()
            );
        }
        let deliveries = (client.receive(&queue, &options).await)
            .with_context(|| format!("cannot receive from `{queue}`"))?;
        if deliveries.is_empty() {
            let stats = (client.queue_stats(&queue).await)
                .with_context(|| format!("cannot read the stats of `{queue}`"))?;
            if stats.ready == 0 && stats.in_flight == 0 && stats.delayed == 0 {
                return Ok(seen.len() as u64);
            }
            continue;
        }
        let mut tokens = Vec::with_capacity(deliveries.len());
        for delivery in &deliveries {
            let header = (delivery.headers.iter())
                .find(|(name, _)| name == "origin")
                .map(|(_, value)| value.as_ref());
            if header != Some(origin.as_bytes()) {
                bail!(
                    "`{queue}` delivered partition {} offset {}, whose origin header is {:?}",
                    delivery.partition,
                    delivery.offset,
                    header.map(String::from_utf8_lossy)
                );
            }
            tokens.push(delivery.token.clone());
        }
        let acks = (client.ack(&queue, &tokens).await)
            .with_context(|| format!("cannot ack on `{queue}`"))?;
        for (delivery, ack) in deliveries.iter().zip(acks) {
            if ack.is_ok() {
                seen.insert((delivery.partition, delivery.offset));
            }
        }
    }
}

async fn connect(server: &str) -> anyhow::Result<Client> {
    Client::connect(server)
        .await
        .with_context(|| format!("cannot connect to the broker at {server}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_board_line_shows_time_flight_dest_and_delay() {
        let row = br#"{"year":2013,"month":1,"day":2,"sched_dep_time":545,"carrier":"B6",
            "flight":725,"dest":"BQN","dep_delay":-1,"origin":"JFK"}"#;
        assert_eq!(board_line(row), "2013-01-02 05:45  B6725   BQN  -1 min");
        let cancelled = br#"{"year":2013,"month":1,"day":2,"sched_dep_time":1930,
            "carrier":"AA","flight":1,"dest":"LAX","dep_delay":null}"#;
        assert_eq!(
            board_line(cancelled),
            "2013-01-02 19:30  AA1     LAX  cancelled"
        );
    }
}
