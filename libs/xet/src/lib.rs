//! The Xet storage format, as Hugging Face's xet-core reads and writes it.
//!
//! This crate is sans-IO: every function takes bytes and returns values; nothing here opens a
//! file, a socket or reads a clock. It covers content-defined chunking ([`chunking`]), the
//! BLAKE3-based hashes ([`hash`]), chunk records and their compression ([`chunk`],
//! [`compression`]), xorbs ([`xorb`]), shards ([`shard`]) and the CAS HTTP API's JSON types
//! ([`cas`]). The rules follow `SPEC-DIGEST.md`; tests check them against xet-core's vectors.

pub mod cas;
pub mod chunk;
pub mod chunking;
pub mod compression;
mod error;
pub mod hash;
pub mod shard;
pub mod xorb;

pub use cas::{ByteRange, CasJwtInfo, ChunkRange, ReconstructionV1, ReconstructionV2};
pub use chunk::{ChunkHeader, ChunkRecord, ChunkRecords, CompressionScheme};
pub use chunking::{ChunkHasher, ChunkInfo, Chunker};
pub use compression::CompressionPolicy;
pub use hash::{HexError, MerkleHash};
pub use shard::{
    FileDataSequenceEntry, FileInfo, Shard, ShardError, ShardFooter, ShardMeta, XorbChunkEntry,
    XorbInfo,
};
pub use xorb::{SerializedXorb, XorbBuilder, XorbError, XorbFooter, XorbReader};
