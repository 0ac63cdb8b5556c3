//! Settings of one partition log.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When appended data is forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// fsync before a produce is acknowledged; concurrent producers share one fsync.
    Always,
    /// fsync in the background every `fsync_interval`; an acknowledged record survives a
    /// crash of the broker process (it is in the page cache) but may be lost on power loss.
    #[default]
    Interval,
    /// Leave flushing to the operating system.
    Never,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "always" => Ok(FsyncPolicy::Always),
            "interval" => Ok(FsyncPolicy::Interval),
            "never" => Ok(FsyncPolicy::Never),
            other => Err(format!(
                "unknown fsync policy `{other}`; use always, interval or never"
            )),
        }
    }
}

impl std::fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::Interval => "interval",
            FsyncPolicy::Never => "never",
        })
    }
}

/// Segment and index sizing of a partition log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A segment is sealed once it holds this many bytes.
    pub segment_bytes: u64,
    /// A segment is sealed once it is this old, so retention by age can act on quiet topics.
    pub segment_age: Duration,
    /// Bytes of data between two index entries.
    pub index_interval_bytes: u64,
    /// Largest encoded record accepted.
    pub max_record_bytes: usize,
}

/// Largest segment: index positions are 32-bit.
pub const MAX_SEGMENT_BYTES: u64 = 1 << 31;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            // 1 GiB, as Kafka: few files per partition, retention granularity still fine.
            segment_bytes: 1 << 30,
            segment_age: Duration::from_secs(7 * 24 * 3600),
            // 4 KiB: a lookup scans at most one page of headers.
            index_interval_bytes: 4096,
            max_record_bytes: 1 << 20,
        }
    }
}

impl LogConfig {
    /// Checks the values, naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.segment_bytes < 1024 || self.segment_bytes > MAX_SEGMENT_BYTES {
            return Err(format!(
                "segment_bytes {} is out of range; use 1 KiB to 2 GiB",
                self.segment_bytes
            ));
        }
        if self.max_record_bytes == 0 {
            return Err("max_record_bytes must be at least 1".into());
        }
        if self.segment_age.is_zero() {
            return Err("segment_age must be longer than zero".into());
        }
        Ok(())
    }
}
