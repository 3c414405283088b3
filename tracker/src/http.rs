//! The actix-web application: routes under `/v1`, `/metrics`, `/healthz`, `/readyz`.
//!
//! Handlers check the token first, then read the body with a size limit, validate it through
//! [`crate::convert`], call the [`Store`] and answer JSON. Every error is an [`ApiError`]
//! (`{"error": "..."}` with a fitting status). A middleware counts and times every request by
//! route pattern and opens a tracing span for it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use futures::{FutureExt, StreamExt};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::api;
use crate::auth::{Access, Auth};
use crate::clock::Clock;
use crate::convert::{self, Limits};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::model::{HoldingsChange, ManifestRecord};
use crate::ranking::{rank, Asker};
use crate::store::{Store, StoreError};

/// Most peers `GET /v1/peers` lists.
pub const MAX_LISTED_PEERS: usize = 10_000;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Metrics,
    pub auth: Auth,
    pub limits: Limits,
    pub max_body_bytes: usize,
    pub ttl_ms: u64,
    pub interval_secs: u64,
}

impl AppState {
    fn store_error(&self, op: &'static str, e: StoreError) -> ApiError {
        self.metrics.store_errors.with_label_values(&[op]).inc();
        match &e {
            StoreError::Invalid(_) => {}
            _ => tracing::warn!(op, error = %e, "store failure"),
        }
        e.into()
    }

    async fn authorize(&self, req: &HttpRequest, access: Access) -> Result<(), ApiError> {
        let r = self.auth.check(req, access, &*self.store).await;
        match &r {
            Err(ApiError::Unauthorized(_)) => self.metrics.auth_failures.inc(),
            Err(e) => {
                self.metrics.store_errors.with_label_values(&["auth"]).inc();
                tracing::warn!(error = %e, "token check failed");
            }
            Ok(()) => {}
        }
        r
    }
}

/// Reads a JSON body of at most `limit` bytes.
async fn read_json<T: DeserializeOwned>(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<T, ApiError> {
    let too_large =
        || ApiError::PayloadTooLarge(format!("request body is larger than {limit} bytes"));
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("reading request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

async fn announce(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&req, Access::Write).await?;
    let body: api::AnnounceRequest = read_json(&req, payload, state.max_body_bytes).await?;
    let a = convert::announcement(body, &state.limits)?;
    let kind = match &a.change {
        HoldingsChange::Full(_) => "full",
        HoldingsChange::Delta { added, removed } if added.is_empty() && removed.is_empty() => {
            "heartbeat"
        }
        HoldingsChange::Delta { .. } => "delta",
    };
    let out = state
        .store
        .announce(&a, state.clock.now_ms(), state.ttl_ms)
        .await
        .map_err(|e| state.store_error("announce", e))?;
    state.metrics.announces.with_label_values(&[kind]).inc();
    tracing::debug!(peer = %a.peer.id, kind, held = out.held_xorbs, "announce");
    Ok(HttpResponse::Ok().json(api::AnnounceResponse {
        interval_secs: state.interval_secs,
        ttl_secs: state.ttl_ms / 1000,
        held_xorbs: out.held_xorbs,
        resync: !out.was_live,
    }))
}

async fn lookup(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&req, Access::Read).await?;
    let body: api::LookupRequest = read_json(&req, payload, state.max_body_bytes).await?;
    let (keys, per_item) = convert::lookup(&body, &state.limits)?;
    let hits = state
        .store
        .lookup(&keys, state.clock.now_ms())
        .await
        .map_err(|e| state.store_error("lookup", e))?;
    let asker = Asker {
        peer_id: body.peer_id.as_deref(),
        zone: body.zone.as_deref(),
    };
    let mut rng = rand::rng();
    let mut used = vec![false; hits.peers.len()];
    let mut results = Vec::with_capacity(hits.items.len());
    let mut misses = 0;
    for found in &hits.items {
        let candidates = found
            .iter()
            .filter_map(|&i| hits.peers.get(i as usize).map(|p| (i as usize, p)));
        let ranked = rank(candidates, asker, per_item, &mut rng);
        if ranked.is_empty() {
            misses += 1;
        }
        for &i in &ranked {
            used[i] = true;
        }
        results.push(api::LookupResult {
            peers: ranked
                .into_iter()
                .map(|i| hits.peers[i].id.clone())
                .collect(),
        });
    }
    let peers: BTreeMap<String, api::PeerInfo> = hits
        .peers
        .iter()
        .zip(used)
        .filter(|(_, used)| *used)
        .map(|(p, _)| (p.id.clone(), convert::peer_info(p)))
        .collect();
    state.metrics.lookup_items.inc_by(keys.len() as u64);
    state.metrics.lookup_misses.inc_by(misses);
    Ok(HttpResponse::Ok().json(api::LookupResponse { peers, results }))
}

async fn claim(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&req, Access::Write).await?;
    let body: api::ClaimRequest = read_json(&req, payload, state.max_body_bytes).await?;
    let (keys, ttl_ms) = convert::claim(&body, &state.limits)?;
    let leases = state
        .store
        .claim(
            &body.peer_id,
            &keys,
            convert::claim_group(&body),
            if body.done {
                crate::model::ClaimKind::Done
            } else {
                crate::model::ClaimKind::Lease
            },
            state.clock.now_ms(),
            ttl_ms,
        )
        .await
        .map_err(|e| state.store_error("claim", e))?;
    let results: Vec<api::ClaimResult> = leases
        .into_iter()
        .map(|l| {
            let granted = !body.done && !l.group_full && l.holder == body.peer_id;
            api::ClaimResult {
                granted,
                holder: (!granted && !l.group_full).then_some(l.holder),
                expires_in_ms: l.expires_in_ms,
                group_full: l.group_full,
            }
        })
        .collect();
    let granted = results.iter().filter(|r| r.granted).count() as u64;
    state
        .metrics
        .claims
        .with_label_values(&["granted"])
        .inc_by(granted);
    state
        .metrics
        .claims
        .with_label_values(&["held"])
        .inc_by(results.len() as u64 - granted);
    Ok(HttpResponse::Ok().json(api::ClaimResponse { results }))
}

async fn delete_peer(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&req, Access::Write).await?;
    convert::check_peer_id("peer id", &id)?;
    let known = state
        .store
        .remove_peer(&id)
        .await
        .map_err(|e| state.store_error("remove_peer", e))?;
    if known {
        tracing::info!(peer = %id, "peer left");
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound(format!("no peer {id:?}")))
    }
}

async fn list_peers(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&req, Access::Read).await?;
    let now = state.clock.now_ms();
    let list = state
        .store
        .live_peers(now, MAX_LISTED_PEERS)
        .await
        .map_err(|e| state.store_error("live_peers", e))?;
    let peers = list
        .into_iter()
        .map(|p| api::PeerListEntry {
            expires_in_secs: p.expires_at_ms.saturating_sub(now).div_ceil(1000),
            held_xorbs: p.held_xorbs,
            id: p.record.id,
            addr: p.record.addr,
            role: convert::role_to_wire(p.record.role),
            zone: p.record.zone,
            free_bytes: p.record.free_bytes,
            load: p.record.load,
        })
        .collect();
    Ok(HttpResponse::Ok().json(api::PeersResponse { peers }))
}

async fn stats(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize(&req, Access::Read).await?;
    let s = state
        .store
        .stats(state.clock.now_ms())
        .await
        .map_err(|e| state.store_error("stats", e))?;
    Ok(HttpResponse::Ok().json(api::StatsResponse {
        store: state.store.kind().to_string(),
        peers: s.peers,
        edges: s.edges,
        clients: s.clients,
        held_xorbs: s.held_xorbs,
        manifests: s.manifests,
        reports: s.reports.reports,
        report_bytes: api::BytesBySource {
            local: s.reports.bytes.local,
            peers: s.reports.bytes.peers,
            edges: s.reports.bytes.edges,
            upstream: s.reports.bytes.upstream,
        },
    }))
}

async fn put_manifest(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&req, Access::Write).await?;
    let (org, name, revision) = path.into_inner();
    let key = convert::manifest_key(&org, &name, &revision)?;
    let manifest: api::Manifest = read_json(&req, payload, state.max_body_bytes).await?;
    convert::check_manifest(&manifest)?;
    let doc = serde_json::to_string(&manifest)
        .map_err(|e| ApiError::Internal(format!("encoding manifest: {e}")))?;
    state
        .store
        .put_manifest(
            &key,
            &ManifestRecord {
                commit: manifest.commit.clone(),
                doc,
            },
        )
        .await
        .map_err(|e| state.store_error("put_manifest", e))?;
    state.metrics.manifests_stored.inc();
    tracing::info!(repo = %format!("{org}/{name}"), revision = %revision, commit = %manifest.commit, files = manifest.files.len(), "manifest stored");
    Ok(HttpResponse::NoContent().finish())
}

async fn get_manifest(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&req, Access::Read).await?;
    let (org, name, revision) = path.into_inner();
    let key = convert::manifest_key(&org, &name, &revision)?;
    match state
        .store
        .get_manifest(&key)
        .await
        .map_err(|e| state.store_error("get_manifest", e))?
    {
        Some(rec) => Ok(HttpResponse::Ok()
            .content_type("application/json")
            .body(rec.doc)),
        None => Err(ApiError::NotFound(format!(
            "no manifest for {org}/{name} at {revision:?}"
        ))),
    }
}

/// The Xet file hash of a `/v1/chunks/{hash}` path.
fn chunks_key(hash: &str) -> Result<xet::MerkleHash, ApiError> {
    xet::MerkleHash::from_hex(hash)
        .map_err(|_| ApiError::BadRequest(format!("{hash:?} is not a Xet hash (64 hex digits)")))
}

async fn put_chunks(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&req, Access::Write).await?;
    let key = chunks_key(&path)?;
    let m: api::ChunkManifest = read_json(&req, payload, state.max_body_bytes).await?;
    let got = m
        .file_hash()
        .map_err(|e| ApiError::BadRequest(format!("chunk manifest: {e}")))?;
    if got != key {
        return Err(ApiError::BadRequest(format!(
            "the chunks hash to {got}, not to {key}"
        )));
    }
    let doc = serde_json::to_string(&m)
        .map_err(|e| ApiError::Internal(format!("encoding chunk manifest: {e}")))?;
    state
        .store
        .put_chunks(&key, &doc)
        .await
        .map_err(|e| state.store_error("put_chunks", e))?;
    state.metrics.chunk_manifests_stored.inc();
    Ok(HttpResponse::NoContent().finish())
}

async fn get_chunks(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&req, Access::Read).await?;
    let key = chunks_key(&path)?;
    match state
        .store
        .get_chunks(&key)
        .await
        .map_err(|e| state.store_error("get_chunks", e))?
    {
        Some(doc) => Ok(HttpResponse::Ok()
            .content_type("application/json")
            .body(doc)),
        None => Err(ApiError::NotFound(format!("no chunk manifest for {key}"))),
    }
}

async fn post_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&req, Access::Write).await?;
    let body: api::ReportRequest = read_json(&req, payload, state.max_body_bytes).await?;
    let report = convert::report(body, state.clock.now_ms())?;
    state
        .store
        .add_report(&report)
        .await
        .map_err(|e| state.store_error("add_report", e))?;
    let m = &state.metrics;
    m.reports.inc();
    // The fleet's one `source` vocabulary (the edges' `zest_edge_bytes_fetched_total` too).
    for (source, n) in [
        ("local", report.bytes.local),
        ("peer", report.bytes.peers),
        ("edge", report.bytes.edges),
        ("upstream", report.bytes.upstream),
    ] {
        m.report_bytes.with_label_values(&[source]).inc_by(n);
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state
        .store
        .ready()
        .await
        .map_err(|e| state.store_error("ready", e))?;
    Ok(
        HttpResponse::Ok()
            .json(serde_json::json!({"status": "ready", "store": state.store.kind()})),
    )
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route {} {}",
        req.method(),
        req.path()
    )))
}

fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Registers every route of the API on `cfg`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v1")
            .route("/announce", web::post().to(announce))
            .route("/lookup", web::post().to(lookup))
            .route("/claims", web::post().to(claim))
            .route("/peers", web::get().to(list_peers))
            .route("/peers/{id}", web::delete().to(delete_peer))
            .route("/stats", web::get().to(stats))
            .service(
                web::resource("/manifests/{org}/{name}/{revision:.+}")
                    .route(web::put().to(put_manifest))
                    .route(web::get().to(get_manifest)),
            )
            .route("/reports", web::post().to(post_report))
            .service(
                web::resource("/chunks/{hash}")
                    .route(web::put().to(put_chunks))
                    .route(web::get().to(get_chunks)),
            ),
    )
    .route("/metrics", web::get().to(metrics))
    .route("/healthz", web::get().to(healthz))
    .route("/readyz", web::get().to(readyz));
}

/// The whole application for one worker.
pub fn app(
    state: web::Data<AppState>,
) -> actix_web::App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = ServiceResponse<actix_web::body::BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    actix_web::App::new()
        .app_data(state)
        .configure(configure)
        .default_service(web::to(not_found))
        .wrap_fn(|req, srv| {
            let route = req
                .match_pattern()
                .unwrap_or_else(|| "unmatched".to_string());
            let state = req.app_data::<web::Data<AppState>>().cloned();
            let span = tracing::debug_span!("request", method = %req.method(), route = %route);
            let start = Instant::now();
            let fut = srv.call(req);
            async move {
                let mut res = fut.await;
                if let Ok(r) = &mut res {
                    let status = r.status().as_u16();
                    if let Some(state) = state {
                        state
                            .metrics
                            .http_requests
                            .with_label_values(&[&route, status_class(status)])
                            .inc();
                        state
                            .metrics
                            .http_duration
                            .with_label_values(&[&route])
                            .observe(start.elapsed().as_secs_f64());
                    }
                    if status >= 500 {
                        tracing::warn!(status, "request failed");
                    } else {
                        tracing::debug!(
                            status,
                            elapsed_us = start.elapsed().as_micros() as u64,
                            "request"
                        );
                    }
                    r.headers_mut()
                        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                }
                res
            }
            .instrument(span)
            .boxed_local()
        })
}
