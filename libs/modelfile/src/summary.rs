//! What `zest inspect` shows about a model file: format, version, architecture, the common
//! hyperparameters, parameter count, bytes per tensor type, metadata and the tensor table — as a
//! serde-serialisable [`Summary`] with stable snake_case field names, and as text
//! ([`render_text`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value as Json;

use crate::gguf::{self, GgufFile, Value};
use crate::safetensors::SafetensorsFile;
use crate::{Format, ModelFile};

/// Arrays in metadata longer than this are shown by their first elements only.
pub const METADATA_ARRAY_PREVIEW: usize = 64;

/// Everything `zest inspect` reports about a file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub format: Format,
    /// GGUF version; `None` for safetensors.
    pub version: Option<u32>,
    /// GGUF written big-endian.
    pub big_endian: bool,
    /// `general.architecture` (GGUF) or `__metadata__` `architecture`/`modelspec.architecture`.
    pub architecture: Option<String>,
    /// `general.name`.
    pub name: Option<String>,
    /// `general.file_type` (llama.cpp's `llama_ftype`) and its name.
    pub file_type: Option<u64>,
    pub file_type_name: Option<String>,
    /// GGUF tensor data alignment.
    pub alignment: Option<u64>,
    /// Bytes from the start of the file the header occupies.
    pub header_len: u64,
    /// Absolute offset of the tensor data section.
    pub data_offset: u64,
    /// File length, when known.
    pub file_len: Option<u64>,
    pub hyperparameters: Hyperparameters,
    /// Total elements of all tensors.
    pub parameter_count: u64,
    pub tensor_count: u64,
    /// Total bytes of tensor data.
    pub tensor_bytes: u64,
    /// Per tensor type, largest first.
    pub bytes_by_type: Vec<TypeTotal>,
    /// Every metadata entry (GGUF key/values or safetensors `__metadata__`), in file order.
    pub metadata: Vec<MetadataRow>,
    /// The tensor table, in file order.
    pub tensors: Vec<TensorRow>,
}

/// The hyperparameters most people ask about. For GGUF, from `{arch}.context_length` etc.; for
/// safetensors only what `__metadata__` happens to say under the same names.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Hyperparameters {
    pub context_length: Option<u64>,
    pub embedding_length: Option<u64>,
    pub block_count: Option<u64>,
    pub feed_forward_length: Option<u64>,
    /// Per-layer arrays (some architectures) are reported by their maximum.
    pub head_count: Option<u64>,
    pub head_count_kv: Option<u64>,
    pub rope_freq_base: Option<f64>,
    pub rope_dimension_count: Option<u64>,
    pub expert_count: Option<u64>,
    pub expert_used_count: Option<u64>,
    /// `{arch}.vocab_size`, else the length of `tokenizer.ggml.tokens`.
    pub vocab_size: Option<u64>,
}

/// Tensors, elements and bytes of one tensor type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TypeTotal {
    pub type_name: String,
    pub tensors: u64,
    pub parameters: u64,
    pub bytes: u64,
}

/// One metadata entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetadataRow {
    pub key: String,
    /// `u8` … `f64`, `bool`, `string`, `array`.
    pub value_type: String,
    /// For arrays: the element type.
    pub element_type: Option<String>,
    /// For arrays: the number of elements.
    pub count: Option<u64>,
    /// The value; for arrays the first [`METADATA_ARRAY_PREVIEW`] elements (nested arrays
    /// likewise), with `truncated` set when there are more.
    pub value: Json,
    pub truncated: bool,
}

/// One row of the tensor table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorRow {
    pub name: String,
    /// `Q4_K`, `F16`, `BF16`, …
    pub type_name: String,
    /// ggml type number (GGUF only).
    pub type_id: Option<u32>,
    /// GGUF: ggml order (innermost first), as stored; safetensors: row-major as stored.
    pub shape: Vec<u64>,
    pub n_elements: u64,
    pub n_bytes: u64,
    /// Absolute file offset of the data.
    pub offset: u64,
}

pub(crate) fn summarize(file: &ModelFile<'_>) -> Summary {
    match file {
        ModelFile::Gguf(g) => summarize_gguf(g),
        ModelFile::Safetensors(s) => summarize_safetensors(s),
    }
}

fn summarize_gguf(g: &GgufFile<'_>) -> Summary {
    let arch = g.architecture();
    let key = |suffix: &str| arch.and_then(|a| g.get(&format!("{a}.{suffix}")));
    let int = |suffix: &str| key(suffix).and_then(int_or_max);
    let tensors: Vec<TensorRow> = g
        .tensors()
        .iter()
        .map(|t| TensorRow {
            name: t.name.to_owned(),
            type_name: t.ggml_type.name().to_owned(),
            type_id: Some(t.ggml_type.id()),
            shape: t.shape().to_vec(),
            n_elements: t.n_elements,
            n_bytes: t.n_bytes,
            offset: t.offset,
        })
        .collect();
    let hyperparameters = Hyperparameters {
        context_length: int("context_length"),
        embedding_length: int("embedding_length"),
        block_count: int("block_count"),
        feed_forward_length: int("feed_forward_length"),
        head_count: int("attention.head_count"),
        head_count_kv: int("attention.head_count_kv"),
        rope_freq_base: key("rope.freq_base").and_then(Value::as_f64),
        rope_dimension_count: int("rope.dimension_count"),
        expert_count: int("expert_count"),
        expert_used_count: int("expert_used_count"),
        vocab_size: int("vocab_size").or_else(|| {
            g.get("tokenizer.ggml.tokens")
                .and_then(Value::as_array)
                .map(|a| a.len())
        }),
    };
    let file_type = g.get("general.file_type").and_then(Value::as_u64);
    let metadata = g
        .metadata()
        .iter()
        .map(|e| {
            let (element_type, count, truncated) = match &e.value {
                Value::Array(a) => (
                    Some(a.elem_type().name().to_owned()),
                    Some(a.len()),
                    a.len() > METADATA_ARRAY_PREVIEW as u64,
                ),
                _ => (None, None, false),
            };
            MetadataRow {
                key: e.key.to_owned(),
                value_type: e.value.value_type().name().to_owned(),
                element_type,
                count,
                value: value_json(&e.value, METADATA_ARRAY_PREVIEW),
                truncated,
            }
        })
        .collect();
    finish(Summary {
        format: Format::Gguf,
        version: Some(g.version()),
        big_endian: g.big_endian(),
        architecture: arch.map(str::to_owned),
        name: g
            .get("general.name")
            .and_then(Value::as_str)
            .map(str::to_owned),
        file_type,
        file_type_name: file_type.and_then(gguf::file_type_name).map(str::to_owned),
        alignment: Some(g.alignment()),
        header_len: g.header_len(),
        data_offset: g.data_offset(),
        file_len: g.file_len(),
        hyperparameters,
        parameter_count: 0,
        tensor_count: 0,
        tensor_bytes: 0,
        bytes_by_type: Vec::new(),
        metadata,
        tensors,
    })
}

fn summarize_safetensors(s: &SafetensorsFile<'_>) -> Summary {
    let meta = |k: &str| s.metadata_value(k);
    let int = |k: &str| meta(k).and_then(|v| v.trim().parse::<u64>().ok());
    let hyperparameters = Hyperparameters {
        context_length: int("context_length"),
        embedding_length: int("embedding_length"),
        block_count: int("block_count"),
        feed_forward_length: int("feed_forward_length"),
        head_count: int("head_count"),
        head_count_kv: int("head_count_kv"),
        rope_freq_base: meta("rope_freq_base").and_then(|v| v.trim().parse().ok()),
        rope_dimension_count: int("rope_dimension_count"),
        expert_count: int("expert_count"),
        expert_used_count: int("expert_used_count"),
        vocab_size: int("vocab_size"),
    };
    let tensors = s
        .tensors()
        .iter()
        .map(|t| TensorRow {
            name: t.name.to_string(),
            type_name: t.dtype.name().to_owned(),
            type_id: None,
            shape: t.shape.clone(),
            n_elements: t.n_elements,
            n_bytes: t.n_bytes,
            offset: t.offset,
        })
        .collect();
    let metadata = s
        .metadata()
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| MetadataRow {
            key: k.to_string(),
            value_type: "string".to_owned(),
            element_type: None,
            count: None,
            value: Json::String(v.to_string()),
            truncated: false,
        })
        .collect();
    finish(Summary {
        format: Format::Safetensors,
        version: None,
        big_endian: false,
        architecture: meta("architecture")
            .or_else(|| meta("modelspec.architecture"))
            .map(str::to_owned),
        name: meta("name")
            .or_else(|| meta("modelspec.title"))
            .map(str::to_owned),
        file_type: None,
        file_type_name: None,
        alignment: None,
        header_len: s.header_len(),
        data_offset: s.data_offset(),
        file_len: s.file_len(),
        hyperparameters,
        parameter_count: 0,
        tensor_count: 0,
        tensor_bytes: 0,
        bytes_by_type: Vec::new(),
        metadata,
        tensors,
    })
}

/// Fills the totals from the tensor table.
fn finish(mut s: Summary) -> Summary {
    let mut by_type: BTreeMap<&str, TypeTotal> = BTreeMap::new();
    for t in &s.tensors {
        let total = by_type.entry(&t.type_name).or_insert_with(|| TypeTotal {
            type_name: t.type_name.clone(),
            tensors: 0,
            parameters: 0,
            bytes: 0,
        });
        total.tensors += 1;
        total.parameters = total.parameters.saturating_add(t.n_elements);
        total.bytes = total.bytes.saturating_add(t.n_bytes);
    }
    let mut totals: Vec<TypeTotal> = by_type.into_values().collect();
    totals.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then_with(|| a.type_name.cmp(&b.type_name))
    });
    s.parameter_count = totals
        .iter()
        .fold(0u64, |a, t| a.saturating_add(t.parameters));
    s.tensor_bytes = totals.iter().fold(0u64, |a, t| a.saturating_add(t.bytes));
    s.tensor_count = s.tensors.len() as u64;
    s.bytes_by_type = totals;
    s
}

/// An integer, or the maximum of an array of integers (per-layer values).
fn int_or_max(v: &Value<'_>) -> Option<u64> {
    match v {
        Value::Array(a) => a
            .iter()
            .map_while(Result::ok)
            .filter_map(|v| v.as_u64())
            .max(),
        other => other.as_u64(),
    }
}

/// A metadata value as JSON, arrays cut to their first `limit` elements (nested ones too).
fn value_json(v: &Value<'_>, limit: usize) -> Json {
    match v {
        Value::Array(a) => Json::Array(
            a.iter()
                .take(limit)
                .map(|item| match item {
                    Ok(v) => value_json(&v, limit),
                    Err(_) => Json::Null,
                })
                .collect(),
        ),
        scalar => scalar.scalar_json().unwrap_or(Json::Null),
    }
}

/// The summary as text for a terminal. The tensor table is printed when `summary.tensors` is
/// non-empty (clear it to leave the table out).
pub fn render_text(s: &Summary) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "{label:<22}{value}");
    };
    let mut format = s.format.name().to_owned();
    if let Some(v) = s.version {
        format += &format!(" v{v}");
    }
    if s.big_endian {
        format += " (big-endian)";
    }
    line("format", format);
    if let Some(a) = &s.architecture {
        line("architecture", a.clone());
    }
    if let Some(n) = &s.name {
        line("name", n.clone());
    }
    if let Some(ft) = s.file_type {
        let name = s.file_type_name.as_deref().unwrap_or("unknown");
        line("file type", format!("{name} ({ft})"));
    }
    line(
        "parameters",
        format!("{} ({})", human_count(s.parameter_count), s.parameter_count),
    );
    line(
        "tensors",
        format!("{} ({})", s.tensor_count, human_bytes(s.tensor_bytes)),
    );
    let mut header = format!(
        "{} (data at byte {})",
        human_bytes(s.header_len),
        s.data_offset
    );
    if let Some(a) = s.alignment {
        header += &format!(", alignment {a}");
    }
    line("header", header);
    if let Some(len) = s.file_len {
        line("file size", format!("{} ({len} bytes)", human_bytes(len)));
    }
    let h = &s.hyperparameters;
    let ints = [
        ("context length", h.context_length),
        ("embedding length", h.embedding_length),
        ("block count", h.block_count),
        ("feed forward length", h.feed_forward_length),
        ("head count", h.head_count),
        ("head count kv", h.head_count_kv),
        ("rope dimension count", h.rope_dimension_count),
        ("expert count", h.expert_count),
        ("expert used count", h.expert_used_count),
        ("vocabulary size", h.vocab_size),
    ];
    for (label, v) in ints {
        if let Some(v) = v {
            line(label, v.to_string());
        }
    }
    if let Some(base) = h.rope_freq_base {
        line("rope freq base", base.to_string());
    }

    if !s.bytes_by_type.is_empty() {
        let _ = writeln!(out, "\nsize by type:");
        for t in &s.bytes_by_type {
            let _ = writeln!(
                out,
                "  {:<10}{:>6} tensors {:>12} params {:>12}",
                t.type_name,
                t.tensors,
                human_count(t.parameters),
                human_bytes(t.bytes)
            );
        }
    }

    if !s.metadata.is_empty() {
        let _ = writeln!(out, "\nmetadata ({} keys):", s.metadata.len());
        for m in &s.metadata {
            let ty = match (&m.element_type, m.count) {
                (Some(e), Some(n)) => format!("{}[{e}; {n}]", m.value_type),
                _ => m.value_type.clone(),
            };
            let mut value = m.value.to_string();
            if value.chars().count() > 80 {
                value = value.chars().take(77).collect::<String>() + "...";
            } else if m.truncated {
                value += " ...";
            }
            let _ = writeln!(out, "  {} ({ty}) = {value}", m.key);
        }
    }

    if !s.tensors.is_empty() {
        let width = s
            .tensors
            .iter()
            .map(|t| t.name.chars().count())
            .max()
            .unwrap_or(4)
            .clamp(4, 60);
        let _ = writeln!(out, "\ntensors:");
        let _ = writeln!(
            out,
            "  {:<width$}  {:<8}  {:<24}  {:>12}  {:>14}",
            "name", "type", "shape", "bytes", "offset"
        );
        for t in &s.tensors {
            let shape = format!("{:?}", t.shape);
            let _ = writeln!(
                out,
                "  {:<width$}  {:<8}  {:<24}  {:>12}  {:>14}",
                t.name, t.type_name, shape, t.n_bytes, t.offset
            );
        }
    }
    out
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn human_count(n: u64) -> String {
    const UNITS: [(f64, &str); 4] = [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")];
    for (scale, unit) in UNITS {
        if n as f64 >= scale {
            return format!("{:.2} {unit}", n as f64 / scale);
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
        assert_eq!(human_count(1_100_048_384), "1.10 B");
        assert_eq!(human_count(999), "999");
    }
}
