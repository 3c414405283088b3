//! Every environment variable zest reads, in one place (names only; each is documented where
//! it is declared). Flags take their `env` fallback from these constants.

/// Hugging Face Hub base URL (default `https://huggingface.co`).
pub const HF_ENDPOINT: &str = "HF_ENDPOINT";
/// Hugging Face access token, sent only to the Hub.
pub const HF_TOKEN: &str = "HF_TOKEN";
/// Root of Hugging Face's local state (default `~/.cache/huggingface`).
pub const HF_HOME: &str = "HF_HOME";
/// The Hub cache folder (default `$HF_HOME/hub`).
pub const HF_HUB_CACHE: &str = "HF_HUB_CACHE";
/// hf_xet's own chunk and shard cache (default `$HF_HOME/xet`).
pub const HF_XET_CACHE: &str = "HF_XET_CACHE";
/// URL of the zest tracker.
pub const ZEST_TRACKER: &str = "ZEST_TRACKER";
/// `true` to log JSON lines instead of human-readable text (same as `--log-json`).
pub const ZEST_LOG_JSON: &str = "ZEST_LOG_JSON";
/// Worker threads for hashing (default: all cores; same as `--threads`).
pub const ZEST_THREADS: &str = "ZEST_THREADS";
/// Retries of a failed Hub, CAS or xorb request (`--max-retries` of `zest pull` and `zest
/// inspect`).
pub const ZEST_MAX_RETRIES: &str = "ZEST_MAX_RETRIES";
/// Log filter, `tracing_subscriber::EnvFilter` syntax (default `info`).
pub const RUST_LOG: &str = "RUST_LOG";
/// Python interpreter with `hf_xet` installed, used by tests and benchmark scripts to compare
/// against the reference client (default `<repo>/.venv/bin/python`).
pub const ZEST_PYTHON: &str = "ZEST_PYTHON";
/// Bearer token for writes to the tracker (announce, reports, manifests).
pub const ZEST_TRACKER_TOKEN: &str = "ZEST_TRACKER_TOKEN";
/// Folder of the local xorb store (default `$XDG_CACHE_HOME/zest`, else `~/.cache/zest`).
pub const ZEST_CACHE: &str = "ZEST_CACHE";
/// Size cap of the local xorb store in bytes.
pub const ZEST_CACHE_MAX_BYTES: &str = "ZEST_CACHE_MAX_BYTES";
/// `zest pull --fsync`: make every file durable before it is renamed into place.
pub const ZEST_FSYNC: &str = "ZEST_FSYNC";
/// Our peer id towards the tracker and other peers.
pub const ZEST_PEER_ID: &str = "ZEST_PEER_ID";
/// Address `zest seed` listens on.
pub const ZEST_SEED_LISTEN: &str = "ZEST_SEED_LISTEN";
/// Address `zest seed` announces (default: the listen address).
pub const ZEST_SEED_ADVERTISE: &str = "ZEST_SEED_ADVERTISE";
