//! zest-origin binary: parses the configuration, sets up logging, binds, calls [`run`].

use std::net::TcpListener;

use anyhow::Context;
use clap::Parser;
use tokio::io::AsyncReadExt;
use tracing_subscriber::EnvFilter;
use zest_origin::config::{Config, LogFormat};
use zest_origin::run;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A closed stderr (the parent went away) must not turn log writes into panics.
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    match config.log_format {
        LogFormat::Json => fmt.json().init(),
        LogFormat::Text => fmt.init(),
    }
    let listener =
        TcpListener::bind(config.listen).with_context(|| format!("binding {}", config.listen))?;
    listener.set_nonblocking(true).context("listener")?;
    let exit_on_eof = config.exit_on_stdin_eof;
    let shutdown = async move {
        let ctrl_c = tokio::signal::ctrl_c();
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        let stdin_eof = async {
            if !exit_on_eof {
                return std::future::pending::<()>().await;
            }
            let mut stdin = tokio::io::stdin();
            let mut buf = [0u8; 256];
            while let Ok(n) = stdin.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
            _ = stdin_eof => {}
        }
    };
    run(listener, config, shutdown).await
}
