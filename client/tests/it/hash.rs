//! `zest hash` against `hf_xet.hash_files` (the PyPI reference client) and Python's hashlib.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{run_python, splitmix_data, zest};

/// Prints, for each path argument, `{"hash", "size", "sha256"}` from hf_xet and hashlib.
const REFERENCE: &str = r#"
import hashlib, json, sys
import hf_xet
paths = sys.argv[1:]
infos = hf_xet.hash_files(paths)
out = []
for p, info in zip(paths, infos):
    with open(p, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    out.append({"hash": info.hash, "size": info.file_size, "sha256": sha})
print(json.dumps(out))
"#;

/// Writes the test inputs: empty, 1 byte, 200000 bytes and ~30 MB of splitmix data (the last
/// one is large enough for the parallel path), plus a constant file that never resynchronises.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("one", vec![0x2a]),
        ("splitmix_200000", splitmix_data(200_000, 0)),
        ("splitmix_30mb", splitmix_data(30_000_017, 7)),
        ("const_9mb", vec![59u8; 9_000_001]),
    ];
    files
        .into_iter()
        .map(|(name, bytes)| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).expect("writing a test input");
            p
        })
        .collect()
}

fn zest_json(args: &[&str], files: &[PathBuf]) -> Vec<Value> {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(files.iter().map(|p| p.to_str().expect("UTF-8 temp path")));
    let out = zest(&all);
    assert!(
        out.status.success(),
        "zest failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("zest --json prints JSON");
    v.as_array().expect("a JSON array").clone()
}

#[test]
fn hash_json_equals_hf_xet_and_hashlib() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = inputs(dir.path());
    let ours = zest_json(&["hash", "--json"], &files);
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let theirs: Value = serde_json::from_str(&run_python(REFERENCE, &refs)).expect("Python JSON");
    let theirs = theirs.as_array().expect("array");
    assert_eq!(ours.len(), files.len());
    assert_eq!(theirs.len(), files.len());
    for ((o, t), p) in ours.iter().zip(theirs).zip(&files) {
        let name = p.display();
        assert_eq!(o["path"].as_str(), p.to_str(), "{name}");
        assert_eq!(o["xet_hash"], t["hash"], "{name}: xet hash vs hf_xet");
        assert_eq!(o["size"], t["size"], "{name}: size vs hf_xet");
        assert_eq!(o["sha256"], t["sha256"], "{name}: sha256 vs hashlib");
        assert!(o["num_chunks"].is_u64(), "{name}");
        assert!(
            o.get("chunks").is_none(),
            "{name}: chunks only with --chunks"
        );
    }
}

#[test]
fn chunks_listing_covers_the_file_and_no_sha256_omits_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = inputs(dir.path());
    let plain = zest_json(&["hash", "--json"], &files);
    let listed = zest_json(
        &[
            "hash",
            "--json",
            "--chunks",
            "--no-sha256",
            "--threads",
            "2",
        ],
        &files,
    );
    for (p, l) in plain.iter().zip(&listed) {
        assert!(l.get("sha256").is_none());
        assert_eq!(p["xet_hash"], l["xet_hash"]);
        let chunks = l["chunks"].as_array().expect("chunks array");
        assert_eq!(Some(chunks.len() as u64), l["num_chunks"].as_u64());
        let mut offset = 0;
        for c in chunks {
            assert_eq!(c["offset"].as_u64(), Some(offset));
            let len = c["len"].as_u64().expect("len");
            assert!((1..=131_072).contains(&len));
            assert_eq!(c["hash"].as_str().map(str::len), Some(64));
            offset += len;
        }
        assert_eq!(Some(offset), l["size"].as_u64());
    }
}

#[test]
fn text_output_and_a_missing_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path().join("hello");
    std::fs::write(&p, b"Hello World!").expect("write");
    let missing = dir.path().join("missing");
    let out = zest(&[
        "hash",
        p.to_str().expect("path"),
        missing.to_str().expect("path"),
    ]);
    assert!(
        !out.status.success(),
        "a missing file makes the exit code non-zero"
    );
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    assert_eq!(
        stdout,
        format!(
            "a9dae0ad88b060bdd7e7c87abdcf95b132c95a0414b06d4f6beb68d287b87165  \
             7f83b1657ff1fc53b92dc18148a1d65dfc2d4b1fa3d677284addd200126d9069  12  1  {}\n",
            p.display()
        )
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
}
