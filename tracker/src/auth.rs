//! Bearer-token checks for the API.
//!
//! Writes (announce, peer removal, manifests, reports) always need a token; reads (lookups,
//! peers, stats, manifests) need one only with `--lookup-auth`. A token is accepted if it is
//! the `--token` secret or if its SHA-256 is in the store's token table; accepted stored
//! tokens are remembered for [`CACHE_TTL`] so that PostgreSQL is not asked on every request.
//! Tokens are compared by their SHA-256, so comparison time reveals nothing about the secret.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::store::Store;

/// How long an accepted stored token is trusted without asking the store again.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// Most remembered tokens (the cache is cleared when full).
const CACHE_MAX: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// SHA-256 of a token secret, as stored.
pub fn token_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

#[derive(Debug)]
pub struct Auth {
    static_hash: Option<[u8; 32]>,
    no_auth: bool,
    lookup_auth: bool,
    cache: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Auth {
    pub fn new(static_token: Option<&str>, no_auth: bool, lookup_auth: bool) -> Self {
        Auth {
            static_hash: static_token.filter(|t| !t.is_empty()).map(token_hash),
            no_auth,
            lookup_auth,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Ok when `req` may perform an operation needing `access`.
    pub async fn check(
        &self,
        req: &HttpRequest,
        access: Access,
        store: &dyn Store,
    ) -> Result<(), ApiError> {
        if self.no_auth || (access == Access::Read && !self.lookup_auth) {
            return Ok(());
        }
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .ok_or(ApiError::Unauthorized("missing bearer token"))?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(ApiError::Unauthorized(
                "malformed Authorization header, expected `Bearer <token>`",
            ))?;
        let hash = token_hash(secret);
        if self.static_hash == Some(hash) {
            return Ok(());
        }
        if let Ok(cache) = self.cache.lock() {
            if cache.get(&hash).is_some_and(|t| t.elapsed() < CACHE_TTL) {
                return Ok(());
            }
        }
        match store.token_name(&hash).await? {
            Some(_) => {
                if let Ok(mut cache) = self.cache.lock() {
                    if cache.len() >= CACHE_MAX {
                        cache.clear();
                    }
                    cache.insert(hash, Instant::now());
                }
                Ok(())
            }
            None => Err(ApiError::Unauthorized("invalid token")),
        }
    }
}
