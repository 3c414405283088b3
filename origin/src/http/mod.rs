//! The HTTP server: one actix-web service that routes every request itself.
//!
//! [`dispatch`] parses the raw path ([`path::parse`]), opens a span per request, applies the
//! test faults, checks the Hub token of gated routes, calls the handler ([`hub`], [`cas`]) and
//! records `zest_origin_requests_total{route,status}`. Only this module knows actix.

pub mod body;
pub mod cas;
pub mod error;
pub mod hub;
pub mod path;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use tracing::Instrument;

use crate::catalog::{Catalog, Repo};
use crate::config::Config;
use crate::faults::{Faults, InjectedFault};
use crate::metrics::Metrics;
use crate::signing::Signer;
use error::ApiError;
use path::Route;

/// Unix seconds now.
pub type Clock = fn() -> u64;

/// The system clock.
pub fn system_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Everything a handler needs; shared by all workers.
#[derive(Debug)]
pub struct AppState {
    pub catalog: Catalog,
    pub config: Config,
    pub signer: Signer,
    pub faults: Arc<Faults>,
    pub metrics: Metrics,
    pub clock: Clock,
}

impl AppState {
    /// Base URL for links: `--public-url`, else `http://{Host}`.
    pub fn base_url(&self, req: &HttpRequest) -> String {
        match &self.config.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => {
                let ci = req.connection_info();
                format!("{}://{}", ci.scheme(), ci.host())
            }
        }
    }

    pub fn repo(&self, org: &str, name: &str) -> Result<&Repo, ApiError> {
        let id = format!("{org}/{name}");
        self.catalog
            .repos
            .get(&id)
            .ok_or_else(|| ApiError::repo_not_found(&id))
    }

    pub fn now(&self) -> u64 {
        (self.clock)()
    }
}

/// Constant-time equality of two byte strings (for the Hub token).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bearer token of a request, if any.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    let v = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The single entry point of every request.
pub async fn dispatch(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let parsed = path::parse(req.uri().path());
    let template = parsed.as_ref().map(Route::template).unwrap_or("invalid");
    let class = parsed
        .as_ref()
        .map(Route::class)
        .unwrap_or(crate::faults::RouteClass::Hub);
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route = template,
        status = tracing::field::Empty,
    );
    async move {
        if let Some(d) = state.faults.latency(class) {
            tokio::time::sleep(d).await;
        }
        let resp = if let Some(f) = state.faults.request_fault(class) {
            let (status, kind) = match f {
                InjectedFault::TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, "429"),
                InjectedFault::InternalError => (StatusCode::INTERNAL_SERVER_ERROR, "500"),
                InjectedFault::ServiceUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "503"),
            };
            state
                .metrics
                .faults_injected
                .with_label_values(&[kind])
                .inc();
            let mut b = HttpResponse::build(status);
            if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
            {
                b.insert_header(("Retry-After", "1"));
            }
            b.json(serde_json::json!({ "error": "injected fault (test switch)" }))
        } else {
            match parsed {
                Ok(route) => handle(&req, &state, route)
                    .await
                    .unwrap_or_else(ApiError::into_response),
                Err(e) => e.into_response(),
            }
        };
        let status = resp.status();
        tracing::Span::current().record("status", status.as_u16());
        state
            .metrics
            .requests
            .with_label_values(&[template, status.as_str()])
            .inc();
        if status.is_server_error() {
            tracing::warn!(path = %req.uri().path(), "request failed");
        } else if status.is_client_error() {
            tracing::info!(path = %req.uri().path(), "request refused");
        } else {
            tracing::debug!("request served");
        }
        resp
    }
    .instrument(span)
    .await
}

fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

async fn handle(
    req: &HttpRequest,
    state: &AppState,
    route: Route,
) -> Result<HttpResponse, ApiError> {
    let m = req.method();
    let get_or_head = *m == Method::GET || *m == Method::HEAD;
    if route.is_gated() {
        if let Some(token) = &state.config.token {
            let ok = bearer(req).is_some_and(|t| ct_eq(t.as_bytes(), token.as_bytes()));
            if !ok {
                return Err(ApiError::unauthorized(
                    "this server requires a token (Authorization: Bearer <token>)",
                ));
            }
        }
    }
    match route {
        Route::Metrics if get_or_head => Ok(HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(state.metrics.render())),
        Route::Health if get_or_head => Ok(HttpResponse::Ok().body("ok\n")),
        Route::Ready if get_or_head => Ok(HttpResponse::Ok().body("ready\n")),
        Route::Resolve {
            org,
            name,
            rev,
            path,
        } if get_or_head => hub::resolve(req, state, &org, &name, &rev, &path).await,
        Route::ModelInfo { org, name, rev } if get_or_head => {
            hub::model_info(state, &org, &name, rev.as_deref())
        }
        Route::Tree {
            org,
            name,
            rev,
            path,
        } if get_or_head => hub::tree(req, state, &org, &name, &rev, path.as_deref()),
        Route::XetReadToken { org, name, rev } if get_or_head => {
            hub::xet_read_token(req, state, &org, &name, &rev)
        }
        Route::AgentHarnesses => Err(ApiError::not_found("not served here")),
        Route::Telemetry if *m == Method::POST => {
            Ok(HttpResponse::Ok().json(serde_json::json!({})))
        }
        Route::Reconstruction { version, hash } if get_or_head => {
            cas::reconstruction(req, state, version, &hash)
        }
        Route::Xorb { hash } if get_or_head => cas::xorb_range(req, state, &hash).await,
        Route::Unknown => Err(ApiError::not_found("no such route")),
        _ => Err(method_not_allowed()),
    }
}
