//! Values of the pub/sub requests (kinds 28 to 30) and the push frame that carries messages
//! to subscribers.
//!
//! Every other frame a server sends answers a request; a push answers none. It still has the
//! response header (`kind | request_id | status`) so that the one reader loop of a client
//! can cut it out of the stream like any response, but with the reserved kind
//! [`PUSH_KIND`], request id 0 and status 0, which no response ever carries: kind 0xFFFF is
//! no request kind, and id 0 with status 0 is never a success. A client that never
//! subscribes is never sent one.
//!
//! A push belongs to one subscription: its header names the subscription and the
//! subscriber's cumulative drop count once, and its messages follow. A push with no messages
//! is a drop notice: records were dropped after the last message the subscriber was sent.

use std::borrow::Borrow;

use bytes::{Bytes, BytesMut};

use crate::codec::{Reader, Wire, Writer};
use crate::error::{BodyError, DecodeError, EncodeError};
use crate::frame::{write_frame, RESPONSE_HEADER_LEN};

/// Kind of a push frame; never the kind of a request.
pub const PUSH_KIND: u16 = 0xFFFF;

/// Bytes a message takes in a push besides its subject, key, value and headers: the
/// subject's length, the timestamp, the two option tags and the header count.
pub const MESSAGE_OVERHEAD: usize = 2 + 8 + 1 + 1 + 4;

fn put_blob(w: &mut Writer<'_>, value: &Bytes) -> Result<(), EncodeError> {
    w.blob("record bytes", value)
}

/// A record to publish: no offset, no timestamp (the server stamps it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PublishRecordWire {
    /// Key; also picks the partition when the subject is a topic.
    pub key: Option<Bytes>,
    /// Payload.
    pub value: Option<Bytes>,
    /// Headers; a request carries `reply-to` and `correlation-id` here.
    pub headers: Vec<(String, Bytes)>,
}

impl PublishRecordWire {
    /// A record with this value, no key and no headers.
    pub fn new(value: impl Into<Bytes>) -> PublishRecordWire {
        PublishRecordWire {
            value: Some(value.into()),
            ..PublishRecordWire::default()
        }
    }
}

impl Wire for PublishRecordWire {
    const MIN_LEN: usize = 1 + 1 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.option(self.key.as_ref(), put_blob)?;
        w.option(self.value.as_ref(), put_blob)?;
        w.list("headers", &self.headers)
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        Ok(PublishRecordWire {
            key: r.option("key", |r| r.blob("key"))?,
            value: r.option("value", |r| r.blob("value"))?,
            headers: r.list("headers")?,
        })
    }
}

/// One published record as a subscriber receives it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageWire {
    /// The subject it was published to.
    pub subject: String,
    /// When the server received it, ms since the Unix epoch.
    pub timestamp: i64,
    /// Key.
    pub key: Option<Bytes>,
    /// Payload.
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Vec<(String, Bytes)>,
}

impl MessageWire {
    /// Bytes this message takes in a push.
    pub fn encoded_len(&self) -> usize {
        let blob = |field: &Option<Bytes>| field.as_ref().map_or(0, |bytes| 4 + bytes.len());
        let headers: usize = (self.headers.iter())
            .map(|(name, value)| 2 + name.len() + 4 + value.len())
            .sum();
        MESSAGE_OVERHEAD + self.subject.len() + blob(&self.key) + blob(&self.value) + headers
    }
}

impl Wire for MessageWire {
    const MIN_LEN: usize = MESSAGE_OVERHEAD;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.string("subject", &self.subject)?;
        w.i64(self.timestamp);
        w.option(self.key.as_ref(), put_blob)?;
        w.option(self.value.as_ref(), put_blob)?;
        w.list("headers", &self.headers)
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        Ok(MessageWire {
            subject: r.string("subject")?,
            timestamp: r.i64("timestamp")?,
            key: r.option("key", |r| r.blob("key"))?,
            value: r.option("value", |r| r.blob("value"))?,
            headers: r.list("headers")?,
        })
    }
}

/// The body of a push frame: messages of one subscription, in publish order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Push {
    /// The id the client gave the subscription in `Subscribe`.
    pub subscription_id: u32,
    /// Records the server has dropped for this subscription since it began, its buffer
    /// being full; cumulative, so a lost push cannot make the count wrong.
    pub dropped_total: u64,
    /// Zero or more messages; zero makes the push a drop notice.
    pub messages: Vec<MessageWire>,
}

/// Whether a payload cut out of a server's stream is a push rather than a response: kind
/// [`PUSH_KIND`] with request id 0 and status 0. (An error answering a request of kind
/// 0xFFFF, which a server may send to a client that sent one, has a non-zero status.)
pub fn is_push(payload: &[u8]) -> bool {
    payload.get(..RESPONSE_HEADER_LEN) == Some(&[0xff, 0xff, 0, 0, 0, 0, 0, 0][..])
}

/// Appends `push` as one complete frame to `buf`; on error `buf` is left as it was.
pub fn encode_push(push: &Push, buf: &mut BytesMut) -> Result<(), EncodeError> {
    encode_push_of(
        push.subscription_id,
        push.dropped_total,
        &push.messages,
        buf,
    )
}

/// Like [`encode_push`], for messages held elsewhere: a server shares one copy of each
/// message among all its subscribers and encodes from that, without cloning it.
pub fn encode_push_of<M: Borrow<MessageWire>>(
    subscription_id: u32,
    dropped_total: u64,
    messages: &[M],
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let count = u32::try_from(messages.len()).map_err(|_| EncodeError::TooManyItems {
        field: "messages",
        count: messages.len(),
    })?;
    write_frame(buf, |w| {
        w.u16(PUSH_KIND);
        w.u32(0);
        w.u16(0);
        w.u32(subscription_id);
        w.u64(dropped_total);
        w.u32(count);
        for message in messages {
            message.borrow().encode(w)?;
        }
        Ok(())
    })
}

/// Decodes a push payload (one for which [`is_push`] holds). Byte blobs in the result are
/// slices of `payload`, not copies.
pub fn decode_push(payload: Bytes) -> Result<Push, DecodeError> {
    let len = payload.len();
    let too_short = |_| DecodeError::TooShort {
        len,
        need: RESPONSE_HEADER_LEN,
    };
    let mut r = Reader::new(payload);
    let kind = r.u16("kind").map_err(too_short)?;
    let request_id = r.u32("request_id").map_err(too_short)?;
    let status = r.u16("status").map_err(too_short)?;
    let malformed = |problem| DecodeError::Malformed {
        kind,
        request_id,
        problem,
    };
    if kind != PUSH_KIND {
        // Not a push at all: the caller should have decoded it as a response.
        return Err(DecodeError::UnknownResponse { kind, request_id });
    }
    if request_id != 0 || status != 0 {
        return Err(malformed(BodyError::InvalidTag {
            field: "push header (request id and status must be 0)",
            value: 1,
        }));
    }
    let push = Push {
        subscription_id: r.u32("subscription_id").map_err(malformed)?,
        dropped_total: r.u64("dropped_total").map_err(malformed)?,
        messages: r.list("messages").map_err(malformed)?,
    };
    r.finish().map_err(malformed)?;
    Ok(push)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{split_frame, DEFAULT_MAX_FRAME};

    fn message(subject: &str) -> MessageWire {
        MessageWire {
            subject: subject.into(),
            timestamp: -3,
            key: Some(Bytes::from_static(b"k")),
            value: None,
            headers: vec![("reply-to".into(), Bytes::from_static(b"_INBOX.1.2"))],
        }
    }

    fn payload(push: &Push) -> Bytes {
        let mut buf = BytesMut::new();
        encode_push(push, &mut buf).expect("encodes");
        split_frame(&mut buf, DEFAULT_MAX_FRAME)
            .expect("valid frame")
            .expect("complete frame")
    }

    #[test]
    fn a_drop_notice_has_the_documented_layout() {
        let push = Push {
            subscription_id: 7,
            dropped_total: 258,
            messages: vec![],
        };
        let mut buf = BytesMut::new();
        encode_push(&push, &mut buf).expect("encodes");
        let expected = [
            0, 0, 0, 24, // frame length
            0xff, 0xff, // kind: push
            0, 0, 0, 0, // request id 0
            0, 0, // status 0
            0, 0, 0, 7, // subscription id
            0, 0, 0, 0, 0, 0, 1, 2, // dropped total
            0, 0, 0, 0, // no messages
        ];
        assert_eq!(&buf[..], &expected);
        assert!(is_push(&buf[4..]));
    }

    #[test]
    fn pushes_round_trip_and_are_told_apart_from_responses() {
        let push = Push {
            subscription_id: 1,
            dropped_total: 0,
            messages: vec![message("a.b"), message("a.c")],
        };
        let bytes = payload(&push);
        assert!(is_push(&bytes));
        assert_eq!(decode_push(bytes.clone()), Ok(push));
        // A response decoder refuses it rather than mistaking it for an answer.
        assert!(matches!(
            crate::decode_response(bytes),
            Err(DecodeError::UnknownResponse {
                kind: PUSH_KIND,
                ..
            })
        ));
        assert!(!is_push(&[0, 1, 0, 0, 0, 0, 0, 0]));
        assert!(
            !is_push(&[0xff, 0xff, 0, 0, 0, 0, 0, 16]),
            "an error answering kind 0xFFFF"
        );
        assert!(!is_push(&[0xff, 0xff, 0, 0]), "too short to tell");
    }

    #[test]
    fn a_response_header_is_not_a_push() {
        let bytes = Bytes::from_static(&[0xff, 0xff, 0, 0, 0, 9, 0, 0, 0, 0, 0, 1]);
        assert!(matches!(
            decode_push(bytes),
            Err(DecodeError::Malformed { request_id: 9, .. })
        ));
    }

    #[test]
    fn truncated_and_padded_pushes_are_malformed() {
        let bytes = payload(&Push {
            subscription_id: 1,
            dropped_total: 2,
            messages: vec![message("x")],
        });
        for cut in RESPONSE_HEADER_LEN..bytes.len() {
            assert!(decode_push(bytes.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut padded = BytesMut::from(&bytes[..]);
        padded.extend_from_slice(&[0]);
        assert!(decode_push(padded.freeze()).is_err());
    }

    #[test]
    fn message_overhead_is_the_minimum_length() {
        let empty = MessageWire {
            subject: String::new(),
            timestamp: 0,
            key: None,
            value: None,
            headers: vec![],
        };
        let mut buf = BytesMut::new();
        empty.encode(&mut Writer::new(&mut buf)).expect("encodes");
        assert_eq!(buf.len(), MESSAGE_OVERHEAD);
        assert_eq!(empty.encoded_len(), MESSAGE_OVERHEAD);
    }

    #[test]
    fn encoded_len_is_exact() {
        let full = message("orders.eu");
        let mut buf = BytesMut::new();
        full.encode(&mut Writer::new(&mut buf)).expect("encodes");
        assert_eq!(full.encoded_len(), buf.len());
    }
}
