//! HTTP client of the Hugging Face Hub API and the Xet CAS API, as `zest pull` uses them:
//! revision → commit, recursive tree listing (with `Link` paging), the Xet read token, v2
//! reconstructions (v1 fallback), xorb range GETs (never with an Authorization header) and plain
//! file GETs. Every call retries 429/5xx/timeouts a bounded number of times with backoff. Names
//! coming from the server (repo ids, revisions, commit ids, file paths) are validated here before
//! anything uses them to build a path on disk.

use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use reqwest::{header, Method, StatusCode};
use serde::Deserialize;
use xet::cas::{CasJwtInfo, ReconstructionV1, ReconstructionV2};
use xet::MerkleHash;

/// Attempts per request (1 + retries).
pub const MAX_ATTEMPTS: u32 = 8;
/// Longest accepted JSON answer (tree pages, reconstructions).
pub const MAX_JSON_BYTES: usize = 64 << 20;
/// Most tree pages followed.
pub const MAX_TREE_PAGES: usize = 10_000;

/// One entry of `GET /api/models/{repo}/tree/{rev}?recursive=true`.
#[derive(Debug, Clone, Deserialize)]
pub struct TreeEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub path: String,
    #[serde(default)]
    pub size: u64,
    /// Git blob sha1.
    #[serde(default)]
    pub oid: String,
    #[serde(default)]
    pub lfs: Option<LfsInfo>,
    #[serde(default, rename = "xetHash")]
    pub xet_hash: Option<String>,
}

/// The LFS pointer of a tree entry.
#[derive(Debug, Clone, Deserialize)]
pub struct LfsInfo {
    /// sha256 of the content.
    pub oid: String,
    pub size: u64,
}

#[derive(Debug, Deserialize)]
struct RevisionInfo {
    sha: String,
}

/// A failure that is worth another attempt.
fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// Backoff before attempt `n` (1-based retry number): 100 ms doubling, capped at 2 s, with jitter.
fn backoff(n: u32, retry_after: Option<Duration>) -> Duration {
    let base = Duration::from_millis(100u64 << n.min(5)).min(Duration::from_secs(2));
    let jitter = Duration::from_millis(rand::random::<u64>() % 50);
    retry_after
        .map(|r| r.min(Duration::from_secs(2)))
        .unwrap_or(base)
        + jitter
}

/// Hub + CAS client.
#[derive(Debug, Clone)]
pub struct HubClient {
    http: reqwest::Client,
    endpoint: String,
    token: Option<String>,
    /// Counted retries (for the summary).
    retries: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl HubClient {
    /// `endpoint` like `https://huggingface.co` (no trailing slash needed); `token` goes only to
    /// the Hub.
    pub fn new(endpoint: &str, token: Option<String>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("zest/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token,
            retries: Default::default(),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Retries made so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sends a request built by `build` until it gets a non-retryable answer or runs out of
    /// attempts. Returns the final response whatever its status (the caller decides).
    async fn send(
        &self,
        what: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        let mut last_err = None;
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                self.retries
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            match build().send().await {
                Ok(resp) if retryable(resp.status()) && attempt + 1 < MAX_ATTEMPTS => {
                    let retry_after = resp
                        .headers()
                        .get(header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    tracing::debug!(what, status = %resp.status(), attempt, "retrying");
                    last_err = Some(anyhow::anyhow!("{what}: HTTP {}", resp.status()));
                    tokio::time::sleep(backoff(attempt + 1, retry_after)).await;
                }
                Ok(resp) => return Ok(resp),
                Err(e)
                    if attempt + 1 < MAX_ATTEMPTS
                        && (e.is_timeout() || e.is_connect() || e.is_request() || e.is_body()) =>
                {
                    tracing::debug!(what, error = %e, attempt, "retrying");
                    last_err = Some(anyhow::Error::new(e).context(what.to_string()));
                    tokio::time::sleep(backoff(attempt + 1, None)).await;
                }
                Err(e) => return Err(anyhow::Error::new(e).context(what.to_string())),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("{what}: no attempt made")))
    }

    /// Reads a body of at most `limit` bytes, retrying the whole request on a broken body.
    async fn get_bytes(
        &self,
        what: &str,
        limit: usize,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> anyhow::Result<(reqwest::header::HeaderMap, Bytes)> {
        let mut last = None;
        for _ in 0..3 {
            let resp = self.send(what, &build).await?;
            let status = resp.status();
            if !status.is_success() {
                bail!("{what}: HTTP {status}");
            }
            if resp.content_length().is_some_and(|n| n > limit as u64) {
                bail!("{what}: answer larger than {limit} bytes");
            }
            let headers = resp.headers().clone();
            match read_limited(resp, limit).await {
                Ok(b) => return Ok((headers, b)),
                Err(e) => last = Some(e.context(what.to_string())),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("{what}: failed")))
    }

    fn hub_get(&self, url: &str) -> reqwest::RequestBuilder {
        let mut rb = self.http.request(Method::GET, url);
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        rb
    }

    /// `GET /api/models/{repo}/revision/{rev}` → the commit id (validated).
    pub async fn resolve_revision(&self, repo: &str, rev: &str) -> anyhow::Result<String> {
        let url = format!(
            "{}/api/models/{repo}/revision/{}",
            self.endpoint,
            encode_segment(rev)
        );
        let (_, body) = self
            .get_bytes("revision info", MAX_JSON_BYTES, || self.hub_get(&url))
            .await?;
        let info: RevisionInfo =
            serde_json::from_slice(&body).context("revision info: bad JSON")?;
        validate_commit(&info.sha)?;
        Ok(info.sha)
    }

    /// Every file of `commit` (recursive listing, following `Link: rel="next"`). Paths are
    /// validated.
    pub async fn list_files(&self, repo: &str, commit: &str) -> anyhow::Result<Vec<TreeEntry>> {
        let mut url = format!(
            "{}/api/models/{repo}/tree/{commit}?recursive=true&expand=false",
            self.endpoint
        );
        let mut out = Vec::new();
        for _ in 0..MAX_TREE_PAGES {
            let (headers, body) = self
                .get_bytes("tree listing", MAX_JSON_BYTES, || self.hub_get(&url))
                .await?;
            let page: Vec<TreeEntry> =
                serde_json::from_slice(&body).context("tree listing: bad JSON")?;
            for e in page {
                if e.kind == "file" {
                    validate_rel_path(&e.path)?;
                    out.push(e);
                }
            }
            match next_link(&headers) {
                Some(next) => url = self.same_origin(&next)?,
                None => return Ok(out),
            }
        }
        bail!("tree listing: more than {MAX_TREE_PAGES} pages")
    }

    /// A paging link: absolute on the endpoint's host, or relative to it.
    fn same_origin(&self, link: &str) -> anyhow::Result<String> {
        if link.starts_with('/') {
            return Ok(format!("{}{link}", self.endpoint));
        }
        let base = url::Url::parse(&self.endpoint).context("HF_ENDPOINT is not a URL")?;
        let next = url::Url::parse(link).context("tree listing: bad next link")?;
        if next.origin() != base.origin() {
            bail!("tree listing: next link points at another host: {link}");
        }
        Ok(link.to_string())
    }

    /// `GET /api/models/{repo}/xet-read-token/{rev}`.
    pub async fn xet_read_token(&self, repo: &str, rev: &str) -> anyhow::Result<CasJwtInfo> {
        let url = format!(
            "{}/api/models/{repo}/xet-read-token/{}",
            self.endpoint,
            encode_segment(rev)
        );
        let (_, body) = self
            .get_bytes("xet read token", 1 << 20, || self.hub_get(&url))
            .await?;
        let t: CasJwtInfo = serde_json::from_slice(&body).context("xet read token: bad JSON")?;
        url::Url::parse(&t.cas_url).context("xet read token: bad casUrl")?;
        Ok(t)
    }

    /// The reconstruction of `file` (v2, falling back to v1 on 404/501); `range` = file bytes
    /// (inclusive) to ask for, or the whole file.
    pub async fn reconstruction(
        &self,
        cas: &CasJwtInfo,
        file: &MerkleHash,
        range: Option<(u64, u64)>,
    ) -> anyhow::Result<ReconstructionV2> {
        let base = cas.cas_url.trim_end_matches('/');
        let build = |v: &str| {
            let url = format!("{base}/{v}/reconstructions/{file}");
            let tok = cas.access_token.clone();
            move || {
                let mut rb = self.http.get(&url).bearer_auth(&tok);
                if let Some((s, e)) = range {
                    rb = rb.header(header::RANGE, format!("bytes={s}-{e}"));
                }
                rb
            }
        };
        let resp = self.send("reconstruction v2", build("v2")).await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND || status == StatusCode::NOT_IMPLEMENTED {
            let (_, body) = self
                .get_bytes("reconstruction v1", MAX_JSON_BYTES, build("v1"))
                .await?;
            let v1: ReconstructionV1 =
                serde_json::from_slice(&body).context("reconstruction v1: bad JSON")?;
            return Ok(v1.into());
        }
        if !status.is_success() {
            bail!("reconstruction of {file}: HTTP {status}");
        }
        let body = read_limited(resp, MAX_JSON_BYTES)
            .await
            .context("reconstruction v2")?;
        serde_json::from_slice(&body).context("reconstruction v2: bad JSON")
    }

    /// `GET url` with `Range: bytes=start-end` and no Authorization (a presigned xorb URL).
    pub async fn xorb_range(&self, url: &str, start: u64, end: u64) -> anyhow::Result<Bytes> {
        let want = end
            .checked_sub(start)
            .and_then(|d| d.checked_add(1))
            .context("bad byte range")?;
        if want > xorbstore::MAX_RANGE_BYTES as u64 {
            bail!("xorb range of {want} bytes is over the limit");
        }
        let (_, body) = self
            .get_bytes("xorb range", want as usize, || {
                self.http
                    .get(url)
                    .header(header::RANGE, format!("bytes={start}-{end}"))
            })
            .await?;
        if body.len() as u64 != want {
            bail!("xorb range: got {} bytes, asked for {want}", body.len());
        }
        Ok(body)
    }

    /// `GET /{repo}/resolve/{commit}/{path}` streamed into `out`; at most `limit` bytes.
    pub async fn download_file(
        &self,
        repo: &str,
        commit: &str,
        path: &str,
        limit: u64,
        out: &mut tokio::fs::File,
    ) -> anyhow::Result<u64> {
        use tokio::io::AsyncWriteExt;
        let url = format!(
            "{}/{repo}/resolve/{commit}/{}",
            self.endpoint,
            path.split('/')
                .map(encode_segment)
                .collect::<Vec<_>>()
                .join("/")
        );
        for attempt in 0..3 {
            let resp = self.send("file download", || self.hub_get(&url)).await?;
            if !resp.status().is_success() {
                bail!("downloading {path}: HTTP {}", resp.status());
            }
            out.set_len(0).await?;
            use std::io::SeekFrom;
            use tokio::io::AsyncSeekExt;
            out.seek(SeekFrom::Start(0)).await?;
            let mut resp = resp;
            let mut n = 0u64;
            let r: anyhow::Result<()> = async {
                while let Some(c) = resp.chunk().await? {
                    n += c.len() as u64;
                    if n > limit {
                        bail!("downloading {path}: longer than the listed {limit} bytes");
                    }
                    out.write_all(&c).await?;
                }
                Ok(())
            }
            .await;
            match r {
                Ok(()) => {
                    out.flush().await?;
                    return Ok(n);
                }
                Err(e) if attempt < 2 => tracing::debug!(error = %e, "retrying download"),
                Err(e) => return Err(e),
            }
        }
        bail!("downloading {path}: failed")
    }
}

async fn read_limited(mut resp: reqwest::Response, limit: usize) -> anyhow::Result<Bytes> {
    // Sized up front when the length is announced (a 64 MiB range grown by doubling costs
    // page faults and copies).
    let announced = resp.content_length().unwrap_or(0).min(limit as u64) as usize;
    let mut buf = bytes::BytesMut::with_capacity(announced);
    while let Some(c) = resp.chunk().await? {
        if buf.len() + c.len() > limit {
            bail!("answer larger than {limit} bytes");
        }
        buf.extend_from_slice(&c);
    }
    Ok(buf.freeze())
}

/// The `rel="next"` target of a `Link` header.
fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    for v in headers.get_all(header::LINK) {
        let s = v.to_str().ok()?;
        for part in s.split(',') {
            let part = part.trim();
            if part.contains("rel=\"next\"") || part.contains("rel=next") {
                let start = part.find('<')? + 1;
                let end = part.find('>')?;
                if start <= end {
                    return Some(part[start..end].to_string());
                }
            }
        }
    }
    None
}

/// Percent-encodes one URL path segment.
pub fn encode_segment(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
    const SEG: &AsciiSet = &CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'/')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}');
    utf8_percent_encode(s, SEG).to_string()
}

fn name_part_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 96
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A repo id: `org/name`, each 1–96 of `A-Z a-z 0-9 . _ -`, not `.`/`..`.
pub fn validate_repo_id(repo: &str) -> anyhow::Result<()> {
    match repo.split_once('/') {
        Some((org, name)) if name_part_ok(org) && name_part_ok(name) => Ok(()),
        _ => bail!("invalid repo id {repo:?}: expected org/name of letters, digits, . _ -"),
    }
}

/// A revision as the user or a server gives it: 1–256 characters, no control characters,
/// spaces, backslashes, and no `.`/`..`/empty `/`-separated component (it names a file under
/// `refs/`).
pub fn validate_revision(rev: &str) -> anyhow::Result<()> {
    let ok = !rev.is_empty()
        && rev.len() <= 256
        && !rev.chars().any(|c| c.is_control() || c == ' ' || c == '\\')
        && rev
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if !ok {
        bail!("invalid revision {rev:?}");
    }
    Ok(())
}

/// A commit id: 40 or 64 lowercase hex digits.
pub fn validate_commit(commit: &str) -> anyhow::Result<()> {
    if (commit.len() == 40 || commit.len() == 64)
        && commit
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        bail!("the server sent an invalid commit id {commit:?}")
    }
}

/// A file path from the server: relative, `/`-separated, no empty, `.` or `..` component, no
/// backslash, NUL or control character, at most 4096 bytes.
pub fn validate_rel_path(path: &str) -> anyhow::Result<()> {
    let ok = !path.is_empty()
        && path.len() <= 4096
        && !path.starts_with('/')
        && !path.chars().any(|c| c.is_control() || c == '\\')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains(':'));
    if !ok {
        bail!("the server sent an unsafe file path {path:?}");
    }
    Ok(())
}

/// A content id used as a blob file name: 40 (git sha1) or 64 (sha256) lowercase hex digits.
pub fn validate_etag(etag: &str) -> anyhow::Result<()> {
    validate_commit(etag).map_err(|_| anyhow::anyhow!("the server sent an invalid oid {etag:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_from_a_malicious_server_are_refused() {
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "./a",
            "a/.",
            "a\\..\\b",
            "",
            "a\0b",
            "C:/x",
            "a/\n",
        ] {
            assert!(validate_rel_path(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["config.json", "sub/dir/model.safetensors", "a..b/.hidden"] {
            validate_rel_path(good).expect(good);
        }
    }

    #[test]
    fn repo_ids_revisions_and_commits_are_validated() {
        validate_repo_id("acme/model-1.5_x").expect("ok");
        for bad in ["acme", "../x", "a/b/c", "a/..", "a b/c", "/x", "a/"] {
            assert!(validate_repo_id(bad).is_err(), "{bad:?}");
        }
        validate_revision("main").expect("ok");
        validate_revision("refs/pr/1").expect("ok");
        for bad in ["", "../main", "a/../b", "a b", "/x", "a\\b"] {
            assert!(validate_revision(bad).is_err(), "{bad:?}");
        }
        validate_commit(&"a".repeat(40)).expect("ok");
        assert!(validate_commit(&"A".repeat(40)).is_err());
        assert!(validate_commit("../../etc").is_err());
    }

    #[test]
    fn link_header_next_is_found() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            header::LINK,
            "<http://x/api/models/a/b/tree/c?cursor=3>; rel=\"next\""
                .parse()
                .expect("header"),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("http://x/api/models/a/b/tree/c?cursor=3")
        );
    }
}
