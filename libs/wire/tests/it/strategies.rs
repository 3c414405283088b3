//! proptest strategies for every frame type, with every field anywhere in its allowed range.

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use wire::*;
use xet::MerkleHash;

pub fn hash() -> impl Strategy<Value = MerkleHash> {
    any::<[u8; 32]>().prop_map(MerkleHash::from_bytes)
}

/// A string of 1..=max bytes (UTF-8, possibly multi-byte characters).
fn text(min: usize, max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!(".{{{min},{max}}}"))
        .expect("regex")
        .prop_map(move |mut s| {
            while s.len() > max {
                s.pop();
            }
            s
        })
        .prop_filter("too short after trimming", move |s| s.len() >= min)
}

fn request_id() -> impl Strategy<Value = u32> {
    prop_oneof![1..=u32::MAX, Just(1u32), Just(u32::MAX)]
}

fn chunk_range(max_len: u32) -> impl Strategy<Value = ChunkRange> {
    (any::<u32>(), 1..=max_len).prop_filter_map("range past u32", |(start, len)| {
        start
            .checked_add(len)
            .map(|end| ChunkRange::new(start, end))
    })
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Client), Just(Role::Edge), Just(Role::Seed)]
}

fn handshake() -> impl Strategy<Value = Handshake> {
    (
        1..=u8::MAX,
        role(),
        any::<u32>(),
        MIN_MAX_FRAME_LEN..=ABSOLUTE_MAX_FRAME_LEN,
        1..=MAX_IN_FLIGHT_LIMIT,
        text(1, MAX_PEER_ID_LEN),
    )
        .prop_map(
            |(max_version, role, caps, max_frame_len, max_in_flight, peer_id)| Handshake {
                max_version,
                role,
                capabilities: Capabilities(caps),
                max_frame_len,
                max_in_flight,
                peer_id,
            },
        )
}

fn request() -> impl Strategy<Value = Request> {
    (
        request_id(),
        hash(),
        // Mostly small ranges (hash lists stay short), sometimes up to the maximum.
        prop_oneof![4 => chunk_range(16), 1 => chunk_range(MAX_REQUEST_CHUNKS)],
        proptest::option::of((text(1, 300), any::<u64>(), any::<u64>())),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(
            |(request_id, xorb, chunks, up, with_hashes, seed)| Request {
                request_id,
                xorb,
                chunks,
                upstream: up.map(|(url, a, b)| Upstream {
                    url,
                    byte_start: a.min(b),
                    byte_end: a.max(b),
                }),
                chunk_hashes: with_hashes.then(|| {
                    (0..chunks.len())
                        .map(|i| xet::hash::chunk_hash(&(seed ^ u64::from(i)).to_le_bytes()))
                        .collect()
                }),
            },
        )
}

pub fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        handshake().prop_map(Frame::Handshake),
        vec((hash(), chunk_range(u32::MAX)), 0..40).prop_map(|e| Frame::Have(Have {
            entries: e
                .into_iter()
                .map(|(xorb, chunks)| HaveEntry { xorb, chunks })
                .collect()
        })),
        request().prop_map(Frame::Request),
        (request_id(), 1..=MAX_REQUEST_CHUNKS, any::<u64>()).prop_map(|(id, n, extra)| {
            let min = 8 * u64::from(n);
            Frame::DataHeader(DataHeader {
                request_id: id,
                total_len: min + extra % (u64::MAX - min),
                num_chunks: n,
            })
        }),
        (
            request_id(),
            any::<u64>(),
            any::<bool>(),
            vec(any::<u8>(), 1..200)
        )
            .prop_map(|(id, offset, last, payload)| Frame::Data(Data {
                request_id: id,
                offset: offset.min(u64::MAX - payload.len() as u64),
                last,
                payload: Bytes::from(payload),
            })),
        request_id().prop_map(|request_id| Frame::NotFound { request_id }),
        (any::<u32>(), any::<u16>(), text(0, MAX_ERROR_MESSAGE_LEN)).prop_map(
            |(request_id, code, message)| Frame::Error(ErrorFrame {
                request_id,
                code: ErrorCode(code),
                message,
            })
        ),
        (hash(), vec(text(1, MAX_PEER_ADDR_LEN), 0..20))
            .prop_map(|(xorb, peers)| Frame::PeerExchange(PeerExchange { xorb, peers })),
        request_id().prop_map(|request_id| Frame::Cancel { request_id }),
        any::<u64>().prop_map(|nonce| Frame::Ping { nonce }),
        any::<u64>().prop_map(|nonce| Frame::Pong { nonce }),
    ]
}
