//! Every environment variable the tracker reads, in one place.
//!
//! Each flag of `zest-tracker` falls back to one of these, named `ZEST_TRACKER_<FLAG>` (the
//! convention of [`zest_service::env_vars`]; `DATABASE_URL`, `REDIS_URL` and `RUST_LOG` keep
//! their usual names). Tests and the load generator name their own variables here too so that
//! nothing reads an undocumented variable.

pub use zest_service::env_vars::{RUST_LOG, ZEST_TRACKER_TOKEN};

/// PostgreSQL URL of the durable store (peers, manifests, reports, tokens).
pub const DATABASE_URL: &str = "DATABASE_URL";
/// Redis URL of the hot store (peer liveness and holdings).
pub const REDIS_URL: &str = "REDIS_URL";
/// Address the HTTP API listens on (`--listen`).
pub const ZEST_TRACKER_LISTEN: &str = "ZEST_TRACKER_LISTEN";
/// Accept writes without any token (`--no-auth`); for demos on one machine only.
pub const ZEST_TRACKER_NO_AUTH: &str = "ZEST_TRACKER_NO_AUTH";
/// Require a token for lookups and other reads too (`--lookup-auth`).
pub const ZEST_TRACKER_LOOKUP_AUTH: &str = "ZEST_TRACKER_LOOKUP_AUTH";
/// Seconds a peer stays in lookups after its last announce (`--peer-ttl`).
pub const ZEST_TRACKER_PEER_TTL: &str = "ZEST_TRACKER_PEER_TTL";
/// Seconds between announces that the tracker asks peers for (`--announce-interval`).
pub const ZEST_TRACKER_ANNOUNCE_INTERVAL: &str = "ZEST_TRACKER_ANNOUNCE_INTERVAL";
/// Milliseconds between sweeps of expired peers (`--sweep-interval-ms`).
pub const ZEST_TRACKER_SWEEP_INTERVAL_MS: &str = "ZEST_TRACKER_SWEEP_INTERVAL_MS";
/// Time limit of one Redis command or pipeline in milliseconds (`--redis-timeout-ms`).
pub const ZEST_TRACKER_REDIS_TIMEOUT_MS: &str = "ZEST_TRACKER_REDIS_TIMEOUT_MS";
/// Largest accepted request body in bytes (`--max-body-bytes`).
pub const ZEST_TRACKER_MAX_BODY_BYTES: &str = "ZEST_TRACKER_MAX_BODY_BYTES";
/// Most items in one lookup (`--max-lookup-items`).
pub const ZEST_TRACKER_MAX_LOOKUP_ITEMS: &str = "ZEST_TRACKER_MAX_LOOKUP_ITEMS";
/// Most xorbs in one announce list (`--max-announce-xorbs`).
pub const ZEST_TRACKER_MAX_ANNOUNCE_XORBS: &str = "ZEST_TRACKER_MAX_ANNOUNCE_XORBS";
/// HTTP worker threads (`--workers`, default: one per core).
pub const ZEST_TRACKER_WORKERS: &str = "ZEST_TRACKER_WORKERS";
/// `text` or `json` log lines (`--log-format`).
pub const ZEST_TRACKER_LOG_FORMAT: &str = "ZEST_TRACKER_LOG_FORMAT";
/// Test switch: exit when stdin reaches end of file (`--exit-on-stdin-eof`).
pub const ZEST_TRACKER_EXIT_ON_STDIN_EOF: &str = "ZEST_TRACKER_EXIT_ON_STDIN_EOF";

/// Tests: PostgreSQL server used to create one fresh database per test
/// (default `postgres://postgres@127.0.0.1:5432/postgres`).
pub const ZEST_TEST_DATABASE_URL: &str = "ZEST_TEST_DATABASE_URL";
/// Tests: the `redis-server` binary the tests start and kill (default `/usr/bin/redis-server`).
pub const ZEST_TEST_REDIS_SERVER: &str = "ZEST_TEST_REDIS_SERVER";

/// Load generator: tokio worker threads of `zest-tracker-load` (default 1).
pub const ZEST_TRACKER_LOAD_THREADS: &str = "ZEST_TRACKER_LOAD_THREADS";
