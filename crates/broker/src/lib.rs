//! The broker: topics, partitions and stream subscriptions over the log crate.
//!
//! Usable in-process (embedded mode) as well as behind the server. Synchronous: every call
//! returns when its work is done, except waiting for new data, for which each partition
//! offers a `Notify` that an async caller can await.
//!
//! - [`blobs`]: claim-check blob store for large payloads, and its local folder backend.
//! - [`broker`]: opening the data folder, recovery, topic create/list/describe/delete.
//! - `data`: produce, fetch, offset lookup (methods on [`Broker`]).
//! - `groups`: consumer groups: join, heartbeat, commit, describe (methods on [`Broker`]).
//! - [`group`]: the pure coordinator state machine and the durable offset journal.
//! - [`topic`], [`topic_config`], [`names`]: a topic, its settings, name validation.
//! - [`queue`], `queues`: queues with leases over a topic (state machine, journal, service).
//! - [`maintenance`]: the background thread for periodic fsync, expiry and retention.
//! - [`rules`]: event rules that route records between topics, and tracing their copies.
//! - [`subscription_log`]: the logs of subscriptions bound to patterns or filtered.
//! - [`clock`]: injectable time.

pub mod blobs;
pub mod broker;
pub mod clock;
mod data;
mod dead_letters;
pub mod error;
pub mod group;
mod groups;
pub mod maintenance;
pub mod names;
pub mod queue;
mod queue_peek;
mod queue_send;
mod queues;
pub mod route;
pub mod rules;
pub mod subscription_log;
mod subscriptions;
pub mod syncer;
pub mod topic;
pub mod topic_config;

pub use broker::{Broker, BrokerOptions, PartitionRecovery, PartitionStats, TopicDescription};
pub use clock::{Clock, ManualClock, SystemClock};
pub use data::{Appended, OffsetSpec};
pub use error::BrokerError;
pub use group::{Assignment, ResetPolicy};
pub use groups::{
    GroupDescription, GroupPartition, GroupSummary, MemberDescription, MAX_SESSION_TIMEOUT_MS,
    MIN_SESSION_TIMEOUT_MS,
};
pub use maintenance::{MaintenanceOptions, RetentionTotals};
pub use queue::state::Prefetch;
pub use queue_send::{SendOutcome, SendRecord};
pub use queues::{Delivery, PendingSync, QueueStats};
pub use rules::{RuleSpec, TraceStep};
pub use subscriptions::{StartAt, SubscriptionMode, SubscriptionSpec, SubscriptionSummary};
pub use syncer::Durability;
pub use topic_config::TopicConfig;
