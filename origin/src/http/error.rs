//! The one error type of the HTTP layer: a status, a message, and the Hub's `X-Error-Code`.
//!
//! Every handler returns `Result<HttpResponse, ApiError>`; the error becomes a JSON body
//! `{"error": "..."}` (the Hub client shows it) with `X-Error-Code` and `X-Error-Message`
//! headers where the Hub sets them (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`).

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

/// An HTTP error answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub code: Option<&'static str>,
    /// Total length for a 416 answer (`Content-Range: bytes */len`).
    pub range_len: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            code: None,
            range_len: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    pub fn not_satisfiable(len: u64) -> Self {
        ApiError {
            range_len: Some(len),
            ..Self::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("range not satisfiable for length {len}"),
            )
        }
    }

    pub fn repo_not_found(repo: &str) -> Self {
        ApiError {
            code: Some("RepoNotFound"),
            ..Self::not_found(format!("Repository {repo} not found"))
        }
    }

    pub fn revision_not_found(rev: &str) -> Self {
        ApiError {
            code: Some("RevisionNotFound"),
            ..Self::not_found(format!("Invalid rev id: {rev}"))
        }
    }

    pub fn entry_not_found(path: &str) -> Self {
        ApiError {
            code: Some("EntryNotFound"),
            ..Self::not_found(format!("Entry not found: {path}"))
        }
    }

    pub fn into_response(self) -> HttpResponse {
        let mut b = HttpResponse::build(self.status);
        if let Some(code) = self.code {
            b.insert_header(("X-Error-Code", code));
        }
        if let Some(len) = self.range_len {
            b.insert_header(("Content-Range", format!("bytes */{len}")));
        }
        // Header values must be visible ASCII; messages built here are.
        if self.message.bytes().all(|c| (0x20..0x7f).contains(&c)) {
            b.insert_header(("X-Error-Message", self.message.clone()));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            b.insert_header(("WWW-Authenticate", "Bearer"));
        }
        b.json(serde_json::json!({ "error": self.message }))
    }
}
