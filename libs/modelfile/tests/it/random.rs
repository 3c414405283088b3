//! Property tests: random bytes, and valid files with random damage, never panic; whatever parses
//! has its tensors inside the bytes, and parsing just the header prefix gives the same result.

use modelfile::{check_structure, parse, parse_prefix, Error, ModelFile};
use proptest::prelude::*;

use crate::writer::{safetensors_file, ty, GgufBuilder};

fn valid_gguf() -> Vec<u8> {
    let mut b = GgufBuilder::new();
    b.kv_str("general.architecture", "llama")
        .kv_u32("llama.block_count", 2)
        .kv_str_array("tokenizer.ggml.tokens", ["a", "bc", "\u{e9}"].into_iter())
        .kv_array("x", ty::I32, 2, &[1, 0, 0, 0, 2, 0, 0, 0])
        .tensor("a", &[32, 2], 2, 36)
        .tensor("b", &[3], 0, 12);
    b.build()
}

fn valid_safetensors() -> Vec<u8> {
    safetensors_file(
        &[("a", "F32", &[2], 0, 8), ("b", "F16", &[2, 2], 8, 16)],
        Some(&[("format", "pt")]),
        16,
    )
}

/// Whatever happens, no panic; a successful parse is self-consistent.
fn exercise(bytes: &[u8]) {
    let len = bytes.len() as u64;
    if let Ok(file) = parse(bytes) {
        let ranges: Vec<_> = match &file {
            ModelFile::Gguf(g) => g.tensors().iter().map(|t| t.data_range()).collect(),
            ModelFile::Safetensors(s) => s.tensors().iter().map(|t| t.data_range()).collect(),
        };
        for r in ranges {
            assert!(r.end <= len, "tensor past the end");
        }
        let header = file.header_len();
        assert!(header <= len);
        let again = parse_prefix(&bytes[..header as usize], Some(len)).expect("header prefix");
        assert_eq!(again, file);
        let _ = file.summary();
        let _ = modelfile::render_text(&file.summary());
    }
    let _ = check_structure(bytes);
    if let Err(Error::Incomplete { needed }) = parse_prefix(bytes, None) {
        assert!(needed > len);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    #[test]
    fn random_bytes_after_gguf_magic_never_panic(
        version in 2u32..=3,
        rest in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = b"GGUF".to_vec();
        bytes.extend(version.to_le_bytes());
        bytes.extend(rest);
        exercise(&bytes);
    }

    #[test]
    fn damaged_gguf_never_panics(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = valid_gguf();
        for (at, v) in edits {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        exercise(&bytes);
        let n = cut.index(bytes.len());
        exercise(&bytes[..n]);
    }

    #[test]
    fn damaged_safetensors_never_panics(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = valid_safetensors();
        for (at, v) in edits {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        exercise(&bytes);
    }
}
