//! `flights alerts-tally`: what the workers handled, each alert counted once.
//!
//! The queue delivers at least once, so an alert whose worker died between writing its id
//! and acking it is handled again and its id appears twice. Counting distinct ids is the
//! idempotent reading of the output: `handled_distinct` is the exactly-once result, and
//! `handled_total - handled_distinct` is how many alerts were handled more than once.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;

/// What the output files hold.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Handled {
    /// Distinct alert ids.
    pub distinct: u64,
    /// Lines, duplicates included.
    pub total: u64,
}

/// Runs `flights alerts-tally`.
pub fn run(out: &Path) -> anyhow::Result<()> {
    let handled = count(out)?;
    let summary = json!({
        "handled_distinct": handled.distinct, "handled_total": handled.total,
    });
    println!("{summary}");
    Ok(())
}

/// Counts the ids in every worker's file under `dir`.
pub fn count(dir: &Path) -> anyhow::Result<Handled> {
    let mut seen = HashSet::new();
    let mut total = 0;
    for path in output_files(dir)? {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for id in whole_lines(&text) {
            total += 1;
            seen.insert(id.to_string());
        }
    }
    Ok(Handled {
        distinct: seen.len() as u64,
        total,
    })
}

/// The `worker-*.ids` files in `dir`, sorted.
fn output_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        let name = path.file_name().and_then(|name| name.to_str());
        if name.is_some_and(|name| name.starts_with("worker-") && name.ends_with(".ids")) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The lines of `text` that end in a newline: a torn last line was never acked, so its
/// alert was delivered again and written whole elsewhere.
fn whole_lines(text: &str) -> impl Iterator<Item = &str> {
    let whole = text.rfind('\n').map_or("", |end| &text[..end]);
    whole.split('\n').filter(|line| !line.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_count_once_and_a_torn_last_line_not_at_all() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("worker-1.ids"), "a\nb\n").expect("write");
        std::fs::write(dir.path().join("worker-2.ids"), "b\nc\nd").expect("write");
        std::fs::write(dir.path().join("notes.txt"), "x\n").expect("write");
        let handled = count(dir.path()).expect("count");
        assert_eq!(
            handled,
            Handled {
                distinct: 3,
                total: 4
            }
        );
    }
}
