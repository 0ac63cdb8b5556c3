//! Fetches kept in flight across polls, at most one per partition.
//!
//! Each owned partition always has a fetch outstanding, so a poll returns as soon as any
//! partition has data instead of waiting out `max_wait` on the idle ones, and the fetches of
//! all partitions travel pipelined on the one connection. A fetch is tagged with the offset
//! it asked for: when it completes after the partition was revoked or moved by a seek, the
//! consumer sees the mismatch and discards it, so nothing is skipped or handed out twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{AbortHandle, JoinSet};

use crate::client::Client;
use crate::error::Result;
use crate::records::FetchResult;

/// A completed fetch.
pub(crate) struct Fetched {
    pub partition: u32,
    /// The offset the fetch asked for.
    pub offset: u64,
    pub result: Result<FetchResult>,
}

/// The fetches in flight.
#[derive(Default)]
pub(crate) struct Fetcher {
    tasks: JoinSet<Fetched>,
    by_partition: HashMap<u32, AbortHandle>,
}

/// What every fetch of one consumer asks for.
#[derive(Clone)]
pub(crate) struct FetchSpec {
    pub client: Client,
    pub topic: Arc<str>,
    pub max_bytes: u32,
    pub max_wait: Duration,
    pub resolve_blobs: bool,
}

impl Fetcher {
    /// Starts a fetch of `partition` at `offset` unless one is already in flight.
    pub fn ensure(&mut self, spec: &FetchSpec, partition: u32, offset: u64) {
        if self.by_partition.contains_key(&partition) {
            return;
        }
        let spec = spec.clone();
        let handle = self.tasks.spawn(async move {
            let (topic, client) = (&spec.topic, &spec.client);
            let (max_bytes, max_wait) = (spec.max_bytes, spec.max_wait);
            let result = if spec.resolve_blobs {
                client
                    .fetch(topic, partition, offset, max_bytes, max_wait)
                    .await
            } else {
                client
                    .fetch_unresolved(topic, partition, offset, max_bytes, max_wait)
                    .await
            };
            Fetched {
                partition,
                offset,
                result,
            }
        });
        self.by_partition.insert(partition, handle);
    }

    /// Abandons the fetch of `partition`, if any.
    pub fn cancel(&mut self, partition: u32) {
        if let Some(handle) = self.by_partition.remove(&partition) {
            handle.abort();
        }
    }

    /// Abandons every fetch.
    pub fn cancel_all(&mut self) {
        self.tasks.abort_all();
        self.by_partition.clear();
    }

    /// Waits for the next fetch to complete, then also takes every other one that already
    /// has. Returns an empty list when nothing live is in flight.
    pub async fn completed(&mut self) -> Vec<Fetched> {
        let mut done = Vec::new();
        while !self.by_partition.is_empty() {
            let Some(joined) = self.tasks.join_next_with_id().await else {
                break;
            };
            self.take(joined, &mut done);
            if !done.is_empty() {
                break;
            }
        }
        while let Some(joined) = self.tasks.try_join_next_with_id() {
            self.take(joined, &mut done);
        }
        done
    }

    fn take(
        &mut self,
        joined: std::result::Result<(tokio::task::Id, Fetched), tokio::task::JoinError>,
        done: &mut Vec<Fetched>,
    ) {
        match joined {
            Ok((id, fetched)) => {
                // Only the partition's current fetch counts; a cancelled one that finished
                // anyway is dropped.
                let current = self.by_partition.get(&fetched.partition);
                if current.is_some_and(|handle| handle.id() == id) {
                    self.by_partition.remove(&fetched.partition);
                    done.push(fetched);
                }
            }
            Err(error) => {
                let id = error.id();
                self.by_partition.retain(|_, handle| handle.id() != id);
                if error.is_panic() {
                    tracing::warn!(%error, "fetch task panicked; the partition is fetched anew");
                }
            }
        }
    }
}
