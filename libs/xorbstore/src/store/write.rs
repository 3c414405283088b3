//! The write path of the store: inserts of either backing (verify, evict to make room, write
//! crash-safely, drop what the new range subsumes or contradicts), level upgrades in place, and
//! removal. All blocking (file I/O, hashing); [`Store::insert_async`] runs an insert on tokio's
//! blocking pool.

use std::io::Write;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use xet::MerkleHash;

use super::backing::{Backing, Body, Stored};
use super::{remove_quietly, Durability, InsertOutcome, Store};
use crate::error::{StoreError, VerifyError};
use crate::format;
use crate::fsutil;
use crate::mmap::MappedFile;
use crate::verify::{check_range, verify_range, Expectation, RangeMeta, VerificationLevel};

impl Store {
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
            expected.chunk_hashes.as_deref(),
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
        self.insert_blob_ref_at(
            xorb,
            range,
            chunk_hashes,
            chunk_lens,
            blob,
            offset,
            VerificationLevel::FileVerified,
        )
    }

    /// [`Store::insert_blob_ref`] at a level the caller proved some other way, for a file that
    /// is still being pulled (its `.incomplete` file): `Structural` for bytes only the file hash
    /// will prove (the swarm's *pending* ranges), `XorbVerified` or `ChunkHashesVerified` for
    /// bytes the caller checked against the xorb hash. [`Store::remove_blob_refs_to`] drops them
    /// when the file is renamed or discarded.
    #[allow(clippy::too_many_arguments)]
    pub fn insert_blob_ref_at(
        &self,
        xorb: &MerkleHash,
        range: Range<u32>,
        chunk_hashes: &[MerkleHash],
        chunk_lens: &[u32],
        blob: &Path,
        offset: u64,
        level: VerificationLevel,
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
            level,
        };
        self.insert_with(
            xorb,
            range,
            Body::Blob(&blob),
            level,
            || Ok(meta.clone()),
            Some(chunk_hashes),
        )
    }

    /// Inserts `body` whose metadata `verify` gives, proven up to `can_prove`.
    ///
    /// The level rule: a stored range is never displaced by a lower or unproven one. Bytes that
    /// disagree with a stored range of a higher level (or of the same proven level) are refused
    /// with [`VerifyError::Contradicts`]; stored ranges that disagree and are proven less (or
    /// are `Structural` like the new bytes) are dropped; after the write, only ranges inside the
    /// new one that are proven no better are dropped as redundant.
    fn insert_with(
        &self,
        xorb: &MerkleHash,
        range: Range<u32>,
        body: Body<'_>,
        can_prove: VerificationLevel,
        verify: impl Fn() -> Result<RangeMeta, VerifyError>,
        claimed: Option<&[MerkleHash]>,
    ) -> Result<InsertOutcome, StoreError> {
        check_range(&range).inspect_err(|_| self.count_rejected())?;
        let existing = {
            let ix = self.lock();
            ix.find_covering(xorb, &range)
                .and_then(|id| ix.get(id).cloned())
        };
        if let Some(old) = &existing {
            // Nothing to gain unless the caller's hashes disagree with what is held (then the
            // bytes are checked, and refused or kept by the level rule below).
            let agrees = claimed.is_none_or(|h| old.hashes(&range) == h);
            if old.level() >= can_prove && agrees {
                return Ok(InsertOutcome::AlreadyHeld { level: old.level() });
            }
        }
        let meta = verify().inspect_err(|_| self.count_rejected())?;
        if let Some(old) = &existing {
            if old.hashes(&range) == meta.chunk_hashes.as_slice() {
                let level = if old.range == range && meta.level > old.level() {
                    self.set_level(old, meta.level)?;
                    meta.level
                } else {
                    old.level()
                };
                return Ok(InsertOutcome::AlreadyHeld { level });
            }
        }
        let conflicting = self
            .conflicting(xorb, &range, &meta)
            .inspect_err(|_| self.count_rejected())?;
        if !conflicting.is_empty() {
            tracing::warn!(xorb = %xorb, ?range, level = ?meta.level, "stored ranges disagree with better-proven bytes; replacing them");
            let mut ix = self.lock();
            let gone = ix.remove_all(conflicting);
            drop(ix);
            self.delete_evicted(gone);
        }
        self.write_range(xorb, range, body, meta)
    }

    /// The stored ranges of `xorb` whose chunks overlapping `range` disagree with `meta`'s, to
    /// drop before `meta`'s bytes are written; [`VerifyError::Contradicts`] when one of them is
    /// proven better than `meta` (or as well, above `Structural`).
    fn conflicting(
        &self,
        xorb: &MerkleHash,
        range: &Range<u32>,
        meta: &RangeMeta,
    ) -> Result<Vec<u64>, VerifyError> {
        let ix = self.lock();
        let mut out = Vec::new();
        for (id, s) in ix.entries_of(xorb) {
            let lo = s.range.start.max(range.start);
            let hi = s.range.end.min(range.end);
            if lo >= hi {
                continue;
            }
            let ours = &meta.chunk_hashes[(lo - range.start) as usize..(hi - range.start) as usize];
            if s.hashes(&(lo..hi)) == ours {
                continue;
            }
            let theirs = s.level();
            if theirs > meta.level
                || (theirs == meta.level && theirs > VerificationLevel::Structural)
            {
                return Err(VerifyError::Contradicts {
                    start: lo,
                    end: hi,
                    level: theirs,
                });
            }
            out.push(id);
        }
        Ok(out)
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
        let level = meta.level;
        let mut lowered = false;
        let (stored, mut ix) = loop {
            let victims = {
                let mut ix = self.lock();
                let victims = ix.make_room(file_len, self.quota())?;
                ix.reserve(file_len);
                victims
            };
            self.delete_evicted(victims);
            let written = self.write_file(
                xorb,
                &range,
                &header,
                body,
                data_len,
                meta.clone(),
                file_len,
            );
            let mut ix = self.lock();
            ix.release(file_len);
            match written {
                // The disk holds less than the quota says (it is smaller, or shared with other
                // files): what is stored now is what fits, so that becomes the quota, and the
                // least recently used ranges make room for this one (once per insert).
                Err(e) if !lowered && e.is_disk_full() => {
                    let used = ix.used();
                    drop(ix);
                    let was = self.lower_quota(used);
                    tracing::warn!(error = %e, quota = used, was, "the disk is full: the store's quota is lowered to what it holds, and old ranges are evicted");
                    lowered = true;
                }
                written => break (written?, ix),
            }
        };
        let id = ix.add(Arc::new(stored));
        // Ranges wholly inside the new one and proven no better are redundant now (a better
        // proven one stays: a lower level never displaces a higher one).
        let mut subsumed = ix.inside(xorb, &range);
        subsumed.retain(|&other| other != id && ix.get(other).is_some_and(|s| s.level() <= level));
        let gone = ix.remove_all(subsumed);
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
        let (bytes, suffix) = (body.data(), body.suffix());
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
            ix.inside(xorb, &range)
                .into_iter()
                .filter_map(|id| ix.get(id).cloned())
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

    /// Removes every blob reference to `blob` (a file being renamed or deleted), whatever its
    /// range or level. Returns how many were removed. Blocking.
    pub fn remove_blob_refs_to(&self, blob: &Path) -> Result<usize, StoreError> {
        let gone: Vec<Arc<Stored>> = {
            let mut ix = self.lock();
            let ids: Vec<_> = ix
                .entries()
                .filter(
                    |(_, s)| matches!(&s.backing, Backing::Blob { blob: b, .. } if b.path == blob),
                )
                .map(|(id, _)| id)
                .collect();
            ix.remove_all(ids)
        };
        let mut first_err = None;
        for s in &gone {
            if let Err(e) = std::fs::remove_file(&s.path) {
                if e.kind() != std::io::ErrorKind::NotFound && first_err.is_none() {
                    first_err = Some(StoreError::io("remove", &s.path, e));
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(gone.len()),
        }
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
            let ids = ix.overlapping(xorb, &range);
            ix.remove_all(ids)
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
}
