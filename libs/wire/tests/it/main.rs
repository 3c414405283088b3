//! Integration tests of the wire codec: property-based round trips over every frame type,
//! robustness against arbitrary and mutated bytes, and the protocol's size bounds.

mod bounds;
mod roundtrip;
mod strategies;
