//! Shared helpers for the integration tests: loading the vectors copied into `tests/data/`
//! and regenerating their inputs (splitmix64, constant, ramp), as `vectors/README.md` describes.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;
use xet::{CompressionPolicy, MerkleHash, SerializedXorb, XorbBuilder};

/// Path of a file under `tests/data/`.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The bytes of a file under `tests/data/`.
pub fn bytes(name: &str) -> Vec<u8> {
    let p = path(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// A JSON vector file under `tests/data/`.
pub fn json(name: &str) -> Value {
    serde_json::from_slice(&bytes(name)).unwrap_or_else(|e| panic!("parsing {name}: {e}"))
}

/// splitmix64 bytes, as xet-core's `create_random_data` (the one generator, in the testkit).
pub use zest_testkit::splitmix_data;

/// The input a vector's `generator` object describes.
pub fn generate(generator: &Value) -> Vec<u8> {
    let len = uint(&generator["len"]) as usize;
    match generator["kind"].as_str() {
        Some("splitmix64") => splitmix_data(len, uint(&generator["seed"])),
        Some("constant") => vec![uint(&generator["byte"]) as u8; len],
        Some("ramp") => (0..len).map(|i| (i % 256) as u8).collect(),
        other => panic!("unknown generator kind {other:?}"),
    }
}

/// A JSON unsigned integer.
pub fn uint(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected an unsigned integer, got {v}"))
}

/// A JSON array of unsigned integers.
pub fn uints(v: &Value) -> Vec<u64> {
    array(v).iter().map(uint).collect()
}

/// A JSON string.
pub fn string(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

/// A JSON array.
pub fn array(v: &Value) -> &Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
}

/// An API-hex hash string.
pub fn hash(v: &Value) -> MerkleHash {
    MerkleHash::from_hex(string(v)).unwrap_or_else(|e| panic!("bad hash {v}: {e}"))
}

/// Plain hex to bytes.
pub fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("bad hex {s:?}: {e}"))
}

/// Plain hex of exactly 32 bytes.
pub fn unhex32(s: &str) -> [u8; 32] {
    unhex(s)
        .try_into()
        .unwrap_or_else(|_| panic!("{s:?} is not 32 bytes"))
}

#[test]
fn splitmix_sanity() {
    let d = splitmix_data(1_000_000, 0);
    assert_eq!((d[0], d[127], d[111_111]), (175, 132, 118));
}

/// The three chunks of `xorb_small.json` and `shard_small.json`.
pub fn small_chunks() -> Vec<Vec<u8>> {
    vec![
        b"Hello World!".to_vec(),
        (0..4096u32).map(|i| (i % 7) as u8).collect(),
        (0..250u32)
            .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
            .collect(),
    ]
}

/// A xorb of `chunks` built with `policy`.
pub fn build_xorb(chunks: &[Vec<u8>], policy: CompressionPolicy) -> SerializedXorb {
    let mut b = XorbBuilder::new().with_policy(policy);
    for c in chunks {
        b.add_chunk(c).expect("chunk fits");
    }
    b.finish()
}

/// Calls `check(file, prefix)` for every proper prefix (`0..len` bytes) of each vector file.
pub fn each_prefix(files: &[&str], mut check: impl FnMut(&str, &[u8])) {
    for file in files {
        let bytes = bytes(file);
        for cut in 0..bytes.len() {
            check(file, &bytes[..cut]);
        }
    }
}
