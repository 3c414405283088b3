//! The protocol's list and string bounds: a frame at every maximum still fits under the
//! smallest `max_frame_len` a peer may advertise, and one past any maximum is refused.

use bytes::Bytes;
use wire::*;
use xet::MerkleHash;

fn largest_frames() -> Vec<Frame> {
    let h = MerkleHash::from_bytes([0xab; 32]);
    vec![
        Frame::Handshake(Handshake {
            max_version: u8::MAX,
            role: Role::Seed,
            capabilities: Capabilities(u32::MAX),
            max_frame_len: ABSOLUTE_MAX_FRAME_LEN,
            max_in_flight: MAX_IN_FLIGHT_LIMIT,
            peer_id: "p".repeat(MAX_PEER_ID_LEN),
        }),
        Frame::Have(Have {
            entries: vec![
                HaveEntry {
                    xorb: h,
                    chunks: ChunkRange::new(0, u32::MAX)
                };
                MAX_HAVE_ENTRIES
            ],
        }),
        Frame::Request(Request {
            request_id: u32::MAX,
            xorb: h,
            chunks: ChunkRange::new(0, MAX_REQUEST_CHUNKS),
            upstream: Some(Upstream {
                url: "u".repeat(MAX_URL_LEN),
                byte_start: 0,
                byte_end: u64::MAX,
            }),
            chunk_hashes: Some(vec![h; MAX_REQUEST_CHUNKS as usize]),
        }),
        Frame::Data(Data {
            request_id: 1,
            offset: 0,
            last: true,
            payload: Bytes::from(vec![1u8; DATA_PIECE_LEN as usize]),
        }),
        Frame::Error(ErrorFrame {
            request_id: 0,
            code: ErrorCode(u16::MAX),
            message: "m".repeat(MAX_ERROR_MESSAGE_LEN),
        }),
        Frame::PeerExchange(PeerExchange {
            xorb: h,
            peers: vec!["a".repeat(MAX_PEER_ADDR_LEN); MAX_PEX_PEERS],
        }),
    ]
}

#[test]
fn the_largest_frames_fit_the_smallest_frame_limit() {
    for frame in largest_frames() {
        let bytes = frame.to_vec().expect("encodes");
        assert!(
            frame.frame_len() <= u64::from(MIN_MAX_FRAME_LEN),
            "{:?} is {} bytes",
            frame.frame_type(),
            frame.frame_len()
        );
        match decode(&bytes, MIN_MAX_FRAME_LEN) {
            Ok(Decoded::Frame {
                frame: got,
                consumed,
            }) => {
                assert_eq!(consumed, bytes.len());
                assert_eq!(got, frame);
            }
            other => panic!("{:?}: {other:?}", frame.frame_type()),
        }
    }
}

#[test]
fn the_documented_largest_sizes_hold() {
    let frames = largest_frames();
    // docs/wire-protocol.md, "Limits".
    assert_eq!(frames[1].frame_len(), 327_684);
    assert_eq!(frames[2].frame_len(), 270_401);
    assert_eq!(frames[3].frame_len(), u64::from(DEFAULT_MAX_FRAME_LEN));
}

#[test]
fn one_past_any_bound_is_refused_by_the_encoder_and_the_decoder() {
    let mut over = largest_frames();
    for f in &mut over {
        match f {
            Frame::Handshake(h) => h.peer_id.push('p'),
            Frame::Have(h) => h.entries.push(h.entries[0]),
            Frame::Request(r) => {
                r.upstream.as_mut().expect("set").url.push('u');
            }
            Frame::Data(d) => {
                d.payload = Bytes::from(vec![1u8; (ABSOLUTE_MAX_FRAME_LEN - 14) as usize]);
            }
            Frame::Error(e) => e.message.push('m'),
            Frame::PeerExchange(p) => p.peers.push("a".into()),
            _ => unreachable!(),
        }
    }
    for frame in over {
        let err = frame.to_vec().expect_err("over a bound");
        assert!(
            matches!(
                err,
                FrameError::BadLength { .. } | FrameError::FrameTooLarge { .. }
            ),
            "{err:?}"
        );
    }
    // The decoder refuses the same frames: patch a count past its bound in valid bytes.
    let have = largest_frames().swap_remove(1).to_vec().expect("encodes");
    let mut patched = have.clone();
    patched[6..8].copy_from_slice(&((MAX_HAVE_ENTRIES + 1) as u16).to_le_bytes());
    assert!(matches!(
        decode(&patched, ABSOLUTE_MAX_FRAME_LEN),
        Err(FrameError::BadLength {
            field: "entries",
            ..
        })
    ));
    let pex = largest_frames().swap_remove(5).to_vec().expect("encodes");
    let mut patched = pex.clone();
    patched[38..40].copy_from_slice(&((MAX_PEX_PEERS + 1) as u16).to_le_bytes());
    assert!(matches!(
        decode(&patched, ABSOLUTE_MAX_FRAME_LEN),
        Err(FrameError::BadLength { field: "peers", .. })
    ));
}

#[test]
fn zero_length_peer_addresses_and_ids_are_refused() {
    let f = Frame::PeerExchange(PeerExchange {
        xorb: MerkleHash::ZERO,
        peers: vec![String::new()],
    });
    assert!(f.to_vec().is_err());
    let mut bytes = vec![0u8; 0];
    bytes.extend_from_slice(&(2u32 + 32 + 2 + 1).to_le_bytes());
    bytes.extend_from_slice(&[1, 0x08]);
    bytes.extend_from_slice(&[0; 32]);
    bytes.extend_from_slice(&[1, 0, 0]);
    assert!(matches!(
        decode(&bytes, ABSOLUTE_MAX_FRAME_LEN),
        Err(FrameError::Truncated { .. }) | Err(FrameError::BadLength { .. })
    ));
}
