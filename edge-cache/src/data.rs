//! The data port: a small HTTP/1.1 server for xorb range URLs only (`GET`/`HEAD
//! /xorb/<hash>?<signed query>`), outside actix, that sends each body with `sendfile(2)` straight
//! from the store's range file, so body bytes never pass through user space (actix copies every
//! body byte into its write buffer). The rewritten reconstructions point their xorb URLs here;
//! the HTTP port keeps serving the same URLs.
//!
//! Everything is bounded: at most [`MAX_CONNECTIONS`] connections (more are closed at once), one
//! [`MAX_HEAD_BYTES`] buffer per connection for request heads, an idle timeout between requests
//! and a stall timeout on every write. Bad or oversized heads get a 400/431 and the connection is
//! closed. This module also holds [`resolve`], the range logic both ports share.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tracing::Instrument;
use xet::cas::{parse_range_header, ByteRange};
use xorbstore::zerocopy::{sendfile_all, SendFileError};
use xorbstore::RangeView;

use crate::edge::{Edge, Entry};
use crate::metrics::HttpConnection;

/// Most bytes of one request head (request line and headers).
pub const MAX_HEAD_BYTES: usize = 16 << 10;
/// Most headers in one request head.
const MAX_HEADERS: usize = 64;
/// Most connections open at once; connections accepted beyond it are closed at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long a connection may stay idle (or take to send a request head).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one write may make no progress before the connection is dropped.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long shutdown waits for responses in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Piece size of the plain-write fallback.
const WRITE_PIECE: usize = 64 << 10;

/// Why a xorb range request cannot be answered: an HTTP status and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RangeError {
    /// HTTP status code.
    pub status: u16,
    /// Said in the `{"error": ...}` body.
    pub message: String,
}

impl RangeError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

/// One part of the answer to a xorb range request: bytes `offset..offset + len` of `view`,
/// which are bytes `range` of the xorb.
#[derive(Debug, Clone)]
pub struct Part {
    /// The bytes of the xorb this part holds (inclusive).
    pub range: ByteRange,
    /// The stored range holding them.
    pub view: RangeView,
    /// Offset of the first byte within `view`.
    pub offset: usize,
    /// Number of bytes.
    pub len: usize,
}

impl Part {
    /// The part's bytes, from the store's memory map.
    pub fn bytes(&self) -> &[u8] {
        &self.view[self.offset..self.offset + self.len]
    }
}

/// The parts answering a request for edge xorb URL `/xorb/{hash}?{query}` with `Range` header
/// `range` (`None`: absent; `Some(Err(()))`: not text). Checks the URL's signature (403), the
/// asked ranges against the signed ones (416), and gets each range from the store or fetches it
/// once (502 when that fails). Shared by the data port and the HTTP port.
pub async fn resolve(
    edge: &Edge,
    hash: &str,
    query: &str,
    range: Option<Result<&str, ()>>,
) -> Result<Vec<Part>, RangeError> {
    let x = edge
        .signer
        .decode_xorb(hash, query)
        .map_err(|e| RangeError::new(403, e))?;
    let asked: Vec<ByteRange> = match range {
        Some(Ok(v)) => {
            parse_range_header(v, None).map_err(|e| RangeError::new(416, e.to_string()))?
        }
        Some(Err(())) => return Err(RangeError::new(400, "bad Range")),
        None if x.ranges.len() == 1 => vec![x.ranges[0].bytes],
        None => return Err(RangeError::new(400, "Range required")),
    };
    let mut parts = Vec::with_capacity(asked.len());
    for want in asked {
        let r = x
            .ranges
            .iter()
            .find(|r| r.bytes.start <= want.start && want.start <= r.bytes.end)
            .ok_or_else(|| RangeError::new(416, "range outside the signed ranges"))?;
        let end = want.end.min(r.bytes.end);
        if want.end != u64::MAX && want.end > r.bytes.end {
            return Err(RangeError::new(416, "range crosses signed ranges"));
        }
        let entry = Entry {
            xorb: x.xorb,
            chunks: r.chunks,
            bytes: r.bytes,
            url: x.upstream.clone(),
        };
        let view = edge.get_entry(&entry).await.map_err(|e| {
            tracing::warn!(xorb = %x.xorb, error = %e, "xorb range unavailable");
            RangeError::new(502, e.to_string())
        })?;
        if view.len() as u64 != r.bytes.len() {
            return Err(RangeError::new(
                502,
                format!(
                    "stored range is {} bytes, the URL says {}",
                    view.len(),
                    r.bytes.len()
                ),
            ));
        }
        parts.push(Part {
            range: ByteRange::new(want.start, end),
            offset: (want.start - r.bytes.start) as usize,
            len: (end - want.start + 1) as usize,
            view,
        });
    }
    if parts.is_empty() {
        return Err(RangeError::new(416, "no byte range asked"));
    }
    Ok(parts)
}

/// Serves the data port on `listener` until `stop` turns true, then lets responses in progress
/// finish (for at most 30 s) and returns.
pub async fn serve(
    listener: TcpListener,
    edge: Arc<Edge>,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            a = listener.accept() => a,
        };
        let (sock, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "data port accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "data port full: connection closed");
            drop(sock);
            continue;
        };
        let edge = edge.clone();
        let stop = stop.clone();
        tokio::spawn(
            async move {
                let _slot = slot;
                connection(sock, &edge, stop).await;
            }
            .instrument(tracing::info_span!("data", %peer)),
        );
    }
    drop(listener);
    // Every slot back = every connection finished.
    let all = MAX_CONNECTIONS as u32;
    if tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("data port: connections still open at shutdown");
    }
    Ok(())
}

/// What the connection loop needs of one parsed request head.
#[derive(Debug)]
struct Request {
    method: String,
    target: String,
    http10: bool,
    range: Option<Result<String, ()>>,
    keep_alive: bool,
    has_body: bool,
}

/// Parses a complete head (`Ok(None)`: incomplete; `Err(status)`: answer it and close).
fn parse_head(buf: &[u8]) -> Result<Option<(Request, usize)>, u16> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let used = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(431),
        Err(_) => return Err(400),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(400);
    };
    let http10 = version == 0;
    let mut keep_alive = !http10;
    let mut range = None;
    let mut has_body = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("range") {
            if range.is_some() {
                return Err(400);
            }
            range = Some(
                std::str::from_utf8(h.value)
                    .map(str::to_string)
                    .map_err(|_| ()),
            );
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in String::from_utf8_lossy(h.value).split(',') {
                let token = token.trim();
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") && http10 {
                    keep_alive = true;
                }
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            has_body = true;
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or(400u16)?;
            has_body |= len > 0;
        }
    }
    Ok(Some((
        Request {
            method: method.to_string(),
            target: target.to_string(),
            http10,
            range,
            keep_alive,
            has_body,
        },
        used,
    )))
}

/// How a response ends the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    KeepAlive,
    Close,
}

/// One connection: requests answered in turn until the client closes, asks to close, sends a
/// bad head, stays idle too long, or the edge stops.
async fn connection(mut sock: TcpStream, edge: &Edge, mut stop: watch::Receiver<bool>) {
    let _open = HttpConnection::open(&edge.metrics);
    let _ = sock.set_nodelay(true);
    let mut buf = vec![0u8; MAX_HEAD_BYTES];
    let mut filled = 0usize;
    loop {
        let (req, used) = loop {
            if filled > 0 {
                match parse_head(&buf[..filled]) {
                    Ok(Some(r)) => break r,
                    Ok(None) if filled == buf.len() => {
                        let _ = send_error(&mut sock, 431, "request head too large", CLOSE).await;
                        return;
                    }
                    Ok(None) => {}
                    Err(status) => {
                        let message = if status == 431 {
                            "too many request headers"
                        } else {
                            "malformed request head"
                        };
                        let _ = send_error(&mut sock, status, message, CLOSE).await;
                        return;
                    }
                }
            }
            if *stop.borrow() {
                return;
            }
            let read = tokio::select! {
                r = tokio::time::timeout(IDLE_TIMEOUT, sock.read(&mut buf[filled..])) => r,
                _ = stop.wait_for(|s| *s) => return,
            };
            match read {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => filled += n,
                Err(_) => {
                    if filled > 0 {
                        let _ = send_error(&mut sock, 408, "request head timed out", CLOSE).await;
                    }
                    return;
                }
            }
        };
        // Pipelined bytes after this head are kept for the next round.
        buf.copy_within(used..filled, 0);
        filled -= used;
        match respond(&mut sock, edge, &req).await {
            Ok(After::KeepAlive) => {}
            Ok(After::Close) => {
                let _ = sock.shutdown().await;
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "data connection ended");
                return;
            }
        }
    }
}

/// Answers one request. `Err` means the connection is broken.
async fn respond(sock: &mut TcpStream, edge: &Edge, req: &Request) -> io::Result<After> {
    let started = Instant::now();
    let head_only = req.method == "HEAD";
    let close = !req.keep_alive;
    let how = Reply {
        close,
        http10: req.http10,
        head_only,
    };
    if req.has_body {
        // The body is not read, so the connection cannot be reused.
        let how = Reply { close: true, ..how };
        return send_error(sock, 400, "a request body is not accepted", how).await;
    }
    let (path, query) = req
        .target
        .split_once('?')
        .unwrap_or((req.target.as_str(), ""));
    let Some(hash) = path.strip_prefix("/xorb/").filter(|h| !h.contains('/')) else {
        return send_error(sock, 404, "not found", how).await;
    };
    if !matches!(req.method.as_str(), "GET" | "HEAD") {
        return send_error(sock, 405, "only GET and HEAD", how).await;
    }
    let range = req.range.as_ref().map(|r| r.as_deref().map_err(|_| ()));
    let parts = match resolve(edge, hash, query, range).await {
        Ok(p) => p,
        Err(e) => return send_error(sock, e.status, &e.message, how).await,
    };
    let mut head = String::with_capacity(256);
    let partial = req.range.is_some() || parts.len() > 1;
    head.push_str(status_line(if partial { 206 } else { 200 }));
    let body_len: u64;
    let mut delimiters: Vec<String> = Vec::new();
    let boundary = format!("zest{:016x}", rand::random::<u64>());
    if let [p] = parts.as_slice() {
        body_len = p.len as u64;
        head.push_str("Content-Type: application/octet-stream\r\n");
        if req.range.is_some() {
            head.push_str(&format!(
                "Content-Range: bytes {}-{}/*\r\n",
                p.range.start, p.range.end
            ));
        }
    } else {
        for p in &parts {
            delimiters.push(format!(
                "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {}-{}/*\r\n\r\n",
                p.range.start, p.range.end
            ));
        }
        delimiters.push(format!("\r\n--{boundary}--\r\n"));
        body_len = parts.iter().map(|p| p.len as u64).sum::<u64>()
            + delimiters.iter().map(|d| d.len() as u64).sum::<u64>();
        head.push_str(&format!(
            "Content-Type: multipart/byteranges; boundary={boundary}\r\n"
        ));
    }
    finish_head(&mut head, body_len, close, req.http10);
    write_all(sock, head.as_bytes()).await?;
    if !head_only {
        let served: u64 = parts.iter().map(|p| p.len as u64).sum();
        edge.metrics
            .bytes_served
            .with_label_values(&["http"])
            .inc_by(served);
        if let [p] = parts.as_slice() {
            send_part(sock, p).await?;
        } else {
            for (p, d) in parts.iter().zip(&delimiters) {
                write_all(sock, d.as_bytes()).await?;
                send_part(sock, p).await?;
            }
            if let Some(last) = delimiters.last() {
                write_all(sock, last.as_bytes()).await?;
            }
        }
    }
    edge.metrics
        .request_seconds
        .with_label_values(&["xorb"])
        .observe(started.elapsed().as_secs_f64());
    Ok(if close {
        After::Close
    } else {
        After::KeepAlive
    })
}

fn status_line(status: u16) -> &'static str {
    match status {
        200 => "HTTP/1.1 200 OK\r\n",
        206 => "HTTP/1.1 206 Partial Content\r\n",
        400 => "HTTP/1.1 400 Bad Request\r\n",
        403 => "HTTP/1.1 403 Forbidden\r\n",
        404 => "HTTP/1.1 404 Not Found\r\n",
        405 => "HTTP/1.1 405 Method Not Allowed\r\n",
        408 => "HTTP/1.1 408 Request Timeout\r\n",
        416 => "HTTP/1.1 416 Range Not Satisfiable\r\n",
        431 => "HTTP/1.1 431 Request Header Fields Too Large\r\n",
        502 => "HTTP/1.1 502 Bad Gateway\r\n",
        _ => "HTTP/1.1 500 Internal Server Error\r\n",
    }
}

/// Appends the common headers and the blank line.
fn finish_head(head: &mut String, body_len: u64, close: bool, http10: bool) {
    head.push_str(&format!(
        "Content-Length: {body_len}\r\nDate: {}\r\n",
        httpdate::fmt_http_date(std::time::SystemTime::now())
    ));
    if close {
        head.push_str("Connection: close\r\n");
    } else if http10 {
        head.push_str("Connection: keep-alive\r\n");
    }
    head.push_str("\r\n");
}

/// How an answer is framed.
#[derive(Debug, Clone, Copy)]
struct Reply {
    /// Close the connection after it.
    close: bool,
    /// The request was HTTP/1.0 (keep-alive must be said).
    http10: bool,
    /// The request was a HEAD: no body.
    head_only: bool,
}

/// For answers to heads that could not be read: close after them.
const CLOSE: Reply = Reply {
    close: true,
    http10: false,
    head_only: false,
};

/// Sends `{"error": message}` with `status`; the connection is closed after it when
/// `how.close`.
async fn send_error(
    sock: &mut TcpStream,
    status: u16,
    message: &str,
    how: Reply,
) -> io::Result<After> {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut head = String::with_capacity(160 + body.len());
    head.push_str(status_line(status));
    head.push_str("Content-Type: application/json\r\n");
    if status == 405 {
        head.push_str("Allow: GET, HEAD\r\n");
    }
    finish_head(&mut head, body.len() as u64, how.close, how.http10);
    if !how.head_only {
        head.push_str(&body);
    }
    write_all(sock, head.as_bytes()).await?;
    if how.close {
        // Let the answer reach the client before the socket goes: the client may still be
        // sending the rest of a head we refused, and closing with unread bytes resets.
        let _ = sock.shutdown().await;
        let mut sink = [0u8; 1024];
        let drain = async {
            let mut total = 0usize;
            while let Ok(n) = sock.read(&mut sink).await {
                total += n;
                if n == 0 || total > (1 << 20) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
        return Ok(After::Close);
    }
    Ok(After::KeepAlive)
}

/// Writes all of `bytes`, failing when the client takes none for [`WRITE_STALL_TIMEOUT`].
async fn write_all(sock: &mut TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = tokio::time::timeout(WRITE_STALL_TIMEOUT, sock.write(bytes))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "write stalled"))??;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
    }
    Ok(())
}

/// Sends one part: `sendfile(2)` from the stored range file, or plain writes from the view when
/// the kernel cannot (`EINVAL`, `ENOSYS`) or no file holds the records.
async fn send_part(sock: &mut TcpStream, part: &Part) -> io::Result<()> {
    if part.offset + part.len > part.view.len() {
        return Err(io::Error::other("part outside its stored range"));
    }
    let sent = match part.view.file_segment() {
        Some((file, file_offset, _)) => {
            let start = file_offset + part.offset as u64;
            match sendfile_all(sock, file, start, part.len, WRITE_STALL_TIMEOUT).await {
                Ok(()) => return Ok(()),
                Err(SendFileError::Unsupported { sent }) => sent,
                Err(e) => return Err(e.into()),
            }
        }
        // Records built in memory (a blob reference): nothing to send a file from.
        None => 0,
    };
    for piece in part.bytes()[sent..].chunks(WRITE_PIECE) {
        write_all(sock, piece).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &str) -> Result<Option<(Request, usize)>, u16> {
        parse_head(s.as_bytes())
    }

    #[test]
    fn heads_parse_with_keep_alive_rules() {
        let (r, n) = head("GET /xorb/ab?x=1 HTTP/1.1\r\nRange: bytes=0-9\r\n\r\nGET")
            .expect("ok")
            .expect("complete");
        assert_eq!(
            n,
            "GET /xorb/ab?x=1 HTTP/1.1\r\nRange: bytes=0-9\r\n\r\n".len()
        );
        assert_eq!(
            (r.method.as_str(), r.target.as_str()),
            ("GET", "/xorb/ab?x=1")
        );
        assert!(r.keep_alive && !r.http10 && !r.has_body);
        assert_eq!(r.range, Some(Ok("bytes=0-9".into())));
        let (r, _) = head("GET / HTTP/1.0\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert!(!r.keep_alive && r.http10);
        let (r, _) = head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert!(r.keep_alive);
        let (r, _) = head("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert!(!r.keep_alive);
    }

    #[test]
    fn bodies_and_bad_heads_are_refused() {
        let (r, _) = head("GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert!(r.has_body);
        let (r, _) = head("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert!(!r.has_body);
        let (r, _) = head("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert!(r.has_body);
        assert_eq!(
            head("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n").err(),
            Some(400)
        );
        assert_eq!(head("\x01\x02 nonsense\r\n\r\n").err(), Some(400));
        assert!(matches!(head("GET / HTTP/1.1\r\nHost: a"), Ok(None)));
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: y\r\n"))
            .collect();
        assert_eq!(
            head(&format!("GET / HTTP/1.1\r\n{many}\r\n")).err(),
            Some(431)
        );
        assert_eq!(
            head("GET / HTTP/1.1\r\nRange: bytes=0-1\r\nRange: bytes=2-3\r\n\r\n").err(),
            Some(400)
        );
    }
}
