//! `zest hash`: the Xet file hash (what the Hub shows as `xetHash` / `X-Xet-Hash` and what
//! `hf_xet.hash_files` returns), sha256, size and chunk count of local files.
//!
//! Files are memory-mapped. Large files use every core: each rayon task chunks and hashes one
//! segment of the file, and the segments are stitched exactly
//! (`xet::chunking::chunk_and_hash_parallel`); sha256 runs on its own thread at the same time.
//!
//! Output, one line per file: `<xet hash>  <sha256 or ->  <size>  <chunks>  <path>`, and with
//! `--chunks` one indented `<offset> <len> <hash>` line per chunk. With `--json`, one array of
//! [`FileReport`] objects: `{"path","size","xet_hash","sha256"?,"num_chunks","chunks"?:[{"offset","len","hash"}]}`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use sha2::{Digest, Sha256};
use xet::chunking::{chunk_and_hash, chunk_and_hash_parallel, file_hash_of, ChunkInfo};
use xet::MerkleHash;

use crate::env_vars;
use crate::mmap::MappedFile;

/// Files smaller than this are hashed on the calling thread only.
pub const PARALLEL_THRESHOLD: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, Args)]
pub struct HashArgs {
    /// Print one JSON array with an object per file.
    #[arg(long)]
    pub json: bool,
    /// Also list every chunk's offset, length and hash.
    #[arg(long)]
    pub chunks: bool,
    /// Skip sha256 (the slowest part on CPUs without SHA instructions).
    #[arg(long)]
    pub no_sha256: bool,
    /// Worker threads (default: all cores).
    #[arg(long, env = env_vars::ZEST_THREADS)]
    pub threads: Option<usize>,
    /// Files to hash.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// One chunk in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChunkReport {
    pub offset: u64,
    pub len: u32,
    pub hash: MerkleHash,
}

/// What `zest hash` prints for a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    pub path: String,
    pub size: u64,
    /// Xet file hash, API hex.
    pub xet_hash: MerkleHash,
    /// Plain lowercase hex; absent with `--no-sha256`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub num_chunks: usize,
    /// Present with `--chunks`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunks: Option<Vec<ChunkReport>>,
}

/// The chunks of `data` with their hashes, and its sha256 if asked; uses the current rayon pool
/// for large inputs and one extra thread for sha256.
pub fn hash_bytes(data: &[u8], sha256: bool) -> (Vec<ChunkInfo>, Option<[u8; 32]>) {
    let chunk = |d: &[u8]| {
        if d.len() >= PARALLEL_THRESHOLD {
            chunk_and_hash_parallel(d)
        } else {
            chunk_and_hash(d)
        }
    };
    if !sha256 {
        return (chunk(data), None);
    }
    if data.len() < PARALLEL_THRESHOLD {
        return (chunk(data), Some(Sha256::digest(data).into()));
    }
    std::thread::scope(|s| {
        let sha = s.spawn(|| -> [u8; 32] { Sha256::digest(data).into() });
        let chunks = chunk(data);
        // A panic in the sha256 thread is a bug; carry it on.
        let digest = sha.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (chunks, Some(digest))
    })
}

/// Hashes one file.
pub fn hash_file(path: &Path, args: &HashArgs) -> anyhow::Result<FileReport> {
    let map = MappedFile::open(path).with_context(|| format!("opening {}", path.display()))?;
    let data = map.bytes();
    let started = std::time::Instant::now();
    let (chunks, sha) = hash_bytes(data, !args.no_sha256);
    tracing::debug!(
        path = %path.display(),
        bytes = data.len(),
        chunks = chunks.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "hashed"
    );
    Ok(FileReport {
        path: path.display().to_string(),
        size: data.len() as u64,
        xet_hash: file_hash_of(&chunks),
        sha256: sha.map(hex::encode),
        num_chunks: chunks.len(),
        chunks: args.chunks.then(|| {
            chunks
                .iter()
                .map(|c| ChunkReport {
                    offset: c.offset,
                    len: c.len,
                    hash: c.hash,
                })
                .collect()
        }),
    })
}

fn write_text(out: &mut impl Write, r: &FileReport) -> std::io::Result<()> {
    let sha = r.sha256.as_deref().unwrap_or("-");
    writeln!(
        out,
        "{}  {}  {}  {}  {}",
        r.xet_hash, sha, r.size, r.num_chunks, r.path
    )?;
    for c in r.chunks.iter().flatten() {
        writeln!(out, "  {} {} {}", c.offset, c.len, c.hash)?;
    }
    Ok(())
}

/// Runs `zest hash`, writing to `out`. A file that cannot be read is logged and skipped; the
/// exit code is then 1.
pub fn run(args: &HashArgs, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let pool = match args.threads {
        Some(n) => Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .context("starting the hashing threads")?,
        ),
        None => None,
    };
    let hash_one = |path: &Path| match &pool {
        Some(pool) => pool.install(|| hash_file(path, args)),
        None => hash_file(path, args),
    };
    let mut reports = Vec::new();
    let mut failed = false;
    for path in &args.files {
        match hash_one(path) {
            Ok(r) => {
                if args.json {
                    reports.push(r);
                } else {
                    write_text(out, &r).context("writing output")?;
                }
            }
            Err(e) => {
                tracing::error!("{e:#}");
                failed = true;
            }
        }
    }
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &reports).context("writing output")?;
        writeln!(out).context("writing output")?;
    }
    out.flush().context("writing output")?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_bytes_small_and_large_agree_with_sequential() {
        let data: Vec<u8> = (0..PARALLEL_THRESHOLD + 12345)
            .map(|i| {
                (i as u64)
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .rotate_left(17) as u8
            })
            .collect();
        let (chunks, sha) = hash_bytes(&data, true);
        assert_eq!(chunks, chunk_and_hash(&data));
        assert_eq!(sha, Some(Sha256::digest(&data).into()));
        let (small, none) = hash_bytes(&data[..1000], false);
        assert_eq!(small, chunk_and_hash(&data[..1000]));
        assert_eq!(none, None);
    }
}
