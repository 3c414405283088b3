//! The flags of a fleet member of the `zest` CLI (`zest pull`, `zest seed`): where the tracker
//! is and how to write to it ([`TrackerArgs`], also used by `zest inspect`), who we are, and
//! where our local xorb store lives. Flatten
//! [`FleetArgs`] into a subcommand's arguments with `#[command(flatten)]`.

use std::path::PathBuf;

use clap::Args;

use crate::env_vars;

/// Default size cap of the local xorb store: 50 GiB.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 50 << 30;

/// Where the tracker is and how to write to it: flattened into [`FleetArgs`] and into
/// `zest inspect`'s arguments (which needs no identity or store).
#[derive(Clone, Args)]
pub struct TrackerArgs {
    /// Tracker base URL (`http://host:port`), or several replicas separated by commas
    /// (`http://a:7070,http://b:7070`): calls fail over from one that is down to the next.
    #[arg(long, env = env_vars::ZEST_TRACKER)]
    pub tracker: Option<String>,
    /// Bearer token for tracker writes (announces, reports, manifests) and protected lookups.
    #[arg(long, env = env_vars::ZEST_TRACKER_TOKEN, hide_env_values = true)]
    pub tracker_token: Option<String>,
}

impl TrackerArgs {
    /// The tracker URL, if one is set and not blank (an empty `ZEST_TRACKER=` means none).
    pub fn tracker_url(&self) -> Option<&str> {
        self.tracker
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }
}

impl std::fmt::Debug for TrackerArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackerArgs")
            .field("tracker", &self.tracker)
            .field(
                "tracker_token",
                &self.tracker_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Tracker, identity and local store flags shared by `zest pull` and `zest seed`.
#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    #[command(flatten)]
    pub tracking: TrackerArgs,
    /// Our id towards the tracker and peers.
    #[arg(long, env = env_vars::ZEST_PEER_ID)]
    pub peer_id: Option<String>,
    /// Our zone (rack, availability zone, site; up to 64 of `A-Z a-z 0-9 . _ - : @`): announced
    /// to the tracker, which then ranks holders of the asker's zone first.
    #[arg(long, env = env_vars::ZEST_ZONE, default_value = "")]
    pub zone: String,
    /// Local xorb store folder (default `$XDG_CACHE_HOME/zest` or `~/.cache/zest`).
    #[arg(long, env = env_vars::ZEST_CACHE)]
    pub zest_cache: Option<PathBuf>,
    /// Size cap of the local xorb store, bytes.
    #[arg(long, env = env_vars::ZEST_CACHE_MAX_BYTES, default_value_t = DEFAULT_CACHE_MAX_BYTES)]
    pub cache_max_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        fleet: FleetArgs,
    }

    #[test]
    fn flags_parse_and_blank_tracker_is_none() {
        Cli::command().debug_assert();
        let c = Cli::try_parse_from([
            "x",
            "--tracker",
            " ",
            "--peer-id",
            "p1",
            "--cache-max-bytes",
            "10",
        ])
        .expect("parse");
        assert_eq!(c.fleet.tracking.tracker_url(), None);
        assert_eq!(c.fleet.peer_id.as_deref(), Some("p1"));
        assert_eq!(c.fleet.cache_max_bytes, 10);
        let c = Cli::try_parse_from(["x", "--tracker", "http://t:7070"]).expect("parse");
        assert_eq!(c.fleet.tracking.tracker_url(), Some("http://t:7070"));
    }
}
