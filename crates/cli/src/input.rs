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
            Some(field) => Some(key_from_json(&line, field, index + 1)?),
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
    for (index, row) in reader.records().enumerate() {
        let line = index + 2;
        let row = row.with_context(|| format!("CSV row on line {line} is malformed"))?;
        let mut object = serde_json::Map::new();
        for (column, value) in columns.iter().zip(row.iter()) {
            object.insert(column.clone(), csv_value(value));
        }
        let key = match &options.key_field {
            Some(field) => Some(json_key_text(object.get(field.as_str()))),
            None => options.key.clone(),
        };
        let json = serde_json::to_vec(&serde_json::Value::Object(object))?;
        sink(line, record(key, json, options))?;
    }
    Ok(())
}

/// A CSV cell as JSON: integers and decimals become numbers, `NA` and empty cells null,
/// everything else a string.
fn csv_value(cell: &str) -> serde_json::Value {
    if cell.is_empty() || cell == "NA" {
        return serde_json::Value::Null;
    }
    if let Ok(integer) = cell.parse::<i64>() {
        return integer.into();
    }
    if let Ok(float) = cell.parse::<f64>() {
        if let Some(number) = serde_json::Number::from_f64(float) {
            return serde_json::Value::Number(number);
        }
    }
    serde_json::Value::String(cell.to_string())
}

fn key_from_json(line: &str, field: &str, line_number: usize) -> anyhow::Result<String> {
    let value: serde_json::Value = serde_json::from_str(line)
        .with_context(|| format!("line {line_number} is not JSON, so --key-field cannot apply"))?;
    let found = value.get(field);
    if found.is_none() {
        bail!("line {line_number} has no field `{field}` for --key-field");
    }
    Ok(json_key_text(found))
}

fn json_key_text(value: Option<&serde_json::Value>) -> String {
    match value {
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
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
