//! The read path of the store: lookups of one covering range ([`Store::get`]) or of a cover by
//! several ([`Store::get_cover`]), and their async forms.
//!
//! A lookup is two steps: the index step (a short lock: find, mark used) and the view step
//! (open the views; for a blob reference that reads the blob, up to [`crate::MAX_RANGE_BYTES`],
//! and a range's file access time is refreshed at most once a minute). The blocking forms do
//! both on the caller's thread. The async forms ([`Store::get_async`],
//! [`Store::get_cover_async`]) do the index step inline and the view step inline only when it
//! touches no file (inline ranges, mapped: opening their views reads nothing, the bytes are
//! paged in later by whoever reads or `sendfile`s them); otherwise on tokio's blocking pool.

use std::io::ErrorKind;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use xet::MerkleHash;

use super::backing::Stored;
use super::{remove_quietly, RangeView, Store};
use crate::error::StoreError;
use crate::verify::VerificationLevel;

/// What the index step of a lookup found: the stored ranges to view with the chunks each
/// serves, in order, and the stored ranges whose file access time is due to be refreshed.
#[derive(Debug)]
struct Found {
    pieces: Vec<(Arc<Stored>, Range<u32>)>,
    persist: Vec<Arc<Stored>>,
}

impl Found {
    /// True when the view step touches a file (a blob to read, an access time to write).
    fn blocks(&self) -> bool {
        !self.persist.is_empty() || self.pieces.iter().any(|(s, _)| s.backing.reads_on_view())
    }
}

impl Store {
    /// A view of chunks `range` of `xorb`, when one stored range covers them (zero-copy for an
    /// inline range). Marks that range most recently used. Counts a hit or a miss. Blocking: a
    /// blob reference is read here; async callers use [`Store::get_async`].
    pub fn get(&self, xorb: &MerkleHash, range: Range<u32>) -> Option<RangeView> {
        let found = self.find_one(xorb, range)?;
        self.open_views(found).and_then(|v| v.into_iter().next())
    }

    /// Views that together cover chunks `range` of `xorb` in order, possibly from several stored
    /// ranges (e.g. [0,10) and [10,20) serve [5,15)). `None` when some chunk is missing. Marks
    /// the ranges used most recently used; counts one hit or miss. Blocking like
    /// [`Store::get`]; async callers use [`Store::get_cover_async`].
    pub fn get_cover(&self, xorb: &MerkleHash, range: Range<u32>) -> Option<Vec<RangeView>> {
        let found = self.find_cover(xorb, range)?;
        self.open_views(found)
    }

    /// [`Store::get`] for async callers: the lookup runs inline, and the view is opened inline
    /// when that reads nothing (an inline range, mapped), else on tokio's blocking pool.
    pub async fn get_async(&self, xorb: &MerkleHash, range: Range<u32>) -> Option<RangeView> {
        let found = self.find_one(xorb, range)?;
        self.open_views_async(found)
            .await
            .and_then(|v| v.into_iter().next())
    }

    /// [`Store::get_cover`] for async callers, as [`Store::get_async`] is for [`Store::get`].
    pub async fn get_cover_async(
        &self,
        xorb: &MerkleHash,
        range: Range<u32>,
    ) -> Option<Vec<RangeView>> {
        let found = self.find_cover(xorb, range)?;
        self.open_views_async(found).await
    }

    fn count_miss(&self) {
        self.inner.counters.misses.fetch_add(1, Ordering::Relaxed);
    }

    /// The index step of [`Store::get`]: the best stored range covering `range`, marked used.
    /// `None` (and a miss counted) when there is none.
    fn find_one(&self, xorb: &MerkleHash, range: Range<u32>) -> Option<Found> {
        if range.start >= range.end {
            return None;
        }
        let found = {
            let mut ix = self.lock();
            ix.find_covering(xorb, &range).and_then(|id| {
                let persist = ix.touch(id, Instant::now());
                ix.get(id).map(|s| Found {
                    pieces: vec![(s.clone(), range)],
                    persist: persist.into_iter().collect(),
                })
            })
        };
        if found.is_none() {
            self.count_miss();
        }
        found
    }

    /// The index step of [`Store::get_cover`]: the stored ranges covering `range`, marked used.
    /// `None` (and a miss counted) when some chunk is not held.
    fn find_cover(&self, xorb: &MerkleHash, range: Range<u32>) -> Option<Found> {
        if range.start >= range.end {
            return None;
        }
        let found = {
            let mut ix = self.lock();
            ix.cover(xorb, &range).map(|ids| {
                let now = Instant::now();
                let mut found = Found {
                    pieces: Vec::with_capacity(ids.len()),
                    persist: Vec::new(),
                };
                for (id, r) in ids {
                    found.persist.extend(ix.touch(id, now));
                    if let Some(s) = ix.get(id) {
                        found.pieces.push((s.clone(), r));
                    }
                }
                found
            })
        };
        if found.is_none() {
            self.count_miss();
        }
        found
    }

    /// The view step: refreshes the access times that are due and opens the views (reading the
    /// blob of a blob reference). Counts one hit, or one miss when a view cannot be opened.
    fn open_views(&self, found: Found) -> Option<Vec<RangeView>> {
        for p in &found.persist {
            // Best effort: the mtime only orders eviction after a restart.
            let _ = p.file().set_modified(SystemTime::now());
        }
        let mut views = Vec::with_capacity(found.pieces.len());
        for (s, r) in found.pieces {
            match self.view(s, r) {
                Some(v) => views.push(v),
                None => {
                    self.count_miss();
                    return None;
                }
            }
        }
        self.inner.counters.hits.fetch_add(1, Ordering::Relaxed);
        Some(views)
    }

    /// [`Store::open_views`] inline when it touches no file, else on tokio's blocking pool.
    async fn open_views_async(&self, found: Found) -> Option<Vec<RangeView>> {
        if !found.blocks() {
            return self.open_views(found);
        }
        let store = self.clone();
        match tokio::task::spawn_blocking(move || store.open_views(found)).await {
            Ok(views) => views,
            Err(e) => {
                tracing::warn!(error = %e, "store read task failed");
                self.count_miss();
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
                .entries_of(&s.xorb)
                .find(|(_, x)| Arc::ptr_eq(x, s))
                .map(|(id, _)| id);
            id.and_then(|id| ix.remove(id))
        };
        if let Some(g) = gone {
            remove_quietly(&g.path);
        }
    }

    /// True when one stored range covers chunks `range` of `xorb` (no LRU or counter update).
    pub fn contains(&self, xorb: &MerkleHash, range: Range<u32>) -> bool {
        range.start < range.end && self.lock().find_covering(xorb, &range).is_some()
    }

    /// The level of the best-proven stored range covering chunks `range` of `xorb`, `None` when
    /// no one range covers them (no LRU or counter update).
    pub fn covering_level(
        &self,
        xorb: &MerkleHash,
        range: Range<u32>,
    ) -> Option<VerificationLevel> {
        if range.start >= range.end {
            return None;
        }
        let ix = self.lock();
        let id = ix.find_covering(xorb, &range)?;
        ix.get(id).map(|s| s.level())
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
}
