//! Integration tests of zest-origin: the real `huggingface_hub` / `hf_xet` client against the
//! binary, the Hub and CAS routes over raw HTTP, security checks, faults, restart.

mod cas;
mod common;
mod hub;
mod in_process;
mod python;
mod security;
