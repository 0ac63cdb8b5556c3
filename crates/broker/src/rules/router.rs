//! The router: reads the source topics of every rule like a subscription, one cursor per
//! (rule, topic, partition), and appends routed copies to the rule's target.
//!
//! It runs on the maintenance thread, not on the produce path, so producers never wait for
//! rules; a routed copy appears within a few ticks. Each tick reads at most
//! [`MAX_RECORDS_PER_TICK`] records over all rules, so a backlog never starves fsync, expiry
//! or retention. Copies of one read are produced as one batch per target partition, synced,
//! and only then is the cursor persisted (see `store` for the crash semantics).

use bytes::Bytes;
use switchyard_log::{parse_batches, LogError, Record, RecordBuf};

use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::route::{Filter, Pattern};
use crate::rules::store::{RuleSpec, RuleStore};

/// Records read per tick over all rules: at 10 ms ticks, up to 100k records a second, while
/// one tick stays within a few milliseconds.
pub const MAX_RECORDS_PER_TICK: usize = 1000;

/// Bytes read per partition read: a few batches of typical records.
const READ_BYTES: usize = 256 * 1024;

/// The most rules a record may pass through; a copy that would exceed it is not routed,
/// which cuts loops through several rules.
pub const MAX_HOPS: u32 = 16;

/// Header naming the rule that routed a copy.
pub const RULE_HEADER: &str = "sy-rule";
/// Header naming the record a copy came from, as `topic/partition/offset`.
pub const ORIGIN_HEADER: &str = "sy-origin";
/// Header counting the rules a copy has passed through.
pub const HOPS_HEADER: &str = "sy-hops";

/// A rule with its pattern and filter parsed.
pub(crate) struct Compiled {
    pub spec: RuleSpec,
    pub source: Pattern,
    pub filter: Option<Filter>,
}

impl Compiled {
    pub fn new(spec: &RuleSpec) -> Result<Compiled> {
        let source = Pattern::parse(&spec.source)
            .map_err(|err| BrokerError::InvalidConfig(format!("rule `{}`: {err}", spec.name)))?;
        let filter = spec
            .filter
            .as_deref()
            .map(Filter::parse)
            .transpose()
            .map_err(|err| BrokerError::InvalidConfig(format!("rule `{}`: {err}", spec.name)))?;
        Ok(Compiled {
            spec: spec.clone(),
            source,
            filter,
        })
    }

    /// Whether the rule reads `topic`: it matches the pattern and is not the rule's target.
    pub fn reads(&self, topic: &str) -> bool {
        self.source.matches(topic) && topic != self.spec.target
    }
}

impl Broker {
    /// Routes what is new in the source topics of every rule, up to
    /// [`MAX_RECORDS_PER_TICK`] records; returns the number of copies produced. A rule that
    /// fails (its target deleted, say) is logged and retried next time; the others go on.
    pub fn route_rules(&self) -> usize {
        let mut store = self.inner.rules.lock();
        if store.rules.is_empty() {
            return 0;
        }
        let topics = self.list_topics();
        let rules: Vec<RuleSpec> = store.rules.values().cloned().collect();
        let mut budget = MAX_RECORDS_PER_TICK;
        let mut routed = 0;
        for spec in rules {
            let rule = match Compiled::new(&spec) {
                Ok(rule) => rule,
                Err(err) => {
                    tracing::warn!(rule = %spec.name, error = %err, "rule skipped");
                    continue;
                }
            };
            for (topic, partitions) in topics.iter().filter(|(topic, _)| rule.reads(topic)) {
                for partition in 0..*partitions {
                    if budget == 0 {
                        return routed;
                    }
                    match self.route_partition(&mut store, &rule, topic, partition, budget) {
                        Ok((scanned, copies)) => {
                            budget -= scanned;
                            routed += copies;
                        }
                        Err(err) => {
                            tracing::warn!(
                                rule = %spec.name, topic, partition, error = %err,
                                "routing failed; retrying at the next tick"
                            );
                        }
                    }
                }
            }
        }
        routed
    }

    /// Routes up to `budget` records of one source partition; returns (records read,
    /// copies produced).
    fn route_partition(
        &self,
        store: &mut RuleStore,
        rule: &Compiled,
        topic: &str,
        partition: u32,
        budget: usize,
    ) -> Result<(usize, usize)> {
        let log = self.partition_handle(topic, partition)?;
        let name = &rule.spec.name;
        let stored = store
            .cursors
            .get(name)
            .and_then(|topics| topics.get(topic))
            .and_then(|partitions| partitions.get(&partition))
            .copied();
        // A partition never seen (a topic created after the rule) is routed from its start.
        let mut cursor = stored.unwrap_or_else(|| log.log.start_offset());
        if cursor >= log.log.end_offset() {
            return Ok((0, 0));
        }

        // Read one chunk; records removed by retention are skipped, and said so.
        let read = match log.log.read(cursor, READ_BYTES) {
            Ok(read) => read,
            Err(LogError::OffsetOutOfRange { log_start, .. }) if cursor < log_start => {
                tracing::warn!(
                    rule = %name, topic, partition, from = cursor, to = log_start,
                    "records removed by retention before they were routed"
                );
                set_cursor(store, name, topic, partition, log_start);
                store.save_cursors()?;
                return Ok((0, 0));
            }
            Err(err) => return Err(BrokerError::from_log(topic, partition, err)),
        };
        let batches = parse_batches(&read.batches)
            .map_err(|err| BrokerError::from_log(topic, partition, err.into()))?;

        // Pick and copy the records that pass, up to the budget.
        let mut scanned = 0;
        let mut copies = Vec::new();
        for record in batches.iter().flat_map(|batch| batch.records()) {
            if record.offset < cursor {
                continue;
            }
            if scanned == budget {
                break;
            }
            scanned += 1;
            cursor = record.offset + 1;
            if rule
                .filter
                .as_ref()
                .is_some_and(|filter| !filter.matches(&record))
            {
                continue;
            }
            match routed_copy(rule, topic, partition, &record) {
                Some(copy) => copies.push(copy),
                None => tracing::warn!(
                    rule = %name, topic, partition, offset = record.offset, limit = MAX_HOPS,
                    "record not routed: it has passed through too many rules (a loop?)"
                ),
            }
        }

        // Copies first, durably; then the cursor.
        if !copies.is_empty() {
            let placed = self.produce_records(&rule.spec.target, &copies, partition)?;
            let mut touched: Vec<u32> = placed.iter().map(|(p, _)| *p).collect();
            touched.sort_unstable();
            touched.dedup();
            for target_partition in touched {
                self.sync_partition(&rule.spec.target, target_partition)?;
            }
        }
        set_cursor(store, name, topic, partition, cursor);
        store.save_cursors()?;
        Ok((scanned, copies.len()))
    }
}

pub(crate) fn set_cursor(store: &mut RuleStore, rule: &str, topic: &str, partition: u32, at: u64) {
    store
        .cursors
        .entry(rule.to_string())
        .or_default()
        .entry(topic.to_string())
        .or_default()
        .insert(partition, at);
}

/// The copy of `record` that `rule` routes: key, value and headers kept, the rule's headers
/// added, `sy-rule`, `sy-origin` and `sy-hops` set. `None` past [`MAX_HOPS`].
fn routed_copy(rule: &Compiled, topic: &str, partition: u32, record: &Record) -> Option<RecordBuf> {
    let hops = header_text(record, HOPS_HEADER)
        .and_then(|text| text.parse::<u32>().ok())
        .unwrap_or(0)
        + 1;
    if hops > MAX_HOPS {
        return None;
    }
    let replaced = |name: &str| {
        [RULE_HEADER, ORIGIN_HEADER, HOPS_HEADER].contains(&name)
            || rule.spec.add_headers.iter().any(|(added, _)| added == name)
    };
    let mut headers: Vec<(String, Bytes)> = record
        .headers
        .iter()
        .filter(|(name, _)| !replaced(name))
        .cloned()
        .collect();
    for (name, value) in &rule.spec.add_headers {
        headers.push((name.clone(), Bytes::from(value.clone())));
    }
    let origin = format!("{topic}/{partition}/{}", record.offset);
    headers.push((RULE_HEADER.into(), Bytes::from(rule.spec.name.clone())));
    headers.push((ORIGIN_HEADER.into(), Bytes::from(origin)));
    headers.push((HOPS_HEADER.into(), Bytes::from(hops.to_string())));
    Some(RecordBuf {
        key: record.key.clone(),
        value: record.value.clone(),
        headers,
    })
}

/// A header's value as text, when present and UTF-8.
pub(crate) fn header_text<'a>(record: &'a Record, name: &str) -> Option<&'a str> {
    record
        .headers
        .iter()
        .find(|(header, _)| header == name)
        .and_then(|(_, value)| std::str::from_utf8(value).ok())
}
