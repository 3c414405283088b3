//! [`RetryPolicy`]: the one place zest decides whether and when to send a failed Hub or CAS
//! request again. [`crate::HubClient`] runs every request through it; nothing above retries an
//! HTTP failure, so one failing request costs at most [`RetryPolicy::attempts`] upstream
//! requests.
//!
//! Retried: 408, 429, 5xx and transport failures ([`HubError::is_retryable`]). The wait before
//! retry `n` is exponential (`base · 2ⁿ⁻¹`, capped at `max_delay`) with jitter (between half and
//! all of it), or the server's `Retry-After` (seconds or an HTTP date) capped at
//! `max_retry_after`.

use std::future::Future;
use std::time::{Duration, SystemTime};

use crate::HubError;

/// Default retries after the first attempt (8 attempts in all).
pub const DEFAULT_MAX_RETRIES: u32 = 7;

/// How often and how patiently a request is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = never retry).
    pub max_retries: u32,
    /// Wait before the first retry (before jitter).
    pub base_delay: Duration,
    /// Longest computed wait.
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured; a longer one is cut to this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: DEFAULT_MAX_RETRIES,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The default policy with `max_retries` retries.
    pub fn with_max_retries(max_retries: u32) -> Self {
        RetryPolicy {
            max_retries,
            ..RetryPolicy::default()
        }
    }

    /// A policy that sends every request once.
    pub fn none() -> Self {
        RetryPolicy::with_max_retries(0)
    }

    /// Most requests one call may cost.
    pub fn attempts(&self) -> u32 {
        self.max_retries.saturating_add(1)
    }

    /// The wait before retry `n` (1-based) without jitter, or the server's `retry_after`
    /// capped at [`Self::max_retry_after`].
    pub fn delay(&self, n: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(r) = retry_after {
            return r.min(self.max_retry_after);
        }
        let shift = n.saturating_sub(1).min(20);
        self.base_delay
            .saturating_mul(1u32 << shift)
            .min(self.max_delay)
    }

    /// [`Self::delay`] with jitter: a uniform wait between half and all of it (a server's
    /// `Retry-After` is a floor and gets up to 10% added instead).
    fn jittered(&self, n: u32, retry_after: Option<Duration>) -> Duration {
        let d = self.delay(n, retry_after);
        let unit = rand::random::<f64>();
        if retry_after.is_some() {
            d + d.mul_f64(0.1 * unit)
        } else {
            d / 2 + (d / 2).mul_f64(unit)
        }
    }

    /// Runs `attempt` until it succeeds, fails with an error that is not
    /// [retryable](HubError::is_retryable), or the policy's attempts are spent. `on_retry` is
    /// called before each retry (counters, logs).
    pub async fn run<T, F, Fut>(
        &self,
        mut attempt: F,
        mut on_retry: impl FnMut(u32, &HubError),
    ) -> Result<T, HubError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, HubError>>,
    {
        let mut n = 0;
        loop {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && n < self.max_retries => {
                    n += 1;
                    on_retry(n, &e);
                    tokio::time::sleep(self.jittered(n, e.retry_after())).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// A `Retry-After` value: delay seconds, or an HTTP date (the wait until then; zero if past).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use reqwest::StatusCode;

    use super::*;

    fn fast(max_retries: u32) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            max_retry_after: Duration::from_millis(5),
        }
    }

    fn status(code: u16) -> HubError {
        HubError::Status {
            what: "test",
            status: StatusCode::from_u16(code).expect("status"),
            retry_after: None,
        }
    }

    /// Runs a call that always fails with `err()`; returns the attempts it made.
    async fn attempts_for(policy: RetryPolicy, err: fn() -> HubError) -> u32 {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = policy
            .run(
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(err())
                },
                |_, _| {},
            )
            .await;
        assert!(r.is_err());
        calls.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_failing_5xx_costs_exactly_the_policy_attempts() {
        assert_eq!(attempts_for(fast(3), || status(503)).await, 4);
        assert_eq!(attempts_for(fast(3), || status(500)).await, 4);
        assert_eq!(attempts_for(fast(0), || status(503)).await, 1);
        assert_eq!(attempts_for(fast(7), || status(502)).await, 8);
    }

    #[tokio::test]
    async fn only_408_and_429_of_the_4xx_are_retried() {
        assert_eq!(attempts_for(fast(2), || status(429)).await, 3);
        assert_eq!(attempts_for(fast(2), || status(408)).await, 3);
        for code in [400, 401, 403, 404, 416] {
            let calls = AtomicU32::new(0);
            let _ = fast(5)
                .run(
                    || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        Err::<(), _>(status(code))
                    },
                    |_, _| {},
                )
                .await;
            assert_eq!(calls.load(Ordering::SeqCst), 1, "{code} was retried");
        }
        assert_eq!(
            attempts_for(fast(5), || HubError::TooLarge {
                what: "t",
                limit: 1
            })
            .await,
            1
        );
    }

    #[tokio::test]
    async fn success_after_failures_stops_retrying() {
        let calls = AtomicU32::new(0);
        let mut retries = Vec::new();
        let r = fast(5)
            .run(
                || async {
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    if n < 2 {
                        Err(status(503))
                    } else {
                        Ok(n)
                    }
                },
                |n, _| retries.push(n),
            )
            .await;
        assert_eq!(r.expect("third attempt succeeds"), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(retries, vec![1, 2]);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, None), Duration::from_millis(100));
        assert_eq!(p.delay(2, None), Duration::from_millis(200));
        assert_eq!(p.delay(4, None), Duration::from_millis(800));
        assert_eq!(p.delay(6, None), Duration::from_secs(2));
        assert_eq!(p.delay(60, None), Duration::from_secs(2));
        for n in 1..8 {
            let j = p.jittered(n, None);
            assert!(j >= p.delay(n, None) / 2 && j <= p.delay(n, None), "{j:?}");
        }
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_ceiling() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3600))),
            p.max_retry_after
        );
        let j = p.jittered(1, Some(Duration::from_secs(3)));
        assert!(j >= Duration::from_secs(3) && j <= Duration::from_millis(3300));
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        let soon = SystemTime::now() + Duration::from_secs(30);
        let d = parse_retry_after(&httpdate::fmt_http_date(soon)).expect("date");
        assert!(
            d > Duration::from_secs(27) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
