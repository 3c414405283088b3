//! HMAC-SHA256 signatures: CAS access tokens and signed xorb URLs.
//!
//! A CAS token is `zo1:{expiry}:{signature}:{org}/{name}`; it lets its holder query
//! reconstructions of files of that repo until `expiry` (unix seconds). A xorb URL carries the
//! exact byte ranges it may read, an expiry and a signature over (xorb hash, ranges, expiry), like
//! upstream Hugging Face's presigned transfer URLs: a `Range` that is not one of the signed ranges
//! (or the whole signed list) is refused. Time is passed in (`now`), never read here.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use xet::MerkleHash;

type HmacSha256 = Hmac<Sha256>;

const TOKEN_PREFIX: &str = "zo1";

/// Why a token or signed URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("malformed token or signature")]
    Malformed,
    #[error("signature does not match")]
    BadSignature,
    #[error("expired at {0}")]
    Expired(u64),
}

/// An inclusive byte range `start..=end`.
pub type InclusiveRange = (u64, u64);

/// Signs and checks tokens and URLs with one secret key.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer { key: <hidden> }")
    }
}

impl Signer {
    pub fn new(key: &[u8]) -> Self {
        Signer { key: key.to_vec() }
    }

    /// A signer with a fresh random 32-byte key.
    pub fn random() -> Self {
        let key: [u8; 32] = rand::random();
        Signer::new(&key)
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut m = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        for p in parts {
            m.update(&(p.len() as u64).to_le_bytes());
            m.update(p);
        }
        m
    }

    fn sign(&self, parts: &[&[u8]]) -> String {
        hex::encode(self.mac(parts).finalize().into_bytes())
    }

    fn verify(&self, parts: &[&[u8]], sig_hex: &str) -> Result<(), SignatureError> {
        let sig = hex::decode(sig_hex).map_err(|_| SignatureError::Malformed)?;
        self.mac(parts)
            .verify_slice(&sig)
            .map_err(|_| SignatureError::BadSignature)
    }

    /// A CAS token for `repo` (`org/name`) valid until `expiry`.
    pub fn cas_token(&self, repo: &str, expiry: u64) -> String {
        let exp = expiry.to_string();
        let sig = self.sign(&[b"cas-token", repo.as_bytes(), exp.as_bytes()]);
        format!("{TOKEN_PREFIX}:{exp}:{sig}:{repo}")
    }

    /// Checks a CAS token at time `now`; returns the repo it is for.
    pub fn check_cas_token<'a>(&self, token: &'a str, now: u64) -> Result<&'a str, SignatureError> {
        let mut parts = token.splitn(4, ':');
        let (Some(TOKEN_PREFIX), Some(exp), Some(sig), Some(repo)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SignatureError::Malformed);
        };
        self.verify(&[b"cas-token", repo.as_bytes(), exp.as_bytes()], sig)?;
        let expiry: u64 = exp.parse().map_err(|_| SignatureError::Malformed)?;
        if now >= expiry {
            return Err(SignatureError::Expired(expiry));
        }
        Ok(repo)
    }

    /// Signature of a xorb URL for `ranges` of `xorb` until `expiry`.
    pub fn xorb_signature(
        &self,
        xorb: &MerkleHash,
        ranges: &[InclusiveRange],
        expiry: u64,
    ) -> String {
        let list = format_ranges(ranges);
        self.sign(&[
            b"xorb-url",
            xorb.to_hex().as_bytes(),
            list.as_bytes(),
            expiry.to_string().as_bytes(),
        ])
    }

    /// Checks a xorb URL's signature at time `now`.
    pub fn check_xorb_signature(
        &self,
        xorb: &MerkleHash,
        ranges: &[InclusiveRange],
        expiry: u64,
        sig_hex: &str,
        now: u64,
    ) -> Result<(), SignatureError> {
        let list = format_ranges(ranges);
        self.verify(
            &[
                b"xorb-url",
                xorb.to_hex().as_bytes(),
                list.as_bytes(),
                expiry.to_string().as_bytes(),
            ],
            sig_hex,
        )?;
        if now >= expiry {
            return Err(SignatureError::Expired(expiry));
        }
        Ok(())
    }
}

/// `S1-E1,S2-E2` (no `bytes=` prefix).
pub fn format_ranges(ranges: &[InclusiveRange]) -> String {
    let mut s = String::new();
    for (i, (a, b)) in ranges.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("{a}-{b}"));
    }
    s
}

/// Parses a strict `bytes=S1-E1,S2-E2` list (both ends given, `S <= E`), as signed URLs and
/// xorb `Range` headers carry them. At most `max` ranges.
pub fn parse_exact_ranges(value: &str, max: usize) -> Option<Vec<InclusiveRange>> {
    let list = value.trim().strip_prefix("bytes=")?;
    let mut out = Vec::new();
    for part in list.split(',') {
        if out.len() >= max {
            return None;
        }
        let (a, b) = part.trim().split_once('-')?;
        if a.is_empty()
            || b.is_empty()
            || !a.bytes().all(|c| c.is_ascii_digit())
            || !b.bytes().all(|c| c.is_ascii_digit())
        {
            return None;
        }
        let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
        if a > b {
            return None;
        }
        out.push((a, b));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_token_round_trip_and_expiry() {
        let s = Signer::new(b"k");
        let t = s.cas_token("org/model.v1", 100);
        assert_eq!(s.check_cas_token(&t, 99), Ok("org/model.v1"));
        assert_eq!(
            s.check_cas_token(&t, 100),
            Err(SignatureError::Expired(100))
        );
        let forged = t.replace("org/model.v1", "org/other");
        assert_eq!(
            s.check_cas_token(&forged, 1),
            Err(SignatureError::BadSignature)
        );
        let later = t.replacen(":100:", ":999:", 1);
        assert_eq!(
            s.check_cas_token(&later, 1),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(s.check_cas_token("junk", 1), Err(SignatureError::Malformed));
        assert_eq!(
            Signer::new(b"other").check_cas_token(&t, 1),
            Err(SignatureError::BadSignature)
        );
    }

    #[test]
    fn xorb_signature_covers_ranges_hash_and_expiry() {
        let s = Signer::new(b"k");
        let h = MerkleHash::from_bytes([7; 32]);
        let r = [(0, 99), (200, 299)];
        let sig = s.xorb_signature(&h, &r, 50);
        assert!(s.check_xorb_signature(&h, &r, 50, &sig, 49).is_ok());
        assert_eq!(
            s.check_xorb_signature(&h, &r, 50, &sig, 50),
            Err(SignatureError::Expired(50))
        );
        assert!(s.check_xorb_signature(&h, &r[..1], 50, &sig, 1).is_err());
        assert!(s.check_xorb_signature(&h, &r, 51, &sig, 1).is_err());
        let other = MerkleHash::from_bytes([8; 32]);
        assert!(s.check_xorb_signature(&other, &r, 50, &sig, 1).is_err());
    }

    #[test]
    fn parses_exact_range_lists() {
        assert_eq!(
            parse_exact_ranges("bytes=0-9,20-29", 10),
            Some(vec![(0, 9), (20, 29)])
        );
        assert_eq!(parse_exact_ranges("bytes=0-", 10), None);
        assert_eq!(parse_exact_ranges("bytes=-5", 10), None);
        assert_eq!(parse_exact_ranges("bytes=9-0", 10), None);
        assert_eq!(parse_exact_ranges("items=0-1", 10), None);
        assert_eq!(parse_exact_ranges("bytes=0-1,2-3", 1), None);
        assert_eq!(parse_exact_ranges("bytes=+1-2", 10), None);
    }
}
