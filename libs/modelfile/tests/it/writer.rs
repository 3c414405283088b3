//! A small GGUF and safetensors writer for tests, benches and examples: builds well-formed files
//! (which tests then damage byte by byte) without needing Python. Shared by `tests/it`,
//! `benches/open.rs` and `examples/gguf_open.rs` through `#[path]`.

#![allow(dead_code)]

/// GGUF value type ids.
pub mod ty {
    pub const U8: u32 = 0;
    pub const I8: u32 = 1;
    pub const U16: u32 = 2;
    pub const I16: u32 = 3;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
    pub const I64: u32 = 11;
    pub const F64: u32 = 12;
}

/// Builds a little-endian GGUF file.
#[derive(Debug, Clone)]
pub struct GgufBuilder {
    pub version: u32,
    pub alignment: u64,
    kv: Vec<u8>,
    n_kv: u64,
    tensors: Vec<TensorSpec>,
}

#[derive(Debug, Clone)]
struct TensorSpec {
    name: String,
    dims: Vec<u64>,
    type_id: u32,
    n_bytes: u64,
    offset: Option<u64>,
}

pub fn string_bytes(s: &[u8]) -> Vec<u8> {
    let mut out = (s.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(s);
    out
}

impl Default for GgufBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufBuilder {
    pub fn new() -> Self {
        GgufBuilder {
            version: 3,
            alignment: 32,
            kv: Vec::new(),
            n_kv: 0,
            tensors: Vec::new(),
        }
    }

    /// A key with an already encoded value of type `type_id`.
    pub fn kv_raw(&mut self, key: &str, type_id: u32, value: &[u8]) -> &mut Self {
        self.kv.extend(string_bytes(key.as_bytes()));
        self.kv.extend(type_id.to_le_bytes());
        self.kv.extend_from_slice(value);
        self.n_kv += 1;
        self
    }

    pub fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        if key == "general.alignment" {
            self.alignment = v.into();
        }
        self.kv_raw(key, ty::U32, &v.to_le_bytes())
    }

    pub fn kv_f32(&mut self, key: &str, v: f32) -> &mut Self {
        self.kv_raw(key, ty::F32, &v.to_le_bytes())
    }

    pub fn kv_str(&mut self, key: &str, v: &str) -> &mut Self {
        self.kv_raw(key, ty::STRING, &string_bytes(v.as_bytes()))
    }

    pub fn kv_str_array<'s>(
        &mut self,
        key: &str,
        items: impl ExactSizeIterator<Item = &'s str>,
    ) -> &mut Self {
        let mut v = ty::STRING.to_le_bytes().to_vec();
        v.extend((items.len() as u64).to_le_bytes());
        for s in items {
            v.extend(string_bytes(s.as_bytes()));
        }
        self.kv_raw(key, ty::ARRAY, &v)
    }

    /// An array of fixed-size elements, each already encoded.
    pub fn kv_array(&mut self, key: &str, elem_type: u32, count: u64, elems: &[u8]) -> &mut Self {
        let mut v = elem_type.to_le_bytes().to_vec();
        v.extend(count.to_le_bytes());
        v.extend_from_slice(elems);
        self.kv_raw(key, ty::ARRAY, &v)
    }

    /// A tensor whose data takes `n_bytes`, placed after the previous one (aligned).
    pub fn tensor(&mut self, name: &str, dims: &[u64], type_id: u32, n_bytes: u64) -> &mut Self {
        self.tensors.push(TensorSpec {
            name: name.to_owned(),
            dims: dims.to_vec(),
            type_id,
            n_bytes,
            offset: None,
        });
        self
    }

    /// A tensor with an explicit relative offset (for overlap and bounds tests).
    pub fn tensor_at(
        &mut self,
        name: &str,
        dims: &[u64],
        type_id: u32,
        n_bytes: u64,
        offset: u64,
    ) -> &mut Self {
        self.tensor(name, dims, type_id, n_bytes);
        if let Some(t) = self.tensors.last_mut() {
            t.offset = Some(offset);
        }
        self
    }

    /// The header (up to the end of the tensor infos), and the length of the padded data section.
    pub fn header(&self) -> (Vec<u8>, u64) {
        let mut out = b"GGUF".to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend_from_slice(&self.kv);
        let mut next = 0u64;
        let mut data_len = 0u64;
        for t in &self.tensors {
            out.extend(string_bytes(t.name.as_bytes()));
            out.extend((t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(t.type_id.to_le_bytes());
            let offset = t.offset.unwrap_or(next);
            out.extend(offset.to_le_bytes());
            let end = offset.saturating_add(t.n_bytes);
            next = end.saturating_add(self.alignment - 1) / self.alignment * self.alignment;
            data_len = data_len.max(end);
        }
        (
            out,
            data_len.saturating_add(self.alignment - 1) / self.alignment * self.alignment,
        )
    }

    /// The whole file, tensor data zero-filled.
    pub fn build(&self) -> Vec<u8> {
        let (mut out, data_len) = self.header();
        let data_start = (out.len() as u64).next_multiple_of(self.alignment);
        out.resize((data_start + data_len) as usize, 0);
        out
    }
}

/// Builds a safetensors file from `(name, dtype, shape, begin, end)` entries and metadata;
/// the data section is `data_len` zero bytes.
pub fn safetensors_file(
    tensors: &[(&str, &str, &[u64], u64, u64)],
    metadata: Option<&[(&str, &str)]>,
    data_len: u64,
) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    if let Some(meta) = metadata {
        let m: serde_json::Map<String, serde_json::Value> = meta
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
            .collect();
        header.insert("__metadata__".into(), m.into());
    }
    for (name, dtype, shape, begin, end) in tensors {
        header.insert(
            (*name).to_owned(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}),
        );
    }
    let json = serde_json::to_vec(&header).expect("json");
    safetensors_raw(&json, data_len)
}

/// A safetensors file with the given JSON header bytes and `data_len` zero bytes of data.
pub fn safetensors_raw(json: &[u8], data_len: u64) -> Vec<u8> {
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json);
    out.resize(out.len() + data_len as usize, 0);
    out
}

/// A llama-like GGUF header with a `vocab`-token vocabulary and `n_tensors` tensors of
/// `tensor_bytes` each (Q4_K, except 1-d norms in F32), as used by the bench.
pub fn llama_like(vocab: usize, n_tensors: usize, tensor_bytes: u64) -> GgufBuilder {
    let mut b = GgufBuilder::new();
    b.kv_str("general.architecture", "llama")
        .kv_str("general.name", "bench model")
        .kv_u32("general.file_type", 15)
        .kv_u32("llama.context_length", 8192)
        .kv_u32("llama.embedding_length", 4096)
        .kv_u32("llama.block_count", (n_tensors / 9).max(1) as u32)
        .kv_u32("llama.feed_forward_length", 14336)
        .kv_u32("llama.attention.head_count", 32)
        .kv_u32("llama.attention.head_count_kv", 8)
        .kv_f32("llama.rope.freq_base", 500000.0)
        .kv_u32("llama.rope.dimension_count", 128)
        .kv_str("tokenizer.ggml.model", "gpt2");
    let tokens: Vec<String> = (0..vocab).map(|i| format!("tok_{i:06}")).collect();
    b.kv_str_array("tokenizer.ggml.tokens", tokens.iter().map(String::as_str));
    let types: Vec<u8> = (0..vocab).flat_map(|_| 1i32.to_le_bytes()).collect();
    b.kv_array("tokenizer.ggml.token_type", ty::I32, vocab as u64, &types);
    let merges: Vec<String> = (0..vocab).map(|i| format!("t{} k{}", i % 977, i)).collect();
    b.kv_str_array("tokenizer.ggml.merges", merges.iter().map(String::as_str));
    // Q4_K: 144 bytes per 256 elements.
    let q4k_elems = tensor_bytes / 144 * 256;
    for i in 0..n_tensors {
        if i % 9 == 8 {
            b.tensor(
                &format!("blk.{}.attn_norm.weight", i / 9),
                &[4096],
                0,
                4096 * 4,
            );
        } else {
            let rows = (q4k_elems / 4096).max(1);
            b.tensor(
                &format!("blk.{}.t{}.weight", i / 9, i % 9),
                &[4096, rows],
                12,
                rows * 4096 / 256 * 144,
            );
        }
    }
    b
}
