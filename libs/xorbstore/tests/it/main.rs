//! Integration tests of `xorbstore`: the store on a real temporary folder (verification,
//! restart, crash, quota, pins, concurrency) and the peer server/client on loopback.
#![allow(clippy::unwrap_used, clippy::single_range_in_vec_init)]

mod common;
mod crash;
mod levels;
mod peer;
mod peer_deadlines;
mod store;
