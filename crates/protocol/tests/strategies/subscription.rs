//! Strategies for the durable subscription requests and responses (kinds 31 to 33).

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use switchyard_protocol::*;

use super::queue::queue_config;
use super::{offset_spec, text};

fn mode() -> impl Strategy<Value = SubscriptionModeWire> {
    prop_oneof![
        Just(SubscriptionModeWire::Stream),
        Just(SubscriptionModeWire::Exclusive),
        Just(SubscriptionModeWire::Queue),
    ]
}

pub fn subscription_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (
            text(),
            text(),
            mode(),
            option::of(text()),
            offset_spec(),
            queue_config(),
            any::<u32>()
        )
            .prop_map(|(topic, name, mode, filter, start, queue, partitions)| {
                Request::CreateSubscription {
                    topic,
                    name,
                    mode,
                    filter,
                    start,
                    queue,
                    partitions,
                }
            }),
        option::of(text()).prop_map(|topic| Request::ListSubscriptions { topic }),
        text().prop_map(|name| Request::DeleteSubscription { name }),
    ]
}

/// A success body of a subscription request together with the kind it answers.
pub fn subscription_ok_response() -> impl Strategy<Value = (RequestKind, Response)> {
    use RequestKind as K;
    let summary = (text(), text(), mode())
        .prop_map(|(name, topic, mode)| SubscriptionSummaryWire { name, topic, mode });
    prop_oneof![
        proptest::sample::select(vec![K::CreateSubscription, K::DeleteSubscription])
            .prop_map(|kind| (kind, Response::Empty)),
        vec(summary, 0..6).prop_map(|all| (K::ListSubscriptions, Response::Subscriptions(all))),
    ]
}
