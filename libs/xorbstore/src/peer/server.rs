//! The peer server: accepts TCP (optionally TLS) connections, exchanges Handshakes, and answers
//! Requests for any sub-range of what the store holds with a DataHeader and Data frames,
//! NotFound otherwise. On plain TCP (Linux) each Data payload goes from the stored range file to
//! the socket with `sendfile(2)`, its small header sent just before with `MSG_MORE` so both leave
//! in one segment; over TLS the payload is written from the memory map (encryption needs the
//! bytes in user space anyway). With
//! an [`UpstreamFetcher`], a Request for a missing range that carries a signed upstream URL is
//! fetched once (coalesced with concurrent misses), verified, stored and then streamed.
//!
//! Each connection runs two tasks: a reader that decodes frames, feeds them to the protocol
//! state machine ([`wire::Connection`]) and queues responses, and a writer that writes queued
//! responses in order (checking every frame with the state machine just before writing it). A
//! protocol violation, a timeout or shutdown is answered with a connection-level Error frame,
//! written ahead of queued responses, and the connection is closed. Limits: the frame size and
//! requests in flight advertised in the Handshake (enforced by the state machine), a handshake
//! timeout, an idle timeout (only while no response is pending), a write timeout against peers
//! that stop reading, and a maximum number of connections.

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;
use tracing::Instrument;
use wire::{
    Accepted, Capabilities, Connection, DataHeader, ErrorCode, ErrorFrame, Frame, Handshake,
    Limits, ProtocolError, Request, Role, Upstream,
};
use xet::MerkleHash;

use super::singleflight::{FetchError, FetchSource, SingleFlight};
use crate::{Expectation, RangeView, Store, VerificationLevel};

/// Fetches a range the store does not hold from the signed upstream URL a Request carried.
/// Implemented by the edge (with reqwest); the server verifies and stores what it returns.
pub trait UpstreamFetcher: Send + Sync + 'static {
    /// GETs `upstream.url` with `Range: bytes={byte_start}-{byte_end}` (no auth header) and
    /// returns the body: the chunk records of chunks `chunks` of `xorb`. Must refuse a body
    /// longer than the byte range (and than [`crate::MAX_RANGE_BYTES`]).
    fn fetch<'a>(
        &'a self,
        xorb: &'a MerkleHash,
        chunks: Range<u32>,
        upstream: &'a Upstream,
    ) -> Pin<Box<dyn Future<Output = Result<bytes::Bytes, String>> + Send + 'a>>;
}

/// Settings of a [`PeerServer`].
#[derive(Clone)]
pub struct PeerServerConfig {
    /// Our peer id in the Handshake (1..=64 bytes).
    pub peer_id: String,
    /// `Role::Edge` or `Role::Seed`.
    pub role: Role,
    /// Frame size and requests in flight we accept (advertised in our Handshake).
    pub limits: Limits,
    /// Largest Data payload we send (further capped by the peer's `max_frame_len`).
    pub piece_len: usize,
    /// Time for the peer's Handshake to arrive (and for the TLS handshake).
    pub handshake_timeout: Duration,
    /// Close a connection after this long without a frame while nothing is pending.
    pub idle_timeout: Duration,
    /// Close a connection whose peer does not take a frame for this long.
    pub write_timeout: Duration,
    /// Most connections at once; more are answered with Error `BUSY` and closed.
    pub max_connections: usize,
    /// Serve TLS instead of plain TCP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Fetch missing ranges named with an upstream URL (edges).
    pub upstream: Option<Arc<dyn UpstreamFetcher>>,
    /// How long a draining server waits for connections after shutdown.
    pub shutdown_grace: Duration,
    /// A cap on the bytes of Data served per second, over all connections (none: no cap).
    pub upload_rate: Option<Arc<super::UploadRate>>,
    /// Peer exchange (none: the server neither sends nor accepts PeerExchange). With a book,
    /// the Handshake advertises `PEER_EXCHANGE`; to a requester that advertised it too, the
    /// answer to its first Request for a xorb on a connection is followed by a PeerExchange
    /// of up to [`super::book::PEX_SEND_MAX`] peers the book knows for that xorb, and the
    /// requester's own PeerExchange (its advertised address) is learned.
    pub book: Option<Arc<super::PeerBook>>,
}

impl std::fmt::Debug for PeerServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerServerConfig")
            .field("peer_id", &self.peer_id)
            .field("role", &self.role)
            .field("limits", &self.limits)
            .field("piece_len", &self.piece_len)
            .field("tls", &self.tls.is_some())
            .field("upstream", &self.upstream.is_some())
            .field("book", &self.book.is_some())
            .finish_non_exhaustive()
    }
}

impl PeerServerConfig {
    /// Defaults from `libs/wire` (limits, timeouts), plain TCP, no upstream.
    pub fn new(peer_id: impl Into<String>, role: Role) -> Self {
        Self {
            peer_id: peer_id.into(),
            role,
            limits: Limits::default(),
            piece_len: wire::DATA_PIECE_LEN as usize,
            handshake_timeout: wire::HANDSHAKE_TIMEOUT,
            idle_timeout: wire::IDLE_TIMEOUT,
            write_timeout: wire::DATA_STALL_TIMEOUT,
            max_connections: 1024,
            tls: None,
            upstream: None,
            shutdown_grace: Duration::from_secs(5),
            upload_rate: None,
            book: None,
        }
    }
}

/// Counters of a [`PeerServer`] for the service's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerServerStats {
    pub connections_total: u64,
    pub connections_open: u64,
    pub connections_refused: u64,
    pub requests: u64,
    /// Requests answered from the store without fetching.
    pub hits: u64,
    pub not_found: u64,
    /// Requests answered after an upstream fetch (own or coalesced).
    pub upstream_served: u64,
    pub upstream_failed: u64,
    /// Bytes of Data payload written.
    pub bytes_served: u64,
    /// Connections closed because the peer broke the protocol.
    pub protocol_errors: u64,
    pub timeouts: u64,
    /// PeerExchange frames sent (each with at least one address).
    pub pex_sent: u64,
    /// Addresses learned from requesters' PeerExchange frames.
    pub pex_learned: u64,
}

#[derive(Debug, Default)]
struct Counters {
    connections_total: AtomicU64,
    connections_open: AtomicU64,
    connections_refused: AtomicU64,
    requests: AtomicU64,
    hits: AtomicU64,
    not_found: AtomicU64,
    upstream_served: AtomicU64,
    upstream_failed: AtomicU64,
    bytes_served: AtomicU64,
    protocol_errors: AtomicU64,
    timeouts: AtomicU64,
    pex_sent: AtomicU64,
    pex_learned: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct Ctx {
    store: Store,
    config: PeerServerConfig,
    flights: SingleFlight,
    counters: Counters,
}

/// The peer server over a [`Store`]. Cheap to clone.
#[derive(Clone)]
pub struct PeerServer {
    ctx: Arc<Ctx>,
}

impl std::fmt::Debug for PeerServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerServer")
            .field("config", &self.ctx.config)
            .finish_non_exhaustive()
    }
}

impl PeerServer {
    /// A server over `store`. Upstream fetches coalesce through their own [`SingleFlight`];
    /// use [`PeerServer::with_single_flight`] to share one with the edge's HTTP path.
    pub fn new(store: Store, config: PeerServerConfig) -> Self {
        let flights = SingleFlight::new(store.clone());
        Self::with_single_flight(flights, config)
    }

    /// A server whose upstream fetches go through `flights` (and its store).
    pub fn with_single_flight(flights: SingleFlight, config: PeerServerConfig) -> Self {
        Self {
            ctx: Arc::new(Ctx {
                store: flights.store().clone(),
                config,
                flights,
                counters: Counters::default(),
            }),
        }
    }

    /// The coalescer used for upstream fetches.
    pub fn single_flight(&self) -> &SingleFlight {
        &self.ctx.flights
    }

    /// Current counters.
    pub fn stats(&self) -> PeerServerStats {
        let c = &self.ctx.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PeerServerStats {
            connections_total: l(&c.connections_total),
            connections_open: l(&c.connections_open),
            connections_refused: l(&c.connections_refused),
            requests: l(&c.requests),
            hits: l(&c.hits),
            not_found: l(&c.not_found),
            upstream_served: l(&c.upstream_served),
            upstream_failed: l(&c.upstream_failed),
            bytes_served: l(&c.bytes_served),
            protocol_errors: l(&c.protocol_errors),
            timeouts: l(&c.timeouts),
            pex_sent: l(&c.pex_sent),
            pex_learned: l(&c.pex_learned),
        }
    }

    /// Accepts connections on `listener` until `shutdown` completes, then tells every
    /// connection (Error `SHUTTING_DOWN`), waits up to `shutdown_grace` for them and returns.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let slots = Arc::new(Semaphore::new(self.ctx.config.max_connections.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => {
                    let (stream, addr) = match accepted {
                        Ok(x) => x,
                        Err(e) => {
                            // Out of file descriptors and the like: back off, keep serving.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let ctx = self.ctx.clone();
                    let stop = stop_rx.clone();
                    let permit = slots.clone().try_acquire_owned();
                    tasks.spawn(async move {
                        match permit {
                            Ok(_permit) => accept_one(ctx, stream, addr, stop).await,
                            Err(_) => refuse_busy(ctx, stream).await,
                        }
                    });
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        let _ = stop_tx.send(true);
        let grace = self.ctx.config.shutdown_grace;
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tasks.abort_all();
        }
        Ok(())
    }
}

async fn refuse_busy(ctx: Arc<Ctx>, mut stream: tokio::net::TcpStream) {
    inc(&ctx.counters.connections_refused);
    if ctx.config.tls.is_some() {
        return; // An Error frame in clear text would be garbage to a TLS client.
    }
    let frame = Frame::Error(ErrorFrame {
        request_id: 0,
        code: ErrorCode::BUSY,
        message: "too many connections".into(),
    });
    if let Ok(bytes) = frame.to_vec() {
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&bytes)).await;
    }
}

async fn accept_one(
    ctx: Arc<Ctx>,
    stream: tokio::net::TcpStream,
    addr: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    let counters = &ctx.counters;
    inc(&counters.connections_total);
    counters.connections_open.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("peer_conn", peer = %addr);
    let run = async {
        match ctx.config.tls.clone() {
            Some(tls) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                let handshake =
                    tokio::time::timeout(ctx.config.handshake_timeout, acceptor.accept(stream));
                match handshake.await {
                    Ok(Ok(s)) => {
                        let (rd, wr) = tokio::io::split(s);
                        handle_connection(ctx.clone(), rd, wr, addr, stop).await
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => {
                        inc(&counters.timeouts);
                        tracing::debug!("TLS handshake timed out");
                    }
                }
            }
            None => {
                let (rd, wr) = stream.into_split();
                handle_connection(ctx.clone(), rd, wr, addr, stop).await
            }
        }
    };
    run.instrument(span).await;
    ctx.counters
        .connections_open
        .fetch_sub(1, Ordering::Relaxed);
}

/// What the reader queues for the writer.
enum Out {
    /// A frame other than Data (Handshake, Pong, NotFound, a request's Error).
    Frame(Frame),
    /// A whole successful response: DataHeader then Data frames over `pieces`.
    Response {
        request_id: u32,
        num_chunks: u32,
        pieces: Vec<RangeView>,
    },
}

type SharedConn = Arc<Mutex<Connection>>;

fn lock(c: &SharedConn) -> std::sync::MutexGuard<'_, Connection> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

fn conn_error(code: ErrorCode, message: impl Into<String>) -> Frame {
    Frame::Error(ErrorFrame {
        request_id: 0,
        code,
        message: message.into(),
    })
}

/// The write half of a connection: any byte stream, and for plain TCP also the socket itself,
/// for the zero-copy path.
trait ConnWrite: AsyncWrite + Send + Unpin + 'static {
    /// The socket to `sendfile` into, when the connection is plain TCP.
    fn plain_tcp(&self) -> Option<&TcpStream> {
        None
    }
}

impl ConnWrite for tokio::net::tcp::OwnedWriteHalf {
    fn plain_tcp(&self) -> Option<&TcpStream> {
        Some(self.as_ref())
    }
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> ConnWrite for tokio::io::WriteHalf<S> {}

/// Runs one connection over the halves of any byte stream (TCP or TLS).
async fn handle_connection<R, W>(
    ctx: Arc<Ctx>,
    rd: R,
    wr: W,
    addr: SocketAddr,
    mut stop: watch::Receiver<bool>,
) where
    R: AsyncRead + Send + Unpin + 'static,
    W: ConnWrite,
{
    let cfg = &ctx.config;
    let mut caps = Capabilities::SERVE;
    if cfg.tls.is_some() {
        caps = caps | Capabilities::TLS;
    }
    if cfg.upstream.is_some() {
        caps = caps | Capabilities::UPSTREAM_FETCH;
    }
    if cfg.book.is_some() {
        caps = caps | Capabilities::PEER_EXCHANGE;
    }
    let hs = Handshake::new(cfg.peer_id.clone(), cfg.role, caps, &cfg.limits);
    let conn: SharedConn = Arc::new(Mutex::new(Connection::new(hs, cfg.limits)));
    let queue = usize::from(lock(&conn).limits().max_in_flight) + 4;
    let (tx, rx) = mpsc::channel::<Out>(queue);
    let (close_tx, close_rx) = mpsc::channel::<Frame>(1);
    // The writer sends our Handshake before anything else (even a closing Error).
    let hs_frame = lock(&conn).handshake_frame();
    let writer = tokio::spawn(write_loop(
        ctx.clone(),
        conn.clone(),
        wr,
        hs_frame,
        rx,
        close_rx,
    ));
    let close = read_loop(&ctx, &conn, rd, &tx, &mut stop, addr).await;
    if let Some(frame) = close {
        let _ = close_tx.send(frame).await;
    }
    drop(tx);
    drop(close_tx);
    let _ = writer.await;
    tracing::debug!(peer = %addr, "connection closed");
}

/// Reads and handles frames until the connection ends. Returns the connection-level Error to
/// send, if the connection ends because of something this side detected.
async fn read_loop<R: AsyncRead + Unpin>(
    ctx: &Arc<Ctx>,
    conn: &SharedConn,
    mut rd: R,
    tx: &mpsc::Sender<Out>,
    stop: &mut watch::Receiver<bool>,
    remote: SocketAddr,
) -> Option<Frame> {
    let cfg = &ctx.config;
    let mut pex = Pex::new(remote);
    let max_frame = lock(conn).recv_max_frame_len();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let handshake_deadline = Instant::now() + cfg.handshake_timeout;
    let mut last_frame = Instant::now();
    loop {
        // Handle every whole frame buffered.
        loop {
            let frame = match wire::decode_buf(&mut buf, max_frame) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    inc(&ctx.counters.protocol_errors);
                    let e = ProtocolError::from(e);
                    tracing::debug!(error = %e, "undecodable frame");
                    return Some(e.to_error_frame());
                }
            };
            last_frame = Instant::now();
            let accepted = lock(conn).on_receive(&frame);
            match accepted {
                Err(e) => {
                    inc(&ctx.counters.protocol_errors);
                    tracing::debug!(error = %e, "protocol violation");
                    return Some(e.to_error_frame());
                }
                Ok(Accepted::Close) => {
                    tracing::debug!(?frame, "peer closed the connection");
                    return None;
                }
                Ok(Accepted::Discard) => {}
                Ok(Accepted::Deliver) => {
                    let delivered = match frame {
                        Frame::Request(r) => {
                            let xorb = r.xorb;
                            handle_request(ctx, r, tx).await
                                && match pex.answer(ctx, conn, &xorb) {
                                    Some(f) => tx.send(Out::Frame(f)).await.is_ok(),
                                    None => true,
                                }
                        }
                        Frame::PeerExchange(p) => {
                            pex.receive(ctx, conn, &p);
                            true
                        }
                        Frame::Ping { nonce } => {
                            tx.send(Out::Frame(Frame::Pong { nonce })).await.is_ok()
                        }
                        // Handshake (recorded by the state machine), Cancel (the writer checks
                        // it), Have, Pong: nothing to do.
                        _ => true,
                    };
                    if !delivered {
                        return None;
                    }
                }
            }
        }
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        let (ready, pending) = {
            let c = lock(conn);
            (c.peer().is_some(), c.incoming_in_flight())
        };
        let deadline = if ready {
            last_frame + cfg.idle_timeout
        } else {
            handshake_deadline
        };
        tokio::select! {
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "read failed");
                    return None;
                }
            },
            _ = tokio::time::sleep_until(deadline) => {
                if ready && pending > 0 {
                    // Responses are still being produced or written: not idle.
                    last_frame = Instant::now();
                } else {
                    inc(&ctx.counters.timeouts);
                    let what = if ready { "idle timeout" } else { "no Handshake in time" };
                    return Some(conn_error(ErrorCode::TIMEOUT, what));
                }
            }
            _ = stop.changed() => {
                return Some(conn_error(ErrorCode::SHUTTING_DOWN, "server shutting down"));
            }
            _ = tx.closed() => return None,
        }
    }
}

/// Xorbs per connection the server sends a PeerExchange for, at most (a requester asking for
/// more xorbs gets no more PeerExchange frames on that connection).
const PEX_XORBS_PER_CONNECTION: usize = 4096;

/// The peer-exchange state of one connection.
struct Pex {
    /// The requester's socket address (its IP is the only one its PeerExchange may name).
    remote: SocketAddr,
    /// The requester's advertised address, once its PeerExchange named it.
    advertised: Option<SocketAddr>,
    /// Xorbs a PeerExchange was sent for (or considered) on this connection.
    answered: std::collections::HashSet<MerkleHash>,
}

impl Pex {
    fn new(remote: SocketAddr) -> Self {
        Self {
            remote,
            advertised: None,
            answered: Default::default(),
        }
    }

    /// Whether the peer advertised `PEER_EXCHANGE` (and we have a book).
    fn enabled<'a>(ctx: &'a Ctx, conn: &SharedConn) -> Option<&'a super::PeerBook> {
        let book = ctx.config.book.as_deref()?;
        let caps = lock(conn).peer()?.capabilities;
        caps.contains(Capabilities::PEER_EXCHANGE).then_some(book)
    }

    /// The PeerExchange to send after answering the connection's first Request for `xorb`:
    /// the book's peers for it, without the requester; none when empty or already sent.
    fn answer(&mut self, ctx: &Ctx, conn: &SharedConn, xorb: &MerkleHash) -> Option<Frame> {
        let book = Self::enabled(ctx, conn)?;
        if self.answered.len() >= PEX_XORBS_PER_CONNECTION || !self.answered.insert(*xorb) {
            return None;
        }
        let peers: Vec<String> = book
            .peers(xorb, super::book::PEX_SEND_MAX, self.advertised)
            .iter()
            .map(SocketAddr::to_string)
            .collect();
        if peers.is_empty() {
            return None;
        }
        inc(&ctx.counters.pex_sent);
        Some(Frame::PeerExchange(wire::PeerExchange {
            xorb: *xorb,
            peers,
        }))
    }

    /// A requester's PeerExchange: it announces itself as a swarm member for the xorb. Only an
    /// address on the requester's own IP is taken (the first one), so a requester cannot make
    /// this server's book, and the peers it tells, point at anyone else.
    fn receive(&mut self, ctx: &Ctx, conn: &SharedConn, p: &wire::PeerExchange) {
        let Some(book) = Self::enabled(ctx, conn) else {
            return;
        };
        let own = super::book::parse_peers(&p.peers).find(|a| a.ip() == self.remote.ip());
        let Some(a) = own else {
            tracing::debug!(xorb = %p.xorb, "PeerExchange names no address of the requester; ignored");
            return;
        };
        self.advertised.get_or_insert(a);
        let n = book.learn_exchanged(&p.xorb, [a]);
        ctx.counters
            .pex_learned
            .fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Queues the answer to a Request (or starts its upstream fetch). False when the writer is
/// gone.
async fn handle_request(ctx: &Arc<Ctx>, r: Request, tx: &mpsc::Sender<Out>) -> bool {
    inc(&ctx.counters.requests);
    let range = r.chunks.start..r.chunks.end;
    let id = r.request_id;
    let held = ctx.store.get_cover_async(&r.xorb, range.clone()).await;
    let fetcher = ctx.config.upstream.clone();
    let can_fetch = fetcher.is_some() && r.upstream.is_some();
    if let Some(pieces) = held {
        let mismatch = r.chunk_hashes.as_ref().is_some_and(|want| {
            let have: Vec<MerkleHash> = pieces
                .iter()
                .flat_map(|p| p.chunk_hashes().iter().copied())
                .collect();
            &have != want
        });
        if !mismatch {
            inc(&ctx.counters.hits);
            return tx
                .send(Out::Response {
                    request_id: id,
                    num_chunks: r.chunks.len(),
                    pieces,
                })
                .await
                .is_ok();
        }
        let best = pieces.iter().map(|p| p.level()).min();
        if !(can_fetch && best < Some(VerificationLevel::ChunkHashesVerified)) {
            // Our proven bytes disagree with the requester's hashes: refuse, never serve them.
            let msg = "stored chunk hashes differ from the requested ones";
            return tx
                .send(Out::Frame(Frame::Error(ErrorFrame {
                    request_id: id,
                    code: ErrorCode::VERIFICATION_FAILED,
                    message: msg.into(),
                })))
                .await
                .is_ok();
        }
        // Only structurally checked bytes that disagree: refetch (the store drops unproven
        // ranges that disagree with the new bytes, and refuses bytes that contradict proven
        // ones).
    }
    let (Some(fetcher), Some(upstream)) = (fetcher, r.upstream.clone()) else {
        inc(&ctx.counters.not_found);
        return tx
            .send(Out::Frame(Frame::NotFound { request_id: id }))
            .await
            .is_ok();
    };
    let Some(want_len) = upstream_len(&upstream) else {
        return tx
            .send(Out::Frame(Frame::Error(ErrorFrame {
                request_id: id,
                code: ErrorCode::INVALID_REQUEST,
                message: "upstream byte range is inverted or too long".into(),
            })))
            .await
            .is_ok();
    };
    let ctx = ctx.clone();
    let tx = tx.clone();
    tokio::spawn(async move {
        // The requester's hashes may reject the fetched bytes, never vouch for them: what is
        // kept stays `Structural` unless the store can prove more on its own.
        let wanted = r.chunk_hashes.clone();
        let expected = match r.chunk_hashes {
            Some(h) => Expectation::requester_hashes(h),
            None => Expectation::structural(),
        };
        let xorb = r.xorb;
        let fetch = || async {
            let bytes = fetcher.fetch(&xorb, range.clone(), &upstream).await?;
            if bytes.len() as u64 != want_len {
                return Err(format!(
                    "upstream returned {} bytes for a {want_len}-byte range",
                    bytes.len()
                ));
            }
            Ok(bytes)
        };
        let res = ctx
            .flights
            .get_or_fetch(xorb, range.clone(), expected, fetch)
            .await;
        // A coalesced fetch was verified against another requester's hashes: check ours.
        let res = match (res, &wanted) {
            (Ok((view, _)), Some(h)) if view.chunk_hashes() != h.as_slice() => {
                Err(FetchError::Verification(
                    "stored chunk hashes differ from the requested ones".into(),
                ))
            }
            (res, _) => res,
        };
        let out = match res {
            Ok((view, source)) => {
                if source != FetchSource::Store {
                    inc(&ctx.counters.upstream_served);
                } else {
                    inc(&ctx.counters.hits);
                }
                Out::Response {
                    request_id: id,
                    num_chunks: r.chunks.len(),
                    pieces: vec![view],
                }
            }
            Err(e) => {
                inc(&ctx.counters.upstream_failed);
                let code = match e {
                    FetchError::Verification(_) => ErrorCode::VERIFICATION_FAILED,
                    FetchError::Upstream(_) => ErrorCode::UPSTREAM_FAILED,
                    FetchError::Store(_) => ErrorCode::INTERNAL,
                };
                let mut message = e.to_string();
                truncate_message(&mut message);
                Out::Frame(Frame::Error(ErrorFrame {
                    request_id: id,
                    code,
                    message,
                }))
            }
        };
        let _ = tx.send(out).await;
    });
    true
}

/// Bytes in the upstream part's inclusive byte range, `None` when it is inverted or longer
/// than any range may be (checked arithmetic: both ends come from the network).
fn upstream_len(u: &Upstream) -> Option<u64> {
    let len = u.byte_end.checked_sub(u.byte_start)?.checked_add(1)?;
    (len <= crate::MAX_RANGE_BYTES as u64).then_some(len)
}

fn truncate_message(m: &mut String) {
    if m.len() > wire::MAX_ERROR_MESSAGE_LEN {
        let mut cut = wire::MAX_ERROR_MESSAGE_LEN;
        while !m.is_char_boundary(cut) {
            cut -= 1;
        }
        m.truncate(cut);
    }
}

/// Why the writer stopped.
enum Stop {
    /// The connection must end now (write failure, close frame written, state bug).
    Close,
}

async fn write_loop<W: ConnWrite>(
    ctx: Arc<Ctx>,
    conn: SharedConn,
    mut wr: W,
    handshake: Frame,
    mut rx: mpsc::Receiver<Out>,
    mut close_rx: mpsc::Receiver<Frame>,
) {
    let mut w = Writer {
        ctx: &ctx,
        conn: &conn,
        wr: &mut wr,
        scratch: BytesMut::with_capacity(256),
    };
    let mut open = w.write_frame(&handshake).await.is_ok();
    while open {
        let out = tokio::select! {
            biased;
            Some(frame) = close_rx.recv() => {
                let _ = w.write_close(frame).await;
                break;
            }
            out = rx.recv() => match out {
                Some(o) => o,
                None => break,
            },
        };
        let res = match out {
            Out::Frame(f) => w.write_frame(&f).await,
            Out::Response {
                request_id,
                num_chunks,
                pieces,
            } => {
                w.write_response(request_id, num_chunks, pieces, &mut close_rx)
                    .await
            }
        };
        open = res.is_ok();
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
}

struct Writer<'a, W> {
    ctx: &'a Ctx,
    conn: &'a SharedConn,
    wr: &'a mut W,
    scratch: BytesMut,
}

impl<W: ConnWrite> Writer<'_, W> {
    async fn write_all(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        match tokio::time::timeout(self.ctx.config.write_timeout, self.wr.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "write failed");
                Err(Stop::Close)
            }
            Err(_) => {
                inc(&self.ctx.counters.timeouts);
                tracing::debug!("peer stopped reading");
                Err(Stop::Close)
            }
        }
    }

    async fn flush(&mut self) -> Result<(), Stop> {
        match tokio::time::timeout(self.ctx.config.write_timeout, self.wr.flush()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Stop::Close),
        }
    }

    async fn write_frame(&mut self, frame: &Frame) -> Result<(), Stop> {
        if let Err(e) = lock(self.conn).on_send(frame) {
            // A response to a request that ended meanwhile (e.g. cancelled): skip it.
            tracing::debug!(error = %e, "not sending frame");
            return Ok(());
        }
        self.scratch.clear();
        if frame.encode(&mut self.scratch).is_err() {
            return Err(Stop::Close);
        }
        let bytes = std::mem::take(&mut self.scratch);
        let r = self.write_all(&bytes).await;
        self.scratch = bytes;
        r?;
        self.flush().await
    }

    async fn write_close(&mut self, frame: Frame) -> Result<(), Stop> {
        let _ = lock(self.conn).on_send(&frame);
        let bytes = frame.to_vec().map_err(|_| Stop::Close)?;
        self.write_all(&bytes).await?;
        self.flush().await
    }

    async fn write_response(
        &mut self,
        request_id: u32,
        num_chunks: u32,
        pieces: Vec<RangeView>,
        close_rx: &mut mpsc::Receiver<Frame>,
    ) -> Result<(), Stop> {
        let total: u64 = pieces.iter().map(|p| p.len() as u64).sum();
        if lock(self.conn).is_incoming_cancelled(request_id) {
            return self.write_frame(&cancelled(request_id)).await;
        }
        let header = Frame::DataHeader(DataHeader {
            request_id,
            total_len: total,
            num_chunks,
        });
        if let Err(e) = lock(self.conn).on_send(&header) {
            // The request ended meanwhile (e.g. cancelled and answered): skip it.
            tracing::debug!(error = %e, "not sending response");
            return Ok(());
        }
        // The DataHeader leaves together with the first Data frame's header (and, on the
        // zero-copy path, with the start of its payload).
        self.scratch.clear();
        if header.encode(&mut self.scratch).is_err() {
            return Err(Stop::Close);
        }
        let piece_len = self
            .ctx
            .config
            .piece_len
            .clamp(1, lock(self.conn).max_data_piece());
        let mut offset = 0u64;
        for view in pieces {
            let mut pos = 0usize;
            while pos < view.len() {
                if let Ok(frame) = close_rx.try_recv() {
                    let _ = self.write_close(frame).await;
                    return Err(Stop::Close);
                }
                if lock(self.conn).is_incoming_cancelled(request_id) {
                    return self.write_frame(&cancelled(request_id)).await;
                }
                let n = piece_len.min(view.len() - pos);
                let last = offset + n as u64 == total;
                if let Err(e) = lock(self.conn).on_send_data(request_id, offset, n, last) {
                    tracing::warn!(error = %e, "data frame refused by the state machine");
                    return Err(Stop::Close);
                }
                if wire::encode_data_header(request_id, offset, last, n, &mut self.scratch).is_err()
                {
                    return Err(Stop::Close);
                }
                if let Some(rate) = &self.ctx.config.upload_rate {
                    rate.take(n).await;
                }
                self.write_piece(&view, pos, n).await?;
                self.scratch.clear();
                self.ctx
                    .counters
                    .bytes_served
                    .fetch_add(n as u64, Ordering::Relaxed);
                pos += n;
                offset += n as u64;
            }
        }
        if !self.scratch.is_empty() {
            // No piece followed the DataHeader (an empty cover; never expected).
            let hdr = std::mem::take(&mut self.scratch);
            let r = self.write_all(&hdr).await;
            self.scratch = hdr;
            r?;
        }
        self.flush().await
    }

    /// Writes the frame bytes in `scratch` (a Data frame's header, possibly after the
    /// DataHeader) and then bytes `pos..pos + n` of `view` as its payload.
    async fn write_piece(&mut self, view: &RangeView, pos: usize, n: usize) -> Result<(), Stop> {
        #[cfg(target_os = "linux")]
        if let (Some(tcp), Some((file, base, _))) = (self.wr.plain_tcp(), view.file_segment()) {
            use crate::zerocopy::{send_more, sendfile_all, SendFileError};
            // Zero-copy: the header with MSG_MORE, then the payload from the page cache.
            let stall = self.ctx.config.write_timeout;
            let sent = match send_more(tcp, &self.scratch, stall).await {
                Ok(()) => sendfile_all(tcp, file, base + pos as u64, n, stall).await,
                Err(e) => Err(e),
            };
            return match sent {
                Ok(()) => Ok(()),
                // The header went out: the rest of the payload by plain writes.
                Err(SendFileError::Unsupported { sent }) => {
                    self.write_all(&view[pos + sent..pos + n]).await
                }
                Err(SendFileError::Stalled) => {
                    inc(&self.ctx.counters.timeouts);
                    tracing::debug!("peer stopped reading");
                    Err(Stop::Close)
                }
                Err(e) => {
                    tracing::debug!(error = %e, "sendfile failed");
                    Err(Stop::Close)
                }
            };
        }
        let hdr = std::mem::take(&mut self.scratch);
        let r = self.write_all(&hdr).await;
        self.scratch = hdr;
        r?;
        // Straight from the memory map (or a blob reference's built records): nothing is copied
        // before the stream's own write.
        self.write_all(&view[pos..pos + n]).await
    }
}

fn cancelled(request_id: u32) -> Frame {
    Frame::Error(ErrorFrame {
        request_id,
        code: ErrorCode::CANCELLED,
        message: "cancelled".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(byte_start: u64, byte_end: u64) -> Upstream {
        Upstream {
            url: "http://u/x".into(),
            byte_start,
            byte_end,
        }
    }

    #[test]
    fn upstream_len_of_full_u64_range_does_not_overflow() {
        assert_eq!(upstream_len(&up(0, u64::MAX)), None);
        assert_eq!(upstream_len(&up(u64::MAX, u64::MAX)), Some(1));
        assert_eq!(upstream_len(&up(5, 4)), None);
        assert_eq!(upstream_len(&up(100, 199)), Some(100));
        let max = crate::MAX_RANGE_BYTES as u64;
        assert_eq!(upstream_len(&up(0, max - 1)), Some(max));
        assert_eq!(upstream_len(&up(0, max)), None);
    }
}
