//! Reading the flights CSV straight out of its zip, and turning its rows into records.
//!
//! The archive is read as it is shipped (`flights.csv.zip`), so the example needs no
//! unpacking step. The CSV is decompressed into memory once (31 MB): that keeps the CSV
//! reader free of the archive's borrow, and is small next to what the broker stores.
//!
//! Each row becomes a JSON object keyed by column name. The data marks a missing value with
//! `NA` (cancelled flights have no times or delays, some planes no tail number); those and
//! empty cells become `null`. Text columns stay strings; every other column must be a number.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context};
use bytes::Bytes;
use csv::StringRecord;
use serde_json::{Map, Number, Value};

use crate::tally::Flight;

/// Columns holding text; all others hold numbers (whole minutes, clock times, counts).
const TEXT_COLUMNS: [&str; 5] = ["carrier", "tailnum", "origin", "dest", "time_hour"];

/// The column whose value keys a record, so one plane's flights share a partition.
pub const KEY_COLUMN: &str = "tailnum";

/// Columns also sent as record headers of the same name, so that subscriptions can filter
/// on them (`origin = JFK`) without parsing the JSON payload.
pub const HEADER_COLUMNS: [&str; 3] = ["origin", "carrier", "dest"];

/// The CSV text of the first `.csv` file in the zip at `path`.
pub fn read_csv_from_zip(path: &Path) -> anyhow::Result<Vec<u8>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut archive = zip::ZipArchive::new(file)
        .with_context(|| format!("{} is not a zip archive", path.display()))?;
    let names: Vec<String> = archive.file_names().map(str::to_string).collect();
    let Some(name) = names.iter().find(|name| name.ends_with(".csv")) else {
        bail!("{} holds no .csv file (it has: {names:?})", path.display());
    };
    let mut entry = archive.by_name(name)?;
    let mut text = Vec::new();
    entry
        .read_to_end(&mut text)
        .with_context(|| format!("cannot decompress {name} from {}", path.display()))?;
    Ok(text)
}

/// A CSV reader over `text`, whose first line names the columns.
pub fn csv_reader(text: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text)
}

/// Whether a cell holds no value.
fn is_missing(cell: &str) -> bool {
    cell.is_empty() || cell == "NA"
}

/// Turns rows of one CSV into JSON objects, knowing from the header which columns are text.
pub struct RowEncoder {
    columns: Vec<(String, bool)>,
    key_index: Option<usize>,
    /// Position of each of [`HEADER_COLUMNS`] the header has, with its name.
    header_indexes: Vec<(&'static str, usize)>,
}

impl RowEncoder {
    /// An encoder for rows under `headers`.
    pub fn new(headers: &StringRecord) -> RowEncoder {
        let columns = headers
            .iter()
            .map(|name| (name.to_string(), TEXT_COLUMNS.contains(&name)))
            .collect();
        let key_index = headers.iter().position(|name| name == KEY_COLUMN);
        let header_indexes = HEADER_COLUMNS
            .iter()
            .filter_map(|&wanted| {
                let index = headers.iter().position(|name| name == wanted)?;
                Some((wanted, index))
            })
            .collect();
        RowEncoder {
            columns,
            key_index,
            header_indexes,
        }
    }

    /// The record headers of `row`: `origin`, `carrier` and `dest` with their cells' text;
    /// a missing cell gives no header.
    pub fn headers(&self, row: &StringRecord) -> Vec<(String, Bytes)> {
        self.header_indexes
            .iter()
            .filter_map(|&(name, index)| {
                let cell = row.get(index).filter(|cell| !is_missing(cell))?;
                Some((name.to_string(), Bytes::copy_from_slice(cell.as_bytes())))
            })
            .collect()
    }

    /// The record key of `row`: its tail number, or `None` when the plane is unknown.
    pub fn key<'a>(&self, row: &'a StringRecord) -> Option<&'a str> {
        let cell = row.get(self.key_index?)?;
        (!is_missing(cell)).then_some(cell)
    }

    /// `row` as a JSON object; `line` names the row in errors.
    pub fn encode(&self, row: &StringRecord, line: u64) -> anyhow::Result<Map<String, Value>> {
        if row.len() != self.columns.len() {
            bail!(
                "line {line} has {} cells; the header names {} columns",
                row.len(),
                self.columns.len()
            );
        }
        let mut object = Map::new();
        for ((name, is_text), cell) in self.columns.iter().zip(row.iter()) {
            let value = cell_value(cell, *is_text)
                .with_context(|| format!("line {line}, column `{name}`"))?;
            object.insert(name.clone(), value);
        }
        Ok(object)
    }
}

/// The JSON value of one cell.
fn cell_value(cell: &str, is_text: bool) -> anyhow::Result<Value> {
    if is_missing(cell) {
        return Ok(Value::Null);
    }
    if is_text {
        return Ok(Value::String(cell.to_string()));
    }
    if let Ok(whole) = cell.parse::<i64>() {
        return Ok(Value::Number(whole.into()));
    }
    let number = cell
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .with_context(|| format!("`{cell}` is not a number"))?;
    Ok(Value::Number(number))
}

/// Reads the fields of a [`Flight`] from CSV rows by column position.
pub struct FlightColumns {
    origin: usize,
    carrier: usize,
    dep_delay: usize,
}

impl FlightColumns {
    /// Finds the three columns in `headers`.
    pub fn new(headers: &StringRecord) -> anyhow::Result<FlightColumns> {
        let find = |wanted: &str| {
            headers
                .iter()
                .position(|name| name == wanted)
                .with_context(|| format!("the CSV has no `{wanted}` column"))
        };
        Ok(FlightColumns {
            origin: find("origin")?,
            carrier: find("carrier")?,
            dep_delay: find("dep_delay")?,
        })
    }

    /// The flight in `row`; `line` names the row in errors.
    pub fn flight(&self, row: &StringRecord, line: u64) -> anyhow::Result<Flight> {
        let text = |index: usize| {
            row.get(index)
                .filter(|cell| !is_missing(cell))
                .map(str::to_string)
        };
        let dep_delay = match row.get(self.dep_delay).filter(|cell| !is_missing(cell)) {
            Some(cell) => Some(cell.parse::<f64>().with_context(|| {
                format!("line {line}, column `dep_delay`: `{cell}` is not a number")
            })?),
            None => None,
        };
        Ok(Flight {
            origin: text(self.origin),
            carrier: text(self.carrier),
            dep_delay,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> StringRecord {
        StringRecord::from(cells.to_vec())
    }

    #[test]
    fn numbers_stay_numbers_and_na_becomes_null() {
        let encoder = RowEncoder::new(&row(&["dep_delay", "origin", "tailnum", "air_time"]));
        let object = encoder
            .encode(&row(&["-3", "EWR", "NA", ""]), 2)
            .expect("valid row");
        let expected = serde_json::json!({
            "air_time": null, "dep_delay": -3, "origin": "EWR", "tailnum": null,
        });
        assert_eq!(Value::Object(object), expected);
    }

    #[test]
    fn a_missing_tail_number_gives_no_key() {
        let encoder = RowEncoder::new(&row(&["tailnum", "origin"]));
        assert_eq!(encoder.key(&row(&["N14228", "EWR"])), Some("N14228"));
        assert_eq!(encoder.key(&row(&["NA", "EWR"])), None);
    }

    #[test]
    fn origin_carrier_and_dest_become_headers_unless_missing() {
        let encoder = RowEncoder::new(&row(&["carrier", "origin", "dest", "tailnum"]));
        let headers = encoder.headers(&row(&["AA", "JFK", "NA", "N1"]));
        let expected = vec![
            ("origin".to_string(), Bytes::from_static(b"JFK")),
            ("carrier".to_string(), Bytes::from_static(b"AA")),
        ];
        assert_eq!(headers, expected);
    }

    #[test]
    fn text_in_a_number_column_is_an_error_naming_the_place() {
        let encoder = RowEncoder::new(&row(&["dep_delay"]));
        let error = encoder
            .encode(&row(&["soon"]), 7)
            .expect_err("not a number");
        let message = format!("{error:#}");
        assert!(message.contains("line 7, column `dep_delay`"), "{message}");
    }

    #[test]
    fn flight_columns_read_a_cancelled_flight() {
        let headers = row(&["carrier", "dep_delay", "origin"]);
        let columns = FlightColumns::new(&headers).expect("columns present");
        let flight = columns
            .flight(&row(&["AA", "NA", "JFK"]), 2)
            .expect("valid");
        assert_eq!(flight.origin.as_deref(), Some("JFK"));
        assert_eq!(flight.dep_delay, None);
    }
}
