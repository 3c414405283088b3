//! Round-trip, canonical-encoding and malformed-input tests of the frame codec.

use bytes::{Bytes, BytesMut};
use xet::MerkleHash;

use super::*;
use crate::error::{ErrorCode, FrameError};
use crate::limits::*;

fn hash_seq() -> MerkleHash {
    let mut b = [0u8; 32];
    for (i, x) in b.iter_mut().enumerate() {
        *x = i as u8;
    }
    MerkleHash::from_bytes(b)
}

fn handshake() -> Frame {
    Frame::Handshake(Handshake::new(
        "edge-1",
        Role::Edge,
        Capabilities::UPSTREAM_FETCH | Capabilities::SERVE,
        &Limits::default(),
    ))
}

fn request() -> Frame {
    Frame::Request(Request {
        request_id: 1,
        xorb: hash_seq(),
        chunks: ChunkRange::new(0, 2),
        upstream: None,
        chunk_hashes: None,
    })
}

/// The examples of `docs/wire-protocol.md`, byte for byte.
fn golden() -> Vec<(Frame, &'static str)> {
    vec![
        (
            handshake(),
            "15000000 0101 01 01 0a000000 0f001000 4000 06 656467652d31",
        ),
        (
            request(),
            "2f000000 0103 01000000 \
             000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f \
             00000000 02000000 00",
        ),
        (
            Frame::Request(Request {
                request_id: 2,
                xorb: MerkleHash::from_bytes([0xab; 32]),
                chunks: ChunkRange::new(3, 4),
                upstream: Some(Upstream {
                    url: "https://s3/x".into(),
                    byte_start: 100,
                    byte_end: 199,
                }),
                chunk_hashes: Some(vec![MerkleHash::from_bytes([0x11; 32])]),
            }),
            "6d000000 0103 02000000 \
             abababababababababababababababababababababababababababababababab \
             03000000 04000000 03 \
             0c00 68747470733a2f2f73332f78 6400000000000000 c700000000000000 \
             1111111111111111111111111111111111111111111111111111111111111111",
        ),
        (
            Frame::DataHeader(DataHeader {
                request_id: 1,
                total_len: 32,
                num_chunks: 2,
            }),
            "12000000 0104 01000000 2000000000000000 02000000",
        ),
        (
            Frame::Data(Data {
                request_id: 1,
                offset: 0,
                last: true,
                payload: Bytes::from_static(b"abcd"),
            }),
            "13000000 0105 01000000 0000000000000000 01 61626364",
        ),
        (Frame::NotFound { request_id: 7 }, "06000000 0106 07000000"),
        (
            Frame::Error(ErrorFrame {
                request_id: 0,
                code: ErrorCode::PROTOCOL,
                message: "bad".into(),
            }),
            "0d000000 0107 00000000 0100 0300 626164",
        ),
        (
            Frame::Ping {
                nonce: 0x0102030405060708,
            },
            "0a000000 010a 0807060504030201",
        ),
    ]
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn golden_frames_encode_and_decode_exactly() {
    for (frame, hex) in golden() {
        let bytes = unhex(hex);
        assert_eq!(frame.to_vec().expect("encode"), bytes, "{frame:?}");
        assert_eq!(frame.encoded_len(), bytes.len());
        assert_eq!(
            decode(&bytes, DEFAULT_MAX_FRAME_LEN).expect("decode"),
            Decoded::Frame {
                frame,
                consumed: bytes.len()
            }
        );
    }
}

#[test]
fn every_prefix_is_incomplete_with_the_exact_shortfall() {
    for (frame, hex) in golden() {
        let bytes = unhex(hex);
        for cut in 0..bytes.len() {
            let got = decode(&bytes[..cut], DEFAULT_MAX_FRAME_LEN);
            let needed = if cut < 4 { 6 - cut } else { bytes.len() - cut };
            assert_eq!(
                got,
                Ok(Decoded::Incomplete { needed }),
                "{frame:?} cut {cut}"
            );
        }
    }
}

#[test]
fn decode_uses_only_the_first_frame() {
    let mut bytes = handshake().to_vec().expect("encode");
    let first = bytes.len();
    request().encode(&mut bytes).expect("encode");
    match decode(&bytes, DEFAULT_MAX_FRAME_LEN) {
        Ok(Decoded::Frame { frame, consumed }) => {
            assert_eq!(frame, handshake());
            assert_eq!(consumed, first);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn decode_buf_splits_frames_and_shares_data_payloads() {
    let data = Frame::Data(Data {
        request_id: 3,
        offset: 10,
        last: false,
        payload: Bytes::from(vec![7u8; 1000]),
    });
    let mut buf = BytesMut::new();
    data.encode(&mut buf).expect("encode");
    Frame::Pong { nonce: 9 }.encode(&mut buf).expect("encode");
    let whole = buf.clone();
    // Feed it a byte at a time: None until each frame is complete.
    let mut rx = BytesMut::new();
    let mut got = Vec::new();
    for b in whole.iter() {
        rx.extend_from_slice(&[*b]);
        while let Some(f) = decode_buf(&mut rx, DEFAULT_MAX_FRAME_LEN).expect("decode") {
            got.push(f);
        }
    }
    assert_eq!(got, vec![data, Frame::Pong { nonce: 9 }]);
    assert!(rx.is_empty());
}

#[test]
fn data_header_helper_matches_the_encoder() {
    let frame = Frame::Data(Data {
        request_id: 5,
        offset: 1 << 40,
        last: true,
        payload: Bytes::from_static(b"xyz"),
    });
    let mut split = Vec::new();
    encode_data_header(5, 1 << 40, true, 3, &mut split).expect("header");
    split.extend_from_slice(b"xyz");
    assert_eq!(split, frame.to_vec().expect("encode"));
    assert!(encode_data_header(0, 0, true, 3, &mut split).is_err());
    assert!(encode_data_header(1, 0, true, 0, &mut split).is_err());
    assert!(encode_data_header(1, u64::MAX, true, 1, &mut split).is_err());
}

#[test]
fn header_errors_are_reported_before_the_body_arrives() {
    let max = DEFAULT_MAX_FRAME_LEN;
    assert_eq!(
        decode(&[1, 0, 0, 0], max),
        Err(FrameError::FrameTooShort { len: 1 })
    );
    assert_eq!(
        decode(&(max + 1).to_le_bytes(), max),
        Err(FrameError::FrameTooLarge {
            len: u64::from(max) + 1,
            max
        })
    );
    assert_eq!(
        decode(&[100, 0, 0, 0, 2], max),
        Err(FrameError::UnsupportedVersion(2))
    );
    assert_eq!(
        decode(&[100, 0, 0, 0, 1, 0x7f], max),
        Err(FrameError::UnknownType(0x7f))
    );
    assert_eq!(
        decode(&[100, 0, 0, 0, 1, 0], max),
        Err(FrameError::UnknownType(0))
    );
    // The caller's limit applies, capped at the protocol's absolute maximum.
    assert_eq!(
        decode(&(ABSOLUTE_MAX_FRAME_LEN + 1).to_le_bytes(), u32::MAX),
        Err(FrameError::FrameTooLarge {
            len: u64::from(ABSOLUTE_MAX_FRAME_LEN) + 1,
            max: ABSOLUTE_MAX_FRAME_LEN
        })
    );
}

fn body_error(frame: Vec<u8>) -> FrameError {
    let mut full = ((frame.len() + 1) as u32).to_le_bytes().to_vec();
    full.push(WIRE_VERSION);
    full.extend_from_slice(&frame);
    match decode(&full, DEFAULT_MAX_FRAME_LEN) {
        Err(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn malformed_bodies_give_typed_errors() {
    // Ping with a short nonce.
    assert!(matches!(
        body_error(vec![0x0a, 1, 2, 3]),
        FrameError::Truncated { field: "nonce", .. }
    ));
    // NotFound with a trailing byte.
    assert!(matches!(
        body_error(vec![0x06, 1, 0, 0, 0, 9]),
        FrameError::TrailingBytes { count: 1, .. }
    ));
    // NotFound for request 0.
    assert!(matches!(
        body_error(vec![0x06, 0, 0, 0, 0]),
        FrameError::InvalidField {
            field: "request_id",
            ..
        }
    ));
    // Data with an unknown flag bit and with no payload.
    let mut d = vec![0x05, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0xaa];
    assert!(matches!(
        body_error(d.clone()),
        FrameError::InvalidField { field: "flags", .. }
    ));
    d[13] = 1;
    d.pop();
    assert!(matches!(
        body_error(d),
        FrameError::InvalidField {
            field: "payload",
            ..
        }
    ));
    // Have claiming more entries than it carries (no allocation of 8192 entries happens
    // before the length check).
    assert!(matches!(
        body_error(vec![0x02, 0x00, 0x20]),
        FrameError::Truncated {
            field: "entries",
            ..
        }
    ));
    // Have claiming more entries than allowed.
    assert!(matches!(
        body_error(vec![0x02, 0xff, 0xff]),
        FrameError::BadLength {
            field: "entries",
            ..
        }
    ));
    // Error whose message is not UTF-8.
    assert!(matches!(
        body_error(vec![0x07, 0, 0, 0, 0, 1, 0, 2, 0, 0xff, 0xfe]),
        FrameError::InvalidField {
            field: "message",
            ..
        }
    ));
    // Handshake with an unknown role.
    let mut h = handshake().to_vec().expect("encode");
    h[7] = 9;
    assert!(matches!(
        decode(&h, DEFAULT_MAX_FRAME_LEN),
        Err(FrameError::InvalidField { field: "role", .. })
    ));
    // Handshake advertising a max_frame_len below the minimum.
    let mut h = handshake().to_vec().expect("encode");
    h[12..16].copy_from_slice(&1000u32.to_le_bytes());
    assert!(matches!(
        decode(&h, DEFAULT_MAX_FRAME_LEN),
        Err(FrameError::BadLength {
            field: "max_frame_len",
            ..
        })
    ));
}

#[test]
fn request_rules_are_enforced_both_ways() {
    let Frame::Request(base) = request() else {
        unreachable!()
    };
    let bad = |f: fn(&mut Request)| {
        let mut r = base.clone();
        f(&mut r);
        Frame::Request(r).to_vec().expect_err("must not encode")
    };
    assert!(matches!(
        bad(|r| r.request_id = 0),
        FrameError::InvalidField { .. }
    ));
    assert!(matches!(
        bad(|r| r.chunks = ChunkRange::new(3, 3)),
        FrameError::InvalidField { .. }
    ));
    assert!(matches!(
        bad(|r| r.chunks = ChunkRange::new(0, MAX_REQUEST_CHUNKS + 1)),
        FrameError::BadLength { .. }
    ));
    assert!(matches!(
        bad(|r| r.chunk_hashes = Some(vec![MerkleHash::ZERO])),
        FrameError::BadLength {
            field: "chunk_hashes",
            ..
        }
    ));
    assert!(matches!(
        bad(|r| {
            r.upstream = Some(Upstream {
                url: "https://x/y".into(),
                byte_start: 10,
                byte_end: 9,
            })
        }),
        FrameError::InvalidField {
            field: "byte_range",
            ..
        }
    ));
    assert!(matches!(
        bad(|r| {
            r.upstream = Some(Upstream {
                url: "u".repeat(MAX_URL_LEN + 1),
                byte_start: 0,
                byte_end: 0,
            })
        }),
        FrameError::BadLength { field: "url", .. }
    ));
    // Unknown request flag bits are rejected on decode.
    let mut bytes = request().to_vec().expect("encode");
    let last = bytes.len() - 1;
    bytes[last] = 0x04;
    assert!(matches!(
        decode(&bytes, DEFAULT_MAX_FRAME_LEN),
        Err(FrameError::InvalidField { field: "flags", .. })
    ));
    // The hashes flag set but the hashes missing.
    bytes[last] = 0x02;
    assert!(matches!(
        decode(&bytes, DEFAULT_MAX_FRAME_LEN),
        Err(FrameError::Truncated {
            field: "chunk_hashes",
            ..
        })
    ));
}
