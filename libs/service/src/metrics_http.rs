//! A minimal HTTP/1.1 endpoint for processes that are not HTTP servers themselves (`zest seed`,
//! a serving `zest pull`): `GET /metrics` answers the Prometheus text exposition that `render`
//! produces at each scrape, `GET /healthz` answers `ok`, anything else 404. One request per
//! connection (`Connection: close`).
//!
//! Bounded against a client that misbehaves: the request head must arrive whole within
//! [`HEAD_TIMEOUT`] and fit in [`MAX_HEAD_BYTES`] (else the connection is closed, with 431 for
//! an oversized head), at most [`MAX_CONNECTIONS`] scrapes run at once (more are closed at
//! accept), and writing the answer has the same deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Whole-request-head deadline, and the deadline for writing the answer.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head accepted.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Scrapes served at once.
pub const MAX_CONNECTIONS: usize = 16;

/// What produces the exposition at each scrape.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, render: Render, shutdown: impl Future<Output = ()>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // dropped: closed at once
        };
        let render = render.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tokio::time::timeout(HEAD_TIMEOUT * 2, answer(stream, &render)).await;
        });
    }
}

/// Reads one request head and answers it.
async fn answer(mut stream: TcpStream, render: &Render) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let complete = tokio::time::timeout(HEAD_TIMEOUT, async {
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok::<bool, std::io::Error>(false);
            }
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return Ok(true);
            }
            if head.len() > MAX_HEAD_BYTES {
                return Ok(false);
            }
        }
    })
    .await;
    let (status, body) = match complete {
        Ok(Ok(true)) => route(&head, render),
        Ok(Ok(false)) if head.len() > MAX_HEAD_BYTES => {
            ("431 Request Header Fields Too Large", String::new())
        }
        _ => return Ok(()), // closed or too slow: nothing to answer
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    tokio::time::timeout(HEAD_TIMEOUT, stream.write_all(reply.as_bytes()))
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)??;
    stream.shutdown().await
}

/// The status and body for a complete request head.
fn route(head: &[u8], render: &Render) -> (&'static str, String) {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    match (method, path) {
        (b"GET", b"/metrics") => ("200 OK", render()),
        (b"GET", b"/healthz") => ("200 OK", "ok\n".into()),
        (b"GET", _) => ("404 Not Found", "not found\n".into()),
        _ => ("405 Method Not Allowed", String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn start() -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let render: Render = Arc::new(|| "zest_up 1\n".to_string());
        tokio::spawn(serve(l, render, async move {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    async fn ask(addr: std::net::SocketAddr, req: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(req).await.expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        out
    }

    #[tokio::test]
    async fn answers_metrics_health_and_nothing_else() {
        let (addr, _stop) = start().await;
        let m = ask(addr, b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await;
        assert!(m.starts_with("HTTP/1.1 200 OK\r\n"), "{m}");
        assert!(m.ends_with("\r\n\r\nzest_up 1\n"), "{m}");
        assert!(m.contains("content-length: 10\r\n"), "{m}");
        let h = ask(addr, b"GET /healthz?x=1 HTTP/1.0\r\n\r\n").await;
        assert!(
            h.starts_with("HTTP/1.1 200 OK") && h.ends_with("ok\n"),
            "{h}"
        );
        let n = ask(addr, b"GET /other HTTP/1.1\r\n\r\n").await;
        assert!(n.starts_with("HTTP/1.1 404"), "{n}");
        let p = ask(addr, b"POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(p.starts_with("HTTP/1.1 405"), "{p}");
    }

    #[tokio::test]
    async fn an_oversized_head_is_refused_and_a_slow_one_closed() {
        let (addr, _stop) = start().await;
        let mut big = b"GET /metrics HTTP/1.1\r\nx: ".to_vec();
        big.resize(MAX_HEAD_BYTES + 2048, b'a');
        let r = ask(addr, &big).await;
        assert!(r.starts_with("HTTP/1.1 431"), "{r}");
        // A head that never ends is closed after the deadline, with no answer; meanwhile
        // honest scrapes are answered.
        let mut slow = TcpStream::connect(addr).await.expect("connect");
        slow.write_all(b"GET /metrics HTTP/1.1\r\n")
            .await
            .expect("write");
        let m = ask(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(m.starts_with("HTTP/1.1 200"), "{m}");
        let t = std::time::Instant::now();
        let mut out = Vec::new();
        let _ = slow.read_to_end(&mut out).await;
        assert!(out.is_empty());
        assert!(t.elapsed() < HEAD_TIMEOUT + Duration::from_secs(3));
    }
}
