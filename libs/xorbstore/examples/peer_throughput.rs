//! Loopback throughput of the peer server: one xorb of `SIZE_MIB` (default 64) stored, `CLIENTS`
//! (default 8) clients each fetching the whole range `ROUNDS` (default 4) times over the wire
//! protocol; and, as a ceiling in the same run, a bare tokio TCP server writing the same bytes.
//!
//! `cargo run -p xorbstore --release --example peer_throughput -- [SIZE_MIB] [CLIENTS] [ROUNDS]`

use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wire::Role;
use xet::chunk::CompressionScheme;
use xet::compression::CompressionPolicy;
use xet::xorb::XorbBuilder;
use xorbstore::peer::{PeerClient, PeerClientConfig, PeerServer, PeerServerConfig};
use xorbstore::{Expectation, Store, StoreConfig};

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let size_mib = arg(1, 64);
    let clients = arg(2, 8);
    let rounds = arg(3, 4);

    // Incompressible chunks of 64 KiB, stored raw.
    let mut b = XorbBuilder::new().with_policy(CompressionPolicy::Fixed(CompressionScheme::None));
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut chunk = vec![0u8; 64 * 1024];
    while b.raw_len() + chunk.len() + 8 * (b.num_chunks() + 1) <= size_mib << 20 {
        for w in chunk.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            w.copy_from_slice(&state.to_le_bytes());
        }
        if b.add_chunk(&chunk).is_err() {
            break;
        }
    }
    let xorb = b.finish();
    let n = xorb.num_chunks();
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path(), StoreConfig::new(1 << 34))?;
    store.insert(&xorb.hash, 0..n, &xorb.data, &Expectation::whole_xorb())?;
    let total_per_fetch = xorb.data.len();

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = PeerServer::new(store.clone(), PeerServerConfig::new("bench", Role::Edge));
    tokio::spawn(async move { server.serve(listener, std::future::pending()).await });

    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..clients {
        let h = xorb.hash;
        tasks.push(tokio::spawn(async move {
            let c = PeerClient::connect(addr, PeerClientConfig::new(format!("c{i}"), Role::Client))
                .await
                .expect("connect");
            for _ in 0..rounds {
                let got = c.fetch(&h, 0..n, None).await.expect("fetch");
                assert_eq!(got.len(), total_per_fetch);
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let wire_secs = start.elapsed().as_secs_f64();
    let bytes = (total_per_fetch * clients * rounds) as f64;

    // Ceiling: a bare TCP server writing the same bytes from memory.
    let data = Arc::new(xorb.data.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let raw_addr = listener.local_addr()?;
    let d = data.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let d = d.clone();
            tokio::spawn(async move {
                let mut one = [0u8; 1];
                while s.read_exact(&mut one).await.is_ok() {
                    if s.write_all(&d).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(raw_addr).await.expect("connect");
            let mut buf = vec![0u8; total_per_fetch];
            for _ in 0..rounds {
                s.write_all(&[1]).await.expect("write");
                s.read_exact(&mut buf).await.expect("read");
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let raw_secs = start.elapsed().as_secs_f64();
    let gbps = |secs: f64| bytes / secs / 1e9;
    println!(
        "{clients} clients x {rounds} x {:.1} MiB: wire protocol {:.2} GB/s, bare TCP {:.2} GB/s, ratio {:.2}",
        total_per_fetch as f64 / (1 << 20) as f64,
        gbps(wire_secs),
        gbps(raw_secs),
        raw_secs / wire_secs
    );
    Ok(())
}
