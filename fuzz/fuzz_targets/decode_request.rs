//! Arbitrary bytes as a client's stream: split into frames, decode each as a request.
//!
//! Beyond "never panics", anything that decodes must re-encode to exactly the payload it came
//! from, since the encoding is canonical.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchyard_protocol::{decode_request, encode_request, split_frame, DEFAULT_MAX_FRAME};

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(payload)) = split_frame(&mut buf, DEFAULT_MAX_FRAME) {
        if let Ok((request_id, request)) = decode_request(payload.clone()) {
            let mut out = BytesMut::new();
            encode_request(request_id, &request, &mut out).expect("decoded requests re-encode");
            assert_eq!(&out[4..], &payload[..], "re-encoding differs");
        }
    }
});
