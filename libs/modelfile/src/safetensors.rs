//! safetensors header parsing: the 8-byte little-endian header length, the JSON header (tensor
//! name → dtype, shape, data_offsets; optional `__metadata__` string map), and the checks the
//! reference implementation makes — offsets within the data section, each tensor's span equal to
//! its shape × dtype size, no overlaps and no uncovered bytes. Names and metadata borrow from the
//! input unless the JSON escapes them.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::Error;

/// The largest JSON header accepted (the reference implementation's limit).
pub const MAX_HEADER_LEN: u64 = 100_000_000;
/// More dimensions than this is not a tensor, it is an attack on the allocator.
pub const MAX_DIMS: usize = 64;

macro_rules! dtypes {
    ($($variant:ident = $name:literal, $bits:literal;)*) => {
        /// A safetensors element type.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[allow(non_camel_case_types)]
        #[non_exhaustive]
        pub enum Dtype {
            $($variant,)*
        }

        impl Dtype {
            /// Every dtype, in the order of the reference implementation's enum.
            pub const ALL: &'static [Dtype] = &[$(Dtype::$variant,)*];

            /// The dtype named `name` in a header (`"BF16"`).
            pub fn from_name(name: &str) -> Option<Dtype> {
                match name {
                    $($name => Some(Dtype::$variant),)*
                    _ => None,
                }
            }

            pub fn name(self) -> &'static str {
                match self {
                    $(Dtype::$variant => $name,)*
                }
            }

            /// Bits per element (4 for F4, 6 for the F6 types).
            pub fn bits(self) -> u64 {
                match self {
                    $(Dtype::$variant => $bits,)*
                }
            }
        }
    };
}

dtypes! {
    BOOL = "BOOL", 8;
    F4 = "F4", 4;
    F6_E2M3 = "F6_E2M3", 6;
    F6_E3M2 = "F6_E3M2", 6;
    U8 = "U8", 8;
    I8 = "I8", 8;
    F8_E5M2 = "F8_E5M2", 8;
    F8_E4M3 = "F8_E4M3", 8;
    F8_E8M0 = "F8_E8M0", 8;
    F8_E4M3FNUZ = "F8_E4M3FNUZ", 8;
    F8_E5M2FNUZ = "F8_E5M2FNUZ", 8;
    I16 = "I16", 16;
    U16 = "U16", 16;
    F16 = "F16", 16;
    BF16 = "BF16", 16;
    I32 = "I32", 32;
    U32 = "U32", 32;
    F32 = "F32", 32;
    C64 = "C64", 64;
    F64 = "F64", 64;
    I64 = "I64", 64;
    U64 = "U64", 64;
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One tensor of a safetensors file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo<'a> {
    pub name: Cow<'a, str>,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    /// `data_offsets` as stored: relative to the start of the data section.
    pub data_offsets: (u64, u64),
    /// Absolute file offset of the tensor's data.
    pub offset: u64,
    pub n_elements: u64,
    pub n_bytes: u64,
}

impl TensorInfo<'_> {
    /// `[offset, offset + n_bytes)` in the file.
    pub fn data_range(&self) -> std::ops::Range<u64> {
        self.offset..self.offset + self.n_bytes
    }
}

/// A parsed safetensors header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetensorsFile<'a> {
    header_len: u64,
    tensors: Vec<TensorInfo<'a>>,
    metadata: Option<Vec<(Cow<'a, str>, Cow<'a, str>)>>,
    file_len: Option<u64>,
}

impl<'a> SafetensorsFile<'a> {
    /// Parses a complete file held in memory: every byte after the header must belong to exactly
    /// one tensor.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        Self::parse_prefix(bytes, Some(bytes.len() as u64))
    }

    /// Parses the header from the first `prefix.len()` bytes of a file of `file_len` bytes (when
    /// known): [`Error::Incomplete`] says how many bytes the header needs (after 8 bytes, the
    /// exact number). With `file_len`, tensor data is checked against the file's end.
    pub fn parse_prefix(prefix: &'a [u8], file_len: Option<u64>) -> Result<Self, Error> {
        let short = |needed: u64, what: &'static str| match file_len {
            Some(len) if needed > len => Error::Truncated {
                offset: 0,
                what,
                needed,
                file_len: len,
            },
            _ => Error::Incomplete { needed },
        };
        let len_bytes: [u8; 8] = prefix
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| short(8, "header length"))?;
        let n = u64::from_le_bytes(len_bytes);
        if n > MAX_HEADER_LEN {
            return Err(Error::HeaderTooLarge {
                offset: 0,
                needed: n.saturating_add(8),
                max: MAX_HEADER_LEN,
            });
        }
        let end = 8 + n; // n <= 1e8
        let json = prefix
            .get(8..end as usize)
            .ok_or_else(|| short(end, "JSON header"))?;
        if json.first() != Some(&b'{') {
            return Err(Error::Json {
                offset: 8,
                message: "header does not start with '{'".into(),
            });
        }
        let text = std::str::from_utf8(json).map_err(|e| Error::InvalidUtf8 {
            offset: 8 + e.valid_up_to() as u64,
            what: "JSON header",
        })?;
        let raw: RawHeader<'a> = serde_json::from_str(text).map_err(|e| Error::Json {
            offset: 8 + json_error_offset(text, &e),
            message: e.to_string(),
        })?;

        let data_len = file_len.map(|len| len.saturating_sub(end));
        let mut tensors = Vec::with_capacity(raw.tensors.len());
        for (name, t) in raw.tensors {
            tensors.push(check_tensor(name, t, end)?);
        }
        check_layout(&tensors, end, data_len, file_len)?;
        Ok(SafetensorsFile {
            header_len: n,
            tensors,
            metadata: raw.metadata,
            file_len,
        })
    }

    /// Length of the JSON header (the first 8 bytes of the file).
    pub fn json_len(&self) -> u64 {
        self.header_len
    }

    /// Bytes from the start of the file to the end of the JSON header: the prefix a remote reader
    /// needs, and where the data section starts.
    pub fn header_len(&self) -> u64 {
        8 + self.header_len
    }

    /// Absolute offset of the data section.
    pub fn data_offset(&self) -> u64 {
        8 + self.header_len
    }

    /// Tensors in header order.
    pub fn tensors(&self) -> &[TensorInfo<'a>] {
        &self.tensors
    }

    /// `__metadata__`, in header order; `None` when absent or null.
    pub fn metadata(&self) -> Option<&[(Cow<'a, str>, Cow<'a, str>)]> {
        self.metadata.as_deref()
    }

    /// The `__metadata__` value for `key`.
    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// The file length given when parsing, if any.
    pub fn file_len(&self) -> Option<u64> {
        self.file_len
    }
}

fn check_tensor<'a>(
    name: Cow<'a, str>,
    raw: RawTensor<'a>,
    data_start: u64,
) -> Result<TensorInfo<'a>, Error> {
    let dtype = Dtype::from_name(&raw.dtype).ok_or_else(|| Error::UnknownDtype {
        offset: 8,
        tensor: name.to_string(),
        dtype: raw.dtype.to_string(),
    })?;
    let n_elements = raw
        .shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d));
    let n_bits = n_elements.and_then(|n| n.checked_mul(dtype.bits()));
    let (Some(n_elements), Some(n_bits)) = (n_elements, n_bits) else {
        return Err(Error::ShapeOverflow {
            offset: 8,
            tensor: name.to_string(),
            shape: raw.shape,
        });
    };
    if n_bits % 8 != 0 {
        return Err(Error::NotBlockAligned {
            offset: 8,
            tensor: name.to_string(),
            elements: n_elements,
            block: 8 / gcd(8, dtype.bits()),
        });
    }
    let n_bytes = n_bits / 8;
    let (begin, end) = raw.data_offsets;
    if begin > end {
        return Err(Error::ReversedOffsets {
            offset: data_start.saturating_add(begin),
            tensor: name.to_string(),
            begin,
            end,
        });
    }
    if end - begin != n_bytes {
        return Err(Error::SizeMismatch {
            offset: data_start.saturating_add(begin),
            tensor: name.to_string(),
            expected: n_bytes,
            actual: end - begin,
        });
    }
    let offset = data_start
        .checked_add(begin)
        .filter(|o| o.checked_add(n_bytes).is_some())
        .ok_or_else(|| Error::TensorOutOfBounds {
            offset: 8,
            tensor: name.to_string(),
            start: begin,
            end,
            file_len: u64::MAX,
        })?;
    Ok(TensorInfo {
        name,
        dtype,
        shape: raw.shape,
        data_offsets: raw.data_offsets,
        offset,
        n_elements,
        n_bytes,
    })
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Sorted by offset, the tensors must tile the data section: no overlap, no gap, and (when the
/// file length is known) ending exactly at the end of the file.
fn check_layout(
    tensors: &[TensorInfo<'_>],
    data_start: u64,
    data_len: Option<u64>,
    file_len: Option<u64>,
) -> Result<(), Error> {
    let mut order: Vec<&TensorInfo<'_>> = tensors.iter().collect();
    order.sort_unstable_by_key(|t| t.data_offsets);
    let mut covered = 0u64;
    let mut previous: Option<&TensorInfo<'_>> = None;
    for t in order {
        let (begin, end) = t.data_offsets;
        if let (Some(data_len), Some(file_len)) = (data_len, file_len) {
            if end > data_len {
                return Err(Error::TensorOutOfBounds {
                    offset: t.offset,
                    tensor: t.name.to_string(),
                    start: t.offset,
                    end: data_start.saturating_add(end),
                    file_len,
                });
            }
        }
        if begin < covered {
            return Err(Error::TensorOverlap {
                offset: t.offset,
                tensor: t.name.to_string(),
                other: previous.map(|p| p.name.to_string()).unwrap_or_default(),
            });
        }
        if begin > covered {
            return Err(Error::UncoveredData {
                offset: data_start + covered,
                len: begin - covered,
            });
        }
        covered = end;
        previous = Some(t);
    }
    if let Some(data_len) = data_len {
        if covered < data_len {
            return Err(Error::UncoveredData {
                offset: data_start + covered,
                len: data_len - covered,
            });
        }
    }
    Ok(())
}

/// Byte offset within `text` of a serde_json error's line and column.
fn json_error_offset(text: &str, e: &serde_json::Error) -> u64 {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(e.line().saturating_sub(1))
        .map(str::len)
        .sum();
    (line_start + e.column().saturating_sub(1)).min(text.len()) as u64
}

// ---- JSON shapes ----------------------------------------------------------------------------

/// A JSON string, borrowed when it has no escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

struct RawHeader<'a> {
    tensors: Vec<(Cow<'a, str>, RawTensor<'a>)>,
    metadata: Option<Vec<(Cow<'a, str>, Cow<'a, str>)>>,
}

impl<'de> Deserialize<'de> for RawHeader<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawHeader<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of tensors")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut tensors = Vec::new();
                let mut metadata = None;
                let mut seen_metadata = false;
                let mut names = HashSet::new();
                while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
                    if key == "__metadata__" {
                        if seen_metadata {
                            return Err(de::Error::custom("duplicate key \"__metadata__\""));
                        }
                        seen_metadata = true;
                        metadata = map.next_value::<Option<Metadata<'de>>>()?.map(|m| m.0);
                    } else {
                        if !names.insert(key.clone()) {
                            return Err(de::Error::custom(format_args!(
                                "duplicate tensor name {key:?}"
                            )));
                        }
                        let tensor = map.next_value::<RawTensor<'de>>()?;
                        tensors.push((key, tensor));
                    }
                }
                Ok(RawHeader { tensors, metadata })
            }
        }
        d.deserialize_map(V)
    }
}

struct Metadata<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'de> Deserialize<'de> for Metadata<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Metadata<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                let mut keys = HashSet::new();
                while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
                    if !keys.insert(key.clone()) {
                        return Err(de::Error::custom(format_args!(
                            "duplicate __metadata__ key {key:?}"
                        )));
                    }
                    let Str(value) = map.next_value::<Str<'de>>()?;
                    out.push((key, value));
                }
                Ok(Metadata(out))
            }
        }
        d.deserialize_map(V)
    }
}

struct RawTensor<'a> {
    dtype: Cow<'a, str>,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

impl<'de> Deserialize<'de> for RawTensor<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawTensor<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a tensor object with dtype, shape and data_offsets")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut dtype, mut shape, mut offsets) = (None, None, None);
                while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
                    let duplicate = match key.as_ref() {
                        "dtype" => dtype.replace(map.next_value::<Str<'de>>()?.0).is_some(),
                        "shape" => shape.replace(map.next_value::<Shape>()?.0).is_some(),
                        "data_offsets" => {
                            offsets.replace(map.next_value::<(u64, u64)>()?).is_some()
                        }
                        // The reference reader ignores unknown fields.
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                            false
                        }
                    };
                    if duplicate {
                        return Err(de::Error::custom(format_args!("duplicate field {key:?}")));
                    }
                }
                Ok(RawTensor {
                    dtype: dtype.ok_or_else(|| de::Error::missing_field("dtype"))?,
                    shape: shape.ok_or_else(|| de::Error::missing_field("shape"))?,
                    data_offsets: offsets
                        .ok_or_else(|| de::Error::missing_field("data_offsets"))?,
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// A shape of at most [`MAX_DIMS`] dimensions.
struct Shape(Vec<u64>);

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Shape;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "an array of at most {MAX_DIMS} dimensions")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut dims = Vec::new();
                while let Some(d) = seq.next_element::<u64>()? {
                    if dims.len() == MAX_DIMS {
                        return Err(de::Error::custom(format_args!(
                            "more than {MAX_DIMS} dimensions"
                        )));
                    }
                    dims.push(d);
                }
                Ok(Shape(dims))
            }
        }
        d.deserialize_seq(V)
    }
}
