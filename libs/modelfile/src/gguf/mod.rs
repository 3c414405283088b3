//! GGUF (versions 2 and 3, either byte order) header parsing over the bytes of a file or a prefix
//! of it: magic, version, metadata key/values, tensor infos, alignment and the data section offset.
//! Nothing is copied: keys, strings and names borrow from the input, arrays stay encoded until
//! iterated. Every count is checked against the bytes that can follow before it is used.

mod ggml_type;
mod value;

use std::collections::HashSet;

pub use ggml_type::{file_type_name, GgmlType};
pub use value::{Array, ArrayIter, Value, ValueType, MAX_ARRAY_DEPTH};

use crate::cursor::Cursor;
use crate::Error;

/// `"GGUF"` as the first four bytes of the file.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: u32 = 4;
/// When parsing a prefix, a header that needs more than this many bytes is refused rather than
/// asking the caller to fetch them (real headers, vocabulary included, are a few MB).
pub const MAX_HEADER_LEN: u64 = 256 << 20;

/// Smallest encoded key/value: empty key (8), type (4), one-byte value.
const MIN_KV_SIZE: u64 = 8 + 4 + 1;
/// Smallest encoded tensor info: empty name (8), n_dims (4), type (4), offset (8).
const MIN_TENSOR_INFO_SIZE: u64 = 8 + 4 + 4 + 8;

/// One metadata key/value pair.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataEntry<'a> {
    pub key: &'a str,
    pub value: Value<'a>,
    /// Absolute file offset of the entry (its key's length prefix).
    pub offset: u64,
}

/// One tensor's description from the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo<'a> {
    pub name: &'a str,
    dims: [u64; MAX_DIMS as usize],
    n_dims: u8,
    pub ggml_type: GgmlType,
    /// Offset of the data as stored: relative to the start of the data section.
    pub relative_offset: u64,
    /// Absolute file offset of the tensor's data.
    pub offset: u64,
    pub n_elements: u64,
    pub n_bytes: u64,
    /// Absolute file offset of this tensor's info record in the header.
    pub info_offset: u64,
}

impl TensorInfo<'_> {
    /// Dimensions in ggml order (innermost first), as stored in the file.
    pub fn shape(&self) -> &[u64] {
        &self.dims[..usize::from(self.n_dims)]
    }

    /// `[offset, offset + n_bytes)` in the file.
    pub fn data_range(&self) -> std::ops::Range<u64> {
        self.offset..self.offset + self.n_bytes
    }
}

/// A parsed GGUF header.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufFile<'a> {
    version: u32,
    big_endian: bool,
    alignment: u64,
    metadata: Vec<MetadataEntry<'a>>,
    tensors: Vec<TensorInfo<'a>>,
    header_len: u64,
    data_offset: u64,
    file_len: Option<u64>,
}

impl<'a> GgufFile<'a> {
    /// Parses a complete file held in memory (usually memory-mapped): checks that every tensor's
    /// data lies inside it.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        Self::parse_prefix(bytes, Some(bytes.len() as u64))
    }

    /// Parses the header from the first `prefix.len()` bytes of a file of `file_len` bytes (when
    /// known). Returns [`Error::Incomplete`] with the number of bytes needed when the header runs
    /// past the prefix; when `file_len` is known, tensor data is checked to lie inside the file.
    pub fn parse_prefix(prefix: &'a [u8], file_len: Option<u64>) -> Result<Self, Error> {
        let mut c = Cursor::new(prefix, file_len, MAX_HEADER_LEN);
        let magic: [u8; 4] = {
            let b = c.take(4, "GGUF magic")?;
            [b[0], b[1], b[2], b[3]]
        };
        if magic != MAGIC {
            return Err(Error::BadMagic {
                offset: 0,
                found: magic,
            });
        }
        let raw_version = c.u32("GGUF version")?;
        // A file written on a machine of the other byte order reads as a version with zero low
        // 16 bits (gguf-py and ggml use the same test).
        let (version, big_endian) = if raw_version & 0xffff == 0 {
            (raw_version.swap_bytes(), true)
        } else {
            (raw_version, false)
        };
        if !(2..=3).contains(&version) {
            return Err(Error::UnsupportedVersion { offset: 4, version });
        }
        c.big_endian = big_endian;
        let tensor_count = c.u64("tensor count")?;
        let kv_count = c.u64("metadata key/value count")?;
        c.check_count(kv_count, MIN_KV_SIZE, "metadata key/value count", 16)?;

        let mut metadata = Vec::with_capacity(capacity(kv_count, c.available(), MIN_KV_SIZE));
        let mut keys = HashSet::with_capacity(metadata.capacity());
        let mut alignment = DEFAULT_ALIGNMENT;
        for _ in 0..kv_count {
            let offset = c.pos();
            let key = c.string("metadata key")?;
            let type_at = c.pos();
            let type_id = c.u32("metadata value type")?;
            let ty = ValueType::from_id(type_id).ok_or(Error::UnknownValueType {
                offset: type_at,
                type_id,
            })?;
            let value = value::read_value(&mut c, ty, 0, true)?;
            if !keys.insert(key) {
                return Err(Error::DuplicateKey {
                    offset,
                    key: key.to_owned(),
                });
            }
            if key == "general.alignment" {
                alignment = match value {
                    Value::U32(a) if a != 0 && a.is_power_of_two() => u64::from(a),
                    Value::U32(a) => {
                        return Err(Error::BadAlignment {
                            offset: type_at + 4,
                            alignment: a.into(),
                        })
                    }
                    ref other => {
                        return Err(Error::AlignmentType {
                            offset: type_at,
                            found: other.value_type().name(),
                        })
                    }
                };
            }
            metadata.push(MetadataEntry { key, value, offset });
        }

        c.check_count(tensor_count, MIN_TENSOR_INFO_SIZE, "tensor count", 8)?;
        let mut tensors =
            Vec::with_capacity(capacity(tensor_count, c.available(), MIN_TENSOR_INFO_SIZE));
        let mut names = HashSet::with_capacity(tensors.capacity());
        for _ in 0..tensor_count {
            let info = read_tensor_info(&mut c)?;
            if !names.insert(info.name) {
                return Err(Error::DuplicateTensor {
                    offset: info.info_offset,
                    name: info.name.to_owned(),
                });
            }
            tensors.push(info);
        }
        let header_len = c.pos();
        // alignment is a power of two <= 2^31, header_len < 2^64 - 2^31 as it indexes a slice.
        let data_offset = header_len.next_multiple_of(alignment);

        for t in &mut tensors {
            if t.relative_offset % alignment != 0 {
                return Err(Error::MisalignedTensor {
                    offset: t.info_offset,
                    tensor: t.name.to_owned(),
                    data_offset: t.relative_offset,
                    alignment,
                });
            }
            let out_of_bounds = |start: u64, end: u64| Error::TensorOutOfBounds {
                offset: t.info_offset,
                tensor: t.name.to_owned(),
                start,
                end,
                file_len: file_len.unwrap_or(u64::MAX),
            };
            let start = data_offset
                .checked_add(t.relative_offset)
                .ok_or_else(|| out_of_bounds(u64::MAX, u64::MAX))?;
            let end = start
                .checked_add(t.n_bytes)
                .ok_or_else(|| out_of_bounds(start, u64::MAX))?;
            if let Some(len) = file_len {
                if end > len {
                    return Err(out_of_bounds(start, end));
                }
            }
            t.offset = start;
        }
        check_overlaps(&tensors)?;

        Ok(GgufFile {
            version,
            big_endian,
            alignment,
            metadata,
            tensors,
            header_len,
            data_offset,
            file_len,
        })
    }

    /// 2 or 3.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Whether the file was written big-endian (gguf-py can write such files).
    pub fn big_endian(&self) -> bool {
        self.big_endian
    }

    /// Tensor data alignment: `general.alignment` or 32.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Metadata in file order.
    pub fn metadata(&self) -> &[MetadataEntry<'a>] {
        &self.metadata
    }

    /// The value of metadata key `key`.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.metadata
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.value)
    }

    /// Tensor infos in file order.
    pub fn tensors(&self) -> &[TensorInfo<'a>] {
        &self.tensors
    }

    /// Bytes from the start of the file to the end of the tensor infos: the prefix a remote
    /// reader needs.
    pub fn header_len(&self) -> u64 {
        self.header_len
    }

    /// Absolute offset of the data section (the header rounded up to the alignment).
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// The file length given when parsing, if any.
    pub fn file_len(&self) -> Option<u64> {
        self.file_len
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Option<&'a str> {
        self.get("general.architecture").and_then(Value::as_str)
    }

    /// Checks everything the header parse defers: every array element decodes (strings are valid
    /// UTF-8, bools are 0 or 1).
    pub fn validate_arrays(&self) -> Result<(), Error> {
        for entry in &self.metadata {
            if let Value::Array(array) = &entry.value {
                value::validate_array(array)?;
            }
        }
        Ok(())
    }
}

/// Capacity to reserve for `count` items of at least `min_size` bytes: never more than could fit.
fn capacity(count: u64, available: u64, min_size: u64) -> usize {
    usize::try_from(count.min(available / min_size).min(1 << 16)).unwrap_or(0)
}

fn read_tensor_info<'a>(c: &mut Cursor<'a>) -> Result<TensorInfo<'a>, Error> {
    let info_offset = c.pos();
    let name = c.string("tensor name")?;
    let dims_at = c.pos();
    let n_dims = c.u32("tensor dimension count")?;
    if n_dims > MAX_DIMS {
        return Err(Error::TooManyDims {
            offset: dims_at,
            tensor: name.to_owned(),
            n_dims: n_dims.into(),
            max: MAX_DIMS,
        });
    }
    let mut dims = [1u64; MAX_DIMS as usize];
    for d in dims.iter_mut().take(n_dims as usize) {
        *d = c.u64("tensor dimension")?;
    }
    let shape = &dims[..n_dims as usize];
    let overflow = || Error::ShapeOverflow {
        offset: dims_at,
        tensor: name.to_owned(),
        shape: shape.to_vec(),
    };
    // ggml stores dimensions as int64: each and their product must stay below 2^63.
    let n_elements = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| i64::try_from(n).is_ok() && shape.iter().all(|&d| i64::try_from(d).is_ok()))
        .ok_or_else(overflow)?;
    let type_at = c.pos();
    let type_id = c.u32("tensor type")?;
    let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| Error::UnknownTensorType {
        offset: type_at,
        tensor: name.to_owned(),
        type_id,
    })?;
    let block = ggml_type.block_size();
    let row = dims[0];
    if row % block != 0 {
        return Err(Error::NotBlockAligned {
            offset: dims_at + 4,
            tensor: name.to_owned(),
            elements: row,
            block,
        });
    }
    // n_elements / block blocks (exact: the row, hence the product, is a multiple of block).
    let n_bytes = (n_elements / block)
        .checked_mul(ggml_type.type_size())
        .ok_or_else(overflow)?;
    let relative_offset = c.u64("tensor data offset")?;
    Ok(TensorInfo {
        name,
        dims,
        n_dims: n_dims as u8,
        ggml_type,
        relative_offset,
        offset: 0,
        n_elements,
        n_bytes,
        info_offset,
    })
}

/// Tensors' data ranges must not overlap (zero-sized tensors overlap nothing).
fn check_overlaps(tensors: &[TensorInfo<'_>]) -> Result<(), Error> {
    let mut order: Vec<&TensorInfo<'_>> = tensors.iter().filter(|t| t.n_bytes > 0).collect();
    order.sort_unstable_by_key(|t| (t.offset, t.n_bytes));
    for pair in order.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b.offset < a.offset + a.n_bytes {
            return Err(Error::TensorOverlap {
                offset: b.info_offset,
                tensor: b.name.to_owned(),
                other: a.name.to_owned(),
            });
        }
    }
    Ok(())
}
