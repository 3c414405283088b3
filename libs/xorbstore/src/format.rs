//! The on-disk format of one stored range: a self-describing header followed by the range's
//! chunk records, exactly as a CAS xorb URL returns them. Pure encoding and decoding (no I/O).
//!
//! ```text
//! off  size  field
//!   0     8  magic "ZXRANGE1"
//!   8     4  header_len u32 LE (whole header, checksum included; data starts here)
//!  12     1  verification level (0..=3) — the only byte rewritten in place, so it is
//!            outside the checksum; an upgrade is a one-byte pwrite + fsync
//!  13     3  reserved, zero
//!  16    32  xorb hash (raw bytes)
//!  48     4  chunk range start u32 LE
//!  52     4  chunk range end u32 LE (exclusive)
//!  56     8  data_len u64 LE (bytes of chunk records after the header)
//!  64  4·n  record end offsets within the data, u32 LE   (n = end - start)
//!      4·n  uncompressed end offsets, u32 LE
//!     32·n  chunk hashes (raw)
//!        32  BLAKE3 of every header byte before it except byte 12
//! ```
//!
//! A file is valid when its length is `header_len + data_len`, the checksum matches, the offsets
//! are strictly increasing and end at `data_len`, and every chunk header found at those offsets
//! agrees with them ([`check_records`]).
//!
//! A **blob reference** (magic `ZXBLOBR1`) holds no chunk data: its chunks are the bytes at an
//! offset of another file (a verified Hugging Face cache blob), served as uncompressed chunk
//! records. Its header is the same, with `data_len` and the record offsets those of the
//! uncompressed records ([`plain_record_ends`]), followed by a trailer:
//!
//! ```text
//!      8  offset of the first chunk's bytes in the blob, u64 LE
//!      4  path length u32 LE (at most MAX_BLOB_PATH)
//!      n  the blob's absolute path (bytes)
//!     32  BLAKE3 of the trailer before it
//! ```

use std::ops::Range;

use xet::chunk::ChunkHeader;
use xet::MerkleHash;

use crate::verify::{check_range, RangeMeta, VerificationLevel, MAX_RANGE_BYTES};

/// File magic (format version 1).
pub const MAGIC: [u8; 8] = *b"ZXRANGE1";
/// Magic of a blob reference (format version 1).
pub const REF_MAGIC: [u8; 8] = *b"ZXBLOBR1";
/// Longest blob path a reference may hold.
pub const MAX_BLOB_PATH: usize = 4096;
/// Offset of the verification level byte.
pub const LEVEL_OFFSET: u64 = 12;
/// Size of the fixed part of the header.
pub const FIXED_LEN: usize = 64;

/// The decoded header of a stored range file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileHeader {
    pub xorb: MerkleHash,
    pub range: Range<u32>,
    pub data_len: u64,
    pub meta: RangeMeta,
}

/// Header length for a range of `n` chunks.
pub fn header_len(n: usize) -> usize {
    FIXED_LEN + n * (4 + 4 + 32) + 32
}

/// Encodes the header of a range file.
pub fn encode_header(
    xorb: &MerkleHash,
    range: &Range<u32>,
    data_len: u64,
    meta: &RangeMeta,
) -> Vec<u8> {
    encode_header_as(MAGIC, xorb, range, data_len, meta)
}

fn encode_header_as(
    magic: [u8; 8],
    xorb: &MerkleHash,
    range: &Range<u32>,
    data_len: u64,
    meta: &RangeMeta,
) -> Vec<u8> {
    let n = meta.record_ends.len();
    let len = header_len(n);
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&magic);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.push(meta.level as u8);
    out.extend_from_slice(&[0; 3]);
    out.extend_from_slice(xorb.as_bytes());
    out.extend_from_slice(&range.start.to_le_bytes());
    out.extend_from_slice(&range.end.to_le_bytes());
    out.extend_from_slice(&data_len.to_le_bytes());
    for e in &meta.record_ends {
        out.extend_from_slice(&e.to_le_bytes());
    }
    for e in &meta.raw_ends {
        out.extend_from_slice(&e.to_le_bytes());
    }
    for h in &meta.chunk_hashes {
        out.extend_from_slice(h.as_bytes());
    }
    let sum = checksum(&out);
    out.extend_from_slice(sum.as_bytes());
    debug_assert_eq!(out.len(), len);
    out
}

fn checksum(header_without_sum: &[u8]) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    h.update(&header_without_sum[..LEVEL_OFFSET as usize]);
    h.update(&header_without_sum[LEVEL_OFFSET as usize + 1..]);
    h.finalize()
}

/// Reads the fixed part: returns the full header length the file claims, after checking the
/// magic and that the length is plausible for the range it names.
pub fn peek_header_len(fixed: &[u8]) -> Result<usize, String> {
    if fixed.len() < FIXED_LEN {
        return Err("file shorter than the fixed header".into());
    }
    if fixed[..8] != MAGIC && fixed[..8] != REF_MAGIC {
        return Err("bad magic".into());
    }
    let len = u32::from_le_bytes(le4(&fixed[8..12])) as usize;
    let start = u32::from_le_bytes(le4(&fixed[48..52]));
    let end = u32::from_le_bytes(le4(&fixed[52..56]));
    let n = check_range(&(start..end)).map_err(|e| e.to_string())?;
    if len != header_len(n as usize) {
        return Err(format!("header length {len} does not fit {n} chunks"));
    }
    Ok(len)
}

fn le4(b: &[u8]) -> [u8; 4] {
    let mut a = [0; 4];
    a.copy_from_slice(&b[..4]);
    a
}

/// Decodes a whole header (`bytes` is exactly the header, as sized by [`peek_header_len`]).
pub fn decode_header(bytes: &[u8]) -> Result<FileHeader, String> {
    decode_header_as(MAGIC, bytes)
}

fn decode_header_as(magic: [u8; 8], bytes: &[u8]) -> Result<FileHeader, String> {
    if bytes.len() < 8 || bytes[..8] != magic {
        return Err("bad magic".into());
    }
    let len = peek_header_len(bytes)?;
    if bytes.len() != len {
        return Err("header length mismatch".into());
    }
    let (body, sum) = bytes.split_at(len - 32);
    if checksum(body).as_bytes() != sum {
        return Err("header checksum mismatch".into());
    }
    if bytes[13..16] != [0, 0, 0] {
        return Err("reserved header bytes are not zero".into());
    }
    let level = VerificationLevel::from_u8(bytes[LEVEL_OFFSET as usize]).ok_or_else(|| {
        format!(
            "unknown verification level {}",
            bytes[LEVEL_OFFSET as usize]
        )
    })?;
    let mut raw = [0u8; 32];
    raw.copy_from_slice(&bytes[16..48]);
    let xorb = MerkleHash::from_bytes(raw);
    let start = u32::from_le_bytes(le4(&bytes[48..52]));
    let end = u32::from_le_bytes(le4(&bytes[52..56]));
    let mut d = [0u8; 8];
    d.copy_from_slice(&bytes[56..64]);
    let data_len = u64::from_le_bytes(d);
    if data_len > MAX_RANGE_BYTES as u64 {
        return Err(format!("data length {data_len} over the limit"));
    }
    let n = (end - start) as usize;
    let mut pos = FIXED_LEN;
    let mut read_u32s = |count: usize| {
        let v: Vec<u32> = bytes[pos..pos + 4 * count]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(le4(c)))
            .collect();
        pos += 4 * count;
        v
    };
    let record_ends = read_u32s(n);
    let raw_ends = read_u32s(n);
    let hashes_at = FIXED_LEN + 8 * n;
    let chunk_hashes: Vec<MerkleHash> = bytes[hashes_at..hashes_at + 32 * n]
        .chunks_exact(32)
        .map(|c| {
            let mut a = [0u8; 32];
            a.copy_from_slice(c);
            MerkleHash::from_bytes(a)
        })
        .collect();
    if !strictly_increasing(&record_ends)
        || u64::from(*record_ends.last().unwrap_or(&0)) != data_len
    {
        return Err("record offsets are not increasing or do not end at the data length".into());
    }
    if !non_decreasing(&raw_ends) {
        return Err("uncompressed offsets decrease".into());
    }
    Ok(FileHeader {
        xorb,
        range: start..end,
        data_len,
        meta: RangeMeta {
            record_ends,
            raw_ends,
            chunk_hashes,
            level,
        },
    })
}

/// Where a blob reference's chunks are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRef {
    /// The blob's absolute path.
    pub path: std::path::PathBuf,
    /// Offset of the first chunk's bytes in the blob.
    pub offset: u64,
}

/// Record end offsets and total length of uncompressed chunk records (an 8-byte header before
/// each chunk's bytes) for chunks ending at `raw_ends`. `None` when they do not fit a range.
pub fn plain_record_ends(raw_ends: &[u32]) -> Option<(Vec<u32>, u64)> {
    let mut ends = Vec::with_capacity(raw_ends.len());
    let mut prev = 0u32;
    let mut total = 0u64;
    for &e in raw_ends {
        let len = e.checked_sub(prev)?;
        if len == 0 || len > xet::chunk::MAX_UNCOMPRESSED_LEN {
            return None;
        }
        total += ChunkHeader::SIZE as u64 + u64::from(len);
        ends.push(u32::try_from(total).ok()?);
        prev = e;
    }
    (total <= MAX_RANGE_BYTES as u64).then_some((ends, total))
}

/// Encodes a blob reference file (`meta.record_ends` must be [`plain_record_ends`] of
/// `meta.raw_ends`, `data_len` their total).
pub fn encode_ref(
    xorb: &MerkleHash,
    range: &Range<u32>,
    data_len: u64,
    meta: &RangeMeta,
    blob: &BlobRef,
) -> Vec<u8> {
    let mut out = encode_header_as(REF_MAGIC, xorb, range, data_len, meta);
    let at = out.len();
    let path = blob.path.as_os_str().as_encoded_bytes();
    out.extend_from_slice(&blob.offset.to_le_bytes());
    out.extend_from_slice(&(path.len() as u32).to_le_bytes());
    out.extend_from_slice(path);
    let sum = blake3::hash(&out[at..]);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// Decodes a whole blob reference file, checking both checksums, the exact length, and that
/// the record offsets are those of uncompressed records.
pub fn decode_ref(bytes: &[u8]) -> Result<(FileHeader, BlobRef), String> {
    let hlen = peek_header_len(bytes)?;
    if bytes.len() < hlen + 12 + 32 {
        return Err("reference shorter than its header and trailer".into());
    }
    let header = decode_header_as(REF_MAGIC, &bytes[..hlen])?;
    let trailer = &bytes[hlen..];
    let mut o = [0u8; 8];
    o.copy_from_slice(&trailer[..8]);
    let offset = u64::from_le_bytes(o);
    let plen = u32::from_le_bytes(le4(&trailer[8..12])) as usize;
    if plen == 0 || plen > MAX_BLOB_PATH || trailer.len() != 12 + plen + 32 {
        return Err("bad blob path length".into());
    }
    let (body, sum) = trailer.split_at(12 + plen);
    if blake3::hash(body).as_bytes() != sum {
        return Err("reference trailer checksum mismatch".into());
    }
    let path = std::path::PathBuf::from(std::ffi::OsStr::new(
        std::str::from_utf8(&body[12..]).map_err(|_| "blob path is not UTF-8")?,
    ));
    if !path.is_absolute() {
        return Err("blob path is not absolute".into());
    }
    match plain_record_ends(&header.meta.raw_ends) {
        Some((ends, total)) if ends == header.meta.record_ends && total == header.data_len => {}
        _ => return Err("record offsets are not those of uncompressed records".into()),
    }
    Ok((header, BlobRef { path, offset }))
}

fn strictly_increasing(v: &[u32]) -> bool {
    v.first().is_none_or(|&x| x > 0) && v.windows(2).all(|w| w[0] < w[1])
}

fn non_decreasing(v: &[u32]) -> bool {
    v.windows(2).all(|w| w[0] <= w[1])
}

/// Cheap structural re-check of stored data against its header: every chunk header at the
/// recorded offsets parses and agrees with the offsets (compressed and uncompressed lengths).
/// Payloads are not decoded.
pub fn check_records(data: &[u8], meta: &RangeMeta) -> Result<(), String> {
    let mut start = 0usize;
    let mut raw_prev = 0u32;
    for (i, (&end, &raw_end)) in meta.record_ends.iter().zip(&meta.raw_ends).enumerate() {
        let end = end as usize;
        if end > data.len() || end < start + ChunkHeader::SIZE {
            return Err(format!("chunk {i}: offsets out of bounds"));
        }
        let header =
            ChunkHeader::parse(&data[start..end]).map_err(|e| format!("chunk {i}: {e}"))?;
        if start + ChunkHeader::SIZE + header.compressed_len as usize != end {
            return Err(format!("chunk {i}: record length disagrees with the index"));
        }
        if raw_prev.checked_add(header.uncompressed_len) != Some(raw_end) {
            return Err(format!(
                "chunk {i}: uncompressed length disagrees with the index"
            ));
        }
        start = end;
        raw_prev = raw_end;
    }
    if start != data.len() {
        return Err("trailing bytes after the last chunk".into());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn meta() -> RangeMeta {
        RangeMeta {
            record_ends: vec![10, 25],
            raw_ends: vec![100, 150],
            chunk_hashes: vec![
                MerkleHash::from_bytes([1; 32]),
                MerkleHash::from_bytes([2; 32]),
            ],
            level: VerificationLevel::ChunkHashesVerified,
        }
    }

    #[test]
    fn header_round_trips() {
        let xorb = MerkleHash::from_bytes([7; 32]);
        let h = encode_header(&xorb, &(3..5), 25, &meta());
        assert_eq!(h.len(), header_len(2));
        assert_eq!(peek_header_len(&h).unwrap(), h.len());
        let d = decode_header(&h).unwrap();
        assert_eq!(d.xorb, xorb);
        assert_eq!(d.range, 3..5);
        assert_eq!(d.data_len, 25);
        assert_eq!(d.meta, meta());
    }

    #[test]
    fn level_byte_is_outside_the_checksum_but_validated() {
        let xorb = MerkleHash::from_bytes([7; 32]);
        let mut h = encode_header(&xorb, &(3..5), 25, &meta());
        h[LEVEL_OFFSET as usize] = VerificationLevel::FileVerified as u8;
        assert_eq!(
            decode_header(&h).unwrap().meta.level,
            VerificationLevel::FileVerified
        );
        h[LEVEL_OFFSET as usize] = 9;
        assert!(decode_header(&h).is_err());
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let xorb = MerkleHash::from_bytes([7; 32]);
        let h = encode_header(&xorb, &(3..5), 25, &meta());
        for i in 0..h.len() {
            if i as u64 == LEVEL_OFFSET {
                continue;
            }
            let mut bad = h.clone();
            bad[i] ^= 0x40;
            assert!(decode_header(&bad).is_err(), "flip at {i} not detected");
        }
    }

    #[test]
    fn blob_references_round_trip_and_every_flip_is_detected() {
        let xorb = MerkleHash::from_bytes([7; 32]);
        let raw_ends = vec![100, 150];
        let (record_ends, data_len) = plain_record_ends(&raw_ends).unwrap();
        assert_eq!(record_ends, [108, 166]);
        let m = RangeMeta {
            record_ends,
            raw_ends,
            ..meta()
        };
        let blob = BlobRef {
            path: "/cache/blobs/abc".into(),
            offset: 4096,
        };
        let f = encode_ref(&xorb, &(3..5), data_len, &m, &blob);
        let (h, b) = decode_ref(&f).unwrap();
        assert_eq!(
            (h.xorb, h.range.clone(), h.data_len, &h.meta),
            (xorb, 3..5, 166, &m)
        );
        assert_eq!(b, blob);
        assert!(
            decode_header(&f[..header_len(2)]).is_err(),
            "not an inline range"
        );
        for i in 0..f.len() {
            if i as u64 == LEVEL_OFFSET {
                continue;
            }
            let mut bad = f.clone();
            bad[i] ^= 0x40;
            assert!(decode_ref(&bad).is_err(), "flip at {i} not detected");
        }
        assert!(decode_ref(&f[..f.len() - 1]).is_err());
        let compressed = encode_ref(&xorb, &(3..5), 25, &meta(), &blob);
        assert!(
            decode_ref(&compressed).is_err(),
            "compressed offsets refused"
        );
        assert_eq!(plain_record_ends(&[100, 100]), None, "empty chunk");
    }

    #[test]
    fn implausible_lengths_are_refused_before_reading() {
        let xorb = MerkleHash::from_bytes([7; 32]);
        let mut h = encode_header(&xorb, &(3..5), 25, &meta());
        h[52..56].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(peek_header_len(&h).is_err());
        assert!(peek_header_len(&h[..10]).is_err());
    }
}
