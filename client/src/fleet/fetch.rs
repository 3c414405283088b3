//! [`Fleet`]: fetching one unit from the best source — the local xorb store, the peers and edges
//! the tracker names (over the wire protocol), an edge handed the signed URL to fetch the range
//! upstream on our behalf (so the fleet keeps every byte), and upstream — with the scheduler's
//! decisions ([`super::scheduler`]) carried out: slow fleet requests raced by upstream (at most
//! [`MAX_HEDGES`] races at once), failing sources dropped, bad ones blamed. With a peer book
//! ([`Fleet::with_peer_book`]), the tracker's answers feed it and, once the tracker is down, it
//! names the holders instead (peer exchange).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hub::{HubClient, HubError};
use xet::MerkleHash;
use xorbstore::peer::{FetchOptions, PeerBook, PeerError};
use xorbstore::Store;
use zest_tracker_api::client::TrackerClient;
use zest_tracker_api::BytesBySource;

use super::blame::BlameList;
use super::counters::ByteCounters;
use super::lookup::Lookups;
use super::pool::PeerPool;
use super::scheduler::{Outcome, Request, Scheduler, Verdict, STALL_TIMEOUT};
use super::{chain, check, CheckError, Fetched, Holder, Source, Unit, UpstreamRange};

/// Upstream races started for slow fleet requests, at most, at once.
pub const MAX_HEDGES: usize = 4;
/// Holders (tracker-named) tried per range before the edges.
const MAX_HOLDER_TRIES: usize = 3;
/// Edges handed the upstream URL per range before going upstream ourselves.
const MAX_EDGE_TRIES: usize = 2;
/// Peers named by the peer book per unit, at most, when the tracker cannot name any: what a
/// flood of peer-exchange addresses can make a pull try for one unit (each lookup answer; a
/// fetch asks at most [`MAX_HOLDER_TRIES`] of them).
pub const MAX_PEX_HOLDERS: usize = 4;
/// Tracker-named peers whose id is remembered by address, at most (so a peer the book names
/// is asked, counted and blamed under the id the tracker gave it).
const MAX_NAMES: usize = 4096;
/// Longest time allowed for one range from a peer or edge (the limit scaled to the range's size
/// is used when shorter).
const PEER_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a unit could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "no peer or edge holds chunks {}..{} of xorb {xorb} and upstream is not available",
        chunks.start,
        chunks.end
    )]
    NoSource {
        xorb: MerkleHash,
        chunks: std::ops::Range<u32>,
    },
    #[error("upstream is not available")]
    NoUpstream,
    /// Upstream failed with its retry policy spent.
    #[error(transparent)]
    Upstream(#[from] HubError),
    /// Upstream answered, but not with the chunk records asked for (a flaky upstream or
    /// network): worth asking again, unlike an HTTP failure, which [`HubClient`] already retried.
    #[error("upstream sent malformed chunk records for xorb {xorb}")]
    MalformedUpstream {
        xorb: MerkleHash,
        #[source]
        why: CheckError,
    },
}

impl FetchError {
    /// True for bytes from upstream that are worth asking for again.
    pub fn is_malformed_upstream(&self) -> bool {
        matches!(self, FetchError::MalformedUpstream { .. })
    }
}

/// Keeps `e` in `slot` unless it is [`FetchError::MalformedUpstream`] (bytes worth asking for
/// again).
fn keep_http_failure(slot: &mut Option<FetchError>, e: FetchError) {
    if !e.is_malformed_upstream() {
        *slot = Some(e);
    }
}

/// The sources of one pull (or one remote inspect).
pub struct Fleet {
    store: Option<Store>,
    hub: Option<HubClient>,
    lookups: Lookups,
    pool: PeerPool,
    scheduler: Mutex<Scheduler>,
    blame: BlameList,
    counters: ByteCounters,
    hedge_slots: Arc<tokio::sync::Semaphore>,
    hedges: AtomicU64,
    /// Where ranges this machine can now serve are queued for announcing (a pull in a swarm).
    publisher: Option<super::swarm::Publisher>,
    claims_granted: AtomicU64,
    claim_group: Option<(String, u32)>,
    /// Peer exchange: who holds parts of which xorb, for when the tracker is down.
    book: Option<Arc<PeerBook>>,
    /// Peer ids the tracker gave, by address.
    names: Mutex<HashMap<SocketAddr, String>>,
    /// Peers the tracker named as holders of something (they deliver what they claim), at
    /// most [`MAX_NAMES`].
    delivered: Mutex<HashSet<String>>,
    /// Bytes fetched from holders the book named.
    pex_bytes: AtomicU64,
}

/// What a lease is claimed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimFor {
    /// Fetching a unit upstream: the lease counts in the swarm's group of upstream fetches.
    Fetch,
    /// The same, outside the group: the group stayed full for longer than the unit may wait.
    Unpaced,
    /// Fetching again, upstream, the fleet ranges of a file that failed its hash (the key is
    /// the file's Xet hash): one machine does it and publishes the file's chunk manifest, the
    /// others then refetch only the ranges the manifest shows wrong. Outside the group.
    Repair,
}

/// What peer exchange did in one pull.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PexCounts {
    /// New (xorb, peer address) entries learned from PeerExchange frames (ours and our
    /// server's connections).
    pub learned: u64,
    /// Bytes fetched from peers the book named because the tracker could not.
    pub bytes: u64,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("peer_id", &self.pool.peer_id())
            .finish()
    }
}

/// Takes a request out of the in-flight count when it ends (or is dropped by a race).
struct Inflight<'a> {
    fleet: &'a Fleet,
    request: Request,
}

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        self.fleet.scheduler().end(self.request.id());
    }
}

impl Fleet {
    /// The sources: `store` (this machine's), `hub` (upstream; none in fleet-only pulls),
    /// `tracker` (none: no peers or edges), introducing ourselves as `peer_id`.
    pub fn new(
        store: Option<Store>,
        hub: Option<HubClient>,
        tracker: Option<TrackerClient>,
        peer_id: String,
    ) -> Self {
        Self {
            store,
            hub,
            lookups: Lookups::new(tracker, peer_id.clone()),
            pool: PeerPool::new(peer_id, PEER_TIMEOUT),
            scheduler: Mutex::new(Scheduler::new(PEER_TIMEOUT, rand::random())),
            blame: BlameList::default(),
            counters: ByteCounters::default(),
            hedge_slots: Arc::new(tokio::sync::Semaphore::new(MAX_HEDGES)),
            hedges: AtomicU64::new(0),
            publisher: None,
            claims_granted: AtomicU64::new(0),
            claim_group: None,
            book: None,
            names: Mutex::new(HashMap::new()),
            delivered: Mutex::new(HashSet::new()),
            pex_bytes: AtomicU64::new(0),
        }
    }

    /// Looks holders up as a machine of `zone` (the tracker ranks that zone's first).
    pub fn with_zone(mut self, zone: String) -> Self {
        self.lookups.set_zone(zone);
        self
    }

    /// Speaks peer exchange into `book` (shared with the pull's own server): the tracker's
    /// answers and the PeerExchange frames of every connection feed it, and when the tracker
    /// is down (or a lookup fails) [`Fleet::lookup`] names its peers instead.
    pub fn with_peer_book(mut self, book: Arc<PeerBook>) -> Self {
        self.pool.set_book(book.clone());
        self.book = Some(book);
        self
    }

    /// What peer exchange did so far.
    pub fn pex(&self) -> PexCounts {
        PexCounts {
            learned: self
                .book
                .as_ref()
                .map_or(0, |b| b.stats().learned_exchanged),
            bytes: self.pex_bytes.load(Ordering::Relaxed),
        }
    }

    /// Makes this a swarm member's fleet: ranges it keeps while pulling are announced through
    /// `publisher`, and units nobody holds are claimed before they are fetched upstream.
    pub fn with_publisher(mut self, publisher: super::swarm::Publisher) -> Self {
        self.publisher = Some(publisher);
        self
    }

    /// Claims belong to the swarm `group` (the repo), which fetches at most `max` ranges from
    /// upstream at once (0: no limit).
    pub fn with_claim_group(mut self, group: String, max: u32) -> Self {
        self.claim_group = Some((group, max));
        self
    }

    /// The announcer of a swarm member (none: the pull does not serve).
    pub fn publisher(&self) -> Option<&super::swarm::Publisher> {
        self.publisher.as_ref()
    }

    /// Asks the tracker for the lease on `unit` (see [`super::Claim`]), `what` for.
    pub async fn claim(&self, unit: &Unit, ttl_ms: u64, what: ClaimFor) -> super::Claim {
        let c = self.claim_call(unit, ttl_ms, what, false).await;
        if c == super::Claim::Granted {
            self.claims_granted.fetch_add(1, Ordering::Relaxed);
        }
        c
    }

    /// Renews a lease this pull holds (not counted again).
    pub async fn renew_claim(&self, unit: &Unit, ttl_ms: u64, what: ClaimFor) {
        self.claim_call(unit, ttl_ms, what, false).await;
    }

    /// Ends a lease this pull holds: it leaves the swarm's count of upstream fetches at once and
    /// lasts `ttl_ms` more, until the unit's announce is in.
    pub async fn finish_claim(&self, unit: &Unit, ttl_ms: u64, what: ClaimFor) {
        self.claim_call(unit, ttl_ms, what, true).await;
    }

    async fn claim_call(
        &self,
        unit: &Unit,
        ttl_ms: u64,
        what: ClaimFor,
        done: bool,
    ) -> super::Claim {
        let group = match what {
            ClaimFor::Fetch => self.claim_group().await,
            ClaimFor::Unpaced | ClaimFor::Repair => None,
        };
        self.lookups.claim(unit, ttl_ms, group, done).await
    }

    /// The tracker's chunk manifest of the file `xet_hash`, checked against that hash.
    pub async fn chunk_manifest(
        &self,
        xet_hash: &MerkleHash,
    ) -> Option<zest_tracker_api::ChunkManifest> {
        self.lookups.chunk_manifest(xet_hash).await
    }

    /// Publishes the chunk manifest of a file this pull verified.
    pub async fn publish_chunk_manifest(
        &self,
        xet_hash: &MerkleHash,
        m: &zest_tracker_api::ChunkManifest,
    ) {
        self.lookups.publish_chunk_manifest(xet_hash, m).await
    }

    /// The group claims go in: the swarm holds at most that many upstream-fetch leases at
    /// once, with or without an edge. Without one, the swarm paces itself (36 s instead of 53 s
    /// at 268 MB). With one, not pacing was 27% faster at 268 MB but cost the origin 1.65x a
    /// 2 GB model: the edge fetched every range at once over the narrow upstream link, each
    /// slower than the clients' time limit, so they dropped the edge and fetched upstream too.
    async fn claim_group(&self) -> Option<(&str, u32)> {
        self.claim_group
            .as_ref()
            .filter(|g| g.1 > 0)
            .map(|g| (g.0.as_str(), g.1))
    }

    /// Leases this pull was granted: other machines may be waiting for those ranges.
    pub fn claims_granted(&self) -> u64 {
        self.claims_granted.load(Ordering::Relaxed)
    }

    /// Whether the peer `id` may still be asked (not dropped or blamed by this pull).
    pub fn is_usable(&self, id: &str) -> bool {
        !self.scheduler().is_dropped(id)
    }

    fn scheduler(&self) -> MutexGuard<'_, Scheduler> {
        self.scheduler.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the tracker ever named peer `id` as a holder in this pull: it has delivered
    /// ranges it fetched (a claimer that never does is a staller).
    pub fn has_delivered(&self, id: &str) -> bool {
        self.delivered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    /// The local xorb store, if the pull has one.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// Upstream, unless the pull is fleet-only.
    pub fn upstream(&self) -> Option<&HubClient> {
        self.hub.as_ref()
    }

    /// Sources that sent bytes that failed verification, with why.
    pub fn bad_sources(&self) -> BTreeMap<String, String> {
        self.blame.snapshot()
    }

    /// Upstream races started because a fleet request was slow.
    pub fn hedges(&self) -> u64 {
        self.hedges.load(Ordering::Relaxed)
    }

    /// True once a tracker call failed: the rest of the pull does without it.
    pub fn tracker_down(&self) -> bool {
        self.lookups.is_down()
    }

    /// Bytes so far by where they came from.
    pub fn bytes(&self) -> BytesBySource {
        self.counters.snapshot()
    }

    /// Counts `n` bytes as coming from this machine (a resumed pull's bytes already on disk).
    pub fn count_local(&self, n: u64) {
        self.counters.add(&Source::Local, n);
    }

    /// Counts `n` bytes as coming from upstream (a plain file).
    pub fn count_upstream(&self, n: u64) {
        self.counters.add(&Source::Upstream, n);
    }

    /// Marks `source` as having sent bad bytes: it is not asked again.
    pub fn blame(&self, source: &Source, why: &str) {
        tracing::warn!(source = %source.label(), why, "source misbehaved; avoiding it");
        self.blame.add(source, why);
        self.scheduler().drop_source(source.key());
    }

    /// Asks the tracker who holds each unit, best first. When the tracker is down (or this
    /// lookup failed), a unit it named nobody for gets up to [`MAX_PEX_HOLDERS`] peers the
    /// book knows for its xorb instead (as client-role holders: a peer that does not hold the
    /// range answers NotFound and the next is asked). Empty per unit when neither knows one.
    ///
    /// While the tracker answers, its holders alone are returned: its answer is per range and
    /// current, the book's is per xorb and may be stale, and a swarm member treats any holder
    /// as a reason not to claim the unit's upstream fetch, so book entries there would undo the
    /// swarm's single flight (each member would ask peers that lack the range, then go upstream
    /// unclaimed).
    pub async fn lookup(&self, units: &[Unit]) -> Vec<Vec<Holder>> {
        let mut out = self.lookups.holders(units).await;
        {
            let mut d = self.delivered.lock().unwrap_or_else(|p| p.into_inner());
            for h in out.iter().flatten() {
                if d.len() < MAX_NAMES && !d.contains(&h.id) {
                    d.insert(h.id.clone());
                }
            }
        }
        let Some(book) = &self.book else { return out };
        for (unit, holders) in units.iter().zip(out.iter_mut()) {
            let peers = holders
                .iter()
                .filter(|h| h.role != wire::Role::Edge)
                .filter_map(|h| Some((h.addr.parse::<SocketAddr>().ok()?, h)));
            let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
            let mut learned = Vec::new();
            for (a, h) in peers {
                if names.len() < MAX_NAMES || names.contains_key(&a) {
                    names.insert(a, h.id.clone());
                }
                learned.push(a);
            }
            drop(names);
            book.learn_from_tracker(&unit.xorb, learned);
        }
        if !self.lookups.is_down() {
            return out;
        }
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        for (unit, holders) in units.iter().zip(out.iter_mut()) {
            if !holders.is_empty() {
                continue;
            }
            holders.extend(
                book.peers(&unit.xorb, MAX_PEX_HOLDERS, None)
                    .into_iter()
                    .map(|a| Holder {
                        id: names.get(&a).cloned().unwrap_or_else(|| format!("pex:{a}")),
                        addr: a.to_string(),
                        role: wire::Role::Client,
                        pex: true,
                        far: false,
                    }),
            );
        }
        out
    }

    /// Fetches one unit: the local store; then the holders the tracker named (`holders`, best
    /// first: the prior of the scheduler, which picks by measured throughput and load); then an
    /// edge handed the upstream URL; then upstream. Slow fleet requests are raced by upstream.
    /// `skip_fleet` goes straight upstream (refetch after a verification failure).
    pub async fn fetch_unit(
        &self,
        unit: &Unit,
        holders: &[Holder],
        skip_fleet: bool,
    ) -> Result<Fetched, FetchError> {
        if skip_fleet {
            return self.fetch_upstream(unit).await;
        }
        if let Some(f) = self.local(unit).await {
            return Ok(f);
        }
        let mut tried = HashSet::new();
        // An upstream race that already failed with the retry policy spent.
        let mut upstream_failed = None;
        if let Some(f) = self
            .try_holders(unit, holders, &mut tried, &mut upstream_failed)
            .await
        {
            return Ok(f);
        }
        if let Some(up) = &unit.upstream {
            let edges = self.lookups.edges().await;
            for _ in 0..MAX_EDGE_TRIES {
                let Some(i) = self.scheduler().pick(edges, &tried) else {
                    break;
                };
                tried.insert(edges[i].id.clone());
                if let Some(f) = self
                    .try_hedged(&edges[i], i, unit, Some(up), &mut upstream_failed)
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
        self.fetch_upstream(unit).await
    }

    /// Fetches one unit from the local store or the holders the tracker named, never upstream
    /// (a swarm member that would rather look for holders again): [`FetchError::NoSource`]
    /// when none of them gave it.
    pub async fn fetch_from_holders(
        &self,
        unit: &Unit,
        holders: &[Holder],
    ) -> Result<Fetched, FetchError> {
        if let Some(f) = self.local(unit).await {
            return Ok(f);
        }
        let mut upstream_failed = None;
        self.try_holders(unit, holders, &mut HashSet::new(), &mut upstream_failed)
            .await
            .ok_or(FetchError::NoSource {
                xorb: unit.xorb,
                chunks: unit.chunks.clone(),
            })
    }

    /// Asks up to [`MAX_HOLDER_TRIES`] of `holders` (not in `tried`), best first by the
    /// scheduler, for `unit`.
    async fn try_holders(
        &self,
        unit: &Unit,
        holders: &[Holder],
        tried: &mut HashSet<String>,
        upstream_failed: &mut Option<FetchError>,
    ) -> Option<Fetched> {
        for _ in 0..MAX_HOLDER_TRIES {
            let i = self.scheduler().pick(holders, tried)?;
            tried.insert(holders[i].id.clone());
            if let Some(f) = self
                .try_hedged(&holders[i], i, unit, None, upstream_failed)
                .await
            {
                return Some(f);
            }
        }
        None
    }

    /// `unit` from the local store, when it holds all of it and the bytes are well formed.
    async fn local(&self, unit: &Unit) -> Option<Fetched> {
        let store = self.store.as_ref()?;
        let mut views = store
            .get_cover_async(&unit.xorb, unit.chunks.clone())
            .await?;
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
                self.counters.add(&Source::Local, len);
                Some(f)
            }
            Err(e) => {
                tracing::warn!(error = %e, "local store range unreadable");
                None
            }
        }
    }

    /// Fetches `unit` from its signed upstream URL, once: HTTP failures are retried inside
    /// [`HubClient`] and nowhere else; bytes that do not decode come back as
    /// [`FetchError::MalformedUpstream`] for the caller to decide.
    async fn fetch_upstream(&self, unit: &Unit) -> Result<Fetched, FetchError> {
        let Some(UpstreamRange { url, start, end }) = &unit.upstream else {
            return Err(FetchError::NoSource {
                xorb: unit.xorb,
                chunks: unit.chunks.clone(),
            });
        };
        let hub = self.hub.as_ref().ok_or(FetchError::NoUpstream)?;
        let raw = hub
            .xorb_range(
                url,
                xet::cas::ByteRange::new(*start, *end),
                xorbstore::MAX_RANGE_BYTES as u64,
            )
            .await?;
        self.counters.add(&Source::Upstream, raw.len() as u64);
        check(unit.chunks.clone(), raw, Source::Upstream).map_err(|why| {
            FetchError::MalformedUpstream {
                xorb: unit.xorb,
                why,
            }
        })
    }

    /// Asks `holder` (at `rank` of its list) for `unit` (handing it `upstream` when it is an
    /// edge to fetch through), raced by upstream when it has not answered after the hedging
    /// delay (and a hedge slot is free). `None` when neither produced the unit; an upstream
    /// HTTP failure is kept in `upstream_failed` so the caller does not ask upstream again.
    async fn try_hedged(
        &self,
        holder: &Holder,
        rank: usize,
        unit: &Unit,
        upstream: Option<&UpstreamRange>,
        upstream_failed: &mut Option<FetchError>,
    ) -> Option<Fetched> {
        // An edge handed the upstream URL is itself fetching from upstream: racing it would
        // only make the origin send the range twice.
        // A swarm member does not race upstream: the range exists in the swarm, so an upstream
        // race is a second copy from the origin (measured: 1.65x the model with an edge and 8
        // machines). A stalled holder costs its request's time limit instead, then the unit is
        // looked up again.
        let hedgeable = unit.upstream.is_some()
            && self.hub.is_some()
            && upstream.is_none()
            && self.publisher.is_none();
        let request = self.scheduler().begin(
            &holder.id,
            rank,
            unit.expected_bytes(),
            hedgeable,
            Instant::now(),
        );
        let hedge_at = request.hedge_at();
        let started = request.started();
        let inflight = Inflight {
            fleet: self,
            request,
        };
        let peer = self.try_peer(holder, unit, upstream, inflight);
        tokio::pin!(peer);
        let Some(hedge_at) = hedge_at else {
            return peer.await;
        };
        tokio::select! {
            r = &mut peer => return r,
            _ = tokio::time::sleep_until(hedge_at.into()) => {}
        }
        let Ok(_slot) = self.hedge_slots.clone().try_acquire_owned() else {
            return peer.await;
        };
        self.hedges.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            source = %holder.id, xorb = %unit.xorb,
            after_ms = hedge_at.saturating_duration_since(started).as_millis() as u64,
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
                    self.scheduler()
                        .record(&holder.id, unit.expected_bytes(), started, Instant::now());
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

    /// Carries out the scheduler's verdict on `holder` after `outcome` (`what` and `why` say
    /// what happened, for the log or the blame list).
    fn judge(&self, holder: &Holder, outcome: Outcome, what: &str, why: &str) {
        let verdict = self.scheduler().outcome(&holder.id, outcome);
        match verdict {
            Verdict::Keep => {}
            Verdict::Drop => tracing::warn!(peer = %holder.id, error = %why, "{what}; dropping it"),
            Verdict::Blame => self.blame(&holder.source(), why),
        }
    }

    /// One request to `holder` for `unit`, as scheduled in `inflight` (in flight until it
    /// ends or is dropped).
    async fn try_peer(
        &self,
        holder: &Holder,
        unit: &Unit,
        upstream: Option<&UpstreamRange>,
        inflight: Inflight<'_>,
    ) -> Option<Fetched> {
        let source = holder.source();
        let client = match self.pool.client(holder).await {
            Ok(c) => c,
            Err(e) => {
                let why = e.to_string();
                self.judge(holder, Outcome::Unreachable, "cannot reach peer", &why);
                return None;
            }
        };
        // A holder that misses a deadline is dropped like one that misses the whole limit.
        let timeout = inflight.request.timeout();
        let opts = FetchOptions {
            upstream: upstream.map(UpstreamRange::to_wire),
            timeout: Some(timeout),
            first_frame_timeout: Some(Scheduler::first_frame_timeout(timeout, upstream.is_some())),
            stall_timeout: Some(STALL_TIMEOUT),
            ..FetchOptions::default()
        };
        match client
            .fetch_with(&unit.xorb, unit.chunks.clone(), opts)
            .await
        {
            Ok(raw) => {
                let len = raw.len() as u64;
                self.scheduler().record(
                    &holder.id,
                    len,
                    inflight.request.started(),
                    Instant::now(),
                );
                // A header walk only (cheap): no blocking task needed.
                match check(unit.chunks.clone(), raw, source.clone()) {
                    Ok(f) => {
                        self.counters.add(&source, len);
                        if holder.pex {
                            self.pex_bytes.fetch_add(len, Ordering::Relaxed);
                        }
                        Some(f)
                    }
                    Err(e) => {
                        let why = format!("malformed chunk records: {}", chain(&e));
                        self.judge(holder, Outcome::BadBytes, "bad bytes", &why);
                        None
                    }
                }
            }
            Err(PeerError::NotFound) => {
                self.judge(holder, Outcome::NotFound, "not found", "");
                None
            }
            Err(e) => {
                self.judge(holder, Outcome::Failed, "peer fetch failed", &e.to_string());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xorbstore::{Expectation, StoreConfig};

    fn xorb(n: u8) -> MerkleHash {
        MerkleHash::from_hex(&format!("{n:02x}").repeat(32)).expect("hex")
    }

    #[tokio::test]
    async fn the_local_store_comes_first_and_a_dead_peer_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreConfig::new(1 << 30)).expect("store");
        let mut raw = Vec::new();
        for i in 0..2u8 {
            xet::chunk::encode_chunk(&[i; 1000], xet::chunk::CompressionScheme::None, &mut raw);
        }
        store
            .insert(&xorb(1), 0..2, &raw, &Expectation::structural())
            .expect("insert");
        let fleet = Fleet::new(Some(store), None, None, "me".into());
        let unit = Unit {
            xorb: xorb(1),
            chunks: 0..2,
            upstream: None,
        };
        let f = fleet.fetch_unit(&unit, &[], false).await.expect("local");
        assert_eq!((f.source, f.lens), (Source::Local, vec![1000, 1000]));
        assert_eq!(fleet.bytes().local, raw.len() as u64);

        // Not stored, no upstream: the holder is asked (and dropped: nothing listens there),
        // then there is nowhere left to ask.
        let dead = Holder {
            id: "dead".into(),
            addr: "127.0.0.1:1".into(),
            role: wire::Role::Seed,
            pex: false,
            far: false,
        };
        let other = Unit {
            xorb: xorb(2),
            ..unit.clone()
        };
        let e = fleet
            .fetch_unit(&other, std::slice::from_ref(&dead), false)
            .await
            .expect_err("no source");
        assert!(matches!(e, FetchError::NoSource { .. }), "{e}");
        assert!(e.to_string().contains("upstream is not available"), "{e}");
        assert!(fleet.scheduler().is_dropped("dead"));
        assert!(
            fleet.bad_sources().is_empty(),
            "unreachable is not bad bytes"
        );

        // A known upstream location but no Hub client (a fleet-only pull): said so.
        let with_url = Unit {
            upstream: Some(UpstreamRange {
                url: "http://127.0.0.1:1/x".into(),
                start: 0,
                end: 9,
            }),
            ..other
        };
        let e = fleet
            .fetch_unit(&with_url, &[], true)
            .await
            .expect_err("no upstream");
        assert!(matches!(e, FetchError::NoUpstream), "{e}");
        assert_eq!(fleet.bytes().upstream, 0);
    }
}
