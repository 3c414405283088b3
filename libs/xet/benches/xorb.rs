//! Xorb decode speed against raw `lz4_flex` frame decompression of the same payloads.
//!
//! Builds a ~64 MiB xorb of LZ4 chunks (text-like data) and one of BG4-LZ4 chunks (f32 weights
//! with short mantissas), then measures in the same run: decoding every payload with
//! `lz4_flex::frame::FrameDecoder` into one reused Vec (the baseline), and
//! `XorbReader::new` + `decode_range(all)`. Before the criterion groups it prints the ratio from
//! interleaved best-of-N timings, so machine load affects both sides alike.

use std::hint::black_box;
use std::io::Read;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xet::chunk::ChunkHeader;
use xet::compression::bg4_join_into;
use xet::{CompressionPolicy, CompressionScheme, SerializedXorb, XorbBuilder, XorbReader};

const CHUNK: usize = 64 * 1024;

/// xorshift64* stream.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Text-like bytes: words from a 512-word vocabulary with Zipf-ish frequencies (LZ4 ≈ 2×).
fn text_like(len: usize) -> Vec<u8> {
    let mut rng = Rng(0x1234_5678);
    let vocab: Vec<Vec<u8>> = (0..512)
        .map(|_| {
            let n = 2 + (rng.next() % 9) as usize;
            (0..n).map(|_| b'a' + (rng.next() % 26) as u8).collect()
        })
        .collect();
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        let r = rng.next();
        let idx = ((r % 512) * (r >> 9 & 511) / 512) as usize;
        out.extend_from_slice(&vocab[idx]);
        out.push(if r >> 40 & 15 == 0 { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

/// f32 weights in [-2, 2) with 7 mantissa bits (bf16-like precision): BG4 helps.
fn float_weights(len: usize) -> Vec<u8> {
    let mut rng = Rng(0x9876_5432);
    let mut out = Vec::with_capacity(len + 4);
    while out.len() < len {
        let v = ((rng.next() >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0) as f32;
        let bits = v.to_bits() & 0xFFFF_0000;
        out.extend_from_slice(&bits.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn build(data: &[u8], scheme: CompressionScheme) -> SerializedXorb {
    let mut b = XorbBuilder::new().with_policy(CompressionPolicy::Fixed(scheme));
    for c in data.chunks(CHUNK) {
        if !b.can_add(c.len()) {
            break;
        }
        b.add_chunk(c).expect("fits");
    }
    b.finish()
}

/// Baseline: every payload through lz4_flex's frame decoder, appended to `out` (for BG4, into a
/// scratch Vec then `bg4_join_into`, the minimum extra work that scheme needs). Both sides reuse
/// their output buffer across iterations, so page faults of a fresh 64 MiB buffer are not timed.
fn baseline(xorb: &[u8], out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
    out.clear();
    let mut pos = 0;
    while pos < xorb.len() {
        let h = ChunkHeader::parse(&xorb[pos..]).expect("valid header");
        let payload = &xorb[pos + 8..pos + h.record_len()];
        match h.scheme {
            CompressionScheme::None => out.extend_from_slice(payload),
            CompressionScheme::Lz4 => {
                lz4_flex::frame::FrameDecoder::new(payload)
                    .read_to_end(out)
                    .expect("valid frame");
            }
            CompressionScheme::ByteGrouping4Lz4 => {
                scratch.clear();
                lz4_flex::frame::FrameDecoder::new(payload)
                    .read_to_end(scratch)
                    .expect("valid frame");
                let start = out.len();
                out.resize(start + scratch.len(), 0);
                bg4_join_into(scratch, &mut out[start..]);
            }
        }
        pos += h.record_len();
    }
}

fn ours(xorb: &[u8], out: &mut Vec<u8>) {
    let r = XorbReader::new(xorb).expect("valid xorb");
    out.clear();
    r.decode_range(0..r.num_chunks(), out).expect("decodes");
}

/// Interleaved best-of-15 timings of both sides; prints GB/s and the ratio.
fn ratio_report(name: &str, x: &SerializedXorb) {
    let raw = x.raw_len() as usize;
    let (mut a, mut b, mut scratch) = (Vec::new(), Vec::new(), Vec::new());
    baseline(&x.data, &mut a, &mut scratch);
    ours(&x.data, &mut b);
    assert!(a == b && a.len() == raw, "{name}: both sides agree");
    let (mut best_base, mut best_ours) = (Duration::MAX, Duration::MAX);
    for _ in 0..15 {
        let t = Instant::now();
        baseline(black_box(&x.data), &mut a, &mut scratch);
        best_base = best_base.min(t.elapsed());
        let t = Instant::now();
        ours(black_box(&x.data), &mut b);
        best_ours = best_ours.min(t.elapsed());
    }
    let gbps = |d: Duration| raw as f64 / d.as_secs_f64() / 1e9;
    let schemes = XorbReader::new(&x.data)
        .expect("valid")
        .records()
        .filter(|r| r.header.scheme != CompressionScheme::None)
        .count();
    println!(
        "{name}: {} chunks ({schemes} compressed), raw {:.1} MiB, serialized {:.1} MiB | \
         lz4_flex frame baseline {:.2} GB/s | XorbReader decode_range {:.2} GB/s | ratio {:.2}x",
        x.num_chunks(),
        raw as f64 / (1 << 20) as f64,
        x.data.len() as f64 / (1 << 20) as f64,
        gbps(best_base),
        gbps(best_ours),
        best_base.as_secs_f64() / best_ours.as_secs_f64(),
    );
}

fn bench_decode(c: &mut Criterion) {
    let cases = [
        ("lz4", build(&text_like(70 << 20), CompressionScheme::Lz4)),
        (
            "bg4-lz4",
            build(
                &float_weights(70 << 20),
                CompressionScheme::ByteGrouping4Lz4,
            ),
        ),
    ];
    for (name, x) in &cases {
        ratio_report(name, x);
    }
    for (name, x) in &cases {
        let raw = x.raw_len() as usize;
        let mut g = c.benchmark_group(format!("xorb_decode_{name}"));
        g.throughput(Throughput::Bytes(raw as u64));
        g.sample_size(10);
        g.warm_up_time(Duration::from_secs(1));
        g.measurement_time(Duration::from_secs(5));
        let (mut out, mut scratch) = (Vec::with_capacity(raw), Vec::new());
        g.bench_function("lz4_flex_frame_baseline", |b| {
            b.iter(|| baseline(black_box(&x.data), &mut out, &mut scratch))
        });
        g.bench_function("xorb_reader_decode_range", |b| {
            b.iter(|| ours(black_box(&x.data), &mut out))
        });
        g.finish();
    }
    // Encoding, for reference: one ~8 MiB slice of each kind.
    let mut g = c.benchmark_group("xorb_build");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    for (name, data, scheme) in [
        ("lz4", text_like(8 << 20), CompressionScheme::Lz4),
        (
            "bg4-lz4",
            float_weights(8 << 20),
            CompressionScheme::ByteGrouping4Lz4,
        ),
    ] {
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function(name, |b| b.iter(|| build(black_box(&data), scheme)));
    }
    g.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
