//! The local-folder blob store.
//!
//! Layout under the root (`<data_dir>/blobs/`):
//!
//! - `pending/<id>.part`, `pending/<id>`: an upload in progress, and a complete one that no
//!   record refers to yet.
//! - `topics/<topic>/<id>/<partition>-<offset>`: one hard link to the blob's bytes for each
//!   record of `<topic>` that refers to it.
//!
//! A record's reference *is* a file, so the file system counts references for us: the first
//! reference takes the upload (a rename), every later one (a rule's copy in another topic,
//! a dead letter, a redrive) is a hard link to the same bytes, and the bytes are freed when
//! the last link goes. Retention and topic deletion then only ever remove the links of the
//! records they remove, and a blob lives exactly as long as some retained record refers to
//! it, whatever topic it is in. On a file system without hard links a later reference is a
//! copy instead, which costs space but behaves the same.
//!
//! Durability: completion is fsync of the file, rename, fsync of `pending/`; a new reference
//! is rename or link, then fsync of the folders it touched. The reference's folder is made
//! (and its creation synced) before the record is appended, so after a crash start-up
//! knows which topics may hold records whose references are missing.
//! After a crash a blob is a `.part` (dropped at open), complete in `pending/`, or linked.
//! A removal is not synced: a link that a crash brings back is found stale at the next start
//! (its record is gone) and removed then.

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};

use super::{BlobStore, RecordAt};
use crate::error::{BrokerError, Result};

/// Name of the folder of uploads not yet referred to by a record.
const PENDING: &str = "pending";
/// Name of the folder of references, by topic.
const TOPICS: &str = "topics";

/// Blobs as files under one root folder.
#[derive(Debug)]
pub struct LocalBlobStore {
    root: PathBuf,
    references: Mutex<()>,
}

impl LocalBlobStore {
    /// Opens (creating) the store at `root`, dropping unfinished uploads.
    pub fn open(root: &Path) -> Result<LocalBlobStore> {
        let pending = root.join(PENDING);
        fs::create_dir_all(&pending).map_err(|err| BrokerError::io(&pending, err))?;
        let topics = root.join(TOPICS);
        fs::create_dir_all(&topics).map_err(|err| BrokerError::io(&topics, err))?;
        for entry in fs::read_dir(&pending).map_err(|err| BrokerError::io(&pending, err))? {
            let path = entry.map_err(|err| BrokerError::io(&pending, err))?.path();
            if path.extension().is_some_and(|ext| ext == "part") {
                fs::remove_file(&path).map_err(|err| BrokerError::io(&path, err))?;
            }
        }
        Ok(LocalBlobStore {
            root: root.to_path_buf(),
            references: Mutex::new(()),
        })
    }

    fn pending(&self, id: &str) -> PathBuf {
        self.root.join(PENDING).join(id)
    }

    fn part(&self, id: &str) -> PathBuf {
        self.root.join(PENDING).join(format!("{id}.part"))
    }

    fn topic_dir(&self, topic: &str) -> PathBuf {
        self.root.join(TOPICS).join(topic)
    }

    fn link(&self, id: &str, at: &RecordAt<'_>) -> PathBuf {
        self.topic_dir(at.topic)
            .join(id)
            .join(format!("{}-{}", at.partition, at.offset))
    }

    /// Some reference of blob `id`, in whichever topic (never a copy a crash cut short).
    fn any_link(&self, id: &str) -> Option<PathBuf> {
        let topics = fs::read_dir(self.root.join(TOPICS)).ok()?;
        topics.filter_map(|entry| entry.ok()).find_map(|topic| {
            let links = fs::read_dir(topic.path().join(id)).ok()?;
            links
                .filter_map(|entry| entry.ok())
                .filter(|entry| entry.file_name().to_str().and_then(parse_link).is_some())
                .map(|entry| entry.path())
                .find(|path| path.is_file())
        })
    }

    /// Creates `dir` if needed, syncing the parent of each folder it created.
    fn make_dir(&self, dir: &Path) -> Result<()> {
        let mut missing = Vec::new();
        let mut at = dir;
        while !at.is_dir() {
            missing.push(at.to_path_buf());
            match at.parent() {
                Some(parent) => at = parent,
                None => break,
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        fs::create_dir_all(dir).map_err(|err| BrokerError::io(dir, err))?;
        for created in &missing {
            sync_dir(created.parent().unwrap_or(&self.root))?;
        }
        Ok(())
    }
}

fn blob_error(id: &str, reason: impl Into<String>) -> BrokerError {
    BrokerError::Blob {
        id: id.to_string(),
        reason: reason.into(),
    }
}

/// Removes `path`; absent is not an error.
fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(BrokerError::io(path, err)),
        _ => Ok(()),
    }
}

/// `<partition>-<offset>` back into its numbers.
fn parse_link(name: &str) -> Option<(u32, u64)> {
    let (partition, offset) = name.split_once('-')?;
    Some((partition.parse().ok()?, offset.parse().ok()?))
}

/// Names of the entries of `dir`; none when it is absent.
fn names(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().to_str().map(str::to_string))
        .collect()
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

    fn is_available(&self, id: &str) -> bool {
        self.pending(id).is_file() || self.any_link(id).is_some()
    }

    fn add_ref(&self, id: &str, at: &RecordAt<'_>) -> Result<()> {
        let link = self.link(id, at);
        if link.is_file() {
            return Ok(());
        }
        let dir = link.parent().unwrap_or(&self.root).to_path_buf();
        let upload = self.pending(id);
        if upload.is_file() {
            self.make_dir(&dir)?;
            fs::rename(&upload, &link).map_err(|err| BrokerError::io(&upload, err))?;
            sync_dir(&self.root.join(PENDING))?;
            return sync_dir(&dir);
        }
        let source = self.any_link(id).ok_or_else(|| {
            blob_error(
                id,
                "no such blob: it is neither a complete upload nor referred to by any record",
            )
        })?;
        self.make_dir(&dir)?;
        if fs::hard_link(&source, &link).is_err() {
            // No hard links here: a copy, synced, is the same reference at a cost in space.
            let copy = link.with_extension("copy");
            fs::copy(&source, &copy).map_err(|err| BrokerError::io(&source, err))?;
            fs::File::open(&copy)
                .and_then(|file| file.sync_all())
                .map_err(|err| BrokerError::io(&copy, err))?;
            fs::rename(&copy, &link).map_err(|err| BrokerError::io(&copy, err))?;
        }
        sync_dir(&dir)
    }

    fn prepare(&self, id: &str, topic: &str) -> Result<()> {
        self.make_dir(&self.topic_dir(topic).join(id))
    }

    fn has_ref(&self, id: &str, at: &RecordAt<'_>) -> bool {
        self.link(id, at).is_file()
    }

    fn remove_ref(&self, id: &str, at: &RecordAt<'_>) -> Result<()> {
        let link = self.link(id, at);
        remove_file(&link)?;
        // Empty folders go too; one that is not empty (or already gone) stays as it is.
        if let Some(dir) = link.parent() {
            if fs::remove_dir(dir).is_ok() {
                let _ = fs::remove_dir(self.topic_dir(at.topic));
            }
        }
        Ok(())
    }

    fn refs(&self, topic: &str) -> Result<Vec<(String, u32, u64)>> {
        let dir = self.topic_dir(topic);
        let mut refs = Vec::new();
        for id in names(&dir) {
            for name in names(&dir.join(&id)) {
                match parse_link(&name) {
                    Some((partition, offset)) => refs.push((id.clone(), partition, offset)),
                    // A copy a crash interrupted, or a stranger: not a reference.
                    None => remove_file(&dir.join(&id).join(&name))?,
                }
            }
            // Prepared for an append that failed or never linked: nothing to keep.
            let _ = fs::remove_dir(dir.join(&id));
        }
        let _ = fs::remove_dir(&dir);
        Ok(refs)
    }

    fn ref_topics(&self) -> Result<Vec<String>> {
        Ok(names(&self.root.join(TOPICS)))
    }

    fn get_range(&self, id: &str, offset: u64, max: usize) -> Result<(u64, Bytes)> {
        // A reader may see a record a moment before its first reference is in place, so a
        // complete upload is readable too; the second look covers it moving meanwhile.
        let upload = self.pending(id);
        let path = (self.any_link(id))
            .or_else(|| upload.is_file().then_some(upload))
            .or_else(|| self.any_link(id))
            .ok_or_else(|| blob_error(id, "no such blob (deleted with its last record?)"))?;
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

    fn pending_ids(&self) -> Result<Vec<String>> {
        Ok(names(&self.root.join(PENDING))
            .into_iter()
            .filter(|name| !name.ends_with(".part"))
            .collect())
    }

    fn delete_pending(&self, id: &str) -> Result<()> {
        remove_file(&self.pending(id))
    }

    fn delete_topic(&self, topic: &str) -> Result<()> {
        let dir = self.topic_dir(topic);
        match fs::remove_dir_all(&dir) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(BrokerError::io(&dir, err))
            }
            _ => Ok(()),
        }
    }

    fn has_topic(&self, topic: &str) -> bool {
        self.topic_dir(topic).is_dir()
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.references.lock()
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(|err| BrokerError::io(dir, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(topic: &str, offset: u64) -> RecordAt<'_> {
        RecordAt {
            topic,
            partition: 0,
            offset,
        }
    }

    fn upload(store: &LocalBlobStore, id: &str, data: &[u8]) {
        store.put_chunk(id, 0, data).expect("chunk");
        store.complete(id, data.len() as u64).expect("complete");
    }

    #[test]
    fn a_blob_lives_while_any_reference_in_any_topic_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalBlobStore::open(dir.path()).expect("open");
        upload(&store, "b1", b"payload");
        store.add_ref("b1", &at("a", 3)).expect("first reference");
        assert!(store.pending_ids().expect("pending").is_empty());
        store.add_ref("b1", &at("b", 0)).expect("copy in b");
        store
            .add_ref("b1", &at("b", 7))
            .expect("second record in b");

        store.remove_ref("b1", &at("a", 3)).expect("retention in a");
        assert!(!store.has_topic("a"), "an empty topic folder goes");
        assert_eq!(
            store.get_range("b1", 0, 100).expect("read").1,
            &b"payload"[..]
        );
        store.remove_ref("b1", &at("b", 0)).expect("one of b's");
        assert!(
            store.is_available("b1"),
            "b's other record still refers to it"
        );
        store.remove_ref("b1", &at("b", 7)).expect("last");
        assert!(!store.is_available("b1"));
        assert!(store.get_range("b1", 0, 100).is_err());
    }

    #[test]
    fn deleting_a_topic_keeps_the_blobs_other_topics_refer_to() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalBlobStore::open(dir.path()).expect("open");
        upload(&store, "shared", b"bytes");
        upload(&store, "own", b"mine");
        store.add_ref("shared", &at("a", 0)).expect("a");
        store.add_ref("own", &at("a", 1)).expect("a");
        store.add_ref("shared", &at("b", 0)).expect("b");
        store.delete_topic("a").expect("delete a");
        assert!(store.is_available("shared"));
        assert!(!store.is_available("own"));
        assert_eq!(
            store.refs("b").expect("refs"),
            vec![("shared".to_string(), 0, 0)]
        );
        assert!(store.add_ref("own", &at("c", 0)).is_err(), "gone for good");
    }

    #[test]
    fn references_are_idempotent_and_need_a_blob() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalBlobStore::open(dir.path()).expect("open");
        assert!(store.add_ref("nothing", &at("a", 0)).is_err());
        upload(&store, "x", b"1");
        store.add_ref("x", &at("a", 0)).expect("first");
        store
            .add_ref("x", &at("a", 0))
            .expect("again, as recovery may");
        assert_eq!(store.refs("a").expect("refs").len(), 1);
    }

    #[test]
    fn a_prepared_reference_marks_the_topic_until_start_up_finds_it_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalBlobStore::open(dir.path()).expect("open");
        upload(&store, "x", b"1");
        store.prepare("x", "a").expect("prepare");
        assert!(store.has_topic("a"), "start-up must read a's log");
        assert!(store.refs("a").expect("refs").is_empty());
        assert!(!store.has_topic("a"), "the empty folders are gone");
        assert!(store.is_available("x"), "the upload is untouched");
    }
}
