//! Fuzzes zest-origin's request-path router and its strict signed-range parser: no panic, and a
//! routed file path never holds a `..`, `.` or empty component, a backslash or a control
//! character; a parsed range list has every start <= end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zest_origin::http::path::{parse, Route};
use zest_origin::signing::{format_ranges, parse_exact_ranges};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(route) = parse(s) {
        let path = match &route {
            Route::Resolve { path, .. } => Some(path.as_str()),
            Route::Tree { path: Some(p), .. } => Some(p.as_str()),
            _ => None,
        };
        if let Some(p) = path {
            for c in p.split('/') {
                assert!(!c.is_empty() && c != "." && c != "..", "{p:?}");
                assert!(!c.contains('\\') && !c.chars().any(char::is_control), "{p:?}");
            }
        }
    }
    if let Some(ranges) = parse_exact_ranges(s, 64) {
        assert!(!ranges.is_empty() && ranges.len() <= 64);
        assert!(ranges.iter().all(|(a, b)| a <= b));
        // Round trip through the canonical form.
        let canon = format!("bytes={}", format_ranges(&ranges));
        assert_eq!(parse_exact_ranges(&canon, 64), Some(ranges));
    }
});
