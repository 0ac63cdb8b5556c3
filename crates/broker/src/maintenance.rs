//! Background work: periodic fsync of `interval` topics, member expiry, retention,
//! routing records by event rules, and catching subscription logs up and checkpointing them.
//!
//! One plain thread does all of it; each job is cheap when there is nothing to do, and a
//! thread keeps the broker usable without an async runtime when embedded.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use switchyard_log::FsyncPolicy;

use crate::broker::{Broker, Inner};
use crate::error::Result;

/// How often the maintenance thread wakes: fine enough for the default 50 ms fsync interval.
pub const TICK: Duration = Duration::from_millis(10);

/// How often committed offsets and queue journals are fsynced: the default fsync interval
/// of topics, so that what a consumer acked is as durable as what a producer sent.
pub const META_SYNC_INTERVAL_MS: i64 = 50;

/// Settings of the maintenance thread.
#[derive(Debug, Clone, Copy)]
pub struct MaintenanceOptions {
    /// How often retention is checked.
    pub retention_check: Duration,
}

impl Default for MaintenanceOptions {
    fn default() -> Self {
        // Five minutes, as Kafka's log.retention.check.interval.
        MaintenanceOptions {
            retention_check: Duration::from_secs(300),
        }
    }
}

/// Totals of one retention pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RetentionTotals {
    pub segments_removed: usize,
    pub bytes_removed: u64,
}

impl Broker {
    /// Starts the maintenance thread; it stops when the broker shuts down or is dropped.
    pub fn start_maintenance(&self, options: MaintenanceOptions) -> JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        std::thread::Builder::new()
            .name("switchyard-maintenance".into())
            .spawn(move || run(weak, options))
            .expect("spawning a thread only fails when the process is out of resources")
    }

    /// Fsyncs every partition of an `interval` topic whose interval has passed and that has
    /// unsynced data; `last_sync` remembers when each topic was last synced.
    pub fn sync_due(&self, last_sync: &mut HashMap<String, i64>) -> Result<()> {
        let now = self.now_ms();
        let topics: Vec<_> = self.inner.topics.read().values().cloned().collect();
        for topic in topics {
            let config = topic.config();
            if config.fsync != FsyncPolicy::Interval {
                continue;
            }
            let last = last_sync.entry(topic.name.clone()).or_insert(now);
            if now - *last < config.fsync_interval_ms as i64 {
                continue;
            }
            *last = now;
            for partition in topic.partitions() {
                if partition.log.is_dirty() {
                    self.sync_partition(&topic.name, partition.id)?;
                }
            }
        }
        // Offsets and queue journals follow the default interval.
        let last = last_sync.entry(String::new()).or_insert(now);
        if now - *last >= META_SYNC_INTERVAL_MS {
            *last = now;
            self.sync_offsets()?;
            self.sync_queue_journals()?;
        }
        Ok(())
    }

    /// Applies every topic's retention now.
    pub fn enforce_retention(&self) -> Result<RetentionTotals> {
        let now = self.now_ms();
        let mut totals = RetentionTotals::default();
        let topics: Vec<_> = self.inner.topics.read().values().cloned().collect();
        for topic in topics {
            let config = topic.config();
            let has_blobs = self.inner.blobs.has_topic(&topic.name);
            for partition in topic.partitions() {
                // Blob references of removed segments, read before the files go.
                let mut blobs = Vec::new();
                let mut collect = |path: &std::path::Path| {
                    if has_blobs {
                        blobs.extend(crate::blobs::mentions_in_file(path));
                    }
                };
                let report = partition
                    .log
                    .enforce_retention_with(
                        now,
                        config.retention(),
                        config.retention_bytes,
                        self.retention_floor(&topic.name, partition.id),
                        &mut collect,
                    )
                    .map_err(|err| crate::BrokerError::from_log(&topic.name, partition.id, err))?;
                if report.segments_removed > 0 {
                    tracing::info!(
                        topic = %topic.name,
                        partition = partition.id,
                        segments = report.segments_removed,
                        bytes = report.bytes_removed,
                        "retention removed segments"
                    );
                }
                self.release_blobs(&topic.name, partition.id, &blobs)?;
                totals.segments_removed += report.segments_removed;
                totals.bytes_removed += report.bytes_removed;
            }
        }
        Ok(totals)
    }
}

fn run(weak: Weak<Inner>, options: MaintenanceOptions) {
    let mut last_sync = HashMap::new();
    let mut last_retention = std::time::Instant::now();
    let mut last_checkpoint = std::time::Instant::now();
    let checkpoint_every =
        Duration::from_millis(crate::subscription_log::CHECKPOINT_INTERVAL_MS as u64);
    loop {
        std::thread::sleep(TICK);
        let Some(inner) = weak.upgrade() else { return };
        if inner.shutting_down.load(Ordering::Acquire) {
            return;
        }
        let broker = Broker { inner };
        if let Err(err) = broker.sync_due(&mut last_sync) {
            tracing::error!(error = %err, "periodic fsync failed");
        }
        broker.expire_members();
        broker.tick_queues();
        broker.route_rules();
        broker.retry_failed_copies();
        if last_checkpoint.elapsed() >= checkpoint_every {
            last_checkpoint = std::time::Instant::now();
            broker.copy_all_logs();
            if let Err(err) = broker.checkpoint_subscription_logs() {
                tracing::warn!(error = %err, "subscription log checkpoint failed");
            }
        }
        if last_retention.elapsed() >= options.retention_check {
            last_retention = std::time::Instant::now();
            if let Err(err) = broker.enforce_retention() {
                tracing::error!(error = %err, "retention failed");
            }
        }
    }
}
