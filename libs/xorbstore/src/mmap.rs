//! Read-only memory maps of stored range files. This is the one module of the crate that uses
//! `unsafe`: mapping a file is unsafe because another process could change or truncate it under
//! the map. The store only maps files it owns inside its own `xorbs-v1` folder, which are
//! complete before they are mapped (written whole, and fsynced too unless the store's
//! durability is deferred) and are never truncated or rewritten afterwards
//! (they are only renamed into place or unlinked; unlinking keeps the inode alive while mapped).
//! The single byte rewritten in place (the verification level in the header) lies outside every
//! slice this module hands out.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use memmap2::{Mmap, MmapOptions};

/// A file and its read-only map. Cheap to share behind an `Arc`; the map lives as long as the
/// last reader.
#[derive(Debug)]
pub(crate) struct MappedFile {
    map: Option<Mmap>,
    file: File,
}

impl MappedFile {
    /// Maps the whole of `file` read-only.
    pub(crate) fn map(file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        if len == 0 {
            // mmap of length 0 fails; there is nothing to read anyway.
            return Ok(Self { map: None, file });
        }
        // SAFETY: the file is a complete range file inside the store's own folder (see
        // the module docs): nothing truncates or rewrites the mapped bytes we hand out while the
        // map exists. The map is read-only and its lifetime is tied to `self`, so no slice
        // outlives it.
        let map = unsafe { MmapOptions::new().map(&file)? };
        Ok(Self {
            map: Some(map),
            file,
        })
    }

    /// The mapped bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// The open file (for the in-place level byte write and access-time updates).
    pub(crate) fn file(&self) -> &File {
        &self.file
    }
}
