//! Length-prefixed framing: cutting payloads out of a byte stream, and wrapping them for it.
//!
//! A frame is a big-endian `u32` payload length followed by the payload. The length is the
//! first thing an attacker controls, so [`split_frame`] checks it before doing anything else,
//! and memory grows only with bytes that actually arrived: a peer that announces 16 MiB and
//! sends 4 bytes does not make us reserve 16 MiB.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::codec::Writer;
use crate::error::{EncodeError, FrameError};

/// Bytes in the length prefix.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// Bytes in a request header: `u16 kind | u32 request_id`.
pub const REQUEST_HEADER_LEN: usize = 6;

/// Bytes in a response header: `u16 kind | u32 request_id | u16 status`.
pub const RESPONSE_HEADER_LEN: usize = 8;

/// Smallest payload length a frame may declare (an empty-bodied request).
pub const MIN_FRAME: u32 = REQUEST_HEADER_LEN as u32;

/// Default largest payload length: a 16 MiB batch plus room for headers and names.
pub const DEFAULT_MAX_FRAME: u32 = 16 * 1024 * 1024 + 1024;

/// Most bytes [`split_frame`] reserves ahead for a frame that is still arriving.
const MAX_RESERVE_AHEAD: usize = 64 * 1024;

/// Takes one complete payload off the front of `buf`.
///
/// Returns `Ok(None)` while the frame is incomplete (nothing is consumed), and an error when
/// the declared length is below [`MIN_FRAME`] or above `max_frame`; after an error the stream
/// is unusable and the connection should be closed. The returned payload shares memory with
/// `buf` (no copy).
pub fn split_frame(buf: &mut BytesMut, max_frame: u32) -> Result<Option<Bytes>, FrameError> {
    let Some(prefix) = buf.get(..LENGTH_PREFIX_LEN) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if len > max_frame {
        return Err(FrameError::TooLarge {
            len,
            max: max_frame,
        });
    }
    if len < MIN_FRAME {
        return Err(FrameError::TooShort {
            len,
            min: MIN_FRAME,
        });
    }
    // `len <= max_frame <= u32::MAX`, which fits usize on every supported target.
    let total = LENGTH_PREFIX_LEN.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
    if buf.len() < total {
        let missing = total - buf.len();
        buf.reserve(missing.min(MAX_RESERVE_AHEAD));
        return Ok(None);
    }
    buf.advance(LENGTH_PREFIX_LEN);
    Ok(Some(buf.split_to(total - LENGTH_PREFIX_LEN).freeze()))
}

/// Appends one frame to `buf`, with a payload written by `write`.
///
/// The length prefix is patched in afterwards. On error `buf` is truncated back to where it
/// was, so a failed encode never leaves half a frame in an output buffer.
pub(crate) fn write_frame(
    buf: &mut BytesMut,
    write: impl FnOnce(&mut Writer<'_>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = buf.len();
    buf.put_u32(0);
    let written = write(&mut Writer::new(buf));
    let result = written.and_then(|()| {
        let len = buf.len() - start - LENGTH_PREFIX_LEN;
        u32::try_from(len).map_err(|_| EncodeError::FrameTooLarge { len })
    });
    match result {
        Ok(len) => {
            buf[start..start + LENGTH_PREFIX_LEN].copy_from_slice(&len.to_be_bytes());
            Ok(())
        }
        Err(error) => {
            buf.truncate(start);
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        write_frame(&mut buf, |w| {
            for byte in payload {
                w.u8(*byte);
            }
            Ok(())
        })
        .expect("frame encodes");
        buf
    }

    #[test]
    fn length_prefix_counts_the_payload_only() {
        let buf = frame(&[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(&buf[..4], &[0, 0, 0, 7]);
        assert_eq!(buf.len(), 11);
    }

    #[test]
    fn complete_frames_are_split_one_at_a_time() {
        let mut buf = frame(&[1; 6]);
        buf.extend_from_slice(&frame(&[2; 9]));
        let first = split_frame(&mut buf, DEFAULT_MAX_FRAME).expect("valid");
        assert_eq!(first.as_deref(), Some(&[1u8; 6][..]));
        let second = split_frame(&mut buf, DEFAULT_MAX_FRAME).expect("valid");
        assert_eq!(second.as_deref(), Some(&[2u8; 9][..]));
        assert_eq!(split_frame(&mut buf, DEFAULT_MAX_FRAME), Ok(None));
        assert!(buf.is_empty());
    }

    #[test]
    fn partial_frames_wait_without_consuming() {
        let full = frame(&[9; 20]);
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(
                split_frame(&mut buf, DEFAULT_MAX_FRAME),
                Ok(None),
                "cut {cut}"
            );
            assert_eq!(buf.len(), cut);
        }
    }

    #[test]
    fn oversized_length_is_rejected_without_reserving() {
        let mut buf = BytesMut::with_capacity(8);
        buf.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        let capacity = buf.capacity();
        assert_eq!(
            split_frame(&mut buf, DEFAULT_MAX_FRAME),
            Err(FrameError::TooLarge {
                len: u32::MAX,
                max: DEFAULT_MAX_FRAME
            })
        );
        assert_eq!(buf.capacity(), capacity);
        assert_eq!(buf.len(), 4);
    }

    #[test]
    fn limit_is_inclusive() {
        let mut buf = BytesMut::from(&[0, 0, 0, 10][..]);
        assert_eq!(split_frame(&mut buf, 10), Ok(None));
        let mut buf = BytesMut::from(&[0, 0, 0, 11][..]);
        assert!(matches!(
            split_frame(&mut buf, 10),
            Err(FrameError::TooLarge { len: 11, max: 10 })
        ));
    }

    #[test]
    fn error_message_names_length_and_limit() {
        let error = FrameError::TooLarge { len: 99, max: 10 };
        assert_eq!(
            error.to_string(),
            "frame length 99 exceeds the limit of 10 bytes"
        );
    }

    #[test]
    fn too_short_length_is_rejected() {
        for len in 0..MIN_FRAME {
            let mut buf = BytesMut::new();
            buf.put_u32(len);
            buf.extend_from_slice(&[0; 8]);
            assert_eq!(
                split_frame(&mut buf, DEFAULT_MAX_FRAME),
                Err(FrameError::TooShort { len, min: 6 })
            );
        }
    }

    #[test]
    fn waiting_for_a_large_frame_reserves_a_bounded_amount() {
        let mut buf = BytesMut::new();
        buf.put_u32(DEFAULT_MAX_FRAME);
        assert_eq!(split_frame(&mut buf, DEFAULT_MAX_FRAME), Ok(None));
        assert!(buf.capacity() <= LENGTH_PREFIX_LEN + MAX_RESERVE_AHEAD * 2);
    }

    #[test]
    fn failed_write_leaves_buffer_untouched() {
        let mut buf = BytesMut::from(&b"keep"[..]);
        let result = write_frame(&mut buf, |w| {
            w.u32(7);
            Err(EncodeError::ZeroErrorCode)
        });
        assert_eq!(result, Err(EncodeError::ZeroErrorCode));
        assert_eq!(&buf[..], b"keep");
    }
}
