//! `zest demo`: the whole fleet on one machine, with nothing to install. Generates a small model
//! repo (a safetensors file and a GGUF v3 file written here, `config.json`, `README.md`), starts
//! `zest-origin`, an embedded `zest-tracker` and (when its binary is present and starts) one
//! `zest-edge` on loopback from the folder of the `zest` binary, then pulls the repo with three
//! clients one after the other (each with its own Hugging Face cache and xorb store; each client
//! then seeds), printing where every pull's bytes came from and how long it took.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;

/// Arguments of `zest demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Work folder (default: a new temporary folder, deleted at the end).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Approximate model size in MB.
    #[arg(long, default_value_t = 200)]
    pub size_mb: u64,
    /// Do not start zest-edge.
    #[arg(long)]
    pub no_edge: bool,
}

const REPO: &str = "demo/tiny-llm";

/// Children killed when dropped.
struct Procs(Vec<(String, Child)>);

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in self.0.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_port(addr: &str, child: &mut Child, secs: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while TcpStream::connect(addr).is_err() {
        if let Some(st) = child.try_wait()? {
            bail!("exited with {st} before listening on {addr}");
        }
        if Instant::now() > deadline {
            bail!("not listening on {addr} after {secs}s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn xorshift(seed: u64, out: &mut [u8]) {
    let mut x = seed | 1;
    for c in out.chunks_mut(8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        c.copy_from_slice(&v[..c.len()]);
    }
}

/// Float16-like weights: random mantissas, a narrow exponent range (compressible like real ones).
fn weights(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    xorshift(seed, &mut v);
    for pair in v.chunks_mut(2) {
        if pair.len() == 2 {
            pair[1] = 0x30 | (pair[1] & 0x87);
        }
    }
    v
}

/// A safetensors file: u64 header length, JSON header, tensor data.
pub fn write_safetensors(path: &Path, total: usize) -> anyhow::Result<()> {
    let n_tensors = 8usize;
    let cols = 1024usize;
    // Whole rows of F16 values.
    let per = (total / n_tensors / (2 * cols)).max(1) * 2 * cols;
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".into(),
        serde_json::json!({"format": "pt", "generator": "zest demo"}),
    );
    for i in 0..n_tensors {
        let rows = per / 2 / cols;
        header.insert(
            format!("model.layers.{i}.weight"),
            serde_json::json!({"dtype": "F16", "shape": [rows, cols],
                               "data_offsets": [i * per, (i + 1) * per]}),
        );
    }
    let mut h = serde_json::to_vec(&header)?;
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(&(h.len() as u64).to_le_bytes())?;
    f.write_all(&h)?;
    for i in 0..n_tensors {
        f.write_all(&weights(100 + i as u64, per))?;
    }
    f.flush()?;
    Ok(())
}

fn gguf_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A GGUF v3 file: header, metadata, tensor infos, aligned F16 tensor data.
pub fn write_gguf(path: &Path, total: usize) -> anyhow::Result<()> {
    let n_tensors = 4usize;
    let cols = 512usize;
    let rows = (total / n_tensors / 2 / cols).max(1);
    let per = rows * cols * 2;
    let mut h = Vec::new();
    h.extend_from_slice(b"GGUF");
    h.extend_from_slice(&3u32.to_le_bytes());
    h.extend_from_slice(&(n_tensors as u64).to_le_bytes());
    h.extend_from_slice(&3u64.to_le_bytes()); // metadata count
    gguf_str(&mut h, "general.architecture");
    h.extend_from_slice(&8u32.to_le_bytes()); // string
    gguf_str(&mut h, "llama");
    gguf_str(&mut h, "general.name");
    h.extend_from_slice(&8u32.to_le_bytes());
    gguf_str(&mut h, "zest demo");
    gguf_str(&mut h, "general.alignment");
    h.extend_from_slice(&4u32.to_le_bytes()); // uint32
    h.extend_from_slice(&32u32.to_le_bytes());
    for i in 0..n_tensors {
        gguf_str(&mut h, &format!("blk.{i}.weight"));
        h.extend_from_slice(&2u32.to_le_bytes()); // n_dims
        h.extend_from_slice(&(cols as u64).to_le_bytes());
        h.extend_from_slice(&(rows as u64).to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes()); // F16
        h.extend_from_slice(&((i * per) as u64).to_le_bytes());
    }
    while h.len() % 32 != 0 {
        h.push(0);
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(&h)?;
    for i in 0..n_tensors {
        f.write_all(&weights(200 + i as u64, per))?;
    }
    f.flush()?;
    Ok(())
}

/// Runs `zest demo`.
pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let tmp;
    let work = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new().prefix("zest-demo-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let exe = std::env::current_exe().context("locating the zest binary")?;
    let bin_dir = exe
        .parent()
        .context("zest binary has no folder")?
        .to_path_buf();
    let bin = |name: &str| bin_dir.join(name);

    println!("zest demo in {}", work.display());
    let repo_dir = work.join("models").join(REPO);
    std::fs::create_dir_all(&repo_dir)?;
    let total = (args.size_mb.max(4) * 1_000_000) as usize;
    let t = Instant::now();
    write_safetensors(&repo_dir.join("model.safetensors"), total * 4 / 5)?;
    write_gguf(&repo_dir.join("model-f16.gguf"), total / 5)?;
    std::fs::write(
        repo_dir.join("config.json"),
        br#"{"model_type": "llama", "hidden_size": 1024, "num_hidden_layers": 8}"#,
    )?;
    std::fs::write(
        repo_dir.join("README.md"),
        b"# tiny-llm\n\nGenerated by `zest demo`.\n",
    )?;
    println!(
        "generated {REPO} ({} MB) in {:.1}s",
        args.size_mb,
        t.elapsed().as_secs_f64()
    );

    let mut procs = Procs(Vec::new());
    let origin_addr = format!("127.0.0.1:{}", free_port()?);
    let t = Instant::now();
    let mut origin = Command::new(bin("zest-origin"))
        .arg("--root")
        .arg(work.join("models"))
        .args(["--listen", &origin_addr, "--exit-on-stdin-eof"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin("zest-origin").display()))?;
    wait_port(&origin_addr, &mut origin, 600).context("zest-origin")?;
    procs.0.push(("zest-origin".into(), origin));
    println!(
        "zest-origin ready on {origin_addr} (indexed in {:.1}s)",
        t.elapsed().as_secs_f64()
    );

    let tracker_addr = format!("127.0.0.1:{}", free_port()?);
    let mut tracker = Command::new(bin("zest-tracker"))
        .args(["--listen", &tracker_addr, "--no-auth"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin("zest-tracker").display()))?;
    wait_port(&tracker_addr, &mut tracker, 60).context("zest-tracker")?;
    procs.0.push(("zest-tracker".into(), tracker));
    println!("zest-tracker (embedded store) ready on {tracker_addr}");

    if args.no_edge {
        println!("zest-edge: skipped (--no-edge)");
    } else if !bin("zest-edge").exists() {
        println!("zest-edge: not built, running without an edge");
    } else {
        let http = format!("127.0.0.1:{}", free_port()?);
        let peer = format!("127.0.0.1:{}", free_port()?);
        let data = format!("127.0.0.1:{}", free_port()?);
        let started = Command::new(bin("zest-edge"))
            .arg("--cache-dir")
            .arg(work.join("edge"))
            .args(["--upstream", &format!("http://{origin_addr}")])
            .args(["--tracker", &format!("http://{tracker_addr}")])
            .args(["--listen-http", &http, "--listen-peer", &peer])
            .args(["--listen-data", &data])
            .args(["--peer-id", "edge-1", "--exit-on-stdin-eof"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match started {
            Ok(mut edge) => match wait_port(&peer, &mut edge, 30) {
                Ok(()) => {
                    println!("zest-edge ready (peer port {peer})");
                    procs.0.push(("zest-edge".into(), edge));
                }
                Err(e) => {
                    let _ = edge.kill();
                    println!("zest-edge did not start ({e:#}); running without an edge");
                }
            },
            Err(e) => println!("zest-edge could not start ({e}); running without an edge"),
        }
    }

    for i in 1..=3 {
        let dir = work.join(format!("client-{i}"));
        let env = |c: &mut Command| {
            c.env("HF_ENDPOINT", format!("http://{origin_addr}"))
                .env("HF_HOME", dir.join("hf"))
                .env_remove("HF_HUB_CACHE")
                .env("ZEST_CACHE", dir.join("zest"))
                .env("ZEST_TRACKER", format!("http://{tracker_addr}"))
                .env("RUST_LOG", "warn");
        };
        let mut c = Command::new(&exe);
        c.args(["pull", REPO, "--json", "--peer-id", &format!("client-{i}")]);
        env(&mut c);
        let out = c.output().context("running zest pull")?;
        if !out.status.success() {
            bail!("pull {i} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let s: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let b = |k: &str| s["bytes"][k].as_u64().unwrap_or(0) as f64 / 1e6;
        let secs = s["duration_ms"].as_u64().unwrap_or(0) as f64 / 1000.0;
        println!(
            "pull {i}: {:.2}s  local {:.1} MB | peers {:.1} MB | edges {:.1} MB | upstream {:.1} MB",
            secs,
            b("local"),
            b("peers"),
            b("edges"),
            b("upstream")
        );
        // Every client that pulled serves what it holds.
        let mut seed = Command::new(&exe);
        seed.args([
            "seed",
            "--listen",
            "127.0.0.1:0",
            "--peer-id",
            &format!("client-{i}"),
            "--announce-secs",
            "1",
        ]);
        env(&mut seed);
        let seed = seed
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting zest seed")?;
        procs.0.push((format!("seed {i}"), seed));
        wait_announced(&tracker_addr, &format!("client-{i}"))?;
    }
    drop(procs);
    println!("stopped every process");
    Ok(ExitCode::SUCCESS)
}

fn wait_announced(tracker: &str, id: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut s = TcpStream::connect(tracker)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(s, "GET /v1/peers HTTP/1.0\r\nHost: {tracker}\r\n\r\n")?;
        let mut body = String::new();
        let _ = std::io::Read::read_to_string(&mut s, &mut body);
        if body.contains(&format!("\"{id}\"")) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("seed {id} did not announce");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
