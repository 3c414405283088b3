//! Where the chunk ranges of a pull come from, in order: the local xorb store, the peers and
//! edges the tracker names (over the wire protocol, several ranges in flight), an edge asked to
//! fetch the range upstream on our behalf (the Request carries the signed URL), and upstream
//! itself. A source that fails is dropped for the rest of the pull; a source whose bytes fail
//! verification is marked bad and never asked again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use xet::MerkleHash;
use xorbstore::peer::{FetchOptions, PeerClient, PeerClientConfig, PeerError};
use xorbstore::Store;

use super::tracker::{ChunkRange, LookupItem, PeerRole, TrackerClient};
use crate::hub::HubClient;

/// Where bytes came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Local,
    Peer(String),
    Edge(String),
    Upstream,
}

impl Source {
    pub fn label(&self) -> String {
        match self {
            Source::Local => "local".into(),
            Source::Peer(id) => format!("peer {id}"),
            Source::Edge(id) => format!("edge {id}"),
            Source::Upstream => "upstream".into(),
        }
    }
}

/// One chunk range of a xorb to fetch, with its upstream location when known.
#[derive(Debug, Clone)]
pub struct Unit {
    pub xorb: MerkleHash,
    pub chunks: Range<u32>,
    /// Signed URL and inclusive byte range (absent in fleet-only pulls).
    pub upstream: Option<(String, u64, u64)>,
}

/// A fetched and decoded unit.
#[derive(Debug)]
pub struct Fetched {
    pub raw: Bytes,
    pub data: Vec<u8>,
    /// Offsets of each chunk's end in `data`.
    pub ends: Vec<usize>,
    pub hashes: Vec<MerkleHash>,
    pub source: Source,
}

/// A peer or edge the pull may ask.
#[derive(Debug, Clone)]
struct Candidate {
    id: String,
    addr: String,
    role: PeerRole,
}

/// Byte counters by source kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub local: u64,
    pub peers: u64,
    pub edges: u64,
    pub upstream: u64,
}

/// Shared state of the sources for one pull.
pub struct Sources {
    pub store: Option<Store>,
    pub hub: Option<HubClient>,
    pub tracker: Option<TrackerClient>,
    pub peer_id: String,
    clients: tokio::sync::Mutex<HashMap<String, Arc<PeerClient>>>,
    dead: Mutex<HashSet<String>>,
    bad: Mutex<BTreeMap<String, String>>,
    edges: tokio::sync::OnceCell<Vec<Candidate>>,
    pub counters: Mutex<Counters>,
    /// Time allowed for one range from a peer or edge.
    pub peer_timeout: Duration,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("peer_id", &self.peer_id)
            .finish()
    }
}

/// Decodes chunk records and hashes every chunk; errors on anything malformed.
pub fn decode(raw: Bytes, expect_chunks: u32, source: Source) -> anyhow::Result<Fetched> {
    let mut data = Vec::new();
    let lens = xet::chunk::decode_records(&raw, &mut data).context("malformed chunk records")?;
    if lens.len() != expect_chunks as usize {
        bail!("{} chunks, expected {expect_chunks}", lens.len());
    }
    let mut ends = Vec::with_capacity(lens.len());
    let mut hashes = Vec::with_capacity(lens.len());
    let mut pos = 0usize;
    for l in lens {
        let end = pos + l as usize;
        hashes.push(xet::hash::chunk_hash(&data[pos..end]));
        ends.push(end);
        pos = end;
    }
    Ok(Fetched {
        raw,
        data,
        ends,
        hashes,
        source,
    })
}

impl Sources {
    pub fn new(
        store: Option<Store>,
        hub: Option<HubClient>,
        tracker: Option<TrackerClient>,
        peer_id: String,
    ) -> Self {
        Self {
            store,
            hub,
            tracker,
            peer_id,
            clients: Default::default(),
            dead: Default::default(),
            bad: Default::default(),
            edges: Default::default(),
            counters: Default::default(),
            peer_timeout: Duration::from_secs(30),
        }
    }

    /// Sources that sent bytes that failed verification, with why.
    pub fn bad_sources(&self) -> BTreeMap<String, String> {
        self.bad.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Marks `source` as having sent bad bytes: it is not asked again.
    pub fn blame(&self, source: &Source, why: &str) {
        let id = match source {
            Source::Peer(id) | Source::Edge(id) => id.clone(),
            Source::Upstream => "upstream".into(),
            Source::Local => "local".into(),
        };
        tracing::warn!(source = %source.label(), why, "source sent bad bytes; avoiding it");
        self.bad
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), why.to_string());
        self.dead
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id);
    }

    fn is_dead(&self, id: &str) -> bool {
        self.dead
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    fn count(&self, source: &Source, n: u64) {
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        match source {
            Source::Local => c.local += n,
            Source::Peer(_) => c.peers += n,
            Source::Edge(_) => c.edges += n,
            Source::Upstream => c.upstream += n,
        }
    }

    pub fn count_upstream(&self, n: u64) {
        self.count(&Source::Upstream, n);
    }

    /// Asks the tracker who holds each unit; `None` per unit when no tracker or it failed.
    pub async fn lookup(&self, units: &[Unit]) -> Vec<Vec<(String, String, PeerRole)>> {
        let mut out = vec![Vec::new(); units.len()];
        let Some(t) = &self.tracker else { return out };
        for (ci, chunk) in units.chunks(super::tracker::MAX_LOOKUP_ITEMS).enumerate() {
            let items = chunk
                .iter()
                .map(|u| LookupItem {
                    hash: u.xorb,
                    range: ChunkRange {
                        start: u.chunks.start,
                        end: u.chunks.end,
                    },
                })
                .collect();
            match t.lookup(&self.peer_id, items).await {
                Ok(r) => {
                    for (i, res) in r.results.into_iter().enumerate() {
                        let idx = ci * super::tracker::MAX_LOOKUP_ITEMS + i;
                        for id in res.peers {
                            if let Some(p) = r.peers.get(&id) {
                                out[idx].push((id, p.addr.clone(), p.role));
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "tracker lookup failed; going upstream");
                    return out;
                }
            }
        }
        out
    }

    /// Live edges known to the tracker (asked once per pull).
    async fn edges(&self) -> &[Candidate] {
        self.edges
            .get_or_init(|| async {
                let Some(t) = &self.tracker else {
                    return Vec::new();
                };
                match t.peers().await {
                    Ok(ps) => ps
                        .into_iter()
                        .filter(|p| p.role == PeerRole::Edge)
                        .map(|p| Candidate {
                            id: p.id,
                            addr: p.addr,
                            role: PeerRole::Edge,
                        })
                        .collect(),
                    Err(e) => {
                        tracing::warn!(error = %e, "tracker peer list failed");
                        Vec::new()
                    }
                }
            })
            .await
    }

    async fn client(&self, c: &Candidate) -> anyhow::Result<Arc<PeerClient>> {
        let mut clients = self.clients.lock().await;
        if let Some(cl) = clients.get(&c.id) {
            if !cl.is_closed() {
                return Ok(cl.clone());
            }
        }
        let addr: SocketAddr = tokio::net::lookup_host(&c.addr)
            .await?
            .next()
            .context("peer address resolves to nothing")?;
        let mut cfg = PeerClientConfig::new(self.peer_id.clone(), wire::Role::Client);
        cfg.connect_timeout = Duration::from_secs(3);
        cfg.request_timeout = self.peer_timeout;
        let cl = Arc::new(PeerClient::connect(addr, cfg).await?);
        clients.insert(c.id.clone(), cl.clone());
        Ok(cl)
    }

    /// Fetches one unit: local store, then `holders` (best first), then an edge with the
    /// upstream hint, then upstream. `skip_fleet` goes straight upstream (refetch after a
    /// verification failure).
    pub async fn fetch_unit(
        &self,
        unit: &Unit,
        holders: &[(String, String, PeerRole)],
        skip_fleet: bool,
    ) -> anyhow::Result<Fetched> {
        let n = unit.chunks.end - unit.chunks.start;
        if !skip_fleet {
            if let Some(store) = &self.store {
                if let Some(views) = store.get_cover(&unit.xorb, unit.chunks.clone()) {
                    let mut raw = bytes::BytesMut::new();
                    for v in views {
                        raw.extend_from_slice(&v.into_bytes());
                    }
                    let raw = raw.freeze();
                    let len = raw.len() as u64;
                    match tokio::task::spawn_blocking(move || decode(raw, n, Source::Local)).await?
                    {
                        Ok(f) => {
                            self.count(&Source::Local, len);
                            return Ok(f);
                        }
                        Err(e) => tracing::warn!(error = %e, "local store range unreadable"),
                    }
                }
            }
            let mut tried = 0;
            for (id, addr, role) in holders {
                if tried >= 3 || self.is_dead(id) {
                    continue;
                }
                tried += 1;
                let cand = Candidate {
                    id: id.clone(),
                    addr: addr.clone(),
                    role: *role,
                };
                if let Some(f) = self.try_peer(&cand, unit, None).await {
                    return Ok(f);
                }
            }
            if let Some((url, s, e)) = &unit.upstream {
                let edges: Vec<Candidate> = self.edges().await.to_vec();
                for edge in edges.iter().filter(|e| !self.is_dead(&e.id)).take(2) {
                    let up = wire::Upstream {
                        url: url.clone(),
                        byte_start: *s,
                        byte_end: *e,
                    };
                    if let Some(f) = self.try_peer(edge, unit, Some(up)).await {
                        return Ok(f);
                    }
                }
            }
        }
        let Some((url, s, e)) = &unit.upstream else {
            bail!(
                "no peer or edge holds chunks {}..{} of xorb {} and upstream is not available",
                unit.chunks.start,
                unit.chunks.end,
                unit.xorb
            );
        };
        let hub = self.hub.as_ref().context("upstream is not available")?;
        let mut last = None;
        for _ in 0..4 {
            let raw = hub.xorb_range(url, *s, *e).await?;
            let len = raw.len() as u64;
            self.count(&Source::Upstream, len);
            match tokio::task::spawn_blocking(move || decode(raw, n, Source::Upstream)).await? {
                Ok(f) => return Ok(f),
                Err(e) => {
                    tracing::warn!(error = %e, xorb = %unit.xorb, "upstream sent malformed chunk records; retrying");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("upstream failed")))
    }

    async fn try_peer(
        &self,
        cand: &Candidate,
        unit: &Unit,
        upstream: Option<wire::Upstream>,
    ) -> Option<Fetched> {
        let source = match cand.role {
            PeerRole::Edge => Source::Edge(cand.id.clone()),
            PeerRole::Client => Source::Peer(cand.id.clone()),
        };
        let client = match self.client(cand).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(peer = %cand.id, error = %e, "cannot reach peer; dropping it");
                self.dead
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(cand.id.clone());
                return None;
            }
        };
        let opts = FetchOptions {
            upstream,
            ..FetchOptions::default()
        };
        match client
            .fetch_with(&unit.xorb, unit.chunks.clone(), opts)
            .await
        {
            Ok(raw) => {
                let len = raw.len() as u64;
                let n = unit.chunks.end - unit.chunks.start;
                let src = source.clone();
                match tokio::task::spawn_blocking(move || decode(raw, n, src)).await {
                    Ok(Ok(f)) => {
                        self.count(&source, len);
                        Some(f)
                    }
                    Ok(Err(e)) => {
                        self.blame(&source, &format!("malformed chunk records: {e:#}"));
                        None
                    }
                    Err(_) => None,
                }
            }
            Err(PeerError::NotFound) => None,
            Err(e) => {
                tracing::warn!(peer = %cand.id, error = %e, "peer fetch failed; dropping it");
                self.dead
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(cand.id.clone());
                None
            }
        }
    }
}
