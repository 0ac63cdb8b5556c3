//! Turning `produce` input into records: lines, JSON lines with a key field, or CSV rows.

use std::io::BufRead;

use anyhow::{bail, Context};
use bytes::Bytes;
use switchyard_log::RecordBuf;

/// How each input line becomes a record.
#[derive(Debug, Clone)]
pub struct InputOptions {
    pub key: Option<String>,
    pub key_field: Option<String>,
    pub headers: Vec<(String, Bytes)>,
    pub csv: bool,
}

/// Parses `k=v` header flags.
pub fn parse_header(text: &str) -> Result<(String, Bytes), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("header `{text}` is not of the form k=v"))?;
    if name.is_empty() {
        return Err(format!("header `{text}` has an empty name"));
    }
    Ok((name.to_string(), Bytes::copy_from_slice(value.as_bytes())))
}

/// Reads records from `input` and hands each to `sink` with its 1-based line number.
pub fn for_each_record(
    input: impl BufRead,
    options: &InputOptions,
    mut sink: impl FnMut(usize, RecordBuf) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if options.csv {
        return for_each_csv_row(input, options, sink);
    }
    for (index, line) in input.lines().enumerate() {
        let line = line.with_context(|| format!("cannot read input line {}", index + 1))?;
        let line = line.strip_suffix('\r').unwrap_or(&line).to_string();
        let key = match &options.key_field {
            Some(field) => key_from_json(&line, field, index + 1)?,
            None => options.key.clone(),
        };
        sink(index + 1, record(key, line.into_bytes(), options))?;
    }
    Ok(())
}

fn for_each_csv_row(
    input: impl BufRead,
    options: &InputOptions,
    mut sink: impl FnMut(usize, RecordBuf) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(input);
    let columns: Vec<String> = reader
        .headers()
        .context("cannot read the CSV header row")?
        .iter()
        .map(String::from)
        .collect();
    if let Some(field) = &options.key_field {
        if !columns.iter().any(|column| column == field) {
            bail!("--key-field `{field}` is not a column of the CSV; columns are {columns:?}");
        }
    }
    let key_column = options
        .key_field
        .as_ref()
        .and_then(|field| columns.iter().position(|column| column == field));
    for (index, row) in reader.records().enumerate() {
        let line = index + 2;
        let row = row.with_context(|| format!("CSV row on line {line} is malformed"))?;
        let key = match key_column {
            Some(column) => row.get(column).and_then(csv_key),
            None => options.key.clone(),
        };
        sink(line, record(key, csv_object(&columns, &row), options))?;
    }
    Ok(())
}

/// A CSV row as the text of a JSON object whose keys are the columns in the file's order
/// (written by hand: `serde_json::Map` would sort them).
fn csv_object(columns: &[String], row: &csv::StringRecord) -> Vec<u8> {
    let mut json = String::from("{");
    for (index, (column, cell)) in columns.iter().zip(row.iter()).enumerate() {
        if index > 0 {
            json.push(',');
        }
        json.push_str(&serde_json::Value::from(column.as_str()).to_string());
        json.push(':');
        json.push_str(&csv_value(cell));
    }
    json.push('}');
    json.into_bytes()
}

/// A CSV cell as JSON text: integers (without leading zeros, so `02134` stays a string) and
/// decimals become numbers, `true` and `false` booleans, `NA` and empty cells null, and
/// everything else a string.
fn csv_value(cell: &str) -> String {
    match cell {
        "" | "NA" => "null".to_string(),
        "true" | "false" => cell.to_string(),
        _ if is_json_number(cell) => match cell.parse::<i64>() {
            // An integer as its value writes it (`-0` is 0); a decimal keeps its digits.
            Ok(integer) => integer.to_string(),
            Err(_) => cell.to_string(),
        },
        _ => serde_json::Value::from(cell).to_string(),
    }
}

/// Whether `text` is an integer that fits in 64 bits or a decimal such as `-12.50`, written
/// as JSON writes numbers: no leading zeros, no `+`, no exponent.
fn is_json_number(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || (whole.len() > 1 && whole.starts_with('0')) {
        return false;
    }
    match fraction {
        Some(fraction) => all_digits(fraction),
        None => text.parse::<i64>().is_ok() || text.parse::<u64>().is_ok(),
    }
}

/// The key a CSV cell gives its record: none for a null cell (empty or `NA`).
fn csv_key(cell: &str) -> Option<String> {
    match cell {
        "" | "NA" => None,
        _ => Some(cell.to_string()),
    }
}

/// The key of a JSON line: the field's text (a string without its quotes, anything else as
/// JSON), or no key when the field is null.
fn key_from_json(line: &str, field: &str, line_number: usize) -> anyhow::Result<Option<String>> {
    let value: serde_json::Value = serde_json::from_str(line)
        .with_context(|| format!("line {line_number} is not JSON, so --key-field cannot apply"))?;
    match value.get(field) {
        None => bail!("line {line_number} has no field `{field}` for --key-field"),
        Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Ok(Some(other.to_string())),
    }
}

fn record(key: Option<String>, value: Vec<u8>, options: &InputOptions) -> RecordBuf {
    RecordBuf {
        key: key.map(|key| Bytes::from(key.into_bytes())),
        value: Some(Bytes::from(value)),
        headers: options.headers.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &str, options: &InputOptions) -> anyhow::Result<Vec<RecordBuf>> {
        let mut out = Vec::new();
        for_each_record(input.as_bytes(), options, |_, record| {
            out.push(record);
            Ok(())
        })?;
        Ok(out)
    }

    fn plain() -> InputOptions {
        InputOptions {
            key: None,
            key_field: None,
            headers: vec![],
            csv: false,
        }
    }

    #[test]
    fn csv_rows_become_json_keyed_by_a_column() {
        let options = InputOptions {
            key_field: Some("tailnum".into()),
            csv: true,
            ..plain()
        };
        let records = collect(
            "year,dep_time,tailnum\n2013,NA,N14228\n2013,517,N24211\n",
            &options,
        )
        .expect("parse");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].key.as_deref(), Some(b"N14228".as_slice()));
        let value: serde_json::Value =
            serde_json::from_slice(records[0].value.as_deref().expect("value")).expect("json");
        assert_eq!(value["dep_time"], serde_json::Value::Null);
        assert_eq!(value["year"], 2013);
    }

    #[test]
    fn csv_objects_keep_column_order_and_convert_cells_by_rule() {
        let options = InputOptions {
            csv: true,
            key_field: Some("zip".into()),
            ..plain()
        };
        let records = collect(
            "zip,name,count,ratio,flag,missing,empty,odd\n\
             02134,\"Smith, J\",-7,0.50,true,NA,,1e5\n\
             NA,x,12345678901234567890123,01.5,False,3.,-0,+1\n",
            &options,
        )
        .expect("parse");
        let text = |index: usize| {
            String::from_utf8(records[index].value.as_deref().expect("value").to_vec())
                .expect("utf-8")
        };
        assert_eq!(
            text(0),
            r#"{"zip":"02134","name":"Smith, J","count":-7,"ratio":0.50,"flag":true,"#.to_string()
                + r#""missing":null,"empty":null,"odd":"1e5"}"#
        );
        assert_eq!(records[0].key.as_deref(), Some(b"02134".as_slice()));
        let second: serde_json::Value = serde_json::from_str(&text(1)).expect("valid json");
        assert_eq!(second["zip"], serde_json::Value::Null);
        assert_eq!(second["count"], "12345678901234567890123");
        assert_eq!(second["ratio"], "01.5");
        assert_eq!(second["flag"], "False");
        assert_eq!(second["missing"], "3.");
        assert_eq!(second["empty"], 0);
        assert_eq!(second["odd"], "+1");
        assert_eq!(records[1].key, None, "a null key cell gives no key");
    }

    #[test]
    fn a_null_key_field_gives_a_record_without_a_key() {
        let options = InputOptions {
            key_field: Some("id".into()),
            ..plain()
        };
        let records =
            collect("{\"id\":null}\n{\"id\":\"\"}\n{\"id\":7}\n", &options).expect("parse");
        assert_eq!(records[0].key, None);
        assert_eq!(records[1].key.as_deref(), Some(b"".as_slice()));
        assert_eq!(records[2].key.as_deref(), Some(b"7".as_slice()));
    }

    #[test]
    fn key_field_errors_name_the_line() {
        let options = InputOptions {
            key_field: Some("id".into()),
            ..plain()
        };
        let err = collect("{\"id\":1}\nnot json\n", &options).expect_err("bad line");
        assert!(err.to_string().contains("line 2"), "{err}");
        let err = collect("{\"other\":1}\n", &options).expect_err("missing field");
        assert!(err.to_string().contains("no field `id`"), "{err}");
    }
}
