//! Fuzzes `XorbReader` over arbitrary bytes: it must never panic; a reader that accepts the
//! input must decode every chunk (or report an error) with the output bounded by the headers,
//! agree with `decode_records` on the chunk region, and keep its footer consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xet::chunk::decode_records;
use xet::XorbReader;

fuzz_target!(|data: &[u8]| {
    let Ok(r) = XorbReader::new(data) else {
        return;
    };
    let n = r.num_chunks();
    let expected = r.unpacked_len(0..n).expect("whole range is in bounds");
    let mut all = Vec::new();
    let whole = r.decode_range(0..n, &mut all);
    if whole.is_ok() {
        assert_eq!(all.len() as u64, expected);
    }
    assert!(all.len() as u64 <= expected);
    // Chunk by chunk gives the same bytes.
    let mut pieces = Vec::new();
    let mut ok = true;
    for i in 0..n {
        let before = pieces.len();
        if r.chunk(i).decode(&mut pieces).is_err() {
            assert_eq!(pieces.len(), before, "failed decode must not append");
            ok = false;
            break;
        }
        assert_eq!(
            (pieces.len() - before) as u32,
            r.chunk(i).header.uncompressed_len
        );
    }
    assert_eq!(ok, whole.is_ok());
    if ok {
        assert_eq!(pieces, all);
        // The record-walking decoder agrees on the chunk region.
        let mut again = Vec::new();
        let lens = decode_records(r.chunk_region(), &mut again).expect("same records decode");
        assert_eq!(lens.len() as u32, n);
        assert_eq!(again, all);
        let _ = r.compute_hash().expect("decodable xorb hashes");
    }
    if let Some(f) = r.footer() {
        assert_eq!(f.chunk_hashes.len() as u32, n);
        assert_eq!(f.unpacked_chunk_offsets.len() as u32, n);
        // A parsed footer re-serializes to a footer that parses back to the same value.
        let bytes = f.serialize();
        assert_eq!(xet::XorbFooter::parse(&bytes).as_ref(), Ok(f));
    }
});
