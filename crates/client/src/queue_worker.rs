//! [`QueueWorker`]: receive, handle, ack — the loop every queue consumer writes, done once.
//!
//! The worker keeps at most `concurrency` deliveries in hand. A slot is taken before a
//! receive asks for records (so it asks for no more than it can start at once) and given back
//! only once the delivery is acked or nacked, so what the worker holds at the broker never
//! exceeds its concurrency. Each delivery runs its handler in its own task; while the handler
//! runs, the lease is extended every half visibility, so slow work is not delivered twice.
//! Successes are acked in batches by one task; failures are nacked with the error's text,
//! which ends up in the dead letter's `sy-dlq-error` header.
//!
//! Shutdown stops receiving: the receive in flight finishes (it waits at most `wait`), its
//! records and every handler in progress run to the end, and their acks are sent.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use switchyard_protocol::DeliveryWire;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::queue::ReceiveOptions;

/// Settings of a [`QueueWorker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerOptions {
    /// Consumer name given to the broker.
    pub consumer: String,
    /// Most records per receive.
    pub batch: u32,
    /// How long a receive waits for records when none is ready.
    pub wait: Duration,
    /// Lease length asked for; leases are extended every half of it while a handler runs.
    pub visibility: Duration,
    /// Broker-side limit on records this consumer holds; 0 for none.
    pub prefetch_records: u32,
    /// Broker-side limit on payload bytes this consumer holds; 0 for none.
    pub prefetch_bytes: u64,
    /// Handlers running at once, and so deliveries held at once.
    pub concurrency: usize,
    /// Most tokens per ack request.
    pub ack_batch: usize,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            consumer: "switchyard-worker".into(),
            batch: 10,
            // Long enough that an idle worker costs one request per 5 s, short enough that
            // shutdown is prompt.
            wait: Duration::from_secs(5),
            visibility: Duration::from_secs(30),
            prefetch_records: 0,
            prefetch_bytes: 0,
            concurrency: 8,
            ack_batch: 100,
        }
    }
}

/// What a worker did before it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Deliveries whose handler returned `Ok` and whose ack the broker accepted.
    pub acked: u64,
    /// Deliveries whose handler returned `Err` and that were nacked.
    pub nacked: u64,
    /// Acks or nacks the broker refused (typically a lease that expired first).
    pub settle_failed: u64,
    /// Lease extensions the broker refused.
    pub extend_failed: u64,
    /// Handlers that panicked; their records come back once the lease expires.
    pub panicked: u64,
}

#[derive(Default)]
struct Counters {
    acked: AtomicU64,
    nacked: AtomicU64,
    settle_failed: AtomicU64,
    extend_failed: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, count: u64) {
        counter.fetch_add(count, Ordering::Relaxed);
    }
}

/// Receives from one queue and runs a handler per delivery; see the module docs.
#[derive(Debug, Clone)]
pub struct QueueWorker {
    client: Client,
    queue: String,
    options: WorkerOptions,
}

/// What one delivery's task needs.
struct Job<H> {
    client: Client,
    queue: String,
    visibility: Duration,
    handler: Arc<H>,
    acks: mpsc::UnboundedSender<(String, OwnedSemaphorePermit)>,
    counters: Arc<Counters>,
}

impl QueueWorker {
    /// A worker for `queue`; fails on options out of range.
    pub fn new(client: Client, queue: &str, options: WorkerOptions) -> Result<QueueWorker> {
        let invalid = |option: &'static str, reason: &str| ClientError::InvalidOption {
            option,
            reason: reason.to_string(),
        };
        if options.batch == 0 {
            return Err(invalid("batch", "must be at least 1"));
        }
        if options.concurrency == 0 {
            return Err(invalid("concurrency", "must be at least 1"));
        }
        if options.ack_batch == 0 {
            return Err(invalid("ack_batch", "must be at least 1"));
        }
        if options.visibility < Duration::from_millis(2) {
            return Err(invalid("visibility", "must be at least 2 ms"));
        }
        Ok(QueueWorker {
            client,
            queue: queue.to_string(),
            options,
        })
    }

    /// Runs until `shutdown` completes or a receive fails; returns what was done. A handler
    /// returning `Err` gets its delivery nacked (retried per the queue's settings).
    pub async fn run<H, F, E>(
        &self,
        handler: H,
        shutdown: impl Future<Output = ()>,
    ) -> Result<WorkerReport>
    where
        H: Fn(DeliveryWire) -> F + Send + Sync + 'static,
        F: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let slots = Arc::new(Semaphore::new(self.options.concurrency));
        let counters = Arc::new(Counters::default());
        let (acks, ack_queue) = mpsc::unbounded_channel();
        let acker = tokio::spawn(ack_loop(
            self.client.clone(),
            self.queue.clone(),
            ack_queue,
            self.options.ack_batch,
            Arc::clone(&counters),
        ));
        let job = Job {
            client: self.client.clone(),
            queue: self.queue.clone(),
            visibility: self.options.visibility,
            handler: Arc::new(handler),
            acks,
            counters: Arc::clone(&counters),
        };
        let mut tasks = JoinSet::new();
        let mut panicked = 0;
        tokio::pin!(shutdown);

        let failure = loop {
            // Wait for a free slot; take as many more as are free, up to a batch.
            let first = tokio::select! {
                biased;
                _ = &mut shutdown => break None,
                slot = Arc::clone(&slots).acquire_owned() => slot,
            };
            let Ok(first) = first else { break None };
            let mut held = vec![first];
            while held.len() < self.options.batch as usize {
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(slot) => held.push(slot),
                    Err(_) => break,
                }
            }
            while let Some(joined) = tasks.try_join_next() {
                panicked += u64::from(joined.is_err());
            }

            // Receive as many as there are slots; unused slots go back when `held` drops.
            let options = self.receive_options(held.len() as u32);
            let deliveries = match self.client.receive(&self.queue, &options).await {
                Ok(deliveries) => deliveries,
                Err(err) => break Some(err),
            };
            for (delivery, slot) in deliveries.into_iter().zip(held) {
                tasks.spawn(job.clone_for().run(delivery, slot));
            }
        };

        // Let every handler finish and every ack go out.
        while let Some(joined) = tasks.join_next().await {
            panicked += u64::from(joined.is_err());
        }
        drop(job);
        let _ = acker.await;
        if let Some(err) = failure {
            return Err(err);
        }
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Ok(WorkerReport {
            acked: load(&counters.acked),
            nacked: load(&counters.nacked),
            settle_failed: load(&counters.settle_failed),
            extend_failed: load(&counters.extend_failed),
            panicked,
        })
    }

    fn receive_options(&self, max: u32) -> ReceiveOptions {
        ReceiveOptions {
            consumer: self.options.consumer.clone(),
            max,
            wait: self.options.wait,
            visibility: Some(self.options.visibility),
            prefetch_records: self.options.prefetch_records,
            prefetch_bytes: self.options.prefetch_bytes,
        }
    }
}

impl<H, F, E> Job<H>
where
    H: Fn(DeliveryWire) -> F + Send + Sync + 'static,
    F: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    fn clone_for(&self) -> Job<H> {
        Job {
            client: self.client.clone(),
            queue: self.queue.clone(),
            visibility: self.visibility,
            handler: Arc::clone(&self.handler),
            acks: self.acks.clone(),
            counters: Arc::clone(&self.counters),
        }
    }

    /// Runs the handler, extending the lease while it works, then settles the delivery.
    async fn run(self, delivery: DeliveryWire, slot: OwnedSemaphorePermit) {
        let token = delivery.token.clone();
        let work = (self.handler)(delivery);
        tokio::pin!(work);
        let period = self.visibility / 2;
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let outcome = loop {
            tokio::select! {
                outcome = &mut work => break outcome,
                _ = renew.tick() => self.extend(&token).await,
            }
        };
        match outcome {
            // The slot travels with the token and is freed once the ack is answered.
            Ok(()) => {
                let _ = self.acks.send((token, slot));
            }
            Err(err) => {
                let error = err.to_string();
                match self
                    .client
                    .nack(&self.queue, &token, None, Some(&error))
                    .await
                {
                    Ok(()) => Counters::add(&self.counters.nacked, 1),
                    Err(err) => {
                        tracing::warn!(queue = %self.queue, %token, error = %err, "nack failed");
                        Counters::add(&self.counters.settle_failed, 1);
                    }
                }
                drop(slot);
            }
        }
    }

    async fn extend(&self, token: &str) {
        if let Err(err) = self
            .client
            .extend(&self.queue, token, self.visibility)
            .await
        {
            tracing::warn!(queue = %self.queue, %token, error = %err, "lease extension failed");
            Counters::add(&self.counters.extend_failed, 1);
        }
    }
}

/// Acks tokens in batches: whatever is queued when the previous ack is answered goes next.
async fn ack_loop(
    client: Client,
    queue: String,
    mut tokens: mpsc::UnboundedReceiver<(String, OwnedSemaphorePermit)>,
    batch: usize,
    counters: Arc<Counters>,
) {
    while let Some(first) = tokens.recv().await {
        let mut pending = vec![first];
        while pending.len() < batch {
            match tokens.try_recv() {
                Ok(next) => pending.push(next),
                Err(_) => break,
            }
        }
        let list: Vec<String> = pending.iter().map(|(token, _)| token.clone()).collect();
        match client.ack(&queue, &list).await {
            Ok(results) => {
                for (result, token) in results.iter().zip(&list) {
                    match result {
                        Ok(()) => Counters::add(&counters.acked, 1),
                        Err(err) => {
                            tracing::warn!(%queue, %token, error = %err, "ack refused");
                            Counters::add(&counters.settle_failed, 1);
                        }
                    }
                }
            }
            Err(err) => {
                tracing::warn!(%queue, error = %err, "ack failed");
                Counters::add(&counters.settle_failed, list.len() as u64);
            }
        }
        // Dropping `pending` frees the slots of what was just settled.
    }
}
