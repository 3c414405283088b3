//! zest-edge binary: parses flags, sets up logging, binds, calls [`zest_edge::run`].

use clap::Parser;
use zest_edge::config::Config;
use zest_edge::{run, Listeners};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    zest_service::logging::init(config.log_format);
    let listeners = Listeners::bind(&config).await?;
    let shutdown = zest_service::shutdown::signal(config.exit_on_stdin_eof);
    run(listeners, config, shutdown).await
}
