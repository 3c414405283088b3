//! The admin routes of the HTTP port: `POST /v1/warm` (pull a revision into the cache and pin
//! it), `POST /v1/unpin` and `GET /v1/pins`. Each needs the edge's admin token in the
//! [`ADMIN_TOKEN_HEADER`] header (the `Authorization` header stays the caller's Hugging Face
//! token, forwarded to the hub by warm). Without a configured token they are refused, unless
//! the edge was started with `--admin-no-auth` on a loopback HTTP listener.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::edge::Edge;
use crate::http::HttpError;
pub use crate::http::ADMIN_TOKEN_HEADER;
use crate::warm::WarmRequest;

/// Who may call the admin routes.
#[derive(Clone)]
pub enum AdminAuth {
    /// Callers presenting this token.
    Token(String),
    /// Anyone (`--admin-no-auth`, loopback listener only).
    Open,
    /// No one: no token configured.
    Closed,
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AdminAuth::Token(_) => "Token(<redacted>)",
            AdminAuth::Open => "Open",
            AdminAuth::Closed => "Closed",
        })
    }
}

impl AdminAuth {
    /// From the flags: a token, or `no_auth`, which is refused unless the HTTP listener is
    /// on loopback.
    pub fn from_flags(
        token: Option<&str>,
        no_auth: bool,
        http: SocketAddr,
    ) -> Result<AdminAuth, String> {
        match (token.filter(|t| !t.is_empty()), no_auth) {
            (Some(_), true) => Err("--admin-token and --admin-no-auth exclude each other".into()),
            (Some(t), false) => Ok(AdminAuth::Token(t.to_string())),
            (None, true) if http.ip().is_loopback() => Ok(AdminAuth::Open),
            (None, true) => Err(format!(
                "--admin-no-auth needs a loopback HTTP listener, not {http}"
            )),
            (None, false) => Ok(AdminAuth::Closed),
        }
    }

    /// Ok when the request may use an admin route.
    pub fn check(&self, req: &HttpRequest) -> Result<(), HttpError> {
        let given = req
            .headers()
            .get(ADMIN_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok());
        match self {
            AdminAuth::Open => Ok(()),
            AdminAuth::Closed => Err(HttpError::new(
                StatusCode::FORBIDDEN,
                "admin routes are disabled: no --admin-token configured",
            )),
            AdminAuth::Token(t) => match given {
                Some(g) if constant_time_eq(g.as_bytes(), t.as_bytes()) => Ok(()),
                _ => Err(HttpError::new(
                    StatusCode::UNAUTHORIZED,
                    format!("admin token required in {ADMIN_TOKEN_HEADER}"),
                )),
            },
        }
    }
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Registers the admin routes (before the cache-proxy's catch-all).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/warm", web::post().to(warm))
        .route("/v1/unpin", web::post().to(unpin))
        .route("/v1/pins", web::get().to(pins));
}

type HttpResult<T> = std::result::Result<T, HttpError>;

async fn warm(
    edge: web::Data<Arc<Edge>>,
    auth: web::Data<AdminAuth>,
    req: HttpRequest,
    body: web::Json<WarmRequest>,
) -> HttpResult<HttpResponse> {
    auth.check(&req)?;
    let hf_auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let out = crate::warm::warm(&edge, &body, hf_auth.as_deref())
        .await
        .map_err(|e| HttpError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
    Ok(HttpResponse::Ok().json(out))
}

/// `POST /v1/unpin` body: the pin label, or the repo and revision a warm pinned.
#[derive(Debug, Deserialize)]
pub struct UnpinRequest {
    pub label: Option<String>,
    pub repo: Option<String>,
    pub revision: Option<String>,
}

async fn unpin(
    edge: web::Data<Arc<Edge>>,
    auth: web::Data<AdminAuth>,
    req: HttpRequest,
    body: web::Json<UnpinRequest>,
) -> HttpResult<HttpResponse> {
    auth.check(&req)?;
    let label = match (&body.label, &body.repo) {
        (Some(l), None) => l.clone(),
        (None, Some(repo)) => {
            crate::warm::pin_label(repo, body.revision.as_deref().unwrap_or("main"))
        }
        _ => {
            return Err(HttpError::new(
                StatusCode::BAD_REQUEST,
                "give either label or repo (and revision)",
            ))
        }
    };
    let store = edge.store.clone();
    let l = label.clone();
    let existed = tokio::task::spawn_blocking(move || store.unpin(&l))
        .await
        .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "label": label, "unpinned": existed })))
}

async fn pins(
    edge: web::Data<Arc<Edge>>,
    auth: web::Data<AdminAuth>,
    req: HttpRequest,
) -> HttpResult<HttpResponse> {
    auth.check(&req)?;
    let pins: Vec<serde_json::Value> = edge
        .store
        .pins()
        .into_iter()
        .map(|(label, ranges)| serde_json::json!({ "label": label, "ranges": ranges.len() }))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "pins": pins })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_auth_only_on_loopback_and_never_with_a_token() {
        let lo: SocketAddr = "127.0.0.1:8081".parse().expect("addr");
        let lan: SocketAddr = "0.0.0.0:8081".parse().expect("addr");
        assert!(matches!(
            AdminAuth::from_flags(None, true, lo),
            Ok(AdminAuth::Open)
        ));
        assert!(AdminAuth::from_flags(None, true, lan).is_err());
        assert!(AdminAuth::from_flags(Some("t"), true, lo).is_err());
        assert!(matches!(
            AdminAuth::from_flags(None, false, lan),
            Ok(AdminAuth::Closed)
        ));
        assert!(matches!(
            AdminAuth::from_flags(Some(""), false, lan),
            Ok(AdminAuth::Closed)
        ));
        assert!(matches!(
            AdminAuth::from_flags(Some("t"), false, lan),
            Ok(AdminAuth::Token(_))
        ));
        assert_eq!(
            format!("{:?}", AdminAuth::Token("secret".into())),
            "Token(<redacted>)"
        );
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
