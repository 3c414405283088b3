//! Fuzz the streaming chunker: feeding the input in pieces (sizes taken from the input itself)
//! gives the same boundaries as chunking it at once, every chunk but the last is within
//! [MIN, MAX], and the segmented (parallel) algorithm agrees.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xet::chunking::{chunk_boundaries, chunk_boundaries_segmented, Chunker, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};

fuzz_target!(|input: (Vec<u16>, u8, u32, &[u8])| {
    let (pieces, repeat, seg, seed) = input;
    // Repeat the seed to reach sizes where chunks form (bounded: at most ~1 MB).
    let mut data = Vec::new();
    if !seed.is_empty() {
        let target = (usize::from(repeat) * 4096).min(1 << 20);
        while data.len() < target {
            data.extend_from_slice(seed);
        }
    }
    let expect = chunk_boundaries(&data);
    let mut c = Chunker::new();
    let mut out = Vec::new();
    let mut pos = 0;
    for p in pieces.iter().cycle().take(10_000) {
        if pos >= data.len() {
            break;
        }
        let end = (pos + usize::from(*p) + 1).min(data.len());
        c.push(&data[pos..end], &mut out);
        pos = end;
    }
    c.push(&data[pos..], &mut out);
    out.extend(c.finish());
    let got: Vec<usize> = out.iter().map(|&b| b as usize).collect();
    assert_eq!(got, expect);
    let mut prev = 0;
    for (i, &end) in expect.iter().enumerate() {
        assert!(end - prev <= MAX_CHUNK_SIZE);
        if i + 1 < expect.len() {
            assert!(end - prev >= MIN_CHUNK_SIZE);
        }
        prev = end;
    }
    assert_eq!(chunk_boundaries_segmented(&data, seg as usize), expect);
});
