//! Shared helpers for the integration tests: loading the vectors copied into `tests/data/`
//! and regenerating their inputs (splitmix64, constant, ramp), as `vectors/README.md` describes.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;
use xet::MerkleHash;

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

/// splitmix64 bytes, as xet-core's `create_random_data` and zig-xet's `createRandomData`.
pub fn splitmix_data(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(n);
    out
}

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
