//! The one HTTP client of the Hugging Face Hub API and the Xet CAS API, used by `zest pull`,
//! `zest inspect` and the edge's upstream fetches and warm: revision → commit, tree listing
//! (with `Link` paging), the Xet read token (refreshed on 401), reconstructions (v2, v1
//! fallback), xorb range GETs with an exact length cap, plain-file downloads, a file's `HEAD`.
//!
//! Every request goes through one [`RetryPolicy`] ([`retry`]), applied here and nowhere above:
//! callers get a [`HubError`] after the policy's attempts and propagate it. Names that come from
//! a server or a user (repo ids, revisions, commits, paths) are checked by [`validate`], and URL
//! path parts are built with the one encoder in [`urls`].

pub mod client;
pub mod error;
pub mod retry;
pub mod urls;
pub mod validate;

pub use client::{
    CasSession, FileHead, HubClient, LfsInfo, RepoType, TreeEntry, MAX_JSON_BYTES, MAX_TOKEN_BYTES,
    MAX_TREE_PAGES,
};
pub use error::HubError;
pub use retry::RetryPolicy;
pub use urls::{encode_path, encode_segment, link_target, next_link};
pub use validate::{
    validate_commit, validate_etag, validate_rel_path, validate_repo_id, validate_revision,
};
