//! LEB128 variable-length integers, as used inside records.
//!
//! Small numbers dominate inside a record (deltas, short keys), so a varint keeps a 100-byte
//! record close to 100 bytes on disk. Signed values are zigzag-encoded first.

/// Appends `value` as an unsigned LEB128 varint.
pub fn put_u64(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// Appends `value` zigzag-encoded.
pub fn put_i64(buf: &mut Vec<u8>, value: i64) {
    put_u64(buf, ((value << 1) ^ (value >> 63)) as u64);
}

/// Reads an unsigned varint from `buf` at `*pos`, advancing it. `None` when the input ends or
/// the varint is longer than ten bytes.
pub fn get_u64(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut result: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        result |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(result);
        }
    }
    None
}

/// Reads a zigzag-encoded signed varint.
pub fn get_i64(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let raw = get_u64(buf, pos)?;
    Some(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

/// Number of bytes `value` takes as a varint.
pub fn len_u64(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn unsigned_round_trip(value: u64) {
            let mut buf = Vec::new();
            put_u64(&mut buf, value);
            prop_assert_eq!(buf.len(), len_u64(value));
            let mut pos = 0;
            prop_assert_eq!(get_u64(&buf, &mut pos), Some(value));
            prop_assert_eq!(pos, buf.len());
        }

        #[test]
        fn signed_round_trip(value: i64) {
            let mut buf = Vec::new();
            put_i64(&mut buf, value);
            let mut pos = 0;
            prop_assert_eq!(get_i64(&buf, &mut pos), Some(value));
        }
    }

    #[test]
    fn truncated_varint_is_none() {
        let mut pos = 0;
        assert_eq!(get_u64(&[0x80, 0x80], &mut pos), None);
        let mut pos = 0;
        assert_eq!(get_u64(&[0xff; 11], &mut pos), None);
    }
}
