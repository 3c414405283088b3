//! The Hugging Face hub cache layout `huggingface_hub` reads (`SPEC-DIGEST.md` §6.4):
//! `models--{org}--{name}/blobs/{etag}`, `snapshots/{commit}/{path}` relative symlinks to the
//! blob, `refs/{revision}` holding the commit. Blobs are written as `{etag}.incomplete`,
//! verified by the caller and renamed; refs are written atomically (temporary file, rename), so a
//! killed pull never leaves a partial file under a final name. Like `huggingface_hub` itself,
//! nothing is fsynced unless asked ([`RepoCache::durable`], `zest pull --fsync`): after a power
//! loss a blob written in the last seconds may be short, which [`RepoCache::has_blob`]'s size
//! check sends to be fetched again. Every name that comes from a server is validated
//! (`hub::validate`) before it is joined to a path here.

use std::fs;
use std::path::{Path, PathBuf};

use xorbstore::{fsutil, Durability};

use hub::{
    validate_commit, validate_etag, validate_rel_path, validate_repo_id, validate_revision,
    HubError,
};

/// Why the cache could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A name from a server that cannot be a path component.
    #[error(transparent)]
    Name(#[from] HubError),
    #[error(transparent)]
    Io(#[from] PathIoError),
    #[error("{} is a symbolic link; refusing to write through it", .0.display())]
    SymlinkInPath(PathBuf),
    #[error("{0} path has no parent")]
    NoParent(&'static str),
}

/// An I/O error on a path, saying what was being done to it.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}", path.display())]
pub struct PathIoError {
    what: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

impl PathIoError {
    /// Maps an I/O error while `what`-ing `path` (`creating`, `renaming`, ...).
    pub fn on<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> Self + 'p {
        move |source| PathIoError {
            what,
            path: path.to_owned(),
            source,
        }
    }
}

/// Maps an I/O error on `path` to [`CacheError::Io`].
fn io<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> CacheError + 'p {
    let on = PathIoError::on(what, path);
    move |e| CacheError::Io(on(e))
}

/// One repo's folder in the hub cache.
#[derive(Debug, Clone)]
pub struct RepoCache {
    dir: PathBuf,
    durable: bool,
}

impl RepoCache {
    /// `hub_cache/models--org--name` (created).
    pub fn open(hub_cache: &Path, repo: &str) -> Result<Self, CacheError> {
        validate_repo_id(repo)?;
        let dir = hub_cache.join(format!("models--{}", repo.replace('/', "--")));
        fs::create_dir_all(dir.join("blobs")).map_err(io("creating", &dir))?;
        Ok(Self {
            dir,
            durable: false,
        })
    }

    fn durability(&self) -> Durability {
        if self.durable {
            Durability::Sync
        } else {
            Durability::Deferred
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `blobs/{etag}`.
    pub fn blob(&self, etag: &str) -> Result<PathBuf, CacheError> {
        validate_etag(etag)?;
        Ok(self.dir.join("blobs").join(etag))
    }

    /// `blobs/{etag}.incomplete`.
    pub fn incomplete(&self, etag: &str) -> Result<PathBuf, CacheError> {
        validate_etag(etag)?;
        Ok(self.dir.join("blobs").join(format!("{etag}.incomplete")))
    }

    /// True when the verified blob is already here with the right size.
    pub fn has_blob(&self, etag: &str, size: u64) -> bool {
        self.blob(etag)
            .ok()
            .and_then(|p| fs::symlink_metadata(p).ok())
            .is_some_and(|m| m.is_file() && m.len() == size)
    }

    /// Makes every blob, link and ref durable before it is renamed into place (fsync of the
    /// file and its folder): slower, the pull then waits for the disk.
    pub fn durable(mut self, on: bool) -> Self {
        self.durable = on;
        self
    }

    /// Renames `blobs/{etag}.incomplete` into place (fsynced first when durable).
    pub fn commit_blob(&self, etag: &str) -> Result<(), CacheError> {
        let tmp = self.incomplete(etag)?;
        let dst = self.blob(etag)?;
        fsutil::rename_into_place(&tmp, &dst, self.durability()).map_err(io("renaming", &tmp))
    }

    /// `snapshots/{commit}/{path}` → `../../blobs/{etag}` (one more `../` per folder of `path`).
    pub fn link_snapshot(
        &self,
        commit: &str,
        path: &str,
        etag: &str,
    ) -> Result<PathBuf, CacheError> {
        validate_commit(commit)?;
        validate_rel_path(path)?;
        validate_etag(etag)?;
        let snap = self.dir.join("snapshots").join(commit);
        let link = snap.join(path);
        let parent = link.parent().ok_or(CacheError::NoParent("snapshot"))?;
        // Refuse to follow a link planted in a folder of the snapshot.
        let mut cur = snap.clone();
        for comp in path.split('/').take(path.split('/').count() - 1) {
            cur.push(comp);
            if fs::symlink_metadata(&cur).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(CacheError::SymlinkInPath(cur));
            }
        }
        fs::create_dir_all(parent).map_err(io("creating", parent))?;
        let depth = path.split('/').count() - 1;
        let target = format!("{}../../blobs/{etag}", "../".repeat(depth));
        let tmp = parent.join(format!(
            ".{}.zest-tmp",
            link.file_name().and_then(|n| n.to_str()).unwrap_or("link")
        ));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp).map_err(io("linking", &tmp))?;
        fsutil::rename_into_place(&tmp, &link, self.durability()).map_err(io("linking", &link))?;
        Ok(link)
    }

    /// `refs/{rev}` ← `commit`, atomically.
    pub fn write_ref(&self, rev: &str, commit: &str) -> Result<(), CacheError> {
        validate_revision(rev)?;
        validate_commit(commit)?;
        let path = self.dir.join("refs").join(rev);
        let parent = path.parent().ok_or(CacheError::NoParent("ref"))?;
        fs::create_dir_all(parent).map_err(io("creating", parent))?;
        fsutil::write_atomic_with(&path, commit.as_bytes(), self.durability())
            .map_err(io("writing", &path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_huggingface_hub() {
        let t = tempfile::tempdir().expect("tmp");
        let c = RepoCache::open(t.path(), "acme/m").expect("open");
        let etag = "a".repeat(64);
        let commit = "b".repeat(40);
        fs::write(c.incomplete(&etag).expect("p"), b"x").expect("w");
        c.commit_blob(&etag).expect("commit");
        let link = c
            .link_snapshot(&commit, "sub/dir/f.bin", &etag)
            .expect("link");
        assert_eq!(
            fs::read_link(&link).expect("readlink"),
            PathBuf::from(format!("../../../../blobs/{etag}"))
        );
        assert_eq!(fs::read(&link).expect("read"), b"x");
        c.write_ref("main", &commit).expect("ref");
        assert_eq!(
            fs::read_to_string(t.path().join("models--acme--m/refs/main")).expect("r"),
            commit
        );
    }

    #[test]
    fn nothing_is_written_outside_the_cache() {
        let t = tempfile::tempdir().expect("tmp");
        let c = RepoCache::open(t.path(), "acme/m").expect("open");
        let etag = "a".repeat(64);
        let commit = "b".repeat(40);
        for p in ["../../../x", "/tmp/x", "a/../../x", "a//b"] {
            assert!(c.link_snapshot(&commit, p, &etag).is_err(), "{p}");
        }
        assert!(c.link_snapshot("../x", "f", &etag).is_err());
        assert!(c.link_snapshot(&commit, "f", "../../etc/passwd").is_err());
        assert!(c.write_ref("../../x", &commit).is_err());
        assert!(RepoCache::open(t.path(), "../x").is_err());
        // A planted link in a snapshot folder is not followed.
        let snap = t.path().join("models--acme--m/snapshots").join(&commit);
        fs::create_dir_all(&snap).expect("mkdir");
        std::os::unix::fs::symlink(t.path(), snap.join("evil")).expect("symlink");
        assert!(c.link_snapshot(&commit, "evil/f", &etag).is_err());
    }
}
