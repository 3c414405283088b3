//! The peer client: one connection to a peer server (TCP or TLS), the Handshake exchange, and
//! [`PeerClient::fetch`], which may be called concurrently: requests are pipelined on the
//! connection up to the server's advertised `max_in_flight` (further callers wait for a slot).
//! A background task reads frames, checks them with the protocol state machine and assembles
//! each response (bounded by `max_response_len`). A request that times out is cancelled.
//!
//! Each request has three deadlines ([`PeerError::Deadline`] says which one passed): its first
//! response frame (DataHeader, NotFound or Error) within `first_frame_timeout`, counted from
//! when it was sent or, while earlier responses on the connection are still arriving, from the
//! last of their progress (a server may answer in order); after its DataHeader, payload within
//! `stall_timeout` of the last payload (bytes read count, not only whole frames); and the whole
//! response within `request_timeout`. A peer that accepts the connection and never answers thus
//! costs a request its first-frame deadline, one that stops mid-response its stall deadline.
//! With a [`PeerBook`] in the config, the client speaks peer exchange (see
//! [`PeerClientConfig::book`]).
//!
//! Data payloads are read from the socket straight into the response buffer, which is allocated
//! once at the DataHeader (its size checked against `max_response_len`). Response buffers come
//! from a small per-connection pool: when the caller drops the returned [`Bytes`], its buffer
//! goes back to the pool (up to [`PeerClientConfig::reuse_buffers`] are kept), so a client
//! fetching range after range does not map, fault in and unmap a fresh buffer each time.
//!
//! The bytes returned are what the peer sent; verify them (e.g. [`crate::verify_range`]) before
//! use. [`PeerClient::fetch_verified`] does that against an [`Expectation`].

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use wire::{
    Accepted, Capabilities, ChunkRange, Connection, Frame, Handshake, Limits, ProtocolError,
    Request, Role, Upstream,
};
use xet::MerkleHash;

use super::{Deadline, PeerBook, PeerError};
use crate::verify::{verify_range, Expectation, RangeMeta};

/// Settings of a [`PeerClient`].
#[derive(Debug, Clone)]
pub struct PeerClientConfig {
    /// Our peer id in the Handshake (1..=64 bytes).
    pub peer_id: String,
    /// `Role::Client` for `zest pull`, `Role::Edge` for an edge asking another edge.
    pub role: Role,
    /// What we accept: frame size, and the largest response.
    pub limits: Limits,
    pub connect_timeout: Duration,
    /// Longest wait for the server's Handshake once connected (a server that accepts the
    /// connection and never sends it fails with [`PeerError::Timeout`]).
    pub handshake_timeout: Duration,
    /// Default time for one whole response (overridable per request).
    pub request_timeout: Duration,
    /// Default time for a request's first response frame, DataHeader, NotFound or Error
    /// (overridable per request). Counted from when the request was sent, or from the last
    /// progress of an earlier response still arriving on the connection.
    pub first_frame_timeout: Duration,
    /// Default longest gap in a response's payload after its DataHeader (overridable per
    /// request).
    pub stall_timeout: Duration,
    /// Response buffers kept for reuse once the caller has dropped the bytes returned (each is
    /// at most `limits.max_response_len`); 0 frees every buffer.
    pub reuse_buffers: usize,
    /// Peer exchange (none: neither sent nor accepted). With a book, the Handshake advertises
    /// `PEER_EXCHANGE`; when the server advertised it too, PeerExchange frames it sends are
    /// learned into the book, and, when the book has an own address (we serve), the first
    /// Request for each xorb on the connection is preceded by a PeerExchange naming that
    /// address: we are a swarm member for the xorb.
    pub book: Option<Arc<PeerBook>>,
}

impl PeerClientConfig {
    /// Defaults from `libs/wire`.
    pub fn new(peer_id: impl Into<String>, role: Role) -> Self {
        Self {
            peer_id: peer_id.into(),
            role,
            limits: Limits::default(),
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: wire::HANDSHAKE_TIMEOUT,
            request_timeout: wire::REQUEST_TIMEOUT,
            first_frame_timeout: wire::REQUEST_TIMEOUT,
            stall_timeout: wire::DATA_STALL_TIMEOUT,
            reuse_buffers: 1,
            book: None,
        }
    }
}

/// Xorbs per connection we announce ourselves for, at most.
const PEX_XORBS_PER_CONNECTION: usize = 4096;

/// Optional parts of a request.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// The signed upstream URL and byte range, so an edge can fetch the range on our behalf.
    pub upstream: Option<Upstream>,
    /// The expected chunk hashes (the server refuses to serve bytes that disagree).
    pub chunk_hashes: Option<Vec<MerkleHash>>,
    /// Overrides the config's request timeout (the whole response).
    pub timeout: Option<Duration>,
    /// Overrides the config's first-frame timeout.
    pub first_frame_timeout: Option<Duration>,
    /// Overrides the config's stall timeout.
    pub stall_timeout: Option<Duration>,
}

type Reply = oneshot::Sender<Result<Bytes, PeerError>>;

struct Pending {
    reply: Reply,
    body: Option<Vec<u8>>,
    progress: Arc<Progress>,
}

/// What the reader has seen of one response, for its deadlines (read by the waiting caller).
#[derive(Debug, Default)]
struct Progress {
    /// Its DataHeader arrived.
    started: AtomicBool,
    /// Notified when the DataHeader arrives (the waiter's deadline changes).
    header: tokio::sync::Notify,
    /// When it last made progress, in nanoseconds since [`Shared::epoch`].
    last: AtomicU64,
}

/// The deadlines of one request.
#[derive(Debug, Clone, Copy)]
struct RequestLimits {
    whole: Duration,
    first_frame: Duration,
    stall: Duration,
}

/// A write of a Cancel frame that takes longer than this (the peer stopped reading) closes the
/// connection instead.
const CANCEL_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Pooled response buffers are allocated in multiples of this (untouched pages cost nothing).
const POOL_ROUNDING: usize = 1 << 20;

/// Response buffers to reuse: at most `max_idle`, each with a capacity of at most `max_len`.
#[derive(Debug)]
struct BufPool {
    idle: Mutex<Vec<Vec<u8>>>,
    max_idle: usize,
    max_len: usize,
}

impl BufPool {
    /// An empty buffer with room for `len` bytes: a pooled one large enough, or a new one.
    fn take(&self, len: usize) -> Vec<u8> {
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            let fit = idle.iter().position(|b| b.capacity() >= len);
            fit.map(|i| idle.swap_remove(i))
        };
        match reused {
            Some(mut b) => {
                b.clear();
                b
            }
            // Rounded up so that the next response, of a slightly different size, fits too.
            None => Vec::with_capacity(
                len.checked_next_multiple_of(POOL_ROUNDING)
                    .unwrap_or(len)
                    .min(self.max_len)
                    .max(len),
            ),
        }
    }

    fn put(&self, buf: Vec<u8>) {
        if buf.capacity() == 0 || buf.capacity() > self.max_len {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push(buf);
        } else if let Some(smallest) = idle.iter_mut().min_by_key(|b| b.capacity()) {
            // Keep the largest buffers: they fit any response a smaller one fits.
            if smallest.capacity() < buf.capacity() {
                *smallest = buf;
            }
        }
    }
}

/// A response body that returns its buffer to the pool when the last [`Bytes`] over it drops.
struct Pooled {
    buf: Vec<u8>,
    pool: std::sync::Weak<BufPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.put(std::mem::take(&mut self.buf));
        }
    }
}

type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

struct Shared {
    conn: Mutex<Connection>,
    writer: tokio::sync::Mutex<BoxWrite>,
    pending: Mutex<HashMap<u32, Pending>>,
    slots: Semaphore,
    closed: AtomicBool,
    close_reason: Mutex<Option<String>>,
    peer: Handshake,
    request_timeout: Duration,
    first_frame_timeout: Duration,
    stall_timeout: Duration,
    /// The origin of the instants kept as nanoseconds ([`Progress::last`], `activity`).
    epoch: Instant,
    /// When any response on the connection last made progress (nanoseconds since `epoch`).
    activity: AtomicU64,
    pool: Arc<BufPool>,
    /// The book, when both sides speak peer exchange.
    book: Option<Arc<PeerBook>>,
    /// Xorbs we announced ourselves for on this connection.
    announced: Mutex<HashSet<MerkleHash>>,
}

impl Shared {
    /// The finished response `body` as bytes whose buffer returns to the pool when dropped.
    fn finish(&self, body: Vec<u8>) -> Bytes {
        if self.pool.max_idle == 0 {
            return Bytes::from(body);
        }
        Bytes::from_owner(Pooled {
            buf: body,
            pool: Arc::downgrade(&self.pool),
        })
    }

    fn since_epoch(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn at(&self, nanos: u64) -> Instant {
        self.epoch + Duration::from_nanos(nanos)
    }

    /// The response `p` (and so the connection) made progress just now.
    fn touch(&self, p: &Progress) {
        let now = self.since_epoch(Instant::now());
        p.last.fetch_max(now, Ordering::Relaxed);
        self.activity.fetch_max(now, Ordering::Relaxed);
    }

    /// A response that is not pending any more (NotFound, Error, or cancelled) made progress:
    /// the connection is alive.
    fn touch_connection(&self) {
        let now = self.since_epoch(Instant::now());
        self.activity.fetch_max(now, Ordering::Relaxed);
    }

    /// When the deadline that applies now to the request sent at `sent` with `progress` passes
    /// (and which one): the first-frame deadline until its DataHeader, then the stall deadline,
    /// or `whole` when that comes first.
    fn next_deadline(
        &self,
        sent: Instant,
        progress: &Progress,
        limits: &RequestLimits,
        whole: Instant,
    ) -> (Instant, Deadline) {
        let (at, which) = if progress.started.load(Ordering::Relaxed) {
            let last = self.at(progress.last.load(Ordering::Relaxed));
            (last + limits.stall, Deadline::Stall(limits.stall))
        } else {
            // Responses may come in order: while an earlier one is still arriving, ours cannot
            // start, so its progress counts as the connection answering.
            let busy = self.at(self.activity.load(Ordering::Relaxed));
            (
                sent.max(busy) + limits.first_frame,
                Deadline::FirstFrame(limits.first_frame),
            )
        };
        if whole <= at {
            (whole, Deadline::Whole(limits.whole))
        } else {
            (at, which)
        }
    }

    /// Cancels request `id` if it is still pending (best effort; a peer that does not read it
    /// within [`CANCEL_WRITE_TIMEOUT`] loses the connection, as a partly written frame would
    /// break the stream).
    async fn cancel(&self, id: u32) {
        let was_pending = self.pending().remove(&id).is_some();
        if !was_pending {
            return;
        }
        let sent = tokio::time::timeout(
            CANCEL_WRITE_TIMEOUT,
            self.send(&Frame::Cancel { request_id: id }),
        )
        .await;
        if sent.is_err() {
            self.close("the peer stopped reading (a Cancel could not be written)".into());
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The PeerExchange announcing us for `xorb`, once per xorb on this connection, when both
    /// sides speak peer exchange and we serve.
    fn self_announcement(&self, xorb: &MerkleHash) -> Option<Frame> {
        let own = self.book.as_ref()?.own()?;
        let mut announced = self.announced.lock().unwrap_or_else(|p| p.into_inner());
        if announced.len() >= PEX_XORBS_PER_CONNECTION || !announced.insert(*xorb) {
            return None;
        }
        Some(Frame::PeerExchange(wire::PeerExchange {
            xorb: *xorb,
            peers: vec![own.to_string()],
        }))
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks the connection closed and fails every pending request.
    fn close(&self, reason: String) {
        self.closed.store(true, Ordering::SeqCst);
        self.slots.close();
        {
            let mut r = self.close_reason.lock().unwrap_or_else(|p| p.into_inner());
            if r.is_none() {
                *r = Some(reason.clone());
            }
        }
        let drained: Vec<Pending> = self.pending().drain().map(|(_, p)| p).collect();
        for p in drained {
            let _ = p.reply.send(Err(PeerError::Closed(reason.clone())));
        }
    }

    fn closed_error(&self) -> PeerError {
        let r = self.close_reason.lock().unwrap_or_else(|p| p.into_inner());
        PeerError::Closed(r.clone().unwrap_or_else(|| "closed".into()))
    }

    /// Checks `frame` with the state machine and writes it, keeping the wire order equal to the
    /// state machine's order (both under the writer lock).
    async fn send(&self, frame: &Frame) -> Result<(), PeerError> {
        let mut w = self.writer.lock().await;
        self.conn().on_send(frame)?;
        let bytes = frame.to_vec()?;
        w.write_all(&bytes).await.map_err(PeerError::io("write"))?;
        w.flush().await.map_err(PeerError::io("flush"))
    }
}

/// A connection to one peer server. `fetch` takes `&self` and may run concurrently; share the
/// client with an `Arc`. Dropping it closes the connection.
pub struct PeerClient {
    shared: Arc<Shared>,
    reader: JoinHandle<()>,
}

impl std::fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerClient")
            .field("peer", &self.shared.peer.peer_id)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Drop for PeerClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl PeerClient {
    /// Connects over plain TCP and exchanges Handshakes.
    pub async fn connect(
        addr: SocketAddr,
        config: PeerClientConfig,
    ) -> Result<PeerClient, PeerError> {
        let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| PeerError::Timeout("connect"))?
            .map_err(PeerError::io("connect"))?;
        let _ = stream.set_nodelay(true);
        // Owned halves: no lock shared between the reader and writers, unlike a generic split.
        let (rd, wr) = stream.into_split();
        Self::over_halves(rd, wr, config).await
    }

    /// Connects over TLS (verifying the server as `server_name`) and exchanges Handshakes.
    pub async fn connect_tls(
        addr: SocketAddr,
        server_name: &str,
        tls: Arc<rustls::ClientConfig>,
        config: PeerClientConfig,
    ) -> Result<PeerClient, PeerError> {
        let name = rustls::pki_types::ServerName::try_from(server_name.to_string())
            .map_err(|e| PeerError::Tls(format!("server name {server_name:?}: {e}")))?;
        let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| PeerError::Timeout("connect"))?
            .map_err(PeerError::io("connect"))?;
        let _ = stream.set_nodelay(true);
        let connector = tokio_rustls::TlsConnector::from(tls);
        let tls_stream =
            tokio::time::timeout(config.handshake_timeout, connector.connect(name, stream))
                .await
                .map_err(|_| PeerError::Timeout("TLS handshake"))?
                .map_err(|e| PeerError::Tls(e.to_string()))?;
        Self::over(tls_stream, config).await
    }

    /// Runs the protocol over an already-connected byte stream.
    pub async fn over<S>(stream: S, config: PeerClientConfig) -> Result<PeerClient, PeerError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (rd, wr) = tokio::io::split(stream);
        Self::over_halves(rd, wr, config).await
    }

    async fn over_halves<R, W>(
        mut rd: R,
        mut wr: W,
        config: PeerClientConfig,
    ) -> Result<PeerClient, PeerError>
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let caps = if config.book.is_some() {
            Capabilities::PEER_EXCHANGE
        } else {
            Capabilities::NONE
        };
        let hs = Handshake::new(config.peer_id.clone(), config.role, caps, &config.limits);
        let mut conn = Connection::new(hs, config.limits);
        let hs_frame = conn.handshake_frame();
        conn.on_send(&hs_frame)?;
        let hs_bytes = hs_frame.to_vec()?;
        let max = conn.recv_max_frame_len();
        let mut buf = BytesMut::with_capacity(64 * 1024);
        // Both directions under the one limit: a server that accepts the connection and then
        // neither reads nor sends costs at most `handshake_timeout`.
        let first = tokio::time::timeout(config.handshake_timeout, async {
            wr.write_all(&hs_bytes)
                .await
                .map_err(PeerError::io("write"))?;
            wr.flush().await.map_err(PeerError::io("flush"))?;
            loop {
                if let Some(f) = wire::decode_buf(&mut buf, max)? {
                    return Ok(f);
                }
                let n = rd.read_buf(&mut buf).await.map_err(PeerError::io("read"))?;
                if n == 0 {
                    return Err(PeerError::Closed("closed before the Handshake".into()));
                }
            }
        })
        .await
        .map_err(|_| PeerError::Timeout("handshake"))??;
        match conn.on_receive(&first) {
            Ok(Accepted::Deliver) => {}
            Ok(_) => {
                let msg = match &first {
                    Frame::Error(e) => format!("{}: {}", e.code, e.message),
                    _ => "refused".into(),
                };
                return Err(PeerError::Closed(msg));
            }
            Err(e) => {
                let _ = wr
                    .write_all(&e.to_error_frame().to_vec().unwrap_or_default())
                    .await;
                return Err(e.into());
            }
        }
        let peer = conn
            .peer()
            .cloned()
            .ok_or(PeerError::Closed("no Handshake".into()))?;
        let slots = usize::from(peer.max_in_flight);
        let book = config
            .book
            .filter(|_| peer.capabilities.contains(Capabilities::PEER_EXCHANGE));
        let shared = Arc::new(Shared {
            conn: Mutex::new(conn),
            writer: tokio::sync::Mutex::new(Box::new(wr)),
            pending: Mutex::new(HashMap::new()),
            slots: Semaphore::new(slots),
            closed: AtomicBool::new(false),
            close_reason: Mutex::new(None),
            peer,
            request_timeout: config.request_timeout,
            first_frame_timeout: config.first_frame_timeout,
            stall_timeout: config.stall_timeout,
            epoch: Instant::now(),
            activity: AtomicU64::new(0),
            pool: Arc::new(BufPool {
                idle: Mutex::new(Vec::new()),
                max_idle: config.reuse_buffers,
                max_len: usize::try_from(config.limits.max_response_len).unwrap_or(usize::MAX),
            }),
            book,
            announced: Mutex::new(HashSet::new()),
        });
        let reader = tokio::spawn(read_loop(shared.clone(), rd, buf, max));
        Ok(PeerClient { shared, reader })
    }

    /// The server's Handshake.
    pub fn peer(&self) -> &Handshake {
        &self.shared.peer
    }

    /// Whether the connection has ended (every further fetch fails).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Fetches the chunk records of chunks `range` of `xorb`, handing the server `upstream` so
    /// an edge can fetch it on our behalf. [`PeerError::NotFound`] when the peer does not hold
    /// it. Unverified: see [`PeerClient::fetch_verified`].
    pub async fn fetch(
        &self,
        xorb: &MerkleHash,
        range: Range<u32>,
        upstream: Option<Upstream>,
    ) -> Result<Bytes, PeerError> {
        self.fetch_with(
            xorb,
            range,
            FetchOptions {
                upstream,
                ..FetchOptions::default()
            },
        )
        .await
    }

    /// [`PeerClient::fetch`] with every option. Fails with [`PeerError::Deadline`] (and cancels
    /// the request) when one of its deadlines passes (see the module documentation).
    pub async fn fetch_with(
        &self,
        xorb: &MerkleHash,
        range: Range<u32>,
        opts: FetchOptions,
    ) -> Result<Bytes, PeerError> {
        let shared = &self.shared;
        let limits = RequestLimits {
            whole: opts.timeout.unwrap_or(shared.request_timeout),
            first_frame: opts
                .first_frame_timeout
                .unwrap_or(shared.first_frame_timeout),
            stall: opts.stall_timeout.unwrap_or(shared.stall_timeout),
        };
        let deadline = Instant::now() + limits.whole;
        if self.is_closed() {
            return Err(shared.closed_error());
        }
        let _slot = tokio::time::timeout_at(deadline, shared.slots.acquire())
            .await
            .map_err(|_| PeerError::Timeout("waiting for a request slot"))?
            .map_err(|_| shared.closed_error())?;
        let (reply, mut rx) = oneshot::channel();
        let progress = Arc::new(Progress::default());
        // Writing the Request is bounded like its first response frame: a peer that stops
        // reading does not hold the caller.
        let write_deadline = deadline.min(Instant::now() + limits.first_frame);
        let mut w = tokio::time::timeout_at(write_deadline, shared.writer.lock())
            .await
            .map_err(|_| PeerError::Deadline(Deadline::FirstFrame(limits.first_frame)))?;
        // Allocate the id, register the reply and send, all in state-machine order.
        let announce = shared.self_announcement(xorb);
        let (id, frame) = {
            let mut conn = shared.conn();
            if let Some(a) = &announce {
                conn.on_send(a)?;
            }
            let id = conn.next_request_id();
            let frame = Frame::Request(Request {
                request_id: id,
                xorb: *xorb,
                chunks: ChunkRange::new(range.start, range.end),
                upstream: opts.upstream,
                chunk_hashes: opts.chunk_hashes,
            });
            conn.on_send(&frame)?;
            (id, frame)
        };
        shared.pending().insert(
            id,
            Pending {
                reply,
                body: None,
                progress: progress.clone(),
            },
        );
        let mut bytes = match &announce {
            Some(a) => a.to_vec()?,
            None => Vec::new(),
        };
        frame.encode(&mut bytes)?;
        let written = tokio::time::timeout_at(write_deadline, async {
            w.write_all(&bytes).await?;
            w.flush().await
        })
        .await;
        drop(w);
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                shared.close(format!("write failed: {e}"));
                return Err(PeerError::Io {
                    op: "write",
                    source: e,
                });
            }
            Err(_) => {
                // Part of the frame may be written: the stream cannot be used any more.
                shared.close("the peer stopped reading (a Request could not be written)".into());
                return Err(PeerError::Deadline(Deadline::FirstFrame(
                    limits.first_frame,
                )));
            }
        }
        let sent = Instant::now();
        loop {
            let (at, _) = shared.next_deadline(sent, &progress, &limits, deadline);
            tokio::select! {
                biased;
                r = &mut rx => return r.unwrap_or_else(|_| Err(shared.closed_error())),
                // The DataHeader arrived: the stall deadline applies from now on.
                _ = progress.header.notified() => continue,
                _ = tokio::time::sleep_until(at) => {}
            }
            // Progress may have been made meanwhile: the deadline may have moved.
            let (again, which) = shared.next_deadline(sent, &progress, &limits, deadline);
            if again > Instant::now() {
                continue;
            }
            shared.cancel(id).await;
            // The response may have completed just now.
            if let Ok(result) = rx.try_recv() {
                return result;
            }
            return Err(PeerError::Deadline(which));
        }
    }

    /// Fetches and verifies against `expected` (records decode, count matches, chunk hashes
    /// and xorb hash where `expected` allows). Returns the bytes and their metadata.
    pub async fn fetch_verified(
        &self,
        xorb: &MerkleHash,
        range: Range<u32>,
        expected: Expectation,
        mut opts: FetchOptions,
    ) -> Result<(Bytes, RangeMeta), PeerError> {
        if opts.chunk_hashes.is_none() {
            opts.chunk_hashes = expected.chunk_hashes.clone();
        }
        let bytes = self.fetch_with(xorb, range.clone(), opts).await?;
        let x = *xorb;
        let b = bytes.clone();
        let meta = tokio::task::spawn_blocking(move || verify_range(&x, range, &b, &expected))
            .await
            .map_err(|e| PeerError::Closed(format!("verify task: {e}")))?
            .map_err(|e| PeerError::Remote {
                code: wire::ErrorCode::VERIFICATION_FAILED,
                message: format!("peer sent bad bytes: {e}"),
            })?;
        Ok((bytes, meta))
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    shared: Arc<Shared>,
    mut rd: R,
    mut buf: BytesMut,
    max: u32,
) {
    // After a piece of a response still arriving, the next frame is most likely its next
    // piece: read just that frame's fixed part, so its payload is read straight into the
    // response instead of being buffered here and copied.
    let mut expect_piece = false;
    let reason = loop {
        // A Data frame of a response we are assembling: its payload goes from the socket
        // straight into the response buffer (one copy, no frame buffering).
        match wire::decode_data_prefix(&buf, max) {
            Ok(Some(prefix)) => match read_data_direct(&shared, &mut rd, &mut buf, prefix).await {
                Ok(true) => {
                    expect_piece = !prefix.last;
                    continue;
                }
                Ok(false) => {}
                Err(reason) => break reason,
            },
            Ok(None) => {}
            Err(e) => {
                let e = ProtocolError::from(e);
                let _ = shared.send(&e.to_error_frame()).await;
                break format!("protocol violation by the server: {e}");
            }
        }
        match wire::decode_buf(&mut buf, max) {
            Ok(Some(frame)) => {
                if let Err(reason) = handle_frame(&shared, frame).await {
                    break reason;
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                let e = ProtocolError::from(e);
                let _ = shared.send(&e.to_error_frame()).await;
                break format!("protocol violation by the server: {e}");
            }
        }
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        let read = if expect_piece && buf.len() < wire::DATA_PREFIX_LEN {
            let want = wire::DATA_PREFIX_LEN - buf.len();
            rd.read_buf(&mut (&mut buf).limit(want)).await
        } else {
            rd.read_buf(&mut buf).await
        };
        expect_piece = false;
        match read {
            Ok(0) => break "closed by the server".to_string(),
            Ok(_) => {}
            Err(e) => break format!("read failed: {e}"),
        }
    };
    tracing::debug!(%reason, "peer connection ended");
    shared.close(reason);
}

/// Receives the Data frame whose fixed part `prefix` starts `buf` when its response is pending
/// with a buffer: checks it with the state machine, then moves its payload (what `buf` already
/// holds, then the rest read from `rd` into the response buffer's spare capacity) into the
/// response. `Ok(false)`: not such a frame, nothing consumed (the caller decodes it whole).
/// `Err(reason)` ends the connection.
async fn read_data_direct<R: AsyncRead + Unpin>(
    shared: &Shared,
    rd: &mut R,
    buf: &mut BytesMut,
    prefix: wire::DataPrefix,
) -> Result<bool, String> {
    let taken = shared
        .pending()
        .get_mut(&prefix.request_id)
        .and_then(|p| Some((p.body.take()?, p.progress.clone())));
    let Some((mut body, progress)) = taken else {
        return Ok(false);
    };
    let accepted = shared.conn().on_receive_data(&prefix);
    match accepted {
        Ok(Accepted::Deliver) => {}
        Ok(_) => {
            // Cannot happen for a response still pending; decode it the ordinary way.
            if let Some(p) = shared.pending().get_mut(&prefix.request_id) {
                p.body = Some(body);
            }
            return Ok(false);
        }
        Err(e) => {
            let _ = shared.send(&e.to_error_frame()).await;
            return Err(format!("protocol violation by the server: {e}"));
        }
    }
    // The state machine checked the offset and that the piece ends within the announced total
    // (the capacity reserved at the DataHeader), so this never grows the buffer.
    buf.advance(wire::DATA_PREFIX_LEN);
    let held = buf.len().min(prefix.payload_len);
    body.extend_from_slice(&buf[..held]);
    buf.advance(held);
    shared.touch(&progress);
    let mut left = prefix.payload_len - held;
    while left > 0 {
        // Into the spare capacity (uninitialised, not zeroed first).
        let mut into = (&mut body).limit(left);
        match rd.read_buf(&mut into).await {
            Ok(0) => return Err("closed by the server".into()),
            Ok(n) => left -= n,
            Err(e) => return Err(format!("read failed: {e}")),
        }
        // Bytes of a large piece arriving are progress too (a slow but steady response).
        shared.touch(&progress);
    }
    let mut pending = shared.pending();
    if prefix.last {
        if let Some(p) = pending.remove(&prefix.request_id) {
            let _ = p.reply.send(Ok(shared.finish(body)));
        }
    } else if let Some(p) = pending.get_mut(&prefix.request_id) {
        p.body = Some(body);
    }
    // A request that timed out meanwhile is gone: its bytes are dropped.
    Ok(true)
}

/// Handles one received frame; `Err(reason)` ends the connection.
async fn handle_frame(shared: &Shared, frame: Frame) -> Result<(), String> {
    let accepted = shared.conn().on_receive(&frame);
    match accepted {
        Err(e) => {
            let _ = shared.send(&e.to_error_frame()).await;
            Err(format!("protocol violation by the server: {e}"))
        }
        Ok(Accepted::Close) => Err(match frame {
            Frame::Error(e) => format!("server closed the connection: {}: {}", e.code, e.message),
            _ => "server closed the connection".into(),
        }),
        Ok(Accepted::Discard) => Ok(()),
        Ok(Accepted::Deliver) => {
            match frame {
                Frame::DataHeader(h) => {
                    shared.touch_connection();
                    if let Some(p) = shared.pending().get_mut(&h.request_id) {
                        p.progress.started.store(true, Ordering::Relaxed);
                        shared.touch(&p.progress);
                        p.progress.header.notify_one();
                        // total_len is bounded by our max_response_len (checked by the state
                        // machine before delivery), so reserving it whole is bounded; it saves
                        // the copies of growing the buffer. Pages are touched only as Data
                        // arrives.
                        let cap = usize::try_from(h.total_len).unwrap_or(0);
                        p.body = Some(shared.pool.take(cap));
                    }
                }
                Frame::Data(d) => {
                    shared.touch_connection();
                    let mut pending = shared.pending();
                    if let Some(p) = pending.get_mut(&d.request_id) {
                        shared.touch(&p.progress);
                        if let Some(body) = p.body.as_mut() {
                            body.extend_from_slice(&d.payload);
                        }
                        if d.last {
                            if let Some(p) = pending.remove(&d.request_id) {
                                let body = shared.finish(p.body.unwrap_or_default());
                                let _ = p.reply.send(Ok(body));
                            }
                        }
                    }
                }
                Frame::NotFound { request_id } => {
                    shared.touch_connection();
                    if let Some(p) = shared.pending().remove(&request_id) {
                        let _ = p.reply.send(Err(PeerError::NotFound));
                    }
                }
                Frame::Error(e) => {
                    shared.touch_connection();
                    if let Some(p) = shared.pending().remove(&e.request_id) {
                        let _ = p.reply.send(Err(PeerError::Remote {
                            code: e.code,
                            message: e.message,
                        }));
                    }
                }
                Frame::Ping { nonce } => {
                    shared
                        .send(&Frame::Pong { nonce })
                        .await
                        .map_err(|e| format!("write failed: {e}"))?;
                }
                Frame::PeerExchange(p) => {
                    if let Some(book) = &shared.book {
                        let n = book.learn_exchanged(&p.xorb, super::book::parse_peers(&p.peers));
                        tracing::debug!(xorb = %p.xorb, sent = p.peers.len(), new = n, "peer exchange");
                    }
                }
                // A Request from a server (we serve nothing: answer NotFound), Have, Pong.
                Frame::Request(r) => {
                    shared
                        .send(&Frame::NotFound {
                            request_id: r.request_id,
                        })
                        .await
                        .map_err(|e| format!("write failed: {e}"))?;
                }
                _ => {}
            }
            Ok(())
        }
    }
}
