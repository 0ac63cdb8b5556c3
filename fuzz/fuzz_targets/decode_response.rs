//! Arbitrary bytes as a server's stream: split into frames, decode each as a response.
//!
//! Anything that decodes must re-encode to exactly the payload it came from.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchyard_protocol::{decode_response, encode_response, split_frame, DEFAULT_MAX_FRAME};

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(payload)) = split_frame(&mut buf, DEFAULT_MAX_FRAME) {
        if let Ok((request_id, result)) = decode_response(payload.clone()) {
            let kind = u16::from_be_bytes([payload[0], payload[1]]);
            let mut out = BytesMut::new();
            encode_response(request_id, kind, &result, &mut out)
                .expect("decoded responses re-encode");
            assert_eq!(&out[4..], &payload[..], "re-encoding differs");
        }
    }
});
