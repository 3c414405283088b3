//! Shared fixture: a small generated repo, in-process zest-origin servers, zest-edge processes,
//! metric readers and the Python client runner.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use sha2::{Digest, Sha256};

pub const REPO: &str = "acme/tiny";

pub use zest_testkit::pseudo_random;

fn float_like(seed: u64, len: usize) -> Vec<u8> {
    pseudo_random(seed, len)
        .chunks(4)
        .flat_map(|c| {
            let v = [c[0], c.get(1).copied().unwrap_or(0) & 7, 0x3c, 0];
            v.into_iter().take(c.len())
        })
        .collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The generated repo: `root/acme/tiny/...`, and sha256 by path.
#[derive(Debug)]
pub struct Fixture {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub files: BTreeMap<String, String>,
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = zest_testkit::run_dir(Path::new(env!("CARGO_TARGET_TMPDIR")), "edge-it");
        let root = dir.join("root");
        let mut files = BTreeMap::new();
        let shared = pseudo_random(4, 1_200_000);
        let contents: Vec<(&str, Vec<u8>)> = vec![
            (
                "config.json",
                b"{\"model_type\": \"zest-edge-test\"}\n".to_vec(),
            ),
            ("README.md", b"# tiny\n".to_vec()),
            ("model.safetensors", float_like(2, 3_000_000)),
            (
                "a.bin",
                [shared.as_slice(), &pseudo_random(5, 600_000)].concat(),
            ),
            (
                "sub/b.bin",
                [shared.as_slice(), &pseudo_random(6, 900_000)].concat(),
            ),
        ];
        for (p, data) in contents {
            let abs = root.join(REPO).join(p);
            fs::create_dir_all(abs.parent().expect("parent")).expect("mkdir");
            fs::write(&abs, &data).expect("write");
            files.insert(p.to_string(), sha256_hex(&data));
        }
        Fixture { dir, root, files }
    })
}

/// A zest-origin served in-process on its own runtime thread.
#[derive(Debug)]
pub struct Origin {
    pub base: String,
}

impl Origin {
    pub fn start(faults: impl FnOnce(&mut zest_origin::config::FaultConfig)) -> Origin {
        let f = fixture();
        let state = tempfile::tempdir_in(&f.dir).expect("state").keep();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let mut config = zest_origin::Config::new(&f.root);
        config.state_dir = Some(state);
        config.workers = Some(2);
        faults(&mut config.faults);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let _ = zest_origin::run(listener, config, std::future::pending::<()>()).await;
            });
        });
        let base = format!("http://{addr}");
        for _ in 0..600 {
            if let Ok(r) = client().get(format!("{base}/healthz")).send() {
                if r.status().is_success() {
                    return Origin { base };
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("zest-origin did not start");
    }

    pub fn metric(&self, series: &str) -> f64 {
        metric(&self.base, series)
    }

    pub fn xorb_bytes(&self) -> f64 {
        self.metric("zest_origin_xorb_bytes_served_total")
    }
}

/// Value of a metric series (`name{labels}` as exposed) at `base/metrics`, 0 if absent.
pub use zest_testkit::metric_series as metric;

/// A running zest-edge process (started by `zest-testkit`; killed on drop).
#[derive(Debug)]
pub struct Edge {
    pub base: String,
    /// `http://host:port` of the data port.
    pub data_base: String,
    pub peer_addr: String,
    pub cache: PathBuf,
    proc: zest_testkit::Proc,
}

impl Edge {
    pub fn start(upstream: &str, cache: &Path, extra: &[&str]) -> Edge {
        let e = zest_testkit::Edge::start(upstream, cache, extra);
        Edge {
            base: e.base,
            data_base: e.data_base,
            peer_addr: e.peer_addr,
            cache: cache.to_path_buf(),
            proc: e.proc,
        }
    }

    pub fn metric(&self, series: &str) -> f64 {
        metric(&self.base, series)
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// SIGKILL and wait.
    pub fn kill9(&self) {
        self.proc.kill9();
    }

    /// SIGTERM and wait (at most `secs`) for a clean exit.
    pub fn terminate(&self, secs: u64) -> Option<std::process::ExitStatus> {
        self.proc.terminate(Duration::from_secs(secs))
    }
}

pub use zest_testkit::client;

/// Runs `snapshot_download(REPO)` against `endpoint` in a fresh HF_HOME. Returns
/// (success, {path: sha256} or stderr).
pub fn snapshot(endpoint: &str, env: &[(&str, &str)]) -> Result<BTreeMap<String, String>, String> {
    let home = tempfile::tempdir_in(&fixture().dir).expect("hf home");
    let mut cmd = zest_testkit::hf_python(zest_testkit::HF_DOWNLOAD_PY, endpoint, home.path());
    cmd.args(["snapshot", REPO])
        .env("HF_HUB_ETAG_TIMEOUT", "30")
        .env("HF_HUB_DOWNLOAD_TIMEOUT", "30");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(format!(
            "python failed ({}):\n{stdout}\n{stderr}",
            out.status
        ));
    }
    let result =
        zest_testkit::hf_result(&stdout).ok_or_else(|| format!("no RESULT in {stdout}"))?;
    serde_json::from_value(result).map_err(|e| e.to_string())
}

/// A fresh cache folder.
pub fn cache_dir() -> PathBuf {
    tempfile::tempdir_in(&fixture().dir).expect("cache").keep()
}

/// A zest-tracker process (embedded store, `--no-auth`): the real binary, started by
/// `zest-testkit` (services never link each other, not even in tests).
#[derive(Debug)]
pub struct TrackerProc {
    pub base: String,
    _tracker: zest_testkit::Tracker,
}

impl TrackerProc {
    pub fn start() -> TrackerProc {
        let tracker = zest_testkit::Tracker::start(&["--workers", "1"]);
        TrackerProc {
            base: tracker.base.clone(),
            _tracker: tracker,
        }
    }
}

/// One range of a reconstruction handed out by the edge (or by the origin, see [`ranges_at`]).
#[derive(Clone, Debug)]
pub struct XRange {
    pub xorb: String,
    pub chunks: (u64, u64),
    pub bytes: (u64, u64),
    /// The edge's rewritten xorb URL (the origin's own, from [`ranges_at`] on the origin).
    pub url: String,
}

impl XRange {
    /// GETs the range through its xorb URL (206 and the full length expected).
    pub fn get(&self) -> Vec<u8> {
        let resp = client()
            .get(&self.url)
            .header("range", format!("bytes={}-{}", self.bytes.0, self.bytes.1))
            .send()
            .expect("xorb GET");
        assert_eq!(resp.status().as_u16(), 206, "GET {}", self.url);
        let b = resp.bytes().expect("body").to_vec();
        assert_eq!(b.len() as u64, self.bytes.1 - self.bytes.0 + 1);
        b
    }
}

/// What a Hugging Face client learns from the edge before it reads `path` (in [`REPO`]): the
/// file's Xet hash and `Link` header (HEAD), then the CAS URL and read token.
#[derive(Debug, Clone)]
pub struct XetAccess {
    pub hash: String,
    /// The HEAD answer's `Link` header (empty when absent).
    pub link: String,
    pub cas: String,
    pub token: String,
}

impl XetAccess {
    pub fn of(edge: &Edge, path: &str) -> XetAccess {
        Self::at(&edge.base, path)
    }

    /// From the Hugging Face endpoint at `base` (an edge or the origin itself).
    pub fn at(base: &str, path: &str) -> XetAccess {
        let r = client()
            .head(format!("{base}/{REPO}/resolve/main/{path}"))
            .send()
            .expect("head");
        assert!(r.status().is_success(), "HEAD {path}: {}", r.status());
        let header = |name: &str| {
            r.headers()
                .get(name)
                .map(|v| v.to_str().expect("ASCII header").to_string())
        };
        let hash = header("x-xet-hash").expect("x-xet-hash");
        let link = header("link").unwrap_or_default();
        let t: serde_json::Value = client()
            .get(format!("{base}/api/models/{REPO}/xet-read-token/main"))
            .send()
            .expect("token")
            .json()
            .expect("json");
        XetAccess {
            hash,
            link,
            cas: t["casUrl"].as_str().expect("casUrl").to_string(),
            token: t["accessToken"].as_str().expect("token").to_string(),
        }
    }

    /// The v2 reconstruction of the file.
    pub fn reconstruction(&self) -> serde_json::Value {
        client()
            .get(format!("{}/v2/reconstructions/{}", self.cas, self.hash))
            .bearer_auth(&self.token)
            .send()
            .expect("reconstruction")
            .json()
            .expect("json")
    }
}

/// The reconstruction of `path` (in [`REPO`]) through the edge, as a Hugging Face client asks
/// for it (HEAD for the Xet hash, read token, reconstruction): every range, sorted. The edge
/// fetches and verifies the whole file before answering, so afterwards it holds every range.
pub fn ranges_of(edge: &Edge, path: &str) -> Vec<XRange> {
    ranges_at(&edge.base, path)
}

/// [`ranges_of`] from the Hugging Face endpoint at `base` (an edge or the origin itself).
pub fn ranges_at(base: &str, path: &str) -> Vec<XRange> {
    let rec = XetAccess::at(base, path).reconstruction();
    let mut out = Vec::new();
    for (x, fetches) in rec["xorbs"].as_object().expect("xorbs") {
        for f in fetches.as_array().expect("fetches") {
            let url = f["url"].as_str().expect("url");
            for r in f["ranges"].as_array().expect("ranges") {
                let n = |a: &str, b: &str| r[a][b].as_u64().expect("range field");
                out.push(XRange {
                    xorb: x.clone(),
                    chunks: (n("chunks", "start"), n("chunks", "end")),
                    bytes: (n("bytes", "start"), n("bytes", "end")),
                    url: url.to_string(),
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.xorb, a.chunks).cmp(&(&b.xorb, b.chunks)));
    assert!(!out.is_empty(), "no ranges for {path}");
    out
}

/// Polls `f` every 100 ms until it is true, for at most `secs` seconds.
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..secs * 10 {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}
