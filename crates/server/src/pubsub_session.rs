//! The pub/sub requests of one connection: subscribe, unsubscribe, publish, and the pumps
//! that push each subscription's messages to the client.
//!
//! Subscriptions belong to the connection that made them, so a [`Session`] lives in the
//! connection's loop and removes them all when it is dropped: a client that vanishes leaves
//! nothing behind. Each subscription has a pump task that takes what its buffer holds, up
//! to [`PUSH_FRAME_BYTES`], and queues it as one push frame on the connection's writer.
//!
//! The writer's queue is shared with responses and holds up to a thousand frames, so a
//! pump waits for its turn instead of filling it: at most [`PUSHES_QUEUED`] frames may be
//! waiting when a pump adds one. What cannot be written yet stays in the subscriptions'
//! bounded buffers, where publishers drop and count the overflow; the memory a slow
//! subscriber costs is therefore its buffers plus a few frames, whatever is published. A
//! pump holds only a weak handle on the writer, so a closing connection never waits on one.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::BytesMut;
use switchyard_broker::route::{Filter, Pattern};
use switchyard_broker::{Broker, BrokerError};
use switchyard_log::partitioner::partition_for_key;
use switchyard_log::{BatchBuilder, RecordBuf};
use switchyard_protocol::{
    encode_push_of, ErrorCode, ErrorResponse, MessageWire, PartitionOffset, PublishRecordWire,
    Request, Response, ResponseResult,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::convert::error_response;
use crate::handler::Outcome;
use crate::pubsub::{Outlet, Published, Registry};

/// Most subscriptions one connection may hold: far more than a client needs (a request
/// inbox is one), few enough that one connection cannot exhaust the server's memory.
pub const MAX_SUBSCRIPTIONS: usize = 10_000;
/// A pump puts about this many bytes of messages in one push frame: enough to amortise the
/// frame and the syscall over hundreds of small records, small enough that a few queued
/// frames cost little memory.
pub const PUSH_FRAME_BYTES: usize = 64 * 1024;
/// Frames that may wait in a connection's writer when a pump queues another: enough to keep
/// the socket busy while the next frame is built (256 KiB of pushes in flight), few enough
/// that what a stalled subscriber pins in the writer stays small.
pub const PUSHES_QUEUED: usize = 4;

/// One subscription of this connection.
struct Local {
    pattern: Pattern,
    pump: JoinHandle<()>,
}

/// The connection's way to its writer, shared by its pumps.
struct Lane {
    writer: mpsc::WeakSender<BytesMut>,
    /// Pumps queue one at a time, so each waits for a short writer queue in turn.
    turn: tokio::sync::Mutex<()>,
}

/// The pub/sub state of one connection.
pub struct Session {
    registry: Arc<Registry>,
    connection: u64,
    lane: Arc<Lane>,
    subscriptions: HashMap<u32, Local>,
}

impl Session {
    /// A session whose pushes go to the connection writer `writer`.
    pub fn new(registry: Arc<Registry>, writer: &mpsc::Sender<BytesMut>) -> Session {
        let connection = registry.next_connection();
        Session {
            registry,
            connection,
            lane: Arc::new(Lane {
                writer: writer.downgrade(),
                turn: tokio::sync::Mutex::new(()),
            }),
            subscriptions: HashMap::new(),
        }
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
                publish(broker, &self.registry, subject, records)
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
        let pattern =
            Pattern::parse(pattern).map_err(|err| invalid(format!("cannot subscribe: {err}")))?;
        let filter = filter
            .as_deref()
            .map(Filter::parse)
            .transpose()
            .map_err(|err| invalid(format!("cannot subscribe to `{pattern}`: {err}")))?;
        let outlet =
            self.registry
                .subscribe(self.connection, id, pattern.clone(), filter, buffer_records);
        let pump = tokio::spawn(pump(id, outlet, Arc::clone(&self.lane)));
        tracing::debug!(connection = self.connection, id, %pattern, "subscribed");
        self.subscriptions.insert(id, Local { pattern, pump });
        Ok(Response::Empty)
    }

    fn unsubscribe(&mut self, id: u32) -> ResponseResult {
        let Some(local) = self.subscriptions.remove(&id) else {
            return Err(ErrorResponse::new(
                ErrorCode::InvalidRequest,
                format!("there is no subscription with id {id} on this connection"),
            ));
        };
        self.registry
            .unsubscribe(self.connection, id, &local.pattern);
        local.pump.abort();
        Ok(Response::Empty)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for (id, local) in self.subscriptions.drain() {
            self.registry
                .unsubscribe(self.connection, id, &local.pattern);
            local.pump.abort();
        }
    }
}

/// Moves one subscription's buffer to the connection's writer, a push frame at a time, until
/// the subscription or the connection ends.
async fn pump(subscription_id: u32, mut outlet: Outlet, lane: Arc<Lane>) {
    let mut reported = 0u64;
    loop {
        // Wait for a record, or for a drop to report.
        let first = tokio::select! {
            biased;
            next = outlet.records.recv() => match next {
                Some(published) => Some(published),
                None => return,
            },
            () = outlet.counters.dropped_signal.notified() => None,
        };

        // Wait until the writer's queue is short; meanwhile more records gather.
        let _turn = lane.turn.lock().await;
        let Some(writer) = lane.writer.upgrade() else {
            return;
        };
        let shallow = writer.max_capacity().saturating_sub(PUSHES_QUEUED).max(1);
        let Ok(mut permits) = writer.reserve_many(shallow).await else {
            return;
        };
        let Some(permit) = permits.next() else {
            return;
        };
        drop(permits);

        // Take what the buffer holds, up to a frame's worth.
        let mut batch: Vec<Arc<Published>> = Vec::new();
        let mut bytes = 0;
        if let Some(first) = first {
            bytes += first.size;
            batch.push(first);
        }
        while bytes < PUSH_FRAME_BYTES {
            let Ok(published) = outlet.records.try_recv() else {
                break;
            };
            bytes += published.size;
            batch.push(published);
        }
        outlet
            .counters
            .queued_bytes
            .fetch_sub(bytes, Ordering::AcqRel);
        let dropped = outlet.counters.dropped.load(Ordering::Acquire);
        if batch.is_empty() && dropped == reported {
            continue;
        }
        reported = dropped;

        let messages: Vec<&MessageWire> = batch.iter().map(|p| &p.message).collect();
        let mut frame = BytesMut::with_capacity(bytes + 32);
        match encode_push_of(subscription_id, dropped, &messages, &mut frame) {
            Ok(()) => permit.send(frame),
            Err(err) => tracing::error!(subscription_id, error = %err, "cannot encode push"),
        }
    }
}

/// Delivers to the matching subscriptions and, when a topic has the subject's name,
/// appends to it first: a record subscribers saw is one the topic holds.
fn publish(
    broker: &Broker,
    registry: &Registry,
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
    let subscribers = registry.publish(&subject, &shared);
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

/// Appends the records as one batch to the topic named `subject`, if there is one: to the
/// partition of the first record's key, or round robin when it has none. Returns where the
/// batch went and whether it still has to be made durable.
fn append(
    broker: &Broker,
    registry: &Registry,
    subject: &str,
    records: &[PublishRecordWire],
    timestamp: i64,
) -> Result<Option<(PartitionOffset, bool)>, BrokerError> {
    let topic = match broker.topic(subject) {
        Ok(topic) => topic,
        Err(BrokerError::UnknownTopic(_)) => return Ok(None),
        Err(err) => return Err(err),
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
