//! Shards against `shard_small.json` and its two `.bin` files (byte-exact parse and
//! re-serialize), round-trips, and malformed inputs.

use proptest::prelude::*;
use xet::shard::{ShardMeta, SHARD_FOOTER_SIZE};
use xet::{
    CompressionPolicy, CompressionScheme, FileDataSequenceEntry, FileInfo, MerkleHash, Shard,
    ShardError, XorbChunkEntry, XorbInfo,
};

use crate::data;

/// The shard of `shard_small.json` built from scratch: one file (the 3 chunks, one term, with
/// verification and SHA-256) and one xorb.
fn expected_shard() -> Shard {
    let v = data::json("shard_small.json");
    let x = data::build_xorb(
        &data::small_chunks(),
        CompressionPolicy::Fixed(CompressionScheme::None),
    );
    assert_eq!(x.hash, data::hash(&v["xorb_hash"]));
    let verification = xet::hash::range_hash(&x.footer.chunk_hashes);
    Shard {
        files: vec![FileInfo {
            file_hash: data::hash(&v["file_hash"]),
            entries: vec![FileDataSequenceEntry {
                xorb_hash: x.hash,
                xorb_flags: 0,
                unpacked_segment_bytes: 5108,
                chunk_index_start: 0,
                chunk_index_end: 3,
            }],
            verification: Some(vec![verification]),
            sha256: Some(data::unhex32(data::string(&v["sha256"]))),
        }],
        xorbs: vec![XorbInfo::from(&x)],
        footer: None,
    }
}

#[test]
fn shard_small_upload_form_byte_exact() {
    let v = data::json("shard_small.json");
    let bytes = data::bytes(data::string(&v["upload_file"]));
    assert_eq!(bytes.len() as u64, data::uint(&v["upload_len"]));
    assert_eq!(hex::encode(&bytes), data::string(&v["upload_hex"]));
    let parsed = Shard::parse(&bytes).expect("upload form parses");
    assert_eq!(parsed, expected_shard());
    assert_eq!(parsed.files[0].size(), 5108);
    // The SHA-256 is stored group-reversed.
    assert_eq!(
        hex::encode(&bytes[48 + 3 * 48..48 + 3 * 48 + 32]),
        data::string(&v["sha256_as_stored_in_shard_raw_bytes"])
    );
    assert_eq!(parsed.serialize_upload(), bytes);
    assert_eq!(expected_shard().serialize_upload(), bytes);
}

#[test]
fn shard_small_full_form_byte_exact() {
    let v = data::json("shard_small.json");
    let bytes = data::bytes(data::string(&v["with_footer_file"]));
    assert_eq!(bytes.len() as u64, data::uint(&v["with_footer_len"]));
    let parsed = Shard::parse(&bytes).expect("full form parses");
    let f = parsed.footer.expect("has a footer");
    let jf = &v["footer"];
    for (name, value) in [
        ("file_info_offset", f.file_info_offset),
        ("xorb_info_offset", f.xorb_info_offset),
        ("file_lookup_offset", f.file_lookup_offset),
        ("file_lookup_num_entry", f.file_lookup_num_entry),
        ("xorb_lookup_offset", f.xorb_lookup_offset),
        ("xorb_lookup_num_entry", f.xorb_lookup_num_entry),
        ("chunk_lookup_offset", f.chunk_lookup_offset),
        ("chunk_lookup_num_entry", f.chunk_lookup_num_entry),
        ("footer_offset", f.footer_offset),
        ("materialized_bytes", f.materialized_bytes),
        ("stored_bytes", f.stored_bytes),
        ("stored_bytes_on_disk", f.stored_bytes_on_disk),
        ("shard_creation_timestamp", f.shard_creation_timestamp),
        ("shard_key_expiry", f.shard_key_expiry),
    ] {
        assert_eq!(value, data::uint(&jf[name]), "{name}");
    }
    assert_eq!(
        Shard {
            footer: None,
            ..parsed.clone()
        },
        expected_shard()
    );
    assert_eq!(parsed.serialize_full(&f.meta()), bytes);
    assert_eq!(
        expected_shard().serialize_full(&ShardMeta::default()),
        bytes
    );
    // The upload form is the full form cut at the lookup tables, with footer_size = 0.
    let upload = data::bytes(data::string(&v["upload_file"]));
    assert_eq!(&bytes[48..f.file_lookup_offset as usize], &upload[48..]);
}

#[test]
fn truncated_shards_at_every_prefix_are_errors() {
    let files = [
        "shard_small_upload_no_footer.bin",
        "shard_small_with_footer.bin",
    ];
    data::each_prefix(&files, |name, prefix| {
        let cut = prefix.len();
        assert!(Shard::parse(prefix).is_err(), "{name} cut at {cut}");
    });
}

#[test]
fn malformed_shards_are_typed_errors() {
    let upload = data::bytes("shard_small_upload_no_footer.bin");
    let full = data::bytes("shard_small_with_footer.bin");
    let check = |b: &[u8], what: &str, ok: fn(&ShardError) -> bool| {
        let e = Shard::parse(b).expect_err(what);
        assert!(ok(&e), "{what}: {e:?}");
    };
    let mut b = upload.clone();
    b[0] ^= 1;
    check(&b, "tag", |e| matches!(e, ShardError::BadTag));
    let mut b = upload.clone();
    b[32] = 3;
    check(&b, "version", |e| {
        matches!(e, ShardError::UnsupportedVersion { .. })
    });
    let mut b = upload.clone();
    b[40] = 7;
    check(&b, "footer size", |e| matches!(e, ShardError::BadFooter(_)));
    let mut b = upload.clone();
    b.push(0);
    check(&b, "trailing", |e| {
        matches!(e, ShardError::TrailingBytes(1))
    });
    let mut b = upload.clone();
    b[48 + 32] = 1; // unknown file flag bit 0
    check(&b, "flags", |e| {
        matches!(e, ShardError::UnknownFileFlags(_))
    });
    for count_at in [48 + 36, 288 + 36] {
        for count in [u32::MAX, 1 << 20, 100] {
            let mut b = upload.clone();
            b[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
            check(&b, "huge count", |e| {
                matches!(e, ShardError::Truncated { .. })
            });
        }
    }
    // Full form: every footer field that must agree with the layout.
    let footer = full.len() - SHARD_FOOTER_SIZE;
    for field in 0..9 {
        let mut b = full.clone();
        b[footer + 8 * field] ^= 1;
        assert!(Shard::parse(&b).is_err(), "footer field {field}");
    }
    let mut b = full.clone();
    b[footer + 192] ^= 1; // footer_offset
    assert!(Shard::parse(&b).is_err());
    let mut b = full.clone();
    b.insert(600, 0); // an extra byte before the footer
    assert!(Shard::parse(&b).is_err());
}

fn hash_strategy() -> impl Strategy<Value = MerkleHash> {
    any::<[u8; 32]>()
        .prop_filter("not the bookend", |b| b != &[0xFF; 32])
        .prop_map(MerkleHash::from_bytes)
}

fn file_strategy() -> impl Strategy<Value = FileInfo> {
    (
        hash_strategy(),
        proptest::collection::vec((hash_strategy(), any::<[u32; 4]>()), 0..4),
        any::<bool>(),
        proptest::option::of(any::<[u8; 32]>()),
    )
        .prop_map(|(file_hash, entries, with_verification, sha256)| {
            let verification = with_verification.then(|| entries.iter().map(|(h, _)| *h).collect());
            FileInfo {
                file_hash,
                entries: entries
                    .into_iter()
                    .map(|(xorb_hash, [a, b, c, d])| FileDataSequenceEntry {
                        xorb_hash,
                        xorb_flags: a,
                        unpacked_segment_bytes: b,
                        chunk_index_start: c,
                        chunk_index_end: d,
                    })
                    .collect(),
                verification,
                sha256,
            }
        })
}

fn xorb_strategy() -> impl Strategy<Value = XorbInfo> {
    (
        hash_strategy(),
        proptest::collection::vec((hash_strategy(), any::<[u32; 3]>()), 0..5),
        any::<[u32; 2]>(),
    )
        .prop_map(|(xorb_hash, chunks, [in_xorb, on_disk])| XorbInfo {
            xorb_hash,
            chunks: chunks
                .into_iter()
                .map(|(chunk_hash, [a, b, c])| XorbChunkEntry {
                    chunk_hash,
                    chunk_byte_range_start: a,
                    unpacked_segment_bytes: b,
                    flags: c,
                })
                .collect(),
            num_bytes_in_xorb: in_xorb,
            num_bytes_on_disk: on_disk,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn shard_round_trips_in_both_forms(
        files in proptest::collection::vec(file_strategy(), 0..4),
        xorbs in proptest::collection::vec(xorb_strategy(), 0..4),
        timestamp in any::<u64>(),
    ) {
        let shard = Shard { files, xorbs, footer: None };
        let key = |h: &MerkleHash| [h.u64_group(0), h.u64_group(1), h.u64_group(2), h.u64_group(3)];
        let mut sorted = shard.clone();
        sorted.files.sort_by_key(|f| key(&f.file_hash));
        sorted.xorbs.sort_by_key(|x| key(&x.xorb_hash));

        let upload = shard.serialize_upload();
        let parsed = Shard::parse(&upload).expect("upload parses");
        prop_assert_eq!(&parsed, &sorted);
        prop_assert_eq!(parsed.serialize_upload(), upload);

        let meta = ShardMeta { shard_creation_timestamp: timestamp, ..ShardMeta::default() };
        let full = shard.serialize_full(&meta);
        let parsed = Shard::parse(&full).expect("full parses");
        prop_assert_eq!(&parsed.files, &sorted.files);
        prop_assert_eq!(&parsed.xorbs, &sorted.xorbs);
        let f = parsed.footer.expect("footer");
        prop_assert_eq!(f.shard_creation_timestamp, timestamp);
        prop_assert_eq!(parsed.serialize_full(&f.meta()), full);
    }

    #[test]
    fn shard_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut b = data::bytes("shard_small_upload_no_footer.bin")[..48].to_vec();
        b.extend_from_slice(&bytes);
        let _ = Shard::parse(&b);
        let _ = Shard::parse(&bytes);
    }
}
