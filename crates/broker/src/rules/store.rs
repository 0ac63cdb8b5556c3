//! The durable side of rules: `<data_dir>/rules/rules.json` holds the rules and
//! `<data_dir>/rules/cursors.json` the router's read position per (rule, topic, partition).
//!
//! Both are small and rewritten whole, atomically (temporary file, fsync, rename), so a crash
//! leaves the old file or the new one. The rules file changes only on create and delete; the
//! cursor file after every routed batch, once the routed copies are on disk. A crash between
//! the two makes the router route that batch again at the next start: routing is
//! at-least-once, never lossy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};
use crate::topic::write_atomically;

const RULES_FILE: &str = "rules.json";
const CURSORS_FILE: &str = "cursors.json";

/// A rule as stored and listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    pub name: String,
    /// A subject pattern over topic names.
    pub source: String,
    /// A filter expression on key and headers (see `route::filter`).
    pub filter: Option<String>,
    pub target: String,
    /// Headers added to every routed copy.
    pub add_headers: Vec<(String, String)>,
}

/// The next offset to route, per source topic and partition, of one rule.
pub type RuleCursors = BTreeMap<String, BTreeMap<u32, u64>>;

/// Rules and cursors, in memory and on disk.
#[derive(Debug)]
pub struct RuleStore {
    dir: PathBuf,
    pub rules: BTreeMap<String, RuleSpec>,
    pub cursors: BTreeMap<String, RuleCursors>,
}

impl RuleStore {
    /// Loads the store in `dir`; the folder is created by the first save, so a broker that
    /// never has a rule has no `rules/` folder.
    pub fn open(dir: &Path) -> Result<RuleStore> {
        let rules: Vec<RuleSpec> = read_json(&dir.join(RULES_FILE))?.unwrap_or_default();
        let cursors = read_json(&dir.join(CURSORS_FILE))?.unwrap_or_default();
        Ok(RuleStore {
            dir: dir.to_path_buf(),
            rules: rules
                .into_iter()
                .map(|rule| (rule.name.clone(), rule))
                .collect(),
            cursors,
        })
    }

    pub fn save_rules(&self) -> Result<()> {
        let rules: Vec<&RuleSpec> = self.rules.values().collect();
        write_json(&self.dir.join(RULES_FILE), &rules)
    }

    pub fn save_cursors(&self) -> Result<()> {
        write_json(&self.dir.join(CURSORS_FILE), &self.cursors)
    }
}

pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(BrokerError::io(path, err)),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|err| {
        BrokerError::InvalidConfig(format!("{} is not valid: {err}", path.display()))
    })
}

pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|err| BrokerError::io(dir, err))?;
    }
    let json = serde_json::to_vec_pretty(value)
        .map_err(|err| BrokerError::InvalidConfig(err.to_string()))?;
    write_atomically(path, &json)
}
