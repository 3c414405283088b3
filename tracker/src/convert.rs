//! Validation of untrusted JSON requests and conversion between wire and domain types.
//!
//! Everything a client sends passes through here before it reaches a store: identifiers are
//! checked against small alphabets and lengths, list lengths against [`Limits`], chunk ranges
//! for `start < end`. Errors are 400 messages that say which field is wrong.

use crate::api;
use crate::error::ApiError;
use crate::model::{
    Announcement, Holding, HoldingsChange, LookupKey, ManifestKey, PeerRecord, Report, Role,
    SourceBytes,
};
use crate::ranges::{RangeSet, MAX_RANGES_PER_XORB};

/// Lengths the API accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_lookup_items: usize,
    pub max_announce_xorbs: usize,
}

/// Default peers per lookup item.
pub const DEFAULT_PEERS_PER_ITEM: usize = 8;
/// Most peers per lookup item.
pub const MAX_PEERS_PER_ITEM: usize = 64;
/// Most files in a manifest.
pub const MAX_MANIFEST_FILES: usize = 1_000_000;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

/// A peer id: 1–128 characters of `A-Z a-z 0-9 . _ - : @` ([`api::is_valid_peer_id`]).
pub fn check_peer_id(field: &str, id: &str) -> Result<(), ApiError> {
    if !api::is_valid_peer_id(id) {
        return Err(bad(format!(
            "{field} must be 1-128 characters of A-Z a-z 0-9 . _ - : @"
        )));
    }
    Ok(())
}

fn check_zone(field: &str, zone: &str) -> Result<(), ApiError> {
    if !api::is_valid_zone(zone) {
        return Err(bad(format!(
            "{field} must be 0-64 characters of A-Z a-z 0-9 . _ - : @"
        )));
    }
    Ok(())
}

pub fn role_from_wire(r: api::Role) -> Role {
    match r {
        api::Role::Edge => Role::Edge,
        api::Role::Client => Role::Client,
        api::Role::Seed => Role::Seed,
    }
}

pub fn role_to_wire(r: Role) -> api::Role {
    match r {
        Role::Edge => api::Role::Edge,
        Role::Client => api::Role::Client,
        Role::Seed => api::Role::Seed,
    }
}

pub fn peer_info(p: &PeerRecord) -> api::PeerInfo {
    api::PeerInfo {
        addr: p.addr.clone(),
        role: role_to_wire(p.role),
        zone: p.zone.clone(),
        free_bytes: p.free_bytes,
        load: p.load,
    }
}

fn holdings(field: &str, list: Vec<api::XorbHolding>) -> Result<Vec<Holding>, ApiError> {
    list.into_iter()
        .enumerate()
        .map(|(i, h)| {
            if h.ranges.is_empty() {
                return Err(bad(format!("{field}[{i}].ranges is empty")));
            }
            if h.ranges.len() > MAX_RANGES_PER_XORB {
                return Err(bad(format!(
                    "{field}[{i}].ranges has more than {MAX_RANGES_PER_XORB} ranges"
                )));
            }
            let mut set = RangeSet::new();
            for (j, r) in h.ranges.iter().enumerate() {
                set.insert(r.start, r.end)
                    .map_err(|e| bad(format!("{field}[{i}].ranges[{j}]: {e}")))?;
            }
            Ok(Holding {
                xorb: h.hash,
                ranges: set,
            })
        })
        .collect()
}

/// Validates an announce and converts it.
pub fn announcement(req: api::AnnounceRequest, limits: &Limits) -> Result<Announcement, ApiError> {
    let p = req.peer;
    check_peer_id("peer.id", &p.id)?;
    if p.addr.is_empty()
        || p.addr.len() > 256
        || p.addr.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad(
            "peer.addr must be 1-256 characters without spaces (host:port)",
        ));
    }
    check_zone("peer.zone", &p.zone)?;
    let peer = PeerRecord {
        id: p.id,
        addr: p.addr,
        role: role_from_wire(p.role),
        zone: p.zone,
        free_bytes: p.free_bytes,
        load: p.load,
    };
    let max = limits.max_announce_xorbs;
    let change = match req.full {
        Some(full) => {
            if !req.added.is_empty() || !req.removed.is_empty() {
                return Err(bad("send either `full` or `added`/`removed`, not both"));
            }
            if full.len() > max {
                return Err(bad(format!(
                    "full has {} xorbs, at most {max} allowed",
                    full.len()
                )));
            }
            HoldingsChange::Full(holdings("full", full)?)
        }
        None => {
            if req.added.len() + req.removed.len() > max {
                return Err(bad(format!("added + removed list more than {max} xorbs")));
            }
            HoldingsChange::Delta {
                added: holdings("added", req.added)?,
                removed: holdings("removed", req.removed)?,
            }
        }
    };
    Ok(Announcement { peer, change })
}

/// Validates a lookup; returns its keys and the number of peers wanted per item.
pub fn lookup(
    req: &api::LookupRequest,
    limits: &Limits,
) -> Result<(Vec<LookupKey>, usize), ApiError> {
    if let Some(id) = &req.peer_id {
        check_peer_id("peer_id", id)?;
    }
    if let Some(zone) = &req.zone {
        check_zone("zone", zone)?;
    }
    let per_item = match req.limit {
        None => DEFAULT_PEERS_PER_ITEM,
        Some(0) => return Err(bad("limit must be at least 1")),
        Some(n) => (n as usize).min(MAX_PEERS_PER_ITEM),
    };
    Ok((lookup_keys(&req.items, limits)?, per_item))
}

/// Validates a claim: the claimer, the lease length (cut to [`api::MAX_CLAIM_TTL_MS`]) and the
/// items.
pub fn claim(req: &api::ClaimRequest, limits: &Limits) -> Result<(Vec<LookupKey>, u64), ApiError> {
    check_peer_id("peer_id", &req.peer_id)?;
    if req.ttl_ms == 0 {
        return Err(bad("ttl_ms must be at least 1"));
    }
    let ttl = req.ttl_ms.min(api::MAX_CLAIM_TTL_MS);
    if let Some(g) = &req.group {
        if g.is_empty() || g.len() > 256 || g.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(
                "group must be 1-256 characters without spaces or control characters",
            ));
        }
    }
    Ok((lookup_keys(&req.items, limits)?, ttl))
}

/// The group of a valid claim request, when it names one with a lease limit.
pub fn claim_group(req: &api::ClaimRequest) -> Option<crate::model::ClaimGroup<'_>> {
    match (&req.group, req.max_group_leases) {
        (Some(name), Some(max)) if max > 0 => Some(crate::model::ClaimGroup {
            name,
            max_leases: max,
        }),
        _ => None,
    }
}

/// The store keys of lookup or claim items (at most `limits.max_lookup_items`, each range
/// non-empty).
fn lookup_keys(items: &[api::LookupItem], limits: &Limits) -> Result<Vec<LookupKey>, ApiError> {
    let max = limits.max_lookup_items;
    if items.len() > max {
        return Err(bad(format!(
            "items has {} entries, at most {max} allowed",
            items.len()
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            if it.range.start >= it.range.end {
                return Err(bad(format!(
                    "items[{i}].range: start {} must be below end {}",
                    it.range.start, it.range.end
                )));
            }
            Ok(LookupKey {
                xorb: it.hash,
                start: it.range.start,
                end: it.range.end,
            })
        })
        .collect()
}

fn repo_segment(field: &str, s: &str) -> Result<(), ApiError> {
    let ok = !s.is_empty()
        && s.len() <= 96
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "{field} must be 1-96 characters of A-Z a-z 0-9 . _ -"
        )))
    }
}

fn check_revision(rev: &str) -> Result<(), ApiError> {
    if rev.is_empty() || rev.len() > 256 || rev.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(bad("revision must be 1-256 characters without spaces"));
    }
    Ok(())
}

pub fn manifest_key(org: &str, name: &str, revision: &str) -> Result<ManifestKey, ApiError> {
    repo_segment("org", org)?;
    repo_segment("name", name)?;
    check_revision(revision)?;
    Ok(ManifestKey {
        org: org.to_string(),
        name: name.to_string(),
        revision: revision.to_string(),
    })
}

fn lower_hex(s: &str, lens: &[usize]) -> bool {
    lens.contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A safe relative path: `/`-separated, no empty, `.` or `..` component, no backslash.
fn check_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 4096
        && !path.chars().any(|c| c.is_control() || c == '\\')
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

pub fn check_manifest(m: &api::Manifest) -> Result<(), ApiError> {
    if !lower_hex(&m.commit, &[40, 64]) {
        return Err(bad("commit must be 40 or 64 lowercase hex digits"));
    }
    if m.files.len() > MAX_MANIFEST_FILES {
        return Err(bad(format!(
            "manifest has more than {MAX_MANIFEST_FILES} files"
        )));
    }
    for (i, f) in m.files.iter().enumerate() {
        if !check_path(&f.path) {
            return Err(bad(format!(
                "files[{i}].path must be a relative path without `..` or empty parts"
            )));
        }
        if let Some(sha) = &f.sha256 {
            if !lower_hex(sha, &[64]) {
                return Err(bad(format!(
                    "files[{i}].sha256 must be 64 lowercase hex digits"
                )));
            }
        }
        for (j, t) in f.terms.iter().enumerate() {
            if t.range.start >= t.range.end {
                return Err(bad(format!(
                    "files[{i}].terms[{j}].range: start {} must be below end {}",
                    t.range.start, t.range.end
                )));
            }
        }
    }
    Ok(())
}

pub fn report(req: api::ReportRequest, now_ms: u64) -> Result<Report, ApiError> {
    if let Some(id) = &req.peer_id {
        check_peer_id("peer_id", id)?;
    }
    let (org, name) = req
        .repo
        .split_once('/')
        .ok_or_else(|| bad("repo must be org/name"))?;
    repo_segment("repo org", org)?;
    repo_segment("repo name", name)?;
    check_revision(&req.revision)?;
    Ok(Report {
        peer_id: req.peer_id,
        repo: req.repo,
        revision: req.revision,
        bytes: SourceBytes {
            local: req.bytes.local,
            peers: req.bytes.peers,
            edges: req.bytes.edges,
            upstream: req.bytes.upstream,
        },
        files: req.files,
        duration_ms: req.duration_ms,
        received_at_ms: now_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_escape_are_refused() {
        for p in ["a/b.bin", "model.safetensors", "x/.hidden/y"] {
            assert!(check_path(p), "{p}");
        }
        for p in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "a/./b",
            "a\\b",
            "a/",
            "a\0b",
        ] {
            assert!(!check_path(p), "{p:?}");
        }
    }

    #[test]
    fn peer_ids_are_a_small_alphabet() {
        assert!(check_peer_id("id", "edge-1.zone_a:7070@x").is_ok());
        for bad in ["", "has space", "slash/", "é", &"x".repeat(129)] {
            assert!(check_peer_id("id", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn repo_segments() {
        assert!(manifest_key("meta-llama", "Llama-3.1-8B", "main").is_ok());
        assert!(manifest_key("org", "name", "refs/pr/1").is_ok());
        assert!(manifest_key("..", "name", "main").is_err());
        assert!(manifest_key("org", "na/me", "main").is_err());
        assert!(manifest_key("org", "name", "has space").is_err());
    }
}
