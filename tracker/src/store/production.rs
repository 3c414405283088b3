//! The production store: Redis for hot, expiring state, PostgreSQL for what must last.
//!
//! Lookups and announces touch Redis only (plus a PostgreSQL upsert of the peer registry on
//! announce, which is best effort: a slow database never fails an announce). Manifests,
//! reports and tokens go to PostgreSQL. Losing Redis loses only what the next round of
//! announces rebuilds.

use async_trait::async_trait;
use xet::MerkleHash;

use super::postgres::PgDurable;
use super::redis_hot::RedisHot;
use super::{Store, StoreResult};
use crate::model::{
    AnnounceOutcome, Announcement, ClaimGroup, ClaimKind, ClaimOutcome, LookupHits, LookupKey,
    ManifestKey, ManifestRecord, PeerStatus, Report, Role, StoreStats,
};

/// Most live peers `stats` and `GET /v1/peers` look at.
pub const MAX_LISTED_PEERS: usize = 100_000;

/// PostgreSQL + Redis [`Store`].
#[derive(Debug, Clone)]
pub struct PgRedisStore {
    pg: PgDurable,
    redis: RedisHot,
}

impl PgRedisStore {
    pub fn new(pg: PgDurable, redis: RedisHot) -> Self {
        PgRedisStore { pg, redis }
    }

    pub fn postgres(&self) -> &PgDurable {
        &self.pg
    }
}

#[async_trait]
impl Store for PgRedisStore {
    fn kind(&self) -> &'static str {
        "postgres+redis"
    }

    fn durable(&self) -> bool {
        true
    }

    async fn announce(
        &self,
        a: &Announcement,
        now_ms: u64,
        ttl_ms: u64,
    ) -> StoreResult<AnnounceOutcome> {
        let (hot, registry) = tokio::join!(
            self.redis.announce(a, now_ms, ttl_ms),
            self.pg.upsert_peer(&a.peer, now_ms)
        );
        if let Err(e) = registry {
            tracing::warn!(peer = %a.peer.id, error = %e, "could not record the peer in PostgreSQL");
        }
        hot
    }

    async fn remove_peer(&self, id: &str) -> StoreResult<bool> {
        let known = self.redis.remove_peer(id).await?;
        if let Err(e) = self.pg.mark_left(id).await {
            tracing::warn!(peer = %id, error = %e, "could not mark the peer as left in PostgreSQL");
        }
        Ok(known)
    }

    async fn lookup(&self, keys: &[LookupKey], now_ms: u64) -> StoreResult<LookupHits> {
        self.redis.lookup(keys, now_ms).await
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
        self.redis
            .claim(peer, keys, group, kind, now_ms, ttl_ms)
            .await
    }

    async fn live_peers(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<PeerStatus>> {
        self.redis.live_peers(now_ms, limit).await
    }

    async fn sweep(&self, now_ms: u64) -> StoreResult<u64> {
        self.redis.sweep(now_ms).await
    }

    async fn put_manifest(&self, key: &ManifestKey, rec: &ManifestRecord) -> StoreResult<()> {
        self.pg.put_manifest(key, rec).await
    }

    async fn get_manifest(&self, key: &ManifestKey) -> StoreResult<Option<ManifestRecord>> {
        self.pg.get_manifest(key).await
    }

    async fn put_chunks(&self, xet_hash: &MerkleHash, doc: &str) -> StoreResult<()> {
        self.pg.put_chunks(xet_hash, doc).await
    }

    async fn get_chunks(&self, xet_hash: &MerkleHash) -> StoreResult<Option<String>> {
        self.pg.get_chunks(xet_hash).await
    }

    async fn add_report(&self, report: &Report) -> StoreResult<()> {
        self.pg.add_report(report).await
    }

    async fn stats(&self, now_ms: u64) -> StoreResult<StoreStats> {
        let (peers, manifests, reports) = tokio::join!(
            self.redis.live_peers(now_ms, MAX_LISTED_PEERS),
            self.pg.count_manifests(),
            self.pg.report_totals()
        );
        let mut stats = StoreStats {
            manifests: manifests?,
            reports: reports?,
            ..StoreStats::default()
        };
        for p in peers? {
            stats.peers += 1;
            match p.record.role {
                Role::Edge => stats.edges += 1,
                Role::Client | Role::Seed => stats.clients += 1,
            }
            stats.held_xorbs += p.held_xorbs;
        }
        Ok(stats)
    }

    async fn token_name(&self, sha256: &[u8; 32]) -> StoreResult<Option<String>> {
        self.pg.token_name(sha256).await
    }

    async fn ready(&self) -> StoreResult<()> {
        let (a, b) = tokio::join!(self.redis.ping(), self.pg.ping());
        a?;
        b
    }
}
