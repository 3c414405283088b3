//! Requests that try to leave the root or name things that do not exist get a 4xx and never
//! a byte of a file outside the served repos.

use crate::common::{client, primary, raw_get};

#[test]
fn traversal_and_absolute_paths_are_rejected() {
    let o = primary();
    for path in [
        "/acme/big/resolve/main/../../../etc/passwd",
        "/acme/big/resolve/main/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/acme/big/resolve/main/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/acme/big/resolve/main//etc/passwd",
        "/acme/big/resolve/main/%2Fetc%2Fpasswd",
        "/acme/big/resolve/main/sub/..%5c..%5cconfig.json",
        "/acme/../acme/big/resolve/main/config.json",
        "/acme/big/resolve/main/./config.json",
        "/api/models/acme/big/tree/main/..",
        "/acme/big/resolve/main/config.json%00.txt",
    ] {
        let (status, _, body) = raw_get(&o.addr, path, &[]);
        assert_eq!(status, 400, "{path}");
        assert!(!String::from_utf8_lossy(&body).contains("root:"), "{path}");
    }
}

#[test]
fn unknown_repo_file_and_revision_are_404() {
    let o = primary();
    for (path, code) in [
        ("/acme/nope/resolve/main/config.json", "RepoNotFound"),
        ("/nope/big/resolve/main/config.json", "RepoNotFound"),
        ("/acme/big/resolve/main/nope.json", "EntryNotFound"),
        ("/acme/big/resolve/main/sub", "EntryNotFound"),
        ("/acme/big/resolve/v1.0/config.json", "RevisionNotFound"),
        (
            "/acme/big/resolve/0000000000000000000000000000000000000000/config.json",
            "RevisionNotFound",
        ),
        // The state folder and files outside the root are not repos or files.
        ("/.zest-origin-v1/xorbs-v1/resolve/main/x", "RepoNotFound"),
        ("/acme/small/resolve/main/leak.txt", "EntryNotFound"),
        ("/api/models/acme/nope/revision/main", "RepoNotFound"),
        ("/api/models/acme/big/xet-read-token/v2", "RevisionNotFound"),
    ] {
        let (status, head, body) = raw_get(&o.addr, path, &[]);
        assert_eq!(status, 404, "{path}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("x-error-code: {}", code.to_ascii_lowercase())),
            "{path}: {head}"
        );
        assert!(!String::from_utf8_lossy(&body).contains("top secret"));
    }
    assert_eq!(raw_get(&o.addr, "/etc/passwd", &[]).0, 404);
    // A symlink to a file inside the root is served.
    let r = client()
        .get(o.url("/acme/small/resolve/main/alias.json"))
        .send()
        .expect("get");
    assert_eq!(r.status(), 200);
}
