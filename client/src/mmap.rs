//! Read-only memory maps of input files: the one place in this crate that needs `unsafe`.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::path::Path;

use memmap2::Mmap;

/// A whole file's bytes, memory-mapped (empty files are not mapped: mapping 0 bytes fails).
#[derive(Debug)]
pub struct MappedFile {
    map: Option<Mmap>,
}

impl MappedFile {
    /// Maps `path` read-only. (`MAP_POPULATE` was measured slower here for 1 GiB: it faults
    /// every page in on one thread before hashing can start.)
    pub fn open(path: &Path) -> io::Result<MappedFile> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        if len == 0 {
            return Ok(MappedFile { map: None });
        }
        // SAFETY: the map is read-only and private to this process; we never write through it.
        // Rust's aliasing rules assume the bytes do not change while borrowed, which another
        // process could violate by writing to or truncating the file while we hash it (the same
        // trade-off ripgrep makes in `searcher/mmap.rs`). The worst outcomes are a wrong hash of a
        // file that was being modified anyway, or SIGBUS if it is truncated under us.
        let map = unsafe { Mmap::map(&file)? };
        // Hint only; failure is harmless.
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(MappedFile { map: Some(map) })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}
