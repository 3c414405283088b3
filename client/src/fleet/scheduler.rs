//! The fleet client's decisions, and nothing else: which source a range is asked of, how long a
//! request may take, when upstream is raced against a slow one, and which sources are dropped.
//! Pure: no I/O, no async, no clock of its own (every time is passed in as `now`), no global
//! randomness (the jitter comes from a seeded generator), so its decisions are pinned by the
//! unit tests below.
//!
//! Every peer and edge has a throughput estimate (an EWMA of bytes/s over the ranges it served,
//! the tracker's ranking as the prior before it served any) and a count of requests in flight.
//! Each range goes to the source with the best expected completion (throughput divided by
//! in-flight + 1), so fast sources get more work and several sources serve one file at once. A
//! request has a time limit scaled to its size, and two shorter deadlines: its first response
//! frame within [`HOLDER_FIRST_FRAME`] (the whole limit for an edge handed the upstream URL,
//! which may fetch upstream first), and no gap in its payload longer than [`STALL_TIMEOUT`]. A
//! fleet request not answered after the hedging delay (`max(2 s, 3 × expected)`) is raced by
//! upstream. A source that misses a deadline or its limit, fails or closes is dropped for the
//! rest of the pull; one that sends bad bytes is blamed (dropped, and reported).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::Holder;

/// Throughput assumed for a source that has not served anything yet, bytes/s (the tracker's
/// rank lowers it: rank 1 gets 4/5 of it, rank 2 2/3, ...).
const PRIOR_BYTES_PER_SEC: f64 = 50e6;
/// Weight of the newest sample in a source's throughput estimate.
const EWMA_ALPHA: f64 = 0.3;
/// Slowest rate a fleet request may go at before it is given up (sets its time limit).
const MIN_BYTES_PER_SEC: f64 = 1e6;
/// Fixed part of a fleet request's time limit (connection, an edge's upstream round trip).
const REQUEST_GRACE: Duration = Duration::from_secs(5);
/// First-frame deadline of a request to a source that only serves what it holds (a peer, a
/// seed, an edge not handed the upstream URL): it answers from its store at once, so a source
/// silent this long is not going to answer.
pub const HOLDER_FIRST_FRAME: Duration = Duration::from_secs(5);
/// Longest gap in a response's payload once it started (every source).
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Shortest hedging delay.
pub const MIN_HEDGE_DELAY: Duration = Duration::from_secs(2);
/// Longest hedging delay.
const MAX_HEDGE_DELAY: Duration = Duration::from_secs(3600);

/// What the scheduler knows of one peer or edge.
#[derive(Debug, Default, Clone, Copy)]
struct SourceStat {
    /// Bytes/s, once it served something.
    ewma: Option<f64>,
    inflight: u32,
}

/// How a request to a peer or edge ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It sent the chunk records asked for.
    Served,
    /// It does not hold the range (it may hold others).
    NotFound,
    /// It could not be connected to.
    Unreachable,
    /// The request failed, timed out or the connection closed.
    Failed,
    /// It sent bytes that are not the chunk records asked for.
    BadBytes,
}

/// What becomes of a source after an [`Outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Asked again for other ranges.
    Keep,
    /// Not asked again in this pull.
    Drop,
    /// Not asked again, and reported as a bad source.
    Blame,
}

/// One request to a peer or edge, as scheduled.
#[derive(Debug, Clone)]
pub struct Request {
    id: String,
    started: Instant,
    hedge_at: Option<Instant>,
    timeout: Duration,
}

impl Request {
    /// The source asked.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// When it was sent.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// When upstream is raced against it, if ever.
    pub fn hedge_at(&self) -> Option<Instant> {
        self.hedge_at
    }

    /// True once the request is slow enough to race upstream against it.
    pub fn hedge_due(&self, now: Instant) -> bool {
        self.hedge_at.is_some_and(|at| now >= at)
    }

    /// Its time limit (the source is dropped when it misses it).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// The scheduling state of one pull.
#[derive(Debug)]
pub struct Scheduler {
    stats: HashMap<String, SourceStat>,
    dead: HashSet<String>,
    max_request_time: Duration,
    /// splitmix64 state of the prior's jitter.
    rng: u64,
}

impl Scheduler {
    /// `max_request_time` caps every request's time limit; `seed` drives the jitter that makes
    /// untested sources of equal rank share the first ranges.
    pub fn new(max_request_time: Duration, seed: u64) -> Self {
        Self {
            stats: HashMap::new(),
            dead: HashSet::new(),
            max_request_time,
            rng: seed,
        }
    }

    /// A uniform number in `[0, 1)`.
    fn random(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn inflight(&self, id: &str) -> u32 {
        self.stats.get(id).map_or(0, |s| s.inflight)
    }

    /// Throughput estimate of source `id` at position `rank` of its list: measured, or the
    /// prior from its rank (with some jitter so untested sources of equal rank share the first
    /// ranges).
    fn throughput(&mut self, id: &str, rank: usize) -> f64 {
        match self.stats.get(id).and_then(|s| s.ewma) {
            Some(measured) => measured,
            None => {
                let jitter = 0.8 + 0.4 * self.random();
                PRIOR_BYTES_PER_SEC / (1.0 + 0.25 * rank as f64) * jitter
            }
        }
    }

    /// Index in `cands` (ranked best first) of the best source not in `tried` and not dropped:
    /// the highest expected completion, throughput / (in flight + 1), among the holders of our
    /// zone while one is left, then among the others.
    pub fn pick(&mut self, cands: &[Holder], tried: &HashSet<String>) -> Option<usize> {
        self.pick_among(cands, tried, false)
            .or_else(|| self.pick_among(cands, tried, true))
    }

    fn pick_among(
        &mut self,
        cands: &[Holder],
        tried: &HashSet<String>,
        far: bool,
    ) -> Option<usize> {
        let mut best: Option<(f64, usize)> = None;
        for (rank, c) in cands.iter().enumerate() {
            if c.far != far || tried.contains(&c.id) || self.dead.contains(&c.id) {
                continue;
            }
            let score = self.throughput(&c.id, rank) / f64::from(self.inflight(&c.id) + 1);
            if best.is_none_or(|(b, _)| score.total_cmp(&b).is_ge()) {
                best = Some((score, rank));
            }
        }
        best.map(|(_, i)| i)
    }

    /// Time limit of one fleet request of `expected_bytes`: the grace plus its size at the
    /// slowest acceptable rate, capped by the longest request time.
    pub fn request_timeout(&self, expected_bytes: u64) -> Duration {
        let t = REQUEST_GRACE + Duration::from_secs_f64(expected_bytes as f64 / MIN_BYTES_PER_SEC);
        t.min(self.max_request_time)
    }

    /// First-frame deadline of a request whose time limit is `timeout`: [`HOLDER_FIRST_FRAME`]
    /// for a source serving what it holds; the whole limit for an edge handed the upstream URL
    /// (`via_upstream`), which may fetch the range from upstream before its DataHeader.
    pub fn first_frame_timeout(timeout: Duration, via_upstream: bool) -> Duration {
        if via_upstream {
            timeout
        } else {
            HOLDER_FIRST_FRAME.min(timeout)
        }
    }

    /// How long a request of `expected_bytes` to source `id` (at `rank`) may run before
    /// upstream is raced against it. The source's throughput is shared by everything in flight
    /// to it, so the expectation counts the requests queued there too (else every range past
    /// the first few is raced).
    pub fn hedge_delay(&mut self, id: &str, rank: usize, expected_bytes: u64) -> Duration {
        let queued = expected_bytes as f64 * f64::from(self.inflight(id).max(1));
        let expected = queued / self.throughput(id, rank).max(1.0);
        Duration::from_secs_f64((3.0 * expected).min(MAX_HEDGE_DELAY.as_secs_f64()))
            .max(MIN_HEDGE_DELAY)
    }

    /// Schedules a request of `expected_bytes` to source `id` (at `rank`) sent at `now`; it is
    /// raced by upstream after the hedging delay when `hedgeable`. Counts it in flight until
    /// [`Self::end`].
    pub fn begin(
        &mut self,
        id: &str,
        rank: usize,
        expected_bytes: u64,
        hedgeable: bool,
        now: Instant,
    ) -> Request {
        let hedge_at = hedgeable.then(|| now + self.hedge_delay(id, rank, expected_bytes));
        self.stats.entry(id.to_string()).or_default().inflight += 1;
        Request {
            id: id.to_string(),
            started: now,
            hedge_at,
            timeout: self.request_timeout(expected_bytes),
        }
    }

    /// The request to `id` is no longer in flight (answered, failed, or lost a race).
    pub fn end(&mut self, id: &str) {
        if let Some(s) = self.stats.get_mut(id) {
            s.inflight = s.inflight.saturating_sub(1);
        }
    }

    /// `id` took from `started` to `now` for `bytes` (a request it served, or one it lost to
    /// upstream: then it is at most this fast).
    pub fn record(&mut self, id: &str, bytes: u64, started: Instant, now: Instant) {
        let took = now.saturating_duration_since(started);
        let sample = bytes as f64 / took.as_secs_f64().max(1e-3);
        let s = self.stats.entry(id.to_string()).or_default();
        s.ewma = Some(match s.ewma {
            Some(old) => old * (1.0 - EWMA_ALPHA) + sample * EWMA_ALPHA,
            None => sample,
        });
    }

    /// What becomes of `id` after a request ended with `outcome`.
    pub fn outcome(&mut self, id: &str, outcome: Outcome) -> Verdict {
        let verdict = match outcome {
            Outcome::Served | Outcome::NotFound => Verdict::Keep,
            Outcome::Unreachable | Outcome::Failed => Verdict::Drop,
            Outcome::BadBytes => Verdict::Blame,
        };
        if verdict != Verdict::Keep {
            self.drop_source(id);
        }
        verdict
    }

    /// `id` is not asked again in this pull.
    pub fn drop_source(&mut self, id: &str) {
        self.dead.insert(id.to_string());
    }

    /// True once `id` was dropped.
    pub fn is_dropped(&self, id: &str) -> bool {
        self.dead.contains(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(id: &str) -> Holder {
        Holder {
            id: id.into(),
            addr: "127.0.0.1:1".into(),
            role: wire::Role::Client,
            pex: false,
            far: false,
        }
    }

    fn sched() -> Scheduler {
        Scheduler::new(Duration::from_secs(300), 7)
    }

    fn names(cands: &[Holder], i: Option<usize>) -> Option<&str> {
        i.map(|i| cands[i].id.as_str())
    }

    #[test]
    fn holders_of_our_zone_come_first_however_busy() {
        let mut s = sched();
        let t0 = Instant::now();
        let far = Holder {
            far: true,
            ..holder("far")
        };
        let cands = [far, holder("near")];
        s.record("far", 100_000_000, t0, t0 + Duration::from_secs(1));
        s.record("near", 1_000_000, t0, t0 + Duration::from_secs(1));
        for _ in 0..100 {
            s.begin("near", 1, 1000, false, t0);
        }
        let none = HashSet::new();
        assert_eq!(names(&cands, s.pick(&cands, &none)), Some("near"));
        // The other zone is asked once ours has nobody left.
        let tried: HashSet<String> = ["near".to_string()].into();
        assert_eq!(names(&cands, s.pick(&cands, &tried)), Some("far"));
        s.drop_source("near");
        assert_eq!(names(&cands, s.pick(&cands, &none)), Some("far"));
    }

    #[test]
    fn the_fastest_source_gets_the_work_and_load_spreads_it() {
        let mut s = sched();
        let t0 = Instant::now();
        let cands = [holder("slow"), holder("fast")];
        s.record("slow", 1_000_000, t0, t0 + Duration::from_secs(1));
        s.record("fast", 100_000_000, t0, t0 + Duration::from_secs(1));
        let none = HashSet::new();
        assert_eq!(names(&cands, s.pick(&cands, &none)), Some("fast"));
        // Under load the fast one still wins until its share is proportionate.
        for _ in 0..10 {
            s.begin("fast", 1, 1000, false, t0);
        }
        assert_eq!(names(&cands, s.pick(&cands, &none)), Some("fast"));
        for _ in 0..100 {
            s.begin("fast", 1, 1000, false, t0);
        }
        assert_eq!(names(&cands, s.pick(&cands, &none)), Some("slow"));
        for _ in 0..110 {
            s.end("fast");
        }
        assert_eq!(s.inflight("fast"), 0);
        s.end("fast");
        assert_eq!(s.inflight("fast"), 0, "never below zero");
        // Dropped and tried sources are skipped.
        s.drop_source("fast");
        assert_eq!(names(&cands, s.pick(&cands, &none)), Some("slow"));
        let tried: HashSet<String> = ["slow".to_string()].into();
        assert_eq!(s.pick(&cands, &tried), None);
    }

    #[test]
    fn untested_sources_follow_the_trackers_rank_with_jitter_between_neighbours() {
        let cands = [holder("a"), holder("b"), holder("c"), holder("d")];
        let none = HashSet::new();
        let mut firsts = HashSet::new();
        for seed in 0..200 {
            let mut s = Scheduler::new(Duration::from_secs(300), seed);
            let i = s.pick(&cands, &none).expect("a candidate");
            // Rank 3's prior (at most 1.2 × 50/1.75 MB/s) never beats rank 0's (at least 40).
            assert_ne!(i, 3, "seed {seed}");
            firsts.insert(i);
        }
        assert!(firsts.contains(&0) && firsts.contains(&1), "{firsts:?}");
        // A measured source beats the prior once it is faster than it.
        let mut s = sched();
        let t0 = Instant::now();
        s.record("d", 200_000_000, t0, t0 + Duration::from_secs(1));
        assert_eq!(s.pick(&cands, &none), Some(3));
    }

    #[test]
    fn throughput_is_an_ewma_of_what_was_served() {
        let mut s = sched();
        let t0 = Instant::now();
        s.record("x", 1_000_000, t0, t0 + Duration::from_secs(1));
        assert!((s.throughput("x", 0) - 1e6).abs() < 1e-6);
        s.record("x", 100_000_000, t0, t0 + Duration::from_secs(1));
        assert!((s.throughput("x", 0) - 30.7e6).abs() < 1.0);
        // A request that took no measurable time counts as 1 ms, not as infinitely fast.
        s.record("y", 1000, t0, t0);
        assert!((s.throughput("y", 0) - 1e6).abs() < 1.0);
    }

    #[test]
    fn time_limits_scale_with_the_range_size() {
        let s = sched();
        let small = s.request_timeout(1000);
        assert!(small > Duration::from_secs(5) && small <= Duration::from_millis(5001));
        assert_eq!(s.request_timeout(64_000_000), Duration::from_secs(69));
        let short = Scheduler::new(Duration::from_secs(10), 0);
        assert_eq!(short.request_timeout(64_000_000), Duration::from_secs(10));
        let mut s = sched();
        let r = s.begin("x", 0, 64_000_000, true, Instant::now());
        assert_eq!(r.timeout(), Duration::from_secs(69));
    }

    #[test]
    fn a_holder_gets_a_short_first_frame_deadline_and_an_edge_fetching_upstream_the_limit() {
        let s = sched();
        let limit = s.request_timeout(64_000_000);
        assert_eq!(
            Scheduler::first_frame_timeout(limit, false),
            HOLDER_FIRST_FRAME
        );
        assert_eq!(Scheduler::first_frame_timeout(limit, true), limit);
        // Never longer than the limit itself.
        let tiny = Duration::from_secs(2);
        assert_eq!(Scheduler::first_frame_timeout(tiny, false), tiny);
    }

    #[test]
    fn a_hedge_fires_after_three_times_the_expected_time_and_never_before_two_seconds() {
        let mut s = sched();
        let t0 = Instant::now();
        // Small range, untested source: the floor.
        assert_eq!(s.hedge_delay("x", 0, 1000), MIN_HEDGE_DELAY);
        // 1 MB/s and 64 MB: 3 × 64 s.
        s.record("x", 1_000_000, t0, t0 + Duration::from_secs(1));
        assert_eq!(s.hedge_delay("x", 0, 64_000_000), Duration::from_secs(192));
        // Two already in flight there: the expectation doubles.
        s.begin("x", 0, 64_000_000, false, t0);
        s.begin("x", 0, 64_000_000, false, t0);
        assert_eq!(s.hedge_delay("x", 0, 64_000_000), Duration::from_secs(384));
        // The delay is fixed when the request is sent (this one not counted yet).
        let r = s.begin("x", 0, 1_000_000, true, t0);
        assert_eq!(r.hedge_at(), Some(t0 + Duration::from_secs(6)));
        assert!(!r.hedge_due(t0 + Duration::from_secs(5)));
        assert!(r.hedge_due(t0 + Duration::from_secs(6)));
        assert_eq!(s.inflight("x"), 3);
        // Capped at an hour, however slow.
        s.record("slow", 1, t0, t0 + Duration::from_secs(1000));
        assert_eq!(s.hedge_delay("slow", 0, 64_000_000), MAX_HEDGE_DELAY);
        // Not hedgeable (no upstream, or an edge already fetching upstream): never.
        let r = s.begin("y", 0, 1000, false, t0);
        assert_eq!(r.hedge_at(), None);
        assert!(!r.hedge_due(t0 + Duration::from_secs(100_000)));
    }

    #[test]
    fn failures_drop_a_source_and_bad_bytes_blame_it() {
        let mut s = sched();
        assert_eq!(s.outcome("a", Outcome::Served), Verdict::Keep);
        assert_eq!(s.outcome("a", Outcome::NotFound), Verdict::Keep);
        assert!(!s.is_dropped("a"));
        assert_eq!(s.outcome("b", Outcome::Unreachable), Verdict::Drop);
        assert_eq!(s.outcome("c", Outcome::Failed), Verdict::Drop);
        assert_eq!(s.outcome("d", Outcome::BadBytes), Verdict::Blame);
        let cands = [holder("b"), holder("c"), holder("d"), holder("a")];
        assert_eq!(s.pick(&cands, &HashSet::new()), Some(3));
        assert!(s.is_dropped("b") && s.is_dropped("c") && s.is_dropped("d"));
    }
}
