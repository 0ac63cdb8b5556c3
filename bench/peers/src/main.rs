//! `peer-bench`: the workload of `switchyard bench queue`, run against RabbitMQ (AMQP 0.9.1)
//! or NATS JetStream, so the three can be compared on one machine.
//!
//! P producers send N records of S bytes as fast as the broker's confirms allow (each keeps
//! at most `--window` unconfirmed); C competing consumers receive and ack each record. The
//! run lasts from the first send to the last ack. Each payload starts with its send time, so
//! the consumer measures send → ack with the process's own clock; the confirm latency is
//! send → the broker's confirm of that record. Prints one JSON line.
//!
//! `--mode pubsub` (with `--system nats`) is instead the workload of `switchyard bench
//! pubsub` against NATS core: one publisher, `--subscribers` subscribers, no JetStream.
//!
//! - `run`: counters, histograms, the report.
//! - `rabbitmq`, `jetstream`: one file per system.
//! - `pubsub`: the NATS core pub/sub run.

mod jetstream;
mod pubsub;
mod rabbitmq;
mod run;

use std::time::Duration;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum System {
    Rabbitmq,
    Jetstream,
    /// NATS core, for `--mode pubsub`.
    Nats,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
enum Mode {
    /// Competing consumers with acks (RabbitMQ, JetStream).
    #[default]
    Queue,
    /// Ephemeral fanout to subscribers (NATS core).
    Pubsub,
}

/// Queue benchmark against RabbitMQ or NATS JetStream; pub/sub benchmark against NATS core.
#[derive(Debug, Parser)]
#[command(name = "peer-bench")]
struct Cli {
    /// The broker to measure.
    #[arg(long, value_enum)]
    system: System,
    /// The workload: `queue`, or `pubsub` (only with `--system nats`).
    #[arg(long, value_enum, default_value_t = Mode::Queue)]
    mode: Mode,
    /// Broker address, e.g. amqp://guest:guest@127.0.0.1:5672/%2f or nats://127.0.0.1:4222.
    #[arg(long)]
    url: String,
    /// Queue (RabbitMQ) or stream (JetStream) name; deleted and created afresh.
    #[arg(long, default_value = "peer_bench")]
    queue: String,
    /// Records to send and ack in all.
    #[arg(long, default_value_t = 200_000)]
    count: u64,
    /// Payload size in bytes (at least 8: the send time).
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Producer connections.
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Competing consumer connections.
    #[arg(long, default_value_t = 4)]
    consumers: usize,
    /// Unconfirmed publishes each producer keeps in flight.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// RabbitMQ: unacked deliveries per consumer (basic.qos prefetch).
    #[arg(long, default_value_t = 100)]
    prefetch: u16,
    /// JetStream: messages per pull request.
    #[arg(long, default_value_t = 100)]
    fetch: usize,
    /// Give up when the run has not finished after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Pub/sub: subscribers, each on its own connection.
    #[arg(long, default_value_t = 1)]
    subscribers: usize,
    /// Pub/sub: records per second to publish [default: as fast as possible].
    #[arg(long)]
    rate: Option<u64>,
    /// Pub/sub: the subject.
    #[arg(long, default_value = "bench.pubsub")]
    subject: String,
}

/// The settings each system's run reads.
pub struct Settings {
    pub url: String,
    pub queue: String,
    pub count: u64,
    pub size: usize,
    pub producers: usize,
    pub consumers: usize,
    pub window: usize,
    pub prefetch: u16,
    pub fetch: usize,
    pub timeout: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(
        cli.size >= 8,
        "--size must be at least 8 bytes: the send time"
    );
    anyhow::ensure!(cli.count >= 1, "--count must be at least 1");
    match (cli.mode, cli.system) {
        (Mode::Pubsub, System::Nats) => {
            anyhow::ensure!(cli.subscribers >= 1, "--subscribers must be at least 1");
            anyhow::ensure!(cli.rate != Some(0), "--rate must be at least 1");
            let settings = pubsub::PubsubSettings {
                url: cli.url,
                subject: cli.subject,
                count: cli.count,
                size: cli.size,
                subscribers: cli.subscribers,
                rate: cli.rate,
                timeout: Duration::from_secs(cli.timeout),
            };
            println!("{}", pubsub::run(&settings).await?);
            return Ok(());
        }
        (Mode::Pubsub, _) => anyhow::bail!("--mode pubsub runs against --system nats"),
        (Mode::Queue, System::Nats) => anyhow::bail!("--system nats is for --mode pubsub"),
        (Mode::Queue, _) => {}
    }
    anyhow::ensure!(
        cli.producers >= 1 && cli.consumers >= 1,
        "need a producer and a consumer"
    );
    anyhow::ensure!(
        cli.window >= 1 && cli.prefetch >= 1 && cli.fetch >= 1,
        "window, prefetch and fetch must be at least 1"
    );
    let settings = Settings {
        url: cli.url,
        queue: cli.queue,
        count: cli.count,
        size: cli.size,
        producers: cli.producers,
        consumers: cli.consumers,
        window: cli.window,
        prefetch: cli.prefetch,
        fetch: cli.fetch,
        timeout: Duration::from_secs(cli.timeout),
    };
    let report = match cli.system {
        System::Rabbitmq => rabbitmq::run(&settings).await?,
        System::Jetstream => jetstream::run(&settings).await?,
        System::Nats => unreachable!("checked above"),
    };
    println!("{report}");
    Ok(())
}
