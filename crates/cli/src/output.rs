//! Printing results: a readable table by default, JSON with `--json`.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::Table;

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
    println!("{value}");
}

/// Formats an optional number for a table cell.
pub fn cell<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |value| value.to_string())
}
