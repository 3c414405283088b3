//! Command-line arguments (clap derive). Each subcommand's arguments live beside its code;
//! add new subcommands (`pull`, `inspect`, `seed`, `demo`) to [`Command`].

use clap::{Parser, Subcommand};

use crate::demo::DemoArgs;
use crate::env_vars;
use crate::hash_cmd::HashArgs;
use crate::inspect::InspectArgs;
use crate::pull::PullArgs;
use crate::seed::SeedArgs;
use zest_service::LogFormat;

/// zest: peer-to-peer distribution of Hugging Face Xet data.
#[derive(Debug, Parser)]
#[command(name = "zest", version, about)]
pub struct Cli {
    /// Log line format (logs go to stderr).
    #[arg(long, global = true, env = env_vars::ZEST_LOG_FORMAT, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Deprecated spelling of `--log-format json`, kept for existing scripts.
    #[arg(long, global = true, hide = true)]
    pub log_json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the Xet file hash (the Hub's `X-Xet-Hash`), sha256, size and chunk count of files.
    Hash(HashArgs),
    /// Show what a GGUF or safetensors file is (local FILE, or REPO PATH fetching only its header).
    Inspect(InspectArgs),
    /// Download a model revision, verified, into the Hugging Face cache (fleet first, then upstream).
    Pull(PullArgs),
    /// Serve the local xorb store to other peers and announce it to the tracker.
    Seed(SeedArgs),
    /// Run a whole fleet on loopback (origin, tracker, edge) and pull a generated model three times.
    Demo(DemoArgs),
}

impl Cli {
    /// The log format asked for: `--log-format`, or JSON with the deprecated `--log-json`.
    pub fn log_format(&self) -> LogFormat {
        if self.log_json {
            LogFormat::Json
        } else {
            self.log_format
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed_and_log_json_is_an_alias() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["zest", "--log-json", "hash", "x"]).expect("parse");
        assert_eq!(cli.log_format(), LogFormat::Json);
        let cli =
            Cli::try_parse_from(["zest", "hash", "x", "--log-format", "json"]).expect("parse");
        assert_eq!(cli.log_format(), LogFormat::Json);
    }
}
