//! Command line and environment configuration of `zest-tracker`.
//!
//! Every flag has an environment fallback named in [`crate::env_vars`]. With neither
//! `DATABASE_URL` nor `REDIS_URL` the tracker uses the embedded in-memory store; with both, the
//! PostgreSQL + Redis store; with only one, it refuses to start.

use clap::{Args, Parser, Subcommand};
pub use zest_service::LogFormat;

use crate::env_vars;

/// zest tracker: which peers hold which xorb ranges.
#[derive(Debug, Clone, Parser)]
#[command(name = "zest-tracker", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the HTTP API (the default).
    Serve,
    /// Manage API tokens stored (hashed) in PostgreSQL; needs DATABASE_URL.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum TokenAction {
    /// Create a token and print its secret once.
    Add { name: String },
    /// List token names.
    List,
    /// Delete a token.
    Revoke { name: String },
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = env_vars::ZEST_TRACKER_LISTEN, default_value = "0.0.0.0:7070", global = true)]
    pub listen: String,
    /// PostgreSQL URL (durable state); set together with --redis-url.
    #[arg(long, env = env_vars::DATABASE_URL, hide_env_values = true, global = true)]
    pub database_url: Option<String>,
    /// Redis URL (hot state); set together with --database-url.
    #[arg(long, env = env_vars::REDIS_URL, hide_env_values = true, global = true)]
    pub redis_url: Option<String>,
    /// Shared bearer token accepted for writes (in addition to tokens stored in PostgreSQL).
    #[arg(long, env = env_vars::ZEST_TRACKER_TOKEN, hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Accept every request without a token (one machine, demos).
    #[arg(long, env = env_vars::ZEST_TRACKER_NO_AUTH, global = true)]
    pub no_auth: bool,
    /// Require a token for lookups and other reads too.
    #[arg(long, env = env_vars::ZEST_TRACKER_LOOKUP_AUTH, global = true)]
    pub lookup_auth: bool,
    /// Seconds a peer stays in lookups after its last announce.
    #[arg(long = "peer-ttl", env = env_vars::ZEST_TRACKER_PEER_TTL, default_value_t = 90, global = true)]
    pub peer_ttl_secs: u64,
    /// Seconds between announces asked of peers (default: a third of the TTL).
    #[arg(long = "announce-interval", env = env_vars::ZEST_TRACKER_ANNOUNCE_INTERVAL, global = true)]
    pub announce_interval_secs: Option<u64>,
    /// Milliseconds between sweeps of expired peers.
    #[arg(long, env = env_vars::ZEST_TRACKER_SWEEP_INTERVAL_MS, default_value_t = 5000, global = true)]
    pub sweep_interval_ms: u64,
    /// Time limit of one Redis command or pipeline (milliseconds).
    #[arg(long, env = env_vars::ZEST_TRACKER_REDIS_TIMEOUT_MS, default_value_t = 500, global = true)]
    pub redis_timeout_ms: u64,
    /// Largest request body accepted (bytes).
    #[arg(long, env = env_vars::ZEST_TRACKER_MAX_BODY_BYTES, default_value_t = 16 << 20, global = true)]
    pub max_body_bytes: usize,
    /// Most items in one lookup.
    #[arg(long, env = env_vars::ZEST_TRACKER_MAX_LOOKUP_ITEMS, default_value_t = 10_000, global = true)]
    pub max_lookup_items: usize,
    /// Most xorbs in one announce.
    #[arg(long, env = env_vars::ZEST_TRACKER_MAX_ANNOUNCE_XORBS, default_value_t = 100_000, global = true)]
    pub max_announce_xorbs: usize,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = env_vars::ZEST_TRACKER_WORKERS, global = true)]
    pub workers: Option<usize>,
    /// Log line format.
    #[arg(long, env = env_vars::ZEST_TRACKER_LOG_FORMAT, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Test switch: exit when standard input is closed (the parent test died).
    #[arg(long, env = env_vars::ZEST_TRACKER_EXIT_ON_STDIN_EOF, global = true)]
    pub exit_on_stdin_eof: bool,
}

impl Default for Config {
    /// The defaults of every flag, without reading the environment.
    fn default() -> Self {
        Config {
            listen: "0.0.0.0:7070".into(),
            database_url: None,
            redis_url: None,
            token: None,
            no_auth: false,
            lookup_auth: false,
            peer_ttl_secs: 90,
            announce_interval_secs: None,
            sweep_interval_ms: 5000,
            redis_timeout_ms: 500,
            max_body_bytes: 16 << 20,
            max_lookup_items: 10_000,
            max_announce_xorbs: 100_000,
            workers: None,
            log_format: LogFormat::Text,
            exit_on_stdin_eof: false,
        }
    }
}

impl Config {
    /// Seconds between announces: the flag, or a third of the TTL (at least 1).
    pub fn announce_interval(&self) -> u64 {
        self.announce_interval_secs
            .unwrap_or(self.peer_ttl_secs / 3)
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn token_subcommand_parses() {
        let cli = Cli::try_parse_from(["zest-tracker", "token", "add", "ci"]).expect("parses");
        assert!(
            matches!(cli.command, Some(Command::Token { action: TokenAction::Add { name } }) if name == "ci")
        );
    }
}
