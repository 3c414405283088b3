//! The tracker client: announces the store's holdings (at start, soon after inserts, and on the
//! interval the tracker asks for) and looks up peers holding a range on a miss. The request and
//! response types mirror `docs/tracker-api.md` (the tracker crate is another service and is not a
//! dependency). A tracker that is down never breaks serving: failures are logged and counted.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use xet::MerkleHash;
use xorbstore::Store;

use crate::metrics::Metrics;

/// `{"start","end"}` chunk range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRange {
    pub start: u32,
    pub end: u32,
}

/// `peer` of an announce.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerDesc {
    pub id: String,
    pub addr: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default)]
    pub free_bytes: u64,
    #[serde(default)]
    pub load: u64,
}

/// One xorb's ranges.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Holding {
    pub hash: MerkleHash,
    pub ranges: Vec<WireRange>,
}

/// `POST /v1/announce` body (full list or heartbeat).
#[derive(Clone, Debug, Serialize)]
pub struct AnnounceRequest {
    pub peer: PeerDesc,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full: Option<Vec<Holding>>,
}

/// `POST /v1/announce` answer.
#[derive(Clone, Debug, Deserialize)]
pub struct AnnounceResponse {
    pub interval_secs: u64,
    #[serde(default)]
    pub ttl_secs: u64,
    #[serde(default)]
    pub resync: bool,
}

/// `POST /v1/lookup` item.
#[derive(Clone, Debug, Serialize)]
pub struct LookupItem {
    pub hash: MerkleHash,
    pub range: WireRange,
}

/// `POST /v1/lookup` body.
#[derive(Clone, Debug, Serialize)]
pub struct LookupRequest {
    pub peer_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    pub limit: u32,
    pub items: Vec<LookupItem>,
}

/// A peer described in a lookup answer.
#[derive(Clone, Debug, Deserialize)]
pub struct LookupPeer {
    pub addr: String,
}

/// One lookup result.
#[derive(Clone, Debug, Deserialize)]
pub struct LookupResult {
    pub peers: Vec<String>,
}

/// `POST /v1/lookup` answer.
#[derive(Clone, Debug, Deserialize)]
pub struct LookupResponse {
    pub peers: std::collections::HashMap<String, LookupPeer>,
    pub results: Vec<LookupResult>,
}

/// Talks to one tracker.
#[derive(Clone, Debug)]
pub struct Tracker {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    pub peer: PeerDesc,
    metrics: Metrics,
    dirty: Arc<Notify>,
}

impl Tracker {
    pub fn new(base: &str, token: Option<String>, peer: PeerDesc, metrics: Metrics) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            base: base.trim_end_matches('/').to_string(),
            token,
            http,
            peer,
            metrics,
            dirty: Arc::new(Notify::new()),
        }
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.post(format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Says the holdings changed (an announce follows after a short debounce).
    pub fn mark_dirty(&self) {
        self.dirty.notify_one();
    }

    /// Announces the full holdings of `store`.
    pub async fn announce(&self, store: &Store) -> Result<AnnounceResponse, String> {
        let full = store
            .holdings()
            .into_iter()
            .map(|(hash, rs)| Holding {
                hash,
                ranges: rs
                    .into_iter()
                    .take(4096)
                    .map(|r| WireRange {
                        start: r.start,
                        end: r.end,
                    })
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
        };
        let res = async {
            let r = self
                .post("/v1/announce")
                .json(&body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !r.status().is_success() {
                return Err(format!("status {}", r.status()));
            }
            r.json::<AnnounceResponse>()
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        let outcome = if res.is_ok() { "ok" } else { "error" };
        self.metrics
            .tracker_calls
            .with_label_values(&["announce", outcome])
            .inc();
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
            peer_id: self.peer.id.clone(),
            zone: self.peer.zone.clone(),
            limit,
            items: vec![LookupItem {
                hash: *xorb,
                range: WireRange {
                    start: range.start,
                    end: range.end,
                },
            }],
        };
        let res = async {
            let r = self
                .post("/v1/lookup")
                .json(&body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !r.status().is_success() {
                return Err(format!("status {}", r.status()));
            }
            r.json::<LookupResponse>().await.map_err(|e| e.to_string())
        }
        .await;
        let outcome = if res.is_ok() { "ok" } else { "error" };
        self.metrics
            .tracker_calls
            .with_label_values(&["lookup", outcome])
            .inc();
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

    /// Announces at start, 2 s after changes, and every interval the tracker asks for, until
    /// `stop` fires.
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
                _ = stop.changed() => return,
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
            peer: PeerDesc {
                id: "edge-1".into(),
                addr: "10.0.0.5:7071".into(),
                role: "edge".into(),
                zone: None,
                free_bytes: 5,
                load: 0,
            },
            full: Some(vec![Holding {
                hash: MerkleHash::from_bytes([0; 32]),
                ranges: vec![WireRange { start: 0, end: 3 }],
            }]),
        };
        let v = serde_json::to_value(&body).expect("json");
        assert_eq!(v["peer"]["role"], "edge");
        assert_eq!(v["full"][0]["ranges"][0]["end"], 3);
        assert_eq!(v["full"][0]["hash"].as_str().map(str::len), Some(64));
        let ans: LookupResponse = serde_json::from_str(
            r#"{"peers":{"e":{"addr":"127.0.0.1:1","role":"edge"}},"results":[{"peers":["e"]}]}"#,
        )
        .expect("parse");
        assert_eq!(ans.results[0].peers, vec!["e".to_string()]);
    }
}
