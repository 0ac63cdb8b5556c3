//! The queue requests: create, delete, list, stats, send, receive, ack, nack, extend, redrive.
//!
//! The broker's queue calls are synchronous and quick, so most are answered inline, keeping
//! a connection's order. Three kinds of call wait instead, each as its own task:
//!
//! - calls that touch the file system beyond an append (create, delete, nack and redrive,
//!   which may dead-letter into another queue) and sends to a topic with fsync `always`
//!   run on the blocking pool;
//! - a send to a full queue with overflow `block` waits for the queue's `room` signal and
//!   retries the refused records until its block timeout;
//! - a receive that finds nothing waits for the queue's `ready` signal or its next timer (a
//!   delay ending, a lease expiring), whichever comes first, up to its wait time.
//!
//! Both waits end early when the server begins to shut down, answering what they have.

use std::sync::Arc;
use std::time::Duration;

use switchyard_broker::queue::service::Queue;
use switchyard_broker::queue::Overflow;
use switchyard_broker::{Broker, BrokerError, Delivery, Prefetch, SendOutcome, SendRecord};
use switchyard_log::FsyncPolicy;
use switchyard_protocol::{
    AckResultWire, ErrorCode, ErrorResponse, Request, Response, ResponseResult, SendRecordWire,
};
use tokio::time::Instant;

use crate::convert::error_response;
use crate::handler::{blocking, ready, Limits, Outcome, MAX_FETCH_WAIT};
use crate::queue_convert;

/// Most records one receive leases: enough to amortise a round trip, few enough that one
/// consumer cannot empty a large queue in a single call and starve the others.
pub const MAX_RECEIVE: u32 = 1_000;
/// Bytes a delivery takes on the wire besides its key, value and headers (token, numbers,
/// tags, counts), rounded up; used to keep a receive's answer under the frame limit.
const DELIVERY_OVERHEAD: usize = 128;
/// Dead letters leased per step of a redrive of all of them.
const REDRIVE_CHUNK: usize = 1_000;
/// Longest lease a receive or extend may ask for: the bound a queue's own visibility has.
const MAX_VISIBILITY_MS: u64 = 12 * 3600 * 1000;

/// Refuses a lease length a queue's settings would refuse: 0 would be expired on arrival.
fn check_visibility(visibility_ms: u64) -> Result<(), ErrorResponse> {
    if visibility_ms == 0 || visibility_ms > MAX_VISIBILITY_MS {
        return Err(ErrorResponse::new(
            ErrorCode::InvalidRequest,
            format!("visibility {visibility_ms} ms is out of range; use 1 ms to 12 h"),
        ));
    }
    Ok(())
}

/// Handles a queue request; `handler::handle` routes every queue kind here.
pub fn handle(broker: &Broker, limits: Limits, request: Request) -> Outcome {
    match request {
        Request::CreateQueue {
            name,
            partitions,
            config,
        } => blocking(broker, move |broker| {
            let defaults = broker.topic_defaults();
            let topic = switchyard_broker::TopicConfig {
                partitions: if partitions == 0 {
                    defaults.partitions
                } else {
                    partitions
                },
                ..defaults
            };
            let config = queue_convert::queue_config(&name, &config, None);
            broker
                .create_queue(&name, topic, config)
                .map(|()| Response::Empty)
        }),
        Request::DeleteQueue { name } => blocking(broker, move |broker| {
            broker.delete_queue(&name).map(|()| Response::Empty)
        }),
        Request::ListQueues => Outcome::Ready(Ok(Response::Queues(broker.list_queues()))),
        Request::QueueStats { name } => blocking(broker, move |broker| {
            let stats = broker.queue_stats(&name)?;
            let config = broker.queue(&name)?.config();
            Ok(Response::QueueStats(Box::new(queue_convert::queue_stats(
                stats, &config,
            ))))
        }),
        Request::Send { queue, records } => send(broker, queue, records),
        Request::Receive {
            queue,
            consumer,
            max,
            wait_ms,
            visibility_ms,
            prefetch_records,
            prefetch_bytes,
        } => {
            if let Some(Err(err)) = visibility_ms.map(check_visibility) {
                return Outcome::Ready(Err(err));
            }
            let ask = Ask {
                queue,
                consumer,
                max: max.min(MAX_RECEIVE) as usize,
                visibility_ms,
                prefetch: Prefetch {
                    records: prefetch_records,
                    bytes: prefetch_bytes,
                },
                budget: limits.max_fetch_bytes as usize,
            };
            let wait = Duration::from_millis(u64::from(wait_ms)).min(MAX_FETCH_WAIT);
            receive(broker, ask, wait)
        }
        Request::Ack { queue, tokens } if syncs(broker, &queue) => {
            // Acked inline; answered once the (shared) fsync of the journal is done.
            match broker.ack_durably(&queue, &tokens) {
                Ok((results, pending)) => after_sync(broker, pending, move || {
                    Response::AckResults(results.iter().map(ack_result).collect())
                }),
                Err(err) => Outcome::Ready(Err(error_response(&err))),
            }
        }
        Request::Ack { queue, tokens } => ready(broker.ack(&queue, &tokens), |results| {
            Response::AckResults(results.iter().map(ack_result).collect())
        }),
        Request::Nack {
            queue,
            token,
            delay_ms,
            error,
        } => blocking(broker, move |broker| {
            broker
                .nack(&queue, &token, delay_ms, error)
                .map(|()| Response::Empty)
        }),
        Request::Extend {
            queue,
            token,
            visibility_ms,
        } => match check_visibility(visibility_ms) {
            Ok(()) => ready(broker.extend(&queue, &token, visibility_ms), |()| {
                Response::Empty
            }),
            Err(err) => Outcome::Ready(Err(err)),
        },
        Request::PeekQueue { queue, max } => {
            let budget = limits.max_fetch_bytes as usize;
            blocking(broker, move |broker| {
                let got = broker.peek_queue(&queue, (max as usize).min(MAX_PEEK))?;
                // As many as fit one answer, at least one.
                let mut used = 0;
                let fitting = got.into_iter().take_while(|delivery| {
                    used += wire_size(delivery);
                    used <= budget || used == wire_size(delivery)
                });
                Ok(Response::Deliveries(
                    fitting.map(queue_convert::delivery).collect(),
                ))
            })
        }
        Request::Redrive {
            dead_letter_queue,
            max,
            from_offset,
            to_offset,
        } => blocking(broker, move |broker| {
            let range = match (from_offset, to_offset) {
                (None, None) => None,
                (from, to) => Some((from.unwrap_or(0), to.unwrap_or(u64::MAX))),
            };
            let moved = redrive(broker, &dead_letter_queue, max, range)?;
            Ok(Response::Redriven { moved })
        }),
        other => Outcome::Ready(Err(ErrorResponse::new(
            ErrorCode::Internal,
            format!("{:?} is not a queue request", other.kind()),
        ))),
    }
}

fn ack_result(result: &Result<(), BrokerError>) -> AckResultWire {
    match result {
        Ok(()) => AckResultWire {
            code: 0,
            message: String::new(),
        },
        Err(err) => {
            let wire = error_response(err);
            AckResultWire {
                code: wire.code.as_u16(),
                message: wire.message,
            }
        }
    }
}

/// Redrives up to `max` dead letters, or all of them (in steps) when `max` is 0.
fn redrive(
    broker: &Broker,
    dead_letter: &str,
    max: u32,
    range: Option<(u64, u64)>,
) -> Result<u64, BrokerError> {
    if max > 0 {
        return broker.redrive(dead_letter, max as usize, range);
    }
    let mut moved = 0;
    loop {
        let step = broker.redrive(dead_letter, REDRIVE_CHUNK, range)?;
        moved += step;
        // A short step means the range is exhausted or its source refused the rest.
        if step < REDRIVE_CHUNK as u64 {
            return Ok(moved);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Send

fn send(broker: &Broker, name: String, records: Vec<SendRecordWire>) -> Outcome {
    let queue = match broker.queue(&name) {
        Ok(queue) => queue,
        Err(err) => return Outcome::Ready(Err(error_response(&err))),
    };
    let records: Vec<SendRecord> = records
        .into_iter()
        .map(queue_convert::send_record)
        .collect();
    let config = queue.config();
    let syncs = queue.topic.config().fsync == FsyncPolicy::Always;
    let block = (config.overflow == Overflow::Block)
        .then(|| Duration::from_millis(config.block_timeout_ms).min(MAX_FETCH_WAIT));

    if syncs && block.is_none() {
        // Stored inline, in the connection's order; confirmed once the (shared) fsyncs are
        // done, off the event loop.
        let (outcomes, pending) = match broker.send_durably(&name, records) {
            Ok(sent) => sent,
            Err(err) => return Outcome::Ready(Err(error_response(&err))),
        };
        return after_sync(broker, pending, move || sent(&name, &outcomes));
    }

    // The common case, inline: nothing to fsync, and no full queue to wait on.
    let mut first = None;
    if !syncs {
        if block.is_none() {
            return ready(broker.send(&name, records), |outcomes| {
                sent(&name, &outcomes)
            });
        }
        let outcomes = match broker.send(&name, records.clone()) {
            Ok(outcomes) => outcomes,
            Err(err) => return Outcome::Ready(Err(error_response(&err))),
        };
        if !outcomes.iter().any(is_full) {
            return Outcome::Ready(Ok(sent(&name, &outcomes)));
        }
        first = Some(outcomes);
    }

    let broker = broker.clone();
    Outcome::Deferred(Box::pin(async move {
        let sender = Sender {
            broker: &broker,
            queue: &queue,
            name: &name,
            syncs,
        };
        let outcomes = sender.send_waiting(records, first, block).await?;
        Ok(sent(&name, &outcomes))
    }))
}

fn is_full(outcome: &SendOutcome) -> bool {
    matches!(outcome, SendOutcome::Full { .. })
}

fn sent(name: &str, outcomes: &[SendOutcome]) -> Response {
    Response::Sent(
        outcomes
            .iter()
            .map(|outcome| queue_convert::send_result(name, outcome))
            .collect(),
    )
}

struct Sender<'a> {
    broker: &'a Broker,
    queue: &'a Arc<Queue>,
    name: &'a str,
    syncs: bool,
}

impl Sender<'_> {
    /// Sends, then, with `block`, retries the records refused as full each time the queue
    /// makes room, until none is refused or the block time is over.
    async fn send_waiting(
        &self,
        records: Vec<SendRecord>,
        first: Option<Vec<SendOutcome>>,
        block: Option<Duration>,
    ) -> Result<Vec<SendOutcome>, ErrorResponse> {
        let mut outcomes = match first {
            Some(outcomes) => outcomes,
            None => self.send_once(records.clone()).await?,
        };
        let Some(block) = block else {
            return Ok(outcomes);
        };
        let deadline = Instant::now() + block;
        let mut stopping = self.broker.stopping();
        loop {
            // Listen before retrying, so room made during the retry is not missed.
            let room = self.queue.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();

            let refused: Vec<usize> = (0..outcomes.len())
                .filter(|index| is_full(&outcomes[*index]))
                .collect();
            if refused.is_empty() {
                return Ok(outcomes);
            }
            let retry = refused
                .iter()
                .map(|index| records[*index].clone())
                .collect();
            let again = self.send_once(retry).await?;
            for (index, outcome) in refused.into_iter().zip(again) {
                outcomes[index] = outcome;
            }
            let stop = *stopping.borrow();
            if !outcomes.iter().any(is_full) || Instant::now() >= deadline || stop {
                return Ok(outcomes);
            }
            tokio::select! {
                _ = &mut room => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = stopping.changed() => {}
            }
        }
    }

    /// One broker send; on the blocking pool when the topic fsyncs every append.
    async fn send_once(&self, records: Vec<SendRecord>) -> Result<Vec<SendOutcome>, ErrorResponse> {
        if !self.syncs {
            return self
                .broker
                .send(self.name, records)
                .map_err(|err| error_response(&err));
        }
        let broker = self.broker.clone();
        let name = self.name.to_string();
        let joined = tokio::task::spawn_blocking(move || broker.send(&name, records)).await;
        match joined {
            Ok(result) => result.map_err(|err| error_response(&err)),
            Err(err) => Err(ErrorResponse::new(
                ErrorCode::Internal,
                format!("send handler failed: {err}"),
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Receive

/// What a receive asks for.
struct Ask {
    queue: String,
    consumer: String,
    max: usize,
    visibility_ms: Option<u64>,
    prefetch: Prefetch,
    /// Bytes the answer's deliveries may take: the frame limit less the header.
    budget: usize,
}

fn receive(broker: &Broker, ask: Ask, wait: Duration) -> Outcome {
    if ask.max == 0 {
        return Outcome::Ready(Err(ErrorResponse::new(
            ErrorCode::InvalidRequest,
            "a receive must ask for at least 1 record",
        )));
    }
    let first = lease(broker, &ask);
    let found = first.as_ref().map_or(true, |got| !got.is_empty());
    if found || wait.is_zero() {
        return Outcome::Ready(deliveries(first));
    }
    let broker = broker.clone();
    let ask = Arc::new(ask);
    Outcome::Deferred(Box::pin(async move {
        let deadline = Instant::now() + wait;
        let mut stopping = broker.stopping();
        let queue = broker.queue(&ask.queue).map_err(|e| error_response(&e))?;
        loop {
            // Listen before looking, so a send between the two is not missed.
            let ready = queue.ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();

            let got = lease(&broker, &ask);
            let empty = got.as_ref().is_ok_and(Vec::is_empty);
            let now = Instant::now();
            // A stopping server answers what it has rather than keep the client waiting.
            if !empty || now >= deadline || *stopping.borrow() {
                return deliveries(got);
            }
            // A delay ending or a lease expiring makes records ready without a signal
            // until something ticks the queue: wake for the next timer too.
            let wake = match broker.queue_next_timer(&ask.queue) {
                Some(at) => {
                    let in_ms = (at - broker.now_ms()).max(1) as u64;
                    deadline.min(now + Duration::from_millis(in_ms))
                }
                None => deadline,
            };
            tokio::select! {
                _ = &mut ready => {}
                _ = tokio::time::sleep_until(wake) => {}
                _ = stopping.changed() => {}
            }
        }
    }))
}

/// Most records one `PeekQueue` answers: looking must stay cheap however deep the queue.
const MAX_PEEK: usize = 10_000;

/// Answers with `answer()` once `pending` is durable, waiting on the blocking pool.
fn after_sync(
    broker: &Broker,
    pending: switchyard_broker::PendingSync,
    answer: impl FnOnce() -> Response + Send + 'static,
) -> Outcome {
    if pending.is_empty() {
        return Outcome::Ready(Ok(answer()));
    }
    let broker = broker.clone();
    Outcome::Deferred(Box::pin(async move {
        match tokio::task::spawn_blocking(move || pending.wait(&broker)).await {
            Ok(Ok(())) => Ok(answer()),
            Ok(Err(err)) => Err(error_response(&err)),
            Err(err) => Err(ErrorResponse::new(
                ErrorCode::Internal,
                format!("fsync failed: {err}"),
            )),
        }
    }))
}

/// Whether a queue's topic fsyncs every change (its calls then wait for an fsync).
fn syncs(broker: &Broker, queue: &str) -> bool {
    broker.queue(queue).is_ok_and(|queue| queue.always())
}

fn deliveries(result: Result<Vec<Delivery>, BrokerError>) -> ResponseResult {
    result
        .map(|got| Response::Deliveries(got.into_iter().map(queue_convert::delivery).collect()))
        .map_err(|err| error_response(&err))
}

/// Leases what `ask` wants in steps small enough that the answer fits the frame limit,
/// assuming each record as large as the topic allows; after the first step, a failure ends
/// the receive with what it has, since those records are leased already.
fn lease(broker: &Broker, ask: &Ask) -> Result<Vec<Delivery>, BrokerError> {
    let largest = broker.queue(&ask.queue)?.topic.config().max_record_bytes as usize;
    let per_record = largest + DELIVERY_OVERHEAD;
    let mut got: Vec<Delivery> = Vec::new();
    let mut used = 0;
    while got.len() < ask.max {
        let fits = ask.budget.saturating_sub(used) / per_record;
        let fits = if got.is_empty() { fits.max(1) } else { fits };
        let want = fits.min(ask.max - got.len());
        if want == 0 {
            break;
        }
        let step = broker.receive(
            &ask.queue,
            &ask.consumer,
            want,
            ask.visibility_ms,
            ask.prefetch,
        );
        let step = match step {
            Ok(step) => step,
            Err(err) if got.is_empty() => return Err(err),
            Err(err) => {
                tracing::warn!(queue = %ask.queue, error = %err, "receive stopped early");
                break;
            }
        };
        let count = step.len();
        used += step.iter().map(wire_size).sum::<usize>();
        got.extend(step);
        if count < want {
            break;
        }
    }
    Ok(got)
}

fn wire_size(delivery: &Delivery) -> usize {
    let record = &delivery.record;
    let bytes = |value: &Option<bytes::Bytes>| value.as_ref().map_or(0, |b| b.len());
    let headers: usize = record
        .headers
        .iter()
        .map(|(name, value)| 6 + name.len() + value.len())
        .sum();
    DELIVERY_OVERHEAD + delivery.token.len() + bytes(&record.key) + bytes(&record.value) + headers
}
