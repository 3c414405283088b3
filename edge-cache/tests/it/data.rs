//! The data port (xorb ranges served with sendfile): byte-exact ranges and sub-ranges against
//! the origin's own bytes, HEAD, multipart, refusals (signature, path, method, body, malformed
//! and oversized heads) without harm to later requests, keep-alive and HTTP/1.0, and a miss
//! fetched through it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::common::*;

/// One parsed response.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A raw connection to the data port, for what reqwest would not send or would hide.
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(data_base: &str) -> Conn {
        let s = TcpStream::connect(data_base.trim_start_matches("http://")).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        Conn { s, buf: Vec::new() }
    }

    fn send(&mut self, raw: &[u8]) {
        self.s.write_all(raw).expect("write");
    }

    fn fill(&mut self) -> bool {
        let mut b = [0u8; 64 << 10];
        match self.s.read(&mut b) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&b[..n]);
                true
            }
        }
    }

    /// Reads one response (`head_only`: no body whatever Content-Length says).
    fn read(&mut self, head_only: bool) -> Resp {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(
                self.fill(),
                "closed before a full head: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let head = String::from_utf8(self.buf[..end].to_vec()).expect("utf8 head");
        self.buf.drain(..end);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line");
        assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
        let status = status_line[9..12].parse().expect("status");
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once(':').expect("header");
                (k.trim().to_string(), v.trim().to_string())
            })
            .collect();
        let mut r = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        let len: usize = r
            .header("content-length")
            .expect("content-length")
            .parse()
            .expect("length");
        if !head_only {
            while self.buf.len() < len {
                assert!(self.fill(), "closed inside a body");
            }
            r.body = self.buf.drain(..len).collect();
        }
        r
    }

    /// True when the server closes the connection (within the read timeout).
    fn closed(&mut self) -> bool {
        self.buf.clear();
        !self.fill() && self.buf.is_empty()
    }
}

/// Path and query of a data-port URL.
fn target(url: &str) -> &str {
    let rest = url.trim_start_matches("http://");
    &rest[rest.find('/').expect("path")..]
}

/// The origin's own bytes of `r` (the signed upstream URL inside the edge URL, fetched
/// directly).
fn origin_bytes(r: &XRange) -> Vec<u8> {
    let u = r
        .url
        .split_once('?')
        .expect("query")
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix("u="))
        .expect("u=");
    let upstream = String::from_utf8(URL_SAFE_NO_PAD.decode(u).expect("b64")).expect("utf8");
    let resp = client()
        .get(upstream)
        .header("range", format!("bytes={}-{}", r.bytes.0, r.bytes.1))
        .send()
        .expect("origin GET");
    assert_eq!(resp.status().as_u16(), 206);
    resp.bytes().expect("body").to_vec()
}

fn get(url: &str, range: Option<String>) -> reqwest::blocking::Response {
    let mut rb = client().get(url);
    if let Some(r) = range {
        rb = rb.header("range", r);
    }
    rb.send().expect("GET")
}

#[test]
fn data_port_serves_ranges_sub_ranges_and_head_byte_exact() {
    let origin = Origin::start(|_| {});
    let edge = Edge::start(&origin.base, &cache_dir(), &[]);
    let ranges = ranges_of(&edge, "model.safetensors");
    let served_before = edge.metric("zest_edge_bytes_served_total{protocol=\"http\"}");
    let mut served = 0u64;
    for r in &ranges {
        assert!(
            r.url.starts_with(&format!("{}/xorb/", edge.data_base)),
            "{}",
            r.url
        );
        let want = origin_bytes(r);
        let (s, e) = r.bytes;
        let resp = get(&r.url, Some(format!("bytes={s}-{e}")));
        assert_eq!(resp.status().as_u16(), 206);
        assert_eq!(
            resp.headers()["content-range"].to_str().expect("cr"),
            format!("bytes {s}-{e}/*")
        );
        assert_eq!(resp.bytes().expect("body").as_ref(), want.as_slice());
        served += e - s + 1;
        // A sub-range in the middle.
        if e - s > 2000 {
            let resp = get(&r.url, Some(format!("bytes={}-{}", s + 7, s + 1500)));
            assert_eq!(resp.status().as_u16(), 206);
            assert_eq!(resp.bytes().expect("body").as_ref(), &want[7..1501]);
            served += 1494;
        }
        // Xorb ranges are served by the data port only: the HTTP port has no such route.
        let old = r.url.replace(&edge.data_base, &edge.base);
        let resp = get(&old, Some(format!("bytes={s}-{e}")));
        assert_eq!(resp.status().as_u16(), 404);
    }
    // No Range and one signed range: 200 and the whole range.
    let one = ranges
        .iter()
        .find(|r| !r.url.contains(','))
        .expect("a URL with one range");
    let resp = get(&one.url, None);
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers().get("content-range").is_none());
    assert_eq!(resp.bytes().expect("body").to_vec(), origin_bytes(one));
    served += one.bytes.1 - one.bytes.0 + 1;
    // HEAD: the head of the GET, no body.
    let (s, e) = one.bytes;
    let mut c = Conn::open(&edge.data_base);
    c.send(
        format!(
            "HEAD {} HTTP/1.1\r\nHost: x\r\nRange: bytes={s}-{e}\r\n\r\n",
            target(&one.url)
        )
        .as_bytes(),
    );
    let h = c.read(true);
    assert_eq!(h.status, 206);
    assert_eq!(
        h.header("content-length"),
        Some((e - s + 1).to_string().as_str())
    );
    assert_eq!(
        h.header("content-range"),
        Some(format!("bytes {s}-{e}/*").as_str())
    );
    // Nothing follows the HEAD's head: the next answer on the connection starts right away.
    c.send(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read(false).status, 404);
    let after = edge.metric("zest_edge_bytes_served_total{protocol=\"http\"}");
    assert_eq!(
        after - served_before,
        served as f64,
        "bytes_served counts every body byte"
    );
}

#[test]
fn data_port_multipart_and_refusals() {
    let origin = Origin::start(|_| {});
    let edge = Edge::start(&origin.base, &cache_dir(), &[]);
    let ranges = ranges_of(&edge, "a.bin");
    let r = ranges
        .iter()
        .find(|r| r.bytes.1 - r.bytes.0 > 100)
        .expect("a range over 100 bytes");
    let want = origin_bytes(r);
    let s = r.bytes.0;
    let resp = get(
        &r.url,
        Some(format!("bytes={s}-{},{}-{}", s + 9, s + 50, s + 59)),
    );
    assert_eq!(resp.status().as_u16(), 206);
    let ct = resp.headers()["content-type"]
        .to_str()
        .expect("ct")
        .to_string();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("{ct}"))
        .to_string();
    let body = resp.bytes().expect("body").to_vec();
    let mut expect = Vec::new();
    for (a, b) in [(0usize, 9usize), (50, 59)] {
        expect.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {}-{}/*\r\n\r\n",
                s + a as u64,
                s + b as u64
            )
            .as_bytes(),
        );
        expect.extend_from_slice(&want[a..=b]);
    }
    expect.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    assert_eq!(body, expect, "multipart body");

    // A tampered URL: 403 with a JSON error, and the connection stays usable.
    let bad = r.url.replace("&r=", "&r=0-1:0-9,");
    let mut c = Conn::open(&edge.data_base);
    c.send(
        format!(
            "GET {} HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n",
            target(&bad)
        )
        .as_bytes(),
    );
    let resp = c.read(false);
    assert_eq!(resp.status, 403);
    let err: serde_json::Value = serde_json::from_slice(&resp.body).expect("json error");
    assert!(err["error"].is_string(), "{err}");
    // Other paths 404, other methods 405, ranges outside the signed ones 416, on one connection.
    c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read(false).status, 404);
    c.send(format!("DELETE {} HTTP/1.1\r\nHost: x\r\n\r\n", target(&r.url)).as_bytes());
    let resp = c.read(false);
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("allow"), Some("GET, HEAD"));
    c.send(
        format!(
            "GET {} HTTP/1.1\r\nHost: x\r\nRange: bytes=999999999-1000000000\r\n\r\n",
            target(&r.url)
        )
        .as_bytes(),
    );
    assert_eq!(c.read(false).status, 416);
    // A request with a body: 400, then closed (the body is never read).
    c.send(
        format!(
            "GET {} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            target(&r.url)
        )
        .as_bytes(),
    );
    let resp = c.read(false);
    assert_eq!(resp.status, 400);
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(c.closed(), "open after a request with a body");

    // Malformed head: 400 and closed.
    let mut c = Conn::open(&edge.data_base);
    c.send(b"\x00\x01garbage here\r\n\r\n");
    assert_eq!(c.read(false).status, 400);
    assert!(c.closed(), "open after a malformed head");
    // Oversized head: 431 and closed.
    let mut c = Conn::open(&edge.data_base);
    let huge = format!(
        "GET /xorb/x HTTP/1.1\r\nX-Big: {}\r\n",
        "a".repeat(20 << 10)
    );
    c.send(huge.as_bytes());
    assert_eq!(c.read(false).status, 431);
    assert!(c.closed(), "open after an oversized head");
    // Too many headers: 431.
    let mut c = Conn::open(&edge.data_base);
    let many: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
    c.send(format!("GET /xorb/x HTTP/1.1\r\n{many}\r\n").as_bytes());
    assert_eq!(c.read(false).status, 431);
    // A client that goes away in the middle of a head does no harm either.
    let mut c = Conn::open(&edge.data_base);
    c.send(b"GET /xorb/");
    drop(c);

    // Still serving afterwards.
    let resp = get(&r.url, Some(format!("bytes={s}-{}", r.bytes.1)));
    assert_eq!(resp.status().as_u16(), 206);
    assert_eq!(resp.bytes().expect("body").to_vec(), want);
}

#[test]
fn data_port_keeps_connections_alive_and_honours_close_and_http10() {
    let origin = Origin::start(|_| {});
    let edge = Edge::start(&origin.base, &cache_dir(), &[]);
    let ranges = ranges_of(&edge, "sub/b.bin");
    let open_gauge = "zest_edge_open_connections{protocol=\"http\"}";
    let idle = edge.metric(open_gauge);
    let mut c = Conn::open(&edge.data_base);
    // Several requests one after the other, then three pipelined in one write.
    let mut wants = Vec::new();
    for r in ranges.iter().take(3) {
        let want = origin_bytes(r);
        c.send(
            format!(
                "GET {} HTTP/1.1\r\nHost: x\r\nRange: bytes={}-{}\r\n\r\n",
                target(&r.url),
                r.bytes.0,
                r.bytes.1
            )
            .as_bytes(),
        );
        let resp = c.read(false);
        assert_eq!(resp.status, 206);
        assert_eq!(resp.body, want);
        wants.push(want);
    }
    assert!(
        edge.metric(open_gauge) >= idle + 1.0,
        "the data connection is counted as an open http connection"
    );
    let mut pipelined = String::new();
    for r in ranges.iter().take(3) {
        pipelined.push_str(&format!(
            "GET {} HTTP/1.1\r\nHost: x\r\nRange: bytes={}-{}\r\n\r\n",
            target(&r.url),
            r.bytes.0,
            r.bytes.0 + 99
        ));
    }
    c.send(pipelined.as_bytes());
    for want in &wants {
        let resp = c.read(false);
        assert_eq!(resp.status, 206);
        assert_eq!(resp.body, &want[..100]);
    }
    // `Connection: close` is honoured after the answer.
    let r = &ranges[0];
    c.send(
        format!(
            "GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nRange: bytes={}-{}\r\n\r\n",
            target(&r.url),
            r.bytes.0,
            r.bytes.0 + 9
        )
        .as_bytes(),
    );
    let resp = c.read(false);
    assert_eq!(resp.body, &wants[0][..10]);
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(c.closed(), "open after Connection: close");
    // HTTP/1.0: closed after one answer, unless it asks for keep-alive.
    let mut c = Conn::open(&edge.data_base);
    let req10 = |extra: &str| {
        format!(
            "GET {} HTTP/1.0\r\n{extra}Range: bytes={}-{}\r\n\r\n",
            target(&r.url),
            r.bytes.0,
            r.bytes.0 + 9
        )
    };
    c.send(req10("Connection: keep-alive\r\n").as_bytes());
    let resp = c.read(false);
    assert_eq!(resp.body, &wants[0][..10]);
    assert_eq!(resp.header("connection"), Some("keep-alive"));
    c.send(req10("").as_bytes());
    let resp = c.read(false);
    assert_eq!(resp.body, &wants[0][..10]);
    assert!(c.closed(), "an HTTP/1.0 connection stayed open");
    assert!(
        eventually(30, || edge.metric(open_gauge) <= idle),
        "the open connections gauge did not fall back"
    );
}

#[test]
fn data_port_fetches_a_miss_once_and_then_serves_it_from_the_store() {
    let origin = Origin::start(|_| {});
    let first_cache = cache_dir();
    let first = Edge::start(&origin.base, &first_cache, &[]);
    let ranges = ranges_of(&first, "a.bin");
    let first_data = first.data_base.clone();
    drop(first);
    // A fresh store with the same URL key: the URLs are valid, the ranges are not held.
    let cache = cache_dir();
    std::fs::copy(first_cache.join("edge-url-key"), cache.join("edge-url-key")).expect("key");
    let edge = Edge::start(&origin.base, &cache, &[]);
    let before = origin.xorb_bytes();
    let misses = edge.metric("zest_edge_misses_total");
    let r = &ranges[0];
    let url = r.url.replace(&first_data, &edge.data_base);
    let want = origin_bytes(r);
    let after_reference = origin.xorb_bytes();
    let resp = get(&url, Some(format!("bytes={}-{}", r.bytes.0, r.bytes.1)));
    assert_eq!(resp.status().as_u16(), 206, "{}", edge.log());
    assert_eq!(resp.bytes().expect("body").to_vec(), want);
    assert!(edge.metric("zest_edge_misses_total") > misses);
    let fetched = origin.xorb_bytes() - after_reference;
    assert_eq!(
        fetched,
        want.len() as f64,
        "the miss was fetched once ({before})"
    );
    // Again: from the store, nothing more from the origin.
    let hits = edge.metric("zest_edge_hits_total");
    let resp = get(&url, Some(format!("bytes={}-{}", r.bytes.0, r.bytes.1)));
    assert_eq!(resp.bytes().expect("body").to_vec(), want);
    assert_eq!(origin.xorb_bytes() - after_reference, fetched);
    assert!(edge.metric("zest_edge_hits_total") > hits);
}
