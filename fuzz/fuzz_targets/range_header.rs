//! Fuzz `xet::cas::parse_range_header`: never panics; every accepted range has start <= end and,
//! with a total length, lies inside it; formatting the result and parsing it again (with no
//! length) gives the same ranges.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xet::cas::{format_range_header, parse_range_header};

fuzz_target!(|input: (Option<u64>, &str)| {
    let (len, value) = input;
    if let Ok(ranges) = parse_range_header(value, len) {
        assert!(!ranges.is_empty());
        for r in &ranges {
            assert!(r.start <= r.end);
            if let Some(len) = len {
                assert!(r.end < len);
            }
        }
        assert_eq!(parse_range_header(&format_range_header(&ranges), None), Ok(ranges));
    }
});
