//! Dead letters: moving records that died (too many deliveries, expired) to their queue's
//! dead-letter queue, and redriving them back.
//!
//! This crosses queues, so it runs outside any one queue's lock: the dying records are read
//! under the source's lock, sent to the dead-letter queue under its own, and marked done
//! under the source's lock again. A crash in between can only leave a dead letter twice
//! (once in each queue's view), never lose it.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use switchyard_log::{Header, Record};

use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::queue::journal::Event;
use crate::queue::service::Queue;
use crate::queue::state::{Completion, DeathCause, Doomed, Pos, Prefetch};
use crate::queue_send::{SendOutcome, SendRecord};
use crate::queues::RESERVED_PREFIX;

/// How long a dead letter that its dead-letter queue refused (full) waits before a retry.
const DEAD_LETTER_RETRY_MS: u64 = 1_000;

impl Broker {
    /// Moves dead letters back to the queue they came from, each as a new record with a
    /// fresh delivery count. `range` limits it to those offsets of the dead-letter queue.
    pub fn redrive(&self, dead_letter: &str, max: usize, range: Option<(u64, u64)>) -> Result<u64> {
        let in_range = |pos: Pos| range.is_none_or(|(from, to)| pos.1 >= from && pos.1 < to);
        let deliveries = self.receive_where(
            dead_letter,
            "redrive",
            max,
            None,
            Prefetch::default(),
            in_range,
        )?;
        let mut moved = 0;
        for delivery in deliveries {
            let header = |name: &str| {
                delivery
                    .record
                    .headers
                    .iter()
                    .find(|(h, _)| h == name)
                    .map(|(_, v)| v.clone())
            };
            let source = header(DLQ_SOURCE)
                .and_then(|value| String::from_utf8(value.to_vec()).ok())
                .ok_or_else(|| {
                    BrokerError::InvalidConfig(format!(
                        "record at offset {} of `{dead_letter}` has no {DLQ_SOURCE} header",
                        delivery.record.offset
                    ))
                })?;
            let record = SendRecord {
                key: delivery.record.key.clone(),
                value: delivery.record.value.clone(),
                headers: delivery
                    .record
                    .headers
                    .iter()
                    .filter(|(name, _)| kept_header(name))
                    .cloned()
                    .collect(),
                delay_ms: Some(0),
                ..SendRecord::default()
            };
            // Unchecked: the claim-check headers are reserved but must come along.
            match self.send_unchecked(&source, vec![record])?.first() {
                Some(SendOutcome::Stored(_) | SendOutcome::Duplicate(_)) => {
                    self.ack(dead_letter, std::slice::from_ref(&delivery.token))?;
                    moved += 1;
                }
                _ => {
                    self.nack(dead_letter, &delivery.token, Some(0), None)?;
                }
            }
        }
        Ok(moved)
    }

    /// Moves dying records to their dead-letter queue (or drops them), outside the source
    /// queue's lock, then marks them done.
    pub(crate) fn bury(&self, queue: &Arc<Queue>, doomed: Vec<Doomed>) -> Result<()> {
        let now = self.now_ms();
        let (records, dead_letter) = {
            let mut inner = queue.inner.lock();
            let positions: Vec<Pos> = doomed.iter().map(|dead| dead.pos).collect();
            let records = queue.records(&mut inner, &positions)?;
            (records, inner.state.config().dead_letter.clone())
        };
        let by_offset: BTreeMap<Pos, Record> = doomed
            .iter()
            .map(|d| d.pos)
            .zip(records)
            .filter_map(|(pos, record)| Some((pos, record?)))
            .collect();
        for dead in doomed {
            let how = match (dead.drop, dead.cause) {
                (true, DeathCause::Expired) => Completion::Expired,
                (true, DeathCause::MaxDeliveries) => Completion::Dropped,
                (false, _) if by_offset.contains_key(&dead.pos) => Completion::DeadLettered,
                // Retention took the record before it could be dead-lettered.
                (false, _) => Completion::Dropped,
            };
            if let (false, Some(dlq), Some(record)) =
                (dead.drop, &dead_letter, by_offset.get(&dead.pos))
            {
                let letter = dead_letter_record(&queue.name, &dead, record, now);
                let stored = self.send_unchecked(dlq, vec![letter]);
                if !matches!(
                    stored.as_deref(),
                    Ok([SendOutcome::Stored(_) | SendOutcome::Duplicate(_)])
                ) {
                    tracing::warn!(
                        queue = %queue.name,
                        dead_letter = %dlq,
                        "dead-letter queue refused a record; retrying later"
                    );
                    queue
                        .inner
                        .lock()
                        .state
                        .retry_later(dead.pos, DEAD_LETTER_RETRY_MS, now);
                    continue;
                }
            }
            let mut inner = queue.inner.lock();
            inner.state.complete(dead.pos, how, now);
            inner.cache.remove(&dead.pos);
            inner.journal.push(&Event::Done { pos: dead.pos, how });
            let durable = queue.persist(&mut inner)?;
            drop(inner);
            durable.wait()?;
        }
        queue.room.notify_waiters();
        queue.ready.notify_waiters();
        Ok(())
    }
}

/// Whether a header travels into a dead letter and back out of it: the sender's own, and the
/// claim-check reference (the dead letter refers to the same blob, which it keeps alive).
fn kept_header(name: &str) -> bool {
    !name.starts_with(RESERVED_PREFIX) || crate::blobs::is_blob_header(name)
}

/// Header naming the queue a dead letter came from.
pub const DLQ_SOURCE: &str = "sy-dlq-source";
/// Headers that tell where and why a record died.
pub const DLQ_PARTITION: &str = "sy-dlq-partition";
pub const DLQ_OFFSET: &str = "sy-dlq-offset";
pub const DLQ_DELIVERIES: &str = "sy-dlq-deliveries";
pub const DLQ_ERROR: &str = "sy-dlq-error";
pub const DLQ_CAUSE: &str = "sy-dlq-cause";
pub const DLQ_AT: &str = "sy-dlq-at-ms";

fn dead_letter_record(queue: &str, dead: &Doomed, record: &Record, now: i64) -> SendRecord {
    let text = |value: String| Bytes::from(value.into_bytes());
    let mut headers: Vec<Header> = record
        .headers
        .iter()
        .filter(|(name, _)| kept_header(name))
        .cloned()
        .collect();
    headers.push((DLQ_SOURCE.into(), text(queue.to_string())));
    headers.push((DLQ_PARTITION.into(), text(dead.pos.0.to_string())));
    headers.push((DLQ_OFFSET.into(), text(dead.pos.1.to_string())));
    headers.push((DLQ_DELIVERIES.into(), text(dead.deliveries.to_string())));
    let cause = match dead.cause {
        DeathCause::MaxDeliveries => "max-deliveries",
        DeathCause::Expired => "expired",
    };
    headers.push((DLQ_CAUSE.into(), text(cause.to_string())));
    if let Some(error) = &dead.last_error {
        headers.push((DLQ_ERROR.into(), text(error.clone())));
    }
    headers.push((DLQ_AT.into(), text(now.to_string())));
    SendRecord {
        key: record.key.clone(),
        value: record.value.clone(),
        headers,
        delay_ms: Some(0),
        ..SendRecord::default()
    }
}
