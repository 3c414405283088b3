//! What the tracker says about one pull's ranges: who holds each (a lookup, best first), and the
//! live edges (asked once). The first failed call marks the tracker down, with one warning: the
//! rest of the pull does without it.

use std::sync::atomic::{AtomicBool, Ordering};

use zest_tracker_api::client::TrackerClient;
use zest_tracker_api::{ChunkRange, LookupItem, LookupRequest, Role};

use super::{Holder, Unit};

/// Holders asked of the tracker per range.
const HOLDERS_PER_RANGE: u32 = 8;

/// The tracker side of one pull.
#[derive(Debug)]
pub struct Lookups {
    tracker: Option<TrackerClient>,
    peer_id: String,
    down: AtomicBool,
    edges: tokio::sync::OnceCell<Vec<Holder>>,
}

impl Lookups {
    /// Lookups through `tracker` (none: every answer is empty) as `peer_id`.
    pub fn new(tracker: Option<TrackerClient>, peer_id: String) -> Self {
        Self {
            tracker,
            peer_id,
            down: AtomicBool::new(false),
            edges: Default::default(),
        }
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
                zone: None,
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
