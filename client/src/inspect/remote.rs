//! Reading byte ranges of a file in a Hub repo without downloading it, for `zest inspect REPO
//! PATH`: HEAD the resolve URL (`X-Xet-Hash`, `X-Linked-Size`, the `xet-auth` link), get a CAS
//! read token, then per range `GET {cas}/v2/reconstructions/{hash}` with `Range` (v1 on 404/501),
//! fetch each term's xorb byte range (no Authorization), decode the chunk records and cut out the
//! requested bytes. Files the Hub does not serve through Xet are read with a ranged GET.
//!
//! With a fleet attached ([`RemoteFile::via_fleet`], from `ZEST_TRACKER`), each xorb range is
//! asked of the fleet first — the tracker's peers and edges, and an edge handed the signed URL so
//! it fetches the range once and keeps it — through the same sources `zest pull` uses; upstream
//! only when no one answers.
//!
//! Everything that comes back is untrusted: bodies are read with a size cap decided before
//! reading, the reconstruction is checked for consistency (chunk counts, unpacked lengths, offsets)
//! before its bytes are used, and when the whole file ends up fetched its Xet hash is recomputed
//! and compared with `X-Xet-Hash`.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context};
use reqwest::header::{HeaderMap, ACCEPT_ENCODING, AUTHORIZATION, LOCATION, RANGE};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use xet::cas::{ReconstructionTerm, XorbMultiRangeFetch, XorbRangeDescriptor};
use xet::{CasJwtInfo, MerkleHash, ReconstructionV1, ReconstructionV2};

use crate::pull::fetch::{Sources, Unit};

/// Largest reconstruction JSON accepted.
pub const MAX_RECONSTRUCTION_JSON: u64 = 64 << 20;
/// Largest token JSON accepted.
pub const MAX_TOKEN_JSON: u64 = 1 << 20;
/// Largest single xorb byte range fetched (a xorb holds at most 64 MiB of chunk data).
pub const MAX_XORB_RANGE: u64 = 128 << 20;
/// How much more than the requested bytes a reconstruction may unpack (its first and last terms
/// may start and end beyond the range, each by less than a xorb).
pub const MAX_RECONSTRUCTION_SLACK: u64 = 128 << 20;
/// Redirects followed for the HEAD request.
const MAX_REDIRECTS: usize = 5;

/// Which file of which repo, on which Hub.
#[derive(Clone)]
pub struct Location {
    /// Base URL, without a trailing slash.
    pub endpoint: String,
    /// Hub token, sent to `endpoint` only.
    pub token: Option<String>,
    pub repo: String,
    pub revision: String,
    pub path: String,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Location")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("repo", &self.repo)
            .field("revision", &self.revision)
            .field("path", &self.path)
            .finish()
    }
}

impl Location {
    /// `org/model/file.gguf@main`, for messages.
    pub fn display_name(&self) -> String {
        format!("{}/{}@{}", self.repo, self.path, self.revision)
    }

    /// `{endpoint}/{repo}/resolve/{revision}/{path}`.
    pub fn resolve_url(&self) -> String {
        format!(
            "{}/{}/resolve/{}/{}",
            self.endpoint,
            encode(&self.repo, true),
            encode(&self.revision, false),
            encode(&self.path, true)
        )
    }

    /// The default CAS read-token route, when the HEAD named none.
    pub fn token_url(&self) -> String {
        format!(
            "{}/api/models/{}/xet-read-token/{}",
            self.endpoint,
            encode(&self.repo, true),
            encode(&self.revision, false)
        )
    }

    /// Adds the Hub token when `url` is on the Hub.
    fn hub_auth(&self, req: RequestBuilder, url: &str) -> RequestBuilder {
        match &self.token {
            Some(t) if url.starts_with(&format!("{}/", self.endpoint)) => {
                req.header(AUTHORIZATION, format!("Bearer {t}"))
            }
            _ => req,
        }
    }

    /// An absolute URL for a `Location` or `Link` target that may be relative to the Hub.
    fn absolute(&self, url: &str) -> String {
        if url.starts_with("http://") || url.starts_with("https://") {
            url.to_owned()
        } else if let Some(rest) = url.strip_prefix('/') {
            // Scheme and authority of the endpoint, then the absolute path.
            let authority_end = self
                .endpoint
                .find("://")
                .and_then(|i| self.endpoint[i + 3..].find('/').map(|j| i + 3 + j))
                .unwrap_or(self.endpoint.len());
            format!("{}/{rest}", &self.endpoint[..authority_end])
        } else {
            format!("{}/{url}", self.endpoint)
        }
    }
}

/// Percent-encodes a URL path part; `/` is kept when `keep_slash`.
fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let plain = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/');
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Requests made and response body bytes downloaded so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// Every HTTP request, HEAD and token included.
    pub requests: u64,
    /// Body bytes of reconstruction, xorb and ranged file responses.
    pub body_bytes: u64,
}

#[derive(Debug)]
enum Source {
    /// Read with ranged GETs of this URL.
    Plain { url: String },
    /// Read through Xet reconstructions.
    Xet {
        hash: MerkleHash,
        token_url: String,
        cas: CasJwtInfo,
        /// Whether `/v2/reconstructions` answered 404/501 once (then v1 is used directly).
        v1_only: bool,
    },
}

/// A remote file opened for ranged reads.
#[derive(Debug)]
pub struct RemoteFile {
    location: Location,
    /// Follows no redirects (the HEAD must see the Hub's own headers).
    head_client: Client,
    client: Client,
    len: u64,
    source: Source,
    stats: FetchStats,
    /// The fleet to ask for xorb ranges before upstream.
    fleet: Option<Arc<Sources>>,
}

fn build_client(redirects: bool) -> anyhow::Result<Client> {
    let policy = if redirects {
        reqwest::redirect::Policy::limited(10)
    } else {
        reqwest::redirect::Policy::none()
    };
    Client::builder()
        .redirect(policy)
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(120))
        .user_agent(concat!("zest/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The target of the `Link` entry with `rel="{rel}"`.
fn link_target<'h>(headers: &'h HeaderMap, rel: &str) -> Option<&'h str> {
    let want = format!("rel=\"{rel}\"");
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find(|part| part.split(';').skip(1).any(|p| p.trim() == want))
        .and_then(|part| {
            let part = part.trim();
            let start = part.find('<')? + 1;
            let end = part.find('>')?;
            (end > start).then(|| &part[start..end])
        })
}

/// A one-line explanation of an unexpected status.
fn status_error(what: &str, url: &str, status: StatusCode) -> anyhow::Error {
    let hint = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            " (a gated or private repo needs HF_TOKEN)"
        }
        StatusCode::NOT_FOUND => " (no such repo, revision or file)",
        _ => "",
    };
    anyhow!("{what}: {url} answered {status}{hint}")
}

/// Reads a response body of at most `cap` bytes, refusing larger ones before reading them.
async fn read_capped(mut resp: Response, cap: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    if let Some(len) = resp.content_length() {
        ensure!(
            len <= cap,
            "{what}: response of {len} bytes is over the {cap}-byte limit"
        );
    }
    let mut body = Vec::with_capacity(resp.content_length().unwrap_or(0) as usize);
    while let Some(piece) = resp
        .chunk()
        .await
        .with_context(|| format!("reading {what}"))?
    {
        ensure!(
            body.len() as u64 + piece.len() as u64 <= cap,
            "{what}: response is over the {cap}-byte limit"
        );
        body.extend_from_slice(&piece);
    }
    Ok(body)
}

impl RemoteFile {
    /// HEADs the file and, for a Xet file, gets a CAS read token.
    pub async fn open(location: &Location) -> anyhow::Result<RemoteFile> {
        let mut file = RemoteFile {
            location: location.clone(),
            head_client: build_client(false)?,
            client: build_client(true)?,
            len: 0,
            source: Source::Plain { url: String::new() },
            stats: FetchStats::default(),
            fleet: None,
        };
        let (url, headers) = file.head().await?;
        match header_str(&headers, "x-xet-hash") {
            Some(hash) => {
                let hash: MerkleHash = hash
                    .trim()
                    .parse()
                    .map_err(|e| anyhow!("bad X-Xet-Hash {hash:?}: {e}"))?;
                let len = header_str(&headers, "x-linked-size")
                    .ok_or_else(|| anyhow!("{url}: Xet file without X-Linked-Size"))?;
                file.len = len
                    .trim()
                    .parse()
                    .map_err(|_| anyhow!("{url}: bad X-Linked-Size {len:?}"))?;
                let token_url = link_target(&headers, "xet-auth")
                    .or_else(|| header_str(&headers, "x-xet-refresh-route"))
                    .map(|u| location.absolute(u))
                    .unwrap_or_else(|| location.token_url());
                let cas = file.fetch_token(&token_url).await?;
                file.source = Source::Xet {
                    hash,
                    token_url,
                    cas,
                    v1_only: false,
                };
            }
            None => {
                let len = header_str(&headers, "x-linked-size")
                    .or_else(|| header_str(&headers, "content-length"))
                    .ok_or_else(|| anyhow!("{url}: no Content-Length or X-Linked-Size"))?;
                file.len = len
                    .trim()
                    .parse()
                    .map_err(|_| anyhow!("{url}: bad file size {len:?}"))?;
                file.source = Source::Plain { url };
            }
        }
        tracing::debug!(file = %location.display_name(), len = file.len, xet = file.xet_hash().is_some(), "opened remote file");
        Ok(file)
    }

    /// File length (`X-Linked-Size`, or `Content-Length` of a plain file).
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn xet_hash(&self) -> Option<MerkleHash> {
        match &self.source {
            Source::Xet { hash, .. } => Some(*hash),
            Source::Plain { .. } => None,
        }
    }

    /// `"v2"`, or `"v1"` after `/v2/reconstructions` answered 404/501; `None` for plain files.
    pub fn reconstruction_api(&self) -> Option<&'static str> {
        match &self.source {
            Source::Xet { v1_only: true, .. } => Some("v1"),
            Source::Xet { .. } => Some("v2"),
            Source::Plain { .. } => None,
        }
    }

    pub fn stats(&self) -> FetchStats {
        self.stats
    }

    /// Asks `fleet` for every xorb range from now on (upstream only when no peer or edge
    /// answers). Its byte counters say where the bytes came from.
    pub fn via_fleet(&mut self, fleet: Arc<Sources>) {
        self.fleet = Some(fleet);
    }

    /// HEAD of the resolve URL, following same-Hub redirects by hand until a response carries
    /// `X-Xet-Hash` or is a 2xx. Returns the final URL and its headers.
    async fn head(&mut self) -> anyhow::Result<(String, HeaderMap)> {
        let mut url = self.location.resolve_url();
        for _ in 0..=MAX_REDIRECTS {
            let req = self
                .head_client
                .head(&url)
                .header(ACCEPT_ENCODING, "identity");
            let req = self.location.hub_auth(req, &url);
            self.stats.requests += 1;
            let resp = req.send().await.with_context(|| format!("HEAD {url}"))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            if status.is_success()
                || (status.is_redirection() && headers.contains_key("x-xet-hash"))
            {
                return Ok((url, headers));
            }
            if status.is_redirection() {
                let to = header_str(&headers, LOCATION.as_str())
                    .ok_or_else(|| anyhow!("HEAD {url}: {status} without Location"))?;
                url = self.location.absolute(to);
                continue;
            }
            return Err(status_error("HEAD", &url, status));
        }
        bail!("HEAD {url}: more than {MAX_REDIRECTS} redirects")
    }

    async fn fetch_token(&mut self, token_url: &str) -> anyhow::Result<CasJwtInfo> {
        let req = self
            .location
            .hub_auth(self.client.get(token_url), token_url);
        self.stats.requests += 1;
        let resp = req
            .send()
            .await
            .with_context(|| format!("GET {token_url}"))?;
        if !resp.status().is_success() {
            return Err(status_error("CAS token", token_url, resp.status()));
        }
        let body = read_capped(resp, MAX_TOKEN_JSON, "CAS token").await?;
        let info: CasJwtInfo = serde_json::from_slice(&body)
            .with_context(|| format!("{token_url}: bad CAS token JSON"))?;
        ensure!(
            info.cas_url.starts_with("http://") || info.cas_url.starts_with("https://"),
            "{token_url}: CAS URL {:?} is not http(s)",
            info.cas_url
        );
        Ok(info)
    }

    /// Appends bytes `range` of the file to `out`. The range must lie inside the file.
    pub async fn read_range(&mut self, range: Range<u64>, out: &mut Vec<u8>) -> anyhow::Result<()> {
        ensure!(
            range.start < range.end && range.end <= self.len,
            "byte range {range:?} is empty or outside the file of {} bytes",
            self.len
        );
        match &self.source {
            Source::Plain { url } => {
                let url = url.clone();
                self.read_plain(&url, range, out).await
            }
            Source::Xet { .. } => self.read_xet(range, out).await,
        }
    }

    async fn read_plain(
        &mut self,
        url: &str,
        range: Range<u64>,
        out: &mut Vec<u8>,
    ) -> anyhow::Result<()> {
        let want = range.end - range.start;
        let req = self
            .client
            .get(url)
            .header(ACCEPT_ENCODING, "identity")
            .header(RANGE, format!("bytes={}-{}", range.start, range.end - 1));
        let req = self.location.hub_auth(req, url);
        self.stats.requests += 1;
        let resp = req.send().await.with_context(|| format!("GET {url}"))?;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => {
                let body = read_capped(resp, want, "file range").await?;
                self.stats.body_bytes += body.len() as u64;
                ensure!(
                    body.len() as u64 == want,
                    "GET {url}: asked for {want} bytes, got {}",
                    body.len()
                );
                out.extend_from_slice(&body);
            }
            // The server ignored Range and sent the whole file.
            StatusCode::OK => {
                let body = read_capped(resp, self.len, "file").await?;
                self.stats.body_bytes += body.len() as u64;
                let part = body
                    .get(range.start as usize..range.end as usize)
                    .ok_or_else(|| anyhow!("GET {url}: file shorter than {}", range.end))?;
                out.extend_from_slice(part);
            }
            status => return Err(status_error("GET", url, status)),
        }
        Ok(())
    }

    /// GET of a reconstruction for `range`; v2, or v1 on 404/501 (converted). Refreshes the
    /// CAS token once on 401.
    async fn reconstruction(&mut self, range: &Range<u64>) -> anyhow::Result<ReconstructionV2> {
        let mut refreshed = false;
        loop {
            let Source::Xet {
                hash,
                cas,
                v1_only,
                token_url,
            } = &self.source
            else {
                bail!("not a Xet file");
            };
            let version = if *v1_only { "v1" } else { "v2" };
            let url = format!(
                "{}/{version}/reconstructions/{hash}",
                cas.cas_url.trim_end_matches('/')
            );
            self.stats.requests += 1;
            let resp = self
                .client
                .get(&url)
                .header(AUTHORIZATION, format!("Bearer {}", cas.access_token))
                .header(RANGE, format!("bytes={}-{}", range.start, range.end - 1))
                .send()
                .await
                .with_context(|| format!("GET {url}"))?;
            let status = resp.status();
            if !*v1_only && matches!(status, StatusCode::NOT_FOUND | StatusCode::NOT_IMPLEMENTED) {
                if let Source::Xet { v1_only, .. } = &mut self.source {
                    *v1_only = true;
                }
                continue;
            }
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                refreshed = true;
                let token_url = token_url.clone();
                let fresh = self.fetch_token(&token_url).await?;
                if let Source::Xet { cas, .. } = &mut self.source {
                    *cas = fresh;
                }
                continue;
            }
            if !status.is_success() {
                return Err(status_error("reconstruction", &url, status));
            }
            let body = read_capped(resp, MAX_RECONSTRUCTION_JSON, "reconstruction").await?;
            self.stats.body_bytes += body.len() as u64;
            return if version == "v1" {
                let v1: ReconstructionV1 = serde_json::from_slice(&body)
                    .with_context(|| format!("{url}: bad v1 reconstruction JSON"))?;
                Ok(v1.into())
            } else {
                serde_json::from_slice(&body)
                    .with_context(|| format!("{url}: bad v2 reconstruction JSON"))
            };
        }
    }

    async fn read_xet(&mut self, range: Range<u64>, out: &mut Vec<u8>) -> anyhow::Result<()> {
        let want = range.end - range.start;
        let recon = self.reconstruction(&range).await?;
        let unpacked = recon.total_unpacked_len();
        ensure!(
            !recon.terms.is_empty(),
            "reconstruction of {range:?} has no terms"
        );
        ensure!(
            recon.offset_into_first_range < u64::from(recon.terms[0].unpacked_length),
            "reconstruction offset_into_first_range {} is not inside the first term of {} bytes",
            recon.offset_into_first_range,
            recon.terms[0].unpacked_length
        );
        ensure!(
            unpacked >= recon.offset_into_first_range + want,
            "reconstruction of {range:?} unpacks {unpacked} bytes, fewer than the {want} asked for \
             after skipping {}",
            recon.offset_into_first_range
        );
        ensure!(
            unpacked <= want + MAX_RECONSTRUCTION_SLACK,
            "reconstruction of {range:?} unpacks {unpacked} bytes, far more than the {want} asked for"
        );
        let mut skip = recon.offset_into_first_range;
        let mut left = want;
        // Decoded xorb ranges by (url, byte range), so terms repeating a range fetch it once.
        let mut decoded: HashMap<(String, u64, u64), Decoded> = HashMap::new();
        for term in &recon.terms {
            if left == 0 {
                break;
            }
            let (url, desc) = find_fetch(&recon, term)?;
            let key = (url.to_owned(), desc.bytes.start, desc.bytes.end);
            if !decoded.contains_key(&key) {
                let d = self.fetch_xorb_range(&term.hash, url, &desc).await?;
                decoded.insert(key.clone(), d);
            }
            let d = &decoded[&key];
            let data = d.chunks(
                (term.range.start - desc.chunks.start) as usize,
                (term.range.end - desc.chunks.start) as usize,
            );
            ensure!(
                data.len() as u64 == u64::from(term.unpacked_length),
                "xorb {} chunks {}..{} decode to {} bytes, the reconstruction says {}",
                term.hash,
                term.range.start,
                term.range.end,
                data.len(),
                term.unpacked_length
            );
            let from = skip.min(data.len() as u64) as usize;
            skip -= from as u64;
            let take = left.min((data.len() - from) as u64) as usize;
            out.extend_from_slice(&data[from..from + take]);
            left -= take as u64;
        }
        ensure!(
            left == 0,
            "reconstruction of {range:?} came {left} bytes short"
        );
        Ok(())
    }

    /// Fetches one xorb byte range (presigned URL, no Authorization) and decodes its chunks.
    async fn fetch_xorb_range(
        &mut self,
        xorb: &MerkleHash,
        url: &str,
        desc: &XorbRangeDescriptor,
    ) -> anyhow::Result<Decoded> {
        let want = desc.bytes.len();
        ensure!(
            !desc.bytes.is_empty() && want <= MAX_XORB_RANGE,
            "xorb byte range {}-{} is empty or over the {MAX_XORB_RANGE}-byte limit",
            desc.bytes.start,
            desc.bytes.end
        );
        if let Some(fleet) = self.fleet.clone() {
            return self.fetch_via_fleet(&fleet, xorb, url, desc).await;
        }
        self.stats.requests += 1;
        let resp = self
            .client
            .get(url)
            .header(RANGE, desc.bytes.header_value())
            .send()
            .await
            .context("GET xorb range")?;
        let status = resp.status();
        if !status.is_success() {
            // The URL is presigned: do not print its signature.
            let base = url.split('?').next().unwrap_or(url);
            return Err(status_error("xorb range", base, status));
        }
        let body = read_capped(resp, want, "xorb range").await?;
        self.stats.body_bytes += body.len() as u64;
        ensure!(
            body.len() as u64 == want,
            "xorb range {}-{}: got {} bytes",
            desc.bytes.start,
            desc.bytes.end,
            body.len()
        );
        let mut data = Vec::new();
        let lens = xet::chunk::decode_records(&body, &mut data).with_context(|| {
            format!(
                "decoding xorb range {}-{}",
                desc.bytes.start, desc.bytes.end
            )
        })?;
        ensure!(
            lens.len() == desc.chunks.len() as usize,
            "xorb range {}-{} holds {} chunks, the reconstruction says {}",
            desc.bytes.start,
            desc.bytes.end,
            lens.len(),
            desc.chunks.len()
        );
        let mut starts = Vec::with_capacity(lens.len() + 1);
        let mut at = 0usize;
        starts.push(0);
        for l in &lens {
            at += *l as usize;
            starts.push(at);
        }
        ensure!(
            at == data.len(),
            "xorb range decoded to {} bytes, its chunk headers say {at}",
            data.len()
        );
        Ok(Decoded { data, starts })
    }

    /// One xorb range through the fleet: the tracker's holders, then an edge with the signed
    /// URL, then upstream. The chunks come back decoded (and each one hashed).
    async fn fetch_via_fleet(
        &mut self,
        fleet: &Sources,
        xorb: &MerkleHash,
        url: &str,
        desc: &XorbRangeDescriptor,
    ) -> anyhow::Result<Decoded> {
        let unit = Unit {
            xorb: *xorb,
            chunks: desc.chunks.start..desc.chunks.end,
            upstream: Some((url.to_owned(), desc.bytes.start, desc.bytes.end)),
        };
        let holders = fleet.lookup(std::slice::from_ref(&unit)).await;
        let holders = holders.into_iter().next().unwrap_or_default();
        // One lookup and one range request, wherever it was served from.
        self.stats.requests += 2;
        let fetched = fleet
            .fetch_unit(&unit, &holders, false)
            .await
            .with_context(|| {
                format!(
                    "fetching chunks {}..{} of xorb {xorb} through the fleet",
                    desc.chunks.start, desc.chunks.end
                )
            })?;
        self.stats.body_bytes += fetched.raw.len() as u64;
        let decoded = fetched.decode(xorb, unit.chunks.clone())?;
        let mut starts = Vec::with_capacity(decoded.ends.len() + 1);
        starts.push(0);
        starts.extend_from_slice(&decoded.ends);
        ensure!(
            starts.last().copied() == Some(decoded.data.len()),
            "xorb {xorb} chunks {}..{} decoded inconsistently",
            desc.chunks.start,
            desc.chunks.end
        );
        Ok(Decoded {
            data: decoded.data,
            starts,
        })
    }

    /// When `prefix` is the whole file of a Xet file, recomputes its Xet hash and compares it
    /// with `X-Xet-Hash`. Returns whether the check ran.
    pub fn verify_whole_file(&self, prefix: &[u8]) -> anyhow::Result<bool> {
        let Some(expected) = self.xet_hash() else {
            return Ok(false);
        };
        if prefix.len() as u64 != self.len {
            return Ok(false);
        }
        let actual = xet::chunking::file_hash_of(&xet::chunking::chunk_and_hash(prefix));
        ensure!(
            actual == expected,
            "{}: the reconstructed file hashes to {actual}, the Hub says {expected}",
            self.location.display_name()
        );
        Ok(true)
    }
}

/// A decoded xorb byte range: the chunks' data back to back, and where each chunk starts
/// (`starts.len() == chunks + 1`).
#[derive(Debug)]
struct Decoded {
    data: Vec<u8>,
    starts: Vec<usize>,
}

impl Decoded {
    /// Chunks `first..end` (indices inside this range), or an empty slice if out of range
    /// (the caller's length check then fails).
    fn chunks(&self, first: usize, end: usize) -> &[u8] {
        match (self.starts.get(first), self.starts.get(end)) {
            (Some(&a), Some(&b)) if a <= b => &self.data[a..b],
            _ => &[],
        }
    }
}

/// The fetch URL and range descriptor that cover a term's chunks.
fn find_fetch<'r>(
    recon: &'r ReconstructionV2,
    term: &ReconstructionTerm,
) -> anyhow::Result<(&'r str, XorbRangeDescriptor)> {
    ensure!(
        !term.range.is_empty(),
        "reconstruction term of xorb {} has an empty chunk range",
        term.hash
    );
    let fetches: &[XorbMultiRangeFetch] = recon
        .xorbs
        .get(&term.hash)
        .map(Vec::as_slice)
        .unwrap_or_default();
    fetches
        .iter()
        .flat_map(|f| f.ranges.iter().map(move |r| (f.url.as_str(), *r)))
        .find(|(_, r)| r.chunks.start <= term.range.start && term.range.end <= r.chunks.end)
        .ok_or_else(|| {
            anyhow!(
                "reconstruction has no fetch for chunks {}..{} of xorb {}",
                term.range.start,
                term.range.end,
                term.hash
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(endpoint: &str) -> Location {
        Location {
            endpoint: endpoint.into(),
            token: Some("t".into()),
            repo: "org/model".into(),
            revision: "refs/pr/1".into(),
            path: "dir/my model.gguf".into(),
        }
    }

    #[test]
    fn urls_are_encoded() {
        let l = loc("http://h:1/hub");
        assert_eq!(
            l.resolve_url(),
            "http://h:1/hub/org/model/resolve/refs%2Fpr%2F1/dir/my%20model.gguf"
        );
        assert_eq!(
            l.token_url(),
            "http://h:1/hub/api/models/org/model/xet-read-token/refs%2Fpr%2F1"
        );
        assert_eq!(l.absolute("/api/x"), "http://h:1/api/x");
        assert_eq!(l.absolute("https://o/x"), "https://o/x");
        assert_eq!(loc("http://h:1").absolute("/a"), "http://h:1/a");
    }

    #[test]
    fn link_header_parsing() {
        let mut h = HeaderMap::new();
        h.insert(
            reqwest::header::LINK,
            "<https://a/next>; rel=\"next\", <https://hub/api/models/o/m/xet-read-token/abc>; rel=\"xet-auth\""
                .parse()
                .expect("header"),
        );
        assert_eq!(
            link_target(&h, "xet-auth"),
            Some("https://hub/api/models/o/m/xet-read-token/abc")
        );
        assert_eq!(link_target(&h, "next"), Some("https://a/next"));
        assert_eq!(link_target(&h, "prev"), None);
    }

    #[test]
    fn decoded_chunk_slices_are_bounded() {
        let d = Decoded {
            data: b"aabbbc".to_vec(),
            starts: vec![0, 2, 5, 6],
        };
        assert_eq!(d.chunks(0, 1), b"aa");
        assert_eq!(d.chunks(1, 3), b"bbbc");
        assert_eq!(d.chunks(2, 9), b"");
        assert_eq!(d.chunks(2, 1), b"");
    }
}
