//! Human units in configuration: durations like `50ms`, `7d` and sizes like `1 MiB`, `16MB`.

use std::time::Duration;

/// Parses a duration: a number with a unit (`ms`, `s`, `m`, `h`, `d`, `w`), or several
/// (`1h 30m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|err| format!("`{text}` is not a duration ({err}); write e.g. 50ms, 30s, 7d"))
}

/// Parses a duration as [`parse_duration`] does, or a plain number as milliseconds (as
/// configuration keys take it: `fsync_interval = 50`).
pub fn parse_duration_or_ms(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|byte| byte.is_ascii_digit()) {
        let millis: u64 = trimmed
            .parse()
            .map_err(|_| format!("`{text}` is too many milliseconds"))?;
        return Ok(Duration::from_millis(millis));
    }
    parse_duration(text).map_err(|reason| format!("{reason}, or a number of milliseconds"))
}

/// Parses a size in bytes: a plain number, or a number with `B`, `KB`, `MB`, `GB`, `TB`
/// (powers of 1000) or `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024); case-insensitive.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let bad = || format!("`{text}` is not a size; write e.g. 1048576, 64KiB, 1 MiB, 2GB");
    let value: f64 = number.parse().map_err(|_| bad())?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "mb" | "m" => 1_000_000,
        "gb" | "g" => 1_000_000_000,
        "tb" | "t" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(bad()),
    };
    let bytes = value * multiplier as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 || bytes.fract() != 0.0 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// Formats a byte count for people: `1.5 MiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("1 MiB"), Ok(1 << 20));
        assert_eq!(parse_size("16MB"), Ok(16_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("1.5 parsecs").is_err());
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert!(parse_duration("soon").is_err());
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(parse_duration_or_ms("250"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration_or_ms("2s"), Ok(Duration::from_secs(2)));
        let err = parse_duration_or_ms("soon").expect_err("not a duration");
        assert!(err.ends_with("or a number of milliseconds"), "{err}");
    }
}
