//! The consumer's pure core: where it stands in each partition it owns, and what it has
//! committed there.
//!
//! A position is the offset of the next record to hand out. It advances only when records
//! are returned by a poll, and with auto-commit it is committed at the start of the next
//! poll, so a commit never covers a record the application has not had back from `poll`.

use std::collections::BTreeMap;

use switchyard_protocol::PartitionOffset;

/// Positions and last commits of the owned partitions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Positions {
    next: BTreeMap<u32, u64>,
    committed: BTreeMap<u32, u64>,
}

impl Positions {
    /// Partitions owned, ascending.
    pub fn owned(&self) -> Vec<u32> {
        self.next.keys().copied().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.next.is_empty()
    }

    pub fn get(&self, partition: u32) -> Option<u64> {
        self.next.get(&partition).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.next
            .iter()
            .map(|(partition, offset)| (*partition, *offset))
    }

    /// Takes ownership of `partition` at `offset`; `committed` is the group's commit there,
    /// if the offset came from one.
    pub fn insert(&mut self, partition: u32, offset: u64, committed: Option<u64>) {
        self.next.insert(partition, offset);
        match committed {
            Some(committed) => self.committed.insert(partition, committed),
            None => self.committed.remove(&partition),
        };
    }

    /// Moves the position of an owned partition; ignored for a partition not owned.
    pub fn set(&mut self, partition: u32, offset: u64) {
        if let Some(next) = self.next.get_mut(&partition) {
            *next = offset;
        }
    }

    pub fn remove(&mut self, partition: u32) {
        self.next.remove(&partition);
        self.committed.remove(&partition);
    }

    pub fn clear(&mut self) {
        self.next.clear();
        self.committed.clear();
    }

    /// Partitions owned but no longer assigned, and assigned but not yet owned.
    pub fn diff(&self, assignment: &[u32]) -> (Vec<u32>, Vec<u32>) {
        let revoked = self
            .next
            .keys()
            .filter(|partition| !assignment.contains(partition))
            .copied()
            .collect();
        let mut added: Vec<u32> = assignment
            .iter()
            .filter(|partition| !self.next.contains_key(partition))
            .copied()
            .collect();
        added.sort_unstable();
        added.dedup();
        (revoked, added)
    }

    /// Positions not yet committed, limited to `only` when given.
    pub fn uncommitted(&self, only: Option<&[u32]>) -> Vec<PartitionOffset> {
        self.next
            .iter()
            .filter(|(partition, _)| selected(only, **partition))
            .filter(|(partition, offset)| self.committed.get(partition) != Some(offset))
            .map(|(partition, offset)| PartitionOffset {
                partition: *partition,
                offset: *offset,
            })
            .collect()
    }

    /// Records that `offsets` are now the group's commits.
    pub fn mark_committed(&mut self, offsets: &[PartitionOffset]) {
        for commit in offsets {
            if self.next.contains_key(&commit.partition) {
                self.committed.insert(commit.partition, commit.offset);
            }
        }
    }
}

fn selected(only: Option<&[u32]>, partition: u32) -> bool {
    match only {
        Some(only) => only.contains(&partition),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(partition: u32, offset: u64) -> PartitionOffset {
        PartitionOffset { partition, offset }
    }

    #[test]
    fn diff_splits_revoked_and_added() {
        let mut positions = Positions::default();
        positions.insert(0, 5, None);
        positions.insert(1, 7, None);
        let (revoked, added) = positions.diff(&[1, 3, 2]);
        assert_eq!(revoked, vec![0]);
        assert_eq!(added, vec![2, 3]);
    }

    #[test]
    fn only_moved_positions_are_uncommitted() {
        let mut positions = Positions::default();
        positions.insert(0, 10, Some(10));
        positions.insert(1, 0, None);
        assert_eq!(positions.uncommitted(None), vec![at(1, 0)]);

        positions.set(0, 15);
        let pending = positions.uncommitted(None);
        assert_eq!(pending, vec![at(0, 15), at(1, 0)]);
        assert_eq!(positions.uncommitted(Some(&[0])), vec![at(0, 15)]);

        positions.mark_committed(&pending);
        assert!(positions.uncommitted(None).is_empty());
    }

    #[test]
    fn removed_partitions_are_forgotten() {
        let mut positions = Positions::default();
        positions.insert(4, 1, Some(1));
        positions.remove(4);
        positions.set(4, 9);
        positions.mark_committed(&[at(4, 9)]);
        assert!(positions.is_empty());
        assert_eq!(positions.get(4), None);
        assert!(positions.uncommitted(None).is_empty());
    }
}
