//! [`XorbError`], the one error of chunk records and xorbs.
//!
//! It is the leaf of the format modules, so they depend one way only: `compression` uses it,
//! `chunk` builds on `compression`, and `xorb` on `chunk` (and re-exports the type).

/// Everything that can be wrong with a chunk record, a xorb or its footer (or a builder call).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XorbError {
    /// Fewer bytes than a structure needs.
    #[error("truncated {what}: need {needed} bytes, {available} available")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        available: u64,
    },
    /// A chunk header with a version other than 0.
    #[error("unsupported chunk header version {0}")]
    UnsupportedChunkVersion(u8),
    /// A compression scheme other than 0, 1, 2.
    #[error("unknown compression scheme {0}")]
    UnknownScheme(u8),
    /// `uncompressed_len` above 131072.
    #[error("chunk uncompressed length {0} exceeds 131072")]
    UncompressedTooLarge(u32),
    /// `compressed_len` above 262144.
    #[error("chunk compressed length {0} exceeds 262144")]
    CompressedTooLarge(u32),
    /// A chunk header position holds the footer's `XETBLOB` identifier.
    #[error("footer found where a chunk header was expected")]
    UnexpectedFooter,
    /// The LZ4 decoder rejected a payload.
    #[error("LZ4 frame: {0}")]
    Lz4(String),
    /// A payload decoded to a different length than its header (or the footer) says.
    #[error("decoded length {actual} does not match the expected {expected}")]
    LengthMismatch {
        /// Length announced.
        expected: u64,
        /// Length produced (at least).
        actual: u64,
    },
    /// A malformed footer.
    #[error("bad xorb footer: {0}")]
    BadFooter(String),
    /// The footer's offsets or counts disagree with the chunk records.
    #[error("xorb footer disagrees with the chunk records: {0}")]
    FooterMismatch(String),
    /// A chunk range outside the xorb.
    #[error("chunk range {start}..{end} outside a xorb of {num_chunks} chunks")]
    RangeOutOfBounds {
        /// Requested start.
        start: u32,
        /// Requested end (exclusive).
        end: u32,
        /// Chunks in the xorb.
        num_chunks: u32,
    },
    /// More than 8192 chunks or 64 MiB (`MAX_XORB_CHUNKS`, `MAX_XORB_BYTES` of the xorb module).
    #[error("xorb exceeds the limits (8192 chunks, 64 MiB)")]
    TooLarge,
    /// The builder cannot take this chunk without exceeding a limit.
    #[error("xorb is full")]
    Full,
    /// A chunk longer than 131072 bytes was given to the builder.
    #[error("chunk of {0} bytes exceeds the 131072-byte maximum")]
    ChunkTooLarge(usize),
}
