//! Protocol versions and the Hello negotiation rule.
//!
//! Kept apart from the message definitions because it is policy, not encoding: the server
//! applies it to a decoded `Hello`, and clients use the same constants to build theirs, so
//! both sides agree on the rule by construction.

/// The newest protocol version this implementation speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// The oldest protocol version this implementation still speaks.
pub const MIN_PROTOCOL_VERSION: u16 = 1;

/// Picks the version for a connection: the highest one in the client's `[min, max]` range
/// that this implementation supports, or `None` when the ranges do not overlap (the server
/// then answers `UnsupportedVersion` and closes the connection).
pub fn negotiate_version(client_min: u16, client_max: u16) -> Option<u16> {
    let high = client_max.min(PROTOCOL_VERSION);
    let low = client_min.max(MIN_PROTOCOL_VERSION);
    (low <= high).then_some(high)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_highest_common_version() {
        assert_eq!(negotiate_version(1, 1), Some(1));
        assert_eq!(negotiate_version(0, 9), Some(PROTOCOL_VERSION));
        assert_eq!(negotiate_version(1, u16::MAX), Some(PROTOCOL_VERSION));
    }

    #[test]
    fn refuses_disjoint_or_empty_ranges() {
        assert_eq!(negotiate_version(2, 5), None);
        assert_eq!(negotiate_version(0, 0), None);
        assert_eq!(negotiate_version(1, 0), None);
    }
}
