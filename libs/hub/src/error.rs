//! [`HubError`]: why a Hub or CAS call failed, and whether another attempt may help.

use std::time::Duration;

use reqwest::StatusCode;

/// A failed Hub or CAS call.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The server answered a status the call does not accept.
    #[error("{what}: HTTP {status}{}", status_hint(*status))]
    Status {
        what: &'static str,
        status: StatusCode,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The answer is (or announces itself) longer than the call accepts.
    #[error("{what}: answer larger than {limit} bytes")]
    TooLarge { what: &'static str, limit: u64 },
    /// The answer arrived but makes no sense (bad JSON, wrong length, a link to another host).
    #[error("{what}: {detail}")]
    InvalidResponse { what: &'static str, detail: String },
    /// Connecting, sending or reading the body failed.
    #[error("{what}: {source}")]
    Transport {
        what: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// A name refused before anything used it (repo id, revision, path, commit).
    #[error("{0}")]
    InvalidName(String),
    /// Writing a downloaded file failed.
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// 408, 429 and 5xx: the statuses another attempt may turn into a success.
pub(crate) fn retryable_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

fn status_hint(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            " (a gated or private repo needs HF_TOKEN)"
        }
        StatusCode::NOT_FOUND => " (no such repo, revision or file)",
        _ => "",
    }
}

impl HubError {
    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        HubError::InvalidResponse {
            what,
            detail: detail.into(),
        }
    }

    pub(crate) fn transport(what: &'static str, source: reqwest::Error) -> Self {
        HubError::Transport { what, source }
    }

    /// The HTTP status, for a [`HubError::Status`].
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            HubError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether another attempt may succeed: 408, 429 and 5xx answers, and transport failures
    /// (timeouts, refused or reset connections, broken bodies). Never another 4xx, a refused
    /// name, a too-large or nonsensical answer.
    pub fn is_retryable(&self) -> bool {
        match self {
            HubError::Status { status, .. } => retryable_status(*status),
            HubError::Transport { source, .. } => {
                source.is_timeout()
                    || source.is_connect()
                    || source.is_request()
                    || source.is_body()
                    || source.is_decode()
            }
            _ => false,
        }
    }

    /// The server's `Retry-After`, if this is a status answer that carried one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HubError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
