//! Errors of the broker, each naming the topic, partition, group or member involved.

use switchyard_log::{BatchError, LogError};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("topic `{0}` does not exist{hint}", hint = unknown_topic_hint(.0))]
    UnknownTopic(String),
    #[error("topic `{0}` already exists")]
    TopicExists(String),
    #[error("invalid {kind} name `{name}`: {reason}")]
    InvalidName {
        kind: &'static str,
        name: String,
        reason: String,
    },
    #[error(
        "topic `{topic}` has {}; partition {partition} does not exist",
        partition_count(*.partitions)
    )]
    PartitionOutOfRange {
        topic: String,
        partition: u32,
        partitions: u32,
    },
    #[error(
        "offset {offset} is out of range for `{topic}` partition {partition}: it holds \
         {log_start} to {log_end} (end exclusive)"
    )]
    OffsetOutOfRange {
        topic: String,
        partition: u32,
        offset: u64,
        log_start: u64,
        log_end: u64,
    },
    #[error("record rejected by `{topic}` partition {partition}: {source}")]
    InvalidBatch {
        topic: String,
        partition: u32,
        #[source]
        source: BatchError,
    },
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    #[error("group `{0}` does not exist")]
    UnknownGroup(String),
    #[error("member `{member}` is not in group `{group}` (its session may have expired); rejoin")]
    UnknownMember { group: String, member: String },
    #[error("group `{group}` reads topic `{existing}`, not `{requested}`; use another group name")]
    GroupTopicMismatch {
        group: String,
        existing: String,
        requested: String,
    },
    #[error(
        "member `{member}` of group `{group}` does not own partition {partition}; \
         commit only the partitions of your current assignment"
    )]
    NotPartitionOwner {
        group: String,
        member: String,
        partition: u32,
    },
    #[error("storage error on `{topic}` partition {partition}: {source}")]
    Storage {
        topic: String,
        partition: u32,
        #[source]
        source: LogError,
    },
    #[error(
        "fsync of `{topic}` partition {partition} failed: {reason}; the produce was not \
         acknowledged and may be retried"
    )]
    SyncFailed {
        topic: String,
        partition: u32,
        reason: String,
    },
    #[error("i/o error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("queue `{0}` does not exist; create it with `switchyard queue create {0}`")]
    UnknownQueue(String),
    #[error("queue `{0}` already exists")]
    QueueExists(String),
    #[error("queue `{queue}` is full ({limit}); retry later or raise the limit")]
    QueueFull { queue: String, limit: String },
    #[error(
        "the lease on `{queue}` partition {partition} offset {offset} has expired or was \
         superseded; the record was or will be delivered again, to be acked by its new holder"
    )]
    LeaseExpired {
        queue: String,
        partition: u32,
        offset: u64,
    },
    #[error("`{token}` is not a lease token of queue `{queue}`")]
    InvalidToken { queue: String, token: String },
    #[error("the broker is shutting down")]
    ShuttingDown,
    #[error("blob `{id}`: {reason}")]
    Blob { id: String, reason: String },
    #[error(
        "data folder {dir} is in use by another broker (lock file {lock}); stop it or use \
         another --data-dir"
    )]
    DataDirInUse { dir: String, lock: String },
}

impl BrokerError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        BrokerError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Wraps a log error of one partition, lifting the variants a client can act on.
    pub(crate) fn from_log(topic: &str, partition: u32, err: LogError) -> Self {
        match err {
            LogError::Batch(source) => BrokerError::InvalidBatch {
                topic: topic.to_string(),
                partition,
                source,
            },
            LogError::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            } => BrokerError::OffsetOutOfRange {
                topic: topic.to_string(),
                partition,
                offset,
                log_start,
                log_end,
            },
            LogError::Config(reason) => BrokerError::InvalidConfig(reason),
            other => BrokerError::Storage {
                topic: topic.to_string(),
                partition,
                source: other,
            },
        }
    }
}

/// `1 partition`, `3 partitions`.
pub(crate) fn partition_count(partitions: u32) -> String {
    match partitions {
        1 => "1 partition".to_string(),
        n => format!("{n} partitions"),
    }
}

pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

/// What to say after "topic X does not exist": a subscription's log is gone with its
/// subscription; any other topic may be looked up.
fn unknown_topic_hint(topic: &str) -> String {
    match topic.strip_prefix(crate::subscription_log::LOG_TOPIC_PREFIX) {
        Some(name) => format!(
            "; it was the log of subscription `{name}`, which has been deleted (see \
             `switchyard sub list`)"
        ),
        None => "; `switchyard topic list` shows the topics".to_string(),
    }
}
