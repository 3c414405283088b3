//! The peer server and client on loopback: sub-range round trips (TCP and TLS, pipelined),
//! NotFound, malicious clients, timeouts, the upstream hook's single flight, shutdown, peer
//! exchange.

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use wire::{
    Capabilities, ChunkRange, ErrorCode, Frame, Handshake, Limits, Request, Role, Upstream,
};
use xet::MerkleHash;
use xorbstore::peer::{
    tls, FetchOptions, PeerBook, PeerClient, PeerClientConfig, PeerError, PeerServer,
    PeerServerConfig, UpstreamFetcher,
};
use xorbstore::{Expectation, Store, StoreConfig};

use crate::common::{make_xorb, TestXorb};

struct Running {
    addr: SocketAddr,
    server: PeerServer,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
    store: Store,
}

impl Running {
    async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("server stops in time")
            .unwrap()
            .unwrap();
    }
}

async fn start(config: PeerServerConfig, fill: impl FnOnce(&Store)) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_on(listener, config, fill).await
}

/// A listener whose accepted sockets inherit a send buffer as small as the kernel allows, so
/// that the server's writes are cut short and wait for the socket again and again.
fn tiny_send_buffer_listener() -> TcpListener {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_send_buffer_size(4096).unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    sock.listen(64).unwrap()
}

async fn start_on(
    listener: TcpListener,
    config: PeerServerConfig,
    fill: impl FnOnce(&Store),
) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::new(1 << 30)).unwrap();
    fill(&store);
    let addr = listener.local_addr().unwrap();
    let server = PeerServer::new(store.clone(), config);
    let (stop, stop_rx) = oneshot::channel::<()>();
    let s = server.clone();
    let task = tokio::spawn(async move {
        s.serve(listener, async {
            let _ = stop_rx.await;
        })
        .await
    });
    Running {
        addr,
        server,
        stop: Some(stop),
        task,
        _dir: dir,
        store,
    }
}

/// A server (`config`) holding all of `x`, on `listener`.
async fn serving_on(listener: TcpListener, config: PeerServerConfig, x: &TestXorb) -> Running {
    start_on(listener, config, |s| {
        s.insert(
            &x.hash(),
            0..x.n(),
            &x.xorb.data,
            &Expectation::whole_xorb(),
        )
        .unwrap();
    })
    .await
}

/// A server (`config`) holding all of `x`, on a loopback port.
async fn serving(config: PeerServerConfig, x: &TestXorb) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    serving_on(listener, config, x).await
}

impl Running {
    /// A plain-TCP client of this server.
    async fn client(&self) -> PeerClient {
        PeerClient::connect(self.addr, client_config())
            .await
            .unwrap()
    }
}

fn client_config() -> PeerClientConfig {
    PeerClientConfig::new("test-client", Role::Client)
}

fn small_pieces(mut c: PeerServerConfig) -> PeerServerConfig {
    c.piece_len = 1000; // many Data frames per response
    c
}

#[tokio::test]
async fn round_trip_of_sub_ranges_pipelined() {
    let x = make_xorb(1, 16, 12_000);
    let y = make_xorb(2, 8, 12_000);
    let (xh, yh) = (x.hash(), y.hash());
    let cfg = small_pieces(PeerServerConfig::new("edge-1", Role::Edge));
    let srv = start(cfg, |s| {
        s.insert(&xh, 0..16, &x.xorb.data, &Expectation::whole_xorb())
            .unwrap();
        s.insert(&yh, 0..3, y.bytes(0..3), &Expectation::structural())
            .unwrap();
        s.insert(&yh, 3..8, y.bytes(3..8), &Expectation::structural())
            .unwrap();
    })
    .await;
    let client = Arc::new(srv.client().await);
    assert_eq!(client.peer().peer_id, "edge-1");
    assert!(client.peer().capabilities.contains(Capabilities::SERVE));
    let ranges: Vec<(u32, u32)> = vec![
        (0, 16),
        (0, 1),
        (3, 9),
        (15, 16),
        (7, 8),
        (2, 14),
        (5, 6),
        (0, 8),
        (8, 16),
        (1, 2),
    ];
    let x = Arc::new(x);
    let futs = ranges.iter().map(|&(a, b)| {
        let c = client.clone();
        let x = x.clone();
        async move {
            let got = c.fetch(&x.hash(), a..b, None).await.unwrap();
            assert_eq!(&got[..], x.bytes(a..b), "range {a}..{b}");
        }
    });
    futures_join_all(futs).await;
    // Across two stored ranges, verified against the expected hashes.
    let (bytes, meta) = client
        .fetch_verified(
            &yh,
            1..6,
            Expectation::with_chunk_hashes(y.hashes(1..6)),
            FetchOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(&bytes[..], y.bytes(1..6));
    assert_eq!(meta.chunk_hashes, y.hashes(1..6));
    let st = srv.server.stats();
    assert_eq!(st.requests, 11);
    assert_eq!(st.hits, 11);
    assert!(st.bytes_served > 0);
    drop(client);
    srv.shutdown().await;
}

/// A tiny join_all (avoids a dependency on `futures`).
async fn futures_join_all<F: Future<Output = ()> + Send + 'static>(
    futs: impl IntoIterator<Item = F>,
) {
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    for h in handles {
        h.await.unwrap();
    }
}

#[tokio::test]
async fn not_found_and_wrong_hashes_keep_the_connection_usable() {
    let x = make_xorb(3, 6, 8_000);
    let xh = x.hash();
    let srv = serving(PeerServerConfig::new("seed-1", Role::Seed), &x).await;
    let client = srv.client().await;
    let missing = MerkleHash::from_bytes([7; 32]);
    assert!(matches!(
        client.fetch(&missing, 0..1, None).await,
        Err(PeerError::NotFound)
    ));
    assert!(matches!(
        client.fetch(&xh, 4..9, None).await,
        Err(PeerError::NotFound)
    ));
    // An upstream hint to a server without an upstream hook is just a miss.
    let hint = Upstream {
        url: "http://127.0.0.1:1/x".into(),
        byte_start: 0,
        byte_end: 10,
    };
    assert!(matches!(
        client.fetch(&missing, 0..1, Some(hint)).await,
        Err(PeerError::NotFound)
    ));
    // Our proven bytes disagree with the requester's hashes: refused, not served.
    let mut wrong = x.hashes(1..3);
    wrong[0] = MerkleHash::from_bytes([1; 32]);
    let opts = FetchOptions {
        chunk_hashes: Some(wrong),
        ..FetchOptions::default()
    };
    match client.fetch_with(&xh, 1..3, opts).await {
        Err(PeerError::Remote { code, .. }) => assert_eq!(code, ErrorCode::VERIFICATION_FAILED),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        &client.fetch(&xh, 1..3, None).await.unwrap()[..],
        x.bytes(1..3)
    );
    assert_eq!(srv.server.stats().not_found, 3);
    srv.shutdown().await;
}

#[tokio::test]
async fn tls_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = zest_testkit::self_signed_localhost(dir.path());
    let server_tls = tls::server_config_from_pem(&cert, &key).unwrap();
    let client_tls = tls::client_config_from_ca_pem(&cert).unwrap();
    let x = make_xorb(4, 10, 30_000);
    let xh = x.hash();
    let mut cfg = PeerServerConfig::new("edge-tls", Role::Edge);
    cfg.tls = Some(server_tls);
    let srv = serving(cfg, &x).await;
    let client =
        PeerClient::connect_tls(srv.addr, "localhost", client_tls.clone(), client_config())
            .await
            .unwrap();
    assert!(client.peer().capabilities.contains(Capabilities::TLS));
    assert_eq!(
        &client.fetch(&xh, 2..9, None).await.unwrap()[..],
        x.bytes(2..9)
    );
    // A plain-TCP client against the TLS port gets no frames.
    assert!(PeerClient::connect(srv.addr, {
        let mut c = client_config();
        c.handshake_timeout = Duration::from_secs(2);
        c
    })
    .await
    .is_err());
    // A wrong server name is refused.
    assert!(matches!(
        PeerClient::connect_tls(srv.addr, "not-localhost", client_tls, client_config()).await,
        Err(PeerError::Tls(_))
    ));
    drop(client);
    srv.shutdown().await;
}

/// Reads everything the server sends until it closes (bounded by a timeout), as frames.
async fn frames_until_close(sock: &mut TcpStream) -> Vec<Frame> {
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "server did not close the connection");
    let mut frames = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        match wire::decode(&buf[pos..], wire::ABSOLUTE_MAX_FRAME_LEN).unwrap() {
            wire::Decoded::Frame { frame, consumed } => {
                frames.push(frame);
                pos += consumed;
            }
            wire::Decoded::Incomplete { .. } => panic!("truncated frame from the server"),
        }
    }
    frames
}

fn client_handshake() -> Vec<u8> {
    Frame::Handshake(Handshake::new(
        "evil",
        Role::Client,
        Capabilities::NONE,
        &Limits::default(),
    ))
    .to_vec()
    .unwrap()
}

fn request(id: u32, xorb: MerkleHash, r: Range<u32>) -> Vec<u8> {
    Frame::Request(Request {
        request_id: id,
        xorb,
        chunks: ChunkRange::new(r.start, r.end),
        upstream: None,
        chunk_hashes: None,
    })
    .to_vec()
    .unwrap()
}

fn last_error(frames: &[Frame]) -> (u32, ErrorCode) {
    match frames.last() {
        Some(Frame::Error(e)) => (e.request_id, e.code),
        other => panic!("expected a closing Error frame, got {other:?}"),
    }
}

#[tokio::test]
async fn malicious_clients_get_an_error_frame_and_a_closed_connection() {
    let x = make_xorb(5, 4, 8_000);
    let xh = x.hash();
    let mut cfg = PeerServerConfig::new("edge-1", Role::Edge);
    cfg.handshake_timeout = Duration::from_millis(300);
    let srv = serving(cfg, &x).await;

    let mut oversized = 0xFFFF_FFF0u32.to_le_bytes().to_vec();
    oversized.extend_from_slice(&[1, 3]);
    let mut bad_version = 10u32.to_le_bytes().to_vec();
    bad_version.extend_from_slice(&[9, 3, 0, 0, 0, 0, 0, 0, 0, 0]);
    let mut unknown_type = 2u32.to_le_bytes().to_vec();
    unknown_type.extend_from_slice(&[1, 0x7f]);
    let mut truncated_fields = 3u32.to_le_bytes().to_vec();
    truncated_fields.extend_from_slice(&[1, 3, 0]); // a Request with one byte of fields
    let data_out_of_order = Frame::Data(wire::Data {
        request_id: 5,
        offset: 0,
        last: true,
        payload: Bytes::from_static(b"xx"),
    })
    .to_vec()
    .unwrap();
    let cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        (
            "oversized frame",
            [client_handshake(), oversized].concat(),
            ErrorCode::FRAME_TOO_LARGE,
        ),
        (
            "oversized before handshake",
            0x7FFF_FFFFu32.to_le_bytes().to_vec(),
            ErrorCode::FRAME_TOO_LARGE,
        ),
        (
            "bad version",
            [client_handshake(), bad_version].concat(),
            ErrorCode::UNSUPPORTED_VERSION,
        ),
        (
            "unknown type",
            [client_handshake(), unknown_type].concat(),
            ErrorCode::MALFORMED_FRAME,
        ),
        (
            "truncated fields",
            [client_handshake(), truncated_fields].concat(),
            ErrorCode::MALFORMED_FRAME,
        ),
        (
            "request before handshake",
            request(1, xh, 0..1),
            ErrorCode::PROTOCOL,
        ),
        (
            "data from a client",
            [client_handshake(), data_out_of_order].concat(),
            ErrorCode::PROTOCOL,
        ),
        (
            "second handshake",
            [client_handshake(), client_handshake()].concat(),
            ErrorCode::PROTOCOL,
        ),
        (
            "empty chunk range",
            [client_handshake(), {
                let mut r = request(1, xh, 0..1);
                let n = r.len();
                // end := start (the last 5 bytes are end u32 + flags)
                r[n - 5..n - 1].copy_from_slice(&0u32.to_le_bytes());
                r
            }]
            .concat(),
            ErrorCode::MALFORMED_FRAME,
        ),
        ("garbage", vec![0xAB; 64], ErrorCode::FRAME_TOO_LARGE),
    ];
    for (name, bytes, code) in cases {
        let mut sock = TcpStream::connect(srv.addr).await.unwrap();
        sock.write_all(&bytes).await.unwrap();
        let frames = frames_until_close(&mut sock).await;
        assert!(
            matches!(frames.first(), Some(Frame::Handshake(_))),
            "{name}: {frames:?}"
        );
        assert_eq!(last_error(&frames), (0, code), "{name}");
    }
    // Silence: the handshake timeout closes it.
    let mut sock = TcpStream::connect(srv.addr).await.unwrap();
    let frames = frames_until_close(&mut sock).await;
    assert_eq!(last_error(&frames), (0, ErrorCode::TIMEOUT));
    // A frame cut off mid-way, then EOF: closed without a crash.
    let mut sock = TcpStream::connect(srv.addr).await.unwrap();
    let hs = client_handshake();
    sock.write_all(&hs[..hs.len() - 3]).await.unwrap();
    sock.shutdown().await.unwrap();
    let frames = frames_until_close(&mut sock).await;
    assert!(matches!(frames.first(), Some(Frame::Handshake(_))));

    // The server is still up and serving.
    let client = srv.client().await;
    assert_eq!(
        &client.fetch(&xh, 1..3, None).await.unwrap()[..],
        x.bytes(1..3)
    );
    assert!(srv.server.stats().protocol_errors >= 10);
    drop(client);
    srv.shutdown().await;
}

#[tokio::test]
async fn too_many_or_duplicate_requests_in_flight_are_refused() {
    let x = make_xorb(6, 4, 8_000);
    let xh = x.hash();
    let mut cfg = PeerServerConfig::new("edge-1", Role::Edge);
    cfg.limits.max_in_flight = 2;
    // An upstream that never answers keeps requests in flight.
    cfg.upstream = Some(Arc::new(Stalled));
    let srv = start(cfg, |_| {}).await;
    let mut sock = TcpStream::connect(srv.addr).await.unwrap();
    let hint = Upstream {
        url: "http://upstream/x".into(),
        byte_start: 0,
        byte_end: 99,
    };
    let req = |id| {
        Frame::Request(Request {
            request_id: id,
            xorb: xh,
            chunks: ChunkRange::new(0, 1),
            upstream: Some(hint.clone()),
            chunk_hashes: None,
        })
        .to_vec()
        .unwrap()
    };
    sock.write_all(&[client_handshake(), req(1), req(2), req(3)].concat())
        .await
        .unwrap();
    let frames = frames_until_close(&mut sock).await;
    assert_eq!(last_error(&frames), (0, ErrorCode::TOO_MANY_REQUESTS));
    // Reusing an id still in flight.
    let mut sock = TcpStream::connect(srv.addr).await.unwrap();
    sock.write_all(&[client_handshake(), req(1), req(1)].concat())
        .await
        .unwrap();
    let frames = frames_until_close(&mut sock).await;
    assert_eq!(last_error(&frames), (0, ErrorCode::PROTOCOL));
    srv.shutdown().await;
}

struct Stalled;

impl UpstreamFetcher for Stalled {
    fn fetch<'a>(
        &'a self,
        _xorb: &'a MerkleHash,
        _chunks: Range<u32>,
        _upstream: &'a Upstream,
    ) -> Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send + 'a>> {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Err("never".to_string())
        })
    }
}

/// An upstream that serves one xorb's bytes after a delay, counting calls, optionally corrupt.
struct FakeUpstream {
    xorb: Arc<TestXorb>,
    calls: AtomicUsize,
    corrupt: bool,
}

impl UpstreamFetcher for FakeUpstream {
    fn fetch<'a>(
        &'a self,
        xorb: &'a MerkleHash,
        chunks: Range<u32>,
        upstream: &'a Upstream,
    ) -> Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send + 'a>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            assert_eq!(*xorb, self.xorb.hash());
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut b = self.xorb.bytes(chunks).to_vec();
            assert_eq!(b.len() as u64, upstream.byte_end - upstream.byte_start + 1);
            if self.corrupt {
                let n = b.len();
                b[n - 50] ^= 0x55;
            }
            Ok(Bytes::from(b))
        })
    }
}

impl FakeUpstream {
    /// An edge's config whose upstream hook serves `x` (corrupted when `corrupt`), and the hook.
    fn edge(x: &Arc<TestXorb>, corrupt: bool) -> (PeerServerConfig, Arc<FakeUpstream>) {
        let up = Arc::new(FakeUpstream {
            xorb: x.clone(),
            calls: AtomicUsize::new(0),
            corrupt,
        });
        let mut cfg = PeerServerConfig::new("edge-1", Role::Edge);
        cfg.upstream = Some(up.clone());
        (cfg, up)
    }
}

/// Options for fetching chunks `r` of `x` with their upstream hint and expected hashes.
fn hinted(x: &TestXorb, r: Range<u32>) -> FetchOptions {
    FetchOptions {
        upstream: Some(hint_for(x, r.clone())),
        chunk_hashes: Some(x.hashes(r)),
        ..FetchOptions::default()
    }
}

fn hint_for(x: &TestXorb, r: Range<u32>) -> Upstream {
    let (s, e) = x.xorb.chunk_byte_range(r).unwrap();
    Upstream {
        url: "http://upstream.invalid/xorb".into(),
        byte_start: s,
        byte_end: e - 1,
    }
}

#[tokio::test]
async fn upstream_hook_is_called_once_for_ten_concurrent_misses() {
    let x = Arc::new(make_xorb(7, 12, 10_000));
    let (cfg, up) = FakeUpstream::edge(&x, false);
    let srv = start(cfg, |_| {}).await;
    let r = 2..9;
    // Five pipelined on one connection, five on their own connections.
    let shared = Arc::new(srv.client().await);
    assert!(shared
        .peer()
        .capabilities
        .contains(Capabilities::UPSTREAM_FETCH));
    let mut handles = Vec::new();
    for i in 0..10 {
        let x = x.clone();
        let shared = shared.clone();
        let addr = srv.addr;
        let r = r.clone();
        handles.push(tokio::spawn(async move {
            let opts = hinted(&x, r.clone());
            let got = if i % 2 == 0 {
                shared.fetch_with(&x.hash(), r.clone(), opts).await
            } else {
                let own = PeerClient::connect(addr, client_config()).await.unwrap();
                own.fetch_with(&x.hash(), r.clone(), opts).await
            };
            assert_eq!(&got.unwrap()[..], x.bytes(r));
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(
        up.calls.load(Ordering::SeqCst),
        1,
        "one upstream fetch for ten misses"
    );
    assert!(
        srv.store.contains(&x.hash(), r.clone()),
        "the fetched range is kept"
    );
    let sf = srv.server.single_flight().stats();
    assert_eq!(sf.fetches, 1);
    assert_eq!(sf.coalesced, 9);
    // A later request is a plain hit.
    assert_eq!(
        &shared.fetch(&x.hash(), 3..5, None).await.unwrap()[..],
        x.bytes(3..5)
    );
    assert_eq!(up.calls.load(Ordering::SeqCst), 1);
    srv.shutdown().await;
}

#[tokio::test]
async fn corrupt_upstream_bytes_are_neither_served_nor_kept() {
    let x = Arc::new(make_xorb(8, 6, 10_000));
    let (cfg, _up) = FakeUpstream::edge(&x, true);
    let srv = start(cfg, |_| {}).await;
    let client = srv.client().await;
    let opts = hinted(&x, 0..6);
    match client.fetch_with(&x.hash(), 0..6, opts).await {
        Err(PeerError::Remote { code, .. }) => assert_eq!(code, ErrorCode::VERIFICATION_FAILED),
        other => panic!("{other:?}"),
    }
    assert!(srv.store.list().is_empty());
    assert!(!client.is_closed());
    srv.shutdown().await;
}

#[tokio::test]
async fn request_timeout_cancels_and_the_connection_stays_usable() {
    let x = make_xorb(9, 4, 8_000);
    let xh = x.hash();
    let mut cfg = PeerServerConfig::new("edge-1", Role::Edge);
    cfg.upstream = Some(Arc::new(Stalled));
    let srv = serving(cfg, &x).await;
    let client = srv.client().await;
    let opts = FetchOptions {
        upstream: Some(Upstream {
            url: "http://u/x".into(),
            byte_start: 0,
            byte_end: 9,
        }),
        timeout: Some(Duration::from_millis(200)),
        ..FetchOptions::default()
    };
    let missing = MerkleHash::from_bytes([4; 32]);
    assert!(matches!(
        client.fetch_with(&missing, 0..1, opts).await,
        Err(PeerError::Deadline(xorbstore::peer::Deadline::Whole(_)))
    ));
    assert_eq!(
        &client.fetch(&xh, 0..4, None).await.unwrap()[..],
        x.bytes(0..4)
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_connections_and_serve_returns() {
    let srv = start(PeerServerConfig::new("edge-1", Role::Edge), |_| {}).await;
    let client = srv.client().await;
    srv.shutdown().await;
    // The server told us and closed; the client notices.
    for _ in 0..100 {
        if client.is_closed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(client.is_closed());
    assert!(client
        .fetch(&MerkleHash::from_bytes([1; 32]), 0..1, None)
        .await
        .is_err());
}

/// The edge holds a structurally valid but wrong range (another xorb's chunks under this name):
/// a request with the expected hashes and an upstream URL refetches it and gets the right bytes.
#[tokio::test]
async fn wrong_structural_range_is_refetched_when_hashes_disagree() {
    let x = Arc::new(make_xorb(10, 6, 10_000));
    let impostor = make_xorb(11, 6, 10_000);
    let (cfg, up) = FakeUpstream::edge(&x, false);
    let xh = x.hash();
    let srv = start(cfg, |s| {
        s.insert(&xh, 0..6, &impostor.xorb.data, &Expectation::structural())
            .unwrap();
    })
    .await;
    let client = srv.client().await;
    let opts = hinted(&x, 1..4);
    assert_eq!(
        &client.fetch_with(&xh, 1..4, opts).await.unwrap()[..],
        x.bytes(1..4)
    );
    assert_eq!(up.calls.load(Ordering::SeqCst), 1);
    assert!(
        !srv.store.contains(&xh, 0..6),
        "the wrong range was dropped"
    );
    srv.shutdown().await;
}

/// Multi-MiB ranges in 1 MiB pieces over plain TCP (the sendfile path): whole stored ranges,
/// sub-ranges starting and ending mid-file, and a request covered by two stored files, byte for
/// byte; through a server socket with a tiny send buffer and a client that reads slowly, so
/// every piece takes many partial writes.
#[tokio::test]
async fn large_ranges_are_byte_exact_through_partial_writes() {
    let x = make_xorb(21, 64, 100_000);
    let xh = x.hash();
    assert!(
        x.bytes(0..64).len() > 2 << 20,
        "several pieces per response"
    );
    let srv = start_on(
        tiny_send_buffer_listener(),
        PeerServerConfig::new("edge-1", Role::Edge),
        |s| {
            s.insert(&xh, 0..30, x.bytes(0..30), &Expectation::structural())
                .unwrap();
            s.insert(&xh, 30..64, x.bytes(30..64), &Expectation::structural())
                .unwrap();
        },
    )
    .await;
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = sock.connect(srv.addr).await.unwrap();
    let slow = SlowReader {
        inner: stream,
        reads: 0,
    };
    let client = PeerClient::over(slow, client_config()).await.unwrap();
    for (a, b) in [
        (0, 30),
        (30, 64),
        (0, 64),
        (1, 29),
        (7, 61),
        (29, 31),
        (63, 64),
    ] {
        let got = client.fetch(&xh, a..b, None).await.unwrap();
        assert!(got[..] == *x.bytes(a..b), "range {a}..{b} differs");
    }
    let st = srv.server.stats();
    assert_eq!(st.hits, 7);
    assert!(!client.is_closed());
    drop(client);
    srv.shutdown().await;
}

/// A stream that yields (returns Pending once, waking itself) before every 64th read, so the
/// server's socket buffers fill up.
struct SlowReader {
    inner: TcpStream,
    reads: usize,
}

impl tokio::io::AsyncRead for SlowReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.reads += 1;
        if self.reads % 64 == 0 {
            let waker = cx.waker().clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                waker.wake();
            });
            return std::task::Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for SlowReader {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The TLS path (payload written from the memory map) with many pieces, byte for byte.
#[tokio::test]
async fn tls_large_ranges_in_many_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = zest_testkit::self_signed_localhost(dir.path());
    let server_tls = tls::server_config_from_pem(&cert, &key).unwrap();
    let client_tls = tls::client_config_from_ca_pem(&cert).unwrap();
    let x = make_xorb(22, 24, 100_000);
    let xh = x.hash();
    let mut cfg = PeerServerConfig::new("edge-tls", Role::Edge);
    cfg.tls = Some(server_tls);
    cfg.piece_len = 100_000;
    let srv = serving_on(tiny_send_buffer_listener(), cfg, &x).await;
    let client = PeerClient::connect_tls(srv.addr, "localhost", client_tls, client_config())
        .await
        .unwrap();
    for (a, b) in [(0, 24), (3, 17), (23, 24)] {
        let got = client.fetch(&xh, a..b, None).await.unwrap();
        assert!(got[..] == *x.bytes(a..b), "range {a}..{b} differs");
    }
    drop(client);
    srv.shutdown().await;
}

/// A dropped response's buffer is reused for the next one; a response still held is never
/// handed out again; with `reuse_buffers = 0` nothing is kept.
#[tokio::test]
async fn response_buffers_are_reused_only_once_dropped() {
    let x = make_xorb(23, 12, 50_000);
    let xh = x.hash();
    let srv = serving(PeerServerConfig::new("edge-1", Role::Edge), &x).await;
    let client = srv.client().await;
    let first = client.fetch(&xh, 2..10, None).await.unwrap();
    let ptr = first.as_ptr();
    drop(first);
    // A somewhat larger response still fits the pooled buffer (allocated rounded up).
    let second = client.fetch(&xh, 0..12, None).await.unwrap();
    assert_eq!(second.as_ptr(), ptr, "the dropped buffer is reused");
    assert!(second[..] == *x.bytes(0..12));
    // While `second` is held, the next response gets another buffer and `second` is intact.
    let third = client.fetch(&xh, 1..12, None).await.unwrap();
    assert_ne!(third.as_ptr(), ptr);
    assert!(third[..] == *x.bytes(1..12));
    assert!(second[..] == *x.bytes(0..12));
    // A slice keeps the buffer alive too.
    let part = second.slice(10..20);
    drop(second);
    let fourth = client.fetch(&xh, 0..12, None).await.unwrap();
    assert_ne!(fourth.as_ptr(), ptr, "a live slice keeps its buffer");
    assert!(fourth[..] == *x.bytes(0..12));
    assert_eq!(&part[..], &x.bytes(0..12)[10..20]);
    drop((third, fourth, part));

    let mut cfg = client_config();
    cfg.reuse_buffers = 0;
    let plain = PeerClient::connect(srv.addr, cfg).await.unwrap();
    let a = plain.fetch(&xh, 0..12, None).await.unwrap();
    assert!(a[..] == *x.bytes(0..12));
    drop(a);
    let b = plain.fetch(&xh, 0..12, None).await.unwrap();
    assert!(b[..] == *x.bytes(0..12));
    drop((client, plain));
    srv.shutdown().await;
}

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Waits (a little) until `cond` holds: frames learned by the client's reader or the server's
/// connection task arrive on their own schedule.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}");
}

/// Peer exchange through a real server/client pair: the serving requester announces itself
/// before its first Request for a xorb, the server answers that Request (served or NotFound)
/// with the peers its book knows for the xorb, once per connection and xorb, and neither side
/// keeps its own address.
#[tokio::test]
async fn peer_exchange_round_trips_once_per_connection_and_xorb() {
    let x = make_xorb(11, 6, 8_000);
    let xh = x.hash();
    let missing = MerkleHash::from_bytes([9; 32]);
    let server_book = Arc::new(PeerBook::new(Some(sock("127.0.0.1:7001"))));
    server_book.learn(&xh, [sock("127.0.0.1:1111"), sock("10.0.0.2:2222")]);
    server_book.learn(&missing, [sock("127.0.0.1:3333")]);
    let mut config = PeerServerConfig::new("seed-pex", Role::Client);
    config.book = Some(server_book.clone());
    let srv = serving(config, &x).await;

    let client_book = Arc::new(PeerBook::new(Some(sock("127.0.0.1:7002"))));
    let mut cc = client_config();
    cc.book = Some(client_book.clone());
    let client = PeerClient::connect(srv.addr, cc).await.unwrap();
    assert!(client
        .peer()
        .capabilities
        .contains(Capabilities::PEER_EXCHANGE));
    assert_eq!(
        &client.fetch(&xh, 0..2, None).await.unwrap()[..],
        x.bytes(0..2)
    );
    assert_eq!(
        &client.fetch(&xh, 2..4, None).await.unwrap()[..],
        x.bytes(2..4)
    );
    assert!(matches!(
        client.fetch(&missing, 0..1, None).await,
        Err(PeerError::NotFound)
    ));
    eventually("the client learned the server's peers", || {
        client_book.stats().learned_exchanged == 3
    })
    .await;
    let mut got = client_book.peers(&xh, 64, None);
    got.sort();
    assert_eq!(got, [sock("10.0.0.2:2222"), sock("127.0.0.1:1111")]);
    assert_eq!(
        client_book.peers(&missing, 64, None),
        [sock("127.0.0.1:3333")]
    );
    // The client announced itself for both xorbs; the server named it to nobody (it is the
    // requester) and sent one PeerExchange per xorb.
    let st = srv.server.stats();
    assert_eq!((st.pex_sent, st.pex_learned), (2, 2), "{st:?}");
    assert_eq!(server_book.peers(&xh, 1, None), [sock("127.0.0.1:7002")]);
    assert_eq!(
        server_book.peers(&missing, 1, None),
        [sock("127.0.0.1:7002")]
    );

    // A second connection from the same requester: once per connection, so again, but
    // without the requester's own address (the server excludes it, the client never keeps it).
    let mut cc = client_config();
    cc.book = Some(client_book.clone());
    let again = PeerClient::connect(srv.addr, cc).await.unwrap();
    again.fetch(&xh, 0..1, None).await.unwrap();
    eventually("a second PeerExchange", || srv.server.stats().pex_sent == 3).await;
    assert!(!client_book
        .peers(&xh, 64, None)
        .contains(&sock("127.0.0.1:7002")));

    // A client without a book does not speak it: the server sends it nothing.
    let plain = srv.client().await;
    plain.fetch(&xh, 0..1, None).await.unwrap();
    plain.fetch(&missing, 0..1, None).await.unwrap_err();
    assert_eq!(srv.server.stats().pex_sent, 3);
    srv.shutdown().await;

    // A server without a book does not advertise it: the client announces nothing.
    let srv = serving(PeerServerConfig::new("seed-plain", Role::Seed), &x).await;
    let mut cc = client_config();
    cc.book = Some(client_book.clone());
    let client = PeerClient::connect(srv.addr, cc).await.unwrap();
    assert!(!client
        .peer()
        .capabilities
        .contains(Capabilities::PEER_EXCHANGE));
    client.fetch(&xh, 0..1, None).await.unwrap();
    assert_eq!(srv.server.stats().pex_learned, 0);
    srv.shutdown().await;
}

/// What a requester's PeerExchange can do to a server's book: name its own IP only (the
/// first such address), which the server then never names back to it; garbage is ignored and
/// the connection stays usable.
#[tokio::test]
async fn a_requesters_peer_exchange_can_only_name_itself() {
    let x = make_xorb(12, 4, 8_000);
    let xh = x.hash();
    let book = Arc::new(PeerBook::new(None));
    book.learn(&xh, [sock("127.0.0.1:5555")]);
    let mut config = PeerServerConfig::new("seed-pex", Role::Client);
    config.book = Some(book.clone());
    let srv = serving(config, &x).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let mut out = Frame::Handshake(Handshake::new(
        "pexer",
        Role::Client,
        Capabilities::PEER_EXCHANGE,
        &Limits::default(),
    ))
    .to_vec()
    .unwrap();
    let pex = Frame::PeerExchange(wire::PeerExchange {
        xorb: xh,
        peers: vec![
            "10.1.2.3:80".into(),
            "victim.example:443".into(),
            "garbage".into(),
            "127.0.0.1:4444".into(),
            "127.0.0.1:4445".into(),
        ],
    });
    out.extend(pex.to_vec().unwrap());
    out.extend(request(1, xh, 0..1));
    out.extend(request(2, xh, 1..2));
    s.write_all(&out).await.unwrap();
    // Half-closed: the server answers what it read, then closes.
    s.shutdown().await.unwrap();
    let frames = frames_until_close(&mut s).await;
    let exchanged: Vec<&wire::PeerExchange> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::PeerExchange(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(exchanged.len(), 1, "{frames:?}");
    assert_eq!(exchanged[0].xorb, xh);
    assert_eq!(exchanged[0].peers, ["127.0.0.1:5555"]);
    let mut known = book.peers(&xh, 64, None);
    known.sort();
    assert_eq!(known, [sock("127.0.0.1:4444"), sock("127.0.0.1:5555")]);
    assert_eq!(srv.server.stats().pex_learned, 1);
    assert_eq!(srv.server.stats().protocol_errors, 0);
    srv.shutdown().await;
}
