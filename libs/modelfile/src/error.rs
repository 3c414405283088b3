//! The one error type of this crate. Every variant but [`Error::Incomplete`] names the byte offset
//! in the file where the problem was found and what was wrong, so a user looking at a hex dump can
//! find it; `Incomplete` is not a defect of the file but a request for more of its bytes.

/// Why a model file could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Parsing a prefix of the file: the header continues past the bytes given. Fetch at least
    /// `needed` bytes from the start of the file and parse again.
    #[error("header incomplete: need at least the first {needed} bytes of the file")]
    Incomplete { needed: u64 },

    /// The file (whose full length is known) ends before a structure it declares.
    #[error("byte {offset}: file ends inside {what} (needs bytes up to {needed}, the file has {file_len})")]
    Truncated {
        offset: u64,
        what: &'static str,
        needed: u64,
        file_len: u64,
    },

    /// A count or length that cannot possibly fit in the bytes that are left, refused before
    /// anything is allocated or walked.
    #[error("byte {offset}: {what} {count} cannot fit in the {available} bytes left")]
    CountTooLarge {
        offset: u64,
        what: &'static str,
        count: u64,
        available: u64,
    },

    /// The header would need more bytes than this crate is willing to fetch or read.
    #[error("byte {offset}: header needs {needed} bytes, more than the {max}-byte limit")]
    HeaderTooLarge { offset: u64, needed: u64, max: u64 },

    /// Neither GGUF magic nor a safetensors header start.
    #[error("byte {offset}: not a GGUF or safetensors file")]
    UnknownFormat { offset: u64 },

    #[error("byte {offset}: bad GGUF magic {found:02x?} (expected \"GGUF\")")]
    BadMagic { offset: u64, found: [u8; 4] },

    #[error("byte {offset}: GGUF version {version} is not supported (versions 2 and 3 are)")]
    UnsupportedVersion { offset: u64, version: u32 },

    #[error("byte {offset}: invalid UTF-8 in {what}")]
    InvalidUtf8 { offset: u64, what: &'static str },

    /// A GGUF metadata value type id outside 0..=12.
    #[error("byte {offset}: unknown GGUF metadata value type {type_id}")]
    UnknownValueType { offset: u64, type_id: u32 },

    #[error("byte {offset}: invalid bool value {value} (must be 0 or 1)")]
    InvalidBool { offset: u64, value: u8 },

    #[error("byte {offset}: arrays nested deeper than {max} levels")]
    NestingTooDeep { offset: u64, max: u32 },

    #[error("byte {offset}: duplicate metadata key {key:?}")]
    DuplicateKey { offset: u64, key: String },

    #[error("byte {offset}: general.alignment must be a u32, found a {found}")]
    AlignmentType { offset: u64, found: &'static str },

    #[error("byte {offset}: general.alignment {alignment} is not a non-zero power of two")]
    BadAlignment { offset: u64, alignment: u64 },

    #[error("byte {offset}: duplicate tensor name {name:?}")]
    DuplicateTensor { offset: u64, name: String },

    #[error("byte {offset}: tensor {tensor:?} has {n_dims} dimensions, at most {max} are allowed")]
    TooManyDims {
        offset: u64,
        tensor: String,
        n_dims: u64,
        max: u32,
    },

    /// A ggml tensor type id this crate (and ggml) does not know.
    #[error("byte {offset}: tensor {tensor:?} has unknown ggml type {type_id}")]
    UnknownTensorType {
        offset: u64,
        tensor: String,
        type_id: u32,
    },

    #[error("byte {offset}: tensor {tensor:?} has unknown dtype {dtype:?}")]
    UnknownDtype {
        offset: u64,
        tensor: String,
        dtype: String,
    },

    /// A dimension too large, or the product of the dimensions (or the byte size) overflows.
    #[error(
        "byte {offset}: tensor {tensor:?} shape {shape:?} overflows its element or byte count"
    )]
    ShapeOverflow {
        offset: u64,
        tensor: String,
        shape: Vec<u64>,
    },

    /// The first dimension of a block-quantized GGUF tensor is not a multiple of its block size,
    /// or a sub-byte safetensors tensor does not end on a byte boundary.
    #[error("byte {offset}: tensor {tensor:?}: {elements} elements is not a multiple of the block of {block}")]
    NotBlockAligned {
        offset: u64,
        tensor: String,
        elements: u64,
        block: u64,
    },

    #[error("byte {offset}: tensor {tensor:?} data offset {data_offset} is not a multiple of the alignment {alignment}")]
    MisalignedTensor {
        offset: u64,
        tensor: String,
        data_offset: u64,
        alignment: u64,
    },

    #[error("byte {offset}: tensor {tensor:?} data [{start}, {end}) lies outside the file of {file_len} bytes")]
    TensorOutOfBounds {
        offset: u64,
        tensor: String,
        start: u64,
        end: u64,
        file_len: u64,
    },

    #[error("byte {offset}: tensor {tensor:?} data overlaps tensor {other:?}")]
    TensorOverlap {
        offset: u64,
        tensor: String,
        other: String,
    },

    /// safetensors: `data_offsets` with begin after end.
    #[error("byte {offset}: tensor {tensor:?} data_offsets [{begin}, {end}] are reversed")]
    ReversedOffsets {
        offset: u64,
        tensor: String,
        begin: u64,
        end: u64,
    },

    /// safetensors: `data_offsets` span a different number of bytes than shape × dtype.
    #[error("byte {offset}: tensor {tensor:?} data_offsets span {actual} bytes, its shape and dtype need {expected}")]
    SizeMismatch {
        offset: u64,
        tensor: String,
        expected: u64,
        actual: u64,
    },

    /// safetensors: bytes in the data section that no tensor covers (the reference reader
    /// rejects these too).
    #[error("byte {offset}: {len} bytes of the data section belong to no tensor")]
    UncoveredData { offset: u64, len: u64 },

    /// safetensors: the JSON header is malformed or does not have the expected shape.
    #[error("byte {offset}: bad safetensors JSON header: {message}")]
    Json { offset: u64, message: String },
}

impl Error {
    /// The byte offset the error points at, `None` for [`Error::Incomplete`].
    pub fn offset(&self) -> Option<u64> {
        use Error::*;
        match self {
            Incomplete { .. } => None,
            Truncated { offset, .. }
            | CountTooLarge { offset, .. }
            | HeaderTooLarge { offset, .. }
            | UnknownFormat { offset }
            | BadMagic { offset, .. }
            | UnsupportedVersion { offset, .. }
            | InvalidUtf8 { offset, .. }
            | UnknownValueType { offset, .. }
            | InvalidBool { offset, .. }
            | NestingTooDeep { offset, .. }
            | DuplicateKey { offset, .. }
            | AlignmentType { offset, .. }
            | BadAlignment { offset, .. }
            | DuplicateTensor { offset, .. }
            | TooManyDims { offset, .. }
            | UnknownTensorType { offset, .. }
            | UnknownDtype { offset, .. }
            | ShapeOverflow { offset, .. }
            | NotBlockAligned { offset, .. }
            | MisalignedTensor { offset, .. }
            | TensorOutOfBounds { offset, .. }
            | TensorOverlap { offset, .. }
            | ReversedOffsets { offset, .. }
            | SizeMismatch { offset, .. }
            | UncoveredData { offset, .. }
            | Json { offset, .. } => Some(*offset),
        }
    }
}
