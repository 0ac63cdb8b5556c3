//! Bodies of the durable subscription requests (kinds 31 to 33): create, list, delete.
//!
//! Kept out of `request.rs`, as the queue and pub/sub bodies are, so that file stays about
//! the stream requests; the kinds, the enum variants and the header handling are all still
//! there.

use crate::codec::{Reader, Wire, Writer};
use crate::error::{BodyError, EncodeError};
use crate::queue_types::QueueConfigWire;
use crate::request::{Request, RequestKind};
use crate::subscription_types::SubscriptionModeWire;
use crate::types::OffsetSpec;

impl Request {
    /// Encodes the body of a subscription request; other requests are not written by this.
    pub(crate) fn encode_subscription_body(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self {
            Request::CreateSubscription {
                topic,
                name,
                mode,
                filter,
                start,
                queue,
                partitions,
            } => {
                w.string("topic", topic)?;
                w.string("subscription name", name)?;
                mode.encode(w)?;
                w.option(filter.as_ref(), |w, text| w.string("filter", text))?;
                start.encode(w)?;
                queue.encode(w)?;
                w.u32(*partitions);
            }
            Request::ListSubscriptions { topic } => {
                w.option(topic.as_ref(), |w, text| w.string("topic", text))?;
            }
            Request::DeleteSubscription { name } => w.string("subscription name", name)?,
            // request.rs routes only the subscription requests here.
            other => unreachable!("{:?} is not a subscription request", other.kind()),
        }
        Ok(())
    }

    /// Decodes the body of a subscription request of `kind`.
    pub(crate) fn decode_subscription_body(
        kind: RequestKind,
        r: &mut Reader,
    ) -> Result<Request, BodyError> {
        use RequestKind as K;
        Ok(match kind {
            K::CreateSubscription => Request::CreateSubscription {
                topic: r.string("topic")?,
                name: r.string("subscription name")?,
                mode: SubscriptionModeWire::decode(r)?,
                filter: r.option("filter", |r| r.string("filter"))?,
                start: OffsetSpec::decode(r)?,
                queue: QueueConfigWire::decode(r)?,
                partitions: r.u32("partitions")?,
            },
            K::ListSubscriptions => Request::ListSubscriptions {
                topic: r.option("topic", |r| r.string("topic"))?,
            },
            K::DeleteSubscription => Request::DeleteSubscription {
                name: r.string("subscription name")?,
            },
            // request.rs routes only the subscription kinds here.
            other => unreachable!("{other:?} is not a subscription request kind"),
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use crate::subscription_types::SubscriptionModeWire;
    use crate::{
        decode_request, encode_request, split_frame, OffsetSpec, QueueConfigWire, Request,
        DEFAULT_MAX_FRAME,
    };

    #[test]
    fn delete_subscription_has_the_documented_layout() {
        let request = Request::DeleteSubscription { name: "s".into() };
        let mut buf = BytesMut::new();
        encode_request(1, &request, &mut buf).expect("encodes");
        let expected = [
            0, 0, 0, 9, // frame length
            0, 33, // kind: DeleteSubscription
            0, 0, 0, 1, // request id
            0, 1, b's', // name
        ];
        assert_eq!(&buf[..], &expected);
    }

    #[test]
    fn subscription_requests_round_trip() {
        let requests = [
            Request::CreateSubscription {
                topic: "flights".into(),
                name: "jfk".into(),
                mode: SubscriptionModeWire::Queue,
                filter: Some("origin = JFK".into()),
                start: OffsetSpec::Timestamp(-5),
                queue: QueueConfigWire {
                    visibility_ms: Some(30_000),
                    ..QueueConfigWire::default()
                },
                partitions: 4,
            },
            Request::ListSubscriptions { topic: None },
            Request::ListSubscriptions {
                topic: Some("flights".into()),
            },
            Request::DeleteSubscription { name: "jfk".into() },
        ];
        for request in requests {
            let mut buf = BytesMut::new();
            encode_request(5, &request, &mut buf).expect("encodes");
            let payload = split_frame(&mut buf, DEFAULT_MAX_FRAME)
                .expect("valid")
                .expect("complete");
            assert_eq!(decode_request(payload), Ok((5, request)));
        }
    }
}
