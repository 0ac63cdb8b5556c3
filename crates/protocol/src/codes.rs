//! Error codes carried in the `status` field of a response, and the error response itself.
//!
//! Codes are part of the wire contract: a value, once assigned, keeps its meaning forever and
//! is never reused. A peer may receive a code newer than itself; it decodes to
//! [`ErrorCode::Unknown`] keeping the raw value, so it can still be shown and passed on.

use std::fmt;

/// A non-zero response status. Status 0 means success and is not an error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// The named topic does not exist.
    UnknownTopic = 1,
    /// A topic with that name already exists.
    TopicExists = 2,
    /// A topic or group name breaks the naming rules.
    InvalidName = 3,
    /// The partition number is not below the topic's partition count.
    PartitionOutOfRange = 4,
    /// The offset is outside the partition's `[log_start, log_end]`.
    OffsetOutOfRange = 5,
    /// A record or batch is over the topic's size limit.
    RecordTooLarge = 6,
    /// A produced batch failed its checksum or structural checks.
    CorruptBatch = 7,
    /// A topic configuration value is out of range or inconsistent.
    InvalidConfig = 8,
    /// The member id is not (or no longer) part of the group.
    UnknownMember = 9,
    /// The generation is not the group's current one; rejoin.
    IllegalGeneration = 10,
    /// The member committed or claimed a partition it is not assigned.
    NotPartitionOwner = 11,
    /// The named group does not exist.
    UnknownGroup = 12,
    /// The group exists but consumes a different topic.
    GroupTopicMismatch = 13,
    /// The request body could not be decoded; the connection stays usable.
    MalformedRequest = 14,
    /// No protocol version in the client's range is supported.
    UnsupportedVersion = 15,
    /// The request kind is not known to the server.
    UnknownRequest = 16,
    /// A frame length was over the limit or otherwise invalid; the connection closes.
    FrameTooLarge = 17,
    /// The storage layer failed (disk full, I/O error); may succeed later.
    StorageError = 18,
    /// A request other than Hello arrived before the handshake.
    HandshakeRequired = 19,
    /// An unexpected server-side failure.
    Internal = 20,
    /// The request decoded but its values make no sense (e.g. zero partitions).
    InvalidRequest = 21,
    /// The server is shutting down; retry against it later or elsewhere.
    ShuttingDown = 22,
    /// The queue does not exist.
    UnknownQueue = 23,
    /// A queue with that name already exists.
    QueueExists = 24,
    /// The queue is at its record or byte limit; retry later.
    QueueFull = 25,
    /// The lease a token names expired or was superseded; the record goes to another holder.
    LeaseExpired = 26,
    /// The string is not a lease token of this queue.
    InvalidToken = 27,
    /// A code this implementation does not know, keeping the raw value.
    ///
    /// Its discriminant is 0 because 0 never travels as an error code (it means success).
    Unknown(u16) = 0,
}

impl ErrorCode {
    /// Every known code, in numeric order.
    pub const ALL: [ErrorCode; 27] = [
        ErrorCode::UnknownTopic,
        ErrorCode::TopicExists,
        ErrorCode::InvalidName,
        ErrorCode::PartitionOutOfRange,
        ErrorCode::OffsetOutOfRange,
        ErrorCode::RecordTooLarge,
        ErrorCode::CorruptBatch,
        ErrorCode::InvalidConfig,
        ErrorCode::UnknownMember,
        ErrorCode::IllegalGeneration,
        ErrorCode::NotPartitionOwner,
        ErrorCode::UnknownGroup,
        ErrorCode::GroupTopicMismatch,
        ErrorCode::MalformedRequest,
        ErrorCode::UnsupportedVersion,
        ErrorCode::UnknownRequest,
        ErrorCode::FrameTooLarge,
        ErrorCode::StorageError,
        ErrorCode::HandshakeRequired,
        ErrorCode::Internal,
        ErrorCode::InvalidRequest,
        ErrorCode::ShuttingDown,
        ErrorCode::UnknownQueue,
        ErrorCode::QueueExists,
        ErrorCode::QueueFull,
        ErrorCode::LeaseExpired,
        ErrorCode::InvalidToken,
    ];

    /// Maps a wire value to a code; values not listed become [`ErrorCode::Unknown`].
    pub fn from_u16(value: u16) -> ErrorCode {
        match value {
            1..=27 => Self::ALL[usize::from(value) - 1],
            other => ErrorCode::Unknown(other),
        }
    }

    /// The wire value of this code.
    pub fn as_u16(self) -> u16 {
        match self {
            ErrorCode::UnknownTopic => 1,
            ErrorCode::TopicExists => 2,
            ErrorCode::InvalidName => 3,
            ErrorCode::PartitionOutOfRange => 4,
            ErrorCode::OffsetOutOfRange => 5,
            ErrorCode::RecordTooLarge => 6,
            ErrorCode::CorruptBatch => 7,
            ErrorCode::InvalidConfig => 8,
            ErrorCode::UnknownMember => 9,
            ErrorCode::IllegalGeneration => 10,
            ErrorCode::NotPartitionOwner => 11,
            ErrorCode::UnknownGroup => 12,
            ErrorCode::GroupTopicMismatch => 13,
            ErrorCode::MalformedRequest => 14,
            ErrorCode::UnsupportedVersion => 15,
            ErrorCode::UnknownRequest => 16,
            ErrorCode::FrameTooLarge => 17,
            ErrorCode::StorageError => 18,
            ErrorCode::HandshakeRequired => 19,
            ErrorCode::Internal => 20,
            ErrorCode::InvalidRequest => 21,
            ErrorCode::ShuttingDown => 22,
            ErrorCode::UnknownQueue => 23,
            ErrorCode::QueueExists => 24,
            ErrorCode::QueueFull => 25,
            ErrorCode::LeaseExpired => 26,
            ErrorCode::InvalidToken => 27,
            ErrorCode::Unknown(value) => value,
        }
    }

    /// Whether the same request may succeed if sent again later, unchanged.
    ///
    /// Only transient server conditions qualify. Errors such as `IllegalGeneration` call
    /// for a different request (rejoin first), so they are not retryable in this sense.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::StorageError | ErrorCode::ShuttingDown | ErrorCode::QueueFull
        )
    }

    /// The code's name as written in the protocol document, e.g. `UnknownTopic`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::UnknownTopic => "UnknownTopic",
            ErrorCode::TopicExists => "TopicExists",
            ErrorCode::InvalidName => "InvalidName",
            ErrorCode::PartitionOutOfRange => "PartitionOutOfRange",
            ErrorCode::OffsetOutOfRange => "OffsetOutOfRange",
            ErrorCode::RecordTooLarge => "RecordTooLarge",
            ErrorCode::CorruptBatch => "CorruptBatch",
            ErrorCode::InvalidConfig => "InvalidConfig",
            ErrorCode::UnknownMember => "UnknownMember",
            ErrorCode::IllegalGeneration => "IllegalGeneration",
            ErrorCode::NotPartitionOwner => "NotPartitionOwner",
            ErrorCode::UnknownGroup => "UnknownGroup",
            ErrorCode::GroupTopicMismatch => "GroupTopicMismatch",
            ErrorCode::MalformedRequest => "MalformedRequest",
            ErrorCode::UnsupportedVersion => "UnsupportedVersion",
            ErrorCode::UnknownRequest => "UnknownRequest",
            ErrorCode::FrameTooLarge => "FrameTooLarge",
            ErrorCode::StorageError => "StorageError",
            ErrorCode::HandshakeRequired => "HandshakeRequired",
            ErrorCode::Internal => "Internal",
            ErrorCode::InvalidRequest => "InvalidRequest",
            ErrorCode::ShuttingDown => "ShuttingDown",
            ErrorCode::UnknownQueue => "UnknownQueue",
            ErrorCode::QueueExists => "QueueExists",
            ErrorCode::QueueFull => "QueueFull",
            ErrorCode::LeaseExpired => "LeaseExpired",
            ErrorCode::InvalidToken => "InvalidToken",
            ErrorCode::Unknown(_) => "Unknown",
        }
    }
}

impl From<ErrorCode> for u16 {
    fn from(code: ErrorCode) -> u16 {
        code.as_u16()
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::Unknown(value) => write!(f, "Unknown({value})"),
            known => f.write_str(known.name()),
        }
    }
}

/// A failed request as seen on the wire: a code and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ErrorResponse {
    /// Why the request failed.
    pub code: ErrorCode,
    /// Details for humans; not meant to be parsed.
    pub message: String,
}

impl ErrorResponse {
    /// Builds an error response.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorResponse {
        ErrorResponse {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_code_round_trips_and_is_numbered_in_order() {
        for (index, code) in ErrorCode::ALL.iter().enumerate() {
            let value = code.as_u16();
            assert_eq!(usize::from(value), index + 1);
            assert_eq!(ErrorCode::from_u16(value), *code);
            assert_ne!(code.name(), "Unknown");
        }
    }

    #[test]
    fn unknown_codes_keep_their_value() {
        for value in [0u16, 28, 999, u16::MAX] {
            let code = ErrorCode::from_u16(value);
            assert_eq!(code, ErrorCode::Unknown(value));
            assert_eq!(code.as_u16(), value);
            assert!(!code.is_retryable());
        }
        assert_eq!(ErrorCode::Unknown(77).to_string(), "Unknown(77)");
    }

    #[test]
    fn only_transient_codes_are_retryable() {
        let retryable: Vec<_> = ErrorCode::ALL
            .iter()
            .filter(|code| code.is_retryable())
            .collect();
        assert_eq!(
            retryable,
            [
                &ErrorCode::StorageError,
                &ErrorCode::ShuttingDown,
                &ErrorCode::QueueFull
            ]
        );
    }

    #[test]
    fn error_response_displays_code_and_message() {
        let error = ErrorResponse::new(ErrorCode::UnknownTopic, "no topic named orders");
        assert_eq!(error.to_string(), "UnknownTopic: no topic named orders");
    }
}
