//! The async Rust client of Switchyard.
//!
//! Layered from the wire up, each layer usable on its own:
//!
//! - [`connection`]: one TCP connection with the handshake done; many requests in flight at
//!   once, responses matched to callers by request id.
//! - [`client`]: [`Client`], one typed method per request kind.
//! - [`producer`]: [`Producer`], per-partition batching with linger, pipelined produces and a
//!   [`DeliveryReceipt`] per record.
//! - [`consumer`]: [`Consumer`], a consumer-group member: heartbeats in the background,
//!   follows the broker's assignment, fetches its partitions concurrently, commits positions.
//! - [`queue`]: the queue calls on [`Client`] (send, receive, ack, nack, extend, ...).
//! - [`queue_worker`]: [`QueueWorker`], a receive–handle–ack loop with bounded concurrency,
//!   lease extension while a handler runs, and batched acks.
//! - [`pubsub`]: ephemeral pub/sub, [`Client::subscribe`] and [`Client::publish`]; pushes
//!   routed to [`Subscription`]s through bounded buffers that drop and count.
//! - [`rules`]: event rules, [`Client::create_rule`] and [`Client::trace`].
//! - [`subscriptions`]: durable subscriptions, [`Client::create_subscription`] and the
//!   listing and deleting calls.
//! - [`request_reply`]: [`Client::request`] over one inbox per connection, and
//!   [`Responder`].
//! - [`records`]: decoding fetched batches and encoding batches to produce.
//! - [`types`]: named results of the calls that return more than a number.
//! - [`error`]: [`ClientError`], the one error type.
//!
//! The wire contract is `docs/protocol.md`; encoding is `switchyard-protocol`'s, and the
//! record batch format `switchyard-log`'s, so client and server cannot drift apart.
//!
//! # Limits
//!
//! - There is no reconnect: when a connection dies, every call on it fails with
//!   [`ClientError::Closed`] naming the address and the cause, and the caller builds a new
//!   [`Client`].
//! - Nothing is retried, not even retryable codes (`StorageError`, `ShuttingDown`); a failed
//!   produce fails the receipts of its batch.
//! - A [`Producer`] reads the partition count once, at creation; partitions added later get
//!   no records from it.
//! - A [`Consumer`] delivers at least once: records returned but not committed when it dies
//!   are read again by the next owner of their partition.
//! - Queues deliver at least once too: a [`QueueWorker`] whose handler outlives its lease
//!   (say, a process paused longer than the visibility) may see the record handled again
//!   elsewhere, and its late ack is refused with `LeaseExpired`.
//! - Pub/sub delivers at most once, and only while subscribed: a subscription whose buffer
//!   (server or client side) is full loses records, and [`Subscription::dropped`] counts
//!   them.

pub mod blobs;
pub mod client;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod producer;
pub mod pubsub;
pub mod queue;
pub mod queue_worker;
pub mod records;
pub mod request_reply;
pub mod rules;
pub mod subscriptions;
pub mod types;

pub use blobs::{BLOB_HEADER, BLOB_SIZE_HEADER, DEFAULT_CLAIM_CHECK_THRESHOLD, MAX_PAYLOAD_BYTES};
pub use client::{Client, MAX_FETCH_BYTES};
pub use connection::{ConnectOptions, Connection, ServerInfo};
pub use consumer::{ConsumedRecord, Consumer, ConsumerOptions, StartPosition};
pub use error::{ClientError, Result};
pub use producer::{Delivery, DeliveryReceipt, Producer, ProducerOptions};
pub use pubsub::{Message, Published, SubscribeOptions, Subscription, DEFAULT_BUFFER_RECORDS};
pub use queue::{ReceiveOptions, SEND_BLOCK_ALLOWANCE};
pub use queue_worker::{QueueWorker, WorkerOptions, WorkerReport};
pub use records::{encode_batch, record_size, FetchResult};
pub use request_reply::{Responder, CORRELATION_ID, REPLY_TO};
pub use subscriptions::SubscriptionOptions;
pub use types::{GroupAssignment, GroupDescription, JoinRequest, JoinedGroup, TopicDescription};

pub use switchyard_log::{Record, RecordBuf};
pub use switchyard_protocol::{
    AckResultWire, DeliveryWire, ExpiryWire, OverflowWire, PublishRecordWire, QueueConfigWire,
    QueueStatsWire, SendRecordWire, SendResultWire, SendStatus, SubscriptionModeWire,
    SubscriptionSummaryWire,
};
pub use switchyard_protocol::{
    ErrorCode, GroupPartition, GroupSummary, MemberInfo, OffsetSpec, PartitionInfo,
    PartitionOffset, ResetPolicyWire, TopicConfigWire, TopicSummary,
};
pub use switchyard_protocol::{RuleHeaderWire, RuleWire, TraceStepWire};
