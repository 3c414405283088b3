//! `zest-tracker`: parses the configuration, sets up logging and runs the library's server.

use anyhow::Context;
use clap::Parser;
use zest_tracker::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    zest_tracker::init_tracing(cli.config.log_format);
    match &cli.command {
        Some(Command::Token { action }) => zest_tracker::token_command(&cli.config, action).await,
        None | Some(Command::Serve) => {
            let listener = std::net::TcpListener::bind(&cli.config.listen)
                .with_context(|| format!("binding {}", cli.config.listen))?;
            zest_tracker::run(listener, cli.config, shutdown_signal()).await
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
