//! The flights example end to end: the real broker and the real `flights` binary, on all
//! 336,776 rows of the 2013 New York flights.
//!
//! What it checks is what a user of consumer groups relies on: every produced record is
//! acknowledged and stored once; groups reading at the same time each see the whole topic
//! and agree with the CSV; a group started later sees the same; and a group that has read
//! everything resumes from its commit and reads nothing.
//!
//! Needs `cargo build -p switchyard-cli -p switchyard-example-flights` first, and the data
//! that `examples/flights/data.sh` finds or downloads.

use std::process::Output;
use std::time::Instant;

use serde_json::Value;
use switchyard_tests::flights_data_zip as data_zip;
use switchyard_tests::BrokerProcess;
use switchyard_tests::{finish_flights as finish, run_flights as flights, spawn_flights};

/// Rows of flights.csv, so records the topic must hold.
const ROWS: u64 = 336_776;

/// The JSON document a run printed on stdout.
fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).expect("flights prints JSON")
}

/// How many records a group run says it read ("read N records ..." on stderr).
fn records_read(output: &Output) -> u64 {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let count = stderr
        .lines()
        .find_map(|line| line.strip_prefix("read "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|count| count.parse().ok());
    count.unwrap_or_else(|| panic!("no record count in stderr: {stderr}"))
}

/// A group run's answer, checked to have read the whole topic.
fn full_read(output: &Output) -> Value {
    assert_eq!(records_read(output), ROWS, "a new group reads every record");
    stdout_json(output)
}

/// Logs how long a step took; `--nocapture` shows where the test's time goes.
fn timed<T>(step: &str, run: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = run();
    eprintln!("{step}: {:.1?}", started.elapsed());
    result
}

#[test]
fn flights_through_three_groups_agree_with_the_csv_and_resume_from_commits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::start(dir.path());
    let addr = broker.addr.as_str();
    let data = data_zip();
    let data = data.to_str().expect("utf-8 data path");

    // Every row is acknowledged, and the topic holds exactly that many in 6 partitions.
    let load = timed("load", || flights(addr, &["load", "--data", data]));
    let printed = String::from_utf8_lossy(&load.stdout);
    assert!(
        printed.contains(&format!("{ROWS} records acknowledged")),
        "{printed}"
    );
    check_topic_holds_every_row(&broker);

    // The answers computed straight from the CSV, and the known truth about them.
    let expected = stdout_json(&flights(addr, &["expected", "--data", data]));
    let by_origin = &expected["departures_by_origin"];
    assert_eq!(by_origin["EWR"], 120_835);
    assert_eq!(by_origin["JFK"], 111_279);
    assert_eq!(by_origin["LGA"], 104_662);

    // Two groups reading at the same time each see the whole topic.
    let departures = ["departures-by-origin", "--group", "departures"];
    let late = ["late-by-carrier", "--group", "late"];
    let (first, second) = timed("two groups at once", || {
        let first = spawn_flights(addr, &departures);
        let second = spawn_flights(addr, &late);
        (finish(first, &departures), finish(second, &late))
    });
    assert_eq!(full_read(&first), *by_origin);
    assert_eq!(full_read(&second), expected["late_by_carrier"]);

    // A group started afterwards still starts from the beginning.
    let third = ["departures-by-origin", "--group", "afterwards"];
    let third = timed("third group", || flights(addr, &third));
    assert_eq!(full_read(&third), *by_origin);

    // The first group resumes from its commit at the end: nothing left to read.
    let rerun = timed("rerun", || flights(addr, &departures));
    assert_eq!(records_read(&rerun), 0);
    assert_eq!(stdout_json(&rerun), serde_json::json!({}));
}

/// `switchyard topic describe flights --json` counts every row, spread over 6 partitions.
fn check_topic_holds_every_row(broker: &BrokerProcess) {
    let described = broker.cli_ok(&["topic", "describe", "flights", "--json"]);
    let described: Value = serde_json::from_str(&described).expect("describe prints JSON");
    let partitions = described["partitions"]
        .as_array()
        .expect("partitions listed");
    assert_eq!(partitions.len(), 6);
    let stored: u64 = partitions
        .iter()
        .map(|partition| {
            let end = partition["end_offset"].as_u64().expect("end offset");
            let start = partition["start_offset"].as_u64().expect("start offset");
            end - start
        })
        .sum();
    assert_eq!(stored, ROWS);
    assert_eq!(described["records"], ROWS);
}
