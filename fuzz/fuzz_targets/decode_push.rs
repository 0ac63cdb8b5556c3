//! Arbitrary bytes as a server's stream of pushes: split into frames, decode each push.
//!
//! Anything that decodes must re-encode to exactly the payload it came from.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchyard_protocol::{decode_push, encode_push, is_push, split_frame, DEFAULT_MAX_FRAME};

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(payload)) = split_frame(&mut buf, DEFAULT_MAX_FRAME) {
        let push_kind = is_push(&payload);
        if let Ok(push) = decode_push(payload.clone()) {
            assert!(push_kind, "only push kinds decode as pushes");
            let mut out = BytesMut::new();
            encode_push(&push, &mut out).expect("decoded pushes re-encode");
            assert_eq!(&out[4..], &payload[..], "re-encoding differs");
        }
    }
});
