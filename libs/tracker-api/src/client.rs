//! A small async client of the tracker API: announce, lookup, peers, stats, manifests and
//! reports. Every call has a time limit (a tracker that is down only sends the caller upstream,
//! it never stalls it) and reads at most [`MAX_ANSWER_BYTES`] of an answer, whatever the
//! tracker sends. It never retries: callers decide whether a failed call matters.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{
    AnnounceRequest, AnnounceResponse, LookupRequest, LookupResponse, Manifest, PeerListEntry,
    PeersResponse, ReportRequest, StatsResponse,
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

/// The tracker at `base` (`http://host:port`), with an optional bearer token for writes.
#[derive(Debug, Clone)]
pub struct TrackerClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl TrackerClient {
    /// A client with the default [`Timeouts`].
    pub fn new(base: &str, token: Option<String>) -> Result<Self, TrackerError> {
        Self::with_timeouts(base, token, Timeouts::default())
    }

    pub fn with_timeouts(
        base: &str,
        token: Option<String>,
        timeouts: Timeouts,
    ) -> Result<Self, TrackerError> {
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
            base: base.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// The base URL, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send(
        &self,
        call: &'static str,
        method: reqwest::Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<reqwest::Response, TrackerError> {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        rb.send()
            .await
            .map_err(|source| TrackerError::Transport { call, source })
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
            .send(call, reqwest::Method::POST, "/v1/announce", Some(req))
            .await?;
        Self::json(call, resp).await
    }

    /// `POST /v1/lookup`: who holds each item, `results[i]` answering `items[i]`.
    pub async fn lookup(&self, req: &LookupRequest) -> Result<LookupResponse, TrackerError> {
        let call = "lookup";
        let resp = self
            .send(call, reqwest::Method::POST, "/v1/lookup", Some(req))
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

    /// `GET /v1/peers`: the live peers.
    pub async fn peers(&self) -> Result<Vec<PeerListEntry>, TrackerError> {
        let call = "peers";
        let resp = self
            .send(call, reqwest::Method::GET, "/v1/peers", None::<&()>)
            .await?;
        Ok(Self::json::<PeersResponse>(call, resp).await?.peers)
    }

    /// `GET /v1/stats`.
    pub async fn stats(&self) -> Result<StatsResponse, TrackerError> {
        let call = "stats";
        let resp = self
            .send(call, reqwest::Method::GET, "/v1/stats", None::<&()>)
            .await?;
        Self::json(call, resp).await
    }

    /// `GET /v1/manifests/{repo}/{revision}`; `None` when the tracker has none (404).
    pub async fn get_manifest(
        &self,
        repo: &str,
        revision: &str,
    ) -> Result<Option<Manifest>, TrackerError> {
        let call = "manifest";
        let path = format!("/v1/manifests/{repo}/{revision}");
        let resp = self
            .send(call, reqwest::Method::GET, &path, None::<&()>)
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
            .send(call, reqwest::Method::PUT, &path, Some(manifest))
            .await?;
        check_status(call, &resp)
    }

    /// `POST /v1/reports`.
    pub async fn report(&self, report: &ReportRequest) -> Result<(), TrackerError> {
        let call = "report";
        let resp = self
            .send(call, reqwest::Method::POST, "/v1/reports", Some(report))
            .await?;
        check_status(call, &resp)
    }
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
                hash: xet::MerkleHash::from_bytes([1; 32]),
                range: crate::ChunkRange::new(0, 1),
            }],
        };
        assert!(matches!(
            c.lookup(&req).await,
            Err(TrackerError::Invalid { .. })
        ));
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
