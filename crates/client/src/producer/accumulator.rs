//! The producer's pure core: which partition a record goes to, and when a batch is ready.
//!
//! No I/O and no clock of its own (callers pass `now`), so batching decisions are unit tested
//! without a server or a runtime. Each open batch carries one waiter per record, in record
//! order, so whoever sends the batch can tell every record its offset.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use switchyard_log::partitioner::partition_for_key;
use switchyard_log::{BatchBuilder, RecordBuf};

/// When an open batch is closed and sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchLimits {
    /// Close once the batch holds this many records.
    pub records: usize,
    /// Close before a record would take the batch over this many bytes.
    pub bytes: usize,
    /// Close once the batch has been open this long.
    pub linger: Duration,
}

/// A batch closed and encoded, waiting to be sent.
#[derive(Debug)]
pub(crate) struct ReadyBatch<W> {
    /// Partition the batch is for.
    pub partition: u32,
    /// The encoded batch.
    pub batch: Bytes,
    /// One waiter per record, in record order.
    pub waiters: Vec<W>,
}

struct OpenBatch<W> {
    builder: BatchBuilder,
    waiters: Vec<W>,
    opened: Instant,
}

impl<W> OpenBatch<W> {
    fn close(self, partition: u32) -> ReadyBatch<W> {
        ReadyBatch {
            partition,
            batch: self.builder.finish(),
            waiters: self.waiters,
        }
    }
}

/// One open batch per partition.
pub(crate) struct Accumulator<W> {
    limits: BatchLimits,
    open: Vec<Option<OpenBatch<W>>>,
}

impl<W> Accumulator<W> {
    pub fn new(partitions: u32, limits: BatchLimits) -> Self {
        Accumulator {
            limits,
            open: (0..partitions).map(|_| None).collect(),
        }
    }

    /// Makes room for partitions added to the topic; a count can only grow.
    pub fn grow(&mut self, partitions: u32) {
        let wanted = partitions as usize;
        if wanted > self.open.len() {
            self.open.resize_with(wanted, || None);
        }
    }

    /// Appends `record` to the batch of `partition`, pushing onto `ready` the batches this
    /// closes: the open one if the record does not fit it, and the record's own once full.
    /// Returns whether a new batch was opened (so a linger deadline now exists).
    pub fn push(
        &mut self,
        partition: u32,
        timestamp: i64,
        record: &RecordBuf,
        waiter: W,
        now: Instant,
        ready: &mut Vec<ReadyBatch<W>>,
    ) -> bool {
        let limits = self.limits;
        let Some(slot) = self.open.get_mut(partition as usize) else {
            // The producer checks partitions first; an unknown one is dropped with its waiter,
            // which reports the record as abandoned rather than delivered.
            return false;
        };

        // A record that would overflow the open batch goes into a fresh one.
        let fits = match slot {
            Some(open) => open.builder.size_bytes() + record.estimated_size() <= limits.bytes,
            None => true,
        };
        if !fits {
            if let Some(full) = slot.take() {
                ready.push(full.close(partition));
            }
        }

        let opened = slot.is_none();
        let open = slot.get_or_insert_with(|| OpenBatch {
            builder: BatchBuilder::with_capacity(limits.bytes.min(64 * 1024)),
            waiters: Vec::new(),
            opened: now,
        });
        open.builder.push(timestamp, record);
        open.waiters.push(waiter);

        let full =
            open.waiters.len() >= limits.records || open.builder.size_bytes() >= limits.bytes;
        if full {
            if let Some(full) = slot.take() {
                ready.push(full.close(partition));
            }
        }
        opened
    }

    /// Closes every batch that has been open for at least the linger time.
    pub fn expired(&mut self, now: Instant) -> Vec<ReadyBatch<W>> {
        let linger = self.limits.linger;
        let mut ready = Vec::new();
        for (partition, slot) in self.open.iter_mut().enumerate() {
            let due = slot
                .as_ref()
                .is_some_and(|open| now.saturating_duration_since(open.opened) >= linger);
            if due {
                if let Some(open) = slot.take() {
                    ready.push(open.close(partition as u32));
                }
            }
        }
        ready
    }

    /// Closes every open batch.
    pub fn drain(&mut self) -> Vec<ReadyBatch<W>> {
        let mut ready = Vec::new();
        for (partition, slot) in self.open.iter_mut().enumerate() {
            if let Some(open) = slot.take() {
                ready.push(open.close(partition as u32));
            }
        }
        ready
    }

    /// When the oldest open batch's linger runs out, if any batch is open.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.open
            .iter()
            .flatten()
            .map(|open| open.opened + self.limits.linger)
            .min()
    }

    /// Records waiting in open batches.
    pub fn pending_records(&self) -> usize {
        self.open
            .iter()
            .flatten()
            .map(|open| open.waiters.len())
            .sum()
    }
}

/// Chooses partitions: keyed records by Kafka's murmur2 of the key, unkeyed records all to one
/// "sticky" partition until a batch for it is sent, so unkeyed traffic forms full batches
/// instead of many small ones spread over every partition.
#[derive(Debug)]
pub(crate) struct Partitioner {
    partitions: u32,
    sticky: u32,
}

impl Partitioner {
    pub fn new(partitions: u32) -> Self {
        let partitions = partitions.max(1);
        Partitioner {
            partitions,
            sticky: rand::thread_rng().gen_range(0..partitions),
        }
    }

    /// Spreads over partitions added to the topic. Keys then map as they do for a new
    /// producer (murmur2 over the new count), as in Kafka: per-key order holds from here on.
    pub fn grow(&mut self, partitions: u32) {
        self.partitions = self.partitions.max(partitions);
    }

    /// The partition for a record with this key.
    pub fn choose(&self, key: Option<&[u8]>) -> u32 {
        match key {
            Some(key) => partition_for_key(key, self.partitions),
            None => self.sticky,
        }
    }

    /// Called when a batch of `partition` is sent: moves the sticky partition elsewhere.
    pub fn batch_sent(&mut self, partition: u32) {
        if partition != self.sticky || self.partitions == 1 {
            return;
        }
        // Pick uniformly among the other partitions.
        let step = rand::thread_rng().gen_range(1..self.partitions);
        self.sticky = (self.sticky + step) % self.partitions;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(records: usize, bytes: usize) -> BatchLimits {
        BatchLimits {
            records,
            bytes,
            linger: Duration::from_millis(5),
        }
    }

    fn record(size: usize) -> RecordBuf {
        RecordBuf::new(None, &vec![7; size])
    }

    #[test]
    fn batch_closes_at_the_record_limit() {
        let mut acc = Accumulator::new(2, limits(3, 1 << 20));
        let now = Instant::now();
        let mut ready = Vec::new();
        for waiter in 0..3 {
            acc.push(1, 0, &record(10), waiter, now, &mut ready);
        }
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].partition, 1);
        assert_eq!(ready[0].waiters, vec![0, 1, 2]);
        assert_eq!(acc.pending_records(), 0);
        assert_eq!(acc.next_deadline(), None);
    }

    #[test]
    fn record_that_does_not_fit_starts_a_new_batch() {
        let mut acc = Accumulator::new(1, limits(1000, 400));
        let now = Instant::now();
        let mut ready = Vec::new();
        acc.push(0, 0, &record(200), "a", now, &mut ready);
        assert!(ready.is_empty());
        acc.push(0, 0, &record(200), "b", now, &mut ready);
        assert_eq!(
            ready.len(),
            1,
            "the first batch closes when the second record won't fit"
        );
        assert_eq!(ready[0].waiters, vec!["a"]);
        assert!(ready[0].batch.len() <= 400);
        assert_eq!(acc.pending_records(), 1);
    }

    #[test]
    fn oversized_record_goes_alone() {
        let mut acc = Accumulator::new(1, limits(1000, 100));
        let now = Instant::now();
        let mut ready = Vec::new();
        acc.push(0, 0, &record(10), 1, now, &mut ready);
        acc.push(0, 0, &record(500), 2, now, &mut ready);
        let waiters: Vec<Vec<i32>> = ready.iter().map(|batch| batch.waiters.clone()).collect();
        assert_eq!(waiters, vec![vec![1], vec![2]]);
    }

    #[test]
    fn linger_closes_batches_once_due() {
        let mut acc = Accumulator::new(3, limits(1000, 1 << 20));
        let start = Instant::now();
        let mut ready = Vec::new();
        assert!(acc.push(0, 0, &record(1), (), start, &mut ready));
        assert!(!acc.push(0, 0, &record(1), (), start, &mut ready));
        let later = start + Duration::from_millis(3);
        assert!(acc.push(2, 0, &record(1), (), later, &mut ready));
        assert_eq!(acc.next_deadline(), Some(start + Duration::from_millis(5)));

        assert!(acc.expired(start + Duration::from_millis(4)).is_empty());
        let due = acc.expired(start + Duration::from_millis(5));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].partition, 0);
        assert_eq!(due[0].waiters.len(), 2);
        assert_eq!(acc.next_deadline(), Some(later + Duration::from_millis(5)));
        assert_eq!(acc.drain().len(), 1);
        assert_eq!(acc.pending_records(), 0);
    }

    #[test]
    fn closed_batches_decode_in_order() {
        let mut acc = Accumulator::new(1, limits(1000, 1 << 20));
        let mut ready = Vec::new();
        for value in [b"x", b"y", b"z"] {
            let record = RecordBuf::new(None, value);
            acc.push(0, 42, &record, (), Instant::now(), &mut ready);
        }
        let batch = acc.drain().remove(0).batch;
        let parsed = switchyard_log::parse_batches(&batch).expect("valid batch");
        let values: Vec<_> = parsed[0]
            .records()
            .filter_map(|record| record.value)
            .collect();
        assert_eq!(values, vec![&b"x"[..], &b"y"[..], &b"z"[..]]);
    }

    #[test]
    fn keyed_records_follow_the_key() {
        let partitioner = Partitioner::new(6);
        let key = b"N14228";
        assert_eq!(partitioner.choose(Some(key)), partition_for_key(key, 6));
    }

    #[test]
    fn sticky_partition_moves_only_when_its_batch_is_sent() {
        let mut partitioner = Partitioner::new(4);
        let first = partitioner.choose(None);
        assert_eq!(partitioner.choose(None), first);
        partitioner.batch_sent((first + 1) % 4);
        assert_eq!(partitioner.choose(None), first, "another partition's batch");
        partitioner.batch_sent(first);
        let second = partitioner.choose(None);
        assert_ne!(second, first);
        assert!(second < 4);
    }

    #[test]
    fn single_partition_stays_put() {
        let mut partitioner = Partitioner::new(1);
        partitioner.batch_sent(0);
        assert_eq!(partitioner.choose(None), 0);
        assert_eq!(partitioner.choose(Some(b"k")), 0);
    }
}
