//! Fuzzes the tracker's binary holder records (values read back from Redis): decoding arbitrary
//! bytes never panics; an accepted record re-encodes to exactly the bytes it used, and coverage
//! queries on it never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use zest_tracker::store::holders::{encode_to_vec, Record};

fuzz_target!(|data: &[u8]| {
    let Ok((rec, used)) = Record::decode_prefix(data) else {
        return;
    };
    assert!(used <= data.len());
    let _ = rec.covers(0, 1);
    let _ = rec.covers(u32::MAX - 1, u32::MAX);
    if let Some((s, e)) = rec.ranges().next() {
        assert!(rec.covers(s, e));
    }
    let Ok(id) = std::str::from_utf8(rec.id()) else {
        return;
    };
    if let Ok(set) = rec.to_set() {
        let again = encode_to_vec(id, &set).expect("a decoded record encodes");
        assert_eq!(again, &data[..used], "re-encoding differs");
    }
});
