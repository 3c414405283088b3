//! Fuzzes what `xorbstore` reads back from disk and what it verifies from the network: the range
//! file header decoder, the blob reference decoder and the structural re-check must never panic,
//! an accepted header or reference must re-encode to exactly its bytes, and `verify_range` on
//! arbitrary bytes must never panic; when it accepts them, its offsets must cover the bytes
//! exactly and pass the load-time re-check, and `verify_and_decode` must agree with it and decode
//! exactly the uncompressed length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xet::MerkleHash;
use xorbstore::format::{
    check_records, decode_header, decode_ref, encode_header, encode_ref, peek_header_len,
};
use xorbstore::{verify_and_decode, verify_range, Expectation};

fuzz_target!(|data: &[u8]| {
    if let Ok(len) = peek_header_len(data) {
        if data.len() >= len {
            if let Ok(h) = decode_header(&data[..len]) {
                let mut re = encode_header(&h.xorb, &h.range, h.data_len, &h.meta);
                re[12] = data[12]; // the level byte, written in place
                assert_eq!(&re[..], &data[..len]);
                let _ = check_records(&data[len..], &h.meta);
            }
        }
    }
    if let Ok((h, blob)) = decode_ref(data) {
        let mut re = encode_ref(&h.xorb, &h.range, h.data_len, &h.meta, &blob);
        re[12] = data[12];
        assert_eq!(&re[..], data);
    }
    // The first byte picks a chunk count; the rest are the "range bytes".
    let Some((&n, rest)) = data.split_first() else { return };
    let n = u32::from(n % 16) + 1;
    if let Ok(meta) = verify_range(&MerkleHash::ZERO, 0..n, rest, &Expectation::structural()) {
        assert_eq!(meta.record_ends.len(), n as usize);
        assert_eq!(meta.chunk_hashes.len(), n as usize);
        assert_eq!(*meta.record_ends.last().expect("n >= 1") as usize, rest.len());
        check_records(rest, &meta).expect("verified bytes pass the load-time re-check");
        let mut out = Vec::new();
        let again = verify_and_decode(&MerkleHash::ZERO, 0..n, rest, &Expectation::structural(), &mut out)
            .expect("verify_and_decode accepts what verify_range accepts");
        assert_eq!(again, meta);
        assert_eq!(out.len(), *meta.raw_ends.last().expect("n >= 1") as usize);
    } else {
        let mut out = Vec::new();
        assert!(verify_and_decode(&MerkleHash::ZERO, 0..n, rest, &Expectation::structural(), &mut out).is_err());
    }
});
