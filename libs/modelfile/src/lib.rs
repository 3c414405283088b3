//! Model file headers — GGUF and safetensors — parsed zero-copy and sans-IO.
//!
//! Callers hand in bytes (usually a memory map of the whole file, or for remote inspection the
//! first N bytes of it) and get back a parsed header that borrows from them, an
//! [`Error::Incomplete`] saying how many bytes from the start of the file the header needs, or an
//! error naming the byte offset and what is wrong. Nothing here opens files, sockets or clocks.
//!
//! - [`parse`] / [`parse_prefix`] detect the format and parse; [`check_structure`] validates a
//!   complete file (after a download).
//! - [`ModelFile::summary`] gives the serde-serialisable [`Summary`] the CLI prints, and
//!   [`render_text`] its human-readable form.
//! - [`gguf`] and [`safetensors`] hold the format-specific types.
//!
//! Untrusted input never panics, hangs or allocates out of proportion: every count and length is
//! checked against the bytes that can follow before it is used, dimension products are checked
//! for overflow, and tensor data must lie inside the file without overlapping.

mod cursor;
mod error;
pub mod gguf;
pub mod safetensors;
mod summary;

use serde::Serialize;

pub use error::Error;
pub use summary::{render_text, Hyperparameters, MetadataRow, Summary, TensorRow, TypeTotal};

/// How many bytes a remote reader should fetch first: enough for most headers, including GGUF
/// files with a 150k-token vocabulary, in one request.
pub const INITIAL_FETCH_LEN: u64 = 4 << 20;

/// The file formats this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Gguf,
    Safetensors,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Gguf => "GGUF",
            Format::Safetensors => "safetensors",
        }
    }
}

/// Recognises a format from the first bytes of a file: `"GGUF"`, or a safetensors header (an
/// 8-byte length followed by `{`). [`Error::Incomplete`] when fewer than 9 bytes are given and the
/// answer depends on them.
pub fn detect(prefix: &[u8]) -> Result<Format, Error> {
    if prefix.starts_with(&gguf::MAGIC) {
        return Ok(Format::Gguf);
    }
    if prefix.len() < 4 && gguf::MAGIC.starts_with(prefix) {
        return Err(Error::Incomplete { needed: 9 });
    }
    match prefix.get(8) {
        Some(b'{') => Ok(Format::Safetensors),
        Some(_) => Err(Error::UnknownFormat { offset: 0 }),
        None => Err(Error::Incomplete { needed: 9 }),
    }
}

/// A parsed model file header, borrowing from the bytes it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelFile<'a> {
    Gguf(gguf::GgufFile<'a>),
    Safetensors(safetensors::SafetensorsFile<'a>),
}

impl<'a> ModelFile<'a> {
    pub fn format(&self) -> Format {
        match self {
            ModelFile::Gguf(_) => Format::Gguf,
            ModelFile::Safetensors(_) => Format::Safetensors,
        }
    }

    /// Bytes from the start of the file that the header occupies (what a remote reader needs).
    pub fn header_len(&self) -> u64 {
        match self {
            ModelFile::Gguf(g) => g.header_len(),
            ModelFile::Safetensors(s) => s.header_len(),
        }
    }

    /// The summary the CLI prints.
    pub fn summary(&self) -> Summary {
        summary::summarize(self)
    }
}

/// Parses a complete file held in memory (a memory map): the format is detected, and tensor
/// data is checked to lie inside `bytes`. Arrays in GGUF metadata are walked but not decoded; use
/// [`check_structure`] to validate every element too.
pub fn parse(bytes: &[u8]) -> Result<ModelFile<'_>, Error> {
    parse_prefix(bytes, Some(bytes.len() as u64))
}

/// Parses the header from the first `prefix.len()` bytes of a file of `file_len` bytes (pass it
/// when known — it turns short reads past the file's end into [`Error::Truncated`] and lets tensor
/// bounds be checked). On [`Error::Incomplete`]`{ needed }`, fetch more (see [`next_fetch_len`])
/// and call again with the longer prefix.
pub fn parse_prefix(prefix: &[u8], file_len: Option<u64>) -> Result<ModelFile<'_>, Error> {
    let format = match detect(prefix) {
        Err(Error::Incomplete { needed }) => {
            return Err(match file_len {
                Some(len) if needed > len => Error::Truncated {
                    offset: prefix.len() as u64,
                    what: "file magic",
                    needed,
                    file_len: len,
                },
                _ => Error::Incomplete { needed },
            })
        }
        other => other?,
    };
    Ok(match format {
        Format::Gguf => ModelFile::Gguf(gguf::GgufFile::parse_prefix(prefix, file_len)?),
        Format::Safetensors => ModelFile::Safetensors(safetensors::SafetensorsFile::parse_prefix(
            prefix, file_len,
        )?),
    })
}

/// Validates a complete file: everything [`parse`] checks, plus every GGUF metadata array element
/// (UTF-8 strings, 0/1 bools). Meant for freshly downloaded files.
pub fn check_structure(bytes: &[u8]) -> Result<Format, Error> {
    let file = parse(bytes)?;
    if let ModelFile::Gguf(g) = &file {
        g.validate_arrays()?;
    }
    Ok(file.format())
}

/// How many bytes a remote reader should hold after `Incomplete { needed }` with `have` bytes in
/// hand: at least `needed`, at least double what it had (so a header that keeps growing, like a
/// vocabulary array, costs few round trips), never more than the file.
pub fn next_fetch_len(have: u64, needed: u64, file_len: u64) -> u64 {
    needed
        .max(have.saturating_mul(2))
        .max(INITIAL_FETCH_LEN.min(file_len))
        .min(file_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_formats() {
        assert_eq!(detect(b"GGUF\x03\0\0\0"), Ok(Format::Gguf));
        assert_eq!(detect(b"\x02\0\0\0\0\0\0\0{}"), Ok(Format::Safetensors));
        assert_eq!(detect(b"GG"), Err(Error::Incomplete { needed: 9 }));
        assert_eq!(detect(b"\x02\0\0"), Err(Error::Incomplete { needed: 9 }));
        assert_eq!(
            detect(b"PK\x03\x04zipfile"),
            Err(Error::UnknownFormat { offset: 0 })
        );
    }

    #[test]
    fn tiny_file_is_truncated_not_incomplete() {
        assert!(matches!(parse(b"GG"), Err(Error::Truncated { .. })));
        assert!(matches!(parse(b""), Err(Error::Truncated { .. })));
    }

    #[test]
    fn fetch_growth() {
        assert_eq!(next_fetch_len(0, 9, 100), 100);
        assert_eq!(next_fetch_len(4 << 20, 5 << 20, 1 << 40), 8 << 20);
        assert_eq!(next_fetch_len(4 << 20, 20 << 20, 1 << 40), 20 << 20);
        assert_eq!(next_fetch_len(4 << 20, 5 << 20, 6 << 20), 6 << 20);
    }
}
