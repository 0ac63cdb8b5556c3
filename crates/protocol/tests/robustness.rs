//! Hostile and broken input: truncation, random bytes, corrupted encodings, absurd counts.
//!
//! The only acceptable outcomes are a value or an error; never a panic, and never an
//! allocation sized by a number the peer made up.

mod strategies;

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use switchyard_protocol::*;

/// Feeds arbitrary bytes through the reader loop a connection would run.
fn drive(bytes: &[u8], decode: impl Fn(Bytes)) {
    let mut buf = BytesMut::from(bytes);
    while let Ok(Some(payload)) = split_frame(&mut buf, DEFAULT_MAX_FRAME) {
        decode(payload);
    }
}

fn encoded_request(id: u32, request: &Request) -> BytesMut {
    let mut buf = BytesMut::new();
    encode_request(id, request, &mut buf).expect("encodes");
    buf
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every strict prefix of a request payload is an error, and every strict prefix of its
    /// frame is "need more bytes".
    #[test]
    fn truncated_requests_are_errors(id in any::<u32>(), request in strategies::request()) {
        let frame = encoded_request(id, &request);
        for cut in 0..frame.len() {
            let mut partial = BytesMut::from(&frame[..cut]);
            prop_assert_eq!(split_frame(&mut partial, DEFAULT_MAX_FRAME), Ok(None));
        }
        let payload = frame.freeze().slice(LENGTH_PREFIX_LEN..);
        for cut in 0..payload.len() {
            let result = decode_request(payload.slice(..cut));
            prop_assert!(result.is_err(), "prefix of {} bytes decoded: {:?}", cut, result);
            if cut >= REQUEST_HEADER_LEN {
                let error = result.expect_err("checked above");
                prop_assert_eq!(error.request_id(), Some(id));
                prop_assert_eq!(error.error_code(), ErrorCode::MalformedRequest);
            }
        }
    }

    #[test]
    fn truncated_responses_are_errors(
        id in any::<u32>(),
        (kind, result) in strategies::response(),
    ) {
        let mut frame = BytesMut::new();
        encode_response(id, kind, &result, &mut frame).expect("encodes");
        let payload = frame.freeze().slice(LENGTH_PREFIX_LEN..);
        for cut in 0..payload.len() {
            prop_assert!(decode_response(payload.slice(..cut)).is_err(), "cut {}", cut);
        }
    }

    /// One appended byte is always reported, never silently ignored.
    #[test]
    fn trailing_bytes_are_errors(id in any::<u32>(), request in strategies::request()) {
        let mut payload = encoded_request(id, &request).split_off(LENGTH_PREFIX_LEN);
        payload.put_u8(0);
        let error = decode_request(payload.freeze()).expect_err("trailing byte");
        let is_trailing = matches!(
            error,
            DecodeError::Malformed { problem: BodyError::TrailingBytes { count: 1 }, .. }
        );
        prop_assert!(is_trailing, "{:?}", error);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        drive(&bytes, |payload| { let _ = decode_request(payload); });
        drive(&bytes, |payload| { let _ = decode_response(payload); });
        let _ = decode_request(Bytes::copy_from_slice(&bytes));
        let _ = decode_response(Bytes::copy_from_slice(&bytes));
    }

    /// Corrupting one byte of a valid request either fails cleanly or yields a value that
    /// re-encodes to exactly the corrupted bytes.
    #[test]
    fn corrupted_requests_fail_cleanly_or_stay_canonical(
        id in any::<u32>(),
        request in strategies::request(),
        position in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let mut payload = encoded_request(id, &request).split_off(LENGTH_PREFIX_LEN);
        let at = position.index(payload.len());
        payload[at] = value;
        let corrupted = payload.freeze();
        if let Ok((id, decoded)) = decode_request(corrupted.clone()) {
            let reencoded = encoded_request(id, &decoded).split_off(LENGTH_PREFIX_LEN);
            prop_assert_eq!(&reencoded[..], &corrupted[..]);
        }
    }

    #[test]
    fn truncated_pushes_are_errors(push in strategies::pubsub::push()) {
        let mut frame = BytesMut::new();
        encode_push(&push, &mut frame).expect("encodes");
        let payload = frame.freeze().slice(LENGTH_PREFIX_LEN..);
        for cut in 0..payload.len() {
            prop_assert!(decode_push(payload.slice(..cut)).is_err(), "cut {}", cut);
        }
    }

    #[test]
    fn corrupted_responses_never_panic(
        id in any::<u32>(),
        (kind, result) in strategies::response(),
        position in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let mut frame = BytesMut::new();
        encode_response(id, kind, &result, &mut frame).expect("encodes");
        let mut payload = frame.split_off(LENGTH_PREFIX_LEN);
        let at = position.index(payload.len());
        payload[at] = value;
        let _ = decode_response(payload.freeze());
    }
}

/// A header with kind and request id, then `body`.
fn request_payload(kind: u16, id: u32, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_u16(kind);
    buf.put_u32(id);
    buf.put_slice(body);
    buf.freeze()
}

#[test]
fn absurd_list_count_is_rejected_before_allocating() {
    // Heartbeat { group: "", member_id: "", generation: 0, owned: <4 billion items> }
    let mut body = vec![0, 0, 0, 0, 0, 0, 0, 0];
    body.extend_from_slice(&u32::MAX.to_be_bytes());
    body.extend_from_slice(&[0, 0, 0, 1]);
    let error = decode_request(request_payload(11, 77, &body)).expect_err("impossible count");
    assert_eq!(
        error,
        DecodeError::Malformed {
            kind: 11,
            request_id: 77,
            problem: BodyError::CountTooLarge {
                field: "owned",
                count: u32::MAX,
                remaining: 4
            }
        }
    );
    assert!(error.to_string().contains("4294967295"), "{error}");
}

#[test]
fn absurd_blob_length_is_rejected() {
    // Produce { topic: "t", partition: 0, batch: <4 GiB claimed, 3 bytes present> }
    let body = [0, 1, b't', 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3];
    let error = decode_request(request_payload(7, 1, &body)).expect_err("short blob");
    assert!(matches!(
        error,
        DecodeError::Malformed {
            problem: BodyError::Truncated { field: "batch", .. },
            ..
        }
    ));
}

#[test]
fn invalid_utf8_is_malformed() {
    let body = [0, 2, 0xff, 0xfe];
    let error = decode_request(request_payload(3, 9, &body)).expect_err("bad utf-8");
    assert_eq!(error.request_id(), Some(9));
    assert!(matches!(
        error,
        DecodeError::Malformed {
            problem: BodyError::InvalidUtf8 { .. },
            ..
        }
    ));
}

#[test]
fn unknown_request_kind_is_its_own_error() {
    let error = decode_request(request_payload(4000, 5, &[])).expect_err("unknown kind");
    assert_eq!(
        error,
        DecodeError::UnknownRequest {
            kind: 4000,
            request_id: 5
        }
    );
    assert_eq!(error.error_code(), ErrorCode::UnknownRequest);
    let answer = error.to_error_response();
    assert_eq!(answer.code, ErrorCode::UnknownRequest);
    // The server can echo the unknown kind back.
    let mut buf = BytesMut::new();
    encode_response(5, 4000u16, &Err(answer.clone()), &mut buf).expect("encodes");
    let payload = split_frame(&mut buf, DEFAULT_MAX_FRAME)
        .expect("valid")
        .expect("complete");
    assert_eq!(decode_response(payload), Ok((5, Err(answer))));
}

#[test]
fn oversized_frame_is_rejected_from_its_prefix_alone() {
    let mut buf = BytesMut::with_capacity(16);
    buf.put_u32(DEFAULT_MAX_FRAME + 1);
    let capacity = buf.capacity();
    let error = split_frame(&mut buf, DEFAULT_MAX_FRAME).expect_err("over the limit");
    assert_eq!(
        error,
        FrameError::TooLarge {
            len: DEFAULT_MAX_FRAME + 1,
            max: DEFAULT_MAX_FRAME
        }
    );
    assert_eq!(error.error_code(), ErrorCode::FrameTooLarge);
    assert_eq!(buf.capacity(), capacity, "nothing was reserved");
}

#[test]
fn frame_at_the_limit_is_accepted() {
    let mut buf = BytesMut::new();
    buf.put_u32(DEFAULT_MAX_FRAME);
    assert_eq!(split_frame(&mut buf, DEFAULT_MAX_FRAME), Ok(None));
    buf.resize(LENGTH_PREFIX_LEN + DEFAULT_MAX_FRAME as usize, 0);
    let payload = split_frame(&mut buf, DEFAULT_MAX_FRAME)
        .expect("valid")
        .expect("complete");
    assert_eq!(payload.len(), DEFAULT_MAX_FRAME as usize);
}
