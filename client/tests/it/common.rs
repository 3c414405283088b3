//! Helpers shared by the integration tests: running the built binary, the reference Python,
//! and generating input files.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs the built `zest` binary with `args`.
pub fn zest(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zest"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running the zest binary")
}

/// The Python interpreter with the real Hugging Face client (`zest_testkit::python`).
pub use zest_testkit::python;

/// Runs `script` with the reference Python and `args`, returning stdout; panics on failure.
pub fn run_python(script: &str, args: &[&Path]) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("running the reference Python");
    assert!(
        out.status.success(),
        "reference Python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("Python printed UTF-8")
}

/// splitmix64 bytes (xet-core's `create_random_data`).
pub fn splitmix_data(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(n);
    out
}
