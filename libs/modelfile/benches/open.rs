//! Opening model files: a GGUF with a 150,000-token vocabulary (plus merges and token types) and
//! 300 tensors — header parse alone, parse plus summary, and decoding the whole vocabulary — and a
//! safetensors file with 300 tensors. Files are built in memory by the test writer (no Python).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

#[path = "../tests/it/writer.rs"]
mod writer;

fn gguf(c: &mut Criterion) {
    let bytes = writer::llama_like(150_000, 300, 144 * 16).build();
    let header_len = modelfile::parse(&bytes).expect("valid").header_len();
    let mut g = c.benchmark_group("gguf_150k_vocab_300_tensors");
    g.throughput(Throughput::Bytes(header_len));
    g.bench_function("parse", |b| {
        b.iter(|| modelfile::parse(black_box(&bytes)).expect("valid"))
    });
    g.bench_function("parse_and_summary", |b| {
        b.iter(|| {
            modelfile::parse(black_box(&bytes))
                .expect("valid")
                .summary()
        })
    });
    g.bench_function("check_structure", |b| {
        b.iter(|| modelfile::check_structure(black_box(&bytes)).expect("valid"))
    });
    g.bench_function("decode_vocab", |b| {
        let file = modelfile::gguf::GgufFile::parse(&bytes).expect("valid");
        let tokens = file
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.as_array())
            .expect("tokens")
            .clone();
        b.iter(|| tokens.iter().filter_map(Result::ok).count())
    });
    g.finish();
}

fn safetensors(c: &mut Criterion) {
    let names: Vec<String> = (0..300)
        .map(|i| format!("model.layers.{i}.weight"))
        .collect();
    let shape = [64u64, 64];
    let entries: Vec<(&str, &str, &[u64], u64, u64)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let start = i as u64 * 8192;
            (n.as_str(), "BF16", &shape[..], start, start + 8192)
        })
        .collect();
    let bytes = writer::safetensors_file(&entries, Some(&[("format", "pt")]), 300 * 8192);
    c.bench_function("safetensors_300_tensors/parse_and_summary", |b| {
        b.iter(|| {
            modelfile::parse(black_box(&bytes))
                .expect("valid")
                .summary()
        })
    });
}

criterion_group!(benches, gguf, safetensors);
criterion_main!(benches);
