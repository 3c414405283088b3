//! Frame values and their byte encoding: the length-prefixed header (`u32` LE length of what
//! follows, version byte, type tag), one struct per frame type, a canonical encoder and a
//! decoder that takes `&[u8]` and returns a frame and the bytes it used, or
//! [`Decoded::Incomplete`] when more bytes are needed.
//!
//! The encoding is canonical: a field has exactly one valid encoding (fixed widths, exact
//! lengths, no unknown flag bits, no trailing bytes), so a decoded frame re-encodes to exactly
//! the bytes it was decoded from. Encoding validates the same rules decoding enforces, so any
//! frame [`Frame::encode`] accepts decodes back to an equal value. The byte layout is written
//! down in `docs/wire-protocol.md`.
//!
//! The parts: this module holds the frame type tag, the [`Frame`] enum and the small shared
//! types; `messages` the per-frame structs (Handshake, Have, Request, the response frames,
//! PeerExchange); `encode` the encoder and validation; `decode` the decoder; `checks` the field
//! rules both sides apply.

mod checks;
mod decode;
mod encode;
mod messages;
#[cfg(test)]
mod tests;

pub use decode::{decode, decode_buf, decode_data_prefix, DataPrefix, DATA_PREFIX_LEN};
pub use encode::encode_data_header;
pub use messages::{
    ChunkRange, Data, DataHeader, ErrorFrame, Handshake, Have, HaveEntry, PeerExchange, Request,
    Upstream,
};

/// The type tag of a frame (byte 5 of the frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    Handshake = 0x01,
    Have = 0x02,
    Request = 0x03,
    DataHeader = 0x04,
    Data = 0x05,
    NotFound = 0x06,
    Error = 0x07,
    PeerExchange = 0x08,
    Cancel = 0x09,
    Ping = 0x0a,
    Pong = 0x0b,
}

impl FrameType {
    /// The frame type with this tag, `None` for an unknown tag.
    pub fn from_tag(tag: u8) -> Option<FrameType> {
        Some(match tag {
            0x01 => FrameType::Handshake,
            0x02 => FrameType::Have,
            0x03 => FrameType::Request,
            0x04 => FrameType::DataHeader,
            0x05 => FrameType::Data,
            0x06 => FrameType::NotFound,
            0x07 => FrameType::Error,
            0x08 => FrameType::PeerExchange,
            0x09 => FrameType::Cancel,
            0x0a => FrameType::Ping,
            0x0b => FrameType::Pong,
            _ => return None,
        })
    }
}

pub use crate::role::Role;

/// Capability bits of a Handshake. Unknown bits are kept (and ignored) so that decoding and
/// re-encoding round-trip and newer peers can add bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(pub u32);

impl Capabilities {
    /// No capabilities.
    pub const NONE: Capabilities = Capabilities(0);
    /// The sender's peer port also speaks TLS (informational: TLS is chosen before the first
    /// frame, by the port or address the peer was given).
    pub const TLS: Capabilities = Capabilities(1 << 0);
    /// The sender fetches, verifies and keeps ranges it does not hold when a Request carries
    /// an upstream URL (edges).
    pub const UPSTREAM_FETCH: Capabilities = Capabilities(1 << 1);
    /// The sender sends and accepts PeerExchange frames.
    pub const PEER_EXCHANGE: Capabilities = Capabilities(1 << 2);
    /// The sender serves Requests (edges and seeds; a pure client does not).
    pub const SERVE: Capabilities = Capabilities(1 << 3);

    /// Whether every bit of `other` is set in `self`.
    pub fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Capabilities {
    type Output = Capabilities;
    fn bitor(self, rhs: Capabilities) -> Capabilities {
        Capabilities(self.0 | rhs.0)
    }
}

/// One frame of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Handshake(Handshake),
    Have(Have),
    Request(Request),
    DataHeader(DataHeader),
    Data(Data),
    NotFound { request_id: u32 },
    Error(ErrorFrame),
    PeerExchange(PeerExchange),
    Cancel { request_id: u32 },
    Ping { nonce: u64 },
    Pong { nonce: u64 },
}

/// The result of a successful [`decode`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A whole frame: the value and how many bytes of the input it used.
    Frame { frame: Frame, consumed: usize },
    /// The input is a valid prefix so far; at least `needed` more bytes are required.
    Incomplete { needed: usize },
}

const HAVE_ENTRY_LEN: usize = 40;
const HASH_LEN: usize = 32;
const REQUEST_FLAG_UPSTREAM: u8 = 1 << 0;
const REQUEST_FLAG_HASHES: u8 = 1 << 1;
const DATA_FLAG_LAST: u8 = 1 << 0;
