mod cas;
mod chunking;
mod data;
mod hashing;
mod shard;
mod xorb;
