//! `zest inspect`: local files written by the real `gguf` and `safetensors` writers, checked
//! against what their readers report; damaged files; and remote inspection of a large GGUF held
//! by a `zest-origin` process, which must fetch under 1% of the file.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::Value as Json;
use zest_testkit::{Edge, Origin, Tracker};

use crate::common::{python, zest};

/// The generator shared with `libs/modelfile`'s tests (writes files and a reader report).
fn gen_models_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../libs/modelfile/tests/gen_models.py")
}

/// The generated files and `report.json`, once per test run.
fn generated() -> &'static (tempfile::TempDir, Json) {
    static G: OnceLock<(tempfile::TempDir, Json)> = OnceLock::new();
    G.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new(python())
            .arg(gen_models_script())
            .arg(dir.path())
            .output()
            .expect("running gen_models.py");
        assert!(
            out.status.success(),
            "gen_models.py failed (needs gguf, safetensors, numpy in the venv): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report = fs::read_to_string(dir.path().join("report.json")).expect("report.json");
        (dir, serde_json::from_str(&report).expect("report JSON"))
    })
}

/// The generated files of `format` (`gguf`, `safetensors`): name, path and reader report.
fn generated_files(format: &str) -> Vec<(String, PathBuf, &'static Json)> {
    let (dir, report) = generated();
    report["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter(|e| e["format"] == format)
        .map(|e| {
            let name = e["file"].as_str().expect("file").to_owned();
            let path = dir.path().join(&name);
            (name, path, e)
        })
        .collect()
}

/// `zest inspect --json --tensors PATH`.
fn inspect_tensors(path: &Path) -> Json {
    inspect_json(&[
        "inspect",
        "--json",
        "--tensors",
        path.to_str().expect("utf8"),
    ])
}

fn inspect_json(args: &[&str]) -> Json {
    let out = zest(args);
    assert!(
        out.status.success(),
        "zest {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("zest inspect --json prints JSON")
}

fn field<'a>(report: &'a Json, name: &str) -> Option<&'a Json> {
    report["fields"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == name)
        .map(|f| &f["value"])
}

#[test]
fn local_gguf_matches_gguf_reader() {
    let mut checked = 0;
    for (name, path, e) in generated_files("gguf") {
        let j = inspect_tensors(&path);
        assert_eq!(j["format"], "gguf", "{name}");
        assert_eq!(j["version"], e["version"], "{name}");
        assert_eq!(j["big_endian"], e["big_endian"], "{name}");
        assert_eq!(j["alignment"], e["alignment"], "{name}");
        assert_eq!(j["data_offset"], e["data_offset"], "{name}");
        assert_eq!(j["file_len"], e["file_len"], "{name}");
        assert_eq!(
            Some(&j["architecture"]),
            field(e, "general.architecture"),
            "{name}"
        );
        assert_eq!(Some(&j["name"]), field(e, "general.name"), "{name}");
        assert_eq!(
            Some(&j["hyperparameters"]["context_length"]),
            field(e, "llama.context_length"),
            "{name}"
        );
        assert_eq!(
            Some(&j["hyperparameters"]["head_count_kv"]),
            field(e, "llama.attention.head_count_kv"),
            "{name}"
        );
        let tensors = e["tensors"].as_array().expect("tensors");
        let rows = j["tensors"].as_array().expect("tensor rows");
        assert_eq!(j["tensor_count"], tensors.len(), "{name}");
        assert_eq!(rows.len(), tensors.len(), "{name}");
        let mut params = 0;
        for (row, t) in rows.iter().zip(tensors) {
            assert_eq!(row["name"], t["name"], "{name}");
            assert_eq!(row["type_name"], t["type_name"], "{name}: {}", t["name"]);
            assert_eq!(row["type_id"], t["type"], "{name}: {}", t["name"]);
            assert_eq!(row["shape"], t["shape"], "{name}: {}", t["name"]);
            assert_eq!(row["n_elements"], t["n_elements"], "{name}: {}", t["name"]);
            assert_eq!(row["n_bytes"], t["n_bytes"], "{name}: {}", t["name"]);
            assert_eq!(row["offset"], t["data_offset"], "{name}: {}", t["name"]);
            params += t["n_elements"].as_u64().expect("n_elements");
        }
        assert_eq!(j["parameter_count"], params, "{name}");
        // Every metadata key the reader saw, in the same order.
        let keys: Vec<&Json> = j["metadata"]
            .as_array()
            .expect("metadata")
            .iter()
            .map(|m| &m["key"])
            .collect();
        let expected: Vec<&Json> = e["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .map(|f| &f["name"])
            .collect();
        assert_eq!(keys, expected, "{name}");
        // Without --tensors the table is left out, the rest is the same.
        let short = inspect_json(&["inspect", "--json", path.to_str().expect("utf8")]);
        assert_eq!(short["tensors"], Json::Array(vec![]), "{name}");
        assert_eq!(short["tensor_count"], j["tensor_count"], "{name}");
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} GGUF files generated");
}

#[test]
fn local_safetensors_matches_safetensors_reader() {
    let mut checked = 0;
    for (name, path, e) in generated_files("safetensors") {
        let j = inspect_tensors(&path);
        assert_eq!(j["format"], "safetensors", "{name}");
        assert_eq!(j["file_len"], e["file_len"], "{name}");
        assert_eq!(
            j["header_len"],
            8 + e["json_len"].as_u64().expect("n"),
            "{name}"
        );
        let tensors = e["tensors"].as_array().expect("tensors");
        let rows = j["tensors"].as_array().expect("rows");
        assert_eq!(j["tensor_count"], tensors.len(), "{name}");
        assert_eq!(rows.len(), tensors.len(), "{name}");
        for t in tensors {
            let row = rows
                .iter()
                .find(|r| r["name"] == t["name"])
                .unwrap_or_else(|| panic!("{name}: no row for {}", t["name"]));
            assert_eq!(row["type_name"], t["dtype"], "{name}: {}", t["name"]);
            assert_eq!(row["type_name"], t["slice_dtype"], "{name}: {}", t["name"]);
            assert_eq!(row["shape"], t["shape"], "{name}: {}", t["name"]);
            assert_eq!(row["shape"], t["slice_shape"], "{name}: {}", t["name"]);
            let begin = t["data_offsets"][0].as_u64().expect("begin");
            let end = t["data_offsets"][1].as_u64().expect("end");
            assert_eq!(row["n_bytes"], end - begin, "{name}: {}", t["name"]);
            assert_eq!(
                row["offset"],
                j["header_len"].as_u64().expect("len") + begin
            );
        }
        if name == "numpy_types.safetensors" {
            assert_eq!(j["architecture"], e["metadata"]["architecture"]);
            assert_eq!(j["hyperparameters"]["context_length"], 2048);
        }
        let meta: serde_json::Map<String, Json> = j["metadata"]
            .as_array()
            .expect("metadata")
            .iter()
            .map(|m| {
                (
                    m["key"].as_str().expect("key").to_owned(),
                    m["value"].clone(),
                )
            })
            .collect();
        let expected = e["metadata"].as_object().cloned().unwrap_or_default();
        assert_eq!(meta, expected, "{name}");
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} safetensors files generated");
}

#[test]
fn local_text_output_names_the_architecture() {
    let (dir, _) = generated();
    let path = dir.path().join("all_types.gguf");
    let out = zest(&["inspect", path.to_str().expect("utf8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(text.contains("llama"), "{text}");
    assert!(text.contains("GGUF"), "{text}");
}

fn assert_fails_naming_offset(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{what}: exit 0 for a damaged file");
    assert!(
        stderr.contains("is not a valid model file") && stderr.contains("byte "),
        "{what}: message does not name the offset: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    stderr
}

#[test]
fn damaged_files_fail_with_the_offset() {
    let (dir, _) = generated();
    let good = fs::read(dir.path().join("all_types.gguf")).expect("read");
    let work = tempfile::tempdir().expect("tempdir");

    // Truncated in the middle of the tensor data.
    let p = work.path().join("truncated.gguf");
    fs::write(&p, &good[..good.len() - 100]).expect("write");
    let msg =
        assert_fails_naming_offset(&zest(&["inspect", p.to_str().expect("utf8")]), "truncated");
    assert!(
        msg.contains("outside the file") || msg.contains("ends inside"),
        "{msg}"
    );

    // A tensor count no file could hold (bytes 8..16 of a v3 header).
    let mut huge = good.clone();
    huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    let p = work.path().join("huge_count.gguf");
    fs::write(&p, &huge).expect("write");
    let msg =
        assert_fails_naming_offset(&zest(&["inspect", p.to_str().expect("utf8")]), "huge count");
    assert!(msg.contains("byte 8"), "{msg}");

    // Bad magic-ish: not a model file at all.
    let p = work.path().join("not_a_model.bin");
    fs::write(&p, b"PK\x03\x04 this is a zip file, not a model").expect("write");
    assert_fails_naming_offset(&zest(&["inspect", p.to_str().expect("utf8")]), "zip");

    // safetensors with broken JSON.
    let st = fs::read(dir.path().join("numpy_types.safetensors")).expect("read");
    let mut bad = st.clone();
    bad[9] = b'!';
    let p = work.path().join("bad_json.safetensors");
    fs::write(&p, &bad).expect("write");
    let msg = assert_fails_naming_offset(&zest(&["inspect", p.to_str().expect("utf8")]), "json");
    assert!(msg.contains("JSON"), "{msg}");

    // A missing file is an error too, not a panic.
    let out = zest(&[
        "inspect",
        work.path().join("missing.gguf").to_str().expect("utf8"),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.gguf"));
}

// ---- remote ----------------------------------------------------------------------------------

/// Size of the GGUF served by the origin (the header is a few hundred KB, the first fetch
/// 4 MiB: the file must be over 400 MiB for that to be under 1%).
const BIG_GGUF_LEN: u64 = 480 << 20;

/// Writes a llama-shaped GGUF of about the given size (shared with `bench/inspect_remote.sh`).
fn big_gguf_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/big_gguf.py")
}

/// Folder kept across runs (the origin re-indexes only files whose size or mtime changed).
fn remote_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("inspect-remote-v1")
}

/// The served repo `root/org/model`: `big.gguf`, `small.safetensors` (Xet, being a model
/// extension) and the same bytes as `small.st` (under 1 MiB and not a model extension, so a plain
/// git file read with a ranged GET). Written once and kept across runs.
fn remote_repo() -> &'static PathBuf {
    static R: OnceLock<PathBuf> = OnceLock::new();
    R.get_or_init(|| {
        let repo = remote_dir().join("root/org/model");
        fs::create_dir_all(&repo).expect("mkdir");
        let path = repo.join("big.gguf");
        if !path.exists() {
            let tmp = remote_dir().join(format!("big.gguf.tmp-{}", std::process::id()));
            let out = Command::new(python())
                .arg(big_gguf_script())
                .arg(&tmp)
                .arg(BIG_GGUF_LEN.to_string())
                .arg("test")
                .output()
                .expect("running the reference Python");
            assert!(
                out.status.success(),
                "writing the big GGUF failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            fs::rename(&tmp, &path).expect("rename");
        }
        let (gen_dir, _) = generated();
        let st = fs::read(gen_dir.path().join("numpy_types.safetensors")).expect("read");
        for name in ["small.safetensors", "small.st"] {
            if fs::read(repo.join(name)).ok().as_deref() != Some(&st[..]) {
                fs::write(repo.join(name), &st).expect("write");
            }
        }
        repo
    })
}

/// The origin serving [`remote_repo`] (indexes it; later starts reuse the index).
fn primary() -> &'static Origin {
    static O: OnceLock<Origin> = OnceLock::new();
    O.get_or_init(|| {
        remote_repo();
        let started = Instant::now();
        let o = Origin::start(&remote_dir().join("root"), &remote_dir().join("state"), &[]);
        eprintln!("zest-origin ready after {:?}", started.elapsed());
        o
    })
}

/// An origin answering `/v2/reconstructions` with 404; shares the primary's state, started
/// after it (so it finds the index up to date).
fn v1_only() -> &'static Origin {
    static O: OnceLock<Origin> = OnceLock::new();
    O.get_or_init(|| {
        primary();
        Origin::start(
            &remote_dir().join("root"),
            &remote_dir().join("state"),
            &["--disable-v2"],
        )
    })
}

/// The JSON a successful remote `zest inspect --json` printed, split into the summary and its
/// `remote` statistics.
fn remote_json(out: &Output, what: &str) -> (Json, Json) {
    assert!(
        out.status.success(),
        "{what}: remote inspect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut remote: Json = serde_json::from_slice(&out.stdout).expect("JSON");
    let stats = remote
        .as_object_mut()
        .expect("object")
        .remove("remote")
        .expect("remote stats in the JSON");
    (remote, stats)
}

fn zest_remote(endpoint: &str, args: &[&str]) -> Output {
    zest_remote_via(endpoint, None, args)
}

/// `zest ARGS` against the Hub at `endpoint`, through the fleet when `tracker` is given.
fn zest_remote_via(endpoint: &str, tracker: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zest"));
    cmd.args(args)
        .env("HF_ENDPOINT", endpoint)
        .env_remove("HF_TOKEN")
        .env("RUST_LOG", "warn");
    match tracker {
        Some(t) => cmd.env("ZEST_TRACKER", t),
        None => cmd.env_remove("ZEST_TRACKER"),
    };
    cmd.output().expect("running the zest binary")
}

#[test]
fn remote_gguf_fetches_under_one_percent() {
    let repo_dir = remote_repo();
    let path = repo_dir.join("big.gguf");
    let file_len = fs::metadata(&path).expect("stat").len();
    assert!(file_len >= 400 << 20, "big GGUF is only {file_len} bytes");
    let local = inspect_json(&["inspect", "--json", path.to_str().expect("utf8")]);
    let origin = primary();

    let out = zest_remote(
        &origin.base,
        &["inspect", "org/model", "big.gguf", "--json"],
    );
    let (remote, stats) = remote_json(&out, "big.gguf");
    assert_eq!(remote, local, "remote summary differs from the local one");
    assert_eq!(stats["file_len"], file_len);
    let fetched = stats["bytes_fetched"].as_u64().expect("bytes_fetched");
    let prefix = stats["prefix_bytes"].as_u64().expect("prefix_bytes");
    assert!(fetched > 0 && prefix > 0, "{stats}");
    assert!(
        fetched * 100 < file_len && prefix * 100 < file_len,
        "fetched {fetched} bytes (prefix {prefix}) of {file_len}: not under 1%"
    );
    assert!(stats["xet_hash"].is_string(), "{stats}");
    assert_eq!(stats["reconstruction_api"], "v2", "{stats}");
    eprintln!(
        "remote inspect: fetched {fetched} bytes of {file_len} ({:.3}%), prefix {prefix}, {} requests",
        fetched as f64 * 100.0 / file_len as f64,
        stats["requests"]
    );

    // Text output says what it fetched.
    let out = zest_remote(&origin.base, &["inspect", "org/model", "big.gguf"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        text.contains("fetched ") && text.contains(&file_len.to_string()),
        "{text}"
    );

    // A small Xet file is fetched whole, and then its Xet hash is checked.
    for (name, xet) in [("small.safetensors", true), ("small.st", false)] {
        let local_path = repo_dir.join(name);
        let local = inspect_json(&[
            "inspect",
            "--json",
            "--tensors",
            local_path.to_str().expect("utf8"),
        ]);
        let out = zest_remote(
            &origin.base,
            &["inspect", "org/model", name, "--json", "--tensors"],
        );
        let (remote, stats) = remote_json(&out, name);
        assert_eq!(remote, local, "{name}");
        assert_eq!(stats["xet_hash"].is_string(), xet, "{name}: {stats}");
        assert_eq!(stats["whole_file_hash_verified"], xet, "{name}: {stats}");
    }

    // Missing files and repos are clear errors.
    let out = zest_remote(&origin.base, &["inspect", "org/model", "nope.gguf"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn remote_falls_back_to_v1_reconstructions() {
    let path = remote_repo().join("big.gguf");
    let local = inspect_json(&["inspect", "--json", path.to_str().expect("utf8")]);
    let origin = v1_only();
    let out = zest_remote(
        &origin.base,
        &["inspect", "org/model", "big.gguf", "--json"],
    );
    let (remote, stats) = remote_json(&out, "big.gguf");
    assert_eq!(remote, local);
    assert_eq!(stats["reconstruction_api"], "v1", "{stats}");
    let fetched = stats["bytes_fetched"].as_u64().expect("bytes_fetched");
    assert!(fetched * 100 < BIG_GGUF_LEN, "{stats}");
}

/// With `ZEST_TRACKER` set, the header's xorb ranges go through the fleet: the first inspect has
/// the edge fetch them from the origin (and keep them), the second takes nothing from the origin.
#[test]
fn remote_inspect_goes_through_the_fleet() {
    let path = remote_repo().join("big.gguf");
    let local = inspect_json(&["inspect", "--json", path.to_str().expect("utf8")]);
    // An origin of this test's own (sharing the primary's index): the xorb bytes it counts are
    // this test's only, whatever the other remote tests ask the primary meanwhile.
    primary();
    let origin = Origin::start(&remote_dir().join("root"), &remote_dir().join("state"), &[]);
    let tracker = Tracker::start(&[]);
    let edge_cache = zest_testkit::fresh_dir(env!("CARGO_TARGET_TMPDIR"), "inspect-edge");
    let edge = Edge::start(&origin.base, &edge_cache, &["--tracker", &tracker.base]);
    // The edge is known to the tracker once it has announced.
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while !zest_testkit::http_get(&tracker.base, "/v1/peers")
        .is_some_and(|b| b.contains(&edge.peer_addr))
    {
        assert!(Instant::now() < deadline, "the edge never announced itself");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let mut edges_before = 0;
    for round in 0..2 {
        let origin_before = origin.xorb_bytes();
        let out = zest_remote_via(
            &origin.base,
            Some(&tracker.base),
            &["inspect", "org/model", "big.gguf", "--json"],
        );
        let (remote, stats) = remote_json(&out, &format!("round {round}"));
        assert_eq!(remote, local, "round {round}: summary differs");
        let fleet = &stats["fleet"];
        let edges = fleet["edges"].as_u64().expect("fleet.edges");
        assert!(
            edges > 0,
            "round {round}: nothing came through the edge: {stats}"
        );
        assert_eq!(fleet["upstream"], 0, "round {round}: {stats}");
        let origin_delta = origin.xorb_bytes() - origin_before;
        if round == 0 {
            assert!(
                origin_delta > 0.0,
                "the edge fetched nothing from the origin"
            );
            edges_before = edges;
        } else {
            assert_eq!(
                origin_delta, 0.0,
                "second inspect took xorb bytes from the origin"
            );
            assert_eq!(edges, edges_before, "{stats}");
        }
    }
}

#[test]
fn remote_inspect_survives_an_origin_answering_503_and_429() {
    primary();
    // Every route faulted (HEAD, token, reconstructions, xorb and file ranges); the same repo.
    let faulty = Origin::start(
        &remote_dir().join("root"),
        &remote_dir().join("state"),
        &[
            "--fault-503-rate",
            "0.25",
            "--fault-429-rate",
            "0.1",
            "--fault-seed",
            "11",
        ],
    );
    // The fault-free baseline comes from an origin of this test's own: the shared primary's
    // xorb-byte count is what the fleet test, running beside this one, measures.
    let clean_origin = Origin::start(&remote_dir().join("root"), &remote_dir().join("state"), &[]);
    for name in ["big.gguf", "small.safetensors", "small.st"] {
        let args = ["inspect", "org/model", name, "--json"];
        let clean = zest_remote(&clean_origin.base, &args);
        assert!(clean.status.success(), "{name}: without faults");
        let mut want: Json = serde_json::from_slice(&clean.stdout).expect("JSON");
        let out = zest_remote(&faulty.base, &args);
        assert!(
            out.status.success(),
            "{name}: remote inspect gave up on a flaky origin: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut got: Json = serde_json::from_slice(&out.stdout).expect("JSON");
        for j in [&mut want, &mut got] {
            j.as_object_mut().expect("object").remove("remote");
        }
        assert_eq!(got, want, "{name}: summary differs under faults");
    }
    let injected = zest_testkit::metric(&faulty.base, "zest_origin_faults_injected_total");
    assert!(injected > 0.0, "the origin injected no faults");
}
