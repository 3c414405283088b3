//! The JSON bodies of the CAS HTTP API (SPEC-DIGEST §5, §6.2) and the HTTP `Range` header.
//!
//! Field names are exactly those on the wire (xet-core `cas_types`, `hub_client::CasJWTInfo`).
//! Two coordinate conventions meet here and are easy to mix up: chunk ranges ([`ChunkRange`])
//! exclude their end, byte ranges ([`ByteRange`]) include it, as HTTP `Range` does.
//!
//! A v1 reconstruction lists one presigned URL per chunk range (`fetch_info`); v2 groups several
//! ranges of a xorb under one URL (`xorbs`). [`ReconstructionV2::from`] turns every v1 fetch entry
//! into a v2 range and merges consecutive entries that share a URL; [`ReconstructionV2::to_v1`]
//! splits every v2 range into its own v1 entry carrying the same URL (as xet-core does when it
//! fetches the ranges of a v2 URL one by one). So v1 → v2 → v1 is the identity, and so is
//! v2 → v1 → v2 when no two consecutive fetch entries of a xorb carry the same URL.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::MerkleHash;

/// Chunk indices `[start, end)` inside a xorb.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub struct ChunkRange {
    pub start: u32,
    /// Exclusive.
    pub end: u32,
}

impl ChunkRange {
    pub fn new(start: u32, end: u32) -> Self {
        ChunkRange { start, end }
    }

    /// Number of chunks (0 if the range is reversed).
    pub fn len(&self) -> u32 {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// Byte offsets `[start, end]`, end INCLUSIVE (HTTP style).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub struct ByteRange {
    pub start: u64,
    /// Inclusive. [`parse_range_header`] uses `u64::MAX` for an open end (`bytes=S-`) when the
    /// total length is unknown.
    pub end: u64,
}

impl ByteRange {
    pub fn new(start: u64, end_inclusive: u64) -> Self {
        ByteRange {
            start,
            end: end_inclusive,
        }
    }

    /// From an exclusive end (`[start, end)`); `None` if the range would be empty.
    pub fn from_exclusive(start: u64, end_exclusive: u64) -> Option<Self> {
        (end_exclusive > start).then(|| ByteRange::new(start, end_exclusive - 1))
    }

    /// Number of bytes (`end - start + 1`, saturating; 0 if reversed).
    pub fn len(&self) -> u64 {
        if self.end < self.start {
            0
        } else {
            (self.end - self.start).saturating_add(1)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.end < self.start
    }

    /// The exclusive end (`end + 1`, saturating).
    pub fn end_exclusive(&self) -> u64 {
        self.end.saturating_add(1)
    }

    /// The `Range` header value for this range alone: `bytes=S-E`.
    pub fn header_value(&self) -> String {
        format!("bytes={}-{}", self.start, self.end)
    }
}

/// The `Range` header value for several ranges: `bytes=S1-E1,S2-E2` (in the given order).
pub fn format_range_header(ranges: &[ByteRange]) -> String {
    let mut s = String::from("bytes=");
    for (i, r) in ranges.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("{}-{}", r.start, r.end));
    }
    s
}

/// One term of a file: a run of chunks of one xorb, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReconstructionTerm {
    /// The xorb hash.
    pub hash: MerkleHash,
    /// Decoded size of the whole chunk range.
    pub unpacked_length: u32,
    pub range: ChunkRange,
}

/// v1: where to fetch one chunk range of a xorb.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FetchInfo {
    pub range: ChunkRange,
    /// Presigned URL; fetch with `Range: bytes=url_range.start-url_range.end` and no
    /// Authorization header.
    pub url: String,
    /// Byte range of the chunk records inside the stored xorb (inclusive).
    pub url_range: ByteRange,
}

/// `GET /v1/reconstructions/{file_id}` response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReconstructionV1 {
    /// Bytes to drop from the decoded data of the first term.
    pub offset_into_first_range: u64,
    pub terms: Vec<ReconstructionTerm>,
    pub fetch_info: HashMap<MerkleHash, Vec<FetchInfo>>,
}

/// v2: one chunk range of a xorb and where its records are inside the stored xorb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct XorbRangeDescriptor {
    pub chunks: ChunkRange,
    /// Inclusive.
    pub bytes: ByteRange,
}

/// v2: one presigned URL signed for several byte ranges of a xorb.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct XorbMultiRangeFetch {
    pub url: String,
    pub ranges: Vec<XorbRangeDescriptor>,
}

/// `GET /v2/reconstructions/{file_id}` response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReconstructionV2 {
    pub offset_into_first_range: u64,
    pub terms: Vec<ReconstructionTerm>,
    pub xorbs: HashMap<MerkleHash, Vec<XorbMultiRangeFetch>>,
}

impl From<ReconstructionV1> for ReconstructionV2 {
    fn from(v1: ReconstructionV1) -> Self {
        let xorbs = v1
            .fetch_info
            .into_iter()
            .map(|(hash, infos)| {
                let mut fetches: Vec<XorbMultiRangeFetch> = Vec::with_capacity(infos.len());
                for info in infos {
                    let range = XorbRangeDescriptor {
                        chunks: info.range,
                        bytes: info.url_range,
                    };
                    match fetches.last_mut() {
                        Some(last) if last.url == info.url => last.ranges.push(range),
                        _ => fetches.push(XorbMultiRangeFetch {
                            url: info.url,
                            ranges: vec![range],
                        }),
                    }
                }
                (hash, fetches)
            })
            .collect();
        ReconstructionV2 {
            offset_into_first_range: v1.offset_into_first_range,
            terms: v1.terms,
            xorbs,
        }
    }
}

impl ReconstructionV2 {
    /// The v1 form: one fetch entry per range, each with its URL.
    pub fn to_v1(&self) -> ReconstructionV1 {
        let fetch_info = self
            .xorbs
            .iter()
            .map(|(hash, fetches)| {
                let infos = fetches
                    .iter()
                    .flat_map(|f| {
                        f.ranges.iter().map(|r| FetchInfo {
                            range: r.chunks,
                            url: f.url.clone(),
                            url_range: r.bytes,
                        })
                    })
                    .collect();
                (*hash, infos)
            })
            .collect();
        ReconstructionV1 {
            offset_into_first_range: self.offset_into_first_range,
            terms: self.terms.clone(),
            fetch_info,
        }
    }

    /// Sum of the terms' `unpacked_length` (the decoded bytes before trimming).
    pub fn total_unpacked_len(&self) -> u64 {
        self.terms
            .iter()
            .map(|t| u64::from(t.unpacked_length))
            .sum()
    }
}

impl From<ReconstructionV2> for ReconstructionV1 {
    fn from(v2: ReconstructionV2) -> Self {
        v2.to_v1()
    }
}

/// Batch v1 reconstruction (`GET /v1/reconstructions?file_id=..`): terms per file, shared
/// fetch info.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BatchReconstructionV1 {
    pub files: HashMap<MerkleHash, Vec<ReconstructionTerm>>,
    pub fetch_info: HashMap<MerkleHash, Vec<FetchInfo>>,
}

/// `POST /v1/xorbs/default/{hash}` response (`false` = already present, not an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadXorbResponse {
    pub was_inserted: bool,
}

/// `POST /v1/shards` response: 0 = already existed, 1 = registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadShardResponse {
    pub result: u32,
}

/// The Hub's CAS token (`GET /api/{type}s/{repo}/xet-{read|write}-token/{rev}`), camelCase on
/// the wire. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CasJwtInfo {
    pub cas_url: String,
    /// Expiry, unix seconds.
    pub exp: u64,
    pub access_token: String,
}

impl fmt::Debug for CasJwtInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CasJwtInfo")
            .field("cas_url", &self.cas_url)
            .field("exp", &self.exp)
            .field("access_token", &"<redacted>")
            .finish()
    }
}

/// Most ranges accepted in one `Range` header.
pub const MAX_RANGES: usize = 4096;

/// A `Range` header that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("Range header must start with \"bytes=\"")]
    Unit,
    #[error("malformed byte range {0:?}")]
    Syntax(String),
    #[error("byte range {start}-{end} ends before it starts")]
    Reversed { start: u64, end: u64 },
    #[error("Range header has no ranges")]
    Empty,
    #[error("Range header has more than {MAX_RANGES} ranges")]
    TooMany,
    #[error("suffix range bytes=-{0} needs the total length")]
    SuffixWithoutLength(u64),
    /// HTTP 416: no range overlaps the content.
    #[error("no range is satisfiable for a length of {len}")]
    NotSatisfiable { len: u64 },
}

impl RangeError {
    /// Whether the answer is `416 Range Not Satisfiable` (else `400`).
    pub fn is_not_satisfiable(&self) -> bool {
        matches!(self, RangeError::NotSatisfiable { .. })
    }
}

fn parse_num(s: &str, spec: &str) -> Result<u64, RangeError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RangeError::Syntax(spec.to_string()));
    }
    s.parse::<u64>()
        .map_err(|_| RangeError::Syntax(spec.to_string()))
}

/// Parses an HTTP `Range` header value: `bytes=S-E`, `bytes=S-`, `bytes=-N` (last N bytes), or
/// several of them separated by commas (empty list elements are ignored, as RFC 9110 asks).
///
/// Ranges come back in header order, inclusive. Every range must have `S <= E`.
/// With `total_len = Some(len)`: ends are clamped to `len - 1`, ranges starting at or past
/// `len` (and `-0`) are dropped, and [`RangeError::NotSatisfiable`] (416) is returned when none
/// is left (RFC 9110 §14.1.2 — for a single range this is "reject S >= len").
/// With `None`: `S-` gets `end = u64::MAX`, and a suffix range is an error.
pub fn parse_range_header(
    value: &str,
    total_len: Option<u64>,
) -> Result<Vec<ByteRange>, RangeError> {
    let value = value.trim();
    let (unit, set) = value.split_once('=').ok_or(RangeError::Unit)?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Err(RangeError::Unit);
    }
    let mut out = Vec::new();
    let mut seen = 0usize;
    for spec in set.split(',') {
        let spec = spec.trim();
        if spec.is_empty() {
            continue;
        }
        seen += 1;
        if seen > MAX_RANGES {
            return Err(RangeError::TooMany);
        }
        let (first, last) = spec
            .split_once('-')
            .ok_or_else(|| RangeError::Syntax(spec.to_string()))?;
        if first.is_empty() {
            let n = parse_num(last, spec)?;
            let len = total_len.ok_or(RangeError::SuffixWithoutLength(n))?;
            if n > 0 && len > 0 {
                out.push(ByteRange::new(len.saturating_sub(n), len - 1));
            }
            continue;
        }
        let start = parse_num(first, spec)?;
        let end = if last.is_empty() {
            u64::MAX
        } else {
            let end = parse_num(last, spec)?;
            if end < start {
                return Err(RangeError::Reversed { start, end });
            }
            end
        };
        match total_len {
            Some(len) if start >= len => {}
            Some(len) => out.push(ByteRange::new(start, end.min(len - 1))),
            None => out.push(ByteRange::new(start, end)),
        }
    }
    if seen == 0 {
        return Err(RangeError::Empty);
    }
    if out.is_empty() {
        // Only reachable with a total length: every range fell outside it.
        return Err(RangeError::NotSatisfiable {
            len: total_len.unwrap_or(0),
        });
    }
    Ok(out)
}

/// Chunks `chunks` of xorb `xorb` as fetched: each chunk's hash and uncompressed length, in
/// chunk order (what a verified range's metadata holds).
#[derive(Debug, Clone, Copy)]
pub struct FetchedRange<'a> {
    pub xorb: MerkleHash,
    pub chunks: ChunkRange,
    pub hashes: &'a [MerkleHash],
    pub lens: &'a [u32],
}

/// Why a file's leaves could not be laid out from its terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TermError {
    /// No fetched range of the term's xorb covers its chunks.
    #[error("term {xorb}[{start}..{end}) is not covered by any fetched range")]
    NotCovered {
        xorb: MerkleHash,
        start: u32,
        end: u32,
    },
    /// The term's chunks decode to another length than the term says.
    #[error("term {xorb}[{start}..{end}) decodes to {actual} bytes, not {expected}")]
    Length {
        xorb: MerkleHash,
        start: u32,
        end: u32,
        expected: u32,
        actual: u64,
    },
    /// A fetched range's hashes or lengths do not have one entry per chunk.
    #[error("fetched range {xorb}[{start}..{end}) has {hashes} hashes and {lens} lengths")]
    BadRange {
        xorb: MerkleHash,
        start: u32,
        end: u32,
        hashes: usize,
        lens: usize,
    },
}

/// The file's Merkle leaves `(chunk hash, uncompressed length)` in file order, laid out from
/// its `terms` over the `fetched` ranges that cover them (any fetched range of the term's xorb
/// containing its chunks; several terms may share one). The Xet file hash is
/// [`crate::hash::file_hash`] of the result. A term no range covers, a term whose chunks add up
/// to another length than its `unpacked_length`, or a malformed fetched range is an error.
pub fn file_leaves(
    terms: &[ReconstructionTerm],
    fetched: &[FetchedRange<'_>],
) -> Result<Vec<(MerkleHash, u64)>, TermError> {
    for f in fetched {
        let n = f.chunks.len() as usize;
        if f.chunks.is_empty() || f.hashes.len() != n || f.lens.len() != n {
            return Err(TermError::BadRange {
                xorb: f.xorb,
                start: f.chunks.start,
                end: f.chunks.end,
                hashes: f.hashes.len(),
                lens: f.lens.len(),
            });
        }
    }
    let mut leaves = Vec::new();
    for t in terms {
        let (start, end) = (t.range.start, t.range.end);
        let src = fetched
            .iter()
            .find(|f| {
                f.xorb == t.hash && f.chunks.start <= start && start < end && end <= f.chunks.end
            })
            .ok_or(TermError::NotCovered {
                xorb: t.hash,
                start,
                end,
            })?;
        let a = (start - src.chunks.start) as usize;
        let b = (end - src.chunks.start) as usize;
        let mut sum = 0u64;
        for (h, &l) in src.hashes[a..b].iter().zip(&src.lens[a..b]) {
            leaves.push((*h, u64::from(l)));
            sum += u64::from(l);
        }
        if sum != u64::from(t.unpacked_length) {
            return Err(TermError::Length {
                xorb: t.hash,
                start,
                end,
                expected: t.unpacked_length,
                actual: sum,
            });
        }
    }
    Ok(leaves)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_range_helpers() {
        let r = ByteRange::new(10, 19);
        assert_eq!(r.len(), 10);
        assert_eq!(r.end_exclusive(), 20);
        assert_eq!(r.header_value(), "bytes=10-19");
        assert_eq!(ByteRange::from_exclusive(10, 20), Some(r));
        assert_eq!(ByteRange::from_exclusive(10, 10), None);
        assert_eq!(ByteRange::new(0, u64::MAX).len(), u64::MAX);
        assert_eq!(
            format_range_header(&[r, ByteRange::new(30, 30)]),
            "bytes=10-19,30-30"
        );
    }

    #[test]
    fn jwt_debug_hides_token() {
        let t = CasJwtInfo {
            cas_url: "https://cas".into(),
            exp: 1,
            access_token: "secret".into(),
        };
        assert!(!format!("{t:?}").contains("secret"));
    }

    fn term(xorb: u8, start: u32, end: u32, len: u32) -> ReconstructionTerm {
        ReconstructionTerm {
            hash: MerkleHash::from_bytes([xorb; 32]),
            unpacked_length: len,
            range: ChunkRange::new(start, end),
        }
    }

    #[test]
    fn file_leaves_lay_out_terms_over_covering_ranges() {
        let x = MerkleHash::from_bytes([1; 32]);
        let y = MerkleHash::from_bytes([2; 32]);
        let hx: Vec<MerkleHash> = (0..4)
            .map(|i| MerkleHash::from_bytes([10 + i; 32]))
            .collect();
        let hy = vec![MerkleHash::from_bytes([20; 32])];
        let fetched = [
            FetchedRange {
                xorb: x,
                chunks: ChunkRange::new(0, 4),
                hashes: &hx,
                lens: &[5, 6, 7, 8],
            },
            FetchedRange {
                xorb: y,
                chunks: ChunkRange::new(3, 4),
                hashes: &hy,
                lens: &[9],
            },
        ];
        // Two terms share x's range; y's single chunk sits between them.
        let terms = [term(1, 1, 3, 13), term(2, 3, 4, 9), term(1, 0, 1, 5)];
        let leaves = file_leaves(&terms, &fetched).expect("leaves");
        assert_eq!(leaves, vec![(hx[1], 6), (hx[2], 7), (hy[0], 9), (hx[0], 5)]);
        assert_eq!(
            crate::hash::file_hash(&leaves),
            crate::hash::file_hash(&[(hx[1], 6), (hx[2], 7), (hy[0], 9), (hx[0], 5)])
        );
        assert_eq!(file_leaves(&[], &fetched), Ok(vec![]));
    }

    #[test]
    fn file_leaves_errors_are_typed() {
        let x = MerkleHash::from_bytes([1; 32]);
        let h = [MerkleHash::from_bytes([3; 32]); 2];
        let fetched = [FetchedRange {
            xorb: x,
            chunks: ChunkRange::new(2, 4),
            hashes: &h,
            lens: &[5, 6],
        }];
        assert!(matches!(
            file_leaves(&[term(1, 1, 3, 11)], &fetched),
            Err(TermError::NotCovered {
                start: 1,
                end: 3,
                ..
            })
        ));
        assert!(matches!(
            file_leaves(&[term(9, 2, 4, 11)], &fetched),
            Err(TermError::NotCovered { .. })
        ));
        assert!(matches!(
            file_leaves(&[term(1, 3, 3, 0)], &fetched),
            Err(TermError::NotCovered { .. })
        ));
        assert_eq!(
            file_leaves(&[term(1, 2, 4, 12)], &fetched),
            Err(TermError::Length {
                xorb: x,
                start: 2,
                end: 4,
                expected: 12,
                actual: 11
            })
        );
        let bad = [FetchedRange {
            xorb: x,
            chunks: ChunkRange::new(2, 4),
            hashes: &h,
            lens: &[5],
        }];
        assert!(matches!(
            file_leaves(&[term(1, 2, 4, 11)], &bad),
            Err(TermError::BadRange { lens: 1, .. })
        ));
    }
}
