//! Copying source records into a subscription log, and finding at start-up where copying
//! had got to.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use switchyard_log::partitioner::partition_for_key;
use switchyard_log::{parse_batches, BatchBuilder, LogError, Record, RecordBuf};

use crate::broker::Broker;
use crate::dead_letters::DLQ_SOURCE;
use crate::error::{BrokerError, Result};
use crate::rules::router::header_text;
use crate::subscription_log::store::{Checkpoint, Cursors};
use crate::subscription_log::{CopyState, SubscriptionLog, SOURCE_HEADER};
use crate::topic::Partition;

/// Bytes read from a source partition at a time.
const READ_BYTES: usize = 64 * 1024;

/// What start-up found copied after a checkpoint: per source (topic, partition), the highest
/// source offset found in each log partition.
pub(crate) type Copied = HashMap<(String, u32), BTreeMap<u32, u64>>;

/// Copies appended as one batch when merging several sources.
const MERGE_FLUSH_RECORDS: usize = 1000;

/// One source partition being copied from.
struct Source {
    topic: String,
    partition: u32,
    handle: Arc<Partition>,
    /// Next offset to read.
    read_to: u64,
    /// Next offset whose copy is not yet made (or that the filter has not yet passed).
    copied_to: u64,
    end: u64,
    pending: VecDeque<Record>,
    /// At start-up: per log partition, the highest offset of this source already copied
    /// there (see [`Broker::recover_cursors`]).
    copied: Option<BTreeMap<u32, u64>>,
    /// Whether dead letters are copied from here: only when a pattern names the topic
    /// literally, so that two queues on `>` do not pass a poison record back and forth
    /// through each other's dead-letter queues.
    dead_letters: bool,
}

/// Copies waiting to be appended, by partition of the log.
struct Copies {
    builders: BTreeMap<u32, BatchBuilder>,
    partitions: u32,
    count: usize,
}

impl Copies {
    fn new(partitions: u32) -> Copies {
        Copies {
            builders: BTreeMap::new(),
            partitions: partitions.max(1),
            count: 0,
        }
    }

    /// Adds the copy of `record` when it passes the filter; keyed copies go to their key's
    /// partition of the log, unkeyed ones to the source's partition number, wrapped.
    fn add(&mut self, log: &SubscriptionLog, source: &Source, record: &Record) {
        if log.filter.as_ref().is_some_and(|f| !f.matches(record)) {
            return;
        }
        if !source.dead_letters && record.headers.iter().any(|(name, _)| name == DLQ_SOURCE) {
            return;
        }
        let target = match &record.key {
            Some(key) => partition_for_key(key, self.partitions),
            None => source.partition % self.partitions,
        };
        let already = source
            .copied
            .as_ref()
            .and_then(|copied| copied.get(&target))
            .is_some_and(|highest| record.offset <= *highest);
        if already {
            return;
        }
        let copy = source_copy(&source.topic, source.partition, record);
        self.builders
            .entry(target)
            .or_default()
            .push(record.timestamp, &copy);
        self.count += 1;
    }
}

impl Broker {
    /// Copies into `log` what is missing from source partitions, from each one's cursor to
    /// its end, those records passing the filter; returns the number of copies. Several
    /// sources are merged by record time (ties in the order given), so that history copied
    /// at creation or after a crash comes close to the order it was published in; an append
    /// passes the one partition it wrote to.
    pub(crate) fn copy_merged(
        &self,
        log: &SubscriptionLog,
        state: &mut CopyState,
        partitions: &[(String, u32)],
        copied: Option<&Copied>,
    ) -> Result<usize> {
        let mut sources = Vec::with_capacity(partitions.len());
        for (topic, partition) in partitions {
            let mut source = self.open_source(log, state, topic, *partition)?;
            source.copied = copied
                .and_then(|copied| copied.get(&(topic.clone(), *partition)))
                .cloned();
            if source.copied_to < source.end {
                sources.push(source);
            }
        }
        let target_partitions = self.topic(&log.topic)?.partition_count();
        let mut copied = 0;
        while !sources.is_empty() {
            let mut copies = Copies::new(target_partitions);
            while copies.count < MERGE_FLUSH_RECORDS {
                for source in sources.iter_mut().filter(|s| s.pending.is_empty()) {
                    self.refill(log, source)?;
                }
                let earliest = sources
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| s.pending.front().map(|r| (r.timestamp, i)))
                    .min();
                let Some((_, index)) = earliest else { break };
                let source = &mut sources[index];
                let Some(record) = source.pending.pop_front() else {
                    break;
                };
                source.copied_to = record.offset + 1;
                copies.add(log, source, &record);
            }
            let idle = copies.count == 0 && sources.iter().all(|s| s.pending.is_empty());
            copied += copies.count;
            self.flush(log, state, copies, &sources)?;
            if idle {
                break;
            }
        }
        Ok(copied)
    }

    fn open_source(
        &self,
        log: &SubscriptionLog,
        state: &CopyState,
        topic: &str,
        partition: u32,
    ) -> Result<Source> {
        let handle = self.partition_handle(topic, partition)?;
        let end = handle.log.end_offset();
        let stored = state
            .cursors
            .get(topic)
            .and_then(|p| p.get(&partition))
            .copied();
        // A partition never seen (a topic created after the subscription) is copied from
        // its start.
        let mut cursor = stored.unwrap_or_else(|| handle.log.start_offset());
        if cursor > end {
            tracing::warn!(
                subscription = %log.spec.name, topic, partition, cursor, end,
                "source partition is shorter than what was copied (lost on a crash?); \
                 copying from its end"
            );
            cursor = end;
        }
        Ok(Source {
            topic: topic.to_string(),
            partition,
            handle,
            read_to: cursor,
            copied_to: cursor,
            end,
            pending: VecDeque::new(),
            copied: None,
            dead_letters: log
                .source
                .patterns()
                .iter()
                .any(|pattern| pattern.is_literal() && pattern.as_str() == topic),
        })
    }

    /// Reads the source's next chunk into `pending`, when it has more below its end.
    fn refill(&self, log: &SubscriptionLog, source: &mut Source) -> Result<()> {
        let (topic, partition) = (source.topic.as_str(), source.partition);
        while source.pending.is_empty() && source.read_to < source.end {
            let read = match source.handle.log.read(source.read_to, READ_BYTES) {
                Ok(read) => read,
                Err(LogError::OffsetOutOfRange { log_start, .. }) if source.read_to < log_start => {
                    tracing::warn!(
                        subscription = %log.spec.name, topic, partition, from = source.read_to,
                        to = log_start, "records removed by retention before they were copied"
                    );
                    source.read_to = log_start;
                    source.copied_to = source.copied_to.max(log_start);
                    continue;
                }
                Err(err) => return Err(BrokerError::from_log(topic, partition, err)),
            };
            let batches = parse_batches(&read.batches)
                .map_err(|err| BrokerError::from_log(topic, partition, err.into()))?;
            let before = source.read_to;
            for record in batches.iter().flat_map(|batch| batch.records()) {
                if record.offset >= source.read_to && record.offset < source.end {
                    source.read_to = record.offset + 1;
                    source.pending.push_back(record);
                }
            }
            if source.read_to == before {
                break;
            }
        }
        Ok(())
    }

    /// Appends `copies` to the log, then moves the cursors of `sources` past what they
    /// contributed: a failed append leaves the cursors where they were.
    fn flush(
        &self,
        log: &SubscriptionLog,
        state: &mut CopyState,
        copies: Copies,
        sources: &[Source],
    ) -> Result<()> {
        for (target, builder) in copies.builders {
            self.append_unchecked(&log.topic, target, &builder.finish())?;
        }
        for source in sources {
            let cursor = state
                .cursors
                .entry(source.topic.clone())
                .or_default()
                .entry(source.partition)
                .or_insert(0);
            if *cursor != source.copied_to {
                *cursor = source.copied_to;
                state.dirty = true;
            }
        }
        Ok(())
    }

    /// Where copying into `log` stands after a crash: the checkpoint's cursors (every copy
    /// below them is on disk), and what reached the log after it, per source partition and
    /// log partition. The copies of one source partition into one log partition are in
    /// order and a crash cuts a log's tail, so each such stream holds a prefix: a record is
    /// copied if its offset is at most the highest one found in the partition it maps to.
    /// (With several log partitions, one source's copies past the checkpoint may have reached
    /// some partitions and not others: taking the highest offset over all would skip those.)
    pub(crate) fn recover_cursors(
        &self,
        log: &SubscriptionLog,
        checkpoint: Checkpoint,
    ) -> Result<(Cursors, Copied)> {
        let mut copied = Copied::new();
        let topic = self.topic(&log.topic)?;
        for partition in topic.partitions() {
            let start = partition.log.start_offset();
            let end = partition.log.end_offset();
            let from = checkpoint
                .log_ends
                .get(partition.id as usize)
                .copied()
                .unwrap_or(start);
            // A checkpoint past the end means the log lost synced data: scan all of it.
            let mut offset = if from > end { start } else { from.max(start) };
            while offset < end {
                let read = partition
                    .log
                    .read(offset, READ_BYTES)
                    .map_err(|err| BrokerError::from_log(&log.topic, partition.id, err))?;
                let batches = parse_batches(&read.batches)
                    .map_err(|err| BrokerError::from_log(&log.topic, partition.id, err.into()))?;
                let mut next = offset;
                for record in batches.iter().flat_map(|batch| batch.records()) {
                    if record.offset < offset {
                        continue;
                    }
                    next = record.offset + 1;
                    if let Some((topic, source_partition, source_offset)) = source_of(&record) {
                        let highest = copied
                            .entry((topic, source_partition))
                            .or_default()
                            .entry(partition.id)
                            .or_insert(source_offset);
                        *highest = (*highest).max(source_offset);
                    }
                }
                if next == offset {
                    break;
                }
                offset = next;
            }
        }
        // Sources deleted while the broker was down are forgotten.
        let mut cursors = checkpoint.cursors;
        cursors.retain(|topic, _| self.topic(topic).is_ok());
        Ok((cursors, copied))
    }
}

/// The copy of `record`: key, value, timestamp and headers kept, `sy-source` set.
fn source_copy(topic: &str, partition: u32, record: &Record) -> RecordBuf {
    let mut headers: Vec<(String, Bytes)> = record
        .headers
        .iter()
        .filter(|(name, _)| name != SOURCE_HEADER)
        .cloned()
        .collect();
    let source = format!("{topic}/{partition}/{}", record.offset);
    headers.push((SOURCE_HEADER.into(), Bytes::from(source)));
    RecordBuf {
        key: record.key.clone(),
        value: record.value.clone(),
        headers,
    }
}

/// The `(topic, partition, offset)` a copy names in its `sy-source` header.
pub(crate) fn source_of(record: &Record) -> Option<(String, u32, u64)> {
    let text = header_text(record, SOURCE_HEADER)?;
    let mut parts = text.rsplitn(3, '/');
    let offset = parts.next()?.parse().ok()?;
    let partition = parts.next()?.parse().ok()?;
    let topic = parts.next()?.to_string();
    Some((topic, partition, offset))
}
