//! zest-origin: serves folders of model files as Hugging Face model repos, over the Hub API and
//! the Xet CAS API, with real xorbs.
//!
//! Start-up ([`prepare`]): scan the root ([`scan`]), bring the state folder's xorbs and index up
//! to date ([`index`]), build the read-only [`catalog::Catalog`]. Serving ([`run`]): one
//! actix-web service ([`http`]) answers Hub routes (resolve, model info, tree, Xet token) and CAS
//! routes (reconstructions, signed xorb ranges), with fault-injection test switches
//! ([`faults`]) and Prometheus metrics ([`metrics`]). The binary only parses the configuration
//! and calls [`run`].

pub mod catalog;
pub mod config;
pub mod env_vars;
pub mod faults;
pub mod http;
pub mod index;
pub mod metrics;
pub mod reconstruct;
pub mod scan;
pub mod signing;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::{web, App, HttpServer};
use anyhow::Context;

pub use config::Config;

use crate::catalog::Catalog;
use crate::faults::Faults;
use crate::http::AppState;
use crate::index::IndexStats;
use crate::metrics::Metrics;
use crate::signing::Signer;

/// Scans the root and brings the state up to date (blocking; runs in a worker thread from
/// [`run`]). Returns the catalog to serve and what the index step did.
pub fn prepare(config: &Config) -> anyhow::Result<(Catalog, IndexStats)> {
    let root = &config.root;
    anyhow::ensure!(root.is_dir(), "root {} is not a folder", root.display());
    let state_dir = config.state_dir();
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating state folder {}", state_dir.display()))?;
    let repos = scan::scan_root(root, &state_dir)
        .with_context(|| format!("scanning {}", root.display()))?;
    let (index, stats) = index::build(&state_dir, &repos).context("building the index")?;
    Ok((Catalog::new(&repos, &index, &state_dir), stats))
}

/// Runs the server on `listener` until `shutdown` completes: prepares the state, then serves.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.validate().map_err(anyhow::Error::msg)?;
    let started = Instant::now();
    let cfg = config.clone();
    let (catalog, stats) = tokio::task::spawn_blocking(move || prepare(&cfg))
        .await
        .context("indexing task")??;

    let metrics = Metrics::new();
    metrics.files_indexed.inc_by(stats.files_indexed);
    metrics.files_reused.inc_by(stats.files_reused);
    metrics.bytes_indexed.inc_by(stats.bytes_indexed);
    metrics.xorbs_written.inc_by(stats.xorbs_written);
    metrics.repos.set(catalog.repos.len() as i64);
    metrics
        .files
        .set(catalog.repos.values().map(|r| r.files.len() as i64).sum());
    metrics.xorbs.set(catalog.xorbs.len() as i64);
    metrics
        .index_duration_seconds
        .set(started.elapsed().as_secs_f64());

    let signer = match &config.signing_key {
        Some(k) => Signer::new(&hex::decode(k).context("--signing-key is not hex")?),
        None => Signer::random(),
    };
    let workers = config.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .min(4)
    });
    let addr = listener.local_addr().context("listener address")?;
    let state = web::Data::new(AppState {
        faults: Arc::new(Faults::new(config.faults.clone())),
        catalog,
        config,
        signer,
        metrics,
        clock: http::system_clock,
    });
    for repo in state.catalog.repos.values() {
        tracing::info!(repo = %repo.id, commit = %repo.commit, files = repo.files.len(), "serving repo");
    }
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .default_service(web::to(http::dispatch))
    })
    .workers(workers)
    .disable_signals()
    // Stop waits for open connections this long at most (idle keep-alive ones included), so
    // SIGTERM ends the process within seconds rather than actix's default 30.
    .shutdown_timeout(3)
    .listen(listener)
    .context("listening")?
    .run();
    tracing::info!(%addr, files_indexed = stats.files_indexed, files_reused = stats.files_reused, "zest-origin ready");
    let handle = server.handle();
    tokio::spawn(async move {
        shutdown.await;
        let stopping = handle.stop(true);
        tracing::info!("shutting down");
        stopping.await;
    });
    server.await.context("serving")
}
