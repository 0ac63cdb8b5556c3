//! `bench fanout`: one producer writes --count records to a topic, then --subscriptions
//! consumer groups (fresh names, one connection each) read the whole topic at once.
//!
//! The read phase is the one measured for fanout: records/s in all and per subscription,
//! and, with `--broker-pid` (a broker on this machine), the broker's CPU time (utime + stime
//! from `/proc/PID/stat`) and the bytes it read from disk (`read_bytes` of `/proc/PID/io`)
//! between the start and the end of the read phase.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::json;
use switchyard_client::{Client, JoinRequest, PartitionOffset, ResetPolicyWire};

use super::{produce, LimitArgs, ProduceArgs, WriteArgs};
use crate::output::{count, print_line};

/// Bytes asked for per fetch, as in `bench consume`.
const FETCH_BYTES: u32 = 4 << 20;
/// Clock ticks per second of `/proc/PID/stat` (`getconf CLK_TCK`; 100 on Linux).
const CLK_TCK: f64 = 100.0;

/// Settings of `bench fanout`.
#[derive(Debug, Args, Clone)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub write: WriteArgs,
    /// Records to produce before the read phase.
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    /// Produce requests kept in flight by the producer.
    #[arg(long, default_value_t = 8)]
    pub in_flight: usize,
    /// Consumer groups that each read the whole topic, each on its own connection.
    #[arg(long, default_value_t = 1)]
    pub subscriptions: usize,
    /// PID of the broker, when it runs on this machine: report its CPU time and disk reads
    /// during the read phase (from /proc).
    #[arg(long)]
    pub broker_pid: Option<u32>,
}

/// CPU time and disk reads of a process at one moment.
#[derive(Debug, Clone, Copy)]
struct ProcSample {
    cpu_seconds: f64,
    read_bytes: u64,
}

fn sample(pid: u32) -> anyhow::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat (is --broker-pid right?)"))?;
    // The command name may hold spaces; the fields after it start at the state (field 3).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |index: usize| -> anyhow::Result<u64> {
        fields
            .get(index)
            .context("short /proc/PID/stat")?
            .parse::<u64>()
            .context("malformed /proc/PID/stat")
    };
    // utime is field 14 and stime field 15, i.e. 11 and 12 after the state.
    let cpu_seconds = (ticks(11)? + ticks(12)?) as f64 / CLK_TCK;
    let io = std::fs::read_to_string(format!("/proc/{pid}/io"))
        .with_context(|| format!("cannot read /proc/{pid}/io"))?;
    let read_bytes = io
        .lines()
        .find_map(|line| line.strip_prefix("read_bytes:"))
        .context("no read_bytes in /proc/PID/io")?
        .trim()
        .parse()
        .context("malformed read_bytes in /proc/PID/io")?;
    Ok(ProcSample {
        cpu_seconds,
        read_bytes,
    })
}

/// What one subscription read.
struct SubscriptionResult {
    group: String,
    records: u64,
    elapsed: Duration,
}

pub async fn run(
    client: &Client,
    server: &str,
    args: &FanoutArgs,
    json: bool,
) -> anyhow::Result<()> {
    args.write.validate()?;
    anyhow::ensure!(args.count >= 1, "--count must be at least 1");
    anyhow::ensure!(args.in_flight >= 1, "--in-flight must be at least 1");
    anyhow::ensure!(
        args.subscriptions >= 1,
        "--subscriptions must be at least 1"
    );
    if let Some(pid) = args.broker_pid {
        sample(pid)?;
    }

    // Produce phase.
    super::ensure_topic(client, &args.write).await?;
    let produce_args = ProduceArgs {
        write: args.write.clone(),
        limit: LimitArgs {
            count: Some(args.count),
            duration: None,
        },
        rate: None,
        producers: 1,
        in_flight: args.in_flight,
    };
    let produced = produce::run(server, &produce_args).await?;

    // Read phase: every subscription reads the topic from its start to its end as of now.
    let description = client.describe_topic(&args.write.topic).await?;
    let ranges: Vec<(u32, u64, u64)> = description
        .partitions
        .iter()
        .map(|p| (p.partition, p.start_offset, p.end_offset))
        .collect();
    let available: u64 = ranges.iter().map(|(_, from, until)| until - from).sum();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let mut joined = Vec::new();
    for index in 0..args.subscriptions {
        let group = format!("bench-fanout-{}-{stamp}-{index}", std::process::id());
        let connection = Client::connect(server).await?;
        let member = connection
            .join_group(JoinRequest {
                group: group.clone(),
                topic: args.write.topic.clone(),
                member_id: None,
                client_name: "switchyard bench fanout".to_string(),
                session_timeout_ms: 60_000,
                reset: ResetPolicyWire::Earliest,
            })
            .await
            .with_context(|| format!("cannot join group `{group}`"))?;
        joined.push((group, connection, member));
    }
    let before = args.broker_pid.map(sample).transpose()?;
    let start = Instant::now();
    let mut readers = Vec::new();
    for (group, connection, member) in joined {
        let ranges: Vec<(u32, u64, u64)> = ranges
            .iter()
            .copied()
            .filter(|(partition, _, _)| member.assignment.contains(partition))
            .collect();
        let topic = args.write.topic.clone();
        readers.push(tokio::spawn(async move {
            let records = Arc::new(AtomicU64::new(0));
            let mut partitions = Vec::new();
            for (partition, from, until) in ranges.iter().copied() {
                let (client, records) = (connection.clone(), Arc::clone(&records));
                partitions.push(tokio::spawn(read_partition(
                    client,
                    topic.clone(),
                    partition,
                    from,
                    until,
                    records,
                )));
            }
            for partition in partitions {
                partition.await??;
            }
            let elapsed = start.elapsed();
            let offsets: Vec<PartitionOffset> = ranges
                .iter()
                .map(|&(partition, _, until)| PartitionOffset {
                    partition,
                    offset: until,
                })
                .collect();
            connection
                .commit_offsets(&group, &member.member_id, member.generation, &offsets)
                .await?;
            connection.leave_group(&group, &member.member_id).await?;
            anyhow::Ok(SubscriptionResult {
                group,
                records: records.load(Ordering::Acquire),
                elapsed,
            })
        }));
    }
    let mut results = Vec::new();
    for reader in readers {
        results.push(reader.await??);
    }
    let read_elapsed = start.elapsed();
    let after = args.broker_pid.map(sample).transpose()?;
    let read_total: u64 = results.iter().map(|r| r.records).sum();
    let broker = before.zip(after).map(|(before, after)| ProcSample {
        cpu_seconds: after.cpu_seconds - before.cpu_seconds,
        read_bytes: after.read_bytes.saturating_sub(before.read_bytes),
    });
    let rate = |records: u64, elapsed: Duration| records as f64 / elapsed.as_secs_f64().max(1e-9);

    if json {
        let per_subscription: Vec<_> = results
            .iter()
            .map(|r| {
                json!({
                    "group": r.group,
                    "records": r.records,
                    "seconds": r.elapsed.as_secs_f64(),
                    "records_per_sec": rate(r.records, r.elapsed),
                })
            })
            .collect();
        let broker = broker.map(|b| {
            json!({
                "pid": args.broker_pid,
                "cpu_seconds": b.cpu_seconds,
                "read_bytes": b.read_bytes,
                "cpu_us_per_record": b.cpu_seconds * 1e6 / read_total.max(1) as f64,
            })
        });
        print_line(json!({
            "bench": "fanout",
            "topic": args.write.topic,
            "size": args.write.size,
            "subscriptions": args.subscriptions,
            "produce": {
                "records": produced.records,
                "seconds": produced.elapsed.as_secs_f64(),
                "records_per_sec": produced.records_per_sec(),
            },
            "read": {
                "records_per_subscription": available,
                "records": read_total,
                "seconds": read_elapsed.as_secs_f64(),
                "records_per_sec": rate(read_total, read_elapsed),
                "per_subscription": per_subscription,
            },
            "broker": broker,
        }));
        return Ok(());
    }
    print_line(format_args!(
        "produce: {} in {:.2} s: {:.0} records/s",
        count(produced.records, "record"),
        produced.elapsed.as_secs_f64(),
        produced.records_per_sec()
    ));
    print_line(format_args!(
        "read: {} subscriptions × {}: {} in {:.2} s: {:.0} records/s in all",
        args.subscriptions,
        count(available, "record"),
        count(read_total, "record"),
        read_elapsed.as_secs_f64(),
        rate(read_total, read_elapsed)
    ));
    for r in &results {
        print_line(format_args!(
            "  {}: {} in {:.2} s: {:.0} records/s",
            r.group,
            count(r.records, "record"),
            r.elapsed.as_secs_f64(),
            rate(r.records, r.elapsed)
        ));
    }
    if let Some(b) = broker {
        print_line(format_args!(
            "broker during the read: {:.2} s CPU ({:.3} µs per record read), \
             {} bytes read from disk",
            b.cpu_seconds,
            b.cpu_seconds * 1e6 / read_total.max(1) as f64,
            b.read_bytes
        ));
    }
    Ok(())
}

/// Reads one partition from `offset` up to `until`, in the fetch loop of `bench consume`.
async fn read_partition(
    client: Client,
    topic: String,
    partition: u32,
    mut offset: u64,
    until: u64,
    records: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    while offset < until {
        let fetched = client
            .fetch(&topic, partition, offset, FETCH_BYTES, Duration::ZERO)
            .await?;
        let in_range = fetched
            .records
            .iter()
            .take_while(|r| r.offset < until)
            .count() as u64;
        let next = fetched.next_offset(offset);
        anyhow::ensure!(
            next > offset,
            "fetch of partition {partition} at {offset} made no progress"
        );
        offset = next;
        records.fetch_add(in_range, Ordering::AcqRel);
    }
    Ok(())
}
