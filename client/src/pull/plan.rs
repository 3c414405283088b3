//! The layout of one Xet file: which units (xorb chunk ranges) to fetch, and each term's place
//! in the file (each term's offset is the sum of the unpacked lengths before it); and the file
//! hash of the chunks fetched for those terms.

use std::collections::HashMap;
use std::ops::Range;

use xet::MerkleHash;
use zest_tracker_api::ManifestTerm;

use super::place::Held;
use crate::fleet::{Unit, UpstreamRange};

/// Why a reconstruction (or manifest) cannot be laid out as a file.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("the reconstruction has an invalid range for xorb {0}")]
    InvalidRange(MerkleHash),
    #[error("empty term in the reconstruction")]
    EmptyTerm,
    #[error("term too long")]
    TermTooLong,
    #[error("no fetch range covers a term of xorb {0}")]
    Uncovered(MerkleHash),
    #[error("term lengths overflow")]
    Overflow,
    #[error("the file's terms add up to {got} bytes, the listing says {want}")]
    Size { got: u64, want: u64 },
}

/// One term of the file: the unit holding it, its chunk range, and where it goes in the file.
#[derive(Debug, Clone)]
pub struct TermSlot {
    pub unit: usize,
    pub xorb: MerkleHash,
    pub range: Range<u32>,
    pub offset: u64,
    pub len: u64,
}

/// Units to fetch and the file's terms in order (with offsets). `manifest_terms` replace the
/// reconstruction's terms in fleet-only pulls (whose units are then the terms' own ranges).
pub fn plan(
    recon: &xet::ReconstructionV2,
    manifest_terms: &[ManifestTerm],
    size: u64,
) -> Result<(Vec<Unit>, Vec<TermSlot>), PlanError> {
    let mut units: Vec<Unit> = Vec::new();
    let mut by_xorb: HashMap<MerkleHash, Vec<usize>> = Default::default();
    for (xorb, fetches) in &recon.xorbs {
        for f in fetches {
            for r in &f.ranges {
                if r.chunks.start >= r.chunks.end
                    || r.chunks.end - r.chunks.start > xorbstore::MAX_RANGE_CHUNKS
                    || r.bytes.end < r.bytes.start
                {
                    return Err(PlanError::InvalidRange(*xorb));
                }
                by_xorb.entry(*xorb).or_default().push(units.len());
                units.push(Unit {
                    xorb: *xorb,
                    chunks: r.chunks.start..r.chunks.end,
                    upstream: Some(UpstreamRange {
                        url: f.url.clone(),
                        start: r.bytes.start,
                        end: r.bytes.end,
                    }),
                });
            }
        }
    }
    let term_list: Vec<(MerkleHash, Range<u32>, u32)> = if manifest_terms.is_empty() {
        recon
            .terms
            .iter()
            .map(|t| (t.hash, t.range.start..t.range.end, t.unpacked_length))
            .collect()
    } else {
        manifest_terms
            .iter()
            .map(|t| (t.hash, t.range.start..t.range.end, t.unpacked_length))
            .collect()
    };
    let mut terms = Vec::with_capacity(term_list.len());
    let mut offset = 0u64;
    for (xorb, r, len) in term_list {
        if r.start >= r.end {
            return Err(PlanError::EmptyTerm);
        }
        let found = by_xorb.get(&xorb).and_then(|ids| {
            ids.iter()
                .copied()
                .find(|&i| units[i].chunks.start <= r.start && r.end <= units[i].chunks.end)
        });
        let idx = match found {
            Some(i) => i,
            None if recon.xorbs.is_empty() => {
                // Fleet-only: fetch the term's own range (once per distinct range).
                if r.end - r.start > xorbstore::MAX_RANGE_CHUNKS {
                    return Err(PlanError::TermTooLong);
                }
                by_xorb.entry(xorb).or_default().push(units.len());
                units.push(Unit {
                    xorb,
                    chunks: r.clone(),
                    upstream: None,
                });
                units.len() - 1
            }
            None => return Err(PlanError::Uncovered(xorb)),
        };
        terms.push(TermSlot {
            unit: idx,
            xorb,
            range: r,
            offset,
            len: u64::from(len),
        });
        offset = offset
            .checked_add(u64::from(len))
            .ok_or(PlanError::Overflow)?;
    }
    if offset != size {
        return Err(PlanError::Size {
            got: offset,
            want: size,
        });
    }
    Ok((units, terms))
}

/// The Xet file hash of the file's terms, from the chunks fetched for each unit (`None` when a
/// unit a term needs was not fetched).
pub fn file_hash(units: &[Unit], terms: &[TermSlot], got: &[Option<Held>]) -> Option<MerkleHash> {
    let mut chunks = Vec::new();
    for t in terms.iter() {
        let h = got[t.unit].as_ref()?;
        let a = (t.range.start - units[t.unit].chunks.start) as usize;
        let b = (t.range.end - units[t.unit].chunks.start) as usize;
        for k in a..b {
            chunks.push((h.hashes[k], u64::from(h.lens[k])));
        }
    }
    Some(xet::hash::file_hash(&chunks))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use zest_tracker_api::ChunkRange;

    pub(crate) fn h(n: u8) -> MerkleHash {
        let mut hex = String::new();
        for _ in 0..32 {
            hex.push_str(&format!("{n:02x}"));
        }
        MerkleHash::from_hex(&hex).expect("hex")
    }

    fn mterm(x: u8, r: Range<u32>, len: u32) -> ManifestTerm {
        ManifestTerm {
            hash: h(x),
            unpacked_length: len,
            range: ChunkRange {
                start: r.start,
                end: r.end,
            },
        }
    }

    #[test]
    fn terms_get_offsets_and_share_units() {
        let recon = xet::ReconstructionV2::default();
        let terms = [mterm(1, 0..3, 100), mterm(2, 0..1, 50), mterm(1, 0..3, 100)];
        let (units, slots) = plan(&recon, &terms, 250).expect("plan");
        assert_eq!(units.len(), 2, "the repeated range is fetched once");
        assert_eq!(
            slots.iter().map(|s| s.offset).collect::<Vec<_>>(),
            [0, 100, 150]
        );
        assert_eq!(slots[0].unit, slots[2].unit);
        assert!(plan(&recon, &terms, 251).is_err(), "sizes must add up");
    }
}
