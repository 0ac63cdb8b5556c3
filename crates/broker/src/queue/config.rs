//! Settings of a queue subscription, persisted as `queues/<name>.json` in its topic's folder.

use serde::{Deserialize, Serialize};

/// What a full queue does with a new record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Overflow {
    /// Refuse the record with a retryable "queue full" error.
    #[default]
    Reject,
    /// Drop the oldest ready record to make room; counted in the queue's stats.
    DropOldest,
    /// Make the producer wait up to `block_timeout_ms` for room, then refuse.
    Block,
}

/// What happens to a record whose time-to-live ran out before it was acked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ExpiryAction {
    #[default]
    DeadLetter,
    Drop,
}

/// Exponential backoff with jitter between deliveries of a record that was nacked without a
/// delay, or whose lease expired: `min(cap, base * factor^(deliveries-1))`, then ± jitter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub base_ms: u64,
    pub factor: f64,
    pub cap_ms: u64,
    /// Fraction of the delay by which it is randomly shortened or lengthened, 0 to 1.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // No backoff unless asked for: a released record is ready again at once, as in SQS.
        RetryPolicy {
            base_ms: 0,
            factor: 2.0,
            cap_ms: 60_000,
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// Delay before the next delivery of a record delivered `deliveries` times; `unit` is a
    /// random number in [0, 1) for the jitter.
    pub fn delay_ms(&self, deliveries: u32, unit: f64) -> u64 {
        if self.base_ms == 0 {
            return 0;
        }
        let exponent = deliveries.saturating_sub(1).min(64) as i32;
        let raw = (self.base_ms as f64) * self.factor.powi(exponent);
        let capped = raw.min(self.cap_ms as f64);
        let jittered = capped * (1.0 + self.jitter * (2.0 * unit - 1.0));
        jittered.max(0.0) as u64
    }
}

/// Settings of one queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueConfig {
    /// How long a received record stays invisible to others unless acked, nacked or extended.
    pub visibility_ms: u64,
    /// Deliveries without an ack after which a record is dead-lettered.
    pub max_deliveries: u32,
    /// Queue that receives dead letters; `None` drops them instead (counted).
    pub dead_letter: Option<String>,
    /// Delay of a record sent without one. A record sent with delay 0 is ready at once.
    pub default_delay_ms: u64,
    /// Priority levels (1 = none). Level `p` is stored in partition `p`; higher is first.
    pub priorities: u8,
    /// At most one record per key in flight, so each key is processed in order.
    pub ordered_by_key: bool,
    /// How long a dedup id suppresses a second record with the same id.
    pub dedup_window_ms: u64,
    /// Most records the queue holds (ready, in flight, delayed); `None`: no limit.
    pub max_records: Option<u64>,
    /// Most payload bytes the queue holds; `None`: no limit.
    pub max_bytes: Option<u64>,
    pub overflow: Overflow,
    /// With `Overflow::Block`, how long a producer waits for room.
    pub block_timeout_ms: u64,
    /// Time-to-live of a record sent without one; `None`: records do not expire.
    pub ttl_ms: Option<u64>,
    pub on_expiry: ExpiryAction,
    pub retry: RetryPolicy,
    /// When false, retention may delete segments that still hold unacked records of this
    /// queue; the loss is counted and logged. When true (default), it may not.
    pub protect_from_retention: bool,
    /// Only records passing this filter (see `route::filter`) enter the queue; the others
    /// are skipped when read and never delivered.
    #[serde(default)]
    pub filter: Option<String>,
}

/// Most priority levels: each is a partition, and ten is what users of RabbitMQ are told is
/// enough; more cost scans for no visible gain.
pub const MAX_PRIORITIES: u8 = 10;

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            // 30 s, as SQS.
            visibility_ms: 30_000,
            max_deliveries: 5,
            dead_letter: None,
            default_delay_ms: 0,
            priorities: 1,
            ordered_by_key: false,
            // 5 minutes, as SQS FIFO queues.
            dedup_window_ms: 300_000,
            max_records: None,
            max_bytes: None,
            overflow: Overflow::Reject,
            block_timeout_ms: 5_000,
            ttl_ms: None,
            on_expiry: ExpiryAction::DeadLetter,
            retry: RetryPolicy::default(),
            protect_from_retention: true,
            filter: None,
        }
    }
}

impl QueueConfig {
    /// The name of a queue's default dead-letter queue.
    pub fn default_dead_letter(queue: &str) -> String {
        format!("{queue}.dlq")
    }

    /// Checks every value, naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.visibility_ms == 0 || self.visibility_ms > 12 * 3600 * 1000 {
            return Err(format!(
                "visibility {} ms is out of range; use 1 ms to 12 h",
                self.visibility_ms
            ));
        }
        if self.max_deliveries == 0 {
            return Err("max_deliveries must be at least 1".into());
        }
        if self.priorities == 0 || self.priorities > MAX_PRIORITIES {
            return Err(format!(
                "priorities = {} is out of range; use 1 to {MAX_PRIORITIES}",
                self.priorities
            ));
        }
        if self.priorities > 1 && self.ordered_by_key {
            return Err(
                "a queue cannot be both prioritised and ordered by key: priorities reorder \
                 records, ordering by key forbids it"
                    .into(),
            );
        }
        if self.max_records == Some(0) || self.max_bytes == Some(0) {
            return Err("max_records and max_bytes must be at least 1 when set".into());
        }
        if let Some(filter) = &self.filter {
            crate::route::Filter::parse(filter).map_err(|err| err.to_string())?;
        }
        let retry = &self.retry;
        if !(retry.factor >= 1.0 && retry.factor.is_finite()) {
            return Err(format!("retry factor {} must be at least 1", retry.factor));
        }
        if !(0.0..=1.0).contains(&retry.jitter) {
            return Err(format!(
                "retry jitter {} must be between 0 and 1",
                retry.jitter
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let retry = RetryPolicy {
            base_ms: 100,
            factor: 2.0,
            cap_ms: 1_000,
            jitter: 0.0,
        };
        assert_eq!(retry.delay_ms(1, 0.5), 100);
        assert_eq!(retry.delay_ms(3, 0.5), 400);
        assert_eq!(retry.delay_ms(10, 0.5), 1_000);
        let jittered = RetryPolicy {
            jitter: 0.5,
            ..retry
        };
        assert_eq!(jittered.delay_ms(1, 0.0), 50);
        assert_eq!(jittered.delay_ms(1, 1.0), 150);
        assert_eq!(RetryPolicy::default().delay_ms(4, 0.3), 0);
    }

    #[test]
    fn contradictions_are_named() {
        let config = QueueConfig {
            priorities: 3,
            ordered_by_key: true,
            ..QueueConfig::default()
        };
        assert!(config
            .validate()
            .expect_err("both")
            .contains("ordered by key"));
        let config = QueueConfig {
            priorities: 11,
            ..QueueConfig::default()
        };
        assert!(config.validate().expect_err("too many").contains("1 to 10"));
    }
}
