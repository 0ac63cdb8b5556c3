//! Requests: their bodies and the request half of the header (the kinds are in
//! `request_kind`).
//!
//! A request payload is `u16 kind | u32 request_id | body`. Decoding reads the header first
//! and keeps it, so every later failure can name the request it belongs to and the server can
//! answer it with an error instead of dropping the connection.

use bytes::{Bytes, BytesMut};

use crate::codec::{Reader, Wire, Writer};
use crate::error::{BodyError, DecodeError, EncodeError};
use crate::frame::{write_frame, REQUEST_HEADER_LEN};
use crate::pubsub_types::PublishRecordWire;
use crate::queue_types::{QueueConfigWire, SendRecordWire};
use crate::rule_types::RuleWire;
use crate::subscription_types::SubscriptionModeWire;
use crate::types::{OffsetSpec, PartitionOffset, ResetPolicyWire, TopicConfigWire};

pub use crate::request_kind::RequestKind;

/// A request body. See `docs/protocol.md` for the meaning of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Kind 1.
    Hello {
        /// Oldest protocol version the client speaks.
        min_version: u16,
        /// Newest protocol version the client speaks.
        max_version: u16,
        /// Free-form client identification, for logs.
        client_name: String,
    },
    /// Kind 2.
    CreateTopic {
        /// Topic name.
        name: String,
        /// Initial partition count.
        partitions: u32,
        /// Settings; `None` fields take server defaults.
        config: TopicConfigWire,
    },
    /// Kind 3.
    DeleteTopic {
        /// Topic name.
        name: String,
    },
    /// Kind 4.
    ListTopics,
    /// Kind 5.
    DescribeTopic {
        /// Topic name.
        name: String,
    },
    /// Kind 6.
    AddPartitions {
        /// Topic name.
        name: String,
        /// New total partition count (not the number to add).
        total: u32,
    },
    /// Kind 7.
    Produce {
        /// Topic name.
        topic: String,
        /// Target partition.
        partition: u32,
        /// One record batch in the log's on-disk format.
        batch: Bytes,
    },
    /// Kind 8.
    Fetch {
        /// Topic name.
        topic: String,
        /// Source partition.
        partition: u32,
        /// First offset wanted.
        offset: u64,
        /// Soft limit on returned batch bytes.
        max_bytes: u32,
        /// How long to wait for data when there is none yet.
        max_wait_ms: u32,
    },
    /// Kind 9.
    ListOffsets {
        /// Topic name.
        topic: String,
        /// Partition to look in.
        partition: u32,
        /// Which offset to find.
        spec: OffsetSpec,
    },
    /// Kind 10.
    JoinGroup {
        /// Group name.
        group: String,
        /// Topic the group consumes.
        topic: String,
        /// Previous member id when rejoining, `None` on first join.
        member_id: Option<String>,
        /// Free-form client identification.
        client_name: String,
        /// Membership expires without a heartbeat for this long.
        session_timeout_ms: u32,
        /// Start position for partitions without a usable commit.
        reset: ResetPolicyWire,
    },
    /// Kind 11.
    Heartbeat {
        /// Group name.
        group: String,
        /// Member id from `Joined`.
        member_id: String,
        /// Generation the member believes is current.
        generation: u32,
        /// Partitions the member currently consumes.
        owned: Vec<u32>,
    },
    /// Kind 12.
    LeaveGroup {
        /// Group name.
        group: String,
        /// Member id from `Joined`.
        member_id: String,
    },
    /// Kind 13.
    CommitOffsets {
        /// Group name.
        group: String,
        /// Member id from `Joined`.
        member_id: String,
        /// Generation the member believes is current.
        generation: u32,
        /// Positions to commit.
        offsets: Vec<PartitionOffset>,
    },
    /// Kind 14.
    FetchOffsets {
        /// Group name.
        group: String,
    },
    /// Kind 15.
    ListGroups,
    /// Kind 16.
    DescribeGroup {
        /// Group name.
        group: String,
    },
    /// Kind 17.
    DeleteGroup {
        /// Group name.
        group: String,
    },
    /// Kind 18.
    CreateQueue {
        /// Queue name; also the name of its topic.
        name: String,
        /// Partitions of a new topic; 0 takes the server's default.
        partitions: u32,
        /// Settings; `None` fields take the defaults.
        config: QueueConfigWire,
    },
    /// Kind 19.
    DeleteQueue {
        /// Queue name.
        name: String,
    },
    /// Kind 20.
    ListQueues,
    /// Kind 21.
    QueueStats {
        /// Queue name.
        name: String,
    },
    /// Kind 22.
    Send {
        /// Queue name.
        queue: String,
        /// Records, each answered with its own result.
        records: Vec<SendRecordWire>,
    },
    /// Kind 23.
    Receive {
        /// Queue name.
        queue: String,
        /// Consumer name, for prefetch limits.
        consumer: String,
        /// Most records to lease.
        max: u32,
        /// How long to wait when no record is ready.
        wait_ms: u32,
        /// Lease length; `None` takes the queue's visibility.
        visibility_ms: Option<u64>,
        /// Most records the consumer may hold at once; 0 for no limit.
        prefetch_records: u32,
        /// Most payload bytes the consumer may hold at once; 0 for no limit.
        prefetch_bytes: u64,
    },
    /// Kind 24.
    Ack {
        /// Queue name.
        queue: String,
        /// Lease tokens, each answered with its own result.
        tokens: Vec<String>,
    },
    /// Kind 25.
    Nack {
        /// Queue name.
        queue: String,
        /// Lease token.
        token: String,
        /// Delay before the next delivery; `None` takes the queue's retry backoff.
        delay_ms: Option<u64>,
        /// Why processing failed; kept in the dead letter's headers.
        error: Option<String>,
    },
    /// Kind 26.
    Extend {
        /// Queue name.
        queue: String,
        /// Lease token.
        token: String,
        /// New lease length, from now.
        visibility_ms: u64,
    },
    /// Kind 40.
    PeekQueue {
        /// Queue name.
        queue: String,
        /// Most records to return.
        max: u32,
    },
    /// Kind 27.
    Redrive {
        /// The dead-letter queue to move records out of.
        dead_letter_queue: String,
        /// Most records to move; 0 moves all.
        max: u32,
        /// Only records at or after this offset of the dead-letter queue.
        from_offset: Option<u64>,
        /// Only records before this offset of the dead-letter queue.
        to_offset: Option<u64>,
    },
    /// Kind 28.
    Subscribe {
        /// Chosen by the client, unique among its subscriptions on this connection; pushes
        /// carry it.
        subscription_id: u32,
        /// Subject pattern: `*` stands for one token, a final `>` for the rest.
        pattern: String,
        /// Filter on key and headers; `None` takes every record.
        filter: Option<String>,
        /// Records the server buffers for this subscription before dropping; 0 takes the
        /// server's default.
        buffer_records: u32,
    },
    /// Kind 29.
    Unsubscribe {
        /// The id given in `Subscribe`.
        subscription_id: u32,
    },
    /// Kind 30.
    Publish {
        /// A literal subject (no wildcards).
        subject: String,
        /// Records, delivered in order.
        records: Vec<PublishRecordWire>,
    },
    /// Kind 31.
    CreateSubscription {
        /// Topic to read, or subject patterns separated by commas.
        topic: String,
        /// Subscription name; groups and queues share one namespace.
        name: String,
        /// How it hands out records.
        mode: SubscriptionModeWire,
        /// Filter on key and headers; `None` takes every record.
        filter: Option<String>,
        /// Where it starts: earliest, latest, or the first record at or after a time.
        start: OffsetSpec,
        /// Queue mode: the queue's settings, `None` fields taking the defaults; ignored by
        /// the other modes.
        queue: QueueConfigWire,
        /// Partitions of the subscription's own log (patterns or a filtered stream); 0 for
        /// the default, 1.
        partitions: u32,
    },
    /// Kind 32.
    ListSubscriptions {
        /// Only this topic's subscriptions; `None` for all.
        topic: Option<String>,
    },
    /// Kind 33.
    DeleteSubscription {
        /// Subscription name.
        name: String,
    },
    /// Kind 34.
    CreateRule { rule: RuleWire },
    /// Kind 35.
    ListRules,
    /// Kind 36.
    DeleteRule {
        /// Rule name.
        name: String,
    },
    /// Kind 37.
    Trace {
        topic: String,
        partition: u32,
        offset: u64,
    },
    /// Kind 38.
    BlobPut {
        /// Client-chosen blob id: 1 to 64 characters of `[A-Za-z0-9_-]`.
        id: String,
        /// Where this chunk starts; chunks come in order.
        offset: u64,
        /// Size of the whole blob.
        total: u64,
        /// The chunk, at most 8 MiB.
        data: Bytes,
        /// Whether this is the final chunk.
        last: bool,
    },
    /// Kind 39.
    BlobGet {
        /// Blob id.
        id: String,
        /// First byte wanted.
        offset: u64,
        /// Most bytes to return.
        max: u32,
    },
}

impl Request {
    /// The kind this request is sent as.
    pub fn kind(&self) -> RequestKind {
        match self {
            Request::Hello { .. } => RequestKind::Hello,
            Request::CreateTopic { .. } => RequestKind::CreateTopic,
            Request::DeleteTopic { .. } => RequestKind::DeleteTopic,
            Request::ListTopics => RequestKind::ListTopics,
            Request::DescribeTopic { .. } => RequestKind::DescribeTopic,
            Request::AddPartitions { .. } => RequestKind::AddPartitions,
            Request::Produce { .. } => RequestKind::Produce,
            Request::Fetch { .. } => RequestKind::Fetch,
            Request::ListOffsets { .. } => RequestKind::ListOffsets,
            Request::JoinGroup { .. } => RequestKind::JoinGroup,
            Request::Heartbeat { .. } => RequestKind::Heartbeat,
            Request::LeaveGroup { .. } => RequestKind::LeaveGroup,
            Request::CommitOffsets { .. } => RequestKind::CommitOffsets,
            Request::FetchOffsets { .. } => RequestKind::FetchOffsets,
            Request::ListGroups => RequestKind::ListGroups,
            Request::DescribeGroup { .. } => RequestKind::DescribeGroup,
            Request::DeleteGroup { .. } => RequestKind::DeleteGroup,
            Request::CreateQueue { .. } => RequestKind::CreateQueue,
            Request::DeleteQueue { .. } => RequestKind::DeleteQueue,
            Request::ListQueues => RequestKind::ListQueues,
            Request::QueueStats { .. } => RequestKind::QueueStats,
            Request::Send { .. } => RequestKind::Send,
            Request::Receive { .. } => RequestKind::Receive,
            Request::Ack { .. } => RequestKind::Ack,
            Request::Nack { .. } => RequestKind::Nack,
            Request::Extend { .. } => RequestKind::Extend,
            Request::Redrive { .. } => RequestKind::Redrive,
            Request::PeekQueue { .. } => RequestKind::PeekQueue,
            Request::Subscribe { .. } => RequestKind::Subscribe,
            Request::Unsubscribe { .. } => RequestKind::Unsubscribe,
            Request::Publish { .. } => RequestKind::Publish,
            Request::CreateSubscription { .. } => RequestKind::CreateSubscription,
            Request::ListSubscriptions { .. } => RequestKind::ListSubscriptions,
            Request::DeleteSubscription { .. } => RequestKind::DeleteSubscription,
            Request::CreateRule { .. } => RequestKind::CreateRule,
            Request::ListRules => RequestKind::ListRules,
            Request::DeleteRule { .. } => RequestKind::DeleteRule,
            Request::Trace { .. } => RequestKind::Trace,
            Request::BlobPut { .. } => RequestKind::BlobPut,
            Request::BlobGet { .. } => RequestKind::BlobGet,
        }
    }

    fn encode_body(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self {
            Request::Hello {
                min_version,
                max_version,
                client_name,
            } => {
                w.u16(*min_version);
                w.u16(*max_version);
                w.string("client_name", client_name)?;
            }
            Request::CreateTopic {
                name,
                partitions,
                config,
            } => {
                w.string("topic name", name)?;
                w.u32(*partitions);
                config.encode(w)?;
            }
            Request::DeleteTopic { name } | Request::DescribeTopic { name } => {
                w.string("topic name", name)?;
            }
            Request::ListTopics | Request::ListGroups | Request::ListQueues => {}
            Request::AddPartitions { name, total } => {
                w.string("topic name", name)?;
                w.u32(*total);
            }
            Request::Produce {
                topic,
                partition,
                batch,
            } => {
                w.string("topic", topic)?;
                w.u32(*partition);
                w.blob("batch", batch)?;
            }
            Request::Fetch {
                topic,
                partition,
                offset,
                max_bytes,
                max_wait_ms,
            } => {
                w.string("topic", topic)?;
                w.u32(*partition);
                w.u64(*offset);
                w.u32(*max_bytes);
                w.u32(*max_wait_ms);
            }
            Request::ListOffsets {
                topic,
                partition,
                spec,
            } => {
                w.string("topic", topic)?;
                w.u32(*partition);
                spec.encode(w)?;
            }
            Request::JoinGroup {
                group,
                topic,
                member_id,
                client_name,
                session_timeout_ms,
                reset,
            } => {
                w.string("group", group)?;
                w.string("topic", topic)?;
                w.option(member_id.as_ref(), |w, id| w.string("member_id", id))?;
                w.string("client_name", client_name)?;
                w.u32(*session_timeout_ms);
                reset.encode(w)?;
            }
            Request::Heartbeat {
                group,
                member_id,
                generation,
                owned,
            } => {
                w.string("group", group)?;
                w.string("member_id", member_id)?;
                w.u32(*generation);
                w.list("owned", owned)?;
            }
            Request::LeaveGroup { group, member_id } => {
                w.string("group", group)?;
                w.string("member_id", member_id)?;
            }
            Request::CommitOffsets {
                group,
                member_id,
                generation,
                offsets,
            } => {
                w.string("group", group)?;
                w.string("member_id", member_id)?;
                w.u32(*generation);
                w.list("offsets", offsets)?;
            }
            Request::FetchOffsets { group }
            | Request::DescribeGroup { group }
            | Request::DeleteGroup { group } => {
                w.string("group", group)?;
            }
            Request::CreateQueue { .. }
            | Request::DeleteQueue { .. }
            | Request::QueueStats { .. }
            | Request::Send { .. }
            | Request::Receive { .. }
            | Request::Ack { .. }
            | Request::Nack { .. }
            | Request::Extend { .. }
            | Request::Redrive { .. }
            | Request::PeekQueue { .. } => self.encode_queue_body(w)?,
            Request::Subscribe { .. } | Request::Unsubscribe { .. } | Request::Publish { .. } => {
                self.encode_pubsub_body(w)?
            }
            Request::CreateSubscription { .. }
            | Request::ListSubscriptions { .. }
            | Request::DeleteSubscription { .. } => self.encode_subscription_body(w)?,
            Request::CreateRule { .. }
            | Request::ListRules
            | Request::DeleteRule { .. }
            | Request::Trace { .. } => self.encode_rule_body(w)?,
            Request::BlobPut { .. } | Request::BlobGet { .. } => self.encode_blob_body(w)?,
        }
        Ok(())
    }

    fn decode_body(kind: RequestKind, r: &mut Reader) -> Result<Request, BodyError> {
        Ok(match kind {
            RequestKind::Hello => Request::Hello {
                min_version: r.u16("min_version")?,
                max_version: r.u16("max_version")?,
                client_name: r.string("client_name")?,
            },
            RequestKind::CreateTopic => Request::CreateTopic {
                name: r.string("topic name")?,
                partitions: r.u32("partitions")?,
                config: TopicConfigWire::decode(r)?,
            },
            RequestKind::DeleteTopic => Request::DeleteTopic {
                name: r.string("topic name")?,
            },
            RequestKind::ListTopics => Request::ListTopics,
            RequestKind::DescribeTopic => Request::DescribeTopic {
                name: r.string("topic name")?,
            },
            RequestKind::AddPartitions => Request::AddPartitions {
                name: r.string("topic name")?,
                total: r.u32("total")?,
            },
            RequestKind::Produce => Request::Produce {
                topic: r.string("topic")?,
                partition: r.u32("partition")?,
                batch: r.blob("batch")?,
            },
            RequestKind::Fetch => Request::Fetch {
                topic: r.string("topic")?,
                partition: r.u32("partition")?,
                offset: r.u64("offset")?,
                max_bytes: r.u32("max_bytes")?,
                max_wait_ms: r.u32("max_wait_ms")?,
            },
            RequestKind::ListOffsets => Request::ListOffsets {
                topic: r.string("topic")?,
                partition: r.u32("partition")?,
                spec: OffsetSpec::decode(r)?,
            },
            RequestKind::JoinGroup => Request::JoinGroup {
                group: r.string("group")?,
                topic: r.string("topic")?,
                member_id: r.option("member_id", |r| r.string("member_id"))?,
                client_name: r.string("client_name")?,
                session_timeout_ms: r.u32("session_timeout_ms")?,
                reset: ResetPolicyWire::decode(r)?,
            },
            RequestKind::Heartbeat => Request::Heartbeat {
                group: r.string("group")?,
                member_id: r.string("member_id")?,
                generation: r.u32("generation")?,
                owned: r.list("owned")?,
            },
            RequestKind::LeaveGroup => Request::LeaveGroup {
                group: r.string("group")?,
                member_id: r.string("member_id")?,
            },
            RequestKind::CommitOffsets => Request::CommitOffsets {
                group: r.string("group")?,
                member_id: r.string("member_id")?,
                generation: r.u32("generation")?,
                offsets: r.list("offsets")?,
            },
            RequestKind::FetchOffsets => Request::FetchOffsets {
                group: r.string("group")?,
            },
            RequestKind::ListGroups => Request::ListGroups,
            RequestKind::DescribeGroup => Request::DescribeGroup {
                group: r.string("group")?,
            },
            RequestKind::DeleteGroup => Request::DeleteGroup {
                group: r.string("group")?,
            },
            RequestKind::ListQueues => Request::ListQueues,
            RequestKind::CreateQueue
            | RequestKind::DeleteQueue
            | RequestKind::QueueStats
            | RequestKind::Send
            | RequestKind::Receive
            | RequestKind::Ack
            | RequestKind::Nack
            | RequestKind::Extend
            | RequestKind::Redrive
            | RequestKind::PeekQueue => Request::decode_queue_body(kind, r)?,
            RequestKind::Subscribe | RequestKind::Unsubscribe | RequestKind::Publish => {
                Request::decode_pubsub_body(kind, r)?
            }
            RequestKind::CreateSubscription
            | RequestKind::ListSubscriptions
            | RequestKind::DeleteSubscription => Request::decode_subscription_body(kind, r)?,
            RequestKind::CreateRule
            | RequestKind::ListRules
            | RequestKind::DeleteRule
            | RequestKind::Trace => Request::decode_rule_body(kind, r)?,
            RequestKind::BlobPut | RequestKind::BlobGet => Request::decode_blob_body(kind, r)?,
        })
    }
}

/// Appends `request` as one complete frame (length prefix included) to `buf`.
///
/// On error `buf` is left as it was.
pub fn encode_request(
    request_id: u32,
    request: &Request,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    write_frame(buf, |w| {
        w.u16(request.kind().as_u16());
        w.u32(request_id);
        request.encode_body(w)
    })
}

/// Decodes a request payload as returned by [`crate::split_frame`].
///
/// Byte blobs in the result are slices of `payload`, not copies.
pub fn decode_request(payload: Bytes) -> Result<(u32, Request), DecodeError> {
    let len = payload.len();
    let too_short = |_| DecodeError::TooShort {
        len,
        need: REQUEST_HEADER_LEN,
    };
    let mut r = Reader::new(payload);
    let raw_kind = r.u16("kind").map_err(too_short)?;
    let request_id = r.u32("request_id").map_err(too_short)?;
    let Some(kind) = RequestKind::from_u16(raw_kind) else {
        return Err(DecodeError::UnknownRequest {
            kind: raw_kind,
            request_id,
        });
    };
    let malformed = |problem| DecodeError::Malformed {
        kind: raw_kind,
        request_id,
        problem,
    };
    let request = Request::decode_body(kind, &mut r).map_err(malformed)?;
    r.finish().map_err(malformed)?;
    Ok((request_id, request))
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
