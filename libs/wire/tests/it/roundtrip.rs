//! Every valid frame round-trips exactly; every prefix of one is Incomplete; arbitrary and
//! mutated bytes never panic, and whatever decodes re-encodes to the bytes it used.

use bytes::BytesMut;
use proptest::prelude::*;
use wire::*;

use crate::strategies;

/// The fuzz target's property: decoding never panics, and a decoded frame re-encodes to exactly
/// the bytes it consumed.
fn check_canonical(bytes: &[u8]) {
    if let Ok(Decoded::Frame { frame, consumed }) = decode(bytes, ABSOLUTE_MAX_FRAME_LEN) {
        let again = frame.to_vec().expect("a decoded frame encodes");
        assert_eq!(again, &bytes[..consumed]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_then_decode_gives_the_frame_back(frame in strategies::frame()) {
        let bytes = frame.to_vec().expect("valid frames encode");
        prop_assert_eq!(bytes.len(), frame.encoded_len());
        prop_assert_eq!(
            decode(&bytes, ABSOLUTE_MAX_FRAME_LEN),
            Ok(Decoded::Frame { frame: frame.clone(), consumed: bytes.len() })
        );
        // decode_buf agrees and leaves what follows in the buffer.
        let mut buf = BytesMut::from(&bytes[..]);
        buf.extend_from_slice(b"next");
        prop_assert_eq!(decode_buf(&mut buf, ABSOLUTE_MAX_FRAME_LEN), Ok(Some(frame)));
        prop_assert_eq!(&buf[..], b"next");
    }

    #[test]
    fn every_prefix_of_a_frame_is_incomplete(frame in strategies::frame()) {
        let bytes = frame.to_vec().expect("valid frames encode");
        // Long frames: check the header prefixes and a sample of the rest.
        let step = (bytes.len() / 512).max(1);
        for cut in (0..bytes.len()).filter(|c| *c < 16 || c % step == 0) {
            let needed = if cut < 4 { 6 - cut } else { bytes.len() - cut };
            prop_assert_eq!(
                decode(&bytes[..cut], ABSOLUTE_MAX_FRAME_LEN),
                Ok(Decoded::Incomplete { needed })
            );
            let mut buf = BytesMut::from(&bytes[..cut]);
            prop_assert_eq!(decode_buf(&mut buf, ABSOLUTE_MAX_FRAME_LEN), Ok(None));
            prop_assert_eq!(buf.len(), cut);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_decode_canonically(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        check_canonical(&bytes);
    }

    #[test]
    fn mutated_frames_never_panic_and_decode_canonically(
        frame in strategies::frame(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = frame.to_vec().expect("valid frames encode");
        for (i, x) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= x;
        }
        check_canonical(&bytes);
    }

    /// The Data fast path (`decode_data_prefix`, payload read separately) agrees with `decode`:
    /// whatever prefix it returns describes exactly the frame `decode` finds (or is still
    /// waiting for), and it errs only where `decode` errs or has not seen the whole frame yet.
    #[test]
    fn data_prefixes_agree_with_decode(
        frame in strategies::frame(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    ) {
        let mut bytes = frame.to_vec().expect("valid frames encode");
        for (i, x) in flips {
            let i = i.index(bytes.len().min(DATA_PREFIX_LEN));
            bytes[i] ^= x;
        }
        let cut = bytes.len().min(DATA_PREFIX_LEN);
        match decode_data_prefix(&bytes[..cut], ABSOLUTE_MAX_FRAME_LEN) {
            Ok(Some(p)) => match decode(&bytes, ABSOLUTE_MAX_FRAME_LEN) {
                Ok(Decoded::Frame { frame: Frame::Data(d), consumed }) => {
                    prop_assert_eq!(consumed, DATA_PREFIX_LEN + p.payload_len);
                    prop_assert_eq!(
                        (p.request_id, p.offset, p.last, p.payload_len),
                        (d.request_id, d.offset, d.last, d.payload.len())
                    );
                }
                // A length changed upwards: the payload is not all here yet.
                Ok(Decoded::Incomplete { needed }) => {
                    prop_assert_eq!(bytes.len() + needed, DATA_PREFIX_LEN + p.payload_len);
                }
                other => prop_assert!(false, "prefix {:?} but decode gave {:?}", p, other),
            },
            Ok(None) => {}
            // The same error, or an earlier one (decode waits for the whole frame).
            Err(e) => match decode(&bytes, ABSOLUTE_MAX_FRAME_LEN) {
                Err(d) => prop_assert_eq!(d, e),
                Ok(Decoded::Incomplete { .. }) => {}
                Ok(other) => prop_assert!(false, "prefix error {:?} but decode gave {:?}", e, other),
            },
        }
    }

    #[test]
    fn frames_over_the_limit_are_rejected_before_their_body(frame in strategies::frame()) {
        let bytes = frame.to_vec().expect("valid frames encode");
        let len = frame.frame_len();
        if len > 2 {
            let limit = (len - 1) as u32;
            prop_assert_eq!(
                decode(&bytes[..4], limit),
                Err(FrameError::FrameTooLarge { len, max: limit })
            );
        }
    }

    /// A responder cutting a response into arbitrary pieces within the peer's limit is accepted
    /// by both state machines, and the request ends with the last piece.
    #[test]
    fn any_piecewise_response_is_accepted(
        total in 8u64..5_000_000,
        cuts in proptest::collection::vec(1usize..=DATA_PIECE_LEN as usize, 1..20),
    ) {
        let mut client = Connection::new(
            Handshake::new("c", Role::Client, Capabilities::NONE, &Limits::default()),
            Limits::default(),
        );
        let mut edge = Connection::new(
            Handshake::new("e", Role::Edge, Capabilities::SERVE, &Limits::default()),
            Limits::default(),
        );
        let h = client.handshake_frame();
        client.on_send(&h).expect("send");
        edge.on_receive(&h).expect("recv");
        let h = edge.handshake_frame();
        edge.on_send(&h).expect("send");
        client.on_receive(&h).expect("recv");

        let id = client.next_request_id();
        let req = Frame::Request(Request {
            request_id: id,
            xorb: xet::MerkleHash::ZERO,
            chunks: ChunkRange::new(0, 1),
            upstream: None,
            chunk_hashes: None,
        });
        client.on_send(&req).expect("send");
        edge.on_receive(&req).expect("recv");
        let hdr = Frame::DataHeader(DataHeader { request_id: id, total_len: total, num_chunks: 1 });
        edge.on_send(&hdr).expect("send");
        client.on_receive(&hdr).expect("recv");
        let mut offset = 0u64;
        let mut cuts = cuts.into_iter().cycle();
        while offset < total {
            let len = (cuts.next().expect("cycle") as u64).min(total - offset);
            let last = offset + len == total;
            edge.on_send_data(id, offset, len as usize, last).expect("send piece");
            let mut header = Vec::new();
            encode_data_header(id, offset, last, len as usize, &mut header).expect("header");
            prop_assert_eq!(header.len(), FRAME_HEADER_LEN + DATA_FRAME_OVERHEAD as usize - 2);
            let piece = Frame::Data(Data {
                request_id: id,
                offset,
                last,
                payload: bytes::Bytes::from(vec![0u8; len as usize]),
            });
            // Half the pieces take the fast path (prefix only, payload read separately).
            if offset % 2 == 0 {
                prop_assert_eq!(client.on_receive(&piece), Ok(Accepted::Deliver));
            } else {
                let p = decode_data_prefix(&header, ABSOLUTE_MAX_FRAME_LEN)
                    .expect("valid prefix")
                    .expect("a Data prefix");
                prop_assert_eq!(p.payload_len as u64, len);
                prop_assert_eq!(client.on_receive_data(&p), Ok(Accepted::Deliver));
            }
            offset += len;
        }
        prop_assert_eq!(client.outgoing_in_flight(), 0);
        prop_assert_eq!(edge.incoming_in_flight(), 0);
    }
}
