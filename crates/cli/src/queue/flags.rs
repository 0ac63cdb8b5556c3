//! Parsers for the queue commands' flag values, used as clap value parsers so that clap
//! names the flag in its error: "invalid value 'soon' for '--visibility <VISIBILITY>': ...".

use switchyard_client::{ExpiryWire, OverflowWire};
use switchyard_server::units::{parse_duration, parse_size};

/// A duration such as `30s` or `1h 30m`, in milliseconds.
pub fn duration_ms(text: &str) -> Result<u64, String> {
    let duration = parse_duration(text)?;
    u64::try_from(duration.as_millis()).map_err(|_| format!("`{text}` is too long"))
}

/// A size such as `64MiB` or `1000000`, in bytes.
pub fn size(text: &str) -> Result<u64, String> {
    parse_size(text)
}

/// A retry factor such as `2` or `1.5`, in thousandths as the wire carries it.
pub fn parse_factor(text: &str) -> Result<u32, String> {
    let factor: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number; write e.g. 2 or 1.5"))?;
    if !(1.0..=1_000_000.0).contains(&factor) {
        return Err(format!("{factor} is out of range; use 1 to 1000000"));
    }
    Ok((factor * 1000.0).round() as u32)
}

/// A share such as `20%` or `0.2`, in thousandths.
pub fn parse_share(text: &str) -> Result<u32, String> {
    let trimmed = text.trim();
    let (number, scale) = match trimmed.strip_suffix('%') {
        Some(percent) => (percent, 100.0),
        None => (trimmed, 1.0),
    };
    let share: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a share; write e.g. 20% or 0.2"))?;
    let share = share / scale;
    if !(0.0..=1.0).contains(&share) {
        return Err(format!("`{text}` is out of range; use 0% to 100%"));
    }
    Ok((share * 1000.0).round() as u32)
}

pub fn parse_overflow(text: &str) -> Result<OverflowWire, String> {
    match text {
        "reject" => Ok(OverflowWire::Reject),
        "drop-oldest" => Ok(OverflowWire::DropOldest),
        "block" => Ok(OverflowWire::Block),
        other => Err(format!(
            "`{other}` is not an overflow policy; use reject, drop-oldest or block"
        )),
    }
}

pub fn overflow_name(overflow: OverflowWire) -> &'static str {
    match overflow {
        OverflowWire::Reject => "reject",
        OverflowWire::DropOldest => "drop-oldest",
        OverflowWire::Block => "block",
    }
}

pub fn parse_expiry(text: &str) -> Result<ExpiryWire, String> {
    match text {
        "dead-letter" => Ok(ExpiryWire::DeadLetter),
        "drop" => Ok(ExpiryWire::Drop),
        other => Err(format!(
            "`{other}` is not an expiry action; use dead-letter or drop"
        )),
    }
}

pub fn expiry_name(expiry: ExpiryWire) -> &'static str {
    match expiry {
        ExpiryWire::DeadLetter => "dead-letter",
        ExpiryWire::Drop => "drop",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_and_bad_ones_say_what_to_write() {
        assert_eq!(duration_ms("1m"), Ok(60_000));
        assert_eq!(size("2KiB"), Ok(2048));
        assert_eq!(parse_factor("1.5"), Ok(1_500));
        assert!(parse_factor("0.5").expect_err("below 1").contains("1 to"));
        assert!(duration_ms("soon").expect_err("bad").contains("30s"));
        assert_eq!(parse_overflow("drop-oldest"), Ok(OverflowWire::DropOldest));
        assert!(parse_overflow("spill").expect_err("bad").contains("block"));
        assert_eq!(expiry_name(parse_expiry("drop").expect("drop")), "drop");
    }
}
