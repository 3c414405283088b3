//! The embedded store: all state in this process's memory.
//!
//! Used when neither `DATABASE_URL` nor `REDIS_URL` is set: one machine, the demo, tests.
//! Nothing survives a restart (`durable() == false`); announcements rebuild the hot state.
//! Stored tokens do not exist here, only the `--token` flag. Reports are kept up to
//! [`MAX_KEPT_REPORTS`] (the oldest are dropped; the totals keep counting).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, RwLock};

use async_trait::async_trait;
use xet::MerkleHash;

use super::{Store, StoreError, StoreResult};
use crate::model::{
    apply_delta, merge_full, AnnounceOutcome, Announcement, ClaimGroup, ClaimKind, ClaimOutcome,
    HoldingsChange, LookupHits, LookupKey, ManifestKey, ManifestRecord, PeerRecord, PeerStatus,
    Report, ReportTotals, StoreStats, XorbRanges,
};
use crate::ranges::RangeSet;
use rustc_hash::{FxHashMap, FxHashSet};

/// Reports kept in memory; older ones are dropped.
pub const MAX_KEPT_REPORTS: usize = 100_000;

#[derive(Debug)]
struct PeerEntry {
    record: PeerRecord,
    expires_at_ms: u64,
    xorbs: FxHashSet<MerkleHash>,
}

#[derive(Debug)]
struct Lease {
    holder: String,
    expires_at_ms: u64,
    group: Option<String>,
}

#[derive(Debug, Default)]
struct Hot {
    peers: FxHashMap<String, PeerEntry>,
    /// xorb → peer id → ranges held.
    index: FxHashMap<MerkleHash, FxHashMap<String, RangeSet>>,
    /// Upstream-fetch leases: (xorb, start, end) → lease.
    claims: FxHashMap<(MerkleHash, u32, u32), Lease>,
}

impl Hot {
    fn drop_holdings(&mut self, id: &str, xorbs: impl IntoIterator<Item = MerkleHash>) {
        for x in xorbs {
            if let Some(holders) = self.index.get_mut(&x) {
                holders.remove(id);
                if holders.is_empty() {
                    self.index.remove(&x);
                }
            }
        }
    }

    fn remove_peer(&mut self, id: &str) -> bool {
        match self.peers.remove(id) {
            Some(entry) => {
                self.drop_holdings(id, entry.xorbs);
                true
            }
            None => false,
        }
    }
}

/// Chunk manifests kept in memory; the oldest are dropped beyond it.
pub const MAX_KEPT_CHUNK_MANIFESTS: usize = 10_000;

#[derive(Debug, Default)]
struct Durable {
    manifests: HashMap<ManifestKey, ManifestRecord>,
    chunks: HashMap<MerkleHash, String>,
    chunks_order: VecDeque<MerkleHash>,
    reports: VecDeque<Report>,
    totals: ReportTotals,
}

/// In-memory [`Store`].
#[derive(Debug, Default)]
pub struct MemoryStore {
    hot: RwLock<Hot>,
    durable: Mutex<Durable>,
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore::default()
    }
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Internal("embedded store lock poisoned".into())
}

#[async_trait]
impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn durable(&self) -> bool {
        false
    }

    async fn announce(
        &self,
        a: &Announcement,
        now_ms: u64,
        ttl_ms: u64,
    ) -> StoreResult<AnnounceOutcome> {
        let mut hot = self.hot.write().map_err(poisoned)?;
        let id = a.peer.id.clone();
        let expires_at_ms = now_ms.saturating_add(ttl_ms);
        // A peer that expired but was not swept yet starts from nothing.
        let was_live = hot.peers.get(&id).is_some_and(|e| e.expires_at_ms > now_ms);
        if !was_live {
            hot.remove_peer(&id);
        }
        // Compute the new holdings of every touched xorb before changing anything, so a
        // refused change (too many ranges) leaves the old state intact.
        let mut updates: Vec<(MerkleHash, RangeSet)> = Vec::new();
        let mut full_replace: Option<FxHashSet<MerkleHash>> = None;
        match &a.change {
            HoldingsChange::Full(list) => {
                let merged = merge_full(list)?;
                full_replace = Some(merged.keys().copied().collect());
                updates.extend(merged);
            }
            HoldingsChange::Delta { added, removed } => {
                let mut touched = XorbRanges::new();
                for h in removed.iter().chain(added) {
                    touched.entry(h.xorb).or_insert_with(|| {
                        hot.index
                            .get(&h.xorb)
                            .and_then(|m| m.get(&id))
                            .cloned()
                            .unwrap_or_default()
                    });
                }
                apply_delta(&mut touched, added, removed)?;
                updates.extend(touched);
            }
        }

        let hot = &mut *hot;
        let entry = hot.peers.entry(id.clone()).or_insert_with(|| PeerEntry {
            record: a.peer.clone(),
            expires_at_ms,
            xorbs: FxHashSet::default(),
        });
        entry.record = a.peer.clone();
        entry.expires_at_ms = expires_at_ms;
        if let Some(keep) = full_replace {
            let gone: Vec<MerkleHash> = entry.xorbs.difference(&keep).copied().collect();
            entry.xorbs = keep;
            for x in gone {
                if let Some(holders) = hot.index.get_mut(&x) {
                    holders.remove(&id);
                    if holders.is_empty() {
                        hot.index.remove(&x);
                    }
                }
            }
        }
        for (x, set) in updates {
            if set.is_empty() {
                entry.xorbs.remove(&x);
                if let Some(holders) = hot.index.get_mut(&x) {
                    holders.remove(&id);
                    if holders.is_empty() {
                        hot.index.remove(&x);
                    }
                }
            } else {
                entry.xorbs.insert(x);
                hot.index.entry(x).or_default().insert(id.clone(), set);
            }
        }
        Ok(AnnounceOutcome {
            held_xorbs: entry.xorbs.len() as u64,
            was_live,
        })
    }

    async fn remove_peer(&self, id: &str) -> StoreResult<bool> {
        Ok(self.hot.write().map_err(poisoned)?.remove_peer(id))
    }

    async fn lookup(&self, keys: &[LookupKey], now_ms: u64) -> StoreResult<LookupHits> {
        /// Marks a peer found expired, so that it is looked up once per batch.
        const DEAD: u32 = u32::MAX;
        let hot = self.hot.read().map_err(poisoned)?;
        let mut hits = LookupHits {
            peers: Vec::new(),
            items: Vec::with_capacity(keys.len()),
        };
        let mut slots: FxHashMap<&str, u32> = FxHashMap::default();
        for k in keys {
            let mut found = Vec::new();
            if let Some(holders) = hot.index.get(&k.xorb) {
                for (id, set) in holders {
                    if !set.covers(k.start, k.end) {
                        continue;
                    }
                    let slot = *slots.entry(id.as_str()).or_insert_with(|| {
                        match hot.peers.get(id).filter(|p| p.expires_at_ms > now_ms) {
                            Some(p) => {
                                hits.peers.push(p.record.clone());
                                (hits.peers.len() - 1) as u32
                            }
                            None => DEAD,
                        }
                    });
                    if slot != DEAD {
                        found.push(slot);
                    }
                }
            }
            hits.items.push(found);
        }
        Ok(hits)
    }

    async fn claim(
        &self,
        peer: &str,
        keys: &[LookupKey],
        group: Option<ClaimGroup<'_>>,
        kind: ClaimKind,
        now_ms: u64,
        ttl_ms: u64,
    ) -> StoreResult<Vec<ClaimOutcome>> {
        let mut hot = self.hot.write().map_err(poisoned)?;
        let hot = &mut *hot;
        let expires_at_ms = now_ms.saturating_add(ttl_ms);
        let live = |peers: &FxHashMap<String, PeerEntry>, id: &str| {
            peers.get(id).is_some_and(|p| p.expires_at_ms > now_ms)
        };
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let key = (k.xorb, k.start, k.end);
            if kind == ClaimKind::Done {
                let l = hot.claims.get_mut(&key).filter(|l| l.holder == peer);
                let mine = l.is_some();
                if let Some(l) = l {
                    l.group = None;
                    l.expires_at_ms = expires_at_ms;
                }
                out.push(ClaimOutcome {
                    holder: if mine { peer.to_owned() } else { String::new() },
                    expires_in_ms: if mine { ttl_ms } else { 0 },
                    group_full: false,
                });
                continue;
            }
            let cur = hot.claims.get(&key);
            let mine = cur.is_some_and(|l| l.holder == peer);
            let free =
                cur.is_none_or(|l| l.expires_at_ms <= now_ms || !live(&hot.peers, &l.holder));
            if !mine && !free {
                let l = cur.expect("held");
                out.push(ClaimOutcome {
                    holder: l.holder.clone(),
                    expires_in_ms: l.expires_at_ms.saturating_sub(now_ms),
                    group_full: false,
                });
                continue;
            }
            if let (false, Some(g)) = (mine, group) {
                let held = hot
                    .claims
                    .values()
                    .filter(|l| {
                        l.group.as_deref() == Some(g.name)
                            && l.expires_at_ms > now_ms
                            && live(&hot.peers, &l.holder)
                    })
                    .count();
                if held >= g.max_leases as usize {
                    out.push(ClaimOutcome {
                        holder: String::new(),
                        expires_in_ms: 0,
                        group_full: true,
                    });
                    continue;
                }
            }
            hot.claims.insert(
                key,
                Lease {
                    holder: peer.to_owned(),
                    expires_at_ms,
                    group: group.map(|g| g.name.to_owned()),
                },
            );
            out.push(ClaimOutcome {
                holder: peer.to_owned(),
                expires_in_ms: ttl_ms,
                group_full: false,
            });
        }
        Ok(out)
    }

    async fn live_peers(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<PeerStatus>> {
        let hot = self.hot.read().map_err(poisoned)?;
        let mut out: Vec<PeerStatus> = hot
            .peers
            .values()
            .filter(|p| p.expires_at_ms > now_ms)
            .map(|p| PeerStatus {
                record: p.record.clone(),
                expires_at_ms: p.expires_at_ms,
                held_xorbs: p.xorbs.len() as u64,
            })
            .collect();
        out.sort_by(|a, b| a.record.id.cmp(&b.record.id));
        out.truncate(limit);
        Ok(out)
    }

    async fn sweep(&self, now_ms: u64) -> StoreResult<u64> {
        let mut hot = self.hot.write().map_err(poisoned)?;
        let dead: Vec<String> = hot
            .peers
            .iter()
            .filter(|(_, p)| p.expires_at_ms <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &dead {
            hot.remove_peer(id);
        }
        hot.claims.retain(|_, l| l.expires_at_ms > now_ms);
        Ok(dead.len() as u64)
    }

    async fn put_manifest(&self, key: &ManifestKey, rec: &ManifestRecord) -> StoreResult<()> {
        self.durable
            .lock()
            .map_err(poisoned)?
            .manifests
            .insert(key.clone(), rec.clone());
        Ok(())
    }

    async fn get_manifest(&self, key: &ManifestKey) -> StoreResult<Option<ManifestRecord>> {
        Ok(self
            .durable
            .lock()
            .map_err(poisoned)?
            .manifests
            .get(key)
            .cloned())
    }

    async fn put_chunks(&self, xet_hash: &MerkleHash, doc: &str) -> StoreResult<()> {
        let mut d = self.durable.lock().map_err(poisoned)?;
        if d.chunks.contains_key(xet_hash) {
            return Ok(());
        }
        if d.chunks_order.len() >= MAX_KEPT_CHUNK_MANIFESTS {
            if let Some(old) = d.chunks_order.pop_front() {
                d.chunks.remove(&old);
            }
        }
        d.chunks.insert(*xet_hash, doc.to_owned());
        d.chunks_order.push_back(*xet_hash);
        Ok(())
    }

    async fn get_chunks(&self, xet_hash: &MerkleHash) -> StoreResult<Option<String>> {
        Ok(self
            .durable
            .lock()
            .map_err(poisoned)?
            .chunks
            .get(xet_hash)
            .cloned())
    }

    async fn add_report(&self, report: &Report) -> StoreResult<()> {
        let mut d = self.durable.lock().map_err(poisoned)?;
        d.totals.reports += 1;
        d.totals.bytes.add(&report.bytes);
        if d.reports.len() >= MAX_KEPT_REPORTS {
            d.reports.pop_front();
        }
        d.reports.push_back(report.clone());
        Ok(())
    }

    async fn stats(&self, now_ms: u64) -> StoreResult<StoreStats> {
        let mut stats = StoreStats::default();
        {
            let hot = self.hot.read().map_err(poisoned)?;
            for p in hot.peers.values().filter(|p| p.expires_at_ms > now_ms) {
                stats.peers += 1;
                match p.record.role {
                    crate::model::Role::Edge => stats.edges += 1,
                    crate::model::Role::Client | crate::model::Role::Seed => stats.clients += 1,
                }
                stats.held_xorbs += p.xorbs.len() as u64;
            }
        }
        let d = self.durable.lock().map_err(poisoned)?;
        stats.manifests = d.manifests.len() as u64;
        stats.reports = d.totals;
        Ok(stats)
    }

    async fn token_name(&self, _sha256: &[u8; 32]) -> StoreResult<Option<String>> {
        Ok(None)
    }

    async fn ready(&self) -> StoreResult<()> {
        Ok(())
    }
}
