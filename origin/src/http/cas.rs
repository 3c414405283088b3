//! CAS API handlers: reconstructions (v1 and v2) and signed xorb byte ranges.
//!
//! A reconstruction needs a valid, unexpired CAS token for a repo that has the file. Its xorb
//! URLs are signed for exactly the byte ranges listed with them; a xorb GET must send a `Range`
//! equal to one signed range or to the whole signed list (answered `multipart/byteranges`),
//! before the expiry, or gets 403. Bytes come from the stored xorb's chunk region only.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};
use xet::cas::{
    parse_range_header, ByteRange, ChunkRange, FetchInfo, ReconstructionTerm, ReconstructionV1,
    ReconstructionV2, XorbMultiRangeFetch, XorbRangeDescriptor,
};
use xet::MerkleHash;

use super::body::{self, BodySpec};
use super::error::ApiError;
use super::{bearer, AppState};
use crate::reconstruct::{self, Plan, PlannedFetch};
use crate::signing::{format_ranges, parse_exact_ranges, InclusiveRange, SignatureError};

/// Most ranges signed into one v2 URL (keeps URLs near 8 KiB, as upstream does).
const RANGES_PER_URL: usize = 256;
/// Most ranges a xorb URL or `Range` header may carry.
const MAX_SIGNED_RANGES: usize = 4096;

fn signed_url(
    state: &AppState,
    base: &str,
    xorb: &MerkleHash,
    ranges: &[InclusiveRange],
    exp: u64,
) -> String {
    let sig = state.signer.xorb_signature(xorb, ranges, exp);
    let list = format!("bytes={}", format_ranges(ranges));
    format!(
        "{base}/xorbs/default/{xorb}?X-Xet-Signed-Range={}&Expires={exp}&Signature={sig}",
        utf8_percent_encode(&list, NON_ALPHANUMERIC)
    )
}

/// `GET /v{1,2}/reconstructions/{file_hash}`.
pub fn reconstruction(
    req: &HttpRequest,
    state: &AppState,
    version: u8,
    hash: &str,
) -> Result<HttpResponse, ApiError> {
    if version == 2 && state.config.disable_v2 {
        return Err(ApiError::not_found(
            "v2 reconstructions are disabled on this server",
        ));
    }
    let now = state.now();
    let token = bearer(req).ok_or_else(|| ApiError::unauthorized("missing CAS token"))?;
    let repo_id = state
        .signer
        .check_cas_token(token, now)
        .map_err(|e| match e {
            SignatureError::Expired(_) => ApiError::unauthorized("CAS token expired"),
            _ => ApiError::unauthorized("invalid CAS token"),
        })?;
    let hash = MerkleHash::from_hex(hash)
        .map_err(|e| ApiError::bad_request(format!("bad file hash: {e}")))?;
    let file = state
        .catalog
        .repos
        .get(repo_id)
        .and_then(|r| r.by_xet_hash.get(&hash))
        .ok_or_else(|| ApiError::not_found(format!("file {hash} not found")))?;
    let xet = file
        .xet
        .as_ref()
        .ok_or_else(|| ApiError::internal("file has no Xet record"))?;
    if file.size == 0 {
        return Err(ApiError::not_satisfiable(0));
    }
    let (start, end) = match req.headers().get("range") {
        None => (0, file.size - 1),
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| ApiError::bad_request("Range header is not ASCII"))?;
            match parse_range_header(v, Some(file.size)) {
                Ok(r) if r.len() == 1 => (r[0].start, r[0].end),
                Ok(_) => return Err(ApiError::bad_request("only one range per reconstruction")),
                Err(e) if e.is_not_satisfiable() => {
                    return Err(ApiError::not_satisfiable(file.size))
                }
                Err(e) => return Err(ApiError::bad_request(e.to_string())),
            }
        }
    };
    let plan = reconstruct::plan(
        &xet.terms,
        |h| state.catalog.xorbs.get(h).map(|x| x.as_ref()),
        start,
        end,
    )
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let base = state.base_url(req);
    let exp = now + state.config.xorb_url_ttl;
    let terms = terms_json(&plan);
    state
        .metrics
        .reconstructions_served
        .with_label_values(&[if version == 1 { "v1" } else { "v2" }])
        .inc();
    if version == 1 {
        let fetch_info = per_xorb(&plan, |xorb, fetches| {
            fetches
                .iter()
                .map(|f| FetchInfo {
                    range: ChunkRange::new(f.chunks.start, f.chunks.end),
                    url: signed_url(state, &base, xorb, &[f.bytes], exp),
                    url_range: ByteRange::new(f.bytes.0, f.bytes.1),
                })
                .collect()
        });
        return Ok(HttpResponse::Ok().json(ReconstructionV1 {
            offset_into_first_range: plan.offset_into_first_range,
            terms,
            fetch_info,
        }));
    }
    let xorbs = per_xorb(&plan, |xorb, fetches| {
        fetches
            .chunks(RANGES_PER_URL)
            .map(|group| {
                let ranges: Vec<InclusiveRange> = group.iter().map(|f| f.bytes).collect();
                XorbMultiRangeFetch {
                    url: signed_url(state, &base, xorb, &ranges, exp),
                    ranges: group
                        .iter()
                        .map(|f| XorbRangeDescriptor {
                            chunks: ChunkRange::new(f.chunks.start, f.chunks.end),
                            bytes: ByteRange::new(f.bytes.0, f.bytes.1),
                        })
                        .collect(),
                }
            })
            .collect()
    });
    Ok(HttpResponse::Ok().json(ReconstructionV2 {
        offset_into_first_range: plan.offset_into_first_range,
        terms,
        xorbs,
    }))
}

/// The plan's fetches as a JSON map by xorb, each xorb's list built by `entries`.
fn per_xorb<T>(
    plan: &Plan,
    mut entries: impl FnMut(&MerkleHash, &[PlannedFetch]) -> Vec<T>,
) -> HashMap<MerkleHash, Vec<T>> {
    plan.fetch
        .iter()
        .map(|(xorb, fetches)| (*xorb, entries(xorb, fetches)))
        .collect()
}

fn terms_json(plan: &Plan) -> Vec<ReconstructionTerm> {
    plan.terms
        .iter()
        .map(|t| ReconstructionTerm {
            hash: t.xorb,
            unpacked_length: t.unpacked_length,
            range: ChunkRange::new(t.chunks.start, t.chunks.end),
        })
        .collect()
}

/// The decoded value of query parameter `name` (first occurrence).
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| {
            percent_decode_str(&v.replace('+', " "))
                .decode_utf8()
                .ok()
                .map(|s| s.into_owned())
        })?
    })
}

/// `GET /xorbs/default/{xorb_hash}?X-Xet-Signed-Range=..&Expires=..&Signature=..`.
pub async fn xorb_range(
    req: &HttpRequest,
    state: &AppState,
    hash: &str,
) -> Result<HttpResponse, ApiError> {
    let forbidden = ApiError::forbidden;
    let xorb = MerkleHash::from_hex(hash).map_err(|_| forbidden("invalid xorb hash in URL"))?;
    let q = req.query_string();
    let signed =
        query_param(q, "X-Xet-Signed-Range").ok_or_else(|| forbidden("URL is not signed"))?;
    let expires = query_param(q, "Expires").ok_or_else(|| forbidden("URL has no expiry"))?;
    let sig = query_param(q, "Signature").ok_or_else(|| forbidden("URL has no signature"))?;
    let signed = parse_exact_ranges(&signed, MAX_SIGNED_RANGES)
        .ok_or_else(|| forbidden("malformed signed range"))?;
    let expires: u64 = expires.parse().map_err(|_| forbidden("malformed expiry"))?;
    state
        .signer
        .check_xorb_signature(&xorb, &signed, expires, &sig, state.now())
        .map_err(|e| match e {
            SignatureError::Expired(_) => forbidden("Request has expired"),
            _ => forbidden("Signature does not match"),
        })?;
    let range = req
        .headers()
        .get("range")
        .ok_or_else(|| forbidden("a Range header matching the signed ranges is required"))?
        .to_str()
        .map_err(|_| forbidden("Invalid Range Specified"))?;
    let asked = parse_exact_ranges(range, MAX_SIGNED_RANGES)
        .ok_or_else(|| forbidden("Invalid Range Specified"))?;
    let allowed = asked == signed || (asked.len() == 1 && signed.contains(&asked[0]));
    if !allowed {
        return Err(forbidden("Range does not match the signed ranges"));
    }
    let record = state
        .catalog
        .xorbs
        .get(&xorb)
        .ok_or_else(|| ApiError::not_found("xorb not found"))?;
    let region = record.chunk_region_len();
    if asked.iter().any(|&(_, e)| e >= region) {
        return Err(ApiError::not_satisfiable(region));
    }
    let file = tokio::fs::File::open(state.catalog.xorb_path(&xorb))
        .await
        .map_err(|e| ApiError::internal(format!("cannot open xorb: {e}")))?;
    let mut b = HttpResponse::build(StatusCode::PARTIAL_CONTENT);
    b.insert_header(("Accept-Ranges", "bytes"));
    let kind = if asked.len() == 1 { "single" } else { "multi" };
    state
        .metrics
        .xorb_range_requests
        .with_label_values(&[kind])
        .inc();
    let mut spec = if let [(s, e)] = asked.as_slice() {
        b.insert_header(("Content-Type", "application/octet-stream"));
        b.insert_header(("Content-Range", format!("bytes {s}-{e}/{region}")));
        BodySpec::single(*s, e - s + 1)
    } else {
        let boundary = format!("zest-origin-{:016x}", rand::random::<u64>());
        b.insert_header((
            "Content-Type",
            format!("multipart/byteranges; boundary={boundary}"),
        ));
        BodySpec::multipart(&asked, region, &boundary, "application/octet-stream")
    };
    spec.corrupt_at = state.faults.corrupt_offset(spec.file_len());
    if spec.corrupt_at.is_some() {
        state
            .metrics
            .faults_injected
            .with_label_values(&["corrupt"])
            .inc();
    }
    let len = spec.total_len();
    if req.method() == actix_web::http::Method::HEAD {
        return Ok(b.body(super::body::head_body(len)));
    }
    let stream = body::stream(
        file,
        spec,
        Arc::clone(&state.faults),
        state.metrics.xorb_bytes_served.clone(),
    );
    Ok(b.body(SizedStream::new(len, stream)))
}
