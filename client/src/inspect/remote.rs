//! Reading byte ranges of a file in a Hub repo without downloading it, for `zest inspect REPO
//! PATH`: HEAD the resolve URL (`X-Xet-Hash`, `X-Linked-Size`, the `xet-auth` link), get a CAS
//! read token, then per range `GET {cas}/v2/reconstructions/{hash}` with `Range` (v1 on 404/501),
//! fetch each term's xorb byte range (no Authorization), decode the chunk records and cut out the
//! requested bytes. Files the Hub does not serve through Xet are read with a ranged GET. Every
//! request goes through [`HubClient`] (its retry policy, size caps and URL encoding); this module
//! keeps only what inspecting needs: which ranges to ask for and how to check what came back.
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

use anyhow::{anyhow, ensure, Context};
use hub::{link_target, CasSession, HubClient, RepoType};
use reqwest::header::HeaderMap;
use xet::cas::{ByteRange, ReconstructionTerm, XorbMultiRangeFetch, XorbRangeDescriptor};
use xet::{MerkleHash, ReconstructionV2};

use crate::fleet::{Fleet, Unit, UpstreamRange};

/// Largest single xorb byte range fetched (a xorb holds at most 64 MiB of chunk data).
pub const MAX_XORB_RANGE: u64 = 128 << 20;
/// How much more than the requested bytes a reconstruction may unpack (its first and last terms
/// may start and end beyond the range, each by less than a xorb).
pub const MAX_RECONSTRUCTION_SLACK: u64 = 128 << 20;

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
    /// Read through Xet reconstructions, with the CAS token (refreshed on 401) and whether v2
    /// is missing.
    Xet { hash: MerkleHash, cas: CasSession },
}

/// A remote file opened for ranged reads.
#[derive(Debug)]
pub struct RemoteFile {
    location: Location,
    hub: HubClient,
    len: u64,
    source: Source,
    /// Requests and body bytes of fleet fetches (the Hub client counts its own).
    fleet_stats: FetchStats,
    /// The fleet to ask for xorb ranges before upstream.
    fleet: Option<Arc<Fleet>>,
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl RemoteFile {
    /// HEADs the file and, for a Xet file, gets a CAS read token, all through `hub` (whose
    /// endpoint and token are the location's).
    pub async fn open(hub: &HubClient, location: &Location) -> anyhow::Result<RemoteFile> {
        let head = hub
            .head_file(&location.repo, &location.revision, &location.path)
            .await?;
        let (url, headers) = (head.url, head.headers);
        let (len, source) = match header_str(&headers, "x-xet-hash") {
            Some(hash) => {
                let hash: MerkleHash = hash
                    .trim()
                    .parse()
                    .map_err(|e| anyhow!("bad X-Xet-Hash {hash:?}: {e}"))?;
                let len = header_str(&headers, "x-linked-size")
                    .ok_or_else(|| anyhow!("{url}: Xet file without X-Linked-Size"))?;
                let len = len
                    .trim()
                    .parse()
                    .map_err(|_| anyhow!("{url}: bad X-Linked-Size {len:?}"))?;
                let token_url = match link_target(&headers, "xet-auth")
                    .or_else(|| header_str(&headers, "x-xet-refresh-route"))
                {
                    Some(u) => hub.absolute(u)?,
                    None => hub.token_url(RepoType::Model, &location.repo, &location.revision),
                };
                let cas = hub.cas_session(token_url).await.context("CAS token")?;
                (len, Source::Xet { hash, cas })
            }
            None => {
                let len = header_str(&headers, "x-linked-size")
                    .or_else(|| header_str(&headers, "content-length"))
                    .ok_or_else(|| anyhow!("{url}: no Content-Length or X-Linked-Size"))?;
                let len = len
                    .trim()
                    .parse()
                    .map_err(|_| anyhow!("{url}: bad file size {len:?}"))?;
                (len, Source::Plain { url })
            }
        };
        let file = RemoteFile {
            location: location.clone(),
            hub: hub.clone(),
            len,
            source,
            fleet_stats: FetchStats::default(),
            fleet: None,
        };
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
            Source::Xet { cas, .. } => Some(cas.reconstruction_api()),
            Source::Plain { .. } => None,
        }
    }

    /// Requests and body bytes so far: the Hub client's (HEAD, token, reconstructions, ranges)
    /// and the fleet's.
    pub fn stats(&self) -> FetchStats {
        FetchStats {
            requests: self.hub.requests() + self.fleet_stats.requests,
            body_bytes: self.hub.body_bytes() + self.fleet_stats.body_bytes,
        }
    }

    /// Asks `fleet` for every xorb range from now on (upstream only when no peer or edge
    /// answers). Its byte counters say where the bytes came from.
    pub fn via_fleet(&mut self, fleet: Arc<Fleet>) {
        self.fleet = Some(fleet);
    }

    /// Appends bytes `range` of the file to `out`. The range must lie inside the file.
    pub async fn read_range(&mut self, range: Range<u64>, out: &mut Vec<u8>) -> anyhow::Result<()> {
        ensure!(
            range.start < range.end && range.end <= self.len,
            "byte range {range:?} is empty or outside the file of {} bytes",
            self.len
        );
        let bytes = ByteRange::new(range.start, range.end - 1);
        match &self.source {
            Source::Plain { url } => {
                let body = self.hub.file_range(url, bytes, self.len).await?;
                out.extend_from_slice(&body);
                Ok(())
            }
            Source::Xet { .. } => self.read_xet(range, out).await,
        }
    }

    /// The reconstruction of `range` (v2, or v1 when v2 is missing; the token refreshed on 401).
    async fn reconstruction(&self, range: &Range<u64>) -> anyhow::Result<ReconstructionV2> {
        let Source::Xet { hash, cas } = &self.source else {
            anyhow::bail!("not a Xet file");
        };
        let bytes = ByteRange::new(range.start, range.end - 1);
        Ok(self
            .hub
            .session_reconstruction(cas, hash, Some(bytes))
            .await?)
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
        let body = self.hub.xorb_range(url, desc.bytes, MAX_XORB_RANGE).await?;
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
        fleet: &Fleet,
        xorb: &MerkleHash,
        url: &str,
        desc: &XorbRangeDescriptor,
    ) -> anyhow::Result<Decoded> {
        let unit = Unit {
            xorb: *xorb,
            chunks: desc.chunks.start..desc.chunks.end,
            upstream: Some(UpstreamRange {
                url: url.to_owned(),
                start: desc.bytes.start,
                end: desc.bytes.end,
            }),
        };
        let holders = fleet.lookup(std::slice::from_ref(&unit)).await;
        let holders = holders.into_iter().next().unwrap_or_default();
        // One lookup and one range request, wherever it was served from.
        self.fleet_stats.requests += 2;
        let fetched = fleet
            .fetch_unit(&unit, &holders, false)
            .await
            .with_context(|| {
                format!(
                    "fetching chunks {}..{} of xorb {xorb} through the fleet",
                    desc.chunks.start, desc.chunks.end
                )
            })?;
        self.fleet_stats.body_bytes += fetched.raw.len() as u64;
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
