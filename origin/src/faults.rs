//! Test-only fault injection: latency, a shared bandwidth cap, 429/500/503 answers, corrupt
//! bytes.
//!
//! Off by default (see [`crate::config::FaultConfig`]). Random decisions come from one seeded
//! SplitMix64 generator, so a test that sends requests in a fixed order sees the same faults
//! on every run.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{FaultConfig, FaultScope};

/// Which kind of route a request is, for [`FaultScope`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Hub API and everything else faults may apply to.
    Hub,
    /// Reconstructions and telemetry.
    Cas,
    /// Xorb byte ranges.
    Xorb,
    /// `/metrics`, `/healthz`, `/readyz`: never faulted.
    Exempt,
}

/// A fault to answer a request with instead of handling it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectedFault {
    TooManyRequests,
    InternalError,
    ServiceUnavailable,
}

/// SplitMix64: tiny, seedable, good enough for fault dice.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Shared token bucket: bytes may leave at most at `rate` per second across all requests.
#[derive(Debug)]
struct Bandwidth {
    rate: u64,
    next_free: Mutex<Instant>,
}

/// The fault injector of one server.
#[derive(Debug)]
pub struct Faults {
    cfg: FaultConfig,
    rng: Mutex<SplitMix64>,
    bandwidth: Option<Bandwidth>,
}

impl Faults {
    pub fn new(cfg: FaultConfig) -> Self {
        let bandwidth = (cfg.fault_bandwidth_bytes_per_sec > 0).then(|| Bandwidth {
            rate: cfg.fault_bandwidth_bytes_per_sec,
            next_free: Mutex::new(Instant::now()),
        });
        Faults {
            rng: Mutex::new(SplitMix64(cfg.fault_seed)),
            bandwidth,
            cfg,
        }
    }

    fn roll(&self) -> f64 {
        self.rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_f64()
    }

    fn in_scope(&self, class: RouteClass) -> bool {
        match (self.cfg.fault_scope, class) {
            (_, RouteClass::Exempt) => false,
            (FaultScope::All, _) => true,
            (FaultScope::Cas, c) => c != RouteClass::Hub,
            (FaultScope::Xorbs, c) => c == RouteClass::Xorb,
        }
    }

    /// Added latency for a request of `class`.
    pub fn latency(&self, class: RouteClass) -> Option<Duration> {
        (self.cfg.fault_latency_ms > 0 && self.in_scope(class))
            .then(|| Duration::from_millis(self.cfg.fault_latency_ms))
    }

    /// Whether to answer this request with an injected error.
    pub fn request_fault(&self, class: RouteClass) -> Option<InjectedFault> {
        if !self.in_scope(class) {
            return None;
        }
        if self.cfg.fault_429_rate > 0.0 && self.roll() < self.cfg.fault_429_rate {
            return Some(InjectedFault::TooManyRequests);
        }
        if self.cfg.fault_500_rate > 0.0 && self.roll() < self.cfg.fault_500_rate {
            return Some(InjectedFault::InternalError);
        }
        if self.cfg.fault_503_rate > 0.0 && self.roll() < self.cfg.fault_503_rate {
            return Some(InjectedFault::ServiceUnavailable);
        }
        None
    }

    /// For a xorb response of `len` data bytes: the offset of the byte to flip, if any.
    pub fn corrupt_offset(&self, len: u64) -> Option<u64> {
        if len == 0
            || self.cfg.fault_corrupt_rate <= 0.0
            || self.roll() >= self.cfg.fault_corrupt_rate
        {
            return None;
        }
        let r = self
            .rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_u64();
        Some(r % len)
    }

    /// Piece size for streamed bodies: small enough for a smooth cap.
    pub fn piece_size(&self) -> usize {
        match &self.bandwidth {
            Some(b) => (b.rate / 20).clamp(1024, 256 * 1024) as usize,
            None => 256 * 1024,
        }
    }

    /// Waits until `n` more bytes may be sent under the bandwidth cap.
    pub async fn throttle(&self, n: usize) {
        let Some(b) = &self.bandwidth else { return };
        let wait_until = {
            let mut next = b.next_free.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let start = if *next > now { *next } else { now };
            *next = start + Duration::from_secs_f64(n as f64 / b.rate as f64);
            *next
        };
        tokio::time::sleep_until(wait_until).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> FaultConfig {
        FaultConfig {
            fault_seed: 42,
            ..FaultConfig::default()
        }
    }

    #[test]
    fn off_by_default() {
        let f = Faults::new(FaultConfig::default());
        for _ in 0..1000 {
            assert_eq!(f.request_fault(RouteClass::Xorb), None);
            assert_eq!(f.corrupt_offset(100), None);
        }
        assert_eq!(f.latency(RouteClass::Hub), None);
    }

    #[test]
    fn rates_are_roughly_honoured_and_seeded() {
        let c = FaultConfig {
            fault_429_rate: 0.3,
            ..cfg()
        };
        let a = Faults::new(c.clone());
        let b = Faults::new(c);
        let seq_a: Vec<_> = (0..2000)
            .map(|_| a.request_fault(RouteClass::Hub))
            .collect();
        let seq_b: Vec<_> = (0..2000)
            .map(|_| b.request_fault(RouteClass::Hub))
            .collect();
        assert_eq!(seq_a, seq_b);
        let n = seq_a.iter().filter(|x| x.is_some()).count();
        assert!((450..750).contains(&n), "{n}");
    }

    #[test]
    fn scope_limits_faults() {
        let f = Faults::new(FaultConfig {
            fault_500_rate: 1.0,
            fault_scope: FaultScope::Xorbs,
            ..cfg()
        });
        assert_eq!(f.request_fault(RouteClass::Hub), None);
        assert_eq!(f.request_fault(RouteClass::Cas), None);
        assert_eq!(f.request_fault(RouteClass::Exempt), None);
        assert_eq!(
            f.request_fault(RouteClass::Xorb),
            Some(InjectedFault::InternalError)
        );
    }

    #[test]
    fn a_503_rate_answers_service_unavailable() {
        let f = Faults::new(FaultConfig {
            fault_503_rate: 1.0,
            ..cfg()
        });
        assert_eq!(
            f.request_fault(RouteClass::Cas),
            Some(InjectedFault::ServiceUnavailable)
        );
    }

    #[tokio::test]
    async fn bandwidth_cap_delays() {
        let f = Faults::new(FaultConfig {
            fault_bandwidth_bytes_per_sec: 100_000,
            ..cfg()
        });
        let t = std::time::Instant::now();
        for _ in 0..4 {
            f.throttle(10_000).await;
        }
        assert!(
            t.elapsed() >= Duration::from_millis(350),
            "{:?}",
            t.elapsed()
        );
    }
}
