//! `POST /v1/warm`: pulls a whole revision into the cache ahead of demand (revision, tree,
//! token, then every Xet file through the same verified, single-flight path as clients) and pins
//! its ranges under `repo@revision`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use xet::cas::CasJwtInfo;
use xet::MerkleHash;

use crate::edge::{read_bounded, Edge};
use crate::http::WarmRequest;

/// Most tree pages followed.
const MAX_TREE_PAGES: usize = 10_000;

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

#[derive(Debug, Deserialize)]
struct RevisionInfo {
    sha: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TreeEntry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    xet_hash: Option<String>,
}

fn valid_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
        && !s.split('/').any(|p| p.is_empty() || p == "." || p == "..")
}

async fn get_json<T: serde::de::DeserializeOwned>(
    edge: &Edge,
    url: &str,
    auth: Option<&str>,
) -> Result<(T, Option<String>), String> {
    let mut rb = edge.hub.get(url).timeout(Duration::from_secs(60));
    if let Some(a) = auth {
        rb = rb.header("authorization", a);
    }
    let resp = rb.send().await.map_err(|e| format!("GET {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("GET {url}: status {}", resp.status()));
    }
    let next = resp
        .headers()
        .get("link")
        .and_then(|v| v.to_str().ok())
        .and_then(next_link);
    let body = read_bounded(resp, 64 << 20).await?;
    let v = serde_json::from_slice(&body).map_err(|e| format!("GET {url}: {e}"))?;
    Ok((v, next))
}

/// The `rel="next"` target of a `Link` header.
pub fn next_link(h: &str) -> Option<String> {
    h.split(',').find_map(|part| {
        let (u, rest) = part.trim().split_once(';')?;
        rest.contains("rel=\"next\"").then(|| {
            u.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

/// Warms `req.repo@req.revision`; `auth` is the caller's Authorization, forwarded to the hub.
pub async fn warm(
    edge: &Edge,
    req: &WarmRequest,
    auth: Option<&str>,
) -> Result<WarmResult, String> {
    if !valid_part(&req.repo) || !valid_part(&req.revision) {
        return Err("bad repo or revision".into());
    }
    let kind = match req.repo_type.as_deref() {
        None | Some("model") => "models",
        Some("dataset") => "datasets",
        Some("space") => "spaces",
        Some(o) => return Err(format!("unknown repo_type {o:?}")),
    };
    let base = &edge.upstream;
    let (rev, _) = get_json::<RevisionInfo>(
        edge,
        &format!("{base}/api/{kind}/{}/revision/{}", req.repo, req.revision),
        auth,
    )
    .await?;
    if !valid_part(&rev.sha) {
        return Err("bad commit in revision answer".into());
    }
    let mut files: Vec<MerkleHash> = Vec::new();
    let mut url = Some(format!(
        "{base}/api/{kind}/{}/tree/{}?recursive=true&expand=false",
        req.repo, rev.sha
    ));
    let mut pages = 0;
    while let Some(u) = url.take() {
        pages += 1;
        if pages > MAX_TREE_PAGES {
            return Err("tree has too many pages".into());
        }
        // Paging links may point at the edge (rewritten) or at upstream.
        let u = u.replace(&edge.public_url, base);
        if !u.starts_with(base.as_str()) {
            return Err("tree paging link leaves the upstream".into());
        }
        let (entries, next) = get_json::<Vec<TreeEntry>>(edge, &u, auth).await?;
        for e in entries {
            if e.kind != "file" {
                continue;
            }
            if let Some(h) = e
                .xet_hash
                .as_deref()
                .and_then(|h| MerkleHash::from_hex(h).ok())
            {
                files.push(h);
            }
        }
        url = next;
    }
    let mut result = WarmResult {
        repo: req.repo.clone(),
        revision: req.revision.clone(),
        commit: rev.sha.clone(),
        xet_files: files.len(),
        ranges: 0,
        bytes: 0,
    };
    if files.is_empty() {
        return Ok(result);
    }
    let (token, _) = get_json::<CasJwtInfo>(
        edge,
        &format!("{base}/api/{kind}/{}/xet-read-token/{}", req.repo, rev.sha),
        auth,
    )
    .await?;
    let cas = token.cas_url.trim_end_matches('/').to_string();
    let mut pins = Vec::new();
    for f in files {
        let entries = edge
            .ensure_file(&cas, &token.access_token, &f)
            .await
            .map_err(|e| format!("file {f}: {e}"))?;
        for e in entries {
            result.ranges += 1;
            result.bytes += e.bytes.len();
            pins.push((e.xorb, e.chunks.start..e.chunks.end));
        }
    }
    let label = format!("{}@{}", req.repo, req.revision);
    let store = edge.store.clone();
    tokio::task::spawn_blocking(move || store.pin(&label, &pins))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("pinning: {e}"))?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_and_names() {
        assert_eq!(
            next_link("<http://h/api/models/a/b/tree/x?cursor=3>; rel=\"next\"").as_deref(),
            Some("http://h/api/models/a/b/tree/x?cursor=3")
        );
        assert_eq!(next_link("<http://h/x>; rel=\"prev\""), None);
        assert!(valid_part("org/name"));
        assert!(!valid_part("org/../x"));
        assert!(!valid_part("a b"));
    }
}
