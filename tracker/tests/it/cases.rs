//! Test cases that run against every backend (see `both_backends!` in main.rs).

use reqwest::{Method, StatusCode};
use serde_json::json;
use zest_tracker::api::{self, Role};

use crate::harness::*;

pub async fn announce_then_lookup(b: Backend) {
    let env = Env::start(b).await;
    let e1 = peer("edge-1", Role::Edge, "z1", 0);
    let r = env
        .announce(&full(
            e1.clone(),
            vec![holding(1, &[(0, 10)]), holding(2, &[(0, 5), (8, 20)])],
        ))
        .await;
    assert_eq!(r.held_xorbs, 2);
    assert_eq!(r.ttl_secs, TTL_SECS);
    assert_eq!(r.interval_secs, TTL_SECS / 3);
    assert!(r.resync, "first announce of a peer asks for its full list");

    env.check_holders(&[
        (1, 2, 5, &["edge-1"], "inside a held range"),
        (1, 0, 10, &["edge-1"], "a whole held range"),
        (1, 5, 11, &[], "range not fully held"),
        (2, 3, 10, &[], "gap between held ranges"),
        (2, 9, 12, &["edge-1"], "inside the second range"),
        (3, 0, 1, &[], "unknown xorb"),
    ])
    .await;

    let r = env.lookup(&one_lookup(1, 0, 1)).await;
    let info = &r.peers["edge-1"];
    assert_eq!(info.addr, e1.addr);
    assert_eq!(info.role, Role::Edge);
    assert_eq!(info.zone, "z1");
    assert_eq!(r.peers.len(), 1);

    // The same peer announcing again is not a resync.
    let r = env.announce(&delta(e1, vec![], vec![])).await;
    assert!(!r.resync);
    assert_eq!(r.held_xorbs, 2);
}

pub async fn deltas_add_and_remove_ranges(b: Backend) {
    let env = Env::start(b).await;
    let p = peer("client-1", Role::Client, "", 0);
    env.announce(&full(p.clone(), vec![holding(1, &[(0, 100)])]))
        .await;
    // Remove a middle piece: the range splits.
    let r = env
        .announce(&delta(p.clone(), vec![], vec![holding(1, &[(40, 60)])]))
        .await;
    assert_eq!(r.held_xorbs, 1);
    env.check_holders(&[
        (1, 0, 40, &["client-1"], "left of the removed piece"),
        (1, 30, 50, &[], "across the removed piece"),
        (1, 60, 100, &["client-1"], "right of the removed piece"),
    ])
    .await;
    // Add it back plus a new xorb: merged again.
    let r = env
        .announce(&delta(
            p.clone(),
            vec![holding(1, &[(40, 60)]), holding(2, &[(0, 3)])],
            vec![],
        ))
        .await;
    assert_eq!(r.held_xorbs, 2);
    assert_eq!(env.holders(1, 0, 100).await, ["client-1"]);
    assert_eq!(env.holders(2, 0, 3).await, ["client-1"]);
    // Remove all of xorb 1.
    let r = env
        .announce(&delta(p.clone(), vec![], vec![holding(1, &[(0, 100)])]))
        .await;
    assert_eq!(r.held_xorbs, 1);
    assert!(env.holders(1, 0, 1).await.is_empty());
    // A heartbeat changes nothing.
    let r = env.announce(&delta(p, vec![], vec![])).await;
    assert_eq!(r.held_xorbs, 1);
    assert_eq!(env.holders(2, 1, 2).await, ["client-1"]);
    assert_eq!(env.stats().await.held_xorbs, 1);
}

pub async fn full_list_replaces_holdings(b: Backend) {
    let env = Env::start(b).await;
    let p = peer("edge-9", Role::Edge, "", 0);
    env.announce(&full(
        p.clone(),
        vec![holding(1, &[(0, 10)]), holding(2, &[(0, 10)])],
    ))
    .await;
    let r = env
        .announce(&full(
            p.clone(),
            vec![holding(2, &[(5, 8)]), holding(3, &[(0, 1)])],
        ))
        .await;
    assert_eq!(r.held_xorbs, 2);
    env.check_holders(&[
        (1, 0, 1, &[], "xorb 1 was dropped from the list"),
        (2, 0, 5, &[], "xorb 2's ranges were replaced"),
        (2, 5, 8, &["edge-9"], "xorb 2's new range"),
        (3, 0, 1, &["edge-9"], "the new xorb"),
    ])
    .await;
    // Duplicate entries of one xorb in a full list are merged.
    let r = env
        .announce(&full(p, vec![holding(4, &[(0, 2)]), holding(4, &[(2, 4)])]))
        .await;
    assert_eq!(r.held_xorbs, 1);
    assert_eq!(env.holders(4, 0, 4).await, ["edge-9"]);
    assert!(env.holders(3, 0, 1).await.is_empty());
}

pub async fn ttl_expiry_drops_peer(b: Backend) {
    let env = Env::start(b).await;
    let a = peer("edge-a", Role::Edge, "", 0);
    let c = peer("edge-c", Role::Edge, "", 0);
    env.announce(&full(a.clone(), vec![holding(1, &[(0, 10)])]))
        .await;
    env.announce(&full(c.clone(), vec![holding(1, &[(0, 10)])]))
        .await;
    env.clock
        .advance(std::time::Duration::from_secs(TTL_SECS - 1));
    // c keeps announcing, a goes quiet.
    env.announce(&delta(c.clone(), vec![], vec![])).await;
    let mut h = env.holders(1, 0, 10).await;
    h.sort();
    assert_eq!(h, ["edge-a", "edge-c"]);
    env.clock.advance(std::time::Duration::from_secs(2));
    assert_eq!(env.holders(1, 0, 10).await, ["edge-c"], "edge-a expired");
    let listed: Vec<String> = env.peers().await.peers.into_iter().map(|p| p.id).collect();
    assert_eq!(listed, ["edge-c"]);
    assert_eq!(env.stats().await.peers, 1);
    // The sweeper deletes what the expired peer held (it runs every 50 ms).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while env.stats().await.held_xorbs != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "sweeper did not remove edge-a's holdings"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A delta from the expired peer starts from nothing and asks for a resync.
    let r = env
        .announce(&delta(a.clone(), vec![holding(2, &[(0, 1)])], vec![]))
        .await;
    assert!(r.resync);
    assert_eq!(r.held_xorbs, 1);
    assert_eq!(
        env.holders(1, 0, 10).await,
        ["edge-c"],
        "old holdings of an expired peer are forgotten"
    );
    assert_eq!(env.holders(2, 0, 1).await, ["edge-a"]);
}

pub async fn ranking_zone_role_load_never_asker(b: Backend) {
    let env = Env::start(b).await;
    let all = [
        peer("me", Role::Edge, "a", 0),
        peer("client-far", Role::Client, "b", 0),
        peer("edge-far", Role::Edge, "b", 0),
        peer("client-near", Role::Client, "a", 0),
        peer("edge-near-busy", Role::Edge, "a", 7),
        peer("edge-near-idle", Role::Edge, "a", 1),
    ];
    for p in &all {
        env.announce(&full(p.clone(), vec![holding(1, &[(0, 50)])]))
            .await;
    }
    let mut req = one_lookup(1, 10, 20);
    req.peer_id = Some("me".into());
    req.zone = Some("a".into());
    let r = env.lookup(&req).await;
    assert_eq!(
        r.results[0].peers,
        [
            "edge-near-idle",
            "edge-near-busy",
            "client-near",
            "edge-far",
            "client-far"
        ]
    );
    assert!(!r.peers.contains_key("me"));
    req.limit = Some(2);
    let r = env.lookup(&req).await;
    assert_eq!(r.results[0].peers, ["edge-near-idle", "edge-near-busy"]);
    assert_eq!(r.peers.len(), 2, "only ranked peers are described");
    // Without a zone: edges first by load, then clients.
    let r = env.lookup(&one_lookup(1, 0, 1)).await;
    let order = &r.results[0].peers;
    let mut idle_edges = order[..2].to_vec();
    idle_edges.sort();
    assert_eq!(idle_edges, ["edge-far", "me"], "{order:?}");
    assert_eq!(&order[2..4], ["edge-near-idle", "edge-near-busy"]);
    let mut clients = order[4..].to_vec();
    clients.sort();
    assert_eq!(clients, ["client-far", "client-near"]);
}

pub async fn ranking_spreads_among_equals(b: Backend) {
    let env = Env::start(b).await;
    for i in 0..3 {
        env.announce(&full(
            peer(&format!("edge-{i}"), Role::Edge, "a", 0),
            vec![holding(1, &[(0, 5)])],
        ))
        .await;
    }
    let mut req = one_lookup(1, 0, 5);
    req.limit = Some(1);
    let mut firsts = std::collections::HashMap::new();
    for _ in 0..60 {
        let r = env.lookup(&req).await;
        *firsts.entry(r.results[0].peers[0].clone()).or_insert(0) += 1;
    }
    assert_eq!(
        firsts.len(),
        3,
        "every equal edge comes first sometimes: {firsts:?}"
    );
}

fn sample_manifest() -> api::Manifest {
    api::Manifest {
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        files: vec![
            api::ManifestFile {
                path: "config.json".into(),
                size: 612,
                sha256: None,
                xet_hash: None,
                terms: vec![],
            },
            api::ManifestFile {
                path: "weights/model-00001.safetensors".into(),
                size: 123_456_789,
                sha256: Some("ab".repeat(32)),
                xet_hash: Some(xorb(99)),
                terms: vec![
                    api::ManifestTerm {
                        hash: xorb(1),
                        unpacked_length: 67_000_000,
                        range: range(0, 1024),
                    },
                    api::ManifestTerm {
                        hash: xorb(2),
                        unpacked_length: 56_456_789,
                        range: range(3, 900),
                    },
                ],
            },
        ],
    }
}

pub async fn manifest_round_trip(b: Backend) {
    let env = Env::start(b).await;
    let m = sample_manifest();
    let (status, _) = env.put("/v1/manifests/org/model/main", &m).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let got: api::Manifest = env
        .ok(Method::GET, "/v1/manifests/org/model/main", None::<&()>)
        .await;
    assert_eq!(got, m);
    // Revisions may contain slashes; each revision is its own document.
    let mut m2 = m.clone();
    m2.commit = "f".repeat(40);
    m2.files.truncate(1);
    let (status, _) = env.put("/v1/manifests/org/model/refs/pr/1", &m2).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let got: api::Manifest = env
        .ok(
            Method::GET,
            "/v1/manifests/org/model/refs/pr/1",
            None::<&()>,
        )
        .await;
    assert_eq!(got, m2);
    let got: api::Manifest = env
        .ok(Method::GET, "/v1/manifests/org/model/main", None::<&()>)
        .await;
    assert_eq!(got, m);
    // PUT replaces.
    env.put("/v1/manifests/org/model/main", &m2).await;
    let got: api::Manifest = env
        .ok(Method::GET, "/v1/manifests/org/model/main", None::<&()>)
        .await;
    assert_eq!(got, m2);
    let (status, body) = env.get("/v1/manifests/org/other/main").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("no manifest")),
        "{body}"
    );
    assert_eq!(env.stats().await.manifests, 2);
}

fn report(upstream: u64, peers: u64) -> api::ReportRequest {
    api::ReportRequest {
        peer_id: Some("client-1".into()),
        repo: "org/model".into(),
        revision: "main".into(),
        bytes: api::BytesBySource {
            local: 1,
            peers,
            edges: 10,
            upstream,
        },
        files: 3,
        duration_ms: 1234,
    }
}

pub async fn reports_are_summed(b: Backend) {
    let env = Env::start(b).await;
    for r in [report(1000, 5), report(24, 7)] {
        let (status, body) = env.post("/v1/reports", &r).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    let s = env.stats().await;
    assert_eq!(s.reports, 2);
    assert_eq!(
        s.report_bytes,
        api::BytesBySource {
            local: 2,
            peers: 12,
            edges: 20,
            upstream: 1024
        }
    );
    env.assert_metrics(&[
        "zest_tracker_report_bytes_total{source=\"upstream\"} 1024",
        "zest_tracker_reports_total 2",
    ])
    .await;
}

pub async fn restart_durability_and_rebuild(b: Backend) {
    let mut env = Env::start(b).await;
    let m = sample_manifest();
    env.put("/v1/manifests/org/model/main", &m).await;
    env.post("/v1/reports", &report(100, 0)).await;
    let e = peer("edge-1", Role::Edge, "", 0);
    env.announce(&full(e.clone(), vec![holding(1, &[(0, 10)])]))
        .await;

    env.restart().await;
    if b == Backend::PgRedis {
        // Durable state survives; Redis (still running) kept the hot state too.
        let got: api::Manifest = env
            .ok(Method::GET, "/v1/manifests/org/model/main", None::<&()>)
            .await;
        assert_eq!(got, m);
        let s = env.stats().await;
        assert_eq!((s.reports, s.report_bytes.upstream), (1, 100));
        assert_eq!(env.holders(1, 0, 10).await, ["edge-1"]);
        // Now lose the hot state entirely: a fresh, empty Redis on the same port.
        let port = env.redis.as_ref().expect("redis").port;
        env.redis.as_mut().expect("redis").kill();
        env.redis = Some(RedisProc::start_on(port));
        env.restart().await;
        let got: api::Manifest = env
            .ok(Method::GET, "/v1/manifests/org/model/main", None::<&()>)
            .await;
        assert_eq!(got, m, "manifests live in PostgreSQL");
        assert_eq!(env.stats().await.reports, 1, "reports live in PostgreSQL");
    } else {
        let (status, _) = env.get("/v1/manifests/org/model/main").await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "the embedded store is not durable"
        );
    }
    // Hot state is gone; the peer's next heartbeat is told to resync, and its full list rebuilds it.
    assert!(env.holders(1, 0, 10).await.is_empty());
    let r = env.announce(&delta(e.clone(), vec![], vec![])).await;
    assert!(
        r.resync,
        "tracker lost the peer's state and asks for a full list"
    );
    let r = env.announce(&full(e, vec![holding(1, &[(0, 10)])])).await;
    assert!(!r.resync);
    assert_eq!(env.holders(1, 0, 10).await, ["edge-1"]);
}

pub async fn auth_refusals(b: Backend) {
    let env = Env::start(b).await;
    let ann = full(
        peer("edge-1", Role::Edge, "", 0),
        vec![holding(1, &[(0, 1)])],
    );
    let m = sample_manifest();
    let writes: Vec<(Method, &str, serde_json::Value)> = vec![
        (
            Method::POST,
            "/v1/announce",
            serde_json::to_value(&ann).expect("json"),
        ),
        (
            Method::PUT,
            "/v1/manifests/org/model/main",
            serde_json::to_value(&m).expect("json"),
        ),
        (
            Method::POST,
            "/v1/reports",
            serde_json::to_value(report(1, 1)).expect("json"),
        ),
        (Method::DELETE, "/v1/peers/edge-1", serde_json::Value::Null),
    ];
    for (method, path, body) in &writes {
        for token in [None, Some("wrong-token")] {
            let (status, resp) = env.call(method.clone(), path, Some(body), token).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {token:?}: {resp}"
            );
            assert!(resp["error"].is_string(), "{resp}");
        }
    }
    let (status, _) = env
        .call(Method::POST, "/v1/announce", Some(&ann), Some("Bearer"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Nothing was written.
    assert!(env.holders(1, 0, 1).await.is_empty());
    // Lookups are open by default.
    let (status, _) = env
        .call(Method::POST, "/v1/lookup", Some(&one_lookup(1, 0, 1)), None)
        .await;
    assert_eq!(status, StatusCode::OK);

    if b == Backend::PgRedis {
        // A token stored (hashed) in PostgreSQL works, and stops working when revoked.
        let db = env.db.as_ref().expect("db");
        let pg = zest_tracker::store::postgres::PgDurable::connect(&db.url)
            .await
            .expect("pg");
        let secret = zest_tracker::new_token_secret();
        pg.add_token("ci", &zest_tracker::auth::token_hash(&secret))
            .await
            .expect("add token");
        let (status, body) = env
            .call(Method::POST, "/v1/announce", Some(&ann), Some(&secret))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(pg.revoke_token("ci").await.expect("revoke"));
        let other = zest_tracker::new_token_secret();
        let (status, _) = env
            .call(Method::POST, "/v1/announce", Some(&ann), Some(&other))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    // With --lookup-auth, reads need the token too.
    let env = Env::start_with(b, |c| c.lookup_auth = true).await;
    for (method, path) in [
        (Method::GET, "/v1/peers"),
        (Method::GET, "/v1/stats"),
        (Method::GET, "/v1/manifests/o/n/main"),
    ] {
        let (status, _) = env.call(method.clone(), path, None::<&()>, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    let (status, _) = env
        .call(Method::POST, "/v1/lookup", Some(&one_lookup(1, 0, 1)), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = env.post("/v1/lookup", &one_lookup(1, 0, 1)).await;
    assert_eq!(status, StatusCode::OK);
    env.assert_metrics(&["zest_tracker_auth_failures_total 4"])
        .await;
}

async fn expect_400(env: &Env, path: &str, body: &str, needle: &str) {
    let (status, resp) = env.post_raw(path, body.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {resp}");
    let msg = resp["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message: {resp}"));
    assert!(
        msg.contains(needle),
        "{path}: error {msg:?} should mention {needle:?}"
    );
}

pub async fn bad_input_gets_400(b: Backend) {
    let env = Env::start_with(b, |c| {
        c.max_lookup_items = 100;
        c.max_body_bytes = 64 * 1024;
    })
    .await;
    let h = xorb(1).to_string();
    let peer_json = r#"{"id":"p1","addr":"127.0.0.1:1","role":"edge"}"#;
    let lookup = |items: &str| format!(r#"{{"items":[{items}]}}"#);
    let item = |hash: &str, start: i64, end: i64| {
        format!(r#"{{"hash":"{hash}","range":{{"start":{start},"end":{end}}}}}"#)
    };
    let announce = |rest: &str| format!(r#"{{"peer":{peer_json},{rest}}}"#);
    let bad_digit = format!("{}g", &h[..63]);
    let many = vec![item(&h, 0, 1); 101].join(",");
    // (path, body, what the error message must mention)
    let cases: Vec<(&str, String, &str)> = vec![
        ("/v1/lookup", "{not json".into(), "invalid JSON"),
        ("/v1/lookup", String::new(), "invalid JSON"),
        ("/v1/lookup", lookup(&item("abc", 0, 1)), "64 hex"),
        ("/v1/lookup", lookup(&item(&bad_digit, 0, 1)), "hex digit"),
        ("/v1/lookup", lookup(&item(&h, 5, 5)), "items[0].range"),
        ("/v1/lookup", lookup(&item(&h, -1, 5)), "invalid JSON"),
        (
            "/v1/lookup",
            format!(r#"{{"limit":0,"items":[{}]}}"#, item(&h, 0, 5)),
            "limit",
        ),
        ("/v1/lookup", lookup(&many), "at most 100"),
        (
            "/v1/announce",
            announce(&format!(
                r#""full":[{{"hash":"{h}","ranges":[{{"start":9,"end":3}}]}}]"#
            )),
            "full[0].ranges[0]",
        ),
        (
            "/v1/announce",
            announce(&format!(r#""full":[{{"hash":"{h}","ranges":[]}}]"#)),
            "empty",
        ),
        (
            "/v1/announce",
            announce(&format!(
                r#""full":[],"added":[{{"hash":"{h}","ranges":[{{"start":0,"end":1}}]}}]"#
            )),
            "not both",
        ),
        (
            "/v1/announce",
            r#"{"peer":{"id":"has space","addr":"a:1","role":"edge"}}"#.into(),
            "peer.id",
        ),
        (
            "/v1/announce",
            r#"{"peer":{"id":"p","addr":"a:1","role":"boss"}}"#.into(),
            "invalid JSON",
        ),
        (
            "/v1/announce",
            r#"{"peer":{"id":"p","addr":"","role":"edge"}}"#.into(),
            "peer.addr",
        ),
        (
            "/v1/reports",
            r#"{"repo":"noslash","revision":"main"}"#.into(),
            "org/name",
        ),
    ];
    for (path, body, needle) in &cases {
        expect_400(&env, path, body, needle).await;
    }
    // Manifests: bad commit, escaping path.
    let mut m = sample_manifest();
    m.commit = "xyz".into();
    let (status, resp) = env.put("/v1/manifests/org/model/main", &m).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{resp}");
    let mut m = sample_manifest();
    m.files[0].path = "../../etc/passwd".into();
    let (status, resp) = env.put("/v1/manifests/org/model/main", &m).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{resp}");
    assert!(
        resp["error"]
            .as_str()
            .is_some_and(|e| e.contains("files[0].path")),
        "{resp}"
    );
    let (status, _) = env
        .put("/v1/manifests/bad!org/model/main", &sample_manifest())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Too large a body: 413 with a JSON error, before parsing.
    let big = format!(r#"{{"items":[], "pad":"{}"}}"#, "x".repeat(70 * 1024));
    let (status, resp) = env.post_raw("/v1/lookup", big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{resp}");
    assert!(resp["error"].is_string());
    // Unknown route: JSON 404.
    let (status, resp) = env.get("/v2/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(resp["error"].is_string());
    // The tracker still works.
    env.announce(&full(
        peer("p1", Role::Edge, "", 0),
        vec![holding(1, &[(0, 1)])],
    ))
    .await;
    assert_eq!(env.holders(1, 0, 1).await, ["p1"]);
    let _ = json!(null);
}

pub async fn delete_peer(b: Backend) {
    let env = Env::start(b).await;
    env.announce(&full(
        peer("leaver", Role::Client, "", 0),
        vec![holding(1, &[(0, 4)])],
    ))
    .await;
    env.announce(&full(
        peer("stayer", Role::Client, "", 0),
        vec![holding(1, &[(0, 4)])],
    ))
    .await;
    let (status, _) = env
        .call(Method::DELETE, "/v1/peers/leaver", None::<&()>, Some(TOKEN))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(env.holders(1, 0, 4).await, ["stayer"]);
    let ids: Vec<String> = env.peers().await.peers.into_iter().map(|p| p.id).collect();
    assert_eq!(ids, ["stayer"]);
    let (status, body) = env
        .call(Method::DELETE, "/v1/peers/leaver", None::<&()>, Some(TOKEN))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let p = &env.peers().await.peers[0];
    assert_eq!(
        (p.held_xorbs, p.expires_in_secs, p.role),
        (1, TTL_SECS, Role::Client)
    );
}

pub async fn batch_lookup_of_2000_xorbs(b: Backend) {
    let env = Env::start(b).await;
    // Two edges each hold half of 2,000 xorbs, a client holds every tenth.
    let e0: Vec<_> = (0..1000).map(|i| holding(i, &[(0, 64)])).collect();
    let e1: Vec<_> = (1000..2000).map(|i| holding(i, &[(0, 64)])).collect();
    let c: Vec<_> = (0..2000)
        .step_by(10)
        .map(|i| holding(i, &[(0, 32)]))
        .collect();
    assert_eq!(
        env.announce(&full(peer("e0", Role::Edge, "", 0), e0))
            .await
            .held_xorbs,
        1000
    );
    assert_eq!(
        env.announce(&full(peer("e1", Role::Edge, "", 0), e1))
            .await
            .held_xorbs,
        1000
    );
    assert_eq!(
        env.announce(&full(peer("c", Role::Client, "", 0), c))
            .await
            .held_xorbs,
        200
    );
    let req = api::LookupRequest {
        peer_id: None,
        zone: None,
        limit: None,
        items: (0..2000)
            .map(|i| api::LookupItem {
                hash: xorb(i),
                range: range(0, 16),
            })
            .collect(),
    };
    let r = env.lookup(&req).await;
    assert_eq!(r.results.len(), 2000);
    for (i, res) in r.results.iter().enumerate() {
        let edge = if i < 1000 { "e0" } else { "e1" };
        if i % 10 == 0 {
            assert_eq!(res.peers, [edge, "c"], "item {i}");
        } else {
            assert_eq!(res.peers, [edge], "item {i}");
        }
    }
    assert_eq!(r.peers.len(), 3);
}

pub async fn health_ready_metrics(b: Backend) {
    let env = Env::start(b).await;
    let (status, _) = env.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = env.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let kind = if b == Backend::Embedded {
        "embedded"
    } else {
        "postgres+redis"
    };
    assert_eq!(body["store"], kind);
    assert_eq!(env.stats().await.store, kind);
    env.lookup(&one_lookup(1, 0, 1)).await;
    env.assert_metrics(&[
        "zest_tracker_http_requests_total{route=\"/v1/lookup\",status=\"2xx\"} 1",
        "zest_tracker_lookup_misses_total 1",
    ])
    .await;
}

fn claim_req(peer: &str, ttl_ms: u64, items: &[(u64, u32, u32)]) -> api::ClaimRequest {
    api::ClaimRequest {
        peer_id: peer.into(),
        ttl_ms,
        group: None,
        max_group_leases: None,
        done: false,
        items: items
            .iter()
            .map(|&(x, s, e)| api::LookupItem {
                hash: xorb(x),
                range: range(s, e),
            })
            .collect(),
    }
}

async fn claim(env: &Env, req: &api::ClaimRequest) -> Vec<api::ClaimResult> {
    let (status, body) = env.post("/v1/claims", req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value::<api::ClaimResponse>(body)
        .expect("claim answer")
        .results
}

/// One machine of a swarm leases a range's upstream fetch; the others are told who has it
/// until the lease lapses; exact ranges only; the lease holder may renew.
pub async fn claims_lease_upstream_fetches(b: Backend) {
    let env = Env::start(b).await;
    for id in ["a", "b", "c", "d"] {
        env.announce(&full(peer(id, Role::Client, "", 0), vec![]))
            .await;
    }
    let got = claim(&env, &claim_req("a", 60_000, &[(1, 0, 8), (2, 0, 8)])).await;
    assert!(
        got.iter().all(|r| r.granted && r.holder.is_none()),
        "{got:?}"
    );
    assert!(got[0].expires_in_ms > 59_000, "{got:?}");
    let got = claim(
        &env,
        &claim_req("b", 60_000, &[(1, 0, 8), (1, 0, 4), (3, 0, 8)]),
    )
    .await;
    assert!(!got[0].granted, "{got:?}");
    assert_eq!(got[0].holder.as_deref(), Some("a"));
    assert!(got[0].expires_in_ms > 0 && got[0].expires_in_ms <= 60_000);
    assert!(got[1].granted && got[2].granted, "{got:?}");
    // The holder renews; a short lease lapses and goes to the next asker.
    assert!(claim(&env, &claim_req("a", 60_000, &[(1, 0, 8)])).await[0].granted);
    assert!(claim(&env, &claim_req("c", 200, &[(9, 0, 1)])).await[0].granted);
    env.clock.advance(std::time::Duration::from_secs(1));
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let got = claim(&env, &claim_req("d", 1_000_000, &[(9, 0, 1)])).await;
    assert!(got[0].granted, "{got:?}");
    assert!(got[0].expires_in_ms <= api::MAX_CLAIM_TTL_MS, "{got:?}");
    // A lease of a peer that left is free at once.
    assert!(!claim(&env, &claim_req("b", 60_000, &[(1, 0, 8)])).await[0].granted);
    let (status, _) = env
        .call(Method::DELETE, "/v1/peers/a", None::<&()>, Some(TOKEN))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(claim(&env, &claim_req("b", 60_000, &[(1, 0, 8)])).await[0].granted);
    // A group of at most two live leases: the third range waits, a renewal does not.
    let grouped = |peer: &str, items: &[(u64, u32, u32)]| api::ClaimRequest {
        group: Some("org/model".into()),
        max_group_leases: Some(2),
        ..claim_req(peer, 60_000, items)
    };
    let got = claim(&env, &grouped("c", &[(20, 0, 1), (21, 0, 1), (22, 0, 1)])).await;
    assert_eq!(
        got.iter()
            .map(|r| (r.granted, r.group_full))
            .collect::<Vec<_>>(),
        [(true, false), (true, false), (false, true)],
        "{got:?}"
    );
    assert_eq!(got[2].holder, None);
    let got = claim(&env, &grouped("d", &[(22, 0, 1)])).await;
    assert!(got[0].group_full, "{got:?}");
    assert!(claim(&env, &grouped("c", &[(21, 0, 1)])).await[0].granted);
    // c is done with 20: the group has room again, while 20 stays c's for the ttl.
    let done = api::ClaimRequest {
        done: true,
        ..grouped("c", &[(20, 0, 1)])
    };
    let got = claim(&env, &done).await;
    assert!(!got[0].granted, "{got:?}");
    assert!(claim(&env, &grouped("d", &[(22, 0, 1)])).await[0].granted);
    assert_eq!(
        claim(&env, &grouped("d", &[(20, 0, 1)])).await[0]
            .holder
            .as_deref(),
        Some("c")
    );
    // No group is not limited by it.
    assert!(claim(&env, &claim_req("d", 60_000, &[(22, 0, 1)])).await[0].granted);
    let (status, body) = env
        .post("/v1/claims", &claim_req("a", 0, &[(1, 0, 8)]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = env
        .post("/v1/claims", &claim_req("a b", 10, &[(1, 0, 8)]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = env
        .post("/v1/claims", &claim_req("a", 10, &[(1, 4, 4)]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    env.assert_metrics(&[
        "zest_tracker_claims_total{outcome=\"granted\"} 13",
        "zest_tracker_claims_total{outcome=\"held\"} 6",
    ])
    .await;
}

/// Chunk manifests: accepted only when the chunks hash to the file hash in the path; read back
/// as stored; 404 for an unknown file.
pub async fn chunk_manifests_are_checked_against_the_file_hash(b: Backend) {
    let env = Env::start(b).await;
    let data: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 1000 + i as usize]).collect();
    let m = api::ChunkManifest {
        chunks: data.iter().map(|d| xet::hash::chunk_hash(d)).collect(),
        lens: data.iter().map(|d| d.len() as u32).collect(),
    };
    let file = m.file_hash().expect("well formed");
    let path = format!("/v1/chunks/{file}");
    let (status, body) = env.get(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = env.put(&path, &m).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = env.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        serde_json::from_value::<api::ChunkManifest>(body).expect("manifest"),
        m
    );
    // Chunks of another file, lengths that do not pair up, a bad hash: refused.
    let other = format!("/v1/chunks/{}", xorb(5));
    let (status, body) = env.put(&other, &m).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("hash to"), "{body}");
    let short = api::ChunkManifest {
        lens: vec![1000],
        ..m.clone()
    };
    let (status, body) = env.put(&path, &short).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = env.put("/v1/chunks/nothex", &m).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    env.assert_metrics(&["zest_tracker_chunk_manifests_stored_total 1"])
        .await;
}
