//! Shards (MDB format): which files are made of which xorb chunk ranges, and which chunks each
//! xorb holds (SPEC-DIGEST §4).
//!
//! [`Shard::parse`] reads both forms: the stored/full form (header with `footer_size = 200`,
//! file-info section, xorb-info section, lookup tables, footer) and the upload form (header with
//! `footer_size = 0`, the two sections and nothing else). Every count read from the input is
//! checked against the bytes left before anything is allocated. [`Shard::serialize_upload`] and
//! [`Shard::serialize_full`] write them back the way xet-core does: files and xorbs sorted by
//! hash (compared as four little-endian `u64`s), bookends after each section, lookup tables
//! regenerated from the sections. All records are 48 bytes; integers little-endian; hashes raw.

use crate::xorb::{SerializedXorb, XorbFooter};
use crate::MerkleHash;

/// `"HFRepoMetaData\0"` + 17 magic bytes: the first 32 bytes of every shard.
pub const SHARD_HEADER_TAG: [u8; 32] = [
    0x48, 0x46, 0x52, 0x65, 0x70, 0x6f, 0x4d, 0x65, 0x74, 0x61, 0x44, 0x61, 0x74, 0x61, 0x00, 0x55,
    0x69, 0x67, 0x45, 0x6a, 0x7b, 0x81, 0x57, 0x83, 0xa5, 0xbd, 0xd9, 0x5c, 0xcd, 0xd1, 0x4a, 0xa9,
];
/// Shard header version.
pub const SHARD_HEADER_VERSION: u64 = 2;
/// Shard footer version.
pub const SHARD_FOOTER_VERSION: u64 = 1;
/// Size of the header.
pub const SHARD_HEADER_SIZE: usize = 48;
/// Size of the footer.
pub const SHARD_FOOTER_SIZE: usize = 200;
/// Size of every section record.
pub const RECORD_SIZE: usize = 48;

/// File flag: verification entries follow the data entries.
pub const FILE_FLAG_WITH_VERIFICATION: u32 = 1 << 31;
/// File flag: one metadata-extension record (SHA-256) follows.
pub const FILE_FLAG_WITH_METADATA_EXT: u32 = 1 << 30;

const BOOKEND_HASH: [u8; 32] = [0xFF; 32];

/// Everything that can be wrong with a shard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// Fewer bytes than a structure needs.
    #[error("truncated {what}: need {needed} bytes, {available} available")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        available: u64,
    },
    /// The first 32 bytes are not the shard tag.
    #[error("not a shard (bad header tag)")]
    BadTag,
    /// A header or footer version we do not know.
    #[error("unsupported shard {what} version {version}")]
    UnsupportedVersion {
        /// Header or footer.
        what: &'static str,
        /// The version found.
        version: u64,
    },
    /// A file header with flag bits we do not know (their layout is unknown).
    #[error("unknown file flags {0:#010x}")]
    UnknownFileFlags(u32),
    /// A malformed footer or lookup table.
    #[error("bad shard footer: {0}")]
    BadFooter(String),
    /// Bytes left after the last structure.
    #[error("{0} unexpected trailing bytes")]
    TrailingBytes(u64),
}

/// One term of a file: chunks `[chunk_index_start, chunk_index_end)` of a xorb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileDataSequenceEntry {
    /// The xorb.
    pub xorb_hash: MerkleHash,
    /// Flags (0 in practice).
    pub xorb_flags: u32,
    /// Uncompressed bytes of the term.
    pub unpacked_segment_bytes: u32,
    /// First chunk.
    pub chunk_index_start: u32,
    /// One past the last chunk.
    pub chunk_index_end: u32,
}

/// A file: its hash and terms, optionally a verification hash per term and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileInfo {
    /// The Xet file hash.
    pub file_hash: MerkleHash,
    /// Terms, in file order.
    pub entries: Vec<FileDataSequenceEntry>,
    /// One range hash per term (same order), when present.
    pub verification: Option<Vec<MerkleHash>>,
    /// The file's SHA-256 as the plain digest (stored group-reversed; see SPEC §4).
    pub sha256: Option<[u8; 32]>,
}

impl FileInfo {
    /// The file size (sum of the terms' uncompressed bytes).
    pub fn size(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| e.unpacked_segment_bytes as u64)
            .sum()
    }

    fn num_records(&self) -> usize {
        1 + self.entries.len()
            + self.verification.as_ref().map_or(0, Vec::len)
            + usize::from(self.sha256.is_some())
    }
}

/// One chunk of a xorb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct XorbChunkEntry {
    /// The chunk hash (keyed with the footer's HMAC key in global-dedup responses).
    pub chunk_hash: MerkleHash,
    /// Uncompressed offset of the chunk in the xorb.
    pub chunk_byte_range_start: u32,
    /// Uncompressed length.
    pub unpacked_segment_bytes: u32,
    /// Flags (bit 31: global-dedup eligible; xet-core writes 0).
    pub flags: u32,
}

/// A xorb and its chunks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct XorbInfo {
    /// The xorb hash.
    pub xorb_hash: MerkleHash,
    /// Its chunks, in order.
    pub chunks: Vec<XorbChunkEntry>,
    /// Total uncompressed bytes.
    pub num_bytes_in_xorb: u32,
    /// Serialized bytes (xet-core clients write 0).
    pub num_bytes_on_disk: u32,
}

impl XorbInfo {
    /// Describes a xorb from its footer; `num_bytes_on_disk` is written as given.
    pub fn from_footer(footer: &XorbFooter, num_bytes_on_disk: u32) -> Self {
        let mut start = 0u32;
        let chunks = footer
            .chunk_hashes
            .iter()
            .zip(&footer.unpacked_chunk_offsets)
            .map(|(h, &end)| {
                let e = XorbChunkEntry {
                    chunk_hash: *h,
                    chunk_byte_range_start: start,
                    unpacked_segment_bytes: end.wrapping_sub(start),
                    flags: 0,
                };
                start = end;
                e
            })
            .collect();
        XorbInfo {
            xorb_hash: footer.xorb_hash,
            chunks,
            num_bytes_in_xorb: start,
            num_bytes_on_disk,
        }
    }
}

impl From<&SerializedXorb> for XorbInfo {
    /// As xet-core's client does: `num_bytes_on_disk` = 0.
    fn from(x: &SerializedXorb) -> Self {
        XorbInfo::from_footer(&x.footer, 0)
    }
}

/// The 200-byte footer of a stored shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShardFooter {
    /// Footer version (1).
    pub version: u64,
    /// Offset of the file-info section (48).
    pub file_info_offset: u64,
    /// Offset of the xorb-info section.
    pub xorb_info_offset: u64,
    /// Offset of the file lookup table.
    pub file_lookup_offset: u64,
    /// Entries in the file lookup table.
    pub file_lookup_num_entry: u64,
    /// Offset of the xorb lookup table.
    pub xorb_lookup_offset: u64,
    /// Entries in the xorb lookup table.
    pub xorb_lookup_num_entry: u64,
    /// Offset of the chunk lookup table.
    pub chunk_lookup_offset: u64,
    /// Entries in the chunk lookup table.
    pub chunk_lookup_num_entry: u64,
    /// Key for the chunk hashes (global-dedup responses); zero otherwise.
    pub chunk_hash_hmac_key: [u8; 32],
    /// Creation time, seconds since the epoch.
    pub shard_creation_timestamp: u64,
    /// When the HMAC key expires (`u64::MAX` by default).
    pub shard_key_expiry: u64,
    /// Σ xorbs' `num_bytes_on_disk`.
    pub stored_bytes_on_disk: u64,
    /// Σ file sizes.
    pub materialized_bytes: u64,
    /// Σ xorbs' `num_bytes_in_xorb`.
    pub stored_bytes: u64,
    /// Offset of this footer.
    pub footer_offset: u64,
}

impl ShardFooter {
    /// The parts of this footer that [`Shard::serialize_full`] takes as input.
    pub fn meta(&self) -> ShardMeta {
        ShardMeta {
            chunk_hash_hmac_key: self.chunk_hash_hmac_key,
            shard_creation_timestamp: self.shard_creation_timestamp,
            shard_key_expiry: self.shard_key_expiry,
        }
    }
}

/// The parts of a full shard's footer that are not derived from its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShardMeta {
    /// Key for the chunk hashes; zero for ordinary shards.
    pub chunk_hash_hmac_key: [u8; 32],
    /// Creation time, seconds since the epoch.
    pub shard_creation_timestamp: u64,
    /// When the HMAC key expires.
    pub shard_key_expiry: u64,
}

impl Default for ShardMeta {
    fn default() -> Self {
        Self {
            chunk_hash_hmac_key: [0; 32],
            shard_creation_timestamp: 0,
            shard_key_expiry: u64::MAX,
        }
    }
}

/// A parsed shard.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Shard {
    /// File-info section.
    pub files: Vec<FileInfo>,
    /// Xorb-info section.
    pub xorbs: Vec<XorbInfo>,
    /// Footer, for the full form; `None` for the upload form.
    pub footer: Option<ShardFooter>,
}

/// Bounds-checked little-endian reader.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ShardError> {
        self.need(n, what)?;
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    /// The entries of a section up to its bookend record: `item` parses each entry from its
    /// header record (`header` names it in errors) and the records that follow it.
    fn section<T>(
        &mut self,
        header: &'static str,
        mut item: impl FnMut(&mut Self, &'a [u8]) -> Result<T, ShardError>,
    ) -> Result<Vec<T>, ShardError> {
        let mut out = Vec::new();
        loop {
            let h = self.take(RECORD_SIZE, header)?;
            if h[..32] == BOOKEND_HASH {
                return Ok(out);
            }
            out.push(item(self, h)?);
        }
    }
    /// `n` consecutive records, each parsed by `parse`; checks that all are present (`what`
    /// names them in the error) before allocating for them.
    fn records<T>(
        &mut self,
        n: usize,
        what: &'static str,
        parse: impl Fn(&'a [u8]) -> T,
    ) -> Result<Vec<T>, ShardError> {
        self.need(n.saturating_mul(RECORD_SIZE), what)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(parse(self.take(RECORD_SIZE, what)?));
        }
        Ok(out)
    }
    fn need(&self, n: usize, what: &'static str) -> Result<(), ShardError> {
        if n > self.remaining() {
            return Err(ShardError::Truncated {
                what,
                needed: n as u64,
                available: self.remaining() as u64,
            });
        }
        Ok(())
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn hash_at(b: &[u8], at: usize) -> MerkleHash {
    let mut a = [0u8; 32];
    a.copy_from_slice(&b[at..at + 32]);
    MerkleHash::from_bytes(a)
}

/// Reverses the bytes of each 8-byte group (SHA-256 as stored in a shard and back).
fn reverse_groups(raw: [u8; 32]) -> [u8; 32] {
    let mut out = raw;
    for g in out.chunks_exact_mut(8) {
        g.reverse();
    }
    out
}

/// The order xet-core keeps hashes in (its `MerkleHash` compares as four `u64`s).
fn sort_key(h: &MerkleHash) -> [u64; 4] {
    [
        h.u64_group(0),
        h.u64_group(1),
        h.u64_group(2),
        h.u64_group(3),
    ]
}

fn truncated(h: &MerkleHash) -> u64 {
    h.u64_group(0)
}

impl Shard {
    /// Parses a shard in the full or the upload form.
    pub fn parse(bytes: &[u8]) -> Result<Shard, ShardError> {
        let mut r = Reader { bytes, pos: 0 };
        let header = r.take(SHARD_HEADER_SIZE, "shard header")?;
        if header[..32] != SHARD_HEADER_TAG {
            return Err(ShardError::BadTag);
        }
        let version = u64_at(header, 32);
        if version != SHARD_HEADER_VERSION {
            return Err(ShardError::UnsupportedVersion {
                what: "header",
                version,
            });
        }
        let footer_size = u64_at(header, 40);
        if footer_size != 0 && footer_size != SHARD_FOOTER_SIZE as u64 {
            return Err(ShardError::BadFooter(format!("footer size {footer_size}")));
        }
        let files = parse_file_section(&mut r)?;
        let xorb_info_offset = r.pos as u64;
        let xorbs = parse_xorb_section(&mut r)?;
        let sections_end = r.pos as u64;
        let footer = if footer_size == 0 {
            if r.remaining() != 0 {
                return Err(ShardError::TrailingBytes(r.remaining() as u64));
            }
            None
        } else {
            let footer = parse_footer(bytes)?;
            let shard = Shard {
                files,
                xorbs,
                footer: None,
            };
            check_footer(&shard, &footer, bytes, xorb_info_offset, sections_end)?;
            return Ok(Shard {
                footer: Some(footer),
                ..shard
            });
        };
        Ok(Shard {
            files,
            xorbs,
            footer,
        })
    }

    /// Files sorted as xet-core writes them.
    fn sorted_files(&self) -> Vec<&FileInfo> {
        let mut v: Vec<&FileInfo> = self.files.iter().collect();
        v.sort_by_key(|f| sort_key(&f.file_hash));
        v
    }

    /// Xorbs sorted as xet-core writes them.
    fn sorted_xorbs(&self) -> Vec<&XorbInfo> {
        let mut v: Vec<&XorbInfo> = self.xorbs.iter().collect();
        v.sort_by_key(|x| sort_key(&x.xorb_hash));
        v
    }

    fn write_header(out: &mut Vec<u8>, footer_size: u64) {
        out.extend_from_slice(&SHARD_HEADER_TAG);
        out.extend_from_slice(&SHARD_HEADER_VERSION.to_le_bytes());
        out.extend_from_slice(&footer_size.to_le_bytes());
    }

    fn write_bookend(out: &mut Vec<u8>) {
        out.extend_from_slice(&BOOKEND_HASH);
        out.extend_from_slice(&[0u8; 16]);
    }

    /// Writes both sections; returns the xorb-info offset.
    fn write_sections(&self, out: &mut Vec<u8>) -> u64 {
        for f in self.sorted_files() {
            let n = f.entries.len() as u32;
            let mut flags = 0;
            if f.verification.is_some() {
                flags |= FILE_FLAG_WITH_VERIFICATION;
            }
            if f.sha256.is_some() {
                flags |= FILE_FLAG_WITH_METADATA_EXT;
            }
            out.extend_from_slice(f.file_hash.as_bytes());
            out.extend_from_slice(&flags.to_le_bytes());
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(&[0u8; 8]);
            for e in &f.entries {
                out.extend_from_slice(e.xorb_hash.as_bytes());
                out.extend_from_slice(&e.xorb_flags.to_le_bytes());
                out.extend_from_slice(&e.unpacked_segment_bytes.to_le_bytes());
                out.extend_from_slice(&e.chunk_index_start.to_le_bytes());
                out.extend_from_slice(&e.chunk_index_end.to_le_bytes());
            }
            if let Some(v) = &f.verification {
                // One per entry; a shorter list is padded with zero hashes, a longer one cut,
                // so the file stays parseable (its flag promises `num_entries` records).
                for i in 0..f.entries.len() {
                    let h = v.get(i).copied().unwrap_or_default();
                    out.extend_from_slice(h.as_bytes());
                    out.extend_from_slice(&[0u8; 16]);
                }
            }
            if let Some(sha) = f.sha256 {
                out.extend_from_slice(&reverse_groups(sha));
                out.extend_from_slice(&[0u8; 16]);
            }
        }
        Self::write_bookend(out);
        let xorb_info_offset = out.len() as u64;
        for x in self.sorted_xorbs() {
            out.extend_from_slice(x.xorb_hash.as_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&(x.chunks.len() as u32).to_le_bytes());
            out.extend_from_slice(&x.num_bytes_in_xorb.to_le_bytes());
            out.extend_from_slice(&x.num_bytes_on_disk.to_le_bytes());
            for c in &x.chunks {
                out.extend_from_slice(c.chunk_hash.as_bytes());
                out.extend_from_slice(&c.chunk_byte_range_start.to_le_bytes());
                out.extend_from_slice(&c.unpacked_segment_bytes.to_le_bytes());
                out.extend_from_slice(&c.flags.to_le_bytes());
                out.extend_from_slice(&0u32.to_le_bytes());
            }
        }
        Self::write_bookend(out);
        xorb_info_offset
    }

    /// The upload form (`POST /v1/shards`): header with `footer_size = 0`, the file-info and
    /// xorb-info sections with their bookends, nothing else.
    pub fn serialize_upload(&self) -> Vec<u8> {
        let mut out = Vec::new();
        Self::write_header(&mut out, 0);
        self.write_sections(&mut out);
        out
    }

    /// The full (stored) form with lookup tables and footer. Counts, offsets and byte totals are
    /// derived from the contents; `meta` gives the rest.
    pub fn serialize_full(&self, meta: &ShardMeta) -> Vec<u8> {
        let mut out = Vec::new();
        Self::write_header(&mut out, SHARD_FOOTER_SIZE as u64);
        let xorb_info_offset = self.write_sections(&mut out);

        let file_lookup_offset = out.len() as u64;
        let mut index = 0u32;
        let files = self.sorted_files();
        for f in &files {
            out.extend_from_slice(&truncated(&f.file_hash).to_le_bytes());
            out.extend_from_slice(&index.to_le_bytes());
            index += f.num_records() as u32;
        }
        let xorb_lookup_offset = out.len() as u64;
        let mut chunk_lookup: Vec<(u64, u32, u32)> = Vec::new();
        let mut index = 0u32;
        let xorbs = self.sorted_xorbs();
        for x in &xorbs {
            out.extend_from_slice(&truncated(&x.xorb_hash).to_le_bytes());
            out.extend_from_slice(&index.to_le_bytes());
            for (i, c) in x.chunks.iter().enumerate() {
                chunk_lookup.push((truncated(&c.chunk_hash), index, i as u32));
            }
            index += 1 + x.chunks.len() as u32;
        }
        let chunk_lookup_offset = out.len() as u64;
        chunk_lookup.sort_by_key(|&(k, _, _)| k);
        for (k, xi, ci) in &chunk_lookup {
            out.extend_from_slice(&k.to_le_bytes());
            out.extend_from_slice(&xi.to_le_bytes());
            out.extend_from_slice(&ci.to_le_bytes());
        }
        let footer = ShardFooter {
            version: SHARD_FOOTER_VERSION,
            file_info_offset: SHARD_HEADER_SIZE as u64,
            xorb_info_offset,
            file_lookup_offset,
            file_lookup_num_entry: files.len() as u64,
            xorb_lookup_offset,
            xorb_lookup_num_entry: xorbs.len() as u64,
            chunk_lookup_offset,
            chunk_lookup_num_entry: chunk_lookup.len() as u64,
            chunk_hash_hmac_key: meta.chunk_hash_hmac_key,
            shard_creation_timestamp: meta.shard_creation_timestamp,
            shard_key_expiry: meta.shard_key_expiry,
            stored_bytes_on_disk: self.xorbs.iter().map(|x| x.num_bytes_on_disk as u64).sum(),
            materialized_bytes: self.files.iter().map(FileInfo::size).sum(),
            stored_bytes: self.xorbs.iter().map(|x| x.num_bytes_in_xorb as u64).sum(),
            footer_offset: out.len() as u64,
        };
        write_footer(&mut out, &footer);
        out
    }
}

fn parse_file_section(r: &mut Reader<'_>) -> Result<Vec<FileInfo>, ShardError> {
    r.section("file info header", |r, h| {
        let file_hash = hash_at(h, 0);
        let flags = u32_at(h, 32);
        let n = u32_at(h, 36) as usize;
        if flags & !(FILE_FLAG_WITH_VERIFICATION | FILE_FLAG_WITH_METADATA_EXT) != 0 {
            return Err(ShardError::UnknownFileFlags(flags));
        }
        let with_verification = flags & FILE_FLAG_WITH_VERIFICATION != 0;
        let with_ext = flags & FILE_FLAG_WITH_METADATA_EXT != 0;
        // All records of this file must be present before allocating for them.
        let records = n
            .saturating_mul(1 + usize::from(with_verification))
            .saturating_add(usize::from(with_ext));
        r.need(records.saturating_mul(RECORD_SIZE), "file info entries")?;
        let entries = r.records(n, "file data entry", |e| FileDataSequenceEntry {
            xorb_hash: hash_at(e, 0),
            xorb_flags: u32_at(e, 32),
            unpacked_segment_bytes: u32_at(e, 36),
            chunk_index_start: u32_at(e, 40),
            chunk_index_end: u32_at(e, 44),
        })?;
        let verification = if with_verification {
            Some(r.records(n, "verification entry", |e| hash_at(e, 0))?)
        } else {
            None
        };
        let sha256 = if with_ext {
            let e = r.take(RECORD_SIZE, "metadata ext")?;
            let mut raw = [0u8; 32];
            raw.copy_from_slice(&e[..32]);
            Some(reverse_groups(raw))
        } else {
            None
        };
        Ok(FileInfo {
            file_hash,
            entries,
            verification,
            sha256,
        })
    })
}

fn parse_xorb_section(r: &mut Reader<'_>) -> Result<Vec<XorbInfo>, ShardError> {
    r.section("xorb info header", |r, h| {
        let n = u32_at(h, 36) as usize;
        let chunks = r.records(n, "xorb chunk entries", |c| XorbChunkEntry {
            chunk_hash: hash_at(c, 0),
            chunk_byte_range_start: u32_at(c, 32),
            unpacked_segment_bytes: u32_at(c, 36),
            flags: u32_at(c, 40),
        })?;
        Ok(XorbInfo {
            xorb_hash: hash_at(h, 0),
            chunks,
            num_bytes_in_xorb: u32_at(h, 40),
            num_bytes_on_disk: u32_at(h, 44),
        })
    })
}

fn parse_footer(bytes: &[u8]) -> Result<ShardFooter, ShardError> {
    let start = bytes
        .len()
        .checked_sub(SHARD_FOOTER_SIZE)
        .ok_or(ShardError::Truncated {
            what: "shard footer",
            needed: SHARD_FOOTER_SIZE as u64,
            available: bytes.len() as u64,
        })?;
    let f = &bytes[start..];
    let u = |i: usize| u64_at(f, 8 * i);
    let version = u(0);
    if version != SHARD_FOOTER_VERSION {
        return Err(ShardError::UnsupportedVersion {
            what: "footer",
            version,
        });
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&f[72..104]);
    // After the key: timestamp, expiry, 6 reserved, on-disk, materialized, stored, footer offset.
    let v = |i: usize| u64_at(f, 104 + 8 * i);
    Ok(ShardFooter {
        version,
        file_info_offset: u(1),
        xorb_info_offset: u(2),
        file_lookup_offset: u(3),
        file_lookup_num_entry: u(4),
        xorb_lookup_offset: u(5),
        xorb_lookup_num_entry: u(6),
        chunk_lookup_offset: u(7),
        chunk_lookup_num_entry: u(8),
        chunk_hash_hmac_key: key,
        shard_creation_timestamp: v(0),
        shard_key_expiry: v(1),
        stored_bytes_on_disk: v(8),
        materialized_bytes: v(9),
        stored_bytes: v(10),
        footer_offset: v(11),
    })
}

fn write_footer(out: &mut Vec<u8>, f: &ShardFooter) {
    for v in [
        f.version,
        f.file_info_offset,
        f.xorb_info_offset,
        f.file_lookup_offset,
        f.file_lookup_num_entry,
        f.xorb_lookup_offset,
        f.xorb_lookup_num_entry,
        f.chunk_lookup_offset,
        f.chunk_lookup_num_entry,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&f.chunk_hash_hmac_key);
    out.extend_from_slice(&f.shard_creation_timestamp.to_le_bytes());
    out.extend_from_slice(&f.shard_key_expiry.to_le_bytes());
    out.extend_from_slice(&[0u8; 48]);
    for v in [
        f.stored_bytes_on_disk,
        f.materialized_bytes,
        f.stored_bytes,
        f.footer_offset,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Checks the footer's layout against the sections actually parsed: offsets in order and
/// contiguous, table sizes matching the counts and the contents.
fn check_footer(
    shard: &Shard,
    f: &ShardFooter,
    bytes: &[u8],
    xorb_info_offset: u64,
    sections_end: u64,
) -> Result<(), ShardError> {
    let footer_offset = (bytes.len() - SHARD_FOOTER_SIZE) as u64;
    let bad = |m: &str| Err(ShardError::BadFooter(m.to_string()));
    if f.footer_offset != footer_offset {
        return bad("footer_offset does not point at the footer");
    }
    if f.file_info_offset != SHARD_HEADER_SIZE as u64 || f.xorb_info_offset != xorb_info_offset {
        return bad("section offsets disagree with the sections");
    }
    if f.file_lookup_offset != sections_end {
        return bad("file lookup table does not follow the sections");
    }
    let n_chunks: usize = shard.xorbs.iter().map(|x| x.chunks.len()).sum();
    if f.file_lookup_num_entry != shard.files.len() as u64
        || f.xorb_lookup_num_entry != shard.xorbs.len() as u64
        || f.chunk_lookup_num_entry != n_chunks as u64
    {
        return bad("lookup table counts disagree with the sections");
    }
    // Counts are bounded by the sections (each entry is one 48-byte record), so these products
    // cannot overflow.
    if f.xorb_lookup_offset != f.file_lookup_offset + 12 * f.file_lookup_num_entry
        || f.chunk_lookup_offset != f.xorb_lookup_offset + 12 * f.xorb_lookup_num_entry
        || footer_offset != f.chunk_lookup_offset + 16 * f.chunk_lookup_num_entry
    {
        return bad("lookup table offsets are not contiguous");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(b: u8) -> MerkleHash {
        MerkleHash::from_bytes([b; 32])
    }

    fn sample() -> Shard {
        Shard {
            files: vec![FileInfo {
                file_hash: h(1),
                entries: vec![FileDataSequenceEntry {
                    xorb_hash: h(2),
                    xorb_flags: 0,
                    unpacked_segment_bytes: 100,
                    chunk_index_start: 0,
                    chunk_index_end: 2,
                }],
                verification: Some(vec![h(3)]),
                sha256: Some([4; 32]),
            }],
            xorbs: vec![XorbInfo {
                xorb_hash: h(2),
                chunks: vec![
                    XorbChunkEntry {
                        chunk_hash: h(5),
                        chunk_byte_range_start: 0,
                        unpacked_segment_bytes: 60,
                        flags: 0,
                    },
                    XorbChunkEntry {
                        chunk_hash: h(6),
                        chunk_byte_range_start: 60,
                        unpacked_segment_bytes: 40,
                        flags: 0,
                    },
                ],
                num_bytes_in_xorb: 100,
                num_bytes_on_disk: 0,
            }],
            footer: None,
        }
    }

    #[test]
    fn upload_and_full_round_trip() {
        let s = sample();
        let up = s.serialize_upload();
        assert_eq!(Shard::parse(&up).expect("upload form"), s);
        let full = s.serialize_full(&ShardMeta::default());
        let parsed = Shard::parse(&full).expect("full form");
        assert_eq!(parsed.files, s.files);
        assert_eq!(parsed.xorbs, s.xorbs);
        assert_eq!(parsed.serialize_full(&ShardMeta::default()), full);
        assert_eq!(parsed.footer.expect("footer").materialized_bytes, 100);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let s = sample();
        for bytes in [
            s.serialize_upload(),
            s.serialize_full(&ShardMeta::default()),
        ] {
            for cut in 0..bytes.len() {
                assert!(Shard::parse(&bytes[..cut]).is_err(), "cut at {cut}");
            }
        }
    }

    #[test]
    fn huge_counts_are_rejected_before_allocating() {
        let mut bytes = sample().serialize_upload();
        // num_entries of the first file header.
        bytes[48 + 36..48 + 40].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Shard::parse(&bytes),
            Err(ShardError::Truncated { .. })
        ));
    }
}
