//! `zest inspect`: what a GGUF or safetensors file is — format, architecture, hyperparameters,
//! parameter count, bytes per tensor type, tensor table — for a local file (memory-mapped; only
//! the header's pages are touched) or for a file in a Hub repo, fetching only the bytes the header
//! needs through Xet `Range` reconstructions ([`remote`]).
//!
//! Parsing is `modelfile`'s; this module does the I/O around it and the output.

pub mod remote;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use crate::env_vars;
use crate::fleet::Fleet;
use crate::mmap::MappedFile;
use hub::{HubClient, RetryPolicy};
use zest_service::TrackerArgs;
use zest_tracker_api::client::TrackerClient;

/// Most fetch rounds for one remote header (each at least doubles what is held, so this is far
/// more than any header under `modelfile`'s limits needs).
pub const MAX_FETCH_ROUNDS: usize = 48;

#[derive(Clone, Args)]
pub struct InspectArgs {
    /// A local GGUF or safetensors file, or (with PATH) a Hub repo id such as `org/model`.
    pub target: String,
    /// Path of the file inside the repo: inspect it remotely, fetching only its header.
    pub path: Option<String>,
    /// Branch, tag or commit of the repo (remote only).
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Include the tensor table.
    #[arg(long)]
    pub tensors: bool,
    /// Hub base URL.
    #[arg(long, env = env_vars::HF_ENDPOINT, default_value = "https://huggingface.co")]
    pub endpoint: String,
    /// Hub access token (sent to the Hub only, never to CAS or xorb URLs).
    #[arg(long, env = env_vars::HF_TOKEN, hide_env_values = true)]
    pub token: Option<String>,
    /// With a tracker, the header's xorb ranges come through the fleet (remote only).
    #[command(flatten)]
    pub tracking: TrackerArgs,
    /// Retries of a failed Hub, CAS or xorb request (408, 429, 5xx, broken connections);
    /// 0 sends each request once (remote only).
    #[arg(long, env = env_vars::ZEST_MAX_RETRIES, default_value_t = hub::retry::DEFAULT_MAX_RETRIES)]
    pub max_retries: u32,
}

impl std::fmt::Debug for InspectArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InspectArgs")
            .field("target", &self.target)
            .field("path", &self.path)
            .field("revision", &self.revision)
            .field("json", &self.json)
            .field("tensors", &self.tensors)
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("tracking", &self.tracking)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

/// How a remote header was fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteReport {
    pub repo: String,
    pub revision: String,
    pub path: String,
    /// `X-Xet-Hash`; `None` for a plain (non-Xet) file.
    pub xet_hash: Option<String>,
    /// `v2` or `v1` (Xet files only).
    pub reconstruction_api: Option<String>,
    pub file_len: u64,
    /// Bytes of the file, from its start, that were reconstructed and parsed.
    pub prefix_bytes: u64,
    /// Response body bytes downloaded for them: reconstruction JSON plus xorb ranges (Xet), or
    /// the ranged GET's body (plain files). The HEAD and token requests are not counted.
    pub bytes_fetched: u64,
    /// HTTP requests made in all, HEAD and token included.
    pub requests: u64,
    /// Whether the whole file was fetched and its Xet hash checked against `X-Xet-Hash`.
    pub whole_file_hash_verified: bool,
    /// With a tracker: xorb range bytes by where they came from (peers, edges, upstream).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<zest_tracker_api::BytesBySource>,
}

/// What `zest inspect --json` prints: the summary, and for remote files how it was fetched.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    #[serde(flatten)]
    pub summary: &'a modelfile::Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<&'a RemoteReport>,
}

/// Runs `zest inspect`, writing to `out`.
pub fn run(args: &InspectArgs, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    match &args.path {
        None => inspect_local(Path::new(&args.target), args, out),
        Some(path) => inspect_remote(&args.target, path, args, out),
    }
}

/// Summary of a local file; errors name the file and the byte offset.
pub fn local_summary(path: &Path) -> anyhow::Result<modelfile::Summary> {
    let map = MappedFile::open(path).with_context(|| format!("opening {}", path.display()))?;
    let file = modelfile::parse(map.bytes())
        .with_context(|| format!("{} is not a valid model file", path.display()))?;
    Ok(file.summary())
}

fn inspect_local(
    path: &Path,
    args: &InspectArgs,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let mut summary = local_summary(path)?;
    if !args.tensors {
        summary.tensors.clear();
    }
    print(out, &summary, None, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn inspect_remote(
    repo: &str,
    path: &str,
    args: &InspectArgs,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let location = remote::Location {
        endpoint: args.endpoint.trim_end_matches('/').to_owned(),
        token: args.token.clone().filter(|t| !t.is_empty()),
        repo: repo.to_owned(),
        revision: args.revision.clone(),
        path: path.to_owned(),
    };
    let policy = RetryPolicy::with_max_retries(args.max_retries);
    let hub = HubClient::new(&location.endpoint, location.token.clone(), policy)?;
    let fleet = match args.tracking.tracker_url() {
        Some(t) => Some(fleet_sources(&location, t, args, policy)?),
        None => None,
    };
    let (mut summary, report) = runtime.block_on(remote_summary(&hub, &location, fleet))?;
    if !args.tensors {
        summary.tensors.clear();
    }
    print(out, &summary, Some(&report), args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// The sources `zest pull` uses, without a local store: the tracker's peers and edges, then
/// upstream.
fn fleet_sources(
    location: &remote::Location,
    tracker: &str,
    args: &InspectArgs,
    policy: RetryPolicy,
) -> anyhow::Result<Arc<Fleet>> {
    // Its own counters: the remote file's report adds the fleet's requests to its own.
    let hub = HubClient::new(&location.endpoint, location.token.clone(), policy)?;
    let tracker = TrackerClient::new(tracker, args.tracking.tracker_token.clone())
        .with_context(|| format!("bad tracker URL {tracker:?}"))?;
    let peer_id = format!(
        "zest-inspect-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    Ok(Arc::new(Fleet::new(
        None,
        Some(hub),
        Some(tracker),
        peer_id,
    )))
}

/// Fetches a remote file's header — the first [`modelfile::INITIAL_FETCH_LEN`] bytes, then more
/// as the parser asks — and summarises it; through `fleet` when given.
pub async fn remote_summary(
    hub: &HubClient,
    location: &remote::Location,
    fleet: Option<Arc<Fleet>>,
) -> anyhow::Result<(modelfile::Summary, RemoteReport)> {
    let mut file = remote::RemoteFile::open(hub, location).await?;
    if let Some(f) = &fleet {
        file.via_fleet(f.clone());
    }
    let file_len = file.len();
    let name = location.display_name();
    let mut buf = Vec::new();
    let mut want = modelfile::INITIAL_FETCH_LEN.min(file_len);
    let mut rounds = 0;
    let summary = loop {
        rounds += 1;
        anyhow::ensure!(
            rounds <= MAX_FETCH_ROUNDS,
            "{name}: header still incomplete after {MAX_FETCH_ROUNDS} fetches"
        );
        let have = buf.len() as u64;
        if want > have {
            file.read_range(have..want, &mut buf)
                .await
                .with_context(|| format!("fetching bytes {have}..{want} of {name}"))?;
        }
        match modelfile::parse_prefix(&buf, Some(file_len)) {
            Ok(parsed) => break parsed.summary(),
            Err(modelfile::Error::Incomplete { needed }) => {
                let next = modelfile::next_fetch_len(buf.len() as u64, needed, file_len);
                anyhow::ensure!(
                    next > buf.len() as u64,
                    "{name}: the header needs {needed} bytes but the file has {file_len}"
                );
                want = next;
            }
            Err(e) => {
                return Err(anyhow::Error::new(e))
                    .with_context(|| format!("{name} is not a valid model file"))
            }
        }
    };
    let whole_file_hash_verified = file.verify_whole_file(&buf)?;
    let stats = file.stats();
    let report = RemoteReport {
        repo: location.repo.clone(),
        revision: location.revision.clone(),
        path: location.path.clone(),
        xet_hash: file.xet_hash().map(|h| h.to_string()),
        reconstruction_api: file.reconstruction_api().map(str::to_owned),
        file_len,
        prefix_bytes: buf.len() as u64,
        bytes_fetched: stats.body_bytes,
        requests: stats.requests,
        whole_file_hash_verified,
        fleet: fleet.map(|f| f.bytes()),
    };
    tracing::debug!(
        file = %name,
        file_len,
        prefix_bytes = report.prefix_bytes,
        bytes_fetched = report.bytes_fetched,
        requests = report.requests,
        "remote header fetched"
    );
    Ok((summary, report))
}

fn print(
    out: &mut impl Write,
    summary: &modelfile::Summary,
    remote: Option<&RemoteReport>,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let report = Report { summary, remote };
        serde_json::to_writer_pretty(&mut *out, &report).context("writing output")?;
        writeln!(out).context("writing output")?;
    } else {
        write!(out, "{}", modelfile::render_text(summary)).context("writing output")?;
        if let Some(r) = remote {
            writeln!(out, "{}", fetched_line(r)).context("writing output")?;
        }
    }
    out.flush().context("writing output")?;
    Ok(())
}

/// `fetched 4.2 MB of 5.1 GB (0.082%) in 5 requests for the first 4194304 bytes`.
pub fn fetched_line(r: &RemoteReport) -> String {
    let pct = if r.file_len == 0 {
        100.0
    } else {
        r.bytes_fetched as f64 * 100.0 / r.file_len as f64
    };
    let mut line = format!(
        "fetched {} bytes of {} ({pct:.3}%) in {} requests, for the first {} bytes of {}/{}",
        r.bytes_fetched, r.file_len, r.requests, r.prefix_bytes, r.repo, r.path
    );
    if let Some(f) = &r.fleet {
        line.push_str(&format!(
            " (xorb bytes from peers {}, edges {}, upstream {})",
            f.peers, f.edges, f.upstream
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetched_line_reports_percentage() {
        let r = RemoteReport {
            repo: "org/m".into(),
            revision: "main".into(),
            path: "m.gguf".into(),
            xet_hash: None,
            reconstruction_api: None,
            file_len: 1000,
            prefix_bytes: 20,
            bytes_fetched: 5,
            requests: 3,
            whole_file_hash_verified: false,
            fleet: None,
        };
        assert_eq!(
            fetched_line(&r),
            "fetched 5 bytes of 1000 (0.500%) in 3 requests, for the first 20 bytes of org/m/m.gguf"
        );
    }
}
