//! The durable record of groups and their committed offsets.
//!
//! An append-only journal, `groups/offsets.journal`: each entry is `u32 length | u32 crc32c |
//! JSON`. A commit is written before it is acknowledged, so it survives a crash of the broker
//! process; the journal is fsynced with the broker's periodic flush. On start-up the journal
//! is replayed up to its first torn entry and rewritten compactly, so it never grows beyond
//! the live state by more than one session's commits.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};
use crate::group::coordinator::ResetPolicy;

/// A group as persisted: what it reads and how it resets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub topic: String,
    pub reset: ResetPolicy,
    #[serde(default)]
    pub exclusive: bool,
    pub offsets: BTreeMap<u32, u64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
enum Entry {
    Group {
        name: String,
        topic: String,
        reset: ResetPolicy,
        #[serde(default)]
        exclusive: bool,
    },
    Commit {
        group: String,
        partition: u32,
        offset: u64,
    },
    Delete {
        group: String,
    },
}

/// Groups and committed offsets, in memory and in the journal.
#[derive(Debug)]
pub struct OffsetStore {
    path: PathBuf,
    file: File,
    groups: BTreeMap<String, GroupRecord>,
}

impl OffsetStore {
    /// Opens (or creates) the journal in `dir`, replays it and compacts it.
    pub fn open(dir: &Path) -> Result<OffsetStore> {
        fs::create_dir_all(dir).map_err(|err| BrokerError::io(dir, err))?;
        let path = dir.join("offsets.journal");
        let mut groups = BTreeMap::new();
        if path.exists() {
            let bytes = fs::read(&path).map_err(|err| BrokerError::io(&path, err))?;
            let (entries, valid) = replay(&bytes);
            if valid < bytes.len() {
                tracing::warn!(
                    journal = %path.display(),
                    truncated_bytes = bytes.len() - valid,
                    "offset journal had a torn tail; it was cut"
                );
            }
            for entry in entries {
                apply(&mut groups, entry);
            }
        }
        let compact = encode_snapshot(&groups)?;
        crate::topic::write_atomically(&path, &compact)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|err| BrokerError::io(&path, err))?;
        Ok(OffsetStore { path, file, groups })
    }

    pub fn groups(&self) -> &BTreeMap<String, GroupRecord> {
        &self.groups
    }

    pub fn get(&self, group: &str) -> Option<&GroupRecord> {
        self.groups.get(group)
    }

    /// Records a new group.
    pub fn create_group(
        &mut self,
        name: &str,
        topic: &str,
        reset: ResetPolicy,
        exclusive: bool,
    ) -> Result<()> {
        let entry = Entry::Group {
            name: name.into(),
            topic: topic.into(),
            reset,
            exclusive,
        };
        self.write(&entry)?;
        apply(&mut self.groups, entry);
        Ok(())
    }

    /// Records committed offsets of a group.
    pub fn commit(&mut self, group: &str, offsets: &[(u32, u64)]) -> Result<()> {
        let mut buf = Vec::new();
        for (partition, offset) in offsets {
            let entry = Entry::Commit {
                group: group.into(),
                partition: *partition,
                offset: *offset,
            };
            frame(&mut buf, &entry)?;
        }
        self.file
            .write_all(&buf)
            .map_err(|err| BrokerError::io(&self.path, err))?;
        if let Some(record) = self.groups.get_mut(group) {
            record.offsets.extend(offsets.iter().copied());
        }
        Ok(())
    }

    pub fn delete_group(&mut self, group: &str) -> Result<()> {
        let entry = Entry::Delete {
            group: group.into(),
        };
        self.write(&entry)?;
        apply(&mut self.groups, entry);
        Ok(())
    }

    /// Forces the journal to disk.
    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|err| BrokerError::io(&self.path, err))
    }

    fn write(&mut self, entry: &Entry) -> Result<()> {
        let mut buf = Vec::new();
        frame(&mut buf, entry)?;
        self.file
            .write_all(&buf)
            .map_err(|err| BrokerError::io(&self.path, err))
    }
}

fn apply(groups: &mut BTreeMap<String, GroupRecord>, entry: Entry) {
    match entry {
        Entry::Group {
            name,
            topic,
            reset,
            exclusive,
        } => {
            groups.insert(
                name,
                GroupRecord {
                    topic,
                    reset,
                    exclusive,
                    offsets: BTreeMap::new(),
                },
            );
        }
        Entry::Commit {
            group,
            partition,
            offset,
        } => {
            if let Some(record) = groups.get_mut(&group) {
                record.offsets.insert(partition, offset);
            }
        }
        Entry::Delete { group } => {
            groups.remove(&group);
        }
    }
}

fn frame(buf: &mut Vec<u8>, entry: &Entry) -> Result<()> {
    let json =
        serde_json::to_vec(entry).map_err(|err| BrokerError::InvalidConfig(err.to_string()))?;
    buf.extend_from_slice(&(json.len() as u32).to_be_bytes());
    buf.extend_from_slice(&crc32c::crc32c(&json).to_be_bytes());
    buf.extend_from_slice(&json);
    Ok(())
}

/// Decodes entries up to the first torn or corrupt one; returns them and the valid length.
fn replay(bytes: &[u8]) -> (Vec<Entry>, usize) {
    let mut entries = Vec::new();
    let mut pos = 0;
    while let Some(head) = bytes.get(pos..pos + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let Some(json) = bytes.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if crc32c::crc32c(json) != crc {
            break;
        }
        let Ok(entry) = serde_json::from_slice::<Entry>(json) else {
            break;
        };
        entries.push(entry);
        pos += 8 + len;
    }
    (entries, pos)
}

fn encode_snapshot(groups: &BTreeMap<String, GroupRecord>) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    for (name, record) in groups {
        frame(
            &mut buf,
            &Entry::Group {
                name: name.clone(),
                topic: record.topic.clone(),
                reset: record.reset,
                exclusive: record.exclusive,
            },
        )?;
        for (partition, offset) in &record.offsets {
            let entry = Entry::Commit {
                group: name.clone(),
                partition: *partition,
                offset: *offset,
            };
            frame(&mut buf, &entry)?;
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_survive_reopen_and_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut store = OffsetStore::open(dir.path()).expect("open");
            store
                .create_group("g", "t", ResetPolicy::Earliest, false)
                .expect("group");
            store.commit("g", &[(0, 10), (1, 20)]).expect("commit");
            store.commit("g", &[(0, 15)]).expect("commit");
        }
        let journal = dir.path().join("offsets.journal");
        let mut file = OpenOptions::new()
            .append(true)
            .open(&journal)
            .expect("open");
        file.write_all(&[0, 0, 0, 50, 1, 2]).expect("torn tail");
        drop(file);
        let store = OffsetStore::open(dir.path()).expect("reopen");
        let group = store.get("g").expect("group kept");
        assert_eq!(group.offsets.get(&0), Some(&15));
        assert_eq!(group.offsets.get(&1), Some(&20));
    }
}
