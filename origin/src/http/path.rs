//! Request routing: turns a raw request path into a [`Route`], validating every part.
//!
//! The raw (still percent-encoded) path is split on `/` and each segment decoded once; a
//! segment that decodes to `.`, `..`, contains `\`, a control character, or is empty (which
//! catches `//etc/passwd` style absolute paths) makes the request a 400. Repo, revision and
//! file names are then only looked up in the catalog, never joined to a file-system path.

use percent_encoding::percent_decode_str;

use super::error::ApiError;
use crate::faults::RouteClass;
use crate::scan::is_valid_file_path;

/// A parsed request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Metrics,
    Health,
    /// `/readyz`: the index is built before the server listens, so serving means ready.
    Ready,
    Resolve {
        org: String,
        name: String,
        rev: String,
        path: String,
    },
    ModelInfo {
        org: String,
        name: String,
        rev: Option<String>,
    },
    Tree {
        org: String,
        name: String,
        rev: String,
        path: Option<String>,
    },
    XetReadToken {
        org: String,
        name: String,
        rev: String,
    },
    AgentHarnesses,
    Telemetry,
    Reconstruction {
        version: u8,
        hash: String,
    },
    Xorb {
        hash: String,
    },
    Unknown,
}

impl Route {
    /// Route template, the `route` label of metrics (bounded).
    pub fn template(&self) -> &'static str {
        match self {
            Route::Metrics => "/metrics",
            Route::Health => "/healthz",
            Route::Ready => "/readyz",
            Route::Resolve { .. } => "/{repo}/resolve/{rev}/{path}",
            Route::ModelInfo { rev: Some(_), .. } => "/api/models/{repo}/revision/{rev}",
            Route::ModelInfo { rev: None, .. } => "/api/models/{repo}",
            Route::Tree { .. } => "/api/models/{repo}/tree/{rev}",
            Route::XetReadToken { .. } => "/api/models/{repo}/xet-read-token/{rev}",
            Route::AgentHarnesses => "/api/agent-harnesses",
            Route::Telemetry => "/telemetry",
            Route::Reconstruction { version: 1, .. } => "/v1/reconstructions/{hash}",
            Route::Reconstruction { .. } => "/v2/reconstructions/{hash}",
            Route::Xorb { .. } => "/xorbs/default/{hash}",
            Route::Unknown => "other",
        }
    }

    /// Which faults may apply.
    pub fn class(&self) -> RouteClass {
        match self {
            Route::Metrics | Route::Health | Route::Ready => RouteClass::Exempt,
            Route::Reconstruction { .. } | Route::Telemetry => RouteClass::Cas,
            Route::Xorb { .. } => RouteClass::Xorb,
            _ => RouteClass::Hub,
        }
    }

    /// Whether the Hub token (`--token`) is required.
    pub fn is_gated(&self) -> bool {
        matches!(
            self,
            Route::Resolve { .. }
                | Route::ModelInfo { .. }
                | Route::Tree { .. }
                | Route::XetReadToken { .. }
        )
    }
}

/// Longest request path accepted.
const MAX_PATH: usize = 8192;

fn decode(seg: &str) -> Result<String, ApiError> {
    let s = percent_decode_str(seg)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("path is not valid UTF-8"))?
        .into_owned();
    if s == "." || s == ".." || s.contains('\\') || s.chars().any(char::is_control) {
        return Err(ApiError::bad_request("invalid path segment"));
    }
    Ok(s)
}

/// Parses the raw path of a request.
pub fn parse(raw: &str) -> Result<Route, ApiError> {
    if raw.len() > MAX_PATH {
        return Err(ApiError::bad_request("path too long"));
    }
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(ApiError::bad_request("path must start with /"));
    };
    let raw_segs: Vec<&str> = rest.split('/').collect();
    // Trailing slash on API routes is tolerated; empty segments elsewhere are not.
    let mut segs = Vec::with_capacity(raw_segs.len());
    for (i, s) in raw_segs.iter().enumerate() {
        if s.is_empty() {
            if i + 1 == raw_segs.len() && i > 0 {
                continue;
            }
            return Err(ApiError::bad_request("empty path segment"));
        }
        segs.push(decode(s)?);
    }
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let file_path = |parts: &[&str]| -> Result<String, ApiError> {
        let p = parts.join("/");
        if is_valid_file_path(&p) {
            Ok(p)
        } else {
            Err(ApiError::bad_request("invalid file path"))
        }
    };
    let route = match s.as_slice() {
        ["metrics"] => Route::Metrics,
        ["healthz"] => Route::Health,
        ["readyz"] => Route::Ready,
        ["api", "agent-harnesses", ..] => Route::AgentHarnesses,
        ["v1", "telemetry"] | ["api", "telemetry", ..] => Route::Telemetry,
        [v @ ("v1" | "v2"), "reconstructions", hash] => Route::Reconstruction {
            version: if *v == "v1" { 1 } else { 2 },
            hash: hash.to_string(),
        },
        ["xorbs", "default", hash] | ["v1", "xorbs", "default", hash] => Route::Xorb {
            hash: hash.to_string(),
        },
        ["api", "models", org, name] => Route::ModelInfo {
            org: org.to_string(),
            name: name.to_string(),
            rev: None,
        },
        ["api", "models", org, name, "revision", rev] => Route::ModelInfo {
            org: org.to_string(),
            name: name.to_string(),
            rev: Some(rev.to_string()),
        },
        ["api", "models", org, name, "tree", rev, path @ ..] => Route::Tree {
            org: org.to_string(),
            name: name.to_string(),
            rev: rev.to_string(),
            path: if path.is_empty() {
                None
            } else {
                Some(file_path(path)?)
            },
        },
        ["api", "models", org, name, "xet-read-token", rev] => Route::XetReadToken {
            org: org.to_string(),
            name: name.to_string(),
            rev: rev.to_string(),
        },
        [org, name, "resolve", rev, path @ ..] if !path.is_empty() && *org != "api" => {
            Route::Resolve {
                org: org.to_string(),
                name: name.to_string(),
                rev: rev.to_string(),
                path: file_path(path)?,
            }
        }
        _ => Route::Unknown,
    };
    Ok(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(org: &str, name: &str, rev: &str, path: &str) -> Route {
        Route::Resolve {
            org: org.into(),
            name: name.into(),
            rev: rev.into(),
            path: path.into(),
        }
    }

    #[test]
    fn parses_routes() {
        assert_eq!(
            parse("/o/m/resolve/main/sub/dir/w.bin"),
            Ok(resolve("o", "m", "main", "sub/dir/w.bin"))
        );
        assert_eq!(
            parse("/o/m/resolve/main/a%20b.txt"),
            Ok(resolve("o", "m", "main", "a b.txt"))
        );
        assert_eq!(
            parse("/o/m/resolve/refs%2Fpr%2F1/x"),
            Ok(resolve("o", "m", "refs/pr/1", "x"))
        );
        assert_eq!(
            parse("/api/models/o/m/tree/main"),
            Ok(Route::Tree {
                org: "o".into(),
                name: "m".into(),
                rev: "main".into(),
                path: None
            })
        );
        assert_eq!(
            parse("/api/models/o/m/tree/main/sub/dir"),
            Ok(Route::Tree {
                org: "o".into(),
                name: "m".into(),
                rev: "main".into(),
                path: Some("sub/dir".into())
            })
        );
        assert_eq!(
            parse("/v2/reconstructions/abc"),
            Ok(Route::Reconstruction {
                version: 2,
                hash: "abc".into()
            })
        );
        assert_eq!(
            parse("/xorbs/default/abc"),
            Ok(Route::Xorb { hash: "abc".into() })
        );
        assert_eq!(
            parse("/api/models/o/m/revision/main/"),
            parse("/api/models/o/m/revision/main")
        );
        assert_eq!(parse("/nothing/here"), Ok(Route::Unknown));
    }

    #[test]
    fn rejects_traversal() {
        for p in [
            "/o/m/resolve/main/../../etc/passwd",
            "/o/m/resolve/main/%2e%2e/%2e%2e/etc/passwd",
            "/o/m/resolve/main/%2E%2E%2Fsecret",
            "/o/m/resolve/main//etc/passwd",
            "/o/m/resolve/main/a%2F%2Fb",
            "/o/m/resolve/main/a%5cb",
            "/o/m/resolve/main/a%00b",
            "/o/m/resolve/main/%ff",
            "/../o/m/resolve/main/x",
            "/o/m/resolve/main/./x",
        ] {
            let e = parse(p).expect_err(p);
            assert_eq!(e.status.as_u16(), 400, "{p}");
        }
    }
}
