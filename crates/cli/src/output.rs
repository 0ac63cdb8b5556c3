//! Printing results: a readable table by default, JSON with `--json`.
//!
//! Everything goes through [`print_line`] rather than `println!`, which panics when standard
//! output is a closed pipe (`switchyard topic list | head -1`); here the command just ends.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::Table;
use std::io::Write;

/// A table with a header row, in the CLI's one style.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.iter().copied());
    table
}

/// Prints a JSON value on one line.
pub fn print_json(value: &serde_json::Value) {
    print_line(value);
}

/// Writes `text` and a newline to standard output. When the reader has gone away (a closed
/// pipe), the process exits at once with status 0: there is nobody left to tell anything.
pub fn print_line(text: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let written = writeln!(out, "{text}").and_then(|()| out.flush());
    match written {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(err) => {
            let _ = writeln!(
                std::io::stderr(),
                "error: cannot write to standard output: {err}"
            );
            std::process::exit(1);
        }
    }
}

/// The error of a command that reads or writes `topic`: a missing topic gets the command
/// that creates it (the broker's own message only points at `topic list`).
pub fn missing_topic_hint(topic: &str, err: switchyard_client::ClientError) -> anyhow::Error {
    if err.code() == Some(switchyard_client::ErrorCode::UnknownTopic) {
        anyhow::anyhow!(
            "topic `{topic}` does not exist; create it with `switchyard topic create {topic}`"
        )
    } else {
        err.into()
    }
}

/// `1 record`, `3 records`: a count with its noun in the right number.
pub fn count(number: u64, noun: &str) -> String {
    if number == 1 {
        format!("1 {noun}")
    } else {
        format!("{number} {noun}s")
    }
}

/// Formats an optional number for a table cell.
pub fn cell<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |value| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_the_right_number() {
        assert_eq!(count(1, "record"), "1 record");
        assert_eq!(count(0, "record"), "0 records");
        assert_eq!(count(3, "partition"), "3 partitions");
    }
}
