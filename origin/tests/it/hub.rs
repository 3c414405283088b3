//! Hub API routes over HTTP: resolve headers and bodies, model info, tree paging, tokens,
//! gating, restart, metrics.

use std::collections::BTreeSet;

use sha1::{Digest, Sha1};

use crate::common::{client, fixture, gated, primary, BIG_LEN, HUB_TOKEN, TREE_PAGE};

fn git_sha1(data: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", data.len()).as_bytes());
    h.update(data);
    hex::encode(h.finalize())
}

#[test]
fn resolve_head_has_xet_headers_for_large_files_and_git_etag_for_small_ones() {
    let o = primary();
    let f = fixture();
    let r = client()
        .head(o.url("/acme/big/resolve/main/pytorch_model.bin"))
        .send()
        .expect("head");
    assert_eq!(r.status(), 200);
    let h = r.headers();
    let want = &f.files["acme/big/pytorch_model.bin"];
    assert_eq!(h["x-linked-size"], BIG_LEN.to_string().as_str());
    assert_eq!(h["content-length"], BIG_LEN.to_string().as_str());
    assert_eq!(
        h["x-linked-etag"].to_str().expect("ascii"),
        format!("\"{}\"", want.sha256)
    );
    assert_eq!(h["x-xet-hash"].len(), 64);
    let commit = h["x-repo-commit"].to_str().expect("ascii").to_string();
    assert_eq!(commit.len(), 40);
    let link = h["link"].to_str().expect("ascii");
    assert!(
        link.contains(&format!(
            "/api/models/acme/big/xet-read-token/{commit}>; rel=\"xet-auth\""
        )),
        "{link}"
    );

    let r = client()
        .head(o.url("/acme/big/resolve/main/config.json"))
        .send()
        .expect("head");
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-xet-hash").is_none());
    let cfg = f.read("acme/big/config.json");
    assert_eq!(
        r.headers()["etag"].to_str().expect("ascii"),
        format!("\"{}\"", git_sha1(&cfg))
    );
    assert_eq!(
        r.headers()["content-length"],
        cfg.len().to_string().as_str()
    );

    // Small .safetensors/.bin files are Xet too.
    let r = client()
        .head(o.url("/acme/big/resolve/main/sub/dir/extra.bin"))
        .send()
        .expect("head");
    assert!(r.headers().get("x-xet-hash").is_some());
    let r = client()
        .get(o.url("/acme/big/resolve/main/sub/notes.txt"))
        .send()
        .expect("get");
    assert_eq!(r.bytes().expect("body").as_ref(), b"nested plain file\n");

    // The commit id works as a revision, and is stable across instances.
    let r = client()
        .head(o.url(&format!("/acme/big/resolve/{commit}/config.json")))
        .send()
        .expect("head");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-repo-commit"].to_str().expect("ascii"),
        commit
    );
}

#[test]
fn resolve_get_streams_whole_body_and_honours_range() {
    let o = primary();
    let f = fixture();
    let data = f.read("acme/big/model.safetensors");
    let r = client()
        .get(o.url("/acme/big/resolve/main/model.safetensors"))
        .send()
        .expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().expect("body").as_ref(), data.as_slice());

    let get = |range: &str| {
        client()
            .get(o.url("/acme/big/resolve/main/model.safetensors"))
            .header("Range", range)
            .send()
            .expect("get")
    };
    let r = get("bytes=1000-1999");
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"].to_str().expect("ascii"),
        format!("bytes 1000-1999/{}", data.len())
    );
    assert_eq!(r.bytes().expect("body").as_ref(), &data[1000..2000]);
    let r = get("bytes=5999990-");
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().expect("body").as_ref(), &data[5_999_990..]);
    let r = get("bytes=-5");
    assert_eq!(r.bytes().expect("body").as_ref(), &data[data.len() - 5..]);
    let r = get(&format!("bytes={}-", data.len()));
    assert_eq!(r.status(), 416);
    assert_eq!(
        r.headers()["content-range"].to_str().expect("ascii"),
        format!("bytes */{}", data.len())
    );
    assert_eq!(get("bytes=abc").status(), 400);
    assert_eq!(get("bytes=20-10").status(), 400);
}

#[test]
fn model_info_lists_siblings() {
    let o = primary();
    let v: serde_json::Value = client()
        .get(o.url("/api/models/acme/big/revision/main"))
        .send()
        .expect("get")
        .json()
        .expect("json");
    assert_eq!(v["id"], "acme/big");
    assert_eq!(v["sha"].as_str().expect("sha").len(), 40);
    let siblings = v["siblings"].as_array().expect("siblings");
    let names: BTreeSet<&str> = siblings
        .iter()
        .map(|s| s["rfilename"].as_str().expect("name"))
        .collect();
    let want: BTreeSet<String> = fixture().repo_files("acme/big").into_keys().collect();
    assert_eq!(names, want.iter().map(String::as_str).collect());
    let big = siblings
        .iter()
        .find(|s| s["rfilename"] == "pytorch_model.bin")
        .expect("big");
    assert_eq!(
        big["lfs"]["sha256"],
        fixture().files["acme/big/pytorch_model.bin"]
            .sha256
            .as_str()
    );
    assert_eq!(big["size"], BIG_LEN as u64);
    let r = client()
        .get(o.url("/api/models/acme/big/revision/v9.9"))
        .send()
        .expect("get");
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-error-code"], "RevisionNotFound");
}

#[test]
fn tree_listing_pages_with_link_headers() {
    let o = primary();
    let mut url = o.url("/api/models/acme/big/tree/main?recursive=true&expand=false");
    let mut entries = Vec::new();
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages < 50, "paging does not end");
        let r = client().get(&url).send().expect("get");
        assert_eq!(r.status(), 200);
        let next = r.headers().get("link").map(|l| {
            let l = l.to_str().expect("ascii");
            assert!(l.ends_with("rel=\"next\""), "{l}");
            l[l.find('<').expect("<") + 1..l.find('>').expect(">")].to_string()
        });
        let page: Vec<serde_json::Value> = r.json().expect("json");
        assert!(page.len() <= TREE_PAGE);
        entries.extend(page);
        match next {
            Some(n) => url = n,
            None => break,
        }
    }
    assert!(pages >= 3);
    let files: BTreeSet<&str> = entries
        .iter()
        .filter(|e| e["type"] == "file")
        .map(|e| e["path"].as_str().expect("path"))
        .collect();
    let want: BTreeSet<String> = fixture().repo_files("acme/big").into_keys().collect();
    assert_eq!(files, want.iter().map(String::as_str).collect());
    let dirs: BTreeSet<&str> = entries
        .iter()
        .filter(|e| e["type"] == "directory")
        .map(|e| e["path"].as_str().expect("path"))
        .collect();
    assert_eq!(dirs, BTreeSet::from(["sub", "sub/dir"]));
    let big = entries
        .iter()
        .find(|e| e["path"] == "pytorch_model.bin")
        .expect("big");
    assert_eq!(big["xetHash"].as_str().expect("xet").len(), 64);
    assert_eq!(
        big["lfs"]["oid"],
        fixture().files["acme/big/pytorch_model.bin"]
            .sha256
            .as_str()
    );
    assert!(entries
        .iter()
        .find(|e| e["path"] == "config.json")
        .expect("cfg")
        .get("lfs")
        .is_none());

    // Non-recursive listing of a sub-folder.
    let v: Vec<serde_json::Value> = client()
        .get(o.url("/api/models/acme/big/tree/main/sub"))
        .send()
        .expect("get")
        .json()
        .expect("json");
    let paths: Vec<&str> = v
        .iter()
        .map(|e| e["path"].as_str().expect("path"))
        .collect();
    assert_eq!(paths, ["sub/dir", "sub/notes.txt"]);
    assert_eq!(
        client()
            .get(o.url("/api/models/acme/big/tree/main/nope"))
            .send()
            .expect("get")
            .status(),
        404
    );
}

#[test]
fn xet_read_token_in_headers_and_json() {
    let o = primary();
    let r = client()
        .get(o.url("/api/models/acme/big/xet-read-token/main"))
        .send()
        .expect("get");
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    let v: serde_json::Value = r.json().expect("json");
    assert_eq!(v["casUrl"], o.base.as_str());
    assert_eq!(h["x-xet-cas-url"].to_str().expect("ascii"), o.base);
    assert_eq!(
        h["x-xet-access-token"].to_str().expect("ascii"),
        v["accessToken"].as_str().expect("token")
    );
    let exp: u64 = h["x-xet-token-expiration"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("exp");
    assert_eq!(v["exp"], exp);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    assert!(exp > now + 3000 && exp <= now + 3601, "{exp} vs {now}");
}

#[test]
fn misc_routes() {
    let o = primary();
    assert_eq!(
        client()
            .get(o.url("/api/agent-harnesses"))
            .send()
            .expect("get")
            .status(),
        404
    );
    assert_eq!(
        client()
            .post(o.url("/v1/telemetry"))
            .body("{}")
            .send()
            .expect("post")
            .status(),
        200
    );
    assert_eq!(
        client()
            .get(o.url("/healthz"))
            .send()
            .expect("get")
            .status(),
        200
    );
    assert_eq!(
        client()
            .delete(o.url("/acme/big/resolve/main/config.json"))
            .send()
            .expect("del")
            .status(),
        405
    );
}

#[test]
fn gated_server_requires_the_hub_token() {
    let o = gated();
    let path = "/acme/big/resolve/main/config.json";
    assert_eq!(
        client().head(o.url(path)).send().expect("head").status(),
        401
    );
    for (url, token) in [
        (path, Some("wrong")),
        ("/api/models/acme/big/revision/main", None),
        ("/api/models/acme/big/xet-read-token/main", None),
    ] {
        let mut req = client().get(o.url(url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        assert_eq!(req.send().expect("get").status(), 401, "{url} {token:?}");
    }
    let r = client()
        .get(o.url(path))
        .bearer_auth(HUB_TOKEN)
        .send()
        .expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.bytes().expect("body").as_ref(),
        fixture().read("acme/big/config.json").as_slice()
    );
    let v: serde_json::Value = client()
        .get(o.url("/api/models/acme/big/revision/main"))
        .bearer_auth(HUB_TOKEN)
        .send()
        .expect("get")
        .json()
        .expect("json");
    assert_eq!(v["gated"], "manual");
}

#[test]
fn restart_reuses_the_index() {
    // The gated origin starts on the primary's state folder after the primary indexed it.
    let p = primary();
    let o = gated();
    let n = fixture().files.len() as f64;
    assert_eq!(p.metric("zest_origin_files_indexed_total"), n);
    assert_eq!(o.metric("zest_origin_files_indexed_total"), 0.0);
    assert_eq!(o.metric("zest_origin_files_reused_total"), n);
    assert_eq!(o.metric("zest_origin_xorbs_written_total"), 0.0);
    assert!(o
        .log()
        .iter()
        .any(|l| l.contains("index up to date") && l.contains("\"files_indexed\":0")));
    // Same content, same commit ids.
    let c = |o: &crate::common::Origin| {
        client()
            .head(o.url("/acme/small/resolve/main/config.json"))
            .bearer_auth(HUB_TOKEN)
            .send()
            .expect("head")
            .headers()["x-repo-commit"]
            .to_str()
            .expect("ascii")
            .to_string()
    };
    assert_eq!(c(p), c(o));
}

#[test]
fn metrics_use_route_templates() {
    let o = primary();
    client()
        .head(o.url("/acme/big/resolve/main/config.json"))
        .send()
        .expect("head");
    let text = o.metrics_text();
    assert!(
        text.contains(
            r#"zest_origin_requests_total{route="/{repo}/resolve/{rev}/{path}",status="200"}"#
        ),
        "{text}"
    );
    assert!(!text.contains("config.json"));
    assert!(text.contains("zest_origin_xorb_bytes_served_total"));
}

#[test]
fn readyz_build_info_and_process_metrics() {
    let o = primary();
    let ready = client().get(o.url("/readyz")).send().expect("get");
    assert_eq!(ready.status(), 200);
    let text = o.metrics_text();
    assert!(
        text.contains(&format!(
            r#"zest_build_info{{service="zest-origin",version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    assert!(text.contains("process_resident_memory_bytes"), "{text}");
}
