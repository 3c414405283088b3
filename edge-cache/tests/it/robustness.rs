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
    let edge = Edge::start(&origin.base, &cache, &["--admin-token", "it-admin-token"]);
    let base = edge.base.clone();
    let warm = std::thread::spawn(move || {
        let _ = client()
            .post(format!("{base}/v1/warm"))
            .header("x-zest-admin-token", "it-admin-token")
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
    let store = xorbstore::Store::open(&cache, xorbstore::StoreConfig::new(1 << 30)).expect("open");
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

/// The ranges of `of` that lie inside no range of `other` (same xorb).
fn own_ranges(of: &[XRange], other: &[XRange]) -> Vec<XRange> {
    of.iter()
        .filter(|r| {
            !other
                .iter()
                .any(|o| o.xorb == r.xorb && o.chunks.0 <= r.chunks.0 && r.chunks.1 <= o.chunks.1)
        })
        .cloned()
        .collect()
}

#[test]
fn filling_past_the_cache_size_keeps_usage_under_it_and_the_most_recently_used_ranges() {
    let origin = Origin::start(|_| {});
    // What each file's ranges take on disk, measured on an edge without a tight quota. b.bin
    // shares its first 1.2 MB with a.bin, so it adds only its own ranges.
    let (d_a, d_b, d_c) = {
        let probe = Edge::start(&origin.base, &cache_dir(), &[]);
        let disk = || probe.metric("zest_edge_disk_bytes");
        ranges_of(&probe, "a.bin");
        let a = disk();
        ranges_of(&probe, "sub/b.bin");
        let ab = disk();
        ranges_of(&probe, "model.safetensors");
        let abc = disk();
        (a, ab - a, abc - ab)
    };
    assert!(d_a > 0.0 && d_b > 0.0 && d_c > 0.0, "{d_a} {d_b} {d_c}");
    // Room for a.bin, model.safetensors and half of what b.bin adds: storing the third file
    // must evict, and least recently used first means b.bin's own ranges go.
    let quota = (d_a + d_c + d_b / 2.0) as u64;
    let cache = cache_dir();
    let edge = Edge::start(&origin.base, &cache, &["--cache-size", &quota.to_string()]);
    let a = ranges_of(&edge, "a.bin");
    let b = ranges_of(&edge, "sub/b.bin");
    // a.bin is read again: now it is more recently used than b.bin.
    for r in &a {
        r.get();
    }
    let c = ranges_of(&edge, "model.safetensors");
    let used = edge.metric("zest_edge_disk_bytes");
    assert!(
        used > 0.0 && used <= quota as f64,
        "disk bytes {used} over {quota}"
    );
    assert!(edge.metric("zest_edge_evictions_total") > 0.0);
    // The most recently used (a.bin, read again) and the newest (model.safetensors) survive:
    // serving them takes nothing from the origin.
    let before = origin.xorb_bytes();
    for r in a.iter().chain(&c) {
        r.get();
    }
    assert_eq!(
        origin.xorb_bytes(),
        before,
        "recently used ranges were evicted\n{}",
        edge.log()
    );
    // The least recently used ones (b.bin's own ranges) were evicted: they come from the
    // origin again.
    let b_own = own_ranges(&b, &a);
    assert!(!b_own.is_empty());
    for r in &b_own {
        r.get();
    }
    assert!(
        origin.xorb_bytes() > before,
        "the least recently used ranges were still held"
    );
    // The real client still gets identical bytes, and usage stays under the quota.
    let got = snapshot(&edge.base, &[]).unwrap_or_else(|e| panic!("{e}\n{}", edge.log()));
    for (p, sha) in &fixture().files {
        assert_eq!(got.get(p), Some(sha), "{p}");
    }
    let used = edge.metric("zest_edge_disk_bytes");
    assert!(
        used > 0.0 && used <= quota as f64,
        "disk bytes {used} over {quota}"
    );
}
