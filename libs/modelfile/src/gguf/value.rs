//! GGUF metadata values. Scalars and strings are decoded when the header is parsed (strings borrow
//! from the file); arrays are only measured then — their element type, count and byte span are
//! recorded — and decoded element by element when iterated, so a 150k-token vocabulary costs
//! nothing until someone asks for it.

use serde::Serialize;

use crate::cursor::Cursor;
use crate::Error;

/// Arrays of arrays deeper than this are refused (the format allows nesting; ggml itself allows
/// none, gguf-py any).
pub const MAX_ARRAY_DEPTH: u32 = 16;

/// The type of a GGUF metadata value, numbered as in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    pub fn from_id(id: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The number used in the file (and by gguf-py's `GGUFValueType`).
    pub fn id(self) -> u32 {
        self as u32
    }

    /// Short name: `u8` … `f64`, `bool`, `string`, `array`.
    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }

    /// Encoded size of a value of this type if fixed, `None` for strings and arrays.
    pub fn fixed_size(self) -> Option<u64> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// The fewest bytes a value of this type can take (a string's length prefix, an array's
    /// element type and count).
    pub(crate) fn min_size(self) -> u64 {
        match self {
            ValueType::String => 8,
            ValueType::Array => 12,
            other => other.fixed_size().unwrap_or(1),
        }
    }
}

/// A metadata value. Strings borrow from the file; arrays are decoded lazily.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(&'a str),
    Array(Array<'a>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl<'a> Value<'a> {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// An integer value of any width, if non-negative.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// A numeric value (integer or float) as f64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    /// A scalar or string as JSON (`f32` widened to `f64`); `None` for an array.
    pub fn scalar_json(&self) -> Option<serde_json::Value> {
        Some(match *self {
            Value::U8(x) => x.into(),
            Value::I8(x) => x.into(),
            Value::U16(x) => x.into(),
            Value::I16(x) => x.into(),
            Value::U32(x) => x.into(),
            Value::I32(x) => x.into(),
            Value::U64(x) => x.into(),
            Value::I64(x) => x.into(),
            Value::F32(x) => f64::from(x).into(),
            Value::F64(x) => x.into(),
            Value::Bool(x) => x.into(),
            Value::String(s) => s.into(),
            Value::Array(_) => return None,
        })
    }

    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Array<'a>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// An array value, not yet decoded: its element type, count and the bytes of its elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Array<'a> {
    elem_type: ValueType,
    len: u64,
    /// The encoded elements, already checked to be exactly `len` well-formed elements.
    bytes: &'a [u8],
    /// Absolute file offset of `bytes`.
    offset: u64,
    big_endian: bool,
    depth: u32,
}

impl<'a> Array<'a> {
    pub fn elem_type(&self) -> ValueType {
        self.elem_type
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The encoded elements as they are in the file.
    pub fn raw_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Absolute file offset of the first element.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Decodes the elements one by one. Items are `Err` only for content checks deferred until
    /// decoding: invalid UTF-8 in a string, a bool byte other than 0 or 1.
    pub fn iter(&self) -> ArrayIter<'a> {
        let mut cursor = Cursor::new(self.bytes, Some(self.bytes.len() as u64), 0);
        cursor.big_endian = self.big_endian;
        ArrayIter {
            array: self.clone(),
            cursor,
            remaining: self.len,
        }
    }

    /// The element types down to the first non-array element: `[Array, I32]` for an array of
    /// arrays of i32 (taken from the first element of each level, as gguf-py does).
    pub fn type_chain(&self) -> Vec<ValueType> {
        let mut chain = vec![self.elem_type];
        if self.elem_type == ValueType::Array {
            if let Some(Ok(Value::Array(first))) = self.iter().next() {
                chain.extend(first.type_chain());
            }
        }
        chain
    }
}

/// Iterator over an [`Array`]'s elements.
#[derive(Debug, Clone)]
pub struct ArrayIter<'a> {
    array: Array<'a>,
    cursor: Cursor<'a>,
    remaining: u64,
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = Result<Value<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let base = self.array.offset;
        if self.array.elem_type == ValueType::String {
            if let Some((len, text)) = split_string(self.cursor.rest(), self.cursor.big_endian) {
                let at = self.cursor.pos() + 8;
                self.cursor.advance(8 + len);
                return Some(std::str::from_utf8(text).map(Value::String).map_err(|e| {
                    self.remaining = 0;
                    Error::InvalidUtf8 {
                        offset: base + at + e.valid_up_to() as u64,
                        what: "string value",
                    }
                }));
            }
        }
        let result = read_value(
            &mut self.cursor,
            self.array.elem_type,
            self.array.depth + 1,
            true,
        )
        .map(|v| rebase(v, base))
        .map_err(|e| rebase_err(e, base));
        if result.is_err() {
            self.remaining = 0;
        }
        Some(result)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

/// Nested arrays read by an [`ArrayIter`] have offsets relative to their parent's bytes.
fn rebase(value: Value<'_>, base: u64) -> Value<'_> {
    match value {
        Value::Array(mut a) => {
            a.offset += base;
            Value::Array(a)
        }
        other => other,
    }
}

fn rebase_err(err: Error, base: u64) -> Error {
    match err {
        Error::InvalidUtf8 { offset, what } => Error::InvalidUtf8 {
            offset: offset + base,
            what,
        },
        Error::InvalidBool { offset, value } => Error::InvalidBool {
            offset: offset + base,
            value,
        },
        other => other,
    }
}

/// Reads one value of type `ty`. Arrays are walked to find their end (strings inside them are
/// length-checked but not UTF-8 checked, unless `check_strings`) and returned undecoded.
pub(crate) fn read_value<'a>(
    c: &mut Cursor<'a>,
    ty: ValueType,
    depth: u32,
    check_strings: bool,
) -> Result<Value<'a>, Error> {
    let at = c.pos();
    Ok(match ty {
        ValueType::U8 => Value::U8(c.u8("u8 value")?),
        ValueType::I8 => Value::I8(c.u8("i8 value")? as i8),
        ValueType::U16 => Value::U16(c.u16("u16 value")?),
        ValueType::I16 => Value::I16(c.u16("i16 value")? as i16),
        ValueType::U32 => Value::U32(c.u32("u32 value")?),
        ValueType::I32 => Value::I32(c.u32("i32 value")? as i32),
        ValueType::F32 => Value::F32(f32::from_bits(c.u32("f32 value")?)),
        ValueType::U64 => Value::U64(c.u64("u64 value")?),
        ValueType::I64 => Value::I64(c.u64("i64 value")? as i64),
        ValueType::F64 => Value::F64(f64::from_bits(c.u64("f64 value")?)),
        ValueType::Bool => match c.u8("bool value")? {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            value => return Err(Error::InvalidBool { offset: at, value }),
        },
        ValueType::String => {
            if check_strings {
                Value::String(c.string("string value")?)
            } else {
                // Only reached for array elements during the header walk; never returned.
                c.raw_string("string value")?;
                Value::String("")
            }
        }
        ValueType::Array => Value::Array(read_array(c, depth)?),
    })
}

/// Reads an array's header and walks its elements to find where it ends.
pub(crate) fn read_array<'a>(c: &mut Cursor<'a>, depth: u32) -> Result<Array<'a>, Error> {
    let at = c.pos();
    if depth >= MAX_ARRAY_DEPTH {
        return Err(Error::NestingTooDeep {
            offset: at,
            max: MAX_ARRAY_DEPTH,
        });
    }
    let type_id = c.u32("array element type")?;
    let elem_type = ValueType::from_id(type_id).ok_or(Error::UnknownValueType {
        offset: at,
        type_id,
    })?;
    let len = c.u64("array length")?;
    let start = c.pos();
    c.check_count(len, elem_type.min_size(), "array length", at + 4)?;
    match elem_type.fixed_size() {
        // `check_count` bounded len * size.
        Some(size) => {
            c.take(len * size, "array elements")?;
        }
        None => {
            let mut left = len;
            if elem_type == ValueType::String {
                left -= skip_strings_in_prefix(c, len);
            }
            for _ in 0..left {
                match elem_type {
                    ValueType::String => {
                        c.raw_string("array string")?;
                    }
                    _ => {
                        read_array(c, depth + 1)?;
                    }
                }
            }
        }
    }
    let end = c.pos();
    let bytes = c.span(start, end);
    Ok(Array {
        elem_type,
        len,
        bytes,
        offset: start,
        big_endian: c.big_endian,
        depth,
    })
}

/// Fast path of the header walk over a string array (a vocabulary is 100k+ of them): skips up to
/// `count` strings lying wholly inside the prefix and returns how many. The caller reads the rest
/// through the checked path, which reports a string running past the prefix or the file.
fn skip_strings_in_prefix(c: &mut Cursor<'_>, count: u64) -> u64 {
    let rest = c.rest();
    let mut pos = 0usize;
    let mut done = 0u64;
    while done < count {
        let Some(len_bytes) = rest.get(pos..pos + 8) else {
            break;
        };
        let mut b = [0u8; 8];
        b.copy_from_slice(len_bytes);
        let len = if c.big_endian {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        };
        let left = (rest.len() - pos - 8) as u64;
        if len > left {
            break;
        }
        // len <= left < rest.len(), so it fits in usize.
        pos += 8 + len as usize;
        done += 1;
    }
    c.advance(pos);
    done
}

/// Splits an encoded string off the front of `bytes`: its length and its bytes, `None` if they
/// do not all fit.
fn split_string(bytes: &[u8], big_endian: bool) -> Option<(usize, &[u8])> {
    let b: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    let len = if big_endian {
        u64::from_be_bytes(b)
    } else {
        u64::from_le_bytes(b)
    };
    let len = usize::try_from(len).ok()?;
    let text = bytes.get(8..8usize.checked_add(len)?)?;
    Some((len, text))
}

/// Walks every element of `array` (recursively), checking what the header walk deferred: strings
/// are UTF-8 and bools are 0 or 1 (other fixed-size values cannot be wrong).
pub(crate) fn validate_array(array: &Array<'_>) -> Result<(), Error> {
    match array.elem_type {
        ValueType::Bool => match array.bytes.iter().position(|&b| b > 1) {
            Some(i) => Err(Error::InvalidBool {
                offset: array.offset + i as u64,
                value: array.bytes[i],
            }),
            None => Ok(()),
        },
        ValueType::String | ValueType::Array => {
            for item in array.iter() {
                if let Value::Array(inner) = item? {
                    validate_array(&inner)?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
