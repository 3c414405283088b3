//! Integration tests for `modelfile`: agreement with the Python reference readers on files they
//! wrote, damaged and malicious inputs, and property tests over random bytes.

mod malformed;
mod python_readers;
mod random;
mod writer;
