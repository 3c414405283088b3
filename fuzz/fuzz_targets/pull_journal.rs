//! Fuzzes the resume journal `zest pull` reads back after a kill: decoding arbitrary bytes never
//! panics and never allocates beyond the input; every decoded entry is self-consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zest::pull::journal::decode;

fuzz_target!(|data: &[u8]| {
    for e in decode(data) {
        let n = (e.chunks.end - e.chunks.start) as usize;
        assert!(n >= 1);
        assert_eq!(e.lens.len(), n);
        assert_eq!(e.hashes.len(), n);
    }
});
