//! `POST /v1/warm`: pulls a whole revision into the cache ahead of demand (revision, tree,
//! token, then every Xet file through the same verified, single-flight path as clients) and pins
//! its ranges under `repo@revision`. The Hub calls are [`hub::HubClient`]'s (retried by its
//! policy, names encoded, one `Link` parser), made with the caller's Authorization.

use hub::{HubError, RepoType};
use serde::{Deserialize, Serialize};
use xet::MerkleHash;

use crate::edge::Edge;

/// `POST /v1/warm` body.
#[derive(Debug, Deserialize)]
pub struct WarmRequest {
    pub repo: String,
    #[serde(default = "main_rev")]
    pub revision: String,
    /// `model` (default), `dataset` or `space`.
    #[serde(default)]
    pub repo_type: Option<String>,
}

fn main_rev() -> String {
    "main".into()
}

/// The label a warm of `repo@revision` pins its ranges under.
pub fn pin_label(repo: &str, revision: &str) -> String {
    format!("{repo}@{revision}")
}

/// What a warm did.
#[derive(Debug, Serialize)]
pub struct WarmResult {
    pub repo: String,
    pub revision: String,
    pub commit: String,
    pub xet_files: usize,
    pub ranges: usize,
    pub bytes: u64,
}

/// Why a warm failed.
#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    #[error("bad repo or revision")]
    BadName,
    #[error("unknown repo_type {0:?}")]
    RepoType(String),
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error("file {file}: {why}")]
    File { file: MerkleHash, why: String },
    #[error("pinning: {0}")]
    Pin(String),
}

fn valid_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
        && !s.split('/').any(|p| p.is_empty() || p == "." || p == "..")
}

/// Warms `req.repo@req.revision`; `auth` is the caller's Authorization, forwarded to the hub.
pub async fn warm(
    edge: &Edge,
    req: &WarmRequest,
    auth: Option<&str>,
) -> Result<WarmResult, WarmError> {
    if !valid_part(&req.repo) || !valid_part(&req.revision) {
        return Err(WarmError::BadName);
    }
    let kind = match req.repo_type.as_deref() {
        None => RepoType::Model,
        Some(t) => RepoType::parse(t).ok_or_else(|| WarmError::RepoType(t.to_string()))?,
    };
    // Paging links may point at the edge (rewritten) or at upstream.
    let hub = edge
        .upstream_client
        .with_authorization(auth)
        .with_link_alias(&edge.public_url);
    let commit = hub.resolve_revision(kind, &req.repo, &req.revision).await?;
    let files: Vec<MerkleHash> = hub
        .list_files(kind, &req.repo, &commit)
        .await?
        .iter()
        .filter_map(|e| e.xet_hash.as_deref())
        .filter_map(|h| MerkleHash::from_hex(h).ok())
        .collect();
    let mut result = WarmResult {
        repo: req.repo.clone(),
        revision: req.revision.clone(),
        commit: commit.clone(),
        xet_files: files.len(),
        ranges: 0,
        bytes: 0,
    };
    if files.is_empty() {
        return Ok(result);
    }
    let token = hub.xet_read_token(kind, &req.repo, &commit).await?;
    let cas = token.cas_url.trim_end_matches('/').to_string();
    let mut pins = Vec::new();
    for f in files {
        let entries = edge
            .ensure_file(&cas, &token.access_token, &f)
            .await
            .map_err(|e| WarmError::File {
                file: f,
                why: e.to_string(),
            })?;
        for e in entries {
            result.ranges += 1;
            result.bytes += e.bytes.len();
            pins.push((e.xorb, e.chunks.start..e.chunks.end));
        }
    }
    let label = pin_label(&req.repo, &req.revision);
    let store = edge.store.clone();
    tokio::task::spawn_blocking(move || store.pin(&label, &pins))
        .await
        .map_err(|e| WarmError::Pin(e.to_string()))?
        .map_err(|e| WarmError::Pin(e.to_string()))?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_part("org/name"));
        assert!(valid_part("refs/pr/1"));
        assert!(!valid_part("org/../x"));
        assert!(!valid_part("a b"));
    }
}
