//! [`HubClient`]: every request zest makes of the Hub API and the Xet CAS. Each call is one
//! [`RetryPolicy`] run whose attempt covers sending *and* reading the body, so a body cut short
//! is retried like a 503 and nothing above this module needs a retry loop of its own.
//!
//! Bodies are read with a size cap decided before reading (an announced `Content-Length` over
//! it is refused unread); xorb ranges must come back exactly as long as asked. The Hub token
//! goes to the Hub endpoint only, never to the CAS or to a presigned xorb URL.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, ACCEPT_ENCODING, AUTHORIZATION, LOCATION, RANGE, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use xet::cas::ByteRange;
use xet::{CasJwtInfo, MerkleHash, ReconstructionV1, ReconstructionV2};

use crate::error::retryable_status;
use crate::retry::parse_retry_after;
use crate::urls::{encode_path, encode_segment, next_link};
use crate::validate::{validate_commit, validate_rel_path};
use crate::{HubError, RetryPolicy};

/// Longest accepted JSON answer (tree pages, reconstructions).
pub const MAX_JSON_BYTES: u64 = 64 << 20;
/// Longest accepted token answer.
pub const MAX_TOKEN_BYTES: u64 = 1 << 20;
/// Most tree pages followed.
pub const MAX_TREE_PAGES: usize = 10_000;
/// Redirects followed by hand for a `HEAD` of a file.
const MAX_HEAD_REDIRECTS: usize = 5;
/// Time limit of one API request (JSON answers).
const API_TIMEOUT: Duration = Duration::from_secs(120);
/// Time limit of one data request (a xorb range, a file).
const DATA_TIMEOUT: Duration = Duration::from_secs(300);

/// The kind of repo, as the Hub API spells it in URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RepoType {
    #[default]
    Model,
    Dataset,
    Space,
}

impl RepoType {
    /// `model`, `dataset`, `space` (the Hub's `repo_type`); `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "model" => Some(RepoType::Model),
            "dataset" => Some(RepoType::Dataset),
            "space" => Some(RepoType::Space),
            _ => None,
        }
    }

    /// The API path segment: `models`, `datasets`, `spaces`.
    pub fn api_segment(self) -> &'static str {
        match self {
            RepoType::Model => "models",
            RepoType::Dataset => "datasets",
            RepoType::Space => "spaces",
        }
    }
}

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

/// What a `HEAD` of a file's resolve URL said: the URL that answered and its headers.
#[derive(Debug, Clone)]
pub struct FileHead {
    pub url: String,
    pub headers: HeaderMap,
}

/// A CAS read token with the route it came from, refreshed once when the CAS answers 401; and
/// whether the CAS lacks `/v2/reconstructions` (then v1 is asked directly).
#[derive(Debug)]
pub struct CasSession {
    token_url: String,
    jwt: tokio::sync::Mutex<CasJwtInfo>,
    v1_only: AtomicBool,
}

impl CasSession {
    /// `"v2"`, or `"v1"` once `/v2/reconstructions` answered 404/501.
    pub fn reconstruction_api(&self) -> &'static str {
        if self.v1_only.load(Ordering::Relaxed) {
            "v1"
        } else {
            "v2"
        }
    }

    /// The current token.
    pub async fn jwt(&self) -> CasJwtInfo {
        self.jwt.lock().await.clone()
    }
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    body_bytes: AtomicU64,
}

/// Hub + CAS client. Clones share the connection pool and the counters.
#[derive(Debug, Clone)]
pub struct HubClient {
    /// Follows redirects (API calls, CAS, xorb ranges, files).
    http: reqwest::Client,
    /// Follows none (a file's `HEAD` must see the Hub's own headers).
    no_redirect: reqwest::Client,
    endpoint: String,
    /// `Authorization` value sent to `endpoint` only.
    authorization: Option<String>,
    /// Another base paging links may name for the endpoint (an edge's public URL).
    link_alias: Option<String>,
    policy: RetryPolicy,
    counters: Arc<Counters>,
}

impl HubClient {
    /// `endpoint` like `https://huggingface.co` (a trailing slash is dropped); `token` goes only
    /// to the endpoint, as `Bearer`.
    pub fn new(
        endpoint: &str,
        token: Option<String>,
        policy: RetryPolicy,
    ) -> Result<Self, HubError> {
        let build = |redirect| {
            reqwest::Client::builder()
                .user_agent(concat!("zest/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(10))
                .redirect(redirect)
                .build()
                .map_err(HubError::Client)
        };
        Ok(Self {
            http: build(reqwest::redirect::Policy::limited(10))?,
            no_redirect: build(reqwest::redirect::Policy::none())?,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            authorization: token
                .filter(|t| !t.is_empty())
                .map(|t| format!("Bearer {t}")),
            link_alias: None,
            policy,
            counters: Default::default(),
        })
    }

    /// This client sending `authorization` (a whole `Authorization` value) to the endpoint
    /// instead of its token; shares the pool and counters.
    pub fn with_authorization(&self, authorization: Option<&str>) -> Self {
        Self {
            authorization: authorization.map(str::to_string),
            ..self.clone()
        }
    }

    /// Paging links under `alias` are read as links under the endpoint.
    pub fn with_link_alias(mut self, alias: &str) -> Self {
        self.link_alias = Some(alias.trim_end_matches('/').to_string());
        self
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// Requests sent so far (retries included).
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::Relaxed)
    }

    /// Retries made so far.
    pub fn retries(&self) -> u64 {
        self.counters.retries.load(Ordering::Relaxed)
    }

    /// Response body bytes read so far.
    pub fn body_bytes(&self) -> u64 {
        self.counters.body_bytes.load(Ordering::Relaxed)
    }

    /// Runs `once` under the retry policy, counting requests and retries.
    async fn call<T, F, Fut>(&self, what: &'static str, mut once: F) -> Result<T, HubError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, HubError>>,
    {
        self.policy
            .run(
                || {
                    self.counters.requests.fetch_add(1, Ordering::Relaxed);
                    once()
                },
                |n, e| {
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(what, retry = n, error = %e, "retrying");
                },
            )
            .await
    }

    /// Sends `rb`; a 408, 429 or 5xx answer becomes an error the policy retries. Other
    /// statuses are the caller's to judge.
    async fn send(&self, what: &'static str, rb: RequestBuilder) -> Result<Response, HubError> {
        let resp = rb.send().await.map_err(|e| HubError::transport(what, e))?;
        if retryable_status(resp.status()) {
            return Err(status_error(what, &resp));
        }
        Ok(resp)
    }

    /// Reads at most `limit` bytes of body.
    async fn read_body(
        &self,
        what: &'static str,
        mut resp: Response,
        limit: u64,
    ) -> Result<Bytes, HubError> {
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(HubError::TooLarge { what, limit });
        }
        // Sized up front when announced (a 64 MiB range grown by doubling costs copies).
        let announced = resp.content_length().unwrap_or(0).min(limit) as usize;
        let mut buf = BytesMut::with_capacity(announced);
        while let Some(c) = resp
            .chunk()
            .await
            .map_err(|e| HubError::transport(what, e))?
        {
            if (buf.len() + c.len()) as u64 > limit {
                return Err(HubError::TooLarge { what, limit });
            }
            self.counters
                .body_bytes
                .fetch_add(c.len() as u64, Ordering::Relaxed);
            buf.extend_from_slice(&c);
        }
        Ok(buf.freeze())
    }

    /// A GET built by `build` that must answer 2xx with at most `limit` bytes.
    async fn get_bytes(
        &self,
        what: &'static str,
        limit: u64,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<(HeaderMap, Bytes), HubError> {
        self.call(what, || async {
            let resp = self.send(what, build()).await?;
            if !resp.status().is_success() {
                return Err(status_error(what, &resp));
            }
            let headers = resp.headers().clone();
            Ok((headers, self.read_body(what, resp, limit).await?))
        })
        .await
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        what: &'static str,
        limit: u64,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<(HeaderMap, T), HubError> {
        let (headers, body) = self.get_bytes(what, limit, build).await?;
        let v = serde_json::from_slice(&body)
            .map_err(|e| HubError::invalid(what, format!("bad JSON: {e}")))?;
        Ok((headers, v))
    }

    /// Adds the endpoint's `Authorization` when `url` is on the endpoint.
    fn hub_auth(&self, rb: RequestBuilder, url: &str) -> RequestBuilder {
        match &self.authorization {
            Some(a) if url.starts_with(&format!("{}/", self.endpoint)) => {
                rb.header(AUTHORIZATION, a)
            }
            _ => rb,
        }
    }

    fn hub_get(&self, url: &str) -> RequestBuilder {
        self.hub_auth(self.http.get(url).timeout(API_TIMEOUT), url)
    }

    fn api_url(&self, kind: RepoType, repo: &str, route: &str, rev: &str) -> String {
        format!(
            "{}/api/{}/{}/{route}/{}",
            self.endpoint,
            kind.api_segment(),
            encode_path(repo),
            encode_segment(rev)
        )
    }

    /// An absolute URL for a `Location` or `Link` target, which may be relative to the endpoint.
    pub fn absolute(&self, link: &str) -> Result<String, HubError> {
        let base = url::Url::parse(&format!("{}/", self.endpoint))
            .map_err(|e| HubError::InvalidName(format!("endpoint {:?}: {e}", self.endpoint)))?;
        base.join(link)
            .map(String::from)
            .map_err(|e| HubError::invalid("link", format!("bad URL {link:?}: {e}")))
    }

    /// A paging link, which must stay on the endpoint's origin (or its alias).
    fn same_origin(&self, link: &str) -> Result<String, HubError> {
        let link = match &self.link_alias {
            Some(alias) if link.starts_with(alias.as_str()) => {
                format!("{}{}", self.endpoint, &link[alias.len()..])
            }
            _ => link.to_string(),
        };
        let next = self.absolute(&link)?;
        let origin = |u: &str| url::Url::parse(u).map(|u| u.origin());
        if origin(&next).ok() != origin(&self.endpoint).ok() {
            return Err(HubError::invalid(
                "tree listing",
                format!("next link points at another host: {link}"),
            ));
        }
        Ok(next)
    }

    /// `GET /api/{kind}/{repo}/revision/{rev}` → the commit id (validated).
    pub async fn resolve_revision(
        &self,
        kind: RepoType,
        repo: &str,
        rev: &str,
    ) -> Result<String, HubError> {
        let url = self.api_url(kind, repo, "revision", rev);
        let (_, info): (_, RevisionInfo) = self
            .get_json("revision info", MAX_JSON_BYTES, || self.hub_get(&url))
            .await?;
        validate_commit(&info.sha)?;
        Ok(info.sha)
    }

    /// Every file of `commit` (recursive listing, following `Link: rel="next"`). Paths are
    /// validated.
    pub async fn list_files(
        &self,
        kind: RepoType,
        repo: &str,
        commit: &str,
    ) -> Result<Vec<TreeEntry>, HubError> {
        let mut url = format!(
            "{}?recursive=true&expand=false",
            self.api_url(kind, repo, "tree", commit)
        );
        let mut out = Vec::new();
        for _ in 0..MAX_TREE_PAGES {
            let (headers, page): (_, Vec<TreeEntry>) = self
                .get_json("tree listing", MAX_JSON_BYTES, || self.hub_get(&url))
                .await?;
            for e in page {
                if e.kind == "file" {
                    validate_rel_path(&e.path)?;
                    out.push(e);
                }
            }
            match next_link(&headers) {
                Some(next) => url = self.same_origin(next)?,
                None => return Ok(out),
            }
        }
        Err(HubError::invalid(
            "tree listing",
            format!("more than {MAX_TREE_PAGES} pages"),
        ))
    }

    /// `GET /api/{kind}/{repo}/xet-read-token/{rev}`.
    pub async fn xet_read_token(
        &self,
        kind: RepoType,
        repo: &str,
        rev: &str,
    ) -> Result<CasJwtInfo, HubError> {
        self.token_at(&self.token_url(kind, repo, rev)).await
    }

    /// The token route of a repo revision (when a `HEAD` named none).
    pub fn token_url(&self, kind: RepoType, repo: &str, rev: &str) -> String {
        self.api_url(kind, repo, "xet-read-token", rev)
    }

    /// A CAS read token from `url` (a Hub route); its `casUrl` must be http(s).
    pub async fn token_at(&self, url: &str) -> Result<CasJwtInfo, HubError> {
        let (_, t): (_, CasJwtInfo) = self
            .get_json("xet read token", MAX_TOKEN_BYTES, || self.hub_get(url))
            .await?;
        match url::Url::parse(&t.cas_url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Ok(t),
            _ => Err(HubError::invalid(
                "xet read token",
                format!("CAS URL {:?} is not http(s)", t.cas_url),
            )),
        }
    }

    /// A token from `token_url`, kept for [`Self::session_reconstruction`].
    pub async fn cas_session(&self, token_url: String) -> Result<CasSession, HubError> {
        let jwt = self.token_at(&token_url).await?;
        Ok(CasSession {
            token_url,
            jwt: tokio::sync::Mutex::new(jwt),
            v1_only: AtomicBool::new(false),
        })
    }

    /// The reconstruction of `file` (v2, falling back to v1 on 404/501); `range` = the file
    /// bytes to ask for, or the whole file.
    pub async fn reconstruction(
        &self,
        cas: &CasJwtInfo,
        file: &MerkleHash,
        range: Option<ByteRange>,
    ) -> Result<ReconstructionV2, HubError> {
        self.reconstruction_v2_or_v1(cas, file, range, &AtomicBool::new(false))
            .await
    }

    /// v1 when `v1_only` is set, else v2, falling back to v1 (and setting `v1_only`) when the
    /// CAS has no v2.
    async fn reconstruction_v2_or_v1(
        &self,
        cas: &CasJwtInfo,
        file: &MerkleHash,
        range: Option<ByteRange>,
        v1_only: &AtomicBool,
    ) -> Result<ReconstructionV2, HubError> {
        if !v1_only.load(Ordering::Relaxed) {
            match self.reconstruction_v(cas, file, range, "v2").await {
                Err(e) if is_missing_api(&e) => v1_only.store(true, Ordering::Relaxed),
                r => return r,
            }
        }
        self.reconstruction_v(cas, file, range, "v1").await
    }

    /// [`Self::reconstruction`] with `session`'s token, refreshed once on 401, and v1 asked
    /// directly once v2 was found missing.
    pub async fn session_reconstruction(
        &self,
        session: &CasSession,
        file: &MerkleHash,
        range: Option<ByteRange>,
    ) -> Result<ReconstructionV2, HubError> {
        let mut refreshed = false;
        loop {
            let jwt = session.jwt().await;
            let r = self
                .reconstruction_v2_or_v1(&jwt, file, range, &session.v1_only)
                .await;
            match r {
                Err(e) if e.status() == Some(StatusCode::UNAUTHORIZED) && !refreshed => {
                    refreshed = true;
                    tracing::debug!("CAS answered 401; refreshing the read token");
                    let fresh = self.token_at(&session.token_url).await?;
                    *session.jwt.lock().await = fresh;
                }
                r => return r,
            }
        }
    }

    async fn reconstruction_v(
        &self,
        cas: &CasJwtInfo,
        file: &MerkleHash,
        range: Option<ByteRange>,
        version: &'static str,
    ) -> Result<ReconstructionV2, HubError> {
        let what = if version == "v1" {
            "reconstruction v1"
        } else {
            "reconstruction v2"
        };
        let url = format!(
            "{}/{version}/reconstructions/{file}",
            cas.cas_url.trim_end_matches('/')
        );
        let (_, body) = self
            .get_bytes(what, MAX_JSON_BYTES, || {
                let rb = self
                    .http
                    .get(&url)
                    .timeout(API_TIMEOUT)
                    .bearer_auth(&cas.access_token);
                match range {
                    Some(r) => rb.header(RANGE, r.header_value()),
                    None => rb,
                }
            })
            .await?;
        let bad = |e: serde_json::Error| HubError::invalid(what, format!("bad JSON: {e}"));
        if version == "v1" {
            let v1: ReconstructionV1 = serde_json::from_slice(&body).map_err(bad)?;
            Ok(v1.into())
        } else {
            serde_json::from_slice(&body).map_err(bad)
        }
    }

    /// `GET url` with `Range` and no Authorization (a presigned xorb URL): exactly the range's
    /// bytes, refused unread when the range is empty or longer than `max_len`.
    pub async fn xorb_range(
        &self,
        url: &str,
        range: ByteRange,
        max_len: u64,
    ) -> Result<Bytes, HubError> {
        const WHAT: &str = "xorb range";
        let want = range.len();
        if want == 0 {
            return Err(HubError::invalid(WHAT, "empty byte range"));
        }
        if want > max_len {
            return Err(HubError::TooLarge {
                what: WHAT,
                limit: max_len,
            });
        }
        self.call(WHAT, || async {
            let rb = self
                .http
                .get(url)
                .timeout(DATA_TIMEOUT)
                .header(RANGE, range.header_value());
            let resp = self.send(WHAT, rb).await?;
            let status = resp.status();
            if status != StatusCode::PARTIAL_CONTENT
                && !(status == StatusCode::OK && range.start == 0)
            {
                return Err(status_error(WHAT, &resp));
            }
            let body = self.read_body(WHAT, resp, want).await?;
            if body.len() as u64 != want {
                return Err(HubError::invalid(
                    WHAT,
                    format!("got {} bytes, asked for {want}", body.len()),
                ));
            }
            Ok(body)
        })
        .await
    }

    /// Bytes `range` of the plain file at `url` (a resolve URL) of `file_len` bytes: a `Range`
    /// GET, or the whole file cut when the server ignores `Range`.
    pub async fn file_range(
        &self,
        url: &str,
        range: ByteRange,
        file_len: u64,
    ) -> Result<Bytes, HubError> {
        const WHAT: &str = "file range";
        let want = range.len();
        self.call(WHAT, || async {
            let rb = self
                .http
                .get(url)
                .timeout(DATA_TIMEOUT)
                .header(ACCEPT_ENCODING, "identity")
                .header(RANGE, range.header_value());
            let resp = self.send(WHAT, self.hub_auth(rb, url)).await?;
            match resp.status() {
                StatusCode::PARTIAL_CONTENT => {
                    let body = self.read_body(WHAT, resp, want).await?;
                    if body.len() as u64 != want {
                        return Err(HubError::invalid(
                            WHAT,
                            format!("asked for {want} bytes, got {}", body.len()),
                        ));
                    }
                    Ok(body)
                }
                StatusCode::OK => {
                    let body = self.read_body(WHAT, resp, file_len).await?;
                    let (s, e) = (range.start as usize, range.end_exclusive() as usize);
                    if body.len() < e {
                        return Err(HubError::invalid(
                            WHAT,
                            format!("file shorter than {e} bytes"),
                        ));
                    }
                    Ok(body.slice(s..e))
                }
                _ => Err(status_error(WHAT, &resp)),
            }
        })
        .await
    }

    /// `HEAD {endpoint}/{repo}/resolve/{rev}/{path}`, following redirects by hand until an
    /// answer carries `X-Xet-Hash` or is a 2xx.
    pub async fn head_file(&self, repo: &str, rev: &str, path: &str) -> Result<FileHead, HubError> {
        const WHAT: &str = "HEAD";
        let mut url = self.resolve_url(repo, rev, path);
        for _ in 0..=MAX_HEAD_REDIRECTS {
            let resp = self
                .call(WHAT, || {
                    let rb = self
                        .no_redirect
                        .head(&url)
                        .timeout(API_TIMEOUT)
                        .header(ACCEPT_ENCODING, "identity");
                    self.send(WHAT, self.hub_auth(rb, &url))
                })
                .await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            if status.is_success()
                || (status.is_redirection() && headers.contains_key("x-xet-hash"))
            {
                return Ok(FileHead { url, headers });
            }
            if !status.is_redirection() {
                return Err(status_error(WHAT, &resp));
            }
            let to = headers
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| HubError::invalid(WHAT, format!("{status} without Location")))?;
            url = self.absolute(to)?;
        }
        Err(HubError::invalid(
            WHAT,
            format!("more than {MAX_HEAD_REDIRECTS} redirects"),
        ))
    }

    /// `{endpoint}/{repo}/resolve/{rev}/{path}`, each part encoded.
    pub fn resolve_url(&self, repo: &str, rev: &str, path: &str) -> String {
        format!(
            "{}/{}/resolve/{}/{}",
            self.endpoint,
            encode_path(repo),
            encode_segment(rev),
            encode_path(path)
        )
    }

    /// `GET /{repo}/resolve/{commit}/{path}` streamed into `out` (rewritten from the start on
    /// each attempt); at most `limit` bytes. Returns the bytes written.
    pub async fn download_file(
        &self,
        repo: &str,
        commit: &str,
        path: &str,
        limit: u64,
        out: &mut tokio::fs::File,
    ) -> Result<u64, HubError> {
        use std::io::SeekFrom;
        use tokio::io::{AsyncSeekExt, AsyncWriteExt};
        const WHAT: &str = "file download";
        let io = |source| HubError::Io { what: WHAT, source };
        let url = self.resolve_url(repo, commit, path);
        let out = tokio::sync::Mutex::new(out);
        self.call(WHAT, || async {
            let rb = self.http.get(&url).timeout(DATA_TIMEOUT);
            let mut resp = self.send(WHAT, self.hub_auth(rb, &url)).await?;
            if !resp.status().is_success() {
                return Err(status_error(WHAT, &resp));
            }
            let mut out = out.lock().await;
            out.set_len(0).await.map_err(io)?;
            out.seek(SeekFrom::Start(0)).await.map_err(io)?;
            let mut n = 0u64;
            while let Some(c) = resp
                .chunk()
                .await
                .map_err(|e| HubError::transport(WHAT, e))?
            {
                n += c.len() as u64;
                if n > limit {
                    return Err(HubError::TooLarge { what: WHAT, limit });
                }
                self.counters
                    .body_bytes
                    .fetch_add(c.len() as u64, Ordering::Relaxed);
                out.write_all(&c).await.map_err(io)?;
            }
            out.flush().await.map_err(io)?;
            Ok(n)
        })
        .await
    }
}

/// A v2 reconstruction answer that means "ask v1".
fn is_missing_api(e: &HubError) -> bool {
    matches!(
        e.status(),
        Some(StatusCode::NOT_FOUND | StatusCode::NOT_IMPLEMENTED)
    )
}

fn status_error(what: &'static str, resp: &Response) -> HubError {
    HubError::Status {
        what,
        status: resp.status(),
        retry_after: resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after),
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
