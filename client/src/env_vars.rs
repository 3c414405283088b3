//! Every environment variable zest reads, in one place (names only; each is documented where
//! it is declared). Flags take their `env` fallback from these constants. The names follow
//! [`zest_service::env_vars`]: `ZEST_<FLAG>` for the CLI, `ZEST_<SUBCOMMAND>_<FLAG>` for one
//! subcommand's flags, and the fleet's shared names re-exported from there.

pub use zest_service::env_vars::{
    RUST_LOG, ZEST_CACHE, ZEST_CACHE_MAX_BYTES, ZEST_PEER_ID, ZEST_TRACKER, ZEST_TRACKER_TOKEN,
    ZEST_ZONE,
};

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
/// `text` or `json` log lines (`--log-format`).
pub const ZEST_LOG_FORMAT: &str = "ZEST_LOG_FORMAT";
/// Worker threads for hashing (default: all cores; same as `--threads`).
pub const ZEST_THREADS: &str = "ZEST_THREADS";
/// Retries of a failed Hub, CAS or xorb request (`--max-retries` of `zest pull` and `zest
/// inspect`).
pub const ZEST_MAX_RETRIES: &str = "ZEST_MAX_RETRIES";
/// Python interpreter with `hf_xet` installed, used by tests and benchmark scripts to compare
/// against the reference client (default `<repo>/.venv/bin/python`).
pub const ZEST_PYTHON: &str = "ZEST_PYTHON";
/// `zest pull --fsync`: make every file durable before it is renamed into place.
pub const ZEST_FSYNC: &str = "ZEST_FSYNC";
/// Address `zest seed` listens on.
pub const ZEST_SEED_LISTEN: &str = "ZEST_SEED_LISTEN";
/// `zest seed --metrics-listen`: where to serve `/metrics` and `/healthz` (default: nowhere).
pub const ZEST_SEED_METRICS_LISTEN: &str = "ZEST_SEED_METRICS_LISTEN";
/// `zest pull --metrics-listen`: where to serve `/metrics` and `/healthz` while the pull runs
/// (and serves; default: nowhere).
pub const ZEST_METRICS_LISTEN: &str = "ZEST_METRICS_LISTEN";
/// Address `zest seed` announces (default: the listen address).
pub const ZEST_SEED_ADVERTISE: &str = "ZEST_SEED_ADVERTISE";
/// `zest pull --no-serve`: take from the swarm without serving it.
pub const ZEST_NO_SERVE: &str = "ZEST_NO_SERVE";
/// Address `zest pull` listens on for peers while it pulls (default `0.0.0.0:0`).
pub const ZEST_LISTEN: &str = "ZEST_LISTEN";
/// Address `zest pull` announces (default: the route to the tracker, and the listening port).
pub const ZEST_ADVERTISE: &str = "ZEST_ADVERTISE";
/// How long `zest pull` keeps serving after it completes (`--seed-for`).
pub const ZEST_SEED_FOR: &str = "ZEST_SEED_FOR";
/// Peers `zest pull` serves at once (`--upload-slots`).
pub const ZEST_UPLOAD_SLOTS: &str = "ZEST_UPLOAD_SLOTS";
/// Most bytes per second `zest pull` serves to peers (`--max-upload-rate`).
pub const ZEST_MAX_UPLOAD_RATE: &str = "ZEST_MAX_UPLOAD_RATE";
/// Ranges a swarm fetches from upstream at once (`zest pull --swarm-upstream-fetches`).
pub const ZEST_SWARM_UPSTREAM_FETCHES: &str = "ZEST_SWARM_UPSTREAM_FETCHES";
