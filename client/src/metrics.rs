//! What `zest seed` and a `zest pull` export on `--metrics-listen` (Prometheus text, rendered
//! at each scrape from the peer server's and the pull's counters; served by
//! `zest_service::metrics_http`): peers connected, bytes up, and, for a pull, bytes down by
//! source.

use std::sync::{Arc, OnceLock};

use xorbstore::peer::PeerServer;
use zest_service::ServiceMetrics;

use crate::fleet::Fleet;

/// The exposition of `server` (what this machine serves) and `fleet` (what a pull takes).
pub fn render(server: Option<&PeerServer>, fleet: Option<&Fleet>) -> String {
    let m = ServiceMetrics::new("zest", env!("CARGO_PKG_VERSION"));
    if let Some(p) = server {
        let s = p.stats();
        let counters = [
            (
                "zest_peer_connections_total",
                "Peer connections accepted",
                s.connections_total,
            ),
            (
                "zest_peer_connections_refused_total",
                "Peer connections refused (every upload slot taken)",
                s.connections_refused,
            ),
            (
                "zest_peer_requests_total",
                "Range requests from peers",
                s.requests,
            ),
            (
                "zest_peer_not_found_total",
                "Requests for ranges not held",
                s.not_found,
            ),
            (
                "zest_peer_served_bytes_total",
                "Bytes served to peers",
                s.bytes_served,
            ),
            (
                "zest_peer_protocol_errors_total",
                "Peer connections closed for breaking the protocol",
                s.protocol_errors,
            ),
            (
                "zest_peer_timeouts_total",
                "Peer connections timed out",
                s.timeouts,
            ),
        ];
        for (name, help, v) in counters {
            m.counter(name, help).inc_by(v);
        }
        m.gauge("zest_peer_connections_open", "Peer connections open now")
            .set(i64::try_from(s.connections_open).unwrap_or(i64::MAX));
    }
    if let Some(f) = fleet {
        let b = f.bytes();
        let v = m.counter_vec(
            "zest_pull_bytes_total",
            "Bytes of xorb ranges the pull received, by source",
            &["source"],
        );
        for (k, n) in [
            ("local", b.local),
            ("peers", b.peers),
            ("edges", b.edges),
            ("upstream", b.upstream),
        ] {
            v.with_label_values(&[k]).inc_by(n);
        }
        m.counter(
            "zest_pull_peer_exchange_bytes_total",
            "Bytes from peers that peer exchange named (the tracker could not)",
        )
        .inc_by(f.pex().bytes);
    }
    m.render()
}

/// Binds `addr` and serves the exposition of `server` and of the pull's fleet once it is set
/// in `fleet`, until `shutdown`; returns the bound address.
pub async fn start(
    addr: &str,
    server: Option<PeerServer>,
    fleet: Arc<OnceLock<Arc<Fleet>>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<std::net::SocketAddr> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr} for metrics"))?;
    let bound = listener.local_addr()?;
    let render: zest_service::metrics_http::Render =
        Arc::new(move || render(server.as_ref(), fleet.get().map(|f| f.as_ref())));
    tokio::spawn(zest_service::metrics_http::serve(
        listener, render, shutdown,
    ));
    tracing::info!(addr = %bound, "metrics on /metrics");
    Ok(bound)
}
