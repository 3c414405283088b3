//! Chunk boundaries and per-file hashes against xet-core's vectors
//! (`chunker_reference_from_xet_core.json`, `chunking_and_file_hashes.json`,
//! `chunking_splitmix64_seed0_10MB.json`), fed whole and in pieces of many sizes.

use proptest::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use xet::chunking::{
    chunk_and_hash, chunk_and_hash_segmented, chunk_boundaries, chunk_boundaries_segmented,
    file_hash_of, leaves, ChunkHasher, Chunker, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE,
};
use xet::hash::{file_hash, is_global_dedup_eligible, range_hash, xorb_hash};

use crate::data::{self, array, hash, string, uint, uints};

/// Piece sizes the input is fed in (the vectors' generator checked the same ones).
const PIECES: [usize; 5] = [1, 37, 255, 8192, 37893];

/// Chunk end offsets when `data` is fed to a [`Chunker`] in pieces of `piece` bytes.
fn streamed(data: &[u8], piece: usize) -> Vec<u64> {
    let mut c = Chunker::new();
    let mut out = Vec::new();
    for p in data.chunks(piece) {
        c.push(p, &mut out);
    }
    out.extend(c.finish());
    assert_eq!(c.position(), data.len() as u64);
    out
}

/// Checks every way of chunking `data` against `expect` (end offsets).
fn check_boundaries(name: &str, data: &[u8], expect: &[u64]) {
    let whole: Vec<u64> = chunk_boundaries(data).iter().map(|&b| b as u64).collect();
    assert_eq!(whole, expect, "{name}: all at once");
    for piece in PIECES {
        assert_eq!(streamed(data, piece), expect, "{name}: pieces of {piece}");
    }
    let mut c = Chunker::new();
    let mut out = Vec::new();
    c.push(data, &mut out);
    out.extend(c.finish());
    assert_eq!(out, expect, "{name}: one push");
    for seg in [MAX_CHUNK_SIZE, 300_007] {
        let got: Vec<u64> = chunk_boundaries_segmented(data, seg)
            .iter()
            .map(|&b| b as u64)
            .collect();
        assert_eq!(got, expect, "{name}: segments of {seg}");
    }
    #[cfg(feature = "parallel")]
    {
        let got: Vec<u64> = xet::chunking::chunk_boundaries_parallel(data)
            .iter()
            .map(|&b| b as u64)
            .collect();
        assert_eq!(got, expect, "{name}: parallel");
    }
}

#[test]
fn xet_core_reference_1mb_random() {
    let v = data::json("chunker_reference_from_xet_core.json");
    let case = &v["splitmix64_seed0_len1000000"];
    let d = data::splitmix_data(1_000_000, 0);
    for (pos, byte) in case["spot_bytes"].as_object().expect("spot_bytes") {
        let pos: usize = pos.parse().expect("spot byte offset");
        assert_eq!(u64::from(d[pos]), uint(byte), "spot byte {pos}");
    }
    check_boundaries(
        "1mb random",
        &d,
        &uints(&case["chunk_boundaries_cumulative_end"]),
    );
}

#[test]
fn xet_core_reference_1mb_constant() {
    let v = data::json("chunker_reference_from_xet_core.json");
    let d = vec![59u8; 1_000_000];
    check_boundaries(
        "1mb const 59",
        &d,
        &uints(&v["const59_len1000000"]["chunk_boundaries_cumulative_end"]),
    );
}

#[test]
fn xet_core_reference_hitting_patterns() {
    let v = data::json("chunker_reference_from_xet_core.json");
    let hp = &v["hitting_pattern_len65536"];
    let pattern: Vec<u8> = uints(&hp["pattern"]).iter().map(|&b| b as u8).collect();
    assert_eq!(pattern.len(), 128);
    let cases = array(&hp["cases"]);
    assert_eq!(cases.len(), 128);
    for case in cases {
        let padding = uint(&case["padding"]) as usize;
        let mut unit = pattern.clone();
        unit.resize(128 + padding, 0);
        let d: Vec<u8> = (0..65536).map(|k| unit[k % unit.len()]).collect();
        assert_eq!(
            u64::from(d[11111]),
            uint(&case["data_11111"]),
            "padding {padding}"
        );
        let expect = uints(&case["chunk_boundaries_cumulative_end"]);
        check_boundaries(&format!("hitting pattern, padding {padding}"), &d, &expect);
        // The regression of xet-core#487: no chunk but the last is shorter than MIN.
        let mut prev = 0;
        for &end in &expect[..expect.len() - 1] {
            assert!(
                end - prev >= MIN_CHUNK_SIZE as u64,
                "padding {padding}: short chunk"
            );
            prev = end;
        }
    }
}

/// Checks one entry of `chunking_and_file_hashes.json` (or the 10 MB file) in full.
fn check_file_vector(f: &Value) {
    let name = string(&f["name"]);
    let d = data::generate(&f["generator"]);
    assert_eq!(d.len() as u64, uint(&f["length"]), "{name}: length");
    let expect_ends = uints(&f["chunk_boundaries_cumulative_end"]);
    check_boundaries(name, &d, &expect_ends);

    let chunks = chunk_and_hash(&d);
    let expect_chunks = array(&f["chunks"]);
    assert_eq!(
        chunks.len() as u64,
        uint(&f["num_chunks"]),
        "{name}: num_chunks"
    );
    assert_eq!(chunks.len(), expect_chunks.len(), "{name}: chunk count");
    let mut offset = 0;
    for (i, (c, e)) in chunks.iter().zip(expect_chunks).enumerate() {
        assert_eq!(c.offset, offset, "{name}: chunk {i} offset");
        assert_eq!(u64::from(c.len), uint(&e["len"]), "{name}: chunk {i} len");
        assert_eq!(c.hash, hash(&e["hash"]), "{name}: chunk {i} hash");
        assert_eq!(
            c.hash.to_raw_hex(),
            string(&e["hash_raw_bytes_hex"]),
            "{name}: chunk {i} raw"
        );
        offset = c.end();
    }

    // Streaming chunk hashing gives the same list, in pieces too.
    for piece in [37, 8192, d.len().max(1)] {
        let mut ch = ChunkHasher::new();
        let mut out = Vec::new();
        for p in d.chunks(piece) {
            ch.push(p, &mut out);
        }
        out.extend(ch.finish());
        assert_eq!(out, chunks, "{name}: ChunkHasher, pieces of {piece}");
    }
    assert_eq!(
        chunk_and_hash_segmented(&d, 300_007),
        chunks,
        "{name}: segmented"
    );
    #[cfg(feature = "parallel")]
    assert_eq!(
        xet::chunking::chunk_and_hash_parallel(&d),
        chunks,
        "{name}: parallel"
    );

    let l = leaves(&chunks);
    assert_eq!(
        xorb_hash(&l),
        hash(&f["xorb_hash_if_all_chunks_in_one_xorb"]),
        "{name}: xorb"
    );
    assert_eq!(file_hash(&l), hash(&f["file_hash"]), "{name}: file hash");
    assert_eq!(
        file_hash_of(&chunks),
        hash(&f["file_hash"]),
        "{name}: file_hash_of"
    );
    assert_eq!(
        hex::encode(Sha256::digest(&d)),
        string(&f["sha256"]),
        "{name}: sha256"
    );
    let hashes: Vec<_> = chunks.iter().map(|c| c.hash).collect();
    match &f["verification_range_hash_all_chunks"] {
        Value::Null => assert!(
            chunks.is_empty(),
            "{name}: no range hash only without chunks"
        ),
        v => assert_eq!(range_hash(&hashes), hash(v), "{name}: range hash"),
    }
    let eligible: Vec<u64> = chunks
        .iter()
        .enumerate()
        .filter(|(_, c)| is_global_dedup_eligible(&c.hash, false))
        .map(|(i, _)| i as u64)
        .collect();
    assert_eq!(
        eligible,
        uints(&f["chunk_indices_with_hash_mod_1024_eq_0"]),
        "{name}: dedup"
    );
    if let Some(first) = chunks.first() {
        assert!(is_global_dedup_eligible(&first.hash, true));
    }
}

#[test]
fn every_file_of_chunking_and_file_hashes() {
    let v = data::json("chunking_and_file_hashes.json");
    let files = array(&v["files"]);
    assert_eq!(files.len(), 14);
    for f in files {
        check_file_vector(f);
    }
}

#[test]
fn splitmix_10mb() {
    let v = data::json("chunking_splitmix64_seed0_10MB.json");
    assert_eq!(uint(&v["num_chunks"]), 163);
    check_file_vector(&v);
}

/// Inputs for the property tests: random bytes, or a short random alphabet repeated (which
/// produces forced cuts at MAX and long runs without matches).
fn input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (any::<u64>(), 0usize..700_000).prop_map(|(seed, n)| data::splitmix_data(n, seed)),
        (
            proptest::collection::vec(any::<u8>(), 1..200),
            0usize..500_000
        )
            .prop_map(|(unit, n)| (0..n).map(|i| unit[i % unit.len()]).collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_splits_give_the_same_boundaries(
        d in input(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
    ) {
        let expect: Vec<u64> = chunk_boundaries(&d).iter().map(|&b| b as u64).collect();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(d.len() + 1)).collect();
        points.push(0);
        points.push(d.len());
        points.sort_unstable();
        let mut c = Chunker::new();
        let mut out = Vec::new();
        for w in points.windows(2) {
            c.push(&d[w[0]..w[1]], &mut out);
        }
        out.extend(c.finish());
        prop_assert_eq!(&out, &expect);

        // Every chunk within [MIN, MAX] except the last, which is within [1, MAX].
        let mut prev = 0;
        for (i, &end) in expect.iter().enumerate() {
            let len = (end - prev) as usize;
            prop_assert!(len <= MAX_CHUNK_SIZE);
            prop_assert!(len >= 1);
            if i + 1 < expect.len() {
                prop_assert!(len >= MIN_CHUNK_SIZE, "chunk {} has {} bytes", i, len);
            }
            prev = end;
        }
        prop_assert_eq!(prev, d.len() as u64);
    }

    #[test]
    fn segmented_chunking_is_exact(d in input(), seg in 131_072usize..400_000) {
        prop_assert_eq!(chunk_boundaries_segmented(&d, seg), chunk_boundaries(&d));
        prop_assert_eq!(chunk_and_hash_segmented(&d, seg), chunk_and_hash(&d));
    }
}
