//! `xorbstore`: the verified on-disk store of xorb chunk ranges, shared by `zest-edge` and
//! `zest seed`/`zest pull`.
//!
//! A stored range is the serialized chunk records of chunks `[start, end)` of one xorb, exactly
//! the bytes a CAS xorb URL returns for that range, keyed by (xorb hash, chunk range) and never by
//! URL. Every range is verified before it is written ([`verify`]), written crash-safely
//! ([`fsutil`]), found again after a restart ([`Store::open`]), served without copying from a
//! memory map ([`RangeView`]) and evicted least-recently-used first under a byte quota, except
//! pinned ranges. [`peer`] serves the store over the wire protocol (`libs/wire`) and fetches
//! from other peers.

pub mod error;
pub mod format;
pub mod fsutil;
mod mmap;
pub mod peer;
pub mod store;
pub mod verify;
#[cfg(target_os = "linux")]
pub mod zerocopy;

pub use error::{StoreError, VerifyError};
pub use store::{
    Durability, EntryInfo, InsertOutcome, RangeView, Store, StoreConfig, StoreStats, STORE_DIR,
};
pub use verify::{
    verify_and_decode, verify_range, Expectation, RangeMeta, VerificationLevel, MAX_RANGE_BYTES,
    MAX_RANGE_CHUNKS,
};
