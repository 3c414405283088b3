//! The peer client's deadlines against scripted raw servers (libs/wire frames on a plain
//! socket): a server that never sends its Handshake, one that completes it and never answers,
//! one that stalls mid-response, and honest slow ones (steady pieces, a piece trickling in,
//! a request queued behind a long response) that must not be cut off.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wire::{Capabilities, Data, DataHeader, Frame, Handshake, Limits, Request, Role};
use xet::MerkleHash;
use xorbstore::peer::{Deadline, FetchOptions, PeerClient, PeerClientConfig, PeerError};

/// Long enough that a test finishing well within it shows another deadline did the work.
const WHOLE: Duration = Duration::from_secs(60);

fn xorb() -> MerkleHash {
    MerkleHash::from_bytes([7; 32])
}

/// Frames the client sent, as the scripted server reads them.
type Inbox = mpsc::UnboundedReceiver<Frame>;

/// A server on loopback that accepts one connection, sends its Handshake, decodes what the
/// client sends into an [`Inbox`] and runs `script` with the socket's write half.
async fn scripted<F, Fut>(script: F) -> SocketAddr
where
    F: FnOnce(OwnedWriteHalf, Inbox) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let (mut rd, mut wr) = sock.into_split();
        let hs = Handshake::new("raw", Role::Seed, Capabilities::SERVE, &Limits::default());
        wr.write_all(&Frame::Handshake(hs).to_vec().unwrap())
            .await
            .unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut buf = BytesMut::new();
            loop {
                while let Ok(Some(f)) = wire::decode_buf(&mut buf, wire::ABSOLUTE_MAX_FRAME_LEN) {
                    if tx.send(f).is_err() {
                        return;
                    }
                }
                match rd.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        });
        script(wr, rx).await;
        // Keep the connection open (silent) until the test ends.
        std::future::pending::<()>().await;
    });
    addr
}

/// The next Request the client sent (skipping its Handshake and anything else).
async fn next_request(inbox: &mut Inbox) -> Request {
    loop {
        match inbox.recv().await.expect("client connection open") {
            Frame::Request(r) => return r,
            _ => continue,
        }
    }
}

/// Whether the client cancels request `id` within `within`.
async fn cancelled(inbox: &mut Inbox, id: u32, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        loop {
            match inbox.recv().await {
                Some(Frame::Cancel { request_id }) if request_id == id => return true,
                Some(_) => continue,
                None => return false,
            }
        }
    })
    .await
    .unwrap_or(false)
}

async fn send(wr: &mut OwnedWriteHalf, frame: Frame) {
    wr.write_all(&frame.to_vec().unwrap()).await.unwrap();
}

fn header(request_id: u32, total_len: u64) -> Frame {
    Frame::DataHeader(DataHeader {
        request_id,
        total_len,
        num_chunks: 1,
    })
}

fn data(request_id: u32, offset: u64, payload: &[u8], last: bool) -> Frame {
    Frame::Data(Data {
        request_id,
        offset,
        last,
        payload: Bytes::copy_from_slice(payload),
    })
}

/// The response body the honest scripts send: `len` bytes.
fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A client with `first_frame` and `stall` deadlines and a whole-response limit of [`WHOLE`].
async fn client(addr: SocketAddr, first_frame: Duration, stall: Duration) -> PeerClient {
    let mut cfg = PeerClientConfig::new("deadline-test", Role::Client);
    cfg.request_timeout = WHOLE;
    cfg.first_frame_timeout = first_frame;
    cfg.stall_timeout = stall;
    PeerClient::connect(addr, cfg).await.expect("connect")
}

#[tokio::test]
async fn a_server_that_never_sends_its_handshake_fails_within_the_handshake_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // Accepts, keeps the socket and never sends a byte.
        let (_sock, _) = listener.accept().await.unwrap();
        std::future::pending::<()>().await;
    });
    let mut cfg = PeerClientConfig::new("deadline-test", Role::Client);
    cfg.handshake_timeout = Duration::from_millis(500);
    let started = Instant::now();
    let r = PeerClient::connect(addr, cfg).await;
    let took = started.elapsed();
    assert!(matches!(r, Err(PeerError::Timeout("handshake"))), "{r:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// A fetch through `c` (configured with a 500 ms deadline) fails with the deadline `which`
/// accepts, whose message says `says`, well before the whole limit, and the server saw the
/// Cancel (reported on `seen`).
async fn misses_its_deadline(
    c: &PeerClient,
    seen: &mut mpsc::UnboundedReceiver<bool>,
    says: &str,
    which: impl Fn(&Deadline) -> bool,
) {
    let started = Instant::now();
    let r = c.fetch_with(&xorb(), 0..1, FetchOptions::default()).await;
    let took = started.elapsed();
    assert!(
        matches!(&r, Err(PeerError::Deadline(d)) if which(d)),
        "{r:?}"
    );
    assert!(
        r.unwrap_err().to_string().contains(says),
        "the error says which deadline passed"
    );
    assert!(took >= Duration::from_millis(500), "took {took:?}");
    assert!(
        took < Duration::from_secs(10),
        "took {took:?} (whole: {WHOLE:?})"
    );
    assert_eq!(seen.recv().await, Some(true), "the request was cancelled");
}

#[tokio::test]
async fn a_server_that_never_answers_fails_within_the_first_frame_deadline() {
    let (seen, mut seen_rx) = mpsc::unbounded_channel();
    let addr = scripted(move |wr, mut inbox| async move {
        let _open = wr;
        loop {
            let r = next_request(&mut inbox).await;
            let c = cancelled(&mut inbox, r.request_id, Duration::from_secs(30)).await;
            let _ = seen.send(c);
        }
    })
    .await;
    let c = client(addr, Duration::from_millis(500), WHOLE).await;
    misses_its_deadline(&c, &mut seen_rx, "no response frame", |d| {
        matches!(d, Deadline::FirstFrame(_))
    })
    .await;
    // A per-request override is honoured too.
    let started = Instant::now();
    let opts = FetchOptions {
        first_frame_timeout: Some(Duration::from_millis(200)),
        ..FetchOptions::default()
    };
    let r = c.fetch_with(&xorb(), 0..1, opts).await;
    assert!(
        matches!(r, Err(PeerError::Deadline(Deadline::FirstFrame(d))) if d == Duration::from_millis(200)),
        "{r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        seen_rx.recv().await,
        Some(true),
        "the request was cancelled"
    );
    assert!(
        !c.is_closed(),
        "a missed deadline costs the request, not the connection"
    );
}

#[tokio::test]
async fn a_response_that_stalls_after_one_piece_fails_within_the_stall_deadline() {
    let (seen, mut seen_rx) = mpsc::unbounded_channel();
    let addr = scripted(move |mut wr, mut inbox| async move {
        let r = next_request(&mut inbox).await;
        let b = body(4000);
        send(&mut wr, header(r.request_id, b.len() as u64)).await;
        send(&mut wr, data(r.request_id, 0, &b[..1000], false)).await;
        // ... and nothing more.
        let c = cancelled(&mut inbox, r.request_id, Duration::from_secs(30)).await;
        let _ = seen.send(c);
    })
    .await;
    let c = client(addr, WHOLE, Duration::from_millis(500)).await;
    misses_its_deadline(&c, &mut seen_rx, "stalled", |d| {
        matches!(d, Deadline::Stall(_))
    })
    .await;
}

#[tokio::test]
async fn a_slow_but_steady_response_longer_than_the_stall_deadline_succeeds() {
    // 30 pieces 100 ms apart, then a last piece whose bytes trickle in over 2 s (one frame:
    // its payload bytes count as progress): about 5 s in all against a 1 s stall deadline.
    let pieces = 30;
    let piece = 1000;
    let tail = 4000;
    let b = body(pieces * piece + tail);
    let expected = b.clone();
    let addr = scripted(move |mut wr, mut inbox| async move {
        let r = next_request(&mut inbox).await;
        let id = r.request_id;
        send(&mut wr, header(id, b.len() as u64)).await;
        for i in 0..pieces {
            tokio::time::sleep(Duration::from_millis(100)).await;
            send(
                &mut wr,
                data(id, (i * piece) as u64, &b[i * piece..][..piece], false),
            )
            .await;
        }
        let last = data(id, (pieces * piece) as u64, &b[pieces * piece..], true);
        let bytes = last.to_vec().unwrap();
        for slice in bytes.chunks(bytes.len() / 20 + 1) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            wr.write_all(slice).await.unwrap();
        }
    })
    .await;
    let c = client(addr, Duration::from_secs(1), Duration::from_secs(1)).await;
    let started = Instant::now();
    let got = c
        .fetch_with(&xorb(), 0..1, FetchOptions::default())
        .await
        .expect("a steady response is not cut off");
    let took = started.elapsed();
    assert_eq!(&got[..], &expected[..]);
    assert!(
        took > Duration::from_secs(4),
        "the response took {took:?}: longer than the stall deadline, as meant"
    );
}

#[tokio::test]
async fn a_request_queued_behind_a_long_response_is_not_cut_off_by_its_first_frame_deadline() {
    // The server answers in order: the second request's DataHeader comes only after the first
    // response, which takes 3 s (steady), three times the 1 s first-frame deadline.
    let first = body(30_000);
    let second = body(500);
    let (a, b) = (first.clone(), second.clone());
    let addr = scripted(move |mut wr, mut inbox| async move {
        let r1 = next_request(&mut inbox).await;
        let r2 = next_request(&mut inbox).await;
        send(&mut wr, header(r1.request_id, a.len() as u64)).await;
        for (i, p) in a.chunks(1000).enumerate() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let last = (i + 1) * 1000 >= a.len();
            send(&mut wr, data(r1.request_id, (i * 1000) as u64, p, last)).await;
        }
        send(&mut wr, header(r2.request_id, b.len() as u64)).await;
        send(&mut wr, data(r2.request_id, 0, &b, true)).await;
    })
    .await;
    let c = client(addr, Duration::from_secs(1), Duration::from_secs(1)).await;
    let x = xorb();
    let (r1, r2) = tokio::join!(c.fetch_with(&x, 0..1, FetchOptions::default()), async {
        // Sent second (ids are allocated in send order).
        tokio::time::sleep(Duration::from_millis(50)).await;
        c.fetch_with(&x, 1..2, FetchOptions::default()).await
    });
    assert_eq!(&r1.expect("first")[..], &first[..]);
    assert_eq!(&r2.expect("queued second")[..], &second[..]);
}
