//! `switchyard rule ...` and `switchyard trace`: event rules, and following what they routed.
//!
//! The broker routes by rules itself; these commands manage the rules, and `trace` prints the
//! tree of copies made from one record, found through their `sy-origin` headers.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use serde_json::json;
use switchyard_client::{Client, RuleHeaderWire, RuleWire, TraceStepWire};

use crate::output::{print_json, print_line, table};

#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Create a rule: copy records of topics matching SOURCE into TARGET.
    Create(CreateArgs),
    /// List the rules.
    List,
    /// Delete a rule; what it routed stays in its target.
    Delete { name: String },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    pub name: String,
    /// Subject pattern of the source topics, e.g. `video.uploaded` or `orders.>`; topics
    /// created later are covered too.
    #[arg(long)]
    pub source: String,
    /// Topic the copies go to; it must exist and must not match SOURCE.
    #[arg(long)]
    pub target: String,
    /// Route only records passing this filter on key and headers, e.g. "region = eu".
    #[arg(long)]
    pub filter: Option<String>,
    /// A header added to every copy, as NAME=VALUE; repeatable.
    #[arg(long = "header", value_parser = parse_header)]
    pub headers: Vec<RuleHeaderWire>,
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
}

fn parse_header(text: &str) -> Result<RuleHeaderWire, String> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(format!("`{text}` is not a header; write NAME=VALUE"));
    };
    if name.is_empty() {
        return Err(format!(
            "`{text}` has an empty header name; write NAME=VALUE"
        ));
    }
    Ok(RuleHeaderWire {
        name: name.to_string(),
        value: value.to_string(),
    })
}

fn rule_json(rule: &RuleWire) -> serde_json::Value {
    let headers: serde_json::Map<String, serde_json::Value> = rule
        .add_headers
        .iter()
        .map(|h| (h.name.clone(), json!(h.value)))
        .collect();
    json!({
        "name": rule.name, "source": rule.source, "target": rule.target,
        "filter": rule.filter, "headers": headers,
    })
}

pub async fn run(client: &Client, command: RuleCommand, json: bool) -> anyhow::Result<()> {
    match command {
        RuleCommand::Create(args) => {
            let rule = RuleWire {
                name: args.name,
                source: args.source,
                filter: args.filter,
                target: args.target,
                add_headers: args.headers,
            };
            client.create_rule(rule.clone()).await?;
            if json {
                print_json(&json!({ "created": rule_json(&rule) }));
            } else {
                print_line(format_args!(
                    "created rule `{}`: {} -> {}",
                    rule.name, rule.source, rule.target
                ));
            }
        }
        RuleCommand::List => {
            let all = client.list_rules().await?;
            if json {
                print_json(&json!(all.iter().map(rule_json).collect::<Vec<_>>()));
            } else {
                let mut out = table(&["rule", "source", "target", "filter", "headers"]);
                for rule in all {
                    let headers: Vec<String> = rule
                        .add_headers
                        .iter()
                        .map(|h| format!("{}={}", h.name, h.value))
                        .collect();
                    out.add_row(vec![
                        rule.name,
                        rule.source,
                        rule.target,
                        rule.filter.unwrap_or_default(),
                        headers.join(","),
                    ]);
                }
                print_line(out);
            }
        }
        RuleCommand::Delete { name } => {
            client.delete_rule(&name).await?;
            if json {
                print_json(&json!({ "deleted": name }));
            } else {
                print_line(format_args!("deleted rule `{name}`"));
            }
        }
    }
    Ok(())
}

pub async fn trace(client: &Client, args: TraceArgs, json: bool) -> anyhow::Result<()> {
    let steps = client
        .trace(&args.topic, args.partition, args.offset)
        .await?;
    let root = format!("{}/{}/{}", args.topic, args.partition, args.offset);
    if json {
        let list: Vec<_> = steps
            .iter()
            .map(|s| {
                json!({
                    "rule": s.rule, "topic": s.topic, "partition": s.partition,
                    "offset": s.offset, "origin": s.origin,
                })
            })
            .collect();
        print_json(&json!({ "record": root, "steps": list }));
        return Ok(());
    }
    let mut children: BTreeMap<&str, Vec<&TraceStepWire>> = BTreeMap::new();
    for step in &steps {
        children.entry(step.origin.as_str()).or_default().push(step);
    }
    let mut out = vec![root.clone()];
    tree_lines(&children, &root, 1, &mut out);
    if steps.is_empty() {
        out.push("  (no rule routed this record)".to_string());
    }
    print_line(out.join("\n"));
    Ok(())
}

/// Appends the steps below `origin`, indented by depth.
fn tree_lines(
    children: &BTreeMap<&str, Vec<&TraceStepWire>>,
    origin: &str,
    depth: usize,
    out: &mut Vec<String>,
) {
    // Depth is bounded by the broker's hop limit; the cap guards a malformed chain.
    if depth > 64 {
        return;
    }
    for step in children.get(origin).into_iter().flatten() {
        let at = format!("{}/{}/{}", step.topic, step.partition, step.offset);
        out.push(format!("{}{} -> {at}", "  ".repeat(depth), step.rule));
        tree_lines(children, &at, depth + 1, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_and_bad_ones_say_what_to_write() {
        let header = parse_header("stage=scan=1").expect("valid");
        assert_eq!(
            (header.name.as_str(), header.value.as_str()),
            ("stage", "scan=1")
        );
        assert!(parse_header("stage")
            .expect_err("bad")
            .contains("NAME=VALUE"));
        assert!(parse_header("=x").expect_err("bad").contains("empty"));
    }
}
