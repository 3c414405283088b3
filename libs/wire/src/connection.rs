//! The per-connection state machine, sans-IO: it sees every frame a side sends
//! ([`Connection::on_send`]) and receives ([`Connection::on_receive`]) and enforces the
//! protocol's ordering rules, so the server (edge, seed) and the client drive the same code.
//!
//! Rules (`docs/wire-protocol.md`, "State machine"): each side's first frame is its Handshake
//! and it sends exactly one; nothing but a connection-level Error may be sent before the peer's
//! Handshake arrived. Either side may send Requests (ids are scoped to the requester), up to
//! the peer's advertised `max_in_flight`, never reusing an id still in flight. A response is
//! a DataHeader then Data frames with contiguous offsets whose lengths add up to the header's
//! `total_len`, the last one flagged `last`; or a NotFound (before any DataHeader); or an Error
//! with the request's id (at any point). Cancel is advisory: the responder ends the response
//! with an Error `CANCELLED` unless it already finished, and frames that were in flight are
//! accepted and reported as [`Accepted::Discard`].
//!
//! A violation by the peer is a [`ProtocolError`]: the I/O layer sends
//! [`ProtocolError::to_error_frame`] and closes. A violation on the send side is a bug in the
//! caller; the frame must not be sent. After a connection-level Error (request id 0) is sent or
//! received, the connection is closed and every further frame is refused.

use std::collections::HashMap;

use crate::error::{ErrorCode, FrameError};
use crate::frame::{Data, DataPrefix, ErrorFrame, Frame, FrameType, Handshake};
use crate::limits::*;

/// A frame that breaks the protocol's state rules (or cannot be decoded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("the first frame must be a Handshake, got {0:?}")]
    HandshakeRequired(FrameType),
    #[error("a second Handshake on the connection")]
    DuplicateHandshake,
    #[error("peer speaks protocol versions up to {0}, this side needs {WIRE_VERSION}")]
    IncompatibleVersion(u8),
    #[error("frame of {len} bytes exceeds the peer's max_frame_len {max}")]
    FrameTooLargeForPeer { len: u64, max: u32 },
    #[error("request id {0} is already in flight")]
    DuplicateRequestId(u32),
    #[error("more than {max} requests in flight")]
    TooManyInFlight { max: u16 },
    #[error("{frame_type:?} for request id {request_id}, which is not in flight")]
    UnknownRequestId {
        frame_type: FrameType,
        request_id: u32,
    },
    #[error("Data for request {0} before its DataHeader")]
    DataBeforeHeader(u32),
    #[error("{frame_type:?} for request {request_id} after its DataHeader")]
    AfterDataHeader {
        frame_type: FrameType,
        request_id: u32,
    },
    #[error("DataHeader for request {request_id} announces {got} chunks, {expected} requested")]
    ChunkCountMismatch {
        request_id: u32,
        expected: u32,
        got: u32,
    },
    #[error("response of {len} bytes for request {request_id} exceeds the limit of {max}")]
    ResponseTooLarge { request_id: u32, len: u64, max: u64 },
    #[error("Data for request {request_id} at offset {got}, expected {expected}")]
    OffsetMismatch {
        request_id: u32,
        expected: u64,
        got: u64,
    },
    #[error("Data for request {request_id} ends at {end}, past total_len {total}")]
    LengthExceeded {
        request_id: u32,
        end: u64,
        total: u64,
    },
    #[error("Data for request {request_id} ending at {end} of {total} has last = {last}")]
    LastFlagMismatch {
        request_id: u32,
        end: u64,
        total: u64,
        last: bool,
    },
    #[error("Cancel for request {0} that is already cancelled")]
    AlreadyCancelled(u32),
    #[error("the connection is closed")]
    Closed,
}

impl ProtocolError {
    /// The code of the Error frame that answers this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtocolError::Frame(e) => e.code(),
            ProtocolError::IncompatibleVersion(_) => ErrorCode::UNSUPPORTED_VERSION,
            ProtocolError::FrameTooLargeForPeer { .. } => ErrorCode::FRAME_TOO_LARGE,
            ProtocolError::TooManyInFlight { .. } => ErrorCode::TOO_MANY_REQUESTS,
            _ => ErrorCode::PROTOCOL,
        }
    }

    /// The connection-level Error frame (request id 0) to send before closing.
    pub fn to_error_frame(&self) -> Frame {
        let mut message = self.to_string();
        if message.len() > MAX_ERROR_MESSAGE_LEN {
            let mut cut = MAX_ERROR_MESSAGE_LEN;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        Frame::Error(ErrorFrame {
            request_id: 0,
            code: self.code(),
            message,
        })
    }
}

/// What the receiver should do with a frame [`Connection::on_receive`] accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Handle it.
    Deliver,
    /// It answers a request this side cancelled: drop it.
    Discard,
    /// The peer closed the connection with a connection-level Error: log it and close.
    Close,
}

/// Where a response stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitHeader,
    Body { total: u64, received: u64 },
}

#[derive(Debug, Clone, Copy)]
struct Stream {
    chunks: u32,
    phase: Phase,
    cancelled: bool,
}

/// Which table a response frame is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// This side sends the frame: it answers one of the peer's requests.
    Send,
    /// This side receives the frame: it answers one of this side's requests.
    Receive,
}

/// One connection's protocol state, driven by the I/O layer on both the serving and the
/// requesting side.
#[derive(Debug)]
pub struct Connection {
    local: Handshake,
    limits: Limits,
    handshake_sent: bool,
    peer: Option<Handshake>,
    closed: bool,
    /// Requests this side sent and the peer has not finished answering.
    outgoing: HashMap<u32, Stream>,
    /// Requests the peer sent and this side has not finished answering.
    incoming: HashMap<u32, Stream>,
    next_id: u32,
}

impl Connection {
    /// A new connection that will send `local` as its Handshake. The Handshake's
    /// `max_frame_len` and `max_in_flight` are replaced by `limits` (clamped into the allowed
    /// range) so that what is advertised is what is enforced.
    pub fn new(mut local: Handshake, limits: Limits) -> Connection {
        let limits = limits.clamped();
        local.max_frame_len = limits.max_frame_len;
        local.max_in_flight = limits.max_in_flight;
        local.max_version = WIRE_VERSION;
        Connection {
            local,
            limits,
            handshake_sent: false,
            peer: None,
            closed: false,
            outgoing: HashMap::new(),
            incoming: HashMap::new(),
            next_id: 1,
        }
    }

    /// The Handshake frame to send first.
    pub fn handshake_frame(&self) -> Frame {
        Frame::Handshake(self.local.clone())
    }

    /// The limits this side enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The length-prefix limit to pass to [`decode`](crate::decode) for received frames.
    pub fn recv_max_frame_len(&self) -> u32 {
        self.limits.max_frame_len
    }

    /// The peer's Handshake, once received.
    pub fn peer(&self) -> Option<&Handshake> {
        self.peer.as_ref()
    }

    /// Whether both Handshakes have been exchanged and the connection is open.
    pub fn is_ready(&self) -> bool {
        self.handshake_sent && self.peer.is_some() && !self.closed
    }

    /// Whether a connection-level Error was sent or received.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Requests this side sent that are still in flight.
    pub fn outgoing_in_flight(&self) -> usize {
        self.outgoing.len()
    }

    /// Requests of the peer this side has not finished answering.
    pub fn incoming_in_flight(&self) -> usize {
        self.incoming.len()
    }

    /// Whether the peer's request `request_id` is in flight and was cancelled by the peer
    /// (the responder should stop and send an Error `CANCELLED`).
    pub fn is_incoming_cancelled(&self, request_id: u32) -> bool {
        self.incoming.get(&request_id).is_some_and(|s| s.cancelled)
    }

    /// How many more requests this side may send now (0 before the peer's Handshake).
    pub fn request_capacity(&self) -> usize {
        match &self.peer {
            Some(p) if !self.closed => {
                usize::from(p.max_in_flight).saturating_sub(self.outgoing.len())
            }
            _ => 0,
        }
    }

    /// Largest Data payload the peer accepts in one frame.
    pub fn max_data_piece(&self) -> usize {
        let max = self
            .peer
            .as_ref()
            .map_or(MIN_MAX_FRAME_LEN, |p| p.max_frame_len);
        (max - DATA_FRAME_OVERHEAD) as usize
    }

    /// A request id not in flight (non-zero; ids are reused only after their request ended).
    pub fn next_request_id(&mut self) -> u32 {
        // At most MAX_IN_FLIGHT_LIMIT ids are in flight, so this finds one within that many
        // steps plus one.
        for _ in 0..=usize::from(MAX_IN_FLIGHT_LIMIT) + 1 {
            let id = self.next_id;
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            if !self.outgoing.contains_key(&id) {
                return id;
            }
        }
        // Unreachable while on_send enforces the in-flight limit; fall back to the next id.
        self.next_id
    }

    /// Checks and records a frame this side is about to send. An error means the frame breaks
    /// the protocol and must not be sent (a bug in the caller, or a Cancel that raced the
    /// response's end).
    pub fn on_send(&mut self, frame: &Frame) -> Result<(), ProtocolError> {
        if let Frame::Data(d) = frame {
            return self.on_send_data(d.request_id, d.offset, d.payload.len(), d.last);
        }
        frame.validate()?;
        if self.closed {
            return Err(ProtocolError::Closed);
        }
        if is_connection_error(frame) {
            self.closed = true;
            return Ok(());
        }
        if let Frame::Handshake(_) = frame {
            if self.handshake_sent {
                return Err(ProtocolError::DuplicateHandshake);
            }
            self.handshake_sent = true;
            return Ok(());
        }
        if !self.handshake_sent {
            return Err(ProtocolError::HandshakeRequired(frame.frame_type()));
        }
        let Some(peer) = &self.peer else {
            return Err(ProtocolError::HandshakeRequired(FrameType::Handshake));
        };
        let len = frame.frame_len();
        if len > u64::from(peer.max_frame_len) {
            return Err(ProtocolError::FrameTooLargeForPeer {
                len,
                max: peer.max_frame_len,
            });
        }
        match frame {
            Frame::Request(r) => {
                let max = peer.max_in_flight;
                open_request(&mut self.outgoing, r.request_id, r.chunks.len(), max)
            }
            Frame::Cancel { request_id } => match self.outgoing.get_mut(request_id) {
                Some(s) if s.cancelled => Err(ProtocolError::AlreadyCancelled(*request_id)),
                Some(s) => {
                    s.cancelled = true;
                    Ok(())
                }
                None => Err(unknown(frame)),
            },
            _ => respond(&mut self.incoming, frame, Dir::Send, u64::MAX).map(|_| ()),
        }
    }

    /// [`on_send`](Self::on_send) for a Data frame whose header is written with
    /// [`encode_data_header`](crate::encode_data_header) and whose payload is written
    /// separately.
    pub fn on_send_data(
        &mut self,
        request_id: u32,
        offset: u64,
        payload_len: usize,
        last: bool,
    ) -> Result<(), ProtocolError> {
        if self.closed {
            return Err(ProtocolError::Closed);
        }
        if !self.handshake_sent {
            return Err(ProtocolError::HandshakeRequired(FrameType::Data));
        }
        let Some(peer) = &self.peer else {
            return Err(ProtocolError::HandshakeRequired(FrameType::Handshake));
        };
        let len = u64::from(DATA_FRAME_OVERHEAD) + payload_len as u64;
        if len > u64::from(peer.max_frame_len) {
            return Err(ProtocolError::FrameTooLargeForPeer {
                len,
                max: peer.max_frame_len,
            });
        }
        let piece = DataPiece {
            request_id,
            offset,
            len: payload_len as u64,
            last,
        };
        piece.validate()?;
        data(&mut self.incoming, piece).map(|_| ())
    }

    /// [`on_receive`](Self::on_receive) for a Data frame of which only the fixed part was
    /// decoded ([`decode_data_prefix`](crate::decode_data_prefix)); the caller then reads
    /// `payload_len` bytes of payload itself.
    pub fn on_receive_data(&mut self, prefix: &DataPrefix) -> Result<Accepted, ProtocolError> {
        let piece = DataPiece {
            request_id: prefix.request_id,
            offset: prefix.offset,
            len: prefix.payload_len as u64,
            last: prefix.last,
        };
        piece.validate()?;
        if self.closed {
            return Err(ProtocolError::Closed);
        }
        if self.peer.is_none() {
            return Err(ProtocolError::HandshakeRequired(FrameType::Data));
        }
        data(&mut self.outgoing, piece).map(accepted)
    }

    /// Checks and records a frame received from the peer (already decoded with
    /// [`recv_max_frame_len`](Self::recv_max_frame_len)). An error is the peer's violation:
    /// send [`ProtocolError::to_error_frame`] and close.
    pub fn on_receive(&mut self, frame: &Frame) -> Result<Accepted, ProtocolError> {
        frame.validate()?;
        if self.closed {
            return Err(ProtocolError::Closed);
        }
        if is_connection_error(frame) {
            self.closed = true;
            return Ok(Accepted::Close);
        }
        if let Frame::Handshake(h) = frame {
            if self.peer.is_some() {
                return Err(ProtocolError::DuplicateHandshake);
            }
            if h.max_version < WIRE_VERSION {
                return Err(ProtocolError::IncompatibleVersion(h.max_version));
            }
            self.peer = Some(h.clone());
            return Ok(Accepted::Deliver);
        }
        if self.peer.is_none() {
            return Err(ProtocolError::HandshakeRequired(frame.frame_type()));
        }
        match frame {
            Frame::Request(r) => {
                let max = self.limits.max_in_flight;
                open_request(&mut self.incoming, r.request_id, r.chunks.len(), max)?;
                Ok(Accepted::Deliver)
            }
            Frame::Cancel { request_id } => {
                // A Cancel for a request already answered crossed the response: ignore it.
                if let Some(s) = self.incoming.get_mut(request_id) {
                    s.cancelled = true;
                }
                Ok(Accepted::Deliver)
            }
            Frame::Data(d) => {
                let piece = DataPiece::of(d);
                data(&mut self.outgoing, piece).map(accepted)
            }
            _ => respond(
                &mut self.outgoing,
                frame,
                Dir::Receive,
                self.limits.max_response_len,
            )
            .map(accepted),
        }
    }
}

fn accepted(cancelled: bool) -> Accepted {
    if cancelled {
        Accepted::Discard
    } else {
        Accepted::Deliver
    }
}

fn is_connection_error(frame: &Frame) -> bool {
    matches!(frame, Frame::Error(e) if e.request_id == 0)
}

fn unknown(frame: &Frame) -> ProtocolError {
    ProtocolError::UnknownRequestId {
        frame_type: frame.frame_type(),
        request_id: frame.request_id().unwrap_or(0),
    }
}

fn open_request(
    table: &mut HashMap<u32, Stream>,
    request_id: u32,
    chunks: u32,
    max_in_flight: u16,
) -> Result<(), ProtocolError> {
    if table.contains_key(&request_id) {
        return Err(ProtocolError::DuplicateRequestId(request_id));
    }
    if table.len() >= usize::from(max_in_flight) {
        return Err(ProtocolError::TooManyInFlight { max: max_in_flight });
    }
    table.insert(
        request_id,
        Stream {
            chunks,
            phase: Phase::AwaitHeader,
            cancelled: false,
        },
    );
    Ok(())
}

/// Applies a non-Data response frame (DataHeader, NotFound, request Error) or a frame that
/// belongs to no request (Have, PeerExchange, Ping, Pong). Returns whether the request it
/// answers was cancelled.
fn respond(
    table: &mut HashMap<u32, Stream>,
    frame: &Frame,
    dir: Dir,
    max_response_len: u64,
) -> Result<bool, ProtocolError> {
    let (request_id, ty) = match frame {
        Frame::DataHeader(h) => (h.request_id, FrameType::DataHeader),
        Frame::NotFound { request_id } => (*request_id, FrameType::NotFound),
        Frame::Error(e) => (e.request_id, FrameType::Error),
        Frame::Have(_) | Frame::PeerExchange(_) | Frame::Ping { .. } | Frame::Pong { .. } => {
            return Ok(false)
        }
        // Handshake, Request, Cancel and Data are handled by the callers.
        _ => return Err(unknown(frame)),
    };
    let Some(stream) = table.get_mut(&request_id) else {
        return Err(unknown(frame));
    };
    let cancelled = stream.cancelled;
    match frame {
        Frame::DataHeader(h) => {
            if stream.phase != Phase::AwaitHeader {
                return Err(ProtocolError::AfterDataHeader {
                    frame_type: ty,
                    request_id,
                });
            }
            if h.num_chunks != stream.chunks {
                return Err(ProtocolError::ChunkCountMismatch {
                    request_id,
                    expected: stream.chunks,
                    got: h.num_chunks,
                });
            }
            if dir == Dir::Receive && h.total_len > max_response_len {
                return Err(ProtocolError::ResponseTooLarge {
                    request_id,
                    len: h.total_len,
                    max: max_response_len,
                });
            }
            stream.phase = Phase::Body {
                total: h.total_len,
                received: 0,
            };
        }
        Frame::NotFound { .. } => {
            if stream.phase != Phase::AwaitHeader {
                return Err(ProtocolError::AfterDataHeader {
                    frame_type: ty,
                    request_id,
                });
            }
            table.remove(&request_id);
        }
        _ => {
            // An Error with a request id ends that request at any point.
            table.remove(&request_id);
        }
    }
    Ok(cancelled)
}

/// The fields of a Data frame the state machine checks.
#[derive(Debug, Clone, Copy)]
struct DataPiece {
    request_id: u32,
    offset: u64,
    len: u64,
    last: bool,
}

impl DataPiece {
    fn of(d: &Data) -> DataPiece {
        DataPiece {
            request_id: d.request_id,
            offset: d.offset,
            len: d.payload.len() as u64,
            last: d.last,
        }
    }

    fn validate(&self) -> Result<(), FrameError> {
        let ty = FrameType::Data;
        if self.request_id == 0 {
            return Err(FrameError::InvalidField {
                frame_type: ty,
                field: "request_id",
                reason: "0 is reserved for the connection",
            });
        }
        if self.len == 0 {
            return Err(FrameError::InvalidField {
                frame_type: ty,
                field: "payload",
                reason: "empty",
            });
        }
        Ok(())
    }
}

/// Applies a Data piece to the response it belongs to. Returns whether that request was
/// cancelled.
fn data(table: &mut HashMap<u32, Stream>, piece: DataPiece) -> Result<bool, ProtocolError> {
    let request_id = piece.request_id;
    let Some(stream) = table.get_mut(&request_id) else {
        return Err(ProtocolError::UnknownRequestId {
            frame_type: FrameType::Data,
            request_id,
        });
    };
    let Phase::Body { total, received } = stream.phase else {
        return Err(ProtocolError::DataBeforeHeader(request_id));
    };
    if piece.offset != received {
        return Err(ProtocolError::OffsetMismatch {
            request_id,
            expected: received,
            got: piece.offset,
        });
    }
    let end = received.saturating_add(piece.len);
    if end > total {
        return Err(ProtocolError::LengthExceeded {
            request_id,
            end,
            total,
        });
    }
    if piece.last != (end == total) {
        return Err(ProtocolError::LastFlagMismatch {
            request_id,
            end,
            total,
            last: piece.last,
        });
    }
    let cancelled = stream.cancelled;
    if piece.last {
        table.remove(&request_id);
    } else {
        stream.phase = Phase::Body {
            total,
            received: end,
        };
    }
    Ok(cancelled)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use xet::MerkleHash;

    use super::*;
    use crate::frame::{ChunkRange, DataHeader, Request, Role};
    use crate::Capabilities;

    fn conn(role: Role, limits: Limits) -> Connection {
        let id = format!("{role:?}");
        Connection::new(
            Handshake::new(id, role, Capabilities::SERVE, &limits),
            limits,
        )
    }

    /// A client and an edge that have exchanged Handshakes; the edge accepts `max_in_flight`.
    fn pair(max_in_flight: u16) -> (Connection, Connection) {
        let mut client = conn(Role::Client, Limits::default());
        let edge_limits = Limits {
            max_in_flight,
            ..Limits::default()
        };
        let mut edge = conn(Role::Edge, edge_limits);
        let h = client.handshake_frame();
        assert_eq!(exchange(&mut client, &mut edge, &h), Ok(Accepted::Deliver));
        let h = edge.handshake_frame();
        assert_eq!(exchange(&mut edge, &mut client, &h), Ok(Accepted::Deliver));
        assert!(client.is_ready() && edge.is_ready());
        (client, edge)
    }

    fn req(id: u32, chunks: u32) -> Frame {
        Frame::Request(Request {
            request_id: id,
            xorb: MerkleHash::ZERO,
            chunks: ChunkRange::new(0, chunks),
            upstream: None,
            chunk_hashes: None,
        })
    }

    fn header(id: u32, total_len: u64, num_chunks: u32) -> Frame {
        Frame::DataHeader(DataHeader {
            request_id: id,
            total_len,
            num_chunks,
        })
    }

    fn data(id: u32, offset: u64, len: usize, last: bool) -> Frame {
        Frame::Data(Data {
            request_id: id,
            offset,
            last,
            payload: Bytes::from(vec![0u8; len]),
        })
    }

    /// Sends `f` from `a` and delivers it to `b`, both state machines checking it.
    fn exchange(
        a: &mut Connection,
        b: &mut Connection,
        f: &Frame,
    ) -> Result<Accepted, ProtocolError> {
        a.on_send(f)?;
        b.on_receive(f)
    }

    #[test]
    fn a_full_exchange_is_accepted_by_both_sides() {
        let (mut client, mut edge) = pair(64);
        let id = client.next_request_id();
        assert_eq!(
            exchange(&mut client, &mut edge, &req(id, 2)),
            Ok(Accepted::Deliver)
        );
        assert_eq!(
            (client.outgoing_in_flight(), edge.incoming_in_flight()),
            (1, 1)
        );
        exchange(&mut edge, &mut client, &header(id, 40, 2)).expect("header");
        exchange(&mut edge, &mut client, &data(id, 0, 30, false)).expect("piece 1");
        // The zero-copy path checks the same rules as a whole Data frame.
        edge.on_send_data(id, 30, 10, true).expect("piece 2");
        assert_eq!(
            client.on_receive(&data(id, 30, 10, true)),
            Ok(Accepted::Deliver)
        );
        assert_eq!(
            (client.outgoing_in_flight(), edge.incoming_in_flight()),
            (0, 0)
        );
        // NotFound and a per-request Error end a request too; the id can then be reused.
        exchange(&mut client, &mut edge, &req(id, 1)).expect("reuse id");
        exchange(&mut edge, &mut client, &Frame::NotFound { request_id: id }).expect("nf");
        exchange(&mut client, &mut edge, &req(id, 1)).expect("reuse id");
        let err = Frame::Error(ErrorFrame {
            request_id: id,
            code: ErrorCode::UPSTREAM_FAILED,
            message: "403".into(),
        });
        exchange(&mut edge, &mut client, &err).expect("error");
        assert_eq!(
            (client.outgoing_in_flight(), edge.incoming_in_flight()),
            (0, 0)
        );
        // Frames outside any request flow both ways.
        exchange(&mut client, &mut edge, &Frame::Ping { nonce: 1 }).expect("ping");
        exchange(&mut edge, &mut client, &Frame::Pong { nonce: 1 }).expect("pong");
    }

    #[test]
    fn first_frame_must_be_a_handshake() {
        let mut edge = conn(Role::Edge, Limits::default());
        assert_eq!(
            edge.on_receive(&req(1, 1)),
            Err(ProtocolError::HandshakeRequired(FrameType::Request))
        );
        assert_eq!(
            edge.on_send(&Frame::Ping { nonce: 0 }),
            Err(ProtocolError::HandshakeRequired(FrameType::Ping))
        );
        // Sending our Handshake is not enough to send requests: the peer's must arrive first.
        edge.on_send(&edge.handshake_frame()).expect("handshake");
        assert_eq!(
            edge.on_send(&req(1, 1)),
            Err(ProtocolError::HandshakeRequired(FrameType::Handshake))
        );
    }

    #[test]
    fn handshake_twice_is_rejected() {
        let (mut client, mut edge) = pair(64);
        let h = client.handshake_frame();
        assert_eq!(edge.on_receive(&h), Err(ProtocolError::DuplicateHandshake));
        assert_eq!(client.on_send(&h), Err(ProtocolError::DuplicateHandshake));
    }

    #[test]
    fn data_before_request_or_header_is_rejected() {
        let (mut client, mut edge) = pair(64);
        assert!(matches!(
            client.on_receive(&data(1, 0, 8, true)),
            Err(ProtocolError::UnknownRequestId { .. })
        ));
        assert!(matches!(
            client.on_receive(&header(1, 8, 1)),
            Err(ProtocolError::UnknownRequestId { .. })
        ));
        assert!(matches!(
            edge.on_send(&header(1, 8, 1)),
            Err(ProtocolError::UnknownRequestId { .. })
        ));
        exchange(&mut client, &mut edge, &req(1, 1)).expect("request");
        assert_eq!(
            client.on_receive(&data(1, 0, 8, true)),
            Err(ProtocolError::DataBeforeHeader(1))
        );
        assert_eq!(
            edge.on_send_data(1, 0, 8, true),
            Err(ProtocolError::DataBeforeHeader(1))
        );
    }

    #[test]
    fn duplicate_request_id_is_rejected() {
        let (mut client, mut edge) = pair(64);
        exchange(&mut client, &mut edge, &req(5, 1)).expect("first");
        assert_eq!(
            client.on_send(&req(5, 1)),
            Err(ProtocolError::DuplicateRequestId(5))
        );
        assert_eq!(
            edge.on_receive(&req(5, 1)),
            Err(ProtocolError::DuplicateRequestId(5))
        );
    }

    #[test]
    fn too_many_in_flight_is_rejected() {
        let (mut client, mut edge) = pair(3);
        for _ in 0..3 {
            let id = client.next_request_id();
            exchange(&mut client, &mut edge, &req(id, 1)).expect("within limit");
        }
        assert_eq!(client.request_capacity(), 0);
        // The sender refuses to exceed the peer's advertised limit ...
        assert_eq!(
            client.on_send(&req(99, 1)),
            Err(ProtocolError::TooManyInFlight { max: 3 })
        );
        // ... and the receiver refuses a peer that does.
        let e = edge.on_receive(&req(99, 1)).expect_err("over limit");
        assert_eq!(e, ProtocolError::TooManyInFlight { max: 3 });
        assert_eq!(e.code(), ErrorCode::TOO_MANY_REQUESTS);
        match e.to_error_frame() {
            Frame::Error(f) => {
                assert_eq!(f.request_id, 0);
                assert_eq!(f.code, ErrorCode::TOO_MANY_REQUESTS);
                Frame::Error(f).to_vec().expect("the error frame encodes");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn response_body_rules() {
        let (mut client, mut edge) = pair(64);
        exchange(&mut client, &mut edge, &req(1, 2)).expect("request");
        assert_eq!(
            client.on_receive(&header(1, 100, 3)),
            Err(ProtocolError::ChunkCountMismatch {
                request_id: 1,
                expected: 2,
                got: 3
            })
        );
        assert!(matches!(
            client.on_receive(&header(1, DEFAULT_MAX_RESPONSE_LEN + 1, 2)),
            Err(ProtocolError::ResponseTooLarge { .. })
        ));
        exchange(&mut edge, &mut client, &header(1, 100, 2)).expect("header");
        assert!(matches!(
            client.on_receive(&header(1, 100, 2)),
            Err(ProtocolError::AfterDataHeader { .. })
        ));
        assert!(matches!(
            client.on_receive(&Frame::NotFound { request_id: 1 }),
            Err(ProtocolError::AfterDataHeader { .. })
        ));
        assert!(matches!(
            client.on_receive(&data(1, 5, 10, false)),
            Err(ProtocolError::OffsetMismatch {
                expected: 0,
                got: 5,
                ..
            })
        ));
        assert!(matches!(
            client.on_receive(&data(1, 0, 101, true)),
            Err(ProtocolError::LengthExceeded {
                end: 101,
                total: 100,
                ..
            })
        ));
        assert!(matches!(
            client.on_receive(&data(1, 0, 100, false)),
            Err(ProtocolError::LastFlagMismatch { last: false, .. })
        ));
        assert!(matches!(
            client.on_receive(&data(1, 0, 50, true)),
            Err(ProtocolError::LastFlagMismatch { last: true, .. })
        ));
        // The same rules bind the sender.
        assert!(matches!(
            edge.on_send(&data(1, 0, 50, true)),
            Err(ProtocolError::LastFlagMismatch { .. })
        ));
        exchange(&mut edge, &mut client, &data(1, 0, 50, false)).expect("piece");
        exchange(&mut edge, &mut client, &data(1, 50, 50, true)).expect("last");
        assert!(matches!(
            client.on_receive(&data(1, 100, 1, true)),
            Err(ProtocolError::UnknownRequestId { .. })
        ));
    }

    #[test]
    fn frames_over_the_peers_limit_are_not_sent() {
        let (mut client, mut edge) = pair(64);
        exchange(&mut client, &mut edge, &req(1, 1)).expect("request");
        let total = u64::from(DEFAULT_MAX_FRAME_LEN);
        exchange(&mut edge, &mut client, &header(1, total, 1)).expect("header");
        let piece = edge.max_data_piece();
        assert_eq!(piece, DATA_PIECE_LEN as usize);
        assert!(matches!(
            edge.on_send_data(1, 0, piece + 1, false),
            Err(ProtocolError::FrameTooLargeForPeer { .. })
        ));
        edge.on_send_data(1, 0, piece, false).expect("a full piece");
    }

    #[test]
    fn cancel_is_advisory_and_late_frames_are_discarded() {
        let (mut client, mut edge) = pair(64);
        exchange(&mut client, &mut edge, &req(1, 1)).expect("request");
        edge.on_send(&header(1, 16, 1)).expect("header in flight");
        exchange(&mut client, &mut edge, &Frame::Cancel { request_id: 1 }).expect("cancel");
        assert!(edge.is_incoming_cancelled(1));
        assert_eq!(
            client.on_send(&Frame::Cancel { request_id: 1 }),
            Err(ProtocolError::AlreadyCancelled(1))
        );
        // The header that crossed the Cancel is accepted and marked for discarding.
        assert_eq!(client.on_receive(&header(1, 16, 1)), Ok(Accepted::Discard));
        let cancelled = Frame::Error(ErrorFrame {
            request_id: 1,
            code: ErrorCode::CANCELLED,
            message: String::new(),
        });
        assert_eq!(
            exchange(&mut edge, &mut client, &cancelled),
            Ok(Accepted::Discard)
        );
        assert_eq!(
            (client.outgoing_in_flight(), edge.incoming_in_flight()),
            (0, 0)
        );
        // A Cancel that crosses the end of the response is ignored by the responder; the
        // requester's state machine refuses to send one for a finished request.
        assert_eq!(
            edge.on_receive(&Frame::Cancel { request_id: 1 }),
            Ok(Accepted::Deliver)
        );
        assert!(matches!(
            client.on_send(&Frame::Cancel { request_id: 1 }),
            Err(ProtocolError::UnknownRequestId { .. })
        ));
    }

    #[test]
    fn connection_error_closes_both_sides() {
        let (mut client, mut edge) = pair(64);
        let e = ProtocolError::DuplicateHandshake.to_error_frame();
        assert_eq!(exchange(&mut edge, &mut client, &e), Ok(Accepted::Close));
        assert!(client.is_closed() && edge.is_closed());
        assert_eq!(
            client.on_receive(&Frame::Ping { nonce: 0 }),
            Err(ProtocolError::Closed)
        );
        assert_eq!(
            edge.on_send(&Frame::Ping { nonce: 0 }),
            Err(ProtocolError::Closed)
        );
        // A connection-level Error may also be the very first frame (e.g. rejecting a version).
        let mut fresh = conn(Role::Client, Limits::default());
        assert_eq!(fresh.on_receive(&e), Ok(Accepted::Close));
    }

    #[test]
    fn request_ids_are_nonzero_and_skip_ids_in_flight() {
        let (mut client, mut edge) = pair(64);
        client.next_id = u32::MAX;
        let a = client.next_request_id();
        assert_eq!(a, u32::MAX);
        exchange(&mut client, &mut edge, &req(1, 1)).expect("id 1 in flight");
        assert_eq!(client.next_request_id(), 2);
    }

    #[test]
    fn error_messages_are_truncated_to_the_limit() {
        let e = ProtocolError::Frame(FrameError::InvalidField {
            frame_type: FrameType::Request,
            field: "x",
            reason: "y",
        });
        let Frame::Error(f) = e.to_error_frame() else {
            unreachable!()
        };
        assert_eq!(f.code, ErrorCode::MALFORMED_FRAME);
        assert!(f.message.len() <= MAX_ERROR_MESSAGE_LEN);
    }
}
