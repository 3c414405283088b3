//! Files written by the real writers (gguf-py's GGUFWriter, the safetensors package), parsed here
//! and compared field by field and tensor by tensor with what the real readers report
//! (`tests/gen_models.py` runs both Python sides).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use modelfile::gguf::{GgmlType, GgufFile, Value};
use modelfile::safetensors::SafetensorsFile;
use modelfile::{Error, ModelFile};
use serde_json::Value as Json;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    match std::env::var_os("ZEST_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join(".venv/bin/python"),
    }
}

/// Runs the generator once per test binary; returns its output folder and report.
fn generated() -> &'static (PathBuf, Json) {
    static GEN: OnceLock<(PathBuf, Json)> = OnceLock::new();
    GEN.get_or_init(|| {
        let py = python();
        assert!(
            py.exists(),
            "Python with the gguf and safetensors packages not found at {} — set ZEST_PYTHON or \
             run scripts/test (it creates the .venv)",
            py.display()
        );
        let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("modelfile-gen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gen_models.py");
        let result = Command::new(&py)
            .arg(&script)
            .arg(&out)
            .output()
            .expect("run python");
        assert!(
            result.status.success(),
            "{} {} failed (does the venv have gguf, safetensors and numpy? run scripts/test):\n{}",
            py.display(),
            script.display(),
            String::from_utf8_lossy(&result.stderr)
        );
        let report = std::fs::read(out.join("report.json")).expect("report.json");
        let report = serde_json::from_slice(&report).expect("report json");
        (out, report)
    })
}

fn files(format: &str) -> Vec<(String, Vec<u8>, &'static Json)> {
    let (dir, report) = generated();
    let files: Vec<_> = report["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter(|f| f["format"] == format)
        .map(|f| {
            let name = f["file"].as_str().expect("file name").to_owned();
            let bytes = std::fs::read(dir.join(&name)).expect("read generated file");
            (name, bytes, f)
        })
        .collect();
    assert!(files.len() >= 3, "generator wrote too few {format} files");
    files
}

fn u(v: &Json) -> u64 {
    v.as_u64().expect("unsigned integer in report")
}

/// A value as gguf-py's `ReaderField.contents()` gives it: arrays flattened to their leaves.
fn flat_json(v: &Value<'_>, out: &mut Vec<Json>) {
    match v {
        Value::Array(a) => {
            for item in a.iter() {
                flat_json(&item.expect("array element decodes"), out);
            }
        }
        other => out.push(other.scalar_json().expect("a scalar")),
    }
}

#[test]
fn ggml_type_table_matches_gguf_py() {
    let (_, report) = generated();
    let sizes = report["quant_sizes"].as_object().expect("quant_sizes");
    for (name, v) in sizes {
        let id = u(&v[0]) as u32;
        let t = GgmlType::from_id(id).unwrap_or_else(|| panic!("{name} ({id}) unknown to us"));
        assert_eq!(t.name(), name);
        assert_eq!(t.block_size(), u(&v[1]), "{name} block size");
        assert_eq!(t.type_size(), u(&v[2]), "{name} type size");
    }
    assert_eq!(
        GgmlType::ALL.len(),
        sizes.len(),
        "we know types gguf-py does not"
    );
}

#[test]
fn gguf_agrees_with_gguf_reader() {
    for (name, bytes, expected) in files("gguf") {
        let g = GgufFile::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(u64::from(g.version()), u(&expected["version"]), "{name}");
        assert_eq!(Json::from(g.big_endian()), expected["big_endian"], "{name}");
        assert_eq!(g.alignment(), u(&expected["alignment"]), "{name}");
        assert_eq!(g.data_offset(), u(&expected["data_offset"]), "{name}");

        let fields = expected["fields"].as_array().expect("fields");
        assert_eq!(g.metadata().len(), fields.len(), "{name}: metadata count");
        for (entry, field) in g.metadata().iter().zip(fields) {
            let key = entry.key;
            assert_eq!(key, field["name"], "{name}: key order");
            assert_eq!(entry.offset, u(&field["offset"]), "{name}: {key} offset");
            let mut types = vec![entry.value.value_type()];
            if let Value::Array(a) = &entry.value {
                types.extend(a.type_chain());
            }
            let types: Vec<u64> = types.iter().map(|t| u64::from(t.id())).collect();
            let expected_types: Vec<u64> = field["types"]
                .as_array()
                .expect("types")
                .iter()
                .map(u)
                .collect();
            assert_eq!(types, expected_types, "{name}: {key} types");
            let value = match &entry.value {
                Value::Array(_) => {
                    let mut leaves = Vec::new();
                    flat_json(&entry.value, &mut leaves);
                    Json::Array(leaves)
                }
                scalar => scalar.scalar_json().expect("a scalar"),
            };
            assert_eq!(value, field["value"], "{name}: {key} value");
        }

        let tensors = expected["tensors"].as_array().expect("tensors");
        assert_eq!(g.tensors().len(), tensors.len(), "{name}: tensor count");
        for (t, e) in g.tensors().iter().zip(tensors) {
            let tn = t.name;
            assert_eq!(tn, e["name"], "{name}: tensor order");
            assert_eq!(u64::from(t.ggml_type.id()), u(&e["type"]), "{name}: {tn}");
            assert_eq!(t.ggml_type.name(), e["type_name"], "{name}: {tn}");
            let shape: Vec<u64> = e["shape"]
                .as_array()
                .expect("shape")
                .iter()
                .map(u)
                .collect();
            assert_eq!(t.shape(), shape, "{name}: {tn} shape");
            assert_eq!(t.n_elements, u(&e["n_elements"]), "{name}: {tn}");
            assert_eq!(t.n_bytes, u(&e["n_bytes"]), "{name}: {tn}");
            assert_eq!(t.offset, u(&e["data_offset"]), "{name}: {tn}");
        }
        modelfile::check_structure(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn gguf_summary_agrees_with_gguf_reader() {
    for (name, bytes, expected) in files("gguf") {
        let s = modelfile::parse(&bytes).expect("parse").summary();
        let json = serde_json::to_value(&s).expect("summary json");
        assert_eq!(json["format"], "gguf");
        assert_eq!(json["version"], expected["version"], "{name}");
        assert_eq!(json["file_len"], expected["file_len"], "{name}");
        assert_eq!(json["architecture"], "llama", "{name}");
        let fields = expected["fields"].as_array().expect("fields");
        let rows = json["metadata"].as_array().expect("metadata rows");
        assert_eq!(rows.len(), fields.len(), "{name}");
        for (row, field) in rows.iter().zip(fields) {
            assert_eq!(row["key"], field["name"], "{name}");
            let is_nested = field["types"].as_array().map(Vec::len) > Some(2);
            if row["value_type"] != "array" {
                assert_eq!(row["value"], field["value"], "{name}: {}", row["key"]);
            } else if !is_nested {
                let all = field["value"].as_array().expect("array value");
                assert_eq!(u(&row["count"]), all.len() as u64, "{name}: {}", row["key"]);
                let shown = row["value"].as_array().expect("preview");
                assert_eq!(shown[..], all[..shown.len()], "{name}: {}", row["key"]);
                assert_eq!(row["truncated"], Json::from(shown.len() < all.len()));
            }
        }
        let tensors = expected["tensors"].as_array().expect("tensors");
        let rows = json["tensors"].as_array().expect("tensor rows");
        assert_eq!(rows.len(), tensors.len(), "{name}");
        let mut params = 0;
        for (row, e) in rows.iter().zip(tensors) {
            assert_eq!(row["name"], e["name"]);
            assert_eq!(row["type_name"], e["type_name"]);
            assert_eq!(row["type_id"], e["type"]);
            assert_eq!(row["shape"], e["shape"]);
            assert_eq!(row["n_elements"], e["n_elements"]);
            assert_eq!(row["n_bytes"], e["n_bytes"]);
            assert_eq!(row["offset"], e["data_offset"]);
            params += u(&e["n_elements"]);
        }
        assert_eq!(s.parameter_count, params, "{name}");
        let h = &s.hyperparameters;
        assert_eq!(h.context_length, Some(4096), "{name}");
        assert_eq!(h.embedding_length, Some(256));
        assert_eq!(h.block_count, Some(2));
        assert_eq!(h.head_count, Some(8));
        assert_eq!(h.head_count_kv, Some(2));
        assert_eq!(h.rope_freq_base, Some(10000.0));
        assert_eq!(h.rope_dimension_count, Some(32));
        let vocab = fields
            .iter()
            .find(|f| f["name"] == "tokenizer.ggml.tokens")
            .map(|f| f["value"].as_array().expect("tokens").len() as u64);
        assert_eq!(h.vocab_size, vocab, "{name}");
        assert_eq!(s.file_type_name.as_deref(), Some("MOSTLY_Q4_K_M"));
        let text = modelfile::render_text(&s);
        assert!(text.contains("context length        4096"), "{text}");
    }
}

#[test]
fn gguf_header_prefix_parses_the_same_as_the_whole_file() {
    for (name, bytes, _) in files("gguf") {
        let whole = GgufFile::parse(&bytes).expect("parse");
        let len = bytes.len() as u64;
        let header = whole.header_len() as usize;
        let prefix = GgufFile::parse_prefix(&bytes[..header], Some(len)).expect("prefix");
        assert_eq!(prefix, whole, "{name}");
        assert_eq!(
            GgufFile::parse_prefix(&bytes[..header - 1], Some(len)),
            Err(Error::Incomplete {
                needed: header as u64
            }),
            "{name}"
        );
        // The growth loop a remote reader runs reaches the header from any start.
        let mut have = 9u64;
        let mut rounds = 0;
        let parsed = loop {
            rounds += 1;
            assert!(rounds < 64, "{name}: fetch loop does not converge");
            match modelfile::parse_prefix(&bytes[..have as usize], Some(len)) {
                Ok(f) => break f,
                Err(Error::Incomplete { needed }) => {
                    assert!(needed > have, "{name}: no progress at {have}");
                    have = modelfile::next_fetch_len(have, needed, len);
                }
                Err(e) => panic!("{name}: {e}"),
            }
        };
        assert_eq!(parsed, ModelFile::Gguf(whole), "{name}");
    }
}

#[test]
fn safetensors_agrees_with_safe_open() {
    for (name, bytes, expected) in files("safetensors") {
        let s = SafetensorsFile::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(s.json_len(), u(&expected["json_len"]), "{name}");
        let meta: Json = match s.metadata() {
            None => Json::Null,
            Some(m) => m
                .iter()
                .map(|(k, v)| (k.to_string(), Json::from(v.as_ref())))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        };
        assert_eq!(meta, expected["metadata"], "{name}");
        let tensors = expected["tensors"].as_array().expect("tensors");
        assert_eq!(s.tensors().len(), tensors.len(), "{name}");
        for e in tensors {
            let tn = e["name"].as_str().expect("name");
            let t = s
                .tensors()
                .iter()
                .find(|t| t.name == tn)
                .unwrap_or_else(|| panic!("{name}: no tensor {tn}"));
            assert_eq!(t.dtype.name(), e["dtype"], "{name}: {tn}");
            assert_eq!(t.dtype.name(), e["slice_dtype"], "{name}: {tn}");
            assert_eq!(Json::from(t.shape.clone()), e["shape"], "{name}: {tn}");
            assert_eq!(
                Json::from(t.shape.clone()),
                e["slice_shape"],
                "{name}: {tn}"
            );
            let (b, end) = t.data_offsets;
            assert_eq!(Json::from(vec![b, end]), e["data_offsets"], "{name}: {tn}");
            assert_eq!(t.offset, 8 + s.json_len() + b);
        }
        modelfile::check_structure(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));

        let summary = modelfile::parse(&bytes).expect("parse").summary();
        let json = serde_json::to_value(&summary).expect("json");
        assert_eq!(json["format"], "safetensors");
        assert_eq!(json["tensor_count"], Json::from(tensors.len()));
        for row in json["tensors"].as_array().expect("rows") {
            let e = tensors
                .iter()
                .find(|e| e["name"] == row["name"])
                .expect("tensor in report");
            assert_eq!(row["type_name"], e["dtype"]);
            assert_eq!(row["shape"], e["shape"]);
        }
        if name == "numpy_types.safetensors" {
            assert_eq!(summary.architecture.as_deref(), Some("test-arch"));
            assert_eq!(summary.hyperparameters.context_length, Some(2048));
        }

        // An 8-byte prefix asks for exactly the header.
        let header = s.header_len();
        assert_eq!(
            modelfile::parse_prefix(&bytes[..9], Some(bytes.len() as u64)),
            Err(Error::Incomplete { needed: header })
        );
        let prefix = modelfile::parse_prefix(&bytes[..header as usize], Some(bytes.len() as u64))
            .expect("prefix");
        assert_eq!(prefix, ModelFile::Safetensors(s), "{name}");
    }
}
