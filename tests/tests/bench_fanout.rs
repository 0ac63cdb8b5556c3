//! `switchyard bench fanout` against the real broker.
//!
//! - `bench_fanout_reads_the_whole_topic_once_per_subscription`: 2,000 records produced, three
//!   consumer groups each read all 2,000; the JSON report carries the produce and read rates,
//!   one entry per subscription with a distinct group, and the broker's CPU and disk reads
//!   when given its PID.

use serde_json::Value;
use switchyard_tests::BrokerProcess;

#[test]
fn bench_fanout_reads_the_whole_topic_once_per_subscription() {
    let data = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::start(data.path());
    let pid = broker.pid().to_string();
    let args = [
        "--json",
        "bench",
        "fanout",
        "--count",
        "2000",
        "--subscriptions",
        "3",
        "--broker-pid",
        &pid,
    ];
    let out = broker.cli_ok(&args);
    let line = out.lines().last().expect("a report line");
    let report: Value =
        serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {out}"));
    assert_eq!(report["bench"], "fanout", "{report}");
    assert_eq!(report["subscriptions"], 3, "{report}");
    assert_eq!(report["produce"]["records"], 2000, "{report}");
    assert_eq!(report["read"]["records_per_subscription"], 2000, "{report}");
    assert_eq!(report["read"]["records"], 3 * 2000, "{report}");
    for rate in [
        &report["produce"]["records_per_sec"],
        &report["read"]["records_per_sec"],
    ] {
        assert!(rate.as_f64().is_some_and(|r| r > 0.0), "{report}");
    }
    let subscriptions = report["read"]["per_subscription"]
        .as_array()
        .unwrap_or_else(|| panic!("per_subscription in {report}"));
    assert_eq!(subscriptions.len(), 3, "{report}");
    let mut groups: Vec<&str> = subscriptions
        .iter()
        .map(|s| s["group"].as_str().expect("group name"))
        .collect();
    groups.sort_unstable();
    groups.dedup();
    assert_eq!(groups.len(), 3, "fresh group names: {report}");
    for subscription in subscriptions {
        assert_eq!(subscription["records"], 2000, "{report}");
        let rate = subscription["records_per_sec"].as_f64().expect("rate");
        assert!(rate > 0.0, "{report}");
    }
    let broker_stats = &report["broker"];
    assert!(
        broker_stats["cpu_seconds"]
            .as_f64()
            .is_some_and(|s| s >= 0.0),
        "{report}"
    );
    assert!(broker_stats["read_bytes"].as_u64().is_some(), "{report}");
}
