//! Integration tests of `zest-edge`: the real binary on loopback, in front of an in-process
//! `zest-origin`, driven by the released `huggingface_hub` + `hf_xet` client.

mod common;
mod proxy;
mod robustness;
