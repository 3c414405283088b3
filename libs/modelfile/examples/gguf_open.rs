//! Timing and memory probe for `benches/vs_python.sh`.
//!
//! `gguf_open write PATH VOCAB TENSORS TENSOR_BYTES` writes a llama-like GGUF (tensor data left as
//! a sparse hole); `gguf_open time PATH ITERS` memory-maps it, parses the header and builds the
//! summary ITERS times, and prints one JSON line: best and mean time, resident memory before and
//! after (VmRSS, VmHWM from /proc/self/status) and the file size. `gguf_open show PATH` prints
//! the text summary of any GGUF or safetensors file.

#![allow(unsafe_code)] // memory-maps the file, as the CLI does

use std::time::Instant;

#[path = "../tests/it/writer.rs"]
mod writer;

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("write") if args.len() == 6 => {
            let b = writer::llama_like(args[3].parse()?, args[4].parse()?, args[5].parse()?);
            let (header, data_len) = b.header();
            let data_start = (header.len() as u64).next_multiple_of(b.alignment);
            let file = std::fs::File::create(&args[2])?;
            std::io::Write::write_all(&mut &file, &header)?;
            file.set_len(data_start + data_len)?;
            Ok(())
        }
        Some("time") if args.len() == 4 => {
            let iters: u32 = args[3].parse()?;
            let rss_before = status_kb("VmRSS:");
            let file = std::fs::File::open(&args[2])?;
            let len = file.metadata()?.len();
            // SAFETY: the file is not modified while mapped (the benchmark script wrote it and
            // waits for us); we only read through the map.
            let map = unsafe { memmap2::Mmap::map(&file)? };
            let mut best = f64::MAX;
            let mut total = 0.0;
            let mut tensors = 0;
            for _ in 0..iters.max(1) {
                let start = Instant::now();
                let summary = modelfile::parse(&map)?.summary();
                let secs = start.elapsed().as_secs_f64();
                tensors = summary.tensor_count;
                best = best.min(secs);
                total += secs;
            }
            println!(
                "{{\"best_ms\": {:.3}, \"mean_ms\": {:.3}, \"tensors\": {tensors}, \"rss_before_kb\": {rss_before}, \"rss_after_kb\": {}, \"hwm_kb\": {}, \"file_len\": {len}}}",
                best * 1e3,
                total / f64::from(iters.max(1)) * 1e3,
                status_kb("VmRSS:"),
                status_kb("VmHWM:"),
            );
            Ok(())
        }
        Some("show") if args.len() == 3 => {
            let file = std::fs::File::open(&args[2])?;
            // SAFETY: as above; the file is only read.
            let map = unsafe { memmap2::Mmap::map(&file)? };
            print!(
                "{}",
                modelfile::render_text(&modelfile::parse(&map)?.summary())
            );
            Ok(())
        }
        _ => Err("usage: gguf_open write PATH VOCAB TENSORS TENSOR_BYTES | \
                  gguf_open time PATH ITERS | gguf_open show PATH"
            .into()),
    }
}
