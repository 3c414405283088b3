//! The naming convention of zest's environment variables, and the variables several binaries
//! read.
//!
//! Every flag has an environment fallback named after it:
//!
//! - a server's flag `--some-flag` reads `ZEST_<SERVICE>_SOME_FLAG`, with `<SERVICE>` one of
//!   `TRACKER`, `EDGE`, `ORIGIN` (`zest-edge --log-format` reads `ZEST_EDGE_LOG_FORMAT`);
//! - the `zest` CLI's flags read `ZEST_SOME_FLAG` (the CLI is the `zest` in the prefix), or
//!   `ZEST_<SUBCOMMAND>_SOME_FLAG` for a flag of one subcommand only (`ZEST_SEED_LISTEN`);
//! - the tracker's address and write token are shared by everyone who talks to it:
//!   [`ZEST_TRACKER`] and [`ZEST_TRACKER_TOKEN`];
//! - names other tools already define keep their names: `RUST_LOG`, `HF_*` (Hugging Face),
//!   `DATABASE_URL` and `REDIS_URL` (the tracker's stores).
//!
//! Each binary lists every variable it reads, with documentation, in its own `env_vars` module
//! (re-exporting the shared ones from here), and its flags take their `env` from those
//! constants; no binary writes an environment variable's name as a string literal elsewhere.

/// Base URL of the zest tracker (`--tracker`), for every fleet member (`zest pull`,
/// `zest seed`, `zest-edge`).
pub const ZEST_TRACKER: &str = "ZEST_TRACKER";
/// Bearer token for writes to the tracker (`--tracker-token`); the tracker accepts it
/// (`zest-tracker --token`), fleet members send it.
pub const ZEST_TRACKER_TOKEN: &str = "ZEST_TRACKER_TOKEN";
/// Our peer id towards the tracker and other peers (`zest pull`, `zest seed`: `--peer-id`).
pub const ZEST_PEER_ID: &str = "ZEST_PEER_ID";
/// Our zone (rack, availability zone, site) towards the tracker (`zest pull`, `zest seed`:
/// `--zone`); lookups rank holders of the same zone first.
pub const ZEST_ZONE: &str = "ZEST_ZONE";
/// Folder of the `zest` CLI's local xorb store (`--zest-cache`; default
/// `$XDG_CACHE_HOME/zest`, else `~/.cache/zest`).
pub const ZEST_CACHE: &str = "ZEST_CACHE";
/// Size cap of the `zest` CLI's local xorb store in bytes (`--cache-max-bytes`).
pub const ZEST_CACHE_MAX_BYTES: &str = "ZEST_CACHE_MAX_BYTES";
/// Log filter, `tracing_subscriber::EnvFilter` syntax (default `info`), for every binary.
pub const RUST_LOG: &str = "RUST_LOG";
