//! ARCHITECTURE.md's dependency invariants, checked on the real crate graph
//! (`cargo metadata`) so that a forbidden edge fails plain `cargo test --workspace`:
//!
//! - the sans-IO libraries (`xet`, `wire`, `modelfile`) depend on no async runtime, HTTP
//!   client or server, socket or database crate, directly or through another crate;
//! - no service (`zest-tracker`, `zest-edge`, `zest-origin`, the `zest` CLI) depends on
//!   another, and no library under `libs/` depends on a service.
//!
//! Only normal and build dependencies count: a service's integration tests may start another
//! service (the edge's tests run a real origin). `deny.toml` states the same rules for
//! `cargo deny check bans` (run in CI).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Libraries that must stay free of I/O crates.
const SANS_IO: &[&str] = &["xet", "wire", "modelfile"];

/// Crates that do I/O: async runtimes, sockets, HTTP, TLS sessions, databases.
const IO_CRATES: &[&str] = &[
    "tokio",
    "tokio-util",
    "tokio-rustls",
    "async-std",
    "smol",
    "mio",
    "socket2",
    "hyper",
    "hyper-util",
    "h2",
    "reqwest",
    "ureq",
    "actix-web",
    "actix-rt",
    "actix-server",
    "rustls",
    "quinn",
    "sqlx",
    "redis",
];

/// The service packages.
const SERVICES: &[&str] = &["zest-tracker", "zest-edge", "zest-origin", "zest"];

/// Package name → names of its normal and build dependencies.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The workspace's resolved graph, from `cargo metadata`, and the names of its members with
/// their manifest folders relative to the workspace root.
fn workspace_graph() -> (Graph, BTreeMap<String, String>) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let run = |offline: bool| {
        let mut cmd = Command::new(&cargo);
        cmd.args(["metadata", "--format-version", "1", "--locked"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if offline {
            cmd.arg("--offline");
        }
        cmd.output().expect("running cargo metadata")
    };
    let mut out = run(true);
    if !out.status.success() {
        out = run(false);
    }
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let name_of: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().expect("id"),
                p["name"].as_str().expect("name"),
            )
        })
        .collect();
    let root = meta["workspace_root"].as_str().expect("workspace_root");
    let members: BTreeMap<String, String> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| {
            meta["workspace_members"]
                .as_array()
                .expect("members")
                .contains(&p["id"])
        })
        .map(|p| {
            let manifest = p["manifest_path"].as_str().expect("manifest_path");
            let dir = manifest
                .strip_prefix(root)
                .unwrap_or(manifest)
                .trim_start_matches('/')
                .trim_end_matches("Cargo.toml")
                .to_string();
            (p["name"].as_str().expect("name").to_string(), dir)
        })
        .collect();
    let mut graph = Graph::new();
    for node in meta["resolve"]["nodes"].as_array().expect("resolve nodes") {
        let from = name_of[node["id"].as_str().expect("node id")].to_string();
        let deps = graph.entry(from).or_default();
        for dep in node["deps"].as_array().expect("deps") {
            let runtime = dep["dep_kinds"]
                .as_array()
                .expect("dep_kinds")
                .iter()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            if runtime {
                deps.insert(name_of[dep["pkg"].as_str().expect("pkg")].to_string());
            }
        }
    }
    (graph, members)
}

/// Every crate `root` depends on, directly or not, with one path to it.
fn reachable(graph: &Graph, root: &str) -> BTreeMap<String, Vec<String>> {
    let mut paths = BTreeMap::new();
    let mut todo = vec![vec![root.to_string()]];
    while let Some(path) = todo.pop() {
        let last = path.last().expect("non-empty path");
        for dep in graph.get(last).into_iter().flatten() {
            if !paths.contains_key(dep) && dep != root {
                let mut p = path.clone();
                p.push(dep.clone());
                paths.insert(dep.clone(), p.clone());
                todo.push(p);
            }
        }
    }
    paths
}

/// The violations of the invariants, one line each (`a -> b -> c`).
fn violations(graph: &Graph, libs: &[&str]) -> Vec<String> {
    let mut bad = Vec::new();
    let mut forbid = |root: &str, banned: &[&str], why: &str| {
        for (dep, path) in reachable(graph, root) {
            if banned.contains(&dep.as_str()) {
                bad.push(format!("{why}: {}", path.join(" -> ")));
            }
        }
    };
    for lib in SANS_IO {
        forbid(lib, IO_CRATES, "sans-IO library depends on an I/O crate");
    }
    for svc in SERVICES {
        let others: Vec<&str> = SERVICES.iter().copied().filter(|s| s != svc).collect();
        forbid(svc, &others, "service depends on another service");
    }
    for lib in libs {
        forbid(lib, SERVICES, "library depends on a service");
    }
    bad
}

#[test]
fn workspace_respects_the_dependency_invariants() {
    let (graph, members) = workspace_graph();
    for name in SANS_IO.iter().chain(SERVICES) {
        assert!(
            members.contains_key(*name),
            "{name} is not a workspace member"
        );
    }
    let libs: Vec<&str> = members
        .iter()
        .filter(|(_, dir)| dir.starts_with("libs/"))
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(libs.contains(&"xorbstore"), "libraries found: {libs:?}");
    let bad = violations(&graph, &libs);
    assert!(
        bad.is_empty(),
        "forbidden dependencies:\n{}",
        bad.join("\n")
    );
}

#[test]
fn forbidden_edges_are_found_through_other_crates() {
    let mut graph = Graph::new();
    let mut edge = |a: &str, b: &str| {
        graph.entry(a.into()).or_default().insert(b.into());
    };
    edge("wire", "xet");
    edge("xet", "helper");
    edge("helper", "tokio");
    edge("zest-edge", "zest-origin");
    edge("xorbstore", "zest");
    edge("zest", "xorbstore");
    let bad = violations(&graph, &["xorbstore"]);
    assert!(
        bad.contains(&"sans-IO library depends on an I/O crate: xet -> helper -> tokio".into()),
        "{bad:?}"
    );
    assert!(
        bad.contains(
            &"sans-IO library depends on an I/O crate: wire -> xet -> helper -> tokio".into()
        ),
        "{bad:?}"
    );
    assert!(
        bad.contains(&"service depends on another service: zest-edge -> zest-origin".into()),
        "{bad:?}"
    );
    assert!(
        bad.contains(&"library depends on a service: xorbstore -> zest".into()),
        "{bad:?}"
    );
    assert!(!bad.iter().any(|b| b.contains("modelfile")), "{bad:?}");
}
