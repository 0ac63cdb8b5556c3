//! Durable subscriptions through the `switchyard sub` commands against the real broker.
//!
//! - `three_modes_on_one_topic_each_see_every_record`: a stream, an exclusive and a queue
//!   subscription on one topic each read all 100 records produced (two with `consume
//!   --group`, one with `receive --ack`); deleting the queue one leaves the others.
//! - `a_filtered_queue_subscription_gets_only_matching_records`: `--filter 'origin = JFK'`
//!   takes the JFK records and skips the EWR ones; a filter that does not parse is refused
//!   with the parser's message.
//! - `a_subscription_from_latest_sees_only_later_records`: `--from latest`.

use std::process::Output;

use serde_json::Value;
use switchyard_tests::BrokerProcess;

const TOPIC: &str = "flights";

fn start() -> (BrokerProcess, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::start(data.path());
    broker.cli_ok(&["topic", "create", TOPIC, "--partitions", "3"]);
    (broker, data)
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Produces `lines` to the topic, each with the given headers.
fn produce(broker: &BrokerProcess, lines: &[String], headers: &[&str]) {
    let mut args = vec!["produce", TOPIC];
    for header in headers {
        args.extend(["--header", header]);
    }
    let input = lines.join("\n") + "\n";
    let out = broker.cli_with_input(&args, input.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
}

fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|n| format!("{prefix}-{n}")).collect()
}

/// Receives and acks from a queue until it answers empty; returns the values, sorted.
fn drain(broker: &BrokerProcess, queue: &str) -> Vec<String> {
    let mut all = Vec::new();
    loop {
        let out = broker.cli_ok(&["receive", queue, "--max", "50", "--ack", "--wait", "200ms"]);
        let got: Vec<String> = out.lines().map(str::to_string).collect();
        if got.is_empty() {
            break;
        }
        all.extend(got);
    }
    all.sort();
    all
}

fn consume(broker: &BrokerProcess, group: &str, count: usize) -> Vec<String> {
    let count = count.to_string();
    let out = broker.cli_ok(&["consume", TOPIC, "--group", group, "--count", &count]);
    let mut values: Vec<String> = out.lines().map(str::to_string).collect();
    values.sort();
    values
}

fn sorted(mut values: Vec<String>) -> Vec<String> {
    values.sort();
    values
}

#[test]
fn three_modes_on_one_topic_each_see_every_record() {
    let (broker, _data) = start();
    for (name, mode) in [("live", "stream"), ("work", "queue"), ("solo", "exclusive")] {
        let out = broker.cli_ok(&["sub", "create", TOPIC, name, "--mode", mode]);
        assert!(
            out.contains(&format!("{mode} subscription `{name}`")),
            "{out}"
        );
    }
    let listed = json_lines(&broker.cli_ok(&["sub", "list", TOPIC, "--json"])).remove(0);
    let modes: Vec<(&str, &str)> = listed
        .as_array()
        .expect("list")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or(""),
                s["mode"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        modes,
        [("live", "stream"), ("solo", "exclusive"), ("work", "queue")]
    );

    let records = numbered("r", 0..100);
    produce(&broker, &records, &[]);
    let expected = sorted(records);
    assert_eq!(consume(&broker, "live", 100), expected);
    assert_eq!(consume(&broker, "solo", 100), expected);
    assert_eq!(drain(&broker, "work"), expected);

    let described = broker.cli_ok(&["sub", "describe", "work", "--json"]);
    assert_eq!(json_lines(&described)[0]["acked_total"], 100, "{described}");
    let described = broker.cli_ok(&["sub", "describe", "live", "--json"]);
    assert_eq!(json_lines(&described)[0]["lag"], 0, "{described}");

    broker.cli_ok(&["sub", "delete", "work"]);
    let listed = json_lines(&broker.cli_ok(&["sub", "list", TOPIC, "--json"])).remove(0);
    let names: Vec<&str> = listed
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["live", "solo"]);
    // Unfiltered, the listing has every queue too: the dead-letter queue stays, as after
    // `queue delete`.
    let table = broker.cli_ok(&["sub", "list"]);
    assert!(
        table.contains("solo") && table.contains("work.dlq"),
        "{table}"
    );
    assert!(!table.lines().any(|line| line.contains("work ")), "{table}");
}

#[test]
fn a_filtered_queue_subscription_gets_only_matching_records() {
    let (broker, _data) = start();
    let args = [
        "sub",
        "create",
        TOPIC,
        "jfk",
        "--mode",
        "queue",
        "--filter",
        "origin = JFK",
    ];
    broker.cli_ok(&args);
    let jfk = numbered("jfk", 0..20);
    produce(&broker, &jfk, &["origin=JFK"]);
    produce(&broker, &numbered("ewr", 0..20), &["origin=EWR"]);
    assert_eq!(drain(&broker, "jfk"), sorted(jfk));

    let bad = broker.cli(&[
        "sub", "create", TOPIC, "junk", "--mode", "queue", "--filter", "a.>.b",
    ]);
    assert!(!bad.status.success(), "a garbage filter must be refused");
    let message = stderr(&bad);
    assert!(message.contains("invalid filter at position"), "{message}");
    let listed = broker.cli_ok(&["sub", "list"]);
    assert!(!listed.contains("junk"), "{listed}");
    let gone = broker.cli(&["sub", "delete", "junk"]);
    assert!(!gone.status.success());
    assert!(
        stderr(&gone).contains("no subscription named `junk`"),
        "{}",
        stderr(&gone)
    );
}

#[test]
fn a_subscription_from_latest_sees_only_later_records() {
    let (broker, _data) = start();
    produce(&broker, &numbered("old", 0..10), &[]);
    broker.cli_ok(&["sub", "create", TOPIC, "late", "--from", "latest"]);
    broker.cli_ok(&[
        "sub", "create", TOPIC, "lateq", "--mode", "queue", "--from", "latest",
    ]);
    let new = numbered("new", 0..10);
    produce(&broker, &new, &[]);
    assert_eq!(consume(&broker, "late", 10), sorted(new.clone()));
    assert_eq!(drain(&broker, "lateq"), sorted(new));
}
