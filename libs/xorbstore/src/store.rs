//! The store: verified xorb chunk ranges on local disk, keyed by (xorb hash, chunk range), with an
//! in-memory index rebuilt from the files at open, a byte quota with least-recently-used eviction,
//! pins that exempt ranges from eviction, and zero-copy reads through memory maps.
//!
//! Layout: `<root>/xorbs-v1/<xorb hex>.<start>-<end>.<token>.xr`, one file per stored range (see
//! [`crate::format`]), plus `pins.json`. The token makes every file name unique, so concurrent
//! writers (threads or processes) never clobber each other and an eviction never deletes a file
//! written after it. Temporary files end in `.partial` and are deleted at open.
//!
//! All methods are blocking (file I/O, hashing); async callers run them in
//! `tokio::task::spawn_blocking` ([`Store::insert_async`] does that for inserts). [`Store::get`]
//! only takes a short lock and clones an `Arc`, so it is fine to call from async code directly.
//!
//! Several processes may share one folder (`zest seed` serving while `zest pull` writes): file
//! names never collide, temp files of live writers are kept at open, and [`Store::rescan`] picks
//! up the other process's files. Each process enforces the quota on what it knows.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::ops::{Deref, Range};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use xet::MerkleHash;

use crate::error::{StoreError, VerifyError};
use crate::format::{self, FileHeader};
use crate::fsutil::{self, TEMP_SUFFIX};
use crate::mmap::MappedFile;
use crate::verify::{
    check_range, verify_range, Expectation, RangeMeta, VerificationLevel, MAX_RANGE_CHUNKS,
};

/// Name of the store's folder under the root; the version changes with the file format.
pub const STORE_DIR: &str = "xorbs-v1";
const RANGE_SUFFIX: &str = ".xr";
/// Suffix of a blob reference file (see [`crate::format`]).
const REF_SUFFIX: &str = ".xrb";

fn is_range_file(name: &str) -> bool {
    name.ends_with(RANGE_SUFFIX) || name.ends_with(REF_SUFFIX)
}
const PINS_FILE: &str = "pins.json";
/// A file's modification time is refreshed on access at most this often (it orders LRU after a
/// restart).
const ACCESS_PERSIST_INTERVAL: Duration = Duration::from_secs(60);

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

/// What a range file holds.
#[derive(Clone, Copy, Debug)]
enum Body<'a> {
    /// The chunk records.
    Inline(&'a [u8]),
    /// A reference to the decoded chunks in a blob.
    Blob(&'a format::BlobRef),
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

/// Where a stored range's chunk records are.
#[derive(Debug)]
enum Backing {
    /// In the range file, after its header, mapped.
    Inline { map: MappedFile, data_offset: usize },
    /// Decoded, in another file (a verified cache blob): records are built when read. `file` is
    /// the reference file itself (for the level byte and the access time).
    Blob {
        file: std::fs::File,
        blob: format::BlobRef,
    },
}

/// A stored range. Immutable except for the level.
#[derive(Debug)]
struct Stored {
    xorb: MerkleHash,
    range: Range<u32>,
    backing: Backing,
    /// Bytes of chunk records (for a blob reference: as built, uncompressed).
    data_len: usize,
    meta: RangeMeta,
    level: AtomicU8,
    file_len: u64,
    path: PathBuf,
}

impl Stored {
    /// The chunk records of an inline range (`None` for a blob reference).
    fn inline_data(&self) -> Option<&[u8]> {
        match &self.backing {
            Backing::Inline { map, data_offset } => {
                Some(&map.bytes()[*data_offset..*data_offset + self.data_len])
            }
            Backing::Blob { .. } => None,
        }
    }

    /// The range file.
    fn file(&self) -> &std::fs::File {
        match &self.backing {
            Backing::Inline { map, .. } => map.file(),
            Backing::Blob { file, .. } => file,
        }
    }

    /// Builds the uncompressed chunk records of chunks `r` of a blob reference from the blob
    /// (read, not mapped: the blob is not the store's own file and may shrink under us).
    /// Returns the byte offset of the first record within the range's records, and the records.
    fn build_records(&self, blob: &format::BlobRef, r: &Range<u32>) -> std::io::Result<Vec<u8>> {
        let (start, end) = self.byte_bounds(r);
        let s = (r.start - self.range.start) as usize;
        let e = (r.end - self.range.start) as usize;
        let raw = &self.meta.raw_ends;
        let first = if s == 0 { 0 } else { raw[s - 1] };
        let last = raw[e - 1];
        let f = std::fs::File::open(&blob.path)?;
        if f.metadata()?.len() < blob.offset + u64::from(last) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the referenced blob is shorter than its chunks",
            ));
        }
        let mut out = vec![0u8; end - start];
        let mut pos = 0usize;
        let mut prev = first;
        for &chunk_end in &raw[s..e] {
            let len = chunk_end - prev;
            let header =
                xet::chunk::ChunkHeader::new(xet::chunk::CompressionScheme::None, len, len);
            out[pos..pos + xet::chunk::ChunkHeader::SIZE].copy_from_slice(&header.encode());
            pos += xet::chunk::ChunkHeader::SIZE;
            f.read_exact_at(
                &mut out[pos..pos + len as usize],
                blob.offset + u64::from(prev),
            )?;
            pos += len as usize;
            prev = chunk_end;
        }
        Ok(out)
    }

    fn level(&self) -> VerificationLevel {
        VerificationLevel::from_u8(self.level.load(Ordering::Relaxed))
            .unwrap_or(VerificationLevel::Structural)
    }

    fn covers(&self, r: &Range<u32>) -> bool {
        self.range.start <= r.start && r.end <= self.range.end
    }

    /// Byte bounds of chunks `r` (absolute indices, inside `self.range`) within the data.
    fn byte_bounds(&self, r: &Range<u32>) -> (usize, usize) {
        let s = (r.start - self.range.start) as usize;
        let e = (r.end - self.range.start) as usize;
        let start = if s == 0 {
            0
        } else {
            self.meta.record_ends[s - 1] as usize
        };
        (start, self.meta.record_ends[e - 1] as usize)
    }

    fn hashes(&self, r: &Range<u32>) -> &[MerkleHash] {
        let s = (r.start - self.range.start) as usize;
        let e = (r.end - self.range.start) as usize;
        &self.meta.chunk_hashes[s..e]
    }
}

/// A view of chunks `range()` of a xorb: zero-copy from the store's memory map for an inline
/// range, or the records built from the blob for a blob reference. Derefs to the chunk records'
/// bytes. Holding a view keeps its file mapped even if it is evicted.
#[derive(Clone)]
pub struct RangeView {
    stored: Arc<Stored>,
    range: Range<u32>,
    start: usize,
    end: usize,
    /// Records built from a blob, and the offset of their first byte in the range's records.
    built: Option<(Arc<Vec<u8>>, usize)>,
}

impl std::fmt::Debug for RangeView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeView")
            .field("xorb", &self.stored.xorb)
            .field("range", &self.range)
            .field("len", &(self.end - self.start))
            .finish()
    }
}

impl RangeView {
    /// A view of chunks `range` (inside `stored.range`). Reads the blob of a blob reference.
    fn open(stored: Arc<Stored>, range: Range<u32>) -> std::io::Result<Self> {
        let (start, end) = stored.byte_bounds(&range);
        let built = match &stored.backing {
            Backing::Inline { .. } => None,
            Backing::Blob { blob, .. } => {
                Some((Arc::new(stored.build_records(blob, &range)?), start))
            }
        };
        Ok(Self {
            stored,
            range,
            start,
            end,
            built,
        })
    }

    /// True when the view's bytes are built from a blob rather than mapped from a range file.
    pub fn is_blob_reference(&self) -> bool {
        self.built.is_some()
    }

    /// The xorb this range belongs to.
    pub fn xorb(&self) -> MerkleHash {
        self.stored.xorb
    }

    /// The chunk range `[start, end)` this view covers.
    pub fn range(&self) -> Range<u32> {
        self.range.clone()
    }

    /// The verification level of the stored range this view comes from.
    pub fn level(&self) -> VerificationLevel {
        self.stored.level()
    }

    /// The chunk hashes of the view's chunks (computed when the range was verified).
    pub fn chunk_hashes(&self) -> &[MerkleHash] {
        self.stored.hashes(&self.range)
    }

    /// For each chunk: the end offset of its record within this view's bytes.
    pub fn record_ends(&self) -> Vec<u32> {
        let s = (self.range.start - self.stored.range.start) as usize;
        let e = (self.range.end - self.stored.range.start) as usize;
        let base = self.start as u32;
        self.stored.meta.record_ends[s..e]
            .iter()
            .map(|x| x - base)
            .collect()
    }

    /// For each chunk: its uncompressed length.
    pub fn uncompressed_lens(&self) -> Vec<u32> {
        let s = (self.range.start - self.stored.range.start) as usize;
        let e = (self.range.end - self.stored.range.start) as usize;
        let raw = &self.stored.meta.raw_ends;
        (s..e)
            .map(|i| raw[i] - if i == 0 { 0 } else { raw[i - 1] })
            .collect()
    }

    /// Total uncompressed length of the view's chunks.
    pub fn uncompressed_len(&self) -> u64 {
        self.uncompressed_lens().iter().map(|&x| u64::from(x)).sum()
    }

    /// A narrower view (absolute chunk indices), or `None` when `sub` is not inside this view.
    pub fn slice(&self, sub: Range<u32>) -> Option<RangeView> {
        if sub.start >= sub.end || sub.start < self.range.start || sub.end > self.range.end {
            return None;
        }
        let (start, end) = self.stored.byte_bounds(&sub);
        Some(RangeView {
            stored: self.stored.clone(),
            range: sub,
            start,
            end,
            built: self.built.clone(),
        })
    }

    /// Decodes the view's chunks, appending the uncompressed bytes to `out`.
    pub fn decode(&self, out: &mut Vec<u8>) -> Result<(), StoreError> {
        xet::chunk::decode_records(self, out)
            .map(|_| ())
            .map_err(|e| StoreError::Corrupt {
                path: self.stored.path.clone(),
                reason: e.to_string(),
            })
    }

    /// The open file holding the view's bytes, the offset of the first of them in it and their
    /// length: what `sendfile(2)` needs to send them without copying through user space. The
    /// file stays open (and its bytes unchanged, see `mmap.rs`) for as long as the view lives,
    /// even if the range is evicted meanwhile. `None` for a blob reference, whose records are
    /// built in memory (no file holds them).
    pub fn file_segment(&self) -> Option<(&File, u64, usize)> {
        match &self.stored.backing {
            Backing::Inline { map, data_offset } => Some((
                map.file(),
                (data_offset + self.start) as u64,
                self.end - self.start,
            )),
            Backing::Blob { .. } => None,
        }
    }

    /// The bytes as a [`Bytes`] that keeps the map alive (zero-copy; slicing it is free).
    pub fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl Deref for RangeView {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.built {
            Some((records, base)) => &records[self.start - base..self.end - base],
            None => self
                .stored
                .inline_data()
                .map_or(&[][..], |d| &d[self.start..self.end]),
        }
    }
}

impl AsRef<[u8]> for RangeView {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

#[derive(Debug)]
struct Slot {
    stored: Arc<Stored>,
    tick: u64,
    /// When the file's mtime was last refreshed (`None`: not since it was loaded or written).
    persisted: Option<Instant>,
}

/// Pin label → the chunk ranges it pins.
type Pins = BTreeMap<String, Vec<(MerkleHash, Range<u32>)>>;

#[derive(Debug, Default)]
struct Index {
    slots: HashMap<u64, Slot>,
    by_xorb: HashMap<MerkleHash, Vec<u64>>,
    lru: BTreeMap<u64, u64>,
    next_tick: u64,
    next_id: u64,
    used: u64,
    in_flight: u64,
    pins: Pins,
    pinned: HashMap<MerkleHash, Vec<Range<u32>>>,
}

impl Index {
    fn add(&mut self, stored: Arc<Stored>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let tick = self.next_tick;
        self.next_tick += 1;
        self.used += stored.file_len;
        self.by_xorb.entry(stored.xorb).or_default().push(id);
        self.lru.insert(tick, id);
        self.slots.insert(
            id,
            Slot {
                stored,
                tick,
                persisted: None,
            },
        );
        id
    }

    fn remove(&mut self, id: u64) -> Option<Arc<Stored>> {
        let slot = self.slots.remove(&id)?;
        self.lru.remove(&slot.tick);
        self.used -= slot.stored.file_len;
        if let Some(ids) = self.by_xorb.get_mut(&slot.stored.xorb) {
            ids.retain(|&x| x != id);
            if ids.is_empty() {
                self.by_xorb.remove(&slot.stored.xorb);
            }
        }
        Some(slot.stored)
    }

    /// Marks `id` most recently used; returns true when its file's mtime should be refreshed.
    fn touch(&mut self, id: u64) -> Option<Arc<Stored>> {
        let tick = self.next_tick;
        self.next_tick += 1;
        let slot = self.slots.get_mut(&id)?;
        self.lru.remove(&slot.tick);
        slot.tick = tick;
        self.lru.insert(tick, id);
        if slot
            .persisted
            .is_none_or(|t| t.elapsed() >= ACCESS_PERSIST_INTERVAL)
        {
            slot.persisted = Some(Instant::now());
            return Some(slot.stored.clone());
        }
        None
    }

    fn ids_of(&self, xorb: &MerkleHash) -> &[u64] {
        self.by_xorb.get(xorb).map_or(&[], |v| v.as_slice())
    }

    /// The best stored range covering `r`: highest level, then smallest.
    fn find_covering(&self, xorb: &MerkleHash, r: &Range<u32>) -> Option<u64> {
        self.ids_of(xorb)
            .iter()
            .filter_map(|id| self.slots.get(id).map(|s| (*id, &s.stored)))
            .filter(|(_, s)| s.covers(r))
            .max_by_key(|(_, s)| (s.level(), std::cmp::Reverse(s.range.end - s.range.start)))
            .map(|(id, _)| id)
    }

    fn is_pinned(&self, s: &Stored) -> bool {
        self.pinned.get(&s.xorb).is_some_and(|rs| {
            rs.iter()
                .any(|p| p.start < s.range.end && s.range.start < p.end)
        })
    }

    fn rebuild_pinned(&mut self) {
        self.pinned.clear();
        for ranges in self.pins.values() {
            for (x, r) in ranges {
                self.pinned.entry(*x).or_default().push(r.clone());
            }
        }
    }

    /// Evicts least recently used unpinned ranges until `needed` more bytes fit under `quota`.
    /// Either frees enough or evicts nothing and returns the error.
    fn make_room(&mut self, needed: u64, quota: u64) -> Result<Vec<Arc<Stored>>, StoreError> {
        let over = |used: u64, in_flight: u64| (used + in_flight + needed).saturating_sub(quota);
        let mut to_free = over(self.used, self.in_flight);
        if to_free == 0 {
            return Ok(Vec::new());
        }
        let mut victims = Vec::new();
        for (_, &id) in self.lru.iter() {
            if to_free == 0 {
                break;
            }
            let Some(slot) = self.slots.get(&id) else {
                continue;
            };
            if self.is_pinned(&slot.stored) {
                continue;
            }
            to_free = to_free.saturating_sub(slot.stored.file_len);
            victims.push(id);
        }
        if to_free > 0 {
            let pinned = self
                .slots
                .values()
                .filter(|s| self.is_pinned(&s.stored))
                .map(|s| s.stored.file_len)
                .sum();
            return Err(StoreError::QuotaExceeded {
                needed,
                quota,
                pinned,
                in_flight: self.in_flight,
            });
        }
        Ok(victims
            .into_iter()
            .filter_map(|id| self.remove(id))
            .collect())
    }
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
    quota: u64,
    durability: Durability,
    index: Mutex<Index>,
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
    /// invalid ones), loads the pins, and evicts down to the quota if it shrank.
    pub fn open(root: impl AsRef<Path>, config: StoreConfig) -> Result<Store, StoreError> {
        let dir = root.as_ref().join(STORE_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io("create", &dir, e))?;
        let mut loaded: Vec<(SystemTime, Stored)> = Vec::new();
        let rd = std::fs::read_dir(&dir).map_err(|e| StoreError::io("read folder", &dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| StoreError::io("read folder", &dir, e))?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(TEMP_SUFFIX) {
                if fsutil::is_stale_temp(&path) {
                    tracing::info!(path = %path.display(), "deleting leftover temporary file");
                    remove_quietly(&path);
                }
            } else if is_range_file(name) {
                match load_file(&path) {
                    Ok(x) => loaded.push(x),
                    Err(reason) => {
                        tracing::warn!(path = %path.display(), %reason, "deleting invalid range file");
                        remove_quietly(&path);
                    }
                }
            }
        }
        // Oldest access first, so the LRU order survives a restart.
        loaded.sort_by_key(|(t, _)| *t);
        let mut index = Index::default();
        let mut by_key: HashMap<(MerkleHash, u32, u32), u64> = HashMap::new();
        for (_, stored) in loaded {
            let key = (stored.xorb, stored.range.start, stored.range.end);
            if let Some(&old) = by_key.get(&key) {
                // Two files for one range (two writers raced): keep the better one.
                let keep_old = index
                    .slots
                    .get(&old)
                    .is_some_and(|s| s.stored.level() >= stored.level());
                if keep_old {
                    remove_quietly(&stored.path);
                    continue;
                }
                if let Some(s) = index.remove(old) {
                    remove_quietly(&s.path);
                }
            }
            let id = index.add(Arc::new(stored));
            by_key.insert(key, id);
        }
        match load_pins(&dir.join(PINS_FILE)) {
            Ok(pins) => index.pins = pins,
            Err(reason) => tracing::warn!(%reason, "ignoring unreadable pins file"),
        }
        index.rebuild_pinned();
        let store = Store {
            inner: Arc::new(Inner {
                dir,
                quota: config.quota_bytes,
                durability: config.durability,
                index: Mutex::new(index),
                counters: Counters::default(),
            }),
        };
        let victims = {
            let mut ix = store.lock();
            match ix.make_room(0, store.inner.quota) {
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

    fn lock(&self) -> MutexGuard<'_, Index> {
        self.inner
            .index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Picks up changes made by another process sharing the folder (e.g. `zest pull` writing
    /// while `zest seed` serves): loads range files this store does not know, forgets ranges
    /// whose files were deleted, then evicts down to the quota. Returns (added, removed).
    pub fn rescan(&self) -> Result<(usize, usize), StoreError> {
        let dir = &self.inner.dir;
        let known: std::collections::HashSet<PathBuf> = {
            let ix = self.lock();
            ix.slots.values().map(|s| s.stored.path.clone()).collect()
        };
        let mut on_disk = std::collections::HashSet::new();
        let mut fresh = Vec::new();
        let rd = std::fs::read_dir(dir).map_err(|e| StoreError::io("read folder", dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| StoreError::io("read folder", dir, e))?;
            let path = entry.path();
            if !is_range_file(&path.to_string_lossy()) {
                continue;
            }
            if !known.contains(&path) {
                // A file that fails to load may still be mid-rename by its writer; leave it.
                if let Ok((_, stored)) = load_file(&path) {
                    fresh.push(stored);
                }
            }
            on_disk.insert(path);
        }
        let pins = load_pins(&dir.join(PINS_FILE)).ok();
        let mut ix = self.lock();
        let gone: Vec<u64> = ix
            .slots
            .iter()
            .filter(|(_, s)| !on_disk.contains(&s.stored.path))
            .map(|(id, _)| *id)
            .collect();
        let removed = gone.iter().filter_map(|&id| ix.remove(id)).count();
        let added = fresh.len();
        for stored in fresh {
            ix.add(Arc::new(stored));
        }
        if let Some(p) = pins {
            ix.pins = p;
            ix.rebuild_pinned();
        }
        let victims = ix.make_room(0, self.inner.quota).unwrap_or_default();
        drop(ix);
        self.delete_evicted(victims);
        Ok((added, removed))
    }

    /// The folder holding the range files.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Verifies `bytes` as the chunk records of chunks `range` of `xorb` and stores them. Bad
    /// bytes give [`StoreError::Verify`] and store nothing; a range that cannot fit even after
    /// evicting every unpinned range gives [`StoreError::QuotaExceeded`]. Blocking.
    pub fn insert(
        &self,
        xorb: &MerkleHash,
        range: Range<u32>,
        bytes: &[u8],
        expected: &Expectation,
    ) -> Result<InsertOutcome, StoreError> {
        self.insert_with(
            xorb,
            range.clone(),
            Body::Inline(bytes),
            expected.can_prove(&range),
            || verify_range(xorb, range.clone(), bytes, expected),
        )
    }

    /// Stores chunks `range` of `xorb` as a reference to their decoded bytes in the file `blob`
    /// (absolute path), starting at `offset`, instead of a copy: for a client whose verified
    /// Hugging Face cache blob already holds them. `chunk_hashes` and `chunk_lens` are the
    /// chunks' hashes and uncompressed lengths, and the caller must have proven them by a file
    /// hash covering exactly these bytes of `blob`: the range is stored as `FileVerified`. The
    /// blob's length is checked here; its bytes are read (not mapped) each time the range is
    /// served, as uncompressed chunk records, and a blob that disappeared or shrank drops the
    /// range. The reference counts against the quota with its own few bytes only. Blocking.
    pub fn insert_blob_ref(
        &self,
        xorb: &MerkleHash,
        range: Range<u32>,
        chunk_hashes: &[MerkleHash],
        chunk_lens: &[u32],
        blob: &Path,
        offset: u64,
    ) -> Result<InsertOutcome, StoreError> {
        let count = check_range(&range)? as usize;
        let bad = |why: String| StoreError::Verify(VerifyError::Expectation(why));
        if chunk_hashes.len() != count || chunk_lens.len() != count {
            return Err(bad(format!(
                "{} hashes and {} lengths for a range of {count} chunks",
                chunk_hashes.len(),
                chunk_lens.len()
            )));
        }
        if !blob.is_absolute()
            || blob.as_os_str().len() > format::MAX_BLOB_PATH
            || blob.to_str().is_none()
        {
            return Err(bad(format!(
                "blob path {} is not absolute UTF-8 of bounded length",
                blob.display()
            )));
        }
        let mut raw_ends = Vec::with_capacity(count);
        let mut total = 0u32;
        for &l in chunk_lens {
            total = total
                .checked_add(l)
                .ok_or_else(|| bad("chunk lengths overflow".into()))?;
            raw_ends.push(total);
        }
        let (record_ends, _) = format::plain_record_ends(&raw_ends)
            .ok_or_else(|| bad("chunk lengths do not fit a range".into()))?;
        let blob_len = std::fs::metadata(blob)
            .map_err(|e| StoreError::io("stat", blob, e))?
            .len();
        if blob_len < offset.saturating_add(u64::from(total)) {
            return Err(bad(format!(
                "blob {} is {blob_len} bytes, the chunks end at {}",
                blob.display(),
                offset.saturating_add(u64::from(total))
            )));
        }
        let blob = format::BlobRef {
            path: blob.to_path_buf(),
            offset,
        };
        let meta = RangeMeta {
            record_ends,
            raw_ends,
            chunk_hashes: chunk_hashes.to_vec(),
            level: VerificationLevel::FileVerified,
        };
        self.insert_with(
            xorb,
            range,
            Body::Blob(&blob),
            VerificationLevel::FileVerified,
            || Ok(meta.clone()),
        )
    }

    /// Inserts `body` whose metadata `verify` gives, proven up to `can_prove`.
    fn insert_with(
        &self,
        xorb: &MerkleHash,
        range: Range<u32>,
        body: Body<'_>,
        can_prove: VerificationLevel,
        verify: impl Fn() -> Result<RangeMeta, VerifyError>,
    ) -> Result<InsertOutcome, StoreError> {
        check_range(&range).inspect_err(|_| self.count_rejected())?;
        let mut conflicting: Vec<u64> = Vec::new();
        let existing = {
            let ix = self.lock();
            ix.find_covering(xorb, &range)
                .and_then(|id| ix.slots.get(&id).map(|s| s.stored.clone()))
        };
        let meta = match existing {
            Some(old) if old.level() >= can_prove => {
                return Ok(InsertOutcome::AlreadyHeld { level: old.level() });
            }
            Some(old) => {
                let meta = verify().inspect_err(|_| self.count_rejected())?;
                if old.hashes(&range) == meta.chunk_hashes.as_slice() {
                    let level = if old.range == range && meta.level > old.level() {
                        self.set_level(&old, meta.level)?;
                        meta.level
                    } else {
                        old.level()
                    };
                    return Ok(InsertOutcome::AlreadyHeld { level });
                }
                // The new bytes are proven better than the stored ones and disagree with them:
                // the stored range is wrong. Drop every stored range that disagrees.
                tracing::warn!(xorb = %xorb, ?range, "stored range disagrees with verified bytes; replacing it");
                let ix = self.lock();
                for &id in ix.ids_of(xorb) {
                    if let Some(s) = ix.slots.get(&id).map(|s| &s.stored) {
                        let lo = s.range.start.max(range.start);
                        let hi = s.range.end.min(range.end);
                        if lo < hi
                            && s.hashes(&(lo..hi))
                                != &meta.chunk_hashes
                                    [(lo - range.start) as usize..(hi - range.start) as usize]
                        {
                            conflicting.push(id);
                        }
                    }
                }
                meta
            }
            None => verify().inspect_err(|_| self.count_rejected())?,
        };
        if !conflicting.is_empty() {
            let mut ix = self.lock();
            let gone: Vec<_> = conflicting.iter().filter_map(|&id| ix.remove(id)).collect();
            drop(ix);
            self.delete_evicted(gone);
        }
        self.write_range(xorb, range, body, meta)
    }

    fn count_rejected(&self) {
        self.inner.counters.rejected.fetch_add(1, Ordering::Relaxed);
    }

    fn write_range(
        &self,
        xorb: &MerkleHash,
        range: Range<u32>,
        body: Body<'_>,
        meta: RangeMeta,
    ) -> Result<InsertOutcome, StoreError> {
        let (header, bytes, data_len) = match body {
            Body::Inline(bytes) => (
                format::encode_header(xorb, &range, bytes.len() as u64, &meta),
                bytes,
                bytes.len(),
            ),
            Body::Blob(blob) => {
                let data_len = meta.record_ends.last().copied().unwrap_or(0) as usize;
                let file = format::encode_ref(xorb, &range, data_len as u64, &meta, blob);
                (file, &[][..], data_len)
            }
        };
        let file_len = (header.len() + bytes.len()) as u64;
        let victims = {
            let mut ix = self.lock();
            let victims = ix.make_room(file_len, self.inner.quota)?;
            ix.in_flight += file_len;
            victims
        };
        self.delete_evicted(victims);
        let level = meta.level;
        let written = self.write_file(xorb, &range, &header, body, data_len, meta, file_len);
        let mut ix = self.lock();
        ix.in_flight -= file_len;
        let stored = written?;
        let id = ix.add(Arc::new(stored));
        // Ranges wholly inside the new one are redundant now.
        let subsumed: Vec<u64> = ix
            .ids_of(xorb)
            .iter()
            .copied()
            .filter(|&other| {
                other != id
                    && ix.slots.get(&other).is_some_and(|s| {
                        range.start <= s.stored.range.start && s.stored.range.end <= range.end
                    })
            })
            .collect();
        let gone: Vec<_> = subsumed.into_iter().filter_map(|o| ix.remove(o)).collect();
        drop(ix);
        for s in gone {
            remove_quietly(&s.path);
        }
        let c = &self.inner.counters;
        c.inserts.fetch_add(1, Ordering::Relaxed);
        c.bytes_inserted.fetch_add(file_len, Ordering::Relaxed);
        Ok(InsertOutcome::Stored { level })
    }

    /// Writes a range file (`header` then the inline bytes; for a blob reference `header` is
    /// the whole file) under a temporary name and renames it into place.
    #[allow(clippy::too_many_arguments)]
    fn write_file(
        &self,
        xorb: &MerkleHash,
        range: &Range<u32>,
        header: &[u8],
        body: Body<'_>,
        data_len: usize,
        meta: RangeMeta,
        file_len: u64,
    ) -> Result<Stored, StoreError> {
        let dir = &self.inner.dir;
        let (tmp, mut file) =
            fsutil::create_temp(dir).map_err(|e| StoreError::io("create", dir, e))?;
        let (bytes, suffix) = match body {
            Body::Inline(b) => (b, RANGE_SUFFIX),
            Body::Blob(_) => (&[][..], REF_SUFFIX),
        };
        let path = dir.join(format!(
            "{}.{}-{}.{:016x}{suffix}",
            xorb.to_hex(),
            range.start,
            range.end,
            fsutil::unique_token()
        ));
        let sync = self.inner.durability == Durability::Sync;
        let res = (|| {
            file.write_all(header)
                .and_then(|_| file.write_all(bytes))
                .and_then(|_| if sync { file.sync_all() } else { Ok(()) })
                .map_err(|e| StoreError::io("write", &tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| StoreError::io("rename", &tmp, e))?;
            if sync {
                fsutil::fsync_dir(dir).map_err(|e| StoreError::io("fsync", dir, e))?;
            }
            Ok(match body {
                Body::Inline(_) => Backing::Inline {
                    map: MappedFile::map(file).map_err(|e| StoreError::io("map", &path, e))?,
                    data_offset: header.len(),
                },
                Body::Blob(blob) => Backing::Blob {
                    file,
                    blob: blob.clone(),
                },
            })
        })();
        let backing = match res {
            Ok(b) => b,
            Err(e) => {
                remove_quietly(&tmp);
                remove_quietly(&path);
                return Err(e);
            }
        };
        Ok(Stored {
            xorb: *xorb,
            range: range.clone(),
            backing,
            data_len,
            level: AtomicU8::new(meta.level as u8),
            meta,
            file_len,
            path,
        })
    }

    fn delete_evicted(&self, victims: Vec<Arc<Stored>>) {
        if victims.is_empty() {
            return;
        }
        let c = &self.inner.counters;
        for v in victims {
            c.evictions.fetch_add(1, Ordering::Relaxed);
            c.bytes_evicted.fetch_add(v.file_len, Ordering::Relaxed);
            tracing::debug!(xorb = %v.xorb, range = ?v.range, "evicting");
            remove_quietly(&v.path);
        }
    }

    fn set_level(&self, stored: &Stored, level: VerificationLevel) -> Result<(), StoreError> {
        let f = stored.file();
        f.write_all_at(&[level as u8], format::LEVEL_OFFSET)
            .and_then(|_| match self.inner.durability {
                Durability::Sync => f.sync_data(),
                Durability::Deferred => Ok(()),
            })
            .map_err(|e| StoreError::io("write level", &stored.path, e))?;
        stored.level.fetch_max(level as u8, Ordering::Relaxed);
        Ok(())
    }

    /// Raises the level of every stored range of `xorb` inside `range` whose chunk hashes equal
    /// `proven_hashes` (the hashes of chunks `range`, as proven by the caller, e.g. through a file
    /// hash). Returns how many ranges were raised.
    pub fn upgrade_level(
        &self,
        xorb: &MerkleHash,
        range: Range<u32>,
        proven_hashes: &[MerkleHash],
        level: VerificationLevel,
    ) -> Result<usize, StoreError> {
        if check_range(&range).is_err() || proven_hashes.len() != (range.end - range.start) as usize
        {
            return Err(VerifyError::Expectation(format!(
                "{} hashes for chunk range {range:?}",
                proven_hashes.len()
            ))
            .into());
        }
        let candidates: Vec<Arc<Stored>> = {
            let ix = self.lock();
            ix.ids_of(xorb)
                .iter()
                .filter_map(|id| ix.slots.get(id))
                .map(|s| s.stored.clone())
                .filter(|s| range.start <= s.range.start && s.range.end <= range.end)
                .filter(|s| s.level() < level)
                .collect()
        };
        let mut n = 0;
        for s in candidates {
            let a = (s.range.start - range.start) as usize;
            let b = (s.range.end - range.start) as usize;
            if s.meta.chunk_hashes.as_slice() == &proven_hashes[a..b] {
                self.set_level(&s, level)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Removes every stored range of `xorb` that overlaps chunks `range` (a stored range is one
    /// file, so a range only partly inside `range` goes whole), pinned or not, so that no chunk
    /// of `range` is held afterwards. Returns how many stored ranges were removed. Blocking.
    ///
    /// Crash-safe: the ranges leave the index first (no new reader finds them), then each file
    /// is unlinked (atomic) and the folder fsynced once, so after a crash at any point a range
    /// is either still complete on disk (and found again by [`Store::open`]) or gone. Views
    /// already handed out stay readable: the map outlives the unlinked file.
    pub fn remove(&self, xorb: &MerkleHash, range: Range<u32>) -> Result<usize, StoreError> {
        if range.start >= range.end {
            return Ok(0);
        }
        let gone: Vec<Arc<Stored>> = {
            let mut ix = self.lock();
            let ids: Vec<u64> = ix
                .ids_of(xorb)
                .iter()
                .copied()
                .filter(|id| {
                    ix.slots.get(id).is_some_and(|s| {
                        s.stored.range.start < range.end && range.start < s.stored.range.end
                    })
                })
                .collect();
            ids.into_iter().filter_map(|id| ix.remove(id)).collect()
        };
        if gone.is_empty() {
            return Ok(0);
        }
        let mut first_err = None;
        for s in &gone {
            tracing::debug!(xorb = %s.xorb, range = ?s.range, "removing");
            if let Err(e) = std::fs::remove_file(&s.path) {
                if e.kind() != std::io::ErrorKind::NotFound && first_err.is_none() {
                    first_err = Some(StoreError::io("remove", &s.path, e));
                }
            }
        }
        let dir = &self.inner.dir;
        if self.inner.durability == Durability::Sync {
            fsutil::fsync_dir(dir).map_err(|e| StoreError::io("fsync", dir, e))?;
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(gone.len()),
        }
    }

    /// A zero-copy view of chunks `range` of `xorb`, when one stored range covers them. Marks
    /// that range most recently used. Counts a hit or a miss.
    pub fn get(&self, xorb: &MerkleHash, range: Range<u32>) -> Option<RangeView> {
        if range.start >= range.end {
            return None;
        }
        let (stored, persist) = {
            let mut ix = self.lock();
            match ix.find_covering(xorb, &range) {
                Some(id) => {
                    let persist = ix.touch(id);
                    (ix.slots.get(&id).map(|s| s.stored.clone()), persist)
                }
                None => (None, None),
            }
        };
        let c = &self.inner.counters;
        let Some(s) = stored else {
            c.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        if let Some(p) = persist {
            // Best effort: the mtime only orders eviction after a restart.
            let _ = p.file().set_modified(SystemTime::now());
        }
        match self.view(s, range) {
            Some(v) => {
                c.hits.fetch_add(1, Ordering::Relaxed);
                Some(v)
            }
            None => {
                c.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// [`RangeView::open`]; a blob reference whose blob cannot be read any more is dropped.
    fn view(&self, s: Arc<Stored>, range: Range<u32>) -> Option<RangeView> {
        match RangeView::open(s.clone(), range) {
            Ok(v) => Some(v),
            // The blob is gone or shorter than its chunks: the reference is dead.
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::UnexpectedEof) => {
                tracing::warn!(xorb = %s.xorb, range = ?s.range, error = %e, "dropping a range whose blob is gone");
                self.remove_stored(&s);
                None
            }
            // Anything else (out of descriptors, ...) may pass: a miss, the reference stays.
            Err(e) => {
                tracing::warn!(xorb = %s.xorb, range = ?s.range, error = %e, "could not read a range's blob");
                None
            }
        }
    }

    /// Removes one stored range (if it is still in the index) and its file.
    fn remove_stored(&self, s: &Arc<Stored>) {
        let gone = {
            let mut ix = self.lock();
            let id = ix
                .ids_of(&s.xorb)
                .iter()
                .copied()
                .find(|id| ix.slots.get(id).is_some_and(|x| Arc::ptr_eq(&x.stored, s)));
            id.and_then(|id| ix.remove(id))
        };
        if let Some(g) = gone {
            remove_quietly(&g.path);
        }
    }

    /// Views that together cover chunks `range` of `xorb` in order, possibly from several stored
    /// ranges (e.g. [0,10) and [10,20) serve [5,15)). `None` when some chunk is missing.
    pub fn get_cover(&self, xorb: &MerkleHash, range: Range<u32>) -> Option<Vec<RangeView>> {
        if range.start >= range.end {
            return None;
        }
        let mut ix = self.lock();
        let mut pieces: Vec<(u64, Range<u32>)> = Vec::new();
        let mut cur = range.start;
        while cur < range.end {
            let best = ix
                .ids_of(xorb)
                .iter()
                .filter_map(|id| ix.slots.get(id).map(|s| (*id, s.stored.range.clone())))
                .filter(|(_, r)| r.start <= cur && cur < r.end)
                .max_by_key(|(_, r)| r.end);
            let Some((id, r)) = best else {
                drop(ix);
                self.inner.counters.misses.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            let end = r.end.min(range.end);
            pieces.push((id, cur..end));
            cur = end;
        }
        let mut chosen = Vec::with_capacity(pieces.len());
        for (id, r) in pieces {
            let _ = ix.touch(id);
            if let Some(s) = ix.slots.get(&id) {
                chosen.push((s.stored.clone(), r));
            }
        }
        drop(ix);
        let mut views = Vec::with_capacity(chosen.len());
        for (s, r) in chosen {
            match self.view(s, r) {
                Some(v) => views.push(v),
                None => {
                    self.inner.counters.misses.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        }
        self.inner.counters.hits.fetch_add(1, Ordering::Relaxed);
        Some(views)
    }

    /// True when one stored range covers chunks `range` of `xorb` (no LRU or counter update).
    pub fn contains(&self, xorb: &MerkleHash, range: Range<u32>) -> bool {
        range.start < range.end && self.lock().find_covering(xorb, &range).is_some()
    }

    /// Decodes chunks `range` of `xorb` into `out` (appending). [`StoreError::NotHeld`] when no
    /// stored range covers them.
    pub fn decode(
        &self,
        xorb: &MerkleHash,
        range: Range<u32>,
        out: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        let view = self.get(xorb, range.clone()).ok_or(StoreError::NotHeld {
            xorb: *xorb,
            start: range.start,
            end: range.end,
        })?;
        view.decode(out)
    }

    /// Every xorb held with its chunk ranges, overlapping and adjacent ranges merged, sorted: what
    /// to announce to the tracker.
    pub fn holdings(&self) -> Vec<(MerkleHash, Vec<Range<u32>>)> {
        let ix = self.lock();
        let mut out: Vec<(MerkleHash, Vec<Range<u32>>)> = ix
            .by_xorb
            .iter()
            .map(|(x, ids)| {
                let mut rs: Vec<Range<u32>> = ids
                    .iter()
                    .filter_map(|id| ix.slots.get(id))
                    .map(|s| s.stored.range.clone())
                    .collect();
                (*x, coalesce(&mut rs))
            })
            .filter(|(_, rs)| !rs.is_empty())
            .collect();
        out.sort_by_key(|a| a.0);
        out
    }

    /// Every stored range, least recently used first.
    pub fn list(&self) -> Vec<EntryInfo> {
        let ix = self.lock();
        ix.lru
            .values()
            .filter_map(|id| ix.slots.get(id))
            .map(|s| EntryInfo {
                xorb: s.stored.xorb,
                range: s.stored.range.clone(),
                level: s.stored.level(),
                file_bytes: s.stored.file_len,
                data_bytes: s.stored.data_len as u64,
                pinned: ix.is_pinned(&s.stored),
            })
            .collect()
    }

    /// Pins chunk ranges under `label` (e.g. `org/model@<commit>`): stored ranges overlapping them
    /// are never evicted until the label is unpinned. Ranges may be pinned before they are
    /// stored. Persistent (written atomically to `pins.json`).
    pub fn pin(&self, label: &str, ranges: &[(MerkleHash, Range<u32>)]) -> Result<(), StoreError> {
        let mut ix = self.lock();
        ix.pins
            .entry(label.to_string())
            .or_default()
            .extend(ranges.iter().cloned());
        ix.rebuild_pinned();
        self.save_pins(&ix)
    }

    /// Removes a pin label; returns whether it existed.
    pub fn unpin(&self, label: &str) -> Result<bool, StoreError> {
        let mut ix = self.lock();
        let existed = ix.pins.remove(label).is_some();
        if existed {
            ix.rebuild_pinned();
            self.save_pins(&ix)?;
        }
        Ok(existed)
    }

    /// The pin labels.
    pub fn pin_labels(&self) -> Vec<String> {
        self.lock().pins.keys().cloned().collect()
    }

    fn save_pins(&self, ix: &Index) -> Result<(), StoreError> {
        let file = PinsFile {
            version: 1,
            pins: ix
                .pins
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.iter()
                            .map(|(x, r)| (x.to_hex(), r.start, r.end))
                            .collect(),
                    )
                })
                .collect(),
        };
        let json = serde_json::to_vec(&file).map_err(|e| StoreError::Corrupt {
            path: PINS_FILE.into(),
            reason: e.to_string(),
        })?;
        let path = self.inner.dir.join(PINS_FILE);
        fsutil::write_atomic(&path, &json).map_err(|e| StoreError::io("write", path, e))
    }

    /// [`Store::insert`] on tokio's blocking pool, for async callers.
    pub async fn insert_async(
        &self,
        xorb: MerkleHash,
        range: Range<u32>,
        bytes: Bytes,
        expected: Expectation,
    ) -> Result<InsertOutcome, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.insert(&xorb, range, &bytes, &expected))
            .await
            .map_err(|e| StoreError::io("insert task", self.dir(), std::io::Error::other(e)))?
    }

    /// Current counters.
    pub fn stats(&self) -> StoreStats {
        let (disk_bytes, ranges) = {
            let ix = self.lock();
            (ix.used, ix.slots.len() as u64)
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
            quota_bytes: self.inner.quota,
        }
    }
}

/// Sorts and merges overlapping or adjacent ranges.
pub(crate) fn coalesce(rs: &mut [Range<u32>]) -> Vec<Range<u32>> {
    rs.sort_by_key(|r| (r.start, r.end));
    let mut out: Vec<Range<u32>> = Vec::new();
    for r in rs.iter() {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r.clone()),
        }
    }
    out
}

fn remove_quietly(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "could not delete file");
        }
    }
}

/// Loads and structurally re-checks one range file.
fn load_file(path: &Path) -> Result<(SystemTime, Stored), String> {
    if path.to_string_lossy().ends_with(REF_SUFFIX) {
        return load_ref(path);
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    let md = file.metadata().map_err(|e| e.to_string())?;
    let file_len = md.len();
    let mut fixed = [0u8; format::FIXED_LEN];
    file.read_exact(&mut fixed).map_err(|e| e.to_string())?;
    let hlen = format::peek_header_len(&fixed)?;
    if (hlen as u64) > file_len {
        return Err("file shorter than its header".into());
    }
    let mut header = vec![0u8; hlen];
    header[..format::FIXED_LEN].copy_from_slice(&fixed);
    file.read_exact(&mut header[format::FIXED_LEN..])
        .map_err(|e| e.to_string())?;
    let FileHeader {
        xorb,
        range,
        data_len,
        meta,
    } = format::decode_header(&header)?;
    if hlen as u64 + data_len != file_len {
        return Err(format!(
            "file is {file_len} bytes, header says {}",
            hlen as u64 + data_len
        ));
    }
    let map = MappedFile::map(file).map_err(|e| e.to_string())?;
    let data = &map.bytes()[hlen..];
    format::check_records(data, &meta)?;
    let level = meta.level;
    let mtime = md.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    Ok((
        mtime,
        Stored {
            xorb,
            range,
            backing: Backing::Inline {
                map,
                data_offset: hlen,
            },
            data_len: data_len as usize,
            level: AtomicU8::new(level as u8),
            meta,
            file_len,
            path: path.to_path_buf(),
        },
    ))
}

/// Loads a blob reference file: both checksums, and the blob still long enough for its chunks.
fn load_ref(path: &Path) -> Result<(SystemTime, Stored), String> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    let md = file.metadata().map_err(|e| e.to_string())?;
    let most = format::header_len(MAX_RANGE_CHUNKS as usize) + 12 + format::MAX_BLOB_PATH + 32;
    if md.len() > most as u64 {
        return Err(format!("reference of {} bytes is too long", md.len()));
    }
    let mut bytes = Vec::with_capacity(md.len() as usize);
    (&file)
        .take(most as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    let (header, blob) = format::decode_ref(&bytes)?;
    let chunks_end = blob.offset + u64::from(header.meta.raw_ends.last().copied().unwrap_or(0));
    match std::fs::metadata(&blob.path) {
        Ok(m) if m.is_file() && m.len() >= chunks_end => {}
        Ok(_) => {
            return Err(format!(
                "blob {} is shorter than its chunks",
                blob.path.display()
            ))
        }
        Err(e) => return Err(format!("blob {}: {e}", blob.path.display())),
    }
    let level = header.meta.level;
    Ok((
        md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        Stored {
            xorb: header.xorb,
            range: header.range,
            backing: Backing::Blob { file, blob },
            data_len: header.data_len as usize,
            level: AtomicU8::new(level as u8),
            meta: header.meta,
            file_len: md.len(),
            path: path.to_path_buf(),
        },
    ))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct PinsFile {
    version: u32,
    pins: BTreeMap<String, Vec<(String, u32, u32)>>,
}

fn load_pins(path: &Path) -> Result<Pins, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e.to_string()),
    };
    let file: PinsFile = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if file.version != 1 {
        return Err(format!("unknown pins version {}", file.version));
    }
    let mut out = BTreeMap::new();
    for (label, ranges) in file.pins {
        let mut v = Vec::with_capacity(ranges.len());
        for (hex, s, e) in ranges {
            let x = MerkleHash::from_hex(&hex).map_err(|e| e.to_string())?;
            v.push((x, s..e));
        }
        out.insert(label, v);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::coalesce;

    #[test]
    fn coalesce_merges_overlapping_and_adjacent() {
        let mut v = vec![5..8, 0..2, 2..3, 7..10, 12..13];
        assert_eq!(coalesce(&mut v), vec![0..3, 5..10, 12..13]);
        assert!(coalesce(&mut []).is_empty());
    }
}
