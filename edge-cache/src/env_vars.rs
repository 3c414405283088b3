//! Every environment variable `zest-edge` reads, in one place.
//!
//! Each flag of [`crate::config::Config`] falls back to the variable named here:
//! `ZEST_EDGE_<FLAG>` (the convention of [`zest_service::env_vars`]), plus the tracker's
//! shared `ZEST_TRACKER` and `ZEST_TRACKER_TOKEN`.

pub use zest_service::env_vars::{RUST_LOG, ZEST_TRACKER, ZEST_TRACKER_TOKEN};

/// Folder of the xorb range store (`--cache-dir`).
pub const ZEST_EDGE_CACHE_DIR: &str = "ZEST_EDGE_CACHE_DIR";
/// Most bytes the store may use on disk (`--cache-size`, e.g. `10G`).
pub const ZEST_EDGE_CACHE_SIZE: &str = "ZEST_EDGE_CACHE_SIZE";
/// The Hugging Face endpoint proxied (`--upstream`).
pub const ZEST_EDGE_UPSTREAM: &str = "ZEST_EDGE_UPSTREAM";
/// Extra origins fetched from on a peer's behalf, comma-separated (`--upstream-fetch-allow`).
pub const ZEST_EDGE_UPSTREAM_FETCH_ALLOW: &str = "ZEST_EDGE_UPSTREAM_FETCH_ALLOW";
/// HTTP address: cache-proxy, `/v1/warm`, `/metrics`, `/healthz` (`--listen-http`).
pub const ZEST_EDGE_LISTEN_HTTP: &str = "ZEST_EDGE_LISTEN_HTTP";
/// Data address: xorb ranges served with `sendfile(2)` (`--listen-data`).
pub const ZEST_EDGE_LISTEN_DATA: &str = "ZEST_EDGE_LISTEN_DATA";
/// Peer wire-protocol address (`--listen-peer`).
pub const ZEST_EDGE_LISTEN_PEER: &str = "ZEST_EDGE_LISTEN_PEER";
/// PEM certificate chain for TLS on the peer port (`--tls-cert`).
pub const ZEST_EDGE_TLS_CERT: &str = "ZEST_EDGE_TLS_CERT";
/// PEM private key for TLS on the peer port (`--tls-key`).
pub const ZEST_EDGE_TLS_KEY: &str = "ZEST_EDGE_TLS_KEY";
/// URL clients reach the HTTP port at (`--public-url`).
pub const ZEST_EDGE_PUBLIC_URL: &str = "ZEST_EDGE_PUBLIC_URL";
/// URL clients reach the data port at (`--public-data-url`).
pub const ZEST_EDGE_PUBLIC_DATA_URL: &str = "ZEST_EDGE_PUBLIC_DATA_URL";
/// `host:port` announced to the tracker for the peer port (`--peer-addr`).
pub const ZEST_EDGE_PEER_ADDR: &str = "ZEST_EDGE_PEER_ADDR";
/// Peer id towards the tracker and in the wire Handshake (`--peer-id`).
pub const ZEST_EDGE_PEER_ID: &str = "ZEST_EDGE_PEER_ID";
/// Zone label sent to the tracker (`--zone`).
pub const ZEST_EDGE_ZONE: &str = "ZEST_EDGE_ZONE";
/// Largest file verified whole by its Xet hash before caching (`--verify-max-file-bytes`).
pub const ZEST_EDGE_VERIFY_MAX_FILE_BYTES: &str = "ZEST_EDGE_VERIFY_MAX_FILE_BYTES";
/// Token required by the admin routes (`--admin-token`).
pub const ZEST_EDGE_ADMIN_TOKEN: &str = "ZEST_EDGE_ADMIN_TOKEN";
/// Admin routes without a token, loopback HTTP listener only (`--admin-no-auth`).
pub const ZEST_EDGE_ADMIN_NO_AUTH: &str = "ZEST_EDGE_ADMIN_NO_AUTH";
/// HTTP worker threads (`--workers`).
pub const ZEST_EDGE_WORKERS: &str = "ZEST_EDGE_WORKERS";
/// `text` or `json` log lines (`--log-format`).
pub const ZEST_EDGE_LOG_FORMAT: &str = "ZEST_EDGE_LOG_FORMAT";
/// Test switch: exit when stdin reaches end of file (`--exit-on-stdin-eof`).
pub const ZEST_EDGE_EXIT_ON_STDIN_EOF: &str = "ZEST_EDGE_EXIT_ON_STDIN_EOF";
