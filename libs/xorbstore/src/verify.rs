//! Verification of a xorb chunk range before it is stored: every chunk record parses and decodes
//! to its stated length, the record count matches the range, chunk hashes match the expected ones
//! when the caller knows them, and the xorb hash is checked whenever the whole xorb is present.
//! Pure CPU work over a byte slice (no I/O); the result carries the per-chunk offsets and hashes
//! the store keeps as metadata.

use std::ops::Range;

use xet::chunk::{decode_chunk_with_scratch, ChunkRecords};
use xet::hash::{chunk_hash, xorb_hash};
use xet::MerkleHash;

use crate::error::VerifyError;

/// Most chunks one range may hold (a xorb's chunk limit).
pub const MAX_RANGE_CHUNKS: u32 = xet::xorb::MAX_XORB_CHUNKS as u32;

/// Most serialized bytes one range may hold. A xorb is at most 64 MiB uncompressed; a writer that
/// does not fall back to uncompressed records could exceed that slightly, so allow twice.
pub const MAX_RANGE_BYTES: usize = 2 * xet::xorb::MAX_XORB_BYTES;

/// How far a stored range has been proven correct. Ordered: a higher level implies more proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum VerificationLevel {
    /// Only structural checks passed: every record parsed and decoded to its stated length.
    Structural = 0,
    /// The expected chunk hashes were known from a source the store's owner trusts (not from
    /// whoever sent the bytes) and every chunk matched.
    ChunkHashesVerified = 1,
    /// The whole xorb is present and its Merkle root equals the xorb hash.
    XorbVerified = 2,
    /// The caller proved the bytes through a file hash covering them.
    FileVerified = 3,
}

impl VerificationLevel {
    /// The level stored as a byte, or `None` for an unknown value.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Structural),
            1 => Some(Self::ChunkHashesVerified),
            2 => Some(Self::XorbVerified),
            3 => Some(Self::FileVerified),
            _ => None,
        }
    }
}

/// What the caller knows about a range it inserts. `Expectation::default()` is "nothing": only
/// structural checks (and the xorb hash when `start == 0` and the range is the whole xorb).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expectation {
    /// The chunk hashes of chunks `start..end` (exactly `end - start` of them), e.g. from the
    /// xorb footer or a shard.
    pub chunk_hashes: Option<Vec<MerkleHash>>,
    /// The number of chunks in the whole xorb, when known. With `start == 0` and
    /// `end == xorb_chunks` the xorb hash is checked.
    pub xorb_chunks: Option<u32>,
    /// The caller says the range is the whole xorb (so the xorb hash must match).
    pub whole_xorb: bool,
    /// The caller already proved these bytes by a file hash (e.g. `zest pull` after hashing a
    /// whole file). Trusted: the range is stored as `FileVerified` once its structure checks out.
    pub file_verified: bool,
    /// The chunk hashes came from whoever asked for or sent the bytes (a peer's Request): they
    /// may reject bytes, never vouch for them, so the range stays `Structural` (unless the xorb
    /// hash or a file hash proves it).
    pub chunk_hashes_untrusted: bool,
}

impl Expectation {
    /// Nothing is known: structural checks only.
    pub fn structural() -> Self {
        Self::default()
    }

    /// The expected chunk hashes of the range's chunks.
    pub fn with_chunk_hashes(hashes: Vec<MerkleHash>) -> Self {
        Self {
            chunk_hashes: Some(hashes),
            ..Self::default()
        }
    }

    /// Chunk hashes supplied by a requester: bytes that disagree are refused, bytes that agree
    /// are not raised above `Structural` by them (see [`Expectation::chunk_hashes_untrusted`]).
    pub fn requester_hashes(hashes: Vec<MerkleHash>) -> Self {
        Self {
            chunk_hashes: Some(hashes),
            chunk_hashes_untrusted: true,
            ..Self::default()
        }
    }

    /// True when the chunk hashes, if any, vouch for the bytes (they came from a trusted
    /// source).
    fn trusted_hashes(&self) -> bool {
        self.chunk_hashes.is_some() && !self.chunk_hashes_untrusted
    }

    /// The range is a whole xorb: the xorb hash is checked.
    pub fn whole_xorb() -> Self {
        Self {
            whole_xorb: true,
            ..Self::default()
        }
    }

    /// Marks the bytes as proven by a file hash.
    pub fn file_verified(mut self) -> Self {
        self.file_verified = true;
        self
    }

    /// Sets the xorb's total chunk count.
    pub fn xorb_chunks(mut self, n: u32) -> Self {
        self.xorb_chunks = Some(n);
        self
    }

    /// The highest level this expectation can prove for `range`.
    pub(crate) fn can_prove(&self, range: &Range<u32>) -> VerificationLevel {
        if self.file_verified {
            VerificationLevel::FileVerified
        } else if range.start == 0 && (self.whole_xorb || self.xorb_chunks == Some(range.end)) {
            VerificationLevel::XorbVerified
        } else if self.trusted_hashes() {
            VerificationLevel::ChunkHashesVerified
        } else {
            VerificationLevel::Structural
        }
    }
}

/// The metadata of a verified range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeMeta {
    /// End offset of each chunk record within the range's bytes (header included).
    pub record_ends: Vec<u32>,
    /// End offset of each chunk within the range's concatenated uncompressed data.
    pub raw_ends: Vec<u32>,
    /// Hash of each chunk (computed while decoding).
    pub chunk_hashes: Vec<MerkleHash>,
    /// How far the range was proven.
    pub level: VerificationLevel,
}

/// Checks the chunk range argument alone.
pub fn check_range(range: &Range<u32>) -> Result<u32, VerifyError> {
    if range.start >= range.end {
        return Err(VerifyError::BadRange {
            start: range.start,
            end: range.end,
        });
    }
    let count = range.end - range.start;
    if count > MAX_RANGE_CHUNKS {
        return Err(VerifyError::RangeTooLong {
            count,
            max: MAX_RANGE_CHUNKS,
        });
    }
    Ok(count)
}

/// Verifies `bytes` as the chunk records of chunks `range` of xorb `xorb` against `expected`.
pub fn verify_range(
    xorb: &MerkleHash,
    range: Range<u32>,
    bytes: &[u8],
    expected: &Expectation,
) -> Result<RangeMeta, VerifyError> {
    verify(xorb, range, bytes, expected, None)
}

/// [`verify_range`] that also appends the decoded chunks to `out` (reserving their exact size
/// first, which the record headers bound by the range's chunk count), for a caller that needs
/// the data as well: every chunk is decoded and hashed once.
///
/// On an error, `out` may hold some decoded bytes; discard them.
pub fn verify_and_decode(
    xorb: &MerkleHash,
    range: Range<u32>,
    bytes: &[u8],
    expected: &Expectation,
    out: &mut Vec<u8>,
) -> Result<RangeMeta, VerifyError> {
    let count = check_range(&range)?;
    let mut total = 0usize;
    let mut found = 0u32;
    for record in ChunkRecords::new(bytes) {
        let Ok(record) = record else { break }; // reported by `verify` with its position
        found += 1;
        if found > count {
            break;
        }
        total += (record.header.uncompressed_len as usize)
            .min(xet::chunk::MAX_UNCOMPRESSED_LEN as usize);
    }
    out.reserve(total);
    verify(xorb, range, bytes, expected, Some(out))
}

fn verify(
    xorb: &MerkleHash,
    range: Range<u32>,
    bytes: &[u8],
    expected: &Expectation,
    mut out: Option<&mut Vec<u8>>,
) -> Result<RangeMeta, VerifyError> {
    let count = check_range(&range)?;
    if bytes.len() > MAX_RANGE_BYTES {
        return Err(VerifyError::TooLarge {
            len: bytes.len(),
            max: MAX_RANGE_BYTES,
        });
    }
    if let Some(hashes) = &expected.chunk_hashes {
        if hashes.len() != count as usize {
            return Err(VerifyError::Expectation(format!(
                "{} chunk hashes given for a range of {count} chunks",
                hashes.len()
            )));
        }
    }
    if let Some(n) = expected.xorb_chunks {
        if range.end > n {
            return Err(VerifyError::Expectation(format!(
                "range end {} is past the xorb's {n} chunks",
                range.end
            )));
        }
    }
    if expected.whole_xorb && range.start != 0 {
        return Err(VerifyError::Expectation(
            "a whole xorb must start at chunk 0".into(),
        ));
    }

    let mut record_ends = Vec::with_capacity(count as usize);
    let mut raw_ends = Vec::with_capacity(count as usize);
    let mut chunk_hashes = Vec::with_capacity(count as usize);
    let mut scratch = Vec::new();
    let mut bg4_scratch = Vec::new();
    let mut raw_total: u64 = 0;
    let mut found: u32 = 0;
    for record in ChunkRecords::new(bytes) {
        let index = range.start + found;
        if found == count {
            // More records than the range holds; count them no further.
            return Err(VerifyError::ChunkCount {
                expected: count,
                found: count + 1,
            });
        }
        let record = record.map_err(|source| VerifyError::Chunk {
            index,
            offset: record_ends.last().map_or(0, |&e: &u32| e as usize),
            source,
        })?;
        let dst: &mut Vec<u8> = match out.as_deref_mut() {
            Some(o) => o,
            None => {
                scratch.clear();
                &mut scratch
            }
        };
        let start = dst.len();
        decode_chunk_with_scratch(&record.header, record.payload, dst, &mut bg4_scratch).map_err(
            |source| VerifyError::Chunk {
                index,
                offset: record.offset,
                source,
            },
        )?;
        let decoded = &dst[start..];
        let hash = chunk_hash(decoded);
        if let Some(exp) = &expected.chunk_hashes {
            let want = exp[found as usize];
            if want != hash {
                return Err(VerifyError::ChunkHash {
                    index,
                    expected: want,
                    actual: hash,
                });
            }
        }
        raw_total += decoded.len() as u64;
        let end = record.end();
        // Both fit in u32: bytes.len() <= MAX_RANGE_BYTES and raw bytes per chunk are bounded.
        record_ends.push(u32::try_from(end).map_err(|_| VerifyError::TooLarge {
            len: end,
            max: MAX_RANGE_BYTES,
        })?);
        raw_ends.push(u32::try_from(raw_total).map_err(|_| VerifyError::TooLarge {
            len: usize::MAX,
            max: MAX_RANGE_BYTES,
        })?);
        chunk_hashes.push(hash);
        found += 1;
    }
    if found != count {
        return Err(VerifyError::ChunkCount {
            expected: count,
            found,
        });
    }

    let mut level = if expected.trusted_hashes() {
        VerificationLevel::ChunkHashesVerified
    } else {
        VerificationLevel::Structural
    };
    if range.start == 0 && (expected.whole_xorb || expected.xorb_chunks == Some(range.end)) {
        let mut prev = 0u32;
        let leaves: Vec<(MerkleHash, u64)> = chunk_hashes
            .iter()
            .zip(&raw_ends)
            .map(|(h, &e)| {
                let len = u64::from(e - prev);
                prev = e;
                (*h, len)
            })
            .collect();
        let actual = xorb_hash(&leaves);
        if actual != *xorb {
            return Err(VerifyError::XorbHash {
                expected: *xorb,
                actual,
            });
        }
        level = VerificationLevel::XorbVerified;
    }
    if expected.file_verified {
        level = VerificationLevel::FileVerified;
    }
    Ok(RangeMeta {
        record_ends,
        raw_ends,
        chunk_hashes,
        level,
    })
}
