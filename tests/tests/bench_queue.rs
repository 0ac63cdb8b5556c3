//! `switchyard bench queue` against the real broker.
//!
//! - `bench_queue_acks_every_record_and_reports_json`: the report's fields, that the queue is
//!   empty afterwards with every record acked once, and that a second run straight after the
//!   first (the other ack mode, single-record sends) is not held up by the first run's
//!   consumers.
//! - `bench_queue_refuses_a_queue_that_holds_records`: records left in the queue would be
//!   counted as the run's, so the benchmark stops with a remedy instead.

use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard_tests::BrokerProcess;

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))
}

/// Runs the benchmark and returns its JSON report.
fn bench(broker: &BrokerProcess, extra: &[&str]) -> Value {
    let mut args = vec![
        "--json", "bench", "queue", "--count", "3000", "--size", "64",
    ];
    args.extend_from_slice(extra);
    let out = broker.cli_ok(&args);
    json(out.lines().last().expect("a report line"))
}

fn check_report(report: &Value) {
    assert_eq!(report["bench"], "queue", "{report}");
    assert_eq!(report["records"], 3000, "{report}");
    assert_eq!(report["bytes"], 3000 * 64, "{report}");
    for field in ["seconds", "records_per_sec", "mb_per_sec"] {
        let value = report[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field} in {report}"));
        assert!(value > 0.0, "{field} = {value}");
    }
    for histogram in ["latency_us", "confirm_latency_us"] {
        let quantiles: Vec<u64> = ["p50", "p90", "p99", "p999", "max"]
            .iter()
            .map(|q| {
                report[histogram][q]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{histogram}.{q} in {report}"))
            })
            .collect();
        assert!(quantiles[0] > 0, "{report}");
        assert!(
            quantiles.windows(2).all(|pair| pair[0] <= pair[1]),
            "{report}"
        );
    }
}

fn queue_stats(broker: &BrokerProcess) -> Value {
    json(&broker.cli_ok(&["queue", "stats", "bench-queue", "--json"]))
}

#[test]
fn bench_queue_acks_every_record_and_reports_json() {
    let data = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::start(data.path());

    check_report(&bench(&broker, &["--ack", "batch"]));

    // No pause: the first run's consumers must not leave receives behind that lease the
    // second run's records until their visibility (30 s) runs out.
    let started = Instant::now();
    let second = bench(
        &broker,
        &["--ack", "each", "--batch", "1", "--in-flight", "64"],
    );
    check_report(&second);
    assert!(started.elapsed() < Duration::from_secs(20), "{second}");

    let stats = queue_stats(&broker);
    assert_eq!(stats["ready"], 0, "{stats}");
    assert_eq!(stats["in_flight"], 0, "{stats}");
    assert_eq!(stats["acked_total"], 6000, "{stats}");
}

#[test]
fn bench_queue_refuses_a_queue_that_holds_records() {
    let data = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::start(data.path());
    broker.cli_ok(&["queue", "create", "leftovers"]);
    let sent = broker.cli_with_input(&["send", "leftovers"], b"one\ntwo\n");
    assert!(sent.status.success(), "{sent:?}");

    let output = broker.cli(&["bench", "queue", "--queue", "leftovers", "--count", "10"]);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("still holds 2 records"), "{message}");
    assert!(message.contains("queue delete leftovers"), "{message}");
}
