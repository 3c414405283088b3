//! The tracker's domain types: peers, what they hold, manifests and pull reports.
//!
//! These are what the stores read and write. The HTTP layer converts the JSON wire types of
//! [`crate::api`] into these after validating them, so nothing here is shaped by JSON.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use xet::MerkleHash;

use crate::ranges::{RangeError, RangeSet};

/// What kind of node a peer is; edges are preferred over clients and seeds in lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    Edge,
    Client,
    /// A client serving its local store (`zest seed`).
    Seed,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Edge => "edge",
            Role::Client => "client",
            Role::Seed => "seed",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "edge" => Some(Role::Edge),
            "client" => Some(Role::Client),
            "seed" => Some(Role::Seed),
            _ => None,
        }
    }
}

/// Who a peer is and how busy it says it is (validated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    pub id: String,
    /// Address of its wire-protocol port (`host:port`).
    pub addr: String,
    pub role: Role,
    /// Zone label; empty when unknown.
    pub zone: String,
    pub free_bytes: u64,
    /// Current load as the peer measures it (e.g. transfers in flight); lower is preferred.
    pub load: u32,
}

/// The chunk ranges a peer holds of one xorb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub xorb: MerkleHash,
    pub ranges: RangeSet,
}

/// How an announce changes what a peer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldingsChange {
    /// Replace everything the peer held with this list.
    Full(Vec<Holding>),
    /// Remove `removed`, then add `added`; both empty is a heartbeat.
    Delta {
        added: Vec<Holding>,
        removed: Vec<Holding>,
    },
}

/// One peer's range sets of the xorbs an announce touches, as a store computes them.
pub type XorbRanges = HashMap<MerkleHash, RangeSet>;

/// A full holdings list as one range set per xorb (a xorb listed twice gets the union).
pub fn merge_full(list: &[Holding]) -> Result<XorbRanges, RangeError> {
    let mut merged = XorbRanges::with_capacity(list.len());
    for h in list {
        merged.entry(h.xorb).or_default().insert_all(&h.ranges)?;
    }
    Ok(merged)
}

/// Applies a delta to `sets`, which holds the peer's current sets of the touched xorbs (a
/// missing one counts as empty): `removed` first, then `added`.
pub fn apply_delta(
    sets: &mut XorbRanges,
    added: &[Holding],
    removed: &[Holding],
) -> Result<(), RangeError> {
    for h in removed {
        sets.entry(h.xorb).or_default().remove_all(&h.ranges)?;
    }
    for h in added {
        sets.entry(h.xorb).or_default().insert_all(&h.ranges)?;
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub peer: PeerRecord,
    pub change: HoldingsChange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceOutcome {
    /// Number of xorbs the peer holds (some range of) after the announce.
    pub held_xorbs: u64,
    /// Whether the tracker had live state for this peer before the announce. When it did not,
    /// a delta was applied to nothing, and the peer should send its full list.
    pub was_live: bool,
}

/// One item of a lookup: a xorb and the chunk range `[start, end)` wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupKey {
    pub xorb: MerkleHash,
    pub start: u32,
    pub end: u32,
}

/// Who holds the upstream-fetch lease on one [`LookupKey`] after a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimOutcome {
    /// The lease holder: the claimer itself when granted (empty when the group is full).
    pub holder: String,
    /// Milliseconds left on the lease.
    pub expires_in_ms: u64,
    /// Nobody holds the lease, but the group has its most live leases.
    pub group_full: bool,
}

/// A claim's group: its name and the most live leases it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimGroup<'a> {
    pub name: &'a str,
    pub max_leases: u32,
}

/// What a claim asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimKind {
    /// A lease (new or renewed).
    Lease,
    /// The fetches are done: the asker's leases leave the group and end after the ttl.
    Done,
}

/// What a store found for a batch of [`LookupKey`]s: live peers holding a covering range,
/// unranked. `items[i]` answers key `i` with indices into `peers` (each peer appears once in
/// `peers`, however many items it answers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupHits {
    pub peers: Vec<PeerRecord>,
    pub items: Vec<Vec<u32>>,
}

/// A live peer as listed by `GET /v1/peers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub record: PeerRecord,
    pub expires_at_ms: u64,
    pub held_xorbs: u64,
}

/// `org/name@revision` of a stored manifest (validated path segments).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ManifestKey {
    pub org: String,
    pub name: String,
    pub revision: String,
}

/// A manifest as stored: its commit and its validated JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRecord {
    pub commit: String,
    pub doc: String,
}

/// Bytes of one pull by where they came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceBytes {
    pub local: u64,
    pub peers: u64,
    pub edges: u64,
    pub upstream: u64,
}

impl SourceBytes {
    pub fn add(&mut self, other: &SourceBytes) {
        self.local = self.local.saturating_add(other.local);
        self.peers = self.peers.saturating_add(other.peers);
        self.edges = self.edges.saturating_add(other.edges);
        self.upstream = self.upstream.saturating_add(other.upstream);
    }
}

/// What a client reports after a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub peer_id: Option<String>,
    pub repo: String,
    pub revision: String,
    pub bytes: SourceBytes,
    pub files: u64,
    pub duration_ms: u64,
    pub received_at_ms: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportTotals {
    pub reports: u64,
    pub bytes: SourceBytes,
}

/// Counts for `GET /v1/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub peers: u64,
    pub edges: u64,
    pub clients: u64,
    /// Sum over live peers of the xorbs each holds.
    pub held_xorbs: u64,
    pub manifests: u64,
    pub reports: ReportTotals,
}
