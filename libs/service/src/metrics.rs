//! Prometheus helpers shared by every zest server: one registry per server (so several servers
//! can run in one test process), registration of counters, gauges and histograms in one call
//! each, the text exposition, and two things every server exports:
//!
//! - `zest_build_info{service, version} 1`, so a scrape says what is running;
//! - on Linux, the process collector (`process_cpu_seconds_total`,
//!   `process_resident_memory_bytes`, `process_open_fds`, ...).
//!
//! Metric names and labels are fixed strings in each service's `metrics.rs`; an invalid or
//! duplicate name is a programming error, so the helpers panic on it (at server construction,
//! which every test exercises) instead of returning an error nobody can handle.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Name of the build information gauge.
pub const BUILD_INFO: &str = "zest_build_info";

/// The registry of one server, with registration helpers.
#[derive(Debug, Clone)]
pub struct ServiceMetrics {
    registry: Registry,
}

impl ServiceMetrics {
    /// A fresh registry holding `zest_build_info{service, version}` (set to 1) and, on Linux,
    /// the process collector. `service` is the binary (`zest-tracker`); `version` its
    /// `CARGO_PKG_VERSION`.
    pub fn new(service: &str, version: &str) -> Self {
        let m = ServiceMetrics {
            registry: Registry::new(),
        };
        m.gauge_vec(
            BUILD_INFO,
            "Build information of the running binary (always 1)",
            &["version", "service"],
        )
        .with_label_values(&[version, service])
        .set(1);
        #[cfg(target_os = "linux")]
        m.register(prometheus::process_collector::ProcessCollector::for_self());
        m
    }

    /// The underlying registry (for collectors these helpers do not cover).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Registers `collector`.
    ///
    /// # Panics
    /// When a metric of the same name is already registered.
    pub fn register<C: prometheus::core::Collector + 'static>(&self, collector: C) {
        if let Err(e) = self.registry.register(Box::new(collector)) {
            panic!("registering a metric: {e}");
        }
    }

    /// Registers and returns an integer counter.
    pub fn counter(&self, name: &str, help: &str) -> IntCounter {
        let m = IntCounter::new(name, help).unwrap_or_else(|e| invalid(name, e));
        self.register(m.clone());
        m
    }

    /// Registers and returns an integer counter with `labels`.
    pub fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        let m =
            IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| invalid(name, e));
        self.register(m.clone());
        m
    }

    /// Registers and returns an integer gauge.
    pub fn gauge(&self, name: &str, help: &str) -> IntGauge {
        let m = IntGauge::new(name, help).unwrap_or_else(|e| invalid(name, e));
        self.register(m.clone());
        m
    }

    /// Registers and returns a floating-point gauge (a duration in seconds, a ratio).
    pub fn float_gauge(&self, name: &str, help: &str) -> prometheus::Gauge {
        let m = prometheus::Gauge::new(name, help).unwrap_or_else(|e| invalid(name, e));
        self.register(m.clone());
        m
    }

    /// Registers and returns an integer gauge with `labels`.
    pub fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        let m =
            IntGaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| invalid(name, e));
        self.register(m.clone());
        m
    }

    /// Registers and returns a histogram with the given bucket upper bounds.
    pub fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Histogram {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        let m = Histogram::with_opts(opts).unwrap_or_else(|e| invalid(name, e));
        self.register(m.clone());
        m
    }

    /// Registers and returns a histogram with `labels` and the given bucket upper bounds.
    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        let m = HistogramVec::new(opts, labels).unwrap_or_else(|e| invalid(name, e));
        self.register(m.clone());
        m
    }

    /// The Prometheus text exposition of every metric of this registry.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "encoding metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

fn invalid(name: &str, e: prometheus::Error) -> ! {
    panic!("invalid metric {name:?}: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_and_helpers_render() {
        let m = ServiceMetrics::new("zest-test", "1.2.3");
        m.counter("zest_test_things_total", "things").inc_by(3);
        m.counter_vec("zest_test_kinds_total", "kinds", &["kind"])
            .with_label_values(&["a"])
            .inc();
        m.gauge("zest_test_level", "level").set(7);
        m.histogram("zest_test_seconds", "time", &[0.1, 1.0])
            .observe(0.5);
        m.histogram_vec("zest_test_route_seconds", "time", &["route"], &[1.0])
            .with_label_values(&["/x"])
            .observe(0.5);
        let text = m.render();
        assert!(
            text.contains("zest_build_info{service=\"zest-test\",version=\"1.2.3\"} 1"),
            "{text}"
        );
        assert!(text.contains("zest_test_things_total 3"), "{text}");
        assert!(
            text.contains("zest_test_kinds_total{kind=\"a\"} 1"),
            "{text}"
        );
        assert!(text.contains("zest_test_level 7"), "{text}");
        assert!(text.contains("zest_test_seconds_count 1"), "{text}");
        assert!(
            text.contains("zest_test_route_seconds_bucket{route=\"/x\",le=\"1\"} 1"),
            "{text}"
        );
        #[cfg(target_os = "linux")]
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
    }

    #[test]
    fn two_registries_in_one_process() {
        let a = ServiceMetrics::new("a", "1");
        let b = ServiceMetrics::new("b", "1");
        a.counter("zest_same_total", "same").inc();
        b.counter("zest_same_total", "same");
        assert!(a.render().contains("zest_same_total 1"));
        assert!(b.render().contains("zest_same_total 0"));
    }

    #[test]
    #[should_panic(expected = "registering a metric")]
    fn duplicate_names_panic() {
        let m = ServiceMetrics::new("a", "1");
        m.counter("zest_dup_total", "x");
        m.counter("zest_dup_total", "x");
    }
}
