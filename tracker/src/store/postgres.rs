//! The durable half of the production store: PostgreSQL through sqlx.
//!
//! Holds the peer registry (who has ever announced, when last), manifests, pull reports and
//! hashed API tokens. The schema lives in the repository's top-level `migrations/` and is
//! applied by [`PgDurable::connect`]. Every query is bounded by a timeout so that a stuck
//! database turns into [`StoreError::Unavailable`] instead of a hung request.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row;
use xet::MerkleHash;

use super::{StoreError, StoreResult};
use crate::model::{ManifestKey, ManifestRecord, PeerRecord, Report, ReportTotals, SourceBytes};

/// Time limit of one PostgreSQL operation.
const PG_TIMEOUT: Duration = Duration::from_secs(5);

/// A stored API token (its secret is never stored, only its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// PostgreSQL connection pool with the tracker's queries.
#[derive(Debug, Clone)]
pub struct PgDurable {
    pool: PgPool,
}

fn pg_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(format!("postgres: {e}")),
        other => StoreError::Internal(format!("postgres: {other}")),
    }
}

async fn bounded<T>(fut: impl Future<Output = Result<T, sqlx::Error>>) -> StoreResult<T> {
    match tokio::time::timeout(PG_TIMEOUT, fut).await {
        Ok(r) => r.map_err(pg_err),
        Err(_) => Err(StoreError::Unavailable("postgres: timed out".into())),
    }
}

fn ts(ms: u64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms.min(i64::MAX as u64) as i64)
        .single()
        .unwrap_or_default()
}

fn as_i64(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

impl PgDurable {
    /// Connects and applies the migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        use anyhow::Context;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(3))
            .connect(url)
            .await
            .context("connecting to PostgreSQL (DATABASE_URL)")?;
        sqlx::migrate!("../migrations")
            .run(&pool)
            .await
            .context("applying the tracker's migrations to PostgreSQL")?;
        Ok(PgDurable { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn upsert_peer(&self, p: &PeerRecord, now_ms: u64) -> StoreResult<()> {
        bounded(
            sqlx::query(
                "INSERT INTO peers (id, addr, role, zone, first_seen, last_seen, left_at) \
                 VALUES ($1, $2, $3, $4, $5, $5, NULL) \
                 ON CONFLICT (id) DO UPDATE SET addr = $2, role = $3, zone = $4, last_seen = $5, left_at = NULL",
            )
            .bind(&p.id)
            .bind(&p.addr)
            .bind(p.role.as_str())
            .bind(&p.zone)
            .bind(ts(now_ms))
            .execute(&self.pool),
        )
        .await
        .map(|_| ())
    }

    pub async fn mark_left(&self, id: &str) -> StoreResult<()> {
        bounded(
            sqlx::query("UPDATE peers SET left_at = now() WHERE id = $1")
                .bind(id)
                .execute(&self.pool),
        )
        .await
        .map(|_| ())
    }

    pub async fn put_manifest(&self, key: &ManifestKey, rec: &ManifestRecord) -> StoreResult<()> {
        let doc: serde_json::Value = serde_json::from_str(&rec.doc)
            .map_err(|e| StoreError::Internal(format!("manifest is not JSON: {e}")))?;
        bounded(
            sqlx::query(
                "INSERT INTO manifests (org, name, revision, commit_sha, doc, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, now()) \
                 ON CONFLICT (org, name, revision) DO UPDATE SET commit_sha = $4, doc = $5, updated_at = now()",
            )
            .bind(&key.org)
            .bind(&key.name)
            .bind(&key.revision)
            .bind(&rec.commit)
            .bind(sqlx::types::Json(doc))
            .execute(&self.pool),
        )
        .await
        .map(|_| ())
    }

    pub async fn put_chunks(&self, xet_hash: &MerkleHash, doc: &str) -> StoreResult<()> {
        bounded(
            sqlx::query(
                "INSERT INTO chunk_manifests (xet_hash, doc) VALUES ($1, $2) \
                 ON CONFLICT (xet_hash) DO NOTHING",
            )
            .bind(xet_hash.to_string())
            .bind(doc)
            .execute(&self.pool),
        )
        .await
        .map(|_| ())
    }

    pub async fn get_chunks(&self, xet_hash: &MerkleHash) -> StoreResult<Option<String>> {
        bounded(
            sqlx::query_scalar("SELECT doc FROM chunk_manifests WHERE xet_hash = $1")
                .bind(xet_hash.to_string())
                .fetch_optional(&self.pool),
        )
        .await
    }

    pub async fn get_manifest(&self, key: &ManifestKey) -> StoreResult<Option<ManifestRecord>> {
        let row = bounded(
            sqlx::query("SELECT commit_sha, doc::text AS doc FROM manifests WHERE org = $1 AND name = $2 AND revision = $3")
                .bind(&key.org)
                .bind(&key.name)
                .bind(&key.revision)
                .fetch_optional(&self.pool),
        )
        .await?;
        row.map(|r| -> StoreResult<ManifestRecord> {
            Ok(ManifestRecord {
                commit: r.try_get("commit_sha").map_err(pg_err)?,
                doc: r.try_get("doc").map_err(pg_err)?,
            })
        })
        .transpose()
    }

    pub async fn count_manifests(&self) -> StoreResult<u64> {
        let n: i64 =
            bounded(sqlx::query_scalar("SELECT count(*) FROM manifests").fetch_one(&self.pool))
                .await?;
        Ok(n.max(0) as u64)
    }

    pub async fn add_report(&self, r: &Report) -> StoreResult<()> {
        bounded(
            sqlx::query(
                "INSERT INTO reports (received_at, peer_id, repo, revision, bytes_local, bytes_peers, \
                 bytes_edges, bytes_upstream, files, duration_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
            )
            .bind(ts(r.received_at_ms))
            .bind(r.peer_id.as_deref())
            .bind(&r.repo)
            .bind(&r.revision)
            .bind(as_i64(r.bytes.local))
            .bind(as_i64(r.bytes.peers))
            .bind(as_i64(r.bytes.edges))
            .bind(as_i64(r.bytes.upstream))
            .bind(as_i64(r.files))
            .bind(as_i64(r.duration_ms))
            .execute(&self.pool),
        )
        .await
        .map(|_| ())
    }

    pub async fn report_totals(&self) -> StoreResult<ReportTotals> {
        let row = bounded(
            sqlx::query(
                "SELECT count(*) AS n, coalesce(sum(bytes_local), 0)::bigint AS l, \
                 coalesce(sum(bytes_peers), 0)::bigint AS p, coalesce(sum(bytes_edges), 0)::bigint AS e, \
                 coalesce(sum(bytes_upstream), 0)::bigint AS u FROM reports",
            )
            .fetch_one(&self.pool),
        )
        .await?;
        let get = |c: &str| -> StoreResult<u64> {
            Ok(row.try_get::<i64, _>(c).map_err(pg_err)?.max(0) as u64)
        };
        Ok(ReportTotals {
            reports: get("n")?,
            bytes: SourceBytes {
                local: get("l")?,
                peers: get("p")?,
                edges: get("e")?,
                upstream: get("u")?,
            },
        })
    }

    pub async fn token_name(&self, sha256: &[u8; 32]) -> StoreResult<Option<String>> {
        bounded(
            sqlx::query_scalar("SELECT name FROM tokens WHERE sha256 = $1")
                .bind(&sha256[..])
                .fetch_optional(&self.pool),
        )
        .await
    }

    /// Stores a new token's hash under `name`; fails if the name exists.
    pub async fn add_token(&self, name: &str, sha256: &[u8; 32]) -> StoreResult<()> {
        bounded(
            sqlx::query("INSERT INTO tokens (name, sha256) VALUES ($1, $2)")
                .bind(name)
                .bind(&sha256[..])
                .execute(&self.pool),
        )
        .await
        .map(|_| ())
    }

    pub async fn list_tokens(&self) -> StoreResult<Vec<TokenInfo>> {
        let rows = bounded(
            sqlx::query("SELECT name, created_at FROM tokens ORDER BY name").fetch_all(&self.pool),
        )
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(TokenInfo {
                    name: r.try_get("name").map_err(pg_err)?,
                    created_at: r.try_get("created_at").map_err(pg_err)?,
                })
            })
            .collect()
    }

    /// Deletes a token; returns whether it existed.
    pub async fn revoke_token(&self, name: &str) -> StoreResult<bool> {
        let r = bounded(
            sqlx::query("DELETE FROM tokens WHERE name = $1")
                .bind(name)
                .execute(&self.pool),
        )
        .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn ping(&self) -> StoreResult<()> {
        bounded(sqlx::query("SELECT 1").execute(&self.pool))
            .await
            .map(|_| ())
    }
}
