//! Queue commands: `queue create|list|delete|stats` (here), `send`, `receive`, `ack`, `nack`,
//! `extend` ([`messages`]) and `dlq list|peek|redrive` ([`dlq`]).
//!
//! Every duration and size flag is parsed by clap through [`flags`], so a bad value is
//! reported with the flag's name before anything is sent.

pub mod dlq;
pub mod flags;
pub mod messages;

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;
use switchyard_client::{Client, ExpiryWire, OverflowWire, QueueConfigWire, QueueStatsWire};
use switchyard_server::units::format_size;

use crate::output::{cell, print_json, print_line, table};
use flags::{duration_ms, parse_expiry, parse_factor, parse_overflow, size};

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Create a queue (and its dead-letter queue, `<name>.dlq` unless told otherwise).
    Create(Box<CreateArgs>),
    /// List queues.
    List,
    /// Delete a queue and its records; its dead-letter queue stays.
    Delete { name: String },
    /// Show a queue's depth by stage, its totals and its settings.
    Stats { name: String },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    pub name: String,
    /// Partitions of the queue's topic [default: the server's].
    #[arg(long)]
    pub partitions: Option<u32>,
    /// How long a received record stays invisible unless acked [default: 30s].
    #[arg(long, value_parser = duration_ms)]
    pub visibility: Option<u64>,
    /// Deliveries without an ack before a record is dead-lettered [default: 5].
    #[arg(long)]
    pub max_deliveries: Option<u32>,
    /// Dead-letter queue [default: NAME.dlq].
    #[arg(long, conflicts_with = "no_dead_letter")]
    pub dead_letter: Option<String>,
    /// Drop dead letters instead of keeping them in a dead-letter queue.
    #[arg(long)]
    pub no_dead_letter: bool,
    /// Delay of a record sent without one [default: 0s].
    #[arg(long, value_parser = duration_ms)]
    pub delay: Option<u64>,
    /// Priority levels, 1 to 10 [default: 1, none].
    #[arg(long)]
    pub priorities: Option<u8>,
    /// Deliver at most one record per key at a time, in order.
    #[arg(long)]
    pub ordered_by_key: bool,
    /// How long a dedup id suppresses a second record with it [default: 5m].
    #[arg(long, value_parser = duration_ms)]
    pub dedup_window: Option<u64>,
    /// Most records the queue holds [default: no limit].
    #[arg(long)]
    pub max_records: Option<u64>,
    /// Most payload bytes the queue holds, e.g. 64MiB [default: no limit].
    #[arg(long, value_parser = size)]
    pub max_bytes: Option<u64>,
    /// What a full queue does with a new record: reject, drop-oldest or block [default:
    /// reject].
    #[arg(long, value_parser = parse_overflow)]
    pub overflow: Option<OverflowWire>,
    /// With --overflow block, how long a send waits for room [default: 5s].
    #[arg(long, value_parser = duration_ms)]
    pub block_timeout: Option<u64>,
    /// Time-to-live of a record sent without one [default: none].
    #[arg(long, value_parser = duration_ms)]
    pub ttl: Option<u64>,
    /// What an expired record becomes: dead-letter or drop [default: dead-letter].
    #[arg(long, value_parser = parse_expiry)]
    pub on_expiry: Option<ExpiryWire>,
    /// First retry delay after a nack or an expired lease [default: 0s, none].
    #[arg(long, value_parser = duration_ms)]
    pub retry_base: Option<u64>,
    /// Growth of the retry delay per delivery, at least 1 [default: 2].
    #[arg(long, value_parser = parse_factor)]
    pub retry_factor: Option<u32>,
    /// Longest retry delay [default: 1m].
    #[arg(long, value_parser = duration_ms)]
    pub retry_cap: Option<u64>,
    /// Random spread of each retry delay, e.g. 20% [default: 20%].
    #[arg(long, value_parser = flags::parse_share)]
    pub retry_jitter: Option<u32>,
    /// Let retention remove records this queue has not acked (they are counted as lost)
    /// instead of keeping them past the topic's retention.
    #[arg(long)]
    pub no_retention_protection: bool,
}

impl CreateArgs {
    /// The wire settings these flags describe; absent flags take the server's defaults.
    pub fn config(&self) -> QueueConfigWire {
        let dead_letter = if self.no_dead_letter {
            Some(String::new())
        } else {
            self.dead_letter.clone()
        };
        QueueConfigWire {
            visibility_ms: self.visibility,
            max_deliveries: self.max_deliveries,
            dead_letter,
            default_delay_ms: self.delay,
            priorities: self.priorities,
            ordered_by_key: self.ordered_by_key.then_some(true),
            dedup_window_ms: self.dedup_window,
            max_records: self.max_records,
            max_bytes: self.max_bytes,
            overflow: self.overflow,
            block_timeout_ms: self.block_timeout,
            ttl_ms: self.ttl,
            on_expiry: self.on_expiry,
            retry_base_ms: self.retry_base,
            retry_factor_milli: self.retry_factor,
            retry_cap_ms: self.retry_cap,
            retry_jitter_milli: self.retry_jitter,
            protect_from_retention: self.no_retention_protection.then_some(false),
        }
    }
}

pub async fn run(client: &Client, command: QueueCommand, json: bool) -> anyhow::Result<()> {
    match command {
        QueueCommand::Create(args) => {
            client
                .create_queue(&args.name, args.partitions.unwrap_or(0), args.config())
                .await?;
            let stats = client.queue_stats(&args.name).await?;
            let dead_letter = stats.config.dead_letter.unwrap_or_default();
            if json {
                print_json(&json!({ "created": args.name, "dead_letter": dead_letter }));
            } else if dead_letter.is_empty() {
                print_line(format_args!(
                    "created queue `{}` (no dead-letter queue)",
                    args.name
                ));
            } else {
                print_line(format_args!(
                    "created queue `{}` with dead-letter queue `{dead_letter}`",
                    args.name
                ));
            }
        }
        QueueCommand::List => {
            let names = client.list_queues().await?;
            if json {
                print_json(&json!(names));
            } else {
                let mut out = table(&["queue"]);
                for name in names {
                    out.add_row(vec![name]);
                }
                print_line(out);
            }
        }
        QueueCommand::Delete { name } => {
            client.delete_queue(&name).await?;
            if json {
                print_json(&json!({ "deleted": name }));
            } else {
                print_line(format_args!("deleted queue `{name}`"));
            }
        }
        QueueCommand::Stats { name } => stats(client, &name, json).await?,
    }
    Ok(())
}

/// `queue stats NAME`, also `sub describe` of a queue subscription.
pub async fn stats(client: &Client, name: &str, json: bool) -> anyhow::Result<()> {
    let stats = client.queue_stats(name).await?;
    if json {
        print_json(&stats_json(name, &stats));
    } else {
        print_stats(name, &stats);
    }
    Ok(())
}

fn stats_json(name: &str, stats: &QueueStatsWire) -> serde_json::Value {
    let config = &stats.config;
    json!({
        "name": name,
        "ready": stats.ready,
        "in_flight": stats.in_flight,
        "delayed": stats.delayed,
        "blocked": stats.blocked,
        "dead_lettered": stats.dead_lettered,
        "oldest_ready_age_ms": stats.oldest_ready_age_ms,
        "delivered_total": stats.delivered_total,
        "acked_total": stats.acked_total,
        "dead_lettered_total": stats.dead_lettered_total,
        "expired_total": stats.expired_total,
        "dropped_total": stats.dropped_total,
        "lost_total": stats.lost_total,
        "config": {
            "visibility_ms": config.visibility_ms,
            "max_deliveries": config.max_deliveries,
            "dead_letter": config.dead_letter.as_deref().filter(|name| !name.is_empty()),
            "default_delay_ms": config.default_delay_ms,
            "priorities": config.priorities,
            "ordered_by_key": config.ordered_by_key,
            "dedup_window_ms": config.dedup_window_ms,
            "max_records": config.max_records,
            "max_bytes": config.max_bytes,
            "overflow": config.overflow.map(flags::overflow_name),
            "block_timeout_ms": config.block_timeout_ms,
            "ttl_ms": config.ttl_ms,
            "on_expiry": config.on_expiry.map(flags::expiry_name),
            "retry_base_ms": config.retry_base_ms,
            "retry_factor": config.retry_factor_milli.map(|milli| f64::from(milli) / 1000.0),
            "retry_cap_ms": config.retry_cap_ms,
            "retry_jitter": config.retry_jitter_milli.map(|milli| f64::from(milli) / 1000.0),
            "protect_from_retention": config.protect_from_retention,
        },
    })
}

fn human(ms: Option<u64>) -> String {
    cell(ms.map(|ms| humantime::format_duration(Duration::from_millis(ms))))
}

fn print_stats(name: &str, stats: &QueueStatsWire) {
    let mut depth = table(&[
        "ready",
        "in flight",
        "delayed",
        "blocked",
        "dead-lettered",
        "oldest ready",
    ]);
    depth.add_row(vec![
        stats.ready.to_string(),
        stats.in_flight.to_string(),
        stats.delayed.to_string(),
        stats.blocked.to_string(),
        stats.dead_lettered.to_string(),
        human(stats.oldest_ready_age_ms),
    ]);
    let mut totals = table(&[
        "delivered",
        "acked",
        "dead-lettered",
        "expired",
        "dropped",
        "lost",
    ]);
    totals.add_row(vec![
        stats.delivered_total.to_string(),
        stats.acked_total.to_string(),
        stats.dead_lettered_total.to_string(),
        stats.expired_total.to_string(),
        stats.dropped_total.to_string(),
        stats.lost_total.to_string(),
    ]);
    let config = &stats.config;
    let dead_letter = config
        .dead_letter
        .clone()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "none".into());
    print_line(format_args!("queue `{name}`"));
    print_line(depth);
    print_line("totals since the broker started:");
    print_line(totals);
    print_line(format_args!(
        "visibility {}, max deliveries {}, dead-letter queue {dead_letter}, delay {}, \
         dedup window {}",
        human(config.visibility_ms),
        cell(config.max_deliveries),
        human(config.default_delay_ms),
        human(config.dedup_window_ms),
    ));
    print_line(format_args!(
        "priorities {}, ordered by key {}, max records {}, max bytes {}, overflow {}, ttl {}",
        cell(config.priorities),
        cell(config.ordered_by_key),
        cell(config.max_records),
        cell(config.max_bytes.map(format_size)),
        cell(config.overflow.map(flags::overflow_name)),
        human(config.ttl_ms),
    ));
}
