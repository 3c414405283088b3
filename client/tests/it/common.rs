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

/// splitmix64 bytes (xet-core's `create_random_data`; the one generator, in the testkit).
pub use zest_testkit::splitmix_data;
