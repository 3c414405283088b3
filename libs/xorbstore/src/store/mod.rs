//! The store: verified xorb chunk ranges on local disk, keyed by (xorb hash, chunk range), with an
//! in-memory index rebuilt from the files at open, a byte quota with least-recently-used eviction,
//! pins that exempt ranges from eviction, and zero-copy reads through memory maps.
//!
//! Layout: `<root>/xorbs-v1/<xorb hex>.<start>-<end>.<token>.xr` (inline) or `.xrb` (blob
//! reference), one file per stored range (see [`crate::format`]), plus `pins.json`. The token
//! makes every file name unique, so concurrent writers (threads or processes) never clobber each
//! other and an eviction never deletes a file written after it. Temporary files end in
//! `.partial` and are deleted at open.
//!
//! The parts: `index` (pure: LRU by bytes, pins, eviction and lookup decisions), `backing`
//! (inline range files served from a memory map; blob references whose chunks are read from a
//! cache blob), `load` (the folder scan at open and rescan, the pins file), `write` (inserts,
//! level upgrades, removal), `read` (lookups) and `view` ([`RangeView`]).
//!
//! **Blocking.** Every method without `_async` is blocking and belongs on a thread that may
//! block (file I/O, hashing): inserts and removals write files, and a lookup that hits a blob
//! reference reads up to [`crate::MAX_RANGE_BYTES`] from the blob. Async callers use
//! [`Store::insert_async`], [`Store::get_async`] and [`Store::get_cover_async`], which run the
//! blocking part on tokio's blocking pool (a lookup of mapped inline ranges only takes a short
//! lock and stays on the caller's thread), or `spawn_blocking` themselves. Only
//! [`Store::contains`], [`Store::covering_level`], [`Store::holdings`], [`Store::list`],
//! [`Store::pin_labels`], [`Store::pins`] and [`Store::stats`] never touch a file and are fine
//! from async code. A store that never holds blob references (the edge never inserts one) does
//! no file reads in [`Store::get`] either, but async code should not rely on that.
//!
//! Several processes may share one folder (`zest seed` serving while `zest pull` writes): file
//! names never collide, temp files of live writers are kept at open, and [`Store::rescan`] picks
//! up the other process's files. Each process enforces the quota on what it knows.

mod backing;
mod index;
mod load;
mod read;
mod view;
mod write;

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use xet::MerkleHash;

use crate::error::StoreError;
use crate::verify::VerificationLevel;
use backing::Stored;
use index::Index;
pub use index::Pins;
pub use view::RangeView;

/// Name of the store's folder under the root; the version changes with the file format.
pub const STORE_DIR: &str = "xorbs-v1";

/// Store settings.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Most bytes the store's range files may use on disk (headers included).
    pub quota_bytes: u64,
    /// When writes reach the disk.
    pub durability: Durability,
}

impl StoreConfig {
    /// A store of at most `quota_bytes` with [`Durability::Sync`].
    pub fn new(quota_bytes: u64) -> Self {
        Self {
            quota_bytes,
            durability: Durability::Sync,
        }
    }
}

/// When the store's writes reach the disk.
///
/// Either way a range file becomes visible complete or not at all (it is written under a
/// temporary name and renamed), and a process killed at any point leaves only complete files.
/// The difference is a power loss or kernel crash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Every range file is fsynced before it is renamed into place, and every rename, removal
    /// and level upgrade is fsynced too: after a power loss the store holds exactly what it
    /// acknowledged. For a cache that others depend on (the edge).
    #[default]
    Sync,
    /// Nothing is fsynced; the kernel writes back in its own time. After a power loss, ranges
    /// written in the last seconds may be missing, or (on file systems that do not order data
    /// before metadata) hold the wrong bytes. [`Store::open`] drops files whose length, header
    /// checksum or chunk headers are wrong, and every reader verifies chunk hashes on its own
    /// (a pull by the file hash, a peer by the chunk hashes it expects), so wrong bytes are
    /// caught there and the range dropped. For a client's own copy of what it just pulled,
    /// where fsyncing every range would double the cost of the pull's disk writes.
    Deferred,
}

/// Counters the services export as metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Lookups that found the range.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
    /// Ranges written.
    pub inserts: u64,
    /// Bytes written (range files, headers included).
    pub bytes_inserted: u64,
    /// Inserts refused because verification failed.
    pub rejected: u64,
    /// Ranges evicted to stay under the quota.
    pub evictions: u64,
    /// Bytes evicted.
    pub bytes_evicted: u64,
    /// Bytes used on disk now by visible ranges.
    pub disk_bytes: u64,
    /// Ranges held now.
    pub ranges: u64,
    /// The quota.
    pub quota_bytes: u64,
}

/// What [`Store::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertOutcome {
    /// The range was verified and written.
    Stored { level: VerificationLevel },
    /// A stored range already covered it (its level may have been raised); nothing was written.
    AlreadyHeld { level: VerificationLevel },
}

/// One stored range, as listed by [`Store::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    pub xorb: MerkleHash,
    pub range: Range<u32>,
    pub level: VerificationLevel,
    /// Bytes on disk (header included).
    pub file_bytes: u64,
    /// Bytes of chunk records.
    pub data_bytes: u64,
    pub pinned: bool,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    inserts: AtomicU64,
    bytes_inserted: AtomicU64,
    rejected: AtomicU64,
    evictions: AtomicU64,
    bytes_evicted: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    /// The byte quota: as configured, or lower once the disk turned out to hold less.
    quota: AtomicU64,
    durability: Durability,
    index: Mutex<Index<Arc<Stored>>>,
    counters: Counters,
}

/// The verified xorb range store. Cheap to clone (an `Arc` inside); thread-safe.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// Opens (or creates) the store under `root` (the files live in `root/xorbs-v1`). Deletes
    /// leftover temporary files, loads every complete and structurally valid range file (deleting
    /// invalid ones), loads the pins, and evicts down to the quota if it shrank. Blocking.
    pub fn open(root: impl AsRef<Path>, config: StoreConfig) -> Result<Store, StoreError> {
        let dir = root.as_ref().join(STORE_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io("create", &dir, e))?;
        let mut index = load::load_dir(&dir)?;
        match load::load_pins(&dir.join(load::PINS_FILE)) {
            Ok(pins) => index.set_pins(pins),
            Err(reason) => tracing::warn!(%reason, "ignoring unreadable pins file"),
        }
        let store = Store {
            inner: Arc::new(Inner {
                dir,
                quota: AtomicU64::new(config.quota_bytes),
                durability: config.durability,
                index: Mutex::new(index),
                counters: Counters::default(),
            }),
        };
        let victims = {
            let mut ix = store.lock();
            match ix.make_room(0, store.quota()) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "pinned ranges alone exceed the quota");
                    Vec::new()
                }
            }
        };
        store.delete_evicted(victims);
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, Index<Arc<Stored>>> {
        self.inner
            .index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Picks up changes made by another process sharing the folder (e.g. `zest pull` writing
    /// while `zest seed` serves): loads range files this store does not know, forgets ranges
    /// whose files were deleted, then evicts down to the quota. Returns (added, removed).
    /// Blocking.
    pub fn rescan(&self) -> Result<(usize, usize), StoreError> {
        let dir = &self.inner.dir;
        let known: HashSet<PathBuf> = {
            let ix = self.lock();
            ix.entries().map(|(_, s)| s.path.clone()).collect()
        };
        let found = load::rescan_dir(dir, &known)?;
        let pins = load::load_pins(&dir.join(load::PINS_FILE)).ok();
        let mut ix = self.lock();
        let gone: Vec<u64> = ix
            .entries()
            .filter(|(_, s)| !found.on_disk.contains(&s.path))
            .map(|(id, _)| id)
            .collect();
        let removed = ix.remove_all(gone).len();
        let added = found.fresh.len();
        for stored in found.fresh {
            ix.add(Arc::new(stored));
        }
        if let Some(p) = pins {
            ix.set_pins(p);
        }
        let victims = ix.make_room(0, self.quota()).unwrap_or_default();
        drop(ix);
        self.delete_evicted(victims);
        Ok((added, removed))
    }

    /// The folder holding the range files.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Every xorb held with its chunk ranges, overlapping and adjacent ranges merged, sorted: what
    /// to announce to the tracker.
    pub fn holdings(&self) -> Vec<(MerkleHash, Vec<Range<u32>>)> {
        self.lock().holdings()
    }

    /// Every stored range, least recently used first.
    pub fn list(&self) -> Vec<EntryInfo> {
        let ix = self.lock();
        ix.lru_order()
            .map(|s| EntryInfo {
                xorb: s.xorb,
                range: s.range.clone(),
                level: s.level(),
                file_bytes: s.file_len,
                data_bytes: s.data_len as u64,
                pinned: ix.is_pinned(s),
            })
            .collect()
    }

    /// Pins chunk ranges under `label` (e.g. `org/model@<commit>`): stored ranges overlapping them
    /// are never evicted until the label is unpinned. Ranges may be pinned before they are
    /// stored. Persistent (written atomically to `pins.json`). Blocking.
    pub fn pin(&self, label: &str, ranges: &[(MerkleHash, Range<u32>)]) -> Result<(), StoreError> {
        let mut ix = self.lock();
        ix.pin(label, ranges);
        load::save_pins(&self.inner.dir, ix.pins())
    }

    /// Removes a pin label; returns whether it existed. Blocking.
    pub fn unpin(&self, label: &str) -> Result<bool, StoreError> {
        let mut ix = self.lock();
        let existed = ix.unpin(label);
        if existed {
            load::save_pins(&self.inner.dir, ix.pins())?;
        }
        Ok(existed)
    }

    /// The pin labels.
    pub fn pin_labels(&self) -> Vec<String> {
        self.lock().pins().keys().cloned().collect()
    }

    /// Every pin label with the chunk ranges it pins (a set: no range twice), by label.
    pub fn pins(&self) -> Pins {
        self.lock().pins().clone()
    }

    /// Current counters.
    /// The byte quota in force (the configured one, or lower once the disk filled up first).
    pub fn quota(&self) -> u64 {
        self.inner.quota.load(Ordering::Relaxed)
    }

    /// Lowers the quota to `bytes` (never raises it); returns the quota before.
    pub(crate) fn lower_quota(&self, bytes: u64) -> u64 {
        self.inner.quota.fetch_min(bytes, Ordering::Relaxed)
    }

    pub fn stats(&self) -> StoreStats {
        let (disk_bytes, ranges) = {
            let ix = self.lock();
            (ix.used(), ix.len() as u64)
        };
        let c = &self.inner.counters;
        StoreStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            inserts: c.inserts.load(Ordering::Relaxed),
            bytes_inserted: c.bytes_inserted.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
            bytes_evicted: c.bytes_evicted.load(Ordering::Relaxed),
            disk_bytes,
            ranges,
            quota_bytes: self.quota(),
        }
    }

    /// Deletes the files of ranges the index evicted, and counts them.
    fn delete_evicted(&self, victims: Vec<Arc<Stored>>) {
        let c = &self.inner.counters;
        for v in victims {
            c.evictions.fetch_add(1, Ordering::Relaxed);
            c.bytes_evicted.fetch_add(v.file_len, Ordering::Relaxed);
            tracing::debug!(xorb = %v.xorb, range = ?v.range, "evicting");
            remove_quietly(&v.path);
        }
    }
}

/// Deletes a file, logging any failure but "already gone".
fn remove_quietly(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "could not delete file");
        }
    }
}
