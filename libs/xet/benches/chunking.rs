//! Chunking and chunk hashing throughput, next to raw BLAKE3 on the same 64 MiB of splitmix64
//! data so that the ratios can be read off one run:
//! - `blake3/hash_64MiB`: one `blake3::hash` over the whole buffer (the ceiling for hashing);
//! - `blake3/keyed_64KiB_pieces`: keyed BLAKE3 over consecutive 64 KiB pieces (what chunk
//!   hashing costs at the mean chunk size, without chunking);
//! - `chunking/boundaries`: our chunker alone, one core (target >= 1 GB/s);
//! - `chunking/hash_chunks`: `chunk_hash` of every chunk, boundaries precomputed
//!   (target >= 0.9x `keyed_64KiB_pieces`);
//! - `chunking/chunk_and_hash`: both, one core;
//! - with `--features parallel`: `chunk_and_hash_parallel` on all cores.
//!
//! Run: `cargo bench -p xet --bench chunking [--features parallel]`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xet::chunking::{chunk_and_hash, chunk_boundaries, hash_chunks};
use xet::hash::DATA_KEY;
use zest_testkit::splitmix_data;

const LEN: usize = 64 * 1024 * 1024;

fn benches(c: &mut Criterion) {
    let data = splitmix_data(LEN, 0);
    let boundaries = chunk_boundaries(&data);

    let mut g = c.benchmark_group("blake3");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(LEN as u64));
    g.bench_function("hash_64MiB", |b| b.iter(|| blake3::hash(&data)));
    g.bench_function("keyed_64KiB_pieces", |b| {
        b.iter(|| {
            data.chunks(64 * 1024)
                .map(|p| blake3::keyed_hash(&DATA_KEY, p).as_bytes()[0])
                .fold(0u8, |a, x| a ^ x)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("chunking");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(LEN as u64));
    g.bench_function("boundaries", |b| b.iter(|| chunk_boundaries(&data)));
    g.bench_function("hash_chunks", |b| {
        b.iter(|| hash_chunks(&data, &boundaries))
    });
    g.bench_function("chunk_and_hash", |b| b.iter(|| chunk_and_hash(&data)));
    #[cfg(feature = "parallel")]
    {
        g.bench_function("boundaries_parallel", |b| {
            b.iter(|| xet::chunking::chunk_boundaries_parallel(&data))
        });
        g.bench_function("chunk_and_hash_parallel", |b| {
            b.iter(|| xet::chunking::chunk_and_hash_parallel(&data))
        });
    }
    g.finish();
}

criterion_group!(chunking, benches);
criterion_main!(chunking);
