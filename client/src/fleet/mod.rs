//! The fleet client: where the chunk ranges of a pull (or a remote inspect) come from — the
//! local xorb store, the peers and edges the tracker names, an edge asked to fetch a range
//! upstream on our behalf, and upstream. `zest pull`, `zest seed` and `zest inspect` depend on
//! this module, not on each other.
//!
//! - [`unit`]: the vocabulary ([`Unit`], [`UpstreamRange`], [`Holder`], [`Source`], [`Fetched`]).
//! - [`scheduler`]: the decisions (source scores, hedging, time limits, dropping); pure: no I/O,
//!   no clock of its own (`now` is passed in), unit-tested.
//! - `pool`: the connections to peers and edges.
//! - `lookup`: the tracker's lookups and edge list (and the tracker-down switch).
//! - `blame`, `counters`: the bad sources and the bytes by source of one pull.
//! - [`swarm`]: a pull's own server and announcer (serving while it pulls).
//! - [`Fleet`] (`fetch`): ties them together and carries out the scheduler's decisions.

mod blame;
mod counters;
mod fetch;
mod lookup;
mod pool;
pub mod scheduler;
pub mod swarm;
pub mod unit;

use std::path::PathBuf;

pub use fetch::{ClaimFor, FetchError, Fleet, PexCounts, MAX_HEDGES, MAX_PEX_HOLDERS};
pub use lookup::Claim;

/// Refuses a `--zone` the tracker would refuse, before anything starts.
pub fn check_zone(zone: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        zest_tracker_api::is_valid_zone(zone),
        "--zone {zone:?}: at most {} characters of A-Z a-z 0-9 . _ - : @",
        zest_tracker_api::MAX_ZONE_LEN
    );
    Ok(())
}
pub use unit::{check, CheckError, Decoded, Fetched, Holder, Source, Unit, UpstreamRange};

/// The local xorb store folder: `flag`, or `~/.cache/zest` (`$XDG_CACHE_HOME/zest`).
pub fn zest_cache_dir(flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(|| crate::dirs::home_cache().join("zest"))
}

/// `e` and its causes, joined as anyhow's `{:#}` does.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
