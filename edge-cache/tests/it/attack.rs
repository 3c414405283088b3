//! A host on the LAN attacks the edge (issue 15): raw wire frames to the peer port and a raw
//! HTTP server of its own. Every attempt to make the edge keep, or serve onward, bytes it
//! altered is refused, no request reaches a host the edge does not trust, and honest peers and
//! `huggingface_hub` through the edge get exact bytes afterwards.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wire::{
    Capabilities, ChunkRange, ErrorCode, Frame, Handshake, Limits, Request, Role, Upstream,
};
use xet::chunk::{encode_chunk, ChunkRecords, CompressionScheme};
use xet::MerkleHash;
use xorbstore::{verify_range, Expectation, VerificationLevel};

use crate::common::*;

/// An HTTP server of the attacker's on loopback: answers every request with `respond(head)`
/// and counts the requests it got. Stops when dropped.
struct EvilHttp {
    addr: String,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EvilHttp {
    fn start(respond: impl Fn(&str) -> Vec<u8> + Send + 'static) -> EvilHttp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr").to_string();
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut sock, _)) => {
                        h.fetch_add(1, Ordering::SeqCst);
                        let _ = sock.set_nonblocking(false);
                        let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
                        let head = read_head(&mut sock);
                        let _ = sock.write_all(&respond(&head));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        EvilHttp {
            addr,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    /// Serves `body` as a 206 to any range request.
    fn serving(body: Vec<u8>) -> EvilHttp {
        EvilHttp::start(move |_| {
            let mut out = format!(
                "HTTP/1.1 206 Partial Content\r\ncontent-length: {}\r\ncontent-range: bytes 0-{}/{}\r\nconnection: close\r\n\r\n",
                body.len(),
                body.len() - 1,
                body.len()
            )
            .into_bytes();
            out.extend_from_slice(&body);
            out
        })
    }

    fn url(&self) -> String {
        format!("http://{}/xorbs/default/evil", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for EvilHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads a request head (at most 64 KiB).
fn read_head(sock: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut piece = [0u8; 4096];
    while buf.len() < 64 << 10 && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut piece) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&piece[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// One range of a file's reconstruction as the origin hands it out, with its honest bytes.
struct Honest {
    xorb: MerkleHash,
    chunks: (u32, u32),
    url: String,
    bytes: (u64, u64),
    records: Vec<u8>,
    hashes: Vec<MerkleHash>,
}

/// The first range of `path`'s reconstruction, straight from the origin, with its bytes.
fn honest_range(origin: &Origin, path: &str) -> Honest {
    let r = ranges_at(&origin.base, path).remove(0);
    let records = r.get();
    let xorb = MerkleHash::from_hex(&r.xorb).expect("xorb hash");
    let chunks = (
        u32::try_from(r.chunks.0).expect("chunk index"),
        u32::try_from(r.chunks.1).expect("chunk index"),
    );
    let hashes = verify_range(
        &xorb,
        chunks.0..chunks.1,
        &records,
        &Expectation::structural(),
    )
    .expect("honest bytes verify")
    .chunk_hashes;
    Honest {
        xorb,
        chunks,
        url: r.url,
        bytes: r.bytes,
        records,
        hashes,
    }
}

/// `h`'s records with one byte of the first chunk's data changed (re-encoded as a valid,
/// uncompressed record), and the chunk hashes of those altered bytes.
fn altered(h: &Honest) -> (Vec<u8>, Vec<MerkleHash>) {
    let first = ChunkRecords::new(&h.records)
        .next()
        .expect("a record")
        .expect("valid record");
    let mut data = Vec::new();
    first.decode(&mut data).expect("decode");
    data[0] ^= 0x01;
    let mut out = Vec::new();
    encode_chunk(&data, CompressionScheme::None, &mut out);
    out.extend_from_slice(&h.records[first.end()..]);
    let hashes = verify_range(
        &h.xorb,
        h.chunks.0..h.chunks.1,
        &out,
        &Expectation::structural(),
    )
    .expect("altered bytes are structurally valid")
    .chunk_hashes;
    assert_ne!(hashes[0], h.hashes[0]);
    (out, hashes)
}

/// What the edge answered to one Request.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Data(Vec<u8>),
    NotFound,
    Error(ErrorCode),
}

/// A raw wire-protocol session with the edge's peer port.
struct RawPeer {
    sock: TcpStream,
    buf: Vec<u8>,
    next_id: u32,
}

impl RawPeer {
    fn connect(addr: &str) -> RawPeer {
        let mut sock = TcpStream::connect(addr).expect("connect to the peer port");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let hs = Handshake::new(
            "lan-host",
            Role::Client,
            Capabilities::NONE,
            &Limits::default(),
        );
        sock.write_all(&Frame::Handshake(hs).to_vec().expect("encode"))
            .expect("send Handshake");
        let mut p = RawPeer {
            sock,
            buf: Vec::new(),
            next_id: 1,
        };
        match p.next_frame(Duration::from_secs(10)) {
            Some(Frame::Handshake(_)) => p,
            other => panic!("expected the edge's Handshake, got {other:?}"),
        }
    }

    fn next_frame(&mut self, within: Duration) -> Option<Frame> {
        let deadline = Instant::now() + within;
        loop {
            match wire::decode(&self.buf, wire::ABSOLUTE_MAX_FRAME_LEN).expect("valid frame") {
                wire::Decoded::Frame { frame, consumed } => {
                    self.buf.drain(..consumed);
                    return Some(frame);
                }
                wire::Decoded::Incomplete { .. } => {}
            }
            if Instant::now() > deadline {
                return None;
            }
            let mut piece = [0u8; 64 << 10];
            match self.sock.read(&mut piece) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&piece[..n]),
                Err(_) => {}
            }
        }
    }

    /// Sends a Request for `xorb[chunks]` naming `url` bytes `bytes` upstream, with `hashes`,
    /// and reads the answer.
    fn request(
        &mut self,
        xorb: MerkleHash,
        chunks: (u32, u32),
        url: &str,
        bytes: (u64, u64),
        hashes: &[MerkleHash],
    ) -> Answer {
        let id = self.next_id;
        self.next_id += 1;
        let req = Frame::Request(Request {
            request_id: id,
            xorb,
            chunks: ChunkRange::new(chunks.0, chunks.1),
            upstream: Some(Upstream {
                url: url.to_string(),
                byte_start: bytes.0,
                byte_end: bytes.1,
            }),
            chunk_hashes: Some(hashes.to_vec()),
        });
        self.sock
            .write_all(&req.to_vec().expect("encode"))
            .expect("send Request");
        let mut data = Vec::new();
        loop {
            match self.next_frame(Duration::from_secs(60)) {
                Some(Frame::DataHeader(_)) => {}
                Some(Frame::Data(d)) if d.request_id == id => {
                    data.extend_from_slice(&d.payload);
                    if d.last {
                        return Answer::Data(data);
                    }
                }
                Some(Frame::NotFound { request_id }) if request_id == id => {
                    return Answer::NotFound
                }
                Some(Frame::Error(e)) if e.request_id == id || e.request_id == 0 => {
                    return Answer::Error(e.code)
                }
                Some(_) => {}
                None => panic!("no answer to request {id}"),
            }
        }
    }
}

impl RawPeer {
    /// What an honest peer asks: `h`'s range at the origin's signed URL, with its true hashes.
    fn request_honest(&mut self, h: &Honest) -> Answer {
        self.request(h.xorb, h.chunks, &h.url, h.bytes, &h.hashes)
    }
}

/// The level of every stored range of `xorb` in the edge's cache folder (opened beside the
/// running edge, as `zest seed` shares a folder with `zest pull`).
fn stored_levels(cache: &std::path::Path, xorb: &MerkleHash) -> Vec<VerificationLevel> {
    let store = xorbstore::Store::open(cache, xorbstore::StoreConfig::new(1 << 40)).expect("open");
    store
        .list()
        .into_iter()
        .filter(|e| e.xorb == *xorb)
        .map(|e| e.level)
        .collect()
}

fn assert_exact_snapshot(edge: &Edge) {
    let got = snapshot(&edge.base, &[]).unwrap_or_else(|e| panic!("{e}\n{}", edge.log()));
    for (path, sha) in &fixture().files {
        assert_eq!(got.get(path), Some(sha), "{path} through the edge");
    }
}

/// The confirmed attack of issue 15: a Request naming the sender's own HTTP server as upstream,
/// with the hashes of bytes it altered. The edge never contacts that server, stores nothing,
/// follows no redirect from a trusted host to it, and honest clients get exact bytes.
#[test]
fn request_naming_the_senders_own_server_is_refused_and_nothing_is_stored() {
    let origin = Origin::start(|_| {});
    let honest = honest_range(&origin, "sub/b.bin");
    let (evil_bytes, evil_hashes) = altered(&honest);
    let evil = EvilHttp::serving(evil_bytes.clone());
    let evil_url = evil.url();
    // A host the edge was told to trust that redirects to the attacker's server.
    let redirector = EvilHttp::start(move |_| {
        format!("HTTP/1.1 302 Found\r\nlocation: {evil_url}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .into_bytes()
    });
    let cache = cache_dir();
    let allow = format!("http://{}", redirector.addr);
    let edge = Edge::start(&origin.base, &cache, &["--upstream-fetch-allow", &allow]);
    let mut lan = RawPeer::connect(&edge.peer_addr);
    let len = evil_bytes.len() as u64;
    let answer = lan.request(
        honest.xorb,
        honest.chunks,
        &evil.url(),
        (0, len - 1),
        &evil_hashes,
    );
    assert_eq!(answer, Answer::Error(ErrorCode::UPSTREAM_FAILED));
    let via_redirect = lan.request(
        honest.xorb,
        honest.chunks,
        &format!("http://{}/x", redirector.addr),
        (0, len - 1),
        &evil_hashes,
    );
    assert_eq!(via_redirect, Answer::Error(ErrorCode::UPSTREAM_FAILED));
    assert_eq!(redirector.hits(), 1, "the trusted host was asked once");
    assert_eq!(evil.hits(), 0, "a request reached the attacker's server");
    assert!(
        stored_levels(&cache, &honest.xorb).is_empty(),
        "something was stored"
    );
    assert!(edge.metric("zest_edge_peer_fetch_refused_total") >= 1.0);
    // An honest peer naming the origin's signed URL gets the exact bytes.
    let mut peer = RawPeer::connect(&edge.peer_addr);
    assert_eq!(
        peer.request_honest(&honest),
        Answer::Data(honest.records.clone())
    );
    assert_exact_snapshot(&edge);
    assert_eq!(evil.hits(), 0);
}

/// A host the edge trusts serves altered bytes whose hashes the requester supplies. Those
/// hashes never vouch for them: they are kept unproven only, an honest peer asking with the
/// right hashes gets the right bytes, `huggingface_hub` through the edge gets exact files (the
/// edge verifies again from upstream and the proven bytes displace the altered ones), and once
/// the range is proven the same attack is refused without a fetch and changes nothing.
#[test]
fn requester_hashes_never_vouch_for_bytes_and_never_displace_proven_ones() {
    let origin = Origin::start(|_| {});
    let honest = honest_range(&origin, "sub/b.bin");
    let (evil_bytes, evil_hashes) = altered(&honest);
    let evil = EvilHttp::serving(evil_bytes.clone());
    let cache = cache_dir();
    let allow = format!("http://{}", evil.addr);
    let edge = Edge::start(&origin.base, &cache, &["--upstream-fetch-allow", &allow]);
    let mut lan = RawPeer::connect(&edge.peer_addr);
    let len = evil_bytes.len() as u64;
    let attack = |lan: &mut RawPeer| {
        lan.request(
            honest.xorb,
            honest.chunks,
            &evil.url(),
            (0, len - 1),
            &evil_hashes,
        )
    };
    // The requester gets what its own URL returned; the edge keeps it as unproven only.
    assert_eq!(attack(&mut lan), Answer::Data(evil_bytes.clone()));
    assert_eq!(evil.hits(), 1);
    assert_eq!(
        stored_levels(&cache, &honest.xorb),
        vec![VerificationLevel::Structural]
    );
    // An honest peer with the right hashes is not served the altered bytes.
    let mut peer = RawPeer::connect(&edge.peer_addr);
    assert_eq!(
        peer.request_honest(&honest),
        Answer::Data(honest.records.clone())
    );
    // Poisoned again, then a real client through the edge: exact bytes.
    assert_eq!(attack(&mut lan), Answer::Data(evil_bytes.clone()));
    assert_exact_snapshot(&edge);
    let levels = stored_levels(&cache, &honest.xorb);
    assert!(
        !levels.is_empty() && levels.iter().all(|l| *l == VerificationLevel::FileVerified),
        "{levels:?}"
    );
    // Proven now: the attack is refused without a fetch and nothing changes.
    let hits = evil.hits();
    assert_eq!(
        attack(&mut lan),
        Answer::Error(ErrorCode::VERIFICATION_FAILED)
    );
    assert_eq!(evil.hits(), hits, "the edge fetched for a proven range");
    assert_eq!(stored_levels(&cache, &honest.xorb), levels);
    assert_eq!(
        peer.request_honest(&honest),
        Answer::Data(honest.records.clone())
    );
}

/// `(0, u64::MAX)` as the upstream byte range: refused as an invalid request, no overflow, no
/// fetch, and the connection keeps working.
#[test]
fn full_u64_upstream_byte_range_is_an_invalid_request() {
    let origin = Origin::start(|_| {});
    let honest = honest_range(&origin, "sub/b.bin");
    let edge = Edge::start(&origin.base, &cache_dir(), &[]);
    let mut lan = RawPeer::connect(&edge.peer_addr);
    assert_eq!(
        lan.request(
            honest.xorb,
            honest.chunks,
            &honest.url,
            (0, u64::MAX),
            &honest.hashes
        ),
        Answer::Error(ErrorCode::INVALID_REQUEST)
    );
    assert_eq!(
        lan.request_honest(&honest),
        Answer::Data(honest.records.clone())
    );
}
