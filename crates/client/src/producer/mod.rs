//! [`Producer`]: batches records per partition and pipelines produce requests.
//!
//! A record is appended to its partition's open batch and its [`DeliveryReceipt`] returned at
//! once. A batch is sent when it is full (record or byte limit) or when it has lingered long
//! enough; up to `max_in_flight` produce requests are outstanding at a time, and `send` waits
//! only when that many are.
//!
//! Order within a partition is kept because every batch is closed and put on the wire under
//! one lock, and the connection writes frames in the order they are queued; the server
//! handles a connection's requests in order. Nothing is retried: a failed batch fails the
//! receipts of its records, so a retry could never reorder or duplicate what was stored.
//!
//! - `accumulator`: the pure batching and partition-choice logic.
//! - `receipt`: the future each record resolves through.

mod accumulator;
mod receipt;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex as SyncMutex, Weak};
use std::time::{Duration, Instant};

use switchyard_log::RecordBuf;
use tokio::sync::{Mutex, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::records::{check_record_size, encode_batch};
use accumulator::{Accumulator, BatchLimits, Partitioner, ReadyBatch};
use receipt::Waiter;
pub use receipt::{Delivery, DeliveryReceipt};

/// Default linger: long enough to gather a burst of sends into one batch, short enough to be
/// invisible next to a network round trip.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(5);

/// Default most records per batch; a full batch amortises its 53-byte header and checksum.
pub const DEFAULT_BATCH_RECORDS: usize = 1000;

/// Default most bytes per batch: 1 MiB, the default `max_record_bytes`, so one default-sized
/// record always fits a batch of its own.
pub const DEFAULT_BATCH_BYTES: usize = 1024 * 1024;

/// Default most produce requests awaiting a response: enough to keep a LAN link busy while
/// the server fsyncs, few enough to bound memory at 16 MiB with default batches.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 16;

/// Default time between two reads of the topic's partition count: partitions added to a
/// topic are used by running producers within this long.
pub const DEFAULT_METADATA_REFRESH: Duration = Duration::from_secs(30);

/// Shortest accepted `metadata_refresh`: each refresh is a request to the server.
const MIN_METADATA_REFRESH: Duration = Duration::from_millis(100);

/// Room left in a frame for the produce header and topic name besides the batch.
const PRODUCE_OVERHEAD_BYTES: usize = 64;

/// How a producer batches and pipelines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerOptions {
    /// Longest a batch stays open waiting for more records.
    pub linger: Duration,
    /// A batch is sent once it holds this many records.
    pub batch_records: usize,
    /// A batch is sent before a record would take it over this size (lowered to fit the
    /// server's frame limit).
    pub batch_bytes: usize,
    /// Most produce requests awaiting a response at once.
    pub max_in_flight: usize,
    /// Values larger than this are uploaded as claim-check blobs (see `blobs`).
    pub claim_check_threshold: usize,
    /// How often the topic's partition count is read again, so that partitions added
    /// later are used (at least 100 ms).
    pub metadata_refresh: Duration,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        ProducerOptions {
            linger: DEFAULT_LINGER,
            batch_records: DEFAULT_BATCH_RECORDS,
            batch_bytes: DEFAULT_BATCH_BYTES,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            claim_check_threshold: crate::blobs::DEFAULT_CLAIM_CHECK_THRESHOLD,
            metadata_refresh: DEFAULT_METADATA_REFRESH,
        }
    }
}

/// Sends records to one topic. Share it behind an `Arc` to send from several tasks.
pub struct Producer {
    shared: Arc<Shared>,
    linger_task: JoinHandle<()>,
    refresh_task: JoinHandle<()>,
}

struct Shared {
    client: Client,
    topic: Arc<str>,
    /// The topic's partition count as last read; it only grows.
    partitions: AtomicU32,
    max_record_bytes: u32,
    max_in_flight: u32,
    claim_check_threshold: usize,
    /// Batching state; held across the wait for an in-flight slot so batches go out in the
    /// order they were closed.
    state: Mutex<State>,
    in_flight: Arc<Semaphore>,
    /// Wakes the linger task when a batch opens.
    batch_opened: Notify,
    /// First delivery failure since the last flush.
    first_error: Arc<SyncMutex<Option<ClientError>>>,
}

struct State {
    accumulator: Accumulator<Waiter>,
    partitioner: Partitioner,
}

impl Producer {
    /// Creates a producer for `topic`, reading its partition count and `max_record_bytes`
    /// from the server. The partition count is read again every `metadata_refresh`, so
    /// partitions added later are used.
    pub async fn new(client: Client, topic: &str, options: ProducerOptions) -> Result<Producer> {
        validate(&options)?;
        let description = client.describe_topic(topic).await?;
        let partitions = u32::try_from(description.partitions.len()).unwrap_or(u32::MAX);
        let max_record_bytes = description
            .config
            .max_record_bytes
            .unwrap_or(DEFAULT_BATCH_BYTES as u32);

        // A batch must fit one frame along with the produce header.
        let frame_room = (client.connection().max_frame() as usize)
            .saturating_sub(topic.len() + PRODUCE_OVERHEAD_BYTES);
        let limits = BatchLimits {
            records: options.batch_records,
            bytes: options.batch_bytes.min(frame_room),
            linger: options.linger,
        };
        let max_in_flight = u32::try_from(options.max_in_flight).unwrap_or(u32::MAX);
        let shared = Arc::new(Shared {
            client,
            topic: topic.into(),
            partitions: AtomicU32::new(partitions),
            max_record_bytes,
            max_in_flight,
            claim_check_threshold: options.claim_check_threshold,
            state: Mutex::new(State {
                accumulator: Accumulator::new(partitions, limits),
                partitioner: Partitioner::new(partitions),
            }),
            in_flight: Arc::new(Semaphore::new(max_in_flight as usize)),
            batch_opened: Notify::new(),
            first_error: Arc::new(SyncMutex::new(None)),
        });
        let linger_task = tokio::spawn(linger_loop(Arc::clone(&shared)));
        let refresh_task = tokio::spawn(refresh_loop(
            Arc::downgrade(&shared),
            options.metadata_refresh,
        ));
        tracing::debug!(topic, partitions, max_record_bytes, "producer ready");
        Ok(Producer {
            shared,
            linger_task,
            refresh_task,
        })
    }

    /// The topic this producer writes to.
    pub fn topic(&self) -> &str {
        &self.shared.topic
    }

    /// Number of partitions of the topic, as last read from the server.
    pub fn partitions(&self) -> u32 {
        self.shared.partitions.load(Ordering::Acquire)
    }

    /// The topic's `max_record_bytes`, as read when the producer was created.
    pub fn max_record_bytes(&self) -> u32 {
        self.shared.max_record_bytes
    }

    /// Queues a record and returns its receipt. A keyed record goes to the key's partition;
    /// an unkeyed one to the current sticky partition. Waits only when `max_in_flight`
    /// requests are outstanding; a record over `max_record_bytes` is refused at once.
    pub async fn send(&self, record: RecordBuf) -> Result<DeliveryReceipt> {
        let shared = &self.shared;
        let record = shared
            .client
            .check_in(record, shared.claim_check_threshold)
            .await?;
        check_record_size(&shared.topic, &record, shared.max_record_bytes)?;
        shared.check_open()?;
        let (waiter, receipt) = DeliveryReceipt::new(Arc::clone(&shared.topic));
        let timestamp = switchyard_log::now_ms();

        let mut state = shared.state.lock().await;
        let partition = state.partitioner.choose(record.key.as_deref());
        let mut ready = Vec::new();
        let opened = state.accumulator.push(
            partition,
            timestamp,
            &record,
            waiter,
            Instant::now(),
            &mut ready,
        );
        if opened {
            shared.batch_opened.notify_one();
        }
        for batch in ready {
            shared.dispatch(&mut state, batch).await;
        }
        Ok(receipt)
    }

    /// Sends records the caller batched itself to one partition as a single batch, bypassing
    /// the accumulator (but sharing the in-flight limit); returns the base offset and count.
    /// Its order relative to records queued with [`Producer::send`] is not defined.
    pub async fn send_batch(&self, partition: u32, records: Vec<RecordBuf>) -> Result<(u64, u32)> {
        let shared = &self.shared;
        let partitions = self.partitions();
        if partition >= partitions {
            return Err(ClientError::PartitionOutOfRange {
                topic: shared.topic.to_string(),
                partitions,
                partition,
            });
        }
        let mut checked = Vec::with_capacity(records.len());
        for record in records {
            let record = shared
                .client
                .check_in(record, shared.claim_check_threshold)
                .await?;
            check_record_size(&shared.topic, &record, shared.max_record_bytes)?;
            checked.push(record);
        }
        let records = checked;
        let batch = encode_batch(&records);
        let _permit = shared.acquire_slot().await?;
        shared.client.produce(&shared.topic, partition, batch).await
    }

    /// Sends every open batch and waits until no produce request is outstanding. Returns the
    /// first delivery failure since the previous flush, so a caller that dropped receipts
    /// still learns that records were lost.
    pub async fn flush(&self) -> Result<()> {
        let shared = &self.shared;
        {
            let mut state = shared.state.lock().await;
            for batch in state.accumulator.drain() {
                shared.dispatch(&mut state, batch).await;
            }
        }
        // Holding every slot at once means every earlier request has been answered.
        let all = shared.in_flight.acquire_many(shared.max_in_flight).await;
        drop(all);
        match shared.lock_first_error().take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Flushes and stops the producer.
    pub async fn close(self) -> Result<()> {
        self.flush().await
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.linger_task.abort();
        self.refresh_task.abort();
        // Records still in open batches are abandoned: dropping their waiters resolves their
        // receipts with `Abandoned`. If the aborted linger task still holds the lock, they
        // are dropped with the state once the producer's last task has ended.
        if let Ok(mut state) = self.shared.state.try_lock() {
            let abandoned = state.accumulator.pending_records();
            drop(state.accumulator.drain());
            if abandoned > 0 {
                tracing::warn!(topic = %self.shared.topic, abandoned, "producer dropped unsent");
            }
        }
    }
}

impl Shared {
    /// Puts a closed batch on the wire, waiting for an in-flight slot, and spawns the task
    /// that resolves its receipts. Called with the state lock held, which keeps batches of a
    /// partition in order.
    async fn dispatch(&self, state: &mut State, batch: ReadyBatch<Waiter>) {
        state.partitioner.batch_sent(batch.partition);
        let ReadyBatch {
            partition,
            batch,
            waiters,
        } = batch;

        let permit = match self.acquire_slot().await {
            Ok(permit) => permit,
            Err(error) => return self.fail(waiters, error),
        };
        let call = match self.client.start_produce(&self.topic, partition, batch) {
            Ok(call) => call,
            Err(error) => return self.fail(waiters, error),
        };
        tracing::debug!(topic = %self.topic, partition, records = waiters.len(), "batch sent");

        let client = self.client.clone();
        let first_error = Arc::clone(&self.first_error);
        tokio::spawn(async move {
            let outcome = client.finish_produce(call).await;
            drop(permit);
            if let Err(error) = deliver(client.connection().addr(), partition, waiters, outcome) {
                tracing::debug!(partition, %error, "batch failed");
                record_first_error(&first_error, &error);
            }
        });
    }

    /// Fails fast once the connection is gone, rather than queueing records that can only
    /// fail later.
    fn check_open(&self) -> Result<()> {
        let connection = self.client.connection();
        match connection.closed_reason() {
            Some(reason) => Err(ClientError::Closed {
                addr: connection.addr().to_string(),
                reason,
            }),
            None => Ok(()),
        }
    }

    async fn acquire_slot(&self) -> Result<OwnedSemaphorePermit> {
        // The semaphore is never closed, so this error cannot happen.
        Arc::clone(&self.in_flight)
            .acquire_owned()
            .await
            .map_err(|_| ClientError::Abandoned {
                topic: self.topic.to_string(),
            })
    }

    fn fail(&self, waiters: Vec<Waiter>, error: ClientError) {
        tracing::debug!(topic = %self.topic, %error, "batch failed before sending");
        record_first_error(&self.first_error, &error);
        for waiter in waiters {
            let _ = waiter.send(Err(error.clone()));
        }
    }

    fn lock_first_error(&self) -> std::sync::MutexGuard<'_, Option<ClientError>> {
        lock_ignoring_poison(&self.first_error)
    }
}

/// Resolves the receipts of a batch from its produce outcome; returns the batch's error.
fn deliver(
    addr: &str,
    partition: u32,
    waiters: Vec<Waiter>,
    outcome: Result<(u64, u32)>,
) -> Result<()> {
    let outcome = outcome.and_then(|(base_offset, count)| {
        // The server must have stored exactly the records sent, or none can be vouched for.
        if count as usize == waiters.len() {
            Ok(base_offset)
        } else {
            Err(ClientError::Protocol {
                addr: addr.to_string(),
                detail: format!(
                    "the server acknowledged {count} records of a batch of {}",
                    waiters.len()
                ),
            })
        }
    });
    match outcome {
        Ok(base_offset) => {
            for (offset, waiter) in (base_offset..).zip(waiters) {
                let _ = waiter.send(Ok((partition, offset)));
            }
            Ok(())
        }
        Err(error) => {
            for waiter in waiters {
                let _ = waiter.send(Err(error.clone()));
            }
            Err(error)
        }
    }
}

fn record_first_error(slot: &SyncMutex<Option<ClientError>>, error: &ClientError) {
    lock_ignoring_poison(slot).get_or_insert_with(|| error.clone());
}

fn lock_ignoring_poison<T>(mutex: &SyncMutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values stay consistent if a holder panics, so poisoning is ignored.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn validate(options: &ProducerOptions) -> Result<()> {
    let invalid = |option, reason: &str| {
        Err(ClientError::InvalidOption {
            option,
            reason: reason.to_string(),
        })
    };
    if options.batch_records == 0 {
        return invalid("batch_records", "must be at least 1");
    }
    if options.batch_bytes == 0 {
        return invalid("batch_bytes", "must be at least 1");
    }
    if options.max_in_flight == 0 || options.max_in_flight > Semaphore::MAX_PERMITS {
        return invalid("max_in_flight", "must be at least 1");
    }
    if options.metadata_refresh < MIN_METADATA_REFRESH {
        return invalid("metadata_refresh", "must be at least 100 ms");
    }
    Ok(())
}

/// Reads the topic's partition count every `every` and, when partitions were added, spreads
/// records over them. Runs until the producer is dropped; a failed read is retried next time.
async fn refresh_loop(shared: Weak<Shared>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let description = match shared.client.describe_topic(&shared.topic).await {
            Ok(description) => description,
            Err(err) => {
                tracing::debug!(topic = %shared.topic, error = %err, "partition refresh failed");
                continue;
            }
        };
        let now = u32::try_from(description.partitions.len()).unwrap_or(u32::MAX);
        let before = shared.partitions.load(Ordering::Acquire);
        if now <= before {
            continue;
        }
        let mut state = shared.state.lock().await;
        state.accumulator.grow(now);
        state.partitioner.grow(now);
        shared.partitions.store(now, Ordering::Release);
        let topic = &*shared.topic;
        tracing::info!(
            topic,
            from = before,
            to = now,
            "producer uses new partitions"
        );
    }
}

/// Sends batches whose linger ran out. Runs until the producer is dropped.
async fn linger_loop(shared: Arc<Shared>) {
    loop {
        // Sleep until the oldest open batch is due, or until a batch opens.
        let deadline = shared.state.lock().await.accumulator.next_deadline();
        match deadline {
            Some(deadline) => {
                // A batch opened meanwhile is due later than this one, so no need to wake.
                tokio::time::sleep_until(deadline.into()).await;
            }
            None => {
                shared.batch_opened.notified().await;
                continue;
            }
        }

        let mut state = shared.state.lock().await;
        for batch in state.accumulator.expired(Instant::now()) {
            shared.dispatch(&mut state, batch).await;
        }
    }
}
