//! Shared test fixture: generated repos, zest-origin processes, HTTP and Python helpers.
//!
//! The repos are generated once per test run (deterministic pseudo-random data) under
//! `CARGO_TARGET_TMPDIR/origin-it-{pid}`; folders of earlier runs whose process is gone are
//! deleted. The primary origin indexes them (the 130 MB file is chunked once); the other
//! instances share its state folder and start only after it is ready, so they reuse the index.
//! Every origin runs with `--exit-on-stdin-eof`, so it stops when this test process exits.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use sha2::{Digest, Sha256};

pub const SIGNING_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
/// `--public-url` of the faulty origin (never contacted: tests build their own URLs).
pub const PUBLIC_URL: &str = "http://zest-origin.invalid:9";
pub const HUB_TOKEN: &str = "hf_test_gated_token";
pub const BIG_LEN: usize = 130_000_000;
/// Tree page size of the primary origin (small, so listings page).
pub const TREE_PAGE: usize = 3;

/// A generated file.
#[derive(Debug, Clone)]
pub struct FileInfo {
    pub abs: PathBuf,
    pub len: u64,
    pub sha256: String,
}

/// The generated repos.
#[derive(Debug)]
pub struct Fixture {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub state: PathBuf,
    /// By `org/name/path`, only files that should be served.
    pub files: BTreeMap<String, FileInfo>,
}

impl Fixture {
    /// Files of one repo, by path inside it.
    pub fn repo_files(&self, repo: &str) -> BTreeMap<String, FileInfo> {
        let prefix = format!("{repo}/");
        self.files
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|p| (p.to_string(), v.clone())))
            .collect()
    }

    pub fn read(&self, key: &str) -> Vec<u8> {
        fs::read(&self.files[key].abs).expect("read fixture file")
    }
}

pub use zest_testkit::pseudo_random;

/// Float-like data (random low bytes, near-constant high bytes): BG4 compresses it well.
fn float_like(seed: u64, len: usize) -> Vec<u8> {
    let r = pseudo_random(seed, len);
    r.chunks(4)
        .flat_map(|c| {
            let v = [
                c[0],
                c.get(1).copied().unwrap_or(0) & 0x07,
                0x3c | (c.get(2).copied().unwrap_or(0) & 1),
                0,
            ];
            v.into_iter().take(c.len())
        })
        .collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = zest_testkit::run_dir(Path::new(env!("CARGO_TARGET_TMPDIR")), "origin-it");
        let root = dir.join("root");
        let state = dir.join("state");
        let mut files = BTreeMap::new();
        let mut put = |key: &str, data: &[u8]| {
            let p = root.join(key);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(&p, data).expect("write");
            files.insert(
                key.to_string(),
                FileInfo {
                    abs: p,
                    len: data.len() as u64,
                    sha256: sha256_hex(data),
                },
            );
        };
        let config = br#"{"model_type": "zest-test", "hidden_size": 64}
"#;
        put("acme/big/config.json", config);
        put("acme/big/README.md", b"# big\n\nA generated test model.\n");
        put("acme/big/pytorch_model.bin", &pseudo_random(1, BIG_LEN));
        let st = float_like(2, 6_000_000);
        put("acme/big/model.safetensors", &st);
        put("acme/big/sub/dir/extra.bin", &pseudo_random(3, 300_000));
        put("acme/big/sub/notes.txt", b"nested plain file\n");
        put("acme/small/config.json", config);
        put("acme/small/model.safetensors", &st);
        let x = pseudo_random(4, 1_500_000);
        let a = [x.as_slice(), &pseudo_random(5, 700_000)].concat();
        let b = [x.as_slice(), &pseudo_random(6, 700_000)].concat();
        put("acme/small/dedup/a.bin", &a);
        put("acme/small/dedup/b.bin", &b);
        // A symlink inside the root (served) and one pointing outside (never served).
        let outside = dir.join("outside");
        fs::create_dir_all(&outside).expect("mkdir");
        fs::write(outside.join("secret.txt"), b"top secret\n").expect("write");
        std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("acme/small/leak.txt"))
            .expect("symlink");
        std::os::unix::fs::symlink(
            root.join("acme/small/config.json"),
            root.join("acme/small/alias.json"),
        )
        .expect("symlink");
        files.insert(
            "acme/small/alias.json".into(),
            FileInfo {
                abs: root.join("acme/small/config.json"),
                len: config.len() as u64,
                sha256: sha256_hex(config),
            },
        );
        Fixture {
            dir,
            root,
            state,
            files,
        }
    })
}

/// A running zest-origin process (started by `zest-testkit`; killed when dropped, and by stdin
/// EOF when this test process exits).
#[derive(Debug)]
pub struct Origin {
    pub base: String,
    pub addr: String,
    proc: zest_testkit::Proc,
}

impl Origin {
    /// Starts `zest-origin` on 127.0.0.1:0 and waits until it is ready.
    pub fn start(root: &Path, state: &Path, extra: &[&str]) -> Origin {
        let o = zest_testkit::Origin::start(root, state, extra);
        Origin {
            addr: o.proc.field("addr"),
            base: o.base,
            proc: o.proc,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The last log lines.
    pub fn log(&self) -> Vec<String> {
        self.proc.log().lines().map(str::to_owned).collect()
    }

    /// The `/metrics` page.
    pub fn metrics_text(&self) -> String {
        client()
            .get(self.url("/metrics"))
            .send()
            .expect("metrics")
            .text()
            .expect("text")
    }

    /// Value of a metric line (`name{labels}` exactly as exposed), 0 if absent.
    pub fn metric(&self, series: &str) -> f64 {
        zest_testkit::metric_series(&self.base, series)
    }

    /// Stops the process (used by tests of shutdown; statics are stopped by stdin EOF).
    pub fn kill(&self) {
        self.proc.kill9();
    }
}

pub use zest_testkit::client;

/// The shared origin: small tree pages, known signing key.
pub fn primary() -> &'static Origin {
    static O: OnceLock<Origin> = OnceLock::new();
    O.get_or_init(|| {
        let f = fixture();
        Origin::start(
            &f.root,
            &f.state,
            &[
                "--tree-page-size",
                &TREE_PAGE.to_string(),
                "--signing-key",
                SIGNING_KEY,
            ],
        )
    })
}

/// A second origin on the fixture with `extra` flags, kept in `cell`. It shares the primary's
/// state folder and starts after it, so it reuses the primary's index.
fn sibling(cell: &'static OnceLock<Origin>, extra: &[&str]) -> &'static Origin {
    cell.get_or_init(|| {
        primary();
        let f = fixture();
        Origin::start(&f.root, &f.state, extra)
    })
}

/// A gated origin (`--token`) sharing the primary's state: its start must reuse the index.
pub fn gated() -> &'static Origin {
    static O: OnceLock<Origin> = OnceLock::new();
    sibling(&O, &["--token", HUB_TOKEN, "--signing-key", SIGNING_KEY])
}

/// An origin whose /v2 answers 404.
pub fn v1_only() -> &'static Origin {
    static O: OnceLock<Origin> = OnceLock::new();
    sibling(&O, &["--disable-v2"])
}

/// An origin with faults on xorb ranges: half answered 429, the rest corrupted, throttled.
pub fn faulty() -> &'static Origin {
    static O: OnceLock<Origin> = OnceLock::new();
    sibling(
        &O,
        &[
            "--fault-scope",
            "xorbs",
            "--fault-429-rate",
            "0.5",
            "--fault-corrupt-rate",
            "1",
            "--fault-bandwidth-bytes-per-sec",
            "4000000",
            "--fault-seed",
            "7",
            "--public-url",
            PUBLIC_URL,
            "--signing-key",
            SIGNING_KEY,
        ],
    )
}

/// A raw HTTP/1.1 GET with the path sent verbatim (no client-side normalisation).
pub fn raw_get(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (status, head, buf[split + 4..].to_vec())
}

/// Runs a Python script with the Hugging Face client pointed at `endpoint`, in a fresh HF_HOME.
/// Returns the JSON printed after `RESULT `.
pub fn run_python(
    script: &str,
    args: &[&str],
    endpoint: &str,
    env: &[(&str, &str)],
) -> serde_json::Value {
    let home = tempfile::tempdir_in(&fixture().dir).expect("hf home");
    let mut cmd = zest_testkit::hf_python(script, endpoint, home.path());
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    zest_testkit::hf_result(&stdout).unwrap_or_else(|| panic!("no RESULT JSON in {stdout}"))
}

/// Downloads with huggingface_hub: `file REPO PATH` or `snapshot REPO`; prints {path: sha256}.
pub use zest_testkit::HF_DOWNLOAD_PY as DOWNLOAD_PY;
