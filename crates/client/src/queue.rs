//! Queue calls on [`Client`]: create, delete, list, stats, send, receive, ack, nack, extend,
//! redrive.
//!
//! As thin as the stream calls in [`crate::client`]: one request each, wire values passed
//! through, durations in and out as [`Duration`]. The per-record results of a send and the
//! per-token results of an ack are returned as lists, since part of a call can fail while the
//! rest succeeds. [`crate::QueueWorker`] builds a processing loop on top.

use std::time::Duration;

use switchyard_protocol::{
    DeliveryWire, QueueConfigWire, QueueStatsWire, Request, Response, SendRecordWire,
    SendResultWire,
};

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::ErrorCode;

/// Time a send may take beyond the request timeout: a send to a full queue with overflow
/// `block` is held by the server for up to its block timeout, which the server caps at 30 s.
pub const SEND_BLOCK_ALLOWANCE: Duration = Duration::from_secs(30);

/// What a receive asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveOptions {
    /// Consumer name; prefetch limits count per name.
    pub consumer: String,
    /// Most records to lease; the server caps it at 1,000.
    pub max: u32,
    /// How long to wait when no record is ready; the server caps it at 30 s.
    pub wait: Duration,
    /// Lease length; `None` takes the queue's visibility.
    pub visibility: Option<Duration>,
    /// Most records this consumer may hold at once; 0 for no limit.
    pub prefetch_records: u32,
    /// Most payload bytes this consumer may hold at once; 0 for no limit.
    pub prefetch_bytes: u64,
}

impl Default for ReceiveOptions {
    fn default() -> Self {
        ReceiveOptions {
            consumer: "switchyard-client".into(),
            max: 10,
            wait: Duration::ZERO,
            visibility: None,
            prefetch_records: 0,
            prefetch_bytes: 0,
        }
    }
}

pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Client {
    /// Creates queue `name` (and its dead-letter queue); `partitions` 0 takes the server's
    /// default, and `None` settings take the queue defaults.
    pub async fn create_queue(
        &self,
        name: &str,
        partitions: u32,
        config: QueueConfigWire,
    ) -> Result<()> {
        let request = Request::CreateQueue {
            name: name.to_string(),
            partitions,
            config,
        };
        self.call_empty(request).await
    }

    /// Deletes queue `name` and its topic; its dead-letter queue stays.
    pub async fn delete_queue(&self, name: &str) -> Result<()> {
        self.call_empty(Request::DeleteQueue { name: name.into() })
            .await
    }

    /// Names of every queue, sorted.
    pub async fn list_queues(&self) -> Result<Vec<String>> {
        match self.connection().call(Request::ListQueues).await? {
            Response::Queues(names) => Ok(names),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Depth, totals and effective settings of queue `name`.
    pub async fn queue_stats(&self, name: &str) -> Result<QueueStatsWire> {
        let request = Request::QueueStats { name: name.into() };
        match self.connection().call(request).await? {
            Response::QueueStats(stats) => Ok(*stats),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Sends records; each gets its own result (stored, duplicate or full), in order.
    pub async fn send(
        &self,
        queue: &str,
        records: Vec<SendRecordWire>,
    ) -> Result<Vec<SendResultWire>> {
        let request = Request::Send {
            queue: queue.to_string(),
            records,
        };
        let response = self
            .connection()
            .call_with_extra_time(request, SEND_BLOCK_ALLOWANCE)
            .await?;
        match response {
            Response::Sent(results) => Ok(results),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Leases up to `options.max` records, waiting up to `options.wait` for the first. A
    /// record whose value is a claim-check blob comes with the value put back.
    pub async fn receive(
        &self,
        queue: &str,
        options: &ReceiveOptions,
    ) -> Result<Vec<DeliveryWire>> {
        let mut deliveries = self.receive_unresolved(queue, options).await?;
        self.resolve_deliveries(&mut deliveries).await?;
        Ok(deliveries)
    }

    /// [`Client::receive`] handing out claim-check references (`sy-blob` and `sy-blob-size`
    /// headers, no value) as the queue stores them, for a consumer that fetches the blob
    /// itself or only routes it on.
    pub async fn receive_unresolved(
        &self,
        queue: &str,
        options: &ReceiveOptions,
    ) -> Result<Vec<DeliveryWire>> {
        let request = Request::Receive {
            queue: queue.to_string(),
            consumer: options.consumer.clone(),
            max: options.max,
            wait_ms: u32::try_from(options.wait.as_millis()).unwrap_or(u32::MAX),
            visibility_ms: options.visibility.map(millis),
            prefetch_records: options.prefetch_records,
            prefetch_bytes: options.prefetch_bytes,
        };
        let response = self
            .connection()
            .call_with_extra_time(request, options.wait)
            .await?;
        match response {
            Response::Deliveries(deliveries) => Ok(deliveries),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Acks deliveries by token; each token gets its own result, in order. A token whose
    /// lease expired fails with [`ErrorCode::LeaseExpired`].
    pub async fn ack(&self, queue: &str, tokens: &[String]) -> Result<Vec<Result<()>>> {
        let request = Request::Ack {
            queue: queue.to_string(),
            tokens: tokens.to_vec(),
        };
        let results = match self.connection().call(request).await? {
            Response::AckResults(results) => results,
            other => return Err(self.unexpected(&other)),
        };
        Ok(results
            .into_iter()
            .map(|result| match result.code {
                0 => Ok(()),
                code => Err(ClientError::Server {
                    code: ErrorCode::from_u16(code),
                    message: result.message,
                }),
            })
            .collect())
    }

    /// Gives a delivery back, to be delivered again after `delay` (`None`: the queue's retry
    /// backoff), or dead-lettered when it has had its deliveries; `error` is kept in the
    /// dead letter's `sy-dlq-error` header.
    pub async fn nack(
        &self,
        queue: &str,
        token: &str,
        delay: Option<Duration>,
        error: Option<&str>,
    ) -> Result<()> {
        let request = Request::Nack {
            queue: queue.to_string(),
            token: token.to_string(),
            delay_ms: delay.map(millis),
            error: error.map(str::to_string),
        };
        self.call_empty(request).await
    }

    /// Extends a delivery's lease to `visibility` from now.
    pub async fn extend(&self, queue: &str, token: &str, visibility: Duration) -> Result<()> {
        let request = Request::Extend {
            queue: queue.to_string(),
            token: token.to_string(),
            visibility_ms: millis(visibility),
        };
        self.call_empty(request).await
    }

    /// Moves up to `max` (0: all) dead letters of `dead_letter_queue` back to the queues
    /// they came from, only those with offsets in `from..to` when given; returns how many.
    /// Up to `max` records still in `queue` (not acked, not dead-lettered, not redriven), in
    /// log order, leased ones included, without leasing any: tokens are empty and delivery
    /// counts are those so far. Claim-check references are left as stored.
    pub async fn peek_queue(&self, queue: &str, max: u32) -> Result<Vec<DeliveryWire>> {
        let request = Request::PeekQueue {
            queue: queue.to_string(),
            max,
        };
        match self.connection().call(request).await? {
            Response::Deliveries(deliveries) => Ok(deliveries),
            other => Err(self.unexpected(&other)),
        }
    }

    pub async fn redrive(
        &self,
        dead_letter_queue: &str,
        max: u32,
        from: Option<u64>,
        to: Option<u64>,
    ) -> Result<u64> {
        let request = Request::Redrive {
            dead_letter_queue: dead_letter_queue.to_string(),
            max,
            from_offset: from,
            to_offset: to,
        };
        match self.connection().call(request).await? {
            Response::Redriven { moved } => Ok(moved),
            other => Err(self.unexpected(&other)),
        }
    }
}
