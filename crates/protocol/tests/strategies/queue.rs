//! Strategies for the queue requests and responses (kinds 18 to 27).

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use switchyard_protocol::*;

use super::{blob, text};

fn headers() -> impl Strategy<Value = Vec<(String, bytes::Bytes)>> {
    vec((text(), blob()), 0..4)
}

fn overflow() -> impl Strategy<Value = OverflowWire> {
    prop_oneof![
        Just(OverflowWire::Reject),
        Just(OverflowWire::DropOldest),
        Just(OverflowWire::Block),
    ]
}

fn expiry() -> impl Strategy<Value = ExpiryWire> {
    prop_oneof![Just(ExpiryWire::DeadLetter), Just(ExpiryWire::Drop)]
}

pub fn queue_config() -> impl Strategy<Value = QueueConfigWire> {
    let first = (
        option::of(any::<u64>()),
        option::of(any::<u32>()),
        option::of(text()),
        option::of(any::<u64>()),
        option::of(any::<u8>()),
        option::of(any::<bool>()),
        option::of(any::<u64>()),
        option::of(any::<u64>()),
        option::of(any::<u64>()),
    );
    let second = (
        option::of(overflow()),
        option::of(any::<u64>()),
        option::of(any::<u64>()),
        option::of(expiry()),
        option::of(any::<u64>()),
        option::of(any::<u32>()),
        option::of(any::<u64>()),
        option::of(any::<u32>()),
        option::of(any::<bool>()),
    );
    (first, second).prop_map(|(a, b)| QueueConfigWire {
        visibility_ms: a.0,
        max_deliveries: a.1,
        dead_letter: a.2,
        default_delay_ms: a.3,
        priorities: a.4,
        ordered_by_key: a.5,
        dedup_window_ms: a.6,
        max_records: a.7,
        max_bytes: a.8,
        overflow: b.0,
        block_timeout_ms: b.1,
        ttl_ms: b.2,
        on_expiry: b.3,
        retry_base_ms: b.4,
        retry_factor_milli: b.5,
        retry_cap_ms: b.6,
        retry_jitter_milli: b.7,
        protect_from_retention: b.8,
    })
}

fn send_record() -> impl Strategy<Value = SendRecordWire> {
    (
        option::of(blob()),
        option::of(blob()),
        headers(),
        option::of(any::<u64>()),
        option::of(any::<u8>()),
        option::of(text()),
        option::of(any::<u64>()),
    )
        .prop_map(
            |(key, value, headers, delay_ms, priority, dedup_id, ttl_ms)| SendRecordWire {
                key,
                value,
                headers,
                delay_ms,
                priority,
                dedup_id,
                ttl_ms,
            },
        )
}

pub fn queue_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (text(), any::<u32>(), queue_config()).prop_map(|(name, partitions, config)| {
            Request::CreateQueue {
                name,
                partitions,
                config,
            }
        }),
        text().prop_map(|name| Request::DeleteQueue { name }),
        Just(Request::ListQueues),
        text().prop_map(|name| Request::QueueStats { name }),
        (text(), vec(send_record(), 0..4))
            .prop_map(|(queue, records)| Request::Send { queue, records }),
        (
            text(),
            text(),
            any::<u32>(),
            any::<u32>(),
            option::of(any::<u64>()),
            any::<u32>(),
            any::<u64>(),
        )
            .prop_map(
                |(queue, consumer, max, wait_ms, visibility_ms, records, bytes)| {
                    Request::Receive {
                        queue,
                        consumer,
                        max,
                        wait_ms,
                        visibility_ms,
                        prefetch_records: records,
                        prefetch_bytes: bytes,
                    }
                }
            ),
        (text(), vec(text(), 0..6)).prop_map(|(queue, tokens)| Request::Ack { queue, tokens }),
        (text(), text(), option::of(any::<u64>()), option::of(text())).prop_map(
            |(queue, token, delay_ms, error)| Request::Nack {
                queue,
                token,
                delay_ms,
                error,
            }
        ),
        (text(), text(), any::<u64>()).prop_map(|(queue, token, visibility_ms)| {
            Request::Extend {
                queue,
                token,
                visibility_ms,
            }
        }),
        (
            text(),
            any::<u32>(),
            option::of(any::<u64>()),
            option::of(any::<u64>())
        )
            .prop_map(|(dead_letter_queue, max, from_offset, to_offset)| {
                Request::Redrive {
                    dead_letter_queue,
                    max,
                    from_offset,
                    to_offset,
                }
            }),
        (text(), any::<u32>()).prop_map(|(queue, max)| Request::PeekQueue { queue, max }),
    ]
}

fn stats() -> impl Strategy<Value = QueueStatsWire> {
    (
        vec(any::<u64>(), 11),
        option::of(any::<u64>()),
        queue_config(),
    )
        .prop_map(|(n, oldest, config)| QueueStatsWire {
            ready: n[0],
            in_flight: n[1],
            delayed: n[2],
            blocked: n[3],
            dead_lettered: n[4],
            oldest_ready_age_ms: oldest,
            delivered_total: n[5],
            acked_total: n[6],
            dead_lettered_total: n[7],
            expired_total: n[8],
            dropped_total: n[9],
            lost_total: n[10],
            config,
        })
}

fn send_result() -> impl Strategy<Value = SendResultWire> {
    let status = prop_oneof![
        Just(SendStatus::Stored),
        Just(SendStatus::Duplicate),
        Just(SendStatus::Full),
    ];
    (status, any::<u32>(), any::<u64>(), text()).prop_map(|(status, partition, offset, message)| {
        SendResultWire {
            status,
            partition,
            offset,
            message,
        }
    })
}

fn delivery() -> impl Strategy<Value = DeliveryWire> {
    (
        text(),
        any::<u32>(),
        any::<u64>(),
        any::<u32>(),
        any::<i64>(),
        option::of(blob()),
        option::of(blob()),
        headers(),
    )
        .prop_map(
            |(token, partition, offset, deliveries, timestamp, key, value, headers)| DeliveryWire {
                token,
                partition,
                offset,
                deliveries,
                timestamp,
                key,
                value,
                headers,
            },
        )
}

/// Queue kinds answered by the empty body.
pub const EMPTY_QUEUE_KINDS: [RequestKind; 4] = [
    RequestKind::CreateQueue,
    RequestKind::DeleteQueue,
    RequestKind::Nack,
    RequestKind::Extend,
];

/// A success body of a queue request together with the kind it answers.
pub fn queue_ok_response() -> impl Strategy<Value = (RequestKind, Response)> {
    use RequestKind as K;
    prop_oneof![
        proptest::sample::select(EMPTY_QUEUE_KINDS.to_vec())
            .prop_map(|kind| (kind, Response::Empty)),
        vec(text(), 0..6).prop_map(|names| (K::ListQueues, Response::Queues(names))),
        stats().prop_map(|stats| (K::QueueStats, Response::QueueStats(Box::new(stats)))),
        vec(send_result(), 0..5).prop_map(|results| (K::Send, Response::Sent(results))),
        vec(delivery(), 0..4).prop_map(|got| (K::Receive, Response::Deliveries(got))),
        vec(delivery(), 0..4).prop_map(|got| (K::PeekQueue, Response::Deliveries(got))),
        vec(
            (any::<u16>(), text()).prop_map(|(code, message)| AckResultWire { code, message }),
            0..5
        )
        .prop_map(|results| (K::Ack, Response::AckResults(results))),
        any::<u64>().prop_map(|moved| (K::Redrive, Response::Redriven { moved })),
    ]
}
