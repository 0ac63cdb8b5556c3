//! Responses: success bodies, error responses, and the response half of the header.
//!
//! A response payload is `u16 kind | u32 request_id | u16 status | body`. The kind echoes the
//! request's, which is what tells a decoder the shape of a success body (several kinds share
//! the empty body, so the body alone would not say which request it answers). A non-zero
//! status is an error code and the body is then just a message string, for any kind, even
//! an unknown one, so a peer can always read why a request failed.

use bytes::{Bytes, BytesMut};

use crate::codec::{Reader, Wire, Writer};
use crate::codes::{ErrorCode, ErrorResponse};
use crate::error::{BodyError, DecodeError, EncodeError};
use crate::frame::{write_frame, RESPONSE_HEADER_LEN};
use crate::queue_types::{AckResultWire, DeliveryWire, QueueStatsWire, SendResultWire};
use crate::request::RequestKind;
use crate::rule_types::{RuleWire, TraceStepWire};
use crate::subscription_types::SubscriptionSummaryWire;
use crate::types::{
    GroupPartition, GroupSummary, MemberInfo, PartitionInfo, PartitionOffset, TopicConfigWire,
    TopicSummary,
};

/// Kind used by a response that answers no particular request, such as the `FrameTooLarge`
/// error sent (with request id 0) before closing a connection whose framing broke.
pub const NO_REQUEST_KIND: u16 = 0;

/// Longest error message on the wire; longer messages are cut at a character boundary.
pub const MAX_ERROR_MESSAGE_LEN: usize = u16::MAX as usize;

/// What a request produced: a success body or an error.
pub type ResponseResult = Result<Response, ErrorResponse>;

/// A success body. Which variant answers which [`RequestKind`] is given by
/// [`Response::answers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Answers `Hello`.
    HelloOk {
        /// Version chosen by the server for this connection.
        version: u16,
        /// Free-form server identification.
        server_name: String,
        /// Largest frame payload the server accepts.
        max_frame: u32,
    },
    /// Answers `CreateTopic`, `DeleteTopic`, `AddPartitions`, `LeaveGroup`,
    /// `CommitOffsets`, `DeleteGroup`, `CreateQueue`, `DeleteQueue`, `Nack`, `Extend`,
    /// `Subscribe`, `Unsubscribe`, `CreateSubscription`, `DeleteSubscription`, `CreateRule`,
    /// `DeleteRule` and `BlobPut`.
    Empty,
    /// Answers `ListTopics`.
    Topics(Vec<TopicSummary>),
    /// Answers `DescribeTopic`.
    TopicDescription {
        /// Topic name.
        name: String,
        /// Effective configuration, every field filled in.
        config: TopicConfigWire,
        /// State of every partition.
        partitions: Vec<PartitionInfo>,
    },
    /// Answers `Produce`.
    Produced {
        /// Offset given to the first record of the batch.
        base_offset: u64,
        /// Records in the batch.
        record_count: u32,
    },
    /// Answers `Fetch`.
    Fetched {
        /// First offset still stored.
        log_start: u64,
        /// Offset the next record will get.
        log_end: u64,
        /// Zero or more whole record batches in the log's on-disk format.
        batches: Bytes,
    },
    /// Answers `ListOffsets`.
    Offset {
        /// The offset found.
        offset: u64,
    },
    /// Answers `JoinGroup`.
    Joined {
        /// Member id to use from now on.
        member_id: String,
        /// Group generation this assignment belongs to.
        generation: u32,
        /// Partitions assigned to this member.
        assignment: Vec<u32>,
        /// How often to heartbeat.
        heartbeat_interval_ms: u32,
        /// Topic the member reads: the requested one, or the log of the subscription the
        /// group belongs to when the request named that subscription's patterns.
        topic: String,
    },
    /// Answers `Heartbeat`.
    Assignment {
        /// Current group generation.
        generation: u32,
        /// Partitions assigned to this member in that generation.
        assignment: Vec<u32>,
    },
    /// Answers `FetchOffsets`: only partitions that have a commit.
    CommittedOffsets(Vec<PartitionOffset>),
    /// Answers `ListGroups`.
    Groups(Vec<GroupSummary>),
    /// Answers `DescribeGroup`.
    GroupDescription {
        /// Group name.
        name: String,
        /// Topic the group consumes.
        topic: String,
        /// Current generation.
        generation: u32,
        /// Current members and their partitions.
        members: Vec<MemberInfo>,
        /// Progress on every partition of the topic.
        partitions: Vec<GroupPartition>,
    },
    /// Answers `ListQueues`: queue names, sorted.
    Queues(Vec<String>),
    /// Answers `QueueStats`; boxed, being many times larger than the other bodies.
    QueueStats(Box<QueueStatsWire>),
    /// Answers `Send`: one result per record, in order.
    Sent(Vec<SendResultWire>),
    /// Answers `Receive`: the leased records, possibly none.
    Deliveries(Vec<DeliveryWire>),
    /// Answers `Ack`: one result per token, in order.
    AckResults(Vec<AckResultWire>),
    /// Answers `Redrive`.
    Redriven {
        /// Dead letters moved back to their queue.
        moved: u64,
    },
    /// Answers `Publish`.
    Published {
        /// Subscriptions that took at least one of the records into their buffer; 0 means
        /// no responders.
        subscribers: u32,
        /// When a topic has the subject's name: the partition the records were appended to
        /// and the offset of the first.
        stored: Option<PartitionOffset>,
    },
    /// Answers `ListSubscriptions`: sorted by topic, then name.
    Subscriptions(Vec<SubscriptionSummaryWire>),
    /// Answers `ListRules`: sorted by name.
    Rules(Vec<RuleWire>),
    /// Answers `Trace`: the routed copies, breadth first.
    Trace(Vec<TraceStepWire>),
    /// Answers `BlobGet`.
    Blob {
        /// Size of the whole blob.
        total: u64,
        /// The bytes from the requested offset on, at most the requested number.
        data: Bytes,
    },
}

impl Response {
    /// Whether this body is the success answer to a request of `kind`.
    pub fn answers(&self, kind: RequestKind) -> bool {
        use RequestKind as K;
        match self {
            Response::HelloOk { .. } => kind == K::Hello,
            Response::Empty => matches!(
                kind,
                K::CreateTopic
                    | K::DeleteTopic
                    | K::AddPartitions
                    | K::LeaveGroup
                    | K::CommitOffsets
                    | K::DeleteGroup
                    | K::CreateQueue
                    | K::DeleteQueue
                    | K::Nack
                    | K::Extend
                    | K::Subscribe
                    | K::Unsubscribe
                    | K::CreateSubscription
                    | K::DeleteSubscription
                    | K::CreateRule
                    | K::DeleteRule
                    | K::BlobPut
            ),
            Response::Topics(_) => kind == K::ListTopics,
            Response::TopicDescription { .. } => kind == K::DescribeTopic,
            Response::Produced { .. } => kind == K::Produce,
            Response::Fetched { .. } => kind == K::Fetch,
            Response::Offset { .. } => kind == K::ListOffsets,
            Response::Joined { .. } => kind == K::JoinGroup,
            Response::Assignment { .. } => kind == K::Heartbeat,
            Response::CommittedOffsets(_) => kind == K::FetchOffsets,
            Response::Groups(_) => kind == K::ListGroups,
            Response::GroupDescription { .. } => kind == K::DescribeGroup,
            Response::Queues(_) => kind == K::ListQueues,
            Response::QueueStats(_) => kind == K::QueueStats,
            Response::Sent(_) => kind == K::Send,
            Response::Deliveries(_) => kind == K::Receive || kind == K::PeekQueue,
            Response::AckResults(_) => kind == K::Ack,
            Response::Redriven { .. } => kind == K::Redrive,
            Response::Published { .. } => kind == K::Publish,
            Response::Subscriptions(_) => kind == K::ListSubscriptions,
            Response::Rules(_) => kind == K::ListRules,
            Response::Trace(_) => kind == K::Trace,
            Response::Blob { .. } => kind == K::BlobGet,
        }
    }

    /// The variant's name, for error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Response::HelloOk { .. } => "HelloOk",
            Response::Empty => "Empty",
            Response::Topics(_) => "Topics",
            Response::TopicDescription { .. } => "TopicDescription",
            Response::Produced { .. } => "Produced",
            Response::Fetched { .. } => "Fetched",
            Response::Offset { .. } => "Offset",
            Response::Joined { .. } => "Joined",
            Response::Assignment { .. } => "Assignment",
            Response::CommittedOffsets(_) => "CommittedOffsets",
            Response::Groups(_) => "Groups",
            Response::GroupDescription { .. } => "GroupDescription",
            Response::Queues(_) => "Queues",
            Response::QueueStats(_) => "QueueStats",
            Response::Sent(_) => "Sent",
            Response::Deliveries(_) => "Deliveries",
            Response::AckResults(_) => "AckResults",
            Response::Redriven { .. } => "Redriven",
            Response::Published { .. } => "Published",
            Response::Subscriptions(_) => "Subscriptions",
            Response::Rules(_) => "Rules",
            Response::Trace(_) => "Trace",
            Response::Blob { .. } => "Blob",
        }
    }

    fn encode_body(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self {
            Response::HelloOk {
                version,
                server_name,
                max_frame,
            } => {
                w.u16(*version);
                w.string("server_name", server_name)?;
                w.u32(*max_frame);
            }
            Response::Empty => {}
            Response::Topics(topics) => w.list("topics", topics)?,
            Response::TopicDescription {
                name,
                config,
                partitions,
            } => {
                w.string("topic name", name)?;
                config.encode(w)?;
                w.list("partitions", partitions)?;
            }
            Response::Produced {
                base_offset,
                record_count,
            } => {
                w.u64(*base_offset);
                w.u32(*record_count);
            }
            Response::Fetched {
                log_start,
                log_end,
                batches,
            } => {
                w.u64(*log_start);
                w.u64(*log_end);
                w.blob("batches", batches)?;
            }
            Response::Offset { offset } => w.u64(*offset),
            Response::Joined {
                member_id,
                generation,
                assignment,
                heartbeat_interval_ms,
                topic,
            } => {
                w.string("member_id", member_id)?;
                w.u32(*generation);
                w.list("assignment", assignment)?;
                w.u32(*heartbeat_interval_ms);
                w.string("topic", topic)?;
            }
            Response::Assignment {
                generation,
                assignment,
            } => {
                w.u32(*generation);
                w.list("assignment", assignment)?;
            }
            Response::CommittedOffsets(offsets) => w.list("offsets", offsets)?,
            Response::Groups(groups) => w.list("groups", groups)?,
            Response::GroupDescription {
                name,
                topic,
                generation,
                members,
                partitions,
            } => {
                w.string("group name", name)?;
                w.string("topic", topic)?;
                w.u32(*generation);
                w.list("members", members)?;
                w.list("partitions", partitions)?;
            }
            Response::Queues(names) => w.list("queues", names)?,
            Response::QueueStats(stats) => stats.encode(w)?,
            Response::Sent(results) => w.list("send results", results)?,
            Response::Deliveries(deliveries) => w.list("deliveries", deliveries)?,
            Response::AckResults(results) => w.list("ack results", results)?,
            Response::Redriven { moved } => w.u64(*moved),
            Response::Published {
                subscribers,
                stored,
            } => {
                w.u32(*subscribers);
                w.option(stored.as_ref(), |w, stored| stored.encode(w))?;
            }
            Response::Subscriptions(all) => w.list("subscriptions", all)?,
            Response::Rules(all) => w.list("rules", all)?,
            Response::Trace(steps) => w.list("trace steps", steps)?,
            Response::Blob { total, data } => {
                w.u64(*total);
                w.blob("blob data", data)?;
            }
        }
        Ok(())
    }

    fn decode_body(kind: RequestKind, r: &mut Reader) -> Result<Response, BodyError> {
        use RequestKind as K;
        Ok(match kind {
            K::Hello => Response::HelloOk {
                version: r.u16("version")?,
                server_name: r.string("server_name")?,
                max_frame: r.u32("max_frame")?,
            },
            K::CreateTopic
            | K::DeleteTopic
            | K::AddPartitions
            | K::LeaveGroup
            | K::CommitOffsets
            | K::DeleteGroup
            | K::CreateQueue
            | K::DeleteQueue
            | K::Nack
            | K::Extend
            | K::Subscribe
            | K::Unsubscribe
            | K::CreateSubscription
            | K::DeleteSubscription
            | K::CreateRule
            | K::DeleteRule
            | K::BlobPut => Response::Empty,
            K::ListTopics => Response::Topics(r.list("topics")?),
            K::DescribeTopic => Response::TopicDescription {
                name: r.string("topic name")?,
                config: TopicConfigWire::decode(r)?,
                partitions: r.list("partitions")?,
            },
            K::Produce => Response::Produced {
                base_offset: r.u64("base_offset")?,
                record_count: r.u32("record_count")?,
            },
            K::Fetch => Response::Fetched {
                log_start: r.u64("log_start")?,
                log_end: r.u64("log_end")?,
                batches: r.blob("batches")?,
            },
            K::ListOffsets => Response::Offset {
                offset: r.u64("offset")?,
            },
            K::JoinGroup => Response::Joined {
                member_id: r.string("member_id")?,
                generation: r.u32("generation")?,
                assignment: r.list("assignment")?,
                heartbeat_interval_ms: r.u32("heartbeat_interval_ms")?,
                topic: r.string("topic")?,
            },
            K::Heartbeat => Response::Assignment {
                generation: r.u32("generation")?,
                assignment: r.list("assignment")?,
            },
            K::FetchOffsets => Response::CommittedOffsets(r.list("offsets")?),
            K::ListGroups => Response::Groups(r.list("groups")?),
            K::DescribeGroup => Response::GroupDescription {
                name: r.string("group name")?,
                topic: r.string("topic")?,
                generation: r.u32("generation")?,
                members: r.list("members")?,
                partitions: r.list("partitions")?,
            },
            K::ListQueues => Response::Queues(r.list("queues")?),
            K::QueueStats => Response::QueueStats(Box::new(QueueStatsWire::decode(r)?)),
            K::Send => Response::Sent(r.list("send results")?),
            K::Receive | K::PeekQueue => Response::Deliveries(r.list("deliveries")?),
            K::Ack => Response::AckResults(r.list("ack results")?),
            K::Redrive => Response::Redriven {
                moved: r.u64("moved")?,
            },
            K::Publish => Response::Published {
                subscribers: r.u32("subscribers")?,
                stored: r.option("stored", PartitionOffset::decode)?,
            },
            K::ListSubscriptions => Response::Subscriptions(r.list("subscriptions")?),
            K::ListRules => Response::Rules(r.list("rules")?),
            K::Trace => Response::Trace(r.list("trace steps")?),
            K::BlobGet => Response::Blob {
                total: r.u64("total")?,
                data: r.blob("blob data")?,
            },
        })
    }
}

/// The longest prefix of `text` that fits `max` bytes without splitting a character.
fn truncate_at_char_boundary(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Appends a response to a request of `kind` as one complete frame to `buf`.
///
/// `kind` is a raw `u16` so that a server can answer a request of a kind it does not know
/// (with an error). A success body must [answer](Response::answers) `kind`, and an error's
/// code must not be 0; otherwise nothing is written and an error is returned. Error messages
/// longer than [`MAX_ERROR_MESSAGE_LEN`] bytes are truncated rather than refused, so reporting
/// an error cannot itself fail for that reason.
pub fn encode_response(
    request_id: u32,
    kind: impl Into<u16>,
    result: &ResponseResult,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let kind = kind.into();
    match result {
        Ok(response) => {
            let answers = RequestKind::from_u16(kind).is_some_and(|k| response.answers(k));
            if !answers {
                return Err(EncodeError::KindMismatch {
                    kind,
                    response: response.name(),
                });
            }
            write_frame(buf, |w| {
                w.u16(kind);
                w.u32(request_id);
                w.u16(0);
                response.encode_body(w)
            })
        }
        Err(error) => {
            let status = error.code.as_u16();
            if status == 0 {
                return Err(EncodeError::ZeroErrorCode);
            }
            let message = truncate_at_char_boundary(&error.message, MAX_ERROR_MESSAGE_LEN);
            write_frame(buf, |w| {
                w.u16(kind);
                w.u32(request_id);
                w.u16(status);
                w.string("error message", message)
            })
        }
    }
}

/// Decodes a response payload as returned by [`crate::split_frame`].
///
/// Returns the request id and what the request produced. Byte blobs in the result are slices
/// of `payload`, not copies.
pub fn decode_response(payload: Bytes) -> Result<(u32, ResponseResult), DecodeError> {
    let len = payload.len();
    let too_short = |_| DecodeError::TooShort {
        len,
        need: RESPONSE_HEADER_LEN,
    };
    let mut r = Reader::new(payload);
    let raw_kind = r.u16("kind").map_err(too_short)?;
    let request_id = r.u32("request_id").map_err(too_short)?;
    let status = r.u16("status").map_err(too_short)?;
    let malformed = |problem| DecodeError::Malformed {
        kind: raw_kind,
        request_id,
        problem,
    };
    let result = if status == 0 {
        let Some(kind) = RequestKind::from_u16(raw_kind) else {
            return Err(DecodeError::UnknownResponse {
                kind: raw_kind,
                request_id,
            });
        };
        Ok(Response::decode_body(kind, &mut r).map_err(malformed)?)
    } else {
        let message = r.string("error message").map_err(malformed)?;
        Err(ErrorResponse::new(ErrorCode::from_u16(status), message))
    };
    r.finish().map_err(malformed)?;
    Ok((request_id, result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{split_frame, DEFAULT_MAX_FRAME};

    fn round_trip(request_id: u32, kind: u16, result: ResponseResult) {
        let mut buf = BytesMut::new();
        encode_response(request_id, kind, &result, &mut buf).expect("encodes");
        let payload = split_frame(&mut buf, DEFAULT_MAX_FRAME)
            .expect("valid frame")
            .expect("complete frame");
        assert_eq!(decode_response(payload), Ok((request_id, result)));
    }

    #[test]
    fn error_response_has_the_documented_layout() {
        let result = Err(ErrorResponse::new(ErrorCode::UnknownTopic, "no"));
        let mut buf = BytesMut::new();
        encode_response(9, RequestKind::Fetch, &result, &mut buf).expect("encodes");
        let expected = [
            0, 0, 0, 12, // frame length
            0, 8, // kind: Fetch
            0, 0, 0, 9, // request id
            0, 1, // status: UnknownTopic
            0, 2, b'n', b'o', // message
        ];
        assert_eq!(&buf[..], &expected);
    }

    #[test]
    fn empty_response_is_header_only() {
        let mut buf = BytesMut::new();
        encode_response(3, RequestKind::DeleteGroup, &Ok(Response::Empty), &mut buf)
            .expect("encodes");
        assert_eq!(&buf[..], &[0, 0, 0, 8, 0, 17, 0, 0, 0, 3, 0, 0]);
    }

    #[test]
    fn errors_can_answer_unknown_kinds_and_carry_unknown_codes() {
        let frame_error = crate::FrameError::TooLarge { len: 99, max: 10 };
        round_trip(0, NO_REQUEST_KIND, Err(frame_error.to_error_response()));
        round_trip(
            12,
            999,
            Err(ErrorResponse::new(ErrorCode::UnknownRequest, "kind 999")),
        );
        round_trip(1, 4, Err(ErrorResponse::new(ErrorCode::Unknown(4242), "")));
    }

    #[test]
    fn success_must_answer_the_kind() {
        let mut buf = BytesMut::new();
        let result = Ok(Response::Offset { offset: 1 });
        assert_eq!(
            encode_response(1, RequestKind::Produce, &result, &mut buf),
            Err(EncodeError::KindMismatch {
                kind: 7,
                response: "Offset"
            })
        );
        assert!(encode_response(1, 500u16, &Ok(Response::Empty), &mut buf).is_err());
        assert!(buf.is_empty());
    }

    #[test]
    fn every_kind_has_exactly_one_answer_shape() {
        let shapes = [
            Response::HelloOk {
                version: 1,
                server_name: String::new(),
                max_frame: 0,
            },
            Response::Empty,
            Response::Topics(vec![]),
            Response::TopicDescription {
                name: String::new(),
                config: TopicConfigWire::default(),
                partitions: vec![],
            },
            Response::Produced {
                base_offset: 0,
                record_count: 0,
            },
            Response::Fetched {
                log_start: 0,
                log_end: 0,
                batches: Bytes::new(),
            },
            Response::Offset { offset: 0 },
            Response::Joined {
                member_id: String::new(),
                generation: 0,
                assignment: vec![],
                heartbeat_interval_ms: 0,
                topic: String::new(),
            },
            Response::Assignment {
                generation: 0,
                assignment: vec![],
            },
            Response::CommittedOffsets(vec![]),
            Response::Groups(vec![]),
            Response::GroupDescription {
                name: String::new(),
                topic: String::new(),
                generation: 0,
                members: vec![],
                partitions: vec![],
            },
            Response::Queues(vec![]),
            Response::QueueStats(Box::default()),
            Response::Sent(vec![]),
            Response::Deliveries(vec![]),
            Response::AckResults(vec![]),
            Response::Redriven { moved: 0 },
            Response::Published {
                subscribers: 0,
                stored: Some(PartitionOffset {
                    partition: 1,
                    offset: 2,
                }),
            },
            Response::Subscriptions(vec![]),
            Response::Rules(vec![]),
            Response::Trace(vec![]),
            Response::Blob {
                total: 3,
                data: Bytes::from_static(b"abc"),
            },
        ];
        for kind in RequestKind::ALL {
            let matching: Vec<_> = shapes.iter().filter(|s| s.answers(kind)).collect();
            assert_eq!(matching.len(), 1, "{kind:?}");
            round_trip(1, kind.as_u16(), Ok(matching[0].clone()));
        }
    }

    #[test]
    fn zero_error_code_is_refused() {
        let mut buf = BytesMut::new();
        let result = Err(ErrorResponse::new(ErrorCode::Unknown(0), "x"));
        assert_eq!(
            encode_response(1, RequestKind::Hello, &result, &mut buf),
            Err(EncodeError::ZeroErrorCode)
        );
    }

    #[test]
    fn long_error_messages_are_truncated_on_a_char_boundary() {
        let message = "é".repeat(40_000); // 80,000 bytes
        let mut buf = BytesMut::new();
        let result = Err(ErrorResponse::new(ErrorCode::Internal, message));
        encode_response(1, RequestKind::Hello, &result, &mut buf).expect("encodes");
        let payload = split_frame(&mut buf, DEFAULT_MAX_FRAME)
            .expect("valid")
            .expect("complete");
        let (_, decoded) = decode_response(payload).expect("decodes");
        let error = decoded.expect_err("error response");
        assert_eq!(error.message.len(), 65534);
        assert!(error.message.chars().all(|c| c == 'é'));
    }

    #[test]
    fn ok_status_with_unknown_kind_is_distinct() {
        let payload = Bytes::from_static(&[0, 77, 0, 0, 0, 5, 0, 0]);
        assert_eq!(
            decode_response(payload),
            Err(DecodeError::UnknownResponse {
                kind: 77,
                request_id: 5
            })
        );
    }

    #[test]
    fn bad_error_message_is_malformed() {
        let payload = Bytes::from_static(&[0, 1, 0, 0, 0, 5, 0, 3, 0, 1, 0xff]);
        assert!(matches!(
            decode_response(payload),
            Err(DecodeError::Malformed {
                kind: 1,
                request_id: 5,
                problem: BodyError::InvalidUtf8 { .. }
            })
        ));
    }

    #[test]
    fn short_payload_is_too_short() {
        let payload = Bytes::from_static(&[0, 1, 0, 0, 0, 5, 0]);
        assert_eq!(
            decode_response(payload),
            Err(DecodeError::TooShort { len: 7, need: 8 })
        );
    }
}
