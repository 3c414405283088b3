//! Chunk payload compression: LZ4 frames, byte grouping (BG4) and the per-chunk scheme choice.
//!
//! A chunk payload is stored raw (scheme 0), as one LZ4 *frame* (scheme 1), or as an LZ4 frame of
//! the chunk's bytes regrouped by position modulo 4 (scheme 2, "bg4-lz4"), see SPEC-DIGEST §3.1.
//! Decoding is bounded: no function here ever produces more bytes than the caller said to expect,
//! whatever the frame claims. Well-formed frames with independent blocks and no checksums (what
//! xet-core writes) are decoded block by block straight into the caller's buffer; any other valid
//! frame (checksums, linked blocks, legacy or concatenated frames) goes through `lz4_flex`'s
//! frame decoder behind a byte limit.
//!
//! [`choose_scheme`] is xet-core's BG4 predictor (`bg4_prediction.rs`): the per-lane histograms of
//! byte popcounts and the maximum KL divergence of a lane from their sum, BG4 when above 0.02.

use std::io::{Read, Write};

use lz4_flex::frame::FrameDecoder;

use crate::error::XorbError;

/// Magic number at the start of every (modern) LZ4 frame, little-endian `04 22 4D 18`.
const LZ4_FRAME_MAGIC: u32 = 0x184D_2204;

/// How a chunk payload is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CompressionScheme {
    /// Raw bytes.
    None = 0,
    /// One LZ4 frame.
    Lz4 = 1,
    /// One LZ4 frame of the BG4 byte-grouped bytes.
    ByteGrouping4Lz4 = 2,
}

impl TryFrom<u8> for CompressionScheme {
    type Error = XorbError;

    fn try_from(value: u8) -> Result<Self, XorbError> {
        match value {
            0 => Ok(Self::None),
            1 => Ok(Self::Lz4),
            2 => Ok(Self::ByteGrouping4Lz4),
            other => Err(XorbError::UnknownScheme(other)),
        }
    }
}

impl CompressionScheme {
    /// The name xet-core uses (`none`, `lz4`, `bg4-lz4`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Lz4 => "lz4",
            Self::ByteGrouping4Lz4 => "bg4-lz4",
        }
    }
}

impl std::fmt::Display for CompressionScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a writer picks the scheme of each chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompressionPolicy {
    /// xet-core's default: at the first chunk of each file and every
    /// [`AUTO_RETEST_INTERVAL`] chunks after it, run [`choose_scheme`] on that chunk and use
    /// the answer (LZ4 or BG4-LZ4) for the block. Chunks that do not shrink are stored raw.
    #[default]
    Auto,
    /// Use this scheme for every chunk (still stored raw when compression does not shrink it).
    Fixed(CompressionScheme),
}

/// xet-core's `compression_scheme_retest_interval` default.
pub const AUTO_RETEST_INTERVAL: usize = 32;

/// Byte-groups `data` (SPEC §3.1): all bytes at positions `≡ 0 mod 4`, then `≡ 1`, `≡ 2`, `≡ 3`.
pub fn bg4_split(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; data.len()];
    bg4_split_into(data, &mut out);
    out
}

/// Sizes of the four groups of an `n`-byte input: `q+1` for the first `n % 4`, `q` after.
#[inline]
fn group_sizes(n: usize) -> [usize; 4] {
    let q = n / 4;
    let r = n % 4;
    [
        q + usize::from(r > 0),
        q + usize::from(r > 1),
        q + usize::from(r > 2),
        q,
    ]
}

/// [`bg4_split`] into a buffer of exactly `data.len()` bytes.
///
/// # Panics
/// If `out.len() != data.len()`.
pub fn bg4_split_into(data: &[u8], out: &mut [u8]) {
    assert_eq!(data.len(), out.len(), "bg4_split_into: length mismatch");
    let n = data.len();
    let q = n / 4;
    let [s0, s1, s2, _] = group_sizes(n);
    let (g0, rest) = out.split_at_mut(s0);
    let (g1, rest) = rest.split_at_mut(s1);
    let (g2, g3) = rest.split_at_mut(s2);
    // Whole 4-byte groups: one quad in, one byte out to each group.
    for ((((quad, a), b), c), d) in data
        .chunks_exact(4)
        .zip(g0.iter_mut())
        .zip(g1.iter_mut())
        .zip(g2.iter_mut())
        .zip(g3.iter_mut())
    {
        *a = quad[0];
        *b = quad[1];
        *c = quad[2];
        *d = quad[3];
    }
    let tail = &data[q * 4..];
    if let Some(&x) = tail.first() {
        g0[q] = x;
    }
    if let Some(&x) = tail.get(1) {
        g1[q] = x;
    }
    if let Some(&x) = tail.get(2) {
        g2[q] = x;
    }
}

/// Inverse of [`bg4_split`].
pub fn bg4_join(grouped: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; grouped.len()];
    bg4_join_into(grouped, &mut out);
    out
}

/// [`bg4_join`] into a buffer of exactly `grouped.len()` bytes.
///
/// # Panics
/// If `out.len() != grouped.len()`.
pub fn bg4_join_into(grouped: &[u8], out: &mut [u8]) {
    assert_eq!(grouped.len(), out.len(), "bg4_join_into: length mismatch");
    let n = grouped.len();
    let q = n / 4;
    let [s0, s1, s2, _] = group_sizes(n);
    let (g0, rest) = grouped.split_at(s0);
    let (g1, rest) = rest.split_at(s1);
    let (g2, g3) = rest.split_at(s2);
    let (body, tail) = out.split_at_mut(q * 4);
    // Eight quads at a time: lets the compiler keep the four input streams in registers.
    let mut quads = body.chunks_exact_mut(32);
    let mut i = 0;
    for block in &mut quads {
        let (a, b, c, d) = (&g0[i..i + 8], &g1[i..i + 8], &g2[i..i + 8], &g3[i..i + 8]);
        for k in 0..8 {
            block[4 * k] = a[k];
            block[4 * k + 1] = b[k];
            block[4 * k + 2] = c[k];
            block[4 * k + 3] = d[k];
        }
        i += 8;
    }
    for (k, quad) in quads.into_remainder().chunks_exact_mut(4).enumerate() {
        let j = i + k;
        quad.copy_from_slice(&[g0[j], g1[j], g2[j], g3[j]]);
    }
    for (k, slot) in tail.iter_mut().enumerate() {
        *slot = [g0, g1, g2][k][q];
    }
}

/// Compresses `data` as one LZ4 frame with `lz4_flex`'s default frame settings, as xet-core does.
pub fn lz4_compress_frame(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 2 + 32);
    lz4_compress_frame_into(data, &mut out);
    out
}

/// Appends one LZ4 frame of `data` to `out`.
pub fn lz4_compress_frame_into(data: &[u8], out: &mut Vec<u8>) {
    let mut enc = lz4_flex::frame::FrameEncoder::new(out);
    // Writing into a Vec cannot fail, and the encoder has no other error source for writes.
    enc.write_all(data)
        .expect("LZ4 frame encoding into a Vec cannot fail");
    enc.finish()
        .expect("LZ4 frame encoding into a Vec cannot fail");
}

/// Decodes one LZ4 frame that must yield exactly `expected_len` bytes.
///
/// Never produces (or allocates for) more than `expected_len` bytes: a frame that would yield more
/// is an error, as is one that yields fewer.
pub fn lz4_decompress_frame(payload: &[u8], expected_len: usize) -> Result<Vec<u8>, XorbError> {
    let mut out = vec![0u8; expected_len];
    lz4_decompress_frame_exact(payload, &mut out)?;
    Ok(out)
}

/// Decodes one LZ4 frame into `dst`, which it must fill exactly.
pub fn lz4_decompress_frame_exact(payload: &[u8], dst: &mut [u8]) -> Result<(), XorbError> {
    let written = match fast_frame_decode(payload, dst) {
        Some(n) => n,
        None => slow_frame_decode(payload, dst)?,
    };
    if written != dst.len() {
        return Err(XorbError::LengthMismatch {
            expected: dst.len() as u64,
            actual: written as u64,
        });
    }
    Ok(())
}

/// The reference path: decodes with `lz4_flex`'s frame decoder; reads at most `dst.len() + 1` bytes from it.
/// Returns the number of bytes written; errors if the frame yields more than `dst.len()`.
pub fn slow_frame_decode(payload: &[u8], dst: &mut [u8]) -> Result<usize, XorbError> {
    let mut dec = FrameDecoder::new(payload);
    let mut filled = 0;
    while filled < dst.len() {
        match dec.read(&mut dst[filled..]) {
            Ok(0) => return Ok(filled),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(XorbError::Lz4(e.to_string())),
        }
    }
    // `dst` is full: the frame must be finished now.
    let mut probe = [0u8; 1];
    loop {
        match dec.read(&mut probe) {
            Ok(0) => return Ok(filled),
            Ok(_) => {
                return Err(XorbError::LengthMismatch {
                    expected: dst.len() as u64,
                    actual: dst.len() as u64 + 1,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(XorbError::Lz4(e.to_string())),
        }
    }
}

/// Decodes the common frame shape (one frame filling the payload, independent blocks, no
/// checksums, no dictionary) block by block into `dst`. Returns `None` for anything else,
/// including any error, so that the caller falls back to the full decoder, which then gives
/// the definitive answer. When it returns `Some(n)`, `lz4_flex`'s frame decoder yields exactly
/// the same `n` bytes.
pub fn fast_frame_decode(payload: &[u8], dst: &mut [u8]) -> Option<usize> {
    let magic = u32::from_le_bytes(payload.get(0..4)?.try_into().ok()?);
    if magic != LZ4_FRAME_MAGIC {
        return None;
    }
    let flg = *payload.get(4)?;
    let bd = *payload.get(5)?;
    let version_ok = flg >> 6 == 0b01;
    let reserved_clear = flg & 0b10 == 0 && bd & 0b1000_1111 == 0;
    let independent = flg & 0x20 != 0;
    let block_checksums = flg & 0x10 != 0;
    let has_content_size = flg & 0x08 != 0;
    let content_checksum = flg & 0x04 != 0;
    let dict_id = flg & 0x01 != 0;
    if !version_ok
        || !reserved_clear
        || !independent
        || block_checksums
        || content_checksum
        || dict_id
    {
        return None;
    }
    let max_block = match (bd >> 4) & 0x7 {
        4 => 64 << 10,
        5 => 256 << 10,
        6 => 1 << 20,
        7 => 4 << 20,
        _ => return None,
    };
    let descriptor_end = if has_content_size { 14 } else { 6 };
    let descriptor = payload.get(4..descriptor_end)?;
    let header_checksum = *payload.get(descriptor_end)?;
    if (twox_hash::XxHash32::oneshot(0, descriptor) >> 8) as u8 != header_checksum {
        return None;
    }
    let content_size = if has_content_size {
        Some(u64::from_le_bytes(payload.get(6..14)?.try_into().ok()?))
    } else {
        None
    };

    let mut pos = descriptor_end + 1;
    let mut written = 0usize;
    loop {
        let word = u32::from_le_bytes(payload.get(pos..pos + 4)?.try_into().ok()?);
        pos += 4;
        if word == 0 {
            // End mark: the frame must fill the payload (else: concatenated frames, let the
            // full decoder deal with them) and match its declared content size.
            if pos != payload.len() || content_size.is_some_and(|c| c != written as u64) {
                return None;
            }
            return Some(written);
        }
        let len = (word & 0x7FFF_FFFF) as usize;
        if len > max_block {
            return None;
        }
        let block = payload.get(pos..pos.checked_add(len)?)?;
        pos += len;
        if word & 0x8000_0000 != 0 {
            dst.get_mut(written..written + len)?.copy_from_slice(block);
            written += len;
        } else {
            let limit = dst.len().min(written + max_block);
            let n = lz4_flex::block::decompress_into(block, &mut dst[written..limit]).ok()?;
            written += n;
        }
    }
}

/// Compresses `data` as an LZ4 frame of its BG4 split.
pub fn bg4_lz4_compress_frame(data: &[u8]) -> Vec<u8> {
    let grouped = bg4_split(data);
    lz4_compress_frame(&grouped)
}

/// Decodes a BG4-LZ4 payload that must yield exactly `dst.len()` bytes, using `scratch` for the
/// grouped bytes (its capacity is reused across calls).
pub fn bg4_lz4_decompress_exact(
    payload: &[u8],
    dst: &mut [u8],
    scratch: &mut Vec<u8>,
) -> Result<(), XorbError> {
    scratch.clear();
    scratch.resize(dst.len(), 0);
    lz4_decompress_frame_exact(payload, scratch)?;
    bg4_join_into(scratch, dst);
    Ok(())
}

/// Per-lane histograms of byte popcounts, the input of xet-core's BG4 predictor.
#[derive(Debug, Default, Clone)]
pub struct Bg4Predictor {
    histograms: [[u32; 9]; 4],
}

impl Bg4Predictor {
    /// Adds `data`, whose first byte sits at stream position `offset`.
    pub fn add_data(&mut self, offset: usize, data: &[u8]) {
        let mut lanes = [[0u32; 9]; 4];
        let start = offset % 4;
        let mut quads = data.chunks_exact(4);
        for quad in &mut quads {
            for (k, &b) in quad.iter().enumerate() {
                lanes[k][b.count_ones() as usize] += 1;
            }
        }
        for (k, &b) in quads.remainder().iter().enumerate() {
            lanes[k][b.count_ones() as usize] += 1;
        }
        // Lane k of `lanes` holds data positions ≡ k (mod 4), i.e. stream lane (k + offset) % 4.
        for (k, lane) in lanes.iter().enumerate() {
            let target = &mut self.histograms[(k + start) % 4];
            for (t, &c) in target.iter_mut().zip(lane) {
                *t += c;
            }
        }
    }

    /// The per-lane popcount histograms.
    pub fn histograms(&self) -> [[u32; 9]; 4] {
        self.histograms
    }

    /// xet-core's decision rule: the maximum over the 4 lanes of the KL divergence between the
    /// lane's popcount distribution and the (+1 smoothed) distribution of all lanes, `> 0.02`.
    /// Computed with the same f64 operations, so degenerate cases (an empty lane, an empty
    /// popcount bucket giving `0 · ln 0 = NaN`, which `f64::max` skips) decide the same way.
    pub fn bg4_recommended(&self) -> bool {
        let mut base_counts = [1u32; 9];
        let mut totals = [0u32; 4];
        for (i, lane) in self.histograms.iter().enumerate() {
            for (j, &c) in lane.iter().enumerate() {
                base_counts[j] += c;
                totals[i] += c;
            }
        }
        let base_total: u32 = totals.iter().sum();
        let mut max_kl_div = 0f64;
        for (i, lane) in self.histograms.iter().enumerate() {
            let mut kl_div = 0.0;
            for (j, &c) in lane.iter().enumerate() {
                let p = c as f64 / totals[i] as f64;
                let q = base_counts[j] as f64 / base_total as f64;
                kl_div += p * (p / q).ln();
            }
            max_kl_div = max_kl_div.max(kl_div);
        }
        max_kl_div > 0.02
    }
}

/// xet-core's `CompressionScheme::choose_from_data`: BG4-LZ4 when the predictor recommends it,
/// LZ4 otherwise.
pub fn choose_scheme(first_chunk: &[u8]) -> CompressionScheme {
    let mut predictor = Bg4Predictor::default();
    predictor.add_data(0, first_chunk);
    if predictor.bg4_recommended() {
        CompressionScheme::ByteGrouping4Lz4
    } else {
        CompressionScheme::Lz4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference_split(data: &[u8]) -> Vec<u8> {
        (0..4)
            .flat_map(|k| data.iter().skip(k).step_by(4).copied())
            .collect()
    }

    #[test]
    fn bg4_split_join_match_the_definition_for_all_small_lengths() {
        for n in 0..200usize {
            let data: Vec<u8> = (0..n).map(|i| (i * 31 + 7) as u8).collect();
            let split = bg4_split(&data);
            assert_eq!(split, reference_split(&data), "n={n}");
            assert_eq!(bg4_join(&split), data, "n={n}");
        }
    }

    #[test]
    fn predictor_histograms_match_reference_at_every_offset() {
        let data: Vec<u8> = (0..1001u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for offset in 0..8 {
            for len in [0, 1, 3, 4, 5, 17, 1001] {
                let mut p = Bg4Predictor::default();
                p.add_data(offset, &data[..len]);
                let mut reference = [[0u32; 9]; 4];
                for (i, &x) in data[..len].iter().enumerate() {
                    reference[(i + offset) % 4][x.count_ones() as usize] += 1;
                }
                assert_eq!(p.histograms(), reference, "offset={offset} len={len}");
            }
        }
    }

    #[test]
    fn predictor_picks_bg4_for_float_like_data_and_lz4_for_text() {
        let floats: Vec<u8> = (0..16384u32)
            .flat_map(|i| ((i as f32 * 0.001).sin()).to_le_bytes())
            .collect();
        assert_eq!(choose_scheme(&floats), CompressionScheme::ByteGrouping4Lz4);
        let text = b"Hello World!".repeat(100);
        assert_eq!(choose_scheme(&text), CompressionScheme::Lz4);
        assert_eq!(choose_scheme(&[]), CompressionScheme::Lz4);
    }

    #[test]
    fn fast_path_agrees_with_frame_decoder() {
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 1000) as u8)
            .collect();
        let frame = lz4_compress_frame(&data);
        let mut a = vec![0u8; data.len()];
        assert_eq!(fast_frame_decode(&frame, &mut a), Some(data.len()));
        assert_eq!(a, data);
        let mut b = vec![0u8; data.len()];
        assert_eq!(slow_frame_decode(&frame, &mut b).ok(), Some(data.len()));
        assert_eq!(b, data);
        // One byte short: the fast path declines, the slow path reports "too long".
        let mut short = vec![0u8; data.len() - 1];
        assert_eq!(fast_frame_decode(&frame, &mut short), None);
        assert!(lz4_decompress_frame_exact(&frame, &mut short).is_err());
        // One byte long: too short.
        assert!(lz4_decompress_frame(&frame, data.len() + 1).is_err());
    }

    #[test]
    fn frames_with_checksums_and_linked_blocks_decode_via_the_full_decoder() {
        use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
        let data: Vec<u8> = (0..200_000u32)
            .map(|i| (i % 13) as u8 ^ (i >> 11) as u8)
            .collect();
        let info = FrameInfo::new()
            .block_size(BlockSize::Max64KB)
            .block_mode(BlockMode::Linked)
            .block_checksums(true)
            .content_checksum(true)
            .content_size(Some(data.len() as u64));
        let mut enc = FrameEncoder::with_frame_info(info, Vec::new());
        enc.write_all(&data).expect("write");
        let frame = enc.finish().expect("finish");
        assert_eq!(
            lz4_decompress_frame(&frame, data.len()).expect("decode"),
            data
        );
        // A flipped content checksum must be rejected.
        let mut bad = frame.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(lz4_decompress_frame(&bad, data.len()).is_err());
    }

    #[test]
    fn garbage_and_truncated_frames_are_errors_not_panics() {
        let data = b"abcabcabcabcabcabcabcabcabcabcabcabc".repeat(50);
        let frame = lz4_compress_frame(&data);
        for cut in 0..frame.len() {
            let _ = lz4_decompress_frame(&frame[..cut], data.len());
        }
        assert!(lz4_decompress_frame(b"not a frame at all", 10).is_err());
    }
}
