//! Checks of names that come from a user or a server (repo ids, revisions, commit ids, file
//! paths, blob ids) before anything builds a URL or a path on disk from them.

use crate::HubError;

fn name_part_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 96
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A repo id: `org/name`, each 1–96 of `A-Z a-z 0-9 . _ -`, not `.`/`..`.
pub fn validate_repo_id(repo: &str) -> Result<(), HubError> {
    match repo.split_once('/') {
        Some((org, name)) if name_part_ok(org) && name_part_ok(name) => Ok(()),
        _ => Err(HubError::InvalidName(format!(
            "invalid repo id {repo:?}: expected org/name of letters, digits, . _ -"
        ))),
    }
}

/// A revision as the user or a server gives it: 1–256 characters, no control characters,
/// spaces, backslashes, and no `.`/`..`/empty `/`-separated component (it names a file under
/// `refs/`).
pub fn validate_revision(rev: &str) -> Result<(), HubError> {
    let ok = !rev.is_empty()
        && rev.len() <= 256
        && !rev.chars().any(|c| c.is_control() || c == ' ' || c == '\\')
        && rev
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if !ok {
        return Err(HubError::InvalidName(format!("invalid revision {rev:?}")));
    }
    Ok(())
}

/// A commit id: 40 or 64 lowercase hex digits.
pub fn validate_commit(commit: &str) -> Result<(), HubError> {
    if (commit.len() == 40 || commit.len() == 64)
        && commit
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(HubError::InvalidName(format!(
            "the server sent an invalid commit id {commit:?}"
        )))
    }
}

/// A file path from the server: relative, `/`-separated, no empty, `.` or `..` component, no
/// backslash, NUL or control character, at most 4096 bytes.
pub fn validate_rel_path(path: &str) -> Result<(), HubError> {
    let ok = !path.is_empty()
        && path.len() <= 4096
        && !path.starts_with('/')
        && !path.chars().any(|c| c.is_control() || c == '\\')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains(':'));
    if !ok {
        return Err(HubError::InvalidName(format!(
            "the server sent an unsafe file path {path:?}"
        )));
    }
    Ok(())
}

/// A content id used as a blob file name: 40 (git sha1) or 64 (sha256) lowercase hex digits.
pub fn validate_etag(etag: &str) -> Result<(), HubError> {
    validate_commit(etag)
        .map_err(|_| HubError::InvalidName(format!("the server sent an invalid oid {etag:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_from_a_malicious_server_are_refused() {
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "./a",
            "a/.",
            "a\\..\\b",
            "",
            "a\0b",
            "C:/x",
            "a/\n",
        ] {
            assert!(validate_rel_path(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["config.json", "sub/dir/model.safetensors", "a..b/.hidden"] {
            validate_rel_path(good).expect(good);
        }
    }

    #[test]
    fn repo_ids_revisions_and_commits_are_validated() {
        validate_repo_id("acme/model-1.5_x").expect("ok");
        for bad in ["acme", "../x", "a/b/c", "a/..", "a b/c", "/x", "a/"] {
            assert!(validate_repo_id(bad).is_err(), "{bad:?}");
        }
        validate_revision("main").expect("ok");
        validate_revision("refs/pr/1").expect("ok");
        for bad in ["", "../main", "a/../b", "a b", "/x", "a\\b"] {
            assert!(validate_revision(bad).is_err(), "{bad:?}");
        }
        validate_commit(&"a".repeat(40)).expect("ok");
        assert!(validate_commit(&"A".repeat(40)).is_err());
        assert!(validate_commit("../../etc").is_err());
    }
}
