//! `zest-tracker`: parses the configuration, sets up logging and runs the library's server.

use anyhow::Context;
use clap::Parser;
use zest_tracker::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    zest_service::logging::init(cli.config.log_format);
    match &cli.command {
        Some(Command::Token { action }) => zest_tracker::token_command(&cli.config, action).await,
        None | Some(Command::Serve) => {
            let listener = std::net::TcpListener::bind(&cli.config.listen)
                .with_context(|| format!("binding {}", cli.config.listen))?;
            let exit_on_stdin_eof = cli.config.exit_on_stdin_eof;
            let shutdown = async move {
                zest_service::shutdown::signal(exit_on_stdin_eof).await;
                tracing::info!("shutting down");
            };
            zest_tracker::run(listener, cli.config, shutdown).await
        }
    }
}
