//! The registry of ephemeral subscriptions, shared by every connection of a server.
//!
//! Ephemeral pub/sub keeps nothing on disk and nothing for absent subscribers: a record is
//! handed to the subscriptions that match it at the moment it is published, and forgotten.
//! The one promise is that a slow subscriber costs only itself. So every subscription has a
//! bounded buffer (a tokio channel of `buffer_records`, plus a byte bound), a publisher only
//! ever `try_send`s into it, and a record that does not fit is dropped *for that
//! subscription* and counted. Then it rings the subscriber's connection ([`Doorbell`], the
//! connection's [`crate::outbox::Outbox`]), which moves the buffer into push frames (with the
//! drop count) and, when its socket is idle, writes them at once, on the publisher's thread,
//! with no task hand-over in between. A publish therefore never waits on a subscriber, and
//! its cost is one filter check and one channel send per matching subscription, plus the
//! write when the subscriber's socket is idle.
//!
//! Matching: literal patterns (most subscriptions, and every request inbox) sit in a hash
//! map by subject, so a publish finds them in O(1); wildcard patterns sit in a list that
//! each publish scans. A subscription may be bound to a set of patterns (`a.A,a.*.B`): it has
//! an entry in the map for each of its literal patterns and one entry in the list if it has
//! any wildcard, and the scan skips a subscription that the map already produced for the
//! subject, so a record several of its patterns match still reaches it once. Two literal
//! patterns of one set never name the same subject (the set keeps repeats once), so the map
//! yields each subscription at most once as well. Measured in a release build, a scan costs
//! about 40 ns per wildcard subscription that does not match (`wildcard_scan_cost`, below),
//! so a server with thousands of wildcard subscriptions still publishes in tens of
//! microseconds; a token trie would pay off only well beyond that.
//!
//! A record is shared by all the subscriptions it goes to ([`Published`] behind an `Arc`):
//! delivering it to one more subscriber costs a reference count, not a copy.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};
use switchyard_broker::route::{Filter, Pattern, PatternSet};
use switchyard_log::Record;
use switchyard_protocol::{MessageWire, PublishRecordWire};

/// Records buffered for a subscription that asked for 0: a second of a busy subject's
/// traffic, about 1 MB of 100-byte records, so a subscriber's brief pause loses nothing.
pub const DEFAULT_BUFFER_RECORDS: u32 = 10_000;
/// Most records a subscription may ask to buffer; more is lowered to this. A subscriber
/// that must ride out longer stalls wants a durable subscription, whose backlog is on disk.
pub const MAX_BUFFER_RECORDS: u32 = 1_000_000;
/// Bytes a subscription may buffer per record of its `buffer_records`: the byte bound is
/// the record bound times this (10 MiB by default), so a subscriber that never reads costs
/// a bounded amount even when records are large. One record larger than the bound is still
/// taken into an empty buffer.
pub const BUFFER_BYTES_PER_RECORD: usize = 1024;
/// Largest byte bound of a subscription, whatever its record bound: what the largest record
/// buffer (1,000,000 records of 256 bytes) needs, and no more than one stalled subscriber
/// should be able to pin.
pub const MAX_BUFFER_BYTES: usize = 256 * 1024 * 1024;

/// One published record, shared by every subscription it is delivered to.
#[derive(Debug)]
pub struct Published {
    /// The record as pushes carry it.
    pub message: MessageWire,
    /// The same record as filters read it, made the first time a filter asks (most
    /// subscriptions have none, and then nothing is copied for them).
    record: OnceLock<Record>,
    offset: u64,
    /// Bytes it takes in a push; what the byte bound counts.
    pub size: usize,
}

impl Published {
    /// A record published to `subject` at `timestamp`; `offset` is its offset in the topic
    /// of the subject's name, or 0 when there is none.
    pub fn new(subject: &str, timestamp: i64, offset: u64, wire: PublishRecordWire) -> Published {
        let message = MessageWire {
            subject: subject.to_string(),
            timestamp,
            key: wire.key,
            value: wire.value,
            headers: wire.headers,
        };
        let size = message.encoded_len();
        Published {
            message,
            record: OnceLock::new(),
            offset,
            size,
        }
    }

    /// The record as filters read it.
    fn record(&self) -> &Record {
        self.record.get_or_init(|| Record {
            offset: self.offset,
            timestamp: self.message.timestamp,
            key: self.message.key.clone(),
            value: self.message.value.clone(),
            headers: self.message.headers.clone(),
        })
    }
}

/// State a subscription shares between its publishers and its connection's outbox.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes of the records in the buffer now.
    pub queued_bytes: AtomicUsize,
    /// Records dropped since the subscription began.
    pub dropped: AtomicU64,
}

/// Told that a subscription has records to push or a drop to report: its connection's
/// outbox. A publisher rings once per publish and subscription, after offering the records,
/// so a drop after the last record still gets reported.
pub trait Doorbell: Send + Sync {
    /// Subscription `id` of this connection has something to send.
    fn ring(&self, id: u32);
}

/// Subscriptions to ring once the records of some publishes are in their buffers.
#[derive(Default)]
pub struct Rings {
    pending: Vec<(Arc<dyn Doorbell>, u32)>,
}

impl Rings {
    fn add(&mut self, doorbell: &Arc<dyn Doorbell>, id: u32) {
        let known = (self.pending.iter()).any(|(d, i)| *i == id && Arc::ptr_eq(d, doorbell));
        if !known {
            self.pending.push((Arc::clone(doorbell), id));
        }
    }

    /// Rings every subscription added since the last call, once each. Call it outside any
    /// lock: a ring may write to the subscriber's socket.
    pub fn ring_all(&mut self) {
        for (doorbell, id) in self.pending.drain(..) {
            doorbell.ring(id);
        }
    }
}

/// A subscription's bounded buffer. A plain queue under a lock rather than a channel: its
/// reader never waits on it (the outbox is rung instead), and a publish of many records takes
/// the lock once for all of them.
#[derive(Debug)]
struct Buffer {
    queue: Mutex<Queue>,
}

#[derive(Debug)]
struct Queue {
    records: VecDeque<Arc<Published>>,
    /// Most records it holds.
    capacity: usize,
    /// The outlet is gone: the subscription is ending, take nothing more.
    closed: bool,
}

/// The reading end of a subscription's buffer, for its connection's outbox.
#[derive(Debug)]
pub struct Outlet {
    buffer: Arc<Buffer>,
    pub counters: Arc<Counters>,
}

impl Outlet {
    /// Moves the oldest records, up to about `max_bytes` of them (at least one, if any), to
    /// `into`; returns their bytes, already taken off `queued_bytes`.
    pub fn take(&self, max_bytes: usize, into: &mut Vec<Arc<Published>>) -> usize {
        let mut bytes = 0;
        {
            let mut queue = self.buffer.queue.lock();
            while bytes < max_bytes {
                let Some(published) = queue.records.pop_front() else {
                    break;
                };
                bytes += published.size;
                into.push(published);
            }
        }
        self.counters
            .queued_bytes
            .fetch_sub(bytes, Ordering::AcqRel);
        bytes
    }
}

impl Drop for Outlet {
    fn drop(&mut self) {
        let mut queue = self.buffer.queue.lock();
        queue.closed = true;
        queue.records.clear();
    }
}

/// One subscription as the registry sees it.
struct Subscriber {
    connection: u64,
    id: u32,
    /// The patterns without wildcards, each indexed by its subject.
    literals: Vec<Pattern>,
    /// The patterns with wildcards, tried by the scan.
    wildcards: Vec<Pattern>,
    filter: Option<Filter>,
    buffer: Arc<Buffer>,
    /// Most bytes of records in the buffer.
    max_bytes: usize,
    counters: Arc<Counters>,
    doorbell: Arc<dyn Doorbell>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("connection", &self.connection)
            .field("id", &self.id)
            .field("literals", &self.literals)
            .field("wildcards", &self.wildcards)
            .finish_non_exhaustive()
    }
}

impl Subscriber {
    /// Whether the wildcard scan should offer `subject` to this subscription: one of its
    /// wildcards matches and none of its literals named it already.
    fn scan_matches(&self, subject: &str) -> bool {
        self.wildcards
            .iter()
            .any(|pattern| pattern.matches(subject))
            && !self
                .literals
                .iter()
                .any(|pattern| pattern.as_str() == subject)
    }

    fn is(&self, connection: u64, id: u32) -> bool {
        self.connection == connection && self.id == id
    }

    /// Puts in the buffer those of `records` the filter admits, in order, dropping and
    /// counting what does not fit. Returns whether any record was taken, and whether any was
    /// taken or dropped (the subscriber then has something to be told).
    fn offer(&self, records: &[Arc<Published>]) -> (bool, bool) {
        let (mut took, mut offered) = (false, false);
        let mut queue = self.buffer.queue.lock();
        if queue.closed {
            return (false, false);
        }
        for published in records {
            if let Some(filter) = &self.filter {
                if !filter.matches(published.record()) {
                    continue;
                }
            }
            offered = true;
            let size = published.size;
            let queued = self.counters.queued_bytes.fetch_add(size, Ordering::AcqRel);
            let too_many_bytes = queued > 0 && queued + size > self.max_bytes;
            if too_many_bytes || queue.records.len() >= queue.capacity {
                self.counters.queued_bytes.fetch_sub(size, Ordering::AcqRel);
                self.counters.dropped.fetch_add(1, Ordering::AcqRel);
                continue;
            }
            queue.records.push_back(Arc::clone(published));
            took = true;
        }
        (took, offered)
    }
}

#[derive(Debug, Default)]
struct Index {
    /// Patterns without wildcards, by the one subject they match.
    literal: HashMap<String, Vec<Arc<Subscriber>>>,
    /// Subscriptions with at least one pattern with `*` or `>`, scanned by every publish.
    wildcard: Vec<Arc<Subscriber>>,
    /// Subscriptions, however many entries each has.
    count: usize,
}

/// Every ephemeral subscription of the server.
#[derive(Debug, Default)]
pub struct Registry {
    index: RwLock<Index>,
    connections: AtomicU64,
    /// Picks the partition of unkeyed records published to a topic, round robin.
    sticky: AtomicU64,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// A number no other connection of this server has, naming a connection's
    /// subscriptions.
    pub fn next_connection(&self) -> u64 {
        self.connections.fetch_add(1, Ordering::Relaxed)
    }

    /// The next round-robin pick for unkeyed records published to a topic.
    pub fn next_sticky(&self) -> u64 {
        self.sticky.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds a subscription to every subject any pattern of `patterns` matches; the caller
    /// has checked that `id` is free on `connection`. Its buffer holds `buffer_records` (0:
    /// the default, capped at the maximum); `doorbell` is rung when it has something to send.
    pub fn subscribe(
        &self,
        connection: u64,
        id: u32,
        patterns: &PatternSet,
        filter: Option<Filter>,
        buffer_records: u32,
        doorbell: Arc<dyn Doorbell>,
    ) -> Outlet {
        let capacity = match buffer_records {
            0 => DEFAULT_BUFFER_RECORDS,
            asked => asked.min(MAX_BUFFER_RECORDS),
        };
        let buffer = Arc::new(Buffer {
            queue: Mutex::new(Queue {
                records: VecDeque::new(),
                capacity: capacity as usize,
                closed: false,
            }),
        });
        let counters = Arc::new(Counters::default());
        let (literals, wildcards): (Vec<Pattern>, Vec<Pattern>) = (patterns.patterns().iter())
            .cloned()
            .partition(Pattern::is_literal);
        let subscriber = Arc::new(Subscriber {
            connection,
            id,
            literals,
            wildcards,
            filter,
            buffer: Arc::clone(&buffer),
            max_bytes: (capacity as usize * BUFFER_BYTES_PER_RECORD).min(MAX_BUFFER_BYTES),
            counters: Arc::clone(&counters),
            doorbell,
        });
        let mut index = self.index.write();
        index.count += 1;
        for literal in &subscriber.literals {
            let subject = literal.as_str().to_string();
            let entry = index.literal.entry(subject).or_default();
            entry.push(Arc::clone(&subscriber));
        }
        if !subscriber.wildcards.is_empty() {
            index.wildcard.push(subscriber);
        }
        Outlet { buffer, counters }
    }

    /// Removes the subscription `id` of `connection`, made with `patterns`, from every entry
    /// it has; `false` when there was none. Publishes no longer reach it; its connection
    /// detaches (and so closes) its buffer.
    pub fn unsubscribe(&self, connection: u64, id: u32, patterns: &PatternSet) -> bool {
        let mut index = self.index.write();
        let mut found = false;
        for pattern in patterns.patterns() {
            if pattern.is_literal() {
                let subject = pattern.as_str();
                let Some(list) = index.literal.get_mut(subject) else {
                    continue;
                };
                let before = list.len();
                list.retain(|s| !s.is(connection, id));
                found |= list.len() < before;
                if list.is_empty() {
                    index.literal.remove(subject);
                }
            }
        }
        if patterns.patterns().iter().any(|p| !p.is_literal()) {
            let before = index.wildcard.len();
            index.wildcard.retain(|s| !s.is(connection, id));
            found |= index.wildcard.len() < before;
        }
        if found {
            index.count -= 1;
        }
        found
    }

    /// Offers `records`, all published to `subject`, to every matching subscription, in
    /// order, then rings the connections of those that took or dropped any; never waits.
    /// Returns how many subscriptions took at least one of them.
    pub fn publish(&self, subject: &str, records: &[Arc<Published>]) -> u32 {
        let mut rings = Rings::default();
        let reached = self.publish_deferred(subject, records, &mut rings);
        rings.ring_all();
        reached
    }

    /// Like [`Registry::publish`], but adds the rings to `rings` instead: a connection that
    /// handles several publishes of one read rings each subscriber once, at the end, so that
    /// their records go out in one write.
    pub fn publish_deferred(
        &self,
        subject: &str,
        records: &[Arc<Published>],
        rings: &mut Rings,
    ) -> u32 {
        let index = self.index.read();
        let literal = index.literal.get(subject).into_iter().flatten();
        let wildcard = index.wildcard.iter().filter(|s| s.scan_matches(subject));
        let mut reached = 0u32;
        for subscriber in literal.chain(wildcard) {
            let (took, offered) = subscriber.offer(records);
            reached = reached.saturating_add(u32::from(took));
            if offered {
                rings.add(&subscriber.doorbell, subscriber.id);
            }
        }
        reached
    }

    /// Subscriptions in the registry.
    pub fn len(&self) -> usize {
        self.index.read().count
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn record(subject: &str, value: &str) -> Arc<Published> {
        let wire = PublishRecordWire {
            key: Some(Bytes::from_static(b"k1")),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers: vec![("region".into(), Bytes::from_static(b"eu"))],
        };
        Arc::new(Published::new(subject, 0, 0, wire))
    }

    /// A connection that is never told anything; the tests read the buffers themselves.
    struct Deaf;

    impl Doorbell for Deaf {
        fn ring(&self, _id: u32) {}
    }

    fn deaf() -> Arc<dyn Doorbell> {
        Arc::new(Deaf)
    }

    fn set(text: &str) -> PatternSet {
        PatternSet::parse(text).expect("valid patterns")
    }

    fn subscribe(registry: &Registry, id: u32, pattern: &str, filter: Option<&str>) -> Outlet {
        let filter = filter.map(|text| Filter::parse(text).expect("valid filter"));
        registry.subscribe(1, id, &set(pattern), filter, 4, deaf())
    }

    fn drain(outlet: &mut Outlet) -> Vec<String> {
        let mut taken = Vec::new();
        outlet.take(usize::MAX, &mut taken);
        (taken.iter()).map(|p| p.message.subject.clone()).collect()
    }

    #[test]
    fn literal_and_wildcard_patterns_each_get_what_matches_in_order() {
        let registry = Registry::new();
        let mut all = subscribe(&registry, 1, "a.>", None);
        let mut middle = subscribe(&registry, 2, "a.*.B", None);
        let mut exact = subscribe(&registry, 3, "a.A", None);
        for subject in ["a.A", "a.B", "a.Z.B", "a.Z.C"] {
            registry.publish(subject, &[record(subject, "v")]);
        }
        assert_eq!(drain(&mut all), ["a.A", "a.B", "a.Z.B", "a.Z.C"]);
        assert_eq!(drain(&mut middle), ["a.Z.B"]);
        assert_eq!(drain(&mut exact), ["a.A"]);
        assert_eq!(registry.publish("b", &[record("b", "v")]), 0);
    }

    #[test]
    fn a_set_of_patterns_gets_each_record_once_in_publish_order() {
        let registry = Registry::new();
        let mut both = subscribe(&registry, 1, "a.A,a.*.B", None);
        // Every record here is matched by two or three members of the set.
        let overlapping = set("a.A,a.>,a.*,a.A.B,a.*.B");
        let mut overlapping = registry.subscribe(1, 2, &overlapping, None, 100, deaf());
        let subjects = ["a.A", "a.B", "a.Z.B", "a.Z.C", "a.A.B"];
        let mut reached = Vec::new();
        for subject in subjects {
            reached.push(registry.publish(subject, &[record(subject, "v")]));
        }
        assert_eq!(drain(&mut both), ["a.A", "a.Z.B", "a.A.B"]);
        assert_eq!(drain(&mut overlapping), subjects);
        assert_eq!(
            reached,
            [2, 1, 2, 1, 2],
            "a subscription counts once per publish"
        );
        assert_eq!(overlapping.counters.dropped.load(Ordering::Acquire), 0);
        assert_eq!(registry.len(), 2);
    }

    #[test]
    fn a_batch_reaches_a_set_once_per_record_in_order() {
        let registry = Registry::new();
        let outlet = subscribe(&registry, 1, "s,s.>,*", None);
        let batch: Vec<_> = ["1", "2", "3"].iter().map(|v| record("s", v)).collect();
        assert_eq!(registry.publish("s", &batch), 1);
        let mut taken = Vec::new();
        outlet.take(usize::MAX, &mut taken);
        let values: Vec<_> = (taken.iter())
            .map(|p| p.message.value.clone().expect("a value"))
            .collect();
        assert_eq!(values, ["1", "2", "3"]);
    }

    #[test]
    fn unsubscribing_a_set_removes_every_entry() {
        let registry = Registry::new();
        let patterns = set("x,y,x.*,z.>");
        let _gone = registry.subscribe(1, 7, &patterns, None, 4, deaf());
        let mut kept = subscribe(&registry, 8, "y", None);
        assert_eq!(registry.len(), 2);
        assert!(registry.unsubscribe(1, 7, &patterns));
        assert!(!registry.unsubscribe(1, 7, &patterns), "already gone");
        assert_eq!(registry.len(), 1);
        for subject in ["x", "y", "x.a", "z.a.b"] {
            let expected = u32::from(subject == "y");
            assert_eq!(registry.publish(subject, &[record(subject, "v")]), expected);
        }
        assert_eq!(drain(&mut kept), ["y"]);
        let index = registry.index.read();
        assert_eq!(index.literal.len(), 1, "only `y` is left in the map");
        assert!(index.wildcard.is_empty());
    }

    #[test]
    fn a_full_buffer_drops_and_counts_without_blocking() {
        let registry = Registry::new();
        let mut slow = subscribe(&registry, 1, "s", None);
        let mut other = registry.subscribe(2, 1, &set("s"), None, 100, deaf());
        let batch: Vec<_> = (0..10).map(|n| record("s", &n.to_string())).collect();
        assert_eq!(registry.publish("s", &batch), 2);
        assert_eq!(drain(&mut slow).len(), 4);
        assert_eq!(slow.counters.dropped.load(Ordering::Acquire), 6);
        assert_eq!(drain(&mut other).len(), 10);
        assert_eq!(other.counters.dropped.load(Ordering::Acquire), 0);
    }

    #[test]
    fn filters_pick_records_and_a_subscription_they_refuse_is_not_reached() {
        let registry = Registry::new();
        let mut eu = subscribe(&registry, 1, "orders.*", Some("region = eu"));
        let mut us = subscribe(&registry, 2, "orders.*", Some("region = us"));
        assert_eq!(registry.publish("orders.x", &[record("orders.x", "v")]), 1);
        assert_eq!(drain(&mut eu).len(), 1);
        assert!(drain(&mut us).is_empty());
    }

    #[test]
    fn unsubscribe_removes_exactly_one_subscription() {
        let registry = Registry::new();
        let (literal, wildcard) = (set("x"), set("x.>"));
        let _a = subscribe(&registry, 1, "x", None);
        let _b = subscribe(&registry, 2, "x", None);
        let _c = subscribe(&registry, 3, "x.>", None);
        assert_eq!(registry.len(), 3);
        assert!(registry.unsubscribe(1, 1, &literal));
        assert!(!registry.unsubscribe(1, 1, &literal), "already gone");
        assert!(registry.unsubscribe(1, 3, &wildcard));
        assert_eq!(registry.len(), 1);
        assert_eq!(registry.publish("x", &[record("x", "v")]), 1);
        assert!(registry.unsubscribe(1, 2, &literal));
        assert!(registry.is_empty());
    }

    #[test]
    fn the_byte_bound_drops_what_the_record_count_would_take() {
        let registry = Registry::new();
        let mut outlet = registry.subscribe(1, 1, &set("big"), None, 100, deaf());
        let large = "x".repeat(100 * BUFFER_BYTES_PER_RECORD / 2);
        let batch: Vec<_> = (0..3).map(|_| record("big", &large)).collect();
        registry.publish("big", &batch);
        assert_eq!(
            drain(&mut outlet).len(),
            1,
            "a second half-bound record does not fit"
        );
        assert_eq!(outlet.counters.dropped.load(Ordering::Acquire), 2);
    }

    /// Cost of scanning wildcard subscriptions that do not match; run with
    /// `cargo test --release -p switchyard-server wildcard_scan_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn wildcard_scan_cost() {
        let registry = Registry::new();
        let mut outlets = Vec::new();
        for n in 0..10_000 {
            let patterns = set(&format!("svc.{n}.*.>"));
            outlets.push(registry.subscribe(1, n, &patterns, None, 1, deaf()));
        }
        let one = [record("svc.none.a.b", "v")];
        let rounds = 1_000;
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            assert_eq!(registry.publish("svc.none.a.b", &one), 0);
        }
        let per_scan = start.elapsed().as_nanos() / (rounds * outlets.len() as u128);
        println!("{per_scan} ns per non-matching wildcard subscription");
    }
}
