//! Fuzzes chunk headers and single-chunk decoding: a header that parses re-encodes to the same
//! 8 bytes; decoding the payload after it never panics and appends exactly
//! `uncompressed_len` bytes or nothing; the fast LZ4 path agrees with the reference decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xet::chunk::{decode_chunk, ChunkHeader, ChunkRecords};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = ChunkHeader::parse(data) {
        assert_eq!(&h.encode()[..], &data[..8]);
        let payload = &data[8..];
        let payload = &payload[..payload.len().min(h.compressed_len as usize)];
        let mut out = vec![1, 2, 3];
        match decode_chunk(&h, payload, &mut out) {
            Ok(()) => assert_eq!(out.len(), 3 + h.uncompressed_len as usize),
            Err(_) => assert_eq!(out, vec![1, 2, 3]),
        }
    }
    // Treat the input as a raw LZ4 frame with a claimed length taken from its last byte.
    if let Some((&last, frame)) = data.split_last() {
        let expected = last as usize * 97;
        let _ = xet::compression::lz4_decompress_frame(frame, expected);
        // Differential: whenever the fast path accepts, the reference decoder agrees exactly.
        let mut fast = vec![0u8; expected];
        if let Some(n) = xet::compression::fast_frame_decode(frame, &mut fast) {
            let mut reference = vec![0u8; expected];
            let m = xet::compression::slow_frame_decode(frame, &mut reference)
                .expect("reference accepts what the fast path accepts");
            assert_eq!(n, m);
            assert_eq!(fast[..n], reference[..n]);
        }
    }
    // Walking records never panics and stops after the first error.
    let mut errors = 0;
    for rec in ChunkRecords::new(data) {
        if rec.is_err() {
            errors += 1;
        }
    }
    assert!(errors <= 1);
});
