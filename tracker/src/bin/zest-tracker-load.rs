//! `zest-tracker-load`: a load generator for the tracker's HTTP API.
//!
//! Speaks plain HTTP/1.1 over keep-alive TCP connections (a minimal client, so that the
//! generator costs little CPU next to the server on a small machine). Modes:
//!
//! - `setup`: announces a synthetic population (peers holding xorbs, each xorb held by
//!   `--holders` peers) and prints `SAMPLE` lines naming real keys for `redis-benchmark`;
//! - `single`: single-range lookups over `--connections` keep-alive connections for
//!   `--duration` seconds; prints lookups/s and latency percentiles;
//! - `batch`: `--count` lookups of `--items` xorbs each, one at a time; prints p50/p99;
//! - `announce`: `--count` full announces of `--ranges` xorb ranges each; prints p50/p99.
//!
//! Every run is bounded in count and time, and only talks to the given (loopback) URL.
//! Results are one `RESULT key=value ...` line on stdout for scripts.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use xet::MerkleHash;
use zest_tracker::api;

#[derive(Debug, Parser)]
#[command(name = "zest-tracker-load")]
struct Cli {
    /// Tracker address, `host:port` (loopback).
    #[arg(long, default_value = "127.0.0.1:7070")]
    addr: String,
    /// Bearer token for announces.
    #[arg(long, env = zest_tracker::env_vars::ZEST_TRACKER_TOKEN)]
    token: Option<String>,
    /// Number of distinct xorbs of the synthetic population.
    #[arg(long, default_value_t = 2000)]
    xorbs: u64,
    /// Number of peers of the synthetic population.
    #[arg(long, default_value_t = 20)]
    peers: u64,
    /// Peers holding each xorb.
    #[arg(long, default_value_t = 5)]
    holders: u64,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    Setup,
    Single {
        #[arg(long, default_value_t = 64)]
        connections: usize,
        #[arg(long, default_value_t = 5)]
        duration: u64,
    },
    Batch {
        #[arg(long, default_value_t = 2000)]
        items: u64,
        #[arg(long, default_value_t = 200)]
        count: usize,
    },
    Announce {
        #[arg(long, default_value_t = 2000)]
        ranges: u64,
        #[arg(long, default_value_t = 50)]
        count: usize,
    },
}

fn xorb(i: u64) -> MerkleHash {
    MerkleHash::from_u64_groups([i, 0xbe7c4, 0x10ad, 0x5eed])
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: &str) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Sends a prepared request and returns the status and the body length.
    async fn send(&mut self, request: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        let mut chunk = [0u8; 64 * 1024];
        let head_end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            if self.buf.len() > 64 * 1024 {
                bail!("response head too large");
            }
            let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
                .await??;
            if n == 0 {
                bail!("connection closed");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head =
            std::str::from_utf8(&self.buf[..head_end]).context("response head is not UTF-8")?;
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .context("no status")?;
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .context("response without content-length")?;
        if len > 256 << 20 {
            bail!("response body too large");
        }
        while self.buf.len() < head_end + len {
            let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
                .await??;
            if n == 0 {
                bail!("connection closed mid-body");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        Ok((status, self.buf[head_end..head_end + len].to_vec()))
    }
}

fn post(path: &str, host: &str, token: Option<&str>, body: &[u8]) -> Vec<u8> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn peer_id(j: u64) -> String {
    format!("bench-peer-{j}")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(mut lat_ms: Vec<f64>) -> String {
    lat_ms.sort_by(|a, b| a.total_cmp(b));
    format!(
        "p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} max_ms={:.3}",
        percentile(&lat_ms, 0.5),
        percentile(&lat_ms, 0.9),
        percentile(&lat_ms, 0.99),
        lat_ms.last().copied().unwrap_or(f64::NAN)
    )
}

async fn setup(cli: &Cli) -> anyhow::Result<()> {
    let mut conn = Conn::open(&cli.addr).await?;
    let holders = cli.holders.clamp(1, cli.peers.max(1));
    for j in 0..cli.peers {
        // Peer j holds xorb i when i's window of `holders` consecutive peers contains j.
        let full: Vec<api::XorbHolding> = (0..cli.xorbs)
            .filter(|i| (j + cli.peers - i % cli.peers) % cli.peers < holders)
            .map(|i| api::XorbHolding {
                hash: xorb(i),
                ranges: vec![api::ChunkRange { start: 0, end: 64 }],
            })
            .collect();
        let req = api::AnnounceRequest {
            peer: api::PeerDescriptor {
                id: peer_id(j),
                addr: format!("127.0.0.1:{}", 20000 + j),
                role: if j % 3 == 0 {
                    api::Role::Edge
                } else {
                    api::Role::Client
                },
                zone: if j % 2 == 0 { "a".into() } else { "b".into() },
                free_bytes: 1 << 40,
                load: (j % 4) as u32,
            },
            full: Some(full),
            added: vec![],
            removed: vec![],
        };
        let body = serde_json::to_vec(&req)?;
        let (status, resp) = conn
            .send(&post(
                "/v1/announce",
                &cli.addr,
                cli.token.as_deref(),
                &body,
            ))
            .await?;
        if status != 200 {
            bail!(
                "announce of {} failed: {status} {}",
                peer_id(j),
                String::from_utf8_lossy(&resp)
            );
        }
    }
    let holders_of_0: Vec<String> = (0..cli.peers)
        .filter(|j| (j + cli.peers) % cli.peers < holders)
        .map(peer_id)
        .collect();
    println!("SAMPLE xorb_key=zt2:x:{}", xorb(0));
    println!("SAMPLE peer_ids={}", holders_of_0.join(","));
    println!(
        "RESULT mode=setup peers={} xorbs={} holders={holders}",
        cli.peers, cli.xorbs
    );
    Ok(())
}

async fn single(cli: &Cli, connections: usize, duration: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(duration.clamp(1, 120));
    let mut tasks = Vec::new();
    for c in 0..connections.clamp(1, 1024) {
        let addr = cli.addr.clone();
        let xorbs = cli.xorbs.max(1);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&addr).await?;
            let requests: Vec<Vec<u8>> = (0..64u64)
                .map(|k| {
                    let req = api::LookupRequest {
                        peer_id: Some(format!("asker-{c}")),
                        zone: Some("a".into()),
                        limit: None,
                        items: vec![api::LookupItem {
                            hash: xorb((k * 31 + c as u64 * 7) % xorbs),
                            range: api::ChunkRange { start: 0, end: 16 },
                        }],
                    };
                    post(
                        "/v1/lookup",
                        &addr,
                        None,
                        &serde_json::to_vec(&req).expect("json"),
                    )
                })
                .collect();
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut k = 0usize;
            while Instant::now() < deadline && lat.len() < 10_000_000 {
                let t = Instant::now();
                let (status, _) = conn.send(&requests[k % requests.len()]).await?;
                if status == 200 {
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                } else {
                    errors += 1;
                }
                k += 1;
            }
            anyhow::Ok((lat, errors))
        }));
    }
    let start = Instant::now();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await??;
        all.extend(lat);
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "RESULT mode=single connections={connections} requests={} errors={errors} rps={:.0} {}",
        all.len(),
        all.len() as f64 / secs,
        summary(all)
    );
    Ok(())
}

async fn batch(cli: &Cli, items: u64, count: usize) -> anyhow::Result<()> {
    let mut conn = Conn::open(&cli.addr).await?;
    let req = api::LookupRequest {
        peer_id: Some("asker".into()),
        zone: Some("a".into()),
        limit: None,
        items: (0..items)
            .map(|i| api::LookupItem {
                hash: xorb(i % cli.xorbs.max(1)),
                range: api::ChunkRange { start: 0, end: 16 },
            })
            .collect(),
    };
    let request = post("/v1/lookup", &cli.addr, None, &serde_json::to_vec(&req)?);
    // Check one answer fully.
    let (status, body) = conn.send(&request).await?;
    if status != 200 {
        bail!(
            "batch lookup failed: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    let resp: api::LookupResponse = serde_json::from_slice(&body)?;
    let found = resp.results.iter().filter(|r| !r.peers.is_empty()).count();
    if resp.results.len() as u64 != items || found == 0 {
        bail!(
            "batch lookup answered {} results, {found} with peers",
            resp.results.len()
        );
    }
    let mut lat = Vec::with_capacity(count);
    for _ in 0..count.clamp(1, 100_000) {
        let t = Instant::now();
        let (status, _) = conn.send(&request).await?;
        if status != 200 {
            bail!("batch lookup failed: {status}");
        }
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "RESULT mode=batch items={items} found={found} response_bytes={} count={} {}",
        body.len(),
        lat.len(),
        summary(lat)
    );
    Ok(())
}

async fn announce(cli: &Cli, ranges: u64, count: usize) -> anyhow::Result<()> {
    let mut conn = Conn::open(&cli.addr).await?;
    let mut lat = Vec::with_capacity(count);
    for k in 0..count.clamp(1, 10_000) {
        // Alternate between two lists so that every announce replaces real state.
        let offset = (k % 2) as u64 * ranges / 2;
        let req = api::AnnounceRequest {
            peer: api::PeerDescriptor {
                id: "bench-announcer".into(),
                addr: "127.0.0.1:1".into(),
                role: api::Role::Edge,
                zone: "a".into(),
                free_bytes: 0,
                load: 0,
            },
            full: Some(
                (0..ranges)
                    .map(|i| api::XorbHolding {
                        hash: xorb(1_000_000 + i + offset),
                        ranges: vec![api::ChunkRange { start: 0, end: 100 }],
                    })
                    .collect(),
            ),
            added: vec![],
            removed: vec![],
        };
        let request = post(
            "/v1/announce",
            &cli.addr,
            cli.token.as_deref(),
            &serde_json::to_vec(&req)?,
        );
        let t = Instant::now();
        let (status, body) = conn.send(&request).await?;
        if status != 200 {
            bail!(
                "announce failed: {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "RESULT mode=announce ranges={ranges} count={} {}",
        lat.len(),
        summary(lat)
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let threads = std::env::var(zest_tracker::env_vars::ZEST_TRACKER_LOAD_THREADS)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    rt.block_on(async {
        match &cli.mode {
            Mode::Setup => setup(&cli).await,
            Mode::Single {
                connections,
                duration,
            } => single(&cli, *connections, *duration).await,
            Mode::Batch { items, count } => batch(&cli, *items, *count).await,
            Mode::Announce { ranges, count } => announce(&cli, *ranges, *count).await,
        }
    })
}
