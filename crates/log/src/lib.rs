//! The storage engine of Switchyard: a durable, segmented, append-only log per partition.
//!
//! No async, no networking: plain synchronous code over files, so it can be tested alone and
//! driven by any runtime. The broker above it owns topics and subscriptions; this crate only
//! stores and serves record batches.
//!
//! - [`record`]: a record's fields and their encoding inside a batch.
//! - [`batch`]: record batches, the unit that is checksummed, stored and sent on the wire.
//! - [`varint`]: the variable-length integers used inside records.
//! - [`index`]: sparse offset and time indexes of a segment.
//! - [`segment`]: one data file and its indexes; scanning and recovery of a file.
//! - [`partition`]: a partition's log: appends, reads, group commit, retention, recovery.
//! - [`config`]: sizing and fsync settings.
//!
//! The byte layout and crash semantics are specified in `docs/log-format.md`.

pub mod batch;
pub mod config;
pub mod error;
pub mod index;
pub mod partition;
pub mod partitioner;
pub mod record;
pub mod segment;
pub mod varint;

pub use batch::{parse_batches, Batch, BatchBuilder, BatchHeader, ProducerStamp};
pub use config::{FsyncPolicy, LogConfig};
pub use error::{BatchError, LogError};
pub use partition::{AppendInfo, PartitionLog, ReadResult, RecoveryReport, RetentionReport};
pub use record::{Header, Record, RecordBuf};

/// Milliseconds since the Unix epoch by the system clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}
