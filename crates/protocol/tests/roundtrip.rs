//! Round trips through the whole pipeline a connection uses:
//! encode → byte stream → `split_frame` → decode, for every request and response variant.

mod strategies;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use switchyard_protocol::*;

fn one_payload(buf: &mut BytesMut) -> Bytes {
    let payload = split_frame(buf, DEFAULT_MAX_FRAME)
        .expect("valid frame")
        .expect("complete frame");
    assert!(buf.is_empty(), "exactly one frame was written");
    payload
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn request_round_trips(id in any::<u32>(), request in strategies::request()) {
        let mut buf = BytesMut::new();
        encode_request(id, &request, &mut buf).expect("encodes");
        let payload = one_payload(&mut buf);
        prop_assert_eq!(&payload[..2], &request.kind().as_u16().to_be_bytes());
        prop_assert_eq!(decode_request(payload), Ok((id, request)));
    }

    #[test]
    fn response_round_trips(id in any::<u32>(), (kind, result) in strategies::response()) {
        let mut buf = BytesMut::new();
        encode_response(id, kind, &result, &mut buf).expect("encodes");
        let payload = one_payload(&mut buf);
        prop_assert_eq!(&payload[..2], &kind.to_be_bytes());
        prop_assert_eq!(decode_response(payload), Ok((id, result)));
    }

    /// A push comes out as it went in, and re-encodes to the same bytes.
    #[test]
    fn push_round_trips(push in strategies::pubsub::push()) {
        let mut buf = BytesMut::new();
        encode_push(&push, &mut buf).expect("encodes");
        let original = buf.clone();
        let payload = one_payload(&mut buf);
        prop_assert!(is_push(&payload));
        let decoded = decode_push(payload).expect("decodes");
        prop_assert_eq!(&decoded, &push);
        encode_push(&decoded, &mut buf).expect("re-encodes");
        prop_assert_eq!(original, buf);
    }

    /// Decoding then re-encoding reproduces the exact bytes: the encoding is canonical.
    #[test]
    fn request_encoding_is_canonical(id in any::<u32>(), request in strategies::request()) {
        let mut first = BytesMut::new();
        encode_request(id, &request, &mut first).expect("encodes");
        let original = first.clone();
        let (id2, decoded) = decode_request(one_payload(&mut first)).expect("decodes");
        let mut second = BytesMut::new();
        encode_request(id2, &decoded, &mut second).expect("re-encodes");
        prop_assert_eq!(original, second);
    }

    /// Many frames written back to back and delivered in arbitrary chunks come out whole and
    /// in order, as with pipelined requests on a socket.
    #[test]
    fn pipelined_requests_survive_arbitrary_chunking(
        requests in proptest::collection::vec(strategies::request(), 1..12),
        chunk in 1usize..64,
    ) {
        let mut wire = BytesMut::new();
        for (id, request) in requests.iter().enumerate() {
            encode_request(id as u32, request, &mut wire).expect("encodes");
        }
        let mut input = BytesMut::new();
        let mut decoded = Vec::new();
        for piece in wire.chunks(chunk) {
            input.extend_from_slice(piece);
            while let Some(payload) = split_frame(&mut input, DEFAULT_MAX_FRAME).expect("valid") {
                decoded.push(decode_request(payload).expect("decodes"));
            }
        }
        prop_assert!(input.is_empty());
        let expected: Vec<_> = requests.into_iter().enumerate()
            .map(|(id, request)| (id as u32, request))
            .collect();
        prop_assert_eq!(decoded, expected);
    }
}

#[test]
fn handshake_exchange() {
    let hello = Request::Hello {
        min_version: 1,
        max_version: 3,
        client_name: "switchyard-cli".into(),
    };
    let mut wire = BytesMut::new();
    encode_request(1, &hello, &mut wire).expect("encodes");
    let (id, request) = decode_request(one_payload(&mut wire)).expect("decodes");
    let Request::Hello {
        min_version,
        max_version,
        ..
    } = request
    else {
        panic!("expected hello, got {request:?}");
    };
    let version = negotiate_version(min_version, max_version).expect("overlap");
    assert_eq!(version, PROTOCOL_VERSION);
    let answer = Ok(Response::HelloOk {
        version,
        server_name: "switchyard".into(),
        max_frame: DEFAULT_MAX_FRAME,
    });
    encode_response(id, RequestKind::Hello, &answer, &mut wire).expect("encodes");
    assert_eq!(decode_response(one_payload(&mut wire)), Ok((1, answer)));
}
