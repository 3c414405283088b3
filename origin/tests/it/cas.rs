//! CAS routes over HTTP: reconstructions (v1/v2, ranges, tokens), signed xorb ranges
//! (single, multi-range, forged, expired, wrong Range) and fault switches.

use std::collections::HashMap;
use std::time::Instant;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use xet::cas::{ReconstructionV1, ReconstructionV2};
use xet::MerkleHash;
use zest_origin::signing::{format_ranges, Signer};

use crate::common::{client, faulty, fixture, primary, Origin, PUBLIC_URL, SIGNING_KEY};

fn xet_hash(o: &Origin, repo: &str, path: &str) -> String {
    let r = client()
        .head(o.url(&format!("/{repo}/resolve/main/{path}")))
        .send()
        .expect("head");
    r.headers()["x-xet-hash"]
        .to_str()
        .expect("ascii")
        .to_string()
}

fn cas_token(o: &Origin, repo: &str) -> String {
    let v: serde_json::Value = client()
        .get(o.url(&format!("/api/models/{repo}/xet-read-token/main")))
        .send()
        .expect("token")
        .json()
        .expect("json");
    v["accessToken"].as_str().expect("token").to_string()
}

fn recon(
    o: &Origin,
    version: u8,
    token: &str,
    hash: &str,
    range: Option<&str>,
) -> reqwest::blocking::Response {
    let mut req = client()
        .get(o.url(&format!("/v{version}/reconstructions/{hash}")))
        .bearer_auth(token);
    if let Some(r) = range {
        req = req.header("Range", r);
    }
    req.send().expect("reconstruction")
}

fn fetch(url: &str, range: (u64, u64)) -> Vec<u8> {
    let r = client()
        .get(url)
        .header("Range", format!("bytes={}-{}", range.0, range.1))
        .send()
        .expect("xorb get");
    assert_eq!(r.status(), 206, "{url}: {}", r.text().unwrap_or_default());
    r.bytes().expect("body").to_vec()
}

/// Rebuilds the bytes a v2 answer describes, like hf_xet does.
fn rebuild_v2(v: &ReconstructionV2) -> Vec<u8> {
    let mut chunks: HashMap<(MerkleHash, u32), Vec<u8>> = HashMap::new();
    for (xorb, fetches) in &v.xorbs {
        for f in fetches {
            for d in &f.ranges {
                let bytes = fetch(&f.url, (d.bytes.start, d.bytes.end));
                assert_eq!(bytes.len() as u64, d.bytes.end - d.bytes.start + 1);
                let mut out = Vec::new();
                let lens = xet::chunk::decode_records(&bytes, &mut out).expect("decode");
                assert_eq!(lens.len() as u32, d.chunks.end - d.chunks.start);
                let mut pos = 0usize;
                for (i, l) in lens.iter().enumerate() {
                    chunks.insert(
                        (*xorb, d.chunks.start + i as u32),
                        out[pos..pos + *l as usize].to_vec(),
                    );
                    pos += *l as usize;
                }
            }
        }
    }
    let mut out = Vec::new();
    for t in &v.terms {
        let start = out.len();
        for c in t.range.start..t.range.end {
            out.extend_from_slice(&chunks[&(t.hash, c)]);
        }
        assert_eq!((out.len() - start) as u32, t.unpacked_length);
    }
    out.drain(..v.offset_into_first_range as usize);
    out
}

fn rebuild_v1(v: &ReconstructionV1) -> Vec<u8> {
    let mut chunks: HashMap<(MerkleHash, u32), Vec<u8>> = HashMap::new();
    for (xorb, infos) in &v.fetch_info {
        for f in infos {
            let bytes = fetch(&f.url, (f.url_range.start, f.url_range.end));
            let mut out = Vec::new();
            let lens = xet::chunk::decode_records(&bytes, &mut out).expect("decode");
            let mut pos = 0usize;
            for (i, l) in lens.iter().enumerate() {
                chunks.insert(
                    (*xorb, f.range.start + i as u32),
                    out[pos..pos + *l as usize].to_vec(),
                );
                pos += *l as usize;
            }
        }
    }
    let mut out = Vec::new();
    for t in &v.terms {
        for c in t.range.start..t.range.end {
            out.extend_from_slice(&chunks[&(t.hash, c)]);
        }
    }
    out.drain(..v.offset_into_first_range as usize);
    out
}

#[test]
fn reconstruction_of_a_mid_chunk_range_rebuilds_exact_bytes_v1_and_v2() {
    let o = primary();
    let data = fixture().read("acme/big/pytorch_model.bin");
    let hash = xet_hash(o, "acme/big", "pytorch_model.bin");
    let token = cas_token(o, "acme/big");
    let (s, e) = (1_000_001usize, 3_333_333usize);
    let range = format!("bytes={s}-{e}");

    let v: ReconstructionV2 = recon(o, 2, &token, &hash, Some(&range)).json().expect("v2");
    assert!(v.offset_into_first_range > 0);
    let mut got = rebuild_v2(&v);
    assert!(got.len() > e - s);
    got.truncate(e - s + 1);
    assert!(got == data[s..=e], "v2 bytes differ");

    let v: ReconstructionV1 = recon(o, 1, &token, &hash, Some(&range)).json().expect("v1");
    let mut got = rebuild_v1(&v);
    got.truncate(e - s + 1);
    assert!(got == data[s..=e], "v1 bytes differ");

    // The whole file spans several xorbs; a range running past the end is cut at the end.
    let v: ReconstructionV2 = recon(o, 2, &token, &hash, None).json().expect("v2");
    assert!(v.xorbs.len() >= 2, "a 130 MB file must span several xorbs");
    let tail = format!("bytes={}-{}", data.len() - 10, data.len() + 1000);
    let v: ReconstructionV2 = recon(o, 2, &token, &hash, Some(&tail)).json().expect("v2");
    let got = rebuild_v2(&v);
    assert_eq!(got, data[data.len() - 10..]);
}

#[test]
fn reconstruction_rejects_bad_tokens_and_ranges() {
    let o = primary();
    let hash = xet_hash(o, "acme/big", "pytorch_model.bin");
    let token = cas_token(o, "acme/big");
    let len = fixture().files["acme/big/pytorch_model.bin"].len;
    let r = client()
        .get(o.url(&format!("/v2/reconstructions/{hash}")))
        .send()
        .expect("get");
    assert_eq!(r.status(), 401);
    assert_eq!(
        recon(o, 2, "zo1:1:abcd:acme/big", &hash, None).status(),
        401
    );
    let signer = Signer::new(&hex::decode(SIGNING_KEY).expect("hex"));
    let expired = signer.cas_token("acme/big", 1000);
    assert_eq!(recon(o, 2, &expired, &hash, None).status(), 401);
    let forged = token.replace("acme/big", "acme/small");
    assert_eq!(recon(o, 2, &forged, &hash, None).status(), 401);
    // A token for another repo does not reach this file.
    assert_eq!(
        recon(o, 2, &cas_token(o, "acme/small"), &hash, None).status(),
        404
    );
    assert_eq!(recon(o, 2, &token, &"0".repeat(64), None).status(), 404);
    assert_eq!(recon(o, 2, &token, "nothex", None).status(), 400);
    assert_eq!(
        recon(o, 2, &token, &hash, Some(&format!("bytes={len}-"))).status(),
        416
    );
    assert_eq!(
        recon(
            o,
            1,
            &token,
            &hash,
            Some(&format!("bytes={}-{}", len + 5, len + 9))
        )
        .status(),
        416
    );
    assert_eq!(recon(o, 2, &token, &hash, Some("bytes=zz")).status(), 400);
    assert_eq!(
        recon(o, 2, &token, &hash, Some("bytes=0-1,5-9")).status(),
        400
    );
    assert_eq!(recon(o, 2, &token, &hash, Some("bytes=0-0")).status(), 200);
}

/// A v2 URL of `acme/small/dedup/b.bin` that lists several ranges (b.bin shares its first
/// chunks with a.bin, so its own chunks sit after a.bin's in the xorb).
fn multi_range_fetch(o: &Origin) -> (String, Vec<(u64, u64)>) {
    let hash = xet_hash(o, "acme/small", "dedup/b.bin");
    let token = cas_token(o, "acme/small");
    let v: ReconstructionV2 = recon(o, 2, &token, &hash, None).json().expect("v2");
    let f = v
        .xorbs
        .values()
        .flatten()
        .find(|f| f.ranges.len() >= 2)
        .expect("a URL with several ranges");
    (
        f.url.clone(),
        f.ranges
            .iter()
            .map(|d| (d.bytes.start, d.bytes.end))
            .collect(),
    )
}

#[test]
fn multi_range_get_returns_multipart_byteranges() {
    let o = primary();
    let (url, ranges) = multi_range_fetch(o);
    let header = format!("bytes={}", format_ranges(&ranges));
    let r = client()
        .get(&url)
        .header("Range", &header)
        .send()
        .expect("get");
    assert_eq!(r.status(), 206);
    let ct = r.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_string();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .expect("multipart")
        .to_string();
    let body = r.bytes().expect("body").to_vec();
    // Parse the parts.
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body.as_slice();
    loop {
        assert!(
            rest.starts_with(delim.as_bytes()),
            "part must start with the boundary"
        );
        rest = &rest[delim.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let head_end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("part headers");
        let head = String::from_utf8_lossy(&rest[..head_end]).to_string();
        let cr = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: bytes "))
            .expect("content-range");
        let (span, _) = cr.split_once('/').expect("total");
        let (a, b) = span.split_once('-').expect("span");
        let (a, b): (u64, u64) = (a.parse().expect("a"), b.parse().expect("b"));
        let data = &rest[head_end + 4..head_end + 4 + (b - a + 1) as usize];
        parts.push(((a, b), data.to_vec()));
        rest = &rest[head_end + 4 + data.len()..];
        assert!(rest.starts_with(b"\r\n"));
        rest = &rest[2..];
    }
    assert_eq!(parts.iter().map(|p| p.0).collect::<Vec<_>>(), ranges);
    for (range, data) in parts {
        assert_eq!(
            data,
            fetch(&url, range),
            "part {range:?} differs from its single-range GET"
        );
    }
}

#[test]
fn xorb_urls_refuse_forged_expired_and_unsigned_requests() {
    let o = primary();
    let (url, ranges) = multi_range_fetch(o);
    let (s0, e0) = ranges[0];
    let get = |url: &str, range: Option<String>| {
        let mut req = client().get(url);
        if let Some(r) = range {
            req = req.header("Range", r);
        }
        let r = req.send().expect("get");
        (r.status().as_u16(), r.text().unwrap_or_default())
    };
    assert_eq!(get(&url, Some(format!("bytes={s0}-{e0}"))).0, 206);
    // Range not among the signed ones.
    let (st, body) = get(&url, Some(format!("bytes={s0}-{}", e0 + 1)));
    assert_eq!(st, 403);
    assert!(body.contains("Range"), "{body}");
    assert_eq!(get(&url, Some(format!("bytes={s0}-"))).0, 403);
    assert_eq!(get(&url, Some("bytes=0-0".into())).0, 403);
    assert_eq!(get(&url, None).0, 403);
    // A part of the multi-range list that is not a single range or the whole list.
    if ranges.len() >= 3 {
        assert_eq!(
            get(&url, Some(format!("bytes={}", format_ranges(&ranges[..2])))).0,
            403
        );
    }
    // Tampered signature, expiry, ranges, hash.
    let sig_at = url.find("Signature=").expect("sig") + "Signature=".len();
    let mut forged = url.clone();
    let c = if &url[sig_at..sig_at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    forged.replace_range(sig_at..sig_at + 1, c);
    let (st, body) = get(&forged, Some(format!("bytes={s0}-{e0}")));
    assert_eq!((st, body.contains("Signature")), (403, true), "{body}");
    let exp_at = url.find("Expires=").expect("exp") + "Expires=".len();
    let mut later = url.clone();
    later.insert(exp_at, '9');
    assert_eq!(get(&later, Some(format!("bytes={s0}-{e0}"))).0, 403);
    let no_sig = &url[..url.find("&Signature=").expect("sig")];
    assert_eq!(get(no_sig, Some(format!("bytes={s0}-{e0}"))).0, 403);
    let xorb_at = url.find("/xorbs/default/").expect("path") + "/xorbs/default/".len();
    let mut other = url.clone();
    other.replace_range(xorb_at..xorb_at + 64, &"1".repeat(64));
    assert_eq!(get(&other, Some(format!("bytes={s0}-{e0}"))).0, 403);

    // Correctly signed, but expired.
    let signer = Signer::new(&hex::decode(SIGNING_KEY).expect("hex"));
    let xorb = MerkleHash::from_hex(&url[xorb_at..xorb_at + 64]).expect("hash");
    let signed = |ranges: &[(u64, u64)], exp: u64| {
        let list = format!("bytes={}", format_ranges(ranges));
        format!(
            "{}/xorbs/default/{xorb}?X-Xet-Signed-Range={}&Expires={exp}&Signature={}",
            o.base,
            utf8_percent_encode(&list, NON_ALPHANUMERIC),
            signer.xorb_signature(&xorb, ranges, exp)
        )
    };
    let (st, body) = get(&signed(&[(s0, e0)], 1000), Some(format!("bytes={s0}-{e0}")));
    assert_eq!(st, 403);
    assert!(body.contains("expired"), "{body}");
    // Correctly signed and fresh, but past the chunk region (into the footer): 416.
    let far = u32::MAX as u64;
    assert_eq!(
        get(
            &signed(&[(0, far)], 4_000_000_000),
            Some(format!("bytes=0-{far}"))
        )
        .0,
        416
    );
    // Correctly signed for a xorb that does not exist: 404.
    let missing_hash = MerkleHash::from_hex(&"2".repeat(64)).expect("hash");
    let list = format!("bytes={}", format_ranges(&[(0, 1)]));
    let missing_url = format!(
        "{}/xorbs/default/{missing_hash}?X-Xet-Signed-Range={}&Expires=4000000000&Signature={}",
        o.base,
        utf8_percent_encode(&list, NON_ALPHANUMERIC),
        signer.xorb_signature(&missing_hash, &[(0, 1)], 4_000_000_000)
    );
    assert_eq!(get(&missing_url, Some("bytes=0-1".into())).0, 404);
}

#[test]
fn fault_switches_inject_429_corruption_and_throttling() {
    let good = primary();
    let bad = faulty();
    // Hub and reconstruction routes are out of the "xorbs" scope.
    let hash = xet_hash(bad, "acme/big", "model.safetensors");
    let token = cas_token(bad, "acme/big");
    let v: ReconstructionV2 = recon(bad, 2, &token, &hash, None).json().expect("v2");
    let (xorb, fetches) = v.xorbs.iter().next().expect("xorb");
    // --public-url is what clients are told to use.
    assert!(fetches[0]
        .url
        .starts_with(&format!("{PUBLIC_URL}/xorbs/default/{xorb}?")));
    let jwt: serde_json::Value = client()
        .get(bad.url("/api/models/acme/big/xet-read-token/main"))
        .send()
        .expect("token")
        .json()
        .expect("json");
    assert_eq!(jwt["casUrl"], PUBLIC_URL);
    let d = &fetches[0].ranges[0];
    let range = (d.bytes.start, d.bytes.end.min(d.bytes.start + 999_999));
    let signer = Signer::new(&hex::decode(SIGNING_KEY).expect("hex"));
    let url = |o: &Origin| {
        let list = format!("bytes={}", format_ranges(&[range]));
        format!(
            "{}/xorbs/default/{xorb}?X-Xet-Signed-Range={}&Expires=4000000000&Signature={}",
            o.base,
            utf8_percent_encode(&list, NON_ALPHANUMERIC),
            signer.xorb_signature(xorb, &[range], 4_000_000_000)
        )
    };
    let clean = fetch(&url(good), range);
    let (mut n429, mut corrupted) = (0, 0);
    let started = Instant::now();
    for _ in 0..8 {
        let r = client()
            .get(url(bad))
            .header("Range", format!("bytes={}-{}", range.0, range.1))
            .send()
            .expect("get");
        match r.status().as_u16() {
            429 => n429 += 1,
            206 => {
                let body = r.bytes().expect("body");
                assert_eq!(body.len(), clean.len());
                let diff = body.iter().zip(&clean).filter(|(a, b)| a != b).count();
                assert_eq!(diff, 1, "exactly one byte is flipped");
                corrupted += 1;
            }
            s => panic!("unexpected status {s}"),
        }
    }
    assert!(
        n429 >= 1 && corrupted >= 1,
        "429: {n429}, corrupted: {corrupted}"
    );
    // 4 MB/s cap: `corrupted` bodies of up to 1 MB took at least their share of time.
    let min_secs = (corrupted as f64 * clean.len() as f64) / 4_000_000.0 * 0.8;
    assert!(
        started.elapsed().as_secs_f64() >= min_secs,
        "{:?} < {min_secs}",
        started.elapsed()
    );
    assert!(bad.metric(r#"zest_origin_faults_injected_total{kind="corrupt"}"#) >= 1.0);
    assert!(bad.metric(r#"zest_origin_faults_injected_total{kind="429"}"#) >= 1.0);
}

#[test]
fn float_like_data_is_stored_bg4_compressed() {
    let o = primary();
    let len = fixture().files["acme/big/model.safetensors"].len;
    let hash = xet_hash(o, "acme/big", "model.safetensors");
    let token = cas_token(o, "acme/big");
    let v: ReconstructionV2 = recon(o, 2, &token, &hash, None).json().expect("v2");
    let stored: u64 = v
        .xorbs
        .values()
        .flatten()
        .flat_map(|f| &f.ranges)
        .map(|d| d.bytes.end - d.bytes.start + 1)
        .sum();
    assert!(stored < len * 8 / 10, "stored {stored} of {len}");
    let f = &v.xorbs.values().next().expect("xorb")[0];
    let first = fetch(&f.url, (f.ranges[0].bytes.start, f.ranges[0].bytes.end));
    let header = xet::chunk::ChunkHeader::parse(&first).expect("header");
    assert_eq!(
        header.scheme,
        xet::chunk::CompressionScheme::ByteGrouping4Lz4
    );
}
