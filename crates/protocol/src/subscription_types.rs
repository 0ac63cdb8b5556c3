//! Wire values of the durable subscription requests (kinds 31 to 33): a subscription's mode
//! and the summary a listing carries.
//!
//! Where a new subscription starts travels as an [`crate::OffsetSpec`] (earliest, latest, or
//! a time), which has exactly the encoding needed; a queue subscription's settings travel
//! as a [`crate::QueueConfigWire`].

use crate::codec::{Reader, Wire, Writer};
use crate::error::{BodyError, EncodeError};

/// How a subscription hands out records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionModeWire {
    /// A consumer group: partitions shared among members (tag 0).
    Stream,
    /// A consumer group whose earliest member holds every partition (tag 1).
    Exclusive,
    /// Competing consumers with leases, optionally filtered (tag 2).
    Queue,
}

impl Wire for SubscriptionModeWire {
    const MIN_LEN: usize = 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u8(match self {
            SubscriptionModeWire::Stream => 0,
            SubscriptionModeWire::Exclusive => 1,
            SubscriptionModeWire::Queue => 2,
        });
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        match r.u8("mode")? {
            0 => Ok(SubscriptionModeWire::Stream),
            1 => Ok(SubscriptionModeWire::Exclusive),
            2 => Ok(SubscriptionModeWire::Queue),
            value => Err(BodyError::InvalidTag {
                field: "mode",
                value,
            }),
        }
    }
}

/// One subscription, as `ListSubscriptions` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriptionSummaryWire {
    /// Subscription name (also its group's or queue's name).
    pub name: String,
    /// Topic it reads.
    pub topic: String,
    /// How it hands out records.
    pub mode: SubscriptionModeWire,
}

impl Wire for SubscriptionSummaryWire {
    const MIN_LEN: usize = 2 + 2 + 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.string("subscription name", &self.name)?;
        w.string("topic", &self.topic)?;
        self.mode.encode(w)
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        Ok(SubscriptionSummaryWire {
            name: r.string("subscription name")?,
            topic: r.string("topic")?,
            mode: SubscriptionModeWire::decode(r)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};

    use super::*;

    #[test]
    fn summary_round_trips_and_mode_tags_match_the_spec() {
        let summary = SubscriptionSummaryWire {
            name: "audit".into(),
            topic: "flights".into(),
            mode: SubscriptionModeWire::Queue,
        };
        let mut buf = BytesMut::new();
        summary.encode(&mut Writer::new(&mut buf)).expect("encodes");
        assert_eq!(buf.last(), Some(&2));
        let mut r = Reader::new(buf.freeze());
        assert_eq!(SubscriptionSummaryWire::decode(&mut r), Ok(summary));
        r.finish().expect("no trailing bytes");
        let mut r = Reader::new(Bytes::from_static(&[3]));
        assert!(SubscriptionModeWire::decode(&mut r).is_err());
    }
}
