//! Translation between wire types and the broker's types, including error codes.
//!
//! Kept in one place so the mapping from a broker error to a stable wire code is easy to
//! audit: a code, once given a meaning, never changes it.

use std::time::Duration;

use switchyard_broker::{
    BrokerError, GroupDescription, OffsetSpec, ResetPolicy, TopicConfig, TopicDescription,
};
use switchyard_log::{BatchError, FsyncPolicy, LogError};
use switchyard_protocol::types::{
    FsyncPolicyWire, GroupPartition, MemberInfo, OffsetSpec as WireSpec, PartitionInfo,
    ResetPolicyWire, TopicConfigWire,
};
use switchyard_protocol::{ErrorCode, ErrorResponse, Response};

/// The wire error for a broker error; the message is the error's own sentence.
pub fn error_response(err: &BrokerError) -> ErrorResponse {
    let code = match err {
        BrokerError::UnknownTopic(_) => ErrorCode::UnknownTopic,
        BrokerError::TopicExists(_) => ErrorCode::TopicExists,
        BrokerError::InvalidName { .. } => ErrorCode::InvalidName,
        BrokerError::PartitionOutOfRange { .. } => ErrorCode::PartitionOutOfRange,
        BrokerError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        BrokerError::InvalidBatch {
            source: BatchError::RecordTooLarge { .. },
            ..
        } => ErrorCode::RecordTooLarge,
        BrokerError::InvalidBatch { .. } => ErrorCode::CorruptBatch,
        BrokerError::InvalidConfig(_) => ErrorCode::InvalidConfig,
        BrokerError::UnknownGroup(_) => ErrorCode::UnknownGroup,
        BrokerError::UnknownMember { .. } => ErrorCode::UnknownMember,
        BrokerError::GroupTopicMismatch { .. } => ErrorCode::GroupTopicMismatch,
        BrokerError::NotPartitionOwner { .. } => ErrorCode::NotPartitionOwner,
        BrokerError::Storage {
            source: LogError::Corrupt { .. },
            ..
        } => ErrorCode::StorageError,
        BrokerError::Storage { .. }
        | BrokerError::Io { .. }
        | BrokerError::SyncFailed { .. }
        | BrokerError::DataDirInUse { .. } => ErrorCode::StorageError,
        BrokerError::ShuttingDown => ErrorCode::ShuttingDown,
        BrokerError::Blob { .. } => ErrorCode::InvalidRequest,
        BrokerError::UnknownQueue(_) => ErrorCode::UnknownQueue,
        BrokerError::QueueExists(_) => ErrorCode::QueueExists,
        BrokerError::QueueFull { .. } => ErrorCode::QueueFull,
        BrokerError::LeaseExpired { .. } => ErrorCode::LeaseExpired,
        BrokerError::InvalidToken { .. } => ErrorCode::InvalidToken,
    };
    ErrorResponse::new(code, err.to_string())
}

/// Retention value on the wire that means "keep forever".
pub const RETAIN_FOREVER: u64 = u64::MAX;

/// Fills the fields a creator left out with the server's defaults. A partition count of 0
/// means the server's default count; a retention of [`RETAIN_FOREVER`] means no age limit.
pub fn topic_config(
    partitions: u32,
    wire: &TopicConfigWire,
    defaults: &TopicConfig,
) -> TopicConfig {
    TopicConfig {
        partitions: if partitions == 0 {
            defaults.partitions
        } else {
            partitions
        },
        retention_ms: match wire.retention_ms {
            Some(RETAIN_FOREVER) => None,
            Some(ms) => Some(ms),
            None => defaults.retention_ms,
        },
        retention_bytes: wire.retention_bytes.or(defaults.retention_bytes),
        segment_bytes: wire.segment_bytes.unwrap_or(defaults.segment_bytes),
        segment_ms: wire.segment_ms.unwrap_or(defaults.segment_ms),
        fsync: wire.fsync.map(fsync_from_wire).unwrap_or(defaults.fsync),
        fsync_interval_ms: wire.fsync_interval_ms.unwrap_or(defaults.fsync_interval_ms),
        max_record_bytes: wire.max_record_bytes.unwrap_or(defaults.max_record_bytes),
    }
}

fn fsync_from_wire(wire: FsyncPolicyWire) -> FsyncPolicy {
    match wire {
        FsyncPolicyWire::Always => FsyncPolicy::Always,
        FsyncPolicyWire::Interval => FsyncPolicy::Interval,
        FsyncPolicyWire::Never => FsyncPolicy::Never,
    }
}

fn fsync_to_wire(policy: FsyncPolicy) -> FsyncPolicyWire {
    match policy {
        FsyncPolicy::Always => FsyncPolicyWire::Always,
        FsyncPolicy::Interval => FsyncPolicyWire::Interval,
        FsyncPolicy::Never => FsyncPolicyWire::Never,
    }
}

pub fn offset_spec(wire: WireSpec) -> OffsetSpec {
    match wire {
        WireSpec::Earliest => OffsetSpec::Earliest,
        WireSpec::Latest => OffsetSpec::Latest,
        WireSpec::Timestamp(ms) => OffsetSpec::Timestamp(ms),
    }
}

pub fn reset_policy(wire: ResetPolicyWire) -> ResetPolicy {
    match wire {
        ResetPolicyWire::Earliest => ResetPolicy::Earliest,
        ResetPolicyWire::Latest => ResetPolicy::Latest,
    }
}

pub fn topic_description(description: TopicDescription) -> Response {
    let config = &description.config;
    Response::TopicDescription {
        name: description.name.clone(),
        config: TopicConfigWire {
            retention_ms: config.retention_ms,
            retention_bytes: config.retention_bytes,
            segment_bytes: Some(config.segment_bytes),
            segment_ms: Some(config.segment_ms),
            fsync: Some(fsync_to_wire(config.fsync)),
            fsync_interval_ms: Some(config.fsync_interval_ms),
            max_record_bytes: Some(config.max_record_bytes),
        },
        partitions: description
            .partitions
            .iter()
            .map(|p| PartitionInfo {
                partition: p.partition,
                start_offset: p.start_offset,
                end_offset: p.end_offset,
                size_bytes: p.size_bytes,
                segments: p.segments,
            })
            .collect(),
    }
}

pub fn group_description(description: GroupDescription) -> Response {
    Response::GroupDescription {
        name: description.name,
        topic: description.topic,
        generation: description.generation,
        members: description
            .members
            .into_iter()
            .map(|m| MemberInfo {
                member_id: m.member_id,
                client_name: m.client_name,
                partitions: m.partitions,
            })
            .collect(),
        partitions: description
            .partitions
            .into_iter()
            .map(|p| GroupPartition {
                partition: p.partition,
                committed: p.committed,
                log_start: p.log_start,
                log_end: p.log_end,
                lag: p.lag,
            })
            .collect(),
    }
}

/// How often a member should heartbeat for a session of `session_timeout_ms`: a third of it,
/// so two heartbeats can be lost before the session expires, as in Kafka.
pub fn heartbeat_interval(session_timeout_ms: u32) -> Duration {
    Duration::from_millis(u64::from(session_timeout_ms / 3).max(100))
}
