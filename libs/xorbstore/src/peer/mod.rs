//! The peer side of the store: a server that answers wire-protocol Requests from a [`Store`]
//! (streaming chunk records straight from the memory map) and can fetch a missing range from the
//! signed upstream URL in a Request ([`UpstreamFetcher`], coalesced by [`SingleFlight`]), and a
//! client that connects to such a server and fetches ranges with pipelining; both feed and use
//! a [`PeerBook`] (peer exchange) when they have one. The protocol itself
//! (frames, state machine, limits) is `libs/wire`; this module is the tokio I/O around it.
//!
//! [`Store`]: crate::Store

pub mod book;
pub mod client;
pub mod rate;
pub mod server;
pub mod singleflight;
pub mod tls;

use std::time::Duration;

use wire::{ErrorCode, FrameError, ProtocolError};

pub use book::{PeerBook, PeerBookStats};
pub use client::{FetchOptions, PeerClient, PeerClientConfig};
pub use rate::UploadRate;
pub use server::{PeerServer, PeerServerConfig, PeerServerStats, UpstreamFetcher};
pub use singleflight::{FetchError, FetchSource, SingleFlight, SingleFlightStats};

/// Failures of the peer client (and of TLS setup).
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// A socket operation failed.
    #[error("{op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The other side broke the protocol (we sent it an Error frame and closed).
    #[error("protocol violation by the peer: {0}")]
    Protocol(#[from] ProtocolError),
    /// A frame we tried to build was invalid (a bug or an argument out of bounds).
    #[error("invalid frame: {0}")]
    Frame(#[from] FrameError),
    /// The peer does not hold the range.
    #[error("the peer does not hold the range")]
    NotFound,
    /// The peer answered the request with an Error frame.
    #[error("peer error {code}: {message}")]
    Remote { code: ErrorCode, message: String },
    /// The operation did not finish in time (connect, handshake, a request slot).
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// A request's deadline passed (it was cancelled): `0` says which.
    #[error("request timed out: {0}")]
    Deadline(Deadline),
    /// The connection is closed (by either side); `reason` says why.
    #[error("connection closed: {0}")]
    Closed(String),
    /// TLS configuration or handshake failure.
    #[error("tls: {0}")]
    Tls(String),
}

/// Which deadline of a request passed ([`PeerError::Deadline`]), with its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// No response frame (DataHeader, NotFound or Error) arrived within this.
    FirstFrame(Duration),
    /// After the DataHeader, no payload arrived for this long.
    Stall(Duration),
    /// The whole response did not arrive within this.
    Whole(Duration),
}

impl std::fmt::Display for Deadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Deadline::FirstFrame(d) => write!(f, "no response frame within {d:?}"),
            Deadline::Stall(d) => write!(f, "the response stalled (no data for {d:?})"),
            Deadline::Whole(d) => write!(f, "the response did not complete within {d:?}"),
        }
    }
}

impl PeerError {
    pub(crate) fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> PeerError {
        move |source| PeerError::Io { op, source }
    }
}
