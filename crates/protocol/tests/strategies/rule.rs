//! Strategies for the event rule requests and responses (kinds 34 to 37).

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use switchyard_protocol::*;

use super::text;

fn rule() -> impl Strategy<Value = RuleWire> {
    let header = (text(), text()).prop_map(|(name, value)| RuleHeaderWire { name, value });
    (
        text(),
        text(),
        option::of(text()),
        text(),
        vec(header, 0..4),
    )
        .prop_map(|(name, source, filter, target, add_headers)| RuleWire {
            name,
            source,
            filter,
            target,
            add_headers,
        })
}

pub fn rule_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        rule().prop_map(|rule| Request::CreateRule { rule }),
        Just(Request::ListRules),
        text().prop_map(|name| Request::DeleteRule { name }),
        (text(), any::<u32>(), any::<u64>()).prop_map(|(topic, partition, offset)| {
            Request::Trace {
                topic,
                partition,
                offset,
            }
        }),
    ]
}

/// A success body of a rule request together with the kind it answers.
pub fn rule_ok_response() -> impl Strategy<Value = (RequestKind, Response)> {
    use RequestKind as K;
    let step = (text(), text(), any::<u32>(), any::<u64>(), text()).prop_map(
        |(rule, topic, partition, offset, origin)| TraceStepWire {
            rule,
            topic,
            partition,
            offset,
            origin,
        },
    );
    prop_oneof![
        proptest::sample::select(vec![K::CreateRule, K::DeleteRule])
            .prop_map(|kind| (kind, Response::Empty)),
        vec(rule(), 0..4).prop_map(|all| (K::ListRules, Response::Rules(all))),
        vec(step, 0..6).prop_map(|steps| (K::Trace, Response::Trace(steps))),
    ]
}
