//! Per-topic settings, persisted as `topic.json` in the topic's folder.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchyard_log::{FsyncPolicy, LogConfig};

/// Most partitions a topic may have: each partition holds open files, so this keeps a typo
/// from exhausting file descriptors.
pub const MAX_PARTITIONS: u32 = 10_000;

/// Settings of a topic. Durations are stored in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    pub partitions: u32,
    /// Records older than this are removed, a whole segment at a time. `None`: kept forever.
    pub retention_ms: Option<u64>,
    /// A partition is trimmed, a whole segment at a time, when it grows past this.
    pub retention_bytes: Option<u64>,
    pub segment_bytes: u64,
    pub segment_ms: u64,
    pub fsync: FsyncPolicy,
    pub fsync_interval_ms: u64,
    pub max_record_bytes: u32,
}

impl Default for TopicConfig {
    fn default() -> Self {
        let log = LogConfig::default();
        TopicConfig {
            partitions: 1,
            // Seven days, as Kafka.
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
            segment_bytes: log.segment_bytes,
            segment_ms: log.segment_age.as_millis() as u64,
            fsync: FsyncPolicy::Interval,
            // 50 ms: bounds loss on power failure to a twentieth of a second of writes.
            fsync_interval_ms: 50,
            max_record_bytes: log.max_record_bytes as u32,
        }
    }
}

impl TopicConfig {
    /// Checks every value, naming the first bad key.
    pub fn validate(&self) -> Result<(), String> {
        if self.partitions == 0 || self.partitions > MAX_PARTITIONS {
            return Err(format!(
                "partitions = {} is out of range; use 1 to {MAX_PARTITIONS}",
                self.partitions
            ));
        }
        if self.fsync_interval_ms == 0 {
            return Err("fsync_interval_ms must be at least 1".into());
        }
        if self.max_record_bytes as u64 > self.segment_bytes {
            return Err(format!(
                "max_record_bytes = {} is larger than segment_bytes = {}",
                self.max_record_bytes, self.segment_bytes
            ));
        }
        if self.retention_ms == Some(0) {
            return Err(
                "retention_ms = 0 would delete every record; to keep records forever, leave \
                 retention unset or use `--retention forever`"
                    .into(),
            );
        }
        self.log_config().validate()
    }

    /// The storage engine's view of these settings.
    pub fn log_config(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.segment_bytes,
            segment_age: Duration::from_millis(self.segment_ms),
            max_record_bytes: self.max_record_bytes as usize,
            ..LogConfig::default()
        }
    }

    pub fn retention(&self) -> Option<Duration> {
        self.retention_ms.map(Duration::from_millis)
    }
}
