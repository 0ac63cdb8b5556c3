//! What a new user runs into first, against the real binary: a second broker on one data
//! folder, partial `produce` failures, error messages and their remedies, plain numbers in
//! the configuration, output into a closed pipe, and colourless logs off a terminal.
//!
//! - `a_second_broker_on_one_data_folder_is_refused`: the lock file keeps it out.
//! - `produce_failing_part_way_says_how_much_was_stored`: a bad `--key-field` line and a
//!   malformed CSV row.
//! - `messages_read_as_sentences_and_give_remedies`: neutral unknown-topic message, JSON
//!   errors with `--json`, plural forms, `--retention 0`, `bench consume` of a missing topic,
//!   `serve --server`.
//! - `plain_numbers_configure_the_server_and_bound_new_topics`: integers in the file and the
//!   environment; a topic's `max_record_bytes` must fit the server's frame.
//! - `output_into_a_closed_pipe_ends_quietly`: no panic when the reader is gone.
//! - `logs_carry_no_colour_codes_off_a_terminal`: human logs into a pipe.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard_tests::{binary, BrokerProcess};

/// How long a `serve` that must refuse to start may take to exit.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(30);

fn start() -> (BrokerProcess, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("temp dir");
    (BrokerProcess::start(data.path()), data)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Checks that the command failed and its standard error contains every one of `parts`.
fn assert_fails(output: &Output, parts: &[&str]) {
    assert!(
        !output.status.success(),
        "expected failure, got success; stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let message = stderr(output);
    for part in parts {
        assert!(
            message.contains(part),
            "stderr does not mention `{part}`:\n{message}"
        );
    }
}

fn records_of(broker: &BrokerProcess, topic: &str) -> u64 {
    let text = broker.cli_ok(&["topic", "describe", topic, "--json"]);
    let described: Value = serde_json::from_str(text.trim()).expect("describe JSON");
    described["records"].as_u64().expect("records")
}

/// Runs `switchyard serve` that is expected to exit by itself (refusing to start); kills it
/// and panics if it is still running after [`REFUSAL_TIMEOUT`].
fn serve_refused(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(binary())
        .arg("serve")
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn switchyard serve");
    let deadline = Instant::now() + REFUSAL_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output of serve");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("output of serve");
    panic!(
        "`serve {}` kept running; stderr:\n{}",
        args.join(" "),
        stderr(&output)
    );
}

#[test]
fn a_second_broker_on_one_data_folder_is_refused() {
    let (broker, data) = start();
    let dir = data.path().to_str().expect("utf-8 path");
    let second = serve_refused(&["--data-dir", dir, "--listen", "127.0.0.1:0"], &[]);
    assert_fails(
        &second,
        &[
            &format!("data folder {dir} is in use by another broker"),
            &format!("lock file {dir}/.lock"),
            "use another --data-dir",
        ],
    );
    // The first broker is untouched and the folder opens again once it is gone.
    broker.cli_ok(&["topic", "create", "still-here"]);
    broker.kill9();
    let again = BrokerProcess::start(data.path());
    assert_eq!(records_of(&again, "still-here"), 0);
}

#[test]
fn produce_failing_part_way_says_how_much_was_stored() {
    let (broker, _data) = start();
    broker.cli_ok(&["topic", "create", "events"]);
    let lines = b"{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n{\"name\":\"x\"}\n{\"id\":5}\n";
    let produced = broker.cli_with_input(&["produce", "events", "--key-field", "id"], lines);
    assert_fails(
        &produced,
        &[
            "error: line 4 has no field `id` for --key-field; 3 records before it were \
           acknowledged and stored",
        ],
    );
    assert_eq!(records_of(&broker, "events"), 3);

    broker.cli_ok(&["topic", "create", "rows"]);
    let csv = b"a,b\n1,2\n3\n";
    let produced = broker.cli_with_input(&["produce", "rows", "--csv"], csv);
    assert_fails(
        &produced,
        &[
            "CSV row on line 3 is malformed",
            "1 record before it was acknowledged and stored",
        ],
    );
    assert_eq!(records_of(&broker, "rows"), 1);
}

#[test]
fn messages_read_as_sentences_and_give_remedies() {
    let (broker, _data) = start();

    let deleted = broker.cli(&["topic", "delete", "nosuch"]);
    assert_fails(
        &deleted,
        &["topic `nosuch` does not exist; `switchyard topic list` shows the topics"],
    );
    assert!(
        !stderr(&deleted).contains("topic create"),
        "{}",
        stderr(&deleted)
    );

    // With --json the error is one JSON object on standard error.
    let deleted = broker.cli(&["topic", "delete", "nosuch", "--json"]);
    assert!(!deleted.status.success());
    let error: Value = serde_json::from_str(stderr(&deleted).trim()).expect("JSON error");
    let message = error["error"].as_str().expect("error text");
    assert!(message.contains("`nosuch` does not exist"), "{message}");

    broker.cli_ok(&["topic", "create", "one"]);
    let described = broker.cli_ok(&["topic", "describe", "one"]);
    assert!(
        described.contains("topic `one`: 1 partition, 0 records"),
        "{described}"
    );
    let produced = broker.cli_with_input(&["produce", "one"], b"only\n");
    assert_eq!(
        String::from_utf8_lossy(&produced.stdout).trim(),
        "1 record acknowledged by `one`"
    );
    let grown = broker.cli_ok(&["topic", "add-partitions", "one", "--total", "2"]);
    assert_eq!(grown.trim(), "topic `one` now has 2 partitions");

    let forever = broker.cli(&["topic", "create", "gone", "--retention", "0"]);
    assert_fails(&forever, &["--retention forever"]);

    let bench = broker.cli(&["bench", "consume", "--topic", "missing", "--count", "1"]);
    assert_fails(&bench, &["topic `missing` does not exist"]);
    assert!(!stderr(&bench).contains("created when missing"));

    let serve = serve_refused(&["--server", "127.0.0.1:1"], &[]);
    assert_fails(&serve, &["`serve` does not take --server", "--listen"]);
}

#[test]
fn plain_numbers_configure_the_server_and_bound_new_topics() {
    // Integers in the file: bytes for sizes, milliseconds for durations.
    let data = tempfile::tempdir().expect("temp dir");
    let config = data.path().join("switchyard.toml");
    std::fs::write(
        &config,
        "max_frame_bytes = 2097152\nmax_record_bytes = 65536\nfsync_interval = 20\n",
    )
    .expect("write config");
    let folder = data.path().join("data");
    let config_arg = config.to_str().expect("utf-8 path");
    let broker = BrokerProcess::start_with(&folder, &["--config", config_arg]);
    let text = broker.cli_ok(&["topic", "create", "fits", "--json"]);
    assert!(text.contains("fits"), "{text}");
    let described = broker.cli_ok(&["topic", "describe", "fits", "--json"]);
    let described: Value = serde_json::from_str(described.trim()).expect("describe JSON");
    assert_eq!(described["config"]["max_record_bytes"], 65536);
    assert_eq!(described["config"]["fsync_interval_ms"], 20);

    // A topic whose records could not travel in one of this server's frames is refused.
    let big = broker.cli(&["topic", "create", "big", "--max-record-bytes", "2MiB"]);
    assert_fails(
        &big,
        &["max_record_bytes = 2097152", "max_frame_bytes = 2097152"],
    );
    drop(broker);

    // An integer in the environment is a size in bytes: here one too small for the default
    // max_record_bytes, which the error names (rather than a type error).
    let dir = data.path().join("env").to_str().expect("utf-8").to_string();
    let refused = serve_refused(
        &["--data-dir", &dir, "--listen", "127.0.0.1:0"],
        &[("SWITCHYARD_MAX_FRAME_BYTES", "1048576")],
    );
    assert_fails(
        &refused,
        &[
            "invalid value for `max_frame_bytes`",
            "max_record_bytes = 1048576",
        ],
    );
    let refused = serve_refused(
        &["--data-dir", &dir, "--listen", "127.0.0.1:0"],
        &[("SWITCHYARD_LOG_LEVEL", "loud")],
    );
    assert_fails(&refused, &["invalid value for `log_level`", "`loud`"]);
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let (broker, _data) = start();
    for index in 0..20 {
        broker.cli_ok(&["topic", "create", &format!("topic-{index}")]);
    }
    let mut child = Command::new(binary())
        .args(["topic", "list"])
        .env("SWITCHYARD_SERVER", &broker.addr)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn topic list");
    // Close the reading end before the command has had time to connect and print.
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait for topic list");
    let message = stderr(&output);
    assert!(!message.contains("panicked"), "{message}");
    assert!(output.status.success(), "{:?}: {message}", output.status);
}

#[test]
fn logs_carry_no_colour_codes_off_a_terminal() {
    let data = tempfile::tempdir().expect("temp dir");
    let dir = data.path().to_str().expect("utf-8 path");
    let mut child = Command::new(binary())
        .args(["serve", "--data-dir", dir, "--listen", "127.0.0.1:0"])
        .args(["--log-format", "human", "--log-level", "info"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn switchyard serve");
    let stderr = child.stderr.take().expect("stderr piped");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + REFUSAL_TIMEOUT;
    while Instant::now() < deadline {
        match lines_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                let listening = line.contains("listening");
                seen.push(line);
                if listening {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.iter().any(|line| line.contains("listening")),
        "no listening line in {seen:?}"
    );
    assert!(
        seen.iter().all(|line| !line.contains('\u{1b}')),
        "colour codes in {seen:?}"
    );
}
