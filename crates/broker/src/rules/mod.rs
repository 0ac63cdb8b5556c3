//! Event rules (choreography): a rule copies every record of the topics matching a subject
//! pattern, that passes an optional filter, into a target topic, stamped with where it came
//! from; `trace` follows those stamps back down the chain.
//!
//! Rules live beside the log rather than in it: the router (`router`) reads source topics
//! like a subscription and produces copies from the maintenance thread, so producing to a
//! source topic costs nothing extra. Rules and cursors persist in `<data_dir>/rules/`
//! (`store`); routing is at-least-once across a crash.

pub mod router;
pub mod store;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use switchyard_log::parse_batches;

use crate::broker::Broker;
use crate::data::OffsetSpec;
use crate::error::{BrokerError, Result};
use crate::names;
use router::{header_text, set_cursor, Compiled, ORIGIN_HEADER, RULE_HEADER};
pub use router::{HOPS_HEADER, MAX_HOPS, MAX_RECORDS_PER_TICK};
pub use store::RuleSpec;

/// One record that a rule routed: which rule, where the copy is, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceStep {
    pub rule: String,
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    /// The record it was copied from, as `topic/partition/offset` (its `sy-origin`).
    pub origin: String,
}

/// Bytes read at a time while tracing.
const TRACE_READ_BYTES: usize = 1024 * 1024;

impl Broker {
    /// Creates a rule. Its source topics that exist now are routed from their end (records
    /// produced from now on); a matching topic created later is routed from its start.
    pub fn create_rule(&self, spec: RuleSpec) -> Result<()> {
        self.check_running()?;
        names::validate("rule", &spec.name)?;
        let rule = Compiled::new(&spec)?;
        if rule.source.matches(&spec.target) {
            return Err(BrokerError::InvalidConfig(format!(
                "rule `{}` would route into its own source: target `{}` matches `{}`; pick a \
                 target outside the pattern",
                spec.name, spec.target, spec.source
            )));
        }
        self.topic(&spec.target)?;
        let mut store = self.inner.rules.lock();
        if store.rules.contains_key(&spec.name) {
            return Err(BrokerError::InvalidConfig(format!(
                "a rule named `{}` already exists; delete it first or pick another name",
                spec.name
            )));
        }
        for (topic, partitions) in self.list_topics() {
            if !rule.reads(&topic) {
                continue;
            }
            for partition in 0..partitions {
                let end = self.list_offset(&topic, partition, OffsetSpec::Latest)?;
                set_cursor(&mut store, &spec.name, &topic, partition, end);
            }
        }
        store.save_cursors()?;
        store.rules.insert(spec.name.clone(), spec.clone());
        store.save_rules()?;
        tracing::info!(rule = %spec.name, source = %spec.source, target = %spec.target,
            "rule created");
        Ok(())
    }

    /// Every rule, by name.
    pub fn list_rules(&self) -> Vec<RuleSpec> {
        self.inner.rules.lock().rules.values().cloned().collect()
    }

    /// Deletes a rule and its cursors; what it routed stays in the target.
    pub fn delete_rule(&self, name: &str) -> Result<()> {
        let mut store = self.inner.rules.lock();
        if store.rules.remove(name).is_none() {
            return Err(BrokerError::InvalidConfig(format!(
                "rule `{name}` does not exist; `switchyard rule list` shows the rules"
            )));
        }
        store.save_rules()?;
        store.cursors.remove(name);
        store.save_cursors()?;
        tracing::info!(rule = name, "rule deleted");
        Ok(())
    }

    /// The records routed from `topic`/`partition`/`offset`, recursively, breadth first.
    /// Scans the whole of every rule's target topic: a tool, not a data path.
    pub fn trace(&self, topic: &str, partition: u32, offset: u64) -> Result<Vec<TraceStep>> {
        self.topic(topic)?.partition(partition)?;
        let targets: BTreeSet<String> = self
            .list_rules()
            .into_iter()
            .map(|rule| rule.target)
            .collect();

        // Index every routed copy by its origin.
        let mut by_origin: BTreeMap<String, Vec<TraceStep>> = BTreeMap::new();
        for target in targets {
            let Ok(handle) = self.topic(&target) else {
                continue;
            };
            for part in handle.partitions() {
                self.index_partition(&target, &part, &mut by_origin)?;
            }
        }

        // Walk down from the record asked about; `seen` guards against a malformed cycle.
        let mut steps = Vec::new();
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([format!("{topic}/{partition}/{offset}")]);
        while let Some(origin) = queue.pop_front() {
            for step in by_origin.remove(&origin).unwrap_or_default() {
                let at = format!("{}/{}/{}", step.topic, step.partition, step.offset);
                if seen.insert(at.clone()) {
                    queue.push_back(at);
                    steps.push(step);
                }
            }
        }
        Ok(steps)
    }

    fn index_partition(
        &self,
        topic: &str,
        part: &crate::topic::Partition,
        by_origin: &mut BTreeMap<String, Vec<TraceStep>>,
    ) -> Result<()> {
        let mut offset = part.log.start_offset();
        while offset < part.log.end_offset() {
            let read = self.fetch(topic, part.id, offset, TRACE_READ_BYTES)?;
            let batches = parse_batches(&read.batches)
                .map_err(|err| BrokerError::from_log(topic, part.id, err.into()))?;
            let before = offset;
            for record in batches.iter().flat_map(|batch| batch.records()) {
                if record.offset < offset {
                    continue;
                }
                offset = record.offset + 1;
                let (Some(rule), Some(origin)) = (
                    header_text(&record, RULE_HEADER),
                    header_text(&record, ORIGIN_HEADER),
                ) else {
                    continue;
                };
                by_origin
                    .entry(origin.to_string())
                    .or_default()
                    .push(TraceStep {
                        rule: rule.to_string(),
                        topic: topic.to_string(),
                        partition: part.id,
                        offset: record.offset,
                        origin: origin.to_string(),
                    });
            }
            if offset == before {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
