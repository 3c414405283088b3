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
    /// The operation did not finish in time.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The connection is closed (by either side); `reason` says why.
    #[error("connection closed: {0}")]
    Closed(String),
    /// TLS configuration or handshake failure.
    #[error("tls: {0}")]
    Tls(String),
}

impl PeerError {
    pub(crate) fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> PeerError {
        move |source| PeerError::Io { op, source }
    }
}
