//! Load client for `bench/edge_vs_nginx.sh`: concurrent clients fetching cached xorb ranges from
//! a zest-edge over HTTP (the rewritten xorb URLs a Hugging Face client gets through the proxy)
//! or over the peer wire protocol, and the same bytes from any HTTP server holding them as plain
//! files (nginx), with the same HTTP code for both.
//!
//! ```text
//! edge_load prepare --edge URL --repo ORG/NAME --file PATH --out DIR [--min-bytes N]
//!     writes DIR/manifest.tsv (xorb, chunk range, byte range, edge URL per range of at least
//!     N bytes) and DIR/files/<xorb>.<start>-<end> (the range's bytes, fetched from the edge)
//! edge_load http --manifest M (--edge | --files-base URL) [--clients 8] [--fetches 4]
//! edge_load wire --manifest M --peer HOST:PORT [--clients 8] [--fetches 4]
//! ```
//!
//! Each measuring mode prints `RESULT bytes=<n> secs=<s> gbps=<GB/s>`. Client `i` fetches range
//! `(i + k) mod ranges` on its `k`-th fetch over one kept-alive connection; every body's length is
//! checked and nothing is kept (bytes are counted as they arrive).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use xet::MerkleHash;
use xorbstore::peer::{FetchOptions, PeerClient, PeerClientConfig};

#[derive(Clone, Debug)]
struct Range {
    xorb: MerkleHash,
    chunks: (u32, u32),
    bytes: (u64, u64),
    url: String,
}

impl Range {
    fn len(&self) -> u64 {
        self.bytes.1 - self.bytes.0 + 1
    }
    fn file_name(&self) -> String {
        format!("{}.{}-{}", self.xorb, self.chunks.0, self.chunks.1)
    }
}

struct Args(Vec<String>);

impl Args {
    fn value(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.0.get(i + 1))
            .map(String::as_str)
    }
    fn req(&self, name: &str) -> anyhow::Result<&str> {
        self.value(name)
            .with_context(|| format!("{name} is required"))
    }
    fn num(&self, name: &str, default: u64) -> anyhow::Result<u64> {
        match self.value(name) {
            Some(v) => v.parse().with_context(|| format!("{name} {v:?}")),
            None => Ok(default),
        }
    }
    fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|a| a == name)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(mode) = argv.first().cloned() else {
        bail!("usage: edge_load prepare|http|wire ...");
    };
    let args = Args(argv);
    match mode.as_str() {
        "prepare" => prepare(&args).await,
        "http" => http(&args).await,
        "wire" => wire(&args).await,
        m => bail!("unknown mode {m:?}"),
    }
}

fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .pool_max_idle_per_host(64)
        .build()
        .context("http client")
}

async fn prepare(args: &Args) -> anyhow::Result<()> {
    let edge = args.req("--edge")?.trim_end_matches('/');
    let repo = args.req("--repo")?;
    let file = args.req("--file")?;
    let out = PathBuf::from(args.req("--out")?);
    let min_bytes = args.num("--min-bytes", 0)?;
    let http = client()?;
    let head = http
        .head(format!("{edge}/{repo}/resolve/main/{file}"))
        .send()
        .await?;
    let hash = head
        .headers()
        .get("x-xet-hash")
        .and_then(|v| v.to_str().ok())
        .context("no X-Xet-Hash: is the file stored with Xet?")?
        .to_string();
    let token: serde_json::Value = http
        .get(format!("{edge}/api/models/{repo}/xet-read-token/main"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let cas = token["casUrl"].as_str().context("casUrl")?;
    let access = token["accessToken"].as_str().context("accessToken")?;
    let rec: serde_json::Value = http
        .get(format!("{cas}/v2/reconstructions/{hash}"))
        .bearer_auth(access)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut ranges = Vec::new();
    for (xorb, fetches) in rec["xorbs"].as_object().context("xorbs")? {
        let xorb = MerkleHash::from_hex(xorb).map_err(|e| anyhow::anyhow!("{e}"))?;
        for f in fetches.as_array().context("fetch list")? {
            let url = f["url"].as_str().context("url")?;
            for r in f["ranges"].as_array().context("ranges")? {
                let n = |a: &str, b: &str| r[a][b].as_u64().context("range field");
                ranges.push(Range {
                    xorb,
                    chunks: (n("chunks", "start")? as u32, n("chunks", "end")? as u32),
                    bytes: (n("bytes", "start")?, n("bytes", "end")?),
                    url: url.to_string(),
                });
            }
        }
    }
    ranges.retain(|r| r.len() >= min_bytes);
    ranges.sort_by_key(|r| (r.xorb, r.chunks));
    if ranges.is_empty() {
        bail!("no range of at least {min_bytes} bytes in the reconstruction");
    }
    let files = out.join("files");
    std::fs::create_dir_all(&files)?;
    let mut manifest = String::new();
    for r in &ranges {
        let body = http
            .get(&r.url)
            .header("range", format!("bytes={}-{}", r.bytes.0, r.bytes.1))
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        if body.len() as u64 != r.len() {
            bail!("{}: {} bytes, expected {}", r.xorb, body.len(), r.len());
        }
        std::fs::write(files.join(r.file_name()), &body)?;
        manifest.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            r.xorb, r.chunks.0, r.chunks.1, r.bytes.0, r.bytes.1, r.url
        ));
    }
    std::fs::write(out.join("manifest.tsv"), manifest)?;
    let sizes: Vec<u64> = ranges.iter().map(Range::len).collect();
    println!("ranges={} bytes={sizes:?}", ranges.len());
    Ok(())
}

fn read_manifest(args: &Args) -> anyhow::Result<Vec<Range>> {
    let path = args.req("--manifest")?;
    let text = std::fs::read_to_string(path).with_context(|| path.to_string())?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 6 {
            bail!("bad manifest line {line:?}");
        }
        out.push(Range {
            xorb: MerkleHash::from_hex(f[0]).map_err(|e| anyhow::anyhow!("{e}"))?,
            chunks: (f[1].parse()?, f[2].parse()?),
            bytes: (f[3].parse()?, f[4].parse()?),
            url: f[5].to_string(),
        });
    }
    if out.is_empty() {
        bail!("empty manifest");
    }
    Ok(out)
}

/// Waits for every client task (each yields the bytes it fetched) and prints the `RESULT` line:
/// the bytes and the throughput since `started`.
async fn finish(
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<u64>>>,
    started: Instant,
) -> anyhow::Result<()> {
    let mut bytes = 0;
    for t in tasks {
        bytes += t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "RESULT bytes={bytes} secs={secs:.4} gbps={:.3}",
        bytes as f64 / secs / 1e9
    );
    Ok(())
}

async fn http(args: &Args) -> anyhow::Result<()> {
    let ranges = Arc::new(read_manifest(args)?);
    let clients = args.num("--clients", 8)? as usize;
    let fetches = args.num("--fetches", 4)? as usize;
    // Either the edge's own xorb URLs (with the xorb byte range) or plain files (whole file).
    let files_base = if args.flag("--edge") {
        None
    } else {
        Some(args.req("--files-base")?.trim_end_matches('/').to_string())
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..clients {
        let ranges = ranges.clone();
        let base = files_base.clone();
        let http = client()?;
        tasks.push(tokio::spawn(async move {
            let mut total = 0u64;
            for k in 0..fetches {
                let r = &ranges[(i + k) % ranges.len()];
                let (url, span) = match &base {
                    None => (r.url.clone(), r.bytes),
                    Some(b) => (format!("{b}/{}", r.file_name()), (0, r.len() - 1)),
                };
                let mut resp = http
                    .get(&url)
                    .header("range", format!("bytes={}-{}", span.0, span.1))
                    .send()
                    .await?;
                if resp.status().as_u16() != 206 {
                    bail!("GET {url}: status {}", resp.status());
                }
                let mut got = 0u64;
                while let Some(piece) = resp.chunk().await? {
                    got += piece.len() as u64;
                }
                if got != r.len() {
                    bail!("GET {url}: {got} bytes, expected {}", r.len());
                }
                total += got;
            }
            Ok::<u64, anyhow::Error>(total)
        }));
    }
    finish(tasks, started).await
}

async fn wire(args: &Args) -> anyhow::Result<()> {
    let ranges = Arc::new(read_manifest(args)?);
    let clients = args.num("--clients", 8)? as usize;
    let fetches = args.num("--fetches", 4)? as usize;
    let peer: SocketAddr = args.req("--peer")?.parse().context("--peer")?;
    let mut conns = Vec::new();
    for i in 0..clients {
        let config = PeerClientConfig::new(format!("load-{i}"), wire::Role::Client);
        conns.push(PeerClient::connect(peer, config).await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, c) in conns.into_iter().enumerate() {
        let ranges = ranges.clone();
        tasks.push(tokio::spawn(async move {
            let mut total = 0u64;
            for k in 0..fetches {
                let r = &ranges[(i + k) % ranges.len()];
                let opts = FetchOptions {
                    timeout: Some(Duration::from_secs(600)),
                    ..FetchOptions::default()
                };
                let body = c.fetch_with(&r.xorb, r.chunks.0..r.chunks.1, opts).await?;
                if body.len() as u64 != r.len() {
                    bail!("{}: {} bytes, expected {}", r.xorb, body.len(), r.len());
                }
                total += body.len() as u64;
            }
            Ok::<u64, anyhow::Error>(total)
        }));
    }
    finish(tasks, started).await
}
