//! The local-folder blob store: `<data_dir>/blobs/pending/` for uploads, one folder per
//! topic for attached blobs.
//!
//! Completion is fsync then rename, and attachment a rename, so after a crash a blob is
//! either a `.part` (dropped at start-up), complete in `pending/`, or under its topic.

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::BlobStore;
use crate::error::{BrokerError, Result};

/// Name of the folder of uploads not yet referred to by a record.
const PENDING: &str = "pending";

/// Blobs as files under one root folder.
#[derive(Debug)]
pub struct LocalBlobStore {
    root: PathBuf,
}

impl LocalBlobStore {
    /// Opens (creating) the store at `root`, dropping unfinished uploads.
    pub fn open(root: &Path) -> Result<LocalBlobStore> {
        let pending = root.join(PENDING);
        fs::create_dir_all(&pending).map_err(|err| BrokerError::io(&pending, err))?;
        for entry in fs::read_dir(&pending).map_err(|err| BrokerError::io(&pending, err))? {
            let path = entry.map_err(|err| BrokerError::io(&pending, err))?.path();
            if path.extension().is_some_and(|ext| ext == "part") {
                fs::remove_file(&path).map_err(|err| BrokerError::io(&path, err))?;
            }
        }
        Ok(LocalBlobStore {
            root: root.to_path_buf(),
        })
    }

    fn pending(&self, id: &str) -> PathBuf {
        self.root.join(PENDING).join(id)
    }

    fn part(&self, id: &str) -> PathBuf {
        self.root.join(PENDING).join(format!("{id}.part"))
    }

    /// The file of blob `id` under whichever topic holds it.
    fn locate(&self, id: &str) -> Option<PathBuf> {
        let entries = fs::read_dir(&self.root).ok()?;
        entries
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_name() != PENDING)
            .map(|entry| entry.path().join(id))
            .find(|path| path.is_file())
    }
}

fn blob_error(id: &str, reason: impl Into<String>) -> BrokerError {
    BrokerError::Blob {
        id: id.to_string(),
        reason: reason.into(),
    }
}

impl BlobStore for LocalBlobStore {
    fn put_chunk(&self, id: &str, offset: u64, data: &[u8]) -> Result<()> {
        let path = self.part(id);
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(offset == 0)
            .open(&path)
            .map_err(|err| BrokerError::io(&path, err))?;
        let len = file
            .metadata()
            .map_err(|err| BrokerError::io(&path, err))?
            .len();
        if len != offset {
            return Err(blob_error(
                id,
                format!("chunk at offset {offset} but {len} bytes uploaded; send chunks in order"),
            ));
        }
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.write_all(data))
            .map_err(|err| BrokerError::io(&path, err))
    }

    fn complete(&self, id: &str, total: u64) -> Result<()> {
        let part = self.part(id);
        let file = fs::File::open(&part).map_err(|err| BrokerError::io(&part, err))?;
        let len = file
            .metadata()
            .map_err(|err| BrokerError::io(&part, err))?
            .len();
        if len != total {
            return Err(blob_error(id, format!("{len} bytes uploaded of {total}")));
        }
        file.sync_all().map_err(|err| BrokerError::io(&part, err))?;
        let done = self.pending(id);
        fs::rename(&part, &done).map_err(|err| BrokerError::io(&part, err))?;
        sync_dir(&self.root.join(PENDING))
    }

    fn is_complete(&self, id: &str) -> bool {
        self.pending(id).is_file()
    }

    fn attach(&self, id: &str, topic: &str) -> Result<()> {
        let dir = self.root.join(topic);
        fs::create_dir_all(&dir).map_err(|err| BrokerError::io(&dir, err))?;
        let from = self.pending(id);
        fs::rename(&from, dir.join(id)).map_err(|err| BrokerError::io(&from, err))
    }

    fn get_range(&self, id: &str, offset: u64, max: usize) -> Result<(u64, Bytes)> {
        let path = self
            .locate(id)
            .ok_or_else(|| blob_error(id, "no such blob (deleted with its record?)"))?;
        let mut file = fs::File::open(&path).map_err(|err| BrokerError::io(&path, err))?;
        let total = file
            .metadata()
            .map_err(|err| BrokerError::io(&path, err))?
            .len();
        let want = total.saturating_sub(offset).min(max as u64) as usize;
        let mut buf = vec![0; want];
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(&mut buf))
            .map_err(|err| BrokerError::io(&path, err))?;
        Ok((total, Bytes::from(buf)))
    }

    fn delete(&self, topic: Option<&str>, id: &str) -> Result<()> {
        let path = self.root.join(topic.unwrap_or(PENDING)).join(id);
        match fs::remove_file(&path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(BrokerError::io(&path, err))
            }
            _ => Ok(()),
        }
    }

    fn list(&self, topic: Option<&str>) -> Result<Vec<String>> {
        let dir = self.root.join(topic.unwrap_or(PENDING));
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        Ok(entries
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| entry.file_name().to_str().map(str::to_string))
            .filter(|name| !name.ends_with(".part"))
            .collect())
    }

    fn delete_topic(&self, topic: &str) -> Result<()> {
        let dir = self.root.join(topic);
        match fs::remove_dir_all(&dir) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(BrokerError::io(&dir, err))
            }
            _ => Ok(()),
        }
    }

    fn has_topic(&self, topic: &str) -> bool {
        self.root.join(topic).is_dir()
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(|err| BrokerError::io(dir, err))
}
