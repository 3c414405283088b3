//! The HTTP side of the edge: the Hugging Face cache-proxy (hub calls forwarded with the
//! client's own credentials, CAS URLs rewritten to point here and xorb URLs to the data port,
//! xorb ranges also served here for URLs handed out before the data port), `/metrics`,
//! `/healthz` and `/readyz` (the admin routes are [`crate::admin`]'s). Only this module and
//! `admin.rs` know actix; the data port is `data.rs`.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::SizedStream;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder, ResponseError};
use bytes::Bytes;
use futures::{stream, TryStreamExt};
use xet::cas::{ReconstructionV1, ReconstructionV2};
use xet::MerkleHash;

use crate::edge::{read_bounded, Edge, FileError, MAX_JSON_BYTES};
use crate::urls::{UrlRange, XorbUrl};

/// The request header carrying the edge's admin token ([`crate::admin`]); never forwarded.
pub const ADMIN_TOKEN_HEADER: &str = "x-zest-admin-token";

/// Most bytes of a request body forwarded upstream.
pub const MAX_FORWARD_BODY: usize = 16 << 20;
/// Most bytes of a token response read for rewriting.
const MAX_TOKEN_BODY: usize = 1 << 20;

/// An HTTP error: a status and `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HttpError {
    pub status: StatusCode,
    pub message: String,
}

impl HttpError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, message)
    }
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(serde_json::json!({ "error": self.message }))
    }
}

type Result<T> = std::result::Result<T, HttpError>;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .route("/cas/{seg}/{tail:.*}", web::route().to(cas))
        .default_service(web::to(hub));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().body("ok\n")
}

/// The store is opened and every port bound before the HTTP server starts, so answering
/// means ready.
async fn readyz() -> HttpResponse {
    HttpResponse::Ok().body("ready\n")
}

/// Shared with the peer server's stats at scrape time.
#[derive(Clone, Debug)]
pub struct PeerStats(pub xorbstore::peer::PeerServer);

async fn metrics(edge: web::Data<Arc<Edge>>, peer: web::Data<PeerStats>) -> HttpResponse {
    let text = edge
        .metrics
        .render(&edge.store.stats(), &edge.flights.stats(), &peer.0.stats());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text)
}

fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

/// Request headers forwarded upstream (the client's own Authorization included, never the
/// edge's admin token).
fn forward_headers(from: &HeaderMap) -> reqwest::header::HeaderMap {
    let mut out = reqwest::header::HeaderMap::new();
    for (k, v) in from {
        if is_hop_by_hop(k.as_str()) || k.as_str() == ADMIN_TOKEN_HEADER {
            continue;
        }
        if let (Ok(k), Ok(v)) = (
            reqwest::header::HeaderName::from_bytes(k.as_str().as_bytes()),
            reqwest::header::HeaderValue::from_bytes(v.as_bytes()),
        ) {
            out.append(k, v);
        }
    }
    out
}

/// Copies response headers back, rewriting upstream URLs in `Link` and `Location` to the edge.
fn copy_response_headers(
    edge: &Edge,
    from: &reqwest::header::HeaderMap,
    to: &mut HttpResponseBuilder,
) {
    for (k, v) in from {
        let name = k.as_str();
        if is_hop_by_hop(name) {
            continue;
        }
        let value = match name {
            "link" | "location" => match v.to_str() {
                Ok(s) => HeaderValue::from_str(&s.replace(&edge.upstream, &edge.public_url))
                    .unwrap_or_else(|_| {
                        HeaderValue::from_bytes(v.as_bytes())
                            .unwrap_or(HeaderValue::from_static(""))
                    }),
                Err(_) => continue,
            },
            _ => match HeaderValue::from_bytes(v.as_bytes()) {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
            to.append_header((n, value));
        }
    }
}

fn status_of(s: reqwest::StatusCode) -> StatusCode {
    StatusCode::from_u16(s.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY)
}

/// Streams an upstream response back (headers rewritten, length kept, HEAD without body).
fn stream_back(edge: &Edge, resp: reqwest::Response, head: bool) -> HttpResponse {
    let mut b = HttpResponse::build(status_of(resp.status()));
    copy_response_headers(edge, resp.headers(), &mut b);
    let len = resp.content_length();
    if head {
        return match resp
            .headers()
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            Some(l) => b.body(SizedStream::new(
                l,
                stream::empty::<std::result::Result<Bytes, actix_web::Error>>(),
            )),
            None => b.body(()),
        };
    }
    let body = resp
        .bytes_stream()
        .map_err(|e| actix_web::error::ErrorBadGateway(e.to_string()));
    match len {
        Some(l) => b.body(SizedStream::new(l, body)),
        None => b.streaming(body),
    }
}

/// Sends `req` (its method, forwarded headers and `body`) to `url` with `client`; `what`
/// names the upstream in the error.
async fn forward(
    client: &reqwest::Client,
    req: &HttpRequest,
    url: &str,
    body: web::Bytes,
    what: &str,
) -> Result<reqwest::Response> {
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|_| HttpError::new(StatusCode::METHOD_NOT_ALLOWED, "method"))?;
    let mut rb = client
        .request(method, url)
        .headers(forward_headers(req.headers()));
    if !body.is_empty() {
        rb = rb.body(body);
    }
    rb.send()
        .await
        .map_err(|e| HttpError::bad_gateway(format!("{what}: {e}")))
}

/// Everything else: the hub API, forwarded to upstream with the client's credentials.
async fn hub(
    edge: web::Data<Arc<Edge>>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let started = Instant::now();
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let url = format!("{}{pq}", edge.upstream);
    let path = req.path();
    let is_token = path.starts_with("/api/")
        && (path.contains("/xet-read-token/") || path.contains("/xet-write-token/"));
    let is_file_get = req.method() == Method::GET && path.contains("/resolve/");
    let client = if is_file_get { &edge.fetch } else { &edge.hub };
    let resp = forward(client, &req, &url, body, "upstream").await?;
    let route = if is_token {
        "token"
    } else if is_file_get {
        "file"
    } else {
        "hub"
    };
    let out = if is_token && resp.status().is_success() {
        rewrite_token(&edge, resp).await?
    } else {
        stream_back(&edge, resp, req.method() == Method::HEAD)
    };
    edge.metrics
        .request_seconds
        .with_label_values(&[route])
        .observe(started.elapsed().as_secs_f64());
    Ok(out)
}

/// The token response with its CAS URL (header and JSON) pointing at the edge.
async fn rewrite_token(edge: &Edge, resp: reqwest::Response) -> Result<HttpResponse> {
    let status = status_of(resp.status());
    let headers = resp.headers().clone();
    let body = read_bounded(resp, MAX_TOKEN_BODY)
        .await
        .map_err(HttpError::bad_gateway)?;
    let cas_for = |u: &str| format!("{}/cas/{}", edge.public_url, edge.signer.cas_segment(u));
    let mut b = HttpResponse::build(status);
    for (k, v) in &headers {
        let name = k.as_str();
        if is_hop_by_hop(name) {
            continue;
        }
        let value = if name == "x-xet-cas-url" {
            match v.to_str() {
                Ok(s) => HeaderValue::from_str(&cas_for(s)).ok(),
                Err(_) => None,
            }
        } else {
            HeaderValue::from_bytes(v.as_bytes()).ok()
        };
        if let (Some(v), Ok(n)) = (value, HeaderName::from_bytes(name.as_bytes())) {
            b.append_header((n, v));
        }
    }
    let out = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(mut v) => {
            if let Some(s) = v.get("casUrl").and_then(|s| s.as_str()).map(str::to_string) {
                v["casUrl"] = serde_json::Value::String(cas_for(&s));
            }
            Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
        }
        Err(_) => body,
    };
    Ok(b.body(out))
}

fn bearer(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::to_string)
}

/// Requests under a rewritten CAS URL.
async fn cas(
    edge: web::Data<Arc<Edge>>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let started = Instant::now();
    let (seg, tail) = path.into_inner();
    let cas = edge
        .signer
        .decode_cas_segment(&seg)
        .ok_or_else(|| HttpError::new(StatusCode::NOT_FOUND, "unknown CAS"))?;
    if tail == "v1/telemetry" {
        return Ok(HttpResponse::Ok().finish());
    }
    let recon = tail
        .strip_prefix("v2/reconstructions/")
        .map(|h| ("v2", h))
        .or_else(|| tail.strip_prefix("v1/reconstructions/").map(|h| ("v1", h)));
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let url = format!("{cas}/{tail}{query}");
    let resp = forward(&edge.hub, &req, &url, body, "CAS").await?;
    let Some((version, hash)) =
        recon.filter(|_| resp.status().is_success() && req.method() == Method::GET)
    else {
        return Ok(stream_back(&edge, resp, req.method() == Method::HEAD));
    };
    let file = MerkleHash::from_hex(hash)
        .map_err(|_| HttpError::new(StatusCode::BAD_REQUEST, "bad file hash"))?;
    let token = bearer(&req).unwrap_or_default();
    let body = read_bounded(resp, MAX_JSON_BYTES)
        .await
        .map_err(HttpError::bad_gateway)?;
    let rec: ReconstructionV2 = if version == "v2" {
        serde_json::from_slice(&body)
    } else {
        serde_json::from_slice::<ReconstructionV1>(&body).map(ReconstructionV2::from)
    }
    .map_err(|e| HttpError::bad_gateway(format!("reconstruction json: {e}")))?;
    edge.learn_hosts(&rec);
    // Fetch and verify the whole file before handing out URLs to it.
    edge.ensure_file(&cas, &token, &file)
        .await
        .map_err(|e| match e {
            FileError::Verification(m) => {
                tracing::error!(%file, error = %m, "upstream bytes failed verification");
                HttpError::bad_gateway(format!("upstream bytes failed verification: {m}"))
            }
            FileError::Upstream(m) => {
                tracing::warn!(%file, error = %m, "fetching file failed");
                HttpError::bad_gateway(m)
            }
        })?;
    let rewritten = rewrite_reconstruction(&edge, rec);
    let out = if version == "v2" {
        serde_json::to_vec(&rewritten)
    } else {
        serde_json::to_vec(&rewritten.to_v1())
    }
    .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    edge.metrics
        .request_seconds
        .with_label_values(&["reconstruction"])
        .observe(started.elapsed().as_secs_f64());
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(out))
}

/// Longest path and query of a xorb URL pointed at the data port: its request head must fit
/// [`crate::data::MAX_HEAD_BYTES`] with room for the other headers. Longer ones (many ranges,
/// a very long upstream URL) point at the HTTP port, which serves the same URLs.
pub const MAX_DATA_PATH_LEN: usize = 12 << 10;

/// Every `url` of `rec` replaced by an edge xorb URL carrying the ranges and the signed URL, on
/// the data port (the HTTP port when the URL would be too long for the data port's heads).
pub fn rewrite_reconstruction(edge: &Edge, mut rec: ReconstructionV2) -> ReconstructionV2 {
    for (xorb, fetches) in rec.xorbs.iter_mut() {
        for f in fetches.iter_mut() {
            let x = XorbUrl {
                xorb: *xorb,
                upstream: std::mem::take(&mut f.url),
                ranges: f
                    .ranges
                    .iter()
                    .map(|r| UrlRange {
                        chunks: r.chunks,
                        bytes: r.bytes,
                    })
                    .collect(),
            };
            let path = edge.signer.xorb_path(&x);
            let base = if path.len() <= MAX_DATA_PATH_LEN {
                &edge.public_data_url
            } else {
                &edge.public_url
            };
            f.url = format!("{base}{path}");
        }
    }
    rec
}
