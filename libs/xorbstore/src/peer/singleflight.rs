//! Fetch-once for store misses: concurrent requests for the same (xorb, chunk range) that the
//! store does not hold share one upstream fetch, whose bytes are verified and stored before any
//! of them is answered. Used by the peer server for Requests carrying an upstream URL, and by the
//! edge's HTTP cache-proxy for xorb range requests, so both paths coalesce with each other.

use std::collections::HashMap;
use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::OnceCell;
use xet::MerkleHash;

use crate::{Expectation, RangeView, Store, StoreError};

/// Why a fetch through [`SingleFlight`] failed. Cloneable: every coalesced caller gets it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The upstream fetch failed (network, status, length).
    #[error("upstream fetch failed: {0}")]
    Upstream(String),
    /// The fetched bytes failed verification; nothing was stored.
    #[error("upstream bytes failed verification: {0}")]
    Verification(String),
    /// The store could not keep the bytes (disk, quota).
    #[error("store: {0}")]
    Store(String),
}

/// Where [`SingleFlight::get_or_fetch`]'s answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchSource {
    /// The store already held it.
    Store,
    /// This call fetched it upstream.
    Fetched,
    /// Another call's fetch, which this one waited for.
    Coalesced,
}

/// Counters of a [`SingleFlight`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SingleFlightStats {
    /// Upstream fetches started.
    pub fetches: u64,
    /// Calls that waited for another call's fetch instead of fetching.
    pub coalesced: u64,
    /// Fetches that failed (upstream, verification or store).
    pub failures: u64,
    /// Bytes received from upstream.
    pub bytes_fetched: u64,
}

type Key = (MerkleHash, u32, u32);
type Cell = Arc<OnceCell<Result<RangeView, FetchError>>>;

/// Coalesces concurrent fetches of the same missing range. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SingleFlight {
    store: Store,
    inflight: Arc<Mutex<HashMap<Key, Cell>>>,
    fetches: Arc<AtomicU64>,
    coalesced: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    bytes_fetched: Arc<AtomicU64>,
}

impl SingleFlight {
    /// A coalescer storing into `store`.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            inflight: Arc::default(),
            fetches: Arc::default(),
            coalesced: Arc::default(),
            failures: Arc::default(),
            bytes_fetched: Arc::default(),
        }
    }

    /// The store behind it.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Chunks `range` of `xorb` from the store (when its chunk hashes agree with `expected`'s),
    /// or else from `fetch` (called at most once across
    /// concurrent callers for the same key): its bytes are verified against `expected`, stored,
    /// and served from the store. `fetch` must bound what it reads (at most the requested byte
    /// range, and never more than [`crate::MAX_RANGE_BYTES`]).
    pub async fn get_or_fetch<F, Fut>(
        &self,
        xorb: MerkleHash,
        range: Range<u32>,
        expected: Expectation,
        fetch: F,
    ) -> Result<(RangeView, FetchSource), FetchError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, String>>,
    {
        if let Some(v) = self.store_hit(&xorb, &range, &expected).await {
            return Ok((v, FetchSource::Store));
        }
        let key = (xorb, range.start, range.end);
        let cell: Cell = {
            let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key).or_default().clone()
        };
        let ran = AtomicBool::new(false);
        let result = cell
            .get_or_init(|| async {
                ran.store(true, Ordering::Relaxed);
                self.fetches.fetch_add(1, Ordering::Relaxed);
                // Another caller may have stored it between our miss and now.
                if let Some(v) = self.store_hit(&xorb, &range, &expected).await {
                    return Ok(v);
                }
                let bytes = fetch().await.map_err(FetchError::Upstream)?;
                self.bytes_fetched
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                let store = self.store.clone();
                let r = range.clone();
                let inserted =
                    tokio::task::spawn_blocking(move || store.insert(&xorb, r, &bytes, &expected))
                        .await
                        .map_err(|e| FetchError::Store(format!("insert task failed: {e}")))?;
                match inserted {
                    Ok(_) => {}
                    Err(StoreError::Verify(e)) => {
                        return Err(FetchError::Verification(e.to_string()))
                    }
                    Err(e) => return Err(FetchError::Store(e.to_string())),
                }
                self.store
                    .get_async(&xorb, range.clone())
                    .await
                    .ok_or_else(|| {
                        FetchError::Store("range evicted right after it was stored".into())
                    })
            })
            .await
            .clone();
        let ran = ran.load(Ordering::Relaxed);
        if ran {
            let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            if map.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                map.remove(&key);
            }
            if result.is_err() {
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            self.coalesced.fetch_add(1, Ordering::Relaxed);
        }
        result.map(|v| {
            (
                v,
                if ran {
                    FetchSource::Fetched
                } else {
                    FetchSource::Coalesced
                },
            )
        })
    }

    /// A stored view of the range that agrees with the expected chunk hashes, if any (stored
    /// bytes that disagree are treated as a miss, so proven bytes replace them).
    async fn store_hit(
        &self,
        xorb: &MerkleHash,
        range: &Range<u32>,
        expected: &Expectation,
    ) -> Option<RangeView> {
        let v = self.store.get_async(xorb, range.clone()).await?;
        match &expected.chunk_hashes {
            Some(h) if v.chunk_hashes() != h.as_slice() => None,
            _ => Some(v),
        }
    }

    /// Current counters.
    pub fn stats(&self) -> SingleFlightStats {
        SingleFlightStats {
            fetches: self.fetches.load(Ordering::Relaxed),
            coalesced: self.coalesced.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            bytes_fetched: self.bytes_fetched.load(Ordering::Relaxed),
        }
    }
}
