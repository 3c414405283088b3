//! The tracker client: announces the store's holdings (at start, soon after inserts, and on the
//! interval the tracker asks for) and looks up peers holding a range on a miss, over
//! `zest-tracker-api`'s client. A tracker that is down never breaks serving: failures are logged
//! and counted.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use xet::MerkleHash;
use xorbstore::Store;
use zest_tracker_api::client::{TrackerClient, TrackerError};
use zest_tracker_api::{
    AnnounceRequest, AnnounceResponse, ChunkRange, LookupItem, LookupRequest, PeerDescriptor,
    XorbHolding,
};

use crate::metrics::Metrics;

/// Talks to one tracker.
#[derive(Clone, Debug)]
pub struct Tracker {
    client: TrackerClient,
    pub peer: PeerDescriptor,
    metrics: Metrics,
    dirty: Arc<Notify>,
}

impl Tracker {
    pub fn new(
        base: &str,
        token: Option<String>,
        peer: PeerDescriptor,
        metrics: Metrics,
    ) -> Result<Self, TrackerError> {
        Ok(Self {
            client: TrackerClient::new(base, token)?,
            peer,
            metrics,
            dirty: Arc::new(Notify::new()),
        })
    }

    fn count(&self, call: &str, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.metrics
            .tracker_calls
            .with_label_values(&[call, outcome])
            .inc();
    }

    /// Says the holdings changed (an announce follows after a short debounce).
    pub fn mark_dirty(&self) {
        self.dirty.notify_one();
    }

    /// Announces the full holdings of `store`.
    pub async fn announce(&self, store: &Store) -> Result<AnnounceResponse, TrackerError> {
        let full = store
            .holdings()
            .into_iter()
            .map(|(hash, rs)| XorbHolding {
                hash,
                ranges: rs
                    .into_iter()
                    .take(4096)
                    .map(|r| ChunkRange::new(r.start, r.end))
                    .collect(),
            })
            .take(100_000)
            .collect();
        let mut peer = self.peer.clone();
        let st = store.stats();
        peer.free_bytes = st.quota_bytes.saturating_sub(st.disk_bytes);
        let body = AnnounceRequest {
            peer,
            full: Some(full),
            added: Vec::new(),
            removed: Vec::new(),
        };
        let res = self.client.announce(&body).await;
        self.count("announce", res.is_ok());
        res
    }

    /// Peer addresses holding all of chunks `range` of `xorb`, best first (at most `limit`).
    pub async fn lookup(
        &self,
        xorb: &MerkleHash,
        range: Range<u32>,
        limit: u32,
    ) -> Vec<SocketAddr> {
        let body = LookupRequest {
            peer_id: Some(self.peer.id.clone()),
            zone: (!self.peer.zone.is_empty()).then(|| self.peer.zone.clone()),
            limit: Some(limit),
            items: vec![LookupItem {
                hash: *xorb,
                range: ChunkRange::new(range.start, range.end),
            }],
        };
        let res = self.client.lookup(&body).await;
        self.count("lookup", res.is_ok());
        match res {
            Ok(ans) => ans
                .results
                .first()
                .map(|r| {
                    r.peers
                        .iter()
                        .filter(|id| **id != self.peer.id)
                        .filter_map(|id| ans.peers.get(id))
                        .filter_map(|p| p.addr.parse().ok())
                        .take(limit as usize)
                        .collect()
                })
                .unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "tracker lookup failed; going upstream");
                Vec::new()
            }
        }
    }

    /// Takes this edge out of the tracker, so lookups stop naming it at once rather than when
    /// its announce expires.
    pub async fn deregister(&self) {
        let res = self.client.deregister(&self.peer.id).await;
        self.count("deregister", res.is_ok());
        match res {
            Ok(()) => tracing::info!(peer = %self.peer.id, "deregistered from the tracker"),
            Err(e) => tracing::warn!(error = %e, "tracker deregister failed"),
        }
    }

    /// Announces at start, 2 s after changes, and every interval the tracker asks for, until
    /// `stop` fires; then deregisters.
    pub async fn run(self, store: Store, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let interval = match self.announce(&store).await {
                Ok(a) => Duration::from_secs(a.interval_secs.clamp(1, 3600)),
                Err(e) => {
                    tracing::warn!(error = %e, "tracker announce failed; retrying later");
                    Duration::from_secs(10)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.dirty.notified() => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                _ = stop.changed() => {
                    self.deregister().await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announce_json_matches_the_contract() {
        let body = AnnounceRequest {
            peer: PeerDescriptor {
                id: "edge-1".into(),
                addr: "10.0.0.5:7071".into(),
                role: zest_tracker_api::Role::Edge,
                zone: String::new(),
                free_bytes: 5,
                load: 0,
            },
            full: Some(vec![XorbHolding {
                hash: MerkleHash::from_bytes([0; 32]),
                ranges: vec![ChunkRange::new(0, 3)],
            }]),
            added: Vec::new(),
            removed: Vec::new(),
        };
        let v = serde_json::to_value(&body).expect("json");
        assert_eq!(v["peer"]["role"], "edge");
        assert_eq!(v["full"][0]["ranges"][0]["end"], 3);
        assert_eq!(v["full"][0]["hash"].as_str().map(str::len), Some(64));
        let ans: zest_tracker_api::LookupResponse = serde_json::from_str(
            r#"{"peers":{"e":{"addr":"127.0.0.1:1","role":"edge"}},"results":[{"peers":["e"]}]}"#,
        )
        .expect("parse");
        assert_eq!(ans.results[0].peers, vec!["e".to_string()]);
    }
}
