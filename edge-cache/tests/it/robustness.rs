//! Corrupt upstream bytes, crashes during writes, and the cache quota.

use crate::common::*;

fn xr_files(cache: &std::path::Path) -> usize {
    std::fs::read_dir(cache.join(xorbstore::STORE_DIR))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".xr"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn corrupt_upstream_bytes_are_never_cached_or_served() {
    let origin = Origin::start(|f| {
        f.fault_corrupt_rate = 1.0;
        f.fault_scope = zest_origin::config::FaultScope::Xorbs;
    });
    let cache = cache_dir();
    let edge = Edge::start(&origin.base, &cache, &[]);
    let res = snapshot(
        &edge.base,
        &[
            ("HF_XET_CLIENT_RETRY_MAX_ATTEMPTS", "1"),
            ("HF_XET_CLIENT_RETRY_BASE_DELAY", "10ms"),
            ("HF_XET_CLIENT_RETRY_MAX_DURATION", "2s"),
        ],
    );
    // The client fails (it never gets wrong bytes): any file it does finish must be right.
    match res {
        Ok(files) => {
            for (p, sha) in &fixture().files {
                if let Some(got) = files.get(p) {
                    assert_eq!(got, sha, "wrong bytes served for {p}");
                }
            }
            panic!("download of a fully corrupt upstream succeeded: {files:?}");
        }
        Err(e) => assert!(!e.is_empty()),
    }
    assert_eq!(
        edge.metric("zest_edge_ranges"),
        0.0,
        "corrupt ranges were stored"
    );
    assert_eq!(xr_files(&cache), 0);
    assert!(edge.metric("zest_edge_verification_failures_total") > 0.0);
}

#[test]
fn kill_9_during_writes_then_restart_holds_only_complete_verified_ranges() {
    let origin = Origin::start(|f| f.fault_bandwidth_bytes_per_sec = 3_000_000);
    let cache = cache_dir();
    let edge = Edge::start(&origin.base, &cache, &[]);
    let base = edge.base.clone();
    let warm = std::thread::spawn(move || {
        let _ = client()
            .post(format!("{base}/v1/warm"))
            .json(&serde_json::json!({"repo": REPO, "revision": "main"}))
            .send();
    });
    // Kill once some but not all ranges are written.
    for _ in 0..100 {
        if xr_files(&cache) > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    edge.kill9();
    let _ = warm.join();
    // Only complete, valid ranges are found on open (invalid files and temp files go).
    let store = xorbstore::Store::open(
        &cache,
        xorbstore::StoreConfig {
            quota_bytes: 1 << 30,
        },
    )
    .expect("open");
    for e in store.list() {
        let v = store.get(&e.xorb, e.range.clone()).expect("listed range");
        let mut out = Vec::new();
        v.decode(&mut out).expect("stored range decodes");
        assert_eq!(out.len() as u64, v.uncompressed_len());
    }
    drop(store);
    let fast = Origin::start(|_| {});
    let edge = Edge::start(&fast.base, &cache, &[]);
    let got = snapshot(&edge.base, &[]).unwrap_or_else(|e| panic!("{e}\n{}", edge.log()));
    for (p, sha) in &fixture().files {
        assert_eq!(got.get(p), Some(sha), "{p}");
    }
}

#[test]
fn filling_past_the_cache_size_keeps_usage_under_it() {
    let origin = Origin::start(|_| {});
    let cache = cache_dir();
    let quota: u64 = 3_500_000;
    let edge = Edge::start(&origin.base, &cache, &["--cache-size", &quota.to_string()]);
    let got = snapshot(&edge.base, &[]).unwrap_or_else(|e| panic!("{e}\n{}", edge.log()));
    for (p, sha) in &fixture().files {
        assert_eq!(got.get(p), Some(sha), "{p}");
    }
    let used = edge.metric("zest_edge_disk_bytes");
    assert!(
        used > 0.0 && used <= quota as f64,
        "disk bytes {used} over {quota}"
    );
    assert!(edge.metric("zest_edge_evictions_total") > 0.0);
}
