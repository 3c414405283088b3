//! Tests of [`HubClient`] against a tiny scripted HTTP server on `127.0.0.1:0`: how many
//! requests one call costs under each kind of failure.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// One scripted answer: status line code, extra headers, body.
type Answer = (u16, Vec<(&'static str, String)>, Vec<u8>);

/// A server answering requests in order from `answers` (the last one repeats), recording each
/// request's first line and headers.
struct Server {
    base: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(answers: Vec<Answer>) -> Server {
        Server::start_with(move |_| answers).await
    }

    /// Like [`Server::start`], with answers that may name the server's own base URL.
    async fn start_with(answers: impl FnOnce(&str) -> Vec<Answer>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let answers = answers(&base);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut n = 0usize;
            while let Ok((mut sock, _)) = listener.accept().await {
                let (code, headers, body) = answers[n.min(answers.len() - 1)].clone();
                n += 1;
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => req.extend_from_slice(&buf[..k]),
                    }
                }
                log.lock()
                    .expect("log")
                    .push(String::from_utf8_lossy(&req).into_owned());
                let mut head = format!(
                    "HTTP/1.1 {code} X\r\nconnection: close\r\ncontent-length: {}\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
                let _ = sock.shutdown().await;
            }
        });
        Server { base, seen }
    }

    fn requests(&self) -> usize {
        self.seen.lock().expect("log").len()
    }

    fn request(&self, i: usize) -> String {
        self.seen.lock().expect("log")[i].clone()
    }
}

fn fast(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(4),
        max_retry_after: Duration::from_millis(20),
    }
}

fn client(s: &Server, retries: u32) -> HubClient {
    HubClient::new(&s.base, Some("hf_secret".into()), fast(retries)).expect("client")
}

fn answer(code: u16, body: &[u8]) -> Answer {
    (code, Vec::new(), body.to_vec())
}

#[tokio::test]
async fn a_xorb_range_that_keeps_failing_costs_exactly_the_policy_attempts() {
    let s = Server::start(vec![answer(503, b"busy")]).await;
    let c = client(&s, 3);
    let e = c
        .xorb_range(&format!("{}/xorb", s.base), ByteRange::new(0, 9), 1 << 20)
        .await
        .expect_err("503 forever");
    assert_eq!(s.requests(), 4);
    assert_eq!(c.requests(), 4);
    assert_eq!(c.retries(), 3);
    assert!(e.to_string().contains("xorb range: HTTP 503"), "{e}");
    // No Hub token on a xorb URL.
    assert!(!s.request(0).to_lowercase().contains("authorization"));
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_then_succeeds() {
    let s = Server::start(vec![
        (
            429,
            vec![("retry-after", "0".into())],
            b"slow down".to_vec(),
        ),
        answer(206, b"0123456789"),
    ])
    .await;
    let c = client(&s, 3);
    let b = c
        .xorb_range(&format!("{}/xorb", s.base), ByteRange::new(10, 19), 1 << 20)
        .await
        .expect("second attempt");
    assert_eq!(&b[..], b"0123456789");
    assert_eq!((s.requests(), c.retries()), (2, 1));
    assert!(s.request(0).to_lowercase().contains("range: bytes=10-19"));
}

#[tokio::test]
async fn a_4xx_is_not_retried_and_a_long_body_is_refused() {
    let s = Server::start(vec![answer(404, b"no")]).await;
    let c = client(&s, 5);
    let e = c.resolve_revision(RepoType::Model, "a/b", "main").await;
    assert_eq!(e.expect_err("404").status(), Some(StatusCode::NOT_FOUND));
    assert_eq!(s.requests(), 1);

    let s = Server::start(vec![answer(206, b"0123456789ab")]).await;
    let c = client(&s, 5);
    let e = c
        .xorb_range(&format!("{}/x", s.base), ByteRange::new(5, 14), 1 << 20)
        .await
        .expect_err("12 bytes for a 10-byte range");
    assert!(matches!(e, HubError::TooLarge { .. }), "{e}");
    assert_eq!(s.requests(), 1);
    // Over the cap: refused before any request.
    let e = c
        .xorb_range(&format!("{}/x", s.base), ByteRange::new(0, 99), 50)
        .await
        .expect_err("over the cap");
    assert!(matches!(e, HubError::TooLarge { .. }), "{e}");
    assert_eq!(s.requests(), 1);
}

#[tokio::test]
async fn revision_tokens_go_to_the_hub_and_revisions_are_encoded() {
    let sha = "a".repeat(40);
    let s = Server::start(vec![
        answer(500, b""),
        answer(200, format!("{{\"sha\":\"{sha}\"}}").as_bytes()),
    ])
    .await;
    let c = client(&s, 2);
    let got = c
        .resolve_revision(RepoType::Dataset, "org/name", "refs/pr/1")
        .await
        .expect("revision");
    assert_eq!(got, sha);
    assert_eq!(s.requests(), 2);
    let req = s.request(1);
    assert!(
        req.starts_with("GET /api/datasets/org/name/revision/refs%2Fpr%2F1 "),
        "{req}"
    );
    assert!(req
        .to_lowercase()
        .contains("authorization: bearer hf_secret"));
}

#[tokio::test]
async fn tree_pages_follow_next_links_on_the_same_host_only() {
    let page1 = br#"[{"type":"file","path":"a.json","size":1},{"type":"directory","path":"d"}]"#;
    let page2 = br#"[{"type":"file","path":"d/b.bin","size":2}]"#;
    let s = Server::start(vec![
        (
            200,
            vec![(
                "link",
                "</api/models/o/m/tree/c?cursor=2>; rel=\"next\"".into(),
            )],
            page1.to_vec(),
        ),
        answer(200, page2),
    ])
    .await;
    let c = client(&s, 0);
    let files = c
        .list_files(RepoType::Model, "o/m", "c")
        .await
        .expect("tree");
    let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["a.json", "d/b.bin"]);
    assert!(s
        .request(1)
        .starts_with("GET /api/models/o/m/tree/c?cursor=2 "));

    let s = Server::start(vec![(
        200,
        vec![("link", "<http://elsewhere.invalid/x>; rel=\"next\"".into())],
        page2.to_vec(),
    )])
    .await;
    let e = client(&s, 0)
        .list_files(RepoType::Model, "o/m", "c")
        .await
        .expect_err("other host");
    assert!(e.to_string().contains("another host"), "{e}");
}

/// The pager's check is by origin (scheme, host, port), not a string prefix: a link that
/// merely starts with the endpoint (or the alias) is refused, so the caller's Authorization
/// never follows it to another host.
#[test]
fn paging_links_sharing_a_prefix_with_the_endpoint_are_refused() {
    let c = HubClient::new("https://huggingface.co", None, fast(0))
        .expect("client")
        .with_link_alias("http://edge.lan:8081");
    for link in [
        "https://huggingface.co.evil/api/x",
        "https://huggingface.co@evil.invalid/api/x",
        "https://huggingface.co:8443/api/x",
        "http://huggingface.co/api/x",
        "http://edge.lan:8081@evil.invalid/api/x",
        "http://edge.lan:80810/api/x",
    ] {
        assert!(c.same_origin(link).is_err(), "{link} was followed");
    }
    assert_eq!(
        c.same_origin("https://huggingface.co/api/x?cursor=2")
            .expect("same"),
        "https://huggingface.co/api/x?cursor=2"
    );
    assert_eq!(
        c.same_origin("http://edge.lan:8081/api/x?cursor=2")
            .expect("alias"),
        "https://huggingface.co/api/x?cursor=2"
    );
    assert_eq!(
        c.same_origin("/api/x?cursor=3").expect("relative"),
        "https://huggingface.co/api/x?cursor=3"
    );
}

#[tokio::test]
async fn reconstruction_refreshes_the_token_on_401_and_falls_back_to_v1() {
    let file = MerkleHash::default();
    // v2 answers 401 (stale token), fresh token, v2 answers 404, v1 answers.
    let s = Server::start_with(|base| {
        let fresh = format!(r#"{{"casUrl":"{base}","exp":1,"accessToken":"fresh"}}"#);
        vec![
            answer(401, b""),
            answer(200, fresh.as_bytes()),
            answer(404, b""),
            answer(
                200,
                br#"{"offset_into_first_range":0,"terms":[],"fetch_info":{}}"#,
            ),
        ]
    })
    .await;
    let c = client(&s, 0);
    let session = CasSession {
        token_url: format!("{}/api/models/o/m/xet-read-token/main", s.base),
        jwt: tokio::sync::Mutex::new(CasJwtInfo {
            cas_url: s.base.clone(),
            exp: 0,
            access_token: "stale".into(),
        }),
        v1_only: AtomicBool::new(false),
    };
    let recon = c
        .session_reconstruction(&session, &file, Some(ByteRange::new(0, 99)))
        .await
        .expect("v1 after a refresh");
    assert!(recon.terms.is_empty());
    assert_eq!(session.reconstruction_api(), "v1");
    assert_eq!(s.requests(), 4);
    let lower = |i| s.request(i).to_lowercase();
    assert!(s.request(0).starts_with("GET /v2/reconstructions/"));
    assert!(lower(0).contains("bearer stale") && lower(0).contains("range: bytes=0-99"));
    assert!(s
        .request(1)
        .starts_with("GET /api/models/o/m/xet-read-token/main "));
    assert!(lower(2).contains("bearer fresh"));
    assert!(s.request(3).starts_with("GET /v1/reconstructions/"));
}

#[test]
fn resolve_and_token_urls_are_encoded_and_links_made_absolute() {
    let c = HubClient::new("http://h:1/hub/", None, RetryPolicy::none()).expect("client");
    assert_eq!(
        c.resolve_url("org/model", "refs/pr/1", "dir/my model.gguf"),
        "http://h:1/hub/org/model/resolve/refs%2Fpr%2F1/dir/my%20model.gguf"
    );
    assert_eq!(
        c.token_url(RepoType::Model, "org/model", "refs/pr/1"),
        "http://h:1/hub/api/models/org/model/xet-read-token/refs%2Fpr%2F1"
    );
    assert_eq!(c.absolute("/api/x").expect("abs"), "http://h:1/api/x");
    assert_eq!(c.absolute("https://o/x").expect("abs"), "https://o/x");
}
