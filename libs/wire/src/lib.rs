//! The zest peer wire protocol, sans-IO: frame types, their canonical byte encoding, a decoder
//! over `&[u8]` that reports how many bytes it used or how many more it needs, the protocol's
//! limits and recommended timeouts, and a per-connection state machine that both the serving
//! side (edge, seed) and the requesting side (client) drive.
//!
//! Nothing here opens a socket or reads a clock: the I/O layer reads bytes, calls [`decode`]
//! (or [`decode_buf`]) and [`Connection::on_receive`], and before writing a frame calls
//! [`Connection::on_send`] and [`Frame::encode`]. Any error is answered with the Error frame
//! from [`ProtocolError::to_error_frame`] and the connection is closed. The byte layout, the
//! state machine and the error codes are specified in `docs/wire-protocol.md`.

pub mod connection;
pub mod error;
pub mod frame;
pub mod limits;
pub mod role;

pub use connection::{Accepted, Connection, ProtocolError};
pub use error::{ErrorCode, FrameError};
pub use frame::{
    decode, decode_buf, decode_data_prefix, encode_data_header, Capabilities, ChunkRange, Data,
    DataHeader, DataPrefix, Decoded, ErrorFrame, Frame, FrameType, Handshake, Have, HaveEntry,
    PeerExchange, Request, Role, Upstream, DATA_PREFIX_LEN,
};
pub use limits::*;
