//! Errors raised while framing, decoding and encoding.
//!
//! They are split by who has to react:
//!
//! - [`FrameError`]: the length prefix itself is unacceptable. The byte stream can no longer
//!   be trusted, so the peer answers with `FrameTooLarge` (request id 0) and closes.
//! - [`DecodeError`]: a complete payload arrived but could not be understood. When its
//!   header was readable the error carries the request id and kind, so the server can answer
//!   that exact request and keep the connection open.
//! - [`BodyError`]: the precise problem inside a body (truncation, bad UTF-8, bad tag, ...),
//!   wrapped by [`DecodeError::Malformed`].
//! - [`EncodeError`]: a value that cannot be represented on the wire (a name longer than a
//!   `u16` length allows, a response that does not answer the given kind, ...). These are bugs
//!   or bad input on the encoding side, never caused by the peer.

use crate::codes::{ErrorCode, ErrorResponse};

/// The length prefix of a frame is out of bounds; the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The declared payload length is above the configured maximum.
    #[error("frame length {len} exceeds the limit of {max} bytes")]
    TooLarge {
        /// Declared payload length.
        len: u32,
        /// Configured maximum payload length.
        max: u32,
    },
    /// The declared payload length cannot even hold a request header.
    #[error("frame length {len} is below the minimum of {min} bytes")]
    TooShort {
        /// Declared payload length.
        len: u32,
        /// Smallest acceptable payload length.
        min: u32,
    },
}

impl FrameError {
    /// The error code to report to the peer before closing the connection.
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode::FrameTooLarge
    }

    /// The error response to send (kind [`crate::NO_REQUEST_KIND`], request id 0) before
    /// closing.
    pub fn to_error_response(&self) -> ErrorResponse {
        ErrorResponse::new(self.error_code(), self.to_string())
    }
}

/// What went wrong inside a body, with the name of the field being read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The payload ended before the field was complete.
    #[error("payload ends inside {field}: needs {need} bytes, {have} left")]
    Truncated {
        /// Field being read.
        field: &'static str,
        /// Bytes the field needs.
        need: usize,
        /// Bytes left in the payload.
        have: usize,
    },
    /// A string field is not valid UTF-8.
    #[error("{field} is not valid utf-8")]
    InvalidUtf8 {
        /// Field being read.
        field: &'static str,
    },
    /// A bool, option tag or enum tag has a value outside its range.
    #[error("{field} has invalid tag {value}")]
    InvalidTag {
        /// Field being read.
        field: &'static str,
        /// The offending byte.
        value: u8,
    },
    /// A list claims more items than the rest of the payload could possibly hold.
    #[error("{field} claims {count} items but only {remaining} bytes are left")]
    CountTooLarge {
        /// Field being read.
        field: &'static str,
        /// Declared item count.
        count: u32,
        /// Bytes left in the payload.
        remaining: usize,
    },
    /// The body was fully decoded but bytes remain after it.
    #[error("{count} unexpected trailing bytes after the body")]
    TrailingBytes {
        /// Number of bytes left over.
        count: usize,
    },
}

/// A complete payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The payload is too short to hold its header; nothing about it is known.
    #[error("payload of {len} bytes is shorter than the {need}-byte header")]
    TooShort {
        /// Payload length.
        len: usize,
        /// Header length.
        need: usize,
    },
    /// The request kind is not one this implementation knows.
    #[error("unknown request kind {kind} (request id {request_id})")]
    UnknownRequest {
        /// Kind found in the header.
        kind: u16,
        /// Request id found in the header.
        request_id: u32,
    },
    /// A success response carries a kind this implementation knows no body for.
    #[error("ok response for unknown request kind {kind} (request id {request_id})")]
    UnknownResponse {
        /// Kind found in the header.
        kind: u16,
        /// Request id found in the header.
        request_id: u32,
    },
    /// The header was readable but the body was not.
    #[error("malformed body for kind {kind} (request id {request_id}): {problem}")]
    Malformed {
        /// Kind found in the header.
        kind: u16,
        /// Request id found in the header.
        request_id: u32,
        /// What was wrong with the body.
        problem: BodyError,
    },
}

impl DecodeError {
    /// The request id from the header, when the header was readable.
    pub fn request_id(&self) -> Option<u32> {
        match self {
            DecodeError::TooShort { .. } => None,
            DecodeError::UnknownRequest { request_id, .. }
            | DecodeError::UnknownResponse { request_id, .. }
            | DecodeError::Malformed { request_id, .. } => Some(*request_id),
        }
    }

    /// The kind from the header, when the header was readable.
    pub fn kind(&self) -> Option<u16> {
        match self {
            DecodeError::TooShort { .. } => None,
            DecodeError::UnknownRequest { kind, .. }
            | DecodeError::UnknownResponse { kind, .. }
            | DecodeError::Malformed { kind, .. } => Some(*kind),
        }
    }

    /// The error code a server answers this request with.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            DecodeError::UnknownRequest { .. } => ErrorCode::UnknownRequest,
            _ => ErrorCode::MalformedRequest,
        }
    }

    /// The error response a server sends back for this request (code plus this message).
    pub fn to_error_response(&self) -> ErrorResponse {
        ErrorResponse::new(self.error_code(), self.to_string())
    }
}

/// A value cannot be represented on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A string is longer than its `u16` length prefix allows.
    #[error("{field} is {len} bytes long, over the limit of 65535")]
    StringTooLong {
        /// Field being written.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// A byte blob is longer than its `u32` length prefix allows.
    #[error("{field} is {len} bytes long, over the limit of 4294967295")]
    BlobTooLong {
        /// Field being written.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// A list has more items than its `u32` count allows.
    #[error("{field} has {count} items, over the limit of 4294967295")]
    TooManyItems {
        /// Field being written.
        field: &'static str,
        /// Its item count.
        count: usize,
    },
    /// The whole payload is longer than the `u32` frame length allows.
    #[error("payload of {len} bytes does not fit a frame")]
    FrameTooLarge {
        /// Payload length.
        len: usize,
    },
    /// A success response whose body does not answer the given request kind.
    #[error("a {response} response does not answer request kind {kind}")]
    KindMismatch {
        /// Request kind to answer.
        kind: u16,
        /// Name of the response variant given.
        response: &'static str,
    },
    /// An error response whose code is 0, which the wire reserves for success.
    #[error("error code 0 is reserved for success")]
    ZeroErrorCode,
}
