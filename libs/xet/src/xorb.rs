//! Xorbs: building them from chunks, the V1 footer, and a zero-copy reader over `&[u8]`.
//!
//! A xorb is a run of chunk records ([`crate::chunk`]) optionally followed by a footer
//! (`XorbObjectInfoV1` + its `u32` length, SPEC-DIGEST §3.2). Clients upload the records only;
//! stored objects may carry the footer. [`XorbBuilder`] packs chunks under the limits of §3.3
//! (`raw + 8·chunks ≤ 64 MiB`, at most 8192 chunks), choosing each chunk's compression as xet-core
//! does. [`XorbReader`] walks the records once (validating every header and that payloads stay in
//! bounds), parses a footer if one follows, checks the footer agrees with the records, and then
//! decodes any chunk range straight into the caller's buffer.

use std::ops::Range;

use crate::chunk::{
    decode_chunk_with_scratch, encode_chunk, parse_record, ChunkHeader, ChunkRecord,
    CompressionScheme, FOOTER_IDENT, MAX_UNCOMPRESSED_LEN,
};
use crate::compression::{choose_scheme, CompressionPolicy, AUTO_RETEST_INTERVAL};
pub use crate::error::XorbError;
use crate::hash::{chunk_hash, xorb_hash};
use crate::MerkleHash;

/// Upper bound on a xorb: `raw bytes + 8 · chunks` (so the serialized size is below it too).
pub const MAX_XORB_BYTES: usize = 64 * 1024 * 1024;
/// Most chunks in one xorb.
pub const MAX_XORB_CHUNKS: usize = 8192;

const HASHES_IDENT: &[u8; 7] = b"XBLBHSH";
const BOUNDARIES_IDENT: &[u8; 7] = b"XBLBBND";
/// Fixed part of a V1 info block; the info block is `92 + 40·n` bytes.
const V1_FIXED_LEN: usize = 92;
/// Fixed part of a V0 info block; `60 + 36·n` bytes.
const V0_FIXED_LEN: usize = 60;

/// The V1 footer (`XorbObjectInfoV1`). Offsets are END offsets of each chunk.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XorbFooter {
    /// Merkle hash of the chunks.
    pub xorb_hash: MerkleHash,
    /// Hash of each chunk.
    pub chunk_hashes: Vec<MerkleHash>,
    /// End offset of each record in the chunk region (headers included).
    pub chunk_boundary_offsets: Vec<u32>,
    /// End offset of each chunk in the concatenated uncompressed data. Empty when the footer did
    /// not carry them (V0, or V1 with boundaries version 0); [`XorbReader`] fills them in.
    pub unpacked_chunk_offsets: Vec<u32>,
    /// Per-upload uniqueness nonce (first 4 reserved bytes; not part of the hash). The other 12
    /// reserved bytes are ignored on read and written as zero.
    pub nonce: u32,
}

/// Little-endian cursor over a footer; every read is bounds-checked.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], XorbError> {
        let s = self
            .pos
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.pos..end))
            .ok_or_else(|| XorbError::BadFooter(format!("truncated at {what}")))?;
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, XorbError> {
        Ok(self.take(1, what)?[0])
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, XorbError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn hash(&mut self, what: &'static str) -> Result<MerkleHash, XorbError> {
        let b = self.take(32, what)?;
        let mut raw = [0u8; 32];
        raw.copy_from_slice(b);
        Ok(MerkleHash::from_bytes(raw))
    }
    fn u32s(&mut self, n: usize, what: &'static str) -> Result<Vec<u32>, XorbError> {
        let b = self.take(n.checked_mul(4).ok_or(XorbError::TooLarge)?, what)?;
        Ok(b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    fn hashes(&mut self, n: usize, what: &'static str) -> Result<Vec<MerkleHash>, XorbError> {
        let b = self.take(n.checked_mul(32).ok_or(XorbError::TooLarge)?, what)?;
        Ok(b.chunks_exact(32)
            .map(|c| {
                let mut raw = [0u8; 32];
                raw.copy_from_slice(c);
                MerkleHash::from_bytes(raw)
            })
            .collect())
    }
}

impl XorbFooter {
    /// Length of the serialized info block (without the trailing `u32`).
    pub fn info_len(&self) -> usize {
        V1_FIXED_LEN + 40 * self.chunk_hashes.len()
    }

    /// Serializes the V1 info block followed by its `u32` length, appending to `out`.
    ///
    /// # Panics
    /// If the three per-chunk vectors differ in length (a programming error; the builder and
    /// [`XorbFooter::parse`] never produce that).
    pub fn serialize_into(&self, out: &mut Vec<u8>) {
        let n = self.chunk_hashes.len();
        assert!(
            self.chunk_boundary_offsets.len() == n && self.unpacked_chunk_offsets.len() == n,
            "XorbFooter: per-chunk vectors differ in length"
        );
        let start = out.len();
        out.reserve(self.info_len() + 4);
        out.extend_from_slice(FOOTER_IDENT);
        out.push(1);
        out.extend_from_slice(self.xorb_hash.as_bytes());
        let hashes_start = out.len();
        out.extend_from_slice(HASHES_IDENT);
        out.push(0);
        out.extend_from_slice(&(n as u32).to_le_bytes());
        for h in &self.chunk_hashes {
            out.extend_from_slice(h.as_bytes());
        }
        let boundaries_start = out.len();
        out.extend_from_slice(BOUNDARIES_IDENT);
        out.push(1);
        out.extend_from_slice(&(n as u32).to_le_bytes());
        for o in &self.chunk_boundary_offsets {
            out.extend_from_slice(&o.to_le_bytes());
        }
        for o in &self.unpacked_chunk_offsets {
            out.extend_from_slice(&o.to_le_bytes());
        }
        out.extend_from_slice(&(n as u32).to_le_bytes());
        let end = out.len() + 4 + 4 + 16;
        out.extend_from_slice(&((end - hashes_start) as u32).to_le_bytes());
        out.extend_from_slice(&((end - boundaries_start) as u32).to_le_bytes());
        out.extend_from_slice(&self.nonce.to_le_bytes());
        out.extend_from_slice(&[0u8; 12]);
        debug_assert_eq!(out.len(), end);
        out.extend_from_slice(&((end - start) as u32).to_le_bytes());
    }

    /// [`XorbFooter::serialize_into`] into a new buffer.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.serialize_into(&mut out);
        out
    }

    /// Parses a footer: `bytes` must be exactly the info block plus its trailing `u32` length
    /// (i.e. everything after the last chunk record). V1 and legacy V0 are accepted.
    pub fn parse(bytes: &[u8]) -> Result<XorbFooter, XorbError> {
        if bytes.len() < 4 + 8 {
            return Err(XorbError::BadFooter(format!(
                "{} bytes is too short",
                bytes.len()
            )));
        }
        let (info, len_bytes) = bytes.split_at(bytes.len() - 4);
        let info_len = u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        if info_len as usize != info.len() {
            return Err(XorbError::BadFooter(format!(
                "info length field says {info_len}, block has {}",
                info.len()
            )));
        }
        let mut c = Cursor {
            bytes: info,
            pos: 0,
        };
        if c.take(7, "ident")? != FOOTER_IDENT {
            return Err(XorbError::BadFooter("missing XETBLOB ident".into()));
        }
        match c.u8("version")? {
            0 => Self::parse_v0(c),
            1 => Self::parse_v1(c),
            v => Err(XorbError::BadFooter(format!(
                "unsupported footer version {v}"
            ))),
        }
    }

    fn parse_v1(mut c: Cursor<'_>) -> Result<XorbFooter, XorbError> {
        let info_len = c.bytes.len();
        let xorb_hash = c.hash("xorb hash")?;
        let hashes_start = c.pos;
        if c.take(7, "hash section ident")? != HASHES_IDENT {
            return Err(XorbError::BadFooter("missing XBLBHSH ident".into()));
        }
        let hashes_version = c.u8("hashes version")?;
        if hashes_version != 0 {
            return Err(XorbError::BadFooter(format!(
                "hashes version {hashes_version}"
            )));
        }
        let n = c.u32("chunk count")? as usize;
        // Every chunk costs at least 36 bytes below; check before allocating anything.
        if n > MAX_XORB_CHUNKS || n.saturating_mul(36) > info_len.saturating_sub(V1_FIXED_LEN) {
            return Err(XorbError::BadFooter(format!(
                "chunk count {n} does not fit"
            )));
        }
        let chunk_hashes = c.hashes(n, "chunk hashes")?;
        let boundaries_start = c.pos;
        if c.take(7, "boundary section ident")? != BOUNDARIES_IDENT {
            return Err(XorbError::BadFooter("missing XBLBBND ident".into()));
        }
        let boundaries_version = c.u8("boundaries version")?;
        if boundaries_version > 1 {
            return Err(XorbError::BadFooter(format!(
                "boundaries version {boundaries_version}"
            )));
        }
        if c.u32("chunk count (boundaries)")? as usize != n {
            return Err(XorbError::BadFooter(
                "chunk counts differ between sections".into(),
            ));
        }
        let chunk_boundary_offsets = c.u32s(n, "chunk boundaries")?;
        let unpacked_chunk_offsets = if boundaries_version == 1 {
            c.u32s(n, "unpacked offsets")?
        } else {
            Vec::new()
        };
        if c.u32("chunk count (tail)")? as usize != n {
            return Err(XorbError::BadFooter(
                "chunk counts differ between sections".into(),
            ));
        }
        let hashes_off = c.u32("hash section offset")? as usize;
        let boundaries_off = c.u32("boundary section offset")? as usize;
        let reserved = c.take(16, "reserved")?;
        let nonce = u32::from_le_bytes([reserved[0], reserved[1], reserved[2], reserved[3]]);
        if c.pos != info_len {
            return Err(XorbError::BadFooter(format!(
                "{} trailing bytes in the info block",
                info_len - c.pos
            )));
        }
        if hashes_off != info_len - hashes_start || boundaries_off != info_len - boundaries_start {
            return Err(XorbError::BadFooter(
                "section offsets do not match the layout".into(),
            ));
        }
        Ok(XorbFooter {
            xorb_hash,
            chunk_hashes,
            chunk_boundary_offsets,
            unpacked_chunk_offsets,
            nonce,
        })
    }

    fn parse_v0(mut c: Cursor<'_>) -> Result<XorbFooter, XorbError> {
        let info_len = c.bytes.len();
        let xorb_hash = c.hash("xorb hash")?;
        let n = c.u32("chunk count")? as usize;
        if n > MAX_XORB_CHUNKS || V0_FIXED_LEN.saturating_add(n.saturating_mul(36)) != info_len {
            return Err(XorbError::BadFooter(format!(
                "V0 chunk count {n} does not fit"
            )));
        }
        let chunk_boundary_offsets = c.u32s(n, "chunk boundaries")?;
        let chunk_hashes = c.hashes(n, "chunk hashes")?;
        c.take(16, "reserved")?;
        Ok(XorbFooter {
            xorb_hash,
            chunk_hashes,
            chunk_boundary_offsets,
            unpacked_chunk_offsets: Vec::new(),
            nonce: 0,
        })
    }
}

/// Packs chunks into one xorb, compressing each as it is added.
#[derive(Debug)]
pub struct XorbBuilder {
    policy: CompressionPolicy,
    data: Vec<u8>,
    chunk_hashes: Vec<MerkleHash>,
    boundaries: Vec<u32>,
    unpacked: Vec<u32>,
    raw_len: usize,
    /// Auto policy: the scheme of the current block and the chunks left in it.
    auto_scheme: CompressionScheme,
    auto_left: usize,
}

impl Default for XorbBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl XorbBuilder {
    /// An empty builder with the [`CompressionPolicy::Auto`] policy.
    pub fn new() -> Self {
        Self {
            policy: CompressionPolicy::Auto,
            data: Vec::new(),
            chunk_hashes: Vec::new(),
            boundaries: Vec::new(),
            unpacked: Vec::new(),
            raw_len: 0,
            auto_scheme: CompressionScheme::Lz4,
            auto_left: 0,
        }
    }

    /// Sets the compression policy (before adding chunks).
    pub fn with_policy(mut self, policy: CompressionPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Marks that the next chunk starts a new file: under the Auto policy the scheme is chosen
    /// afresh from that chunk, as xet-core does at each file boundary inside a xorb.
    pub fn start_file(&mut self) {
        self.auto_left = 0;
    }

    /// Whether a chunk of `len` bytes fits under the limits.
    pub fn can_add(&self, len: usize) -> bool {
        let n = self.chunk_hashes.len() + 1;
        len <= MAX_UNCOMPRESSED_LEN as usize
            && n <= MAX_XORB_CHUNKS
            && self.raw_len + len + 8 * n <= MAX_XORB_BYTES
    }

    /// Adds a chunk (hashing it); returns its index.
    pub fn add_chunk(&mut self, data: &[u8]) -> Result<u32, XorbError> {
        if data.len() > MAX_UNCOMPRESSED_LEN as usize {
            return Err(XorbError::ChunkTooLarge(data.len()));
        }
        if !self.can_add(data.len()) {
            return Err(XorbError::Full);
        }
        self.add_chunk_with_hash(data, chunk_hash(data))
    }

    /// Adds a chunk whose hash the caller already computed (it is trusted).
    pub fn add_chunk_with_hash(&mut self, data: &[u8], hash: MerkleHash) -> Result<u32, XorbError> {
        if data.len() > MAX_UNCOMPRESSED_LEN as usize {
            return Err(XorbError::ChunkTooLarge(data.len()));
        }
        if !self.can_add(data.len()) {
            return Err(XorbError::Full);
        }
        let scheme = match self.policy {
            CompressionPolicy::Fixed(s) => s,
            CompressionPolicy::Auto => {
                if self.auto_left == 0 {
                    self.auto_scheme = choose_scheme(data);
                    self.auto_left = AUTO_RETEST_INTERVAL;
                }
                self.auto_left -= 1;
                self.auto_scheme
            }
        };
        encode_chunk(data, scheme, &mut self.data);
        let index = self.chunk_hashes.len() as u32;
        self.raw_len += data.len();
        self.chunk_hashes.push(hash);
        // Both fit in u32: raw_len and data.len() are bounded by MAX_XORB_BYTES.
        self.boundaries.push(self.data.len() as u32);
        self.unpacked.push(self.raw_len as u32);
        Ok(index)
    }

    /// Chunks added so far.
    pub fn num_chunks(&self) -> usize {
        self.chunk_hashes.len()
    }

    /// Uncompressed bytes added so far.
    pub fn raw_len(&self) -> usize {
        self.raw_len
    }

    /// Serialized bytes so far (records only).
    pub fn serialized_len(&self) -> usize {
        self.data.len()
    }

    /// Whether no chunk was added.
    pub fn is_empty(&self) -> bool {
        self.chunk_hashes.is_empty()
    }

    /// Finishes the xorb: computes its hash and footer.
    pub fn finish(self) -> SerializedXorb {
        let leaves: Vec<(MerkleHash, u64)> = self
            .chunk_hashes
            .iter()
            .zip(self.unpacked.iter().scan(0u32, |prev, &end| {
                let len = end - *prev;
                *prev = end;
                Some(len as u64)
            }))
            .map(|(h, l)| (*h, l))
            .collect();
        let hash = xorb_hash(&leaves);
        SerializedXorb {
            hash,
            data: self.data,
            footer: XorbFooter {
                xorb_hash: hash,
                chunk_hashes: self.chunk_hashes,
                chunk_boundary_offsets: self.boundaries,
                unpacked_chunk_offsets: self.unpacked,
                nonce: 0,
            },
        }
    }
}

/// A finished xorb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerializedXorb {
    /// The xorb hash.
    pub hash: MerkleHash,
    /// Chunk records only (what clients upload).
    pub data: Vec<u8>,
    /// The footer describing `data`.
    pub footer: XorbFooter,
}

impl SerializedXorb {
    /// Records followed by the V1 footer (the stored form).
    pub fn to_bytes_with_footer(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + self.footer.info_len() + 4);
        out.extend_from_slice(&self.data);
        self.footer.serialize_into(&mut out);
        out
    }

    /// Number of chunks.
    pub fn num_chunks(&self) -> u32 {
        self.footer.chunk_hashes.len() as u32
    }

    /// Uncompressed size.
    pub fn raw_len(&self) -> u64 {
        self.footer
            .unpacked_chunk_offsets
            .last()
            .copied()
            .unwrap_or(0) as u64
    }

    /// `(start, end_exclusive)` offsets of records `chunks` inside `data`; `None` when the range
    /// is empty, reversed or out of bounds.
    pub fn chunk_byte_range(&self, chunks: Range<u32>) -> Option<(u64, u64)> {
        range_offsets(&self.footer.chunk_boundary_offsets, chunks)
    }
}

/// `(start, end)` of `chunks` given END offsets.
fn range_offsets(ends: &[u32], chunks: Range<u32>) -> Option<(u64, u64)> {
    if chunks.start >= chunks.end || chunks.end as usize > ends.len() {
        return None;
    }
    let start = match chunks.start {
        0 => 0,
        s => ends[s as usize - 1] as u64,
    };
    Some((start, ends[chunks.end as usize - 1] as u64))
}

/// Zero-copy view of a xorb (with or without footer).
#[derive(Debug, Clone)]
pub struct XorbReader<'a> {
    region: &'a [u8],
    headers: Vec<ChunkHeader>,
    /// Start offset of each record, plus the region length at the end.
    offsets: Vec<u32>,
    /// Uncompressed start of each chunk, plus the total at the end.
    unpacked: Vec<u64>,
    footer: Option<XorbFooter>,
}

impl<'a> XorbReader<'a> {
    /// Walks the records of `bytes`; a footer may follow them (it starts where a chunk header
    /// would start with `XETBLOB`). Validates every header, the payload bounds, the limits, and
    /// that a footer's counts and offsets agree with the records.
    pub fn new(bytes: &'a [u8]) -> Result<Self, XorbError> {
        let mut headers = Vec::new();
        let mut offsets = Vec::new();
        let mut unpacked = vec![0u64];
        let mut pos = 0usize;
        let mut total = 0u64;
        let mut footer_start = None;
        while pos < bytes.len() {
            if bytes[pos..].starts_with(FOOTER_IDENT) {
                footer_start = Some(pos);
                break;
            }
            let rec = parse_record(bytes, pos)?;
            if headers.len() == MAX_XORB_CHUNKS {
                return Err(XorbError::TooLarge);
            }
            headers.push(rec.header);
            offsets.push(pos as u32);
            total += rec.header.uncompressed_len as u64;
            unpacked.push(total);
            pos = rec.end();
            // xet-core bounds a xorb's uncompressed size; the region itself is then at most
            // 8192 · (8 + 262144) bytes, so offsets fit in u32.
            if total > MAX_XORB_BYTES as u64 {
                return Err(XorbError::TooLarge);
            }
        }
        offsets.push(pos as u32);
        let region = &bytes[..pos];
        let footer = match footer_start {
            None => None,
            Some(start) => {
                let mut f = XorbFooter::parse(&bytes[start..])?;
                check_footer(&mut f, &offsets, &unpacked)?;
                Some(f)
            }
        };
        Ok(Self {
            region,
            headers,
            offsets,
            unpacked,
            footer,
        })
    }

    /// Number of chunks.
    pub fn num_chunks(&self) -> u32 {
        self.headers.len() as u32
    }

    /// Record `i`.
    ///
    /// # Panics
    /// If `i >= num_chunks()`; see [`XorbReader::get`].
    pub fn chunk(&self, i: u32) -> ChunkRecord<'a> {
        self.get(i).expect("chunk index out of range")
    }

    /// Record `i`, or `None` when out of range.
    pub fn get(&self, i: u32) -> Option<ChunkRecord<'a>> {
        let i = i as usize;
        let header = *self.headers.get(i)?;
        let offset = self.offsets[i] as usize;
        let payload = &self.region[offset + ChunkHeader::SIZE..self.offsets[i + 1] as usize];
        Some(ChunkRecord {
            header,
            payload,
            offset,
        })
    }

    /// Iterates over every record.
    pub fn records(&self) -> impl Iterator<Item = ChunkRecord<'a>> + '_ {
        (0..self.num_chunks()).filter_map(move |i| self.get(i))
    }

    /// Total uncompressed size of `chunks` (which must be in bounds).
    pub fn unpacked_len(&self, chunks: Range<u32>) -> Result<u64, XorbError> {
        self.check_range(&chunks)?;
        Ok(self.unpacked[chunks.end as usize] - self.unpacked[chunks.start as usize])
    }

    /// `(start, end_exclusive)` byte offsets of the records `chunks` in the chunk region.
    pub fn chunk_byte_range(&self, chunks: Range<u32>) -> Result<(u64, u64), XorbError> {
        self.check_range(&chunks)?;
        Ok((
            self.offsets[chunks.start as usize] as u64,
            self.offsets[chunks.end as usize] as u64,
        ))
    }

    fn check_range(&self, chunks: &Range<u32>) -> Result<(), XorbError> {
        if chunks.start > chunks.end || chunks.end > self.num_chunks() {
            return Err(XorbError::RangeOutOfBounds {
                start: chunks.start,
                end: chunks.end,
                num_chunks: self.num_chunks(),
            });
        }
        Ok(())
    }

    /// Decodes chunks `chunks` (end exclusive), appending their bytes to `out` (reserved once).
    /// On error `out` may hold the chunks decoded before the failing one.
    pub fn decode_range(&self, chunks: Range<u32>, out: &mut Vec<u8>) -> Result<(), XorbError> {
        let total = self.unpacked_len(chunks.clone())?;
        out.reserve(total as usize);
        let mut scratch = Vec::new();
        for i in chunks {
            let rec = self.chunk(i);
            decode_chunk_with_scratch(&rec.header, rec.payload, out, &mut scratch)?;
        }
        Ok(())
    }

    /// The footer, when the bytes had one.
    pub fn footer(&self) -> Option<&XorbFooter> {
        self.footer.as_ref()
    }

    /// The chunk records (everything before the footer).
    pub fn chunk_region(&self) -> &'a [u8] {
        self.region
    }

    /// Decodes every chunk and computes the xorb hash (the Merkle root of the chunk hashes).
    pub fn compute_hash(&self) -> Result<MerkleHash, XorbError> {
        let mut buf = Vec::with_capacity(MAX_UNCOMPRESSED_LEN as usize);
        let mut scratch = Vec::new();
        let mut leaves = Vec::with_capacity(self.headers.len());
        for rec in self.records() {
            buf.clear();
            decode_chunk_with_scratch(&rec.header, rec.payload, &mut buf, &mut scratch)?;
            leaves.push((chunk_hash(&buf), buf.len() as u64));
        }
        Ok(xorb_hash(&leaves))
    }
}

/// Checks a parsed footer against the walked records; fills in missing unpacked offsets.
fn check_footer(f: &mut XorbFooter, offsets: &[u32], unpacked: &[u64]) -> Result<(), XorbError> {
    let n = offsets.len() - 1;
    if f.chunk_hashes.len() != n {
        return Err(XorbError::FooterMismatch(format!(
            "footer lists {} chunks, records hold {n}",
            f.chunk_hashes.len()
        )));
    }
    if f.chunk_boundary_offsets[..] != offsets[1..] {
        return Err(XorbError::FooterMismatch("chunk boundary offsets".into()));
    }
    let ends: Vec<u32> = unpacked[1..].iter().map(|&u| u as u32).collect();
    if f.unpacked_chunk_offsets.is_empty() {
        f.unpacked_chunk_offsets = ends;
    } else if f.unpacked_chunk_offsets != ends {
        return Err(XorbError::FooterMismatch("unpacked chunk offsets".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_limits() {
        let mut b =
            XorbBuilder::new().with_policy(CompressionPolicy::Fixed(CompressionScheme::None));
        assert!(matches!(
            b.add_chunk(&vec![0; 131_073]),
            Err(XorbError::ChunkTooLarge(_))
        ));
        for _ in 0..MAX_XORB_CHUNKS {
            b.add_chunk(&[1]).expect("fits");
        }
        assert!(!b.can_add(1));
        assert_eq!(b.add_chunk(&[1]), Err(XorbError::Full));
        let mut b =
            XorbBuilder::new().with_policy(CompressionPolicy::Fixed(CompressionScheme::None));
        let chunk = vec![3u8; 131_072];
        let mut n = 0;
        while b.can_add(chunk.len()) {
            b.add_chunk(&chunk).expect("fits");
            n += 1;
        }
        assert_eq!(n, 511, "raw + 8·chunks ≤ 64 MiB");
        assert!(b.raw_len() + 8 * b.num_chunks() <= MAX_XORB_BYTES);
    }

    #[test]
    fn empty_ranges_and_out_of_bounds() {
        let mut b = XorbBuilder::new();
        b.add_chunk(b"abc").expect("fits");
        let x = b.finish();
        let r = XorbReader::new(&x.data).expect("valid");
        let mut out = Vec::new();
        r.decode_range(1..1, &mut out).expect("empty range");
        assert!(out.is_empty());
        assert!(matches!(
            r.decode_range(0..2, &mut out),
            Err(XorbError::RangeOutOfBounds { .. })
        ));
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 1..0;
        assert!(r.decode_range(reversed, &mut out).is_err());
        assert_eq!(x.chunk_byte_range(0..1), Some((0, x.data.len() as u64)));
        assert_eq!(x.chunk_byte_range(0..2), None);
    }
}
