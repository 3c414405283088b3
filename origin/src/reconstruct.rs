//! Reconstruction plans: which chunk ranges of which xorbs rebuild a byte range of a file.
//!
//! Pure functions over the index records. A plan lists the file's terms trimmed to the chunks
//! that overlap the requested bytes (with `offset_into_first_range` when the range starts inside
//! a chunk), and per xorb the merged chunk ranges to fetch with their inclusive byte ranges in
//! the xorb's chunk region. The HTTP layer turns a plan into v1 or v2 JSON with signed URLs.

use std::collections::BTreeMap;
use std::ops::Range;

use xet::MerkleHash;

use crate::index::{TermRecord, XorbRecord};

/// One term of the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTerm {
    pub xorb: MerkleHash,
    pub chunks: Range<u32>,
    pub unpacked_length: u32,
}

/// One range to fetch from a xorb: chunks and their inclusive serialized byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFetch {
    pub chunks: Range<u32>,
    pub bytes: (u64, u64),
}

/// The answer to a reconstruction request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub offset_into_first_range: u64,
    pub terms: Vec<PlannedTerm>,
    /// Per xorb, ascending, non-overlapping.
    pub fetch: BTreeMap<MerkleHash, Vec<PlannedFetch>>,
}

/// A term refers to a xorb or chunks the index does not have (a bug, or a damaged index).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("term refers to missing xorb or chunks: {0}")]
pub struct PlanError(pub MerkleHash);

/// Plans the reconstruction of file bytes `start..=end` (already clamped to the file).
pub fn plan<'a>(
    terms: &[TermRecord],
    xorb: impl Fn(&MerkleHash) -> Option<&'a XorbRecord>,
    start: u64,
    end: u64,
) -> Result<Plan, PlanError> {
    let mut out = Plan::default();
    let mut pos = 0u64;
    let mut wanted: BTreeMap<MerkleHash, Vec<Range<u32>>> = BTreeMap::new();
    for t in terms {
        let x = xorb(&t.xorb)
            .filter(|x| t.start < t.end && t.end <= x.num_chunks())
            .ok_or(PlanError(t.xorb))?;
        let base = x.raw_start(t.start);
        let term_len = x.raw_start(t.end) - base;
        let term_start = pos;
        pos += term_len;
        if pos <= start {
            continue;
        }
        if term_start > end {
            break;
        }
        // First chunk whose end (in file coordinates) lies after `start`, and the first whose
        // end lies after `end`.
        let ends = &x.raw_ends[t.start as usize..t.end as usize];
        let first_after = |file_off: u64| -> u32 {
            let target = file_off - term_start + base;
            t.start + ends.partition_point(|&e| (e as u64) <= target) as u32
        };
        let c0 = if start > term_start {
            first_after(start)
        } else {
            t.start
        };
        let c1 = if end < pos - 1 {
            first_after(end) + 1
        } else {
            t.end
        };
        if out.terms.is_empty() {
            out.offset_into_first_range = start.saturating_sub(term_start + x.raw_start(c0) - base);
        }
        out.terms.push(PlannedTerm {
            xorb: t.xorb,
            chunks: c0..c1,
            unpacked_length: (x.raw_start(c1) - x.raw_start(c0)) as u32,
        });
        wanted.entry(t.xorb).or_default().push(c0..c1);
    }
    for (hash, mut ranges) in wanted {
        let x = xorb(&hash).ok_or(PlanError(hash))?;
        ranges.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<u32>> = Vec::new();
        for r in ranges {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        out.fetch.insert(
            hash,
            merged
                .into_iter()
                .map(|c| PlannedFetch {
                    bytes: (x.byte_start(c.start), x.byte_start(c.end) - 1),
                    chunks: c,
                })
                .collect(),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(b: u8) -> MerkleHash {
        MerkleHash::from_bytes([b; 32])
    }

    /// Xorb A: 4 chunks of 10 raw bytes (serialized 18 each); xorb B: 2 chunks of 5 (13 each).
    fn xorbs() -> BTreeMap<MerkleHash, XorbRecord> {
        let mut m = BTreeMap::new();
        m.insert(
            h(1),
            XorbRecord {
                chunk_hashes: vec![h(11), h(12), h(13), h(14)],
                byte_ends: vec![18, 36, 54, 72],
                raw_ends: vec![10, 20, 30, 40],
                stored_len: 100,
            },
        );
        m.insert(
            h(2),
            XorbRecord {
                chunk_hashes: vec![h(21), h(22)],
                byte_ends: vec![13, 26],
                raw_ends: vec![5, 10],
                stored_len: 50,
            },
        );
        m
    }

    /// File = A[0..2] (20 bytes) + B[0..2] (10 bytes) + A[2..4] (20 bytes): 50 bytes.
    fn terms() -> Vec<TermRecord> {
        vec![
            TermRecord {
                xorb: h(1),
                start: 0,
                end: 2,
            },
            TermRecord {
                xorb: h(2),
                start: 0,
                end: 2,
            },
            TermRecord {
                xorb: h(1),
                start: 2,
                end: 4,
            },
        ]
    }

    #[test]
    fn whole_file_merges_adjacent_ranges_of_one_xorb() {
        let x = xorbs();
        let p = plan(&terms(), |k| x.get(k), 0, 49).expect("plan");
        assert_eq!(p.offset_into_first_range, 0);
        assert_eq!(p.terms.len(), 3);
        assert_eq!(p.terms[0].unpacked_length, 20);
        assert_eq!(
            p.fetch[&h(1)],
            vec![PlannedFetch {
                chunks: 0..4,
                bytes: (0, 71)
            }]
        );
        assert_eq!(
            p.fetch[&h(2)],
            vec![PlannedFetch {
                chunks: 0..2,
                bytes: (0, 25)
            }]
        );
        let total: u64 = p.terms.iter().map(|t| t.unpacked_length as u64).sum();
        assert_eq!(total, 50);
    }

    #[test]
    fn mid_chunk_range_sets_offset_and_trims_terms() {
        let x = xorbs();
        // Bytes 13..=26: chunk A1 (10..20) then B0 (20..25) and B1 (25..30).
        let p = plan(&terms(), |k| x.get(k), 13, 26).expect("plan");
        assert_eq!(p.offset_into_first_range, 3);
        assert_eq!(
            p.terms,
            vec![
                PlannedTerm {
                    xorb: h(1),
                    chunks: 1..2,
                    unpacked_length: 10
                },
                PlannedTerm {
                    xorb: h(2),
                    chunks: 0..2,
                    unpacked_length: 10
                },
            ]
        );
        assert_eq!(
            p.fetch[&h(1)],
            vec![PlannedFetch {
                chunks: 1..2,
                bytes: (18, 35)
            }]
        );
    }

    #[test]
    fn last_byte_only() {
        let x = xorbs();
        let p = plan(&terms(), |k| x.get(k), 49, 49).expect("plan");
        assert_eq!(p.offset_into_first_range, 9);
        assert_eq!(
            p.terms,
            vec![PlannedTerm {
                xorb: h(1),
                chunks: 3..4,
                unpacked_length: 10
            }]
        );
        assert_eq!(
            p.fetch[&h(1)],
            vec![PlannedFetch {
                chunks: 3..4,
                bytes: (54, 71)
            }]
        );
    }

    #[test]
    fn every_single_byte_range_is_covered() {
        let x = xorbs();
        for s in 0..50u64 {
            for e in s..50 {
                let p = plan(&terms(), |k| x.get(k), s, e).expect("plan");
                let total: u64 = p.terms.iter().map(|t| t.unpacked_length as u64).sum();
                assert!(
                    total >= p.offset_into_first_range + (e - s + 1),
                    "{s}-{e}: {p:?}"
                );
                assert!(p.offset_into_first_range < 10);
            }
        }
    }

    #[test]
    fn missing_xorb_is_an_error() {
        let x = xorbs();
        let t = vec![TermRecord {
            xorb: h(9),
            start: 0,
            end: 1,
        }];
        assert_eq!(plan(&t, |k| x.get(k), 0, 0), Err(PlanError(h(9))));
        let t = vec![TermRecord {
            xorb: h(2),
            start: 0,
            end: 3,
        }];
        assert!(plan(&t, |k| x.get(k), 0, 0).is_err());
    }
}
