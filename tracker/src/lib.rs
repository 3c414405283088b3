//! zest-tracker: which peers hold which xorb ranges, and the manifests and reports of pulls.
//!
//! The binary is thin: it parses [`config::Cli`] and calls [`run`] with a bound listener, so
//! tests start the real server in-process on `127.0.0.1:0`. The HTTP layer ([`http`]) is the
//! only module that knows actix; the stores ([`store`]) are the only ones that know sqlx and
//! Redis; wire types ([`api`]) are converted to domain types ([`model`]) in [`convert`].

pub mod api;
pub mod auth;
pub mod clock;
pub mod config;
pub mod convert;
pub mod env_vars;
pub mod error;
pub mod http;
pub mod metrics;
pub mod model;
pub mod ranges;
pub mod ranking;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use anyhow::{bail, Context};

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, TokenAction};
use crate::store::memory::MemoryStore;
use crate::store::postgres::PgDurable;
use crate::store::production::PgRedisStore;
use crate::store::redis_hot::RedisHot;
use crate::store::Store;

/// Opens the store the configuration asks for (connecting and migrating PostgreSQL).
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    match (&config.database_url, &config.redis_url) {
        (None, None) => Ok(Arc::new(MemoryStore::new())),
        (Some(db), Some(redis)) => {
            let pg = PgDurable::connect(db).await?;
            let hot = RedisHot::connect(redis, Duration::from_millis(config.redis_timeout_ms.max(1))).await?;
            Ok(Arc::new(PgRedisStore::new(pg, hot)))
        }
        _ => bail!("set both DATABASE_URL and REDIS_URL (PostgreSQL + Redis store), or neither (embedded store)"),
    }
}

/// Runs the tracker on `listener` until `shutdown` completes, with the system clock.
pub async fn run(
    listener: std::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with_clock(listener, config, Arc::new(SystemClock), shutdown).await
}

/// [`run`] with a given clock (tests pass a [`clock::ManualClock`]).
pub async fn run_with_clock(
    listener: std::net::TcpListener,
    config: Config,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    serve(listener, config, store, clock, shutdown).await
}

/// Runs the HTTP API on an already opened store.
pub async fn serve(
    listener: std::net::TcpListener,
    config: Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if config.peer_ttl_secs == 0 {
        bail!("--peer-ttl must be at least 1 second");
    }
    let has_token = config.token.as_deref().is_some_and(|t| !t.is_empty());
    if !config.no_auth && !has_token {
        if store.durable() {
            tracing::warn!("no --token given: only tokens stored in PostgreSQL (`zest-tracker token add`) are accepted");
        } else {
            bail!("the embedded store has no stored tokens: pass --token (ZEST_TRACKER_TOKEN) or --no-auth");
        }
    }
    if config.no_auth {
        tracing::warn!("--no-auth: anyone who reaches this port can announce and write");
    }
    let metrics = metrics::Metrics::new();
    let state = web::Data::new(http::AppState {
        store: store.clone(),
        clock: clock.clone(),
        metrics: metrics.clone(),
        auth: auth::Auth::new(config.token.as_deref(), config.no_auth, config.lookup_auth),
        limits: convert::Limits {
            max_lookup_items: config.max_lookup_items,
            max_announce_xorbs: config.max_announce_xorbs,
        },
        max_body_bytes: config.max_body_bytes,
        ttl_ms: config.peer_ttl_secs * 1000,
        interval_secs: config.announce_interval(),
    });
    listener
        .set_nonblocking(true)
        .context("configuring the listener")?;
    let addr = listener
        .local_addr()
        .context("reading the listener's address")?;
    let workers = config
        .workers
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
        .max(1);
    let app_state = state.clone();
    let server = actix_web::HttpServer::new(move || http::app(app_state.clone()))
        .workers(workers)
        .backlog(4096)
        .max_connection_rate(1024)
        .disable_signals()
        .shutdown_timeout(5)
        .listen(listener)
        .context("starting the HTTP server")?
        .run();
    let handle = server.handle();
    tracing::info!(%addr, store = store.kind(), ttl_secs = config.peer_ttl_secs, workers, "zest-tracker listening");

    let sweeper = tokio::spawn(sweep_loop(
        store,
        clock,
        metrics,
        Duration::from_millis(config.sweep_interval_ms.max(10)),
    ));
    let stopper = tokio::spawn(async move {
        shutdown.await;
        handle.stop(true).await;
    });
    let result = server.await.context("HTTP server failed");
    sweeper.abort();
    stopper.abort();
    tracing::info!(%addr, "zest-tracker stopped");
    result
}

/// Deletes expired peers' holdings every `every` and refreshes the live-peer gauge.
async fn sweep_loop(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: metrics::Metrics,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = clock.now_ms();
        match store.sweep(now).await {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(peers = n, "swept expired peers");
                }
                metrics.peers_swept.inc_by(n);
            }
            Err(e) => tracing::warn!(error = %e, "sweeping expired peers failed"),
        }
        if let Ok(peers) = store
            .live_peers(now, store::production::MAX_LISTED_PEERS)
            .await
        {
            metrics.peers_alive.set(peers.len() as i64);
        }
    }
}

/// Runs `zest-tracker token ...` against PostgreSQL, printing to stdout.
pub async fn token_command(config: &Config, action: &TokenAction) -> anyhow::Result<()> {
    let url = config
        .database_url
        .as_deref()
        .context("token commands need DATABASE_URL (tokens live in PostgreSQL)")?;
    let pg = PgDurable::connect(url).await?;
    match action {
        TokenAction::Add { name } => {
            convert::check_peer_id("token name", name).map_err(|e| anyhow::anyhow!("{e}"))?;
            let secret = new_token_secret();
            pg.add_token(name, &auth::token_hash(&secret))
                .await
                .with_context(|| format!("storing token {name:?} (does it exist already?)"))?;
            println!("{secret}");
            eprintln!("token {name:?} created; its secret is printed above and is not stored");
        }
        TokenAction::List => {
            for t in pg.list_tokens().await? {
                println!("{}\t{}", t.name, t.created_at.to_rfc3339());
            }
        }
        TokenAction::Revoke { name } => {
            if !pg.revoke_token(name).await? {
                bail!("no token named {name:?}");
            }
            eprintln!("token {name:?} revoked");
        }
    }
    Ok(())
}

/// A fresh random secret: `zt_` and 64 hex digits (256 bits).
pub fn new_token_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("zt_{}", hex::encode(bytes))
}
