//! Integration tests of `zest-edge`: the real binary on loopback, in front of an in-process
//! `zest-origin` (and announcing to an in-process `zest-tracker`), driven by the released
//! `huggingface_hub` + `hf_xet` client, the peer client (TCP and TLS), plain HTTP and raw requests to the data port.

mod admin;
mod attack;
mod common;
mod data;
mod fleet;
mod proxy;
mod robustness;
