//! [`UploadRate`]: a token bucket shared by every connection of a server, so that serving peers
//! never takes more than a set share of a machine's uplink (its own pull keeps the rest).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A byte rate limit with a burst of a tenth of a second's worth (at least one 256 KiB piece).
/// Senders take bytes before they write them; a sender that takes more than is left waits until
/// the bucket has refilled the debt, so the long-run rate never exceeds the limit.
#[derive(Debug)]
pub struct UploadRate {
    bytes_per_sec: f64,
    burst: f64,
    /// Tokens (bytes) available at `at`; negative while senders are in debt.
    state: Mutex<(f64, Instant)>,
}

impl UploadRate {
    /// A limit of `bytes_per_sec` (at least 1).
    pub fn new(bytes_per_sec: u64) -> Self {
        let rate = bytes_per_sec.max(1) as f64;
        let burst = (rate / 10.0).max(256.0 * 1024.0);
        Self {
            bytes_per_sec: rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// The limit, bytes per second.
    pub fn bytes_per_sec(&self) -> u64 {
        self.bytes_per_sec as u64
    }

    /// How long a sender of `n` bytes must wait from `now` (taking them from the bucket).
    fn debit(&self, n: usize, now: Instant) -> Duration {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(s.1).as_secs_f64();
        s.0 = (s.0 + elapsed * self.bytes_per_sec).min(self.burst) - n as f64;
        s.1 = now;
        if s.0 >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.0 / self.bytes_per_sec)
        }
    }

    /// Takes `n` bytes, waiting as long as the limit requires.
    pub async fn take(&self, n: usize) {
        let wait = self.debit(n, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_long_run_rate_is_the_limit() {
        let r = UploadRate::new(1_000_000);
        let t0 = Instant::now();
        // The burst goes at once; after it, each 100 kB costs 0.1 s of debt.
        assert_eq!(r.debit(262_144, t0), Duration::ZERO);
        let w = r.debit(100_000, t0);
        assert!((w.as_secs_f64() - 0.1).abs() < 1e-6, "{w:?}");
        let w = r.debit(100_000, t0);
        assert!((w.as_secs_f64() - 0.2).abs() < 1e-6, "{w:?}");
        // A second later the debt is paid and the bucket is full again (a burst, not the
        // 0.8 s of tokens the second would give).
        let w = r.debit(262_144, t0 + Duration::from_secs(1));
        assert_eq!(w, Duration::ZERO);
        let w = r.debit(1, t0 + Duration::from_secs(1));
        assert!(w > Duration::ZERO, "{w:?}");
        // Idle time refills only up to the burst.
        let w = r.debit(262_144, t0 + Duration::from_secs(100));
        assert_eq!(w, Duration::ZERO);
        let w = r.debit(100_000, t0 + Duration::from_secs(100));
        assert!((w.as_secs_f64() - 0.1).abs() < 1e-6, "{w:?}");
    }
}
