//! `zest-edge`: the edge cache. Keeps verified xorb chunk ranges on local disk (`xorbstore`),
//! serves them to peers over the wire protocol and to unmodified Hugging Face clients as an
//! `HF_ENDPOINT` cache-proxy, warms revisions on request and announces what it holds to the
//! tracker. [`run`] takes bound listeners and a shutdown signal; the binary only parses flags.

pub mod admin;
pub mod allow;
pub mod config;
pub mod data;
pub mod edge;
pub mod env_vars;
pub mod http;
pub mod metrics;
pub mod tracker;
pub mod urls;
pub mod warm;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use anyhow::Context;
use wire::Role;
use xorbstore::peer::{PeerServer, PeerServerConfig};
use xorbstore::{Store, StoreConfig};

pub use config::Config;
use edge::{Edge, EdgeFetcher};
use metrics::Metrics;
use tracker::Tracker;
use urls::UrlSigner;
use zest_tracker_api::PeerDescriptor;

/// The bound sockets of an edge.
#[derive(Debug)]
pub struct Listeners {
    /// HTTP (non-blocking std listener, as actix takes it).
    pub http: std::net::TcpListener,
    /// Peer wire protocol.
    pub peer: tokio::net::TcpListener,
    /// Data port: xorb ranges served with `sendfile(2)` ([`data`]).
    pub data: tokio::net::TcpListener,
}

impl Listeners {
    /// Binds the HTTP, peer and data addresses of `config`.
    pub async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let http = std::net::TcpListener::bind(config.listen_http)
            .with_context(|| format!("binding {}", config.listen_http))?;
        http.set_nonblocking(true).context("http listener")?;
        let peer = tokio::net::TcpListener::bind(config.listen_peer)
            .await
            .with_context(|| format!("binding {}", config.listen_peer))?;
        let data = tokio::net::TcpListener::bind(config.listen_data)
            .await
            .with_context(|| format!("binding {}", config.listen_data))?;
        Ok(Listeners { http, peer, data })
    }
}

/// The URL signing key, kept in the cache folder so URLs handed out survive a restart; the
/// file is readable by the edge's user only (mode 0600, tightened if an older edge wrote it
/// more open).
fn load_key(dir: &std::path::Path) -> anyhow::Result<[u8; 32]> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("edge-url-key");
    if let Ok(b) = std::fs::read(&path) {
        if let Ok(k) = <[u8; 32]>::try_from(b.as_slice()) {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("restricting {}", path.display()))?;
            return Ok(k);
        }
    }
    let key: [u8; 32] = rand::random();
    xorbstore::fsutil::write_secret(&path, &key)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(key)
}

/// Runs the edge until `shutdown` completes.
pub async fn run(
    listeners: Listeners,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let http_addr = listeners.http.local_addr().context("http address")?;
    let peer_addr = listeners.peer.local_addr().context("peer address")?;
    let data_addr = listeners.data.local_addr().context("data address")?;
    let admin_auth = admin::AdminAuth::from_flags(
        config.admin_token.as_deref(),
        config.admin_no_auth,
        http_addr,
    )
    .map_err(anyhow::Error::msg)?;
    if matches!(admin_auth, admin::AdminAuth::Closed) {
        tracing::warn!("no --admin-token: /v1/warm, /v1/unpin and /v1/pins are refused");
    }
    let admin_data = web::Data::new(admin_auth);
    std::fs::create_dir_all(&config.cache_dir)
        .with_context(|| format!("creating {}", config.cache_dir.display()))?;
    let dir = config.cache_dir.clone();
    let quota = config.cache_size;
    let store = tokio::task::spawn_blocking(move || Store::open(&dir, StoreConfig::new(quota)))
        .await
        .context("store task")?
        .context("opening the store")?;
    let key = load_key(&config.cache_dir)?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{http_addr}"));
    let public_data_url = match &config.public_data_url {
        Some(u) => u.clone(),
        None => config::default_data_url(config.public_url.as_deref(), data_addr)
            .map_err(anyhow::Error::msg)?,
    };
    let peer_id = config
        .peer_id
        .clone()
        .unwrap_or_else(|| format!("edge-{}", peer_addr.port()));
    let metrics = Metrics::new();
    let tracker = config.tracker.as_deref().map(|t| {
        Tracker::new(
            t,
            config.tracker_token.clone(),
            PeerDescriptor {
                id: peer_id.clone(),
                addr: config
                    .peer_addr
                    .clone()
                    .unwrap_or_else(|| peer_addr.to_string()),
                role: zest_tracker_api::Role::Edge,
                zone: config.zone.clone().unwrap_or_default(),
                free_bytes: 0,
                load: 0,
            },
            metrics.clone(),
        )
    });
    let tracker = tracker.transpose().context("tracker client")?;
    let edge = Arc::new(Edge::new(
        store.clone(),
        metrics,
        UrlSigner::new(key),
        public_url.clone(),
        public_data_url.clone(),
        config.upstream.clone(),
        tracker.clone(),
        peer_id.clone(),
        config.verify_max_file_bytes,
        hub::RetryPolicy::with_max_retries(config.upstream_max_retries),
        Arc::new(
            allow::UpstreamAllow::new(&config.upstream, &config.upstream_fetch_allow)
                .map_err(anyhow::Error::msg)?,
        ),
    )?);

    let mut pcfg = PeerServerConfig::new(peer_id.clone(), Role::Edge);
    pcfg.upstream = Some(Arc::new(EdgeFetcher(edge.clone())));
    if let (Some(c), Some(k)) = (&config.tls_cert, &config.tls_key) {
        pcfg.tls = Some(
            xorbstore::peer::tls::server_config_from_pem(c, k).context("TLS for the peer port")?,
        );
    }
    let peer = PeerServer::with_single_flight(edge.flights.clone(), pcfg);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tracker_task = tracker.map(|t| tokio::spawn(t.run(store.clone(), stop_rx.clone())));
    let mut peer_stop = stop_rx.clone();
    let peer_task = {
        let peer = peer.clone();
        tokio::spawn(async move {
            let stopped = async move {
                let _ = peer_stop.wait_for(|s| *s).await;
            };
            peer.serve(listeners.peer, stopped).await
        })
    };

    let data_task = tokio::spawn(data::serve(listeners.data, edge.clone(), stop_rx.clone()));

    let workers = config.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .min(4)
    });
    let conn_metrics = edge.metrics.clone();
    let edge_data = web::Data::new(edge.clone());
    let peer_data = web::Data::new(http::PeerStats(peer.clone()));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(edge_data.clone())
            .app_data(peer_data.clone())
            .app_data(admin_data.clone())
            .app_data(web::PayloadConfig::new(http::MAX_FORWARD_BODY))
            .app_data(web::JsonConfig::default().limit(1 << 20))
            .configure(admin::configure)
            .configure(http::configure)
    })
    .on_connect(move |_, ext| {
        // Lives in the connection's extensions: dropped when the connection closes.
        ext.insert(metrics::HttpConnection::open(&conn_metrics));
    })
    .workers(workers)
    .disable_signals()
    .client_request_timeout(Duration::from_secs(60))
    .listen(listeners.http)
    .context("listening")?
    .run();
    tracing::info!(
        http = %http_addr,
        peer = %peer_addr,
        data = %data_addr,
        %public_url,
        %public_data_url,
        upstream = %config.upstream,
        "zest-edge ready"
    );
    let handle = server.handle();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        handle.stop(true).await;
    });
    server.await.context("http server")?;
    match peer_task.await {
        Ok(r) => r.context("peer server")?,
        Err(e) => tracing::warn!(error = %e, "peer server task"),
    }
    match data_task.await {
        Ok(r) => r.context("data server")?,
        Err(e) => tracing::warn!(error = %e, "data server task"),
    }
    // The deregister started when the stop did; it is bounded by the tracker client's timeouts.
    if let Some(t) = tracker_task {
        let _ = t.await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::load_key;

    fn mode(p: &std::path::Path) -> u32 {
        std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn url_key_file_is_owner_only_and_stable() {
        let d = tempfile::tempdir().expect("tempdir");
        let k = load_key(d.path()).expect("key");
        let p = d.path().join("edge-url-key");
        assert_eq!(mode(&p), 0o600);
        // An older, world-readable key is kept and tightened.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(load_key(d.path()).expect("key"), k);
        assert_eq!(mode(&p), 0o600);
    }
}
