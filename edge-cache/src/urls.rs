//! The URLs the edge hands out in place of upstream ones, and how it reads them back.
//!
//! * CAS URL: `{public}/cas/{b64url(upstream cas url)}.{sig}` — requests under it are forwarded
//!   to the real CAS.
//! * Xorb URL: `{public}/xorb/{xorb hex}?u={b64url(signed url)}&r={cs-ce:bs-be,...}&s={sig}` —
//!   the xorb, the chunk ranges with their byte ranges inside the xorb, and the original signed
//!   URL (fetched, without credentials, on a miss).
//!
//! Every such URL carries an HMAC (key kept in the cache folder) so the edge is never an open
//! proxy to arbitrary URLs: only URLs the upstream itself handed out are followed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use xet::cas::{ByteRange, ChunkRange};
use xet::MerkleHash;

/// Most ranges one xorb URL may carry.
pub const MAX_URL_RANGES: usize = 4096;

/// One chunk range of a xorb URL and its bytes inside the xorb (inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UrlRange {
    pub chunks: ChunkRange,
    pub bytes: ByteRange,
}

/// A decoded edge xorb URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XorbUrl {
    pub xorb: MerkleHash,
    pub upstream: String,
    pub ranges: Vec<UrlRange>,
}

/// Signs and checks edge URLs.
#[derive(Clone)]
pub struct UrlSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner(<key>)")
    }
}

impl UrlSigner {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn sig(&self, parts: &[&str]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("hmac takes any key");
        for p in parts {
            mac.update(p.as_bytes());
            mac.update(b"\n");
        }
        URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..16])
    }

    fn check(&self, parts: &[&str], sig: &str) -> bool {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("hmac takes any key");
        for p in parts {
            mac.update(p.as_bytes());
            mac.update(b"\n");
        }
        match URL_SAFE_NO_PAD.decode(sig) {
            Ok(s) => mac.verify_truncated_left(&s).is_ok() && s.len() == 16,
            Err(_) => false,
        }
    }

    /// The path segment standing for upstream CAS URL `cas`.
    pub fn cas_segment(&self, cas: &str) -> String {
        let enc = URL_SAFE_NO_PAD.encode(cas.trim_end_matches('/'));
        let sig = self.sig(&["cas", &enc]);
        format!("{enc}.{sig}")
    }

    /// The upstream CAS URL of a segment made by [`UrlSigner::cas_segment`].
    pub fn decode_cas_segment(&self, seg: &str) -> Option<String> {
        let (enc, sig) = seg.rsplit_once('.')?;
        if !self.check(&["cas", enc], sig) {
            return None;
        }
        String::from_utf8(URL_SAFE_NO_PAD.decode(enc).ok()?).ok()
    }

    /// The edge URL (path and query, after the public base) for `x`.
    pub fn xorb_path(&self, x: &XorbUrl) -> String {
        let u = URL_SAFE_NO_PAD.encode(&x.upstream);
        let r = x
            .ranges
            .iter()
            .map(|r| {
                format!(
                    "{}-{}:{}-{}",
                    r.chunks.start, r.chunks.end, r.bytes.start, r.bytes.end
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        let h = x.xorb.to_hex();
        let s = self.sig(&["xorb", &h, &u, &r]);
        format!("/xorb/{h}?u={u}&r={r}&s={s}")
    }

    /// Decodes and checks the xorb path segment and query of an edge xorb URL.
    pub fn decode_xorb(&self, hash: &str, query: &str) -> Result<XorbUrl, String> {
        let (mut u, mut r, mut s) = (None, None, None);
        for kv in query.split('&') {
            match kv.split_once('=') {
                Some(("u", v)) => u = Some(v),
                Some(("r", v)) => r = Some(v),
                Some(("s", v)) => s = Some(v),
                _ => {}
            }
        }
        let (u, r, s) = match (u, r, s) {
            (Some(u), Some(r), Some(s)) => (u, r, s),
            _ => return Err("missing u, r or s".into()),
        };
        if !self.check(&["xorb", hash, u, r], s) {
            return Err("bad signature".into());
        }
        let xorb = MerkleHash::from_hex(hash).map_err(|e| format!("xorb hash: {e}"))?;
        let upstream = URL_SAFE_NO_PAD
            .decode(u)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or("bad upstream url")?;
        let mut ranges = Vec::new();
        for spec in r.split(',') {
            if ranges.len() >= MAX_URL_RANGES {
                return Err("too many ranges".into());
            }
            let parse = || -> Option<UrlRange> {
                let (c, b) = spec.split_once(':')?;
                let (cs, ce) = c.split_once('-')?;
                let (bs, be) = b.split_once('-')?;
                let chunks = ChunkRange::new(cs.parse().ok()?, ce.parse().ok()?);
                let bytes = ByteRange::new(bs.parse().ok()?, be.parse().ok()?);
                (!chunks.is_empty() && bytes.start <= bytes.end)
                    .then_some(UrlRange { chunks, bytes })
            };
            ranges.push(parse().ok_or_else(|| format!("bad range {spec:?}"))?);
        }
        Ok(XorbUrl {
            xorb,
            upstream,
            ranges,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xorb_urls_round_trip_and_reject_tampering() {
        let s = UrlSigner::new([7; 32]);
        let x = XorbUrl {
            xorb: MerkleHash::from_bytes([3; 32]),
            upstream: "https://cas.example/xorbs/default/abc?X-Xet-Signed-Range=1&Sig=x".into(),
            ranges: vec![
                UrlRange {
                    chunks: ChunkRange::new(0, 4),
                    bytes: ByteRange::new(0, 999),
                },
                UrlRange {
                    chunks: ChunkRange::new(7, 9),
                    bytes: ByteRange::new(2000, 2999),
                },
            ],
        };
        let p = s.xorb_path(&x);
        let (path, query) = p.split_once('?').expect("query");
        let hash = path.strip_prefix("/xorb/").expect("prefix");
        assert_eq!(s.decode_xorb(hash, query), Ok(x.clone()));
        let tampered = query.replace("r=0-4", "r=0-5");
        assert!(s.decode_xorb(hash, &tampered).is_err());
        let other = UrlSigner::new([8; 32]);
        assert!(other.decode_xorb(hash, query).is_err());
    }

    #[test]
    fn cas_segments_round_trip() {
        let s = UrlSigner::new([1; 32]);
        let seg = s.cas_segment("https://cas-server.xethub.hf.co/");
        assert_eq!(
            s.decode_cas_segment(&seg).as_deref(),
            Some("https://cas-server.xethub.hf.co")
        );
        assert_eq!(s.decode_cas_segment(&seg.replace('.', "x.")), None);
        assert_eq!(UrlSigner::new([2; 32]).decode_cas_segment(&seg), None);
    }
}
