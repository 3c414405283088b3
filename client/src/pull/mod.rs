//! `zest pull REPO`: lists a revision's files, fetches every Xet file's chunk ranges from the
//! best source (`fetch`), verifies each file against its Xet hash (and optionally sha256), and
//! writes the Hugging Face cache layout (`cache`) so `huggingface_hub` finds the files offline.
//! No unverified byte reaches a final file: data goes to `blobs/{etag}.incomplete`, is verified,
//! then renamed. Verified ranges are kept in the local xorb store (so `zest seed` can serve them
//! and an interrupted pull does not fetch them again).

pub mod cache;
pub mod fetch;
pub mod tracker;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use futures::StreamExt;
use serde::Serialize;
use sha2::Digest;
use xet::MerkleHash;
use xorbstore::{Expectation, Store, StoreConfig};

use crate::env_vars;
use crate::hub::{self, HubClient};
use cache::RepoCache;
use fetch::{Fetched, Source, Sources, Unit};
use tracker::{Manifest, ManifestFile, ManifestTerm, TrackerClient};

/// Ranges fetched at once per file.
const PARALLEL_RANGES: usize = 16;
/// Rounds of fetching a file whose hash does not match before giving up.
const MAX_ROUNDS: usize = 3;

/// Arguments of `zest pull`.
#[derive(Debug, Clone, Args)]
pub struct PullArgs {
    /// Repository id, `org/name`.
    pub repo: String,
    /// Branch, tag or commit.
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// Only files matching one of these globs.
    #[arg(long)]
    pub include: Vec<String>,
    /// Skip files matching one of these globs.
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Also check every file's sha256 against its LFS oid (slow on CPUs without SHA extensions).
    #[arg(long)]
    pub verify_sha256: bool,
    /// Hub base URL.
    #[arg(long, env = env_vars::HF_ENDPOINT, default_value = "https://huggingface.co")]
    pub endpoint: String,
    /// Tracker base URL (`http://host:port`).
    #[arg(long, env = env_vars::ZEST_TRACKER)]
    pub tracker: Option<String>,
    /// Bearer token for tracker writes (reports, manifests).
    #[arg(long, env = env_vars::ZEST_TRACKER_TOKEN, hide_env_values = true)]
    pub tracker_token: Option<String>,
    /// Local xorb store folder (default `$XDG_CACHE_HOME/zest` or `~/.cache/zest`).
    #[arg(long, env = env_vars::ZEST_CACHE)]
    pub zest_cache: Option<PathBuf>,
    /// Size cap of the local xorb store, bytes.
    #[arg(long, env = env_vars::ZEST_CACHE_MAX_BYTES, default_value_t = 50 << 30)]
    pub cache_max_bytes: u64,
    /// Our id towards the tracker and peers.
    #[arg(long, env = env_vars::ZEST_PEER_ID)]
    pub peer_id: Option<String>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// What a pull did.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub repo: String,
    pub revision: String,
    pub commit: String,
    pub files: u64,
    pub files_already_present: u64,
    pub bytes_written: u64,
    pub bytes: tracker::BytesBySource,
    pub retries: u64,
    pub bad_sources: std::collections::BTreeMap<String, String>,
    pub fleet_only: bool,
    pub duration_ms: u64,
    pub snapshot: PathBuf,
}

/// `$HF_HUB_CACHE`, or `$HF_HOME/hub`, or `~/.cache/huggingface/hub`.
pub fn hub_cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os(env_vars::HF_HUB_CACHE) {
        return p.into();
    }
    hf_home().join("hub")
}

fn hf_home() -> PathBuf {
    if let Some(p) = std::env::var_os(env_vars::HF_HOME) {
        return p.into();
    }
    home_cache().join("huggingface")
}

fn home_cache() -> PathBuf {
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return p.into();
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache")
}

/// The local xorb store folder.
pub fn zest_cache_dir(flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(|| home_cache().join("zest"))
}

/// `HF_TOKEN`, or the token file `$HF_HOME/token`.
pub fn hf_token() -> Option<String> {
    if let Ok(t) = std::env::var(env_vars::HF_TOKEN) {
        if !t.trim().is_empty() {
            return Some(t.trim().to_string());
        }
    }
    std::fs::read_to_string(hf_home().join("token"))
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

fn default_peer_id() -> String {
    format!("zest-{}-{:08x}", std::process::id(), rand::random::<u32>())
}

/// Runs `zest pull`.
pub fn run(args: &PullArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let summary = rt.block_on(pull(args))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &summary)?;
        writeln!(out)?;
    } else {
        print_summary(&mut out, &summary)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn mb(n: u64) -> String {
    format!("{:.1} MB", n as f64 / 1e6)
}

fn print_summary(out: &mut impl Write, s: &Summary) -> std::io::Result<()> {
    writeln!(
        out,
        "pulled {} @ {} ({} files, {} already present) in {:.2}s",
        s.repo,
        &s.commit[..s.commit.len().min(12)],
        s.files,
        s.files_already_present,
        s.duration_ms as f64 / 1000.0
    )?;
    writeln!(
        out,
        "  bytes from local {} | peers {} | edges {} | upstream {}  (retries {})",
        mb(s.bytes.local),
        mb(s.bytes.peers),
        mb(s.bytes.edges),
        mb(s.bytes.upstream),
        s.retries
    )?;
    for (src, why) in &s.bad_sources {
        writeln!(out, "  bad source avoided: {src}: {why}")?;
    }
    writeln!(out, "  snapshot: {}", s.snapshot.display())
}

fn globs(pats: &[String]) -> anyhow::Result<Option<globset::GlobSet>> {
    if pats.is_empty() {
        return Ok(None);
    }
    let mut b = globset::GlobSetBuilder::new();
    for p in pats {
        b.add(globset::Glob::new(p).with_context(|| format!("bad glob {p:?}"))?);
    }
    Ok(Some(b.build()?))
}

/// A file to pull, from the tree listing or a manifest.
#[derive(Debug, Clone)]
struct FileToPull {
    path: String,
    size: u64,
    /// Blob name: sha256 for LFS/Xet files, git sha1 otherwise.
    etag: String,
    sha256: Option<String>,
    git_sha1: Option<String>,
    xet_hash: Option<MerkleHash>,
    /// Known terms (fleet-only pulls).
    terms: Vec<ManifestTerm>,
}

async fn pull(args: &PullArgs) -> anyhow::Result<Summary> {
    let started = Instant::now();
    hub::validate_repo_id(&args.repo)?;
    hub::validate_revision(&args.revision)?;
    let include = globs(&args.include)?;
    let exclude = globs(&args.exclude)?;
    let peer_id = args.peer_id.clone().unwrap_or_else(default_peer_id);
    let hubc = HubClient::new(&args.endpoint, hf_token())?;
    let trackerc = match &args.tracker {
        Some(t) if !t.is_empty() => Some(TrackerClient::new(t, args.tracker_token.clone())?),
        _ => None,
    };
    let store_dir = zest_cache_dir(args.zest_cache.clone());
    let store = {
        let d = store_dir.clone();
        let quota = args.cache_max_bytes;
        tokio::task::spawn_blocking(move || Store::open(&d, StoreConfig { quota_bytes: quota }))
            .await?
            .with_context(|| format!("opening the local xorb store {}", store_dir.display()))?
    };

    // Revision and file list: upstream, or the fleet's manifest when upstream is unreachable.
    let mut fleet_only = false;
    let (commit, mut files) = match list_upstream(&hubc, &args.repo, &args.revision).await {
        Ok(x) => x,
        Err(e) => {
            let Some(t) = &trackerc else { return Err(e) };
            tracing::warn!(error = %format!("{e:#}"), "upstream unreachable; asking the tracker for the manifest");
            let m = t
                .get_manifest(&args.repo, &args.revision)
                .await
                .ok()
                .flatten()
                .ok_or(e)
                .context(
                    "upstream is unreachable and the tracker has no manifest for this revision",
                )?;
            fleet_only = true;
            from_manifest(m)?
        }
    };
    files.retain(|f| {
        include.as_ref().is_none_or(|g| g.is_match(&f.path))
            && !exclude.as_ref().is_some_and(|g| g.is_match(&f.path))
    });

    let cache = RepoCache::open(&hub_cache_dir(), &args.repo)?;
    let sources = Arc::new(Sources::new(
        Some(store.clone()),
        (!fleet_only).then(|| hubc.clone()),
        trackerc.clone(),
        peer_id.clone(),
    ));
    let total: u64 = files.iter().map(|f| f.size).sum();
    let bar = if args.quiet || args.json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    };

    let mut summary = Summary {
        repo: args.repo.clone(),
        revision: args.revision.clone(),
        commit: commit.clone(),
        fleet_only,
        ..Summary::default()
    };
    let mut token: Option<xet::CasJwtInfo> = None;
    let mut manifest_files = Vec::new();
    for f in &files {
        bar.set_message(f.path.clone());
        let mut terms = f.terms.clone();
        if cache.has_blob(&f.etag, f.size) {
            summary.files_already_present += 1;
        } else if let Some(xh) = f.xet_hash {
            if !fleet_only && token.as_ref().is_none_or(|t| t.exp < now_secs() + 60) {
                token = Some(hubc.xet_read_token(&args.repo, &commit).await?);
            }
            terms = pull_xet_file(&sources, token.as_ref(), &cache, f, xh, args.verify_sha256)
                .await
                .with_context(|| format!("pulling {}", f.path))?;
            summary.bytes_written += f.size;
        } else if fleet_only || f.etag.is_empty() {
            bail!(
                "{} is not a Xet file and upstream is unreachable: the fleet cannot provide it",
                f.path
            );
        } else {
            pull_plain_file(&hubc, &args.repo, &commit, &cache, f)
                .await
                .with_context(|| format!("pulling {}", f.path))?;
            sources.count_upstream(f.size);
            summary.bytes_written += f.size;
        }
        cache.link_snapshot(&commit, &f.path, &f.etag)?;
        summary.files += 1;
        bar.inc(f.size);
        manifest_files.push(ManifestFile {
            path: f.path.clone(),
            size: f.size,
            sha256: f.sha256.clone(),
            xet_hash: f.xet_hash,
            terms,
        });
    }
    if args.revision != commit {
        cache.write_ref(&args.revision, &commit)?;
    }
    bar.finish_and_clear();

    let c = *sources.counters.lock().unwrap_or_else(|p| p.into_inner());
    summary.bytes = tracker::BytesBySource {
        local: c.local,
        peers: c.peers,
        edges: c.edges,
        upstream: c.upstream,
    };
    summary.retries = hubc.retries();
    summary.bad_sources = sources.bad_sources();
    summary.duration_ms = started.elapsed().as_millis() as u64;
    summary.snapshot = cache.dir().join("snapshots").join(&commit);

    if let Some(t) = &trackerc {
        let report = tracker::ReportRequest {
            peer_id: peer_id.clone(),
            repo: args.repo.clone(),
            revision: args.revision.clone(),
            bytes: summary.bytes,
            files: summary.files,
            duration_ms: summary.duration_ms,
        };
        if let Err(e) = t.report(&report).await {
            tracing::warn!(error = %format!("{e:#}"), "tracker report failed");
        }
        // Only a complete, unfiltered pull describes the revision.
        if !fleet_only && include.is_none() && exclude.is_none() {
            let m = Manifest {
                commit: commit.clone(),
                files: manifest_files,
            };
            for rev in [args.revision.as_str(), commit.as_str()] {
                if let Err(e) = t.put_manifest(&args.repo, rev, &m).await {
                    tracing::warn!(error = %format!("{e:#}"), "manifest PUT failed");
                }
            }
        }
    }
    Ok(summary)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn list_upstream(
    hubc: &HubClient,
    repo: &str,
    rev: &str,
) -> anyhow::Result<(String, Vec<FileToPull>)> {
    let commit = hubc.resolve_revision(repo, rev).await?;
    let entries = hubc.list_files(repo, &commit).await?;
    let mut files = Vec::with_capacity(entries.len());
    for e in entries {
        let sha256 = e.lfs.as_ref().map(|l| l.oid.clone());
        let xet_hash = match &e.xet_hash {
            Some(h) if !h.starts_with('*') => Some(
                MerkleHash::from_hex(h)
                    .map_err(|_| anyhow::anyhow!("bad xetHash for {}", e.path))?,
            ),
            _ => None,
        };
        if let Some(l) = &e.lfs {
            if l.size != e.size {
                bail!(
                    "{}: lfs size {} differs from size {}",
                    e.path,
                    l.size,
                    e.size
                );
            }
        }
        let etag = sha256.clone().unwrap_or_else(|| e.oid.clone());
        hub::validate_etag(&etag)?;
        files.push(FileToPull {
            path: e.path,
            size: e.size,
            etag,
            git_sha1: (!e.oid.is_empty()).then_some(e.oid),
            sha256,
            xet_hash,
            terms: Vec::new(),
        });
    }
    Ok((commit, files))
}

fn from_manifest(m: Manifest) -> anyhow::Result<(String, Vec<FileToPull>)> {
    hub::validate_commit(&m.commit)?;
    let mut files = Vec::new();
    for f in m.files {
        hub::validate_rel_path(&f.path)?;
        // A file without sha256 (a plain git file) cannot come from the fleet; it fails later
        // unless the include/exclude globs leave it out.
        if let Some(sha) = &f.sha256 {
            hub::validate_etag(sha)?;
        }
        files.push(FileToPull {
            path: f.path,
            size: f.size,
            etag: f.sha256.clone().unwrap_or_default(),
            sha256: f.sha256,
            git_sha1: None,
            xet_hash: f.xet_hash,
            terms: f.terms,
        });
    }
    Ok((m.commit, files))
}

async fn pull_plain_file(
    hubc: &HubClient,
    repo: &str,
    commit: &str,
    cache: &RepoCache,
    f: &FileToPull,
) -> anyhow::Result<()> {
    let tmp = cache.incomplete(&f.etag)?;
    let mut out = tokio::fs::File::create(&tmp).await?;
    let n = hubc
        .download_file(repo, commit, &f.path, f.size, &mut out)
        .await?;
    drop(out);
    if n != f.size {
        bail!("got {n} bytes, the listing says {}", f.size);
    }
    let data = tokio::fs::read(&tmp).await?;
    if let Some(sha) = &f.sha256 {
        let got = hex::encode(sha2::Sha256::digest(&data));
        if &got != sha {
            let _ = std::fs::remove_file(&tmp);
            bail!("sha256 mismatch: got {got}, expected {sha}");
        }
    } else if let Some(oid) = &f.git_sha1 {
        use sha1::Digest as _;
        let mut h = sha1::Sha1::new();
        h.update(format!("blob {}\0", data.len()).as_bytes());
        h.update(&data);
        let got = hex::encode(h.finalize());
        if &got != oid {
            let _ = std::fs::remove_file(&tmp);
            bail!("git blob id mismatch: got {got}, expected {oid}");
        }
    }
    cache.commit_blob(&f.etag)
}

/// Per term in file order: the index of the unit that covers it and its chunk range.
type TermMap = Vec<(usize, std::ops::Range<u32>)>;

/// Units to fetch and, per term, the unit that covers it.
fn plan(
    recon: &xet::ReconstructionV2,
    manifest_terms: &[ManifestTerm],
) -> anyhow::Result<(Vec<Unit>, TermMap)> {
    let mut units: Vec<Unit> = Vec::new();
    for (xorb, fetches) in &recon.xorbs {
        for f in fetches {
            for r in &f.ranges {
                if r.chunks.start >= r.chunks.end
                    || r.chunks.end - r.chunks.start > xorbstore::MAX_RANGE_CHUNKS
                    || r.bytes.end < r.bytes.start
                {
                    bail!("the reconstruction has an invalid range for xorb {xorb}");
                }
                units.push(Unit {
                    xorb: *xorb,
                    chunks: r.chunks.start..r.chunks.end,
                    upstream: Some((f.url.clone(), r.bytes.start, r.bytes.end)),
                });
            }
        }
    }
    let term_list: Vec<(MerkleHash, std::ops::Range<u32>)> = if manifest_terms.is_empty() {
        recon
            .terms
            .iter()
            .map(|t| (t.hash, t.range.start..t.range.end))
            .collect()
    } else {
        manifest_terms
            .iter()
            .map(|t| (t.hash, t.range.start..t.range.end))
            .collect()
    };
    let mut map = Vec::with_capacity(term_list.len());
    for (xorb, r) in term_list {
        if r.start >= r.end {
            bail!("empty term in the reconstruction");
        }
        let idx = match units
            .iter()
            .position(|u| u.xorb == xorb && u.chunks.start <= r.start && r.end <= u.chunks.end)
        {
            Some(i) => i,
            None if recon.xorbs.is_empty() => {
                // Fleet-only: fetch the term's own range.
                if r.end - r.start > xorbstore::MAX_RANGE_CHUNKS {
                    bail!("term too long");
                }
                units.push(Unit {
                    xorb,
                    chunks: r.clone(),
                    upstream: None,
                });
                units.len() - 1
            }
            None => bail!("no fetch range covers a term of xorb {xorb}"),
        };
        map.push((idx, r));
    }
    // Fetch only units some term uses.
    Ok((units, map))
}

async fn pull_xet_file(
    sources: &Arc<Sources>,
    token: Option<&xet::CasJwtInfo>,
    cache: &RepoCache,
    f: &FileToPull,
    xet_hash: MerkleHash,
    verify_sha256: bool,
) -> anyhow::Result<Vec<ManifestTerm>> {
    let recon = match (token, &sources.hub) {
        (Some(t), Some(h)) => h.reconstruction(t, &xet_hash, None).await?,
        _ => xet::ReconstructionV2::default(),
    };
    if recon.offset_into_first_range != 0 {
        bail!("the reconstruction of a whole file starts mid-range");
    }
    let (units, term_map) = plan(&recon, &f.terms)?;
    let used: Vec<usize> = {
        let mut u: Vec<usize> = term_map.iter().map(|(i, _)| *i).collect();
        u.sort_unstable();
        u.dedup();
        u
    };
    let mut got: HashMap<usize, Fetched> = HashMap::new();
    let mut skip_fleet = false;
    for round in 0..MAX_ROUNDS {
        let need: Vec<usize> = used
            .iter()
            .copied()
            .filter(|i| !got.contains_key(i))
            .collect();
        let need_units: Vec<Unit> = need.iter().map(|&i| units[i].clone()).collect();
        let holders = if skip_fleet {
            vec![Vec::new(); need.len()]
        } else {
            sources.lookup(&need_units).await
        };
        let results: Vec<(usize, anyhow::Result<Fetched>)> =
            futures::stream::iter(need.iter().copied().zip(holders))
                .map(|(i, h)| {
                    let s = sources.clone();
                    let u = units[i].clone();
                    async move { (i, s.fetch_unit(&u, &h, skip_fleet).await) }
                })
                .buffer_unordered(PARALLEL_RANGES)
                .collect()
                .await;
        for (i, r) in results {
            got.insert(i, r?);
        }
        // Assemble and verify.
        let tmp = cache.incomplete(&f.etag)?;
        let (hash, len, sha) = assemble(&tmp, &units, &term_map, &got, verify_sha256)?;
        let ok_hash = hash == xet_hash && len == f.size;
        let ok_sha = !verify_sha256
            || f.sha256
                .as_deref()
                .is_none_or(|s| Some(s) == sha.as_deref());
        if ok_hash && ok_sha {
            cache.commit_blob(&f.etag)?;
            keep_in_store(sources, &units, &got).await;
            return Ok(term_map
                .iter()
                .map(|(i, r)| {
                    let u = &units[*i];
                    let fe = &got[i];
                    let a = (r.start - u.chunks.start) as usize;
                    let b = (r.end - u.chunks.start) as usize;
                    let start = if a == 0 { 0 } else { fe.ends[a - 1] };
                    ManifestTerm {
                        hash: u.xorb,
                        unpacked_length: (fe.ends[b - 1] - start) as u32,
                        range: tracker::ChunkRange {
                            start: r.start,
                            end: r.end,
                        },
                    }
                })
                .collect());
        }
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!(
            file = %f.path, round, got = %hash, expected = %xet_hash, len, size = f.size,
            "file failed verification; refetching its ranges from upstream"
        );
        // Refetch everything from upstream; blame each fleet source whose chunks differ.
        let old = std::mem::take(&mut got);
        skip_fleet = sources.hub.is_some();
        if !skip_fleet {
            bail!("{} failed verification and upstream is unreachable", f.path);
        }
        for (i, fe) in &old {
            if fe.source == Source::Upstream {
                continue;
            }
            match sources.fetch_unit(&units[*i], &[], true).await {
                Ok(fresh) => {
                    if fresh.hashes != fe.hashes {
                        sources.blame(&fe.source, "sent chunks that fail the file hash");
                    }
                    got.insert(*i, fresh);
                }
                Err(e) => return Err(e),
            }
        }
    }
    bail!(
        "{} failed verification {MAX_ROUNDS} times (Xet hash mismatch); nothing was written",
        f.path
    )
}

/// Writes the terms in order into `tmp`, returning the Xet file hash, the length and the sha256
/// when asked.
fn assemble(
    tmp: &std::path::Path,
    units: &[Unit],
    term_map: &[(usize, std::ops::Range<u32>)],
    got: &HashMap<usize, Fetched>,
    sha: bool,
) -> anyhow::Result<(MerkleHash, u64, Option<String>)> {
    let file = std::fs::File::create(tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut chunks = Vec::new();
    let mut hasher = sha.then(sha2::Sha256::new);
    let mut len = 0u64;
    for (i, r) in term_map {
        let fe = got.get(i).context("a range was not fetched")?;
        // Chunk indices relative to the unit.
        let base = units[*i].chunks.start;
        let a = (r.start - base) as usize;
        let b = (r.end - base) as usize;
        if b > fe.ends.len() || a >= b {
            bail!("term outside its fetched range");
        }
        let start = if a == 0 { 0 } else { fe.ends[a - 1] };
        let end = fe.ends[b - 1];
        let data = &fe.data[start..end];
        w.write_all(data)?;
        if let Some(h) = hasher.as_mut() {
            h.update(data);
        }
        len += data.len() as u64;
        let mut s = start;
        for (k, &e) in fe.ends[a..b].iter().enumerate() {
            chunks.push((fe.hashes[a + k], (e - s) as u64));
            s = e;
        }
    }
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok((
        xet::hash::file_hash(&chunks),
        len,
        hasher.map(|h| hex::encode(h.finalize())),
    ))
}

/// Keeps the verified ranges in the local store (best effort: a full store only warns).
async fn keep_in_store(sources: &Arc<Sources>, units: &[Unit], got: &HashMap<usize, Fetched>) {
    let Some(store) = sources.store.clone() else {
        return;
    };
    let items: Vec<(MerkleHash, std::ops::Range<u32>, bytes::Bytes)> = got
        .iter()
        .filter(|(_, fe)| fe.source != Source::Local)
        .map(|(i, fe)| (units[*i].xorb, units[*i].chunks.clone(), fe.raw.clone()))
        .collect();
    let r = tokio::task::spawn_blocking(move || {
        let exp = Expectation::structural().file_verified();
        for (x, r, raw) in items {
            if let Err(e) = store.insert(&x, r, &raw, &exp) {
                tracing::warn!(error = %e, "could not keep a range in the local store");
            }
        }
    })
    .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "store task failed");
    }
}
