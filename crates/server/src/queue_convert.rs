//! Translation between the queue wire types and the broker's queue types.
//!
//! The wire carries every setting as optional so a creator can leave any to the defaults;
//! here absent fields become [`QueueConfig::default`]'s values, and a stats answer gets every
//! field filled back in. Factors travel as thousandths so the wire needs no floats.

use switchyard_broker::queue::{ExpiryAction, Overflow, QueueConfig, RetryPolicy};
use switchyard_broker::{Delivery, QueueStats, SendOutcome, SendRecord};
use switchyard_protocol::{
    DeliveryWire, ExpiryWire, OverflowWire, QueueConfigWire, QueueStatsWire, SendRecordWire,
    SendResultWire, SendStatus,
};

/// The settings a `CreateQueue` (or a queue `CreateSubscription`) for `name` asks for,
/// defaults filled in. An absent dead-letter queue is `<name>.dlq`; an empty name means none.
/// `filter` is the request's own field: `CreateQueue` has none, a subscription may.
pub fn queue_config(name: &str, wire: &QueueConfigWire, filter: Option<String>) -> QueueConfig {
    let defaults = QueueConfig::default();
    let retry = RetryPolicy {
        base_ms: wire.retry_base_ms.unwrap_or(defaults.retry.base_ms),
        factor: wire
            .retry_factor_milli
            .map_or(defaults.retry.factor, from_milli),
        cap_ms: wire.retry_cap_ms.unwrap_or(defaults.retry.cap_ms),
        jitter: wire
            .retry_jitter_milli
            .map_or(defaults.retry.jitter, from_milli),
    };
    let dead_letter = match wire.dead_letter.as_deref() {
        None => Some(QueueConfig::default_dead_letter(name)),
        Some("") => None,
        Some(other) => Some(other.to_string()),
    };
    QueueConfig {
        visibility_ms: wire.visibility_ms.unwrap_or(defaults.visibility_ms),
        max_deliveries: wire.max_deliveries.unwrap_or(defaults.max_deliveries),
        dead_letter,
        default_delay_ms: wire.default_delay_ms.unwrap_or(defaults.default_delay_ms),
        priorities: wire.priorities.unwrap_or(defaults.priorities),
        ordered_by_key: wire.ordered_by_key.unwrap_or(defaults.ordered_by_key),
        dedup_window_ms: wire.dedup_window_ms.unwrap_or(defaults.dedup_window_ms),
        max_records: wire.max_records.or(defaults.max_records),
        max_bytes: wire.max_bytes.or(defaults.max_bytes),
        overflow: wire.overflow.map_or(defaults.overflow, overflow_from_wire),
        block_timeout_ms: wire.block_timeout_ms.unwrap_or(defaults.block_timeout_ms),
        ttl_ms: wire.ttl_ms.or(defaults.ttl_ms),
        on_expiry: wire.on_expiry.map_or(defaults.on_expiry, expiry_from_wire),
        retry,
        protect_from_retention: wire
            .protect_from_retention
            .unwrap_or(defaults.protect_from_retention),
        filter,
    }
}

/// Every setting of a queue, for a stats answer. Limits that are off (`None`) stay absent.
pub fn queue_config_wire(config: &QueueConfig) -> QueueConfigWire {
    QueueConfigWire {
        visibility_ms: Some(config.visibility_ms),
        max_deliveries: Some(config.max_deliveries),
        dead_letter: Some(config.dead_letter.clone().unwrap_or_default()),
        default_delay_ms: Some(config.default_delay_ms),
        priorities: Some(config.priorities),
        ordered_by_key: Some(config.ordered_by_key),
        dedup_window_ms: Some(config.dedup_window_ms),
        max_records: config.max_records,
        max_bytes: config.max_bytes,
        overflow: Some(match config.overflow {
            Overflow::Reject => OverflowWire::Reject,
            Overflow::DropOldest => OverflowWire::DropOldest,
            Overflow::Block => OverflowWire::Block,
        }),
        block_timeout_ms: Some(config.block_timeout_ms),
        ttl_ms: config.ttl_ms,
        on_expiry: Some(match config.on_expiry {
            ExpiryAction::DeadLetter => ExpiryWire::DeadLetter,
            ExpiryAction::Drop => ExpiryWire::Drop,
        }),
        retry_base_ms: Some(config.retry.base_ms),
        retry_factor_milli: Some(to_milli(config.retry.factor)),
        retry_cap_ms: Some(config.retry.cap_ms),
        retry_jitter_milli: Some(to_milli(config.retry.jitter)),
        protect_from_retention: Some(config.protect_from_retention),
    }
}

fn from_milli(milli: u32) -> f64 {
    f64::from(milli) / 1000.0
}

fn to_milli(value: f64) -> u32 {
    // Saturating: validation keeps factors finite, and u32 thousandths reach four million.
    (value * 1000.0).round().clamp(0.0, f64::from(u32::MAX)) as u32
}

fn overflow_from_wire(wire: OverflowWire) -> Overflow {
    match wire {
        OverflowWire::Reject => Overflow::Reject,
        OverflowWire::DropOldest => Overflow::DropOldest,
        OverflowWire::Block => Overflow::Block,
    }
}

fn expiry_from_wire(wire: ExpiryWire) -> ExpiryAction {
    match wire {
        ExpiryWire::DeadLetter => ExpiryAction::DeadLetter,
        ExpiryWire::Drop => ExpiryAction::Drop,
    }
}

pub fn send_record(wire: SendRecordWire) -> SendRecord {
    SendRecord {
        key: wire.key,
        value: wire.value,
        headers: wire.headers,
        delay_ms: wire.delay_ms,
        priority: wire.priority,
        dedup_id: wire.dedup_id,
        ttl_ms: wire.ttl_ms,
    }
}

/// The wire result of one sent record; a full queue's message names the queue and limit.
pub fn send_result(queue: &str, outcome: &SendOutcome) -> SendResultWire {
    match outcome {
        SendOutcome::Stored((partition, offset)) => SendResultWire {
            status: SendStatus::Stored,
            partition: *partition,
            offset: *offset,
            message: String::new(),
        },
        SendOutcome::Duplicate((partition, offset)) => SendResultWire {
            status: SendStatus::Duplicate,
            partition: *partition,
            offset: *offset,
            message: String::new(),
        },
        SendOutcome::Full { limit } => SendResultWire {
            status: SendStatus::Full,
            partition: 0,
            offset: 0,
            message: switchyard_broker::BrokerError::QueueFull {
                queue: queue.to_string(),
                limit: limit.clone(),
            }
            .to_string(),
        },
    }
}

pub fn delivery(delivery: Delivery) -> DeliveryWire {
    let record = delivery.record;
    DeliveryWire {
        token: delivery.token,
        partition: delivery.partition,
        offset: record.offset,
        deliveries: delivery.deliveries,
        timestamp: record.timestamp,
        key: record.key,
        value: record.value,
        headers: record.headers,
    }
}

pub fn queue_stats(stats: QueueStats, config: &QueueConfig) -> QueueStatsWire {
    QueueStatsWire {
        ready: stats.ready,
        in_flight: stats.in_flight,
        delayed: stats.delayed,
        blocked: stats.blocked,
        dead_lettered: stats.dead_lettered,
        oldest_ready_age_ms: stats.oldest_ready_age_ms,
        delivered_total: stats.delivered_total,
        acked_total: stats.acked_total,
        dead_lettered_total: stats.dead_lettered_total,
        expired_total: stats.expired_total,
        dropped_total: stats.dropped_total,
        lost_total: stats.lost_total,
        config: queue_config_wire(config),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_settings_take_the_defaults_and_the_dead_letter_rule() {
        let config = queue_config("jobs", &QueueConfigWire::default(), None);
        assert_eq!(config.dead_letter.as_deref(), Some("jobs.dlq"));
        assert_eq!(config.visibility_ms, QueueConfig::default().visibility_ms);
        let none = QueueConfigWire {
            dead_letter: Some(String::new()),
            retry_factor_milli: Some(1_500),
            ..QueueConfigWire::default()
        };
        let config = queue_config("jobs", &none, None);
        assert_eq!(config.dead_letter, None);
        assert_eq!(config.retry.factor, 1.5);
    }

    #[test]
    fn stats_config_round_trips_through_the_wire() {
        let config = QueueConfig {
            dead_letter: Some("elsewhere".into()),
            max_records: Some(5),
            overflow: Overflow::Block,
            ..QueueConfig::default()
        };
        let wire = queue_config_wire(&config);
        assert_eq!(queue_config("q", &wire, None), config);
        let without = QueueConfig {
            dead_letter: None,
            ..config
        };
        assert_eq!(
            queue_config("q", &queue_config_wire(&without), None),
            without
        );
    }
}
