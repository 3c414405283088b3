//! [`RangeView`]: what a lookup hands out. For an inline range it borrows the store's memory
//! map (zero-copy, and `sendfile(2)`-able through [`RangeView::file_segment`]); for a blob
//! reference it holds the chunk records built from the blob when the view was opened.

use std::fs::File;
use std::ops::{Deref, Range};
use std::sync::Arc;

use bytes::Bytes;
use xet::MerkleHash;

use super::backing::{Backing, Stored};
use crate::error::StoreError;
use crate::verify::VerificationLevel;

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
    /// A view of chunks `range` (inside `stored.range`). Reads the blob of a blob reference
    /// (blocking; see [`Backing::reads_on_view`]).
    pub(crate) fn open(stored: Arc<Stored>, range: Range<u32>) -> std::io::Result<Self> {
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
