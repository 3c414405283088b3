//! Every Prometheus metric of zest-origin (`zest_origin_*`), in one registry per server.
//!
//! Labels are bounded: `route` is a route template (`/{org}/{name}/resolve/{rev}/{path}`),
//! never a concrete path; `status` is an HTTP status code.

use prometheus::{IntCounter, IntCounterVec, IntGauge};
use zest_service::ServiceMetrics;

/// The metrics of one server.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: ServiceMetrics,
    pub requests: IntCounterVec,
    pub xorb_bytes_served: IntCounter,
    pub file_bytes_served: IntCounter,
    pub reconstructions_served: IntCounterVec,
    pub xorb_range_requests: IntCounterVec,
    pub faults_injected: IntCounterVec,
    pub files_indexed: IntCounter,
    pub files_reused: IntCounter,
    pub bytes_indexed: IntCounter,
    pub xorbs_written: IntCounter,
    pub repos: IntGauge,
    pub files: IntGauge,
    pub xorbs: IntGauge,
    pub index_duration_seconds: prometheus::Gauge,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let registry = ServiceMetrics::new("zest-origin", env!("CARGO_PKG_VERSION"));
        Metrics {
            requests: registry.counter_vec(
                "zest_origin_requests_total",
                "HTTP requests by route template and status",
                &["route", "status"],
            ),
            xorb_bytes_served: registry.counter(
                "zest_origin_xorb_bytes_served_total",
                "Bytes of xorb data sent",
            ),
            file_bytes_served: registry.counter(
                "zest_origin_file_bytes_served_total",
                "Bytes of whole-file (resolve) bodies sent",
            ),
            reconstructions_served: registry.counter_vec(
                "zest_origin_reconstructions_served_total",
                "Reconstruction answers by API version",
                &["version"],
            ),
            xorb_range_requests: registry.counter_vec(
                "zest_origin_xorb_range_requests_total",
                "Xorb GETs served, by kind of Range (single or multi)",
                &["kind"],
            ),
            faults_injected: registry.counter_vec(
                "zest_origin_faults_injected_total",
                "Test faults injected by kind",
                &["kind"],
            ),
            files_indexed: registry.counter(
                "zest_origin_files_indexed_total",
                "Files hashed and chunked at start",
            ),
            files_reused: registry.counter(
                "zest_origin_files_reused_total",
                "Files whose index record was reused at start",
            ),
            bytes_indexed: registry.counter(
                "zest_origin_bytes_indexed_total",
                "Bytes of files hashed and chunked at start",
            ),
            xorbs_written: registry
                .counter("zest_origin_xorbs_written_total", "Xorbs written at start"),
            repos: registry.gauge("zest_origin_repos", "Repos served"),
            files: registry.gauge("zest_origin_files", "Files served"),
            xorbs: registry.gauge("zest_origin_xorbs", "Xorbs stored"),
            index_duration_seconds: registry.float_gauge(
                "zest_origin_index_duration_seconds",
                "Time the start-up scan and index took",
            ),
            registry,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.registry.render()
    }
}
