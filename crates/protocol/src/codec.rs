//! Primitive readers and writers shared by every message body.
//!
//! All the defensive work against hostile input lives here, once, so message definitions can
//! read like the spec:
//!
//! - every read checks the bytes left first, so a short payload is an error, never a panic;
//! - strings and blobs are bounded by the bytes left before anything is copied or sliced;
//! - list counts are checked against the bytes left (each item needs a known minimum of bytes)
//!   before any allocation, and the up-front capacity is further capped, so a count field of
//!   four billion costs nothing;
//! - blobs are zero-copy [`Bytes`] slices of the received payload.
//!
//! Writers never fail halfway in a way callers must clean up: the top-level encoders truncate
//! the buffer back on error.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{BodyError, EncodeError};

/// Most bytes a list pre-allocates before its items prove they exist.
const MAX_PREALLOC_BYTES: usize = 64 * 1024;

/// A value with a wire encoding.
pub(crate) trait Wire: Sized {
    /// Fewest bytes any encoding of this type takes; used to reject impossible list counts.
    const MIN_LEN: usize;

    /// Appends the encoding of `self`.
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError>;

    /// Reads one value.
    fn decode(r: &mut Reader) -> Result<Self, BodyError>;
}

impl Wire for u32 {
    const MIN_LEN: usize = 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(*self);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        r.u32("list item")
    }
}

impl Wire for String {
    const MIN_LEN: usize = 2;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.string("list item", self)
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        r.string("list item")
    }
}

/// A record header: name and value.
impl Wire for (String, Bytes) {
    const MIN_LEN: usize = 2 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.string("header name", &self.0)?;
        w.blob("header value", &self.1)
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        Ok((r.string("header name")?, r.blob("header value")?))
    }
}

/// Reads primitives from a received payload.
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Reader {
        Reader { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn need(&self, need: usize, field: &'static str) -> Result<(), BodyError> {
        let have = self.buf.len();
        if have < need {
            return Err(BodyError::Truncated { field, need, have });
        }
        Ok(())
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, BodyError> {
        self.need(1, field)?;
        Ok(self.buf.get_u8())
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, BodyError> {
        self.need(2, field)?;
        Ok(self.buf.get_u16())
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, BodyError> {
        self.need(4, field)?;
        Ok(self.buf.get_u32())
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, BodyError> {
        self.need(8, field)?;
        Ok(self.buf.get_u64())
    }

    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, BodyError> {
        self.need(8, field)?;
        Ok(self.buf.get_i64())
    }

    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, BodyError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(BodyError::InvalidTag { field, value }),
        }
    }

    /// A `u16` length followed by that many bytes of UTF-8.
    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, BodyError> {
        let len = usize::from(self.u16(field)?);
        self.need(len, field)?;
        let raw = self.buf.split_to(len);
        match std::str::from_utf8(&raw) {
            Ok(text) => Ok(text.to_owned()),
            Err(_) => Err(BodyError::InvalidUtf8 { field }),
        }
    }

    /// A `u32` length followed by that many bytes, returned as a slice of the payload.
    pub(crate) fn blob(&mut self, field: &'static str) -> Result<Bytes, BodyError> {
        let len = self.u32(field)?;
        // A length that does not fit usize certainly exceeds what is left.
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.need(len, field)?;
        Ok(self.buf.split_to(len))
    }

    /// A `u8` tag (0 absent, 1 present) followed by the value when present.
    pub(crate) fn option<T>(
        &mut self,
        field: &'static str,
        read: impl FnOnce(&mut Reader) -> Result<T, BodyError>,
    ) -> Result<Option<T>, BodyError> {
        match self.u8(field)? {
            0 => Ok(None),
            1 => read(self).map(Some),
            value => Err(BodyError::InvalidTag { field, value }),
        }
    }

    /// A `u32` count followed by that many items.
    pub(crate) fn list<T: Wire>(&mut self, field: &'static str) -> Result<Vec<T>, BodyError> {
        let count = self.u32(field)?;
        let remaining = self.remaining();
        let count_usize = usize::try_from(count).unwrap_or(usize::MAX);
        if count_usize > remaining / T::MIN_LEN.max(1) {
            return Err(BodyError::CountTooLarge {
                field,
                count,
                remaining,
            });
        }
        let prealloc = MAX_PREALLOC_BYTES / std::mem::size_of::<T>().max(1);
        let mut items = Vec::with_capacity(count_usize.min(prealloc));
        for _ in 0..count {
            items.push(T::decode(self)?);
        }
        Ok(items)
    }

    /// Fails if any bytes remain; called once a body is complete.
    pub(crate) fn finish(self) -> Result<(), BodyError> {
        match self.buf.len() {
            0 => Ok(()),
            count => Err(BodyError::TrailingBytes { count }),
        }
    }
}

/// Appends primitives to an outgoing buffer.
pub(crate) struct Writer<'a> {
    buf: &'a mut BytesMut,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut BytesMut) -> Writer<'a> {
        Writer { buf }
    }

    pub(crate) fn u8(&mut self, value: u8) {
        self.buf.put_u8(value);
    }

    pub(crate) fn u16(&mut self, value: u16) {
        self.buf.put_u16(value);
    }

    pub(crate) fn u32(&mut self, value: u32) {
        self.buf.put_u32(value);
    }

    pub(crate) fn u64(&mut self, value: u64) {
        self.buf.put_u64(value);
    }

    pub(crate) fn i64(&mut self, value: i64) {
        self.buf.put_i64(value);
    }

    pub(crate) fn bool(&mut self, value: bool) {
        self.buf.put_u8(u8::from(value));
    }

    pub(crate) fn string(&mut self, field: &'static str, value: &str) -> Result<(), EncodeError> {
        let len = u16::try_from(value.len()).map_err(|_| EncodeError::StringTooLong {
            field,
            len: value.len(),
        })?;
        self.buf.put_u16(len);
        self.buf.put_slice(value.as_bytes());
        Ok(())
    }

    pub(crate) fn blob(&mut self, field: &'static str, value: &[u8]) -> Result<(), EncodeError> {
        let len = u32::try_from(value.len()).map_err(|_| EncodeError::BlobTooLong {
            field,
            len: value.len(),
        })?;
        self.buf.put_u32(len);
        self.buf.put_slice(value);
        Ok(())
    }

    pub(crate) fn option<T>(
        &mut self,
        value: Option<&T>,
        write: impl FnOnce(&mut Writer<'a>, &T) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        match value {
            None => {
                self.buf.put_u8(0);
                Ok(())
            }
            Some(inner) => {
                self.buf.put_u8(1);
                write(self, inner)
            }
        }
    }

    pub(crate) fn list<T: Wire>(
        &mut self,
        field: &'static str,
        items: &[T],
    ) -> Result<(), EncodeError> {
        let count = u32::try_from(items.len()).map_err(|_| EncodeError::TooManyItems {
            field,
            count: items.len(),
        })?;
        self.buf.put_u32(count);
        for item in items {
            item.encode(self)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &[u8]) -> Reader {
        Reader::new(Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn integers_are_big_endian() {
        let mut buf = BytesMut::new();
        let mut w = Writer::new(&mut buf);
        w.u16(0x0102);
        w.u32(0x0304_0506);
        w.u64(0x0708_090a_0b0c_0d0e);
        w.i64(-2);
        assert_eq!(
            &buf[..],
            &[
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xfe
            ]
        );
        let mut r = Reader::new(buf.freeze());
        assert_eq!(r.u16("a"), Ok(0x0102));
        assert_eq!(r.u32("b"), Ok(0x0304_0506));
        assert_eq!(r.u64("c"), Ok(0x0708_090a_0b0c_0d0e));
        assert_eq!(r.i64("d"), Ok(-2));
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn short_reads_report_field_and_sizes() {
        let mut r = reader(&[0, 1, 2]);
        assert_eq!(
            r.u32("partition"),
            Err(BodyError::Truncated {
                field: "partition",
                need: 4,
                have: 3
            })
        );
    }

    #[test]
    fn bool_rejects_values_above_one() {
        let mut buf = BytesMut::new();
        Writer::new(&mut buf).bool(true);
        assert_eq!(&buf[..], &[1]);
        assert_eq!(reader(&[0]).bool("flag"), Ok(false));
        assert_eq!(reader(&[1]).bool("flag"), Ok(true));
        assert_eq!(
            reader(&[2]).bool("flag"),
            Err(BodyError::InvalidTag {
                field: "flag",
                value: 2
            })
        );
    }

    #[test]
    fn string_length_is_bounded_by_the_payload() {
        let mut r = reader(&[0xff, 0xff, b'a']);
        assert_eq!(
            r.string("name"),
            Err(BodyError::Truncated {
                field: "name",
                need: 65535,
                have: 1
            })
        );
    }

    #[test]
    fn string_rejects_invalid_utf8() {
        let mut r = reader(&[0, 2, 0xc3, 0x28]);
        assert_eq!(
            r.string("name"),
            Err(BodyError::InvalidUtf8 { field: "name" })
        );
    }

    #[test]
    fn blob_is_a_zero_copy_slice_of_the_payload() {
        let payload = Bytes::from_static(&[0, 0, 0, 3, 7, 8, 9, 10]);
        let start = payload.as_ptr() as usize;
        let mut r = Reader::new(payload);
        let blob = r.blob("batch").expect("blob decodes");
        assert_eq!(&blob[..], &[7, 8, 9]);
        assert_eq!(blob.as_ptr() as usize, start + 4);
        assert_eq!(r.remaining(), 1);
    }

    #[test]
    fn blob_length_is_bounded_by_the_payload() {
        let mut r = reader(&[0xff, 0xff, 0xff, 0xff, 1, 2]);
        assert!(matches!(
            r.blob("batch"),
            Err(BodyError::Truncated {
                need: 0xffff_ffff,
                have: 2,
                ..
            })
        ));
    }

    #[test]
    fn option_rejects_bad_tags() {
        let mut r = reader(&[1, 0, 0, 0, 5]);
        assert_eq!(r.option("x", |r| r.u32("x")), Ok(Some(5)));
        let mut r = reader(&[0]);
        assert_eq!(r.option("x", |r| r.u32("x")), Ok(None));
        let mut r = reader(&[9]);
        assert_eq!(
            r.option("x", |r| r.u32("x")),
            Err(BodyError::InvalidTag {
                field: "x",
                value: 9
            })
        );
    }

    #[test]
    fn huge_list_count_fails_before_allocating() {
        let mut r = reader(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1]);
        assert_eq!(
            r.list::<u32>("owned"),
            Err(BodyError::CountTooLarge {
                field: "owned",
                count: u32::MAX,
                remaining: 4
            })
        );
    }

    #[test]
    fn list_count_accounts_for_item_size() {
        // Two u32 items need 8 bytes; 7 are left.
        let mut r = reader(&[0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0]);
        assert!(matches!(
            r.list::<u32>("owned"),
            Err(BodyError::CountTooLarge { count: 2, .. })
        ));
        let mut r = reader(&[0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2]);
        assert_eq!(r.list::<u32>("owned"), Ok(vec![1, 2]));
    }

    #[test]
    fn trailing_bytes_are_reported() {
        assert_eq!(
            reader(&[1, 2]).finish(),
            Err(BodyError::TrailingBytes { count: 2 })
        );
    }

    #[test]
    fn oversized_string_is_an_encode_error() {
        let mut buf = BytesMut::new();
        let long = "x".repeat(70_000);
        let mut w = Writer::new(&mut buf);
        assert_eq!(
            w.string("name", &long),
            Err(EncodeError::StringTooLong {
                field: "name",
                len: 70_000
            })
        );
        assert!(buf.is_empty());
    }
}
