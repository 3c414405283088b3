//! Connections to the peers and edges of one pull: one wire-protocol [`PeerClient`] per peer id,
//! opened on first use and reopened when it closed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use xorbstore::peer::{PeerBook, PeerClient, PeerClientConfig, PeerError};

use super::Holder;

/// Longest wait for a peer's TCP connection and handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a peer could not be connected to.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("resolving {addr}")]
    Resolve {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("peer address {0} resolves to nothing")]
    NoAddress(String),
    #[error(transparent)]
    Peer(#[from] PeerError),
}

/// The open connections of one pull, by peer id.
#[derive(Debug)]
pub struct PeerPool {
    peer_id: String,
    request_timeout: Duration,
    clients: tokio::sync::Mutex<HashMap<String, Arc<PeerClient>>>,
    /// Peer exchange on every connection (none: not spoken).
    book: Option<Arc<PeerBook>>,
}

impl PeerPool {
    /// Connections that introduce themselves as `peer_id` (a client) and give a request at
    /// most `request_timeout`.
    pub fn new(peer_id: String, request_timeout: Duration) -> Self {
        Self {
            peer_id,
            request_timeout,
            clients: Default::default(),
            book: None,
        }
    }

    /// Connections opened from now on speak peer exchange into `book`.
    pub fn set_book(&mut self, book: Arc<PeerBook>) {
        self.book = Some(book);
    }

    /// This client's peer id.
    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    /// The open connection to `h`, or a new one.
    pub async fn client(&self, h: &Holder) -> Result<Arc<PeerClient>, ConnectError> {
        let mut clients = self.clients.lock().await;
        if let Some(cl) = clients.get(&h.id) {
            if !cl.is_closed() {
                return Ok(cl.clone());
            }
        }
        let addr: SocketAddr = tokio::net::lookup_host(&h.addr)
            .await
            .map_err(|source| ConnectError::Resolve {
                addr: h.addr.clone(),
                source,
            })?
            .next()
            .ok_or_else(|| ConnectError::NoAddress(h.addr.clone()))?;
        let mut cfg = PeerClientConfig::new(self.peer_id.clone(), wire::Role::Client);
        cfg.connect_timeout = CONNECT_TIMEOUT;
        cfg.request_timeout = self.request_timeout;
        cfg.book = self.book.clone();
        let cl = Arc::new(PeerClient::connect(addr, cfg).await?);
        clients.insert(h.id.clone(), cl.clone());
        Ok(cl)
    }
}
