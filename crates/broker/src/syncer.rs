//! Sync workers: the threads that fsync partitions of `always` topics for waiting producers.
//!
//! A produce to an `always` topic appends, queues its partition here, and waits on the
//! partition's `durable` watch until the durable offset passes its records. One fsync by a
//! worker acknowledges every produce appended before it started, so concurrent producers share
//! fsyncs (group commit) and a waiting produce costs no thread of its own. A partition is in
//! the queue at most once; one that is queued again while being synced is synced again after.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use parking_lot::{Condvar, Mutex};

use crate::topic::Partition;

/// Worker threads. Two keep one fsync in flight while the next batch of produces queues,
/// which is what group commit needs; more would only contend for the same disk queue.
pub const SYNC_WORKERS: usize = 2;

/// What producers waiting for an fsync watch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Durability {
    /// Offset below which every record is on stable storage.
    pub offset: u64,
    /// Set when the last fsync failed, until one succeeds.
    pub error: Option<Arc<str>>,
}

#[derive(Default)]
struct Queue {
    partitions: VecDeque<(String, Arc<Partition>)>,
    stopped: bool,
}

/// The queue of partitions waiting for an fsync, and its workers.
#[derive(Default)]
pub struct Syncer {
    shared: Arc<(Mutex<Queue>, Condvar)>,
    started: OnceLock<()>,
}

impl Syncer {
    /// Queues `partition` of `topic` for an fsync, starting the workers on first use.
    pub fn request(&self, topic: &str, partition: &Arc<Partition>) {
        self.started.get_or_init(|| self.spawn_workers());
        if partition.sync_queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let (queue, ready) = &*self.shared;
        queue
            .lock()
            .partitions
            .push_back((topic.to_string(), Arc::clone(partition)));
        ready.notify_one();
    }

    /// Stops the workers once the queue is empty.
    pub fn stop(&self) {
        let (queue, ready) = &*self.shared;
        queue.lock().stopped = true;
        ready.notify_all();
    }

    fn spawn_workers(&self) {
        for index in 0..SYNC_WORKERS {
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new()
                .name(format!("switchyard-sync-{index}"))
                .spawn(move || work(&shared));
            if let Err(err) = spawned {
                tracing::error!(error = %err, "cannot start an fsync worker");
            }
        }
    }
}

fn work(shared: &(Mutex<Queue>, Condvar)) {
    let (queue, ready) = shared;
    loop {
        let (topic, partition) = {
            let mut queue = queue.lock();
            loop {
                if let Some(next) = queue.partitions.pop_front() {
                    break next;
                }
                if queue.stopped {
                    return;
                }
                ready.wait(&mut queue);
            }
        };
        // Clear the flag before syncing, so an append that lands during the fsync queues
        // the partition again and is covered by the next one.
        partition.sync_queued.store(false, Ordering::Release);
        match partition.log.sync() {
            Ok(()) => {
                let offset = partition.log.durable_offset();
                partition.durable.send_replace(Durability {
                    offset,
                    error: None,
                });
            }
            Err(err) => {
                // Waiters see the error and fail their produces: nothing is acknowledged.
                tracing::error!(topic, partition = partition.id, error = %err, "fsync failed");
                let message: Arc<str> = Arc::from(err.to_string());
                partition
                    .durable
                    .send_modify(|state| state.error = Some(message));
            }
        }
    }
}
