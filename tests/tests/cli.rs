//! The `switchyard` CLI against the real broker: the README's five-minute tour, the errors a
//! user can make, partial failure of `produce`, and the produce benchmark's JSON report.
//!
//! - `the_readme_tour_works`: topic create, list and describe (checked through `--json`),
//!   produce from stdin with `--key` and `--header`, consume with `--count` and `--format`,
//!   `group describe --json` (committed offsets and lag), a second consume of the same group
//!   that reads only the new records, and topic delete.
//! - `mistakes_exit_non_zero_with_clear_messages`: unknown topic, bad `--from`, bad `--fsync`,
//!   invalid topic name, unreachable server.
//! - `produce_reports_records_over_the_limit_and_keeps_the_rest`: a line over the topic's
//!   `max_record_bytes` makes `produce` fail while the other lines are acknowledged.
//! - `bench_produce_prints_its_report_as_json`: the report's fields, and that the topic then
//!   holds exactly the records the benchmark claims.
//! - `a_consumer_stopped_with_sigterm_leaves_its_group`: `consume` ended by SIGTERM (as
//!   `kill` or `timeout` send) leaves its group, so the next member gets the partition at
//!   once rather than after the session timeout.

use std::process::Output;

use serde_json::Value;
use switchyard_tests::{cli, BrokerProcess};

fn start() -> (BrokerProcess, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("temp dir");
    (BrokerProcess::start(data.path()), data)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs a command that must fail; checks its standard error contains every one of `parts`.
fn assert_fails(output: &Output, parts: &[&str]) {
    assert!(
        !output.status.success(),
        "expected failure, got success; stdout: {}",
        stdout(output)
    );
    let message = stderr(output);
    for part in parts {
        assert!(
            message.contains(part),
            "stderr does not mention `{part}`:\n{message}"
        );
    }
}

fn describe_topic(broker: &BrokerProcess, topic: &str) -> Value {
    json(&broker.cli_ok(&["topic", "describe", topic, "--json"]))
}

fn describe_group(broker: &BrokerProcess, group: &str) -> Value {
    json(&broker.cli_ok(&["group", "describe", group, "--json"]))
}

/// `(partition, committed, lag)` of every partition of a described group.
fn progress(group: &Value) -> Vec<(u64, Option<u64>, u64)> {
    let partitions = group["partitions"].as_array().expect("partitions");
    partitions
        .iter()
        .map(|p| {
            let partition = p["partition"].as_u64().expect("partition");
            (
                partition,
                p["committed"].as_u64(),
                p["lag"].as_u64().expect("lag"),
            )
        })
        .collect()
}

#[test]
fn the_readme_tour_works() {
    let (broker, _data) = start();
    create_list_and_describe(&broker);

    let produced = broker.cli_with_input(
        &[
            "produce",
            "orders",
            "--key",
            "customer-1",
            "--header",
            "source=tour",
            "--header",
            "n=1",
        ],
        b"first\nsecond\nthird\n",
    );
    assert!(produced.status.success(), "{}", stderr(&produced));
    assert_eq!(
        stdout(&produced).trim(),
        "3 records acknowledged by `orders`"
    );

    let partition = consume_first_three(&broker);
    let billing = describe_group(&broker, "billing");
    assert_eq!(billing["topic"], "orders");
    assert_eq!(billing["lag"], 0, "{billing}");
    assert!(
        progress(&billing).contains(&(partition, Some(3), 0)),
        "{billing}"
    );

    consume_only_new_records(&broker, partition);
    let table = broker.cli_ok(&["group", "describe", "billing"]);
    assert!(
        table.contains("group `billing` on topic `orders`"),
        "{table}"
    );
    let table = broker.cli_ok(&["topic", "describe", "orders"]);
    assert!(
        table.contains("topic `orders`: 3 partitions, 5 records"),
        "{table}"
    );
    delete(&broker);
}

fn create_list_and_describe(broker: &BrokerProcess) {
    let created = broker.cli_ok(&[
        "topic",
        "create",
        "orders",
        "--partitions",
        "3",
        "--retention",
        "7d",
    ]);
    assert_eq!(created.trim(), "created topic `orders`");

    let list = json(&broker.cli_ok(&["topic", "list", "--json"]));
    let expected = serde_json::json!([{ "name": "orders", "partitions": 3 }]);
    assert_eq!(list, expected);

    let described = describe_topic(broker, "orders");
    assert_eq!(described["name"], "orders");
    assert_eq!(described["records"], 0);
    assert_eq!(described["config"]["retention_ms"], 7 * 24 * 3600 * 1000);
    assert_eq!(described["config"]["fsync"], "interval");
    let partitions = described["partitions"].as_array().expect("partitions");
    assert_eq!(partitions.len(), 3);
    for (index, partition) in partitions.iter().enumerate() {
        assert_eq!(partition["partition"], index);
        assert_eq!(
            (&partition["start_offset"], &partition["end_offset"]),
            (&0.into(), &0.into())
        );
    }
}

/// Consumes the three tour records with the full format; returns their partition.
fn consume_first_three(broker: &BrokerProcess) -> u64 {
    let args = [
        "consume",
        "orders",
        "--group",
        "billing",
        "--from",
        "earliest",
        "--count",
        "3",
        "--format",
        "%t %p %o %k %v %h\\n",
    ];
    let out = broker.cli_ok(&args);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let partition: u64 = lines[0]
        .split(' ')
        .nth(1)
        .expect("partition")
        .parse()
        .expect("number");
    for (offset, (line, value)) in lines.iter().zip(["first", "second", "third"]).enumerate() {
        let expected = format!("orders {partition} {offset} customer-1 {value} source=tour,n=1");
        assert_eq!(*line, expected, "one key means one partition, in order");
    }
    partition
}

fn consume_only_new_records(broker: &BrokerProcess, partition: u64) {
    let args = ["produce", "orders", "--key", "customer-1"];
    let produced = broker.cli_with_input(&args, b"fourth\nfifth\n");
    assert!(produced.status.success(), "{}", stderr(&produced));
    let billing = describe_group(broker, "billing");
    assert!(
        progress(&billing).contains(&(partition, Some(3), 2)),
        "{billing}"
    );

    let args = [
        "consume",
        "orders",
        "--group",
        "billing",
        "--count",
        "2",
        "--format",
        "%p %o %v\\n",
    ];
    let out = broker.cli_ok(&args);
    assert_eq!(out, format!("{partition} 3 fourth\n{partition} 4 fifth\n"));
    let billing = describe_group(broker, "billing");
    assert!(
        progress(&billing).contains(&(partition, Some(5), 0)),
        "{billing}"
    );

    // Another group starts from the beginning on its own.
    let args = [
        "consume",
        "orders",
        "--group",
        "audit",
        "--count",
        "5",
        "--format",
        "%p/%o %k=%v\\n",
    ];
    let out = broker.cli_ok(&args);
    let expected: String = ["first", "second", "third", "fourth", "fifth"]
        .iter()
        .enumerate()
        .map(|(offset, value)| format!("{partition}/{offset} customer-1={value}\n"))
        .collect();
    assert_eq!(out, expected);
    assert_eq!(describe_topic(broker, "orders")["records"], 5);
}

fn delete(broker: &BrokerProcess) {
    let deleted = broker.cli_ok(&["topic", "delete", "orders"]);
    assert_eq!(deleted.trim(), "deleted topic `orders`");
    assert_eq!(
        json(&broker.cli_ok(&["topic", "list", "--json"])),
        serde_json::json!([])
    );
    let described = broker.cli(&["topic", "describe", "orders"]);
    assert_fails(&described, &["topic `orders` does not exist"]);
}

#[test]
fn mistakes_exit_non_zero_with_clear_messages() {
    let (broker, _data) = start();
    broker.cli_ok(&["topic", "create", "orders"]);

    let consume = broker.cli(&["consume", "nope", "--group", "g", "--count", "1"]);
    assert_fails(
        &consume,
        &[
            "topic `nope` does not exist",
            "switchyard topic create nope",
        ],
    );
    let produce = broker.cli_with_input(&["produce", "nope"], b"x\n");
    assert_fails(&produce, &["topic `nope` does not exist"]);

    let from = broker.cli(&["consume", "orders", "--group", "g", "--from", "yesterday"]);
    assert_fails(&from, &["`yesterday` is not a start position", "earliest"]);
    let fsync = broker.cli(&["topic", "create", "other", "--fsync", "sometimes"]);
    assert_fails(
        &fsync,
        &[
            "unknown fsync policy `sometimes`",
            "always, interval or never",
        ],
    );
    let name = broker.cli(&["topic", "create", "bad/name"]);
    assert_fails(
        &name,
        &["invalid topic name `bad/name`", "'/' is not allowed"],
    );
    let again = broker.cli(&["topic", "create", "orders"]);
    assert_fails(&again, &["topic `orders` already exists"]);

    // A port this test bound and released: nothing listens there.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = free.local_addr().expect("addr").to_string();
    drop(free);
    let unreachable = cli(&addr, &["topic", "list"], None);
    assert_fails(
        &unreachable,
        &[&format!("cannot reach the broker at {addr}")],
    );

    let list = json(&broker.cli_ok(&["topic", "list", "--json"]));
    assert_eq!(
        list,
        serde_json::json!([{ "name": "orders", "partitions": 1 }])
    );
}

#[test]
fn produce_reports_records_over_the_limit_and_keeps_the_rest() {
    let (broker, _data) = start();
    broker.cli_ok(&["topic", "create", "small", "--max-record-bytes", "1KiB"]);
    let mut input = b"ok-1\n".to_vec();
    input.extend_from_slice(&[b'x'; 2000]);
    input.extend_from_slice(b"\nok-2\n");

    let produced = broker.cli_with_input(&["produce", "small"], &input);
    assert_fails(
        &produced,
        &[
            "1 record was not acknowledged",
            "line 2",
            "limit of 1024 bytes",
            "`small`",
        ],
    );
    assert_eq!(
        stdout(&produced).trim(),
        "2 records acknowledged by `small`"
    );

    assert_eq!(describe_topic(&broker, "small")["records"], 2);
    let args = ["consume", "small", "--group", "check", "--count", "2"];
    assert_eq!(broker.cli_ok(&args), "ok-1\nok-2\n");
}

#[test]
fn bench_produce_prints_its_report_as_json() {
    let (broker, _data) = start();
    let args = [
        "bench", "produce", "--count", "20000", "--batch", "100", "--json",
    ];
    let out = broker.cli_ok(&args);
    let report = json(out.lines().last().expect("a report line"));
    assert_eq!(report["records"], 20_000, "{report}");
    for field in ["seconds", "records_per_sec", "mb_per_sec"] {
        let value = report[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field} in {report}"));
        assert!(value > 0.0, "{field} = {value}");
    }
    let seconds = report["seconds"].as_f64().expect("seconds");
    let rate = report["records_per_sec"].as_f64().expect("rate");
    assert!(
        (rate * seconds - 20_000.0).abs() < 20.0,
        "rate × time ≠ records: {report}"
    );

    let latency = &report["latency_us"];
    let quantiles: Vec<u64> = ["p50", "p90", "p99", "p999", "max"]
        .iter()
        .map(|q| {
            latency[q]
                .as_u64()
                .unwrap_or_else(|| panic!("latency_us.{q} in {report}"))
        })
        .collect();
    assert!(quantiles[0] > 0, "{report}");
    assert!(
        quantiles.windows(2).all(|pair| pair[0] <= pair[1]),
        "quantiles in order: {report}"
    );

    assert_eq!(describe_topic(&broker, "bench")["records"], 20_000);
}

#[test]
fn a_consumer_stopped_with_sigterm_leaves_its_group() {
    let (broker, _data) = start();
    broker.cli_ok(&["topic", "create", "t"]);
    let out = broker.cli_with_input(&["produce", "t"], b"first\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let mut first = std::process::Command::new(switchyard_tests::binary())
        .args(["--server", &broker.addr, "consume", "t", "--group", "g"])
        .args(["--session-timeout", "60s"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start consume");
    let mut reader = std::io::BufReader::new(first.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).expect("first record");
    assert_eq!(line.trim(), "first");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = first.wait().expect("consume exits");
    assert!(status.success(), "SIGTERM ends consume cleanly: {status}");

    let out = broker.cli_with_input(&["produce", "t"], b"second\n");
    assert!(out.status.success(), "{}", stderr(&out));
    // With the first member still counted, this would wait out its 60 s session.
    let started = std::time::Instant::now();
    let next = broker.cli_ok(&["consume", "t", "--group", "g", "--count", "1"]);
    assert_eq!(next.trim(), "second");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the partition moved only after {:?}",
        started.elapsed()
    );
}
