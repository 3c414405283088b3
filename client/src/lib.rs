//! The zest command line's logic; `main.rs` only parses arguments, sets up logging and calls
//! [`run`]. One module per subcommand, plus the fleet client they share ([`fleet`]) and where
//! things live on this machine ([`dirs`]).

pub mod cli;
pub mod demo;
pub mod dirs;
pub mod env_vars;
pub mod fleet;
pub mod hash_cmd;
pub mod inspect;
pub mod metrics;
pub mod mmap;
pub mod pull;
pub mod seed;

use std::process::ExitCode;

use cli::{Cli, Command};

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Hash(args) => hash_cmd::run(&args, &mut std::io::stdout().lock()),
        Command::Inspect(args) => inspect::run(&args, &mut std::io::stdout().lock()),
        Command::Pull(args) => pull::run(&args),
        Command::Seed(args) => seed::run(&args),
        Command::Demo(args) => demo::run(&args),
    }
}
