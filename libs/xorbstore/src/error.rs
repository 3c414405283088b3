//! Error types of the store: [`VerifyError`] for bytes that fail verification (nothing is stored),
//! [`StoreError`] for everything the store itself can fail at (disk, quota, lookups).

use std::io;
use std::path::PathBuf;

use xet::xorb::XorbError;
use xet::MerkleHash;

/// Why a range's bytes were refused. Nothing is stored when one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The chunk range is empty or inverted.
    #[error("bad chunk range {start}..{end}")]
    BadRange { start: u32, end: u32 },
    /// The range asks for more chunks than a xorb may hold.
    #[error("chunk range of {count} chunks exceeds the limit of {max}")]
    RangeTooLong { count: u32, max: u32 },
    /// More bytes than any range may have.
    #[error("{len} bytes exceed the limit of {max} bytes for one range")]
    TooLarge { len: usize, max: usize },
    /// A chunk record did not parse or decode.
    #[error("chunk {index} (record at byte {offset}): {source}")]
    Chunk {
        index: u32,
        offset: usize,
        #[source]
        source: XorbError,
    },
    /// The bytes hold a different number of chunk records than the range says.
    #[error("expected {expected} chunk records, found {found}")]
    ChunkCount { expected: u32, found: u32 },
    /// A chunk's hash differs from the expected one.
    #[error("chunk {index}: hash {actual} differs from the expected {expected}")]
    ChunkHash {
        index: u32,
        expected: MerkleHash,
        actual: MerkleHash,
    },
    /// The whole xorb's Merkle root differs from its name.
    #[error("xorb hash mismatch: expected {expected}, computed {actual}")]
    XorbHash {
        expected: MerkleHash,
        actual: MerkleHash,
    },
    /// The caller's expectation is inconsistent with the range (wrong number of chunk hashes,
    /// range past the end of the xorb).
    #[error("expectation does not fit the range: {0}")]
    Expectation(String),
    /// The bytes disagree with a stored range proven at least as well: the stored range stays
    /// and the new bytes are refused (a higher level is never displaced by a lower one).
    #[error("chunks {start}..{end} disagree with a stored range proven {level:?}")]
    Contradicts {
        start: u32,
        end: u32,
        level: crate::verify::VerificationLevel,
    },
}

/// Every failure of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The bytes failed verification; nothing was stored.
    #[error("verification failed: {0}")]
    Verify(#[from] VerifyError),
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The range does not fit in the quota even after evicting every unpinned range.
    #[error("range of {needed} bytes does not fit the quota of {quota} bytes ({pinned} bytes pinned, {in_flight} bytes being written)")]
    QuotaExceeded {
        needed: u64,
        quota: u64,
        pinned: u64,
        in_flight: u64,
    },
    /// The store does not hold the requested range.
    #[error("range {xorb}[{start}..{end}) is not held")]
    NotHeld {
        xorb: MerkleHash,
        start: u32,
        end: u32,
    },
    /// A stored file that was valid when loaded no longer decodes (disk corruption).
    #[error("stored range {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

impl StoreError {
    /// A file operation failed because the disk (or the user's disk quota) is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::Io { source, .. }
            if matches!(source.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded))
    }
}
