//! Switchyard's native binary wire protocol: pure encoding and decoding, no I/O.
//!
//! Everything here is a function from bytes to values or back, so the server, the client and
//! the fuzzers share one definition of the wire and can test it without sockets. The contract
//! itself is `docs/protocol.md`; this crate is its implementation.
//!
//! # Map
//!
//! - [`frame`]: length-prefixed framing; [`split_frame`] cuts payloads out of a stream.
//! - [`request`]: [`Request`], [`RequestKind`] (numbered in `request_kind`), [`encode_request`],
//!   [`decode_request`].
//! - [`response`]: [`Response`], [`encode_response`], [`decode_response`].
//! - [`types`]: structured values shared by bodies (topic config, offsets, group state).
//! - [`queue_types`]: values of the queue requests (queue config, records to send,
//!   deliveries, per-record and per-token results); `queue_request` (private) their bodies.
//! - [`pubsub_types`]: values of the pub/sub requests (records to publish) and the push
//!   frame ([`Push`], [`encode_push`], [`decode_push`]) that carries messages to
//!   subscribers; `pubsub_request` (private) the request bodies.
//! - [`subscription_types`]: values of the durable subscription requests (mode, summary);
//!   `subscription_request` (private) their bodies.
//! - [`rule_types`]: values of the event rule requests (rule, trace step); bodies in
//!   `rule_request`.
//! - `blob_request` (private): bodies of the claim-check blob requests (put, get).
//! - [`codes`]: [`ErrorCode`] (stable status values) and [`ErrorResponse`].
//! - [`handshake`]: [`PROTOCOL_VERSION`] and [`negotiate_version`] for `Hello`.
//! - [`error`]: [`FrameError`], [`DecodeError`], [`BodyError`], [`EncodeError`].
//! - `codec` (private): bounds-checked primitive readers and writers.
//!
//! # Use
//!
//! A reader loop calls [`split_frame`] on its input buffer until it returns `None`, and hands
//! each payload to [`decode_request`] (server) or [`decode_response`] (client; a payload for
//! which [`is_push`] holds is a push and goes to [`decode_push`] instead). A
//! [`FrameError`] means the stream is unusable: answer `FrameTooLarge` with request id 0 and
//! close. A [`DecodeError`] with a request id means only that request was bad: answer it with
//! [`DecodeError::to_error_response`] and carry on.

mod blob_request;
mod codec;
pub mod codes;
pub mod error;
pub mod frame;
pub mod handshake;
mod pubsub_request;
pub mod pubsub_types;
mod queue_request;
pub mod queue_types;
pub mod request;
mod request_kind;
pub mod response;
mod rule_request;
pub mod rule_types;
mod subscription_request;
pub mod subscription_types;
pub mod types;

pub use codes::{ErrorCode, ErrorResponse};
pub use error::{BodyError, DecodeError, EncodeError, FrameError};
pub use frame::{
    split_frame, DEFAULT_MAX_FRAME, LENGTH_PREFIX_LEN, MIN_FRAME, REQUEST_HEADER_LEN,
    RESPONSE_HEADER_LEN,
};
pub use handshake::{negotiate_version, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};
pub use pubsub_types::{
    decode_push, encode_push, encode_push_of, is_push, MessageWire, PublishRecordWire, Push,
    PUSH_KIND,
};
pub use queue_types::{
    AckResultWire, DeliveryWire, ExpiryWire, OverflowWire, QueueConfigWire, QueueStatsWire,
    SendRecordWire, SendResultWire, SendStatus,
};
pub use request::{decode_request, encode_request, Request, RequestKind};
pub use response::{
    decode_response, encode_response, Response, ResponseResult, MAX_ERROR_MESSAGE_LEN,
    NO_REQUEST_KIND,
};
pub use rule_types::{RuleHeaderWire, RuleWire, TraceStepWire};
pub use subscription_types::{SubscriptionModeWire, SubscriptionSummaryWire};
pub use types::{
    FsyncPolicyWire, GroupPartition, GroupSummary, MemberInfo, OffsetSpec, PartitionInfo,
    PartitionOffset, ResetPolicyWire, TopicConfigWire, TopicSummary,
};
