//! The edge's shared state and its fetch paths: a xorb range from a peer (found through the
//! tracker) or from the signed upstream URL, coalesced by the store's [`SingleFlight`]; and
//! file verification: before the edge hands out a reconstruction it fetches the file's ranges,
//! recomputes the Xet file hash from their chunks and stores them as `FileVerified` only when it
//! matches, so bytes that fail are never stored or served. The edge's own upstream requests
//! (xorb ranges, reconstructions, warm's API calls) go through [`hub::HubClient`] and its retry
//! policy; the raw clients here only forward client requests verbatim (the cache-proxy).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use hub::{HubClient, HubError, RetryPolicy};
use tokio::sync::OnceCell;
use wire::{Role, Upstream};
use xet::cas::{file_leaves, ByteRange, CasJwtInfo, ChunkRange, FetchedRange, ReconstructionV2};
use xet::MerkleHash;
use xorbstore::peer::UpstreamFetcher;
use xorbstore::peer::{FetchError, FetchOptions, PeerClient, PeerClientConfig, SingleFlight};
use xorbstore::{verify_range, Expectation, RangeView, Store, VerificationLevel, MAX_RANGE_BYTES};

use crate::allow::UpstreamAllow;
use crate::metrics::Metrics;
use crate::tracker::Tracker;
use crate::urls::UrlSigner;

/// Longest fetch on a peer's behalf (the requester's own request timeout is 60 s).
const PEER_FETCH_TIMEOUT: Duration = Duration::from_secs(55);

/// Most bytes of a reconstruction JSON read from upstream.
pub const MAX_JSON_BYTES: usize = 64 << 20;

/// One chunk range of a xorb as a reconstruction lists it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    pub xorb: MerkleHash,
    pub chunks: ChunkRange,
    pub bytes: ByteRange,
    pub url: String,
}

/// Why a file could not be made available.
#[derive(Clone, Debug, thiserror::Error)]
pub enum FileError {
    #[error("upstream: {0}")]
    Upstream(String),
    #[error("verification failed: {0}")]
    Verification(String),
}

type FileCell = Arc<OnceCell<Result<Vec<Entry>, FileError>>>;

/// Shared state of one edge.
#[derive(Debug)]
pub struct Edge {
    pub store: Store,
    pub flights: SingleFlight,
    /// Forwarded Hub and CAS calls (no redirects followed, so they reach the client).
    pub hub: reqwest::Client,
    /// Forwarded full-file GETs (redirects followed).
    pub fetch: reqwest::Client,
    /// The edge's own requests to upstream (xorb ranges, reconstructions, warm), retried by
    /// its policy.
    pub upstream_client: HubClient,
    pub metrics: Metrics,
    pub signer: UrlSigner,
    /// Base URL clients reach us at, no trailing slash.
    pub public_url: String,
    /// Base URL of the data port (xorb URLs), no trailing slash.
    pub public_data_url: String,
    /// Upstream hub base, no trailing slash.
    pub upstream: String,
    pub tracker: Option<Tracker>,
    pub peer_id: String,
    pub verify_max_file_bytes: u64,
    /// The origins fetched from on a peer's behalf.
    pub allow: Arc<UpstreamAllow>,
    /// Fetches on a peer's behalf: redirects only to trusted origins, no retries.
    peer_fetch: reqwest::Client,
    files_inflight: Mutex<HashMap<MerkleHash, FileCell>>,
    /// Files verified, with their entries (checked against the store before reuse).
    verified: Mutex<HashMap<MerkleHash, Vec<Entry>>>,
}

impl Edge {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        metrics: Metrics,
        signer: UrlSigner,
        public_url: String,
        public_data_url: String,
        upstream: String,
        tracker: Option<Tracker>,
        peer_id: String,
        verify_max_file_bytes: u64,
        retry: RetryPolicy,
        allow: Arc<UpstreamAllow>,
    ) -> Result<Self, HubError> {
        let hub = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        let fetch = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::limited(5))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        let peer_fetch = reqwest::Client::builder()
            .redirect(allow.redirect_policy())
            .connect_timeout(Duration::from_secs(10))
            .timeout(PEER_FETCH_TIMEOUT)
            .build()
            .unwrap_or_default();
        let upstream_client = HubClient::new(&upstream, None, retry)?;
        Ok(Self {
            flights: SingleFlight::new(store.clone()),
            store,
            hub,
            fetch,
            upstream_client,
            metrics,
            signer,
            public_url: public_url.trim_end_matches('/').to_string(),
            public_data_url: public_data_url.trim_end_matches('/').to_string(),
            upstream: upstream.trim_end_matches('/').to_string(),
            tracker,
            peer_id,
            verify_max_file_bytes,
            allow,
            peer_fetch,
            files_inflight: Mutex::default(),
            verified: Mutex::default(),
        })
    }

    /// GETs `url` with `Range: bytes`, no credentials, exactly the range's length.
    pub async fn fetch_upstream(&self, url: &str, bytes: ByteRange) -> Result<Bytes, HubError> {
        let started = Instant::now();
        let body = self
            .upstream_client
            .xorb_range(url, bytes, MAX_RANGE_BYTES as u64)
            .await?;
        self.count_upstream_fetch(started, body.len());
        Ok(body)
    }

    /// Counts one upstream fetch of `len` bytes begun at `started`.
    fn count_upstream_fetch(&self, started: Instant, len: usize) {
        self.metrics
            .upstream_fetch_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .bytes_fetched
            .with_label_values(&["upstream"])
            .inc_by(len as u64);
    }

    /// Tries the peers the tracker names for the range (verified structurally, and against
    /// `hashes` when given).
    async fn fetch_from_peers(
        &self,
        xorb: &MerkleHash,
        chunks: Range<u32>,
        hashes: Option<Vec<MerkleHash>>,
    ) -> Option<Bytes> {
        let tracker = self.tracker.as_ref()?;
        for addr in tracker.lookup(xorb, chunks.clone(), 3).await {
            let config = PeerClientConfig::new(self.peer_id.clone(), Role::Edge);
            let client = match tokio::time::timeout(
                Duration::from_secs(5),
                PeerClient::connect(addr, config),
            )
            .await
            {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    tracing::info!(%addr, error = %e, "peer connect failed");
                    continue;
                }
                Err(_) => continue,
            };
            let expected = match &hashes {
                Some(h) => Expectation::with_chunk_hashes(h.clone()),
                None => Expectation::structural(),
            };
            match client
                .fetch_verified(xorb, chunks.clone(), expected, FetchOptions::default())
                .await
            {
                Ok((b, _)) => {
                    self.metrics
                        .bytes_fetched
                        .with_label_values(&["peer"])
                        .inc_by(b.len() as u64);
                    return Some(b);
                }
                Err(e) => tracing::info!(%addr, error = %e, "peer fetch failed"),
            }
        }
        None
    }

    /// The bytes of `e`: from a peer when the tracker knows one, else from upstream.
    pub async fn fetch_entry(&self, e: &Entry) -> Result<Bytes, String> {
        self.fetch_entry_from(e).await.map(|(b, _)| b)
    }

    /// [`Edge::fetch_entry`], saying whether the bytes came from a peer.
    async fn fetch_entry_from(&self, e: &Entry) -> Result<(Bytes, bool), String> {
        if let Some(b) = self
            .fetch_from_peers(&e.xorb, e.chunks.start..e.chunks.end, None)
            .await
        {
            if b.len() as u64 == e.bytes.len() {
                return Ok((b, true));
            }
        }
        self.fetch_upstream(&e.url, e.bytes)
            .await
            .map(|b| (b, false))
            .map_err(|e| e.to_string())
    }

    /// Chunks of `e` from the store, or fetched once (structural checks) and stored.
    pub async fn get_entry(&self, e: &Entry) -> Result<RangeView, FetchError> {
        let range = e.chunks.start..e.chunks.end;
        if let Some(v) = self.store.get_async(&e.xorb, range.clone()).await {
            self.metrics.hits.inc();
            return Ok(v);
        }
        self.metrics.misses.inc();
        let r = self
            .flights
            .get_or_fetch(e.xorb, range, Expectation::structural(), || {
                self.fetch_entry(e)
            })
            .await;
        match &r {
            Ok(_) => {
                if let Some(t) = &self.tracker {
                    t.mark_dirty();
                }
            }
            Err(FetchError::Verification(_)) => self.metrics.verification_failures.inc(),
            Err(_) => {}
        }
        r.map(|(v, _)| v)
    }

    /// GETs a reconstruction (v2, falling back to v1) of `file` from the CAS at `cas`.
    pub async fn reconstruction(
        &self,
        cas: &str,
        token: &str,
        file: &MerkleHash,
    ) -> Result<ReconstructionV2, HubError> {
        let jwt = CasJwtInfo {
            cas_url: cas.to_string(),
            exp: 0,
            access_token: token.to_string(),
        };
        let rec = self
            .upstream_client
            .reconstruction(&jwt, file, None)
            .await?;
        self.learn_hosts(&rec);
        Ok(rec)
    }

    /// Trusts, for fetches on a peer's behalf, the hosts an upstream reconstruction answer
    /// names for xorb data.
    pub fn learn_hosts(&self, rec: &ReconstructionV2) {
        for f in rec.xorbs.values().flatten() {
            self.allow.learn(&f.url);
        }
    }

    /// GETs `url` on a peer's behalf: only from a trusted origin (redirects too), exactly the
    /// byte range, at most [`MAX_RANGE_BYTES`]; no retries (the requester has its own
    /// fallbacks).
    pub async fn fetch_for_peer(&self, url: &str, bytes: ByteRange) -> Result<Bytes, String> {
        self.allow.check(url).map_err(|e| {
            self.metrics.peer_fetch_refused.inc();
            tracing::info!(error = %e, "refusing a peer's upstream URL");
            e.to_string()
        })?;
        let want = bytes.len();
        if want == 0 || want > MAX_RANGE_BYTES as u64 {
            return Err(format!("byte range of {want} bytes"));
        }
        let started = Instant::now();
        let resp = self
            .peer_fetch
            .get(url)
            .header(reqwest::header::RANGE, bytes.header_value())
            .send()
            .await
            .map_err(|e| format!("upstream: {e}"))?;
        let status = resp.status();
        if status != reqwest::StatusCode::PARTIAL_CONTENT
            && !(status == reqwest::StatusCode::OK && bytes.start == 0)
        {
            return Err(format!("upstream answered {status}"));
        }
        let max = usize::try_from(want).map_err(|_| "byte range too long".to_string())?;
        let body = read_bounded(resp, max).await?;
        self.count_upstream_fetch(started, body.len());
        Ok(body)
    }

    /// Makes every range of `file` available in the store, verified by the file hash when the
    /// file's bytes to fetch are at most `verify_max_file_bytes` (else structurally). Returns
    /// the file's entries. Concurrent calls for one file share the work.
    pub async fn ensure_file(
        &self,
        cas: &str,
        token: &str,
        file: &MerkleHash,
    ) -> Result<Vec<Entry>, FileError> {
        if let Some(entries) = self.already_verified(file) {
            return Ok(entries);
        }
        let cell: FileCell = {
            let mut m = self
                .files_inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            m.entry(*file).or_default().clone()
        };
        let res = cell
            .get_or_init(|| async {
                let r = self.verify_file(cas, token, file).await;
                let outcome = match &r {
                    Ok(_) => "ok",
                    Err(FileError::Verification(_)) => "mismatch",
                    Err(FileError::Upstream(_)) => "error",
                };
                self.metrics
                    .file_verifications
                    .with_label_values(&[outcome])
                    .inc();
                r
            })
            .await
            .clone();
        {
            let mut m = self
                .files_inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if m.get(file).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                m.remove(file);
            }
        }
        res
    }

    /// The entries of a file verified before, when every one is still held proven (by the
    /// xorb hash or a file hash): a range held only at a lower level (or not at all) means the
    /// file is verified again.
    fn already_verified(&self, file: &MerkleHash) -> Option<Vec<Entry>> {
        let m = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        let entries = m.get(file)?;
        entries
            .iter()
            .all(|e| self.is_proven(e))
            .then(|| entries.clone())
    }

    /// True when the store holds `e`'s chunks proven by a hash that did not come from whoever
    /// sent them (the xorb hash or a file hash).
    fn is_proven(&self, e: &Entry) -> bool {
        self.store
            .covering_level(&e.xorb, e.chunks.start..e.chunks.end)
            .is_some_and(|l| l >= VerificationLevel::XorbVerified)
    }

    /// Verifies `file` by its hash. A first attempt trusts what the store holds at any level
    /// and asks peers first; when the hash does not match and the attempt used bytes nobody
    /// proved (unproven stored ranges, a peer's answer), a second attempt takes only proven
    /// stored ranges and fetches the rest from upstream, so unproven bytes can only cost a
    /// refetch, never a file that cannot be verified.
    async fn verify_file(
        &self,
        cas: &str,
        token: &str,
        file: &MerkleHash,
    ) -> Result<Vec<Entry>, FileError> {
        let rec = self
            .reconstruction(cas, token, file)
            .await
            .map_err(|e| FileError::Upstream(e.to_string()))?;
        match self.verify_with(&rec, file, false).await {
            Err((FileError::Verification(why), true)) => {
                tracing::warn!(%file, %why, "file hash mismatch with unproven bytes; verifying again from upstream");
                self.verify_with(&rec, file, true).await.map_err(|(e, _)| e)
            }
            r => r.map_err(|(e, _)| e),
        }
    }

    /// One verification attempt of `file` over `rec` (see [`Edge::verify_file`]); `strict`
    /// takes only proven stored ranges and upstream's bytes. The error says whether unproven
    /// bytes were used.
    async fn verify_with(
        &self,
        rec: &ReconstructionV2,
        file: &MerkleHash,
        strict: bool,
    ) -> Result<Vec<Entry>, (FileError, bool)> {
        let mut unproven = false;
        let r = self.verify_inner(rec, file, strict, &mut unproven).await;
        r.map_err(|e| (e, unproven))
    }

    async fn verify_inner(
        &self,
        rec: &ReconstructionV2,
        file: &MerkleHash,
        strict: bool,
        unproven: &mut bool,
    ) -> Result<Vec<Entry>, FileError> {
        let usable = |e: &Entry| {
            if strict {
                self.is_proven(e)
            } else {
                self.store.contains(&e.xorb, e.chunks.start..e.chunks.end)
            }
        };
        let entries = entries_of(rec);
        let missing: Vec<&Entry> = entries.iter().filter(|e| !usable(e)).collect();
        let to_fetch: u64 = missing.iter().map(|e| e.bytes.len()).sum();
        if to_fetch > self.verify_max_file_bytes {
            // Too big to hold while verifying: structural checks per range.
            tracing::info!(%file, to_fetch, "file too big to verify by hash; structural checks only");
            for e in &entries {
                self.get_entry(e)
                    .await
                    .map_err(|e| FileError::Upstream(e.to_string()))?;
            }
            return Ok(entries);
        }
        // Chunk hashes and lengths per entry: from the store, or from fetched bytes.
        let mut known: HashMap<(MerkleHash, ChunkRange), (Vec<MerkleHash>, Vec<u32>)> =
            HashMap::new();
        let mut fetched: Vec<(Entry, Bytes, Vec<MerkleHash>)> = Vec::new();
        let mut stored_views: Vec<RangeView> = Vec::new();
        for e in entries.iter().filter(|e| usable(e)) {
            if let Some(v) = self
                .store
                .get_async(&e.xorb, e.chunks.start..e.chunks.end)
                .await
            {
                *unproven |= v.level() < VerificationLevel::XorbVerified;
                known.insert(
                    (e.xorb, e.chunks),
                    (v.chunk_hashes().to_vec(), v.uncompressed_lens()),
                );
                stored_views.push(v);
            }
        }
        let jobs = missing
            .iter()
            .filter(|e| !known.contains_key(&(e.xorb, e.chunks)))
            .map(|e| async move {
                let (b, from_peer) = if strict {
                    let b = self.fetch_upstream(&e.url, e.bytes).await;
                    (b.map_err(|e| FileError::Upstream(e.to_string()))?, false)
                } else {
                    self.fetch_entry_from(e)
                        .await
                        .map_err(FileError::Upstream)?
                };
                let (x, r, bb) = (e.xorb, e.chunks.start..e.chunks.end, b.clone());
                let meta = tokio::task::spawn_blocking(move || {
                    verify_range(&x, r, &bb, &Expectation::structural())
                })
                .await
                .map_err(|e| FileError::Upstream(format!("verify task: {e}")))?
                .map_err(|err| {
                    self.metrics.verification_failures.inc();
                    FileError::Verification(format!("xorb {}: {err}", e.xorb))
                })?;
                let lens = meta
                    .raw_ends
                    .iter()
                    .scan(0u32, |prev, &end| {
                        let l = end - *prev;
                        *prev = end;
                        Some(l)
                    })
                    .collect::<Vec<u32>>();
                Ok::<_, FileError>(((*e).clone(), b, meta.chunk_hashes, lens, from_peer))
            });
        let results: Vec<_> = futures::stream::iter(jobs)
            .buffer_unordered(4)
            .collect()
            .await;
        for r in results {
            let (e, b, hashes, lens, from_peer) = r?;
            *unproven |= from_peer;
            known.insert((e.xorb, e.chunks), (hashes.clone(), lens));
            fetched.push((e, b, hashes));
        }
        // Recompute the file hash over the terms.
        let ranges: Vec<FetchedRange<'_>> = known
            .iter()
            .map(|((xorb, chunks), (hashes, lens))| FetchedRange {
                xorb: *xorb,
                chunks: *chunks,
                hashes,
                lens,
            })
            .collect();
        let chunks =
            file_leaves(&rec.terms, &ranges).map_err(|e| FileError::Verification(e.to_string()))?;
        let got = xet::hash::file_hash(&chunks);
        if got != *file {
            self.metrics.verification_failures.inc();
            return Err(FileError::Verification(format!(
                "file hash {got} does not match {file}"
            )));
        }
        // Proven: store what was fetched (displacing unproven ranges that disagree) and raise
        // what was held.
        for (e, b, hashes) in fetched {
            let expected = Expectation::with_chunk_hashes(hashes).file_verified();
            self.store
                .insert_async(e.xorb, e.chunks.start..e.chunks.end, b, expected)
                .await
                .map_err(|err| FileError::Upstream(err.to_string()))?;
        }
        // Level upgrades rewrite and fsync range files: off the async worker threads.
        let upgrades: Vec<RangeView> = stored_views
            .into_iter()
            .filter(|v| v.level() < VerificationLevel::FileVerified)
            .collect();
        if !upgrades.is_empty() {
            let store = self.store.clone();
            let _ = tokio::task::spawn_blocking(move || {
                for v in upgrades {
                    let _ = store.upgrade_level(
                        &v.xorb(),
                        v.range(),
                        v.chunk_hashes(),
                        VerificationLevel::FileVerified,
                    );
                }
            })
            .await;
        }
        if let Some(t) = &self.tracker {
            t.mark_dirty();
        }
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(*file, entries.clone());
        Ok(entries)
    }
}

/// Every (xorb, chunk range, byte range, url) of a reconstruction, without repeats.
pub fn entries_of(rec: &ReconstructionV2) -> Vec<Entry> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut xorbs: Vec<_> = rec.xorbs.iter().collect();
    xorbs.sort_by_key(|(h, _)| **h);
    for (x, fetches) in xorbs {
        for f in fetches {
            for r in &f.ranges {
                if seen.insert((*x, r.chunks)) {
                    out.push(Entry {
                        xorb: *x,
                        chunks: r.chunks,
                        bytes: r.bytes,
                        url: f.url.clone(),
                    });
                }
            }
        }
    }
    out
}

/// Reads a response body, refusing more than `max` bytes.
pub async fn read_bounded(resp: reqwest::Response, max: usize) -> Result<Bytes, String> {
    if resp.content_length().is_some_and(|l| l > max as u64) {
        return Err(format!("body over {max} bytes"));
    }
    let mut buf = BytesMut::new();
    let mut stream = resp.bytes_stream();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| format!("reading body: {e}"))?;
        if buf.len() + piece.len() > max {
            return Err(format!("body over {max} bytes"));
        }
        buf.extend_from_slice(&piece);
    }
    Ok(buf.freeze())
}

/// The peer server's [`UpstreamFetcher`]: [`Edge::fetch_for_peer`], a bounded GET from a
/// trusted origin only.
#[derive(Debug)]
pub struct EdgeFetcher(pub Arc<Edge>);

impl UpstreamFetcher for EdgeFetcher {
    fn fetch<'a>(
        &'a self,
        _xorb: &'a MerkleHash,
        _chunks: Range<u32>,
        upstream: &'a Upstream,
    ) -> Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send + 'a>> {
        Box::pin(async move {
            if upstream.byte_end < upstream.byte_start {
                return Err("reversed byte range".into());
            }
            self.0
                .fetch_for_peer(
                    &upstream.url,
                    ByteRange::new(upstream.byte_start, upstream.byte_end),
                )
                .await
        })
    }
}
