//! The data path: appending batches, reading them back, finding offsets.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use switchyard_log::partitioner::partition_for_key;
use switchyard_log::{AppendInfo, BatchBuilder, FsyncPolicy, ReadResult, RecordBuf};

use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::topic::Partition;

/// Where a consumer wants to start reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// The first record at or after this time (ms since the Unix epoch).
    Timestamp(i64),
}

/// The result of an append, and whether it still has to be made durable before it may be
/// acknowledged (fsync policy `always`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub info: AppendInfo,
    pub needs_sync: bool,
}

impl Broker {
    /// Appends an encoded batch to one partition. With fsync policy `always` the caller must
    /// call [`Broker::sync_partition`] before acknowledging; `needs_sync` says so. Keeping
    /// the fsync separate lets an async server run it off its event loop.
    pub fn append(&self, topic: &str, partition: u32, batch: &Bytes) -> Result<Appended> {
        crate::broker::refuse_internal("write to", topic)?;
        self.append_and_copy(topic, partition, batch)
    }

    /// [`Broker::append`] for the broker's own writers, which may write its own topics (a
    /// queue on patterns reads `__sub.NAME`): appends, then copies to the subscription logs
    /// that read the topic (none read the broker's own).
    pub(crate) fn append_and_copy(
        &self,
        topic: &str,
        partition: u32,
        batch: &Bytes,
    ) -> Result<Appended> {
        let appended = self.append_unchecked(topic, partition, batch)?;
        // Subscription logs copy from the log, so they see the batch just stored.
        self.copy_appended(topic, partition);
        Ok(appended)
    }

    /// Appends to any topic, the broker's own included, without copying to subscription logs.
    pub(crate) fn append_unchecked(
        &self,
        topic: &str,
        partition: u32,
        batch: &Bytes,
    ) -> Result<Appended> {
        self.check_running()?;
        let handle = self.topic(topic)?;
        let policy = handle.config().fsync;
        let target = handle.partition(partition)?;
        // Claim-check references: every blob must exist before the batch is stored, and the
        // lock holds until the references are recorded.
        let blobs = crate::blobs::mentions(batch);
        let _blob_lock = self.check_blobs(topic, &blobs)?;
        let info = target
            .log
            .append(batch, self.now_ms())
            .map_err(|err| BrokerError::from_log(topic, partition, err))?;
        self.attach_blobs(topic, partition, info.base_offset, &blobs)?;
        target.appended.notify_waiters();
        Ok(Appended {
            info,
            needs_sync: policy == FsyncPolicy::Always,
        })
    }

    /// Forces a partition's appended data to disk; concurrent callers share one fsync.
    pub fn sync_partition(&self, topic: &str, partition: u32) -> Result<()> {
        let target = self.topic(topic)?.partition(partition)?;
        target
            .log
            .sync()
            .map_err(|err| BrokerError::from_log(topic, partition, err))
    }

    /// Appends and, when the topic's policy asks for it, syncs: the whole produce of one
    /// batch, for callers that may block.
    pub fn produce(&self, topic: &str, partition: u32, batch: &Bytes) -> Result<AppendInfo> {
        let appended = self.append(topic, partition, batch)?;
        if appended.needs_sync {
            self.sync_partition(topic, partition)?;
        }
        Ok(appended.info)
    }

    /// Produces records from an embedding application: keyed records go to their key's
    /// partition (murmur2, as Kafka), unkeyed ones to partition `sticky % partitions`.
    /// Returns the partition and offset of each record, in input order.
    pub fn produce_records(
        &self,
        topic: &str,
        records: &[RecordBuf],
        sticky: u32,
    ) -> Result<Vec<(u32, u64)>> {
        let partitions = self.topic(topic)?.partition_count();
        let now = self.now_ms();
        let mut batches: BTreeMap<u32, (BatchBuilder, Vec<usize>)> = BTreeMap::new();
        for (index, record) in records.iter().enumerate() {
            let partition = match &record.key {
                Some(key) => partition_for_key(key, partitions),
                None => sticky % partitions,
            };
            let (builder, members) = batches.entry(partition).or_default();
            builder.push(now, record);
            members.push(index);
        }
        let mut placed = vec![(0, 0); records.len()];
        for (partition, (builder, members)) in batches {
            let info = self.produce(topic, partition, &builder.finish())?;
            for (position, index) in members.into_iter().enumerate() {
                placed[index] = (partition, info.base_offset + position as u64);
            }
        }
        Ok(placed)
    }

    /// Reads about `max_bytes` of whole batches from `offset` on.
    pub fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: usize,
    ) -> Result<ReadResult> {
        let target = self.topic(topic)?.partition(partition)?;
        target
            .log
            .read(offset, max_bytes)
            .map_err(|err| BrokerError::from_log(topic, partition, err))
    }

    /// The partition, for waiting on its append signal.
    pub fn partition_handle(&self, topic: &str, partition: u32) -> Result<Arc<Partition>> {
        self.topic(topic)?.partition(partition)
    }

    /// Resolves an offset spec for one partition.
    pub fn list_offset(&self, topic: &str, partition: u32, spec: OffsetSpec) -> Result<u64> {
        let target = self.topic(topic)?.partition(partition)?;
        match spec {
            OffsetSpec::Earliest => Ok(target.log.start_offset()),
            OffsetSpec::Latest => Ok(target.log.end_offset()),
            OffsetSpec::Timestamp(timestamp) => target
                .log
                .offset_for_timestamp(timestamp)
                .map_err(|err| BrokerError::from_log(topic, partition, err)),
        }
    }
}

impl Broker {
    /// Waits, without blocking a thread, until the records of `topic`/`partition` below
    /// `end_offset` are on stable storage; the sync workers do the fsync, shared with every
    /// other producer waiting on the partition.
    pub async fn wait_durable(&self, topic: &str, partition: u32, end_offset: u64) -> Result<()> {
        let target = self.topic(topic)?.partition(partition)?;
        let mut durable = target.durable.subscribe();
        self.inner.syncer.request(topic, &target);
        let state = durable
            .wait_for(|state| state.offset >= end_offset || state.error.is_some())
            .await
            .map_err(|_| BrokerError::ShuttingDown)?
            .clone();
        if state.offset >= end_offset {
            return Ok(());
        }
        Err(BrokerError::SyncFailed {
            topic: topic.to_string(),
            partition,
            reason: state.error.map(|e| e.to_string()).unwrap_or_default(),
        })
    }
}
