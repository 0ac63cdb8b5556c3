//! Event rules and trace through the `switchyard rule` and `switchyard trace` commands
//! against the real broker.
//!
//! - `a_record_flows_down_the_chain_and_trace_shows_it`: `video.uploaded` → `video.scanned`
//!   → (`video.thumbnailed`, `video.encoded`) in parallel; one record produced upstream
//!   reaches both leaves with the stamps, and `trace --json` lists all three steps.
//! - `a_rule_into_its_own_source_is_refused`: the target matches the source pattern.

use std::time::Duration;

use serde_json::Value;
use switchyard_tests::{wait_until, BrokerProcess};

const TOPICS: [&str; 4] = [
    "video.uploaded",
    "video.scanned",
    "video.thumbnailed",
    "video.encoded",
];

fn trace(broker: &BrokerProcess) -> Value {
    let out = broker.cli_ok(&["--json", "trace", "video.uploaded", "0", "0"]);
    serde_json::from_str(&out).expect("trace is JSON")
}

/// The first record of a topic that has one (consume blocks until it arrives).
fn first_record(broker: &BrokerProcess, topic: &str) -> Value {
    let group = format!("check-{topic}");
    let out = broker.cli_ok(&[
        "--json", "consume", topic, "--group", &group, "--count", "1",
    ]);
    serde_json::from_str(out.trim()).expect("record is JSON")
}

#[test]
fn a_record_flows_down_the_chain_and_trace_shows_it() {
    let data = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::start(data.path());
    for topic in TOPICS {
        broker.cli_ok(&["topic", "create", topic, "--partitions", "1"]);
    }
    let rules = [
        ("scan", "video.uploaded", "video.scanned"),
        ("thumbnail", "video.scanned", "video.thumbnailed"),
        ("encode", "video.scanned", "video.encoded"),
    ];
    for (name, source, target) in rules {
        let stage = format!("stage={name}");
        broker.cli_ok(&[
            "rule", "create", name, "--source", source, "--target", target, "--header", &stage,
        ]);
    }
    let listed: Value = serde_json::from_str(&broker.cli_ok(&["--json", "rule", "list"]))
        .expect("rule list is JSON");
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");

    let out = broker.cli_with_input(&["produce", "video.uploaded", "--key", "clip-1"], b"v1\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The router works from the maintenance thread: wait until all three copies exist.
    let mut traced = Value::Null;
    let complete = wait_until(Duration::from_secs(10), || {
        traced = trace(&broker);
        traced["steps"].as_array().map(Vec::len) == Some(3)
    });
    assert!(complete, "the chain did not complete: {traced}");

    // Both leaves got the copy, stamped by the last rule.
    for (topic, rule) in [
        ("video.thumbnailed", "thumbnail"),
        ("video.encoded", "encode"),
    ] {
        let record = first_record(&broker, topic);
        assert_eq!(record["key"], "clip-1", "{record}");
        assert_eq!(record["value"], "v1", "{record}");
        assert_eq!(record["headers"]["sy-rule"], rule, "{record}");
        assert_eq!(record["headers"]["stage"], rule, "{record}");
        assert_eq!(
            record["headers"]["sy-origin"], "video.scanned/0/0",
            "{record}"
        );
        assert_eq!(record["headers"]["sy-hops"], "2", "{record}");
    }

    let trace = traced;
    let steps = trace["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 3, "{trace}");
    assert_eq!(steps[0]["rule"], "scan");
    assert_eq!(steps[0]["topic"], "video.scanned");
    let mut leaves: Vec<_> = steps[1..]
        .iter()
        .map(|s| {
            (
                s["rule"].as_str().unwrap_or(""),
                s["origin"].as_str().unwrap_or(""),
            )
        })
        .collect();
    leaves.sort();
    assert_eq!(
        leaves,
        [
            ("encode", "video.scanned/0/0"),
            ("thumbnail", "video.scanned/0/0")
        ]
    );

    let tree = broker.cli_ok(&["trace", "video.uploaded", "0", "0"]);
    assert!(tree.contains("scan -> video.scanned/0/0"), "{tree}");
}

#[test]
fn a_rule_into_its_own_source_is_refused() {
    let data = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::start(data.path());
    broker.cli_ok(&["topic", "create", "orders.eu"]);
    let out = broker.cli(&[
        "rule",
        "create",
        "loop",
        "--source",
        "orders.*",
        "--target",
        "orders.eu",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("its own source"), "{stderr}");
}
