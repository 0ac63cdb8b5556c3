//! The one error type of the client.
//!
//! A failure has three possible origins, and the variants keep them apart so a caller can react
//! to each: the server refused a request ([`ClientError::Server`], carrying the stable wire
//! code), the connection broke or misbehaved (connect, i/o, closed, timeout, protocol), or the
//! client refused something before it reached the wire (a record over the topic's limit, a
//! partition that does not exist). The type is `Clone` because one produce failure has to be
//! delivered to every record of the batch it sank.

use std::io;
use std::sync::Arc;

use switchyard_log::BatchError;
use switchyard_protocol::{EncodeError, ErrorCode};

/// Result alias used across the crate.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Why a client operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The server answered the request with an error status.
    #[error("{message}")]
    Server {
        /// Stable wire code of the failure.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },

    /// The TCP connection could not be established.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Address that was dialled.
        addr: String,
        /// Cause reported by the operating system.
        #[source]
        source: Arc<io::Error>,
    },

    /// Establishing the TCP connection took longer than the connect timeout.
    #[error("connecting to {addr} timed out after {after_ms} ms; is the server running?")]
    ConnectTimeout {
        /// Address that was dialled.
        addr: String,
        /// The timeout that expired.
        after_ms: u64,
    },

    /// Reading or writing the socket failed.
    #[error("i/o error on the connection to {addr}: {source}")]
    Io {
        /// Server address of the connection.
        addr: String,
        /// Cause reported by the operating system.
        #[source]
        source: Arc<io::Error>,
    },

    /// The connection is gone; every call on it fails with this.
    #[error("connection to {addr} closed: {reason}")]
    Closed {
        /// Server address of the connection.
        addr: String,
        /// What ended it.
        reason: String,
    },

    /// No response arrived within the call's timeout.
    #[error("{request} request to {addr} got no response within {after_ms} ms")]
    Timeout {
        /// Server address of the connection.
        addr: String,
        /// Kind of the request that timed out.
        request: &'static str,
        /// The timeout that expired.
        after_ms: u64,
    },

    /// The server sent something that breaks the protocol; the connection is closed.
    #[error("protocol error on the connection to {addr}: {detail}")]
    Protocol {
        /// Server address of the connection.
        addr: String,
        /// What was wrong.
        detail: String,
    },

    /// A request could not be encoded (a name over 65535 bytes, for instance).
    #[error("cannot encode request: {0}")]
    Encode(#[from] EncodeError),

    /// An encoded request is larger than the server accepts.
    #[error(
        "{request} request is {len} bytes, over the server's frame limit of {limit} bytes; \
         send smaller batches"
    )]
    FrameTooLarge {
        /// Kind of the request.
        request: &'static str,
        /// Payload length of the encoded request.
        len: usize,
        /// The server's `max_frame`.
        limit: u32,
    },

    /// A record is over the topic's `max_record_bytes`; it was not sent.
    #[error(
        "record of {size} bytes is over the limit of {limit} bytes of topic `{topic}`; send a \
         smaller record, or use a topic with a higher limit: it is set when the topic is \
         created (`switchyard topic create NAME --max-record-bytes SIZE`)"
    )]
    RecordTooLarge {
        /// Topic the record was meant for.
        topic: String,
        /// Estimated encoded size of the record.
        size: usize,
        /// The topic's `max_record_bytes`.
        limit: u32,
    },

    /// A value is over the claim-check limit: even as a blob it cannot be sent.
    #[error(
        "payload of {size} bytes is over the {limit}-byte limit (64 MiB, the server's \
         max_payload_bytes); split it or store it elsewhere and send a reference"
    )]
    PayloadTooLarge {
        /// Size of the value.
        size: usize,
        /// The limit.
        limit: usize,
    },

    /// A partition number is not below the topic's partition count.
    #[error(
        "topic `{topic}` has {partitions} partition{}; partition {partition} does not exist",
        if *.partitions == 1 { "" } else { "s" }
    )]
    PartitionOutOfRange {
        /// Topic name.
        topic: String,
        /// Partition count known to the client.
        partitions: u32,
        /// The partition asked for.
        partition: u32,
    },

    /// A fetched batch failed its checksum or structural checks.
    #[error("fetch from topic `{topic}` partition {partition} returned a corrupt batch: {source}")]
    CorruptFetch {
        /// Topic name.
        topic: String,
        /// Partition fetched.
        partition: u32,
        /// What was wrong with the batch.
        #[source]
        source: BatchError,
    },

    /// A consumer operation named a partition this consumer does not own.
    #[error("partition {partition} of topic `{topic}` is not assigned to this consumer")]
    NotAssigned {
        /// Topic name.
        topic: String,
        /// The partition asked for.
        partition: u32,
    },

    /// A record was dropped before the server acknowledged it (its producer was dropped).
    #[error("producer for topic `{topic}` was dropped before the record was acknowledged")]
    Abandoned {
        /// Topic of the record.
        topic: String,
    },

    /// A request reached no subscription: nobody serves its subject.
    #[error("no responders for `{subject}`: no subscription took the request")]
    NoResponders {
        /// Subject the request was published to.
        subject: String,
    },

    /// A request reached a responder but no reply came within its timeout.
    #[error("request to `{subject}` got no reply within {after_ms} ms")]
    RequestTimeout {
        /// Subject the request was published to.
        subject: String,
        /// The timeout that expired.
        after_ms: u64,
    },

    /// An option given to a producer or consumer is out of range.
    #[error("invalid option `{option}`: {reason}")]
    InvalidOption {
        /// Name of the option.
        option: &'static str,
        /// Why it was refused and what is allowed.
        reason: String,
    },
}

impl ClientError {
    /// The wire error code: the server's for [`ClientError::Server`], and for an error the
    /// client caught itself, the code the server would have answered with.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            ClientError::RecordTooLarge { .. } => Some(ErrorCode::RecordTooLarge),
            ClientError::PartitionOutOfRange { .. } => Some(ErrorCode::PartitionOutOfRange),
            ClientError::FrameTooLarge { .. } => Some(ErrorCode::FrameTooLarge),
            _ => None,
        }
    }

    /// Whether the connection this error came from can no longer be used.
    pub fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            ClientError::Io { .. } | ClientError::Closed { .. } | ClientError::Protocol { .. }
        )
    }

    pub(crate) fn has_code(&self, code: ErrorCode) -> bool {
        self.code() == Some(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_error_displays_the_server_message() {
        let err = ClientError::Server {
            code: ErrorCode::UnknownTopic,
            message: "topic `orders` does not exist".into(),
        };
        assert_eq!(err.to_string(), "topic `orders` does not exist");
        assert_eq!(err.code(), Some(ErrorCode::UnknownTopic));
    }

    #[test]
    fn local_record_limit_names_the_limit() {
        let err = ClientError::RecordTooLarge {
            topic: "orders".into(),
            size: 2_000_000,
            limit: 1_048_576,
        };
        assert!(err.to_string().contains("limit of 1048576 bytes"));
        assert_eq!(err.code(), Some(ErrorCode::RecordTooLarge));
    }

    #[test]
    fn closed_names_the_address() {
        let err = ClientError::Closed {
            addr: "127.0.0.1:7411".into(),
            reason: "server closed the connection".into(),
        };
        assert_eq!(
            err.to_string(),
            "connection to 127.0.0.1:7411 closed: server closed the connection"
        );
        assert!(err.is_connection_lost());
        assert_eq!(err.code(), None);
    }
}
