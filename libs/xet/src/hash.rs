//! Xet hashes: the 32-byte BLAKE3 keyed digests of chunks, xorbs and files, their "API hex"
//! string form, and the aggregated Merkle tree that turns a list of chunk hashes into a xorb
//! hash or a file hash (SPEC-DIGEST §2).

use std::fmt;
use std::str::FromStr;

/// Key of the chunk hash: `chunk_hash = blake3_keyed(DATA_KEY, chunk_bytes)`.
pub const DATA_KEY: [u8; 32] =
    hex32("6697f5775b9550de3135cbaca597181c9de421109beb2b58b4d0b04b93adf229");
/// Key of the Merkle tree's internal nodes.
pub const INTERNAL_NODE_KEY: [u8; 32] =
    hex32("017ec5c7a5472996fd946666b48a02e65ddd536f37c76dd2f86352e64a53713f");
/// Key of the term verification (range) hash.
pub const VERIFICATION_KEY: [u8; 32] =
    hex32("7f1857d6ce56ed66127ff913e7a5c3f3a4cd26d5b5db49e64124987f28fb94c3");
/// Key of the file hash (a salt of zeros).
pub const FILE_HASH_KEY: [u8; 32] = [0; 32];

/// Largest group the aggregated Merkle tree forms (`2 * 4 + 1`).
const MAX_GROUP: usize = 9;
/// Mean branching factor of the aggregated Merkle tree.
const MEAN_BRANCHING: u64 = 4;

const fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => panic!("bad hex digit in constant"),
    }
}

const fn hex32(s: &str) -> [u8; 32] {
    let b = s.as_bytes();
    assert!(b.len() == 64);
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (hex_val(b[2 * i]) << 4) | hex_val(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// A 32-byte Xet digest (chunk, xorb, file or verification hash), stored as its raw bytes.
///
/// `Display`, `FromStr` and serde use the API hex form: each 8-byte group read as a
/// little-endian `u64` and printed as 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MerkleHash([u8; 32]);

/// A string that is not a 64-digit API hex hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("a hash is 64 hex digits, got {0} characters")]
    Length(usize),
    #[error("invalid hex digit {0:?} in hash")]
    Digit(char),
}

impl MerkleHash {
    /// The all-zero hash (the hash of an empty file or an empty list).
    pub const ZERO: MerkleHash = MerkleHash([0; 32]);

    pub const fn from_bytes(raw: [u8; 32]) -> Self {
        MerkleHash(raw)
    }

    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub const fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    /// Raw bytes `8*i..8*i+8` as a little-endian u64 (the API hex group `i`).
    pub fn u64_group(&self, i: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[8 * i..8 * i + 8]);
        u64::from_le_bytes(b)
    }

    /// Builds a hash from its four API hex groups.
    pub fn from_u64_groups(groups: [u64; 4]) -> Self {
        let mut raw = [0u8; 32];
        for (i, g) in groups.iter().enumerate() {
            raw[8 * i..8 * i + 8].copy_from_slice(&g.to_le_bytes());
        }
        MerkleHash(raw)
    }

    /// The API hex form (64 lowercase digits).
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        self.write_hex(&mut s);
        s
    }

    fn write_hex(&self, out: &mut String) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for group in 0..4 {
            for i in (0..8).rev() {
                let byte = self.0[group * 8 + i];
                out.push(DIGITS[(byte >> 4) as usize] as char);
                out.push(DIGITS[(byte & 15) as usize] as char);
            }
        }
    }

    /// Parses the API hex form. Upper- and lowercase digits are accepted.
    pub fn from_hex(s: &str) -> Result<Self, HexError> {
        let b = s.as_bytes();
        if b.len() != 64 {
            return Err(HexError::Length(s.chars().count()));
        }
        let mut raw = [0u8; 32];
        for group in 0..4 {
            for i in 0..8 {
                let pos = group * 16 + 2 * (7 - i);
                let hi = digit(b[pos])?;
                let lo = digit(b[pos + 1])?;
                raw[group * 8 + i] = (hi << 4) | lo;
            }
        }
        Ok(MerkleHash(raw))
    }

    /// The plain byte-order hex of the raw digest (not the API form; for debugging and vectors).
    pub fn to_raw_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

fn digit(c: u8) -> Result<u8, HexError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(HexError::Digit(c as char)),
    }
}

impl fmt::Display for MerkleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(64);
        self.write_hex(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for MerkleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MerkleHash({self})")
    }
}

impl FromStr for MerkleHash {
    type Err = HexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MerkleHash::from_hex(s)
    }
}

impl From<[u8; 32]> for MerkleHash {
    fn from(raw: [u8; 32]) -> Self {
        MerkleHash(raw)
    }
}

impl serde::Serialize for MerkleHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for MerkleHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = MerkleHash;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 64-digit hex Xet hash")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MerkleHash, E> {
                MerkleHash::from_hex(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// `blake3_keyed(key, data)` as a [`MerkleHash`].
pub fn keyed_hash(key: &[u8; 32], data: &[u8]) -> MerkleHash {
    MerkleHash(*blake3::keyed_hash(key, data).as_bytes())
}

/// The hash of one chunk's uncompressed bytes.
pub fn chunk_hash(data: &[u8]) -> MerkleHash {
    keyed_hash(&DATA_KEY, data)
}

/// Where the next group of the aggregated tree ends (a count in `1..=9`).
fn next_merge_cut(nodes: &[(MerkleHash, u64)]) -> usize {
    if nodes.len() <= 2 {
        return nodes.len();
    }
    let end = nodes.len().min(MAX_GROUP);
    for (j, node) in nodes.iter().enumerate().take(end).skip(2) {
        if node.0.u64_group(3) % MEAN_BRANCHING == 0 {
            return j + 1;
        }
    }
    end
}

/// Hashes one group of nodes into its parent: keyed BLAKE3 over `"<hex> : <size>\n"` lines.
fn merge(group: &[(MerkleHash, u64)], text: &mut String) -> (MerkleHash, u64) {
    use std::fmt::Write;
    text.clear();
    let mut total = 0u64;
    for (h, size) in group {
        h.write_hex(text);
        // Writing to a String cannot fail.
        let _ = writeln!(text, " : {size}");
        total = total.wrapping_add(*size);
    }
    (keyed_hash(&INTERNAL_NODE_KEY, text.as_bytes()), total)
}

/// The root of the aggregated Merkle tree over `(hash, uncompressed size)` leaves.
///
/// An empty list gives [`MerkleHash::ZERO`]; a single leaf is its own root.
pub fn merkle_root(leaves: &[(MerkleHash, u64)]) -> MerkleHash {
    match leaves.len() {
        0 => return MerkleHash::ZERO,
        1 => return leaves[0].0,
        _ => {}
    }
    let mut text = String::with_capacity(MAX_GROUP * 80);
    let mut level: Vec<(MerkleHash, u64)> = Vec::with_capacity(leaves.len() / 2 + 1);
    let mut i = 0;
    while i < leaves.len() {
        let cut = next_merge_cut(&leaves[i..]);
        level.push(merge(&leaves[i..i + cut], &mut text));
        i += cut;
    }
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len() / 2 + 1);
        let mut i = 0;
        while i < level.len() {
            let cut = next_merge_cut(&level[i..]);
            next.push(merge(&level[i..i + cut], &mut text));
            i += cut;
        }
        level = next;
    }
    level[0].0
}

/// The xorb hash: the Merkle root of the xorb's chunks in xorb order.
pub fn xorb_hash(chunks: &[(MerkleHash, u64)]) -> MerkleHash {
    merkle_root(chunks)
}

/// The Xet file hash (file id) of a file made of `chunks` in file order.
///
/// An empty file hashes to [`MerkleHash::ZERO`] (no keyed step), as xet-core does.
pub fn file_hash(chunks: &[(MerkleHash, u64)]) -> MerkleHash {
    file_hash_with_salt(chunks, &FILE_HASH_KEY)
}

/// The file hash with a salt other than zeros (xet-core's tests use it).
pub fn file_hash_with_salt(chunks: &[(MerkleHash, u64)], salt: &[u8; 32]) -> MerkleHash {
    if chunks.is_empty() {
        return MerkleHash::ZERO;
    }
    let root = merkle_root(chunks);
    keyed_hash(salt, root.as_bytes())
}

/// The term verification hash of a run of chunk hashes (raw bytes concatenated, keyed).
pub fn range_hash(chunk_hashes: &[MerkleHash]) -> MerkleHash {
    let mut hasher = blake3::Hasher::new_keyed(&VERIFICATION_KEY);
    for h in chunk_hashes {
        hasher.update(h.as_bytes());
    }
    MerkleHash(*hasher.finalize().as_bytes())
}

/// One chunk in this many (by hash) may be used for a global dedup query.
pub const GLOBAL_DEDUP_MODULUS: u64 = 1024;

/// Whether a chunk may be used for a global dedup query: the first chunk of a file, or a chunk
/// whose `u64_le(raw[24..32]) % 1024 == 0` (xet-core `metadata_shard/constants.rs`).
pub fn is_global_dedup_eligible(hash: &MerkleHash, is_first_chunk: bool) -> bool {
    is_first_chunk || hash.u64_group(3) % GLOBAL_DEDUP_MODULUS == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_world_chunk_hash() {
        let h = chunk_hash(b"Hello World!");
        assert_eq!(
            h.to_raw_hex(),
            "a29cfb08e608d4d8726dd8659a90b9134b3240d5d8e42d5fcb28e2a6e763a3e8"
        );
        assert_eq!(
            h.to_hex(),
            "d8d408e608fb9ca213b9909a65d86d725f2de4d8d540324be8a363e7a6e228cb"
        );
        assert_eq!(MerkleHash::from_hex(&h.to_hex()), Ok(h));
    }

    #[test]
    fn hex_rejects_bad_input() {
        assert_eq!(MerkleHash::from_hex("00"), Err(HexError::Length(2)));
        let bad = "g".repeat(64);
        assert_eq!(MerkleHash::from_hex(&bad), Err(HexError::Digit('g')));
        let upper = "D8D408E608FB9CA213B9909A65D86D725F2DE4D8D540324BE8A363E7A6E228CB";
        assert_eq!(
            MerkleHash::from_hex(upper).map(|h| h.to_hex()),
            Ok(upper.to_lowercase())
        );
    }

    #[test]
    fn internal_node_example() {
        let a = MerkleHash::from_hex(
            "c28f58387a60d4aa200c311cda7c7f77f686614864f5869eadebf765d0a14a69",
        )
        .expect("valid hex");
        let b = MerkleHash::from_hex(
            "6e4e3263e073ce2c0e78cc770c361e2778db3b054b98ab65e277fc084fa70f22",
        )
        .expect("valid hex");
        let root = merkle_root(&[(a, 100), (b, 200)]);
        assert_eq!(
            root.to_hex(),
            "be64c7003ccd3cf4357364750e04c9592b3c36705dee76a71590c011766b6c14"
        );
    }

    #[test]
    fn empty_and_single() {
        assert_eq!(file_hash(&[]), MerkleHash::ZERO);
        let h = chunk_hash(b"x");
        assert_eq!(xorb_hash(&[(h, 1)]), h);
    }
}
