//! Where the chunk ranges of a pull come from: the local xorb store, the peers and edges the
//! tracker names (over the wire protocol), an edge asked to fetch the range upstream on our
//! behalf (the Request carries the signed URL, so the fleet keeps every byte), and upstream.
//!
//! Scheduling: every peer and edge has a throughput estimate (an EWMA of bytes/s over the ranges
//! it served, the tracker's ranking as the prior before it served any) and a count of requests in
//! flight. Each range goes to the source with the best expected completion (throughput divided
//! by in-flight + 1), so fast sources get more work and several sources serve one file at once.
//! A request has a time limit scaled to its size; a source that misses it, fails or closes is
//! dropped for the rest of the pull. When a fleet request is slow (no answer after the hedging
//! delay, `max(2 s, 3 × expected)`), the same range is also fetched upstream and the first answer
//! that decodes wins (at most [`MAX_HEDGES`] such races at once). A source whose bytes fail
//! verification is marked bad and never asked again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use xet::MerkleHash;
use xorbstore::peer::{FetchOptions, PeerClient, PeerClientConfig, PeerError};
use xorbstore::{Expectation, Store};

use hub::HubClient;
use zest_tracker_api::client::TrackerClient;
use zest_tracker_api::{ChunkRange, LookupItem, LookupRequest, Role as PeerRole};

/// Upstream races started for slow fleet requests, at most, at once.
pub const MAX_HEDGES: usize = 4;
/// Holders (tracker-named) tried per range before the edges.
const MAX_HOLDER_TRIES: usize = 3;
/// Edges handed the upstream URL per range before going upstream ourselves.
const MAX_EDGE_TRIES: usize = 2;
/// Throughput assumed for a source that has not served anything yet, bytes/s (the tracker's
/// rank lowers it: rank 1 gets 4/5 of it, rank 2 2/3, ...).
const PRIOR_BYTES_PER_SEC: f64 = 50e6;
/// Weight of the newest sample in a source's throughput estimate.
const EWMA_ALPHA: f64 = 0.3;
/// Slowest rate a fleet request may go at before it is given up (sets its time limit).
const MIN_BYTES_PER_SEC: f64 = 1e6;
/// Fixed part of a fleet request's time limit (connection, an edge's upstream round trip).
const REQUEST_GRACE: Duration = Duration::from_secs(5);
/// Shortest hedging delay.
const MIN_HEDGE_DELAY: Duration = Duration::from_secs(2);
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

impl Unit {
    /// Expected size of the chunk records on the wire.
    pub fn expected_bytes(&self) -> u64 {
        match &self.upstream {
            Some((_, s, e)) => e.saturating_sub(*s).saturating_add(1),
            None => u64::from(self.chunks.end.saturating_sub(self.chunks.start))
                .saturating_mul(TYPICAL_CHUNK_BYTES),
        }
    }
}

/// A fetched unit: its chunk records, structurally checked ([`check`]).
#[derive(Debug)]
pub struct Fetched {
    pub raw: Bytes,
    /// Each chunk's uncompressed length, from its record header.
    pub lens: Vec<u32>,
    pub source: Source,
}

/// A peer or edge the pull may ask.
#[derive(Debug, Clone)]
struct Candidate {
    id: String,
    addr: String,
    role: PeerRole,
    /// Position in the tracker's answer (0 = best), or in the edge list.
    rank: usize,
}

/// Byte counters by source kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub local: u64,
    pub peers: u64,
    pub edges: u64,
    pub upstream: u64,
}

/// What the scheduler knows of one peer or edge.
#[derive(Debug, Default, Clone, Copy)]
struct SourceStat {
    /// Bytes/s, once it served something.
    ewma: Option<f64>,
    inflight: u32,
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
    stats: Mutex<HashMap<String, SourceStat>>,
    edges: tokio::sync::OnceCell<Vec<Candidate>>,
    hedge_slots: Arc<tokio::sync::Semaphore>,
    hedges: AtomicU64,
    tracker_down: AtomicBool,
    pub counters: Mutex<Counters>,
    /// Longest time allowed for one range from a peer or edge (the limit scaled to the range's
    /// size is used when shorter).
    pub peer_timeout: Duration,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("peer_id", &self.peer_id)
            .finish()
    }
}

/// Checks that `raw` is the chunk records of chunks `chunks`: every record header parses and
/// the count is right. Payloads are not decoded here: the pull decodes, hashes and writes each
/// chunk in one pass ([`super::xetfile`]), blaming the source when a payload does not decode.
///
/// The records are counted against the chunk range as they are walked, so a source cannot make
/// us allocate for more chunks than we asked for.
pub fn check(chunks: Range<u32>, raw: Bytes, source: Source) -> anyhow::Result<Fetched> {
    let want = chunks.end.saturating_sub(chunks.start) as usize;
    let mut lens = Vec::with_capacity(want);
    for rec in xet::chunk::ChunkRecords::new(&raw) {
        let rec = rec.context("malformed chunk records")?;
        if lens.len() == want {
            bail!("more than the {want} chunks asked for");
        }
        if rec.header.uncompressed_len == 0
            || rec.header.uncompressed_len > xet::chunk::MAX_UNCOMPRESSED_LEN
        {
            bail!(
                "malformed chunk records: a chunk of {} bytes",
                rec.header.uncompressed_len
            );
        }
        lens.push(rec.header.uncompressed_len);
    }
    if lens.len() != want {
        bail!("{} chunks, expected {want}", lens.len());
    }
    Ok(Fetched { raw, lens, source })
}

/// Keeps `e` in `slot` unless it is [`MalformedUpstream`] (bytes worth asking for again).
fn keep_http_failure(slot: &mut Option<anyhow::Error>, e: anyhow::Error) {
    if e.downcast_ref::<MalformedUpstream>().is_none() {
        *slot = Some(e);
    }
}

/// Upstream answered, but not with the chunk records asked for (a flaky upstream or network):
/// worth asking again, unlike an HTTP failure, which [`HubClient`] already retried.
#[derive(Debug, thiserror::Error)]
#[error("upstream sent malformed chunk records for xorb {xorb}: {why}")]
pub struct MalformedUpstream {
    pub xorb: MerkleHash,
    pub why: String,
}

impl Fetched {
    /// Decodes every chunk: the data, each chunk's end offset in it, and each chunk's hash.
    pub fn decode(&self, xorb: &MerkleHash, chunks: Range<u32>) -> anyhow::Result<Decoded> {
        let mut data = Vec::new();
        let meta = xorbstore::verify_and_decode(
            xorb,
            chunks,
            &self.raw,
            &Expectation::structural(),
            &mut data,
        )
        .context("malformed chunk records")?;
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

/// Decrements a source's in-flight count when the request ends (or is dropped by a race).
struct Inflight<'a> {
    sources: &'a Sources,
    id: String,
}

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        let mut st = self.sources.stats_lock();
        if let Some(s) = st.get_mut(&self.id) {
            s.inflight = s.inflight.saturating_sub(1);
        }
    }
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
            stats: Default::default(),
            edges: Default::default(),
            hedge_slots: Arc::new(tokio::sync::Semaphore::new(MAX_HEDGES)),
            hedges: AtomicU64::new(0),
            tracker_down: AtomicBool::new(false),
            counters: Default::default(),
            peer_timeout: Duration::from_secs(300),
        }
    }

    fn stats_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SourceStat>> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sources that sent bytes that failed verification, with why.
    pub fn bad_sources(&self) -> BTreeMap<String, String> {
        self.bad.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Upstream races started because a fleet request was slow.
    pub fn hedges(&self) -> u64 {
        self.hedges.load(Ordering::Relaxed)
    }

    /// True once a tracker call failed: the rest of the pull does without it.
    pub fn tracker_down(&self) -> bool {
        self.tracker_down.load(Ordering::Relaxed)
    }

    fn mark_tracker_down(&self, what: &str, e: &impl std::fmt::Display) {
        if !self.tracker_down.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error = %format!("{e:#}"),
                "tracker {what} failed: pulling without the tracker (edges and peers it would name are not used)"
            );
        }
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
        self.drop_source(&id);
    }

    fn drop_source(&self, id: &str) {
        self.dead
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string());
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

    /// Counts `n` bytes as coming from this machine (a resumed pull's bytes already on disk).
    pub fn count_local(&self, n: u64) {
        self.count(&Source::Local, n);
    }

    pub fn count_upstream(&self, n: u64) {
        self.count(&Source::Upstream, n);
    }

    /// Throughput estimate of `c`: measured, or the prior from its rank (with some jitter so
    /// untested sources of equal rank share the first ranges).
    fn throughput(&self, c: &Candidate) -> f64 {
        let measured = self.stats_lock().get(&c.id).and_then(|s| s.ewma);
        measured.unwrap_or_else(|| {
            let jitter = 0.8 + 0.4 * rand::random::<f64>();
            PRIOR_BYTES_PER_SEC / (1.0 + 0.25 * c.rank as f64) * jitter
        })
    }

    /// Expected completion score of `c` (higher is better).
    fn score(&self, c: &Candidate) -> f64 {
        let inflight = self.stats_lock().get(&c.id).map_or(0, |s| s.inflight);
        self.throughput(c) / f64::from(inflight + 1)
    }

    /// The best untried, live candidate.
    fn pick<'a>(&self, cands: &'a [Candidate], tried: &HashSet<String>) -> Option<&'a Candidate> {
        cands
            .iter()
            .filter(|c| !tried.contains(&c.id) && !self.is_dead(&c.id))
            .map(|c| (self.score(c), c))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, c)| c)
    }

    fn start_request(&self, id: &str) -> Inflight<'_> {
        self.stats_lock()
            .entry(id.to_string())
            .or_default()
            .inflight += 1;
        Inflight {
            sources: self,
            id: id.to_string(),
        }
    }

    fn record_throughput(&self, id: &str, bytes: u64, took: Duration) {
        let sample = bytes as f64 / took.as_secs_f64().max(1e-3);
        let mut st = self.stats_lock();
        let s = st.entry(id.to_string()).or_default();
        s.ewma = Some(match s.ewma {
            Some(old) => old * (1.0 - EWMA_ALPHA) + sample * EWMA_ALPHA,
            None => sample,
        });
    }

    /// Time limit of one fleet request for `unit`: the grace plus its size at the slowest
    /// acceptable rate, capped by `peer_timeout`.
    fn request_timeout(&self, unit: &Unit) -> Duration {
        let t = REQUEST_GRACE
            + Duration::from_secs_f64(unit.expected_bytes() as f64 / MIN_BYTES_PER_SEC);
        t.min(self.peer_timeout)
    }

    /// How long a fleet request for `unit` may run before upstream is raced against it.
    /// The source's throughput is shared by everything in flight to it, so the expectation
    /// counts the requests queued there too (else every range past the first few is raced).
    fn hedge_delay(&self, c: &Candidate, unit: &Unit) -> Duration {
        let inflight = self.stats_lock().get(&c.id).map_or(0, |s| s.inflight);
        let queued = unit.expected_bytes() as f64 * f64::from(inflight.max(1));
        let expected = queued / self.throughput(c).max(1.0);
        Duration::from_secs_f64((3.0 * expected).min(3600.0)).max(MIN_HEDGE_DELAY)
    }

    /// Asks the tracker who holds each unit, best first; empty per unit when there is no tracker
    /// or it failed.
    pub async fn lookup(&self, units: &[Unit]) -> Vec<Vec<(String, String, PeerRole)>> {
        let mut out = vec![Vec::new(); units.len()];
        let Some(t) = &self.tracker else { return out };
        if self.tracker_down() {
            return out;
        }
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
                limit: Some(8),
                items,
            };
            match t.lookup(&req).await {
                Ok(r) => {
                    for (i, res) in r.results.into_iter().enumerate() {
                        let idx = ci * zest_tracker_api::MAX_LOOKUP_ITEMS + i;
                        for id in res.peers {
                            if let Some(p) = r.peers.get(&id) {
                                out[idx].push((id, p.addr.clone(), p.role));
                            }
                        }
                    }
                }
                Err(e) => {
                    self.mark_tracker_down("lookup", &e);
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
                if self.tracker_down() {
                    return Vec::new();
                }
                match t.peers().await {
                    Ok(ps) => ps
                        .into_iter()
                        .filter(|p| p.role == PeerRole::Edge)
                        .enumerate()
                        .map(|(rank, p)| Candidate {
                            id: p.id,
                            addr: p.addr,
                            role: PeerRole::Edge,
                            rank,
                        })
                        .collect(),
                    Err(e) => {
                        self.mark_tracker_down("peer list", &e);
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

    /// Fetches one unit: the local store; then the holders the tracker named (`holders`, best
    /// first: the prior of the scheduler, which picks by measured throughput and load); then an
    /// edge handed the upstream URL; then upstream. Slow fleet requests are raced by upstream.
    /// `skip_fleet` goes straight upstream (refetch after a verification failure).
    pub async fn fetch_unit(
        &self,
        unit: &Unit,
        holders: &[(String, String, PeerRole)],
        skip_fleet: bool,
    ) -> anyhow::Result<Fetched> {
        if !skip_fleet {
            if let Some(store) = &self.store {
                if let Some(mut views) =
                    store.get_cover_async(&unit.xorb, unit.chunks.clone()).await
                {
                    let raw = if views.len() == 1 {
                        // One stored range: its mapped bytes, no copy.
                        views.remove(0).into_bytes()
                    } else {
                        let mut raw = bytes::BytesMut::new();
                        for v in views {
                            raw.extend_from_slice(&v.into_bytes());
                        }
                        raw.freeze()
                    };
                    let len = raw.len() as u64;
                    match check(unit.chunks.clone(), raw, Source::Local) {
                        Ok(f) => {
                            self.count(&Source::Local, len);
                            return Ok(f);
                        }
                        Err(e) => tracing::warn!(error = %e, "local store range unreadable"),
                    }
                }
            }
            let cands: Vec<Candidate> = holders
                .iter()
                .enumerate()
                .map(|(rank, (id, addr, role))| Candidate {
                    id: id.clone(),
                    addr: addr.clone(),
                    role: *role,
                    rank,
                })
                .collect();
            let mut tried = HashSet::new();
            // An upstream race that already failed with the retry policy spent.
            let mut upstream_failed = None;
            for _ in 0..MAX_HOLDER_TRIES {
                let Some(c) = self.pick(&cands, &tried) else {
                    break;
                };
                tried.insert(c.id.clone());
                if let Some(f) = self.try_hedged(c, unit, None, &mut upstream_failed).await {
                    return Ok(f);
                }
            }
            if let Some((url, s, e)) = &unit.upstream {
                let edges: Vec<Candidate> = self.edges().await.to_vec();
                for _ in 0..MAX_EDGE_TRIES {
                    let Some(c) = self.pick(&edges, &tried) else {
                        break;
                    };
                    tried.insert(c.id.clone());
                    let up = wire::Upstream {
                        url: url.clone(),
                        byte_start: *s,
                        byte_end: *e,
                    };
                    if let Some(f) = self
                        .try_hedged(c, unit, Some(up), &mut upstream_failed)
                        .await
                    {
                        return Ok(f);
                    }
                }
            }
            // Asking again would cost the upstream another round of the policy's attempts.
            if let Some(e) = upstream_failed {
                return Err(e);
            }
        }
        self.fetch_upstream(unit).await
    }

    /// Fetches `unit` from its signed upstream URL, once: HTTP failures are retried inside
    /// [`HubClient`] and nowhere else; bytes that do not decode come back as
    /// [`MalformedUpstream`] for the caller to decide.
    async fn fetch_upstream(&self, unit: &Unit) -> anyhow::Result<Fetched> {
        let Some((url, s, e)) = &unit.upstream else {
            bail!(
                "no peer or edge holds chunks {}..{} of xorb {} and upstream is not available",
                unit.chunks.start,
                unit.chunks.end,
                unit.xorb
            );
        };
        let hub = self.hub.as_ref().context("upstream is not available")?;
        let raw = hub
            .xorb_range(
                url,
                xet::cas::ByteRange::new(*s, *e),
                xorbstore::MAX_RANGE_BYTES as u64,
            )
            .await?;
        self.count(&Source::Upstream, raw.len() as u64);
        check(unit.chunks.clone(), raw, Source::Upstream).map_err(|e| {
            anyhow::Error::new(MalformedUpstream {
                xorb: unit.xorb,
                why: format!("{e:#}"),
            })
        })
    }

    /// [`Self::try_peer`], raced by upstream when it has not answered after the hedging delay
    /// (and a hedge slot is free). `None` when neither produced the unit; an upstream HTTP
    /// failure is kept in `upstream_failed` so the caller does not ask upstream again.
    async fn try_hedged(
        &self,
        cand: &Candidate,
        unit: &Unit,
        upstream: Option<wire::Upstream>,
        upstream_failed: &mut Option<anyhow::Error>,
    ) -> Option<Fetched> {
        // An edge handed the upstream URL is itself fetching from upstream: racing it would
        // only make the origin send the range twice.
        let edge_fetches_upstream = upstream.is_some();
        let peer = self.try_peer(cand, unit, upstream);
        tokio::pin!(peer);
        if unit.upstream.is_none() || self.hub.is_none() || edge_fetches_upstream {
            return peer.await;
        }
        let delay = self.hedge_delay(cand, unit);
        let started = Instant::now();
        tokio::select! {
            r = &mut peer => return r,
            _ = tokio::time::sleep(delay) => {}
        }
        let Ok(_slot) = self.hedge_slots.clone().try_acquire_owned() else {
            return peer.await;
        };
        self.hedges.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            source = %cand.id, xorb = %unit.xorb, after_ms = delay.as_millis() as u64,
            "fleet request slow; racing upstream"
        );
        let up = self.fetch_upstream(unit);
        tokio::pin!(up);
        tokio::select! {
            r = &mut peer => match r {
                Some(f) => Some(f),
                None => match up.await {
                    Ok(f) => Some(f),
                    Err(e) => {
                        keep_http_failure(upstream_failed, e);
                        None
                    }
                },
            },
            r = &mut up => match r {
                Ok(f) => {
                    // The source lost the race: it is at most this fast.
                    self.record_throughput(&cand.id, unit.expected_bytes(), started.elapsed());
                    Some(f)
                }
                Err(e) => {
                    tracing::debug!(error = %format!("{e:#}"), "upstream race failed");
                    keep_http_failure(upstream_failed, e);
                    peer.await
                }
            },
        }
    }

    async fn try_peer(
        &self,
        cand: &Candidate,
        unit: &Unit,
        upstream: Option<wire::Upstream>,
    ) -> Option<Fetched> {
        let source = match cand.role {
            PeerRole::Edge => Source::Edge(cand.id.clone()),
            PeerRole::Client | PeerRole::Seed => Source::Peer(cand.id.clone()),
        };
        let _inflight = self.start_request(&cand.id);
        let client = match self.client(cand).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(peer = %cand.id, error = %e, "cannot reach peer; dropping it");
                self.drop_source(&cand.id);
                return None;
            }
        };
        let opts = FetchOptions {
            upstream,
            timeout: Some(self.request_timeout(unit)),
            ..FetchOptions::default()
        };
        let started = Instant::now();
        match client
            .fetch_with(&unit.xorb, unit.chunks.clone(), opts)
            .await
        {
            Ok(raw) => {
                let len = raw.len() as u64;
                self.record_throughput(&cand.id, len, started.elapsed());
                // A header walk only (cheap): no blocking task needed.
                match check(unit.chunks.clone(), raw, source.clone()) {
                    Ok(f) => {
                        self.count(&source, len);
                        Some(f)
                    }
                    Err(e) => {
                        self.blame(&source, &format!("malformed chunk records: {e:#}"));
                        None
                    }
                }
            }
            Err(PeerError::NotFound) => None,
            Err(e) => {
                tracing::warn!(peer = %cand.id, error = %e, "peer fetch failed; dropping it");
                self.drop_source(&cand.id);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(format!("{e:#}").contains("malformed"), "{e:#}");
    }

    fn cand(id: &str, rank: usize) -> Candidate {
        Candidate {
            id: id.into(),
            addr: "127.0.0.1:1".into(),
            role: PeerRole::Client,
            rank,
        }
    }

    #[test]
    fn the_fastest_source_gets_the_work_and_load_spreads_it() {
        let s = Sources::new(None, None, None, "me".into());
        let cands = [cand("slow", 0), cand("fast", 1)];
        s.record_throughput("slow", 1_000_000, Duration::from_secs(1));
        s.record_throughput("fast", 100_000_000, Duration::from_secs(1));
        let none = HashSet::new();
        assert_eq!(s.pick(&cands, &none).map(|c| c.id.as_str()), Some("fast"));
        // Under load the fast one still wins until its share is proportionate.
        let guards: Vec<_> = (0..10).map(|_| s.start_request("fast")).collect();
        assert_eq!(s.pick(&cands, &none).map(|c| c.id.as_str()), Some("fast"));
        let more: Vec<_> = (0..100).map(|_| s.start_request("fast")).collect();
        assert_eq!(s.pick(&cands, &none).map(|c| c.id.as_str()), Some("slow"));
        drop(more);
        drop(guards);
        assert_eq!(s.stats_lock()["fast"].inflight, 0);
        // Dead and tried sources are skipped.
        s.drop_source("fast");
        assert_eq!(s.pick(&cands, &none).map(|c| c.id.as_str()), Some("slow"));
        let tried: HashSet<String> = ["slow".to_string()].into();
        assert!(s.pick(&cands, &tried).is_none());
    }

    #[test]
    fn time_limits_scale_with_the_range_size() {
        let s = Sources::new(None, None, None, "me".into());
        let small = Unit {
            xorb: MerkleHash::default(),
            chunks: 0..1,
            upstream: Some(("u".into(), 0, 999)),
        };
        let big = Unit {
            upstream: Some(("u".into(), 0, 63_999_999)),
            ..small.clone()
        };
        assert!(s.request_timeout(&small) < s.request_timeout(&big));
        assert!(s.request_timeout(&big) <= s.peer_timeout);
        let c = cand("x", 0);
        assert_eq!(s.hedge_delay(&c, &small), MIN_HEDGE_DELAY);
        s.record_throughput("x", 1_000_000, Duration::from_secs(1));
        assert!(s.hedge_delay(&c, &big) >= Duration::from_secs(150));
    }
}
