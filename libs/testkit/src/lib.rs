//! Test support for zest's integration tests (a dev-dependency only): finding and starting the
//! real binaries (`zest-origin`, `zest-tracker`, `zest-edge`) as child processes that die with the
//! test, waiting for their JSON "ready" log line, reading Prometheus metrics, finding the Python
//! venv with the real Hugging Face client, and deterministic test data.
//!
//! Every wait is bounded; a process that exits or stays silent fails the test with its log.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// How long a binary may take to print its ready line (an origin indexes its repos first).
pub const READY_TIMEOUT: Duration = Duration::from_secs(240);
/// Log lines kept per process for failure messages.
const LOG_TAIL: usize = 200;

/// The folder holding the workspace's binaries: the test executable lives in
/// `target/<profile>/deps/`, the binaries one level up.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    let deps = exe.parent().expect("deps dir");
    if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("profile dir").to_path_buf()
    } else {
        deps.to_path_buf()
    }
}

/// The workspace binary `name`, which must have been built (`cargo build --workspace --bins`).
pub fn binary(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} not found: run `cargo build --workspace --bins` with the same target dir first \
         (these tests start the real {name})",
        p.display()
    );
    p
}

/// A fresh folder under `base` (the caller's `env!("CARGO_TARGET_TMPDIR")`), unique per
/// process and call.
pub fn fresh_dir(base: &str, what: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = Path::new(base).join(format!("{what}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("creating a test folder");
    d
}

/// `base/{prefix}-{pid}`, empty, for this test process's files; first deletes the folders of
/// earlier runs (`{prefix}-{pid}` whose process is gone).
pub fn run_dir(base: &Path, prefix: &str) -> PathBuf {
    if let Ok(entries) = std::fs::read_dir(base) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let stale = name
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('-'))
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
            if stale {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = base.join(format!("{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// [`python()`] running `script` (`python -c`) as a Hugging Face client of `endpoint`, with its
/// caches in `hf_home`: no telemetry, no progress bars, and none of the caller's `HF_TOKEN`,
/// `HF_HUB_OFFLINE` or `HF_HUB_DISABLE_XET`.
pub fn hf_python(script: &str, endpoint: &str, hf_home: &Path) -> Command {
    let mut cmd = Command::new(python());
    cmd.arg("-c")
        .arg(script)
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HOME", hf_home)
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_XET_TELEMETRY_ENABLED", "false")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_HUB_DISABLE_XET");
    cmd
}

/// A [`hf_python`] script downloading with `huggingface_hub`: arguments `file REPO PATH` or
/// `snapshot REPO`; prints `RESULT {path: sha256}`.
pub const HF_DOWNLOAD_PY: &str = r#"
import sys, os, json, hashlib
from huggingface_hub import hf_hub_download, snapshot_download
def sha(p):
    h = hashlib.sha256()
    with open(p, 'rb') as f:
        for b in iter(lambda: f.read(1 << 20), b''):
            h.update(b)
    return h.hexdigest()
mode, repo = sys.argv[1], sys.argv[2]
out = {}
if mode == "file":
    p = hf_hub_download(repo, sys.argv[3])
    out[sys.argv[3]] = sha(p)
else:
    d = snapshot_download(repo)
    for root, _, files in os.walk(d):
        for f in files:
            q = os.path.join(root, f)
            out[os.path.relpath(q, d)] = sha(q)
print("RESULT " + json.dumps(out))
"#;

/// The JSON a [`hf_python`] script printed after `RESULT `.
pub fn hf_result(stdout: &str) -> Option<serde_json::Value> {
    let line = stdout.lines().find_map(|l| l.strip_prefix("RESULT "))?;
    serde_json::from_str(line).ok()
}

/// One blocking HTTP client for the tests (120 s timeout, redirects not followed).
#[cfg(feature = "http-client")]
pub fn client() -> &'static reqwest::blocking::Client {
    static C: std::sync::OnceLock<reqwest::blocking::Client> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    })
}

/// The Python interpreter with `huggingface_hub`, `hf_xet`, `gguf` and `safetensors`: env
/// `ZEST_PYTHON`, else `<workspace>/.venv/bin/python`. Panics clearly when missing, so tests
/// that need it never pass silently.
pub fn python() -> PathBuf {
    let p = std::env::var_os("ZEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"));
    assert!(
        p.exists(),
        "Python venv not found at {}: run scripts/test (it creates .venv), or set ZEST_PYTHON",
        p.display()
    );
    p
}

/// The workspace root (this crate lives in `libs/testkit`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// A loopback port nothing listens on right now (bound and released). Only for an address that
/// must refuse connections (an unreachable upstream); servers the tests start bind port 0 and
/// name their address in their ready line instead.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// xorshift64* bytes: incompressible, deterministic test data.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// splitmix64 bytes, as xet-core's `create_random_data` and zig-xet's `createRandomData`
/// (the chunking vectors are generated from it).
pub fn splitmix_data(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// A child process killed (SIGKILL) and reaped on drop. It holds the child's stdin, so
/// binaries started with `--exit-on-stdin-eof` also exit when the test process dies.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Mutex<Child>,
    _stdin: Option<ChildStdin>,
    log: Arc<Mutex<VecDeque<String>>>,
    /// The `fields` of the ready log line (addresses and the like).
    pub ready: serde_json::Value,
}

impl Proc {
    /// Spawns `cmd` (stdin and stderr are piped here; pass `--log-format json`) and waits for
    /// the JSON log line whose message is `ready_message`.
    pub fn spawn(name: &str, cmd: Command, ready_message: &'static str) -> Proc {
        let (mut child, stdin, log, rx) = launch(name, cmd, ready_message);
        let ready = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(Some(fields)) => fields,
            Ok(None) => {
                let _ = child.wait();
                panic!("{name} exited before it was ready:\n{}", tail(&log));
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{name} was not ready within {READY_TIMEOUT:?}:\n{}",
                    tail(&log)
                );
            }
        };
        Proc {
            name: name.to_string(),
            child: Mutex::new(child),
            _stdin: stdin,
            log,
            ready,
        }
    }

    /// A string field of the ready line, e.g. `addr`.
    pub fn field(&self, name: &str) -> String {
        self.ready[name]
            .as_str()
            .unwrap_or_else(|| panic!("{} ready line has no {name:?}: {}", self.name, self.ready))
            .to_string()
    }

    /// The last log lines, for failure messages.
    pub fn log(&self) -> String {
        tail(&self.log)
    }

    /// SIGKILL and reap (idempotent).
    pub fn kill9(&self) {
        let mut c = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let _ = c.kill();
        let _ = c.wait();
    }

    /// SIGTERM, then waits up to `timeout` for the exit; `None` if it was still running (it is
    /// then SIGKILLed).
    pub fn terminate(&self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.pid().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let mut c = self.child.lock().unwrap_or_else(|p| p.into_inner());
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            if std::time::Instant::now() >= deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            drop(c);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap_or_else(|p| p.into_inner()).id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

type Log = Arc<Mutex<VecDeque<String>>>;
type Ready = mpsc::Receiver<Option<serde_json::Value>>;

/// Spawns `cmd` with stdin and stderr piped and stdout discarded, and follows its JSON log
/// (see [`follow_log`]).
fn launch(
    name: &str,
    mut cmd: Command,
    ready_message: &'static str,
) -> (Child, Option<ChildStdin>, Log, Ready) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
    let stdin = child.stdin.take();
    let stderr = child.stderr.take().expect("piped stderr");
    let log = Log::default();
    let rx = follow_log(stderr, Arc::clone(&log), ready_message);
    (child, stdin, log, rx)
}

fn tail(log: &Mutex<VecDeque<String>>) -> String {
    let l = log.lock().unwrap_or_else(|p| p.into_inner());
    l.iter().cloned().collect::<Vec<_>>().join("\n")
}

/// Reads JSON log lines into `log` (last [`LOG_TAIL`] kept); sends the `fields` of the line whose
/// message is `ready_message` (none when it is empty) once, or `None` when the stream ends first.
fn follow_log(stderr: impl Read + Send + 'static, log: Log, ready_message: &'static str) -> Ready {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.is_some() && !ready_message.is_empty() {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if v["fields"]["message"] == ready_message {
                        if let Some(t) = tx.take() {
                            let _ = t.send(Some(v["fields"].clone()));
                        }
                    }
                }
            }
            let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
            if l.len() == LOG_TAIL {
                l.pop_front();
            }
            l.push_back(line);
        }
        if let Some(t) = tx {
            let _ = t.send(None);
        }
    });
    rx
}

/// `zest-origin` serving `root` (state in `state`) on a loopback port; `base` is its URL.
#[derive(Debug)]
pub struct Origin {
    pub proc: Proc,
    pub base: String,
}

impl Origin {
    pub fn start(root: &Path, state: &Path, extra: &[&str]) -> Origin {
        let mut cmd = Command::new(binary("zest-origin"));
        cmd.arg("--root")
            .arg(root)
            .arg("--state-dir")
            .arg(state)
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(["--exit-on-stdin-eof", "--workers", "2"])
            .args(extra)
            .env("RUST_LOG", "info");
        let proc = Proc::spawn("zest-origin", cmd, "zest-origin ready");
        let base = format!("http://{}", proc.field("addr"));
        Origin { proc, base }
    }

    /// Xorb bytes the origin has served so far.
    pub fn xorb_bytes(&self) -> f64 {
        metric(&self.base, "zest_origin_xorb_bytes_served_total")
    }
}

/// An embedded `zest-tracker` without auth on a loopback port; `base` is its URL.
#[derive(Debug)]
pub struct Tracker {
    pub proc: Proc,
    pub base: String,
}

impl Tracker {
    pub fn start(extra: &[&str]) -> Tracker {
        // Port 0: the tracker binds a free port itself and names it in its ready line, so no
        // other process can take the port between a probe and the bind.
        let mut cmd = Command::new(binary("zest-tracker"));
        cmd.args(["--listen", "127.0.0.1:0", "--no-auth"])
            .args(["--log-format", "json"])
            .args(extra)
            .env("RUST_LOG", "info")
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL");
        let proc = Proc::spawn("zest-tracker", cmd, "zest-tracker listening");
        let base = format!("http://{}", proc.field("addr"));
        Tracker { proc, base }
    }
}

/// A `zest-edge` with its HTTP, peer and data ports on loopback.
#[derive(Debug)]
pub struct Edge {
    pub proc: Proc,
    /// `http://host:port` of the cache-proxy.
    pub base: String,
    /// `http://host:port` of the data port (xorb ranges, sendfile).
    pub data_base: String,
    /// `host:port` of the peer (wire protocol) port.
    pub peer_addr: String,
}

impl Edge {
    /// `extra` may add e.g. `--tracker URL`, `--cache-size`.
    pub fn start(upstream: &str, cache: &Path, extra: &[&str]) -> Edge {
        let mut cmd = Command::new(binary("zest-edge"));
        cmd.arg("--cache-dir")
            .arg(cache)
            .args(["--upstream", upstream])
            .args([
                "--listen-http",
                "127.0.0.1:0",
                "--listen-peer",
                "127.0.0.1:0",
                "--listen-data",
                "127.0.0.1:0",
            ])
            .args([
                "--log-format",
                "json",
                "--exit-on-stdin-eof",
                "--workers",
                "2",
            ])
            .args(extra)
            .env("RUST_LOG", "info")
            .env_remove("ZEST_TRACKER");
        let proc = Proc::spawn("zest-edge", cmd, "zest-edge ready");
        let base = format!("http://{}", proc.field("http"));
        let peer_addr = proc.field("peer");
        let data_base = format!("http://{}", proc.field("data"));
        Edge {
            proc,
            base,
            data_base,
            peer_addr,
        }
    }
}

/// Minimal HTTP/1.0 `GET http://{addr}{path}`: the body when the answer is 200.
pub fn http_get(addr: &str, path: &str) -> Option<String> {
    let addr = addr
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut s = TcpStream::connect(&addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut resp = Vec::new();
    // Bounded: metrics pages and health answers are small.
    s.take(64 << 20).read_to_end(&mut resp).ok()?;
    let resp = String::from_utf8(resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    let status_ok = head
        .split_whitespace()
        .nth(1)
        .is_some_and(|code| code == "200");
    status_ok.then(|| body.to_string())
}

/// Sum of every series of metric `name` (whatever its labels) at `{base}/metrics`; 0 when
/// absent. Panics when `/metrics` does not answer.
pub fn metric(base: &str, name: &str) -> f64 {
    let text =
        http_get(base, "/metrics").unwrap_or_else(|| panic!("{base}/metrics did not answer"));
    metric_in(&text, name)
}

/// Sum of every series of `name` in a Prometheus text page.
pub fn metric_in(text: &str, name: &str) -> f64 {
    samples(text)
        .filter(|(series, _)| {
            series
                .strip_prefix(name)
                // `name_suffix` is another metric.
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('{'))
        })
        .map(|(_, v)| v)
        .sum()
}

/// The value of one series (`name{labels}` exactly as exposed) at `{base}/metrics`; 0 when
/// absent. Panics when `/metrics` does not answer.
pub fn metric_series(base: &str, series: &str) -> f64 {
    let text =
        http_get(base, "/metrics").unwrap_or_else(|| panic!("{base}/metrics did not answer"));
    metric_series_in(&text, series)
}

/// The value of one series (`name{labels}` exactly as exposed) in a Prometheus text page; 0
/// when absent.
pub fn metric_series_in(text: &str, series: &str) -> f64 {
    samples(text)
        .find_map(|(s, v)| (s == series).then_some(v))
        .unwrap_or(0.0)
}

/// The `(series, value)` samples of a Prometheus text page (`series` is `name` or
/// `name{labels}`); comments and unparsable lines are skipped.
fn samples(text: &str) -> impl Iterator<Item = (&str, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.split_at(series_end(l)?);
            value.strip_prefix(' ')?;
            Some((series, value.trim().parse::<f64>().ok()?))
        })
}

/// Where the series of a sample line ends: after the closing brace of its labels (their values
/// are quoted and may hold spaces and braces, as route templates do), else at the first space.
fn series_end(line: &str) -> Option<usize> {
    let open = line.find(['{', ' '])?;
    if line[open..].starts_with(' ') {
        return Some(open);
    }
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in line[open..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(open + i + 1),
            _ => {}
        }
    }
    None
}

/// A fresh self-signed certificate for `localhost`, written as `cert.pem` and `key.pem` in `dir`
/// (the certificate doubles as the client's trust anchor). Generated per test with `rcgen`, so
/// no key material is committed.
pub fn self_signed_localhost(dir: &Path) -> (PathBuf, PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).expect("write cert");
    std::fs::write(&key, ck.signing_key.serialize_pem()).expect("write key");
    (cert, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sums_series_and_ignores_longer_names() {
        let page =
            "# HELP x\nx_total{a=\"1\"} 2\nx_total{a=\"2\"} 3.5\nx_total_more 7\nx_total 1\n";
        assert_eq!(metric_in(page, "x_total"), 6.5);
        assert_eq!(metric_in(page, "y_total"), 0.0);
    }

    #[test]
    fn metric_series_is_exact() {
        let page = "# HELP x\nx_total{a=\"1 2\"} 2\nx_total{a=\"2\"} 3.5\nx_total_more 7\n";
        assert_eq!(metric_series_in(page, r#"x_total{a="1 2"}"#), 2.0);
        assert_eq!(metric_series_in(page, r#"x_total{a="2"}"#), 3.5);
        assert_eq!(metric_series_in(page, "x_total"), 0.0);
        assert_eq!(metric_series_in(page, "x_total_more"), 7.0);
        assert_eq!(metric_in(page, "x_total"), 5.5);
        // Route templates put braces (and quotes, escaped) inside label values.
        let page = "r_total{route=\"/v2/{hash}\",status=\"404\"} 1\nr_total{route=\"a\\\"}\"} 2\n";
        assert_eq!(
            metric_series_in(page, r#"r_total{route="/v2/{hash}",status="404"}"#),
            1.0
        );
        assert_eq!(metric_series_in(page, r#"r_total{route="a\"}"}"#), 2.0);
        assert_eq!(metric_in(page, "r_total"), 3.0);
    }

    #[test]
    fn pseudo_random_is_deterministic() {
        assert_eq!(pseudo_random(1, 100), pseudo_random(1, 100));
        assert_ne!(pseudo_random(1, 100), pseudo_random(2, 100));
        assert_eq!(pseudo_random(3, 13).len(), 13);
    }
}
