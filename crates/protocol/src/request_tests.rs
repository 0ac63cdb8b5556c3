//! Unit tests of request encoding and decoding.

use super::*;
use crate::frame::{split_frame, DEFAULT_MAX_FRAME};

fn payload(request_id: u32, request: &Request) -> Bytes {
    let mut buf = BytesMut::new();
    encode_request(request_id, request, &mut buf).expect("encodes");
    split_frame(&mut buf, DEFAULT_MAX_FRAME)
        .expect("valid frame")
        .expect("complete frame")
}

#[test]
fn kinds_are_numbered_in_order() {
    for (index, kind) in RequestKind::ALL.iter().enumerate() {
        assert_eq!(usize::from(kind.as_u16()), index + 1);
        assert_eq!(RequestKind::from_u16(kind.as_u16()), Some(*kind));
    }
    assert_eq!(RequestKind::from_u16(0), None);
    assert_eq!(RequestKind::from_u16(41), None);
}

#[test]
fn hello_has_the_documented_layout() {
    let request = Request::Hello {
        min_version: 1,
        max_version: 2,
        client_name: "cli".into(),
    };
    let mut buf = BytesMut::new();
    encode_request(0x0a0b_0c0d, &request, &mut buf).expect("encodes");
    let expected = [
        0, 0, 0, 15, // frame length
        0, 1, // kind
        0x0a, 0x0b, 0x0c, 0x0d, // request id
        0, 1, 0, 2, // versions
        0, 3, b'c', b'l', b'i', // client name
    ];
    assert_eq!(&buf[..], &expected);
}

#[test]
fn empty_body_requests_are_header_only() {
    let bytes = payload(5, &Request::ListTopics);
    assert_eq!(&bytes[..], &[0, 4, 0, 0, 0, 5]);
    assert_eq!(decode_request(bytes), Ok((5, Request::ListTopics)));
}

#[test]
fn produce_batch_is_zero_copy() {
    let request = Request::Produce {
        topic: "t".into(),
        partition: 0,
        batch: Bytes::from_static(b"batch-bytes"),
    };
    let bytes = payload(1, &request);
    let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
    let (_, decoded) = decode_request(bytes).expect("decodes");
    let Request::Produce { batch, .. } = &decoded else {
        panic!("expected produce, got {decoded:?}");
    };
    assert!(range.contains(&(batch.as_ptr() as usize)));
    assert_eq!(decoded, request);
}

#[test]
fn unknown_kind_keeps_header() {
    let bytes = Bytes::from_static(&[0, 99, 0, 0, 0, 42, 1, 2, 3]);
    assert_eq!(
        decode_request(bytes),
        Err(DecodeError::UnknownRequest {
            kind: 99,
            request_id: 42
        })
    );
}

#[test]
fn bad_body_keeps_header_and_maps_to_malformed_request() {
    // DeleteTopic whose name claims 5 bytes but carries 1.
    let bytes = Bytes::from_static(&[0, 3, 0, 0, 0, 7, 0, 5, b'x']);
    let error = decode_request(bytes).expect_err("truncated body");
    assert_eq!(error.request_id(), Some(7));
    assert_eq!(error.kind(), Some(3));
    assert_eq!(error.error_code(), crate::ErrorCode::MalformedRequest);
    assert!(error.to_string().contains("topic name"), "{error}");
}

#[test]
fn trailing_bytes_are_malformed() {
    let bytes = Bytes::from_static(&[0, 15, 0, 0, 0, 1, 0]);
    assert!(matches!(
        decode_request(bytes),
        Err(DecodeError::Malformed {
            kind: 15,
            request_id: 1,
            problem: BodyError::TrailingBytes { count: 1 }
        })
    ));
}

#[test]
fn short_payload_has_no_header() {
    let error = decode_request(Bytes::from_static(&[0, 1, 0])).expect_err("too short");
    assert_eq!(error, DecodeError::TooShort { len: 3, need: 6 });
    assert_eq!(error.request_id(), None);
}

#[test]
fn failed_encode_leaves_buffer_untouched() {
    let request = Request::DeleteTopic {
        name: "n".repeat(70_000),
    };
    let mut buf = BytesMut::from(&b"prior"[..]);
    assert!(matches!(
        encode_request(1, &request, &mut buf),
        Err(EncodeError::StringTooLong { .. })
    ));
    assert_eq!(&buf[..], b"prior");
}
