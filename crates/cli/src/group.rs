//! `switchyard group ...`: list, describe and delete consumer groups.

use clap::Subcommand;
use serde_json::json;
use switchyard_client::Client;

use crate::output::{cell, count, print_json, print_line, table};

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List consumer groups.
    List,
    /// Show a group's members, assignment, committed offsets and lag.
    Describe { name: String },
    /// Delete a group and its committed offsets.
    Delete { name: String },
}

pub async fn run(client: &Client, command: GroupCommand, json: bool) -> anyhow::Result<()> {
    match command {
        GroupCommand::List => {
            let groups = client.list_groups().await?;
            if json {
                let list: Vec<_> = groups
                    .iter()
                    .map(|g| {
                        json!({
                            "name": g.name, "topic": g.topic,
                            "members": g.members, "generation": g.generation,
                        })
                    })
                    .collect();
                print_json(&json!(list));
            } else {
                let mut out = table(&["group", "topic", "members", "generation"]);
                for g in groups {
                    out.add_row(vec![
                        g.name,
                        g.topic,
                        g.members.to_string(),
                        g.generation.to_string(),
                    ]);
                }
                print_line(out);
            }
        }
        GroupCommand::Describe { name } => describe(client, &name, json).await?,
        GroupCommand::Delete { name } => {
            client.delete_group(&name).await?;
            if json {
                print_json(&json!({ "deleted": name }));
            } else {
                print_line(format_args!("deleted group `{name}`"));
            }
        }
    }
    Ok(())
}

/// `group describe NAME`, also `sub describe` of a stream or exclusive subscription.
pub async fn describe(client: &Client, name: &str, json: bool) -> anyhow::Result<()> {
    let group = client.describe_group(name).await?;
    let owner = |partition: u32| {
        group
            .members
            .iter()
            .find(|m| m.partitions.contains(&partition))
            .map(|m| m.member_id.clone())
    };
    let total_lag: u64 = group.partitions.iter().map(|p| p.lag).sum();
    if json {
        let members: Vec<_> = group
            .members
            .iter()
            .map(|m| {
                json!({
                    "member_id": m.member_id, "client": m.client_name,
                    "partitions": m.partitions,
                })
            })
            .collect();
        let partitions: Vec<_> = group
            .partitions
            .iter()
            .map(|p| {
                json!({
                    "partition": p.partition, "committed": p.committed,
                    "log_start": p.log_start, "log_end": p.log_end, "lag": p.lag,
                    "owner": owner(p.partition),
                })
            })
            .collect();
        print_json(&json!({
            "name": group.name, "topic": group.topic, "generation": group.generation,
            "lag": total_lag, "members": members, "partitions": partitions,
        }));
        return Ok(());
    }
    print_line(format_args!(
        "group `{}` on topic `{}`: generation {}, {}, total lag {total_lag}",
        group.name,
        group.topic,
        group.generation,
        count(group.members.len() as u64, "member"),
    ));
    let mut out = table(&[
        "partition",
        "owner",
        "committed",
        "log start",
        "log end",
        "lag",
    ]);
    for p in &group.partitions {
        out.add_row(vec![
            p.partition.to_string(),
            owner(p.partition).unwrap_or_else(|| "-".into()),
            cell(p.committed),
            p.log_start.to_string(),
            p.log_end.to_string(),
            p.lag.to_string(),
        ]);
    }
    print_line(out);
    Ok(())
}
