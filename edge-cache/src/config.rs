//! Command-line flags of `zest-edge`, each with an environment fallback (`ZEST_EDGE_*`,
//! `ZEST_TRACKER`) named in [`crate::env_vars`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
pub use zest_service::LogFormat;

use crate::env_vars;

/// Settings of one edge.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "zest-edge",
    version,
    about = "zest edge cache and Hugging Face cache-proxy"
)]
pub struct Config {
    /// Folder of the xorb range store (created if missing).
    #[arg(long, env = env_vars::ZEST_EDGE_CACHE_DIR, default_value = "./zest-edge-cache")]
    pub cache_dir: PathBuf,
    /// Most bytes the store may use on disk (suffixes K, M, G, T accepted: 10G).
    #[arg(long, env = env_vars::ZEST_EDGE_CACHE_SIZE, default_value = "10G", value_parser = parse_size)]
    pub cache_size: u64,
    /// The Hugging Face endpoint proxied.
    #[arg(
        long,
        env = env_vars::ZEST_EDGE_UPSTREAM,
        default_value = "https://huggingface.co"
    )]
    pub upstream: String,
    /// Retries of a failed request of the edge's own to upstream (a xorb range, a
    /// reconstruction, a warm's API calls) on 408, 429, 5xx or a broken connection; 0 sends each
    /// once. Forwarded client requests are never retried (the client decides).
    #[arg(long, env = "ZEST_EDGE_UPSTREAM_MAX_RETRIES", default_value_t = 5)]
    pub upstream_max_retries: u32,
    /// Origins (`https://host[:port]`, `http://host:port`, or a bare `host[:port]` meaning
    /// https), comma-separated, that the edge may fetch from on a peer's behalf besides
    /// `--upstream` and the xorb hosts named by the upstream's own reconstruction answers. For
    /// real Hugging Face, the CAS and transfer hosts. Loopback and private addresses are
    /// fetched only when they are `--upstream` or listed here.
    #[arg(
        long,
        env = env_vars::ZEST_EDGE_UPSTREAM_FETCH_ALLOW,
        value_delimiter = ',',
        num_args = 0..
    )]
    pub upstream_fetch_allow: Vec<String>,
    /// Base URL of the zest tracker (announce and lookup), or several replicas separated by
    /// commas (calls fail over); none = no tracker.
    #[arg(long, env = env_vars::ZEST_TRACKER)]
    pub tracker: Option<String>,
    /// Bearer token for the tracker.
    #[arg(long, env = env_vars::ZEST_TRACKER_TOKEN, hide_env_values = true)]
    pub tracker_token: Option<String>,
    /// HTTP address (cache-proxy, /v1/warm, /metrics, /healthz).
    #[arg(long, env = env_vars::ZEST_EDGE_LISTEN_HTTP, default_value = "127.0.0.1:8081")]
    pub listen_http: SocketAddr,
    /// Data address: xorb ranges only (`/xorb/...`), served with `sendfile(2)` straight from
    /// the store's files. Rewritten reconstructions point their xorb URLs here.
    #[arg(long, env = env_vars::ZEST_EDGE_LISTEN_DATA, default_value = "127.0.0.1:8082")]
    pub listen_data: SocketAddr,
    /// Peer wire-protocol address.
    #[arg(long, env = env_vars::ZEST_EDGE_LISTEN_PEER, default_value = "127.0.0.1:7071")]
    pub listen_peer: SocketAddr,
    /// PEM certificate chain for TLS on the peer port (with --tls-key).
    #[arg(long, env = env_vars::ZEST_EDGE_TLS_CERT, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS on the peer port (with --tls-cert).
    #[arg(long, env = env_vars::ZEST_EDGE_TLS_KEY, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// URL clients reach this edge's HTTP port at (used in rewritten URLs); default
    /// `http://<listen-http>`.
    #[arg(long, env = env_vars::ZEST_EDGE_PUBLIC_URL)]
    pub public_url: Option<String>,
    /// URL clients reach this edge's data port at (the base of the xorb URLs handed out);
    /// default: the scheme and host of `--public-url` with the bound data port, or
    /// `http://<listen-data>` without `--public-url`.
    #[arg(long, env = env_vars::ZEST_EDGE_PUBLIC_DATA_URL)]
    pub public_data_url: Option<String>,
    /// `host:port` announced to the tracker for the peer port; default the bound peer address.
    #[arg(long, env = env_vars::ZEST_EDGE_PEER_ADDR)]
    pub peer_addr: Option<String>,
    /// Peer id (tracker and wire Handshake); default `edge-<peer port>`.
    #[arg(long, env = env_vars::ZEST_EDGE_PEER_ID)]
    pub peer_id: Option<String>,
    /// Zone label sent to the tracker.
    #[arg(long, env = env_vars::ZEST_EDGE_ZONE)]
    pub zone: Option<String>,
    /// Full verification limit: before handing out a file's reconstruction the edge fetches
    /// the ranges it lacks, recomputes the Xet file hash and stores them only if it matches;
    /// those bytes are held in memory meanwhile, so this is done only when they total at most
    /// this many bytes. Above it, each range is cached after structural checks only (chunk
    /// records decode, lengths match), and the client's own hash check is what catches a
    /// wrong byte.
    #[arg(long, env = env_vars::ZEST_EDGE_VERIFY_MAX_FILE_BYTES, default_value = "1G", value_parser = parse_size)]
    pub verify_max_file_bytes: u64,
    /// Token the admin routes (`/v1/warm`, `/v1/unpin`, `/v1/pins`) require in the
    /// `X-Zest-Admin-Token` header. Without it (and without `--admin-no-auth`) they are refused.
    #[arg(long, env = env_vars::ZEST_EDGE_ADMIN_TOKEN, hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Let anyone call the admin routes; only accepted with a loopback `--listen-http`.
    #[arg(long, env = env_vars::ZEST_EDGE_ADMIN_NO_AUTH)]
    pub admin_no_auth: bool,
    /// HTTP worker threads (default: number of CPUs, at most 4).
    #[arg(long, env = env_vars::ZEST_EDGE_WORKERS)]
    pub workers: Option<usize>,
    /// Log format.
    #[arg(long, env = env_vars::ZEST_EDGE_LOG_FORMAT, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Exit when stdin closes (tests: the child dies with its parent).
    #[arg(long, env = env_vars::ZEST_EDGE_EXIT_ON_STDIN_EOF)]
    pub exit_on_stdin_eof: bool,
}

impl Config {
    /// A configuration with the defaults, for `cache_dir` and `upstream` (tests, embedding).
    pub fn new(cache_dir: impl Into<PathBuf>, upstream: impl Into<String>) -> Self {
        let mut c = Config::parse_from(["zest-edge"]);
        c.cache_dir = cache_dir.into();
        c.upstream = upstream.into();
        c
    }
}

/// The default data URL: `public_url`'s scheme and host with port `data_port`, or
/// `http://{data_addr}` without a public URL.
pub fn default_data_url(public_url: Option<&str>, data_addr: SocketAddr) -> Result<String, String> {
    let Some(p) = public_url else {
        return Ok(format!("http://{data_addr}"));
    };
    let mut u = url::Url::parse(p).map_err(|e| format!("--public-url {p:?}: {e}"))?;
    if u.host_str().is_none() {
        return Err(format!("--public-url {p:?} has no host"));
    }
    u.set_port(Some(data_addr.port()))
        .map_err(|()| format!("--public-url {p:?} cannot take a port"))?;
    u.set_path("");
    u.set_query(None);
    u.set_fragment(None);
    Ok(u.as_str().trim_end_matches('/').to_string())
}

/// Parses `123`, `10K`, `64M`, `10G`, `1T` (powers of 1024; an optional trailing `B` or `iB`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mul) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        Some('T' | 't') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad size {s:?} (e.g. 500M, 10G)"))?;
    n.checked_mul(mul)
        .ok_or_else(|| format!("size {s:?} overflows"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("10K"), Ok(10 << 10));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn data_url_defaults_to_the_public_host_with_the_data_port() {
        let data: SocketAddr = "0.0.0.0:8082".parse().expect("addr");
        assert_eq!(
            default_data_url(Some("https://edge-1.lan:8081/base/"), data).as_deref(),
            Ok("https://edge-1.lan:8082")
        );
        assert_eq!(
            default_data_url(Some("http://edge-1.lan"), data).as_deref(),
            Ok("http://edge-1.lan:8082")
        );
        assert_eq!(
            default_data_url(None, "127.0.0.1:9000".parse().expect("addr")).as_deref(),
            Ok("http://127.0.0.1:9000")
        );
        assert!(default_data_url(Some("not a url"), data).is_err());
    }
}
