//! The decoder: [`decode`] over `&[u8]`, [`decode_buf`] over a receive buffer, the header check
//! that rejects a bad frame before its body arrives, the per-type parser, and
//! [`decode_data_prefix`] for receivers that move a Data payload straight from the socket.

use bytes::{Bytes, BytesMut};
use xet::MerkleHash;

use super::checks::{check_id, check_len, check_range, invalid};
use super::*;
use crate::error::{ErrorCode, FrameError};
use crate::limits::*;

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
            let peer_id = r.string_u8("peer_id_len", "peer_id")?;
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
                let url = r.string_u16("url_len", "url")?;
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
            let message = r.string_u16("message_len", "message")?;
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
                peers.push(r.string_u8("peer_addr_len", "peer_addr")?);
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

    /// A UTF-8 string preceded by its `u8` length (field `len_field`).
    fn string_u8(
        &mut self,
        len_field: &'static str,
        field: &'static str,
    ) -> Result<String, FrameError> {
        let n = self.u8(len_field)? as usize;
        self.string(field, n)
    }

    /// A UTF-8 string preceded by its `u16` length (field `len_field`).
    fn string_u16(
        &mut self,
        len_field: &'static str,
        field: &'static str,
    ) -> Result<String, FrameError> {
        let n = self.u16(len_field)? as usize;
        self.string(field, n)
    }

    fn string(&mut self, field: &'static str, n: usize) -> Result<String, FrameError> {
        let ty = self.ty;
        let bytes = self.take(n, field)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| invalid(ty, field, "not valid UTF-8"))
    }
}
