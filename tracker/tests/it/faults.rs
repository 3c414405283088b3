//! Failure tests of the PostgreSQL + Redis store: Redis killed and restarted under load.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use zest_tracker::api::Role;

use crate::harness::*;

/// Lookups while Redis dies get 503 quickly (never hang), and work again by themselves once
/// Redis is back and peers re-announce. Manifests (PostgreSQL) keep working meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_while_looking_up() {
    let mut env = Env::start(Backend::PgRedis).await;
    let e = peer("edge-1", Role::Edge, "", 0);
    env.announce(&full(e.clone(), vec![holding(1, &[(0, 10)])]))
        .await;
    assert_eq!(env.holders(1, 0, 10).await, ["edge-1"]);

    // A client looking up continuously, recording every status and the slowest answer.
    let stop = Arc::new(AtomicBool::new(false));
    let slowest_ms = Arc::new(AtomicU64::new(0));
    let (ok, unavailable, other) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let looker = {
        let (http, url) = (env.http.clone(), env.url("/v1/lookup"));
        let (stop, slowest_ms, ok, unavailable, other) = (
            stop.clone(),
            slowest_ms.clone(),
            ok.clone(),
            unavailable.clone(),
            other.clone(),
        );
        tokio::spawn(async move {
            let body = one_lookup(1, 0, 10);
            for _ in 0..100_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let t = Instant::now();
                let status = http.post(&url).json(&body).send().await.map(|r| r.status());
                slowest_ms.fetch_max(t.elapsed().as_millis() as u64, Ordering::SeqCst);
                match status {
                    Ok(StatusCode::OK) => ok.fetch_add(1, Ordering::SeqCst),
                    Ok(StatusCode::SERVICE_UNAVAILABLE) => {
                        unavailable.fetch_add(1, Ordering::SeqCst)
                    }
                    _ => other.fetch_add(1, Ordering::SeqCst),
                };
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(ok.load(Ordering::SeqCst) > 0);

    let port = env.redis.as_ref().expect("redis").port;
    env.redis.as_mut().expect("redis").kill();
    // Lookups now fail fast with 503 and a JSON error.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let t = Instant::now();
        let (status, body) = env
            .call(
                Method::POST,
                "/v1/lookup",
                Some(&one_lookup(1, 0, 10)),
                None,
            )
            .await;
        let took = t.elapsed();
        assert!(
            took < Duration::from_millis(1500),
            "a lookup with Redis down took {took:?}"
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(
                body["error"].as_str().is_some_and(|e| e.contains("redis")),
                "{body}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lookups kept answering {status} with Redis dead"
        );
    }
    let (status, _) = env.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // PostgreSQL-backed endpoints are not affected.
    let (status, _) = env.get("/v1/manifests/org/model/main").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    tokio::time::sleep(Duration::from_millis(700)).await;

    // Redis comes back empty on the same port; the tracker reconnects by itself.
    env.redis = Some(RedisProc::start_on(port));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = env
            .call(
                Method::POST,
                "/v1/announce",
                Some(&full(e.clone(), vec![holding(1, &[(0, 10)])])),
                Some(TOKEN),
            )
            .await;
        if status == StatusCode::OK {
            assert_eq!(
                body["resync"], true,
                "the restarted Redis lost the peer: {body}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tracker did not recover after Redis came back: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(env.holders(1, 0, 10).await, ["edge-1"]);
    let (status, _) = env.get("/readyz").await;
    assert_eq!(status, StatusCode::OK);
    let ok_before = ok.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    looker.await.expect("looker");
    assert!(
        ok.load(Ordering::SeqCst) > ok_before,
        "the looping client succeeds again"
    );
    assert!(
        unavailable.load(Ordering::SeqCst) > 0,
        "the looping client saw 503s"
    );
    assert_eq!(
        other.load(Ordering::SeqCst),
        0,
        "only 200 or 503, never another error or a hang"
    );
    let slowest = slowest_ms.load(Ordering::SeqCst);
    assert!(slowest < 1500, "slowest lookup took {slowest} ms");
}

/// Two trackers on one PostgreSQL + Redis: what one learns, the other answers; a record change
/// reaches the other's peer cache within its refresh period; a deletion through one is seen by
/// the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_trackers_share_state_and_peer_cache_follows() {
    let env = Env::start(Backend::PgRedis).await;
    let other = Server::start(env.config.clone(), env.clock.clone()).await;
    let lookup_other = |i: u64| {
        let (http, url) = (env.http.clone(), format!("{}/v1/lookup", other.base));
        async move {
            let r: zest_tracker::api::LookupResponse = http
                .post(url)
                .json(&one_lookup(i, 0, 4))
                .send()
                .await
                .expect("lookup")
                .json()
                .await
                .expect("json");
            r
        }
    };
    env.announce(&full(
        peer("edge-1", Role::Edge, "", 1),
        vec![holding(1, &[(0, 8)])],
    ))
    .await;
    let r = lookup_other(1).await;
    assert_eq!(
        r.results[0].peers,
        ["edge-1"],
        "announced through one tracker, found through the other"
    );
    assert_eq!(r.peers["edge-1"].load, 1);
    // A changed record reaches the other tracker's cache.
    env.announce(&full(
        peer("edge-1", Role::Edge, "", 9),
        vec![holding(1, &[(0, 8)])],
    ))
    .await;
    let deadline = Instant::now() + Duration::from_secs(3);
    while lookup_other(1).await.peers.get("edge-1").map(|p| p.load) != Some(9) {
        assert!(
            Instant::now() < deadline,
            "the other tracker never saw the new load"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Deleted through one tracker: gone from the other's answers within a refresh period.
    let (status, _) = env
        .call(Method::DELETE, "/v1/peers/edge-1", None::<&()>, Some(TOKEN))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        env.holders(1, 0, 4).await.is_empty(),
        "the deleting tracker forgets at once"
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while !lookup_other(1).await.results[0].peers.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the other tracker kept serving a deleted peer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The failover client (as edges and `zest` use it) given both replicas: when the one it talks
/// to stops, its calls go on to the other, which answers from the same stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_given_two_replicas_fails_over_when_one_stops() {
    use zest_tracker_api::client::TrackerClient;
    let mut env = Env::start(Backend::PgRedis).await;
    let other = Server::start(env.config.clone(), env.clock.clone()).await;
    let c = TrackerClient::new(
        &format!("{},{}", env.server.base, other.base),
        Some(TOKEN.into()),
    )
    .expect("client");
    c.announce(&full(
        peer("edge-1", Role::Edge, "", 0),
        vec![holding(1, &[(0, 8)])],
    ))
    .await
    .expect("announce through the first replica");
    assert_eq!(c.base(), env.server.base);

    env.server.stop().await;
    let r = c
        .lookup(&one_lookup(1, 0, 4))
        .await
        .expect("lookup after the stop");
    assert_eq!(r.results[0].peers, ["edge-1"], "the other replica knows it");
    assert_eq!(c.base(), other.base, "calls now start at the live replica");
    c.announce(&full(
        peer("edge-2", Role::Edge, "", 0),
        vec![holding(2, &[(0, 8)])],
    ))
    .await
    .expect("announce after the stop");
    c.deregister("edge-1").await.expect("deregister");
    let r = c.lookup(&one_lookup(1, 0, 4)).await.expect("lookup");
    assert!(
        r.results[0].peers.is_empty(),
        "deregistered: {:?}",
        r.results
    );
    assert_eq!(
        c.lookup(&one_lookup(2, 0, 4))
            .await
            .expect("lookup")
            .results[0]
            .peers,
        ["edge-2"]
    );
}

/// Sends raw commands to the test's Redis.
async fn redis_conn(env: &Env) -> redis::aio::MultiplexedConnection {
    let url = env.redis.as_ref().expect("redis").url();
    redis::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection")
}

/// A Redis that still holds the first key layout (`zt:` prefix, ranges as text) and values
/// that are not valid records under the current layout: the tracker neither crashes nor
/// answers with an error; it ignores the old keys, skips corrupt records, and an announce
/// overwrites them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_layout_and_corrupt_records_are_ignored() {
    let env = Env::start(Backend::PgRedis).await;
    let mut r = redis_conn(&env).await;
    let x1 = xorb(1).to_hex();
    let far_future = 4_000_000_000_000u64;
    // The old layout, as a tracker of the previous version left it.
    let _: () = redis::pipe()
        .cmd("HSET")
        .arg(format!("zt:x:{x1}"))
        .arg("old-peer")
        .arg("0-64")
        .ignore()
        .cmd("ZADD")
        .arg("zt:live")
        .arg(far_future)
        .arg("old-peer")
        .ignore()
        .cmd("SET")
        .arg("zt:p:old-peer")
        .arg(r#"{"id":"old-peer","addr":"127.0.0.1:1","role":"Edge","zone":"","free_bytes":0,"load":0}"#)
        .ignore()
        .cmd("SADD")
        .arg("zt:h:old-peer")
        .arg(&x1)
        .ignore()
        .query_async(&mut r)
        .await
        .expect("old layout written");
    // Under the current prefix: text, truncated and wrong-version values beside a live peer.
    let e = peer("edge-1", Role::Edge, "", 0);
    env.announce(&full(e.clone(), vec![holding(1, &[(0, 10)])]))
        .await;
    for (field, value) in [
        ("text-peer", &b"0-64"[..]),
        ("cut-peer", &b"\x01\x08cut-peer\x00\x01\x00\x00"[..]),
        (
            "v9-peer",
            &b"\x09\x07v9-peer\x00\x01\x00\x00\x00\x00\x00\x00\x00\x40"[..],
        ),
    ] {
        let _: () = redis::cmd("HSET")
            .arg(format!("zt2:x:{x1}"))
            .arg(field)
            .arg(value)
            .query_async(&mut r)
            .await
            .expect("corrupt record written");
    }
    assert_eq!(
        env.holders(1, 0, 10).await,
        ["edge-1"],
        "old keys ignored, corrupt records skipped"
    );
    // A delta over a corrupt record of the announcing peer itself starts from nothing.
    let _: () = redis::cmd("HSET")
        .arg(format!("zt2:x:{x1}"))
        .arg("edge-1")
        .arg("garbage")
        .query_async(&mut r)
        .await
        .expect("corrupt own record written");
    assert!(env.holders(1, 0, 10).await.is_empty());
    let a = env
        .announce(&delta(e.clone(), vec![holding(1, &[(20, 30)])], vec![]))
        .await;
    assert_eq!(a.held_xorbs, 1);
    assert_eq!(env.holders(1, 20, 30).await, ["edge-1"]);
    assert!(env.holders(1, 0, 10).await.is_empty());
    // A full announce overwrites it; stats and the peer list still work.
    env.announce(&full(e, vec![holding(1, &[(0, 64)])])).await;
    assert_eq!(env.holders(1, 0, 64).await, ["edge-1"]);
    let ids: Vec<String> = env.peers().await.peers.into_iter().map(|p| p.id).collect();
    assert_eq!(ids, ["edge-1"], "old-layout peers are not listed");
    assert_eq!(env.stats().await.peers, 1);
    let (status, _) = env.get("/readyz").await;
    assert_eq!(status, StatusCode::OK);
}
