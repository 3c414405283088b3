//! A small async client of the tracker API: announce, lookup, peers, stats, manifests and
//! reports. Every call has a time limit (a tracker that is down only sends the caller upstream,
//! it never stalls it) and reads at most [`MAX_ANSWER_BYTES`] of an answer, whatever the
//! tracker sends. It retries nothing on one tracker (callers decide whether a failed call
//! matters), but given several tracker URLs (`http://a:7070,http://b:7070`) it fails over: a
//! call goes to the tracker that answered last and moves on to the next when that one cannot be
//! reached or answers 5xx.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use xet::MerkleHash;

use crate::{
    AnnounceRequest, AnnounceResponse, ChunkManifest, ClaimRequest, ClaimResponse, LookupRequest,
    LookupResponse, Manifest, PeerListEntry, PeersResponse, ReportRequest, StatsResponse,
};

/// Largest answer body read (a lookup of [`crate::MAX_LOOKUP_ITEMS`] items with 8 peers each
/// is a few MiB; manifests of large repos are the biggest).
pub const MAX_ANSWER_BYTES: usize = 64 << 20;

/// Time limits of one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP (and TLS) connect.
    pub connect: Duration,
    /// A whole call, answer body included.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(10),
        }
    }
}

/// Why a tracker call failed. `call` names the endpoint (`"lookup"`, `"announce"`, ...).
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error("tracker {call}: {source}")]
    Transport {
        call: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("tracker {call}: HTTP {status}")]
    Status {
        call: &'static str,
        status: reqwest::StatusCode,
    },
    #[error("tracker {call}: answer larger than {limit} bytes")]
    TooLarge { call: &'static str, limit: usize },
    #[error("tracker {call}: bad JSON: {source}")]
    Json {
        call: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("tracker {call}: {detail}")]
    Invalid { call: &'static str, detail: String },
}

impl TrackerError {
    /// The HTTP status the tracker answered with, if it answered.
    pub fn status(&self) -> Option<reqwest::StatusCode> {
        match self {
            TrackerError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The tracker at `base` (`http://host:port`), or the first of several replicas that answers
/// (`http://a:7070,http://b:7070`), with an optional bearer token for writes. Clones share the
/// connection pool and the choice of replica.
#[derive(Debug, Clone)]
pub struct TrackerClient {
    http: reqwest::Client,
    bases: Arc<[String]>,
    /// Index in `bases` of the replica that answered last: the next call starts there.
    current: Arc<AtomicUsize>,
    token: Option<String>,
}

impl TrackerClient {
    /// A client with the default [`Timeouts`].
    pub fn new(base: &str, token: Option<String>) -> Result<Self, TrackerError> {
        Self::with_timeouts(base, token, Timeouts::default())
    }

    /// `base` is one URL or several separated by commas; each must be `http://` or `https://`.
    pub fn with_timeouts(
        base: &str,
        token: Option<String>,
        timeouts: Timeouts,
    ) -> Result<Self, TrackerError> {
        let bases = parse_bases(base)?;
        let http = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .build()
            .map_err(|source| TrackerError::Transport {
                call: "client setup",
                source,
            })?;
        Ok(TrackerClient {
            http,
            bases: bases.into(),
            current: Arc::new(AtomicUsize::new(0)),
            token,
        })
    }

    /// The base URL of the replica the next call goes to first, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.bases[self.current.load(Ordering::Relaxed) % self.bases.len()]
    }

    /// Every replica's base URL, in the order given.
    pub fn bases(&self) -> &[String] {
        &self.bases
    }

    /// One call, failing over through the replicas from the one that answered last. A replica
    /// is passed over when it cannot be connected to or answers 5xx (the request was not
    /// applied), and, for `idempotent` calls only, when the call timed out or broke midway (it
    /// may have been applied: a report must not be counted twice). The last replica's answer
    /// or error is the call's.
    async fn send(
        &self,
        call: &'static str,
        method: reqwest::Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        idempotent: bool,
    ) -> Result<reqwest::Response, TrackerError> {
        let n = self.bases.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut i = 0;
        loop {
            let k = (start + i) % n;
            let mut rb = self
                .http
                .request(method.clone(), format!("{}{path}", self.bases[k]));
            if let Some(t) = &self.token {
                rb = rb.bearer_auth(t);
            }
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let last = i + 1 == n;
            match rb.send().await {
                Ok(resp) if !last && resp.status().is_server_error() => {}
                Ok(resp) => {
                    self.current.store(k, Ordering::Relaxed);
                    return Ok(resp);
                }
                Err(source) if !last && (idempotent || source.is_connect()) => {}
                Err(source) => return Err(TrackerError::Transport { call, source }),
            }
            i += 1;
        }
    }

    /// Reads a success answer's JSON, at most [`MAX_ANSWER_BYTES`] of it.
    async fn json<T: DeserializeOwned>(
        call: &'static str,
        mut resp: reqwest::Response,
    ) -> Result<T, TrackerError> {
        check_status(call, &resp)?;
        let limit = MAX_ANSWER_BYTES;
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(TrackerError::TooLarge { call, limit });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|source| TrackerError::Transport { call, source })?
        {
            if body.len() + chunk.len() > limit {
                return Err(TrackerError::TooLarge { call, limit });
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|source| TrackerError::Json { call, source })
    }

    /// `POST /v1/announce`.
    pub async fn announce(&self, req: &AnnounceRequest) -> Result<AnnounceResponse, TrackerError> {
        let call = "announce";
        let resp = self
            .send(call, reqwest::Method::POST, "/v1/announce", Some(req), true)
            .await?;
        Self::json(call, resp).await
    }

    /// `POST /v1/lookup`: who holds each item, `results[i]` answering `items[i]`.
    pub async fn lookup(&self, req: &LookupRequest) -> Result<LookupResponse, TrackerError> {
        let call = "lookup";
        let resp = self
            .send(call, reqwest::Method::POST, "/v1/lookup", Some(req), true)
            .await?;
        let r: LookupResponse = Self::json(call, resp).await?;
        if r.results.len() != req.items.len() {
            return Err(TrackerError::Invalid {
                call,
                detail: format!("{} results for {} items", r.results.len(), req.items.len()),
            });
        }
        Ok(r)
    }

    /// `POST /v1/claims`: a lease per item on fetching it from upstream, `results[i]`
    /// answering `items[i]`. Idempotent: claiming again what one holds is granted.
    pub async fn claim(&self, req: &ClaimRequest) -> Result<ClaimResponse, TrackerError> {
        let call = "claim";
        let resp = self
            .send(call, reqwest::Method::POST, "/v1/claims", Some(req), true)
            .await?;
        let r: ClaimResponse = Self::json(call, resp).await?;
        if r.results.len() != req.items.len() {
            return Err(TrackerError::Invalid {
                call,
                detail: format!("{} results for {} items", r.results.len(), req.items.len()),
            });
        }
        Ok(r)
    }

    /// `GET /v1/peers`: the live peers.
    pub async fn peers(&self) -> Result<Vec<PeerListEntry>, TrackerError> {
        let call = "peers";
        let resp = self
            .send(call, reqwest::Method::GET, "/v1/peers", None::<&()>, true)
            .await?;
        Ok(Self::json::<PeersResponse>(call, resp).await?.peers)
    }

    /// `GET /v1/stats`.
    pub async fn stats(&self) -> Result<StatsResponse, TrackerError> {
        let call = "stats";
        let resp = self
            .send(call, reqwest::Method::GET, "/v1/stats", None::<&()>, true)
            .await?;
        Self::json(call, resp).await
    }

    /// `GET /v1/manifests/{repo}/{revision}`; `None` when the tracker has none (404).
    pub async fn get_manifest(
        &self,
        repo: &str,
        revision: &str,
    ) -> Result<Option<Manifest>, TrackerError> {
        self.get_optional("manifest", &format!("/v1/manifests/{repo}/{revision}"))
            .await
    }

    /// A GET whose 404 means "none".
    async fn get_optional<T: DeserializeOwned>(
        &self,
        call: &'static str,
        path: &str,
    ) -> Result<Option<T>, TrackerError> {
        let resp = self
            .send(call, reqwest::Method::GET, path, None::<&()>, true)
            .await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(Self::json(call, resp).await?))
    }

    /// `PUT /v1/manifests/{repo}/{revision}`.
    pub async fn put_manifest(
        &self,
        repo: &str,
        revision: &str,
        manifest: &Manifest,
    ) -> Result<(), TrackerError> {
        let call = "manifest PUT";
        let path = format!("/v1/manifests/{repo}/{revision}");
        let resp = self
            .send(call, reqwest::Method::PUT, &path, Some(manifest), true)
            .await?;
        check_status(call, &resp)
    }

    /// `GET /v1/chunks/{xet_hash}`: the file's chunk manifest, if a machine published one. Not
    /// checked here: the caller compares [`ChunkManifest::file_hash`] with the hash it trusts.
    pub async fn get_chunks(
        &self,
        xet_hash: &MerkleHash,
    ) -> Result<Option<ChunkManifest>, TrackerError> {
        self.get_optional("chunk manifest", &format!("/v1/chunks/{xet_hash}"))
            .await
    }

    /// `PUT /v1/chunks/{xet_hash}`.
    pub async fn put_chunks(
        &self,
        xet_hash: &MerkleHash,
        manifest: &ChunkManifest,
    ) -> Result<(), TrackerError> {
        let call = "chunk manifest PUT";
        let path = format!("/v1/chunks/{xet_hash}");
        let resp = self
            .send(call, reqwest::Method::PUT, &path, Some(manifest), true)
            .await?;
        check_status(call, &resp)
    }

    /// `DELETE /v1/peers/{id}`: takes a peer and its holdings out of the tracker (an edge
    /// shutting down). A peer the tracker does not know is not an error.
    pub async fn deregister(&self, peer_id: &str) -> Result<(), TrackerError> {
        let call = "deregister";
        // A valid id needs no escaping in a path.
        if !crate::is_valid_peer_id(peer_id) {
            return Err(TrackerError::Invalid {
                call,
                detail: format!("peer id {peer_id:?} is not one a tracker accepts"),
            });
        }
        let path = format!("/v1/peers/{peer_id}");
        let resp = self
            .send(call, reqwest::Method::DELETE, &path, None::<&()>, true)
            .await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        check_status(call, &resp)
    }

    /// `POST /v1/reports`.
    pub async fn report(&self, report: &ReportRequest) -> Result<(), TrackerError> {
        let call = "report";
        let resp = self
            .send(
                call,
                reqwest::Method::POST,
                "/v1/reports",
                Some(report),
                false,
            )
            .await?;
        check_status(call, &resp)
    }
}

/// The replicas of a `ZEST_TRACKER`-style value: URLs separated by commas, spaces allowed.
fn parse_bases(spec: &str) -> Result<Vec<String>, TrackerError> {
    let invalid = |detail: String| TrackerError::Invalid {
        call: "client setup",
        detail,
    };
    let bases: Vec<String> = spec
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(|b| b.trim_end_matches('/').to_string())
        .collect();
    if bases.is_empty() {
        return Err(invalid(format!("no tracker URL in {spec:?}")));
    }
    for b in &bases {
        let url = reqwest::Url::parse(b).map_err(|e| invalid(format!("tracker URL {b:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid(format!(
                "tracker URL {b:?}: want http://host:port or https://host:port"
            )));
        }
    }
    Ok(bases)
}

fn check_status(call: &'static str, resp: &reqwest::Response) -> Result<(), TrackerError> {
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(TrackerError::Status { call, status })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A one-shot HTTP server answering every connection with `answer`; returns its base URL.
    async fn serve(answer: Vec<u8>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(&answer).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        format!("http://{addr}/")
    }

    fn http(status: &str, body: &[u8], chunked: bool) -> Vec<u8> {
        let mut v = if chunked {
            format!("HTTP/1.1 {status}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n")
                .into_bytes()
        } else {
            format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes()
        };
        if chunked {
            for c in body.chunks(1 << 20) {
                v.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                v.extend_from_slice(c);
                v.extend_from_slice(b"\r\n");
            }
            v.extend_from_slice(b"0\r\n\r\n");
        } else {
            v.extend_from_slice(body);
        }
        v
    }

    #[tokio::test]
    async fn reads_stats_and_maps_statuses() {
        let stats = br#"{"store":"embedded","peers":1,"edges":1,"clients":0,"held_xorbs":2,
            "manifests":0,"reports":0,"report_bytes":{"local":0,"peers":0,"edges":0,"upstream":0}}"#;
        let c = TrackerClient::new(&serve(http("200 OK", stats, false)).await, None).expect("c");
        assert_eq!(c.stats().await.expect("stats").held_xorbs, 2);

        let c = TrackerClient::new(&serve(http("503 Busy", b"{}", false)).await, None).expect("c");
        let e = c.stats().await.expect_err("503");
        assert_eq!(e.status(), Some(reqwest::StatusCode::SERVICE_UNAVAILABLE));

        let c = TrackerClient::new(&serve(http("404 No", b"{}", false)).await, None).expect("c");
        assert!(c.get_manifest("o/r", "main").await.expect("404").is_none());

        let c = TrackerClient::new(&serve(http("200 OK", b"{nope", false)).await, None).expect("c");
        assert!(matches!(c.peers().await, Err(TrackerError::Json { .. })));
    }

    #[tokio::test]
    async fn an_oversized_answer_is_refused_without_a_length_header_too() {
        let big = vec![b' '; MAX_ANSWER_BYTES + 10];
        for chunked in [false, true] {
            let c = TrackerClient::new(&serve(http("200 OK", &big, chunked)).await, None)
                .expect("client");
            assert!(
                matches!(c.peers().await, Err(TrackerError::TooLarge { .. })),
                "chunked={chunked}"
            );
        }
    }

    #[tokio::test]
    async fn a_lookup_answer_must_match_the_items() {
        let body = br#"{"peers":{},"results":[]}"#;
        let c = TrackerClient::new(&serve(http("200 OK", body, false)).await, None).expect("c");
        let req = LookupRequest {
            peer_id: None,
            zone: None,
            limit: None,
            items: vec![crate::LookupItem {
                hash: MerkleHash::from_bytes([1; 32]),
                range: crate::ChunkRange::new(0, 1),
            }],
        };
        assert!(matches!(
            c.lookup(&req).await,
            Err(TrackerError::Invalid { .. })
        ));
    }

    /// A port nothing listens on (bound, then closed).
    async fn refused() -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    }

    #[tokio::test]
    async fn fails_over_to_the_next_replica_and_stays_there() {
        let stats = br#"{"store":"embedded","peers":1,"edges":1,"clients":0,"held_xorbs":7,
            "manifests":0,"reports":0,"report_bytes":{"local":0,"peers":0,"edges":0,"upstream":0}}"#;
        let good = serve(http("200 OK", stats, false)).await;
        let busy = serve(http("503 Busy", b"{}", false)).await;
        let dead = refused().await;
        let c = TrackerClient::new(&format!("{dead}, {busy},{good}"), None).expect("client");
        assert_eq!(c.bases().len(), 3);
        assert_eq!(c.base(), dead);
        assert_eq!(c.stats().await.expect("failed over").held_xorbs, 7);
        assert_eq!(
            c.base(),
            good.trim_end_matches('/'),
            "the next call starts at the good one"
        );
        assert_eq!(c.clone().stats().await.expect("again").held_xorbs, 7);

        // Every replica down: the last one's error is the call's.
        let c = TrackerClient::new(&format!("{dead},{busy}"), None).expect("client");
        let e = c.stats().await.expect_err("all down");
        assert_eq!(e.status(), Some(reqwest::StatusCode::SERVICE_UNAVAILABLE));
    }

    #[tokio::test]
    async fn a_report_that_may_have_been_applied_is_not_sent_twice() {
        // A replica that reads the request and never answers: the report may have been counted.
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let silent = format!("http://{}", l.local_addr().expect("addr"));
        let _hold = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                conns.push(s);
            }
        });
        let good = serve(http("200 OK", b"{}", false)).await;
        let t = Timeouts {
            connect: Duration::from_secs(1),
            request: Duration::from_millis(300),
        };
        let c = TrackerClient::with_timeouts(&format!("{silent},{good}"), None, t).expect("c");
        let report = ReportRequest {
            peer_id: None,
            repo: "o/r".into(),
            revision: "main".into(),
            bytes: Default::default(),
            files: 1,
            duration_ms: 1,
        };
        assert!(matches!(
            c.report(&report).await,
            Err(TrackerError::Transport { .. })
        ));
        // An idempotent call does move on.
        assert!(c.deregister("edge-1").await.is_ok());
    }

    #[test]
    fn tracker_urls_are_checked_up_front() {
        for bad in ["", " , ", "tracker:7070", "ftp://t:7070", "http://"] {
            assert!(
                matches!(
                    TrackerClient::new(bad, None),
                    Err(TrackerError::Invalid { .. })
                ),
                "{bad:?}"
            );
        }
        let c = TrackerClient::new("http://a:7070/, https://b:7070", None).expect("two");
        assert_eq!(c.bases(), ["http://a:7070", "https://b:7070"]);
    }

    #[tokio::test]
    async fn deregister_refuses_ids_a_tracker_would_not_accept() {
        let c = TrackerClient::new(&serve(http("200 OK", b"", false)).await, None).expect("c");
        assert!(c.deregister("edge-1.zone:7071@a").await.is_ok());
        for bad in ["", "a/b", "a b", "../x"] {
            assert!(
                matches!(c.deregister(bad).await, Err(TrackerError::Invalid { .. })),
                "{bad:?}"
            );
        }
        let gone = TrackerClient::new(&serve(http("404 No", b"", false)).await, None).expect("c");
        assert!(
            gone.deregister("edge-1").await.is_ok(),
            "unknown peer: nothing to do"
        );
    }

    #[tokio::test]
    async fn a_silent_tracker_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let _hold = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                conns.push(s);
            }
        });
        let t = Timeouts {
            connect: Duration::from_secs(1),
            request: Duration::from_millis(300),
        };
        let c = TrackerClient::with_timeouts(&format!("http://{addr}"), None, t).expect("c");
        let started = std::time::Instant::now();
        assert!(matches!(
            c.stats().await,
            Err(TrackerError::Transport { .. })
        ));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
