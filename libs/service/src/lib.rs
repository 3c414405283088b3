//! What every zest binary shares (the pattern of neon's `libs/utils`): written once here so
//! the tracker, the edge, the origin and the `zest` CLI behave alike.
//!
//! - [`logging`]: one `--log-format text|json` flag ([`LogFormat`]) and one subscriber setup
//!   (`RUST_LOG` filter, default `info`, always on stderr).
//! - [`shutdown`]: one shutdown future (Ctrl-C, SIGTERM, and the tests' stdin-EOF switch).
//! - [`metrics`]: one way to register Prometheus metrics into a per-server registry that also
//!   carries `zest_build_info` and the process collector.
//! - [`metrics_http`]: a bounded `/metrics` + `/healthz` endpoint for processes that are not
//!   HTTP servers (`zest seed`, a serving `zest pull`).
//! - [`env_vars`]: the naming convention of environment variables, and the variables shared by
//!   several binaries (`ZEST_TRACKER*`, the fleet flags).
//! - [`fleet`]: the clap flags of a fleet member ([`FleetArgs`]), shared by `zest pull` and
//!   `zest seed`.
//!
//! Crash-safe file writes are not here: they live in `xorbstore::fsutil`, which this crate's
//! users already depend on and which must stay free of service code.

pub mod env_vars;
pub mod fleet;
pub mod logging;
pub mod metrics;
pub mod metrics_http;
pub mod shutdown;

pub use fleet::{FleetArgs, TrackerArgs};
pub use logging::LogFormat;
pub use metrics::ServiceMetrics;
