//! The store against a real folder: insert/get/sub-ranges, verification failures, restart,
//! leftovers of a crash, quota and LRU, pins, concurrency.

use std::path::Path;
use std::sync::Arc;

use xet::MerkleHash;
use xorbstore::{
    Expectation, InsertOutcome, Store, StoreConfig, StoreError, VerificationLevel, VerifyError,
    STORE_DIR,
};

use crate::common::{make_xorb, TestXorb};

const BIG: u64 = 1 << 40;

fn open(dir: &Path, quota: u64) -> Store {
    Store::open(dir, StoreConfig::new(quota)).expect("open store")
}

fn files(dir: &Path, suffix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join(STORE_DIR))
        .expect("read dir")
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .filter(|n| n.ends_with(suffix))
        .collect();
    v.sort();
    v
}

fn disk_usage(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join(STORE_DIR))
        .expect("read dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".xr"))
        .map(|e| e.metadata().expect("metadata").len())
        .sum()
}

#[test]
fn whole_xorb_is_xorb_verified_and_serves_every_sub_range() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path(), BIG);
    let x = make_xorb(1, 12, 20_000);
    let out = s
        .insert(
            &x.hash(),
            0..x.n(),
            &x.xorb.data,
            &Expectation::whole_xorb(),
        )
        .unwrap();
    assert_eq!(
        out,
        InsertOutcome::Stored {
            level: VerificationLevel::XorbVerified
        }
    );
    for (a, b) in [(0, 12), (0, 1), (3, 7), (11, 12), (5, 6)] {
        let v = s.get(&x.hash(), a..b).expect("held");
        assert_eq!(&*v, x.bytes(a..b), "bytes of {a}..{b}");
        assert_eq!(v.range(), a..b);
        assert_eq!(v.chunk_hashes(), x.hashes(a..b).as_slice());
        assert_eq!(v.level(), VerificationLevel::XorbVerified);
        let mut raw = Vec::new();
        v.decode(&mut raw).unwrap();
        assert_eq!(raw, x.raw(a..b));
        let lens: Vec<u32> = x.chunks[a as usize..b as usize]
            .iter()
            .map(|c| c.len() as u32)
            .collect();
        assert_eq!(v.uncompressed_lens(), lens);
        assert_eq!(v.uncompressed_len(), raw.len() as u64);
        assert_eq!(*v.record_ends().last().unwrap() as usize, v.len());
    }
    let mut raw = Vec::new();
    s.decode(&x.hash(), 2..9, &mut raw).unwrap();
    assert_eq!(raw, x.raw(2..9));
    assert!(s.get(&x.hash(), 0..13).is_none());
    assert!(s.get(&MerkleHash::from_bytes([9; 32]), 0..1).is_none());
    assert!(matches!(
        s.decode(&MerkleHash::from_bytes([9; 32]), 0..1, &mut raw),
        Err(StoreError::NotHeld { .. })
    ));
    let st = s.stats();
    assert_eq!(st.hits, 6);
    assert_eq!(st.misses, 3);
    assert_eq!(st.inserts, 1);
    assert_eq!(st.ranges, 1);
    assert_eq!(st.disk_bytes, disk_usage(tmp.path()));
}

#[test]
fn sub_range_with_known_chunk_hashes_is_chunk_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path(), BIG);
    let x = make_xorb(2, 10, 10_000);
    let out = s
        .insert(
            &x.hash(),
            3..8,
            x.bytes(3..8),
            &Expectation::with_chunk_hashes(x.hashes(3..8)),
        )
        .unwrap();
    assert_eq!(
        out,
        InsertOutcome::Stored {
            level: VerificationLevel::ChunkHashesVerified
        }
    );
    assert_eq!(&*s.get(&x.hash(), 4..6).unwrap(), x.bytes(4..6));
    assert!(s.get(&x.hash(), 2..6).is_none());
    assert!(s.get(&x.hash(), 7..9).is_none());
    // No expectation: structural only.
    let y = make_xorb(3, 4, 10_000);
    let out = s
        .insert(&y.hash(), 1..3, y.bytes(1..3), &Expectation::structural())
        .unwrap();
    assert_eq!(
        out,
        InsertOutcome::Stored {
            level: VerificationLevel::Structural
        }
    );
    // Whole xorb named by its chunk count.
    let out = s
        .insert(
            &y.hash(),
            0..4,
            &y.xorb.data,
            &Expectation::structural().xorb_chunks(4),
        )
        .unwrap();
    assert_eq!(
        out,
        InsertOutcome::Stored {
            level: VerificationLevel::XorbVerified
        }
    );
    // The whole xorb subsumed the structural sub-range.
    assert_eq!(s.list().iter().filter(|e| e.xorb == y.hash()).count(), 1);
}

/// Every way the bytes can be wrong, and the store is left empty.
#[test]
fn bad_data_is_rejected_and_nothing_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path(), BIG);
    let x = make_xorb(4, 6, 8_000);
    let h = x.hash();
    let good = x.bytes(0..6).to_vec();
    let hashes = Expectation::with_chunk_hashes(x.hashes(0..6));

    // A flipped payload byte in every chunk position, with chunk hashes known.
    let mut rng = crate::common::Rng::new(99);
    for _ in 0..20 {
        let mut bad = good.clone();
        let i = 8 + (rng.next() as usize % (bad.len() - 8));
        bad[i] ^= 0x01;
        let err = s.insert(&h, 0..6, &bad, &hashes).unwrap_err();
        assert!(matches!(err, StoreError::Verify(_)), "flip at {i}: {err}");
    }
    // A flipped byte, caught by the xorb hash alone.
    let mut bad = good.clone();
    let last = bad.len() - 100;
    bad[last] ^= 0x80;
    let r = s.insert(&h, 0..6, &bad, &Expectation::whole_xorb());
    assert!(
        matches!(
            r,
            Err(StoreError::Verify(
                VerifyError::Chunk { .. } | VerifyError::XorbHash { .. }
            ))
        ),
        "{r:?}"
    );
    // Wrong chunk hash.
    let mut wrong = x.hashes(0..6);
    wrong[2] = MerkleHash::from_bytes([1; 32]);
    assert!(matches!(
        s.insert(&h, 0..6, &good, &Expectation::with_chunk_hashes(wrong)),
        Err(StoreError::Verify(VerifyError::ChunkHash { index: 2, .. }))
    ));
    // Truncated.
    for cut in [1, 7, 100, good.len() - 9] {
        let err = s
            .insert(
                &h,
                0..6,
                &good[..good.len() - cut],
                &Expectation::structural(),
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Verify(VerifyError::Chunk { .. } | VerifyError::ChunkCount { .. })
            ),
            "cut {cut}: {err}"
        );
    }
    // Wrong chunk count, both ways.
    assert!(matches!(
        s.insert(&h, 0..7, &good, &Expectation::structural()),
        Err(StoreError::Verify(VerifyError::ChunkCount {
            expected: 7,
            found: 6
        }))
    ));
    assert!(matches!(
        s.insert(&h, 0..5, &good, &Expectation::structural()),
        Err(StoreError::Verify(VerifyError::ChunkCount {
            expected: 5,
            ..
        }))
    ));
    // The right bytes under another xorb's name, claimed whole.
    let other = MerkleHash::from_bytes([3; 32]);
    assert!(matches!(
        s.insert(&other, 0..6, &good, &Expectation::whole_xorb()),
        Err(StoreError::Verify(VerifyError::XorbHash { .. }))
    ));
    // Empty and inverted ranges, hash-count mismatch.
    assert!(s.insert(&h, 3..3, &[], &Expectation::structural()).is_err());
    assert!(s
        .insert(
            &h,
            std::ops::Range { start: 4, end: 3 },
            &good,
            &Expectation::structural()
        )
        .is_err());
    assert!(s
        .insert(
            &h,
            0..6,
            &good,
            &Expectation::with_chunk_hashes(x.hashes(0..5))
        )
        .is_err());
    // Garbage and empty bytes.
    assert!(s
        .insert(&h, 0..1, &[0xff; 100], &Expectation::structural())
        .is_err());
    assert!(s.insert(&h, 0..1, &[], &Expectation::structural()).is_err());

    assert!(s.list().is_empty());
    assert!(files(tmp.path(), ".xr").is_empty());
    assert!(files(tmp.path(), ".partial").is_empty());
    assert_eq!(s.stats().disk_bytes, 0);
    assert!(s.stats().rejected >= 30);
    // The right bytes are still accepted afterwards.
    s.insert(&h, 0..6, &good, &hashes).unwrap();
}

#[test]
fn restart_keeps_ranges_levels_and_pins() {
    let tmp = tempfile::tempdir().unwrap();
    let x = make_xorb(5, 8, 10_000);
    let y = make_xorb(6, 8, 10_000);
    {
        let s = open(tmp.path(), BIG);
        s.insert(&x.hash(), 0..8, &x.xorb.data, &Expectation::whole_xorb())
            .unwrap();
        s.insert(&y.hash(), 2..5, y.bytes(2..5), &Expectation::structural())
            .unwrap();
        s.insert(&y.hash(), 5..7, y.bytes(5..7), &Expectation::structural())
            .unwrap();
        assert_eq!(
            s.upgrade_level(
                &y.hash(),
                0..8,
                &y.hashes(0..8),
                VerificationLevel::FileVerified
            )
            .unwrap(),
            2
        );
        s.pin("rev-a", &[(y.hash(), 2..3)]).unwrap();
    }
    let s = open(tmp.path(), BIG);
    assert_eq!(s.holdings(), {
        let mut v = vec![(x.hash(), [0..8].to_vec()), (y.hash(), [2..7].to_vec())];
        v.sort_by_key(|a| a.0);
        v
    });
    assert_eq!(&*s.get(&x.hash(), 1..4).unwrap(), x.bytes(1..4));
    let v = s.get(&y.hash(), 5..7).unwrap();
    assert_eq!(&*v, y.bytes(5..7));
    assert_eq!(v.level(), VerificationLevel::FileVerified);
    assert_eq!(
        s.get(&x.hash(), 0..8).unwrap().level(),
        VerificationLevel::XorbVerified
    );
    assert_eq!(s.pin_labels(), vec!["rev-a".to_string()]);
    assert!(s.list().iter().any(|e| e.pinned && e.range == (2..5)));
    // A range spanning two stored ranges is served in pieces.
    let pieces = s.get_cover(&y.hash(), 3..7).unwrap();
    assert_eq!(pieces.len(), 2);
    let joined: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
    assert_eq!(joined, y.bytes(3..7));
    assert!(s.get_cover(&y.hash(), 1..4).is_none());
}

#[test]
fn upgrade_requires_matching_hashes() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path(), BIG);
    let x = make_xorb(7, 4, 5_000);
    s.insert(&x.hash(), 0..2, x.bytes(0..2), &Expectation::structural())
        .unwrap();
    let mut wrong = x.hashes(0..4);
    wrong[1] = MerkleHash::from_bytes([5; 32]);
    assert_eq!(
        s.upgrade_level(&x.hash(), 0..4, &wrong, VerificationLevel::FileVerified)
            .unwrap(),
        0
    );
    assert_eq!(
        s.get(&x.hash(), 0..2).unwrap().level(),
        VerificationLevel::Structural
    );
    assert!(s
        .upgrade_level(
            &x.hash(),
            0..4,
            &wrong[..3],
            VerificationLevel::FileVerified
        )
        .is_err());
    // Re-inserting the same range with proof raises its level without writing a new file.
    let out = s
        .insert(
            &x.hash(),
            0..2,
            x.bytes(0..2),
            &Expectation::with_chunk_hashes(x.hashes(0..2)),
        )
        .unwrap();
    assert_eq!(
        out,
        InsertOutcome::AlreadyHeld {
            level: VerificationLevel::ChunkHashesVerified
        }
    );
    assert_eq!(s.stats().inserts, 1);
    // Re-inserting without more proof is a no-op.
    let out = s
        .insert(&x.hash(), 0..1, x.bytes(0..1), &Expectation::structural())
        .unwrap();
    assert_eq!(
        out,
        InsertOutcome::AlreadyHeld {
            level: VerificationLevel::ChunkHashesVerified
        }
    );
}

/// A structurally valid but wrong range (another xorb's chunks under this name) is replaced when
/// proven bytes arrive.
#[test]
fn wrong_structural_range_is_replaced_by_proven_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path(), BIG);
    let x = make_xorb(8, 4, 5_000);
    let impostor = make_xorb(9, 4, 5_000);
    s.insert(
        &x.hash(),
        0..4,
        &impostor.xorb.data,
        &Expectation::structural(),
    )
    .unwrap();
    assert_eq!(&*s.get(&x.hash(), 0..4).unwrap(), &impostor.xorb.data[..]);
    let out = s
        .insert(
            &x.hash(),
            1..3,
            x.bytes(1..3),
            &Expectation::with_chunk_hashes(x.hashes(1..3)),
        )
        .unwrap();
    assert_eq!(
        out,
        InsertOutcome::Stored {
            level: VerificationLevel::ChunkHashesVerified
        }
    );
    assert!(
        s.get(&x.hash(), 0..4).is_none(),
        "the wrong range was dropped"
    );
    assert_eq!(&*s.get(&x.hash(), 1..3).unwrap(), x.bytes(1..3));
    assert_eq!(files(tmp.path(), ".xr").len(), 1);
}

/// Leftovers of a crash: temp files, a truncated range file, garbage, a flipped header byte.
#[test]
fn open_deletes_temp_and_invalid_files_and_keeps_complete_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let x = make_xorb(10, 6, 10_000);
    {
        let s = open(tmp.path(), BIG);
        s.insert(&x.hash(), 0..6, &x.xorb.data, &Expectation::whole_xorb())
            .unwrap();
        s.insert(&x.hash(), 0..2, x.bytes(0..2), &Expectation::structural())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let d = tmp.path().join(STORE_DIR);
    let good = files(tmp.path(), ".xr");
    assert_eq!(good.len(), 1);
    let full = std::fs::read(d.join(&good[0])).unwrap();
    std::fs::write(
        d.join(".tmp-0000000000000001.partial"),
        &full[..full.len() / 2],
    )
    .unwrap();
    std::fs::write(d.join(".tmp-0000000000000002.partial"), &full).unwrap();
    // Written by a process that is gone (pid beyond any pid_max).
    std::fs::write(d.join(".tmp-999999999-0000000000000003.partial"), &full).unwrap();
    std::fs::write(d.join("truncated.0-6.1.xr"), &full[..full.len() - 1]).unwrap();
    std::fs::write(d.join("short.0-6.2.xr"), &full[..30]).unwrap();
    std::fs::write(d.join("empty.0-6.3.xr"), b"").unwrap();
    std::fs::write(d.join("garbage.0-6.4.xr"), vec![0xAB; 5000]).unwrap();
    let mut flipped = full.clone();
    flipped[50] ^= 1; // inside the range start field, covered by the checksum
    std::fs::write(d.join("flipped.0-6.5.xr"), &flipped).unwrap();
    let mut bad_data = full.clone();
    let hl = full.len() - x.xorb.data.len();
    bad_data[hl] = 7; // the first chunk header's version byte
    std::fs::write(d.join("baddata.0-6.6.xr"), &bad_data).unwrap();
    let mut extra = full.clone();
    extra.push(0);
    std::fs::write(d.join("extra.0-6.7.xr"), &extra).unwrap();

    let s = open(tmp.path(), BIG);
    assert_eq!(files(tmp.path(), ".xr"), good);
    assert!(files(tmp.path(), ".partial").is_empty());
    assert_eq!(s.list().len(), 1);
    assert_eq!(&*s.get(&x.hash(), 0..6).unwrap(), &x.xorb.data[..]);
    assert_eq!(s.stats().disk_bytes, full.len() as u64);
}

/// Two files for the same range (two processes raced): one is kept.
#[test]
fn duplicate_files_for_one_range_are_deduplicated_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let x = make_xorb(11, 3, 5_000);
    {
        let s = open(tmp.path(), BIG);
        s.insert(&x.hash(), 0..3, &x.xorb.data, &Expectation::whole_xorb())
            .unwrap();
    }
    let d = tmp.path().join(STORE_DIR);
    let name = files(tmp.path(), ".xr").remove(0);
    std::fs::copy(d.join(&name), d.join(format!("copy-{name}"))).unwrap();
    let s = open(tmp.path(), BIG);
    assert_eq!(s.list().len(), 1);
    assert_eq!(files(tmp.path(), ".xr").len(), 1);
}

/// The largest file size of range `r` over `xs`, measured in a scratch store.
fn max_size(xs: &[TestXorb], r: std::ops::Range<u32>) -> u64 {
    let probe = tempfile::tempdir().unwrap();
    let p = open(probe.path(), BIG);
    let mut max = 0;
    let mut prev = 0;
    for x in xs {
        insert_range(&p, x, r.clone()).unwrap();
        let now = p.stats().disk_bytes;
        max = max.max(now - prev);
        prev = now;
    }
    max
}

fn insert_range(
    s: &Store,
    x: &TestXorb,
    r: std::ops::Range<u32>,
) -> Result<InsertOutcome, StoreError> {
    s.insert(
        &x.hash(),
        r.clone(),
        x.bytes(r.clone()),
        &Expectation::with_chunk_hashes(x.hashes(r)),
    )
}

#[test]
fn quota_evicts_least_recently_used_and_usage_stays_under() {
    let tmp = tempfile::tempdir().unwrap();
    let xs: Vec<TestXorb> = (0..10).map(|i| make_xorb(100 + i, 4, 16_000)).collect();
    let max = max_size(&xs, 0..4);
    // Room for four of the largest ranges, not five.
    let quota = 4 * max + max / 2;
    let s = open(tmp.path(), quota);
    for (i, x) in xs.iter().enumerate() {
        insert_range(&s, x, 0..4).unwrap();
        // Keep xorb 0 hot.
        assert!(
            s.get(&xs[0].hash(), 1..2).is_some(),
            "hot range evicted at step {i}"
        );
        let st = s.stats();
        assert!(
            st.disk_bytes <= quota,
            "step {i}: {} > {quota}",
            st.disk_bytes
        );
        assert_eq!(st.disk_bytes, disk_usage(tmp.path()));
    }
    let held: Vec<MerkleHash> = s.list().iter().map(|e| e.xorb).collect();
    assert!(held.contains(&xs[0].hash()));
    assert!(held.contains(&xs[9].hash()));
    assert!(held.contains(&xs[8].hash()));
    assert!(!held.contains(&xs[1].hash()));
    assert!(held.len() >= 4);
    let st = s.stats();
    assert_eq!(st.evictions as usize, 10 - held.len());
    // The LRU order survives a restart (by file mtime): the least recent is evicted first.
    drop(s);
    let s = open(tmp.path(), quota);
    assert_eq!(s.list().len(), held.len());
    // A range larger than the whole quota is refused and evicts nothing.
    let huge = make_xorb(200, 40, 16_000);
    assert!(matches!(
        insert_range(&s, &huge, 0..40),
        Err(StoreError::QuotaExceeded { .. })
    ));
    assert_eq!(s.list().len(), held.len());
    // A smaller quota at open evicts down to it.
    drop(s);
    let s = open(tmp.path(), 2 * max);
    assert!(s.stats().disk_bytes <= 2 * max);
    assert!(disk_usage(tmp.path()) <= 2 * max);
}

#[test]
fn pinned_ranges_survive_eviction_until_unpinned() {
    let tmp = tempfile::tempdir().unwrap();
    let xs: Vec<TestXorb> = (0..8).map(|i| make_xorb(300 + i, 4, 16_000)).collect();
    let one = max_size(&xs, 0..4);
    let quota = 3 * one + one / 2;
    let s = open(tmp.path(), quota);
    // Pin before the data is there (as `warm` would), and pin part of another xorb.
    s.pin(
        "org/model@abc",
        &[(xs[0].hash(), 0..4), (xs[1].hash(), 3..4)],
    )
    .unwrap();
    for x in &xs {
        insert_range(&s, x, 0..4).unwrap();
        assert!(s.stats().disk_bytes <= quota);
    }
    let held: Vec<MerkleHash> = s.list().iter().map(|e| e.xorb).collect();
    assert!(
        held.contains(&xs[0].hash()) && held.contains(&xs[1].hash()),
        "pinned ranges survive"
    );
    // With three slots and two pinned, a range that needs two slots cannot fit.
    let big = make_xorb(400, 8, 16_000);
    let err = insert_range(&s, &big, 0..8).unwrap_err();
    assert!(matches!(err, StoreError::QuotaExceeded { .. }), "{err}");
    assert!(
        held.iter().all(|h| s.contains(h, 0..4)),
        "a refused insert evicts nothing"
    );
    // Pins persist.
    drop(s);
    let s = open(tmp.path(), quota);
    assert!(s.list().iter().filter(|e| e.pinned).count() == 2);
    assert!(s.unpin("org/model@abc").unwrap());
    assert!(!s.unpin("org/model@abc").unwrap());
    for x in &xs[4..8] {
        insert_range(&s, x, 0..4).unwrap();
    }
    assert!(
        !s.contains(&xs[0].hash(), 0..4),
        "unpinned range is evicted"
    );
}

#[test]
fn views_outlive_eviction() {
    let tmp = tempfile::tempdir().unwrap();
    let a = make_xorb(500, 4, 16_000);
    let b = make_xorb(501, 4, 16_000);
    let one = max_size(&[a, b], 0..4);
    let (a, b) = (make_xorb(500, 4, 16_000), make_xorb(501, 4, 16_000));
    let s = open(tmp.path(), one + one / 2);
    insert_range(&s, &a, 0..4).unwrap();
    let view = s.get(&a.hash(), 1..3).unwrap();
    let bytes = s.get(&a.hash(), 0..4).unwrap().into_bytes();
    insert_range(&s, &b, 0..4).unwrap();
    assert!(!s.contains(&a.hash(), 0..4));
    assert_eq!(&*view, a.bytes(1..3));
    assert_eq!(&bytes[..], a.bytes(0..4));
    assert_eq!(&bytes.slice(10..20)[..], &a.bytes(0..4)[10..20]);
}

/// The file segment a view names holds exactly the view's bytes (what the edge's data port
/// sends with sendfile), for sub-ranges, after a restart and after the range is evicted.
#[test]
fn file_segments_hold_the_view_bytes_even_after_eviction() {
    use std::os::unix::fs::FileExt;
    fn segment(v: &xorbstore::RangeView) -> Vec<u8> {
        let (file, offset, len) = v.file_segment().expect("an inline range");
        let mut out = vec![0u8; len];
        file.read_exact_at(&mut out, offset).unwrap();
        out
    }
    let tmp = tempfile::tempdir().unwrap();
    let a = make_xorb(510, 6, 16_000);
    let b = make_xorb(511, 6, 16_000);
    let one = max_size(&[a, b], 0..6);
    let (a, b) = (make_xorb(510, 6, 16_000), make_xorb(511, 6, 16_000));
    let s = open(tmp.path(), one + one / 2);
    insert_range(&s, &a, 0..6).unwrap();
    for (x, y) in [(0, 6), (0, 1), (2, 5), (5, 6)] {
        let v = s.get(&a.hash(), x..y).unwrap();
        assert_eq!(v.file_segment().expect("inline").2, v.len());
        assert_eq!(segment(&v), a.bytes(x..y), "{x}..{y}");
    }
    drop(s);
    let s = open(tmp.path(), one + one / 2);
    let view = s.get(&a.hash(), 1..4).unwrap();
    assert_eq!(segment(&view), a.bytes(1..4));
    insert_range(&s, &b, 0..6).unwrap();
    assert!(!s.contains(&a.hash(), 0..6), "evicted");
    assert_eq!(segment(&view), a.bytes(1..4));
}

#[test]
fn holdings_are_coalesced_per_xorb() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path(), BIG);
    let x = make_xorb(600, 12, 4_000);
    for r in [0..2, 2..4, 3..6, 8..10] {
        insert_range(&s, &x, r).unwrap();
    }
    assert_eq!(s.holdings(), vec![(x.hash(), [0..6, 8..10].to_vec())]);
}

#[test]
fn concurrent_inserts_and_reads_from_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let xs: Arc<Vec<TestXorb>> = Arc::new((0..6).map(|i| make_xorb(700 + i, 6, 8_000)).collect());
    let s = open(tmp.path(), BIG);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            let xs = xs.clone();
            std::thread::spawn(move || {
                for round in 0..6 {
                    let x = &xs[(t + round) % xs.len()];
                    // Overlapping and identical ranges from several threads at once.
                    let r = match (t + round) % 3 {
                        0 => 0..6,
                        1 => 1..4,
                        _ => 3..6,
                    };
                    insert_range(&s, x, r.clone()).unwrap();
                    for y in xs.iter() {
                        if let Some(v) = s.get(&y.hash(), 3..4) {
                            assert_eq!(&*v, y.bytes(3..4));
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let st = s.stats();
    assert_eq!(st.disk_bytes, disk_usage(tmp.path()));
    for x in xs.iter() {
        for (r, v) in s
            .holdings()
            .iter()
            .filter(|(h, _)| *h == x.hash())
            .flat_map(|(_, rs)| rs.iter().map(move |r| (r.clone(), x)))
        {
            for p in s.get_cover(&v.hash(), r.clone()).unwrap() {
                assert_eq!(&*p, v.bytes(p.range()));
            }
        }
    }
    drop(s);
    let s = open(tmp.path(), BIG);
    assert_eq!(s.stats().disk_bytes, st.disk_bytes);
}

/// Two stores on one folder (`zest seed` serving while `zest pull` writes): rescan sees the
/// other's new and deleted ranges, and a live writer's temp file survives the other's open.
#[test]
fn two_processes_share_a_folder_through_rescan() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open(tmp.path(), BIG);
    let x = make_xorb(800, 4, 5_000);
    let y = make_xorb(801, 4, 5_000);
    let live_temp = tmp.path().join(STORE_DIR).join(format!(
        ".tmp-{}-00000000000000ff.partial",
        std::process::id()
    ));
    std::fs::write(&live_temp, b"being written").unwrap();
    let b = open(tmp.path(), BIG);
    assert!(live_temp.exists(), "a live writer's temp file is kept");
    insert_range(&b, &x, 0..4).unwrap();
    insert_range(&a, &y, 0..2).unwrap();
    assert!(!a.contains(&x.hash(), 0..4));
    assert_eq!(a.rescan().unwrap(), (1, 0));
    assert_eq!(&*a.get(&x.hash(), 1..3).unwrap(), x.bytes(1..3));
    assert_eq!(b.rescan().unwrap(), (1, 0));
    // b evicts (deletes) x; a forgets it at its next rescan.
    b.pin("keep-y", &[(y.hash(), 0..2)]).unwrap();
    for f in files(tmp.path(), ".xr") {
        if f.starts_with(&x.hash().to_hex()) {
            std::fs::remove_file(tmp.path().join(STORE_DIR).join(f)).unwrap();
        }
    }
    assert_eq!(a.rescan().unwrap(), (0, 1));
    assert!(!a.contains(&x.hash(), 0..4));
    assert_eq!(a.pin_labels(), vec!["keep-y".to_string()]);
}

#[test]
fn remove_drops_overlapping_ranges_from_disk_and_index_and_survives_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let x = make_xorb(700, 12, 4_000);
    let y = make_xorb(701, 4, 4_000);
    let s = open(tmp.path(), BIG);
    for r in [0..4, 4..8, 8..12] {
        insert_range(&s, &x, r).unwrap();
    }
    insert_range(&s, &y, 0..4).unwrap();
    s.pin("acme/m@main", &[(x.hash(), 4..8)]).unwrap();
    let held = s.get(&x.hash(), 4..8).unwrap();
    let before = s.stats().disk_bytes;
    assert_eq!(files(tmp.path(), ".xr").len(), 4);

    // Chunk 5 lies in the stored range 4..8: that whole range goes, pinned or not.
    assert_eq!(s.remove(&x.hash(), 5..6).unwrap(), 1);
    assert!(!s.contains(&x.hash(), 4..8));
    assert!(s.get(&x.hash(), 5..6).is_none());
    assert!(s.contains(&x.hash(), 0..4) && s.contains(&x.hash(), 8..12));
    assert!(s.contains(&y.hash(), 0..4), "another xorb is untouched");
    assert_eq!(s.holdings().len(), 2);
    assert_eq!(files(tmp.path(), ".xr").len(), 3);
    assert!(s.stats().disk_bytes < before);
    assert_eq!(s.stats().disk_bytes, disk_usage(tmp.path()));
    // A view taken before the removal still reads the right bytes.
    assert_eq!(&*held, x.bytes(4..8));
    // Nothing (left) to remove, and an empty range, remove nothing.
    assert_eq!(s.remove(&x.hash(), 4..8).unwrap(), 0);
    assert_eq!(s.remove(&x.hash(), 3..3).unwrap(), 0);
    // A range spanning two stored ranges removes both.
    assert_eq!(s.remove(&x.hash(), 3..9).unwrap(), 2);
    assert!(!s.contains(&x.hash(), 0..4) && !s.contains(&x.hash(), 8..12));
    drop(s);

    // After a restart the removed ranges stay gone and the rest is intact.
    let s = open(tmp.path(), BIG);
    assert_eq!(s.list().len(), 1);
    assert!(s.get(&x.hash(), 0..1).is_none());
    assert_eq!(&*s.get(&y.hash(), 0..4).unwrap(), y.bytes(0..4));
    // The range can be stored again.
    insert_range(&s, &x, 4..8).unwrap();
    assert_eq!(&*s.get(&x.hash(), 4..8).unwrap(), x.bytes(4..8));
}

/// Writes chunks `r` of `x`, decoded, into a "blob" at `offset` (after some other bytes).
fn write_blob(
    dir: &Path,
    x: &TestXorb,
    r: std::ops::Range<u32>,
    offset: usize,
) -> std::path::PathBuf {
    let mut blob = vec![0xEEu8; offset];
    blob.extend_from_slice(&x.raw(r));
    blob.extend_from_slice(b"tail");
    let path = std::path::absolute(dir.join("blob")).unwrap();
    std::fs::write(&path, blob).unwrap();
    path
}

/// References chunks `r` of `x`, at `offset` of `blob`.
fn insert_ref(
    s: &Store,
    x: &TestXorb,
    r: std::ops::Range<u32>,
    blob: &Path,
    offset: u64,
) -> Result<InsertOutcome, StoreError> {
    s.insert_blob_ref(
        &x.hash(),
        r.clone(),
        &x.hashes(r.clone()),
        &lens(x, r),
        blob,
        offset,
    )
}

fn lens(x: &TestXorb, r: std::ops::Range<u32>) -> Vec<u32> {
    x.chunks[r.start as usize..r.end as usize]
        .iter()
        .map(|c| c.len() as u32)
        .collect()
}

#[test]
fn blob_references_serve_uncompressed_records_of_the_blob_bytes_and_survive_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let x = make_xorb(21, 10, 20_000);
    let blob = write_blob(tmp.path(), &x, 2..9, 1000);
    let s = open(tmp.path(), BIG);
    let out = insert_ref(&s, &x, 2..9, &blob, 1000).unwrap();
    assert_eq!(
        out,
        InsertOutcome::Stored {
            level: VerificationLevel::FileVerified
        }
    );
    assert_eq!(files(tmp.path(), ".xrb").len(), 1);
    assert!(files(tmp.path(), ".xr").is_empty(), "no copy of the bytes");
    let check = |s: &Store| {
        for (a, b) in [(2, 9), (2, 3), (4, 7), (8, 9)] {
            let v = s.get(&x.hash(), a..b).expect("held");
            assert!(v.is_blob_reference());
            assert!(v.file_segment().is_none(), "no file holds built records");
            assert_eq!(v.chunk_hashes(), x.hashes(a..b).as_slice());
            assert_eq!(v.level(), VerificationLevel::FileVerified);
            assert_eq!(*v.record_ends().last().unwrap() as usize, v.len());
            // Real chunk records: they verify as the range and decode to the chunks.
            let meta = xorbstore::verify_range(
                &x.hash(),
                a..b,
                &v,
                &Expectation::with_chunk_hashes(x.hashes(a..b)),
            )
            .expect("records verify");
            assert_eq!(meta.record_ends, v.record_ends());
            let mut raw = Vec::new();
            v.decode(&mut raw).unwrap();
            assert_eq!(raw, x.raw(a..b));
            let sub = v.slice(a + 1..b).map(|w| w.to_vec());
            if b > a + 1 {
                let mut want = Vec::new();
                s.get(&x.hash(), a + 1..b)
                    .unwrap()
                    .decode(&mut want)
                    .unwrap();
                let mut got = Vec::new();
                xet::chunk::decode_records(&sub.unwrap(), &mut got).unwrap();
                assert_eq!(got, want);
            }
        }
        let cover = s.get_cover(&x.hash(), 3..8).expect("covered");
        assert_eq!(cover.len(), 1);
        assert!(s.get(&x.hash(), 1..3).is_none());
    };
    check(&s);
    assert!(
        s.stats().disk_bytes < 4096,
        "a reference costs its own bytes only"
    );
    drop(s);
    let s = open(tmp.path(), BIG);
    assert_eq!(s.stats().ranges, 1);
    check(&s);
    // An inline insert of the same range is already held (FileVerified is the top level).
    let inline = s
        .insert(&x.hash(), 2..9, x.bytes(2..9), &Expectation::structural())
        .unwrap();
    assert_eq!(
        inline,
        InsertOutcome::AlreadyHeld {
            level: VerificationLevel::FileVerified
        }
    );
}

#[test]
fn blob_references_to_a_blob_that_shrank_or_went_are_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let x = make_xorb(22, 6, 10_000);
    let blob = write_blob(tmp.path(), &x, 0..6, 0);
    let s = open(tmp.path(), BIG);
    insert_ref(&s, &x, 0..6, &blob, 0).unwrap();
    // Shrunk under a running store: the read fails cleanly and the range is dropped.
    let f = std::fs::OpenOptions::new().write(true).open(&blob).unwrap();
    f.set_len(100).unwrap();
    assert!(s.get(&x.hash(), 0..6).is_none());
    assert!(s.get_cover(&x.hash(), 0..6).is_none());
    assert_eq!(s.stats().ranges, 0);
    assert!(
        files(tmp.path(), ".xrb").is_empty(),
        "the reference file is deleted"
    );
    // Gone between runs: dropped at open.
    let blob = write_blob(tmp.path(), &x, 0..6, 0);
    insert_ref(&s, &x, 0..6, &blob, 0).unwrap();
    drop(s);
    std::fs::remove_file(&blob).unwrap();
    let s = open(tmp.path(), BIG);
    assert_eq!(s.stats().ranges, 0);
    assert!(files(tmp.path(), ".xrb").is_empty());
}

/// The async lookups give what the blocking ones give, for mapped ranges (answered inline) and
/// blob references (read on the blocking pool), count hits and misses alike, and drop a
/// reference whose blob went.
#[tokio::test(flavor = "current_thread")]
async fn async_lookups_match_the_blocking_ones_for_both_backings() {
    let tmp = tempfile::tempdir().unwrap();
    let x = make_xorb(24, 10, 10_000);
    let y = make_xorb(25, 10, 10_000);
    let blob = write_blob(tmp.path(), &x, 0..10, 64);
    let s = open(tmp.path(), BIG);
    insert_ref(&s, &x, 0..10, &blob, 64).unwrap();
    insert_range(&s, &y, 0..5).unwrap();
    insert_range(&s, &y, 5..10).unwrap();
    for (xorb, r) in [(x.hash(), 2..7), (y.hash(), 1..4), (y.hash(), 6..10)] {
        let a = s.get_async(&xorb, r.clone()).await.expect("held");
        let b = s.get(&xorb, r.clone()).expect("held");
        assert_eq!(&*a, &*b);
        assert_eq!(a.is_blob_reference(), xorb == x.hash());
        assert_eq!(a.chunk_hashes(), b.chunk_hashes());
    }
    let cover = s.get_cover_async(&y.hash(), 3..8).await.expect("covered");
    assert_eq!(cover.len(), 2);
    let joined: Vec<u8> = cover.iter().flat_map(|v| v.to_vec()).collect();
    assert_eq!(joined, y.bytes(3..8));
    let cover = s.get_cover_async(&x.hash(), 0..10).await.expect("covered");
    assert_eq!(&*cover[0], &*s.get(&x.hash(), 0..10).unwrap());
    assert!(
        s.get_async(&y.hash(), 3..8).await.is_none(),
        "no single range"
    );
    assert!(s.get_cover_async(&x.hash(), 9..11).await.is_none());
    let st = s.stats();
    assert_eq!((st.hits, st.misses), (9, 2));
    std::fs::remove_file(&blob).unwrap();
    assert!(s.get_async(&x.hash(), 0..10).await.is_none());
    assert!(
        files(tmp.path(), ".xrb").is_empty(),
        "the dead reference is dropped"
    );
    assert_eq!(s.stats().misses, 3);
}

#[test]
fn blob_references_refuse_inconsistent_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let x = make_xorb(23, 4, 10_000);
    let blob = write_blob(tmp.path(), &x, 0..4, 0);
    let s = open(tmp.path(), BIG);
    let h = x.hashes(0..4);
    let l = lens(&x, 0..4);
    let refused = |r: Result<InsertOutcome, StoreError>| {
        assert!(matches!(r, Err(StoreError::Verify(_))), "{r:?}");
    };
    refused(s.insert_blob_ref(&x.hash(), 0..4, &h[..3], &l, &blob, 0));
    refused(s.insert_blob_ref(&x.hash(), 0..4, &h, &l[..3], &blob, 0));
    refused(s.insert_blob_ref(&x.hash(), 0..4, &h, &l, &blob, 10)); // past the blob's end
    refused(s.insert_blob_ref(&x.hash(), 0..4, &h, &l, Path::new("relative/blob"), 0));
    refused(s.insert_blob_ref(&x.hash(), 0..4, &h, &[0, 1, 2, 3], &blob, 0)); // empty chunk
    assert!(s
        .insert_blob_ref(&x.hash(), 0..4, &h, &l, &tmp.path().join("missing"), 0)
        .is_err());
    assert_eq!(s.stats().ranges, 0);
    assert!(files(tmp.path(), ".xrb").is_empty());
}

#[test]
fn corrupt_blob_references_are_deleted_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let x = make_xorb(24, 4, 10_000);
    let blob = write_blob(tmp.path(), &x, 0..4, 0);
    let s = open(tmp.path(), BIG);
    insert_ref(&s, &x, 0..4, &blob, 0).unwrap();
    drop(s);
    let name = files(tmp.path(), ".xrb").pop().unwrap();
    let path = tmp.path().join(STORE_DIR).join(name);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 40;
    bytes[last] ^= 1; // inside the blob path
    std::fs::write(&path, bytes).unwrap();
    let s = open(tmp.path(), BIG);
    assert_eq!(s.stats().ranges, 0);
    assert!(files(tmp.path(), ".xrb").is_empty());
}

/// A small tmpfs mounted for one test (needs root, like the namespace tests; a failure to mount
/// fails the test), unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: u64) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "zest-test"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            st.success(),
            "mounting a {bytes}-byte tmpfs failed (this test needs root)"
        );
        SmallDisk { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A disk that fills before the quota does (smaller than configured, or shared): the store
/// lowers its quota to what it holds, evicts the least recently used ranges and keeps taking
/// new ones, instead of failing every insert from then on.
#[test]
fn a_disk_that_fills_before_the_quota_lowers_the_quota_and_evicts() {
    let xs: Vec<TestXorb> = (0..12).map(|i| make_xorb(300 + i, 4, 60_000)).collect();
    let max = max_size(&xs, 0..4);
    let disk = SmallDisk::mount(4 * max + max / 2);
    let s = open(disk.dir.path(), BIG);
    for (i, x) in xs.iter().enumerate() {
        insert_range(&s, x, 0..4).unwrap_or_else(|e| panic!("insert {i}: {e}"));
        assert!(s.get(&x.hash(), 0..4).is_some(), "range {i} not held");
    }
    let st = s.stats();
    assert!(st.quota_bytes < BIG, "the quota was not lowered: {st:?}");
    assert!(st.quota_bytes <= 4 * max + max / 2, "{st:?}");
    assert!(st.evictions >= 6, "{st:?}");
    assert!(
        s.get(&xs[0].hash(), 0..4).is_none(),
        "the oldest range is still held"
    );
    assert_eq!(st.disk_bytes, disk_usage(disk.dir.path()));
}
