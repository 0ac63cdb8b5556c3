//! Bodies of the pub/sub requests (kinds 28 to 30): subscribe, unsubscribe, publish.
//!
//! Kept out of `request.rs`, as the queue bodies are, so that file stays about the stream
//! requests; the kinds, the enum variants and the header handling are all still there.

use crate::codec::{Reader, Writer};
use crate::error::{BodyError, EncodeError};
use crate::request::{Request, RequestKind};

impl Request {
    /// Encodes the body of a pub/sub request; other requests are not written by this.
    pub(crate) fn encode_pubsub_body(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self {
            Request::Subscribe {
                subscription_id,
                pattern,
                filter,
                buffer_records,
            } => {
                w.u32(*subscription_id);
                w.string("pattern", pattern)?;
                w.option(filter.as_ref(), |w, text| w.string("filter", text))?;
                w.u32(*buffer_records);
            }
            Request::Unsubscribe { subscription_id } => w.u32(*subscription_id),
            Request::Publish { subject, records } => {
                w.string("subject", subject)?;
                w.list("records", records)?;
            }
            // request.rs routes only the pub/sub requests here.
            other => unreachable!("{:?} is not a pub/sub request", other.kind()),
        }
        Ok(())
    }

    /// Decodes the body of a pub/sub request of `kind`.
    pub(crate) fn decode_pubsub_body(
        kind: RequestKind,
        r: &mut Reader,
    ) -> Result<Request, BodyError> {
        use RequestKind as K;
        Ok(match kind {
            K::Subscribe => Request::Subscribe {
                subscription_id: r.u32("subscription_id")?,
                pattern: r.string("pattern")?,
                filter: r.option("filter", |r| r.string("filter"))?,
                buffer_records: r.u32("buffer_records")?,
            },
            K::Unsubscribe => Request::Unsubscribe {
                subscription_id: r.u32("subscription_id")?,
            },
            K::Publish => Request::Publish {
                subject: r.string("subject")?,
                records: r.list("records")?,
            },
            // request.rs routes only the pub/sub kinds here.
            other => unreachable!("{other:?} is not a pub/sub request kind"),
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};

    use crate::pubsub_types::PublishRecordWire;
    use crate::{decode_request, encode_request, split_frame, Request, DEFAULT_MAX_FRAME};

    #[test]
    fn subscribe_has_the_documented_layout() {
        let request = Request::Subscribe {
            subscription_id: 3,
            pattern: "a.>".into(),
            filter: None,
            buffer_records: 10,
        };
        let mut buf = BytesMut::new();
        encode_request(1, &request, &mut buf).expect("encodes");
        let expected = [
            0, 0, 0, 20, // frame length
            0, 28, // kind: Subscribe
            0, 0, 0, 1, // request id
            0, 0, 0, 3, // subscription id
            0, 3, b'a', b'.', b'>', // pattern
            0,    // no filter
            0, 0, 0, 10, // buffer records
        ];
        assert_eq!(&buf[..], &expected);
    }

    #[test]
    fn pubsub_requests_round_trip() {
        let requests = [
            Request::Subscribe {
                subscription_id: u32::MAX,
                pattern: "orders.*".into(),
                filter: Some("key = 'x'".into()),
                buffer_records: 0,
            },
            Request::Unsubscribe { subscription_id: 9 },
            Request::Publish {
                subject: "orders.eu".into(),
                records: vec![
                    PublishRecordWire::new(Bytes::from_static(b"v")),
                    PublishRecordWire::default(),
                ],
            },
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
