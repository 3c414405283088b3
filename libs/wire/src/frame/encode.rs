//! The encoder: [`Frame::encode`] and its helpers, the validation it shares with the decoder's
//! rules ([`Frame::validate`]), and [`encode_data_header`] for Data frames whose payload the
//! caller writes itself.

use bytes::BufMut;

use super::checks::{check_id, check_len, check_range, invalid};
use super::*;
use crate::error::FrameError;
use crate::limits::*;

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
