//! The read-only view the HTTP handlers serve from: repos, their commit, files and xorbs.
//!
//! Built once at start from the scan and the index. A request's repo, revision and path are
//! looked up here and nowhere else, so a URL can only ever reach a file that the scan found
//! inside the root.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha1::{Digest, Sha1};
use xet::MerkleHash;

use crate::index::{self, FileRecord, Index, XetRecord, XorbRecord};
use crate::scan::ScannedRepo;

/// A file of a repo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoFile {
    /// Path inside the repo.
    pub path: String,
    /// Where its bytes are read from.
    pub source: PathBuf,
    pub size: u64,
    /// Hex SHA-256 (LFS oid).
    pub sha256: String,
    /// Hex git blob SHA-1 of the content.
    pub git_sha1: String,
    pub xet: Option<XetRecord>,
}

impl RepoFile {
    /// The git LFS pointer file that stands for this file in git.
    pub fn lfs_pointer(&self) -> String {
        format!(
            "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n",
            self.sha256, self.size
        )
    }

    /// The git blob id the Hub lists for this file: of the LFS pointer for Xet files, of the
    /// content otherwise.
    pub fn blob_id(&self) -> String {
        if self.xet.is_some() {
            git_blob_sha1(self.lfs_pointer().as_bytes())
        } else {
            self.git_sha1.clone()
        }
    }
}

/// Git blob id of `data`.
pub fn git_blob_sha1(data: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", data.len()).as_bytes());
    h.update(data);
    hex::encode(h.finalize())
}

/// A model repo with its one revision.
#[derive(Debug)]
pub struct Repo {
    /// `org/name`.
    pub id: String,
    /// 40-hex commit id derived from the content; `main` points at it.
    pub commit: String,
    pub files: BTreeMap<String, Arc<RepoFile>>,
    /// Every folder that contains a file (at any depth), e.g. `sub` and `sub/dir`.
    pub dirs: BTreeSet<String>,
    /// Xet files by Xet hash.
    pub by_xet_hash: HashMap<MerkleHash, Arc<RepoFile>>,
}

impl Repo {
    /// Resolves a revision (`main` or the commit id) to the commit id.
    pub fn resolve_revision(&self, rev: &str) -> Option<&str> {
        (rev == "main" || rev == self.commit).then_some(self.commit.as_str())
    }
}

/// Everything the server serves.
#[derive(Debug)]
pub struct Catalog {
    pub repos: BTreeMap<String, Repo>,
    pub xorbs: HashMap<MerkleHash, Arc<XorbRecord>>,
    pub state_dir: PathBuf,
}

impl Catalog {
    /// Builds the catalog; files missing from the index (unreadable at scan) are left out.
    pub fn new(repos: &[ScannedRepo], index: &Index, state_dir: &Path) -> Self {
        let mut out = BTreeMap::new();
        for r in repos {
            let mut files = BTreeMap::new();
            let mut dirs = BTreeSet::new();
            let mut by_xet_hash = HashMap::new();
            for f in &r.files {
                let Some(FileRecord {
                    sha256,
                    git_sha1,
                    xet,
                    ..
                }) = index.files.get(&index::file_key(r, f))
                else {
                    continue;
                };
                let file = Arc::new(RepoFile {
                    path: f.path.clone(),
                    source: f.source.clone(),
                    size: f.size,
                    sha256: sha256.clone(),
                    git_sha1: git_sha1.clone(),
                    xet: xet.clone(),
                });
                let mut p = f.path.as_str();
                while let Some((parent, _)) = p.rsplit_once('/') {
                    dirs.insert(parent.to_string());
                    p = parent;
                }
                if let Some(x) = &file.xet {
                    by_xet_hash.insert(x.hash, file.clone());
                }
                files.insert(f.path.clone(), file);
            }
            let commit = commit_id(&files);
            out.insert(
                r.id(),
                Repo {
                    id: r.id(),
                    commit,
                    files,
                    dirs,
                    by_xet_hash,
                },
            );
        }
        let xorbs = index
            .xorbs
            .iter()
            .map(|(h, x)| (*h, Arc::new(x.clone())))
            .collect();
        Catalog {
            repos: out,
            xorbs,
            state_dir: state_dir.to_path_buf(),
        }
    }

    pub fn xorb_path(&self, hash: &MerkleHash) -> PathBuf {
        index::xorb_path(&self.state_dir, hash)
    }
}

/// Stable commit id: SHA-1 over the sorted `(path, sha256)` pairs.
fn commit_id(files: &BTreeMap<String, Arc<RepoFile>>) -> String {
    let mut h = Sha1::new();
    h.update(b"zest-origin commit v1\n");
    for (path, f) in files {
        h.update(path.as_bytes());
        h.update(b"\0");
        h.update(f.sha256.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_blob_id_matches_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            git_blob_sha1(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }
}
