//! The flights example's `delay-alerts` queue end to end: the real broker, the real
//! `flights` binary, four competing worker processes, and one of them killed with SIGKILL
//! three times while it works.
//!
//! What it checks is what a user of a work queue relies on when processes die: every alert
//! is handled (none lost with the killed worker's leases), an idempotent handler's output
//! counts each alert exactly once whatever was redelivered, the broker acks each alert once,
//! and the alerts that can never be handled end in the dead-letter queue, whole, after their
//! three deliveries, with the handler's reason.
//!
//! The expected alerts are computed here from the CSV, independently of the example: every
//! flight with `dep_delay >= 60`, every 200th of them sent malformed.
//!
//! The kill moments and the victim come from a seed printed at the start; set
//! `SWITCHYARD_TEST_SEED` to rerun with the same ones (thread timing still varies). Needs
//! `cargo build -p switchyard-cli -p switchyard-example-flights` first, and the data that
//! `examples/flights/data.sh` finds or downloads.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use switchyard_client::{Client, QueueStatsWire};
use switchyard_tests::{flights_binary, flights_data_zip as data_zip};
use switchyard_tests::{runtime, BrokerProcess};

/// Flights that left at least an hour late: the alerts.
const ALERTS: usize = 27_059;
/// Every this many-th alert is sent malformed (the example's `MALFORMED_EVERY`).
const MALFORMED_EVERY: usize = 200;
/// The queue and its dead-letter queue.
const QUEUE: &str = "delay-alerts";
const DEAD_LETTER_QUEUE: &str = "delay-alerts.dlq";
/// Competing worker processes.
const WORKERS: u32 = 4;
/// SIGKILLs of a worker while the queue is being worked off.
const KILLS: usize = 3;
/// Columns of the CSV, so fields of every alert's JSON.
const COLUMNS: usize = 19;
/// The reason a worker gives for a malformed alert.
const MALFORMED_ERROR: &str = r#"dep_delay is not a number: "sixty""#;
/// Longest the load, the work or a worker's wind-down may take: each is a few seconds in a
/// debug build, so this leaves a loaded 2-core machine a wide margin.
const STEP_TIMEOUT: Duration = Duration::from_secs(90);

/// One alert as the test expects it.
#[derive(Debug, Clone)]
struct Expected {
    id: String,
    malformed: bool,
}

#[test]
fn alerts_are_handled_once_despite_killed_workers_and_bad_ones_are_dead_lettered() {
    let seed = seed();
    eprintln!("worker kills use SWITCHYARD_TEST_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::start(&dir.path().join("data"));
    let data = data_zip();
    let expected = expected_alerts(&data);
    let malformed = expected.iter().filter(|alert| alert.malformed).count();
    assert_eq!(expected.len(), ALERTS, "alerts in the CSV");

    // The load sends every alert once and says how many it spoiled.
    let data = data.to_str().expect("utf-8 data path");
    let load = finish(
        spawn_flights(&broker.addr, &["alerts-load", "--data", data]),
        "alerts-load",
    );
    let load: Value = serde_json::from_slice(&load.stdout).expect("alerts-load prints JSON");
    assert_eq!(load["alerts"], ALERTS, "{load}");
    assert_eq!(load["stored"], ALERTS, "{load}");
    assert_eq!(load["malformed"], malformed, "{load}");

    // Four workers drain the queue while one of them is killed and restarted three times.
    let out = dir.path().join("out");
    let well_formed = (ALERTS - malformed) as u64;
    let stats = Stats::connect(&broker.addr);
    let workers = work_with_kills(&broker, &stats, &out, well_formed, &mut rng);
    wait_for_drain(&stats, malformed as u64);
    for (worker_id, child) in workers {
        finish(child, &format!("alerts-worker --worker-id {worker_id}"));
    }

    check_output(&broker, &out, &expected);
    check_dead_letters(&broker, &expected);
    let stats = stats.get();
    assert_eq!(stats.acked_total, well_formed, "each alert acked once");
    assert_eq!(stats.dead_lettered_total, malformed as u64);
}

fn seed() -> u64 {
    match std::env::var("SWITCHYARD_TEST_SEED") {
        Ok(text) => text.parse().expect("SWITCHYARD_TEST_SEED must be a number"),
        Err(_) => rand::random(),
    }
}

/// The alerts the CSV calls for, in file order, each with its id and whether it is spoiled.
fn expected_alerts(data: &Path) -> Vec<Expected> {
    let file = std::fs::File::open(data).expect("open flights.csv.zip");
    let mut archive = zip::ZipArchive::new(file).expect("a zip archive");
    let mut entry = archive.by_index(0).expect("the CSV entry");
    let mut text = Vec::new();
    entry.read_to_end(&mut text).expect("decompress the CSV");
    let mut reader = csv::Reader::from_reader(text.as_slice());
    let headers = reader.headers().expect("CSV header").clone();
    let column = |name: &str| {
        let found = headers.iter().position(|header| header == name);
        found.unwrap_or_else(|| panic!("the CSV has no `{name}` column"))
    };
    let delay = column("dep_delay");
    let id_columns: Vec<usize> = [
        "year",
        "month",
        "day",
        "carrier",
        "flight",
        "origin",
        "sched_dep_time",
    ]
    .into_iter()
    .map(column)
    .collect();
    let mut alerts = Vec::new();
    for row in reader.records() {
        let row = row.expect("CSV row");
        let late = row[delay]
            .parse::<f64>()
            .is_ok_and(|minutes| minutes >= 60.0);
        if !late {
            continue;
        }
        let parts: Vec<&str> = id_columns.iter().map(|index| &row[*index]).collect();
        alerts.push(Expected {
            id: parts.join("-"),
            malformed: (alerts.len() + 1) % MALFORMED_EVERY == 0,
        });
    }
    alerts
}

/// Starts `flights ARGS` against the broker at `addr`.
fn spawn_flights(addr: &str, args: &[&str]) -> Child {
    Command::new(flights_binary())
        .args(args)
        .env("SWITCHYARD_SERVER", addr)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flights")
}

fn spawn_worker(addr: &str, out: &Path, worker_id: u32) -> Child {
    let id = worker_id.to_string();
    let out = out.to_str().expect("utf-8 output path");
    spawn_flights(addr, &["alerts-worker", "--worker-id", &id, "--out", out])
}

/// Waits for a `flights` run that must succeed within [`STEP_TIMEOUT`]; returns its output.
fn finish(child: Child, what: &str) -> Output {
    let pid = child.id().to_string();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait_with_output());
    });
    let Ok(output) = done_rx.recv_timeout(STEP_TIMEOUT) else {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        panic!("`flights {what}` did not finish within {STEP_TIMEOUT:?}");
    };
    let output = output.expect("wait for flights");
    assert!(
        output.status.success(),
        "`flights {what}` failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// How often the test asks for the queue's stats while it waits: each call counts every
/// pending record, so asking 10 times a second leaves the 2 cores to the workers.
const STATS_POLL: Duration = Duration::from_millis(100);

/// A connection for reading the queue's stats from the test's synchronous code.
struct Stats {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl Stats {
    fn connect(addr: &str) -> Stats {
        let rt = runtime();
        let client = rt.block_on(Client::connect(addr)).expect("connect");
        Stats { rt, client }
    }

    fn get(&self) -> QueueStatsWire {
        let stats = self.rt.block_on(self.client.queue_stats(QUEUE));
        stats.expect("queue stats")
    }

    /// Polls the stats until `done` holds of them or [`STEP_TIMEOUT`] passes; returns the
    /// last stats read and whether `done` held.
    fn wait_for(&self, mut done: impl FnMut(&QueueStatsWire) -> bool) -> (QueueStatsWire, bool) {
        let deadline = Instant::now() + STEP_TIMEOUT;
        let mut poll = self
            .rt
            .block_on(async { tokio::time::interval(STATS_POLL) });
        loop {
            self.rt.block_on(poll.tick());
            let stats = self.get();
            if done(&stats) || Instant::now() >= deadline {
                let held = done(&stats);
                return (stats, held);
            }
        }
    }
}

/// Starts the workers, and each time the broker has acked another random share of the
/// well-formed alerts, kills one of them (the same, picked at random) with SIGKILL and starts
/// it again under the same id. Returns the workers running at the end.
fn work_with_kills(
    broker: &BrokerProcess,
    stats: &Stats,
    out: &Path,
    well_formed: u64,
    rng: &mut StdRng,
) -> BTreeMap<u32, Child> {
    let mut workers: BTreeMap<u32, Child> = (1..=WORKERS)
        .map(|worker_id| (worker_id, spawn_worker(&broker.addr, out, worker_id)))
        .collect();
    let mut targets: Vec<u64> = (0..KILLS)
        .map(|_| rng.gen_range(well_formed / 20..well_formed * 4 / 5))
        .collect();
    targets.sort_unstable();
    let victim = rng.gen_range(1..=WORKERS);
    for target in targets {
        let (stats, reached) = stats.wait_for(|stats| stats.acked_total >= target);
        assert!(
            reached,
            "the workers did not ack {target} alerts in time: {stats:?}"
        );
        let mut child = workers.remove(&victim).expect("every worker runs");
        let _ = child.kill();
        let status = child.wait().expect("wait for the killed worker");
        assert!(!status.success(), "worker {victim} exited before the kill");
        eprintln!("killed worker {victim} after {target} acks");
        workers.insert(victim, spawn_worker(&broker.addr, out, victim));
    }
    workers
}

/// Waits until nothing is ready, leased, waiting or dying, and every malformed alert is in
/// the dead-letter queue.
fn wait_for_drain(stats: &Stats, malformed: u64) {
    let (last, drained) = stats.wait_for(|stats| {
        let empty = stats.ready + stats.in_flight + stats.delayed + stats.blocked == 0;
        empty && stats.dead_lettered == malformed
    });
    assert!(drained, "the queue was not drained in time: {last:?}");
}

/// The tally counts every well-formed alert once; the files hold nothing else.
fn check_output(broker: &BrokerProcess, out: &Path, expected: &[Expected]) {
    let out_arg = out.to_str().expect("utf-8 output path");
    let tally = finish(
        spawn_flights(&broker.addr, &["alerts-tally", "--out", out_arg]),
        "alerts-tally",
    );
    let tally: Value = serde_json::from_slice(&tally.stdout).expect("alerts-tally prints JSON");
    let well_formed: BTreeSet<&str> = expected
        .iter()
        .filter(|alert| !alert.malformed)
        .map(|alert| alert.id.as_str())
        .collect();
    assert_eq!(tally["handled_distinct"], well_formed.len(), "{tally}");

    let mut lines = 0;
    let mut handled = BTreeSet::new();
    for worker_id in 1..=WORKERS {
        let path = out.join(format!("worker-{worker_id}.ids"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for id in text.lines() {
            lines += 1;
            handled.insert(id.to_string());
        }
    }
    let missing: Vec<&&str> = well_formed
        .iter()
        .filter(|id| !handled.contains(**id))
        .collect();
    assert!(missing.is_empty(), "alerts never handled: {missing:?}");
    let unexpected: Vec<&String> = handled
        .iter()
        .filter(|id| !well_formed.contains(id.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "ids that are no well-formed alert: {unexpected:?}"
    );
    assert_eq!(tally["handled_total"], lines, "{tally}");
    eprintln!("handled {lines} times for {} alerts", handled.len());
}

/// The dead-letter queue holds exactly the malformed alerts, each whole, delivered three
/// times and carrying the worker's reason.
fn check_dead_letters(broker: &BrokerProcess, expected: &[Expected]) {
    let listed = broker.cli_ok(&["dlq", "list", QUEUE, "--json"]);
    let mut dead = BTreeSet::new();
    for line in listed.lines() {
        let letter: Value = serde_json::from_str(line).expect("dlq list prints JSON lines");
        assert_eq!(letter["dead_letter_queue"], DEAD_LETTER_QUEUE, "{letter}");
        assert_eq!(letter["source"], QUEUE, "{letter}");
        assert_eq!(letter["deliveries"], 3, "{letter}");
        assert_eq!(letter["cause"], "max-deliveries", "{letter}");
        assert_eq!(letter["error"], MALFORMED_ERROR, "{letter}");
        let text = letter["value"].as_str().expect("a text value");
        let flight: Value = serde_json::from_str(text).expect("the alert is JSON");
        assert_eq!(flight["dep_delay"], "sixty", "{letter}");
        let fields = flight.as_object().map_or(0, serde_json::Map::len);
        assert_eq!(
            fields, COLUMNS,
            "the dead letter keeps the whole row: {letter}"
        );
        let id = alert_id(&flight);
        assert!(dead.insert(id.clone()), "alert {id} dead-lettered twice");
    }
    let malformed: BTreeSet<String> = expected
        .iter()
        .filter(|alert| alert.malformed)
        .map(|alert| alert.id.clone())
        .collect();
    assert_eq!(
        dead, malformed,
        "the dead letters are exactly the malformed alerts"
    );
}

/// The id of an alert read back from JSON, built as the example builds it.
fn alert_id(flight: &Value) -> String {
    let fields = [
        "year",
        "month",
        "day",
        "carrier",
        "flight",
        "origin",
        "sched_dep_time",
    ];
    let parts: Vec<String> = fields
        .iter()
        .map(|field| match &flight[*field] {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })
        .collect();
    parts.join("-")
}
