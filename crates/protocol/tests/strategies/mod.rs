//! Proptest strategies producing every request and response variant.
//!
//! Shared by the integration tests so that round-trip and robustness tests exercise the same
//! value space. Strings include arbitrary Unicode so multi-byte UTF-8 lengths are covered.

use bytes::Bytes;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use switchyard_protocol::*;

pub mod pubsub;
mod queue;
mod rule;
mod subscription;

pub fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

pub fn blob() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..256).prop_map(Bytes::from)
}

pub fn u32s() -> impl Strategy<Value = Vec<u32>> {
    vec(any::<u32>(), 0..16)
}

pub fn fsync() -> impl Strategy<Value = FsyncPolicyWire> {
    prop_oneof![
        Just(FsyncPolicyWire::Always),
        Just(FsyncPolicyWire::Interval),
        Just(FsyncPolicyWire::Never),
    ]
}

pub fn config() -> impl Strategy<Value = TopicConfigWire> {
    (
        option::of(any::<u64>()),
        option::of(any::<u64>()),
        option::of(any::<u64>()),
        option::of(any::<u64>()),
        option::of(fsync()),
        option::of(any::<u64>()),
        option::of(any::<u32>()),
    )
        .prop_map(|(rm, rb, sb, sm, fs, fi, mr)| TopicConfigWire {
            retention_ms: rm,
            retention_bytes: rb,
            segment_bytes: sb,
            segment_ms: sm,
            fsync: fs,
            fsync_interval_ms: fi,
            max_record_bytes: mr,
        })
}

pub fn offset_spec() -> impl Strategy<Value = OffsetSpec> {
    prop_oneof![
        Just(OffsetSpec::Earliest),
        Just(OffsetSpec::Latest),
        any::<i64>().prop_map(OffsetSpec::Timestamp),
    ]
}

pub fn reset() -> impl Strategy<Value = ResetPolicyWire> {
    prop_oneof![
        Just(ResetPolicyWire::Earliest),
        Just(ResetPolicyWire::Latest)
    ]
}

pub fn partition_offsets() -> impl Strategy<Value = Vec<PartitionOffset>> {
    vec(
        (any::<u32>(), any::<u64>())
            .prop_map(|(partition, offset)| PartitionOffset { partition, offset }),
        0..8,
    )
}

/// Any request: stream, queue, pub/sub, subscription and rule kinds, weighted by how many
/// kinds each has.
pub fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        17 => stream_request(),
        10 => queue::queue_request(),
        3 => pubsub::pubsub_request(),
        3 => subscription::subscription_request(),
        4 => rule::rule_request(),
    ]
}

fn stream_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (any::<u16>(), any::<u16>(), text()).prop_map(|(min_version, max_version, name)| {
            Request::Hello {
                min_version,
                max_version,
                client_name: name,
            }
        }),
        (text(), any::<u32>(), config()).prop_map(|(name, partitions, config)| {
            Request::CreateTopic {
                name,
                partitions,
                config,
            }
        }),
        text().prop_map(|name| Request::DeleteTopic { name }),
        Just(Request::ListTopics),
        text().prop_map(|name| Request::DescribeTopic { name }),
        (text(), any::<u32>()).prop_map(|(name, total)| Request::AddPartitions { name, total }),
        (text(), any::<u32>(), blob()).prop_map(|(topic, partition, batch)| {
            Request::Produce {
                topic,
                partition,
                batch,
            }
        }),
        (
            text(),
            any::<u32>(),
            any::<u64>(),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(|(topic, partition, offset, max_bytes, max_wait_ms)| {
                Request::Fetch {
                    topic,
                    partition,
                    offset,
                    max_bytes,
                    max_wait_ms,
                }
            }),
        (text(), any::<u32>(), offset_spec()).prop_map(|(topic, partition, spec)| {
            Request::ListOffsets {
                topic,
                partition,
                spec,
            }
        }),
        (
            text(),
            text(),
            option::of(text()),
            text(),
            any::<u32>(),
            reset()
        )
            .prop_map(|(group, topic, member_id, client_name, timeout, reset)| {
                Request::JoinGroup {
                    group,
                    topic,
                    member_id,
                    client_name,
                    session_timeout_ms: timeout,
                    reset,
                }
            }),
        (text(), text(), any::<u32>(), u32s()).prop_map(|(group, member_id, generation, owned)| {
            Request::Heartbeat {
                group,
                member_id,
                generation,
                owned,
            }
        }),
        (text(), text()).prop_map(|(group, member_id)| Request::LeaveGroup { group, member_id }),
        (text(), text(), any::<u32>(), partition_offsets()).prop_map(
            |(group, member_id, generation, offsets)| Request::CommitOffsets {
                group,
                member_id,
                generation,
                offsets,
            }
        ),
        text().prop_map(|group| Request::FetchOffsets { group }),
        Just(Request::ListGroups),
        text().prop_map(|group| Request::DescribeGroup { group }),
        text().prop_map(|group| Request::DeleteGroup { group }),
    ]
}

fn topic_summaries() -> impl Strategy<Value = Vec<TopicSummary>> {
    vec(
        (text(), any::<u32>()).prop_map(|(name, partitions)| TopicSummary { name, partitions }),
        0..6,
    )
}

fn partition_infos() -> impl Strategy<Value = Vec<PartitionInfo>> {
    vec(
        (
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
        )
            .prop_map(|(partition, start, end, size, segments)| PartitionInfo {
                partition,
                start_offset: start,
                end_offset: end,
                size_bytes: size,
                segments,
            }),
        0..6,
    )
}

fn group_summaries() -> impl Strategy<Value = Vec<GroupSummary>> {
    vec(
        (text(), text(), any::<u32>(), any::<u32>()).prop_map(
            |(name, topic, members, generation)| GroupSummary {
                name,
                topic,
                members,
                generation,
            },
        ),
        0..6,
    )
}

fn members() -> impl Strategy<Value = Vec<MemberInfo>> {
    vec(
        (text(), text(), u32s()).prop_map(|(member_id, client_name, partitions)| MemberInfo {
            member_id,
            client_name,
            partitions,
        }),
        0..5,
    )
}

fn group_partitions() -> impl Strategy<Value = Vec<GroupPartition>> {
    vec(
        (
            any::<u32>(),
            option::of(any::<u64>()),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(
                |(partition, committed, log_start, log_end, lag)| GroupPartition {
                    partition,
                    committed,
                    log_start,
                    log_end,
                    lag,
                },
            ),
        0..6,
    )
}

/// Kinds answered by the empty body.
const EMPTY_KINDS: [RequestKind; 6] = [
    RequestKind::CreateTopic,
    RequestKind::DeleteTopic,
    RequestKind::AddPartitions,
    RequestKind::LeaveGroup,
    RequestKind::CommitOffsets,
    RequestKind::DeleteGroup,
];

/// A success body together with a request kind it answers.
pub fn ok_response() -> impl Strategy<Value = (RequestKind, Response)> {
    prop_oneof![
        12 => stream_ok_response(),
        7 => queue::queue_ok_response(),
        2 => pubsub::pubsub_ok_response(),
        2 => subscription::subscription_ok_response(),
        3 => rule::rule_ok_response(),
    ]
}

fn stream_ok_response() -> impl Strategy<Value = (RequestKind, Response)> {
    use RequestKind as K;
    prop_oneof![
        (any::<u16>(), text(), any::<u32>()).prop_map(|(version, server_name, max_frame)| {
            (
                K::Hello,
                Response::HelloOk {
                    version,
                    server_name,
                    max_frame,
                },
            )
        }),
        proptest::sample::select(EMPTY_KINDS.to_vec()).prop_map(|kind| (kind, Response::Empty)),
        topic_summaries().prop_map(|topics| (K::ListTopics, Response::Topics(topics))),
        (text(), config(), partition_infos()).prop_map(|(name, config, partitions)| {
            (
                K::DescribeTopic,
                Response::TopicDescription {
                    name,
                    config,
                    partitions,
                },
            )
        }),
        (any::<u64>(), any::<u32>()).prop_map(|(base_offset, record_count)| {
            (
                K::Produce,
                Response::Produced {
                    base_offset,
                    record_count,
                },
            )
        }),
        (any::<u64>(), any::<u64>(), blob()).prop_map(|(log_start, log_end, batches)| {
            (
                K::Fetch,
                Response::Fetched {
                    log_start,
                    log_end,
                    batches,
                },
            )
        }),
        any::<u64>().prop_map(|offset| (K::ListOffsets, Response::Offset { offset })),
        (text(), any::<u32>(), u32s(), any::<u32>(), text()).prop_map(
            |(member_id, generation, assignment, heartbeat, topic)| {
                (
                    K::JoinGroup,
                    Response::Joined {
                        member_id,
                        generation,
                        assignment,
                        heartbeat_interval_ms: heartbeat,
                        topic,
                    },
                )
            }
        ),
        (any::<u32>(), u32s()).prop_map(|(generation, assignment)| {
            (
                K::Heartbeat,
                Response::Assignment {
                    generation,
                    assignment,
                },
            )
        }),
        partition_offsets().prop_map(|o| (K::FetchOffsets, Response::CommittedOffsets(o))),
        group_summaries().prop_map(|groups| (K::ListGroups, Response::Groups(groups))),
        (text(), text(), any::<u32>(), members(), group_partitions()).prop_map(
            |(name, topic, generation, members, partitions)| {
                (
                    K::DescribeGroup,
                    Response::GroupDescription {
                        name,
                        topic,
                        generation,
                        members,
                        partitions,
                    },
                )
            }
        ),
    ]
}

/// An error response for any raw kind, with any non-zero code.
pub fn error_response() -> impl Strategy<Value = (u16, ErrorResponse)> {
    (any::<u16>(), 1..=u16::MAX, text()).prop_map(|(kind, code, message)| {
        (kind, ErrorResponse::new(ErrorCode::from_u16(code), message))
    })
}

/// Any response as `(raw kind, result)`.
pub fn response() -> impl Strategy<Value = (u16, ResponseResult)> {
    prop_oneof![
        3 => ok_response().prop_map(|(kind, response)| (kind.as_u16(), Ok(response))),
        1 => error_response().prop_map(|(kind, error)| (kind, Err(error))),
    ]
}
