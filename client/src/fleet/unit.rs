//! The vocabulary of the fleet client: what is fetched ([`Unit`], with its [`UpstreamRange`]),
//! who may have it ([`Holder`]), where bytes came from ([`Source`]), and what came back
//! ([`Fetched`], structurally checked by [`check`]; [`Decoded`] when a caller keeps the data).

use std::ops::Range;

use bytes::Bytes;
use xet::MerkleHash;
use xorbstore::Expectation;

/// Size assumed for a chunk when the byte length of a range is unknown (fleet-only pulls).
const TYPICAL_CHUNK_BYTES: u64 = 64 << 10;

/// Where bytes came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Local,
    Peer(String),
    Edge(String),
    Upstream,
}

impl Source {
    /// How the source is named in logs (`peer ID`, `edge ID`, `local`, `upstream`).
    pub fn label(&self) -> String {
        match self {
            Source::Local => "local".into(),
            Source::Peer(id) => format!("peer {id}"),
            Source::Edge(id) => format!("edge {id}"),
            Source::Upstream => "upstream".into(),
        }
    }

    /// The key the source is blamed under (its peer id, or `local` / `upstream`).
    pub fn key(&self) -> &str {
        match self {
            Source::Peer(id) | Source::Edge(id) => id,
            Source::Upstream => "upstream",
            Source::Local => "local",
        }
    }
}

/// A peer or edge that may hold a range: the tracker names it, the pull asks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its peer id (as it announced itself to the tracker).
    pub id: String,
    /// `host:port` of its wire-protocol listener.
    pub addr: String,
    pub role: wire::Role,
    /// Named by the peer book (peer exchange, or an earlier tracker answer), not by the
    /// tracker's answer for this unit: the tracker was down.
    pub pex: bool,
    /// In another zone than ours (we have one, `--zone`, and it announced another): asked
    /// only when no holder of our zone is left to ask.
    pub far: bool,
}

impl Holder {
    /// The source its bytes are counted and blamed as.
    pub fn source(&self) -> Source {
        match self.role {
            wire::Role::Edge => Source::Edge(self.id.clone()),
            wire::Role::Client | wire::Role::Seed => Source::Peer(self.id.clone()),
        }
    }
}

/// Where a range lives upstream: a signed xorb URL and an inclusive byte range of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRange {
    pub url: String,
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive, as in an HTTP `Range`).
    pub end: u64,
}

impl UpstreamRange {
    /// Bytes in the range (at least one: the end is inclusive).
    pub fn bytes(&self) -> u64 {
        self.end.saturating_sub(self.start).saturating_add(1)
    }

    /// What an edge is handed to fetch the range on our behalf.
    pub fn to_wire(&self) -> wire::Upstream {
        wire::Upstream {
            url: self.url.clone(),
            byte_start: self.start,
            byte_end: self.end,
        }
    }
}

/// One chunk range of a xorb to fetch, with its upstream location when known.
#[derive(Debug, Clone)]
pub struct Unit {
    pub xorb: MerkleHash,
    pub chunks: Range<u32>,
    /// Absent in fleet-only pulls.
    pub upstream: Option<UpstreamRange>,
}

impl Unit {
    /// Expected size of the chunk records on the wire.
    pub fn expected_bytes(&self) -> u64 {
        match &self.upstream {
            Some(up) => up.bytes(),
            None => u64::from(self.chunks.end.saturating_sub(self.chunks.start))
                .saturating_mul(TYPICAL_CHUNK_BYTES),
        }
    }
}

/// Why fetched bytes are not the chunk records asked for.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("malformed chunk records")]
    Records(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("malformed chunk records: a chunk of {0} bytes")]
    ChunkLength(u32),
    #[error("more than the {0} chunks asked for")]
    TooMany(usize),
    #[error("{got} chunks, expected {want}")]
    Count { got: usize, want: usize },
}

/// A fetched unit: its chunk records, structurally checked ([`check`]).
#[derive(Debug)]
pub struct Fetched {
    pub raw: Bytes,
    /// Each chunk's uncompressed length, from its record header.
    pub lens: Vec<u32>,
    pub source: Source,
}

/// Checks that `raw` is the chunk records of chunks `chunks`: every record header parses and
/// the count is right. Payloads are not decoded here: the pull decodes, hashes and writes each
/// chunk in one pass, blaming the source when a payload does not decode.
///
/// The records are counted against the chunk range as they are walked, so a source cannot make
/// us allocate for more chunks than we asked for.
pub fn check(chunks: Range<u32>, raw: Bytes, source: Source) -> Result<Fetched, CheckError> {
    let want = chunks.end.saturating_sub(chunks.start) as usize;
    let mut lens = Vec::with_capacity(want);
    for rec in xet::chunk::ChunkRecords::new(&raw) {
        let rec = rec.map_err(|e| CheckError::Records(Box::new(e)))?;
        if lens.len() == want {
            return Err(CheckError::TooMany(want));
        }
        if rec.header.uncompressed_len == 0
            || rec.header.uncompressed_len > xet::chunk::MAX_UNCOMPRESSED_LEN
        {
            return Err(CheckError::ChunkLength(rec.header.uncompressed_len));
        }
        lens.push(rec.header.uncompressed_len);
    }
    if lens.len() != want {
        return Err(CheckError::Count {
            got: lens.len(),
            want,
        });
    }
    Ok(Fetched { raw, lens, source })
}

impl Fetched {
    /// Decodes every chunk: the data, each chunk's end offset in it, and each chunk's hash.
    pub fn decode(&self, xorb: &MerkleHash, chunks: Range<u32>) -> Result<Decoded, CheckError> {
        let mut data = Vec::new();
        let meta = xorbstore::verify_and_decode(
            xorb,
            chunks,
            &self.raw,
            &Expectation::structural(),
            &mut data,
        )
        .map_err(|e| CheckError::Records(Box::new(e)))?;
        Ok(Decoded {
            data,
            ends: meta.raw_ends.iter().map(|&e| e as usize).collect(),
            hashes: meta.chunk_hashes,
        })
    }
}

/// A fetched unit, decoded whole (for callers that keep the data, e.g. remote inspect).
#[derive(Debug)]
pub struct Decoded {
    pub data: Vec<u8>,
    /// Offsets of each chunk's end in `data`.
    pub ends: Vec<usize>,
    pub hashes: Vec<MerkleHash>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::chain;

    #[test]
    fn check_counts_the_chunks_and_decode_gives_data_and_hashes() {
        let mut raw = Vec::new();
        for i in 0..3u8 {
            xet::chunk::encode_chunk(&[i; 1000], xet::chunk::CompressionScheme::Lz4, &mut raw);
        }
        let raw = Bytes::from(raw);
        let f = check(5..8, raw.clone(), Source::Upstream).expect("three chunks");
        assert_eq!(f.lens, [1000, 1000, 1000]);
        let d = f.decode(&MerkleHash::default(), 5..8).expect("decodes");
        assert_eq!(d.ends, [1000, 2000, 3000]);
        assert_eq!(d.data.len(), 3000);
        assert_eq!(d.hashes[1], xet::hash::chunk_hash(&[1u8; 1000]));
        let e = check(5..7, raw.clone(), Source::Upstream).expect_err("too many");
        assert!(e.to_string().contains("more than the 2 chunks"), "{e}");
        let e = check(5..9, raw.clone(), Source::Upstream).expect_err("too few");
        assert!(e.to_string().contains("3 chunks, expected 4"), "{e}");
        let e = check(5..8, raw.slice(..raw.len() - 1), Source::Upstream).expect_err("cut");
        assert!(chain(&e).contains("malformed"), "{}", chain(&e));
    }

    #[test]
    fn holders_and_upstream_ranges_say_what_they_are() {
        let h = |role| Holder {
            id: "p1".into(),
            addr: "127.0.0.1:1".into(),
            role,
            pex: false,
            far: false,
        };
        assert_eq!(h(wire::Role::Edge).source(), Source::Edge("p1".into()));
        assert_eq!(h(wire::Role::Seed).source(), Source::Peer("p1".into()));
        assert_eq!(h(wire::Role::Client).source().key(), "p1");
        let up = UpstreamRange {
            url: "u".into(),
            start: 10,
            end: 19,
        };
        assert_eq!(up.bytes(), 10);
        let unit = Unit {
            xorb: MerkleHash::default(),
            chunks: 0..4,
            upstream: Some(up.clone()),
        };
        assert_eq!(unit.expected_bytes(), 10);
        let w = up.to_wire();
        assert_eq!((w.byte_start, w.byte_end), (10, 19));
        let fleet_only = Unit {
            upstream: None,
            ..unit
        };
        assert_eq!(fleet_only.expected_bytes(), 4 * TYPICAL_CHUNK_BYTES);
    }
}
