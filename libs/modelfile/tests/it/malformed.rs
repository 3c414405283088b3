//! Damaged and malicious files: each gets a clear error naming the byte offset, never a panic or a
//! huge allocation.

use modelfile::gguf::{GgufFile, MAX_ARRAY_DEPTH};
use modelfile::safetensors::SafetensorsFile;
use modelfile::{check_structure, parse, parse_prefix, Error};

use crate::writer::{safetensors_file, safetensors_raw, string_bytes, ty, GgufBuilder};

const Q4_0: u32 = 2;
const F32: u32 = 0;

fn small_gguf() -> GgufBuilder {
    let mut b = GgufBuilder::new();
    b.kv_str("general.architecture", "llama")
        .kv_u32("llama.context_length", 2048)
        .kv_str_array("tokenizer.ggml.tokens", ["a", "bb", "ccc"].into_iter())
        .kv_array("arr", ty::U16, 3, &[1, 0, 2, 0, 3, 0])
        .tensor("w", &[32, 2], Q4_0, 36)
        .tensor("n", &[5], F32, 20);
    b
}

fn small_safetensors() -> Vec<u8> {
    safetensors_file(
        &[("a", "F32", &[2, 2], 0, 16), ("b", "BF16", &[3], 16, 22)],
        Some(&[("format", "pt")]),
        22,
    )
}

#[test]
fn gguf_truncated_at_every_length() {
    let bytes = small_gguf().build();
    let whole = GgufFile::parse(&bytes).expect("valid");
    let header = whole.header_len();
    let data_end = whole
        .tensors()
        .iter()
        .map(|t| t.offset + t.n_bytes)
        .max()
        .unwrap_or(0);
    for n in 0..bytes.len() {
        let prefix = &bytes[..n];
        let complete = parse(prefix);
        if (n as u64) < header.max(data_end) {
            let err = complete.expect_err("a truncated file must not parse");
            assert!(
                matches!(
                    err,
                    Error::Truncated { .. }
                        | Error::TensorOutOfBounds { .. }
                        | Error::CountTooLarge { .. }
                ),
                "{n}: {err}"
            );
            assert!(err.offset().is_some(), "{n}");
        } else {
            complete.expect("header and data all there");
        }
        match parse_prefix(prefix, Some(bytes.len() as u64)) {
            Ok(f) => assert!(n as u64 >= header && f.header_len() == header, "{n}"),
            Err(Error::Incomplete { needed }) => {
                assert!(
                    needed > n as u64 && needed <= header,
                    "{n}: needed {needed}"
                )
            }
            Err(e) => panic!("prefix {n} of a valid file: {e}"),
        }
        match parse_prefix(prefix, None) {
            Ok(_) | Err(Error::Incomplete { .. }) => {}
            Err(e) => panic!("prefix {n} without a length: {e}"),
        }
    }
}

#[test]
fn safetensors_truncated_at_every_length() {
    let bytes = small_safetensors();
    let header = SafetensorsFile::parse(&bytes).expect("valid").header_len();
    for n in 0..bytes.len() {
        let err = parse(&bytes[..n]).expect_err("truncated");
        assert!(err.offset().is_some(), "{n}: {err}");
        match parse_prefix(&bytes[..n], Some(bytes.len() as u64)) {
            Ok(_) => assert!(n as u64 >= header),
            Err(Error::Incomplete { needed }) => assert!(needed > n as u64 && needed <= header),
            Err(e) => panic!("prefix {n}: {e}"),
        }
    }
}

#[test]
fn gguf_bad_magic_and_versions() {
    let mut bytes = small_gguf().build();
    bytes[..4].copy_from_slice(b"GGML");
    assert!(matches!(
        parse(&bytes),
        Err(Error::UnknownFormat { offset: 0 })
    ));
    assert!(matches!(
        GgufFile::parse(&bytes),
        Err(Error::BadMagic { offset: 0, .. })
    ));
    for version in [0u32, 1, 4, 0x0300_0000 + 1] {
        let mut b = small_gguf();
        b.version = version;
        let err = parse(&b.build()).expect_err("bad version");
        assert!(
            matches!(err, Error::UnsupportedVersion { offset: 4, .. }),
            "{version}: {err}"
        );
    }
    let mut b = small_gguf();
    b.version = 1;
    assert!(parse(&b.build())
        .expect_err("v1")
        .to_string()
        .contains("GGUF version 1 is not supported"));
}

#[test]
fn gguf_huge_counts_are_refused_before_allocating() {
    // kv count
    let mut bytes = small_gguf().build();
    bytes[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        parse(&bytes),
        Err(Error::CountTooLarge {
            offset: 16,
            count: u64::MAX,
            ..
        })
    ));
    // tensor count
    let mut bytes = small_gguf().build();
    bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        parse(&bytes),
        Err(Error::CountTooLarge {
            offset: 8,
            count: u64::MAX,
            ..
        })
    ));
    // array count
    let mut b = GgufBuilder::new();
    b.kv_array("a", ty::U64, u64::MAX, &[]);
    let err = parse(&b.build()).expect_err("huge array");
    assert!(
        matches!(
            err,
            Error::CountTooLarge {
                count: u64::MAX,
                ..
            }
        ),
        "{err}"
    );
    // strings array: count bounded by 8 bytes per (empty) string
    let mut b = GgufBuilder::new();
    b.kv_array("a", ty::STRING, 1 << 40, &[0; 64]);
    assert!(matches!(
        parse(&b.build()),
        Err(Error::CountTooLarge { .. })
    ));
    // nested arrays: 12 bytes per inner array
    let mut b = GgufBuilder::new();
    b.kv_array("a", ty::ARRAY, 1 << 40, &[0; 64]);
    assert!(matches!(
        parse(&b.build()),
        Err(Error::CountTooLarge { .. })
    ));
}

#[test]
fn gguf_lengths_past_the_end() {
    let mut b = GgufBuilder::new();
    // key length claims 1000 bytes, 20 follow
    b.kv_raw("k", ty::U8, &[1]);
    let mut bytes = b.build();
    bytes[24..32].copy_from_slice(&1000u64.to_le_bytes());
    let err = parse(&bytes).expect_err("string past end");
    assert!(
        matches!(
            err,
            Error::CountTooLarge {
                offset: 32,
                count: 1000,
                ..
            }
        ),
        "{err}"
    );
    // string value length past the end
    let mut b = GgufBuilder::new();
    let mut v = 500u64.to_le_bytes().to_vec();
    v.extend_from_slice(b"short");
    b.kv_raw("s", ty::STRING, &v);
    assert!(matches!(
        parse(&b.build()),
        Err(Error::CountTooLarge { .. })
    ));
}

#[test]
fn gguf_prefix_without_length_refuses_absurd_headers() {
    let mut b = GgufBuilder::new();
    let mut v = (u64::MAX / 2).to_le_bytes().to_vec();
    v.extend_from_slice(b"x");
    b.kv_raw("s", ty::STRING, &v);
    let bytes = b.build();
    let err = parse_prefix(&bytes, None).expect_err("absurd");
    assert!(
        matches!(
            err,
            Error::CountTooLarge { .. } | Error::HeaderTooLarge { .. }
        ),
        "{err}"
    );
}

#[test]
fn gguf_overflowing_dimensions() {
    for dims in [
        vec![1u64 << 32, 1 << 32],
        vec![1 << 63],
        vec![u64::MAX],
        vec![1 << 21, 1 << 21, 1 << 21],
    ] {
        let mut b = GgufBuilder::new();
        b.tensor("t", &dims, F32, 0);
        let err = parse(&b.build()).expect_err("overflow");
        assert!(
            matches!(err, Error::ShapeOverflow { offset: 33, .. }),
            "{dims:?}: {err}"
        );
    }
    // elements fit in i64, bytes do not: 2^62 F32 elements
    let mut b = GgufBuilder::new();
    b.tensor("t", &[1 << 31, 1 << 31], F32, 0);
    assert!(matches!(
        parse(&b.build()),
        Err(Error::ShapeOverflow { .. })
    ));
}

#[test]
fn gguf_tensor_data_outside_the_file() {
    let mut b = GgufBuilder::new();
    b.tensor_at("t", &[8], F32, 32, 1 << 40);
    let (mut bytes, _) = b.header();
    bytes.resize(200, 0);
    let err = parse(&bytes).expect_err("outside");
    assert!(
        matches!(err, Error::TensorOutOfBounds { offset: 24, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("lies outside the file"));
    // without the file length, a header prefix cannot tell
    assert!(parse_prefix(&bytes, None).is_ok());
    // offset near u64::MAX must not overflow
    let mut b = GgufBuilder::new();
    b.tensor_at("t", &[8], F32, 32, u64::MAX - 31);
    let (header, _) = b.header();
    assert!(matches!(
        parse(&header),
        Err(Error::TensorOutOfBounds { .. })
    ));
    assert!(matches!(
        parse_prefix(&header, None),
        Err(Error::TensorOutOfBounds { .. })
    ));
}

#[test]
fn gguf_misaligned_and_overlapping_tensors() {
    let mut b = GgufBuilder::new();
    b.tensor_at("t", &[8], F32, 32, 4);
    assert!(matches!(
        parse(&b.build()),
        Err(Error::MisalignedTensor {
            data_offset: 4,
            alignment: 32,
            ..
        })
    ));
    let mut b = GgufBuilder::new();
    b.tensor_at("a", &[16], F32, 64, 0)
        .tensor_at("b", &[8], F32, 32, 32);
    let err = parse(&b.build()).expect_err("overlap");
    assert!(matches!(err, Error::TensorOverlap { .. }), "{err}");
    assert!(
        err.to_string().contains("\"b\" data overlaps tensor \"a\""),
        "{err}"
    );
}

#[test]
fn gguf_unknown_types_are_reported_by_number() {
    let mut b = GgufBuilder::new();
    b.tensor("t", &[32], 31, 18);
    let err = parse(&b.build()).expect_err("retired type");
    assert!(
        matches!(err, Error::UnknownTensorType { type_id: 31, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("unknown ggml type 31"));
    let mut b = GgufBuilder::new();
    b.kv_raw("k", 13, &[0; 8]);
    let err = parse(&b.build()).expect_err("value type");
    assert_eq!(
        err,
        Error::UnknownValueType {
            offset: 33,
            type_id: 13
        }
    );
    let mut b = GgufBuilder::new();
    b.kv_array("k", 77, 1, &[0; 8]);
    assert!(matches!(
        parse(&b.build()),
        Err(Error::UnknownValueType { type_id: 77, .. })
    ));
}

#[test]
fn gguf_bad_utf8() {
    let mut b = GgufBuilder::new();
    b.kv_raw("ke\u{e9}", ty::U8, &[1]);
    let mut bytes = b.build();
    // "ke" then the first byte of "é" replaced by 0xff
    bytes[34] = 0xff;
    assert_eq!(
        parse(&bytes),
        Err(Error::InvalidUtf8 {
            offset: 34,
            what: "metadata key"
        })
    );
    // inside a string array: found lazily, and by check_structure
    let mut b = GgufBuilder::new();
    b.kv_str_array("tokens", ["ok", "b\u{e9}d"].into_iter());
    let mut bytes = b.build();
    let pos = bytes
        .windows(2)
        .position(|w| w == "\u{e9}".as_bytes())
        .expect("é");
    bytes[pos] = 0xc0;
    let file = GgufFile::parse(&bytes).expect("arrays are not decoded by parse");
    let tokens = file
        .get("tokens")
        .and_then(|v| v.as_array())
        .expect("array");
    let items: Vec<_> = tokens.iter().collect();
    assert!(items[0].is_ok());
    assert!(matches!(items[1], Err(Error::InvalidUtf8 { offset, .. }) if offset == pos as u64));
    assert!(matches!(
        check_structure(&bytes),
        Err(Error::InvalidUtf8 { .. })
    ));
}

#[test]
fn gguf_invalid_bool_and_nesting() {
    let mut b = GgufBuilder::new();
    b.kv_raw("b", ty::BOOL, &[2]);
    assert_eq!(
        parse(&b.build()),
        Err(Error::InvalidBool {
            offset: 37,
            value: 2
        })
    );
    // inside an array: found by iteration and by check_structure, at its own offset
    let mut b = GgufBuilder::new();
    b.kv_array("bools", ty::BOOL, 3, &[1, 0, 7]);
    let bytes = b.build();
    let file = GgufFile::parse(&bytes).expect("arrays are not decoded by parse");
    let arr = file.get("bools").and_then(|v| v.as_array()).expect("array");
    assert!(matches!(
        arr.iter().nth(2),
        Some(Err(Error::InvalidBool { value: 7, .. }))
    ));
    let expected = Error::InvalidBool {
        offset: 24 + 8 + 5 + 4 + 4 + 8 + 2,
        value: 7,
    };
    assert_eq!(check_structure(&bytes), Err(expected.clone()));
    assert_eq!(arr.iter().nth(2), Some(Err(expected)));
    // nested deeper than allowed: array of array of ... of u8
    let mut inner = ty::U8.to_le_bytes().to_vec();
    inner.extend(0u64.to_le_bytes());
    for _ in 0..MAX_ARRAY_DEPTH + 2 {
        let mut outer = ty::ARRAY.to_le_bytes().to_vec();
        outer.extend(1u64.to_le_bytes());
        outer.extend(inner);
        inner = outer;
    }
    let mut b = GgufBuilder::new();
    b.kv_raw("deep", ty::ARRAY, &inner);
    assert!(matches!(
        parse(&b.build()),
        Err(Error::NestingTooDeep { .. })
    ));
}

#[test]
fn gguf_duplicates_dims_and_blocks() {
    let mut b = GgufBuilder::new();
    b.kv_u32("k", 1).kv_u32("k", 2);
    assert!(matches!(
        parse(&b.build()),
        Err(Error::DuplicateKey { offset: 41, .. })
    ));
    let mut b = GgufBuilder::new();
    b.tensor("t", &[1], F32, 4).tensor("t", &[1], F32, 4);
    assert!(matches!(
        parse(&b.build()),
        Err(Error::DuplicateTensor { .. })
    ));
    let mut b = GgufBuilder::new();
    b.tensor("t", &[1, 1, 1, 1, 1], F32, 4);
    assert!(matches!(
        parse(&b.build()),
        Err(Error::TooManyDims { n_dims: 5, .. })
    ));
    let mut b = GgufBuilder::new();
    b.tensor("t", &[33], Q4_0, 36);
    assert!(matches!(
        parse(&b.build()),
        Err(Error::NotBlockAligned {
            elements: 33,
            block: 32,
            ..
        })
    ));
}

#[test]
fn gguf_alignment() {
    for bad in [0u32, 3, 48] {
        let mut b = GgufBuilder::new();
        b.kv_raw("general.alignment", ty::U32, &bad.to_le_bytes());
        assert!(matches!(parse(&b.build()), Err(Error::BadAlignment { .. })));
    }
    let mut b = GgufBuilder::new();
    b.kv_raw("general.alignment", ty::U64, &64u64.to_le_bytes());
    assert!(matches!(
        parse(&b.build()),
        Err(Error::AlignmentType { found: "u64", .. })
    ));
    let mut b = GgufBuilder::new();
    b.kv_u32("general.alignment", 256)
        .tensor("t", &[4], F32, 16)
        .tensor("u", &[4], F32, 16);
    let bytes = b.build();
    let g = GgufFile::parse(&bytes).expect("aligned");
    assert_eq!(g.alignment(), 256);
    assert_eq!(g.data_offset() % 256, 0);
    assert_eq!(g.tensors()[1].relative_offset, 256);
}

#[test]
fn safetensors_overlaps_gaps_and_sizes() {
    let overlap = safetensors_file(
        &[("a", "F32", &[4], 0, 16), ("b", "F32", &[2], 8, 16)],
        None,
        16,
    );
    let err = parse(&overlap).expect_err("overlap");
    assert!(matches!(err, Error::TensorOverlap { .. }), "{err}");

    let gap = safetensors_file(&[("a", "F32", &[2], 8, 16)], None, 16);
    assert!(matches!(
        parse(&gap),
        Err(Error::UncoveredData { len: 8, .. })
    ));

    let trailing = safetensors_file(&[("a", "F32", &[2], 0, 8)], None, 16);
    assert!(matches!(
        parse(&trailing),
        Err(Error::UncoveredData { len: 8, .. })
    ));

    let size = safetensors_file(&[("a", "F32", &[3], 0, 8)], None, 8);
    assert!(matches!(
        parse(&size),
        Err(Error::SizeMismatch {
            expected: 12,
            actual: 8,
            ..
        })
    ));

    let reversed = safetensors_file(&[("a", "F32", &[0], 8, 0)], None, 8);
    assert!(matches!(
        parse(&reversed),
        Err(Error::ReversedOffsets { .. })
    ));

    let outside = safetensors_file(&[("a", "U8", &[1 << 40], 0, 1 << 40)], None, 8);
    let err = parse(&outside).expect_err("outside");
    assert!(matches!(err, Error::TensorOutOfBounds { .. }), "{err}");

    let overflow = safetensors_file(&[("a", "F32", &[1 << 32, 1 << 32], 0, 8)], None, 8);
    assert!(matches!(parse(&overflow), Err(Error::ShapeOverflow { .. })));

    let huge_offsets = safetensors_file(&[("a", "F32", &[0], u64::MAX, u64::MAX)], None, 8);
    assert!(parse(&huge_offsets).is_err());

    // sub-byte dtypes must end on a byte boundary
    let f4 = safetensors_file(&[("a", "F4", &[3], 0, 1)], None, 1);
    assert!(matches!(parse(&f4), Err(Error::NotBlockAligned { .. })));
    let f6 = safetensors_file(&[("a", "F6_E2M3", &[4], 0, 3)], None, 3);
    assert!(parse(&f6).is_ok());
}

#[test]
fn safetensors_bad_json_and_utf8() {
    let cases: &[(&[u8], &str)] = &[
        (b"{\"a\": {\"dtype\": \"F32\"", "EOF"),
        (b"{\"a\": 5}", "a tensor object"),
        (b"{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}", "data_offsets"),
        (b"{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 0]}}", "-1"),
        (
            b"{\"a\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [0, 4]}, \"a\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [0, 4]}}",
            "duplicate tensor name",
        ),
        (b"{\"__metadata__\": {\"k\": 1}}", "string"),
        (b"[1, 2]", "start with"),
        (b"{} trailing", "trailing"),
    ];
    for (json, needle) in cases {
        let bytes = safetensors_raw(json, 4);
        let err = SafetensorsFile::parse(&bytes).expect_err("bad json");
        assert!(
            matches!(err, Error::Json { .. }) && err.to_string().contains(needle),
            "{}: {err}",
            String::from_utf8_lossy(json)
        );
        assert!(err.offset().is_some_and(|o| o >= 8));
    }
    let bytes = safetensors_raw(b"{\"\xff\": 1}", 0);
    assert_eq!(
        SafetensorsFile::parse(&bytes),
        Err(Error::InvalidUtf8 {
            offset: 10,
            what: "JSON header"
        })
    );
    let unknown = safetensors_file(&[("a", "F128", &[1], 0, 16)], None, 16);
    let err = parse(&unknown).expect_err("dtype");
    assert!(err.to_string().contains("unknown dtype \"F128\""), "{err}");
    let dims = vec![1u64; 65];
    let many = safetensors_file(&[("a", "F32", &dims, 0, 4)], None, 4);
    assert!(parse(&many).expect_err("dims").to_string().contains("64"));
}

#[test]
fn safetensors_header_length_limits() {
    let mut bytes = small_safetensors();
    bytes[..8].copy_from_slice(&200_000_000u64.to_le_bytes());
    assert!(matches!(
        parse(&bytes),
        Err(Error::HeaderTooLarge { offset: 0, .. })
    ));
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(parse(&bytes), Err(Error::HeaderTooLarge { .. })));
    bytes[..8].copy_from_slice(&5000u64.to_le_bytes());
    assert!(matches!(
        parse(&bytes),
        Err(Error::Truncated { needed: 5008, .. })
    ));
    assert_eq!(
        parse_prefix(&bytes, None),
        Err(Error::Incomplete { needed: 5008 })
    );
}

#[test]
fn escaped_names_are_decoded() {
    let json = br#"{"a\"b\u00e9": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "__metadata__": {"k\n": "v\u0041"}}"#;
    let bytes = safetensors_raw(json, 1);
    let s = SafetensorsFile::parse(&bytes).expect("valid");
    assert_eq!(s.tensors()[0].name, "a\"b\u{e9}");
    assert_eq!(s.metadata_value("k\n"), Some("vA"));
}

#[test]
fn no_tensors_and_metadata_null() {
    let bytes = safetensors_raw(br#"{"__metadata__": null}"#, 0);
    let s = SafetensorsFile::parse(&bytes).expect("valid");
    assert!(s.tensors().is_empty() && s.metadata().is_none());
    let mut b = GgufBuilder::new();
    b.kv_str("general.architecture", "x");
    let bytes = b.build();
    let g = GgufFile::parse(&bytes).expect("valid");
    assert!(g.tensors().is_empty());
    assert_eq!(string_bytes(b"x").len(), 9);
}
