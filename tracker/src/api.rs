//! The tracker's HTTP API as JSON types (`/v1`): the protocol crate `zest-tracker-api`, which the
//! edge and `zest` use too. Validation happens in the HTTP layer ([`crate::convert`]).

pub use zest_tracker_api::*;
