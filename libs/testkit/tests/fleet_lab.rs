//! The fleet lab in small (issue 13): `bench/fleet/fleet.py` with 4 clients, 1 edge and a
//! ~120 MB model in network namespaces with shaped links, a clean `zest pull` run and one with
//! the edge SIGKILLed mid-pull. Asserts every client's files are byte-exact, the origin's egress
//! stays bounded, and no process or namespace of the lab is left behind.
//!
//! Needs root (CI and scripts/test run as root): `iproute2` is installed when missing, and a
//! machine where network namespaces cannot be created fails this test, it never skips.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use zest_testkit::{bin_dir, binary, python, workspace_root};

const CLIENTS: u64 = 4;
/// The whole lab run, model generation and origin indexing included.
const LAB_TIMEOUT: Duration = Duration::from_secs(900);

fn run(cmd: &str, args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new(cmd).args(args).stdin(Stdio::null()).output()
}

fn is_root() -> bool {
    run("id", &["-u"]).is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `ip` (iproute2) and `tc`, installed with apt-get when missing.
fn ensure_iproute2() {
    if run("ip", &["-V"]).is_ok() && run("tc", &["-V"]).is_ok() {
        return;
    }
    let _ = run("apt-get", &["update", "-qq"]);
    let out = Command::new("apt-get")
        .args(["install", "-y", "-qq", "iproute2"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output();
    assert!(
        out.as_ref().is_ok_and(|o| o.status.success()) && run("ip", &["-V"]).is_ok(),
        "the fleet lab needs iproute2 (ip, tc) and installing it failed: {out:?}"
    );
}

fn lab_namespaces(prefix: &str) -> Vec<String> {
    let out = run("ip", &["netns", "list"]).expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .map(str::to_string)
        .collect()
}

/// Pids whose command line mentions `needle` (the lab's work folder).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let me = std::process::id().to_string();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push(format!("{name}: {cmdline}"));
            }
        }
    }
    found
}

#[test]
fn fleet_lab_small_with_edge_killed_mid_pull() {
    assert!(
        is_root(),
        "the fleet lab test needs root (network namespaces, tc); CI and scripts/test run as root"
    );
    ensure_iproute2();
    let prefix = format!("zft{}", std::process::id() % 100_000);
    // Namespaces must work here: a clear failure, not a skip.
    let probe = format!("{prefix}-probe");
    let made = run("ip", &["netns", "add", &probe]).expect("running ip netns add");
    assert!(
        made.status.success(),
        "cannot create network namespaces on this machine: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let _ = run("ip", &["netns", "del", &probe]);

    for b in ["zest", "zest-origin", "zest-edge", "zest-tracker"] {
        binary(b);
    }
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fleet-lab");
    std::fs::create_dir_all(&work).expect("work folder");
    let result = work.join(format!("result-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&result);
    let script = workspace_root().join("bench/fleet/fleet.py");
    let clients = CLIENTS.to_string();
    let mut child = Command::new(python())
        .arg(&script)
        .args(["--clients", &clients, "--edges", "1", "--size", "120M"])
        .args([
            "--origin-up",
            "400mbit",
            "--client-down",
            "1gbit",
            "--client-up",
            "1gbit",
        ])
        .args([
            "--runs",
            "fleet",
            "--faults",
            "edge-kill",
            "--fault-at",
            "0.3",
        ])
        .args([
            "--prefix",
            &prefix,
            "--subnet",
            "10.78.0",
            "--run-timeout",
            "400",
        ])
        .arg("--bin-dir")
        .arg(bin_dir())
        .arg("--work")
        .arg(&work)
        .arg("--json")
        .arg(&result)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting bench/fleet/fleet.py");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for the lab") {
            break Some(s);
        }
        if start.elapsed() > LAB_TIMEOUT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if status.is_none() {
        // SIGTERM: the lab stops its processes and deletes its namespaces.
        let _ = run("kill", &["-TERM", &child.id().to_string()]);
        let t = Instant::now();
        while child.try_wait().ok().flatten().is_none() && t.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("lab output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let left_ns = lab_namespaces(&prefix);
    let left_procs = processes_mentioning(&work.to_string_lossy());
    if !left_ns.is_empty() {
        let _ = Command::new(python())
            .arg(&script)
            .args(["--cleanup", "--prefix", &prefix])
            .output();
    }
    assert!(
        status.is_some(),
        "the lab did not finish within {LAB_TIMEOUT:?}:\n{stdout}\n{stderr}"
    );
    assert!(
        out.status.success(),
        "the lab failed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(left_ns.is_empty(), "namespaces left behind: {left_ns:?}");
    assert!(
        left_procs.is_empty(),
        "processes left behind: {left_procs:?}"
    );

    let r: Json = serde_json::from_slice(&std::fs::read(&result).expect("result JSON"))
        .expect("result is JSON");
    let f = r["F"].as_f64().expect("F");
    assert!(f > 100e6, "F = {f}: the model was not generated as asked");
    let records = r["records"].as_array().expect("records");
    assert_eq!(records.len(), 2, "{r}");
    for rec in records {
        let name = rec["run"].as_str().unwrap_or("?");
        let cs = rec["clients"].as_array().expect("clients");
        assert_eq!(cs.len() as u64, CLIENTS, "{name}: {rec}");
        for c in cs {
            assert!(c.get("error").is_none(), "{name}: a client failed: {c}");
            assert_eq!(c["wrong_bytes"].as_u64(), Some(0), "{name}: {c}");
        }
        assert!(
            rec["start_spread_s"].as_f64().is_some_and(|s| s < 1.0),
            "{name}: clients not started within one second: {rec}"
        );
        let egress = rec["origin_xorb_bytes"].as_f64().expect("origin bytes");
        if rec["fault"].is_null() {
            // The clean run: the edge fetches each byte once for all clients.
            assert!(
                egress <= 1.1 * f,
                "{name}: origin sent {egress} for F = {f}"
            );
            let edges: f64 = cs
                .iter()
                .map(|c| c["bytes"]["edges"].as_f64().unwrap_or(0.0))
                .sum();
            assert!(
                edges > 0.5 * f,
                "{name}: clients took little from the edge: {rec}"
            );
        } else {
            // The edge died: the clients finish upstream; no byte more than once per client
            // plus once for the edge.
            assert_eq!(rec["fault"], "edge-kill");
            assert!(
                egress <= (CLIENTS as f64 + 1.0) * f,
                "{name}: origin sent {egress} for F = {f}"
            );
        }
    }
    let _ = std::fs::remove_file(&result);
}
