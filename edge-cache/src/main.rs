//! zest-edge binary: parses flags, sets up logging, binds, calls [`zest_edge::run`].

use clap::Parser;
use tokio::io::AsyncReadExt;
use tracing_subscriber::EnvFilter;
use zest_edge::config::{Config, LogFormat};
use zest_edge::{run, Listeners};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    match config.log_format {
        LogFormat::Json => fmt.json().init(),
        LogFormat::Text => fmt.init(),
    }
    let listeners = Listeners::bind(&config).await?;
    let exit_on_eof = config.exit_on_stdin_eof;
    let shutdown = async move {
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
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = stdin_eof => {}
        }
    };
    run(listeners, config, shutdown).await
}
