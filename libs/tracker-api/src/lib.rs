//! The zest tracker's HTTP API (`/v1`, documented in `docs/tracker-api.md`): its JSON types and,
//! with the default `client` feature, a small async client with time limits and a bounded answer
//! size ([`client::TrackerClient`]).
//!
//! This is the protocol crate (torrust-tracker's pattern): the tracker serves these types, the
//! edge and `zest` send them, and nobody keeps a copy. They are wire types, not domain types: the
//! tracker validates and converts them at its HTTP layer. Hashes are Xet API hex strings
//! ([`MerkleHash`]'s serde); chunk ranges are `xet`'s [`ChunkRange`] (`{"start", "end"}`, `end`
//! exclusive); roles are the wire Handshake's [`Role`] (`"edge"`, `"client"`, `"seed"`). Unknown
//! fields are ignored so that newer clients can talk to older trackers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
pub use wire::Role;
pub use xet::cas::ChunkRange;
use xet::MerkleHash;

#[cfg(feature = "client")]
pub mod client;

/// Most items one lookup sends (the tracker accepts up to 10,000).
pub const MAX_LOOKUP_ITEMS: usize = 5_000;

/// The longest peer id a tracker accepts.
pub const MAX_PEER_ID_LEN: usize = 128;

/// A character of the identifier alphabet (peer ids, zones): `A-Z a-z 0-9 . _ - : @`, none of
/// which needs escaping in a URL path.
pub fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@')
}

/// Whether `id` is a peer id a tracker accepts: 1 to [`MAX_PEER_ID_LEN`] characters of the
/// identifier alphabet ([`is_id_char`]).
pub fn is_valid_peer_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_PEER_ID_LEN && id.chars().all(is_id_char)
}

/// The longest zone label a tracker accepts.
pub const MAX_ZONE_LEN: usize = 64;

/// Whether `zone` is a zone label a tracker accepts: 0 to [`MAX_ZONE_LEN`] characters of the
/// identifier alphabet ([`is_id_char`]; empty: no zone).
pub fn is_valid_zone(zone: &str) -> bool {
    zone.len() <= MAX_ZONE_LEN && zone.chars().all(is_id_char)
}

/// Who is announcing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerDescriptor {
    /// Stable id: 1–128 characters of `A-Z a-z 0-9 . _ - : @`.
    pub id: String,
    /// Wire-protocol address, `host:port` (1–256 characters, no spaces).
    pub addr: String,
    pub role: Role,
    /// Zone label (0–64 characters, same alphabet as `id`); lookups prefer the asker's zone.
    #[serde(default)]
    pub zone: String,
    /// Free cache capacity in bytes (informational).
    #[serde(default)]
    pub free_bytes: u64,
    /// Current load (e.g. transfers in flight); lookups prefer lower.
    #[serde(default)]
    pub load: u32,
}

/// The chunk ranges held of one xorb.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XorbHolding {
    pub hash: MerkleHash,
    pub ranges: Vec<ChunkRange>,
}

/// `POST /v1/announce`. With `full`, the list replaces everything the peer held; without it,
/// `removed` then `added` are applied. Neither is a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceRequest {
    pub peer: PeerDescriptor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<Vec<XorbHolding>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<XorbHolding>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<XorbHolding>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceResponse {
    /// Announce again (a heartbeat at least) within this many seconds.
    pub interval_secs: u64,
    /// The peer drops out of lookups this many seconds after this announce.
    pub ttl_secs: u64,
    /// Xorbs the tracker now knows the peer holds.
    pub held_xorbs: u64,
    /// The tracker had no live state for this peer before this announce (it expired, or the
    /// tracker lost its hot state); a peer that sent a delta should send its full list now.
    pub resync: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupItem {
    pub hash: MerkleHash,
    pub range: ChunkRange,
}

/// `POST /v1/lookup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupRequest {
    /// The asker's peer id; it is never returned to itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<String>,
    /// The asker's zone; peers in it come first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Most peers per item (default 8, at most 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    pub items: Vec<LookupItem>,
}

/// The longest claim a tracker grants, milliseconds.
pub const MAX_CLAIM_TTL_MS: u64 = 300_000;

/// `POST /v1/claims`: the asker is about to fetch these ranges from upstream and asks that
/// nobody else in the swarm does meanwhile (single flight across the swarm). A claim is an
/// exclusive lease on one exact (xorb, chunk range) for `ttl_ms`; the asker announces the range
/// when it holds it, and the lease lapses on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRequest {
    /// The claimer (its announced peer id).
    pub peer_id: String,
    /// Lease length, 1..=[`MAX_CLAIM_TTL_MS`] (longer is cut to it).
    pub ttl_ms: u64,
    pub items: Vec<LookupItem>,
    /// The swarm the claims belong to (e.g. the repo id; 1 to 256 characters, no spaces or
    /// control characters), with `max_group_leases`: a new lease is granted only while fewer
    /// than that many leases of the group are live, so that the swarm fetches a few ranges
    /// from upstream at a time (each done sooner, and shared sooner) instead of all at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_group_leases: Option<u32>,
    /// The asker finished fetching these ranges: its leases on them leave the group's count at
    /// once and last `ttl_ms` more (until its announce is in), other leases are untouched.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub done: bool,
}

/// The answer for one claimed item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimResult {
    /// True when the asker holds the lease now (it was free, or already the asker's).
    pub granted: bool,
    /// Who holds the lease when it is not the asker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// Milliseconds left on the lease.
    pub expires_in_ms: u64,
    /// Not granted because the group already has `max_group_leases` live leases (nobody holds
    /// this range's lease: ask again soon).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub group_full: bool,
}

/// `results[i]` answers `items[i]` of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimResponse {
    pub results: Vec<ClaimResult>,
}

/// A peer as lookups describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub addr: String,
    pub role: Role,
    #[serde(default)]
    pub zone: String,
    #[serde(default)]
    pub free_bytes: u64,
    #[serde(default)]
    pub load: u32,
}

/// The peers for one lookup item, best first (ids are keys of [`LookupResponse::peers`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupResult {
    pub peers: Vec<String>,
}

/// `results[i]` answers `items[i]` of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupResponse {
    pub peers: BTreeMap<String, PeerInfo>,
    pub results: Vec<LookupResult>,
}

/// One entry of `GET /v1/peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerListEntry {
    pub id: String,
    pub addr: String,
    pub role: Role,
    pub zone: String,
    pub free_bytes: u64,
    pub load: u32,
    pub held_xorbs: u64,
    /// Seconds until it drops out of lookups unless it announces.
    pub expires_in_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeersResponse {
    pub peers: Vec<PeerListEntry>,
}

/// Bytes by where they came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BytesBySource {
    pub local: u64,
    pub peers: u64,
    pub edges: u64,
    pub upstream: u64,
}

/// `GET /v1/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsResponse {
    /// `"embedded"` or `"postgres+redis"`.
    pub store: String,
    pub peers: u64,
    pub edges: u64,
    pub clients: u64,
    pub held_xorbs: u64,
    pub manifests: u64,
    pub reports: u64,
    pub report_bytes: BytesBySource,
}

/// One reconstruction term of a file (the CAS API's term without any URL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestTerm {
    pub hash: MerkleHash,
    pub unpacked_length: u32,
    pub range: ChunkRange,
}

/// One file of a revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Relative path inside the repo (`/`-separated; no `..`, no leading `/`).
    pub path: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the file (the LFS oid), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Xet file hash (API hex); absent for files that are not stored in Xet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xet_hash: Option<MerkleHash>,
    /// Reconstruction terms in file order; empty for non-Xet files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub terms: Vec<ManifestTerm>,
}

/// `PUT`/`GET /v1/manifests/{org}/{name}/{revision}`: what a pull learned from upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The commit sha (40 or 64 lowercase hex digits) the revision resolved to.
    pub commit: String,
    pub files: Vec<ManifestFile>,
}

/// Most chunks a chunk manifest may list (about 12 GB of file at Xet's 64 KiB average chunk;
/// its JSON stays under the tracker's 16 MiB body limit).
pub const MAX_MANIFEST_CHUNKS: usize = 200_000;

/// `PUT`/`GET /v1/chunks/{xet_hash}`: every chunk of one Xet file in file order, published by
/// the first machine that verified the file. Anyone can check it: the chunks must hash to the
/// file's Xet hash ([`ChunkManifest::file_hash`]); a pull that checked it verifies every range
/// of the file from any peer chunk by chunk as it arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkManifest {
    /// The chunk hashes, in file order.
    pub chunks: Vec<MerkleHash>,
    /// Each chunk's uncompressed length.
    pub lens: Vec<u32>,
}

impl ChunkManifest {
    /// The Xet file hash the chunks make, or why the manifest is malformed (lengths that do
    /// not pair up with the hashes, a zero or oversized chunk, too many chunks).
    pub fn file_hash(&self) -> Result<MerkleHash, String> {
        if self.chunks.len() != self.lens.len() {
            return Err(format!(
                "{} chunk hashes and {} lengths",
                self.chunks.len(),
                self.lens.len()
            ));
        }
        if self.chunks.is_empty() || self.chunks.len() > MAX_MANIFEST_CHUNKS {
            return Err(format!(
                "{} chunks: 1 to {MAX_MANIFEST_CHUNKS} allowed",
                self.chunks.len()
            ));
        }
        if let Some(bad) = self
            .lens
            .iter()
            .find(|&&l| l == 0 || l > xet::chunk::MAX_UNCOMPRESSED_LEN)
        {
            return Err(format!("a chunk of {bad} bytes"));
        }
        let leaves: Vec<(MerkleHash, u64)> = self
            .chunks
            .iter()
            .zip(&self.lens)
            .map(|(h, &l)| (*h, u64::from(l)))
            .collect();
        Ok(xet::hash::file_hash(&leaves))
    }
}

/// `POST /v1/reports`: where one pull's bytes came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<String>,
    /// `org/name`.
    pub repo: String,
    pub revision: String,
    #[serde(default)]
    pub bytes: BytesBySource,
    #[serde(default)]
    pub files: u64,
    #[serde(default)]
    pub duration_ms: u64,
}

/// Every error answer: `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}
