//! Every Prometheus metric of `zest-edge` (`zest_edge_*`), in one registry per edge. Store and
//! peer-server counters are brought up to their own (monotonic) stats at scrape time, one scrape
//! at a time, so two overlapping scrapes cannot add the same increase twice.

use std::sync::{Arc, Mutex};

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec};
use xorbstore::peer::{PeerServerStats, SingleFlightStats};
use xorbstore::StoreStats;
use zest_service::ServiceMetrics;

/// The edge's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: ServiceMetrics,
    /// Xorb range requests answered from the store.
    pub hits: IntCounter,
    /// Xorb range requests that had to fetch.
    pub misses: IntCounter,
    /// Bytes served, by protocol (`http`, `peer`).
    pub bytes_served: IntCounterVec,
    /// Bytes fetched from upstream (xorb ranges), by source (`upstream`, `peer`).
    pub bytes_fetched: IntCounterVec,
    /// Fetches that waited for another request's fetch.
    pub coalesced: IntCounter,
    /// Ranges evicted.
    pub evictions: IntCounter,
    /// Bytes used on disk.
    pub disk_bytes: IntGauge,
    /// Ranges held.
    pub ranges: IntGauge,
    /// Connections accepted, by protocol (`http`, `peer`).
    pub connections: IntCounterVec,
    /// Connections open now, by protocol (`http`, `peer`).
    pub open_connections: IntGaugeVec,
    /// Files whose Xet hash was verified, and failures.
    pub file_verifications: IntCounterVec,
    /// Upstream fetches rejected by verification.
    pub verification_failures: IntCounter,
    /// Upstream URLs of peers' Requests refused (host not trusted).
    pub peer_fetch_refused: IntCounter,
    /// Tracker calls, by kind and outcome.
    pub tracker_calls: IntCounterVec,
    /// HTTP request latency, by route kind.
    pub request_seconds: HistogramVec,
    /// Wall time of upstream range fetches.
    pub upstream_fetch_seconds: Histogram,
    /// Held while library stats are copied into counters (see the module docs).
    sync: Arc<Mutex<()>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = ServiceMetrics::new("zest-edge", env!("CARGO_PKG_VERSION"));
        let c = |name: &str, help: &str| registry.counter(name, help);
        let cv = |name: &str, help: &str, labels: &[&str]| registry.counter_vec(name, help, labels);
        let g = |name: &str, help: &str| registry.gauge(name, help);
        let hits = c(
            "zest_edge_hits_total",
            "xorb range requests answered from the store",
        );
        let misses = c(
            "zest_edge_misses_total",
            "xorb range requests that had to be fetched",
        );
        let bytes_served = cv(
            "zest_edge_bytes_served_total",
            "bytes of xorb ranges served, by protocol",
            &["protocol"],
        );
        let bytes_fetched = cv(
            "zest_edge_bytes_fetched_total",
            "bytes of xorb ranges fetched, by source",
            &["source"],
        );
        let coalesced = c(
            "zest_edge_coalesced_requests_total",
            "fetches that waited for another request's fetch (single flight)",
        );
        let evictions = c(
            "zest_edge_evictions_total",
            "ranges evicted to stay under the quota",
        );
        let disk_bytes = g("zest_edge_disk_bytes", "bytes used by the store on disk");
        let ranges = g("zest_edge_ranges", "ranges held by the store");
        let connections = cv(
            "zest_edge_connections_total",
            "connections accepted, by protocol",
            &["protocol"],
        );
        let open_connections = registry.gauge_vec(
            "zest_edge_open_connections",
            "connections open now, by protocol",
            &["protocol"],
        );
        let file_verifications = cv(
            "zest_edge_file_verifications_total",
            "Xet files verified by file hash, by outcome",
            &["outcome"],
        );
        let verification_failures = c(
            "zest_edge_verification_failures_total",
            "fetched ranges rejected by verification",
        );
        let peer_fetch_refused = c(
            "zest_edge_peer_fetch_refused_total",
            "upstream URLs of peer Requests refused because their host is not trusted",
        );
        let tracker_calls = cv(
            "zest_edge_tracker_calls_total",
            "tracker calls, by kind and outcome",
            &["kind", "outcome"],
        );
        let request_seconds = registry.histogram_vec(
            "zest_edge_request_duration_seconds",
            "HTTP request latency",
            &["route"],
            &[
                0.001, 0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ],
        );
        let upstream_fetch_seconds = registry.histogram(
            "zest_edge_upstream_fetch_duration_seconds",
            "upstream xorb range fetch time",
            &[0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
        );
        Metrics {
            registry,
            hits,
            misses,
            bytes_served,
            bytes_fetched,
            coalesced,
            evictions,
            disk_bytes,
            ranges,
            connections,
            open_connections,
            file_verifications,
            verification_failures,
            peer_fetch_refused,
            tracker_calls,
            request_seconds,
            upstream_fetch_seconds,
            sync: Arc::default(),
        }
    }

    /// Copies the library counters in and renders the text format.
    pub fn render(
        &self,
        store: &StoreStats,
        flights: &SingleFlightStats,
        peer: &PeerServerStats,
    ) -> String {
        let _one_at_a_time = self.sync.lock().unwrap_or_else(|p| p.into_inner());
        catch_up(&self.evictions, store.evictions);
        catch_up(&self.coalesced, flights.coalesced);
        catch_up(
            &self.bytes_served.with_label_values(&["peer"]),
            peer.bytes_served,
        );
        catch_up(
            &self.connections.with_label_values(&["peer"]),
            peer.connections_total,
        );
        self.disk_bytes.set(store.disk_bytes as i64);
        self.ranges.set(store.ranges as i64);
        self.open_connections
            .with_label_values(&["peer"])
            .set(peer.connections_open as i64);
        self.registry.render()
    }
}

/// Raises `counter` to `total`, a library's monotonic count (never lowers it).
fn catch_up(counter: &IntCounter, total: u64) {
    counter.inc_by(total.saturating_sub(counter.get()));
}

/// Counts one open HTTP connection for as long as it lives: made when the connection is
/// accepted, dropped with the connection's state when it closes.
#[derive(Debug)]
pub struct HttpConnection(IntGauge);

impl HttpConnection {
    /// Counts a newly accepted HTTP connection.
    pub fn open(metrics: &Metrics) -> Self {
        metrics.connections.with_label_values(&["http"]).inc();
        let g = metrics.open_connections.with_label_values(&["http"]);
        g.inc();
        HttpConnection(g)
    }
}

impl Drop for HttpConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}
