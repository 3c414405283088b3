//! The peer book: which peers were recently known to hold (parts of) each xorb, learned from
//! the tracker's lookup answers and from PeerExchange frames, so that a swarm keeps finding its
//! members when the tracker is gone. It is only a hint: whatever a peer named here sends is
//! verified like anything else a peer sends, and a peer that does not hold a range answers
//! NotFound.
//!
//! Bounded whatever it is fed: at most [`PeerBook::max_per_xorb`] addresses per xorb (the most
//! recently learned kept) and at most [`PeerBook::max_xorbs`] xorbs (the least recently used
//! forgotten first). Addresses are IP socket addresses only (no host names, so nothing learned
//! from a peer makes anyone resolve a name), and never the owner's own advertised address.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use xet::MerkleHash;

/// Addresses kept per xorb by default.
pub const DEFAULT_MAX_PER_XORB: usize = 64;
/// Xorbs kept by default.
pub const DEFAULT_MAX_XORBS: usize = 4096;
/// Addresses a server sends in one PeerExchange frame, at most.
pub const PEX_SEND_MAX: usize = 32;

/// What the book holds and has learned, for summaries and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerBookStats {
    /// Xorbs with at least one address.
    pub xorbs: usize,
    /// Addresses over all xorbs.
    pub addrs: usize,
    /// New (xorb, address) entries learned from PeerExchange frames.
    pub learned_exchanged: u64,
    /// New (xorb, address) entries learned from the tracker's answers.
    pub learned_tracker: u64,
}

#[derive(Debug, Default)]
struct Entry {
    /// When the xorb was last used (its key in `Inner::lru`).
    tick: u64,
    /// Most recently learned last.
    addrs: VecDeque<SocketAddr>,
}

#[derive(Debug, Default)]
struct Inner {
    tick: u64,
    xorbs: HashMap<MerkleHash, Entry>,
    /// Use tick → xorb; the first is the least recently used.
    lru: BTreeMap<u64, MerkleHash>,
    addrs: usize,
}

impl Inner {
    /// Marks `xorb` (present) as just used.
    fn touch(&mut self, xorb: &MerkleHash) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(e) = self.xorbs.get_mut(xorb) {
            self.lru.remove(&e.tick);
            e.tick = tick;
            self.lru.insert(tick, *xorb);
        }
    }
}

/// Xorb hash → peers recently known to hold parts of it. Shared (`Arc`) by a pull's peer
/// server, its peer connections and its fleet.
pub struct PeerBook {
    own: Option<SocketAddr>,
    max_per_xorb: usize,
    max_xorbs: usize,
    inner: Mutex<Inner>,
    learned_exchanged: AtomicU64,
    learned_tracker: AtomicU64,
}

impl std::fmt::Debug for PeerBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerBook")
            .field("own", &self.own)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl PeerBook {
    /// A book with the default bounds for a machine advertised at `own` (none: it does not
    /// serve), which is never stored.
    pub fn new(own: Option<SocketAddr>) -> Self {
        Self::with_bounds(own, DEFAULT_MAX_PER_XORB, DEFAULT_MAX_XORBS)
    }

    /// A book keeping at most `max_per_xorb` addresses for each of at most `max_xorbs` xorbs
    /// (each at least 1).
    pub fn with_bounds(own: Option<SocketAddr>, max_per_xorb: usize, max_xorbs: usize) -> Self {
        Self {
            own,
            max_per_xorb: max_per_xorb.max(1),
            max_xorbs: max_xorbs.max(1),
            inner: Mutex::new(Inner::default()),
            learned_exchanged: AtomicU64::new(0),
            learned_tracker: AtomicU64::new(0),
        }
    }

    /// The owner's advertised address: what its peer connections announce in their own
    /// PeerExchange frames.
    pub fn own(&self) -> Option<SocketAddr> {
        self.own
    }

    /// The most addresses kept per xorb.
    pub fn max_per_xorb(&self) -> usize {
        self.max_per_xorb
    }

    /// The most xorbs kept.
    pub fn max_xorbs(&self) -> usize {
        self.max_xorbs
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `addrs` hold parts of `xorb` (an address already known becomes the most
    /// recent). Returns how many (xorb, address) entries are new.
    pub fn learn(&self, xorb: &MerkleHash, addrs: impl IntoIterator<Item = SocketAddr>) -> usize {
        let mut new = 0;
        let mut inner = self.inner();
        for a in addrs {
            if Some(a) == self.own || a.port() == 0 || a.ip().is_unspecified() {
                continue;
            }
            if !inner.xorbs.contains_key(xorb) {
                if inner.xorbs.len() >= self.max_xorbs {
                    if let Some((_, old)) = inner.lru.pop_first() {
                        if let Some(e) = inner.xorbs.remove(&old) {
                            inner.addrs -= e.addrs.len();
                        }
                    }
                }
                inner.xorbs.insert(*xorb, Entry::default());
            }
            inner.touch(xorb);
            let max = self.max_per_xorb;
            let Some(e) = inner.xorbs.get_mut(xorb) else {
                continue;
            };
            let mut delta: isize = 0;
            if let Some(i) = e.addrs.iter().position(|x| *x == a) {
                e.addrs.remove(i);
                delta -= 1;
            } else {
                new += 1;
            }
            e.addrs.push_back(a);
            delta += 1;
            while e.addrs.len() > max {
                e.addrs.pop_front();
                delta -= 1;
            }
            inner.addrs = inner.addrs.saturating_add_signed(delta);
        }
        new
    }

    /// [`PeerBook::learn`] from a PeerExchange frame (see [`parse_peers`]), counted apart from
    /// the tracker's. Returns the new entries.
    pub fn learn_exchanged(
        &self,
        xorb: &MerkleHash,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> usize {
        let n = self.learn(xorb, addrs);
        self.learned_exchanged
            .fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// [`PeerBook::learn`] from the tracker's answer (counted apart from exchanged ones).
    pub fn learn_from_tracker(
        &self,
        xorb: &MerkleHash,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> usize {
        let n = self.learn(xorb, addrs);
        self.learned_tracker.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Up to `max` addresses known for `xorb`, the most recently learned first, without
    /// `exclude` (e.g. the peer being answered). Counts as a use of the xorb.
    pub fn peers(
        &self,
        xorb: &MerkleHash,
        max: usize,
        exclude: Option<SocketAddr>,
    ) -> Vec<SocketAddr> {
        let mut inner = self.inner();
        let Some(e) = inner.xorbs.get(xorb) else {
            return Vec::new();
        };
        let out: Vec<SocketAddr> = e
            .addrs
            .iter()
            .rev()
            .filter(|a| Some(**a) != exclude)
            .take(max)
            .copied()
            .collect();
        inner.touch(xorb);
        out
    }

    /// What the book holds and has learned.
    pub fn stats(&self) -> PeerBookStats {
        let inner = self.inner();
        PeerBookStats {
            xorbs: inner.xorbs.len(),
            addrs: inner.addrs,
            learned_exchanged: self.learned_exchanged.load(Ordering::Relaxed),
            learned_tracker: self.learned_tracker.load(Ordering::Relaxed),
        }
    }
}

/// The addresses of a PeerExchange frame that are IP socket addresses (`1.2.3.4:5`,
/// `[::1]:5`); anything else (host names, garbage) is skipped.
pub fn parse_peers(addrs: &[String]) -> impl Iterator<Item = SocketAddr> + '_ {
    addrs.iter().filter_map(|a| a.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorb(n: u8) -> MerkleHash {
        let mut b = [0u8; 32];
        b[0] = n;
        MerkleHash::from(b)
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn addresses_per_xorb_are_bounded_keeping_the_most_recent() {
        let book = PeerBook::with_bounds(None, 3, 10);
        assert_eq!(book.learn(&xorb(1), (1..=5).map(addr)), 5);
        assert_eq!(book.peers(&xorb(1), 10, None), [addr(5), addr(4), addr(3)]);
        // Learned again: becomes the most recent, not a second entry.
        assert_eq!(book.learn(&xorb(1), [addr(3)]), 0);
        assert_eq!(book.peers(&xorb(1), 10, None), [addr(3), addr(5), addr(4)]);
        assert_eq!(book.peers(&xorb(1), 2, Some(addr(5))), [addr(3), addr(4)]);
        assert_eq!(book.stats().addrs, 3);
        assert!(book.peers(&xorb(2), 10, None).is_empty());
    }

    #[test]
    fn the_own_address_and_unusable_ones_are_never_kept() {
        let me = addr(7000);
        let book = PeerBook::new(Some(me));
        assert_eq!(book.own(), Some(me));
        let got = book.learn_exchanged(
            &xorb(1),
            parse_peers(&[
                "127.0.0.1:7000".into(),
                "127.0.0.1:7001".into(),
                "0.0.0.0:7002".into(),
                "127.0.0.1:0".into(),
                "example.com:7003".into(),
                "not an address".into(),
                "[::1]:7004".into(),
            ]),
        );
        assert_eq!(got, 2);
        assert_eq!(
            book.peers(&xorb(1), 10, None),
            ["[::1]:7004".parse().expect("v6"), addr(7001)]
        );
        let s = book.stats();
        assert_eq!((s.learned_exchanged, s.learned_tracker, s.addrs), (2, 0, 2));
        assert_eq!(book.learn_from_tracker(&xorb(2), [me, addr(1)]), 1);
        assert_eq!(book.stats().learned_tracker, 1);
    }

    #[test]
    fn xorbs_are_bounded_least_recently_used_first() {
        let book = PeerBook::with_bounds(None, 4, 3);
        for x in 1..=3 {
            book.learn(&xorb(x), [addr(u16::from(x))]);
        }
        // Using xorb 1 makes xorb 2 the least recently used one.
        assert_eq!(book.peers(&xorb(1), 1, None), [addr(1)]);
        book.learn(&xorb(4), [addr(4), addr(44)]);
        assert!(book.peers(&xorb(2), 10, None).is_empty(), "xorb 2 evicted");
        for x in [1, 3, 4] {
            assert!(!book.peers(&xorb(x), 10, None).is_empty(), "xorb {x} kept");
        }
        let s = book.stats();
        assert_eq!((s.xorbs, s.addrs), (3, 4));
        // Learning more about a known xorb also counts as a use.
        book.learn(&xorb(1), [addr(11)]);
        book.learn(&xorb(5), [addr(5)]);
        assert!(book.peers(&xorb(3), 10, None).is_empty(), "xorb 3 evicted");
        assert_eq!(book.peers(&xorb(1), 10, None), [addr(11), addr(1)]);
    }

    #[test]
    fn a_flood_stays_within_the_bounds() {
        let book = PeerBook::with_bounds(None, 64, 4096);
        for x in 0..5000u32 {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&x.to_le_bytes());
            let peers: Vec<String> = (1..=256u16).map(|p| format!("10.0.0.1:{p}")).collect();
            book.learn_exchanged(&MerkleHash::from(b), parse_peers(&peers));
        }
        let s = book.stats();
        assert_eq!(s.xorbs, 4096);
        assert_eq!(s.addrs, 4096 * 64);
    }
}
