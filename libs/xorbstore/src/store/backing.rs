//! The two backings of a stored range and the stored range itself.
//!
//! - **Inline** (`.xr` files): the chunk records follow the file's header and are served from a
//!   memory map of the file. Opening a view reads nothing: the bytes are paged in when the
//!   caller reads them (the page cache; see `mmap.rs` for why the map stays valid).
//! - **Blob reference** (`.xrb` files): the file holds only the header and the path and offset
//!   of the decoded chunks in a verified cache blob that is not the store's own. Opening a view
//!   reads those chunks from the blob (up to [`crate::MAX_RANGE_BYTES`]) and builds
//!   uncompressed chunk records in memory: a blocking read, see [`Backing::reads_on_view`].
//!
//! [`Body`] is what an insert writes; [`Backing`] is what a held range reads from.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use xet::MerkleHash;

use super::index::Entry;
use crate::format;
use crate::mmap::MappedFile;
use crate::verify::{RangeMeta, VerificationLevel};

/// Suffix of an inline range file.
pub(crate) const RANGE_SUFFIX: &str = ".xr";
/// Suffix of a blob reference file (see [`crate::format`]).
pub(crate) const REF_SUFFIX: &str = ".xrb";

/// True for the name of a range file of either backing.
pub(crate) fn is_range_file(name: &str) -> bool {
    name.ends_with(RANGE_SUFFIX) || name.ends_with(REF_SUFFIX)
}

/// What an insert writes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Body<'a> {
    /// The chunk records.
    Inline(&'a [u8]),
    /// A reference to the decoded chunks in a blob.
    Blob(&'a format::BlobRef),
}

impl Body<'_> {
    /// The file's suffix.
    pub(crate) fn suffix(&self) -> &'static str {
        match self {
            Body::Inline(_) => RANGE_SUFFIX,
            Body::Blob(_) => REF_SUFFIX,
        }
    }

    /// The bytes written after the header (none for a blob reference, whose header is the
    /// whole file).
    pub(crate) fn data(&self) -> &[u8] {
        match self {
            Body::Inline(b) => b,
            Body::Blob(_) => &[],
        }
    }
}

/// Where a stored range's chunk records are.
#[derive(Debug)]
pub(crate) enum Backing {
    /// In the range file, after its header, mapped.
    Inline { map: MappedFile, data_offset: usize },
    /// Decoded, in another file (a verified cache blob): records are built when read. `file` is
    /// the reference file itself (for the level byte and the access time).
    Blob { file: File, blob: format::BlobRef },
}

impl Backing {
    /// The range file (inline: the mapped file; blob reference: the reference file).
    pub(crate) fn file(&self) -> &File {
        match self {
            Backing::Inline { map, .. } => map.file(),
            Backing::Blob { file, .. } => file,
        }
    }

    /// True when opening a view reads from disk (a blob reference): the caller must be on a
    /// thread that may block. An inline view only clones the map's handle.
    pub(crate) fn reads_on_view(&self) -> bool {
        matches!(self, Backing::Blob { .. })
    }
}

/// A stored range. Immutable except for the level.
#[derive(Debug)]
pub(crate) struct Stored {
    pub(crate) xorb: MerkleHash,
    pub(crate) range: Range<u32>,
    pub(crate) backing: Backing,
    /// Bytes of chunk records (for a blob reference: as built, uncompressed).
    pub(crate) data_len: usize,
    pub(crate) meta: RangeMeta,
    pub(crate) level: AtomicU8,
    pub(crate) file_len: u64,
    pub(crate) path: PathBuf,
}

impl Entry for Arc<Stored> {
    fn xorb(&self) -> MerkleHash {
        self.xorb
    }
    fn range(&self) -> Range<u32> {
        self.range.clone()
    }
    fn file_len(&self) -> u64 {
        self.file_len
    }
    fn level(&self) -> VerificationLevel {
        Stored::level(self)
    }
}

impl Stored {
    /// The chunk records of an inline range (`None` for a blob reference).
    pub(crate) fn inline_data(&self) -> Option<&[u8]> {
        match &self.backing {
            Backing::Inline { map, data_offset } => {
                Some(&map.bytes()[*data_offset..*data_offset + self.data_len])
            }
            Backing::Blob { .. } => None,
        }
    }

    /// The range file.
    pub(crate) fn file(&self) -> &File {
        self.backing.file()
    }

    /// Builds the uncompressed chunk records of chunks `r` of a blob reference from the blob
    /// (read, not mapped: the blob is not the store's own file and may shrink under us).
    /// Blocking. `NotFound` / `UnexpectedEof` mean the blob is gone or too short.
    pub(crate) fn build_records(
        &self,
        blob: &format::BlobRef,
        r: &Range<u32>,
    ) -> std::io::Result<Vec<u8>> {
        let (start, end) = self.byte_bounds(r);
        let s = (r.start - self.range.start) as usize;
        let e = (r.end - self.range.start) as usize;
        let raw = &self.meta.raw_ends;
        let first = if s == 0 { 0 } else { raw[s - 1] };
        let last = raw[e - 1];
        let f = File::open(&blob.path)?;
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

    pub(crate) fn level(&self) -> VerificationLevel {
        VerificationLevel::from_u8(self.level.load(Ordering::Relaxed))
            .unwrap_or(VerificationLevel::Structural)
    }

    /// Byte bounds of chunks `r` (absolute indices, inside `self.range`) within the data.
    pub(crate) fn byte_bounds(&self, r: &Range<u32>) -> (usize, usize) {
        let s = (r.start - self.range.start) as usize;
        let e = (r.end - self.range.start) as usize;
        let start = if s == 0 {
            0
        } else {
            self.meta.record_ends[s - 1] as usize
        };
        (start, self.meta.record_ends[e - 1] as usize)
    }

    /// The chunk hashes of chunks `r` (absolute indices, inside `self.range`).
    pub(crate) fn hashes(&self, r: &Range<u32>) -> &[MerkleHash] {
        let s = (r.start - self.range.start) as usize;
        let e = (r.end - self.range.start) as usize;
        &self.meta.chunk_hashes[s..e]
    }
}
