//! Strategies for the pub/sub requests and responses (kinds 28 to 30) and push frames.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use switchyard_protocol::*;

use super::{blob, text};

fn headers() -> impl Strategy<Value = Vec<(String, bytes::Bytes)>> {
    vec((text(), blob()), 0..4)
}

fn publish_record() -> impl Strategy<Value = PublishRecordWire> {
    (option::of(blob()), option::of(blob()), headers()).prop_map(|(key, value, headers)| {
        PublishRecordWire {
            key,
            value,
            headers,
        }
    })
}

pub fn pubsub_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (any::<u32>(), text(), option::of(text()), any::<u32>()).prop_map(
            |(subscription_id, pattern, filter, buffer_records)| Request::Subscribe {
                subscription_id,
                pattern,
                filter,
                buffer_records,
            }
        ),
        any::<u32>().prop_map(|subscription_id| Request::Unsubscribe { subscription_id }),
        (text(), vec(publish_record(), 0..4))
            .prop_map(|(subject, records)| Request::Publish { subject, records }),
    ]
}

/// A success body of a pub/sub request together with the kind it answers.
pub fn pubsub_ok_response() -> impl Strategy<Value = (RequestKind, Response)> {
    use RequestKind as K;
    let stored = option::of((any::<u32>(), any::<u64>()))
        .prop_map(|stored| stored.map(|(partition, offset)| PartitionOffset { partition, offset }));
    prop_oneof![
        proptest::sample::select(vec![K::Subscribe, K::Unsubscribe])
            .prop_map(|kind| (kind, Response::Empty)),
        (any::<u32>(), stored).prop_map(|(subscribers, stored)| {
            (
                K::Publish,
                Response::Published {
                    subscribers,
                    stored,
                },
            )
        }),
    ]
}

/// Any push frame body.
pub fn push() -> impl Strategy<Value = Push> {
    let message =
        (text(), any::<i64>(), publish_record()).prop_map(|(subject, timestamp, r)| MessageWire {
            subject,
            timestamp,
            key: r.key,
            value: r.value,
            headers: r.headers,
        });
    (any::<u32>(), any::<u64>(), vec(message, 0..4)).prop_map(
        |(subscription_id, dropped_total, messages)| Push {
            subscription_id,
            dropped_total,
            messages,
        },
    )
}
