//! Bodies of the claim-check blob requests (kinds 38 and 39): put a chunk, get a range.
//!
//! Kept out of `request.rs`, as the rule bodies are; the kinds and the enum variants are
//! still there.

use crate::codec::{Reader, Writer};
use crate::error::{BodyError, EncodeError};
use crate::request::{Request, RequestKind};

impl Request {
    /// Encodes the body of a blob request; other requests are not written by this.
    pub(crate) fn encode_blob_body(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self {
            Request::BlobPut {
                id,
                offset,
                total,
                data,
                last,
            } => {
                w.string("blob id", id)?;
                w.u64(*offset);
                w.u64(*total);
                w.blob("blob data", data)?;
                w.bool(*last);
            }
            Request::BlobGet { id, offset, max } => {
                w.string("blob id", id)?;
                w.u64(*offset);
                w.u32(*max);
            }
            // request.rs routes only the blob requests here.
            other => unreachable!("{:?} is not a blob request", other.kind()),
        }
        Ok(())
    }

    /// Decodes the body of a blob request of `kind`.
    pub(crate) fn decode_blob_body(
        kind: RequestKind,
        r: &mut Reader,
    ) -> Result<Request, BodyError> {
        Ok(match kind {
            RequestKind::BlobPut => Request::BlobPut {
                id: r.string("blob id")?,
                offset: r.u64("offset")?,
                total: r.u64("total")?,
                data: r.blob("blob data")?,
                last: r.bool("last")?,
            },
            RequestKind::BlobGet => Request::BlobGet {
                id: r.string("blob id")?,
                offset: r.u64("offset")?,
                max: r.u32("max")?,
            },
            // request.rs routes only the blob kinds here.
            other => unreachable!("{other:?} is not a blob request kind"),
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};

    use crate::{decode_request, encode_request, split_frame, Request, DEFAULT_MAX_FRAME};

    #[test]
    fn blob_requests_round_trip() {
        let requests = [
            Request::BlobPut {
                id: "clip-1".into(),
                offset: 8,
                total: 12,
                data: Bytes::from_static(b"tail"),
                last: true,
            },
            Request::BlobGet {
                id: "clip-1".into(),
                offset: 4,
                max: 1024,
            },
        ];
        for request in requests {
            let mut buf = BytesMut::new();
            encode_request(9, &request, &mut buf).expect("encodes");
            let payload = split_frame(&mut buf, DEFAULT_MAX_FRAME)
                .expect("valid")
                .expect("complete");
            assert_eq!(decode_request(payload), Ok((9, request)));
        }
    }
}
