//! The durable subscription requests: create, list, delete.
//!
//! Create and delete touch the file system (a group's commits, a queue's journal), so they
//! run on the blocking pool; a listing is a walk of in-memory maps, answered inline. A queue
//! subscription's settings come from the wire as `CreateQueue`'s do (see
//! [`crate::queue_convert`]), with the request's filter set into them.

use switchyard_broker::{Broker, StartAt, SubscriptionMode, SubscriptionSpec};
use switchyard_protocol::{
    ErrorCode, ErrorResponse, OffsetSpec, Request, Response, SubscriptionModeWire,
    SubscriptionSummaryWire,
};

use crate::handler::{blocking, Outcome};
use crate::queue_convert;

/// Handles a subscription request; `handler::handle` routes every subscription kind here.
pub fn handle(broker: &Broker, request: Request) -> Outcome {
    match request {
        Request::CreateSubscription {
            topic,
            name,
            mode,
            filter,
            start,
            queue,
            partitions,
        } => blocking(broker, move |broker| {
            let spec = SubscriptionSpec {
                mode: mode_from_wire(mode),
                queue: queue_convert::queue_config(&name, &queue, filter.clone()),
                filter,
                start: start_from_wire(start),
                log_partitions: partitions,
            };
            broker
                .create_subscription(&topic, &name, spec)
                .map(|()| Response::Empty)
        }),
        Request::ListSubscriptions { topic } => Outcome::Ready(Ok(Response::Subscriptions(
            broker
                .list_subscriptions(topic.as_deref())
                .into_iter()
                .map(|summary| SubscriptionSummaryWire {
                    name: summary.name,
                    topic: summary.topic,
                    mode: mode_to_wire(summary.mode),
                })
                .collect(),
        ))),
        Request::DeleteSubscription { name } => blocking(broker, move |broker| {
            broker.delete_subscription(&name).map(|()| Response::Empty)
        }),
        other => Outcome::Ready(Err(ErrorResponse::new(
            ErrorCode::Internal,
            format!("{:?} is not a subscription request", other.kind()),
        ))),
    }
}

fn mode_from_wire(mode: SubscriptionModeWire) -> SubscriptionMode {
    match mode {
        SubscriptionModeWire::Stream => SubscriptionMode::Stream,
        SubscriptionModeWire::Exclusive => SubscriptionMode::Exclusive,
        SubscriptionModeWire::Queue => SubscriptionMode::Queue,
    }
}

fn mode_to_wire(mode: SubscriptionMode) -> SubscriptionModeWire {
    match mode {
        SubscriptionMode::Stream => SubscriptionModeWire::Stream,
        SubscriptionMode::Exclusive => SubscriptionModeWire::Exclusive,
        SubscriptionMode::Queue => SubscriptionModeWire::Queue,
    }
}

fn start_from_wire(start: OffsetSpec) -> StartAt {
    match start {
        OffsetSpec::Earliest => StartAt::Earliest,
        OffsetSpec::Latest => StartAt::Latest,
        OffsetSpec::Timestamp(ms) => StartAt::Time(ms),
    }
}
