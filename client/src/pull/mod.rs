//! `zest pull REPO`: lists a revision's files, fetches every Xet file's chunk ranges from the
//! best sources ([`crate::fleet`]: local store, peers and edges scheduled by measured
//! throughput, upstream raced when the fleet is slow), writes each range into the file as it
//! arrives and verifies the file against its Xet hash (and optionally sha256) (`xetfile`, with
//! the layout in `plan` and the writing in `place`), and writes the Hugging Face cache layout
//! (`cache`) so `huggingface_hub` finds the files offline. No unverified byte reaches a final
//! file: data goes to `blobs/{etag}.incomplete`, is verified, then renamed. Fetched ranges are
//! kept in the local xorb store (so `zest seed` can serve them and an interrupted pull does not
//! fetch them again). Several files are pulled at once, with a bar each (`progress`).
//!
//! With a tracker, the pull is a swarm member ([`crate::fleet::swarm`]): it serves its store
//! while it pulls, shares each range as soon as it is placed (proven or pending, see
//! `xetfile`), claims ranges nobody holds before fetching them upstream, and deregisters when
//! it is done serving.

pub mod cache;
pub mod check;
pub mod journal;
pub mod place;
pub mod plan;
pub mod progress;
pub mod xetfile;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use xet::MerkleHash;
use xorbstore::{Durability, Store, StoreConfig};
use zest_service::FleetArgs;

use crate::dirs::{hf_token, hub_cache_dir};
use crate::env_vars;
use crate::fleet::swarm::{Serving, SwarmArgs};
use crate::fleet::{zest_cache_dir, Fleet};
use cache::RepoCache;
use hub::{HubClient, RepoType, RetryPolicy};
use progress::Progress;
use zest_tracker_api::client::TrackerClient;
use zest_tracker_api::{self as tracker, Manifest, ManifestFile, ManifestTerm};

/// Files pulled at once.
const PARALLEL_FILES: usize = 4;

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
    /// Make every file durable (fsync) before it is renamed into place. Off by default, as in
    /// `huggingface_hub`: files are still renamed into place whole, so a killed pull never
    /// leaves a partial file; only a power loss can cost the last seconds' files.
    #[arg(long, env = env_vars::ZEST_FSYNC)]
    pub fsync: bool,
    /// Hub base URL.
    #[arg(long, env = env_vars::HF_ENDPOINT, default_value = "https://huggingface.co")]
    pub endpoint: String,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Retries of a failed Hub, CAS or xorb request (408, 429, 5xx, broken connections);
    /// 0 sends each request once.
    #[arg(long, env = env_vars::ZEST_MAX_RETRIES, default_value_t = hub::retry::DEFAULT_MAX_RETRIES)]
    pub max_retries: u32,
    #[command(flatten)]
    pub swarm: SwarmArgs,
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
    /// Ranges also fetched upstream because the fleet was slow to answer.
    pub hedges: u64,
    pub bad_sources: std::collections::BTreeMap<String, String>,
    /// GGUF and safetensors files whose structure is damaged (path → what is wrong). They are
    /// byte-exact with upstream; upstream published them damaged.
    pub damaged_files: std::collections::BTreeMap<String, String>,
    pub fleet_only: bool,
    pub duration_ms: u64,
    pub snapshot: PathBuf,
    /// What this machine served other machines while it pulled (and seeded after).
    pub served: Served,
    /// What peer exchange did (peers learned, bytes from peers only it named).
    pub pex: crate::fleet::PexCounts,
}

/// What a pull in a swarm served.
#[derive(Debug, Default, Serialize)]
pub struct Served {
    /// The address announced to the tracker (empty: the pull did not serve).
    pub addr: String,
    pub bytes: u64,
    pub requests: u64,
    /// Peer connections accepted.
    pub peers: u64,
    /// Ranges the tracker leased to this machine to fetch upstream for the swarm.
    pub claims: u64,
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
        "  bytes from local {} | peers {} | edges {} | upstream {}  (retries {}, upstream races {})",
        mb(s.bytes.local),
        mb(s.bytes.peers),
        mb(s.bytes.edges),
        mb(s.bytes.upstream),
        s.retries,
        s.hedges
    )?;
    if !s.served.addr.is_empty() {
        writeln!(
            out,
            "  served peers {} in {} requests over {} connections (as {})",
            mb(s.served.bytes),
            s.served.requests,
            s.served.peers,
            s.served.addr
        )?;
    }
    if s.pex.learned > 0 || s.pex.bytes > 0 {
        writeln!(
            out,
            "  peer exchange: {} peer addresses learned, {} from peers only it named",
            s.pex.learned,
            mb(s.pex.bytes)
        )?;
    }
    for (src, why) in &s.bad_sources {
        writeln!(out, "  bad source avoided: {src}: {why}")?;
    }
    for (path, why) in &s.damaged_files {
        writeln!(
            out,
            "  warning: {path} is byte-exact with upstream but not a sound model file: {why}"
        )?;
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
    let peer_id = args.fleet.peer_id.clone().unwrap_or_else(default_peer_id);
    crate::fleet::check_zone(&args.fleet.zone)?;
    let hubc = HubClient::new(
        &args.endpoint,
        hf_token(),
        RetryPolicy::with_max_retries(args.max_retries),
    )?;
    let trackerc = match args.fleet.tracking.tracker_url() {
        Some(t) => Some(TrackerClient::new(
            t,
            args.fleet.tracking.tracker_token.clone(),
        )?),
        _ => None,
    };
    let store_dir = zest_cache_dir(args.fleet.zest_cache.clone());
    let store = {
        let d = store_dir.clone();
        // The local store is this client's own copy of verified bytes, re-verified by every
        // reader: fsyncing each range would double the disk cost of the pull for no safety the
        // hashes do not already give (see `Durability::Deferred`).
        let config = StoreConfig {
            quota_bytes: args.fleet.cache_max_bytes,
            durability: Durability::Deferred,
        };
        tokio::task::spawn_blocking(move || Store::open(&d, config))
            .await?
            .with_context(|| format!("opening the local xorb store {}", store_dir.display()))?
    };

    // With a tracker, the pull is a swarm member: it serves what it has while it pulls.
    let serving = match (&trackerc, args.swarm.no_serve) {
        (Some(t), false) => Some(
            Serving::start(
                &args.swarm,
                store.clone(),
                t.clone(),
                peer_id.clone(),
                args.fleet.zone.clone(),
            )
            .await
            .context("serving peers while pulling (--no-serve to only take)")?,
        ),
        _ => None,
    };
    let publisher = serving.as_ref().map(Serving::publisher);
    let metrics_fleet = Arc::<std::sync::OnceLock<Arc<Fleet>>>::default();
    let server = serving.as_ref().map(Serving::server);
    if let Some(m) = &args.swarm.metrics_listen {
        crate::metrics::start(
            m,
            server.clone(),
            metrics_fleet.clone(),
            std::future::pending(),
        )
        .await?;
    }
    // With a tracker, the pull keeps a peer book (its server's when it serves), so it keeps
    // finding peers if the tracker goes down.
    let book = trackerc.as_ref().map(|_| match &serving {
        Some(s) => s.book(),
        None => std::sync::Arc::new(xorbstore::peer::PeerBook::new(None)),
    });
    let pulled = pull_files(
        args,
        started,
        Setup {
            include,
            exclude,
            peer_id,
            hubc,
            trackerc,
            store,
            store_dir,
            publisher,
            book,
            metrics_fleet,
            server,
        },
    )
    .await;
    let Some(serving) = serving else {
        return pulled;
    };
    let seed_for = if pulled.is_ok() {
        args.swarm.seed_for
    } else {
        std::time::Duration::ZERO
    };
    let addr = serving.addr().to_owned();
    let claimed = pulled.as_ref().is_ok_and(|s| s.served.claims > 0);
    let st = serving.finish(seed_for, claimed).await;
    pulled.map(|mut s| {
        s.served = Served {
            addr,
            bytes: st.bytes_served,
            requests: st.requests,
            peers: st.connections_total,
            claims: s.served.claims,
        };
        s
    })
}

/// What [`pull_files`] is given by [`pull`].
struct Setup {
    include: Option<globset::GlobSet>,
    exclude: Option<globset::GlobSet>,
    peer_id: String,
    hubc: HubClient,
    trackerc: Option<TrackerClient>,
    store: Store,
    store_dir: PathBuf,
    publisher: Option<crate::fleet::swarm::Publisher>,
    book: Option<std::sync::Arc<xorbstore::peer::PeerBook>>,
    /// Where the pull's fleet goes once made, for `--metrics-listen`.
    metrics_fleet: Arc<std::sync::OnceLock<Arc<Fleet>>>,
    /// The pull's own peer server, when it serves.
    server: Option<xorbstore::peer::PeerServer>,
}

/// Lists the revision's files and pulls them, reports to the tracker and publishes the
/// revision's manifest.
async fn pull_files(args: &PullArgs, started: Instant, setup: Setup) -> anyhow::Result<Summary> {
    let Setup {
        include,
        exclude,
        peer_id,
        hubc,
        trackerc,
        store,
        store_dir,
        publisher,
        book,
        metrics_fleet,
        server,
    } = setup;
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

    let cache = RepoCache::open(&hub_cache_dir(), &args.repo)?.durable(args.fsync);
    let mut fleet = Fleet::new(
        Some(store.clone()),
        (!fleet_only).then(|| hubc.clone()),
        trackerc.clone(),
        peer_id.clone(),
    )
    .with_zone(args.fleet.zone.clone());
    if let Some(b) = book {
        fleet = fleet.with_peer_book(b);
    }
    if let Some(p) = publisher {
        fleet = fleet
            .with_publisher(p)
            .with_claim_group(args.repo.clone(), args.swarm.swarm_upstream_fetches);
    }
    let sources = Arc::new(fleet);
    let _ = metrics_fleet.set(sources.clone());
    let total: u64 = files.iter().map(|f| f.size).sum();
    let visible =
        !(args.quiet || args.json || !std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let progress = Progress::new(total, visible).with_serving(server);

    let mut summary = Summary {
        repo: args.repo.clone(),
        revision: args.revision.clone(),
        commit: commit.clone(),
        fleet_only,
        ..Summary::default()
    };
    let job = Job {
        args,
        hubc: &hubc,
        cache: &cache,
        commit: &commit,
        fleet_only,
        sources: &sources,
        limits: xetfile::Limits::default(),
        token: tokio::sync::Mutex::new(None),
        progress: &progress,
        journal_dir: store_dir.join("partial"),
        blob_locks: Default::default(),
    };
    // Several files at once (small files do not wait for big ones); the units of all files share
    // one limit.
    let mut outcomes: Vec<(usize, FileOutcome)> = futures::stream::iter(files.iter().enumerate())
        .map(|(i, f)| {
            let job = &job;
            async move {
                job.pull_file(f)
                    .await
                    .with_context(|| format!("pulling {}", f.path))
                    .map(|o| (i, o))
            }
        })
        .buffer_unordered(PARALLEL_FILES)
        .try_collect()
        .await?;
    outcomes.sort_by_key(|(i, _)| *i);
    let mut manifest_files = Vec::with_capacity(files.len());
    for ((_, o), f) in outcomes.into_iter().zip(&files) {
        summary.files += 1;
        if o.already_present {
            summary.files_already_present += 1;
        } else {
            summary.bytes_written += f.size;
        }
        manifest_files.push(ManifestFile {
            path: f.path.clone(),
            size: f.size,
            sha256: f.sha256.clone(),
            xet_hash: f.xet_hash,
            terms: o.terms,
        });
    }
    if args.revision != commit {
        cache.write_ref(&args.revision, &commit)?;
    }
    progress.finish();
    summary.damaged_files = check_model_files(&cache, &files).await?;

    summary.bytes = sources.bytes();
    summary.retries = hubc.retries();
    summary.hedges = sources.hedges();
    summary.served.claims = sources.claims_granted();
    summary.bad_sources = sources.bad_sources();
    summary.pex = sources.pex();
    summary.duration_ms = started.elapsed().as_millis() as u64;
    summary.snapshot = cache.dir().join("snapshots").join(&commit);

    if let Some(t) = trackerc.as_ref().filter(|_| !sources.tracker_down()) {
        let report = tracker::ReportRequest {
            peer_id: Some(peer_id.clone()),
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

/// Structural check of every GGUF and safetensors file of the pull (see `check`), off the
/// async threads. Damaged files are reported, not deleted: they are what upstream published.
async fn check_model_files(
    cache: &RepoCache,
    files: &[FileToPull],
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut todo = Vec::new();
    for f in files.iter().filter(|f| check::is_model_file(&f.path)) {
        todo.push((f.path.clone(), cache.blob(&f.etag)?));
    }
    let damaged = tokio::task::spawn_blocking(move || {
        let mut damaged = std::collections::BTreeMap::new();
        for (path, blob) in todo {
            match check::check_file(&blob) {
                Ok(None) => {}
                Ok(Some(why)) => {
                    tracing::warn!(file = %path, problem = %why, "damaged model file");
                    damaged.insert(path, why);
                }
                Err(e) => {
                    damaged.insert(path, format!("cannot read it back: {e}"));
                }
            }
        }
        damaged
    })
    .await?;
    Ok(damaged)
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
    let commit = hubc.resolve_revision(RepoType::Model, repo, rev).await?;
    let entries = hubc.list_files(RepoType::Model, repo, &commit).await?;
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

/// The work of one pull, shared by the files pulled at once.
struct Job<'a> {
    args: &'a PullArgs,
    hubc: &'a HubClient,
    cache: &'a RepoCache,
    commit: &'a str,
    fleet_only: bool,
    sources: &'a Arc<Fleet>,
    limits: xetfile::Limits,
    /// The Xet read token, refreshed a minute before it expires.
    token: tokio::sync::Mutex<Option<xet::CasJwtInfo>>,
    progress: &'a Progress,
    /// Resume journals of Xet files being pulled (`<zest cache>/partial`).
    journal_dir: PathBuf,
    /// One lock per blob: files with the same content are pulled once.
    blob_locks: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// What pulling one file did.
struct FileOutcome {
    already_present: bool,
    terms: Vec<ManifestTerm>,
}

impl Job<'_> {
    async fn token(&self) -> anyhow::Result<Option<xet::CasJwtInfo>> {
        if self.fleet_only {
            return Ok(None);
        }
        let mut t = self.token.lock().await;
        if t.as_ref().is_none_or(|t| t.exp < now_secs() + 60) {
            *t = Some(
                self.hubc
                    .xet_read_token(RepoType::Model, &self.args.repo, self.commit)
                    .await?,
            );
        }
        Ok(t.clone())
    }

    fn show_sources(&self) {
        self.progress.set_sources(&self.sources.bytes());
    }

    async fn pull_file(&self, f: &FileToPull) -> anyhow::Result<FileOutcome> {
        let mut out = FileOutcome {
            already_present: false,
            terms: f.terms.clone(),
        };
        let lock = self
            .blob_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(f.etag.clone())
            .or_default()
            .clone();
        let _blob = lock.lock().await;
        if self.cache.has_blob(&f.etag, f.size) {
            out.already_present = true;
            self.progress.inc_total(f.size);
        } else if let Some(xh) = f.xet_hash {
            let token = self.token().await?;
            let bar = self.progress.file(&f.path, f.size);
            let on_bytes = |n: u64| {
                self.progress.inc_total(n);
                self.show_sources();
            };
            out.terms = xetfile::pull_xet_file(xetfile::XetFileJob {
                sources: self.sources,
                limits: &self.limits,
                token: token.as_ref(),
                cache: self.cache,
                file: f,
                xet_hash: xh,
                verify_sha256: self.args.verify_sha256,
                bar: &bar,
                on_bytes: &on_bytes,
                journal_dir: &self.journal_dir,
            })
            .await?;
        } else if self.fleet_only || f.etag.is_empty() {
            bail!(
                "{} is not a Xet file and upstream is unreachable: the fleet cannot provide it",
                f.path
            );
        } else {
            pull_plain_file(self.hubc, &self.args.repo, self.commit, self.cache, f).await?;
            self.sources.count_upstream(f.size);
            self.progress.inc_total(f.size);
            self.show_sources();
        }
        self.cache.link_snapshot(self.commit, &f.path, &f.etag)?;
        Ok(out)
    }
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
    let (path, sha256, git_sha1) = (tmp.clone(), f.sha256.clone(), f.git_sha1.clone());
    let checked = tokio::task::spawn_blocking(move || check_plain(&path, sha256, git_sha1)).await?;
    if let Err(e) = checked {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(cache.commit_blob(&f.etag)?)
}

/// Streams `path` through sha256 (LFS files) or the git blob id (others) and compares.
fn check_plain(
    path: &std::path::Path,
    sha256: Option<String>,
    git_sha1: Option<String>,
) -> anyhow::Result<()> {
    let mut file = std::fs::File::open(path)?;
    if let Some(want) = sha256 {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        std::io::copy(&mut file, &mut h)?;
        let got = hex::encode(h.finalize());
        if got != want {
            bail!("sha256 mismatch: got {got}, expected {want}");
        }
    } else if let Some(want) = git_sha1 {
        use sha1::Digest;
        let mut h = sha1::Sha1::new();
        h.update(format!("blob {}\0", file.metadata()?.len()).as_bytes());
        std::io::copy(&mut file, &mut h)?;
        let got = hex::encode(h.finalize());
        if got != want {
            bail!("git blob id mismatch: got {got}, expected {want}");
        }
    }
    Ok(())
}
