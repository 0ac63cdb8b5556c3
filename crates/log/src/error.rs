//! Errors of the storage engine.
//!
//! Every variant names the object it concerns (segment file, offset) so that a message in a
//! log line or an error response is enough to find the problem on disk.

use std::path::PathBuf;

/// Why a record batch could not be decoded or accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum BatchError {
    #[error("batch is truncated: it needs {needed} bytes but only {available} are present")]
    Truncated { needed: usize, available: usize },
    #[error("batch has unsupported magic byte {0}; this broker writes and reads magic 1")]
    BadMagic(u8),
    #[error("batch checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
    #[error("batch declares {declared} records but contains {found}")]
    CountMismatch { declared: u32, found: u32 },
    #[error("batch holds no records; send at least one")]
    Empty,
    #[error("record {index} of the batch is malformed: {reason}")]
    MalformedRecord { index: u32, reason: &'static str },
    #[error(
        "record {index} is {size} bytes, over the limit of {limit} bytes; send a smaller \
         record, or use a topic with a higher limit: it is set when the topic is created \
         (`switchyard topic create NAME --max-record-bytes SIZE`)"
    )]
    RecordTooLarge {
        index: u32,
        size: usize,
        limit: usize,
    },
    #[error("batch header says max timestamp {declared} but its records' maximum is {actual}")]
    TimestampMismatch { declared: i64, actual: i64 },
}

/// Errors of a partition log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid batch: {0}")]
    Batch(#[from] BatchError),
    #[error(
        "offset {offset} is out of range: the log holds offsets {log_start} to {log_end} \
         (end exclusive)"
    )]
    OffsetOutOfRange {
        offset: u64,
        log_start: u64,
        log_end: u64,
    },
    #[error(
        "corrupt data in segment {path} at byte {position} (near offset {offset}): {reason}; \
         the broker refuses to serve it"
    )]
    Corrupt {
        path: PathBuf,
        position: u64,
        offset: u64,
        reason: String,
    },
    #[error("invalid log configuration: {0}")]
    Config(String),
}

impl LogError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LogError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;
