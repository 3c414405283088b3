//! Which hosts the edge fetches from on a peer's behalf. A Request on the peer port may carry
//! an upstream URL; the edge only GETs it when the URL's origin (scheme, host, port) is one it
//! trusts: its configured upstream, an origin named by `--upstream-fetch-allow`, or one that
//! the upstream's own reconstruction answers named for xorb data (learned as the edge fetches
//! reconstructions; at most [`MAX_LEARNED`]). Learned origins on loopback, private or
//! link-local addresses (or `localhost`) are not learned: such targets are fetched only when
//! they are the configured upstream or allowlisted. Redirects are followed only to trusted
//! origins (see [`UpstreamAllow::redirect_policy`]). Pure apart from the learned set's lock.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Most origins learned from reconstruction answers (oldest forgotten first).
pub const MAX_LEARNED: usize = 256;

/// Most redirects followed by a fetch on a peer's behalf (each to a trusted origin).
pub const MAX_REDIRECTS: usize = 5;

/// A URL's origin: scheme, lowercase host, port (the scheme's default when absent).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// The origin of `url`, `None` when it is not an absolute http(s) URL with a host.
    pub fn of(url: &str) -> Option<Origin> {
        Self::of_url(&url::Url::parse(url).ok()?)
    }

    /// The origin of a parsed URL (http and https only).
    pub fn of_url(u: &url::Url) -> Option<Origin> {
        let scheme = u.scheme();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        Some(Origin {
            scheme: scheme.to_string(),
            host: u.host_str()?.to_ascii_lowercase(),
            port: u.port_or_known_default()?,
        })
    }

    /// An allowlist entry: an origin `scheme://host[:port]`, or a bare `host[:port]` meaning
    /// `https`.
    pub fn parse_entry(entry: &str) -> Option<Origin> {
        let e = entry.trim();
        if e.is_empty() {
            return None;
        }
        if e.contains("://") {
            Self::of(e)
        } else {
            Self::of(&format!("https://{e}"))
        }
    }

    /// True for a loopback, private, link-local or unspecified address, or `localhost`.
    pub fn is_internal(&self) -> bool {
        let h = self.host.trim_start_matches('[').trim_end_matches(']');
        if h == "localhost" || h.ends_with(".localhost") {
            return true;
        }
        match h.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => is_internal_v4(v4),
            Ok(IpAddr::V6(v6)) => {
                let seg = v6.segments()[0];
                v6.is_loopback()
                    || v6.is_unspecified()
                    || (seg & 0xfe00) == 0xfc00 // unique local
                    || (seg & 0xffc0) == 0xfe80 // link-local
                    || v6.to_ipv4_mapped().is_some_and(is_internal_v4)
            }
            Err(_) => false,
        }
    }
}

/// True for a loopback, private, link-local, unspecified, broadcast or carrier-grade NAT
/// (100.64.0.0/10) IPv4 address.
fn is_internal_v4(v4: std::net::Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || (a == 100 && (b & 0xc0) == 64)
}

/// Why a URL is not fetched.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not an absolute http(s) URL")]
    BadUrl,
    #[error("upstream host {0} is not trusted by this edge")]
    Untrusted(String),
}

/// The trusted origins. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct UpstreamAllow {
    fixed: Vec<Origin>,
    learned: Mutex<VecDeque<Origin>>,
}

impl UpstreamAllow {
    /// Trusts `upstream` and every `extra` entry (see [`Origin::parse_entry`]).
    pub fn new(upstream: &str, extra: &[String]) -> Result<Self, String> {
        let mut fixed =
            vec![Origin::of(upstream)
                .ok_or_else(|| format!("--upstream {upstream:?} has no origin"))?];
        for e in extra.iter().filter(|e| !e.trim().is_empty()) {
            fixed.push(
                Origin::parse_entry(e).ok_or_else(|| {
                    format!("--upstream-fetch-allow entry {e:?} is not an origin")
                })?,
            );
        }
        Ok(Self {
            fixed,
            learned: Mutex::default(),
        })
    }

    /// Learns the origin of `url`, named by one of the upstream's own reconstruction answers.
    /// Internal addresses are not learned (see the module docs).
    pub fn learn(&self, url: &str) {
        let Some(o) = Origin::of(url) else {
            return;
        };
        if self.fixed.contains(&o) {
            return;
        }
        if o.is_internal() {
            tracing::debug!(host = %o.host, "not learning an internal upstream host");
            return;
        }
        let mut l = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        if l.contains(&o) {
            return;
        }
        if l.len() >= MAX_LEARNED {
            l.pop_front();
        }
        l.push_back(o);
    }

    /// Ok when `url` may be fetched on a peer's behalf.
    pub fn check(&self, url: &str) -> Result<(), Refused> {
        let u = url::Url::parse(url).map_err(|_| Refused::BadUrl)?;
        self.check_url(&u)
    }

    fn check_url(&self, u: &url::Url) -> Result<(), Refused> {
        let o = Origin::of_url(u).ok_or(Refused::BadUrl)?;
        if self.fixed.contains(&o) {
            return Ok(());
        }
        let l = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        if l.contains(&o) {
            Ok(())
        } else {
            Err(Refused::Untrusted(format!(
                "{}://{}:{}",
                o.scheme, o.host, o.port
            )))
        }
    }

    /// A redirect policy following at most [`MAX_REDIRECTS`] redirects, each to a trusted
    /// origin; any other redirect is not followed (the 3xx is the answer, a failure).
    pub fn redirect_policy(self: &Arc<Self>) -> reqwest::redirect::Policy {
        let allow = self.clone();
        reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS || allow.check_url(attempt.url()).is_err() {
                attempt.stop()
            } else {
                attempt.follow()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(extra: &[&str]) -> UpstreamAllow {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        UpstreamAllow::new("http://127.0.0.1:8080", &extra).expect("allow")
    }

    #[test]
    fn only_the_upstream_allowlisted_and_learned_origins_pass() {
        let a = allow(&["cas.example", "http://10.0.0.5:9000"]);
        assert_eq!(a.check("http://127.0.0.1:8080/xorbs/x?sig=1"), Ok(()));
        assert!(
            a.check("http://127.0.0.1:8081/xorbs/x").is_err(),
            "other port"
        );
        assert!(
            a.check("https://127.0.0.1:8080/xorbs/x").is_err(),
            "other scheme"
        );
        assert_eq!(a.check("https://CAS.example/x"), Ok(()));
        assert_eq!(a.check("https://cas.example:443/x"), Ok(()));
        assert!(a.check("http://cas.example/x").is_err());
        assert_eq!(a.check("http://10.0.0.5:9000/x"), Ok(()));
        assert!(a.check("https://transfer.example/x").is_err());
        a.learn("https://transfer.example/xorb?sig=abc");
        assert_eq!(a.check("https://transfer.example/other"), Ok(()));
        assert!(a.check("https://transfer.example.evil/x").is_err());
        assert!(a.check("file:///etc/passwd").is_err());
        assert!(a.check("not a url").is_err());
    }

    #[test]
    fn internal_hosts_are_never_learned() {
        let a = allow(&[]);
        for u in [
            "http://127.0.0.1:9999/x",
            "http://localhost:9999/x",
            "http://192.168.1.10/x",
            "http://10.1.2.3/x",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:9999/x",
            "http://[fd00::1]/x",
            "http://100.64.0.1/x",
            "http://[::ffff:169.254.169.254]/x",
            "http://[::ffff:10.0.0.1]/x",
        ] {
            a.learn(u);
            assert!(a.check(u).is_err(), "{u} must stay refused");
        }
    }

    #[test]
    fn learned_origins_are_bounded() {
        let a = allow(&[]);
        for i in 0..(MAX_LEARNED + 10) {
            a.learn(&format!("https://h{i}.example/x"));
        }
        assert!(a.check("https://h0.example/x").is_err(), "oldest forgotten");
        assert_eq!(
            a.check(&format!("https://h{}.example/x", MAX_LEARNED + 9)),
            Ok(())
        );
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!(UpstreamAllow::new("http://127.0.0.1:1", &["ftp://x".into()]).is_err());
        assert!(UpstreamAllow::new("nope", &[]).is_err());
    }
}
