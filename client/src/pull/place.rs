//! Writing a fetched unit into the `.incomplete` file ([`place`]: decode, hash and write each
//! chunk at every offset that uses it, in one pass) and reading back what a killed pull left
//! there ([`resume`]: only the journalled units whose bytes still hash right).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use xet::MerkleHash;

use super::journal;
use super::plan::TermSlot;
use crate::fleet::{Fetched, Source, Unit};

/// What is kept of a unit once its bytes are in the file.
#[derive(Debug)]
pub struct Held {
    pub hashes: Vec<MerkleHash>,
    pub lens: Vec<u32>,
    pub source: Source,
}

/// Why a unit was not placed.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    /// The source's bytes disagree with the terms or do not decode: blame it, fetch again.
    #[error("{0}")]
    BadBytes(String),
    /// The file could not be written: the pull fails.
    #[error("writing the .incomplete file")]
    Write(#[source] std::io::Error),
}

fn bad(why: String) -> PlaceError {
    PlaceError::BadBytes(why)
}

/// Checks that `fe` gives every term of `uses` its stated length, then decodes each chunk once
/// (into a small scratch buffer; an uncompressed chunk is not copied at all), hashes it and
/// writes it at the offset of every term that uses it: no decoded copy of the whole range is
/// ever held. Returns the chunks' hashes. [`PlaceError::BadBytes`] when the bytes disagree with
/// the terms or do not decode (nothing is written in the first case; in the second, bytes
/// already written are overwritten by the refetch, and the file is only renamed into place once
/// its hash matches).
pub fn place(
    file: &File,
    unit: &Unit,
    fe: &Fetched,
    terms: &[TermSlot],
    uses: &[usize],
) -> Result<Vec<MerkleHash>, PlaceError> {
    let n = fe.lens.len();
    // Where each chunk goes: (chunk index within the unit, file offset), in chunk order.
    let mut dests: Vec<(usize, u64)> = Vec::new();
    for &t in uses {
        let term = &terms[t];
        let a = (term.range.start - unit.chunks.start) as usize;
        let b = (term.range.end - unit.chunks.start) as usize;
        if a >= b || b > n {
            return Err(bad("term outside its fetched range".into()));
        }
        let len: u64 = fe.lens[a..b].iter().map(|&l| u64::from(l)).sum();
        if len != term.len {
            return Err(bad(format!(
                "chunks {}..{} of xorb {} decode to {len} bytes, the reconstruction says {}",
                term.range.start, term.range.end, unit.xorb, term.len
            )));
        }
        let mut off = term.offset;
        for k in a..b {
            dests.push((k, off));
            off += u64::from(fe.lens[k]);
        }
    }
    dests.sort_unstable();
    let mut hashes = Vec::with_capacity(n);
    let (mut scratch, mut bg4) = (Vec::new(), Vec::new());
    let mut next = 0usize;
    for (k, rec) in xet::chunk::ChunkRecords::new(&fe.raw).enumerate() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => return Err(bad(format!("malformed chunk records: {e}"))),
        };
        let data: &[u8] = if rec.header.scheme == xet::chunk::CompressionScheme::None
            && rec.payload.len() == rec.header.uncompressed_len as usize
        {
            rec.payload
        } else {
            scratch.clear();
            if let Err(e) = xet::chunk::decode_chunk_with_scratch(
                &rec.header,
                rec.payload,
                &mut scratch,
                &mut bg4,
            ) {
                return Err(bad(format!(
                    "chunk {k} of xorb {} does not decode: {e}",
                    unit.xorb
                )));
            }
            &scratch
        };
        if data.len() != fe.lens.get(k).copied().unwrap_or(0) as usize {
            return Err(bad(format!(
                "chunk {k} of xorb {} decodes to the wrong length",
                unit.xorb
            )));
        }
        hashes.push(xet::hash::chunk_hash(data));
        while next < dests.len() && dests[next].0 == k {
            file.write_all_at(data, dests[next].1)
                .map_err(PlaceError::Write)?;
            next += 1;
        }
    }
    if hashes.len() != n {
        return Err(bad(format!(
            "{} chunks decoded, expected {n}",
            hashes.len()
        )));
    }
    Ok(hashes)
}

/// The units of a killed pull's journal whose bytes in the `.incomplete` file still hash to what
/// the journal recorded (every term that uses the unit is read back and hashed chunk by chunk),
/// with their bytes; and the journal entries that proved good, to start the new journal with.
pub fn resume(
    file: &File,
    units: &[Unit],
    terms: &[TermSlot],
    uses: &[Arc<Vec<usize>>],
    previous: Vec<journal::Entry>,
) -> (Vec<(usize, Held, u64)>, Vec<journal::Entry>) {
    let by_unit: std::collections::HashMap<(MerkleHash, u32, u32), usize> = units
        .iter()
        .enumerate()
        .filter(|(i, _)| !uses[*i].is_empty())
        .map(|(i, u)| ((u.xorb, u.chunks.start, u.chunks.end), i))
        .collect();
    let mut done = vec![false; units.len()];
    let mut resumed = Vec::new();
    let mut kept = Vec::new();
    let mut buf = Vec::new();
    for e in previous {
        let Some(&i) = by_unit.get(&(e.xorb, e.chunks.start, e.chunks.end)) else {
            continue;
        };
        if done[i] || !entry_matches_file(file, &units[i], &e, terms, &uses[i], &mut buf) {
            continue;
        }
        done[i] = true;
        let bytes = uses[i].iter().map(|&t| terms[t].len).sum();
        let held = Held {
            hashes: e.hashes.clone(),
            lens: e.lens.clone(),
            source: Source::Local,
        };
        resumed.push((i, held, bytes));
        kept.push(e);
    }
    (resumed, kept)
}

/// True when every term using `unit` has, at its offset in `file`, chunks of `e`'s lengths
/// that hash to `e`'s hashes.
fn entry_matches_file(
    file: &File,
    unit: &Unit,
    e: &journal::Entry,
    terms: &[TermSlot],
    uses: &[usize],
    buf: &mut Vec<u8>,
) -> bool {
    let n = (unit.chunks.end - unit.chunks.start) as usize;
    if e.lens.len() != n
        || e.hashes.len() != n
        || e.lens
            .iter()
            .any(|&l| l == 0 || l > xet::chunk::MAX_UNCOMPRESSED_LEN)
    {
        return false;
    }
    for &t in uses {
        let term = &terms[t];
        let a = (term.range.start - unit.chunks.start) as usize;
        let b = (term.range.end - unit.chunks.start) as usize;
        if a >= b || b > n {
            return false;
        }
        let mut off = term.offset;
        for k in a..b {
            buf.resize(e.lens[k] as usize, 0);
            if file.read_exact_at(buf, off).is_err() || xet::hash::chunk_hash(buf) != e.hashes[k] {
                return false;
            }
            off += u64::from(e.lens[k]);
        }
        if off - term.offset != term.len {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pull::plan::tests::h;
    use std::ops::Range;

    #[test]
    fn resume_keeps_only_journalled_units_whose_bytes_still_hash_right() {
        use std::os::unix::fs::FileExt;
        let chunk = |n: usize, seed: u8| -> Vec<u8> {
            (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
        };
        let a: Vec<Vec<u8>> = vec![chunk(100, 1), chunk(200, 2), chunk(300, 3), chunk(400, 4)];
        let b: Vec<Vec<u8>> = vec![chunk(50, 5), chunk(60, 6)];
        let units = vec![
            Unit {
                xorb: h(1),
                chunks: 10..14,
                upstream: None,
            },
            Unit {
                xorb: h(2),
                chunks: 0..2,
                upstream: None,
            },
        ];
        // Unit 0 is used by two terms (its halves, in swapped order), unit 1 by one.
        let terms = vec![
            TermSlot {
                unit: 0,
                xorb: h(1),
                range: 12..14,
                offset: 0,
                len: 700,
            },
            TermSlot {
                unit: 1,
                xorb: h(2),
                range: 0..2,
                offset: 700,
                len: 110,
            },
            TermSlot {
                unit: 0,
                xorb: h(1),
                range: 10..12,
                offset: 810,
                len: 300,
            },
        ];
        let uses = vec![Arc::new(vec![0, 2]), Arc::new(vec![1])];
        let dir = tempfile::tempdir().expect("tempdir");
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f.incomplete"))
            .expect("file");
        file.set_len(1110).expect("size");
        file.write_all_at(&[a[2].clone(), a[3].clone()].concat(), 0)
            .expect("write");
        file.write_all_at(&[b[0].clone(), b[1].clone()].concat(), 700)
            .expect("write");
        file.write_all_at(&[a[0].clone(), a[1].clone()].concat(), 810)
            .expect("write");
        let entry = |x: u8, r: Range<u32>, cs: &[Vec<u8>]| journal::Entry {
            xorb: h(x),
            chunks: r,
            lens: cs.iter().map(|c| c.len() as u32).collect(),
            hashes: cs.iter().map(|c| xet::hash::chunk_hash(c)).collect(),
        };
        let good_a = entry(1, 10..14, &a);
        let mut bad_b = entry(2, 0..2, &b);
        bad_b.hashes[1] = h(9);
        let unknown = entry(3, 0..2, &b);
        let previous = vec![unknown, bad_b, good_a.clone(), good_a.clone()];
        let (resumed, kept) = resume(&file, &units, &terms, &uses, previous);
        assert_eq!(resumed.len(), 1, "only unit 0 resumes, once");
        let (i, held, bytes) = &resumed[0];
        assert_eq!((*i, *bytes), (0, 1000));
        assert_eq!(held.hashes, good_a.hashes);
        assert_eq!(held.source, Source::Local);
        assert_eq!(kept, std::slice::from_ref(&good_a));
        // One flipped byte in either term of unit 0: nothing resumes.
        for at in [5u64, 900] {
            let mut byte = [0u8];
            file.read_exact_at(&mut byte, at).expect("read");
            file.write_all_at(&[byte[0] ^ 1], at).expect("flip");
            let (resumed, kept) = resume(&file, &units, &terms, &uses, vec![good_a.clone()]);
            assert!(
                resumed.is_empty() && kept.is_empty(),
                "flip at {at} went unnoticed"
            );
            file.write_all_at(&byte, at).expect("restore");
        }
        // Lengths that do not add up to the terms: refused.
        let mut wrong_lens = good_a.clone();
        wrong_lens.lens.swap(0, 3);
        assert!(resume(&file, &units, &terms, &uses, vec![wrong_lens])
            .0
            .is_empty());
    }
}
