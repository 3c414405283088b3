//! Finds the repos and files under the root folder.
//!
//! Every `ROOT/{org}/{name}/` folder is a repo; every regular file below it (any depth) is one
//! of its files. Names that a Hub URL could not carry safely are skipped with a warning, as are
//! the state folder, `.git` folders, directory symlinks and symlinks whose target lies outside
//! the root. The result is the only way a request reaches a file: handlers look paths up in the
//! index built from this scan, never in the file system.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// Deepest folder nesting followed inside a repo (bounds the walk).
const MAX_DEPTH: usize = 64;

/// One file found under a repo folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedFile {
    /// Path inside the repo, `/`-separated (`sub/dir/model.bin`).
    pub path: String,
    /// Where to read it (a symlink's canonical target, inside the root).
    pub source: PathBuf,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch (0 if earlier or unknown).
    pub mtime_ns: u64,
}

/// One repo folder and its files, sorted by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedRepo {
    pub org: String,
    pub name: String,
    pub files: Vec<ScannedFile>,
}

impl ScannedRepo {
    /// `org/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.org, self.name)
    }
}

/// Whether `s` is a valid org or repo name: 1..=96 characters of `[A-Za-z0-9._-]`, not
/// starting with `.` or `-`.
pub fn is_valid_repo_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 96
        && !s.starts_with('.')
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether `s` is a valid path component of a file inside a repo: not empty, not `.` or `..`,
/// no `/`, `\`, NUL or other control characters, at most 255 bytes.
pub fn is_valid_path_component(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s != "."
        && s != ".."
        && !s.chars().any(|c| c == '/' || c == '\\' || c.is_control())
}

/// Whether `path` is a valid `/`-separated file path inside a repo.
pub fn is_valid_file_path(path: &str) -> bool {
    path.len() <= 4096 && path.split('/').all(is_valid_path_component)
}

/// Scans `root` for repos. `state_dir` (if inside the root) is skipped.
pub fn scan_root(root: &Path, state_dir: &Path) -> io::Result<Vec<ScannedRepo>> {
    let root = fs::canonicalize(root)?;
    let state = fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let mut repos = Vec::new();
    for org_entry in sorted_entries(&root)? {
        let org_path = org_entry.path();
        let Some(org) = utf8_name(&org_entry) else {
            continue;
        };
        if org_path == state || !is_valid_repo_part(&org) || !is_real_dir(&org_entry) {
            if !org.starts_with('.') {
                tracing::warn!(path = %org_path.display(), "skipping: not a valid org folder");
            }
            continue;
        }
        for repo_entry in sorted_entries(&org_path)? {
            let repo_path = repo_entry.path();
            let Some(name) = utf8_name(&repo_entry) else {
                continue;
            };
            if repo_path == state || !is_valid_repo_part(&name) || !is_real_dir(&repo_entry) {
                if !name.starts_with('.') {
                    tracing::warn!(path = %repo_path.display(), "skipping: not a valid repo folder");
                }
                continue;
            }
            let mut files = Vec::new();
            walk(&root, &state, &repo_path, "", 0, &mut files)?;
            files.sort_by(|a, b| a.path.cmp(&b.path));
            repos.push(ScannedRepo {
                org: org.clone(),
                name,
                files,
            });
        }
    }
    Ok(repos)
}

fn sorted_entries(dir: &Path) -> io::Result<Vec<fs::DirEntry>> {
    let mut v = fs::read_dir(dir)?.collect::<io::Result<Vec<_>>>()?;
    v.sort_by_key(|e| e.file_name());
    Ok(v)
}

fn utf8_name(e: &fs::DirEntry) -> Option<String> {
    let n = e.file_name().into_string().ok();
    if n.is_none() {
        tracing::warn!(path = %e.path().display(), "skipping: name is not UTF-8");
    }
    n
}

fn is_real_dir(e: &fs::DirEntry) -> bool {
    e.file_type().map(|t| t.is_dir()).unwrap_or(false)
}

fn walk(
    root: &Path,
    state: &Path,
    dir: &Path,
    prefix: &str,
    depth: usize,
    out: &mut Vec<ScannedFile>,
) -> io::Result<()> {
    if depth > MAX_DEPTH {
        tracing::warn!(path = %dir.display(), "skipping: folders nested too deep");
        return Ok(());
    }
    for entry in sorted_entries(dir)? {
        let path = entry.path();
        let Some(name) = utf8_name(&entry) else {
            continue;
        };
        if path == state || name == ".git" {
            continue;
        }
        if !is_valid_path_component(&name) {
            tracing::warn!(path = %path.display(), "skipping: name not allowed in a repo path");
            continue;
        }
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let ft = entry.file_type()?;
        if ft.is_dir() {
            walk(root, state, &path, &rel, depth + 1, out)?;
            continue;
        }
        let source = if ft.is_symlink() {
            match fs::canonicalize(&path) {
                Ok(t) if t.starts_with(root) && !t.starts_with(state) && t.is_file() => t,
                _ => {
                    tracing::warn!(path = %path.display(), "skipping symlink: target is outside the root or not a file");
                    continue;
                }
            }
        } else if ft.is_file() {
            path.clone()
        } else {
            continue;
        };
        let meta = fs::metadata(&source)?;
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        out.push(ScannedFile {
            path: rel,
            source,
            size: meta.len(),
            mtime_ns,
        });
    }
    Ok(())
}

/// Repos keyed by `org/name`, for lookups.
pub fn by_id(repos: &[ScannedRepo]) -> BTreeMap<String, &ScannedRepo> {
    repos.iter().map(|r| (r.id(), r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_names() {
        assert!(is_valid_repo_part("gpt-2.5_x"));
        assert!(!is_valid_repo_part(".hidden"));
        assert!(!is_valid_repo_part("a/b"));
        assert!(!is_valid_repo_part(""));
        assert!(is_valid_file_path("sub/dir/model.bin"));
        assert!(is_valid_file_path(".gitattributes"));
        assert!(!is_valid_file_path("../etc/passwd"));
        assert!(!is_valid_file_path("/etc/passwd"));
        assert!(!is_valid_file_path("a//b"));
        assert!(!is_valid_file_path("a/./b"));
        assert!(!is_valid_file_path("a\\b"));
    }

    #[test]
    fn scans_repos_and_skips_outside_symlinks() {
        let root = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let repo = root.path().join("org/model");
        fs::create_dir_all(repo.join("sub/dir")).expect("mkdir");
        fs::write(repo.join("config.json"), b"{}").expect("write");
        fs::write(repo.join("sub/dir/w.bin"), b"abc").expect("write");
        fs::write(outside.path().join("secret"), b"secret").expect("write");
        std::os::unix::fs::symlink(outside.path().join("secret"), repo.join("leak"))
            .expect("symlink");
        std::os::unix::fs::symlink(repo.join("config.json"), repo.join("alias.json"))
            .expect("symlink");
        fs::create_dir_all(root.path().join(".zest-origin-v1/xorbs")).expect("mkdir");
        let repos = scan_root(root.path(), &root.path().join(".zest-origin-v1")).expect("scan");
        assert_eq!(repos.len(), 1);
        assert_eq!(repos[0].id(), "org/model");
        let paths: Vec<_> = repos[0].files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["alias.json", "config.json", "sub/dir/w.bin"]);
        assert_eq!(repos[0].files[2].size, 3);
    }
}
