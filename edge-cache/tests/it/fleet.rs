//! The edge in a fleet: announcing what it holds to a real zest-tracker, serving a cached range
//! over TLS on the peer port, and the open-connection gauges of `/metrics`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use wire::{Capabilities, Role};
use xet::MerkleHash;
use xorbstore::peer::{FetchOptions, PeerClient, PeerClientConfig};
use xorbstore::Expectation;

use crate::common::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn hash(hex: &str) -> MerkleHash {
    MerkleHash::from_hex(hex).expect("xorb hash")
}

/// The peer addresses a tracker lookup names for chunks `chunks` of `xorb`.
fn lookup(tracker: &TrackerProc, xorb: &str, chunks: (u64, u64)) -> Vec<String> {
    let body = serde_json::json!({
        "peer_id": "it-asker",
        "limit": 8,
        "items": [{"hash": xorb, "range": {"start": chunks.0, "end": chunks.1}}],
    });
    let resp = client()
        .post(format!("{}/v1/lookup", tracker.base))
        .json(&body)
        .send()
        .expect("lookup");
    assert!(resp.status().is_success(), "lookup: {}", resp.status());
    let v: serde_json::Value = resp.json().expect("json");
    v["results"][0]["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .filter_map(|id| id.as_str())
        .map(|id| v["peers"][id]["addr"].as_str().expect("addr").to_string())
        .collect()
}

#[test]
fn edge_announces_what_it_caches_and_a_tracker_lookup_names_it() {
    let origin = Origin::start(|_| {});
    let tracker = TrackerProc::start();
    let edge = Edge::start(
        &origin.base,
        &cache_dir(),
        &["--tracker", &tracker.base, "--peer-id", "edge-it"],
    );
    let ranges = ranges_of(&edge, "a.bin");
    let r = &ranges[0];
    // The edge announces soon after storing (the first announce at start held nothing).
    let me = vec![edge.peer_addr.clone()];
    let named = eventually(60, || lookup(&tracker, &r.xorb, r.chunks) == me);
    assert!(
        named,
        "the tracker never named the edge for {}[{:?}]; got {:?}\n{}",
        r.xorb,
        r.chunks,
        lookup(&tracker, &r.xorb, r.chunks),
        edge.log()
    );
    // Every range it cached is named, and a sub-range too; a range it does not hold is not.
    for r in &ranges {
        assert_eq!(lookup(&tracker, &r.xorb, r.chunks), me);
    }
    if r.chunks.1 - r.chunks.0 > 1 {
        let sub = (r.chunks.0 + 1, r.chunks.1);
        assert_eq!(lookup(&tracker, &r.xorb, sub), me);
    }
    assert!(lookup(&tracker, &"ab".repeat(32), (0, 1)).is_empty());
    assert!(lookup(
        &tracker,
        &r.xorb,
        (r.chunks.1 + 10_000, r.chunks.1 + 10_001)
    )
    .is_empty());
    // The address the tracker hands out serves the range over the wire protocol.
    let want = r.get();
    let addr: SocketAddr = edge.peer_addr.parse().expect("peer addr");
    let got = runtime().block_on(async {
        let c = PeerClient::connect(addr, PeerClientConfig::new("it-client", Role::Client))
            .await
            .expect("connect to the named peer");
        c.fetch_verified(
            &hash(&r.xorb),
            r.chunks.0 as u32..r.chunks.1 as u32,
            Expectation::structural(),
            FetchOptions::default(),
        )
        .await
        .expect("fetch from the named peer")
        .0
    });
    assert_eq!(&got[..], &want[..]);
    assert!(edge.metric("zest_edge_tracker_calls_total{kind=\"announce\",outcome=\"ok\"}") >= 1.0);
}

/// The edge's peer ids in the tracker's `GET /v1/peers`.
fn listed_peers(tracker: &TrackerProc) -> Vec<String> {
    let v: serde_json::Value = client()
        .get(format!("{}/v1/peers", tracker.base))
        .send()
        .and_then(|r| r.json())
        .expect("GET /v1/peers");
    v["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .map(|p| p["id"].as_str().expect("id").to_string())
        .collect()
}

#[test]
fn edge_fails_over_between_tracker_urls_and_deregisters_on_sigterm() {
    let origin = Origin::start(|_| {});
    let tracker = TrackerProc::start();
    // The first replica refuses connections: the edge's calls go on to the second.
    let dead = format!("http://127.0.0.1:{}", zest_testkit::free_port());
    let trackers = format!("{dead},{}", tracker.base);
    let edge = Edge::start(
        &origin.base,
        &cache_dir(),
        &["--tracker", &trackers, "--peer-id", "edge-term"],
    );
    let listed = eventually(30, || {
        listed_peers(&tracker).contains(&"edge-term".to_string())
    });
    assert!(
        listed,
        "the edge never announced through the second URL\n{}",
        edge.log()
    );

    let Some(status) = edge.terminate(20) else {
        panic!(
            "the edge did not exit within 20 s of SIGTERM\n{}",
            edge.log()
        );
    };
    assert!(status.success(), "exit status {status:?}\n{}", edge.log());
    // Gone at once, not after its announce's time to live.
    assert!(
        !listed_peers(&tracker).contains(&"edge-term".to_string()),
        "still listed after a clean shutdown\n{}",
        edge.log()
    );
    assert!(edge.log().contains("deregistered from the tracker"));
}

#[test]
fn peer_port_over_tls_serves_a_cached_range() {
    let origin = Origin::start(|_| {});
    let tls_dir = tempfile::tempdir_in(&fixture().dir).expect("tls dir");
    let (cert, key) = zest_testkit::self_signed_localhost(tls_dir.path());
    let edge = Edge::start(
        &origin.base,
        &cache_dir(),
        &[
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
        ],
    );
    let ranges = ranges_of(&edge, "sub/b.bin");
    let addr: SocketAddr = edge.peer_addr.parse().expect("peer addr");
    let before = origin.xorb_bytes();
    let tls = xorbstore::peer::tls::client_config_from_ca_pem(&cert).expect("client config");
    runtime().block_on(async {
        let c = PeerClient::connect_tls(
            addr,
            "localhost",
            tls.clone(),
            PeerClientConfig::new("it-tls", Role::Client),
        )
        .await
        .unwrap_or_else(|e| panic!("TLS connect: {e}\n{}", edge.log()));
        assert!(c.peer().capabilities.contains(Capabilities::TLS));
        for r in &ranges {
            let (got, _) = c
                .fetch_verified(
                    &hash(&r.xorb),
                    r.chunks.0 as u32..r.chunks.1 as u32,
                    Expectation::structural(),
                    FetchOptions::default(),
                )
                .await
                .expect("fetch over TLS");
            assert_eq!(got.len() as u64, r.bytes.1 - r.bytes.0 + 1);
        }
        // A client that does not trust the certificate (wrong name) is refused.
        let wrong = PeerClient::connect_tls(
            addr,
            "not-localhost",
            tls,
            PeerClientConfig::new("it-tls", Role::Client),
        )
        .await;
        assert!(
            wrong.is_err(),
            "a certificate for another name was accepted"
        );
        // A plain-TCP client gets no Handshake from a TLS port.
        let mut cfg = PeerClientConfig::new("it-plain", Role::Client);
        cfg.handshake_timeout = Duration::from_secs(5);
        assert!(PeerClient::connect(addr, cfg).await.is_err());
    });
    // The bytes match what the HTTP side serves, and came from the cache, not the origin.
    let r = &ranges[0];
    let over_tls = runtime().block_on(async {
        let tls = xorbstore::peer::tls::client_config_from_ca_pem(&cert).expect("client config");
        let c = PeerClient::connect_tls(
            addr,
            "localhost",
            tls,
            PeerClientConfig::new("it-tls", Role::Client),
        )
        .await
        .expect("TLS connect");
        c.fetch(&hash(&r.xorb), r.chunks.0 as u32..r.chunks.1 as u32, None)
            .await
            .expect("fetch")
    });
    assert_eq!(&over_tls[..], &r.get()[..]);
    assert_eq!(
        origin.xorb_bytes(),
        before,
        "TLS fetches went to the origin"
    );
    assert!(edge.metric("zest_edge_bytes_served_total{protocol=\"peer\"}") > 0.0);
}

/// Sends one keep-alive request for `/healthz` and reads its answer, leaving the connection open.
fn open_keep_alive(base: &str) -> TcpStream {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: keep-alive\r\n\r\n"
    )
    .expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"ok\n") {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        assert!(got.len() < 64 << 10);
    }
    s
}

#[test]
fn metrics_count_open_http_and_peer_connections() {
    let origin = Origin::start(|_| {});
    let edge = Edge::start(&origin.base, &cache_dir(), &[]);
    let http = "zest_edge_open_connections{protocol=\"http\"}";
    let peer = "zest_edge_open_connections{protocol=\"peer\"}";
    let idle = edge.metric(http);
    assert!(idle >= 1.0, "the scrape's own connection is open: {idle}");
    let conns: Vec<TcpStream> = (0..3).map(|_| open_keep_alive(&edge.base)).collect();
    let open = edge.metric(http);
    assert!(
        open >= idle + 3.0,
        "3 more connections open, gauge {idle} -> {open}"
    );
    assert!(edge.metric("zest_edge_connections_total{protocol=\"http\"}") >= 4.0);
    drop(conns);
    assert!(
        eventually(30, || edge.metric(http) <= open - 3.0),
        "the gauge did not fall after closing: {}",
        edge.metric(http)
    );

    assert_eq!(edge.metric(peer), 0.0);
    let addr: SocketAddr = edge.peer_addr.parse().expect("peer addr");
    let rt = runtime();
    let c = Arc::new(
        rt.block_on(PeerClient::connect(
            addr,
            PeerClientConfig::new("it-gauge", Role::Client),
        ))
        .expect("connect"),
    );
    assert!(eventually(30, || edge.metric(peer) == 1.0));
    drop(c);
    drop(rt);
    assert!(
        eventually(30, || edge.metric(peer) == 0.0),
        "peer gauge stayed at {}",
        edge.metric(peer)
    );
}
