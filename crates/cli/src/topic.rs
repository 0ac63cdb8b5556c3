//! `switchyard topic ...`: create, list, describe, delete, add partitions.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;
use switchyard_client::Client;
use switchyard_protocol::{FsyncPolicyWire, TopicConfigWire};
use switchyard_server::units::{format_size, parse_duration, parse_size};

use crate::output::{cell, count, print_json, print_line, table};

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List topics.
    List,
    /// Show a topic's settings and partitions (start and end offsets, size).
    Describe { name: String },
    /// Delete a topic and all its records.
    Delete { name: String },
    /// Raise a topic's partition count to a new total.
    AddPartitions {
        name: String,
        /// New total number of partitions.
        #[arg(long)]
        total: u32,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    pub name: String,
    /// Number of partitions [default: the server's, 1].
    #[arg(long)]
    pub partitions: Option<u32>,
    /// Keep records this long, e.g. `7d`, `12h`; `forever` keeps them [default: 7d].
    #[arg(long)]
    pub retention: Option<String>,
    /// Trim each partition to about this size, e.g. `10GiB`.
    #[arg(long)]
    pub retention_bytes: Option<String>,
    /// Segment size, e.g. `1GiB`.
    #[arg(long)]
    pub segment_bytes: Option<String>,
    /// always | interval | never [default: interval].
    #[arg(long)]
    pub fsync: Option<String>,
    /// Largest accepted record, e.g. `4MiB`; set here, at creation [default: the server's
    /// max_record_bytes, 1 MiB]; plus 4 KiB it must fit the server's max_frame_bytes.
    #[arg(long)]
    pub max_record_bytes: Option<String>,
}

impl CreateArgs {
    /// The wire settings these flags describe; a bad value is named.
    pub fn config(&self) -> anyhow::Result<TopicConfigWire> {
        let retention_ms = match self.retention.as_deref() {
            None => None,
            Some("forever" | "none") => Some(u64::MAX),
            Some(text) => {
                let retention = parse_duration(text).map_err(anyhow::Error::msg)?;
                anyhow::ensure!(
                    !retention.is_zero(),
                    "--retention {text} would delete every record at once; use --retention \
                     forever to keep records forever"
                );
                Some(retention.as_millis() as u64)
            }
        };
        let fsync = self.fsync.as_deref().map(parse_fsync).transpose()?;
        let size = |text: &Option<String>| text.as_deref().map(parse_size).transpose();
        let max_record = size(&self.max_record_bytes).map_err(anyhow::Error::msg)?;
        Ok(TopicConfigWire {
            retention_ms,
            retention_bytes: size(&self.retention_bytes).map_err(anyhow::Error::msg)?,
            segment_bytes: size(&self.segment_bytes).map_err(anyhow::Error::msg)?,
            segment_ms: None,
            fsync,
            fsync_interval_ms: None,
            max_record_bytes: max_record
                .map(u32::try_from)
                .transpose()
                .context("--max-record-bytes must be under 4 GiB")?,
        })
    }
}

pub fn parse_fsync(text: &str) -> anyhow::Result<FsyncPolicyWire> {
    match text {
        "always" => Ok(FsyncPolicyWire::Always),
        "interval" => Ok(FsyncPolicyWire::Interval),
        "never" => Ok(FsyncPolicyWire::Never),
        other => anyhow::bail!("unknown fsync policy `{other}`; use always, interval or never"),
    }
}

pub async fn run(client: &Client, command: TopicCommand, json: bool) -> anyhow::Result<()> {
    match command {
        TopicCommand::Create(args) => {
            let config = args.config()?;
            client
                .create_topic(&args.name, args.partitions.unwrap_or(0), config)
                .await?;
            if json {
                print_json(&json!({ "created": args.name }));
            } else {
                print_line(format_args!("created topic `{}`", args.name));
            }
        }
        TopicCommand::List => {
            let topics = client.list_topics().await?;
            if json {
                let list: Vec<_> = topics
                    .iter()
                    .map(|t| json!({ "name": t.name, "partitions": t.partitions }))
                    .collect();
                print_json(&json!(list));
            } else {
                let mut out = table(&["topic", "partitions"]);
                for topic in topics {
                    out.add_row(vec![topic.name, topic.partitions.to_string()]);
                }
                print_line(out);
            }
        }
        TopicCommand::Describe { name } => describe(client, &name, json).await?,
        TopicCommand::Delete { name } => {
            client.delete_topic(&name).await?;
            if json {
                print_json(&json!({ "deleted": name }));
            } else {
                print_line(format_args!("deleted topic `{name}`"));
            }
        }
        TopicCommand::AddPartitions { name, total } => {
            client.add_partitions(&name, total).await?;
            if json {
                print_json(&json!({ "topic": name, "partitions": total }));
            } else {
                print_line(format_args!(
                    "topic `{name}` now has {}",
                    count(u64::from(total), "partition")
                ));
            }
        }
    }
    Ok(())
}

async fn describe(client: &Client, name: &str, json: bool) -> anyhow::Result<()> {
    let description = client.describe_topic(name).await?;
    let config = &description.config;
    let records: u64 = description
        .partitions
        .iter()
        .map(|p| p.end_offset - p.start_offset)
        .sum();
    let fsync = config
        .fsync
        .map(|policy| format!("{policy:?}").to_lowercase());
    if json {
        let partitions: Vec<_> = description
            .partitions
            .iter()
            .map(|p| {
                json!({
                    "partition": p.partition, "start_offset": p.start_offset,
                    "end_offset": p.end_offset, "size_bytes": p.size_bytes, "segments": p.segments,
                })
            })
            .collect();
        print_json(&json!({
            "name": description.name,
            "records": records,
            "config": {
                "retention_ms": config.retention_ms, "retention_bytes": config.retention_bytes,
                "segment_bytes": config.segment_bytes, "fsync": fsync,
                "fsync_interval_ms": config.fsync_interval_ms,
                "max_record_bytes": config.max_record_bytes,
            },
            "partitions": partitions,
        }));
        return Ok(());
    }
    let retention = config
        .retention_ms
        .filter(|ms| *ms != u64::MAX)
        .map(|ms| humantime::format_duration(std::time::Duration::from_millis(ms)).to_string());
    print_line(format_args!(
        "topic `{}`: {}, {}",
        description.name,
        count(description.partitions.len() as u64, "partition"),
        count(records, "record"),
    ));
    print_line(format_args!(
        "retention {} / {}, fsync {}, max record {}",
        retention.unwrap_or_else(|| "forever".into()),
        config
            .retention_bytes
            .map_or_else(|| "no size limit".into(), format_size),
        fsync.unwrap_or_else(|| "-".into()),
        cell(config.max_record_bytes.map(|b| format_size(u64::from(b)))),
    ));
    let mut out = table(&[
        "partition",
        "start offset",
        "end offset",
        "records",
        "size",
        "segments",
    ]);
    for p in &description.partitions {
        out.add_row(vec![
            p.partition.to_string(),
            p.start_offset.to_string(),
            p.end_offset.to_string(),
            (p.end_offset - p.start_offset).to_string(),
            format_size(p.size_bytes),
            p.segments.to_string(),
        ]);
    }
    print_line(out);
    Ok(())
}
