//! The hot half of the production store: peer liveness and holdings in Redis.
//!
//! Keys (all under the `zt2:` prefix; `<xorb>` is the API hex of a xorb hash):
//!
//! - `zt2:x:<xorb>` — hash: peer id → that peer's [`holders`](super::holders) record (its id
//!   and the ranges it holds, binary). A lookup reads one of these per distinct xorb with
//!   `HVALS` (pipelined): one small value per holder, no field names to parse.
//! - `zt2:live` — sorted set: peer id scored by the millisecond its liveness ends. Expiry is
//!   decided against the tracker's clock, not Redis TTLs, so a test clock drives it too.
//! - `zt2:p:<id>` — string: the peer's record as JSON.
//! - `zt2:h:<id>` — set: the xorbs the peer holds, to clean up after it.
//!
//! Version 1 of the layout used the `zt:` prefix and kept ranges as text; this version never
//! reads those keys, so a tracker started on a Redis that still holds them ignores them (they
//! are hot state that the peers' next announces rebuild under the new prefix).
//!
//! A batch lookup is one pipelined round trip whatever its size (`HVALS` of every distinct
//! xorb), plus a second (`ZMSCORE zt2:live`, `MGET zt2:p:*`) only for candidate peers that the
//! in-process `PeerCache` does not know as live. Every
//! command has a time limit ([`RedisHot::connect`]'s `timeout`), so a dead Redis turns into
//! [`StoreError::Unavailable`] quickly; the [`ConnectionManager`] reconnects by itself.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, RedisResult, Script};
use xet::MerkleHash;

use super::holders::{self, Record};
use super::{StoreError, StoreResult};
use crate::model::{
    apply_delta, merge_full, AnnounceOutcome, Announcement, ClaimGroup, ClaimKind, ClaimOutcome,
    HoldingsChange, LookupHits, LookupKey, PeerRecord, PeerStatus, XorbRanges,
};
use crate::ranges::RangeSet;
use rustc_hash::FxHashMap;

const LIVE: &str = "zt2:live";
const XORB_PREFIX: &str = "zt2:x:";
const HOLDINGS_PREFIX: &str = "zt2:h:";
const RECORD_PREFIX: &str = "zt2:p:";
const CLAIM_PREFIX: &str = "zt2:c:";
const CLAIM_GROUP_PREFIX: &str = "zt2:g:";
/// Most arguments in one `SADD`.
const SADD_BATCH: usize = 1000;
/// Most dead peers removed per sweep call.
const SWEEP_BATCH: isize = 1000;

/// Removes one peer's holdings, record and liveness, atomically, unless its liveness was
/// renewed past ARGV[2] meanwhile. KEYS: live zset, holdings set, record. ARGV: id, now, prefix.
const REMOVE_PEER_LUA: &str = r"
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) > tonumber(ARGV[2]) then return 0 end
local xs = redis.call('SMEMBERS', KEYS[2])
for _, x in ipairs(xs) do redis.call('HDEL', ARGV[3] .. x, ARGV[1]) end
local existed = redis.call('DEL', KEYS[3])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
if s or existed == 1 then return 1 end
return 0
";

/// Leases each KEYS[i > 2] to ARGV[1] for ARGV[2] ms unless another holder's lease is live and
/// that holder is a live peer (KEYS[1]: the liveness zset, scores are expiry times; ARGV[3]:
/// now), atomically; a lease ARGV[1] holds is renewed. With ARGV[4] > 0, KEYS[2] is the group's
/// zset of live lease keys (scored by expiry) and a new lease needs fewer than ARGV[4] of them.
/// With ARGV[5] = 1 (done), the asker's leases leave the group and last ARGV[2] ms more.
/// Returns holder, ms left, group full (0/1) for each key. Redis's clock times the leases.
const CLAIM_LUA: &str = r"
local out = {}
local now = tonumber(ARGV[3])
local max = tonumber(ARGV[4])
local exp = now + tonumber(ARGV[2])
if max > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end
for i, k in ipairs(KEYS) do
  if i > 2 and ARGV[5] == '1' then
    local cur = redis.call('GET', k)
    redis.call('ZREM', KEYS[2], k)
    if cur == ARGV[1] then
      redis.call('SET', k, ARGV[1], 'PX', ARGV[2])
      out[#out + 1] = ARGV[1]
      out[#out + 1] = tonumber(ARGV[2])
    else
      out[#out + 1] = ''
      out[#out + 1] = 0
    end
    out[#out + 1] = 0
  elseif i > 2 then
    local cur = redis.call('GET', k)
    local live = cur and redis.call('ZSCORE', KEYS[1], cur)
    local free = (not cur) or (not live) or tonumber(live) <= now
    if cur == ARGV[1] or (free and (max == 0 or redis.call('ZCARD', KEYS[2]) < max)) then
      redis.call('SET', k, ARGV[1], 'PX', ARGV[2])
      if max > 0 then
        redis.call('ZADD', KEYS[2], exp, k)
        redis.call('PEXPIRE', KEYS[2], 2 * tonumber(ARGV[2]))
      end
      out[#out + 1] = ARGV[1]
      out[#out + 1] = tonumber(ARGV[2])
      out[#out + 1] = 0
    elseif free then
      out[#out + 1] = ''
      out[#out + 1] = 0
      out[#out + 1] = 1
    else
      out[#out + 1] = cur
      out[#out + 1] = redis.call('PTTL', k)
      out[#out + 1] = 0
    end
  end
end
return out
";
fn claim_key(k: &LookupKey) -> String {
    format!("{CLAIM_PREFIX}{}:{}:{}", k.xorb.to_hex(), k.start, k.end)
}

fn xorb_key(x: &MerkleHash) -> String {
    format!("{XORB_PREFIX}{x}")
}

/// Writes `zt2:x:<xorb>` into `out` (reusing its allocation).
fn write_xorb_key(out: &mut Vec<u8>, x: &MerkleHash) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.clear();
    out.extend_from_slice(XORB_PREFIX.as_bytes());
    let raw = x.as_bytes();
    // The API hex form: each 8-byte group as a little-endian u64, most significant digit first.
    for group in raw.chunks_exact(8) {
        for &byte in group.iter().rev() {
            out.push(DIGITS[(byte >> 4) as usize]);
            out.push(DIGITS[(byte & 15) as usize]);
        }
    }
}

fn holdings_key(id: &str) -> String {
    format!("{HOLDINGS_PREFIX}{id}")
}

fn record_key(id: &str) -> String {
    format!("{RECORD_PREFIX}{id}")
}

fn record_key_bytes(id: &[u8]) -> Vec<u8> {
    [RECORD_PREFIX.as_bytes(), id].concat()
}

/// The values of an `HVALS` answer.
fn bulk_strings(v: &redis::Value) -> Option<Vec<&[u8]>> {
    use redis::Value;
    match v {
        Value::Nil => Some(Vec::new()),
        Value::Array(items) | Value::Set(items) => items
            .iter()
            .map(|i| match i {
                Value::BulkString(b) => Some(b.as_slice()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// The ranges a stored record says `id` holds of `x`; a corrupt record counts as nothing.
fn stored_ranges(id: &str, x: &MerkleHash, bytes: &[u8]) -> RangeSet {
    let decoded = Record::decode(bytes)
        .map_err(|e| e.to_string())
        .and_then(|r| {
            if r.id() != id.as_bytes() {
                return Err("the record names another peer".into());
            }
            r.to_set().map_err(|e| e.to_string())
        });
    decoded.unwrap_or_else(|e| {
        tracing::warn!(peer = id, xorb = %x, error = %e, "dropping a corrupt holder record in redis");
        RangeSet::new()
    })
}

/// A stored holder record of `id`, for writing.
fn record_value(id: &str, set: &RangeSet) -> StoreResult<Vec<u8>> {
    holders::encode_to_vec(id, set)
        .map_err(|e| StoreError::Internal(format!("encoding the holdings of {id:?}: {e}")))
}

/// Queues `HSET xorb_key(x) id <record>` on `pipe`: `id` holds `set` of `x`.
fn queue_holder_record(
    pipe: &mut redis::Pipeline,
    x: &MerkleHash,
    id: &str,
    set: &RangeSet,
) -> StoreResult<()> {
    pipe.cmd("HSET")
        .arg(xorb_key(x))
        .arg(id)
        .arg(record_value(id, set)?)
        .ignore();
    Ok(())
}

fn redis_err(what: &str, e: RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis {what}: {e}"))
}

/// Redis connection with the tracker's commands.
#[derive(Clone)]
pub struct RedisHot {
    conn: ConnectionManager,
    timeout: Duration,
    remove_script: Script,
    claim_script: Script,
    cache: Arc<PeerCache>,
}

/// How often the peer cache re-reads its entries from Redis.
pub const PEER_CACHE_REFRESH: Duration = Duration::from_millis(200);
/// Most peers the cache remembers.
const PEER_CACHE_MAX: usize = 100_000;

/// Liveness (expiry score) and record of peers that lookups met recently, re-read from Redis
/// every [`PEER_CACHE_REFRESH`]. A lookup trusts an entry only while its expiry is in the
/// future (expiry scores only grow, so a cached one is never later than the truth) and asks
/// Redis about every other candidate. Deletion removes a peer's holdings, so it never reaches
/// a lookup through the cache; a record changed through another tracker instance (address,
/// zone, load) is served stale for at most one refresh period.
#[derive(Debug, Default)]
struct PeerCache {
    entries: RwLock<FxHashMap<Vec<u8>, (f64, PeerRecord)>>,
}

impl PeerCache {
    fn put(&self, id: &[u8], score: f64, record: PeerRecord) {
        if let Ok(mut e) = self.entries.write() {
            if e.len() < PEER_CACHE_MAX || e.contains_key(id) {
                e.insert(id.to_vec(), (score, record));
            }
        }
    }

    fn forget(&self, id: &[u8]) {
        if let Ok(mut e) = self.entries.write() {
            e.remove(id);
        }
    }

    fn ids(&self) -> Vec<Vec<u8>> {
        self.entries
            .read()
            .map(|e| e.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// `ZMSCORE` scores and `MGET` records of a list of peers.
type PeerRows = (Vec<Option<f64>>, Vec<Option<Vec<u8>>>);

/// Re-reads the cached peers until the store is dropped.
async fn refresh_peer_cache(
    cache: Weak<PeerCache>,
    mut conn: ConnectionManager,
    timeout: Duration,
) {
    loop {
        tokio::time::sleep(PEER_CACHE_REFRESH).await;
        let Some(cache) = cache.upgrade() else { return };
        for ids in cache.ids().chunks(1000) {
            let keys: Vec<Vec<u8>> = ids.iter().map(|id| record_key_bytes(id)).collect();
            let read = redis::pipe()
                .cmd("ZMSCORE")
                .arg(LIVE)
                .arg(ids)
                .cmd("MGET")
                .arg(&keys)
                .to_owned();
            let answer: Result<RedisResult<PeerRows>, _> =
                tokio::time::timeout(timeout, read.query_async(&mut conn)).await;
            let Ok(Ok((scores, records))) = answer else {
                break;
            };
            for ((id, score), record) in ids.iter().zip(scores).zip(records) {
                match (
                    score,
                    record.and_then(|r| serde_json::from_slice::<PeerRecord>(&r).ok()),
                ) {
                    (Some(score), Some(record)) => cache.put(id, score, record),
                    _ => cache.forget(id),
                }
            }
        }
    }
}

impl std::fmt::Debug for RedisHot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHot")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisHot {
    /// Connects to `url`; `timeout` bounds every later command and each reconnect attempt.
    pub async fn connect(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        use anyhow::Context;
        let client = redis::Client::open(url).context("parsing REDIS_URL")?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = tokio::time::timeout(
            timeout * 4,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| anyhow::anyhow!("connecting to Redis timed out"))?
        .context("connecting to Redis (REDIS_URL)")?;
        let cache = Arc::new(PeerCache::default());
        tokio::spawn(refresh_peer_cache(
            Arc::downgrade(&cache),
            conn.clone(),
            timeout,
        ));
        Ok(RedisHot {
            conn,
            timeout,
            cache,
            remove_script: Script::new(REMOVE_PEER_LUA),
            claim_script: Script::new(CLAIM_LUA),
        })
    }

    async fn timed<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, RedisError>>,
    ) -> StoreResult<T> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(redis_err(what, e)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "redis {what}: no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    /// Runs the removal script; `now_ms = u64::MAX` removes unconditionally.
    async fn remove_if_expired(&self, id: &str, now_ms: u64) -> StoreResult<bool> {
        let mut conn = self.conn.clone();
        let mut inv = self.remove_script.prepare_invoke();
        inv.key(LIVE)
            .key(holdings_key(id))
            .key(record_key(id))
            .arg(id)
            .arg(now_ms)
            .arg(XORB_PREFIX);
        let removed: i64 = self
            .timed("remove peer", inv.invoke_async(&mut conn))
            .await?;
        if removed == 1 {
            self.cache.forget(id.as_bytes());
        }
        Ok(removed == 1)
    }

    /// Applies an announce.
    pub async fn announce(
        &self,
        a: &Announcement,
        now_ms: u64,
        ttl_ms: u64,
    ) -> StoreResult<AnnounceOutcome> {
        let id = a.peer.id.as_str();
        let hkey = holdings_key(id);
        let record = serde_json::to_string(&a.peer)
            .map_err(|e| StoreError::Internal(format!("peer record: {e}")))?;
        let expires_at_ms = now_ms.saturating_add(ttl_ms);
        let mut conn = self.conn.clone();
        let mut write = redis::pipe();
        write.atomic();
        let was_live;
        match &a.change {
            HoldingsChange::Full(list) => {
                let merged = merge_full(list)?;
                let (old, score): (Vec<String>, Option<f64>) = self
                    .timed(
                        "announce read",
                        redis::pipe()
                            .cmd("SMEMBERS")
                            .arg(&hkey)
                            .cmd("ZSCORE")
                            .arg(LIVE)
                            .arg(id)
                            .query_async(&mut conn),
                    )
                    .await?;
                was_live = score.is_some_and(|s| s > now_ms as f64);
                let new_hex: HashSet<String> = merged.keys().map(|x| x.to_hex()).collect();
                for o in old.iter().filter(|o| !new_hex.contains(*o)) {
                    write
                        .cmd("HDEL")
                        .arg(format!("{XORB_PREFIX}{o}"))
                        .arg(id)
                        .ignore();
                }
                write.cmd("DEL").arg(&hkey).ignore();
                for (x, set) in &merged {
                    queue_holder_record(&mut write, x, id, set)?;
                }
                let hexes: Vec<&String> = new_hex.iter().collect();
                for chunk in hexes.chunks(SADD_BATCH) {
                    write.cmd("SADD").arg(&hkey).arg(chunk).ignore();
                }
            }
            HoldingsChange::Delta { added, removed } => {
                let mut touched: Vec<MerkleHash> = Vec::new();
                let mut seen = HashSet::new();
                for h in removed.iter().chain(added) {
                    if seen.insert(h.xorb) {
                        touched.push(h.xorb);
                    }
                }
                let mut read = redis::pipe();
                read.cmd("ZSCORE").arg(LIVE).arg(id);
                for x in &touched {
                    read.cmd("HGET").arg(xorb_key(x)).arg(id);
                }
                let mut answers: Vec<redis::Value> = self
                    .timed("announce read", read.query_async(&mut conn))
                    .await?;
                if answers.len() != touched.len() + 1 {
                    return Err(StoreError::Internal("redis: short pipeline answer".into()));
                }
                let score: Option<f64> = redis::from_redis_value(answers.remove(0))
                    .map_err(|e| StoreError::Internal(format!("redis zscore: {e}")))?;
                was_live = score.is_some_and(|s| s > now_ms as f64);
                let mut sets = XorbRanges::with_capacity(touched.len());
                if !was_live {
                    // Forget whatever an expired, unswept peer left behind.
                    self.remove_if_expired(id, now_ms).await?;
                }
                for (x, v) in touched.iter().zip(answers) {
                    let stored: Option<Vec<u8>> = redis::from_redis_value(v)
                        .map_err(|e| StoreError::Internal(format!("redis hget: {e}")))?;
                    let set = match (was_live, stored) {
                        (true, Some(bytes)) => stored_ranges(id, x, &bytes),
                        _ => RangeSet::new(),
                    };
                    sets.insert(*x, set);
                }
                apply_delta(&mut sets, added, removed)?;
                for x in &touched {
                    let hex = x.to_hex();
                    match sets.get(x) {
                        Some(set) if !set.is_empty() => {
                            queue_holder_record(&mut write, x, id, set)?;
                            write.cmd("SADD").arg(&hkey).arg(hex).ignore();
                        }
                        _ => {
                            write.cmd("HDEL").arg(xorb_key(x)).arg(id).ignore();
                            write.cmd("SREM").arg(&hkey).arg(hex).ignore();
                        }
                    }
                }
            }
        }
        write.cmd("SET").arg(record_key(id)).arg(record).ignore();
        write
            .cmd("ZADD")
            .arg(LIVE)
            .arg(expires_at_ms)
            .arg(id)
            .ignore();
        write.cmd("SCARD").arg(&hkey);
        let (held,): (u64,) = self
            .timed("announce write", write.query_async(&mut conn))
            .await?;
        self.cache
            .put(id.as_bytes(), expires_at_ms as f64, a.peer.clone());
        Ok(AnnounceOutcome {
            held_xorbs: held,
            was_live,
        })
    }

    pub async fn remove_peer(&self, id: &str) -> StoreResult<bool> {
        self.remove_if_expired(id, u64::MAX).await
    }

    pub async fn lookup(&self, keys: &[LookupKey], now_ms: u64) -> StoreResult<LookupHits> {
        let mut conn = self.conn.clone();
        // Round trip 1: every distinct xorb's holder records (`HVALS`: one value per holder).
        let mut slot: FxHashMap<MerkleHash, usize> = FxHashMap::default();
        let mut read = redis::pipe();
        let mut key = Vec::with_capacity(XORB_PREFIX.len() + 64);
        for k in keys {
            let next = slot.len();
            slot.entry(k.xorb).or_insert_with(|| {
                write_xorb_key(&mut key, &k.xorb);
                read.cmd("HVALS").arg(&key[..]);
                next
            });
        }
        if slot.is_empty() {
            return Ok(LookupHits::default());
        }
        let holders: Vec<redis::Value> = self
            .timed("lookup holders", read.query_async(&mut conn))
            .await?;
        if holders.len() != slot.len() {
            return Err(StoreError::Internal("redis: short pipeline answer".into()));
        }
        // Work on the answer's bytes: no allocation per holder.
        let mut decoded: Vec<Vec<Record<'_>>> = Vec::with_capacity(holders.len());
        for value in &holders {
            let values = bulk_strings(value).ok_or_else(|| {
                StoreError::Internal("redis: HVALS answer is not a list of strings".into())
            })?;
            let mut v = Vec::with_capacity(values.len());
            for bytes in values {
                match Record::decode(bytes) {
                    Ok(r) => v.push(r),
                    Err(e) => {
                        tracing::warn!(error = %e, "ignoring a corrupt holder record in redis")
                    }
                }
            }
            decoded.push(v);
        }
        // Candidates by index into `ids`.
        let mut ids: Vec<&[u8]> = Vec::new();
        let mut index_of: FxHashMap<&[u8], u32> = FxHashMap::default();
        let mut candidates: Vec<Vec<u32>> = Vec::with_capacity(keys.len());
        for k in keys {
            let mut found = Vec::new();
            for r in &decoded[slot[&k.xorb]] {
                if r.covers(k.start, k.end) {
                    let id = r.id();
                    let i = *index_of.entry(id).or_insert_with(|| {
                        ids.push(id);
                        (ids.len() - 1) as u32
                    });
                    found.push(i);
                }
            }
            candidates.push(found);
        }
        if ids.is_empty() {
            return Ok(LookupHits {
                peers: Vec::new(),
                items: candidates,
            });
        }
        // Live peers the cache knows need no second round trip.
        let now = now_ms as f64;
        let mut live_index = vec![u32::MAX; ids.len()];
        let mut peers = Vec::new();
        let mut misses: Vec<usize> = Vec::new();
        if let Ok(cache) = self.cache.entries.read() {
            for (i, id) in ids.iter().enumerate() {
                match cache.get(*id) {
                    Some((score, record)) if *score > now => {
                        live_index[i] = peers.len() as u32;
                        peers.push(record.clone());
                    }
                    _ => misses.push(i),
                }
            }
        } else {
            misses.extend(0..ids.len());
        }
        if !misses.is_empty() {
            // Round trip 2: liveness and record of the other candidates.
            let miss_ids: Vec<&[u8]> = misses.iter().map(|&i| ids[i]).collect();
            let record_keys: Vec<Vec<u8>> =
                miss_ids.iter().map(|id| record_key_bytes(id)).collect();
            let (scores, records): PeerRows = self
                .timed(
                    "lookup peers",
                    redis::pipe()
                        .cmd("ZMSCORE")
                        .arg(LIVE)
                        .arg(&miss_ids)
                        .cmd("MGET")
                        .arg(&record_keys)
                        .query_async(&mut conn),
                )
                .await?;
            if scores.len() != misses.len() || records.len() != misses.len() {
                return Err(StoreError::Internal("redis: short pipeline answer".into()));
            }
            for ((&i, score), record) in misses.iter().zip(scores).zip(records) {
                let id = ids[i];
                let (Some(score), Some(record)) = (score, record) else {
                    continue;
                };
                match serde_json::from_slice::<PeerRecord>(&record) {
                    Ok(r) => {
                        self.cache.put(id, score, r.clone());
                        if score > now {
                            live_index[i] = peers.len() as u32;
                            peers.push(r);
                        }
                    }
                    Err(e) => tracing::warn!(
                        peer = %String::from_utf8_lossy(id),
                        error = %e,
                        "ignoring corrupt peer record in redis"
                    ),
                }
            }
        }
        let items = candidates
            .into_iter()
            .map(|found| {
                found
                    .into_iter()
                    .map(|i| live_index[i as usize])
                    .filter(|&i| i != u32::MAX)
                    .collect()
            })
            .collect();
        Ok(LookupHits { peers, items })
    }

    /// Leases the keys' upstream fetches (see [`crate::store::Store::claim`]), in one script
    /// call per batch of keys.
    pub async fn claim(
        &self,
        peer: &str,
        keys: &[LookupKey],
        group: Option<ClaimGroup<'_>>,
        kind: ClaimKind,
        now_ms: u64,
        ttl_ms: u64,
    ) -> StoreResult<Vec<ClaimOutcome>> {
        let mut out = Vec::with_capacity(keys.len());
        let (gkey, max) = match group {
            Some(g) => (format!("{CLAIM_GROUP_PREFIX}{}", g.name), g.max_leases),
            None => (format!("{CLAIM_GROUP_PREFIX}-"), 0),
        };
        for batch in keys.chunks(SADD_BATCH) {
            let mut conn = self.conn.clone();
            let mut inv = self.claim_script.prepare_invoke();
            inv.key(LIVE).key(&gkey);
            for k in batch {
                inv.key(claim_key(k));
            }
            inv.arg(peer)
                .arg(ttl_ms.max(1))
                .arg(now_ms)
                .arg(max)
                .arg(u8::from(kind == ClaimKind::Done));
            let v: Vec<redis::Value> = self.timed("claim", inv.invoke_async(&mut conn)).await?;
            if v.len() != 3 * batch.len() {
                return Err(StoreError::Internal(format!(
                    "redis claim: {} values for {} keys",
                    v.len(),
                    batch.len()
                )));
            }
            for pair in v.chunks(3) {
                let holder = match &pair[0] {
                    redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    redis::Value::SimpleString(s) => s.clone(),
                    other => {
                        return Err(StoreError::Internal(format!(
                            "redis claim: holder {other:?}"
                        )))
                    }
                };
                let left = match &pair[1] {
                    redis::Value::Int(n) => (*n).max(0) as u64,
                    _ => 0,
                };
                out.push(ClaimOutcome {
                    holder,
                    expires_in_ms: left,
                    group_full: matches!(pair[2], redis::Value::Int(1)),
                });
            }
        }
        Ok(out)
    }

    pub async fn live_peers(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<PeerStatus>> {
        let mut conn = self.conn.clone();
        let live: Vec<(String, f64)> = self
            .timed(
                "list peers",
                redis::cmd("ZRANGEBYSCORE")
                    .arg(LIVE)
                    .arg(format!("({now_ms}"))
                    .arg("+inf")
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit)
                    .query_async(&mut conn),
            )
            .await?;
        if live.is_empty() {
            return Ok(Vec::new());
        }
        let mut read = redis::pipe();
        for (id, _) in &live {
            read.cmd("GET")
                .arg(record_key(id))
                .cmd("SCARD")
                .arg(holdings_key(id));
        }
        let answers: Vec<(Option<String>, u64)> = self
            .timed("list peers", read.query_async(&mut conn))
            .await?;
        let mut out = Vec::with_capacity(live.len());
        for ((id, score), (record, held)) in live.into_iter().zip(answers) {
            let Some(record) = record else { continue };
            match serde_json::from_str::<PeerRecord>(&record) {
                Ok(record) => out.push(PeerStatus {
                    record,
                    expires_at_ms: score as u64,
                    held_xorbs: held,
                }),
                Err(e) => {
                    tracing::warn!(peer = %id, error = %e, "ignoring corrupt peer record in redis")
                }
            }
        }
        out.sort_by(|a, b| a.record.id.cmp(&b.record.id));
        Ok(out)
    }

    pub async fn sweep(&self, now_ms: u64) -> StoreResult<u64> {
        let mut conn = self.conn.clone();
        let dead: Vec<String> = self
            .timed(
                "sweep",
                redis::cmd("ZRANGEBYSCORE")
                    .arg(LIVE)
                    .arg("-inf")
                    .arg(now_ms)
                    .arg("LIMIT")
                    .arg(0)
                    .arg(SWEEP_BATCH)
                    .query_async(&mut conn),
            )
            .await?;
        let mut n = 0;
        for id in dead {
            if self.remove_if_expired(&id, now_ms).await? {
                n += 1;
            }
        }
        Ok(n)
    }

    pub async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.conn.clone();
        let _: String = self
            .timed("ping", redis::cmd("PING").query_async(&mut conn))
            .await?;
        Ok(())
    }
}
