//! Bodies of the event rule requests (kinds 34 to 37): create, list, delete, trace.
//!
//! Kept out of `request.rs`, as the subscription bodies are; the kinds and the enum variants
//! are still there.

use crate::codec::{Reader, Wire, Writer};
use crate::error::{BodyError, EncodeError};
use crate::request::{Request, RequestKind};
use crate::rule_types::RuleWire;

impl Request {
    /// Encodes the body of a rule request; other requests are not written by this.
    pub(crate) fn encode_rule_body(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self {
            Request::CreateRule { rule } => rule.encode(w)?,
            Request::ListRules => {}
            Request::DeleteRule { name } => w.string("rule name", name)?,
            Request::Trace {
                topic,
                partition,
                offset,
            } => {
                w.string("topic", topic)?;
                w.u32(*partition);
                w.u64(*offset);
            }
            // request.rs routes only the rule requests here.
            other => unreachable!("{:?} is not a rule request", other.kind()),
        }
        Ok(())
    }

    /// Decodes the body of a rule request of `kind`.
    pub(crate) fn decode_rule_body(
        kind: RequestKind,
        r: &mut Reader,
    ) -> Result<Request, BodyError> {
        use RequestKind as K;
        Ok(match kind {
            K::CreateRule => Request::CreateRule {
                rule: RuleWire::decode(r)?,
            },
            K::ListRules => Request::ListRules,
            K::DeleteRule => Request::DeleteRule {
                name: r.string("rule name")?,
            },
            K::Trace => Request::Trace {
                topic: r.string("topic")?,
                partition: r.u32("partition")?,
                offset: r.u64("offset")?,
            },
            // request.rs routes only the rule kinds here.
            other => unreachable!("{other:?} is not a rule request kind"),
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use crate::{
        decode_request, encode_request, split_frame, Request, RuleHeaderWire, RuleWire,
        DEFAULT_MAX_FRAME,
    };

    #[test]
    fn rule_requests_round_trip() {
        let requests = [
            Request::CreateRule {
                rule: RuleWire {
                    name: "scan".into(),
                    source: "video.>".into(),
                    filter: Some("size > 10".into()),
                    target: "scanned".into(),
                    add_headers: vec![RuleHeaderWire {
                        name: "stage".into(),
                        value: "scan".into(),
                    }],
                },
            },
            Request::ListRules,
            Request::DeleteRule {
                name: "scan".into(),
            },
            Request::Trace {
                topic: "video.uploaded".into(),
                partition: 2,
                offset: 7,
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
