//! The serving side of a pull in a swarm: while `zest pull` runs with a tracker, it listens for
//! peers ([`xorbstore::peer::PeerServer`] over the pull's own store), announces every range as
//! soon as it may be shared (incremental announces, coalesced: at most one every
//! [`ANNOUNCE_COALESCE`]), keeps its tracker entry alive, and at the end keeps serving for
//! `--seed-for`, then stops and deregisters so that nobody is sent to a machine that left.
//!
//! What may be shared is the pull's business (`pull::xetfile`): a range proven by its xorb hash
//! on arrival, or a *pending* one (stored `Structural`) that only the file hash will prove. The
//! server serves what the store holds; receivers verify what they get themselves.
//!
//! The server speaks peer exchange through the pull's [`PeerBook`] ([`Serving::book`], shared
//! with the pull's fleet), so that the swarm keeps finding its members when the tracker dies.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use xet::MerkleHash;
use xorbstore::peer::{PeerBook, PeerServer, PeerServerConfig, PeerServerStats};
use xorbstore::Store;
use zest_tracker_api::client::TrackerClient;
use zest_tracker_api::{AnnounceRequest, ChunkRange, PeerDescriptor, Role, XorbHolding};

use crate::env_vars;

/// Longest a new range waits before it is announced (announces are batched over this window,
/// so a pull of hundreds of ranges costs the tracker a few requests per second at most).
pub const ANNOUNCE_COALESCE: Duration = Duration::from_millis(300);
/// Longest wait between two announces (the tracker's interval is used when shorter).
const MAX_HEARTBEAT: Duration = Duration::from_secs(30);
/// A finished pull keeps serving until this long passes without a peer's request.
pub const LINGER_IDLE: Duration = Duration::from_millis(1500);
/// ... but no longer than this (beyond `--seed-for`).
pub const MAX_LINGER: Duration = Duration::from_secs(30);
/// Peers served at once by default.
pub const DEFAULT_UPLOAD_SLOTS: usize = 64;

/// How a pull takes part in the swarm (with a tracker configured).
#[derive(Debug, Clone, Args)]
pub struct SwarmArgs {
    /// Do not serve other machines while pulling (only take).
    #[arg(long, env = env_vars::ZEST_NO_SERVE)]
    pub no_serve: bool,
    /// Where to listen for peers while pulling (default: an ephemeral port on every address).
    #[arg(long = "listen", env = env_vars::ZEST_LISTEN, default_value = "0.0.0.0:0")]
    pub listen: String,
    /// Address announced to the tracker (default: the local address of the route to the
    /// tracker, and the listening port).
    #[arg(long = "advertise", env = env_vars::ZEST_ADVERTISE)]
    pub advertise: Option<String>,
    /// Keep serving this long after the pull completes (`90`, `90s`, `5m`, `1h`).
    #[arg(long, env = env_vars::ZEST_SEED_FOR, default_value = "0", value_parser = parse_duration)]
    pub seed_for: Duration,
    /// Peer connections served at once (more are told the machine is busy and go elsewhere).
    #[arg(long, env = env_vars::ZEST_UPLOAD_SLOTS, default_value_t = DEFAULT_UPLOAD_SLOTS)]
    pub upload_slots: usize,
    /// Most bytes per second served to peers, over all connections (`50M` = 50 MB/s, `1G`,
    /// `800k`; default: no cap), so that serving never starves the machine's own pull.
    #[arg(long, env = env_vars::ZEST_MAX_UPLOAD_RATE, value_parser = parse_rate)]
    pub max_upload_rate: Option<u64>,
    /// Where to serve Prometheus `/metrics` (peers connected, bytes up, bytes down by source)
    /// and `/healthz` while the pull runs (`127.0.0.1:9472`; default: nowhere).
    #[arg(long, env = env_vars::ZEST_METRICS_LISTEN)]
    pub metrics_listen: Option<String>,
    /// Ranges the whole swarm of this repo fetches from upstream (or through an edge) at once
    /// (0: no limit). Few at a time finish sooner and are shared sooner; all at once finish
    /// together at the end, each slower than a request may take.
    #[arg(long, env = env_vars::ZEST_SWARM_UPSTREAM_FETCHES, default_value_t = DEFAULT_SWARM_UPSTREAM_FETCHES)]
    pub swarm_upstream_fetches: u32,
}

/// Default of `--swarm-upstream-fetches`.
pub const DEFAULT_SWARM_UPSTREAM_FETCHES: u32 = 2;

/// `800k`, `50M`, `1G` (decimal: k = 1,000) or plain bytes, as bytes per second.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let s = s.trim().trim_end_matches("/s").trim_end_matches(['B', 'b']);
    let (num, mul) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1_000u64),
        Some('m' | 'M') => (&s[..s.len() - 1], 1_000_000),
        Some('g' | 'G') => (&s[..s.len() - 1], 1_000_000_000),
        _ => (s, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a rate (e.g. 800k, 50M, 1G bytes per second)"))?;
    if !(n.is_finite() && n >= 1.0 / mul as f64) {
        return Err(format!("{s:?}: the rate must be positive"));
    }
    Ok((n * mul as f64) as u64)
}

/// `90`, `90s`, `5m`, `1h` as a duration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 90, 90s, 5m, 1h)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("{s:?}: the unit must be s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}

/// Chunk ranges of xorbs.
type Ranges = Vec<(MerkleHash, Range<u32>)>;

/// Ranges waiting to be announced, and the wake-up of the announcer.
#[derive(Debug, Clone, Default)]
pub struct Publisher {
    pending: Arc<Mutex<Ranges>>,
    wake: Arc<tokio::sync::Notify>,
}

impl Publisher {
    /// Queues chunks `range` of `xorb` (now in the store) for the next announce.
    pub fn add(&self, xorb: MerkleHash, range: Range<u32>) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((xorb, range));
        self.wake.notify_one();
    }

    /// Queues `added` again (an announce that failed), without waking the announcer.
    fn put_back(&self, added: Vec<XorbHolding>) {
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for h in added {
            p.extend(h.ranges.into_iter().map(|r| (h.hash, r.start..r.end)));
        }
    }

    fn take(&self) -> Vec<XorbHolding> {
        let items = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        holdings(items)
    }
}

/// A store's holdings (`Store::holdings`) as the tracker's list.
pub fn to_holdings(held: Vec<(MerkleHash, Vec<Range<u32>>)>) -> Vec<XorbHolding> {
    held.into_iter()
        .map(|(hash, ranges)| XorbHolding {
            hash,
            ranges: ranges
                .into_iter()
                .map(|r| ChunkRange::new(r.start, r.end))
                .collect(),
        })
        .collect()
}

/// Everything `store` holds, as the tracker's list (read on the blocking pool).
async fn store_holdings(store: &Store) -> Vec<XorbHolding> {
    let s = store.clone();
    to_holdings(
        tokio::task::spawn_blocking(move || s.holdings())
            .await
            .unwrap_or_default(),
    )
}

fn holdings(items: impl IntoIterator<Item = (MerkleHash, Range<u32>)>) -> Vec<XorbHolding> {
    let mut by: std::collections::BTreeMap<MerkleHash, Vec<ChunkRange>> = Default::default();
    for (x, r) in items {
        by.entry(x)
            .or_default()
            .push(ChunkRange::new(r.start, r.end));
    }
    by.into_iter()
        .map(|(hash, ranges)| XorbHolding { hash, ranges })
        .collect()
}

/// A pull's server and announcer, running until [`Serving::finish`].
pub struct Serving {
    peer_id: String,
    zone: String,
    addr: String,
    tracker: TrackerClient,
    server: PeerServer,
    publisher: Publisher,
    book: Arc<PeerBook>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving")
            .field("peer_id", &self.peer_id)
            .field("addr", &self.addr)
            .finish()
    }
}

/// The local address this machine uses towards `tracker_base` (`http://host:port`): what
/// peers on the tracker's network can reach us at. No packet is sent (a UDP socket is only
/// connected).
fn route_address(tracker_base: &str) -> Option<std::net::IpAddr> {
    let url = reqwest::Url::parse(tracker_base).ok()?;
    let host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = url.port_or_known_default()?;
    let target = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .ok()?
        .next()?;
    let bind: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let sock = std::net::UdpSocket::bind(bind).ok()?;
    sock.connect(target).ok()?;
    Some(sock.local_addr().ok()?.ip())
}

impl Serving {
    /// Starts serving `store` as `peer_id` and registers with `tracker` (announcing what the
    /// store already holds: earlier pulls' verified files).
    pub async fn start(
        args: &SwarmArgs,
        store: Store,
        tracker: TrackerClient,
        peer_id: String,
        zone: String,
    ) -> anyhow::Result<Serving> {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("binding {} to serve peers", args.listen))?;
        let local = listener.local_addr()?;
        let addr = match &args.advertise {
            Some(a) => a.clone(),
            None => {
                let ip = if local.ip().is_unspecified() {
                    route_address(tracker.base()).unwrap_or(local.ip())
                } else {
                    local.ip()
                };
                SocketAddr::new(ip, local.port()).to_string()
            }
        };
        // Peer exchange: never our own advertised address (when it is an IP address; one
        // given as a host name is not announced to peers at all).
        let book = Arc::new(PeerBook::new(addr.parse().ok()));
        let mut config = PeerServerConfig::new(peer_id.clone(), wire::Role::Client);
        config.book = Some(book.clone());
        config.max_connections = args.upload_slots.max(1);
        config.upload_rate = args
            .max_upload_rate
            .map(|r| Arc::new(xorbstore::peer::UploadRate::new(r)));
        let server = PeerServer::new(store.clone(), config);
        let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
        let serve = {
            let server = server.clone();
            async move {
                let shutdown = async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                };
                if let Err(e) = server.serve(listener, shutdown).await {
                    tracing::warn!(error = %e, "serving peers stopped");
                }
            }
        };
        let publisher = Publisher::default();
        let mut me = Serving {
            peer_id,
            zone,
            addr,
            tracker,
            server,
            publisher,
            book,
            stop,
            tasks: vec![tokio::spawn(serve)],
        };
        let first = me.request(Some(store_holdings(&store).await));
        let interval = match me.tracker.announce(&first).await {
            Ok(r) => Duration::from_secs(r.interval_secs.max(1)).min(MAX_HEARTBEAT),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "announce failed; peers will not find this machine until it succeeds");
                Duration::from_secs(2)
            }
        };
        tracing::info!(addr = %me.addr, listen = %local, "serving peers while pulling");
        me.tasks.push(tokio::spawn(announce_loop(
            me.tracker.clone(),
            me.request(None),
            me.publisher.clone(),
            store,
            interval,
            me.stop.subscribe(),
        )));
        Ok(me)
    }

    fn request(&self, full: Option<Vec<XorbHolding>>) -> AnnounceRequest {
        AnnounceRequest {
            peer: PeerDescriptor {
                id: self.peer_id.clone(),
                addr: self.addr.clone(),
                role: Role::Client,
                zone: self.zone.clone(),
                free_bytes: 0,
                load: 0,
            },
            full,
            added: Vec::new(),
            removed: Vec::new(),
        }
    }

    /// Where new ranges are queued for announcing.
    pub fn publisher(&self) -> Publisher {
        self.publisher.clone()
    }

    /// The peer book of this swarm member (its server's, for its fleet to share).
    pub fn book(&self) -> Arc<PeerBook> {
        self.book.clone()
    }

    /// The address announced to the tracker.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The peer server (for its counters).
    pub fn server(&self) -> PeerServer {
        self.server.clone()
    }

    /// What serving did so far.
    pub fn stats(&self) -> PeerServerStats {
        self.server.stats()
    }

    /// Keeps serving after the pull: for `seed_for`, and longer while peers are still fetching
    /// from this machine (until [`LINGER_IDLE`] passes without a request, [`MAX_LINGER`] at
    /// most), so that the first machine of a swarm to finish does not take away ranges the
    /// others are about to ask it for. A machine that fetched nothing upstream for the swarm
    /// (`claimed`) and that nobody asked anything stops at once.
    async fn linger(&self, seed_for: Duration, claimed: bool) {
        let start = tokio::time::Instant::now();
        if !seed_for.is_zero() {
            tracing::info!(secs = seed_for.as_secs(), "seeding after the pull");
        }
        let activity = |s: PeerServerStats| (s.requests, s.bytes_served);
        let mut seen = activity(self.server.stats());
        let mut last_active = if seen.0 == 0 && !claimed {
            start - LINGER_IDLE
        } else {
            start
        };
        loop {
            let now = tokio::time::Instant::now();
            let seeded = now >= start + seed_for;
            if seeded && (now >= last_active + LINGER_IDLE || now >= start + MAX_LINGER) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let a = activity(self.server.stats());
            if a != seen {
                seen = a;
                last_active = tokio::time::Instant::now();
            }
        }
    }

    /// Announces what is still queued, keeps serving as [`Serving::linger`] says (or until
    /// Ctrl-C or SIGTERM), then stops serving and deregisters.
    pub async fn finish(self, seed_for: Duration, claimed: bool) -> PeerServerStats {
        let last = AnnounceRequest {
            added: self.publisher.take(),
            ..self.request(None)
        };
        if !last.added.is_empty() {
            if let Err(e) = self.tracker.announce(&last).await {
                tracing::debug!(error = %format!("{e:#}"), "last announce failed");
            }
        }
        tokio::select! {
            _ = self.linger(seed_for, claimed) => {}
            _ = zest_service::shutdown::signal(false) => {}
        }
        let _ = self.stop.send(true);
        // The announcer ends first: an announce after the deregister would list us again.
        for t in self.tasks.into_iter().rev() {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        if let Err(e) = self.tracker.deregister(&self.peer_id).await {
            tracing::debug!(error = %format!("{e:#}"), "deregister failed");
        }
        self.server.stats()
    }
}

/// Announces queued ranges (coalesced over [`ANNOUNCE_COALESCE`]) and heartbeats every
/// `interval`; sends the full list when the tracker lost us (`resync`).
async fn announce_loop(
    tracker: TrackerClient,
    base: AnnounceRequest,
    publisher: Publisher,
    store: Store,
    mut interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut next_beat = tokio::time::Instant::now() + interval;
    loop {
        let woken = tokio::select! {
            _ = publisher.wake.notified() => true,
            _ = tokio::time::sleep_until(next_beat) => false,
            _ = stop.changed() => return,
        };
        if woken {
            tokio::time::sleep(ANNOUNCE_COALESCE).await;
        }
        if *stop.borrow() {
            return;
        }
        let added = publisher.take();
        let req = AnnounceRequest {
            added: added.clone(),
            ..base.clone()
        };
        match tracker.announce(&req).await {
            Ok(r) => {
                interval = Duration::from_secs(r.interval_secs.max(1)).min(MAX_HEARTBEAT);
                if r.resync {
                    let full = AnnounceRequest {
                        full: Some(store_holdings(&store).await),
                        ..base.clone()
                    };
                    if let Err(e) = tracker.announce(&full).await {
                        tracing::debug!(error = %format!("{e:#}"), "full announce failed");
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "announce failed; retrying");
                publisher.put_back(added);
                interval = Duration::from_secs(2);
            }
        }
        next_beat = tokio::time::Instant::now() + interval;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn rates_parse_with_decimal_units() {
        assert_eq!(parse_rate("800k"), Ok(800_000));
        assert_eq!(parse_rate("50M"), Ok(50_000_000));
        assert_eq!(parse_rate("1.5G"), Ok(1_500_000_000));
        assert_eq!(parse_rate("12MB/s"), Ok(12_000_000));
        assert_eq!(parse_rate("4096"), Ok(4096));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("-3M").is_err());
    }

    #[test]
    fn queued_ranges_are_grouped_by_xorb() {
        let p = Publisher::default();
        let x = MerkleHash::default();
        p.add(x, 0..4);
        p.add(x, 8..9);
        let h = p.take();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].ranges, [ChunkRange::new(0, 4), ChunkRange::new(8, 9)]);
        assert!(p.take().is_empty());
    }

    #[test]
    fn the_route_to_a_loopback_tracker_is_loopback() {
        let ip = route_address("http://127.0.0.1:7070").expect("route");
        assert!(ip.is_loopback(), "{ip}");
        assert_eq!(route_address("not a url"), None);
    }
}
