//! Bytes of one pull by where they came from (local store, peers, edges, upstream).

use std::sync::atomic::{AtomicU64, Ordering};

use zest_tracker_api::BytesBySource;

use super::Source;

/// Byte counters by source kind, shared by the tasks of a pull.
#[derive(Debug, Default)]
pub struct ByteCounters {
    local: AtomicU64,
    peers: AtomicU64,
    edges: AtomicU64,
    upstream: AtomicU64,
}

impl ByteCounters {
    /// Counts `n` bytes from `source`.
    pub fn add(&self, source: &Source, n: u64) {
        let c = match source {
            Source::Local => &self.local,
            Source::Peer(_) => &self.peers,
            Source::Edge(_) => &self.edges,
            Source::Upstream => &self.upstream,
        };
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> BytesBySource {
        BytesBySource {
            local: self.local.load(Ordering::Relaxed),
            peers: self.peers.load(Ordering::Relaxed),
            edges: self.edges.load(Ordering::Relaxed),
            upstream: self.upstream.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_counted_by_kind() {
        let c = ByteCounters::default();
        c.add(&Source::Local, 1);
        c.add(&Source::Peer("a".into()), 2);
        c.add(&Source::Peer("b".into()), 3);
        c.add(&Source::Edge("e".into()), 4);
        c.add(&Source::Upstream, 5);
        let s = c.snapshot();
        assert_eq!((s.local, s.peers, s.edges, s.upstream), (1, 5, 4, 5));
    }
}
