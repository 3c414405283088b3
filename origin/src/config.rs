//! Command line and environment configuration of zest-origin.
//!
//! Every flag has an environment fallback named in [`crate::env_vars`]. Flags under "test
//! switches" inject faults; they are off by default and exist only so other components' tests
//! can exercise retries, throttling and integrity checks against a misbehaving upstream.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
pub use zest_service::LogFormat;

use crate::env_vars;

/// Name of the default state folder inside the root (excluded from the served repos).
pub const DEFAULT_STATE_DIR_NAME: &str = ".zest-origin-v1";

/// zest-origin: serve `ROOT/{org}/{name}/` folders as Hugging Face model repos over the Hub
/// and Xet CAS APIs.
#[derive(Debug, Clone, Parser)]
#[command(name = "zest-origin", version, about)]
pub struct Config {
    /// Folder whose `{org}/{name}/` sub-folders are served as model repos.
    #[arg(long, env = env_vars::ROOT)]
    pub root: PathBuf,

    /// Address to listen on.
    #[arg(long, env = env_vars::LISTEN, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Folder for xorbs and the index [default: ROOT/.zest-origin-v1].
    #[arg(long, env = env_vars::STATE)]
    pub state_dir: Option<PathBuf>,

    /// Base URL clients use to reach this server (CAS URL, xorb URLs, paging links)
    /// [default: taken from each request's Host header].
    #[arg(long, env = env_vars::PUBLIC_URL)]
    pub public_url: Option<String>,

    /// Hub token clients must send as `Authorization: Bearer <token>` (a gated server).
    #[arg(long, env = env_vars::TOKEN, hide_env_values = true)]
    pub token: Option<String>,

    /// Lifetime of CAS access tokens, in seconds.
    #[arg(long, env = env_vars::CAS_TOKEN_TTL, default_value_t = 3600)]
    pub cas_token_ttl: u64,

    /// Lifetime of signed xorb URLs, in seconds.
    #[arg(long, env = env_vars::XORB_URL_TTL, default_value_t = 3600)]
    pub xorb_url_ttl: u64,

    /// HMAC key (hex, at least 32 digits) for CAS tokens and xorb URLs [default: random at start].
    #[arg(long, env = env_vars::SIGNING_KEY, hide_env_values = true)]
    pub signing_key: Option<String>,

    /// Entries per page of `/api/models/{repo}/tree/{rev}`.
    #[arg(long, env = env_vars::TREE_PAGE_SIZE, default_value_t = 1000)]
    pub tree_page_size: usize,

    /// Answer `/v2/reconstructions` with 404 so clients fall back to v1.
    #[arg(long, env = env_vars::DISABLE_V2)]
    pub disable_v2: bool,

    /// HTTP worker threads [default: number of CPUs, at most 4].
    #[arg(long, env = env_vars::WORKERS)]
    pub workers: Option<usize>,

    /// Log format.
    #[arg(long, env = env_vars::LOG_FORMAT, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Test switch: exit when standard input is closed (the parent test died).
    #[arg(long, env = env_vars::EXIT_ON_STDIN_EOF, help_heading = "Test switches")]
    pub exit_on_stdin_eof: bool,

    #[command(flatten)]
    pub faults: FaultConfig,
}

/// Fault injection for tests of other components. All off by default.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Test switches (fault injection, off by default)")]
pub struct FaultConfig {
    /// Added latency before answering each request, in milliseconds.
    #[arg(long, env = env_vars::FAULT_LATENCY_MS, default_value_t = 0)]
    pub fault_latency_ms: u64,

    /// Cap on file and xorb bytes served per second, shared by all requests (0 = no cap).
    #[arg(long, env = env_vars::FAULT_BANDWIDTH, default_value_t = 0)]
    pub fault_bandwidth_bytes_per_sec: u64,

    /// Share of requests (0..1) answered 429 Too Many Requests.
    #[arg(long, env = env_vars::FAULT_429_RATE, default_value_t = 0.0)]
    pub fault_429_rate: f64,

    /// Share of requests (0..1) answered 500 Internal Server Error.
    #[arg(long, env = env_vars::FAULT_500_RATE, default_value_t = 0.0)]
    pub fault_500_rate: f64,

    /// Share of requests (0..1) answered 503 Service Unavailable (with `Retry-After: 1`).
    #[arg(long, env = env_vars::FAULT_503_RATE, default_value_t = 0.0)]
    pub fault_503_rate: f64,

    /// Share of xorb range responses (0..1) with one byte flipped.
    #[arg(long, env = env_vars::FAULT_CORRUPT_RATE, default_value_t = 0.0)]
    pub fault_corrupt_rate: f64,

    /// Seed of the fault generator (same seed, same sequence of faults).
    #[arg(long, env = env_vars::FAULT_SEED, default_value_t = 0)]
    pub fault_seed: u64,

    /// Which requests latency, 429 and 500 faults apply to.
    #[arg(long, env = env_vars::FAULT_SCOPE, value_enum, default_value_t = FaultScope::All)]
    pub fault_scope: FaultScope,
}

/// Requests that faults apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum FaultScope {
    /// Every request except `/metrics`, `/healthz` and `/readyz`.
    #[default]
    All,
    /// CAS requests: reconstructions and xorb ranges.
    Cas,
    /// Xorb range requests only.
    Xorbs,
}

impl Config {
    /// A configuration with defaults for everything but the root (for tests and embedding).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Config {
            root: root.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_dir: None,
            public_url: None,
            token: None,
            cas_token_ttl: 3600,
            xorb_url_ttl: 3600,
            signing_key: None,
            tree_page_size: 1000,
            disable_v2: false,
            workers: None,
            log_format: LogFormat::Text,
            exit_on_stdin_eof: false,
            faults: FaultConfig::default(),
        }
    }

    /// The state folder: `--state-dir`, or `<root>/.zest-origin-v1`.
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| self.root.join(DEFAULT_STATE_DIR_NAME))
    }

    /// Checks values clap cannot (rates in 0..1, page size, key length).
    pub fn validate(&self) -> Result<(), String> {
        let f = &self.faults;
        for (name, v) in [
            ("--fault-429-rate", f.fault_429_rate),
            ("--fault-500-rate", f.fault_500_rate),
            ("--fault-503-rate", f.fault_503_rate),
            ("--fault-corrupt-rate", f.fault_corrupt_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be between 0 and 1, got {v}"));
            }
        }
        if self.tree_page_size == 0 {
            return Err("--tree-page-size must be at least 1".into());
        }
        if self.cas_token_ttl == 0 || self.xorb_url_ttl == 0 {
            return Err("--cas-token-ttl and --xorb-url-ttl must be at least 1 second".into());
        }
        if let Some(k) = &self.signing_key {
            match hex::decode(k) {
                Ok(b) if b.len() >= 16 => {}
                _ => return Err("--signing-key must be at least 32 hex digits".into()),
            }
        }
        if let Some(u) = &self.public_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err("--public-url must start with http:// or https://".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_and_defaults() {
        let c = Config::try_parse_from([
            "zest-origin",
            "--root",
            "/r",
            "--listen",
            "127.0.0.1:0",
            "--fault-429-rate",
            "0.5",
        ])
        .expect("parse");
        assert_eq!(c.state_dir(), PathBuf::from("/r/.zest-origin-v1"));
        assert_eq!(c.cas_token_ttl, 3600);
        assert_eq!(c.faults.fault_429_rate, 0.5);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn rejects_rates_outside_unit_interval() {
        let mut c = Config::new("/r");
        c.faults.fault_500_rate = 1.5;
        assert!(c.validate().is_err());
    }
}
