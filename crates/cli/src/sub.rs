//! `switchyard sub ...`: durable subscriptions — create, list, describe and delete.
//!
//! A subscription is a named reader of a topic or of subject patterns. Stream and exclusive
//! subscriptions are consumer groups (read with `switchyard consume TOPIC_OR_PATTERN --group
//! NAME`), queue subscriptions are queues (read with `switchyard receive NAME`), so
//! `describe` shows what `group describe` or `queue stats` would.

use clap::{Args, Subcommand};
use serde_json::json;
use switchyard_client::{
    Client, ErrorCode, OffsetSpec, QueueConfigWire, SubscriptionModeWire, SubscriptionOptions,
};

use crate::output::{print_json, print_line, table};
use crate::queue::flags::duration_ms;

#[derive(Debug, Subcommand)]
pub enum SubCommand {
    /// Create a durable subscription on a topic or on subject patterns.
    ///
    /// Read a stream or exclusive subscription with `switchyard consume TOPIC_OR_PATTERN
    /// --group NAME`, a queue subscription with `switchyard receive NAME` (then `ack`).
    Create(CreateArgs),
    /// List subscriptions, of every topic or of one.
    List {
        /// Only this topic's subscriptions.
        topic: Option<String>,
    },
    /// Show a subscription: its group's lag (stream, exclusive) or its queue's stats.
    Describe { name: String },
    /// Delete a subscription; the topic and the other subscriptions stay.
    Delete { name: String },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A topic, a pattern (`orders.*.created`, `orders.>`), or several separated by commas
    /// (`a.A,a.*.B`): each record of a matching topic, present or created later, once.
    #[arg(value_name = "TOPIC_OR_PATTERN")]
    pub topic: String,
    pub name: String,
    /// stream (a consumer group), exclusive (one active member, the others standing by) or
    /// queue (competing consumers with leases and acks).
    #[arg(long, default_value = "stream", value_parser = parse_mode)]
    pub mode: SubscriptionModeWire,
    /// Take only records passing this filter on key and headers, e.g. "origin = JFK";
    /// the others are never delivered and never count as backlog.
    #[arg(long)]
    pub filter: Option<String>,
    /// Where to start: earliest, latest, or an RFC 3339 time such as 2013-01-01T10:00:00Z.
    #[arg(long, default_value = "earliest", value_parser = parse_start)]
    pub from: OffsetSpec,
    /// Partitions of the subscription's own log (one on patterns, or a filtered stream one):
    /// records are placed by key, so order holds per key only when more than one
    /// [default: 1, one order over everything].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub partitions: Option<u32>,
    /// Queue mode: how long a received record stays invisible unless acked [default: 30s].
    #[arg(long, value_parser = duration_ms)]
    pub visibility: Option<u64>,
    /// Queue mode: deliveries without an ack before a record is dead-lettered [default: 5].
    #[arg(long)]
    pub max_deliveries: Option<u32>,
    /// Queue mode: dead-letter queue [default: NAME.dlq].
    #[arg(long, conflicts_with = "no_dead_letter")]
    pub dead_letter: Option<String>,
    /// Queue mode: drop dead letters instead of keeping them in a dead-letter queue.
    #[arg(long)]
    pub no_dead_letter: bool,
}

impl CreateArgs {
    fn has_queue_flags(&self) -> bool {
        self.visibility.is_some()
            || self.max_deliveries.is_some()
            || self.dead_letter.is_some()
            || self.no_dead_letter
    }

    fn queue_config(&self) -> QueueConfigWire {
        let dead_letter = if self.no_dead_letter {
            Some(String::new())
        } else {
            self.dead_letter.clone()
        };
        QueueConfigWire {
            visibility_ms: self.visibility,
            max_deliveries: self.max_deliveries,
            dead_letter,
            ..QueueConfigWire::default()
        }
    }
}

fn parse_mode(text: &str) -> Result<SubscriptionModeWire, String> {
    match text {
        "stream" => Ok(SubscriptionModeWire::Stream),
        "exclusive" => Ok(SubscriptionModeWire::Exclusive),
        "queue" => Ok(SubscriptionModeWire::Queue),
        other => Err(format!(
            "`{other}` is not a subscription mode; use stream, exclusive or queue"
        )),
    }
}

fn mode_name(mode: SubscriptionModeWire) -> &'static str {
    match mode {
        SubscriptionModeWire::Stream => "stream",
        SubscriptionModeWire::Exclusive => "exclusive",
        SubscriptionModeWire::Queue => "queue",
    }
}

fn parse_start(text: &str) -> Result<OffsetSpec, String> {
    match text {
        "earliest" | "beginning" => Ok(OffsetSpec::Earliest),
        "latest" | "end" => Ok(OffsetSpec::Latest),
        _ => {
            let ms = crate::time::parse_rfc3339_ms(text).map_err(|err| match err {
                crate::time::TimeError::Unusable(why) => why,
                crate::time::TimeError::NotATime => format!(
                    "`{text}` is not a start; use earliest, latest, or an RFC 3339 time such as \
                     {}",
                    crate::time::EXAMPLES
                ),
            })?;
            Ok(OffsetSpec::Timestamp(ms))
        }
    }
}

/// How to read a subscription, for the message after creating it.
fn read_hint(topic: &str, name: &str, mode: SubscriptionModeWire) -> String {
    match mode {
        SubscriptionModeWire::Queue => format!("switchyard receive {name}"),
        // Quoted when it is a pattern, so that a shell leaves `*` and `>` alone.
        _ if topic.contains(['*', '>', ',']) => {
            format!("switchyard consume '{topic}' --group {name}")
        }
        _ => format!("switchyard consume {topic} --group {name}"),
    }
}

pub async fn run(client: &Client, command: SubCommand, json: bool) -> anyhow::Result<()> {
    match command {
        SubCommand::Create(args) => {
            if args.mode != SubscriptionModeWire::Queue && args.has_queue_flags() {
                anyhow::bail!(
                    "--visibility, --max-deliveries, --dead-letter and --no-dead-letter are for \
                     --mode queue only"
                );
            }
            let options = SubscriptionOptions {
                mode: args.mode,
                filter: args.filter.clone(),
                start: args.from,
                queue: args.queue_config(),
                partitions: args.partitions.unwrap_or(0),
            };
            client
                .create_subscription(&args.topic, &args.name, options)
                .await?;
            let mode = mode_name(args.mode);
            if json {
                print_json(&json!({
                    "created": args.name, "topic": args.topic, "mode": mode,
                }));
            } else {
                print_line(format_args!(
                    "created {mode} subscription `{}` on `{}`; read it with `{}`",
                    args.name,
                    args.topic,
                    read_hint(&args.topic, &args.name, args.mode),
                ));
            }
        }
        SubCommand::List { topic } => {
            let all = client.list_subscriptions(topic.as_deref()).await?;
            if json {
                let list: Vec<_> = all
                    .iter()
                    .map(|s| json!({ "name": s.name, "topic": s.topic, "mode": mode_name(s.mode) }))
                    .collect();
                print_json(&json!(list));
            } else {
                let mut out = table(&["subscription", "topic or patterns", "mode"]);
                for s in all {
                    out.add_row(vec![s.name, s.topic, mode_name(s.mode).to_string()]);
                }
                print_line(out);
            }
        }
        SubCommand::Describe { name } => {
            let all = client.list_subscriptions(None).await?;
            let Some(found) = all.iter().find(|s| s.name == name) else {
                anyhow::bail!("no subscription named `{name}`; see `switchyard sub list`");
            };
            if !json {
                let mode = mode_name(found.mode);
                print_line(format_args!(
                    "{mode} subscription `{name}` on `{}`",
                    found.topic
                ));
            }
            match found.mode {
                SubscriptionModeWire::Queue => crate::queue::stats(client, &name, json).await?,
                _ => crate::group::describe(client, &name, json).await?,
            }
        }
        SubCommand::Delete { name } => {
            if let Err(err) = client.delete_subscription(&name).await {
                // The broker looks for a queue last, so its error would suggest making one.
                if err.code() == Some(ErrorCode::UnknownQueue) {
                    anyhow::bail!("no subscription named `{name}`; see `switchyard sub list`");
                }
                return Err(err.into());
            }
            if json {
                print_json(&json!({ "deleted": name }));
            } else {
                print_line(format_args!("deleted subscription `{name}`"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values_parse_and_bad_ones_say_what_to_write() {
        assert_eq!(parse_mode("queue"), Ok(SubscriptionModeWire::Queue));
        assert!(parse_mode("fanout").expect_err("bad").contains("exclusive"));
        assert_eq!(parse_start("latest"), Ok(OffsetSpec::Latest));
        assert_eq!(
            parse_start("1970-01-01T00:00:01Z"),
            Ok(OffsetSpec::Timestamp(1_000))
        );
        assert!(parse_start("soon").expect_err("bad").contains("RFC 3339"));
    }
}
