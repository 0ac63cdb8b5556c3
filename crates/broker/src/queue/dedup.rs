//! Deduplication ids of one queue: which id was first seen on which record, for a window.

use std::collections::{HashMap, VecDeque};

use crate::queue::state::Pos;

/// Ids seen within the window, with the record each first arrived on.
#[derive(Debug, Default)]
pub struct DedupTable {
    seen: HashMap<String, (Pos, i64)>,
    /// Ids in the order they were seen, for pruning.
    order: VecDeque<(i64, String)>,
}

impl DedupTable {
    /// The record an id was first seen on, if that was within `window_ms` before `now`.
    pub fn lookup(&self, id: &str, now: i64, window_ms: u64) -> Option<Pos> {
        let (pos, at) = self.seen.get(id)?;
        (now - at < window_ms as i64).then_some(*pos)
    }

    /// Whether the id is remembered at all, however old.
    pub fn contains(&self, id: &str) -> bool {
        self.seen.contains_key(id)
    }

    pub fn insert(&mut self, id: String, pos: Pos, at_ms: i64) {
        self.order.push_back((at_ms, id.clone()));
        self.seen.insert(id, (pos, at_ms));
    }

    /// Forgets ids older than the window.
    pub fn prune(&mut self, now: i64, window_ms: u64) {
        while let Some((at, _)) = self.order.front() {
            if now - at < window_ms as i64 {
                break;
            }
            let Some((at, id)) = self.order.pop_front() else {
                break;
            };
            if self
                .seen
                .get(&id)
                .is_some_and(|(_, seen_at)| *seen_at == at)
            {
                self.seen.remove(&id);
            }
        }
    }

    /// Live entries, for a journal snapshot.
    pub fn entries(&self) -> Vec<(String, Pos, i64)> {
        let mut entries: Vec<_> = self
            .seen
            .iter()
            .map(|(id, (pos, at))| (id.clone(), *pos, *at))
            .collect();
        entries.sort_by_key(|entry| entry.2);
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_remembered_for_the_window_only() {
        let mut table = DedupTable::default();
        table.insert("d1".into(), (0, 4), 1_000);
        assert_eq!(table.lookup("d1", 1_500, 1_000), Some((0, 4)));
        assert_eq!(table.lookup("d1", 2_000, 1_000), None);
        table.prune(2_000, 1_000);
        assert!(table.entries().is_empty());
    }
}
