//! The fake media: files that start with [`MAGIC`] followed by pseudo-random bytes, the
//! scanner's check, the thumbnail (a downscale: the mean of every [`THUMB_BLOCK`] bytes) and
//! the "encoding" (the bytes reversed), all with the standard library only.
//!
//! Both derived outputs are real functions of every input byte, so a consumer that got a
//! truncated or stale payload produces a visibly different result.

use std::path::Path;

use anyhow::{bail, Context};

/// What every clean media file starts with.
pub const MAGIC: &[u8] = b"FAKEMP4\0";

/// Input bytes per thumbnail byte: a 3 MiB upload has a 48 KiB thumbnail.
pub const THUMB_BLOCK: usize = 64;

/// Writes a fake media file of `size` bytes (at least the magic's length when clean).
pub fn generate(out: &Path, size: usize, seed: u64, infected: bool) -> anyhow::Result<()> {
    let mut bytes = Vec::with_capacity(size);
    if !infected {
        bytes.extend_from_slice(MAGIC);
    }
    // xorshift64*: deterministic, good enough for filler.
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while bytes.len() < size {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    bytes.truncate(size.max(if infected { 0 } else { MAGIC.len() }));
    if infected && bytes.starts_with(MAGIC) {
        bail!("seed {seed} happens to produce the magic; pick another");
    }
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(out, &bytes).with_context(|| format!("cannot write {}", out.display()))
}

/// Whether the file's bytes start with [`MAGIC`].
pub fn is_clean(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// The thumbnail of a file: the mean of each block of [`THUMB_BLOCK`] bytes (the last block
/// may be shorter).
pub fn thumbnail(bytes: &[u8]) -> Vec<u8> {
    bytes
        .chunks(THUMB_BLOCK)
        .map(|block| {
            let sum: usize = block.iter().map(|&b| usize::from(b)).sum();
            u8::try_from(sum / block.len()).unwrap_or(u8::MAX)
        })
        .collect()
}

/// The "encoding" of a file: its bytes reversed.
pub fn encode(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().rev().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_pass_or_fail_the_scan() {
        let dir = std::env::temp_dir().join(format!("video-media-{}", std::process::id()));
        let good = dir.join("good.mp4");
        let bad = dir.join("bad.mp4");
        generate(&good, 10_000, 3, false).expect("good");
        generate(&bad, 10_000, 3, true).expect("bad");
        let good = std::fs::read(good).expect("read");
        let bad = std::fs::read(bad).expect("read");
        assert_eq!(good.len(), 10_000);
        assert!(is_clean(&good));
        assert!(!is_clean(&bad));
        assert_eq!(thumbnail(&good).len(), 10_000usize.div_ceil(THUMB_BLOCK));
        assert_eq!(thumbnail(&[1, 3, 200]), [68]);
        assert_eq!(encode(&encode(&good)), good);
        let _ = std::fs::remove_dir_all(dir);
    }
}
