//! The released Hugging Face client (huggingface_hub + hf_xet) downloads from zest-origin.

use std::collections::BTreeMap;

use crate::common::{fixture, primary, run_python, v1_only, DOWNLOAD_PY};

fn expected(repo: &str) -> BTreeMap<String, String> {
    fixture()
        .repo_files(repo)
        .into_iter()
        .map(|(p, f)| (p, f.sha256))
        .collect()
}

fn as_map(v: serde_json::Value) -> BTreeMap<String, String> {
    serde_json::from_value(v).expect("map")
}

#[test]
fn hf_hub_download_of_multi_xorb_file_is_byte_identical() {
    let o = primary();
    let before = o.metric("zest_origin_xorb_bytes_served_total");
    let got = run_python(
        DOWNLOAD_PY,
        &["file", "acme/big", "pytorch_model.bin"],
        &o.base,
        &[],
    );
    let want = &fixture().files["acme/big/pytorch_model.bin"];
    assert_eq!(got["pytorch_model.bin"], want.sha256.as_str());
    // The file came through xorbs, not the resolve body.
    let served = o.metric("zest_origin_xorb_bytes_served_total") - before;
    assert!(
        served >= want.len as f64 * 0.9,
        "xorb bytes served {served}"
    );
}

#[test]
fn snapshot_download_of_repo_is_byte_identical() {
    let o = primary();
    let got = as_map(run_python(
        DOWNLOAD_PY,
        &["snapshot", "acme/big"],
        &o.base,
        &[],
    ));
    assert_eq!(got, expected("acme/big"));
}

#[test]
fn snapshot_download_without_xet_is_byte_identical() {
    let o = primary();
    let before = o.metric("zest_origin_file_bytes_served_total");
    let got = as_map(run_python(
        DOWNLOAD_PY,
        &["snapshot", "acme/big"],
        &o.base,
        &[("HF_HUB_DISABLE_XET", "1")],
    ));
    assert_eq!(got, expected("acme/big"));
    let total: u64 = fixture()
        .repo_files("acme/big")
        .values()
        .map(|f| f.len)
        .sum();
    assert!(o.metric("zest_origin_file_bytes_served_total") - before >= total as f64);
}

#[test]
fn snapshot_with_multirange_fetching_and_cross_file_dedup() {
    let o = primary();
    let before = o.metric(r#"zest_origin_xorb_range_requests_total{kind="multi"}"#);
    let got = as_map(run_python(
        DOWNLOAD_PY,
        &["snapshot", "acme/small"],
        &o.base,
        &[("HF_XET_CLIENT_ENABLE_MULTIRANGE_FETCHING", "true")],
    ));
    assert_eq!(got, expected("acme/small"));
    assert!(!got.contains_key("leak.txt"));
    // b.bin's two ranges in one xorb came as one multi-range GET.
    assert!(o.metric(r#"zest_origin_xorb_range_requests_total{kind="multi"}"#) > before);
}

#[test]
fn v1_fallback_when_v2_is_disabled() {
    let o = v1_only();
    let got = as_map(run_python(
        DOWNLOAD_PY,
        &["snapshot", "acme/small"],
        &o.base,
        &[],
    ));
    assert_eq!(got, expected("acme/small"));
    assert!(o.metric(r#"zest_origin_reconstructions_served_total{version="v1"}"#) >= 3.0);
    assert!(
        o.metric(r#"zest_origin_requests_total{route="/v2/reconstructions/{hash}",status="404"}"#)
            >= 1.0
    );
}

#[test]
fn xet_hash_header_equals_hf_xet_hash_files() {
    let o = primary();
    let f = fixture();
    let xet_files: Vec<(String, String)> = f
        .files
        .iter()
        .filter(|(k, v)| {
            k.starts_with("acme/")
                && (v.len >= 1 << 20 || k.ends_with(".bin") || k.ends_with(".safetensors"))
        })
        .map(|(k, v)| (k.clone(), v.abs.to_string_lossy().into_owned()))
        .collect();
    assert!(xet_files.len() >= 5);
    let script = r#"
import sys, json, hf_xet
print("RESULT " + json.dumps([i.hash for i in hf_xet.hash_files(sys.argv[1:])]))
"#;
    let paths: Vec<&str> = xet_files.iter().map(|(_, p)| p.as_str()).collect();
    let hashes = run_python(script, &paths, &o.base, &[]);
    for ((key, _), want) in xet_files.iter().zip(hashes.as_array().expect("array")) {
        let (repo, path) = key.split_at(key.match_indices('/').nth(1).expect("repo/path").0);
        let resp = crate::common::client()
            .head(o.url(&format!("/{repo}/resolve/main{path}")))
            .send()
            .expect("head");
        assert_eq!(resp.status(), 200, "{key}");
        let got = resp.headers()["x-xet-hash"].to_str().expect("ascii");
        assert_eq!(Some(got), want.as_str(), "{key}");
    }
}
