//! Fuzzes `Shard::parse`: never panics; a parsed shard re-serializes (upload form, and the full
//! form with its own footer metadata) to bytes that parse back to the same contents.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xet::Shard;

fuzz_target!(|data: &[u8]| {
    let Ok(shard) = Shard::parse(data) else {
        return;
    };
    let key = |h: &xet::MerkleHash| {
        [
            h.u64_group(0),
            h.u64_group(1),
            h.u64_group(2),
            h.u64_group(3),
        ]
    };
    let mut sorted = Shard {
        footer: None,
        ..shard.clone()
    };
    sorted.files.sort_by_key(|f| key(&f.file_hash));
    sorted.xorbs.sort_by_key(|x| key(&x.xorb_hash));

    let upload = shard.serialize_upload();
    let back = Shard::parse(&upload).expect("our upload form parses");
    assert_eq!(back, sorted);
    assert_eq!(back.serialize_upload(), upload);

    let meta = shard.footer.map(|f| f.meta()).unwrap_or_default();
    let full = shard.serialize_full(&meta);
    let back = Shard::parse(&full).expect("our full form parses");
    assert_eq!(back.files, sorted.files);
    assert_eq!(back.xorbs, sorted.xorbs);
    assert_eq!(back.serialize_full(&meta), full);
});
