//! Chunk records: the 8-byte chunk header, encoding a chunk, decoding one, and walking the
//! records of a byte range.
//!
//! A xorb's chunk region (and every byte range the CAS hands out) is a sequence of records
//! `header(8) ++ payload(compressed_len)` (SPEC-DIGEST §3.1). Every header is validated as
//! xet-core does: version 0, scheme 0/1/2, `uncompressed_len ≤ 131072`, `compressed_len ≤ 2·131072`,
//! and a header starting with `XETBLOB` is the footer, not a chunk. Decoding appends exactly
//! `uncompressed_len` bytes or fails; it never allocates more than that.

pub use crate::compression::CompressionScheme;
use crate::compression::{
    bg4_lz4_decompress_exact, bg4_split_into, lz4_compress_frame_into, lz4_decompress_frame_exact,
};
use crate::error::XorbError;

/// Largest uncompressed chunk accepted (xet-core `MAX_CHUNK_SIZE`).
pub const MAX_UNCOMPRESSED_LEN: u32 = 131_072;
/// Largest payload accepted in a chunk header (xet-core allows twice the chunk size).
pub const MAX_COMPRESSED_LEN: u32 = 2 * MAX_UNCOMPRESSED_LEN;
/// The footer's identifier; a "chunk header" starting with it marks the end of the chunk region.
pub const FOOTER_IDENT: &[u8; 7] = b"XETBLOB";

/// The 8-byte header before every chunk payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkHeader {
    /// Format version; only 0 exists.
    pub version: u8,
    /// Payload bytes following the header.
    pub compressed_len: u32,
    /// How the payload is stored.
    pub scheme: CompressionScheme,
    /// Bytes the payload decodes to.
    pub uncompressed_len: u32,
}

impl ChunkHeader {
    /// Serialized size.
    pub const SIZE: usize = 8;

    /// A version-0 header.
    pub fn new(scheme: CompressionScheme, compressed_len: u32, uncompressed_len: u32) -> Self {
        Self {
            version: 0,
            compressed_len,
            scheme,
            uncompressed_len,
        }
    }

    /// Parses and validates the header at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<ChunkHeader, XorbError> {
        let Some(h) = bytes.get(..Self::SIZE) else {
            return Err(XorbError::Truncated {
                what: "chunk header",
                needed: Self::SIZE as u64,
                available: bytes.len() as u64,
            });
        };
        if &h[..7] == FOOTER_IDENT {
            return Err(XorbError::UnexpectedFooter);
        }
        if h[0] != 0 {
            return Err(XorbError::UnsupportedChunkVersion(h[0]));
        }
        let scheme = CompressionScheme::try_from(h[4])?;
        let compressed_len = u32::from_le_bytes([h[1], h[2], h[3], 0]);
        let uncompressed_len = u32::from_le_bytes([h[5], h[6], h[7], 0]);
        if uncompressed_len > MAX_UNCOMPRESSED_LEN {
            return Err(XorbError::UncompressedTooLarge(uncompressed_len));
        }
        if compressed_len > MAX_COMPRESSED_LEN {
            return Err(XorbError::CompressedTooLarge(compressed_len));
        }
        Ok(ChunkHeader {
            version: 0,
            compressed_len,
            scheme,
            uncompressed_len,
        })
    }

    /// Serializes the header. Lengths are 24-bit; larger values (which [`ChunkHeader::parse`]
    /// would never produce) are truncated to their low 24 bits.
    pub fn encode(&self) -> [u8; 8] {
        let c = self.compressed_len.to_le_bytes();
        let u = self.uncompressed_len.to_le_bytes();
        [
            self.version,
            c[0],
            c[1],
            c[2],
            self.scheme as u8,
            u[0],
            u[1],
            u[2],
        ]
    }

    /// Header plus payload length.
    pub fn record_len(&self) -> usize {
        Self::SIZE + self.compressed_len as usize
    }
}

/// Compresses `data` with `scheme` and appends header + payload to `out`; stores it raw (scheme
/// `None`) when compression does not make it strictly smaller, as xet-core does.
///
/// # Panics
/// If `data` is longer than [`MAX_UNCOMPRESSED_LEN`] (callers split data into chunks first;
/// the xorb builder checks this and returns an error).
pub fn encode_chunk(data: &[u8], scheme: CompressionScheme, out: &mut Vec<u8>) -> ChunkHeader {
    assert!(
        data.len() <= MAX_UNCOMPRESSED_LEN as usize,
        "chunk of {} bytes exceeds the {MAX_UNCOMPRESSED_LEN}-byte maximum",
        data.len()
    );
    let start = out.len();
    out.extend_from_slice(&[0u8; ChunkHeader::SIZE]);
    let payload_start = out.len();
    match scheme {
        CompressionScheme::None => {}
        CompressionScheme::Lz4 => lz4_compress_frame_into(data, out),
        CompressionScheme::ByteGrouping4Lz4 => {
            let mut grouped = vec![0u8; data.len()];
            bg4_split_into(data, &mut grouped);
            lz4_compress_frame_into(&grouped, out);
        }
    }
    let compressed = out.len() - payload_start;
    let header = if scheme == CompressionScheme::None || compressed >= data.len() {
        out.truncate(payload_start);
        out.extend_from_slice(data);
        ChunkHeader::new(
            CompressionScheme::None,
            data.len() as u32,
            data.len() as u32,
        )
    } else {
        ChunkHeader::new(scheme, compressed as u32, data.len() as u32)
    };
    out[start..payload_start].copy_from_slice(&header.encode());
    header
}

/// Decodes one payload, appending exactly `header.uncompressed_len` bytes to `out`, or fails
/// (leaving `out` as it was).
pub fn decode_chunk(
    header: &ChunkHeader,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), XorbError> {
    let mut scratch = Vec::new();
    decode_chunk_with_scratch(header, payload, out, &mut scratch)
}

/// [`decode_chunk`] with a caller-kept scratch buffer (used by BG4), so a run of chunks allocates
/// nothing per chunk.
pub fn decode_chunk_with_scratch(
    header: &ChunkHeader,
    payload: &[u8],
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> Result<(), XorbError> {
    if payload.len() != header.compressed_len as usize {
        return Err(XorbError::Truncated {
            what: "chunk payload",
            needed: header.compressed_len as u64,
            available: payload.len() as u64,
        });
    }
    if header.uncompressed_len > MAX_UNCOMPRESSED_LEN {
        return Err(XorbError::UncompressedTooLarge(header.uncompressed_len));
    }
    let expected = header.uncompressed_len as usize;
    let start = out.len();
    let result = match header.scheme {
        CompressionScheme::None => {
            if payload.len() != expected {
                Err(XorbError::LengthMismatch {
                    expected: expected as u64,
                    actual: payload.len() as u64,
                })
            } else {
                out.extend_from_slice(payload);
                Ok(())
            }
        }
        CompressionScheme::Lz4 => {
            out.resize(start + expected, 0);
            lz4_decompress_frame_exact(payload, &mut out[start..])
        }
        CompressionScheme::ByteGrouping4Lz4 => {
            out.resize(start + expected, 0);
            bg4_lz4_decompress_exact(payload, &mut out[start..], scratch)
        }
    };
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// One chunk record inside a byte slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRecord<'a> {
    /// The parsed header.
    pub header: ChunkHeader,
    /// The payload (`header.compressed_len` bytes).
    pub payload: &'a [u8],
    /// Offset of the header in the slice being walked.
    pub offset: usize,
}

impl ChunkRecord<'_> {
    /// Decodes this record, appending its bytes to `out`.
    pub fn decode(&self, out: &mut Vec<u8>) -> Result<(), XorbError> {
        decode_chunk(&self.header, self.payload, out)
    }

    /// Offset just past this record.
    pub fn end(&self) -> usize {
        self.offset + self.header.record_len()
    }
}

/// Iterator over consecutive chunk records of a byte slice. Yields an error (and then stops)
/// for a bad header, a payload running past the end, or the start of a footer.
#[derive(Debug, Clone)]
pub struct ChunkRecords<'a> {
    bytes: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> ChunkRecords<'a> {
    /// Walks `bytes` from the start.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            pos: 0,
            failed: false,
        }
    }

    /// Offset of the next record (equals the slice length once all records were read).
    pub fn position(&self) -> usize {
        self.pos
    }
}

/// Parses the record at `pos` of `bytes`.
pub(crate) fn parse_record(bytes: &[u8], pos: usize) -> Result<ChunkRecord<'_>, XorbError> {
    let rest = bytes.get(pos..).unwrap_or_default();
    let header = ChunkHeader::parse(rest)?;
    let payload = rest
        .get(ChunkHeader::SIZE..header.record_len())
        .ok_or(XorbError::Truncated {
            what: "chunk payload",
            needed: header.compressed_len as u64,
            available: (rest.len() - ChunkHeader::SIZE) as u64,
        })?;
    Ok(ChunkRecord {
        header,
        payload,
        offset: pos,
    })
}

impl<'a> Iterator for ChunkRecords<'a> {
    type Item = Result<ChunkRecord<'a>, XorbError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.bytes.len() {
            return None;
        }
        match parse_record(self.bytes, self.pos) {
            Ok(rec) => {
                self.pos = rec.end();
                Some(Ok(rec))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for ChunkRecords<'_> {}

/// Decodes every record of `bytes` (a fetched byte range: whole records, no footer), appending
/// the data to `out`; returns each chunk's uncompressed length. Reserves the output once.
pub fn decode_records(bytes: &[u8], out: &mut Vec<u8>) -> Result<Vec<u32>, XorbError> {
    let mut lens = Vec::new();
    let mut total = 0usize;
    for rec in ChunkRecords::new(bytes) {
        let rec = rec?;
        lens.push(rec.header.uncompressed_len);
        total += rec.header.uncompressed_len as usize;
    }
    out.reserve(total);
    let mut scratch = Vec::new();
    for rec in ChunkRecords::new(bytes) {
        let rec = rec?;
        decode_chunk_with_scratch(&rec.header, rec.payload, out, &mut scratch)?;
    }
    Ok(lens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_example_from_spec() {
        let h =
            ChunkHeader::parse(&[0x00, 0x30, 0x00, 0x00, 0x02, 0x00, 0x10, 0x00]).expect("valid");
        assert_eq!(
            h,
            ChunkHeader::new(CompressionScheme::ByteGrouping4Lz4, 48, 4096)
        );
        assert_eq!(h.encode(), [0x00, 0x30, 0x00, 0x00, 0x02, 0x00, 0x10, 0x00]);
    }

    #[test]
    fn header_limits() {
        let ok = ChunkHeader::new(
            CompressionScheme::Lz4,
            MAX_COMPRESSED_LEN,
            MAX_UNCOMPRESSED_LEN,
        );
        assert_eq!(ChunkHeader::parse(&ok.encode()).expect("at the limits"), ok);
        let mut b = ok.encode();
        b[0] = 1;
        assert!(matches!(
            ChunkHeader::parse(&b),
            Err(XorbError::UnsupportedChunkVersion(1))
        ));
        let b = ChunkHeader::new(CompressionScheme::Lz4, MAX_COMPRESSED_LEN + 1, 1).encode();
        assert!(matches!(
            ChunkHeader::parse(&b),
            Err(XorbError::CompressedTooLarge(_))
        ));
        let b = ChunkHeader::new(CompressionScheme::Lz4, 1, MAX_UNCOMPRESSED_LEN + 1).encode();
        assert!(matches!(
            ChunkHeader::parse(&b),
            Err(XorbError::UncompressedTooLarge(_))
        ));
        let mut b = ok.encode();
        b[4] = 3;
        assert!(matches!(
            ChunkHeader::parse(&b),
            Err(XorbError::UnknownScheme(3))
        ));
        assert!(matches!(
            ChunkHeader::parse(b"XETBLOB\x01"),
            Err(XorbError::UnexpectedFooter)
        ));
        for n in 0..8 {
            assert!(matches!(
                ChunkHeader::parse(&ok.encode()[..n]),
                Err(XorbError::Truncated { .. })
            ));
        }
    }

    #[test]
    fn encode_falls_back_to_none_when_compression_does_not_shrink() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..1000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        for scheme in [CompressionScheme::Lz4, CompressionScheme::ByteGrouping4Lz4] {
            let mut out = Vec::new();
            let h = encode_chunk(&noise, scheme, &mut out);
            assert_eq!(h.scheme, CompressionScheme::None);
            assert_eq!(&out[8..], &noise[..]);
        }
        let mut out = Vec::new();
        let h = encode_chunk(&[7u8; 5000], CompressionScheme::Lz4, &mut out);
        assert_eq!(h.scheme, CompressionScheme::Lz4);
        assert!(h.compressed_len < 100);
        let mut back = Vec::new();
        decode_records(&out, &mut back).expect("decode");
        assert_eq!(back, vec![7u8; 5000]);
    }

    #[test]
    fn decode_failure_leaves_output_untouched() {
        let mut rec = Vec::new();
        let h = encode_chunk(&[1u8; 4000], CompressionScheme::Lz4, &mut rec);
        let lying = ChunkHeader {
            uncompressed_len: 4001,
            ..h
        };
        let mut out = vec![9u8; 3];
        assert!(decode_chunk(&lying, &rec[8..], &mut out).is_err());
        assert_eq!(out, vec![9u8; 3]);
    }
}
