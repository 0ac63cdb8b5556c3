//! `switchyard bench`: load generators against a running broker.
//!
//! Each prints records/s, MB/s and a latency distribution from an HDR histogram, or one JSON
//! object with `--json`. What they produce stays in the topic, so `topic describe` can
//! confirm the count. Latency is measured from when a request was *due* (under `--rate`)
//! rather than when it was sent, so a stalled broker cannot hide its stall by slowing the
//! load generator down (coordinated omission).

mod consume;
mod end_to_end;
mod fanout;
mod produce;
mod pubsub;
mod queue;
mod report;
mod request;

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use switchyard_client::Client;
use switchyard_protocol::TopicConfigWire;
use switchyard_server::units::parse_duration;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Produce records as fast as possible (or at --rate).
    Produce(ProduceArgs),
    /// Read a topic from its start as fast as the broker serves it.
    Consume(ConsumeArgs),
    /// Produce at --rate (10,000 records/s unless given) and consume at once; latency is
    /// produce → consume.
    EndToEnd(EndToEndArgs),
    /// Send to a queue as fast as confirms allow while competing consumers receive and ack;
    /// latency is send → ack.
    Queue(queue::QueueArgs),
    /// Request-reply round trips at --rate against an echo responder; latency is request →
    /// reply.
    Request(request::RequestArgs),
    /// Publish records to --subscribers ephemeral subscribers as fast as the broker takes
    /// them; latency is publish → delivered.
    Pubsub(pubsub::PubsubArgs),
    /// Produce --count records, then read the whole topic with --subscriptions consumer
    /// groups at once; with --broker-pid, the broker's CPU and disk reads while they read.
    Fanout(fanout::FanoutArgs),
}

/// How long a benchmark runs: a count of records or a duration.
#[derive(Debug, Args, Clone)]
pub struct LimitArgs {
    /// Records in all [default: 1000000].
    #[arg(long)]
    pub count: Option<u64>,
    /// How long to run instead of a count, e.g. `10s`.
    #[arg(long)]
    pub duration: Option<String>,
}

/// The topic a benchmark writes, and what it writes there.
#[derive(Debug, Args, Clone)]
pub struct WriteArgs {
    /// Topic to write; created when missing.
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Value size of each record in bytes.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Records per produce request.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Partitions of the topic when it is created.
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// Fsync policy of the topic when it is created: always, interval or never.
    #[arg(long)]
    pub fsync: Option<String>,
}

/// Settings of `bench produce`.
#[derive(Debug, Args, Clone)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub write: WriteArgs,
    #[command(flatten)]
    pub limit: LimitArgs,
    /// Records per second in all [default: unlimited].
    #[arg(long)]
    pub rate: Option<u64>,
    /// Producer connections.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Produce requests each producer keeps in flight.
    #[arg(long, default_value_t = 8)]
    pub in_flight: usize,
}

/// Settings of `bench consume`.
#[derive(Debug, Args, Clone)]
pub struct ConsumeArgs {
    /// Topic to read; it must exist and hold records (fill it with `bench produce`).
    #[arg(long, default_value = "bench")]
    pub topic: String,
    #[command(flatten)]
    pub limit: LimitArgs,
    /// Consumer connections.
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
}

/// Settings of `bench end-to-end`.
#[derive(Debug, Args, Clone)]
pub struct EndToEndArgs {
    #[command(flatten)]
    pub write: WriteArgs,
    #[command(flatten)]
    pub limit: LimitArgs,
    /// Records per second in all; the default is the rate the latency target is set at.
    #[arg(long, default_value_t = end_to_end::DEFAULT_RATE)]
    pub rate: u64,
}

/// When a benchmark stops.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    Count(u64),
    Duration(Duration),
}

impl LimitArgs {
    pub fn limit(&self) -> anyhow::Result<Limit> {
        match (&self.count, &self.duration) {
            (Some(_), Some(_)) => anyhow::bail!("give --count or --duration, not both"),
            (Some(count), None) => Ok(Limit::Count(*count)),
            (None, Some(text)) => Ok(Limit::Duration(
                parse_duration(text).map_err(anyhow::Error::msg)?,
            )),
            (None, None) => Ok(Limit::Count(1_000_000)),
        }
    }
}

impl WriteArgs {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.batch >= 1, "--batch must be at least 1");
        Ok(())
    }
}

impl ProduceArgs {
    fn validate(&self) -> anyhow::Result<()> {
        self.write.validate()?;
        anyhow::ensure!(self.producers >= 1, "--producers must be at least 1");
        anyhow::ensure!(self.in_flight >= 1, "--in-flight must be at least 1");
        anyhow::ensure!(self.rate != Some(0), "--rate must be at least 1");
        Ok(())
    }
}

impl ConsumeArgs {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.consumers >= 1, "--consumers must be at least 1");
        Ok(())
    }
}

impl EndToEndArgs {
    fn validate(&self) -> anyhow::Result<()> {
        self.write.validate()?;
        anyhow::ensure!(self.rate >= 1, "--rate must be at least 1");
        Ok(())
    }
}

pub async fn run(
    client: &Client,
    server: &str,
    command: BenchCommand,
    json: bool,
) -> anyhow::Result<()> {
    let report = match command {
        BenchCommand::Queue(args) => return queue::run(client, server, &args, json).await,
        BenchCommand::Fanout(args) => return fanout::run(client, server, &args, json).await,
        BenchCommand::Produce(args) => {
            args.validate()?;
            ensure_topic(client, &args.write).await?;
            produce::run(server, &args).await?
        }
        BenchCommand::Consume(args) => {
            args.validate()?;
            consume::run(client, server, &args).await?
        }
        BenchCommand::EndToEnd(args) => {
            args.validate()?;
            ensure_topic(client, &args.write).await?;
            end_to_end::run(client, server, &args).await?
        }
        BenchCommand::Request(args) => request::run(server, &args).await?,
        BenchCommand::Pubsub(args) => pubsub::run(server, &args).await?,
    };
    report.print(json);
    Ok(())
}

/// Creates the benchmark topic unless it exists.
async fn ensure_topic(client: &Client, args: &WriteArgs) -> anyhow::Result<()> {
    let topics = client.list_topics().await?;
    if topics.iter().any(|topic| topic.name == args.topic) {
        return Ok(());
    }
    let config = TopicConfigWire {
        fsync: args
            .fsync
            .as_deref()
            .map(crate::topic::parse_fsync)
            .transpose()?,
        ..TopicConfigWire::default()
    };
    client
        .create_topic(&args.topic, args.partitions, config)
        .await
        .with_context(|| format!("cannot create benchmark topic `{}`", args.topic))
}

/// A progress bar on a terminal, hidden otherwise.
pub fn progress(total: Option<u64>) -> indicatif::ProgressBar {
    let bar = match total {
        Some(total) => indicatif::ProgressBar::new(total),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
    bar
}
