//! The resume journal of a Xet file being pulled: one record per fetched range ("unit") whose
//! chunks were written into the `.incomplete` file, with the chunks' hashes and lengths. A pull
//! that was killed starts again from the journal: each recorded unit whose bytes in the
//! `.incomplete` file still hash to what the journal says is not fetched again. Nothing here is
//! trusted: a torn or damaged record ends the journal, and every recorded unit is re-hashed from
//! the file before it counts (the journal is not fsynced; the hashes make that safe).
//!
//! ```text
//! file    := "ZJRNL001" record*
//! record  := len u32 LE | payload (len bytes) | first 16 bytes of BLAKE3(payload)
//! payload := xorb hash (32) | chunk start u32 LE | chunk end u32 LE
//!            | end - start chunk lengths u32 LE | end - start chunk hashes (32 each)
//! ```

use std::fs::File;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::path::Path;
use std::sync::Mutex;

use xet::MerkleHash;

const MAGIC: &[u8; 8] = b"ZJRNL001";
/// Most bytes of a journal read back (far above any real file's: ~36 bytes per 64 KiB chunk).
const MAX_JOURNAL_BYTES: u64 = 256 << 20;

/// One recorded unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub xorb: MerkleHash,
    pub chunks: Range<u32>,
    pub lens: Vec<u32>,
    pub hashes: Vec<MerkleHash>,
}

/// An open journal, appended to by the unit tasks of one file.
#[derive(Debug)]
pub struct Journal {
    file: Mutex<File>,
}

impl Journal {
    /// Starts a fresh journal at `path` (replacing any), holding `keep` first.
    pub fn create(path: &Path, keep: &[Entry]) -> io::Result<Journal> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = File::create(path)?;
        let mut buf = MAGIC.to_vec();
        for e in keep {
            encode(e, &mut buf);
        }
        file.write_all(&buf)?;
        Ok(Journal {
            file: Mutex::new(file),
        })
    }

    /// Appends one unit (one write, so a kill leaves at most one torn record at the end).
    pub fn append(&self, e: &Entry) -> io::Result<()> {
        let mut buf = Vec::with_capacity(64 + 36 * e.lens.len());
        encode(e, &mut buf);
        self.file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_all(&buf)
    }
}

fn encode(e: &Entry, out: &mut Vec<u8>) {
    let n = e.lens.len();
    let len = 32 + 8 + 36 * n;
    out.extend_from_slice(&(len as u32).to_le_bytes());
    let at = out.len();
    out.extend_from_slice(e.xorb.as_bytes());
    out.extend_from_slice(&e.chunks.start.to_le_bytes());
    out.extend_from_slice(&e.chunks.end.to_le_bytes());
    for l in &e.lens {
        out.extend_from_slice(&l.to_le_bytes());
    }
    for h in &e.hashes {
        out.extend_from_slice(h.as_bytes());
    }
    let sum = blake3::hash(&out[at..]);
    out.extend_from_slice(&sum.as_bytes()[..16]);
}

/// The records of the journal at `path`, up to the first torn or damaged one. Empty when there
/// is no journal or it is not one.
pub fn read(path: &Path) -> Vec<Entry> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(f) => {
            if f.take(MAX_JOURNAL_BYTES).read_to_end(&mut bytes).is_err() {
                return Vec::new();
            }
        }
        Err(_) => return Vec::new(),
    }
    decode(&bytes)
}

/// The records of journal bytes, up to the first torn or damaged one.
pub fn decode(bytes: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    let Some(mut rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
        return out;
    };
    while rest.len() >= 4 {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(record) = rest.get(4..4 + len + 16) else {
            break;
        };
        let (payload, sum) = record.split_at(len);
        if blake3::hash(payload).as_bytes()[..16] != *sum {
            break;
        }
        let Some(e) = parse(payload) else { break };
        out.push(e);
        rest = &rest[4 + len + 16..];
    }
    out
}

fn parse(p: &[u8]) -> Option<Entry> {
    let u32_at =
        |i: usize| -> Option<u32> { Some(u32::from_le_bytes(p.get(i..i + 4)?.try_into().ok()?)) };
    let hash_at = |i: usize| -> Option<MerkleHash> {
        Some(MerkleHash::from_bytes(p.get(i..i + 32)?.try_into().ok()?))
    };
    let xorb = hash_at(0)?;
    let (start, end) = (u32_at(32)?, u32_at(36)?);
    if start >= end || end - start > xorbstore::MAX_RANGE_CHUNKS {
        return None;
    }
    let n = (end - start) as usize;
    if p.len() != 40 + 36 * n {
        return None;
    }
    let lens = (0..n)
        .map(|k| u32_at(40 + 4 * k))
        .collect::<Option<Vec<_>>>()?;
    let hashes = (0..n)
        .map(|k| hash_at(40 + 4 * n + 32 * k))
        .collect::<Option<Vec<_>>>()?;
    Some(Entry {
        xorb,
        chunks: start..end,
        lens,
        hashes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(x: u8, r: Range<u32>) -> Entry {
        let n = (r.end - r.start) as usize;
        Entry {
            xorb: MerkleHash::from_bytes([x; 32]),
            chunks: r,
            lens: (0..n as u32).map(|i| 1000 + i).collect(),
            hashes: (0..n as u8)
                .map(|i| MerkleHash::from_bytes([i; 32]))
                .collect(),
        }
    }

    #[test]
    fn records_round_trip_and_a_torn_or_damaged_tail_ends_the_journal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/etag.units");
        let a = entry(1, 0..3);
        let b = entry(2, 5..6);
        let j = Journal::create(&path, std::slice::from_ref(&a)).expect("create");
        j.append(&b).expect("append");
        drop(j);
        assert_eq!(read(&path), [a.clone(), b.clone()]);
        let full = std::fs::read(&path).expect("read");
        for cut in 0..full.len() {
            let got = decode(&full[..cut]);
            assert!(got.len() <= 2 && got.iter().zip([&a, &b]).all(|(g, w)| g == w));
        }
        for i in 8..full.len() {
            let mut bad = full.clone();
            bad[i] ^= 0x10;
            let got = decode(&bad);
            assert!(got.len() < 2, "flip at {i} went unnoticed");
        }
        assert!(decode(b"not a journal").is_empty());
        assert!(read(&dir.path().join("missing")).is_empty());
        let _j = Journal::create(&path, &[]).expect("recreate");
        assert!(read(&path).is_empty(), "create starts afresh");
    }
}
