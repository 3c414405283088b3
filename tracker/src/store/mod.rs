//! Where the tracker keeps its state, behind one async trait.
//!
//! [`Store`] has two implementations: [`memory::MemoryStore`] (everything in this process; the
//! default when no database is configured) and [`production::PgRedisStore`] (hot, expiring
//! state in Redis, durable state in PostgreSQL). Only this module and its children talk to
//! PostgreSQL or Redis. Stores take "now" as an argument and never read a clock themselves.

pub mod holders;
pub mod memory;
pub mod postgres;
pub mod production;
pub mod redis_hot;

use std::fmt::Debug;

use async_trait::async_trait;
use xet::MerkleHash;

use crate::model::{
    AnnounceOutcome, Announcement, ClaimGroup, ClaimKind, ClaimOutcome, LookupHits, LookupKey,
    ManifestKey, ManifestRecord, PeerStatus, Report, StoreStats,
};
use crate::ranges::RangeError;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A backing service is unreachable or too slow; the caller should answer 503.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The request would break a store limit (e.g. too many ranges); the caller answers 400.
    #[error("{0}")]
    Invalid(#[from] RangeError),
    /// Anything else (corrupt data, a failed query); the caller answers 500.
    #[error("store error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The tracker's state: who holds what (hot, expiring) and what must last (durable).
#[async_trait]
pub trait Store: Send + Sync + Debug + 'static {
    /// `"embedded"` or `"postgres+redis"`.
    fn kind(&self) -> &'static str;

    /// Whether manifests, reports and tokens survive a restart.
    fn durable(&self) -> bool;

    /// Records the peer as alive until `now_ms + ttl_ms` and applies its holdings change.
    async fn announce(
        &self,
        a: &Announcement,
        now_ms: u64,
        ttl_ms: u64,
    ) -> StoreResult<AnnounceOutcome>;

    /// Forgets a peer and everything it holds. Returns whether it was known.
    async fn remove_peer(&self, id: &str) -> StoreResult<bool>;

    /// For each key, the live peers holding a range that covers it.
    async fn lookup(&self, keys: &[LookupKey], now_ms: u64) -> StoreResult<LookupHits>;

    /// Leases each key's upstream fetch to `peer` for `ttl_ms` unless another live peer holds a
    /// live lease on it (then that lease is returned); a lease `peer` already holds is
    /// extended, and one held by a peer that left or expired is free. Exact keys: a claim on
    /// chunks 0..8 does not conflict with one on 0..4. With a `group`, a new lease is granted
    /// only while the group holds fewer than its most live leases (renewals always are).
    async fn claim(
        &self,
        peer: &str,
        keys: &[LookupKey],
        group: Option<ClaimGroup<'_>>,
        kind: ClaimKind,
        now_ms: u64,
        ttl_ms: u64,
    ) -> StoreResult<Vec<ClaimOutcome>>;

    /// Live peers (at most `limit`).
    async fn live_peers(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<PeerStatus>>;

    /// Deletes the holdings of peers that expired before `now_ms`; returns how many peers.
    async fn sweep(&self, now_ms: u64) -> StoreResult<u64>;

    async fn put_manifest(&self, key: &ManifestKey, rec: &ManifestRecord) -> StoreResult<()>;

    async fn get_manifest(&self, key: &ManifestKey) -> StoreResult<Option<ManifestRecord>>;

    /// Keeps the chunk manifest `doc` (JSON, already checked against `xet_hash`) unless one is
    /// kept for that file already.
    async fn put_chunks(&self, xet_hash: &MerkleHash, doc: &str) -> StoreResult<()>;

    async fn get_chunks(&self, xet_hash: &MerkleHash) -> StoreResult<Option<String>>;

    async fn add_report(&self, report: &Report) -> StoreResult<()>;

    async fn stats(&self, now_ms: u64) -> StoreResult<StoreStats>;

    /// The name of the stored token whose SHA-256 is `sha256`, if any.
    async fn token_name(&self, sha256: &[u8; 32]) -> StoreResult<Option<String>>;

    /// Whether every backing service answers.
    async fn ready(&self) -> StoreResult<()>;
}
