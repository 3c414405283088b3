//! Connections to the peers and edges of one pull: one wire-protocol [`PeerClient`] per peer id,
//! opened on first use and reopened when it closed. Each peer's connection is opened by one
//! caller at a time, without holding up connections to other peers, and a failed attempt is
//! remembered for a while: callers that were waiting for it get its error at once instead of
//! each waiting the connect and handshake limits again (a peer that accepts and never sends its
//! Handshake would otherwise cost every range that picked it the whole wait, one after another).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xorbstore::peer::{PeerBook, PeerClient, PeerClientConfig, PeerError};

use super::Holder;

/// Longest wait for a peer's TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for a peer's Handshake once connected (a peer sends it at once).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a failed connection attempt answers for the peer instead of a new attempt.
const FAILURE_MEMORY: Duration = Duration::from_secs(10);

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
    /// A recent attempt failed (its error, as text).
    #[error("connecting failed moments ago: {0}")]
    Recent(String),
}

/// One peer's connection, or the last failure to open it.
#[derive(Debug, Default)]
struct Slot {
    client: Option<Arc<PeerClient>>,
    failed: Option<(Instant, String)>,
}

/// The open connections of one pull, by peer id.
#[derive(Debug)]
pub struct PeerPool {
    peer_id: String,
    request_timeout: Duration,
    /// Held only to find a peer's slot; the slot's own lock is held while connecting.
    clients: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
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
        let slot = {
            let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            clients.entry(h.id.clone()).or_default().clone()
        };
        let mut slot = slot.lock().await;
        if let Some(cl) = &slot.client {
            if !cl.is_closed() {
                return Ok(cl.clone());
            }
        }
        if let Some((at, why)) = &slot.failed {
            if at.elapsed() < FAILURE_MEMORY {
                return Err(ConnectError::Recent(why.clone()));
            }
        }
        match self.connect(h).await {
            Ok(cl) => {
                let cl = Arc::new(cl);
                *slot = Slot {
                    client: Some(cl.clone()),
                    failed: None,
                };
                Ok(cl)
            }
            Err(e) => {
                *slot = Slot {
                    client: None,
                    failed: Some((Instant::now(), e.to_string())),
                };
                Err(e)
            }
        }
    }

    async fn connect(&self, h: &Holder) -> Result<PeerClient, ConnectError> {
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
        cfg.handshake_timeout = HANDSHAKE_TIMEOUT;
        cfg.request_timeout = self.request_timeout;
        cfg.book = self.book.clone();
        Ok(PeerClient::connect(addr, cfg).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xorbstore::peer::{PeerServer, PeerServerConfig};
    use xorbstore::{Store, StoreConfig};

    fn holder(id: &str, addr: SocketAddr) -> Holder {
        Holder {
            id: id.into(),
            addr: addr.to_string(),
            role: wire::Role::Seed,
            pex: false,
            far: false,
        }
    }

    /// Regression: the pool held one lock over every connect, so a peer that accepts and never
    /// sends its Handshake held up every other peer's connection, once per range that had
    /// picked it (3 ranges: a swarm member's pull took 30 s instead of 2 s).
    #[tokio::test]
    async fn a_peer_that_never_handshakes_costs_one_wait_and_holds_up_no_other_peer() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let silent_addr = silent.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreConfig::new(1 << 30)).expect("store");
        let server = PeerServer::new(store, PeerServerConfig::new("good", wire::Role::Seed));
        let good = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let good_addr = good.local_addr().expect("addr");
        tokio::spawn(async move { server.serve(good, std::future::pending()).await });

        let pool = PeerPool::new("me".into(), Duration::from_secs(60));
        let (s, g) = (holder("silent", silent_addr), holder("good", good_addr));
        let t0 = Instant::now();
        let (a, b, c) = tokio::join!(pool.client(&s), pool.client(&s), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let r = pool.client(&g).await;
            (r, t0.elapsed())
        });
        let took = t0.elapsed();
        assert!(
            matches!(a, Err(ConnectError::Peer(PeerError::Timeout("handshake")))),
            "{a:?}"
        );
        // The second caller waited for the first attempt and got its failure.
        assert!(matches!(b, Err(ConnectError::Recent(_))), "{b:?}");
        let (good_client, good_took) = c;
        assert!(good_client.is_ok(), "{good_client:?}");
        assert!(
            good_took < HANDSHAKE_TIMEOUT,
            "the good peer waited {good_took:?}"
        );
        assert!(took < HANDSHAKE_TIMEOUT * 2, "took {took:?}");
        // The open connection is reused.
        let again = pool.client(&g).await.expect("reused");
        assert!(Arc::ptr_eq(&again, good_client.as_ref().expect("good")));
    }
}
