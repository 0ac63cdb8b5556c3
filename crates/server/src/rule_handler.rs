//! The event rule requests: create, list, delete, trace.
//!
//! Create and delete rewrite the rules' files and trace reads whole topics, so they run on
//! the blocking pool; a listing copies an in-memory map, answered inline.

use switchyard_broker::{Broker, RuleSpec};
use switchyard_protocol::{
    ErrorCode, ErrorResponse, Request, Response, RuleHeaderWire, RuleWire, TraceStepWire,
};

use crate::handler::{blocking, Outcome};

/// Handles a rule request; `handler::handle` routes every rule kind here.
pub fn handle(broker: &Broker, request: Request) -> Outcome {
    match request {
        Request::CreateRule { rule } => blocking(broker, move |broker| {
            broker
                .create_rule(spec_from_wire(rule))
                .map(|()| Response::Empty)
        }),
        Request::ListRules => Outcome::Ready(Ok(Response::Rules(
            broker.list_rules().into_iter().map(spec_to_wire).collect(),
        ))),
        Request::DeleteRule { name } => blocking(broker, move |broker| {
            broker.delete_rule(&name).map(|()| Response::Empty)
        }),
        Request::Trace {
            topic,
            partition,
            offset,
        } => blocking(broker, move |broker| {
            let steps = broker.trace(&topic, partition, offset)?;
            Ok(Response::Trace(
                steps
                    .into_iter()
                    .map(|step| TraceStepWire {
                        rule: step.rule,
                        topic: step.topic,
                        partition: step.partition,
                        offset: step.offset,
                        origin: step.origin,
                    })
                    .collect(),
            ))
        }),
        other => Outcome::Ready(Err(ErrorResponse::new(
            ErrorCode::Internal,
            format!("{:?} is not a rule request", other.kind()),
        ))),
    }
}

fn spec_from_wire(rule: RuleWire) -> RuleSpec {
    RuleSpec {
        name: rule.name,
        source: rule.source,
        filter: rule.filter,
        target: rule.target,
        add_headers: rule
            .add_headers
            .into_iter()
            .map(|header| (header.name, header.value))
            .collect(),
    }
}

fn spec_to_wire(spec: RuleSpec) -> RuleWire {
    RuleWire {
        name: spec.name,
        source: spec.source,
        filter: spec.filter,
        target: spec.target,
        add_headers: spec
            .add_headers
            .into_iter()
            .map(|(name, value)| RuleHeaderWire { name, value })
            .collect(),
    }
}
