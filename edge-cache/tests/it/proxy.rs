//! The real Hugging Face client through the edge: byte-identical downloads, a second download
//! served without origin xorb bytes, the non-Xet path, warming, and single flight.

use crate::common::*;

fn assert_identical(got: &std::collections::BTreeMap<String, String>) {
    let want = &fixture().files;
    for (p, sha) in want {
        assert_eq!(got.get(p), Some(sha), "file {p}");
    }
}

#[test]
fn hf_client_through_edge_is_byte_identical_and_second_download_takes_no_origin_xorb_bytes() {
    let origin = Origin::start(|_| {});
    let edge = Edge::start(&origin.base, &cache_dir(), &[]);
    let before = origin.xorb_bytes();
    let first = snapshot(&edge.base, &[]).unwrap_or_else(|e| panic!("{e}\n{}", edge.log()));
    assert_identical(&first);
    let after_first = origin.xorb_bytes();
    assert!(
        after_first > before,
        "the first download went to the origin"
    );
    let second = snapshot(&edge.base, &[]).unwrap_or_else(|e| panic!("{e}\n{}", edge.log()));
    assert_identical(&second);
    assert_eq!(
        origin.xorb_bytes(),
        after_first,
        "the second download took xorb bytes from the origin"
    );
    assert!(edge.metric("zest_edge_hits_total") > 0.0);
    assert!(edge.metric("zest_edge_bytes_served_total{protocol=\"http\"}") > 0.0);
    assert!(edge.metric("zest_edge_file_verifications_total{outcome=\"ok\"}") >= 3.0);
    // The client was handed xorb URLs on the data port (sendfile), and only those.
    for path in ["model.safetensors", "a.bin", "sub/b.bin"] {
        for r in ranges_of(&edge, path) {
            assert!(
                r.url.starts_with(&format!("{}/xorb/", edge.data_base)),
                "{}",
                r.url
            );
        }
    }
}

#[test]
fn hf_client_without_xet_through_edge_is_byte_identical() {
    let origin = Origin::start(|_| {});
    let edge = Edge::start(&origin.base, &cache_dir(), &[]);
    let got = snapshot(&edge.base, &[("HF_HUB_DISABLE_XET", "1")])
        .unwrap_or_else(|e| panic!("{e}\n{}", edge.log()));
    assert_identical(&got);
    assert!(origin.metric("zest_origin_file_bytes_served_total") > 0.0);
}

/// The admin token of the edges these tests warm.
const WARM_TOKEN: &str = "it-admin-token";

/// `POST /v1/warm` of `REPO@main`: the status and the JSON answer.
fn warm_main(edge: &Edge) -> (reqwest::StatusCode, serde_json::Value) {
    let r = client()
        .post(format!("{}/v1/warm", edge.base))
        .header("x-zest-admin-token", WARM_TOKEN)
        .json(&serde_json::json!({"repo": REPO, "revision": "main"}))
        .send()
        .expect("warm");
    let status = r.status();
    (status, r.json().expect("json"))
}

#[test]
fn warm_pulls_a_revision_so_clients_take_nothing_from_origin() {
    let origin = Origin::start(|_| {});
    let edge = Edge::start(&origin.base, &cache_dir(), &["--admin-token", WARM_TOKEN]);
    let (status, body) = warm_main(&edge);
    assert!(status.is_success(), "{body}");
    assert_eq!(body["xet_files"], 3, "{body}");
    assert!(body["ranges"].as_u64() > Some(0), "{body}");
    let warmed = origin.xorb_bytes();
    assert!(warmed > 0.0);
    let got = snapshot(&edge.base, &[]).unwrap_or_else(|e| panic!("{e}\n{}", edge.log()));
    assert_identical(&got);
    assert_eq!(
        origin.xorb_bytes(),
        warmed,
        "the download after warm took origin xorb bytes"
    );
}

/// The CAS URL, token and Xet hash of `path` through the edge, which must have rewritten the
/// `Link` header and the CAS URL to itself.
fn access(edge: &Edge, path: &str) -> XetAccess {
    let a = XetAccess::of(edge, path);
    assert!(
        a.link.contains(&edge.base),
        "Link not rewritten to the edge: {}",
        a.link
    );
    assert!(
        a.cas.starts_with(&edge.base),
        "casUrl not rewritten: {}",
        a.cas
    );
    a
}

#[test]
fn ten_concurrent_requests_for_a_cold_range_fetch_it_once() {
    let origin = Origin::start(|f| f.fault_latency_ms = 100);
    let edge = Edge::start(&origin.base, &cache_dir(), &[]);
    let a = access(&edge, "model.safetensors");
    let before = origin.xorb_bytes();
    let results: Vec<Vec<u8>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..10)
            .map(|_| {
                s.spawn(|| {
                    let rec = a.reconstruction();
                    let mut all = Vec::new();
                    let xorbs = rec["xorbs"].as_object().expect("xorbs");
                    let mut keys: Vec<_> = xorbs.keys().collect();
                    keys.sort();
                    for k in keys {
                        for f in xorbs[k].as_array().expect("fetches") {
                            let url = f["url"].as_str().expect("url");
                            assert!(url.starts_with(&edge.data_base), "{url}");
                            for r in f["ranges"].as_array().expect("ranges") {
                                let (s, e) = (
                                    r["bytes"]["start"].as_u64().expect("s"),
                                    r["bytes"]["end"].as_u64().expect("e"),
                                );
                                let resp = client()
                                    .get(url)
                                    .header("range", format!("bytes={s}-{e}"))
                                    .send()
                                    .expect("xorb");
                                assert_eq!(resp.status().as_u16(), 206);
                                let b = resp.bytes().expect("bytes");
                                assert_eq!(b.len() as u64, e - s + 1);
                                all.extend_from_slice(&b);
                            }
                        }
                    }
                    all
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    assert!(
        results.iter().all(|r| r == &results[0]),
        "clients got different bytes"
    );
    let fetched = origin.xorb_bytes() - before;
    assert_eq!(
        fetched,
        results[0].len() as f64,
        "ten clients made the edge fetch {fetched} bytes for a {} byte file body",
        results[0].len()
    );
}

#[test]
fn multi_range_get_answers_multipart() {
    let origin = Origin::start(|_| {});
    let edge = Edge::start(&origin.base, &cache_dir(), &[]);
    let a = access(&edge, "a.bin");
    let rec = a.reconstruction();
    let (_, fetches) = rec["xorbs"]
        .as_object()
        .expect("xorbs")
        .iter()
        .next()
        .expect("a xorb");
    let f = &fetches[0];
    let url = f["url"].as_str().expect("url");
    let r = &f["ranges"][0]["bytes"];
    let (s, e) = (
        r["start"].as_u64().expect("s"),
        r["end"].as_u64().expect("e"),
    );
    assert!(e - s > 100);
    let resp = client()
        .get(url)
        .header(
            "range",
            format!("bytes={s}-{},{}-{}", s + 9, s + 50, s + 59),
        )
        .send()
        .expect("get");
    assert_eq!(resp.status().as_u16(), 206);
    let ct = resp.headers()["content-type"]
        .to_str()
        .expect("ct")
        .to_string();
    assert!(ct.starts_with("multipart/byteranges"), "{ct}");
    let body = resp.bytes().expect("body");
    let whole = client()
        .get(url)
        .header("range", format!("bytes={s}-{e}"))
        .send()
        .expect("get")
        .bytes()
        .expect("body");
    let text = body.as_ref();
    let find = |needle: &[u8]| text.windows(needle.len()).position(|w| w == needle);
    assert!(find(&whole[..10]).is_some() && find(&whole[50..60]).is_some());
    // Tampered URLs are refused.
    let bad = url.replace("&r=", "&r=0-1:0-9,");
    assert_eq!(
        client()
            .get(bad)
            .header("range", "bytes=0-9")
            .send()
            .expect("get")
            .status()
            .as_u16(),
        403
    );
}

#[test]
fn warm_survives_an_origin_answering_503_and_429() {
    // Every upstream route faulted: revision, tree, token, reconstructions, xorb ranges.
    let origin = Origin::start(|f| {
        f.fault_503_rate = 0.15;
        f.fault_429_rate = 0.05;
        f.fault_seed = 13;
    });
    let edge = Edge::start(&origin.base, &cache_dir(), &["--admin-token", WARM_TOKEN]);
    let (status, body) = warm_main(&edge);
    assert!(status.is_success(), "{body}\n{}", edge.log());
    assert_eq!(body["xet_files"], 3, "{body}");
    assert!(body["ranges"].as_u64() > Some(0), "{body}");
    assert!(origin.xorb_bytes() > 0.0);
    assert!(
        origin.metric("zest_origin_faults_injected_total{kind=\"503\"}") > 0.0,
        "the origin injected no faults"
    );
}
