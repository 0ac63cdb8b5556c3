//! The state of one queue subscription: which records are ready, leased, waiting or held,
//! and what each delivery, ack, nack and expiry does to them.
//!
//! Pure and synchronous: no I/O, no clock of its own, no threads. The service around it reads
//! records from the log and admits them here in offset order, asks for deliveries, and writes
//! every change to the queue's journal, so that replaying the journal rebuilds this state.
//!
//! Every admitted record is in exactly one stage:
//! - `Ready`: may be delivered now;
//! - `Leased`: delivered, invisible until its lease deadline;
//! - `Waiting`: not deliverable before a due time (a delay, or a retry backoff);
//! - `Held`: in an ordered queue, behind another record of its key;
//! - `Dying`: to be moved to the dead-letter queue (or dropped) by the service.
//!
//! Records before a partition's cursor that are not admitted entries are done.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use crate::queue::config::{ExpiryAction, QueueConfig};

/// A record's place: partition and offset.
pub type Pos = (u32, u64);

/// What the queue needs to know of a record, taken from the log when it is admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    pub timestamp: i64,
    pub size: u32,
    /// Hash of the key, for ordering by key; `None` for a record without a key.
    pub key_hash: Option<u64>,
    pub priority: u8,
    /// Not deliverable before this time (ms since the epoch).
    pub due_ms: i64,
    pub expires_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Lease {
    consumer: Arc<str>,
    nonce: u64,
    deadline_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Ready,
    Leased(Lease),
    Waiting(i64),
    Held,
    Dying,
}

#[derive(Debug, Clone)]
struct Entry {
    meta: RecordMeta,
    deliveries: u32,
    stage: Stage,
    last_error: Option<String>,
}

/// Why a record leaves the queue without an ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeathCause {
    MaxDeliveries,
    Expired,
}

/// A record the service must dead-letter (or drop, per `action`) and then `complete`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doomed {
    pub pos: Pos,
    pub cause: DeathCause,
    pub deliveries: u32,
    pub last_error: Option<String>,
    pub drop: bool,
}

/// How a record left the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    Acked,
    DeadLettered,
    Expired,
    Dropped,
}

/// One delivery handed to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lent {
    pub pos: Pos,
    pub token: String,
    pub deliveries: u32,
}

/// Per-consumer limits on what it may hold at once; 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Prefetch {
    pub records: u32,
    pub bytes: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("lease token `{0}` is not a token this broker issued")]
    Malformed(String),
    #[error(
        "the lease of partition {} offset {} has expired or was superseded; the record was or \
         will be delivered again, to be acked by its new holder", .0.0, .0.1
    )]
    Expired(Pos),
}

/// Counts of records by stage, for stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StageCounts {
    pub ready: u64,
    pub in_flight: u64,
    pub delayed: u64,
    pub held: u64,
    pub oldest_ready_ms: Option<i64>,
}

/// Totals since the queue was opened (not persisted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub delivered: u64,
    pub acked: u64,
    pub dead_lettered: u64,
    pub expired: u64,
    pub dropped: u64,
}

type ReadyKey = (Reverse<u8>, i64, Pos);

/// Timer kinds, ordered so that within one millisecond dues come before lease expiries.
const TIMER_DUE: u8 = 0;
const TIMER_LEASE: u8 = 1;
const TIMER_EXPIRE: u8 = 2;

/// The state machine of one queue.
#[derive(Debug)]
pub struct QueueState {
    config: QueueConfig,
    cursors: Vec<u64>,
    entries: BTreeMap<Pos, Entry>,
    ready: BTreeSet<ReadyKey>,
    timers: BTreeSet<(i64, u8, Pos, u64)>,
    /// Ordered queues: per key, the record allowed out (the head) and those behind it.
    keys: HashMap<u64, (Pos, VecDeque<Pos>)>,
    usage: HashMap<Arc<str>, (u32, u64)>,
    bytes: u64,
    rng: u64,
    pub totals: Totals,
}

impl QueueState {
    pub fn new(config: QueueConfig, partitions: u32, seed: u64) -> Self {
        QueueState {
            config,
            cursors: vec![0; partitions as usize],
            entries: BTreeMap::new(),
            ready: BTreeSet::new(),
            timers: BTreeSet::new(),
            keys: HashMap::new(),
            usage: HashMap::new(),
            bytes: 0,
            rng: seed | 1,
            totals: Totals::default(),
        }
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: QueueConfig) {
        self.config = config;
    }

    /// Next offset of `partition` to admit.
    pub fn cursor(&self, partition: u32) -> u64 {
        self.cursors.get(partition as usize).copied().unwrap_or(0)
    }

    /// Moves a cursor forward (never back), e.g. over records the log no longer has.
    pub fn advance_cursor(&mut self, partition: u32, offset: u64) {
        if let Some(cursor) = self.cursors.get_mut(partition as usize) {
            *cursor = (*cursor).max(offset);
        }
    }

    pub fn grow_partitions(&mut self, partitions: u32) {
        if partitions as usize > self.cursors.len() {
            self.cursors.resize(partitions as usize, 0);
        }
    }

    pub fn partitions(&self) -> u32 {
        self.cursors.len() as u32
    }

    /// Records admitted and not yet done.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Payload bytes of the admitted records not yet done.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Lowest offset of `partition` that is not done: what retention must keep.
    pub fn floor(&self, partition: u32) -> u64 {
        let first = self
            .entries
            .range((partition, 0)..=(partition, u64::MAX))
            .next();
        first.map_or(self.cursor(partition), |(pos, _)| pos.1)
    }

    /// Admits the record at `pos`, the next one of its partition, with `deliveries` earlier
    /// deliveries (non-zero only when restoring from the journal).
    pub fn admit(&mut self, pos: Pos, meta: RecordMeta, deliveries: u32, now: i64) {
        self.advance_cursor(pos.0, pos.1 + 1);
        if self.entries.contains_key(&pos) {
            return;
        }
        self.bytes += u64::from(meta.size);
        let held = match (self.config.ordered_by_key, meta.key_hash) {
            (true, Some(hash)) => match self.keys.get_mut(&hash) {
                Some((_, behind)) => {
                    behind.push_back(pos);
                    true
                }
                None => {
                    self.keys.insert(hash, (pos, VecDeque::new()));
                    false
                }
            },
            _ => false,
        };
        let entry = Entry {
            meta,
            deliveries,
            stage: Stage::Held,
            last_error: None,
        };
        self.entries.insert(pos, entry);
        if let Some(expires) = meta.expires_ms {
            self.timers.insert((expires, TIMER_EXPIRE, pos, 0));
        }
        if !held {
            self.schedule(pos, meta.due_ms, now);
        }
    }

    /// Makes `pos` ready, or waiting until `due`. A record that has had all its deliveries
    /// (restored after a crash that ended its last lease, or put back by `retry_later`) is
    /// never made ready: it waits, and its due timer dooms it.
    fn schedule(&mut self, pos: Pos, due: i64, now: i64) {
        let max_deliveries = self.config.max_deliveries;
        let Some(entry) = self.entries.get_mut(&pos) else {
            return;
        };
        let spent = entry.deliveries >= max_deliveries;
        if spent || due > now {
            let due = due.max(now);
            entry.stage = Stage::Waiting(due);
            self.timers.insert((due, TIMER_DUE, pos, 0));
        } else {
            entry.stage = Stage::Ready;
            self.ready
                .insert((Reverse(entry.meta.priority), entry.meta.timestamp, pos));
        }
    }

    /// Fires every timer due by `now`: waiting records become ready, expired leases are
    /// released, expired records die. Returns the records the service must dead-letter or drop.
    pub fn tick(&mut self, now: i64) -> Vec<Doomed> {
        let mut doomed = Vec::new();
        while let Some(&first) = self.timers.first() {
            let (when, kind, pos, nonce) = first;
            if when > now {
                break;
            }
            self.timers.remove(&first);
            let Some(entry) = self.entries.get(&pos) else {
                continue;
            };
            match (kind, &entry.stage) {
                (TIMER_DUE, Stage::Waiting(due)) if *due == when => {
                    // A record whose time-to-live ran out while it waited (for a retry, or
                    // for room in a full dead-letter queue) expires rather than goes out.
                    if entry.meta.expires_ms.is_some_and(|expires| expires <= now) {
                        doomed.push(self.doom(pos, DeathCause::Expired));
                    } else if entry.deliveries >= self.config.max_deliveries {
                        doomed.push(self.doom(pos, DeathCause::MaxDeliveries));
                    } else {
                        self.schedule(pos, when, now);
                    }
                }
                // An extended lease left its earlier timer behind: only the current one counts.
                (TIMER_LEASE, Stage::Leased(lease))
                    if lease.nonce == nonce && lease.deadline_ms == when =>
                {
                    if let Some(dead) = self.release(pos, None, None, now) {
                        doomed.push(dead);
                    }
                }
                (TIMER_EXPIRE, stage) if !matches!(stage, Stage::Leased(_) | Stage::Dying) => {
                    doomed.push(self.doom(pos, DeathCause::Expired));
                }
                (TIMER_EXPIRE, Stage::Leased(lease)) => {
                    // Expire once the current holder's lease ends, not under its hands.
                    let retry = (lease.deadline_ms.max(now + 1), TIMER_EXPIRE, pos, 0);
                    self.timers.insert(retry);
                }
                _ => {}
            }
        }
        doomed
    }

    /// Earliest pending timer, so the service knows when to tick next.
    pub fn next_timer(&self) -> Option<i64> {
        self.timers.first().map(|timer| timer.0)
    }

    fn doom(&mut self, pos: Pos, cause: DeathCause) -> Doomed {
        self.unready(pos);
        let drop = self.config.dead_letter.is_none()
            || (cause == DeathCause::Expired && self.config.on_expiry == ExpiryAction::Drop);
        let entry = self
            .entries
            .get_mut(&pos)
            .expect("doomed records are entries");
        entry.stage = Stage::Dying;
        Doomed {
            pos,
            cause,
            deliveries: entry.deliveries,
            last_error: entry.last_error.clone(),
            drop,
        }
    }

    fn unready(&mut self, pos: Pos) {
        if let Some(entry) = self.entries.get(&pos) {
            if entry.stage == Stage::Ready {
                self.ready
                    .remove(&(Reverse(entry.meta.priority), entry.meta.timestamp, pos));
            }
            if let Stage::Leased(lease) = &entry.stage {
                let consumer = Arc::clone(&lease.consumer);
                self.release_usage(&consumer, entry.meta.size);
            }
        }
    }

    /// Leases up to `max` ready records to `consumer` for `visibility_ms`, highest priority
    /// and oldest first, within the consumer's prefetch limits.
    pub fn lease(
        &mut self,
        consumer: &str,
        max: usize,
        visibility_ms: u64,
        prefetch: Prefetch,
        now: i64,
    ) -> Vec<Lent> {
        self.lease_where(consumer, max, visibility_ms, prefetch, now, |_| true)
    }

    /// Like [`QueueState::lease`], but only ready records for which `wanted` holds.
    pub fn lease_where(
        &mut self,
        consumer: &str,
        max: usize,
        visibility_ms: u64,
        prefetch: Prefetch,
        now: i64,
        wanted: impl Fn(Pos) -> bool,
    ) -> Vec<Lent> {
        let consumer: Arc<str> = Arc::from(consumer);
        let mut lent = Vec::new();
        let mut skipped = Vec::new();
        while lent.len() < max {
            let (held, held_bytes) = self.usage.get(&consumer).copied().unwrap_or((0, 0));
            if prefetch.records > 0 && held >= prefetch.records {
                break;
            }
            let Some(key) = self.ready.pop_first() else {
                break;
            };
            let pos = key.2;
            if !wanted(pos) {
                skipped.push(key);
                continue;
            }
            let size = self.entries.get(&pos).map_or(0, |entry| entry.meta.size);
            if prefetch.bytes > 0 && held > 0 && held_bytes + u64::from(size) > prefetch.bytes {
                self.ready.insert(key);
                break;
            }
            let nonce = self.next_random();
            let deadline_ms = now.saturating_add(visibility_ms as i64);
            let entry = self
                .entries
                .get_mut(&pos)
                .expect("ready records are entries");
            entry.deliveries += 1;
            entry.stage = Stage::Leased(Lease {
                consumer: Arc::clone(&consumer),
                nonce,
                deadline_ms,
            });
            let deliveries = entry.deliveries;
            self.timers.insert((deadline_ms, TIMER_LEASE, pos, nonce));
            let usage = self.usage.entry(Arc::clone(&consumer)).or_default();
            usage.0 += 1;
            usage.1 += u64::from(size);
            self.totals.delivered += 1;
            lent.push(Lent {
                pos,
                token: token(pos, deliveries, nonce),
                deliveries,
            });
        }
        self.ready.extend(skipped);
        lent
    }

    /// Checks a token against the current lease of its record.
    pub fn check(&self, token: &str, now: i64) -> Result<Pos, TokenError> {
        let (pos, deliveries, nonce) =
            parse_token(token).ok_or_else(|| TokenError::Malformed(token.to_string()))?;
        let entry = self.entries.get(&pos).ok_or(TokenError::Expired(pos))?;
        match &entry.stage {
            Stage::Leased(lease)
                if lease.nonce == nonce
                    && entry.deliveries == deliveries
                    && lease.deadline_ms > now =>
            {
                Ok(pos)
            }
            _ => Err(TokenError::Expired(pos)),
        }
    }

    /// Acks a delivery: the record is done.
    pub fn ack(&mut self, token: &str, now: i64) -> Result<Pos, TokenError> {
        let pos = self.check(token, now)?;
        self.complete(pos, Completion::Acked, now);
        Ok(pos)
    }

    /// Gives a delivery back: deliverable again after `delay_ms` (or the retry backoff), or
    /// dead-lettered when it has had its deliveries. Returns the record if it must die.
    pub fn nack(
        &mut self,
        token: &str,
        delay_ms: Option<u64>,
        error: Option<String>,
        now: i64,
    ) -> Result<(Pos, Option<Doomed>), TokenError> {
        let pos = self.check(token, now)?;
        Ok((pos, self.release(pos, delay_ms, error, now)))
    }

    /// Moves a lease's deadline to `now + visibility_ms`.
    pub fn extend(&mut self, token: &str, visibility_ms: u64, now: i64) -> Result<Pos, TokenError> {
        let pos = self.check(token, now)?;
        let entry = self
            .entries
            .get_mut(&pos)
            .expect("checked tokens name entries");
        if let Stage::Leased(lease) = &mut entry.stage {
            lease.deadline_ms = now.saturating_add(visibility_ms as i64);
            self.timers
                .insert((lease.deadline_ms, TIMER_LEASE, pos, lease.nonce));
        }
        Ok(pos)
    }

    fn release(
        &mut self,
        pos: Pos,
        delay_ms: Option<u64>,
        error: Option<String>,
        now: i64,
    ) -> Option<Doomed> {
        self.unready(pos);
        let unit = self.next_unit();
        let entry = self.entries.get_mut(&pos)?;
        entry.stage = Stage::Held;
        if error.is_some() {
            entry.last_error = error;
        }
        if entry.deliveries >= self.config.max_deliveries {
            return Some(self.doom(pos, DeathCause::MaxDeliveries));
        }
        let delay = delay_ms.unwrap_or_else(|| self.config.retry.delay_ms(entry.deliveries, unit));
        self.schedule(pos, now.saturating_add(delay as i64), now);
        None
    }

    /// Puts a dying record back to wait (its dead-letter queue refused it for now).
    pub fn retry_later(&mut self, pos: Pos, delay_ms: u64, now: i64) {
        if let Some(entry) = self.entries.get_mut(&pos) {
            entry.stage = Stage::Held;
            self.schedule(pos, now + delay_ms.max(1) as i64, now);
        }
    }

    /// Removes a record that is done and lets the next record of its key go.
    pub fn complete(&mut self, pos: Pos, how: Completion, now: i64) {
        self.unready(pos);
        let Some(entry) = self.entries.remove(&pos) else {
            return;
        };
        self.bytes -= u64::from(entry.meta.size).min(self.bytes);
        match how {
            Completion::Acked => self.totals.acked += 1,
            Completion::DeadLettered => self.totals.dead_lettered += 1,
            Completion::Expired => self.totals.expired += 1,
            Completion::Dropped => self.totals.dropped += 1,
        }
        let Some(hash) = entry.meta.key_hash.filter(|_| self.config.ordered_by_key) else {
            return;
        };
        let Some((head, behind)) = self.keys.get_mut(&hash) else {
            return;
        };
        if *head != pos {
            // A held record finished early (it expired): just take it out of the line.
            behind.retain(|queued| *queued != pos);
            return;
        }
        match behind.pop_front() {
            Some(next) => {
                *head = next;
                let due = self.entries.get(&next).map_or(0, |e| e.meta.due_ms);
                self.schedule(next, due, now);
            }
            None => {
                self.keys.remove(&hash);
            }
        }
    }

    /// The oldest ready record, for `drop-oldest` overflow.
    pub fn oldest_ready(&self) -> Option<Pos> {
        self.ready
            .iter()
            .min_by_key(|key| (key.1, key.2))
            .map(|key| key.2)
    }

    /// Counts by stage; `now` decides what counts as delayed.
    pub fn counts(&self, now: i64) -> StageCounts {
        let mut counts = StageCounts::default();
        for entry in self.entries.values() {
            match entry.stage {
                Stage::Ready => {
                    counts.ready += 1;
                    let age = now - entry.meta.timestamp;
                    counts.oldest_ready_ms =
                        Some(counts.oldest_ready_ms.map_or(age, |o| o.max(age)));
                }
                Stage::Leased(_) => counts.in_flight += 1,
                Stage::Waiting(_) => counts.delayed += 1,
                Stage::Held | Stage::Dying => counts.held += 1,
            }
        }
        counts
    }

    /// Records and bytes each consumer holds now.
    pub fn in_flight_of(&self, consumer: &str) -> (u32, u64) {
        self.usage.get(consumer).copied().unwrap_or((0, 0))
    }

    /// Pending records of `partition` below `offset`.
    pub fn pending_below(&self, partition: u32, offset: u64) -> Vec<Pos> {
        self.entries
            .range((partition, 0)..(partition, offset))
            .map(|(pos, _)| *pos)
            .collect()
    }

    /// Every pending record with its metadata and deliveries, for a journal snapshot.
    /// The first `max` records in the queue by position, with their delivery counts, leased
    /// or not; not those on their way to the dead-letter queue.
    pub fn pending(&self, max: usize) -> Vec<(Pos, u32)> {
        self.entries
            .iter()
            .filter(|(_, entry)| entry.stage != Stage::Dying)
            .take(max)
            .map(|(pos, entry)| (*pos, entry.deliveries))
            .collect()
    }

    /// The last reason given for each pending record a consumer gave back.
    pub fn snapshot_errors(&self) -> BTreeMap<Pos, String> {
        self.entries
            .iter()
            .filter_map(|(pos, entry)| Some((*pos, entry.last_error.clone()?)))
            .collect()
    }

    /// Restores the reason a consumer gave when it last gave the record back.
    pub fn set_last_error(&mut self, pos: Pos, error: String) {
        if let Some(entry) = self.entries.get_mut(&pos) {
            entry.last_error = Some(error);
        }
    }

    pub fn snapshot_entries(&self) -> BTreeMap<Pos, (RecordMeta, u32)> {
        self.entries
            .iter()
            .map(|(pos, entry)| (*pos, (entry.meta, entry.deliveries)))
            .collect()
    }

    /// Deliveries so far of a record, if it is in the queue.
    pub fn deliveries(&self, pos: Pos) -> Option<u32> {
        self.entries.get(&pos).map(|entry| entry.deliveries)
    }

    fn release_usage(&mut self, consumer: &Arc<str>, size: u32) {
        if let Some(usage) = self.usage.get_mut(consumer) {
            usage.0 = usage.0.saturating_sub(1);
            usage.1 = usage.1.saturating_sub(u64::from(size));
            if usage.0 == 0 {
                self.usage.remove(consumer);
            }
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: tokens need to be unguessable by accident, not by an attacker.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn next_unit(&mut self) -> f64 {
        (self.next_random() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A lease token: `partition.offset.delivery.nonce`, all but the nonce in decimal.
pub fn token(pos: Pos, deliveries: u32, nonce: u64) -> String {
    format!("{}.{}.{}.{nonce:016x}", pos.0, pos.1, deliveries)
}

/// The parts of a lease token, or `None` for something that is not one.
pub fn parse_token(token: &str) -> Option<(Pos, u32, u64)> {
    let mut parts = token.split('.');
    let partition = parts.next()?.parse().ok()?;
    let offset = parts.next()?.parse().ok()?;
    let deliveries = parts.next()?.parse().ok()?;
    let nonce = u64::from_str_radix(parts.next()?, 16).ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some(((partition, offset), deliveries, nonce))
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
