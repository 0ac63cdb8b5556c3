//! Wire values of the queue requests: a queue's settings, records to send, deliveries, and
//! the per-record and per-token results.
//!
//! Like [`crate::types`], these mirror broker types without depending on them, so the broker
//! may change its own while the wire stays put. Settings travel as optional fields so that a
//! creator can leave any of them to the server's defaults, and a stats answer can fill all.

use bytes::Bytes;

use crate::codec::{Reader, Wire, Writer};
use crate::error::{BodyError, EncodeError};

/// What a full queue does with a new record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OverflowWire {
    /// Refuse the record as full (tag 0).
    Reject,
    /// Drop the oldest ready record to make room (tag 1).
    DropOldest,
    /// Hold the send until there is room or `block_timeout_ms` passes (tag 2).
    Block,
}

impl Wire for OverflowWire {
    const MIN_LEN: usize = 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u8(match self {
            OverflowWire::Reject => 0,
            OverflowWire::DropOldest => 1,
            OverflowWire::Block => 2,
        });
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        match r.u8("overflow")? {
            0 => Ok(OverflowWire::Reject),
            1 => Ok(OverflowWire::DropOldest),
            2 => Ok(OverflowWire::Block),
            value => Err(BodyError::InvalidTag {
                field: "overflow",
                value,
            }),
        }
    }
}

/// What happens to a record whose time-to-live ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpiryWire {
    /// Move it to the dead-letter queue (tag 0).
    DeadLetter,
    /// Drop it, counted in the queue's stats (tag 1).
    Drop,
}

impl Wire for ExpiryWire {
    const MIN_LEN: usize = 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u8(match self {
            ExpiryWire::DeadLetter => 0,
            ExpiryWire::Drop => 1,
        });
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        match r.u8("on_expiry")? {
            0 => Ok(ExpiryWire::DeadLetter),
            1 => Ok(ExpiryWire::Drop),
            value => Err(BodyError::InvalidTag {
                field: "on_expiry",
                value,
            }),
        }
    }
}

/// Queue settings. In `CreateQueue`, `None` means "server default"; in `QueueStats` the
/// server fills in every field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct QueueConfigWire {
    /// How long a received record stays invisible unless acked, nacked or extended.
    pub visibility_ms: Option<u64>,
    /// Deliveries without an ack after which a record is dead-lettered.
    pub max_deliveries: Option<u32>,
    /// Dead-letter queue: `None` is `<name>.dlq`, `Some("")` none (dead letters are dropped).
    pub dead_letter: Option<String>,
    /// Delay of a record sent without one.
    pub default_delay_ms: Option<u64>,
    /// Priority levels, 1 for none.
    pub priorities: Option<u8>,
    /// At most one record per key in flight.
    pub ordered_by_key: Option<bool>,
    /// How long a dedup id suppresses another record with the same id.
    pub dedup_window_ms: Option<u64>,
    /// Most records the queue holds.
    pub max_records: Option<u64>,
    /// Most payload bytes the queue holds.
    pub max_bytes: Option<u64>,
    /// What a full queue does with a new record.
    pub overflow: Option<OverflowWire>,
    /// With [`OverflowWire::Block`], how long a send waits for room.
    pub block_timeout_ms: Option<u64>,
    /// Time-to-live of a record sent without one.
    pub ttl_ms: Option<u64>,
    /// What happens to an expired record.
    pub on_expiry: Option<ExpiryWire>,
    /// Retry backoff: first delay.
    pub retry_base_ms: Option<u64>,
    /// Retry backoff: growth per delivery, times 1000.
    pub retry_factor_milli: Option<u32>,
    /// Retry backoff: longest delay.
    pub retry_cap_ms: Option<u64>,
    /// Retry backoff: random spread, as a fraction times 1000.
    pub retry_jitter_milli: Option<u32>,
    /// Whether retention must keep records this queue has not acked.
    pub protect_from_retention: Option<bool>,
}

fn put_u64(w: &mut Writer<'_>, value: &u64) -> Result<(), EncodeError> {
    w.u64(*value);
    Ok(())
}

fn put_u32(w: &mut Writer<'_>, value: &u32) -> Result<(), EncodeError> {
    w.u32(*value);
    Ok(())
}

fn put_bool(w: &mut Writer<'_>, value: &bool) -> Result<(), EncodeError> {
    w.bool(*value);
    Ok(())
}

impl Wire for QueueConfigWire {
    const MIN_LEN: usize = 18;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.option(self.visibility_ms.as_ref(), put_u64)?;
        w.option(self.max_deliveries.as_ref(), put_u32)?;
        w.option(self.dead_letter.as_ref(), |w, v| w.string("dead_letter", v))?;
        w.option(self.default_delay_ms.as_ref(), put_u64)?;
        w.option(self.priorities.as_ref(), |w, v| {
            w.u8(*v);
            Ok(())
        })?;
        w.option(self.ordered_by_key.as_ref(), put_bool)?;
        w.option(self.dedup_window_ms.as_ref(), put_u64)?;
        w.option(self.max_records.as_ref(), put_u64)?;
        w.option(self.max_bytes.as_ref(), put_u64)?;
        w.option(self.overflow.as_ref(), |w, v| v.encode(w))?;
        w.option(self.block_timeout_ms.as_ref(), put_u64)?;
        w.option(self.ttl_ms.as_ref(), put_u64)?;
        w.option(self.on_expiry.as_ref(), |w, v| v.encode(w))?;
        w.option(self.retry_base_ms.as_ref(), put_u64)?;
        w.option(self.retry_factor_milli.as_ref(), put_u32)?;
        w.option(self.retry_cap_ms.as_ref(), put_u64)?;
        w.option(self.retry_jitter_milli.as_ref(), put_u32)?;
        w.option(self.protect_from_retention.as_ref(), put_bool)
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        Ok(QueueConfigWire {
            visibility_ms: r.option("visibility_ms", |r| r.u64("visibility_ms"))?,
            max_deliveries: r.option("max_deliveries", |r| r.u32("max_deliveries"))?,
            dead_letter: r.option("dead_letter", |r| r.string("dead_letter"))?,
            default_delay_ms: r.option("default_delay_ms", |r| r.u64("default_delay_ms"))?,
            priorities: r.option("priorities", |r| r.u8("priorities"))?,
            ordered_by_key: r.option("ordered_by_key", |r| r.bool("ordered_by_key"))?,
            dedup_window_ms: r.option("dedup_window_ms", |r| r.u64("dedup_window_ms"))?,
            max_records: r.option("max_records", |r| r.u64("max_records"))?,
            max_bytes: r.option("max_bytes", |r| r.u64("max_bytes"))?,
            overflow: r.option("overflow", OverflowWire::decode)?,
            block_timeout_ms: r.option("block_timeout_ms", |r| r.u64("block_timeout_ms"))?,
            ttl_ms: r.option("ttl_ms", |r| r.u64("ttl_ms"))?,
            on_expiry: r.option("on_expiry", ExpiryWire::decode)?,
            retry_base_ms: r.option("retry_base_ms", |r| r.u64("retry_base_ms"))?,
            retry_factor_milli: r.option("retry_factor_milli", |r| r.u32("retry_factor_milli"))?,
            retry_cap_ms: r.option("retry_cap_ms", |r| r.u64("retry_cap_ms"))?,
            retry_jitter_milli: r.option("retry_jitter_milli", |r| r.u32("retry_jitter_milli"))?,
            protect_from_retention: r.option("protect_from_retention", |r| {
                r.bool("protect_from_retention")
            })?,
        })
    }
}

/// A queue's depth by stage, totals since the broker started, and its settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct QueueStatsWire {
    /// Deliverable now.
    pub ready: u64,
    /// Leased to a consumer and not yet acked, nacked or expired.
    pub in_flight: u64,
    /// Waiting for a delay or a retry backoff.
    pub delayed: u64,
    /// Ordered queues: behind another record of the same key.
    pub blocked: u64,
    /// Records pending in the dead-letter queue.
    pub dead_lettered: u64,
    /// Age of the oldest ready record.
    pub oldest_ready_age_ms: Option<u64>,
    /// Deliveries made.
    pub delivered_total: u64,
    /// Records acked.
    pub acked_total: u64,
    /// Records moved to the dead-letter queue.
    pub dead_lettered_total: u64,
    /// Records that expired.
    pub expired_total: u64,
    /// Records dropped (overflow, or dying without a dead-letter queue).
    pub dropped_total: u64,
    /// Records retention removed before they were acked.
    pub lost_total: u64,
    /// Effective settings, every field filled in.
    pub config: QueueConfigWire,
}

impl Wire for QueueStatsWire {
    const MIN_LEN: usize = 5 * 8 + 1 + 6 * 8 + QueueConfigWire::MIN_LEN;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        for value in [self.ready, self.in_flight, self.delayed, self.blocked] {
            w.u64(value);
        }
        w.u64(self.dead_lettered);
        w.option(self.oldest_ready_age_ms.as_ref(), put_u64)?;
        for value in [
            self.delivered_total,
            self.acked_total,
            self.dead_lettered_total,
            self.expired_total,
            self.dropped_total,
            self.lost_total,
        ] {
            w.u64(value);
        }
        self.config.encode(w)
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        Ok(QueueStatsWire {
            ready: r.u64("ready")?,
            in_flight: r.u64("in_flight")?,
            delayed: r.u64("delayed")?,
            blocked: r.u64("blocked")?,
            dead_lettered: r.u64("dead_lettered")?,
            oldest_ready_age_ms: r
                .option("oldest_ready_age_ms", |r| r.u64("oldest_ready_age_ms"))?,
            delivered_total: r.u64("delivered_total")?,
            acked_total: r.u64("acked_total")?,
            dead_lettered_total: r.u64("dead_lettered_total")?,
            expired_total: r.u64("expired_total")?,
            dropped_total: r.u64("dropped_total")?,
            lost_total: r.u64("lost_total")?,
            config: QueueConfigWire::decode(r)?,
        })
    }
}

fn put_blob(w: &mut Writer<'_>, value: &Bytes) -> Result<(), EncodeError> {
    w.blob("record bytes", value)
}

/// A record to send to a queue. `None` fields take the queue's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SendRecordWire {
    /// Key: picks the partition, and the ordering group of an ordered queue.
    pub key: Option<Bytes>,
    /// Payload.
    pub value: Option<Bytes>,
    /// Headers; names starting with `sy-` are reserved for the broker.
    pub headers: Vec<(String, Bytes)>,
    /// Not deliverable before this delay; `Some(0)` is deliverable at once.
    pub delay_ms: Option<u64>,
    /// Priority in a queue with priorities, 0 lowest.
    pub priority: Option<u8>,
    /// Deduplication id: a second record with the same id within the window is not stored.
    pub dedup_id: Option<String>,
    /// Time-to-live.
    pub ttl_ms: Option<u64>,
}

impl SendRecordWire {
    /// A record with this value, every other field left to the queue's defaults.
    pub fn new(value: impl Into<Bytes>) -> SendRecordWire {
        SendRecordWire {
            value: Some(value.into()),
            ..SendRecordWire::default()
        }
    }
}

impl Wire for SendRecordWire {
    const MIN_LEN: usize = 1 + 1 + 4 + 1 + 1 + 1 + 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.option(self.key.as_ref(), put_blob)?;
        w.option(self.value.as_ref(), put_blob)?;
        w.list("headers", &self.headers)?;
        w.option(self.delay_ms.as_ref(), put_u64)?;
        w.option(self.priority.as_ref(), |w, v| {
            w.u8(*v);
            Ok(())
        })?;
        w.option(self.dedup_id.as_ref(), |w, v| w.string("dedup_id", v))?;
        w.option(self.ttl_ms.as_ref(), put_u64)
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        Ok(SendRecordWire {
            key: r.option("key", |r| r.blob("key"))?,
            value: r.option("value", |r| r.blob("value"))?,
            headers: r.list("headers")?,
            delay_ms: r.option("delay_ms", |r| r.u64("delay_ms"))?,
            priority: r.option("priority", |r| r.u8("priority"))?,
            dedup_id: r.option("dedup_id", |r| r.string("dedup_id"))?,
            ttl_ms: r.option("ttl_ms", |r| r.u64("ttl_ms"))?,
        })
    }
}

/// What became of one sent record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendStatus {
    /// Stored at the result's partition and offset (tag 0).
    Stored,
    /// Not stored: its dedup id was first seen on the record at the partition and offset
    /// given (tag 1).
    Duplicate,
    /// Not stored: the queue is full; retry later (tag 2).
    Full,
}

impl Wire for SendStatus {
    const MIN_LEN: usize = 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u8(match self {
            SendStatus::Stored => 0,
            SendStatus::Duplicate => 1,
            SendStatus::Full => 2,
        });
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        match r.u8("send status")? {
            0 => Ok(SendStatus::Stored),
            1 => Ok(SendStatus::Duplicate),
            2 => Ok(SendStatus::Full),
            value => Err(BodyError::InvalidTag {
                field: "send status",
                value,
            }),
        }
    }
}

/// The result of one record of a `Send`, in the order the records were sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SendResultWire {
    /// Stored, duplicate or full.
    pub status: SendStatus,
    /// Where the record (or, for a duplicate, the first record with its id) is; 0 when full.
    pub partition: u32,
    /// See `partition`.
    pub offset: u64,
    /// Why it was refused when full; empty otherwise.
    pub message: String,
}

impl Wire for SendResultWire {
    const MIN_LEN: usize = 1 + 4 + 8 + 2;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        self.status.encode(w)?;
        w.u32(self.partition);
        w.u64(self.offset);
        w.string("send message", &self.message)
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        Ok(SendResultWire {
            status: SendStatus::decode(r)?,
            partition: r.u32("partition")?,
            offset: r.u64("offset")?,
            message: r.string("send message")?,
        })
    }
}

/// A record leased to a consumer by `Receive`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeliveryWire {
    /// Lease token, for ack, nack and extend.
    pub token: String,
    /// Partition of the record in the queue's topic.
    pub partition: u32,
    /// Offset of the record in that partition.
    pub offset: u64,
    /// Deliveries of this record so far, this one included.
    pub deliveries: u32,
    /// When the record was stored, ms since the Unix epoch.
    pub timestamp: i64,
    /// Key.
    pub key: Option<Bytes>,
    /// Payload.
    pub value: Option<Bytes>,
    /// Headers, including the broker's own `sy-` headers.
    pub headers: Vec<(String, Bytes)>,
}

impl Wire for DeliveryWire {
    const MIN_LEN: usize = 2 + 4 + 8 + 4 + 8 + 1 + 1 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.string("token", &self.token)?;
        w.u32(self.partition);
        w.u64(self.offset);
        w.u32(self.deliveries);
        w.i64(self.timestamp);
        w.option(self.key.as_ref(), put_blob)?;
        w.option(self.value.as_ref(), put_blob)?;
        w.list("headers", &self.headers)
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        Ok(DeliveryWire {
            token: r.string("token")?,
            partition: r.u32("partition")?,
            offset: r.u64("offset")?,
            deliveries: r.u32("deliveries")?,
            timestamp: r.i64("timestamp")?,
            key: r.option("key", |r| r.blob("key"))?,
            value: r.option("value", |r| r.blob("value"))?,
            headers: r.list("headers")?,
        })
    }
}

/// The result of acking one token: `code` 0 for success, else an error code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AckResultWire {
    /// 0 on success, else a wire error code such as `LeaseExpired`.
    pub code: u16,
    /// Why the ack failed; empty on success.
    pub message: String,
}

impl Wire for AckResultWire {
    const MIN_LEN: usize = 2 + 2;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u16(self.code);
        w.string("ack message", &self.message)
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        Ok(AckResultWire {
            code: r.u16("ack code")?,
            message: r.string("ack message")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    fn encode<T: Wire>(value: &T) -> BytesMut {
        let mut buf = BytesMut::new();
        value.encode(&mut Writer::new(&mut buf)).expect("encodes");
        buf
    }

    fn round_trip<T: Wire + PartialEq + std::fmt::Debug>(value: T) {
        let buf = encode(&value);
        assert!(buf.len() >= T::MIN_LEN, "MIN_LEN is a lower bound");
        let mut r = Reader::new(buf.freeze());
        assert_eq!(T::decode(&mut r).expect("decodes"), value);
        r.finish().expect("no trailing bytes");
    }

    #[test]
    fn empty_queue_config_is_eighteen_absent_tags() {
        assert_eq!(&encode(&QueueConfigWire::default())[..], &[0; 18]);
        round_trip(QueueConfigWire::default());
        round_trip(QueueStatsWire::default());
        round_trip(SendRecordWire::default());
    }

    #[test]
    fn enum_tags_match_the_spec() {
        assert_eq!(&encode(&OverflowWire::Block)[..], &[2]);
        assert_eq!(&encode(&ExpiryWire::Drop)[..], &[1]);
        assert_eq!(&encode(&SendStatus::Full)[..], &[2]);
        let mut r = Reader::new(Bytes::from_static(&[3]));
        assert!(OverflowWire::decode(&mut r).is_err());
        let mut r = Reader::new(Bytes::from_static(&[3]));
        assert!(SendStatus::decode(&mut r).is_err());
    }

    #[test]
    fn bools_in_the_config_reject_other_values() {
        let mut bytes = vec![0u8; 18];
        bytes[5] = 1; // ordered_by_key present
        bytes.insert(6, 2); // ... with the value 2
        let mut r = Reader::new(Bytes::from(bytes));
        assert_eq!(
            QueueConfigWire::decode(&mut r),
            Err(BodyError::InvalidTag {
                field: "ordered_by_key",
                value: 2
            })
        );
    }
}
