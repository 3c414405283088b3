//! `zest seed`: serves the local xorb store (the ranges `zest pull` kept) over the wire
//! protocol with `xorbstore::PeerServer`, and announces its holdings to the tracker every
//! `interval_secs` (a full list each time, after re-scanning the store for ranges that pulls in
//! other processes added).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use xorbstore::peer::{PeerServer, PeerServerConfig};
use xorbstore::{Store, StoreConfig};
use zest_service::FleetArgs;

use crate::env_vars;
use zest_tracker_api::client::TrackerClient;
use zest_tracker_api::{AnnounceRequest, PeerDescriptor, Role as PeerRole};

/// Arguments of `zest seed`.
#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// Where to listen for peers.
    #[arg(long, env = env_vars::ZEST_SEED_LISTEN, default_value = "0.0.0.0:7072")]
    pub listen: String,
    /// Address to announce (default: the bound listen address).
    #[arg(long, env = env_vars::ZEST_SEED_ADVERTISE)]
    pub advertise: Option<String>,
    /// Where to serve Prometheus `/metrics` (peers connected, bytes served) and `/healthz`
    /// (`127.0.0.1:9472`; default: nowhere).
    #[arg(long, env = env_vars::ZEST_SEED_METRICS_LISTEN)]
    pub metrics_listen: Option<String>,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Longest wait between announces, seconds (the tracker's interval is used when shorter).
    #[arg(long, default_value_t = 30)]
    pub announce_secs: u64,
}

/// Runs `zest seed` until Ctrl-C or SIGTERM.
pub fn run(args: &SeedArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(seed(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn seed(args: &SeedArgs) -> anyhow::Result<()> {
    let dir = crate::fleet::zest_cache_dir(args.fleet.zest_cache.clone());
    let store = Store::open(&dir, StoreConfig::new(args.fleet.cache_max_bytes))
        .with_context(|| format!("opening {}", dir.display()))?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let peer_id = args
        .fleet
        .peer_id
        .clone()
        .unwrap_or_else(|| format!("seed-{}", addr.port()));
    let advertise = args.advertise.clone().unwrap_or_else(|| addr.to_string());
    crate::fleet::check_zone(&args.fleet.zone)?;
    let zone = args.fleet.zone.clone();
    let server = PeerServer::new(
        store.clone(),
        PeerServerConfig::new(peer_id.clone(), wire::Role::Seed),
    );
    if let Some(m) = &args.metrics_listen {
        crate::metrics::start(
            m,
            Some(server.clone()),
            Default::default(),
            std::future::pending(),
        )
        .await?;
    }
    tracing::info!(%addr, peer_id, "zest seed ready");
    let announcer = {
        let tracker = match args.fleet.tracking.tracker_url() {
            Some(t) => Some(TrackerClient::new(
                t,
                args.fleet.tracking.tracker_token.clone(),
            )?),
            _ => None,
        };
        let store = store.clone();
        let max = Duration::from_secs(args.announce_secs.max(1));
        async move {
            let Some(t) = tracker else {
                return std::future::pending::<()>().await;
            };
            loop {
                let s = store.clone();
                let full = crate::fleet::swarm::to_holdings(
                    tokio::task::spawn_blocking(move || {
                        let _ = s.rescan();
                        s.holdings()
                    })
                    .await
                    .unwrap_or_default(),
                );
                let n = full.len();
                let req = AnnounceRequest {
                    peer: PeerDescriptor {
                        id: peer_id.clone(),
                        addr: advertise.clone(),
                        role: PeerRole::Seed,
                        zone: zone.clone(),
                        free_bytes: 0,
                        load: 0,
                    },
                    full: Some(full),
                    added: Vec::new(),
                    removed: Vec::new(),
                };
                let wait = match t.announce(&req).await {
                    Ok(r) => {
                        tracing::info!(xorbs = n, "announced");
                        Duration::from_secs(r.interval_secs.max(1)).min(max)
                    }
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "announce failed");
                        Duration::from_secs(2)
                    }
                };
                tokio::time::sleep(wait).await;
            }
        }
    };
    let shutdown = zest_service::shutdown::signal(false);
    tokio::select! {
        r = server.serve(listener, shutdown) => r.context("serving peers")?,
        _ = announcer => {}
    }
    Ok(())
}
