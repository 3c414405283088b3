//! Hashes against `hashing_basics.json` (hex forms, chunk hashes, internal node, range hash,
//! single-chunk and empty file) and `merkle_reference_from_xet_core.json` (18 lists: xorb hash
//! and salted file hashes).

use xet::hash::{
    chunk_hash, file_hash, file_hash_with_salt, is_global_dedup_eligible, keyed_hash, merkle_root,
    range_hash, xorb_hash, DATA_KEY, INTERNAL_NODE_KEY,
};
use xet::MerkleHash;

use crate::data::{self, array, hash, string, uint, unhex, unhex32};

#[test]
fn hex_conversion_both_ways() {
    let v = data::json("hashing_basics.json");
    let hc = &v["hex_conversion"];
    let raw = unhex32(string(&hc["raw_bytes_hex"]));
    let h = MerkleHash::from_bytes(raw);
    assert_eq!(h.to_hex(), string(&hc["api_hex"]));
    assert_eq!(h.to_string(), string(&hc["api_hex"]));
    assert_eq!(MerkleHash::from_hex(string(&hc["api_hex"])), Ok(h));
    assert_eq!(h.to_raw_hex(), string(&hc["raw_bytes_hex"]));
    // serde uses the API form too.
    let json = serde_json::to_string(&h).expect("serialize");
    assert_eq!(json, format!("\"{}\"", string(&hc["api_hex"])));
    assert_eq!(
        serde_json::from_str::<MerkleHash>(&json).expect("deserialize"),
        h
    );
}

/// The input each `data_hashes` entry names.
fn data_hash_input(name: &str, short_hex: &serde_json::Value) -> Vec<u8> {
    match name {
        "bytes 0..=255" => (0..=255u8).collect(),
        "65536 zero bytes" => vec![0; 65536],
        _ => unhex(string(short_hex)),
    }
}

#[test]
fn data_hashes() {
    let v = data::json("hashing_basics.json");
    let cases = array(&v["data_hashes"]);
    assert_eq!(cases.len(), 6);
    for c in cases {
        let name = string(&c["input"]);
        let input = data_hash_input(name, &c["input_hex_if_short"]);
        let h = chunk_hash(&input);
        assert_eq!(h, hash(&c["data_hash_hex_api"]), "{name}");
        assert_eq!(
            h.to_raw_hex(),
            string(&c["data_hash_raw_bytes_hex"]),
            "{name}"
        );
        let direct = blake3::keyed_hash(&DATA_KEY, &input);
        assert_eq!(
            hex::encode(direct.as_bytes()),
            string(&c["blake3_keyed_direct_raw"]),
            "{name}"
        );
        if let Some(ascii) = name.strip_prefix("ascii:") {
            assert_eq!(input, ascii.as_bytes(), "{name}: input hex");
        }
    }
}

#[test]
fn internal_node() {
    let v = data::json("hashing_basics.json");
    let ex = &v["internal_node_example"];
    let children: Vec<(MerkleHash, u64)> = array(&ex["children"])
        .iter()
        .map(|c| (hash(&c["hash"]), uint(&c["size"])))
        .collect();
    let text: String = children
        .iter()
        .map(|(h, s)| format!("{h} : {s}\n"))
        .collect();
    assert_eq!(text, string(&ex["hashed_string"]));
    let result = hash(&ex["result"]);
    assert_eq!(keyed_hash(&INTERNAL_NODE_KEY, text.as_bytes()), result);
    assert_eq!(merkle_root(&children), result);
    assert_eq!(xorb_hash(&children), result);
}

#[test]
fn verification_range_hash() {
    let v = data::json("hashing_basics.json");
    let ex = &v["verification_range_hash_example"];
    let api: Vec<MerkleHash> = array(&ex["chunk_hashes_api_hex"])
        .iter()
        .map(hash)
        .collect();
    let raw: Vec<MerkleHash> = array(&ex["chunk_hashes_raw_bytes_hex"])
        .iter()
        .map(|r| MerkleHash::from_bytes(unhex32(string(r))))
        .collect();
    assert_eq!(api, raw);
    assert_eq!(range_hash(&api), hash(&ex["result"]));
}

#[test]
fn single_chunk_and_empty_file() {
    let v = data::json("hashing_basics.json");
    let one = &v["file_hash_of_single_chunk_Hello_World"];
    let h = chunk_hash(b"Hello World!");
    assert_eq!(h, hash(&one["chunk"]["hash"]));
    assert_eq!(uint(&one["chunk"]["size"]), 12);
    let leaves = [(h, 12)];
    assert_eq!(xorb_hash(&leaves), hash(&one["xorb_hash"]));
    assert_eq!(file_hash(&leaves), hash(&one["file_hash"]));
    assert_eq!(
        keyed_hash(&[0; 32], h.as_bytes()),
        hash(&one["file_hash_manual"])
    );

    let empty = &v["empty_file"];
    assert_eq!(file_hash(&[]), hash(&empty["file_hash"]));
    assert_eq!(xorb_hash(&[]), hash(&empty["xorb_hash"]));
    assert_eq!(file_hash(&[]), MerkleHash::ZERO);
    // The draft's value (keyed hash of the zero root) is what an empty file must NOT hash to.
    let wrong = hash(&empty["NOT_this_value_keyed_hash_of_zero_root"]);
    assert_eq!(keyed_hash(&[0; 32], MerkleHash::ZERO.as_bytes()), wrong);
    assert_ne!(file_hash(&[]), wrong);
}

#[test]
fn merkle_reference_all_18_lists() {
    let v = data::json("merkle_reference_from_xet_core.json");
    let cases = array(&v["cases"]);
    assert_eq!(cases.len(), 18);
    for (i, c) in cases.iter().enumerate() {
        let nodes: Vec<(MerkleHash, u64)> = array(&c["nodes"])
            .iter()
            .map(|n| (hash(&n["hash"]), uint(&n["size"])))
            .collect();
        assert_eq!(
            xorb_hash(&nodes),
            hash(&c["xorb_hash"]),
            "case {i}: xorb hash"
        );
        let salted = array(&c["file_hashes"]);
        assert_eq!(salted.len(), 3, "case {i}");
        for s in salted {
            // The salt is a hash in API hex; its raw bytes are the BLAKE3 key.
            let salt = hash(&s["salt"]).to_bytes();
            assert_eq!(
                file_hash_with_salt(&nodes, &salt),
                hash(&s["file_hash"]),
                "case {i}: salt {}",
                string(&s["salt"])
            );
            if salt == [0; 32] {
                assert_eq!(file_hash(&nodes), hash(&s["file_hash"]), "case {i}");
            }
        }
    }
}

#[test]
fn global_dedup_eligibility() {
    // u64_le(raw[24..32]) is API-hex group 3.
    let h = |g3: u64| MerkleHash::from_u64_groups([1, 2, 3, g3]);
    assert!(is_global_dedup_eligible(&h(0), false));
    assert!(is_global_dedup_eligible(&h(1024 * 77), false));
    assert!(!is_global_dedup_eligible(&h(1023), false));
    assert!(!is_global_dedup_eligible(&h(512), false));
    assert!(is_global_dedup_eligible(&h(1023), true));
    // Group 0 does not count.
    assert!(!is_global_dedup_eligible(
        &MerkleHash::from_u64_groups([0, 0, 0, 1]),
        false
    ));
}
