//! The queue commands of the `switchyard` CLI against the real broker.
//!
//! - `queue_commands_round_trip_through_the_dead_letter_queue`: queue create, list and stats,
//!   send from stdin with a header, receive with `--ack`, receive without it (tokens in the
//!   JSON), nack with an error, a lease left to expire, `dlq list`, `dlq peek`, `dlq redrive`,
//!   and the redriven records received again.
//! - `queue_mistakes_exit_non_zero_naming_the_problem`: bad flag values name the flag; a
//!   send into a full queue reports what was stored and exits non-zero; unknown queues and
//!   stale tokens.

use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use switchyard_tests::{wait_until, BrokerProcess};

fn start() -> (BrokerProcess, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("temp dir");
    (BrokerProcess::start(data.path()), data)
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn stats(broker: &BrokerProcess, queue: &str) -> Value {
    let out = broker.cli_ok(&["queue", "stats", queue, "--json"]);
    json_lines(&out).remove(0)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn queue_commands_round_trip_through_the_dead_letter_queue() {
    let (broker, _data) = start();
    let created = broker.cli_ok(&[
        "queue",
        "create",
        "smoke",
        "--visibility",
        "1s",
        "--max-deliveries",
        "1",
        "--retry-jitter",
        "10%",
        "--no-retention-protection",
    ]);
    assert!(created.contains("smoke.dlq"), "{created}");
    let listed = json_lines(&broker.cli_ok(&["queue", "list", "--json"])).remove(0);
    assert_eq!(listed, serde_json::json!(["smoke", "smoke.dlq"]));
    let config = &stats(&broker, "smoke")["config"];
    assert_eq!(config["visibility_ms"], 1_000);
    assert_eq!(config["max_deliveries"], 1);
    assert_eq!(config["retry_jitter"], 0.1);
    assert_eq!(config["protect_from_retention"], false);

    // Send three lines; receive one and ack it at once.
    let args = ["send", "smoke", "--header", "src=cli"];
    let sent = broker.cli_with_input(&args, b"one\ntwo\nthree\n");
    assert!(sent.status.success(), "{}", stderr(&sent));
    assert!(
        stdout(&sent).contains("3 records stored"),
        "{}",
        stdout(&sent)
    );
    let first = broker.cli_ok(&["receive", "smoke", "--max", "1", "--ack"]);
    assert_eq!(first, "one\n");

    // Receive the other two without acking: the tokens come with them.
    let out = broker.cli_ok(&["receive", "smoke", "--max", "5", "--json"]);
    let got = json_lines(&out);
    assert_eq!(got.len(), 2, "{out}");
    assert_eq!(got[0]["value"], "two");
    assert_eq!(got[0]["headers"]["src"], "cli");
    assert_eq!(got[0]["deliveries"], 1);
    let token = got[0]["token"].as_str().expect("token").to_string();
    let nacked = broker.cli_ok(&["nack", "smoke", &token, "--error", "boom"]);
    assert!(nacked.contains("gave the record back"), "{nacked}");
    // The second is left to expire; with one delivery allowed, both end up dead.
    let dead = wait_until(Duration::from_secs(15), || {
        stats(&broker, "smoke")["dead_lettered"] == 2
    });
    assert!(dead, "{}", stats(&broker, "smoke"));

    let listed = json_lines(&broker.cli_ok(&["dlq", "list", "smoke", "--json"]));
    assert_eq!(listed.len(), 2);
    let boom = listed
        .iter()
        .find(|letter| letter["value"] == "two")
        .expect("two is dead");
    assert_eq!(boom["error"], "boom");
    assert_eq!(boom["source"], "smoke");
    assert_eq!(boom["deliveries"], 1);
    assert_eq!(boom["headers"]["src"], "cli");
    let table = broker.cli_ok(&["dlq", "list", "smoke"]);
    assert!(
        table.contains("max-deliveries") && table.contains("boom"),
        "{table}"
    );
    let peeked = broker.cli_ok(&["dlq", "peek", "smoke", "--count", "1"]);
    assert!(peeked.contains("from `smoke`"), "{peeked}");

    // Redrive both; they are received again with a fresh count, and acked.
    let moved = json_lines(&broker.cli_ok(&["dlq", "redrive", "smoke", "--json"])).remove(0);
    assert_eq!(moved["moved"], 2);
    let again = broker.cli_ok(&[
        "receive", "smoke", "--max", "10", "--ack", "--wait", "5s", "--format", "%v/%h\n",
    ]);
    let mut lines: Vec<&str> = again.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["three/src=cli", "two/src=cli"]);
    // What was redriven is no longer listed as dead, and looking leased nothing.
    let listed = broker.cli_ok(&["dlq", "list", "smoke"]);
    assert!(listed.contains("holds no dead letters"), "{listed}");
    let end = stats(&broker, "smoke");
    assert_eq!(
        (end["ready"].as_u64(), end["in_flight"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(end["dead_lettered"], 0);
    assert_eq!(end["acked_total"], 3);

    let deleted = broker.cli_ok(&["queue", "delete", "smoke"]);
    assert!(deleted.contains("deleted queue `smoke`"), "{deleted}");
}

#[test]
fn queue_mistakes_exit_non_zero_naming_the_problem() {
    let (broker, _data) = start();
    let bad = broker.cli(&["queue", "create", "q", "--visibility", "soon"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("--visibility"), "{}", stderr(&bad));
    let bad = broker.cli(&["queue", "create", "q", "--max-bytes", "lots"]);
    assert!(stderr(&bad).contains("--max-bytes"), "{}", stderr(&bad));
    let bad = broker.cli(&["queue", "create", "q", "--overflow", "spill"]);
    assert!(stderr(&bad).contains("drop-oldest"), "{}", stderr(&bad));
    let bad = broker.cli(&["queue", "create", "q", "--retry-factor", "0.5"]);
    assert!(stderr(&bad).contains("--retry-factor"), "{}", stderr(&bad));
    let both = broker.cli(&[
        "queue",
        "create",
        "q",
        "--dead-letter",
        "x",
        "--no-dead-letter",
    ]);
    assert!(!both.status.success());

    // A full queue: what fits is stored, the rest refused, and the command fails.
    broker.cli_ok(&[
        "queue",
        "create",
        "tiny",
        "--max-records",
        "1",
        "--no-dead-letter",
    ]);
    let full = broker.cli_with_input(&["send", "tiny"], b"a\nb\n");
    assert!(!full.status.success());
    assert!(
        stdout(&full).contains("1 record stored"),
        "{}",
        stdout(&full)
    );
    assert!(stderr(&full).contains("full"), "{}", stderr(&full));
    let listed = broker.cli(&["dlq", "list", "tiny"]);
    assert!(
        stderr(&listed).contains("no dead-letter queue"),
        "{}",
        stderr(&listed)
    );

    let unknown = broker.cli(&["receive", "nope"]);
    assert!(
        stderr(&unknown).contains("queue `nope` does not exist"),
        "{}",
        stderr(&unknown)
    );
    let stale = broker.cli(&["ack", "tiny", "not-a-token"]);
    assert!(!stale.status.success());
    assert!(stderr(&stale).contains("not-a-token"), "{}", stderr(&stale));
}
