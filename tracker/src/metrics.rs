//! Every Prometheus metric of the tracker, named `zest_tracker_*`, with bounded labels.
//!
//! Each server owns its own [`Metrics`] (and registry) so that several trackers can run in one
//! test process. Route labels are the route patterns (`/v1/peers/{id}`), never raw paths.

use prometheus::{HistogramVec, IntCounter, IntCounterVec, IntGauge};
use zest_service::ServiceMetrics;

/// Upper bounds of the request latency buckets, seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: ServiceMetrics,
    /// Requests by route pattern and status class (`2xx`, `4xx`, `5xx`).
    pub http_requests: IntCounterVec,
    /// Request latency by route pattern.
    pub http_duration: HistogramVec,
    /// Announces by kind (`full`, `delta`, `heartbeat`).
    pub announces: IntCounterVec,
    /// Lookup items asked for.
    pub lookup_items: IntCounter,
    /// Lookup items no live peer holds.
    pub lookup_misses: IntCounter,
    /// Claimed items by outcome (`granted`: the asker fetches upstream; `held`: another peer
    /// already does).
    pub claims: IntCounterVec,
    /// Store failures by operation.
    pub store_errors: IntCounterVec,
    /// Requests refused for a missing or wrong token.
    pub auth_failures: IntCounter,
    pub reports: IntCounter,
    /// Bytes reported by pulls, by source (`local`, `peers`, `edges`, `upstream`).
    pub report_bytes: IntCounterVec,
    pub manifests_stored: IntCounter,
    /// Chunk manifests accepted (their chunks hashed to the file's hash).
    pub chunk_manifests_stored: IntCounter,
    /// Live peers as of the last sweep.
    pub peers_alive: IntGauge,
    /// Expired peers whose holdings the sweeper deleted.
    pub peers_swept: IntCounter,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let registry = ServiceMetrics::new("zest-tracker", env!("CARGO_PKG_VERSION"));
        let http_duration = registry.histogram_vec(
            "zest_tracker_http_request_duration_seconds",
            "HTTP request latency",
            &["route"],
            LATENCY_BUCKETS,
        );
        let peers_alive = registry.gauge(
            "zest_tracker_peers_alive",
            "Live peers as of the last sweep",
        );
        Metrics {
            http_requests: registry.counter_vec(
                "zest_tracker_http_requests_total",
                "HTTP requests by route and status class",
                &["route", "status"],
            ),
            http_duration,
            announces: registry.counter_vec(
                "zest_tracker_announces_total",
                "Announces by kind",
                &["kind"],
            ),
            lookup_items: registry
                .counter("zest_tracker_lookup_items_total", "Lookup items asked for"),
            lookup_misses: registry.counter(
                "zest_tracker_lookup_misses_total",
                "Lookup items no live peer holds",
            ),
            claims: registry.counter_vec(
                "zest_tracker_claims_total",
                "Upstream-fetch claims by outcome (granted, held)",
                &["outcome"],
            ),
            store_errors: registry.counter_vec(
                "zest_tracker_store_errors_total",
                "Store failures by operation",
                &["op"],
            ),
            auth_failures: registry.counter(
                "zest_tracker_auth_failures_total",
                "Requests refused for their token",
            ),
            reports: registry.counter("zest_tracker_reports_total", "Pull reports received"),
            report_bytes: registry.counter_vec(
                "zest_tracker_report_bytes_total",
                "Bytes reported by pulls, by source (local, peer, edge, upstream)",
                &["source"],
            ),
            manifests_stored: registry
                .counter("zest_tracker_manifests_stored_total", "Manifests stored"),
            chunk_manifests_stored: registry.counter(
                "zest_tracker_chunk_manifests_stored_total",
                "Chunk manifests accepted (checked against the file hash)",
            ),
            peers_alive,
            peers_swept: registry.counter("zest_tracker_peers_swept_total", "Expired peers swept"),
            registry,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.registry.render()
    }
}
