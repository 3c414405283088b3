//! A small client of the zest tracker's HTTP API (`docs/tracker-api.md`): lookup, peers,
//! announce, manifests and reports. The JSON types mirror the tracker's (services do not depend
//! on each other). Every call has a short time limit: a tracker that is down only makes the pull
//! go upstream, it never stops it.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use xet::MerkleHash;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRange {
    pub start: u32,
    pub end: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerRole {
    Edge,
    Client,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerDescriptor {
    pub id: String,
    pub addr: String,
    pub role: PeerRole,
    #[serde(default)]
    pub zone: String,
    #[serde(default)]
    pub free_bytes: u64,
    #[serde(default)]
    pub load: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct XorbHolding {
    pub hash: MerkleHash,
    pub ranges: Vec<ChunkRange>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AnnounceRequest {
    pub peer: PeerDescriptor,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full: Option<Vec<XorbHolding>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AnnounceResponse {
    pub interval_secs: u64,
    #[serde(default)]
    pub resync: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LookupItem {
    pub hash: MerkleHash,
    pub range: ChunkRange,
}

#[derive(Debug, Clone, Serialize)]
pub struct LookupRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    pub items: Vec<LookupItem>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PeerInfo {
    pub addr: String,
    pub role: PeerRole,
    #[serde(default)]
    pub load: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LookupResult {
    pub peers: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LookupResponse {
    pub peers: BTreeMap<String, PeerInfo>,
    pub results: Vec<LookupResult>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PeerListEntry {
    pub id: String,
    pub addr: String,
    pub role: PeerRole,
}

#[derive(Debug, Clone, Deserialize)]
struct PeersResponse {
    peers: Vec<PeerListEntry>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BytesBySource {
    pub local: u64,
    pub peers: u64,
    pub edges: u64,
    pub upstream: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestTerm {
    pub hash: MerkleHash,
    pub unpacked_length: u32,
    pub range: ChunkRange,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestFile {
    pub path: String,
    pub size: u64,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xet_hash: Option<MerkleHash>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub terms: Vec<ManifestTerm>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub commit: String,
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportRequest {
    pub peer_id: String,
    pub repo: String,
    pub revision: String,
    pub bytes: BytesBySource,
    pub files: u64,
    pub duration_ms: u64,
}

/// Most items in one lookup (the tracker's default limit is 10,000).
pub const MAX_LOOKUP_ITEMS: usize = 5_000;
const MAX_BODY: usize = 64 << 20;

/// The tracker at `base` (`http://host:port`), with an optional bearer token for writes.
#[derive(Debug, Clone)]
pub struct TrackerClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl TrackerClient {
    pub fn new(base: &str, token: Option<String>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
        })
    }

    fn req(&self, m: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(m, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    async fn json<T: for<'de> Deserialize<'de>>(
        what: &str,
        resp: reqwest::Response,
    ) -> anyhow::Result<T> {
        let status = resp.status();
        if !status.is_success() {
            bail!("tracker {what}: HTTP {status}");
        }
        if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            bail!("tracker {what}: answer too large");
        }
        let body = resp.bytes().await?;
        if body.len() > MAX_BODY {
            bail!("tracker {what}: answer too large");
        }
        serde_json::from_slice(&body).with_context(|| format!("tracker {what}: bad JSON"))
    }

    /// Who holds each item (same order as `items`).
    pub async fn lookup(
        &self,
        peer_id: &str,
        items: Vec<LookupItem>,
    ) -> anyhow::Result<LookupResponse> {
        let n = items.len();
        let resp = self
            .req(reqwest::Method::POST, "/v1/lookup")
            .json(&LookupRequest {
                peer_id: Some(peer_id.to_string()),
                limit: Some(8),
                items,
            })
            .send()
            .await?;
        let r: LookupResponse = Self::json("lookup", resp).await?;
        if r.results.len() != n {
            bail!("tracker lookup: {} results for {n} items", r.results.len());
        }
        Ok(r)
    }

    /// Live peers.
    pub async fn peers(&self) -> anyhow::Result<Vec<PeerListEntry>> {
        let resp = self.req(reqwest::Method::GET, "/v1/peers").send().await?;
        Ok(Self::json::<PeersResponse>("peers", resp).await?.peers)
    }

    pub async fn announce(&self, req: &AnnounceRequest) -> anyhow::Result<AnnounceResponse> {
        let resp = self
            .req(reqwest::Method::POST, "/v1/announce")
            .json(req)
            .send()
            .await?;
        Self::json("announce", resp).await
    }

    pub async fn get_manifest(&self, repo: &str, rev: &str) -> anyhow::Result<Option<Manifest>> {
        let resp = self
            .req(reqwest::Method::GET, &format!("/v1/manifests/{repo}/{rev}"))
            .send()
            .await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(Self::json("manifest", resp).await?))
    }

    pub async fn put_manifest(&self, repo: &str, rev: &str, m: &Manifest) -> anyhow::Result<()> {
        let resp = self
            .req(reqwest::Method::PUT, &format!("/v1/manifests/{repo}/{rev}"))
            .json(m)
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("tracker manifest PUT: HTTP {}", resp.status());
        }
        Ok(())
    }

    pub async fn report(&self, r: &ReportRequest) -> anyhow::Result<()> {
        let resp = self
            .req(reqwest::Method::POST, "/v1/reports")
            .json(r)
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("tracker report: HTTP {}", resp.status());
        }
        Ok(())
    }
}
