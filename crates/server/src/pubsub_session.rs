//! The pub/sub requests of one connection: subscribe, unsubscribe and publish.
//!
//! Subscriptions belong to the connection that made them, so a [`Session`] lives in the
//! connection's loop and removes them all when it is dropped: a client that vanishes leaves
//! nothing behind. A subscription's records go from its bounded buffer to the client through
//! the connection's [`Outbox`], rung by each publish that reaches it; there is no task per
//! subscription, so a record published to an idle connection is written by the publisher's
//! reader without waiting for another task to be scheduled.

use std::collections::HashMap;
use std::sync::Arc;

use switchyard_broker::route::{Filter, Pattern, PatternSet};
use switchyard_broker::{Broker, BrokerError};
use switchyard_log::partitioner::partition_for_key;
use switchyard_log::{BatchBuilder, RecordBuf};
use switchyard_protocol::{
    ErrorCode, ErrorResponse, PartitionOffset, PublishRecordWire, Request, Response, ResponseResult,
};

use crate::convert::error_response;
use crate::handler::Outcome;
use crate::outbox::Outbox;
use crate::pubsub::{Doorbell, Published, Registry, Rings};

/// Most subscriptions one connection may hold: far more than a client needs (a request
/// inbox is one), few enough that one connection cannot exhaust the server's memory.
pub const MAX_SUBSCRIPTIONS: usize = 10_000;

/// The pub/sub state of one connection.
pub struct Session {
    registry: Arc<Registry>,
    connection: u64,
    outbox: Arc<Outbox>,
    /// The patterns of each subscription, by id.
    subscriptions: HashMap<u32, PatternSet>,
    /// Subscribers reached by the publishes since the last [`Session::flush`].
    rings: Rings,
}

impl Session {
    /// A session whose pushes go out through `outbox`.
    pub fn new(registry: Arc<Registry>, outbox: &Arc<Outbox>) -> Session {
        let connection = registry.next_connection();
        Session {
            registry,
            connection,
            outbox: Arc::clone(outbox),
            subscriptions: HashMap::new(),
            rings: Rings::default(),
        }
    }

    /// Tells the subscribers reached by the publishes handled since the last call; the
    /// connection calls it once it has handled every request of a read.
    pub fn flush(&mut self) {
        self.rings.ring_all();
    }

    /// Handles `Subscribe`, `Unsubscribe` and `Publish`; the connection routes them here.
    pub fn handle(&mut self, broker: &Broker, request: Request) -> Outcome {
        match request {
            Request::Subscribe {
                subscription_id,
                pattern,
                filter,
                buffer_records,
            } => Outcome::Ready(self.subscribe(subscription_id, &pattern, filter, buffer_records)),
            Request::Unsubscribe { subscription_id } => {
                Outcome::Ready(self.unsubscribe(subscription_id))
            }
            Request::Publish { subject, records } => {
                publish(broker, &self.registry, &mut self.rings, subject, records)
            }
            other => Outcome::Ready(Err(ErrorResponse::new(
                ErrorCode::Internal,
                format!("{:?} is not a pub/sub request", other.kind()),
            ))),
        }
    }

    fn subscribe(
        &mut self,
        id: u32,
        pattern: &str,
        filter: Option<String>,
        buffer_records: u32,
    ) -> ResponseResult {
        let invalid = |message: String| ErrorResponse::new(ErrorCode::InvalidRequest, message);
        if self.subscriptions.contains_key(&id) {
            return Err(invalid(format!(
                "subscription id {id} is already in use on this connection; unsubscribe it \
                 first or pick another id"
            )));
        }
        if self.subscriptions.len() >= MAX_SUBSCRIPTIONS {
            return Err(invalid(format!(
                "this connection already has {MAX_SUBSCRIPTIONS} subscriptions, the limit; \
                 unsubscribe some or use wildcards"
            )));
        }
        // One pattern or several, comma-separated; a record any of them matches is pushed once.
        let patterns = PatternSet::parse(pattern)
            .map_err(|err| invalid(format!("cannot subscribe: {err}")))?;
        let filter = filter
            .as_deref()
            .map(Filter::parse)
            .transpose()
            .map_err(|err| invalid(format!("cannot subscribe to `{patterns}`: {err}")))?;
        let doorbell: Arc<dyn Doorbell> = Arc::clone(&self.outbox) as Arc<dyn Doorbell>;
        let outlet = self.registry.subscribe(
            self.connection,
            id,
            &patterns,
            filter,
            buffer_records,
            doorbell,
        );
        self.outbox.attach(id, outlet);
        tracing::debug!(connection = self.connection, id, %patterns, "subscribed");
        self.subscriptions.insert(id, patterns);
        Ok(Response::Empty)
    }

    fn unsubscribe(&mut self, id: u32) -> ResponseResult {
        let Some(patterns) = self.subscriptions.remove(&id) else {
            return Err(ErrorResponse::new(
                ErrorCode::InvalidRequest,
                format!("there is no subscription with id {id} on this connection"),
            ));
        };
        self.registry.unsubscribe(self.connection, id, &patterns);
        self.outbox.detach(id);
        Ok(Response::Empty)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for (id, patterns) in self.subscriptions.drain() {
            self.registry.unsubscribe(self.connection, id, &patterns);
            self.outbox.detach(id);
        }
    }
}

/// Delivers to the matching subscriptions and, when a topic has the subject's name,
/// appends to it first: a record subscribers saw is one the topic holds.
fn publish(
    broker: &Broker,
    registry: &Registry,
    rings: &mut Rings,
    subject: String,
    records: Vec<PublishRecordWire>,
) -> Outcome {
    if let Err(err) = check_subject(&subject) {
        return Outcome::Ready(Err(err));
    }
    let timestamp = broker.now_ms();
    let stored = match append(broker, registry, &subject, &records, timestamp) {
        Ok(stored) => stored,
        Err(err) => return Outcome::Ready(Err(error_response(&err))),
    };
    let base = stored.map_or(0, |(at, _)| at.offset);
    let shared: Vec<Arc<Published>> = (records.into_iter().enumerate())
        .map(|(n, wire)| Arc::new(Published::new(&subject, timestamp, base + n as u64, wire)))
        .collect();
    let subscribers = registry.publish_deferred(&subject, &shared, rings);
    let response = Response::Published {
        subscribers,
        stored: stored.map(|(at, _)| at),
    };
    let Some((at, true)) = stored else {
        return Outcome::Ready(Ok(response));
    };

    // fsync `always`: answer once the records are durable, as a produce would.
    let broker = broker.clone();
    let end = at.offset + shared.len() as u64;
    Outcome::Deferred(Box::pin(async move {
        broker
            .wait_durable(&subject, at.partition, end)
            .await
            .map(|()| response)
            .map_err(|err| error_response(&err))
    }))
}

/// A subject to publish to: a valid pattern with no wildcard.
fn check_subject(subject: &str) -> Result<(), ErrorResponse> {
    let invalid = |message: String| ErrorResponse::new(ErrorCode::InvalidRequest, message);
    let pattern =
        Pattern::parse(subject).map_err(|err| invalid(format!("cannot publish: {err}")))?;
    if !pattern.is_literal() {
        return Err(invalid(format!(
            "cannot publish to `{subject}`: a subject has no wildcards; `*` and `>` belong in \
             subscription patterns"
        )));
    }
    Ok(())
}

/// Appends the records as one batch to the topic named `subject`, if there is one or a
/// durable subscription's patterns match it (see `Broker::topic_for_publish`): to the
/// partition of the first record's key, or round robin when it has none. Returns where the
/// batch went and whether it still has to be made durable.
fn append(
    broker: &Broker,
    registry: &Registry,
    subject: &str,
    records: &[PublishRecordWire],
    timestamp: i64,
) -> Result<Option<(PartitionOffset, bool)>, BrokerError> {
    let Some(topic) = broker.topic_for_publish(subject)? else {
        return Ok(None);
    };
    if records.is_empty() {
        return Ok(None);
    }
    let partitions = topic.partition_count();
    let partition = match records.first().and_then(|r| r.key.as_ref()) {
        Some(key) => partition_for_key(key, partitions),
        None => (registry.next_sticky() % u64::from(partitions.max(1))) as u32,
    };
    let mut builder = BatchBuilder::new();
    for record in records {
        let buf = RecordBuf {
            key: record.key.clone(),
            value: record.value.clone(),
            headers: record.headers.clone(),
        };
        builder.push(timestamp, &buf);
    }
    let appended = broker.append(subject, partition, &builder.finish())?;
    let at = PartitionOffset {
        partition,
        offset: appended.info.base_offset,
    };
    Ok(Some((at, appended.needs_sync)))
}
