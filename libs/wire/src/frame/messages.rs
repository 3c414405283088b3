//! The structs of the frames that carry fields: the Handshake, Have, Request (with its
//! upstream hint), the response frames (DataHeader, Data, Error) and PeerExchange, and the
//! [`ChunkRange`] they name chunks by.

use bytes::Bytes;
use xet::MerkleHash;

use super::{Capabilities, Role};
use crate::error::ErrorCode;
use crate::limits::*;

/// Handshake: the first frame each side sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// Highest protocol version the sender speaks (at least 1).
    pub max_version: u8,
    pub role: Role,
    pub capabilities: Capabilities,
    /// Largest length prefix the sender accepts, in
    /// [`MIN_MAX_FRAME_LEN`]..=[`ABSOLUTE_MAX_FRAME_LEN`].
    pub max_frame_len: u32,
    /// Most requests the sender accepts in flight from the receiver, 1..=[`MAX_IN_FLIGHT_LIMIT`].
    pub max_in_flight: u16,
    /// The sender's id, 1..=[`MAX_PEER_ID_LEN`] bytes of UTF-8 (the id it announces to the
    /// tracker).
    pub peer_id: String,
}

impl Handshake {
    /// A Handshake advertising `limits` (clamped into the allowed range) and this version.
    pub fn new(
        peer_id: impl Into<String>,
        role: Role,
        capabilities: Capabilities,
        limits: &Limits,
    ) -> Handshake {
        let limits = limits.clamped();
        Handshake {
            max_version: WIRE_VERSION,
            role,
            capabilities,
            max_frame_len: limits.max_frame_len,
            max_in_flight: limits.max_in_flight,
            peer_id: peer_id.into(),
        }
    }
}

/// A range of chunk indices `[start, end)` of a xorb (valid in a frame when `start < end`): the
/// one chunk-range type of the workspace, `xet`'s.
pub use xet::cas::ChunkRange;

/// One entry of a Have frame: the sender holds chunks `chunks` of xorb `xorb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HaveEntry {
    pub xorb: MerkleHash,
    pub chunks: ChunkRange,
}

/// Have: chunk ranges the sender holds and serves (an additive hint, not a complete list).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Have {
    /// At most [`MAX_HAVE_ENTRIES`].
    pub entries: Vec<HaveEntry>,
}

/// Where an edge may fetch a range it does not hold: the signed URL the CAS reconstruction
/// gave the client and the byte range of the requested chunk records inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// 1..=[`MAX_URL_LEN`] bytes.
    pub url: String,
    /// First byte (inclusive).
    pub byte_start: u64,
    /// Last byte (inclusive, HTTP `Range` style); `byte_start <= byte_end`.
    pub byte_end: u64,
}

/// Request: chunk records `chunks` of xorb `xorb`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Chosen by the requester, non-zero, unique among its requests in flight.
    pub request_id: u32,
    pub xorb: MerkleHash,
    /// `start < end`, at most [`MAX_REQUEST_CHUNKS`] chunks.
    pub chunks: ChunkRange,
    /// Upstream source, for a responder with [`Capabilities::UPSTREAM_FETCH`].
    pub upstream: Option<Upstream>,
    /// The expected hash of every requested chunk, in order (exactly `chunks.len()` of them).
    pub chunk_hashes: Option<Vec<MerkleHash>>,
}

/// DataHeader: the first frame of a successful response, announcing its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHeader {
    pub request_id: u32,
    /// Total bytes of chunk records that the Data frames will carry; at least
    /// `8 * num_chunks`.
    pub total_len: u64,
    /// Number of chunk records; equal to the request's chunk count, 1..=[`MAX_REQUEST_CHUNKS`].
    pub num_chunks: u32,
}

/// Data: a piece of the serialized chunk records of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    pub request_id: u32,
    /// Offset of `payload` within the response.
    pub offset: u64,
    /// Whether this is the response's final piece.
    pub last: bool,
    /// At least one byte.
    pub payload: Bytes,
}

/// Error: a request failed (`request_id != 0`) or the connection is being closed
/// (`request_id == 0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFrame {
    pub request_id: u32,
    pub code: ErrorCode,
    /// At most [`MAX_ERROR_MESSAGE_LEN`] bytes, for humans and logs.
    pub message: String,
}

/// PeerExchange: other peers the sender knows to hold (part of) a xorb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerExchange {
    pub xorb: MerkleHash,
    /// At most [`MAX_PEX_PEERS`] addresses (`host:port`), each 1..=[`MAX_PEER_ADDR_LEN`] bytes.
    pub peers: Vec<String>,
}
