//! Command-line arguments (clap derive). Each subcommand's arguments live beside its code;
//! add new subcommands (`pull`, `inspect`, `seed`, `demo`) to [`Command`].

use clap::{Parser, Subcommand};

use crate::demo::DemoArgs;
use crate::env_vars;
use crate::hash_cmd::HashArgs;
use crate::inspect::InspectArgs;
use crate::pull::PullArgs;
use crate::seed::SeedArgs;

/// zest: peer-to-peer distribution of Hugging Face Xet data.
#[derive(Debug, Parser)]
#[command(name = "zest", version, about)]
pub struct Cli {
    /// Log JSON lines instead of text (logs go to stderr).
    #[arg(long, global = true, env = env_vars::ZEST_LOG_JSON)]
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
