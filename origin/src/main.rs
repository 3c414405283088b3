//! zest-origin binary: parses the configuration, sets up logging, binds, calls [`run`].

use std::net::TcpListener;

use anyhow::Context;
use clap::Parser;
use zest_origin::config::Config;
use zest_origin::run;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    zest_service::logging::init(config.log_format);
    let listener =
        TcpListener::bind(config.listen).with_context(|| format!("binding {}", config.listen))?;
    listener.set_nonblocking(true).context("listener")?;
    let shutdown = zest_service::shutdown::signal(config.exit_on_stdin_eof);
    run(listener, config, shutdown).await
}
