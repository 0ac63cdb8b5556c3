//! The flights example's fanout end to end: the real broker and the real `flights` binary.
//!
//! A live board (`flights board --origin JFK`), an ephemeral filtered subscriber, must show
//! exactly the JFK flights of what `flights replay` publishes while it is connected, in
//! publish order and with nothing dropped. The replayed records are also stored in the topic,
//! so once the whole file is replayed, the durable filtered queue subscriptions of
//! `flights origin-subscriptions` count every departure of each airport.
//!
//! Needs `cargo build -p switchyard-cli -p switchyard-example-flights` first, and the data
//! that `examples/flights/data.sh` finds or downloads.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard_tests::flights_data_zip;
use switchyard_tests::BrokerProcess;
use switchyard_tests::{finish_flights as finish, run_flights as flights, spawn_flights};

/// Rows of flights.csv.
const ROWS: u64 = 336_776;

/// Rows replayed while the board watches.
const SLICE: usize = 5_000;

/// Logs how long a step took.
fn timed<T>(step: &str, run: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = run();
    eprintln!("{step}: {:.1?}", started.elapsed());
    result
}

/// The board lines of the JFK flights among the first `rows` rows of the CSV, computed
/// straight from the CSV, in the board's format.
fn jfk_lines_of_slice(zip_path: &Path, rows: usize) -> Vec<String> {
    let file = std::fs::File::open(zip_path).expect("open the data");
    let mut archive = zip::ZipArchive::new(file).expect("a zip archive");
    let name = (archive.file_names().find(|name| name.ends_with(".csv")))
        .expect("a .csv in the zip")
        .to_string();
    let mut text = Vec::new();
    (archive.by_name(&name).expect("the csv entry"))
        .read_to_end(&mut text)
        .expect("decompress");
    let mut reader = csv::Reader::from_reader(text.as_slice());
    let headers = reader.headers().expect("header").clone();
    let column = |wanted: &str| {
        headers
            .iter()
            .position(|name| name == wanted)
            .unwrap_or_else(|| panic!("no column {wanted}"))
    };
    let [year, month, day, sched, carrier, flight, dest, delay, origin] = [
        "year",
        "month",
        "day",
        "sched_dep_time",
        "carrier",
        "flight",
        "dest",
        "dep_delay",
        "origin",
    ]
    .map(column);
    let mut lines = Vec::new();
    for row in reader.records().take(rows) {
        let row = row.expect("a CSV row");
        if &row[origin] != "JFK" {
            continue;
        }
        let number = |index: usize| row[index].parse::<i64>().expect("a number");
        let hhmm = number(sched);
        let delay = match row[delay].parse::<i64>() {
            Ok(minutes) => format!("{minutes:+} min"),
            Err(_) => "cancelled".to_string(),
        };
        lines.push(format!(
            "{}-{:02}-{:02} {:02}:{:02}  {}{:<5} {}  {delay}",
            number(year),
            number(month),
            number(day),
            hhmm / 100,
            hhmm % 100,
            &row[carrier],
            number(flight),
            &row[dest],
        ));
    }
    lines
}

#[test]
fn the_board_shows_live_jfk_departures_and_origin_subscriptions_count_every_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::start(dir.path());
    let addr = broker.addr.as_str();
    let zip_path = flights_data_zip();
    let data = zip_path.to_str().expect("utf-8 data path");
    let expected_board = jfk_lines_of_slice(&zip_path, SLICE);
    assert!(expected_board.len() > 1_000, "the slice has JFK flights");

    // The board subscribes, says so on stderr, and waits for exactly that many flights.
    let count = expected_board.len().to_string();
    let board_args = ["board", "--origin", "JFK", "--count", count.as_str()];
    let mut board = spawn_flights(addr, &board_args);
    let stderr = board.stderr.take().expect("board stderr");
    let (line_tx, line_rx) = mpsc::channel();
    let stderr_reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = line_tx.send(line.clone());
            seen.push(line);
        }
        seen
    });
    let subscribed = line_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the board says it subscribed");
    assert_eq!(subscribed, "subscribed");

    // The first rows, published: stored in the topic and shown on the board.
    let slice = SLICE.to_string();
    let replay_args = ["replay", "--data", data, "--limit", slice.as_str()];
    let replay = timed("replay slice", || flights(addr, &replay_args));
    let printed = String::from_utf8_lossy(&replay.stdout);
    assert!(
        printed.contains(&format!("{SLICE} records published")),
        "{printed}"
    );

    let shown = timed("board", || finish(board, &board_args));
    let shown: Vec<String> = String::from_utf8_lossy(&shown.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(shown.len(), expected_board.len());
    assert_eq!(
        shown, expected_board,
        "the board shows the JFK rows in order"
    );
    let board_stderr = stderr_reader.join().expect("stderr reader");
    assert!(
        board_stderr.iter().any(|line| line.ends_with("dropped 0")),
        "{board_stderr:?}"
    );

    // The rest of the file, with nobody watching; then the topic holds every row once.
    let rest = [
        "replay",
        "--data",
        data,
        "--skip",
        slice.as_str(),
        "--batch",
        "1000",
    ];
    let replay = timed("replay rest", || flights(addr, &rest));
    let rest_count = ROWS - SLICE as u64;
    let printed = String::from_utf8_lossy(&replay.stdout);
    assert!(
        printed.contains(&format!("{rest_count} records published")),
        "{printed}"
    );
    let described = broker.cli_ok(&["topic", "describe", "flights", "--json"]);
    let described: Value = serde_json::from_str(&described).expect("describe prints JSON");
    assert_eq!(described["records"], ROWS);

    // Durable filtered queue subscriptions, from the earliest record, count each airport.
    let counts = timed("origin-subscriptions", || {
        flights(addr, &["origin-subscriptions", "--timeout", "100"])
    });
    let counts: Value = serde_json::from_slice(&counts.stdout).expect("counts as JSON");
    let expected = serde_json::json!({"EWR": 120_835, "JFK": 111_279, "LGA": 104_662});
    assert_eq!(counts, expected);
}
