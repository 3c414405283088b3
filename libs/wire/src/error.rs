//! The errors of this crate: [`FrameError`] for bytes that are not a valid frame (or a frame
//! value that cannot be encoded), and [`ErrorCode`], the numeric code carried by an Error frame.

use std::fmt;

use crate::frame::FrameType;

/// A frame that cannot be decoded or encoded. Every variant means "the bytes (or the value)
/// break the protocol"; the I/O layer answers with an Error frame and closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is below [`MIN_FRAME_LEN`](crate::MIN_FRAME_LEN).
    #[error("frame length {len} is shorter than the version and type bytes")]
    FrameTooShort { len: u32 },
    /// The length prefix (or an encoded frame's length) is above the limit in force.
    #[error("frame length {len} exceeds the limit of {max}")]
    FrameTooLarge { len: u64, max: u32 },
    /// The version byte is not one this crate speaks.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// The type tag is not a known frame type.
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    /// A field runs past the end of the frame.
    #[error("{frame_type:?} frame truncated in field `{field}`")]
    Truncated {
        frame_type: FrameType,
        field: &'static str,
    },
    /// Bytes are left in the frame after its last field.
    #[error("{frame_type:?} frame has {count} trailing bytes")]
    TrailingBytes { frame_type: FrameType, count: usize },
    /// A list or string is longer (or shorter) than the protocol allows.
    #[error("{frame_type:?} field `{field}` has length {len}, allowed {min}..={max}")]
    BadLength {
        frame_type: FrameType,
        field: &'static str,
        len: u64,
        min: u64,
        max: u64,
    },
    /// A field holds a value the protocol forbids.
    #[error("{frame_type:?} field `{field}` is invalid: {reason}")]
    InvalidField {
        frame_type: FrameType,
        field: &'static str,
        reason: &'static str,
    },
}

impl FrameError {
    /// The code to put in the Error frame that answers this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            FrameError::FrameTooLarge { .. } => ErrorCode::FRAME_TOO_LARGE,
            FrameError::UnsupportedVersion(_) => ErrorCode::UNSUPPORTED_VERSION,
            _ => ErrorCode::MALFORMED_FRAME,
        }
    }
}

/// The code of an Error frame: a `u16` on the wire. Unknown codes are kept as they are (a newer
/// peer may send codes this crate does not name) so that decoding and re-encoding round-trip.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// The peer broke an ordering or state rule (see `docs/wire-protocol.md`, state machine).
    pub const PROTOCOL: ErrorCode = ErrorCode(1);
    /// A frame could not be decoded.
    pub const MALFORMED_FRAME: ErrorCode = ErrorCode(2);
    /// A frame was larger than the receiver's advertised `max_frame_len`.
    pub const FRAME_TOO_LARGE: ErrorCode = ErrorCode(3);
    /// The version byte or Handshake `max_version` is not supported.
    pub const UNSUPPORTED_VERSION: ErrorCode = ErrorCode(4);
    /// More requests in flight than the receiver's advertised `max_in_flight`.
    pub const TOO_MANY_REQUESTS: ErrorCode = ErrorCode(5);
    /// The request is well-formed but cannot be served (e.g. a chunk range past the xorb's end).
    pub const INVALID_REQUEST: ErrorCode = ErrorCode(6);
    /// The edge could not fetch the range from the upstream URL.
    pub const UPSTREAM_FAILED: ErrorCode = ErrorCode(7);
    /// Bytes (from upstream or from disk) failed verification; nothing was served.
    pub const VERIFICATION_FAILED: ErrorCode = ErrorCode(8);
    /// The request was cancelled by the requester (answer to a Cancel).
    pub const CANCELLED: ErrorCode = ErrorCode(9);
    /// The responder is overloaded; try another source.
    pub const BUSY: ErrorCode = ErrorCode(10);
    /// The responder is shutting down; the connection closes after this frame.
    pub const SHUTTING_DOWN: ErrorCode = ErrorCode(11);
    /// Any other failure of the responder.
    pub const INTERNAL: ErrorCode = ErrorCode(12);
    /// The peer did not send a frame in time (handshake, idle or request timeout).
    pub const TIMEOUT: ErrorCode = ErrorCode(13);

    /// The name of a known code, `None` for a code this crate does not know.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            ErrorCode::PROTOCOL => "protocol",
            ErrorCode::MALFORMED_FRAME => "malformed_frame",
            ErrorCode::FRAME_TOO_LARGE => "frame_too_large",
            ErrorCode::UNSUPPORTED_VERSION => "unsupported_version",
            ErrorCode::TOO_MANY_REQUESTS => "too_many_requests",
            ErrorCode::INVALID_REQUEST => "invalid_request",
            ErrorCode::UPSTREAM_FAILED => "upstream_failed",
            ErrorCode::VERIFICATION_FAILED => "verification_failed",
            ErrorCode::CANCELLED => "cancelled",
            ErrorCode::BUSY => "busy",
            ErrorCode::SHUTTING_DOWN => "shutting_down",
            ErrorCode::INTERNAL => "internal",
            ErrorCode::TIMEOUT => "timeout",
            _ => return None,
        })
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "ErrorCode({}, {name})", self.0),
            None => write!(f, "ErrorCode({})", self.0),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "code {}", self.0),
        }
    }
}
