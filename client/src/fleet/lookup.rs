//! What the tracker says about one pull's ranges: who holds each (a lookup, best first), and the
//! live edges (asked once). The first failed call marks the tracker down, with one warning: the
//! rest of the pull does without it.

use std::sync::atomic::{AtomicBool, Ordering};

use xet::MerkleHash;
use zest_tracker_api::client::TrackerClient;
use zest_tracker_api::{ChunkManifest, ChunkRange, ClaimRequest, LookupItem, LookupRequest, Role};

use super::{Holder, Unit};

/// Holders asked of the tracker per range.
const HOLDERS_PER_RANGE: u32 = 8;

/// What the tracker said about a claim on fetching a unit from upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// We hold the lease: fetch it.
    Granted,
    /// Another machine is fetching it; its lease has `left_ms` to run.
    Held { holder: String, left_ms: u64 },
    /// The swarm already fetches its most ranges from upstream at once: ask again soon.
    Busy,
    /// No tracker (or it failed): nobody coordinates, fetch it.
    Unavailable,
}

/// The tracker side of one pull.
#[derive(Debug)]
pub struct Lookups {
    tracker: Option<TrackerClient>,
    peer_id: String,
    /// Our zone: the tracker ranks holders in it first (empty: none).
    zone: String,
    down: AtomicBool,
    edges: tokio::sync::OnceCell<Vec<Holder>>,
}

impl Lookups {
    /// Lookups through `tracker` (none: every answer is empty) as `peer_id`.
    pub fn new(tracker: Option<TrackerClient>, peer_id: String) -> Self {
        Self {
            tracker,
            peer_id,
            zone: String::new(),
            down: AtomicBool::new(false),
            edges: Default::default(),
        }
    }

    /// Asks as a machine of `zone`.
    pub fn set_zone(&mut self, zone: String) {
        self.zone = zone;
    }

    /// The tracker, unless there is none or it failed.
    fn live(&self) -> Option<&TrackerClient> {
        self.tracker.as_ref().filter(|_| !self.is_down())
    }

    /// True once a tracker call failed.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    fn mark_down(&self, what: &str, e: &impl std::fmt::Display) {
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error = %format!("{e:#}"),
                "tracker {what} failed: pulling without the tracker (edges and peers it would name are not used)"
            );
        }
    }

    /// Who holds each unit, best first; empty per unit when there is no tracker or it failed.
    pub async fn holders(&self, units: &[Unit]) -> Vec<Vec<Holder>> {
        let mut out = vec![Vec::new(); units.len()];
        let Some(t) = self.live() else { return out };
        for (ci, chunk) in units.chunks(zest_tracker_api::MAX_LOOKUP_ITEMS).enumerate() {
            let items = chunk
                .iter()
                .map(|u| LookupItem {
                    hash: u.xorb,
                    range: ChunkRange::new(u.chunks.start, u.chunks.end),
                })
                .collect();
            let req = LookupRequest {
                peer_id: Some(self.peer_id.clone()),
                zone: (!self.zone.is_empty()).then(|| self.zone.clone()),
                limit: Some(HOLDERS_PER_RANGE),
                items,
            };
            match t.lookup(&req).await {
                Ok(r) => {
                    for (i, res) in r.results.into_iter().enumerate() {
                        let idx = ci * zest_tracker_api::MAX_LOOKUP_ITEMS + i;
                        let Some(slot) = out.get_mut(idx) else { break };
                        for id in res.peers {
                            if let Some(p) = r.peers.get(&id) {
                                slot.push(Holder {
                                    id,
                                    addr: p.addr.clone(),
                                    role: p.role,
                                    pex: false,
                                    far: !self.zone.is_empty() && p.zone != self.zone,
                                });
                            }
                        }
                    }
                }
                Err(e) => {
                    self.mark_down("lookup", &e);
                    return out;
                }
            }
        }
        out
    }

    /// Asks for the lease on fetching `unit` from upstream for `ttl_ms` (single flight across
    /// the swarm).
    /// `group` is the swarm (its name, and the most upstream fetches it makes at once).
    pub async fn claim(
        &self,
        unit: &Unit,
        ttl_ms: u64,
        group: Option<(&str, u32)>,
        done: bool,
    ) -> Claim {
        let Some(t) = self.live() else {
            return Claim::Unavailable;
        };
        let req = ClaimRequest {
            peer_id: self.peer_id.clone(),
            ttl_ms,
            items: vec![LookupItem {
                hash: unit.xorb,
                range: ChunkRange::new(unit.chunks.start, unit.chunks.end),
            }],
            group: group.map(|g| g.0.to_owned()),
            max_group_leases: group.map(|g| g.1),
            done,
        };
        match t.claim(&req).await {
            Ok(r) => match r.results.into_iter().next() {
                Some(c) if c.group_full => Claim::Busy,
                Some(c) if !c.granted => Claim::Held {
                    holder: c.holder.unwrap_or_default(),
                    left_ms: c.expires_in_ms,
                },
                _ => Claim::Granted,
            },
            // An older tracker without claims: nobody coordinates, but lookups still work.
            Err(e) if e.status() == Some(reqwest::StatusCode::NOT_FOUND) => Claim::Unavailable,
            Err(e) => {
                self.mark_down("claim", &e);
                Claim::Unavailable
            }
        }
    }

    /// The file's chunk manifest, when the tracker has one whose chunks hash to `xet_hash`
    /// (the hash the caller trusts; a manifest that does not is ignored, with a warning).
    pub async fn chunk_manifest(&self, xet_hash: &MerkleHash) -> Option<ChunkManifest> {
        let t = self.live()?;
        match t.get_chunks(xet_hash).await {
            Ok(Some(m)) => match m.file_hash() {
                Ok(h) if h == *xet_hash => Some(m),
                Ok(h) => {
                    tracing::warn!(file = %xet_hash, got = %h, "the tracker's chunk manifest is for another file; ignoring it");
                    None
                }
                Err(e) => {
                    tracing::warn!(file = %xet_hash, error = %e, "malformed chunk manifest; ignoring it");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "no chunk manifest");
                None
            }
        }
    }

    /// Publishes a verified file's chunk manifest (best effort).
    pub async fn publish_chunk_manifest(&self, xet_hash: &MerkleHash, m: &ChunkManifest) {
        let Some(t) = self.live() else { return };
        if let Err(e) = t.put_chunks(xet_hash, m).await {
            tracing::debug!(error = %format!("{e:#}"), "chunk manifest PUT failed");
        }
    }

    /// Live edges known to the tracker, best first (asked once per pull).
    pub async fn edges(&self) -> &[Holder] {
        self.edges
            .get_or_init(|| async {
                let Some(t) = self.live() else {
                    return Vec::new();
                };
                match t.peers().await {
                    Ok(ps) => ps
                        .into_iter()
                        .filter(|p| p.role == Role::Edge)
                        .map(|p| Holder {
                            id: p.id,
                            addr: p.addr,
                            role: Role::Edge,
                            pex: false,
                            far: false,
                        })
                        .collect(),
                    Err(e) => {
                        self.mark_down("peer list", &e);
                        Vec::new()
                    }
                }
            })
            .await
    }
}
