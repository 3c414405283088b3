//! Test xorbs built with the real `XorbBuilder`, deterministic from a seed.

use std::ops::Range;

use xet::xorb::{SerializedXorb, XorbBuilder};
use xet::MerkleHash;

/// A small deterministic PRNG (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A test xorb: its serialized form and the raw chunks.
pub struct TestXorb {
    pub xorb: SerializedXorb,
    pub chunks: Vec<Vec<u8>>,
}

impl TestXorb {
    pub fn hash(&self) -> MerkleHash {
        self.xorb.hash
    }
    /// The chunk records of chunks `r`, as a CAS URL would return them.
    pub fn bytes(&self, r: Range<u32>) -> &[u8] {
        let (s, e) = self.xorb.chunk_byte_range(r).expect("range inside xorb");
        &self.xorb.data[s as usize..e as usize]
    }
    pub fn hashes(&self, r: Range<u32>) -> Vec<MerkleHash> {
        self.xorb.footer.chunk_hashes[r.start as usize..r.end as usize].to_vec()
    }
    pub fn raw(&self, r: Range<u32>) -> Vec<u8> {
        self.chunks[r.start as usize..r.end as usize].concat()
    }
    pub fn n(&self) -> u32 {
        self.chunks.len() as u32
    }
}

/// Builds a xorb of `n` chunks of `size` bytes ±6% each: half-compressible data (runs and
/// random bytes) so both stored and LZ4 records appear.
pub fn make_xorb(seed: u64, n: usize, size: usize) -> TestXorb {
    let mut rng = Rng::new(seed);
    let mut b = XorbBuilder::new();
    let mut chunks = Vec::with_capacity(n);
    for i in 0..n {
        let len = size - size / 16 + (rng.next() as usize % (size / 8).max(1));
        let mut c = Vec::with_capacity(len);
        while c.len() < len {
            let r = rng.next();
            if (i + c.len() / 512) % 2 == 0 {
                c.extend_from_slice(&r.to_le_bytes());
            } else {
                c.extend(std::iter::repeat_n((r & 0xff) as u8, 64));
            }
        }
        c.truncate(len);
        b.add_chunk(&c).expect("chunk fits");
        chunks.push(c);
    }
    TestXorb {
        xorb: b.finish(),
        chunks,
    }
}
