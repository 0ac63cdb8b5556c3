//! The durable side of a subscription log: `<data_dir>/subscription-logs/<name>/spec.json`
//! says what the subscription reads, and `checkpoint.json` how far its copier had got at a
//! moment when the copies up to there were on disk.
//!
//! The checkpoint only shortens the work of the next start: the copies themselves carry
//! their source (`sy-source`), so start-up reads the log from the checkpoint's end offsets
//! on and learns exactly which source records were copied after it. A stale checkpoint
//! costs a longer scan, never a lost or doubled copy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};
use crate::rules::store::{read_json, write_json};

const SPEC_FILE: &str = "spec.json";
const CHECKPOINT_FILE: &str = "checkpoint.json";

/// What a subscription log copies: records of the topics `source` matches that pass
/// `filter`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSpec {
    pub name: String,
    /// A pattern set (`a.A,a.*.B`) over topic names.
    pub source: String,
    /// A filter expression on key and headers (see `route::filter`).
    pub filter: Option<String>,
    /// Topics never copied although the patterns match: the subscription's own
    /// dead-letter queue, whose records would otherwise come back round.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// Next source offset to copy, per source topic and partition.
pub type Cursors = BTreeMap<String, BTreeMap<u32, u64>>;

/// The copier's position at a moment its copies were durable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Per partition of the subscription's log: its end offset when `cursors` were taken.
    pub log_ends: Vec<u64>,
    pub cursors: Cursors,
}

/// The folder of one subscription log's files.
#[derive(Debug, Clone)]
pub struct LogFiles {
    dir: PathBuf,
}

impl LogFiles {
    pub fn new(root: &Path, name: &str) -> LogFiles {
        LogFiles {
            dir: root.join(name),
        }
    }

    /// Every stored spec under `root`, sorted by name; none when the folder is absent.
    pub fn load_all(root: &Path) -> Result<Vec<(LogFiles, LogSpec)>> {
        let entries = match std::fs::read_dir(root) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(BrokerError::io(root, err)),
        };
        let mut all = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|err| BrokerError::io(root, err))?;
            let files = LogFiles { dir: entry.path() };
            match read_json::<LogSpec>(&files.dir.join(SPEC_FILE))? {
                Some(spec) => all.push((files, spec)),
                None => {
                    // Created up to its folder but not its spec: an interrupted creation.
                    let folder = files.dir.display().to_string();
                    tracing::info!(folder, "removing an incomplete subscription log");
                    files.remove()?;
                }
            }
        }
        all.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        Ok(all)
    }

    pub fn save_spec(&self, spec: &LogSpec) -> Result<()> {
        write_json(&self.dir.join(SPEC_FILE), spec)
    }

    pub fn load_checkpoint(&self) -> Result<Checkpoint> {
        Ok(read_json(&self.dir.join(CHECKPOINT_FILE))?.unwrap_or_default())
    }

    pub fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        write_json(&self.dir.join(CHECKPOINT_FILE), checkpoint)
    }

    pub fn remove(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(BrokerError::io(&self.dir, err)),
        }
    }
}
