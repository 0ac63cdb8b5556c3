//! Typed results of the calls that answer with more than a number.
//!
//! Simple wire values (`TopicSummary`, `PartitionInfo`, `PartitionOffset`, ...) are passed
//! through from `switchyard-protocol` as they are; the structs here give names to the
//! multi-field success bodies that the protocol keeps as enum variants.

use switchyard_protocol::{
    GroupPartition, MemberInfo, PartitionInfo, ResetPolicyWire, TopicConfigWire,
};

/// Configuration and per-partition state of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// Topic name.
    pub name: String,
    /// Effective configuration, every field filled in by the server.
    pub config: TopicConfigWire,
    /// State of every partition, in partition order.
    pub partitions: Vec<PartitionInfo>,
}

/// A member's state right after joining a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedGroup {
    /// Member id to use in every later group call.
    pub member_id: String,
    /// Group generation this assignment belongs to.
    pub generation: u32,
    /// Partitions the member may consume now.
    pub assignment: Vec<u32>,
    /// How often the server expects a heartbeat.
    pub heartbeat_interval_ms: u32,
    /// Topic to read: the one asked for, or the log of the subscription whose patterns the
    /// join named.
    pub topic: String,
}

/// A member's assignment as of a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAssignment {
    /// Current group generation.
    pub generation: u32,
    /// Partitions the member may consume now; owned partitions missing here must be given up.
    pub assignment: Vec<u32>,
}

/// Members, assignment and progress of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group name.
    pub name: String,
    /// Topic the group consumes.
    pub topic: String,
    /// Current generation.
    pub generation: u32,
    /// Current members and their partitions.
    pub members: Vec<MemberInfo>,
    /// Progress on every partition of the topic.
    pub partitions: Vec<GroupPartition>,
}

/// Arguments of a group join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// Group name.
    pub group: String,
    /// Topic the group consumes.
    pub topic: String,
    /// Previous member id when rejoining, `None` on a first join.
    pub member_id: Option<String>,
    /// Free-form client identification.
    pub client_name: String,
    /// Membership expires after this many milliseconds without a heartbeat.
    pub session_timeout_ms: u32,
    /// Start position for partitions with no usable commit (set when the group is created).
    pub reset: ResetPolicyWire,
}
