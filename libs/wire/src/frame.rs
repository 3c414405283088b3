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

use bytes::{BufMut, Bytes, BytesMut};
use xet::MerkleHash;

use crate::error::{ErrorCode, FrameError};
use crate::limits::*;
pub use crate::role::Role;
/// A range of chunk indices `[start, end)` of a xorb (valid in a frame when `start < end`): the
/// one chunk-range type of the workspace, `xet`'s.
pub use xet::cas::ChunkRange;

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

impl Frame {
    /// The type tag of this frame.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::Handshake(_) => FrameType::Handshake,
            Frame::Have(_) => FrameType::Have,
            Frame::Request(_) => FrameType::Request,
            Frame::DataHeader(_) => FrameType::DataHeader,
            Frame::Data(_) => FrameType::Data,
            Frame::NotFound { .. } => FrameType::NotFound,
            Frame::Error(_) => FrameType::Error,
            Frame::PeerExchange(_) => FrameType::PeerExchange,
            Frame::Cancel { .. } => FrameType::Cancel,
            Frame::Ping { .. } => FrameType::Ping,
            Frame::Pong { .. } => FrameType::Pong,
        }
    }

    /// The request this frame belongs to, if it is part of a request's exchange (0 for a
    /// connection-level Error).
    pub fn request_id(&self) -> Option<u32> {
        match self {
            Frame::Request(r) => Some(r.request_id),
            Frame::DataHeader(h) => Some(h.request_id),
            Frame::Data(d) => Some(d.request_id),
            Frame::NotFound { request_id } | Frame::Cancel { request_id } => Some(*request_id),
            Frame::Error(e) => Some(e.request_id),
            _ => None,
        }
    }

    /// Bytes after the frame header (what the type's fields take).
    fn payload_len(&self) -> usize {
        match self {
            Frame::Handshake(h) => 13 + h.peer_id.len(),
            Frame::Have(h) => 2 + HAVE_ENTRY_LEN * h.entries.len(),
            Frame::Request(r) => {
                45 + r.upstream.as_ref().map_or(0, |u| 18 + u.url.len())
                    + r.chunk_hashes.as_ref().map_or(0, |h| HASH_LEN * h.len())
            }
            Frame::DataHeader(_) => 16,
            Frame::Data(d) => 13 + d.payload.len(),
            Frame::NotFound { .. } | Frame::Cancel { .. } => 4,
            Frame::Error(e) => 8 + e.message.len(),
            Frame::PeerExchange(p) => 34 + p.peers.iter().map(|a| 1 + a.len()).sum::<usize>(),
            Frame::Ping { .. } | Frame::Pong { .. } => 8,
        }
    }

    /// Total encoded size, header included.
    pub fn encoded_len(&self) -> usize {
        FRAME_HEADER_LEN + self.payload_len()
    }

    /// The value of this frame's length prefix (version, type and fields).
    pub fn frame_len(&self) -> u64 {
        (self.encoded_len() - LEN_PREFIX_LEN) as u64
    }

    /// Checks every field against the protocol's rules (the ones [`decode`] enforces).
    pub fn validate(&self) -> Result<(), FrameError> {
        let ty = self.frame_type();
        match self {
            Frame::Handshake(h) => {
                if h.max_version == 0 {
                    return Err(invalid(ty, "max_version", "must be at least 1"));
                }
                check_len(
                    ty,
                    "max_frame_len",
                    h.max_frame_len as usize,
                    MIN_MAX_FRAME_LEN as usize,
                    ABSOLUTE_MAX_FRAME_LEN as usize,
                )?;
                check_len(
                    ty,
                    "max_in_flight",
                    h.max_in_flight as usize,
                    1,
                    MAX_IN_FLIGHT_LIMIT as usize,
                )?;
                check_len(ty, "peer_id", h.peer_id.len(), 1, MAX_PEER_ID_LEN)?;
            }
            Frame::Have(h) => {
                check_len(ty, "entries", h.entries.len(), 0, MAX_HAVE_ENTRIES)?;
                for e in &h.entries {
                    check_range(ty, e.chunks, u32::MAX)?;
                }
            }
            Frame::Request(r) => {
                check_id(ty, r.request_id)?;
                check_range(ty, r.chunks, MAX_REQUEST_CHUNKS)?;
                if let Some(u) = &r.upstream {
                    check_len(ty, "url", u.url.len(), 1, MAX_URL_LEN)?;
                    if u.byte_start > u.byte_end {
                        return Err(invalid(ty, "byte_range", "start after end"));
                    }
                }
                if let Some(h) = &r.chunk_hashes {
                    let n = r.chunks.len() as usize;
                    check_len(ty, "chunk_hashes", h.len(), n, n)?;
                }
            }
            Frame::DataHeader(h) => {
                check_id(ty, h.request_id)?;
                check_len(
                    ty,
                    "num_chunks",
                    h.num_chunks as usize,
                    1,
                    MAX_REQUEST_CHUNKS as usize,
                )?;
                if h.total_len < MIN_CHUNK_RECORD_LEN * u64::from(h.num_chunks) {
                    return Err(invalid(ty, "total_len", "smaller than 8 bytes per chunk"));
                }
            }
            Frame::Data(d) => {
                check_id(ty, d.request_id)?;
                if d.payload.is_empty() {
                    return Err(invalid(ty, "payload", "empty"));
                }
                if d.offset.checked_add(d.payload.len() as u64).is_none() {
                    return Err(invalid(ty, "offset", "offset + length overflows"));
                }
            }
            Frame::NotFound { request_id } | Frame::Cancel { request_id } => {
                check_id(ty, *request_id)?;
            }
            Frame::Error(e) => {
                check_len(ty, "message", e.message.len(), 0, MAX_ERROR_MESSAGE_LEN)?;
            }
            Frame::PeerExchange(p) => {
                check_len(ty, "peers", p.peers.len(), 0, MAX_PEX_PEERS)?;
                for a in &p.peers {
                    check_len(ty, "peer_addr", a.len(), 1, MAX_PEER_ADDR_LEN)?;
                }
            }
            Frame::Ping { .. } | Frame::Pong { .. } => {}
        }
        let len = self.frame_len();
        if len > u64::from(ABSOLUTE_MAX_FRAME_LEN) {
            return Err(FrameError::FrameTooLarge {
                len,
                max: ABSOLUTE_MAX_FRAME_LEN,
            });
        }
        Ok(())
    }

    /// Appends the frame's canonical encoding to `out` (a `Vec<u8>` or `BytesMut`). Validates
    /// first; on error nothing is written. Does not check a negotiated `max_frame_len` (the
    /// [`Connection`](crate::Connection) does).
    pub fn encode<B: BufMut>(&self, out: &mut B) -> Result<(), FrameError> {
        self.validate()?;
        let frame_len = self.frame_len() as u32;
        out.put_u32_le(frame_len);
        out.put_u8(WIRE_VERSION);
        out.put_u8(self.frame_type() as u8);
        match self {
            Frame::Handshake(h) => {
                out.put_u8(h.max_version);
                out.put_u8(h.role as u8);
                out.put_u32_le(h.capabilities.0);
                out.put_u32_le(h.max_frame_len);
                out.put_u16_le(h.max_in_flight);
                out.put_u8(h.peer_id.len() as u8);
                out.put_slice(h.peer_id.as_bytes());
            }
            Frame::Have(h) => {
                out.put_u16_le(h.entries.len() as u16);
                for e in &h.entries {
                    out.put_slice(e.xorb.as_bytes());
                    out.put_u32_le(e.chunks.start);
                    out.put_u32_le(e.chunks.end);
                }
            }
            Frame::Request(r) => {
                out.put_u32_le(r.request_id);
                out.put_slice(r.xorb.as_bytes());
                out.put_u32_le(r.chunks.start);
                out.put_u32_le(r.chunks.end);
                let mut flags = 0;
                if r.upstream.is_some() {
                    flags |= REQUEST_FLAG_UPSTREAM;
                }
                if r.chunk_hashes.is_some() {
                    flags |= REQUEST_FLAG_HASHES;
                }
                out.put_u8(flags);
                if let Some(u) = &r.upstream {
                    out.put_u16_le(u.url.len() as u16);
                    out.put_slice(u.url.as_bytes());
                    out.put_u64_le(u.byte_start);
                    out.put_u64_le(u.byte_end);
                }
                for h in r.chunk_hashes.iter().flatten() {
                    out.put_slice(h.as_bytes());
                }
            }
            Frame::DataHeader(h) => {
                out.put_u32_le(h.request_id);
                out.put_u64_le(h.total_len);
                out.put_u32_le(h.num_chunks);
            }
            Frame::Data(d) => {
                out.put_u32_le(d.request_id);
                out.put_u64_le(d.offset);
                out.put_u8(if d.last { DATA_FLAG_LAST } else { 0 });
                out.put_slice(&d.payload);
            }
            Frame::NotFound { request_id } | Frame::Cancel { request_id } => {
                out.put_u32_le(*request_id);
            }
            Frame::Error(e) => {
                out.put_u32_le(e.request_id);
                out.put_u16_le(e.code.0);
                out.put_u16_le(e.message.len() as u16);
                out.put_slice(e.message.as_bytes());
            }
            Frame::PeerExchange(p) => {
                out.put_slice(p.xorb.as_bytes());
                out.put_u16_le(p.peers.len() as u16);
                for a in &p.peers {
                    out.put_u8(a.len() as u8);
                    out.put_slice(a.as_bytes());
                }
            }
            Frame::Ping { nonce } | Frame::Pong { nonce } => out.put_u64_le(*nonce),
        }
        Ok(())
    }

    /// The frame's encoding as a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out)?;
        Ok(out)
    }
}

/// Appends the header and fields of a Data frame whose `payload_len` payload bytes the caller
/// writes next (e.g. straight from a memory map, without copying them into a frame). The
/// result followed by the payload is exactly what [`Frame::encode`] writes for that Data frame.
pub fn encode_data_header<B: BufMut>(
    request_id: u32,
    offset: u64,
    last: bool,
    payload_len: usize,
    out: &mut B,
) -> Result<(), FrameError> {
    let ty = FrameType::Data;
    check_id(ty, request_id)?;
    if payload_len == 0 {
        return Err(invalid(ty, "payload", "empty"));
    }
    if offset.checked_add(payload_len as u64).is_none() {
        return Err(invalid(ty, "offset", "offset + length overflows"));
    }
    let len = u64::from(DATA_FRAME_OVERHEAD) + payload_len as u64;
    if len > u64::from(ABSOLUTE_MAX_FRAME_LEN) {
        return Err(FrameError::FrameTooLarge {
            len,
            max: ABSOLUTE_MAX_FRAME_LEN,
        });
    }
    out.put_u32_le(len as u32);
    out.put_u8(WIRE_VERSION);
    out.put_u8(ty as u8);
    out.put_u32_le(request_id);
    out.put_u64_le(offset);
    out.put_u8(if last { DATA_FLAG_LAST } else { 0 });
    Ok(())
}

/// The fixed part of a Data frame (everything but the payload), as read by
/// [`decode_data_prefix`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataPrefix {
    pub request_id: u32,
    /// Offset of the payload within the response.
    pub offset: u64,
    /// Whether this is the response's final piece.
    pub last: bool,
    /// Payload bytes that follow the prefix (at least one).
    pub payload_len: usize,
}

/// Bytes of a Data frame before its payload (length prefix included).
pub const DATA_PREFIX_LEN: usize = LEN_PREFIX_LEN + DATA_FRAME_OVERHEAD as usize;

/// When `buf` starts with a Data frame whose fixed part is present (its payload need not be),
/// returns that fixed part, so that a receiver can move the payload straight from the socket to
/// where it belongs instead of buffering the whole frame. `Ok(None)`: not a Data frame, fewer
/// than [`DATA_PREFIX_LEN`] bytes, or a frame without payload (use [`decode_buf`], which
/// reports it). The checks are those of [`decode`] and [`Frame::validate`]: length against
/// `max_frame_len`, version, flags, request id, offset.
pub fn decode_data_prefix(
    buf: &[u8],
    max_frame_len: u32,
) -> Result<Option<DataPrefix>, FrameError> {
    let Some(total) = check_header(buf, max_frame_len)? else {
        return Ok(None);
    };
    // A frame too short to carry a payload is left to `decode_buf`, which reports it.
    if buf.get(5) != Some(&(FrameType::Data as u8))
        || buf.len() < DATA_PREFIX_LEN
        || total <= DATA_PREFIX_LEN
    {
        return Ok(None);
    }
    let ty = FrameType::Data;
    let mut r = Reader {
        buf: &buf[FRAME_HEADER_LEN..DATA_PREFIX_LEN],
        ty,
    };
    let request_id = r.u32("request_id")?;
    let offset = r.u64("offset")?;
    let flags = r.u8("flags")?;
    if flags & !DATA_FLAG_LAST != 0 {
        return Err(invalid(ty, "flags", "unknown flag bits"));
    }
    check_id(ty, request_id)?;
    let payload_len = total - DATA_PREFIX_LEN;
    if offset.checked_add(payload_len as u64).is_none() {
        return Err(invalid(ty, "offset", "offset + length overflows"));
    }
    Ok(Some(DataPrefix {
        request_id,
        offset,
        last: flags & DATA_FLAG_LAST != 0,
        payload_len,
    }))
}

/// What the first bytes of a frame say, checked as far as they go. `Ok(None)` means fewer than
/// [`LEN_PREFIX_LEN`] bytes; otherwise the total frame size (prefix included).
fn check_header(buf: &[u8], max_frame_len: u32) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = u32::from_le_bytes(*prefix);
    let max = max_frame_len.min(ABSOLUTE_MAX_FRAME_LEN);
    if len < MIN_FRAME_LEN {
        return Err(FrameError::FrameTooShort { len });
    }
    if len > max {
        return Err(FrameError::FrameTooLarge {
            len: u64::from(len),
            max,
        });
    }
    if let Some(&version) = buf.get(4) {
        if version != WIRE_VERSION {
            return Err(FrameError::UnsupportedVersion(version));
        }
    }
    if let Some(&tag) = buf.get(5) {
        if FrameType::from_tag(tag).is_none() {
            return Err(FrameError::UnknownType(tag));
        }
    }
    Ok(Some(LEN_PREFIX_LEN + len as usize))
}

/// Decodes one frame from the front of `buf`, accepting length prefixes up to
/// `max_frame_len` (the value this side advertised). Never panics; never allocates more than
/// the frame's bytes. The header is checked as soon as its bytes are present, so an oversized,
/// wrong-version or unknown-type frame is rejected before its body arrives.
pub fn decode(buf: &[u8], max_frame_len: u32) -> Result<Decoded, FrameError> {
    let Some(total) = check_header(buf, max_frame_len)? else {
        return Ok(Decoded::Incomplete {
            needed: FRAME_HEADER_LEN - buf.len(),
        });
    };
    if buf.len() < total {
        return Ok(Decoded::Incomplete {
            needed: total - buf.len(),
        });
    }
    let frame = parse(&buf[..total], &Bytes::copy_from_slice)?;
    Ok(Decoded::Frame {
        frame,
        consumed: total,
    })
}

/// Like [`decode`] on a receive buffer: when a whole frame is at the front of `buf`, removes it
/// and returns it (a Data payload shares the buffer's memory instead of being copied).
/// `Ok(None)` means more bytes are needed; `buf` is then left unchanged.
pub fn decode_buf(buf: &mut BytesMut, max_frame_len: u32) -> Result<Option<Frame>, FrameError> {
    let Some(total) = check_header(buf, max_frame_len)? else {
        return Ok(None);
    };
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let bytes = buf.split_to(total).freeze();
    parse(&bytes, &|s| bytes.slice_ref(s)).map(Some)
}

/// Parses a whole frame (`frame.len()` equals the length prefix + 4; header already checked).
fn parse(frame: &[u8], make_bytes: &dyn Fn(&[u8]) -> Bytes) -> Result<Frame, FrameError> {
    let tag = frame[5];
    let ty = FrameType::from_tag(tag).ok_or(FrameError::UnknownType(tag))?;
    let mut r = Reader {
        buf: &frame[FRAME_HEADER_LEN..],
        ty,
    };
    let f = match ty {
        FrameType::Handshake => {
            let max_version = r.u8("max_version")?;
            let role_byte = r.u8("role")?;
            let role =
                Role::from_u8(role_byte).ok_or_else(|| invalid(ty, "role", "unknown role"))?;
            let capabilities = Capabilities(r.u32("capabilities")?);
            let max_frame_len = r.u32("max_frame_len")?;
            let max_in_flight = r.u16("max_in_flight")?;
            let n = r.u8("peer_id_len")? as usize;
            let peer_id = r.string("peer_id", n)?;
            Frame::Handshake(Handshake {
                max_version,
                role,
                capabilities,
                max_frame_len,
                max_in_flight,
                peer_id,
            })
        }
        FrameType::Have => {
            let n = r.u16("count")? as usize;
            check_len(ty, "entries", n, 0, MAX_HAVE_ENTRIES)?;
            r.need(n * HAVE_ENTRY_LEN, "entries")?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                let xorb = r.hash("xorb")?;
                let start = r.u32("chunk_start")?;
                let end = r.u32("chunk_end")?;
                entries.push(HaveEntry {
                    xorb,
                    chunks: ChunkRange { start, end },
                });
            }
            Frame::Have(Have { entries })
        }
        FrameType::Request => {
            let request_id = r.u32("request_id")?;
            let xorb = r.hash("xorb")?;
            let start = r.u32("chunk_start")?;
            let end = r.u32("chunk_end")?;
            let chunks = ChunkRange { start, end };
            check_range(ty, chunks, MAX_REQUEST_CHUNKS)?;
            let flags = r.u8("flags")?;
            if flags & !(REQUEST_FLAG_UPSTREAM | REQUEST_FLAG_HASHES) != 0 {
                return Err(invalid(ty, "flags", "unknown flag bits"));
            }
            let upstream = if flags & REQUEST_FLAG_UPSTREAM != 0 {
                let n = r.u16("url_len")? as usize;
                let url = r.string("url", n)?;
                let byte_start = r.u64("byte_start")?;
                let byte_end = r.u64("byte_end")?;
                Some(Upstream {
                    url,
                    byte_start,
                    byte_end,
                })
            } else {
                None
            };
            let chunk_hashes = if flags & REQUEST_FLAG_HASHES != 0 {
                let n = chunks.len() as usize;
                r.need(n * HASH_LEN, "chunk_hashes")?;
                let mut hashes = Vec::with_capacity(n);
                for _ in 0..n {
                    hashes.push(r.hash("chunk_hashes")?);
                }
                Some(hashes)
            } else {
                None
            };
            Frame::Request(Request {
                request_id,
                xorb,
                chunks,
                upstream,
                chunk_hashes,
            })
        }
        FrameType::DataHeader => Frame::DataHeader(DataHeader {
            request_id: r.u32("request_id")?,
            total_len: r.u64("total_len")?,
            num_chunks: r.u32("num_chunks")?,
        }),
        FrameType::Data => {
            let request_id = r.u32("request_id")?;
            let offset = r.u64("offset")?;
            let flags = r.u8("flags")?;
            if flags & !DATA_FLAG_LAST != 0 {
                return Err(invalid(ty, "flags", "unknown flag bits"));
            }
            let payload = make_bytes(r.take(r.buf.len(), "payload")?);
            Frame::Data(Data {
                request_id,
                offset,
                last: flags & DATA_FLAG_LAST != 0,
                payload,
            })
        }
        FrameType::NotFound => Frame::NotFound {
            request_id: r.u32("request_id")?,
        },
        FrameType::Error => {
            let request_id = r.u32("request_id")?;
            let code = ErrorCode(r.u16("code")?);
            let n = r.u16("message_len")? as usize;
            let message = r.string("message", n)?;
            Frame::Error(ErrorFrame {
                request_id,
                code,
                message,
            })
        }
        FrameType::PeerExchange => {
            let xorb = r.hash("xorb")?;
            let n = r.u16("count")? as usize;
            check_len(ty, "peers", n, 0, MAX_PEX_PEERS)?;
            // Each address takes at least its length byte and one byte of text.
            r.need(n * 2, "peers")?;
            let mut peers = Vec::with_capacity(n);
            for _ in 0..n {
                let len = r.u8("peer_addr_len")? as usize;
                peers.push(r.string("peer_addr", len)?);
            }
            Frame::PeerExchange(PeerExchange { xorb, peers })
        }
        FrameType::Cancel => Frame::Cancel {
            request_id: r.u32("request_id")?,
        },
        FrameType::Ping => Frame::Ping {
            nonce: r.u64("nonce")?,
        },
        FrameType::Pong => Frame::Pong {
            nonce: r.u64("nonce")?,
        },
    };
    if !r.buf.is_empty() {
        return Err(FrameError::TrailingBytes {
            frame_type: ty,
            count: r.buf.len(),
        });
    }
    f.validate()?;
    Ok(f)
}

/// A cursor over a frame's fields that reports which field ran out of bytes.
struct Reader<'a> {
    buf: &'a [u8],
    ty: FrameType,
}

impl<'a> Reader<'a> {
    fn need(&self, n: usize, field: &'static str) -> Result<(), FrameError> {
        if self.buf.len() < n {
            return Err(FrameError::Truncated {
                frame_type: self.ty,
                field,
            });
        }
        Ok(())
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], FrameError> {
        self.need(n, field)?;
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], FrameError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, FrameError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, FrameError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, FrameError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, FrameError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    fn hash(&mut self, field: &'static str) -> Result<MerkleHash, FrameError> {
        Ok(MerkleHash::from_bytes(self.array(field)?))
    }

    fn string(&mut self, field: &'static str, n: usize) -> Result<String, FrameError> {
        let ty = self.ty;
        let bytes = self.take(n, field)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| invalid(ty, field, "not valid UTF-8"))
    }
}

fn invalid(frame_type: FrameType, field: &'static str, reason: &'static str) -> FrameError {
    FrameError::InvalidField {
        frame_type,
        field,
        reason,
    }
}

fn check_len(
    frame_type: FrameType,
    field: &'static str,
    len: usize,
    min: usize,
    max: usize,
) -> Result<(), FrameError> {
    if len < min || len > max {
        return Err(FrameError::BadLength {
            frame_type,
            field,
            len: len as u64,
            min: min as u64,
            max: max as u64,
        });
    }
    Ok(())
}

fn check_id(ty: FrameType, request_id: u32) -> Result<(), FrameError> {
    if request_id == 0 {
        return Err(invalid(
            ty,
            "request_id",
            "0 is reserved for the connection",
        ));
    }
    Ok(())
}

fn check_range(ty: FrameType, range: ChunkRange, max_len: u32) -> Result<(), FrameError> {
    if range.start >= range.end {
        return Err(invalid(ty, "chunk_range", "start must be below end"));
    }
    check_len(ty, "chunk_range", range.len() as usize, 1, max_len as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_seq() -> MerkleHash {
        let mut b = [0u8; 32];
        for (i, x) in b.iter_mut().enumerate() {
            *x = i as u8;
        }
        MerkleHash::from_bytes(b)
    }

    fn handshake() -> Frame {
        Frame::Handshake(Handshake::new(
            "edge-1",
            Role::Edge,
            Capabilities::UPSTREAM_FETCH | Capabilities::SERVE,
            &Limits::default(),
        ))
    }

    fn request() -> Frame {
        Frame::Request(Request {
            request_id: 1,
            xorb: hash_seq(),
            chunks: ChunkRange::new(0, 2),
            upstream: None,
            chunk_hashes: None,
        })
    }

    /// The examples of `docs/wire-protocol.md`, byte for byte.
    fn golden() -> Vec<(Frame, &'static str)> {
        vec![
            (
                handshake(),
                "15000000 0101 01 01 0a000000 0f001000 4000 06 656467652d31",
            ),
            (
                request(),
                "2f000000 0103 01000000 \
                 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f \
                 00000000 02000000 00",
            ),
            (
                Frame::Request(Request {
                    request_id: 2,
                    xorb: MerkleHash::from_bytes([0xab; 32]),
                    chunks: ChunkRange::new(3, 4),
                    upstream: Some(Upstream {
                        url: "https://s3/x".into(),
                        byte_start: 100,
                        byte_end: 199,
                    }),
                    chunk_hashes: Some(vec![MerkleHash::from_bytes([0x11; 32])]),
                }),
                "6d000000 0103 02000000 \
                 abababababababababababababababababababababababababababababababab \
                 03000000 04000000 03 \
                 0c00 68747470733a2f2f73332f78 6400000000000000 c700000000000000 \
                 1111111111111111111111111111111111111111111111111111111111111111",
            ),
            (
                Frame::DataHeader(DataHeader {
                    request_id: 1,
                    total_len: 32,
                    num_chunks: 2,
                }),
                "12000000 0104 01000000 2000000000000000 02000000",
            ),
            (
                Frame::Data(Data {
                    request_id: 1,
                    offset: 0,
                    last: true,
                    payload: Bytes::from_static(b"abcd"),
                }),
                "13000000 0105 01000000 0000000000000000 01 61626364",
            ),
            (Frame::NotFound { request_id: 7 }, "06000000 0106 07000000"),
            (
                Frame::Error(ErrorFrame {
                    request_id: 0,
                    code: ErrorCode::PROTOCOL,
                    message: "bad".into(),
                }),
                "0d000000 0107 00000000 0100 0300 626164",
            ),
            (
                Frame::Ping {
                    nonce: 0x0102030405060708,
                },
                "0a000000 010a 0807060504030201",
            ),
        ]
    }

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn golden_frames_encode_and_decode_exactly() {
        for (frame, hex) in golden() {
            let bytes = unhex(hex);
            assert_eq!(frame.to_vec().expect("encode"), bytes, "{frame:?}");
            assert_eq!(frame.encoded_len(), bytes.len());
            assert_eq!(
                decode(&bytes, DEFAULT_MAX_FRAME_LEN).expect("decode"),
                Decoded::Frame {
                    frame,
                    consumed: bytes.len()
                }
            );
        }
    }

    #[test]
    fn every_prefix_is_incomplete_with_the_exact_shortfall() {
        for (frame, hex) in golden() {
            let bytes = unhex(hex);
            for cut in 0..bytes.len() {
                let got = decode(&bytes[..cut], DEFAULT_MAX_FRAME_LEN);
                let needed = if cut < 4 { 6 - cut } else { bytes.len() - cut };
                assert_eq!(
                    got,
                    Ok(Decoded::Incomplete { needed }),
                    "{frame:?} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn decode_uses_only_the_first_frame() {
        let mut bytes = handshake().to_vec().expect("encode");
        let first = bytes.len();
        request().encode(&mut bytes).expect("encode");
        match decode(&bytes, DEFAULT_MAX_FRAME_LEN) {
            Ok(Decoded::Frame { frame, consumed }) => {
                assert_eq!(frame, handshake());
                assert_eq!(consumed, first);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn decode_buf_splits_frames_and_shares_data_payloads() {
        let data = Frame::Data(Data {
            request_id: 3,
            offset: 10,
            last: false,
            payload: Bytes::from(vec![7u8; 1000]),
        });
        let mut buf = BytesMut::new();
        data.encode(&mut buf).expect("encode");
        Frame::Pong { nonce: 9 }.encode(&mut buf).expect("encode");
        let whole = buf.clone();
        // Feed it a byte at a time: None until each frame is complete.
        let mut rx = BytesMut::new();
        let mut got = Vec::new();
        for b in whole.iter() {
            rx.extend_from_slice(&[*b]);
            while let Some(f) = decode_buf(&mut rx, DEFAULT_MAX_FRAME_LEN).expect("decode") {
                got.push(f);
            }
        }
        assert_eq!(got, vec![data, Frame::Pong { nonce: 9 }]);
        assert!(rx.is_empty());
    }

    #[test]
    fn data_header_helper_matches_the_encoder() {
        let frame = Frame::Data(Data {
            request_id: 5,
            offset: 1 << 40,
            last: true,
            payload: Bytes::from_static(b"xyz"),
        });
        let mut split = Vec::new();
        encode_data_header(5, 1 << 40, true, 3, &mut split).expect("header");
        split.extend_from_slice(b"xyz");
        assert_eq!(split, frame.to_vec().expect("encode"));
        assert!(encode_data_header(0, 0, true, 3, &mut split).is_err());
        assert!(encode_data_header(1, 0, true, 0, &mut split).is_err());
        assert!(encode_data_header(1, u64::MAX, true, 1, &mut split).is_err());
    }

    #[test]
    fn header_errors_are_reported_before_the_body_arrives() {
        let max = DEFAULT_MAX_FRAME_LEN;
        assert_eq!(
            decode(&[1, 0, 0, 0], max),
            Err(FrameError::FrameTooShort { len: 1 })
        );
        assert_eq!(
            decode(&(max + 1).to_le_bytes(), max),
            Err(FrameError::FrameTooLarge {
                len: u64::from(max) + 1,
                max
            })
        );
        assert_eq!(
            decode(&[100, 0, 0, 0, 2], max),
            Err(FrameError::UnsupportedVersion(2))
        );
        assert_eq!(
            decode(&[100, 0, 0, 0, 1, 0x7f], max),
            Err(FrameError::UnknownType(0x7f))
        );
        assert_eq!(
            decode(&[100, 0, 0, 0, 1, 0], max),
            Err(FrameError::UnknownType(0))
        );
        // The caller's limit applies, capped at the protocol's absolute maximum.
        assert_eq!(
            decode(&(ABSOLUTE_MAX_FRAME_LEN + 1).to_le_bytes(), u32::MAX),
            Err(FrameError::FrameTooLarge {
                len: u64::from(ABSOLUTE_MAX_FRAME_LEN) + 1,
                max: ABSOLUTE_MAX_FRAME_LEN
            })
        );
    }

    fn body_error(frame: Vec<u8>) -> FrameError {
        let mut full = ((frame.len() + 1) as u32).to_le_bytes().to_vec();
        full.push(WIRE_VERSION);
        full.extend_from_slice(&frame);
        match decode(&full, DEFAULT_MAX_FRAME_LEN) {
            Err(e) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn malformed_bodies_give_typed_errors() {
        // Ping with a short nonce.
        assert!(matches!(
            body_error(vec![0x0a, 1, 2, 3]),
            FrameError::Truncated { field: "nonce", .. }
        ));
        // NotFound with a trailing byte.
        assert!(matches!(
            body_error(vec![0x06, 1, 0, 0, 0, 9]),
            FrameError::TrailingBytes { count: 1, .. }
        ));
        // NotFound for request 0.
        assert!(matches!(
            body_error(vec![0x06, 0, 0, 0, 0]),
            FrameError::InvalidField {
                field: "request_id",
                ..
            }
        ));
        // Data with an unknown flag bit and with no payload.
        let mut d = vec![0x05, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0xaa];
        assert!(matches!(
            body_error(d.clone()),
            FrameError::InvalidField { field: "flags", .. }
        ));
        d[13] = 1;
        d.pop();
        assert!(matches!(
            body_error(d),
            FrameError::InvalidField {
                field: "payload",
                ..
            }
        ));
        // Have claiming more entries than it carries (no allocation of 8192 entries happens
        // before the length check).
        assert!(matches!(
            body_error(vec![0x02, 0x00, 0x20]),
            FrameError::Truncated {
                field: "entries",
                ..
            }
        ));
        // Have claiming more entries than allowed.
        assert!(matches!(
            body_error(vec![0x02, 0xff, 0xff]),
            FrameError::BadLength {
                field: "entries",
                ..
            }
        ));
        // Error whose message is not UTF-8.
        assert!(matches!(
            body_error(vec![0x07, 0, 0, 0, 0, 1, 0, 2, 0, 0xff, 0xfe]),
            FrameError::InvalidField {
                field: "message",
                ..
            }
        ));
        // Handshake with an unknown role.
        let mut h = handshake().to_vec().expect("encode");
        h[7] = 9;
        assert!(matches!(
            decode(&h, DEFAULT_MAX_FRAME_LEN),
            Err(FrameError::InvalidField { field: "role", .. })
        ));
        // Handshake advertising a max_frame_len below the minimum.
        let mut h = handshake().to_vec().expect("encode");
        h[12..16].copy_from_slice(&1000u32.to_le_bytes());
        assert!(matches!(
            decode(&h, DEFAULT_MAX_FRAME_LEN),
            Err(FrameError::BadLength {
                field: "max_frame_len",
                ..
            })
        ));
    }

    #[test]
    fn request_rules_are_enforced_both_ways() {
        let Frame::Request(base) = request() else {
            unreachable!()
        };
        let bad = |f: fn(&mut Request)| {
            let mut r = base.clone();
            f(&mut r);
            Frame::Request(r).to_vec().expect_err("must not encode")
        };
        assert!(matches!(
            bad(|r| r.request_id = 0),
            FrameError::InvalidField { .. }
        ));
        assert!(matches!(
            bad(|r| r.chunks = ChunkRange::new(3, 3)),
            FrameError::InvalidField { .. }
        ));
        assert!(matches!(
            bad(|r| r.chunks = ChunkRange::new(0, MAX_REQUEST_CHUNKS + 1)),
            FrameError::BadLength { .. }
        ));
        assert!(matches!(
            bad(|r| r.chunk_hashes = Some(vec![MerkleHash::ZERO])),
            FrameError::BadLength {
                field: "chunk_hashes",
                ..
            }
        ));
        assert!(matches!(
            bad(|r| {
                r.upstream = Some(Upstream {
                    url: "https://x/y".into(),
                    byte_start: 10,
                    byte_end: 9,
                })
            }),
            FrameError::InvalidField {
                field: "byte_range",
                ..
            }
        ));
        assert!(matches!(
            bad(|r| {
                r.upstream = Some(Upstream {
                    url: "u".repeat(MAX_URL_LEN + 1),
                    byte_start: 0,
                    byte_end: 0,
                })
            }),
            FrameError::BadLength { field: "url", .. }
        ));
        // Unknown request flag bits are rejected on decode.
        let mut bytes = request().to_vec().expect("encode");
        let last = bytes.len() - 1;
        bytes[last] = 0x04;
        assert!(matches!(
            decode(&bytes, DEFAULT_MAX_FRAME_LEN),
            Err(FrameError::InvalidField { field: "flags", .. })
        ));
        // The hashes flag set but the hashes missing.
        bytes[last] = 0x02;
        assert!(matches!(
            decode(&bytes, DEFAULT_MAX_FRAME_LEN),
            Err(FrameError::Truncated {
                field: "chunk_hashes",
                ..
            })
        ));
    }
}
