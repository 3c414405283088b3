//! Every bound of the wire protocol in one place: the fixed protocol constants (list and string
//! lengths, frame-size range), the per-connection [`Limits`] a side advertises or enforces, and
//! the recommended timeouts, which the I/O layer applies (this crate reads no clock).
//!
//! The fixed constants are part of the protocol: a conforming sender never exceeds them and a
//! receiver rejects a frame that does, so they cannot be lowered by one side alone. `Limits`
//! holds what each side chooses for itself (and advertises in its Handshake where the peer needs
//! to know it).

use std::time::Duration;

/// The protocol version this crate speaks, carried in every frame header.
pub const WIRE_VERSION: u8 = 1;

/// Bytes of the length prefix (a `u32`, little-endian).
pub const LEN_PREFIX_LEN: usize = 4;
/// Bytes of the frame header: the length prefix, the version byte and the type tag.
pub const FRAME_HEADER_LEN: usize = 6;
/// Smallest value of the length prefix: the version byte and the type tag.
pub const MIN_FRAME_LEN: u32 = 2;

/// Bytes a Data frame's length prefix counts besides its payload: version, type, request id
/// (4), offset (8) and flags (1).
pub const DATA_FRAME_OVERHEAD: u32 = 15;
/// Recommended payload of one Data frame: responses are streamed in pieces of at most this.
pub const DATA_PIECE_LEN: u32 = 1024 * 1024;

/// Default (and smallest allowed) maximum frame length a side advertises: one full
/// [`DATA_PIECE_LEN`] piece plus the Data frame's fields. Every non-Data frame within the
/// protocol's list and string bounds fits under it.
pub const DEFAULT_MAX_FRAME_LEN: u32 = DATA_PIECE_LEN + DATA_FRAME_OVERHEAD;
/// Smallest `max_frame_len` a Handshake may advertise.
pub const MIN_MAX_FRAME_LEN: u32 = DEFAULT_MAX_FRAME_LEN;
/// Largest `max_frame_len` a Handshake may advertise (16 MiB pieces).
pub const ABSOLUTE_MAX_FRAME_LEN: u32 = 16 * 1024 * 1024 + DATA_FRAME_OVERHEAD;

/// Default number of requests a side accepts in flight from its peer at once.
pub const DEFAULT_MAX_IN_FLIGHT: u16 = 64;
/// Largest `max_in_flight` a Handshake may advertise.
pub const MAX_IN_FLIGHT_LIMIT: u16 = 1024;

/// Default largest response (DataHeader `total_len`) a requester accepts: a whole xorb's chunk
/// records (64 MiB of data plus an 8-byte header for each of up to 8192 chunks) with margin.
pub const DEFAULT_MAX_RESPONSE_LEN: u64 = 65 * 1024 * 1024;

/// Longest peer id in a Handshake, in bytes of UTF-8 (at least 1).
pub const MAX_PEER_ID_LEN: usize = 64;
/// Most entries in one Have frame (a side with more sends several frames).
pub const MAX_HAVE_ENTRIES: usize = 8192;
/// Most chunks one Request may ask for (and one DataHeader announce); a xorb holds at most 8192.
pub const MAX_REQUEST_CHUNKS: u32 = 8192;
/// Longest signed upstream URL in a Request, in bytes.
pub const MAX_URL_LEN: usize = 8192;
/// Longest message in an Error frame, in bytes.
pub const MAX_ERROR_MESSAGE_LEN: usize = 1024;
/// Most peer addresses in one PeerExchange frame.
pub const MAX_PEX_PEERS: usize = 256;
/// Longest peer address in a PeerExchange frame, in bytes (at least 1).
pub const MAX_PEER_ADDR_LEN: usize = 255;
/// Smallest serialized chunk record: its 8-byte header (a response of `n` chunks is at least
/// `8 * n` bytes).
pub const MIN_CHUNK_RECORD_LEN: u64 = 8;

/// Recommended: close a connection whose peer has not completed the Handshake within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Recommended: send a Ping after this long without sending anything.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// Recommended: close a connection after this long without receiving any frame.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Recommended: give up on a request (send Cancel, try another source) when its first response
/// frame has not arrived within this. Generous because an edge may fetch upstream first.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Recommended: give up on a response when no Data frame arrived for this long mid-stream.
pub const DATA_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What one side of a connection accepts from its peer.
///
/// `max_frame_len` and `max_in_flight` are advertised in this side's Handshake; the peer must
/// respect them. `max_response_len` is local: a DataHeader announcing more is a protocol error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest length-prefix value accepted (see [`DEFAULT_MAX_FRAME_LEN`]).
    pub max_frame_len: u32,
    /// Most requests from the peer in flight at once.
    pub max_in_flight: u16,
    /// Largest response accepted for one request.
    pub max_response_len: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_response_len: DEFAULT_MAX_RESPONSE_LEN,
        }
    }
}

impl Limits {
    /// These limits with every advertised value moved into the range the protocol allows.
    pub fn clamped(self) -> Limits {
        Limits {
            max_frame_len: self
                .max_frame_len
                .clamp(MIN_MAX_FRAME_LEN, ABSOLUTE_MAX_FRAME_LEN),
            max_in_flight: self.max_in_flight.clamp(1, MAX_IN_FLIGHT_LIMIT),
            max_response_len: self.max_response_len,
        }
    }
}
