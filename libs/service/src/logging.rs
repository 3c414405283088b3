//! Logging setup of every zest binary: a `tracing_subscriber::EnvFilter` from `RUST_LOG`
//! (default `info`), human-readable text or JSON lines, always on stderr so that stdout carries
//! only command output.
//!
//! Every binary has the same flag, `--log-format text|json`, with the environment fallback
//! `ZEST_<SERVICE>_LOG_FORMAT` (see [`crate::env_vars`]); declare it as
//!
//! ```ignore
//! #[arg(long, env = env_vars::ZEST_EDGE_LOG_FORMAT, value_enum, default_value_t = LogFormat::Text)]
//! pub log_format: LogFormat,
//! ```

use tracing_subscriber::EnvFilter;

/// Log line format (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (what tests and log shippers read).
    Json,
}

/// Installs the global subscriber. Calling it again is harmless (later calls do nothing).
///
/// Errors of the subscriber itself (e.g. a closed stderr after the parent went away) are not
/// reported, so that a vanished log reader never turns log writes into panics.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn formats_parse_by_name() {
        assert_eq!(LogFormat::from_str("text", false), Ok(LogFormat::Text));
        assert_eq!(LogFormat::from_str("json", false), Ok(LogFormat::Json));
        assert!(LogFormat::from_str("yaml", false).is_err());
        assert_eq!(LogFormat::default(), LogFormat::Text);
    }

    #[test]
    fn init_twice_is_harmless() {
        init(LogFormat::Json);
        init(LogFormat::Text);
        tracing::info!("still logging");
    }
}
