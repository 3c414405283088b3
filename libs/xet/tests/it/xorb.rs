//! Chunk records, compression and xorbs against the vectors (`bg4_split.json`,
//! `lz4_frames.json`, `xorb_small*.{json,bin}`), proptest round-trips, and malformed inputs.

use proptest::prelude::*;
use sha2::{Digest, Sha256};
use xet::chunk::{decode_chunk, decode_records, encode_chunk, ChunkRecords};
use xet::compression::{
    bg4_join, bg4_lz4_compress_frame, bg4_split, choose_scheme, lz4_compress_frame,
    lz4_decompress_frame,
};
use xet::xorb::{XorbFooter, MAX_XORB_CHUNKS};
use xet::{ChunkHeader, CompressionPolicy, CompressionScheme, XorbBuilder, XorbError, XorbReader};

use crate::data;

fn policy(name: &str) -> CompressionPolicy {
    match name {
        "auto" => CompressionPolicy::Auto,
        "none" => CompressionPolicy::Fixed(CompressionScheme::None),
        "lz4" => CompressionPolicy::Fixed(CompressionScheme::Lz4),
        "bg4-lz4" => CompressionPolicy::Fixed(CompressionScheme::ByteGrouping4Lz4),
        other => panic!("unknown compression {other}"),
    }
}

#[test]
fn bg4_split_vectors() {
    let v = data::json("bg4_split.json");
    let cases = data::array(&v["cases"]);
    assert_eq!(cases.len(), 14);
    for case in cases {
        let input = data::unhex(data::string(&case["input_hex"]));
        let split = data::unhex(data::string(&case["bg4_split_hex"]));
        assert_eq!(bg4_split(&input), split, "split of {} bytes", input.len());
        assert_eq!(bg4_join(&split), input, "join of {} bytes", input.len());
    }
}

#[test]
fn lz4_frame_vectors_decode_and_our_frames_round_trip() {
    let v = data::json("lz4_frames.json");
    for case in data::array(&v["cases"]) {
        let len = data::uint(&case["len"]) as usize;
        let lz4 = data::unhex(data::string(&case["lz4_frame_hex"]));
        let bg4 = data::unhex(data::string(&case["bg4_lz4_frame_hex"]));
        let raw = lz4_decompress_frame(&lz4, len).expect("vector frame decodes");
        assert_eq!(raw.len(), len);
        let grouped = lz4_decompress_frame(&bg4, len).expect("vector bg4 frame decodes");
        assert_eq!(bg4_join(&grouped), raw);
        // The same through the chunk decoder.
        let mut out = Vec::new();
        decode_chunk(
            &ChunkHeader::new(
                CompressionScheme::ByteGrouping4Lz4,
                bg4.len() as u32,
                len as u32,
            ),
            &bg4,
            &mut out,
        )
        .expect("bg4 chunk decodes");
        assert_eq!(out, raw);
        // Our encoder: same lz4_flex major version as xet-core, so identical frames; at least
        // they must round-trip.
        assert_eq!(
            lz4_decompress_frame(&lz4_compress_frame(&raw), len).expect("ours"),
            raw
        );
        assert_eq!(
            lz4_compress_frame(&raw),
            lz4,
            "{}",
            data::string(&case["input"])
        );
        assert_eq!(
            bg4_lz4_compress_frame(&raw),
            bg4,
            "{}",
            data::string(&case["input"])
        );
        // Wrong expected lengths are errors.
        assert!(lz4_decompress_frame(&lz4, len + 1).is_err());
        if len > 0 {
            assert!(lz4_decompress_frame(&lz4, len - 1).is_err());
        }
    }
}

#[test]
fn xorb_small_vectors_parse_byte_exact() {
    let v = data::json("xorb_small.json");
    let chunks = data::small_chunks();
    let all = chunks.concat();
    let xorb_hash = data::hash(&v["xorb_hash"]);
    let chunk_hashes: Vec<_> = data::array(&v["chunks"])
        .iter()
        .map(|c| data::hash(&c["hash"]))
        .collect();
    let serializations = data::array(&v["serializations"]);
    assert_eq!(serializations.len(), 8);
    for s in serializations {
        let file = data::string(&s["file"]);
        let bytes = data::bytes(file);
        assert_eq!(bytes.len() as u64, data::uint(&s["total_len"]), "{file}");
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            data::string(&s["sha256_of_bytes"]),
            "{file}"
        );
        let r = XorbReader::new(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(r.num_chunks(), 3, "{file}");
        for (i, h) in data::array(&s["chunk_headers"]).iter().enumerate() {
            let rec = r.chunk(i as u32);
            assert_eq!(
                rec.offset as u64,
                data::uint(&h["offset"]),
                "{file} chunk {i}"
            );
            assert_eq!(
                rec.header.encode().to_vec(),
                data::unhex(data::string(&h["header_hex"]))
            );
            assert_eq!(rec.header.scheme as u64, data::uint(&h["scheme"]));
            assert_eq!(
                rec.header.compressed_len as u64,
                data::uint(&h["compressed_len"])
            );
            assert_eq!(
                rec.header.uncompressed_len as u64,
                data::uint(&h["uncompressed_len"])
            );
            let mut one = Vec::new();
            r.decode_range(i as u32..i as u32 + 1, &mut one)
                .expect("chunk decodes");
            assert_eq!(one, chunks[i], "{file} chunk {i}");
        }
        let mut out = Vec::new();
        r.decode_range(0..3, &mut out).expect("decodes");
        assert_eq!(out, all, "{file}");
        assert_eq!(r.compute_hash().expect("hash"), xorb_hash, "{file}");
        match r.footer() {
            None => {
                assert!(!s["footer"].as_bool().expect("bool"), "{file}");
                assert_eq!(r.chunk_region().len(), bytes.len());
            }
            Some(f) => {
                assert!(s["footer"].as_bool().expect("bool"), "{file}");
                let start = data::uint(&s["footer_start"]) as usize;
                assert_eq!(r.chunk_region().len(), start);
                assert_eq!(f.xorb_hash, xorb_hash);
                assert_eq!(f.chunk_hashes, chunk_hashes);
                let boundaries: Vec<u64> =
                    f.chunk_boundary_offsets.iter().map(|&o| o as u64).collect();
                assert_eq!(boundaries, data::uints(&s["footer_chunk_boundary_offsets"]));
                let unpacked: Vec<u64> =
                    f.unpacked_chunk_offsets.iter().map(|&o| o as u64).collect();
                assert_eq!(unpacked, data::uints(&s["footer_unpacked_chunk_offsets"]));
                assert_eq!(f.info_len() as u64, data::uint(&s["footer_info_length"]));
                assert_eq!(
                    hex::encode(&bytes[start..]),
                    data::string(&s["footer_hex"]),
                    "{file}: footer bytes"
                );
                // Footer parse → serialize is byte-exact.
                assert_eq!(f.serialize(), &bytes[start..], "{file}");
                assert_eq!(XorbFooter::parse(&bytes[start..]).as_ref(), Ok(f));
                assert_eq!(
                    &bytes[start + f.info_len() - 24..start + f.info_len() - 16],
                    &[
                        data::uint(&s["footer_hashes_section_offset_from_end"]) as u8,
                        0,
                        0,
                        0,
                        data::uint(&s["footer_boundary_section_offset_from_end"]) as u8,
                        0,
                        0,
                        0
                    ]
                );
            }
        }
    }
}

/// Building the three chunks with the same policy gives the vector's exact bytes, with and
/// without footer. (Our lz4_flex is 0.13.1, the vectors' 0.13.0; the LZ4 payloads are identical,
/// so no content-only comparison is needed.)
#[test]
fn xorb_small_vectors_reserialize_byte_exact() {
    let v = data::json("xorb_small.json");
    let chunks = data::small_chunks();
    for s in data::array(&v["serializations"]) {
        let file = data::string(&s["file"]);
        let bytes = data::bytes(file);
        let x = data::build_xorb(&chunks, policy(data::string(&s["compression_requested"])));
        assert_eq!(x.hash, data::hash(&v["xorb_hash"]));
        let ours = if s["footer"].as_bool().expect("bool") {
            x.to_bytes_with_footer()
        } else {
            x.data.clone()
        };
        assert_eq!(hex::encode(&ours), hex::encode(&bytes), "{file}");
    }
}

#[test]
fn auto_policy_retests_every_32_chunks_and_at_file_starts() {
    let text = b"Hello World! ".repeat(300);
    let floats: Vec<u8> = (0..1000u32)
        .flat_map(|i| ((i as f32) * 0.37).sin().to_le_bytes())
        .collect();
    assert_eq!(choose_scheme(&text), CompressionScheme::Lz4);
    assert_eq!(choose_scheme(&floats), CompressionScheme::ByteGrouping4Lz4);
    let mut b = XorbBuilder::new();
    // Block 1 (chunks 0..32) decided by a text chunk: all LZ4 even for floats.
    b.add_chunk(&text).expect("fits");
    for _ in 1..32 {
        b.add_chunk(&floats).expect("fits");
    }
    // Chunk 32 starts a new block, decided by floats: BG4.
    b.add_chunk(&floats).expect("fits");
    b.add_chunk(&text).expect("fits");
    // A new file re-decides at once.
    b.start_file();
    b.add_chunk(&text).expect("fits");
    b.add_chunk(&floats).expect("fits");
    let x = b.finish();
    let r = XorbReader::new(&x.data).expect("valid");
    let schemes: Vec<_> = r.records().map(|c| c.header.scheme).collect();
    // (Floats that LZ4 alone cannot shrink are stored raw.)
    let not_bg4 = |s: &CompressionScheme| *s != CompressionScheme::ByteGrouping4Lz4;
    assert_eq!(schemes[0], CompressionScheme::Lz4);
    assert!(schemes[1..32].iter().all(not_bg4), "{schemes:?}");
    assert_eq!(schemes[32], CompressionScheme::ByteGrouping4Lz4);
    assert_eq!(schemes[33], CompressionScheme::ByteGrouping4Lz4);
    assert_eq!(schemes[34], CompressionScheme::Lz4);
    assert!(not_bg4(&schemes[35]), "{schemes:?}");
}

#[test]
fn chunk_byte_ranges_address_standalone_record_runs() {
    let mut b = XorbBuilder::new();
    let chunks: Vec<Vec<u8>> = (0..10u32)
        .map(|i| vec![i as u8; 1000 + i as usize * 7])
        .collect();
    for c in &chunks {
        b.add_chunk(c).expect("fits");
    }
    let x = b.finish();
    let (s, e) = x.chunk_byte_range(3..7).expect("in range");
    let mut out = Vec::new();
    let lens = decode_records(&x.data[s as usize..e as usize], &mut out).expect("records decode");
    assert_eq!(lens, vec![1021, 1028, 1035, 1042]);
    assert_eq!(out, chunks[3..7].concat());
    let r = XorbReader::new(&x.data).expect("valid");
    assert_eq!(r.chunk_byte_range(3..7).expect("in range"), (s, e));
}

#[test]
fn build_then_read_with_and_without_footer() {
    for policy in [
        CompressionPolicy::Auto,
        CompressionPolicy::Fixed(CompressionScheme::None),
        CompressionPolicy::Fixed(CompressionScheme::Lz4),
        CompressionPolicy::Fixed(CompressionScheme::ByteGrouping4Lz4),
    ] {
        let x = data::build_xorb(&data::small_chunks(), policy);
        let all: Vec<u8> = data::small_chunks().concat();
        for bytes in [x.data.clone(), x.to_bytes_with_footer()] {
            let r = XorbReader::new(&bytes).expect("valid");
            assert_eq!(r.num_chunks(), 3);
            let mut out = Vec::new();
            r.decode_range(0..3, &mut out).expect("decode");
            assert_eq!(out, all);
            assert_eq!(r.compute_hash().expect("hash"), x.hash);
            assert_eq!(r.chunk_region(), &x.data[..]);
        }
        let with_footer = x.to_bytes_with_footer();
        let r = XorbReader::new(&with_footer).expect("valid");
        assert_eq!(r.footer(), Some(&x.footer));
    }
}

#[test]
fn v0_footer_is_accepted() {
    let x = data::build_xorb(&data::small_chunks(), CompressionPolicy::default());
    let mut bytes = x.data.clone();
    let start = bytes.len();
    bytes.extend_from_slice(xet::chunk::FOOTER_IDENT);
    bytes.push(0);
    bytes.extend_from_slice(x.hash.as_bytes());
    bytes.extend_from_slice(&3u32.to_le_bytes());
    for o in &x.footer.chunk_boundary_offsets {
        bytes.extend_from_slice(&o.to_le_bytes());
    }
    for h in &x.footer.chunk_hashes {
        bytes.extend_from_slice(h.as_bytes());
    }
    bytes.extend_from_slice(&[0u8; 16]);
    let info_len = (bytes.len() - start) as u32;
    assert_eq!(info_len, 60 + 36 * 3);
    bytes.extend_from_slice(&info_len.to_le_bytes());
    let r = XorbReader::new(&bytes).expect("V0 accepted");
    assert_eq!(r.footer(), Some(&x.footer));
}

// ---------------------------------------------------------------------------------------------
// Malformed inputs: typed errors, never panics.

fn with_footer_sample() -> Vec<u8> {
    data::build_xorb(
        &data::small_chunks(),
        CompressionPolicy::Fixed(CompressionScheme::Lz4),
    )
    .to_bytes_with_footer()
}

#[test]
fn truncated_xorbs_at_every_prefix_are_errors_or_shorter_valid_xorbs() {
    let files = [
        "xorb_small_bg4-lz4_with_footer.bin",
        "xorb_small_lz4_no_footer.bin",
    ];
    data::each_prefix(&files, |file, prefix| {
        let cut = prefix.len();
        // A cut exactly at a record boundary is a valid shorter xorb.
        if let Ok(r) = XorbReader::new(prefix) {
            assert_eq!(r.chunk_region().len(), cut, "{file} cut {cut}");
            assert!(r.footer().is_none(), "{file} cut {cut}");
            let mut out = Vec::new();
            r.decode_range(0..r.num_chunks(), &mut out)
                .expect("complete records decode");
        }
    });
}

#[test]
fn record_lengths_past_the_end_are_truncation_errors() {
    let mut bytes = data::bytes("xorb_small_none_no_footer.bin");
    // Chunk 0 claims a payload running off the end.
    bytes[1..4].copy_from_slice(&[0xFF, 0xFF, 0x03]);
    assert!(matches!(
        XorbReader::new(&bytes),
        Err(XorbError::Truncated { .. })
    ));
}

#[test]
fn bad_headers_are_typed_errors() {
    let good = data::bytes("xorb_small_lz4_no_footer.bin");
    type Check = fn(&XorbError) -> bool;
    let cases: [(usize, u8, Check); 4] = [
        (0, 1, |e| matches!(e, XorbError::UnsupportedChunkVersion(1))),
        (4, 3, |e| matches!(e, XorbError::UnknownScheme(3))),
        (4, 99, |e| matches!(e, XorbError::UnknownScheme(99))),
        (7, 0x02, |e| matches!(e, XorbError::UncompressedTooLarge(_))),
    ];
    for (at, value, check) in cases {
        let mut b = good.clone();
        b[at] = value;
        let e = XorbReader::new(&b).expect_err("must fail");
        assert!(check(&e), "byte {at} = {value}: {e:?}");
    }
    // Compressed length over 2·131072.
    let mut b = good.clone();
    b[1..4].copy_from_slice(&(262_145u32.to_le_bytes()[..3]));
    assert!(matches!(
        XorbReader::new(&b),
        Err(XorbError::CompressedTooLarge(262_145))
    ));
}

#[test]
fn lying_uncompressed_lengths_are_errors_on_decode() {
    let good = data::bytes("xorb_small_lz4_no_footer.bin");
    // Chunk 1 is LZ4 of 4096 bytes at offset 20; claim 4095 and 4097.
    for claimed in [4095u32, 4097, 0] {
        let mut b = good.clone();
        b[25..28].copy_from_slice(&claimed.to_le_bytes()[..3]);
        let r = XorbReader::new(&b).expect("headers are valid");
        let mut out = Vec::new();
        let e = r.decode_range(0..3, &mut out).expect_err("length mismatch");
        assert!(
            matches!(e, XorbError::LengthMismatch { .. }),
            "{claimed}: {e:?}"
        );
        assert!(r.compute_hash().is_err());
    }
    // Scheme None with compressed ≠ uncompressed.
    let mut b = data::bytes("xorb_small_none_no_footer.bin");
    b[5] = 11;
    let r = XorbReader::new(&b).expect("headers are valid");
    assert!(matches!(
        r.decode_range(0..1, &mut Vec::new()),
        Err(XorbError::LengthMismatch { .. })
    ));
}

#[test]
fn corrupted_lz4_payloads_are_errors_not_panics() {
    let good = data::bytes("xorb_small_bg4-lz4_no_footer.bin");
    // Flip every byte of every payload in turn (headers stay valid).
    let r = XorbReader::new(&good).expect("valid");
    let payload_ranges: Vec<_> = r.records().map(|c| c.offset + 8..c.end()).collect();
    for range in payload_ranges {
        for i in range {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut b = good.clone();
                b[i] ^= flip;
                let r = XorbReader::new(&b).expect("headers unchanged");
                let mut out = Vec::new();
                let _ = r.decode_range(0..3, &mut out);
                assert!(out.len() <= 5108);
            }
        }
    }
}

#[test]
fn bad_footers_are_errors() {
    let good = with_footer_sample();
    let x = data::build_xorb(
        &data::small_chunks(),
        CompressionPolicy::Fixed(CompressionScheme::Lz4),
    );
    let start = x.data.len();
    let n = good.len();
    type Mutation = Box<dyn Fn(&mut Vec<u8>)>;
    let mutations: Vec<(&str, Mutation)> = vec![
        (
            "info length too big",
            Box::new(move |b| b[n - 4] = b[n - 4].wrapping_add(1)),
        ),
        (
            "info length too small",
            Box::new(move |b| b[n - 4] = b[n - 4].wrapping_sub(1)),
        ),
        (
            "info length huge",
            Box::new(move |b| b[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes())),
        ),
        ("version 2", Box::new(move |b| b[start + 7] = 2)),
        ("hash ident", Box::new(move |b| b[start + 40] = b'Y')),
        (
            "chunk count huge",
            Box::new(move |b| b[start + 48..start + 52].copy_from_slice(&u32::MAX.to_le_bytes())),
        ),
        ("chunk count 2", Box::new(move |b| b[start + 48] = 2)),
        (
            "boundary offset",
            Box::new(move |b| b[start + 52 + 96 + 12] ^= 1),
        ),
        (
            "unpacked offset",
            Box::new(move |b| b[start + 52 + 96 + 12 + 12] ^= 1),
        ),
        ("section offset", Box::new(move |b| b[n - 4 - 24] ^= 1)),
        ("trailing byte", Box::new(|b| b.push(0))),
        (
            "tail cut",
            Box::new(|b| {
                b.pop();
            }),
        ),
    ];
    for (what, m) in mutations {
        let mut b = good.clone();
        m(&mut b);
        let e = XorbReader::new(&b).expect_err(what);
        assert!(
            matches!(
                e,
                XorbError::BadFooter(_)
                    | XorbError::FooterMismatch(_)
                    | XorbError::Truncated { .. }
            ),
            "{what}: {e:?}"
        );
    }
    // The nonce is not checked and round-trips.
    let mut b = good.clone();
    b[n - 20] = 0x5A;
    let r = XorbReader::new(&b).expect("nonce is free");
    assert_eq!(r.footer().expect("footer").nonce, 0x5A);
    assert_eq!(r.footer().expect("footer").serialize(), &b[start..]);
}

#[test]
fn footer_only_and_empty_inputs() {
    let r = XorbReader::new(&[]).expect("empty xorb is just zero records");
    assert_eq!(r.num_chunks(), 0);
    assert!(XorbReader::new(b"XETBLOB").is_err());
    let empty = XorbBuilder::new().finish();
    let bytes = empty.to_bytes_with_footer();
    let r = XorbReader::new(&bytes).expect("zero-chunk xorb with footer");
    assert_eq!(r.num_chunks(), 0);
    assert_eq!(r.footer(), Some(&empty.footer));
}

#[test]
fn more_than_8192_chunks_is_too_large() {
    let mut bytes = Vec::new();
    for _ in 0..=MAX_XORB_CHUNKS {
        encode_chunk(&[1], CompressionScheme::None, &mut bytes);
    }
    assert!(matches!(XorbReader::new(&bytes), Err(XorbError::TooLarge)));
    // decode_records has no xorb limit; it decodes what it is given.
    let mut out = Vec::new();
    assert_eq!(
        decode_records(&bytes, &mut out).expect("decodes").len(),
        MAX_XORB_CHUNKS + 1
    );
}

#[test]
fn chunk_records_iterator_stops_after_an_error() {
    let mut bytes = data::bytes("xorb_small_none_no_footer.bin");
    bytes[20 + 4] = 7; // chunk 1: unknown scheme
    let items: Vec<_> = ChunkRecords::new(&bytes).collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert!(matches!(items[1], Err(XorbError::UnknownScheme(7))));
}

// ---------------------------------------------------------------------------------------------
// Round-trips.

fn chunk_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // incompressible
        proptest::collection::vec(any::<u8>(), 0..3000),
        // compressible: few distinct bytes, with float-like structure sometimes
        (proptest::collection::vec(0u8..4, 0..20_000), any::<bool>()).prop_map(|(v, floaty)| {
            if floaty {
                v.chunks(4)
                    .flat_map(|c| (c.iter().map(|&x| x as f32).sum::<f32>() * 0.25).to_le_bytes())
                    .collect()
            } else {
                v
            }
        }),
        // runs
        (any::<u8>(), 0usize..131_073).prop_map(|(b, n)| vec![b; n]),
    ]
}

fn policy_strategy() -> impl Strategy<Value = CompressionPolicy> {
    prop_oneof![
        Just(CompressionPolicy::Auto),
        Just(CompressionPolicy::Fixed(CompressionScheme::None)),
        Just(CompressionPolicy::Fixed(CompressionScheme::Lz4)),
        Just(CompressionPolicy::Fixed(
            CompressionScheme::ByteGrouping4Lz4
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn xorb_build_read_decode_round_trip(
        chunks in proptest::collection::vec(chunk_strategy(), 0..12),
        policy in policy_strategy(),
        footer in any::<bool>(),
        range_seed in any::<(u32, u32)>(),
    ) {
        let x = data::build_xorb(&chunks, policy);
        let bytes = if footer { x.to_bytes_with_footer() } else { x.data.clone() };
        let r = XorbReader::new(&bytes).expect("valid");
        prop_assert_eq!(r.num_chunks() as usize, chunks.len());
        prop_assert_eq!(r.footer().is_some(), footer);
        let mut out = Vec::new();
        r.decode_range(0..r.num_chunks(), &mut out).expect("decodes");
        prop_assert_eq!(&out, &chunks.concat());
        let n = chunks.len() as u32 + 1;
        let (a, b) = (range_seed.0 % n, range_seed.1 % n);
        let (a, b) = (a.min(b), a.max(b));
        let mut part = Vec::new();
        r.decode_range(a..b, &mut part).expect("decodes");
        prop_assert_eq!(part, chunks[a as usize..b as usize].concat());
        prop_assert_eq!(r.compute_hash().expect("hash"), x.hash);
        for (c, rec) in chunks.iter().zip(r.records()) {
            prop_assert!(rec.header.compressed_len as usize <= c.len());
            let mut one = Vec::new();
            rec.decode(&mut one).expect("decodes");
            prop_assert_eq!(&one, c);
        }
    }

    #[test]
    fn chunk_header_encode_parse_round_trip(
        scheme in 0u8..3,
        compressed in 0u32..=262_144,
        uncompressed in 0u32..=131_072,
    ) {
        let scheme = CompressionScheme::try_from(scheme).expect("valid scheme");
        let h = ChunkHeader::new(scheme, compressed, uncompressed);
        prop_assert_eq!(ChunkHeader::parse(&h.encode()).expect("valid"), h);
    }

    #[test]
    fn chunk_header_parse_never_panics_and_reencodes(bytes in proptest::array::uniform8(any::<u8>())) {
        if let Ok(h) = ChunkHeader::parse(&bytes) {
            prop_assert_eq!(h.encode(), bytes);
        }
    }

    #[test]
    fn bg4_split_join_inverse(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        prop_assert_eq!(bg4_join(&bg4_split(&data)), data);
    }
}
