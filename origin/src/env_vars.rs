//! Every environment variable zest-origin reads, in one place.
//!
//! Each flag of [`crate::config::Config`] falls back to the variable of the same name here, so a
//! deployment can configure the server without a command line.

/// Folder whose `{org}/{name}/` sub-folders are served as model repos.
pub const ROOT: &str = "ZEST_ORIGIN_ROOT";
/// Address to listen on (`127.0.0.1:8080`).
pub const LISTEN: &str = "ZEST_ORIGIN_LISTEN";
/// Folder for xorbs and the index (default `<root>/.zest-origin-v1`).
pub const STATE: &str = "ZEST_ORIGIN_STATE";
/// Base URL clients should use to reach this server (CAS URL, xorb URLs, paging links).
pub const PUBLIC_URL: &str = "ZEST_ORIGIN_PUBLIC_URL";
/// Hub token clients must send as `Authorization: Bearer` (makes every repo gated).
pub const TOKEN: &str = "ZEST_ORIGIN_TOKEN";
/// Lifetime of CAS access tokens, in seconds.
pub const CAS_TOKEN_TTL: &str = "ZEST_ORIGIN_CAS_TOKEN_TTL";
/// Lifetime of signed xorb URLs, in seconds.
pub const XORB_URL_TTL: &str = "ZEST_ORIGIN_XORB_URL_TTL";
/// Hex key for HMAC signatures (random at start when unset).
pub const SIGNING_KEY: &str = "ZEST_ORIGIN_SIGNING_KEY";
/// Entries per page of the tree listing.
pub const TREE_PAGE_SIZE: &str = "ZEST_ORIGIN_TREE_PAGE_SIZE";
/// Answer `/v2/reconstructions` with 404 so clients fall back to v1.
pub const DISABLE_V2: &str = "ZEST_ORIGIN_DISABLE_V2";
/// HTTP worker threads.
pub const WORKERS: &str = "ZEST_ORIGIN_WORKERS";
/// Log format: `text` or `json`.
pub const LOG_FORMAT: &str = "ZEST_ORIGIN_LOG_FORMAT";
/// Standard tracing filter (`info`, `zest_origin=debug`, ...).
pub const LOG: &str = "RUST_LOG";
/// Test only: exit when standard input reaches end of file (the parent test process died).
pub const EXIT_ON_STDIN_EOF: &str = "ZEST_ORIGIN_EXIT_ON_STDIN_EOF";

/// Test only: added latency per request, in milliseconds.
pub const FAULT_LATENCY_MS: &str = "ZEST_ORIGIN_FAULT_LATENCY_MS";
/// Test only: cap on file and xorb bytes served per second, shared by all requests.
pub const FAULT_BANDWIDTH: &str = "ZEST_ORIGIN_FAULT_BANDWIDTH_BYTES_PER_SEC";
/// Test only: share (0..1) of requests answered 429.
pub const FAULT_429_RATE: &str = "ZEST_ORIGIN_FAULT_429_RATE";
/// Test only: share (0..1) of requests answered 500.
pub const FAULT_500_RATE: &str = "ZEST_ORIGIN_FAULT_500_RATE";
/// Test only: share (0..1) of requests answered 503 (with `Retry-After: 1`).
pub const FAULT_503_RATE: &str = "ZEST_ORIGIN_FAULT_503_RATE";
/// Test only: share (0..1) of xorb range responses with one byte flipped.
pub const FAULT_CORRUPT_RATE: &str = "ZEST_ORIGIN_FAULT_CORRUPT_RATE";
/// Test only: seed of the fault generator.
pub const FAULT_SEED: &str = "ZEST_ORIGIN_FAULT_SEED";
/// Test only: which routes faults apply to (`all`, `cas`, `xorbs`).
pub const FAULT_SCOPE: &str = "ZEST_ORIGIN_FAULT_SCOPE";
