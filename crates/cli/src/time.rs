//! Times given on the command line: RFC 3339, in UTC (`Z`) or with an offset (`+01:00`).

/// Examples of accepted times, for messages.
pub const EXAMPLES: &str = "2013-01-01T10:00:00Z or 2013-01-01T11:00:00+01:00";

/// Why a text is not a usable time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeError {
    /// Not RFC 3339 at all: the caller says what else it would have taken.
    NotATime,
    /// A time, but one the log cannot look up; the message says why.
    Unusable(String),
}

/// Milliseconds since the Unix epoch of an RFC 3339 time such as `2013-01-01T10:00:00Z` or
/// `2013-01-01T11:00:00+01:00`.
pub fn parse_rfc3339_ms(text: &str) -> Result<i64, TimeError> {
    let before_1970 = || {
        TimeError::Unusable(format!(
            "time `{text}` is before 1970, when offsets by time begin"
        ))
    };
    let (local, offset_s) = split_offset(text).ok_or(TimeError::NotATime)?;
    let year = local.get(..4).and_then(|year| year.parse::<u32>().ok());
    if year.is_some_and(|year| year < 1970) {
        return Err(before_1970());
    }
    let time = humantime::parse_rfc3339_weak(local).map_err(|_| TimeError::NotATime)?;
    let since_epoch = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| before_1970())?;
    let ms = i64::try_from(since_epoch.as_millis())
        .map_err(|_| TimeError::Unusable(format!("time `{text}` is too far in the future")))?;
    Ok(ms - offset_s * 1000)
}

/// The time without its offset, and the offset east of UTC in seconds (`Z` and no offset
/// are UTC); `None` for an offset that is not `±HH:MM`.
fn split_offset(text: &str) -> Option<(&str, i64)> {
    if let Some(local) = text.strip_suffix(['Z', 'z']) {
        return Some((local, 0));
    }
    let Some(sign_at) = text.len().checked_sub(6) else {
        return Some((text, 0));
    };
    let (local, offset) = text.split_at_checked(sign_at)?;
    let sign = match offset.as_bytes().first() {
        Some(b'+') => 1,
        Some(b'-') if local.contains('T') || local.contains(' ') => -1,
        _ => return Some((text, 0)),
    };
    let (hours, minutes) = offset[1..].split_once(':')?;
    let hours: i64 = hours.parse().ok().filter(|h| *h <= 23)?;
    let minutes: i64 = minutes.parse().ok().filter(|m| *m <= 59)?;
    Some((local, sign * (hours * 3600 + minutes * 60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_taken_into_account() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01Z"), Ok(1_000));
        assert_eq!(parse_rfc3339_ms("1970-01-01T01:00:01+01:00"), Ok(1_000));
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01-00:30"), Ok(1_801_000));
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01"), Ok(1_000));
        assert!(parse_rfc3339_ms("1970-01-01T00:00:01+25:00").is_err());
        assert_eq!(parse_rfc3339_ms("yesterday"), Err(TimeError::NotATime));
        let old = parse_rfc3339_ms("1969-12-31T23:00:00Z");
        assert!(matches!(old, Err(TimeError::Unusable(why)) if why.contains("1970")));
    }
}
