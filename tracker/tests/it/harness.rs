//! Test infrastructure: a fresh PostgreSQL database and an own `redis-server` per test, and the
//! real tracker started in-process (on its own runtime thread) on `127.0.0.1:0`.
//!
//! PostgreSQL: `ZEST_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! must accept `CREATE DATABASE`. Redis: `ZEST_TEST_REDIS_SERVER` (default
//! `/usr/bin/redis-server`). When either is missing the tests FAIL with a message saying so.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use sqlx::Connection;
use xet::MerkleHash;
use zest_tracker::api;
use zest_tracker::clock::ManualClock;
use zest_tracker::config::Config;
use zest_tracker::env_vars;

pub const TOKEN: &str = "test-token-0123456789";
pub const TTL_SECS: u64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    PgRedis,
}

/// A xorb hash made from a number.
pub fn xorb(i: u64) -> MerkleHash {
    MerkleHash::from_u64_groups([i, 0x5eed, 7, 11])
}

pub fn range(start: u32, end: u32) -> api::ChunkRange {
    api::ChunkRange { start, end }
}

pub fn holding(i: u64, ranges: &[(u32, u32)]) -> api::XorbHolding {
    api::XorbHolding {
        hash: xorb(i),
        ranges: ranges.iter().map(|&(s, e)| range(s, e)).collect(),
    }
}

pub fn peer(id: &str, role: api::Role, zone: &str, load: u32) -> api::PeerDescriptor {
    api::PeerDescriptor {
        id: id.into(),
        addr: format!("127.0.0.1:{}", 9000 + id.len()),
        role,
        zone: zone.into(),
        free_bytes: 1 << 30,
        load,
    }
}

pub fn full(p: api::PeerDescriptor, list: Vec<api::XorbHolding>) -> api::AnnounceRequest {
    api::AnnounceRequest {
        peer: p,
        full: Some(list),
        added: vec![],
        removed: vec![],
    }
}

pub fn delta(
    p: api::PeerDescriptor,
    added: Vec<api::XorbHolding>,
    removed: Vec<api::XorbHolding>,
) -> api::AnnounceRequest {
    api::AnnounceRequest {
        peer: p,
        full: None,
        added,
        removed,
    }
}

pub fn one_lookup(i: u64, s: u32, e: u32) -> api::LookupRequest {
    api::LookupRequest {
        peer_id: None,
        zone: None,
        limit: None,
        items: vec![api::LookupItem {
            hash: xorb(i),
            range: range(s, e),
        }],
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `redis-server` process of this test only.
#[derive(Debug)]
pub struct RedisProc {
    child: Option<Child>,
    pub port: u16,
}

impl RedisProc {
    pub fn start() -> RedisProc {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> RedisProc {
        let bin = std::env::var(env_vars::ZEST_TEST_REDIS_SERVER)
            .unwrap_or_else(|_| "/usr/bin/redis-server".into());
        let child = Command::new(&bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({bin}): {e}. Install redis-server or set ZEST_TEST_REDIS_SERVER")
            });
        let mut r = RedisProc {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !r.pings() {
            if Instant::now() > deadline {
                r.kill();
                panic!("redis-server on port {port} did not answer PING within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    fn pings(&self) -> bool {
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 16];
        s.write_all(b"PING\r\n").is_ok()
            && s.read(&mut buf)
                .map(|n| buf[..n].starts_with(b"+PONG"))
                .unwrap_or(false)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh database on the test PostgreSQL server, dropped at the end.
#[derive(Debug)]
pub struct TestDb {
    admin_url: String,
    name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create() -> TestDb {
        let admin_url = std::env::var(env_vars::ZEST_TEST_DATABASE_URL)
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {admin_url}: {e}. Start PostgreSQL (trust auth for user postgres) \
                 or set ZEST_TEST_DATABASE_URL"
            )
        });
        let name = format!(
            "zest_tracker_test_{}",
            hex::encode(rand::random::<[u8; 8]>())
        );
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE on {admin_url} failed: {e}"));
        let _ = conn.close().await;
        let base = admin_url.split('?').next().unwrap_or(&admin_url);
        let (server, _) = base.rsplit_once('/').expect("database URL has a path");
        let url = format!("{server}/{name}");
        TestDb {
            admin_url,
            name,
            url,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside a test runtime: use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut c)
                        .await;
                }
            })
        })
        .join();
    }
}

/// A tracker server running on its own thread and runtime.
#[derive(Debug)]
pub struct Server {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    pub async fn start(config: Config, clock: Arc<ManualClock>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(zest_tracker::run_with_clock(
                listener,
                config,
                clock,
                async move {
                    let _ = rx.await;
                },
            ))
        });
        let mut server = Server {
            base: format!("http://{addr}"),
            stop: Some(tx),
            thread: Some(thread),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{}/healthz", server.base)).send().await {
                if r.status().is_success() {
                    return server;
                }
            }
            if server.thread.as_ref().is_some_and(|t| t.is_finished()) {
                let r = server.thread.take().map(|t| t.join());
                panic!("tracker exited during start: {r:?}");
            }
            assert!(
                Instant::now() < deadline,
                "tracker did not answer /healthz within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the server and waits for it to exit.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let r = tokio::task::spawn_blocking(move || t.join())
                .await
                .expect("join task");
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("tracker failed: {e:#}"),
                Err(_) => panic!("tracker thread panicked"),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One test's world: its stores, its clock, its tracker and an HTTP client.
#[derive(Debug)]
pub struct Env {
    pub clock: Arc<ManualClock>,
    pub config: Config,
    pub server: Server,
    pub redis: Option<RedisProc>,
    pub db: Option<TestDb>,
    pub http: reqwest::Client,
}

pub fn test_config() -> Config {
    Config {
        token: Some(TOKEN.into()),
        peer_ttl_secs: TTL_SECS,
        sweep_interval_ms: 50,
        workers: Some(2),
        ..Config::default()
    }
}

impl Env {
    pub async fn start(backend: Backend) -> Env {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Env {
        let mut config = test_config();
        tweak(&mut config);
        let (db, redis) = match backend {
            Backend::Embedded => (None, None),
            Backend::PgRedis => {
                let db = TestDb::create().await;
                let redis = RedisProc::start();
                config.database_url = Some(db.url.clone());
                config.redis_url = Some(redis.url());
                (Some(db), Some(redis))
            }
        };
        let clock = Arc::new(ManualClock::new());
        let server = Server::start(config.clone(), clock.clone()).await;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        Env {
            clock,
            config,
            server,
            redis,
            db,
            http,
        }
    }

    /// Stops the tracker and starts a new one on the same stores (and clock).
    pub async fn restart(&mut self) {
        self.server.stop().await;
        self.server = Server::start(self.config.clone(), self.clock.clone()).await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base)
    }

    /// Sends a request (with the test token) and returns the status and the JSON body (Null if none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl Serialize>,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut rb = self.http.request(method, self.url(path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let r = rb.send().await.expect("request sent");
        let status = r.status();
        let bytes = r.bytes().await.expect("body");
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, v)
    }

    /// Asserts that the `/metrics` page holds every one of `lines`.
    pub async fn assert_metrics(&self, lines: &[&str]) {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        for line in lines {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
    }

    /// A PUT of `body` with the test token: the status and the JSON body (Null if none).
    pub async fn put(&self, path: &str, body: &impl Serialize) -> (StatusCode, Value) {
        self.call(reqwest::Method::PUT, path, Some(body), Some(TOKEN))
            .await
    }

    /// A POST of `body` with the test token: the status and the JSON body (Null if none).
    pub async fn post(&self, path: &str, body: &impl Serialize) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body), Some(TOKEN))
            .await
    }

    /// An unauthenticated GET: the status and the JSON body (Null if none).
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None::<&()>, None)
            .await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request sent");
        let status = r.status();
        let v = r.json().await.unwrap_or(Value::Null);
        (status, v)
    }

    pub async fn ok<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> T {
        let (status, v) = self.call(method.clone(), path, body, Some(TOKEN)).await;
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        serde_json::from_value(v.clone())
            .unwrap_or_else(|e| panic!("{method} {path}: unexpected body {v}: {e}"))
    }

    pub async fn announce(&self, req: &api::AnnounceRequest) -> api::AnnounceResponse {
        self.ok(reqwest::Method::POST, "/v1/announce", Some(req))
            .await
    }

    pub async fn lookup(&self, req: &api::LookupRequest) -> api::LookupResponse {
        self.ok(reqwest::Method::POST, "/v1/lookup", Some(req))
            .await
    }

    /// Peer ids answering a one-item lookup.
    pub async fn holders(&self, i: u64, s: u32, e: u32) -> Vec<String> {
        let r = self.lookup(&one_lookup(i, s, e)).await;
        assert_eq!(r.results.len(), 1);
        r.results[0].peers.clone()
    }

    /// One-item lookups: each `(xorb, start, end, holders, why)` must answer exactly `holders`,
    /// best first.
    pub async fn check_holders(&self, cases: &[(u64, u32, u32, &[&str], &str)]) {
        for &(i, s, e, want, why) in cases {
            assert_eq!(
                self.holders(i, s, e).await,
                want,
                "xorb {i} chunks {s}..{e}: {why}"
            );
        }
    }

    pub async fn stats(&self) -> api::StatsResponse {
        self.ok(reqwest::Method::GET, "/v1/stats", None::<&()>)
            .await
    }

    pub async fn peers(&self) -> api::PeersResponse {
        self.ok(reqwest::Method::GET, "/v1/peers", None::<&()>)
            .await
    }
}
