//! Hub API handlers: resolve (HEAD/GET of a file), model info, tree listing, Xet read token.
//!
//! Shapes follow `hf-client-contract.md`: Xet files carry `X-Xet-Hash`, `X-Linked-Size`,
//! `X-Linked-Etag` and a `Link rel="xet-auth"` to the token route; plain files carry the git
//! blob id as `ETag`. Both can also be downloaded whole (or by `Range`) from the resolve URL,
//! streamed from the source file.

use std::sync::Arc;

use actix_web::body::SizedStream;
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use serde::Deserialize;
use serde_json::{json, Value};
use xet::cas::{parse_range_header, CasJwtInfo};

use super::body::{self, BodySpec};
use super::error::ApiError;
use super::AppState;
use crate::catalog::{Repo, RepoFile};

/// `HEAD`/`GET /{org}/{name}/resolve/{rev}/{path}`.
pub async fn resolve(
    req: &HttpRequest,
    state: &AppState,
    org: &str,
    name: &str,
    rev: &str,
    path: &str,
) -> Result<HttpResponse, ApiError> {
    let repo = state.repo(org, name)?;
    let commit = repo
        .resolve_revision(rev)
        .ok_or_else(|| ApiError::revision_not_found(rev))?;
    let file = repo
        .files
        .get(path)
        .ok_or_else(|| ApiError::entry_not_found(path))?;
    let base = state.base_url(req);

    let mut b = HttpResponseBuilder::new(StatusCode::OK);
    b.insert_header(("X-Repo-Commit", commit))
        .insert_header(("Accept-Ranges", "bytes"))
        .insert_header(("Content-Type", "application/octet-stream"));
    if let Some(x) = &file.xet {
        let etag = format!("\"{}\"", file.sha256);
        b.insert_header(("X-Xet-Hash", x.hash.to_hex()))
            .insert_header(("X-Linked-Size", file.size.to_string()))
            .insert_header(("X-Linked-Etag", etag.clone()))
            .insert_header(("ETag", etag))
            .insert_header((
                "Link",
                format!(
                    "<{base}/api/models/{}/xet-read-token/{commit}>; rel=\"xet-auth\", <{base}/v1/reconstructions/{}>; rel=\"xet-reconstruction-info\"",
                    repo.id, x.hash
                ),
            ));
    } else {
        b.insert_header(("ETag", format!("\"{}\"", file.git_sha1)));
    }

    // Range, for resumed downloads: one range only; several are answered with the whole body.
    let mut range = None;
    if let Some(v) = req.headers().get("range") {
        let v = v
            .to_str()
            .map_err(|_| ApiError::bad_request("Range header is not ASCII"))?;
        match parse_range_header(v, Some(file.size)) {
            Ok(r) if r.len() == 1 => range = Some((r[0].start, r[0].end)),
            Ok(_) => {}
            Err(e) if e.is_not_satisfiable() => return Err(ApiError::not_satisfiable(file.size)),
            Err(e) => return Err(ApiError::bad_request(e.to_string())),
        }
    }
    let (offset, len) = match range {
        Some((s, e)) => {
            b.status(StatusCode::PARTIAL_CONTENT);
            b.insert_header(("Content-Range", format!("bytes {s}-{e}/{}", file.size)));
            (s, e - s + 1)
        }
        None => (0, file.size),
    };
    if req.method() == Method::HEAD {
        return Ok(b.body(super::body::head_body(len)));
    }
    let f = tokio::fs::File::open(&file.source)
        .await
        .map_err(|e| ApiError::internal(format!("cannot open {path}: {e}")))?;
    let stream = body::stream(
        f,
        BodySpec::single(offset, len),
        Arc::clone(&state.faults),
        state.metrics.file_bytes_served.clone(),
    );
    Ok(b.body(SizedStream::new(len, stream)))
}

fn lfs_json(f: &RepoFile) -> Value {
    json!({ "oid": f.sha256, "sha256": f.sha256, "size": f.size, "pointerSize": f.lfs_pointer().len() })
}

/// `GET /api/models/{repo}[/revision/{rev}]`.
pub fn model_info(
    state: &AppState,
    org: &str,
    name: &str,
    rev: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let repo = state.repo(org, name)?;
    let rev = rev.unwrap_or("main");
    let commit = repo
        .resolve_revision(rev)
        .ok_or_else(|| ApiError::revision_not_found(rev))?;
    let siblings: Vec<Value> = repo
        .files
        .values()
        .map(|f| {
            let mut v = json!({ "rfilename": f.path, "size": f.size, "blobId": f.blob_id() });
            if let Some(x) = &f.xet {
                v["lfs"] = json!({ "sha256": f.sha256, "size": f.size, "pointerSize": f.lfs_pointer().len() });
                v["xetHash"] = json!(x.hash.to_hex());
            }
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "_id": repo.id,
        "id": repo.id,
        "modelId": repo.id,
        "sha": commit,
        "private": false,
        "disabled": false,
        "gated": if state.config.token.is_some() { json!("manual") } else { json!(false) },
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": siblings,
        "usedStorage": repo.files.values().map(|f| f.size).sum::<u64>(),
    })))
}

#[derive(Debug, Deserialize)]
struct TreeQuery {
    recursive: Option<String>,
    cursor: Option<String>,
}

fn truthy(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("true" | "True" | "1" | "yes"))
}

/// Entries of `repo` under `dir` (`""` = root): directories and files, sorted by path.
fn tree_entries(repo: &Repo, dir: &str, recursive: bool) -> Vec<Value> {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let wanted = |p: &str| -> bool {
        p.strip_prefix(prefix.as_str())
            .is_some_and(|rest| !rest.is_empty() && (recursive || !rest.contains('/')))
    };
    let mut out: Vec<(String, Value)> = Vec::new();
    for d in repo.dirs.iter().filter(|d| wanted(d)) {
        let oid = crate::catalog::git_blob_sha1(format!("tree {}\0{d}", repo.commit).as_bytes());
        out.push((
            d.clone(),
            json!({ "type": "directory", "oid": oid, "size": 0, "path": d }),
        ));
    }
    for f in repo.files.values().filter(|f| wanted(&f.path)) {
        let mut v = json!({ "type": "file", "oid": f.blob_id(), "size": f.size, "path": f.path });
        if let Some(x) = &f.xet {
            v["lfs"] = lfs_json(f);
            v["xetHash"] = json!(x.hash.to_hex());
        }
        out.push((f.path.clone(), v));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, v)| v).collect()
}

/// `GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=..&cursor=..`, paged with `Link`.
pub fn tree(
    req: &HttpRequest,
    state: &AppState,
    org: &str,
    name: &str,
    rev: &str,
    dir: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let repo = state.repo(org, name)?;
    let commit = repo
        .resolve_revision(rev)
        .ok_or_else(|| ApiError::revision_not_found(rev))?;
    let dir = dir.unwrap_or("");
    if !dir.is_empty() && !repo.dirs.contains(dir) {
        return Err(ApiError::entry_not_found(dir));
    }
    let q = actix_web::web::Query::<TreeQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?;
    let recursive = truthy(&q.recursive);
    let start: usize = match &q.cursor {
        None => 0,
        Some(c) => c.parse().map_err(|_| ApiError::bad_request("bad cursor"))?,
    };
    let entries = tree_entries(repo, dir, recursive);
    if start > entries.len() {
        return Err(ApiError::bad_request("cursor past the end"));
    }
    let page = state.config.tree_page_size;
    let end = (start + page).min(entries.len());
    let mut b = HttpResponse::Ok();
    b.insert_header(("X-Repo-Commit", commit));
    if end < entries.len() {
        // Keep the caller's other parameters, replace the cursor.
        let mut params: Vec<String> = req
            .query_string()
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("cursor="))
            .map(str::to_string)
            .collect();
        params.push(format!("cursor={end}"));
        let path = req.uri().path();
        b.insert_header((
            "Link",
            format!(
                "<{}{path}?{}>; rel=\"next\"",
                state.base_url(req),
                params.join("&")
            ),
        ));
    }
    Ok(b.json(&entries[start..end]))
}

/// `GET /api/models/{repo}/xet-read-token/{rev}`: the token in headers and JSON.
pub fn xet_read_token(
    req: &HttpRequest,
    state: &AppState,
    org: &str,
    name: &str,
    rev: &str,
) -> Result<HttpResponse, ApiError> {
    let repo = state.repo(org, name)?;
    repo.resolve_revision(rev)
        .ok_or_else(|| ApiError::revision_not_found(rev))?;
    let exp = state.now() + state.config.cas_token_ttl;
    let info = CasJwtInfo {
        cas_url: state.base_url(req),
        exp,
        access_token: state.signer.cas_token(&repo.id, exp),
    };
    Ok(HttpResponse::Ok()
        .insert_header(("X-Xet-Cas-Url", info.cas_url.clone()))
        .insert_header(("X-Xet-Access-Token", info.access_token.clone()))
        .insert_header(("X-Xet-Token-Expiration", exp.to_string()))
        .json(&info))
}
