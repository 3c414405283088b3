//! Integration tests of the `zest` binary, run as a separate process.

mod common;
mod hash;
mod inspect;
mod pull;
mod swarm;
mod swarm_stall;
