//! The level rule of the store (issue 15): a stored range is never displaced by a lower or
//! unproven one, and chunk hashes from a requester reject bytes but never raise their level.

use xorbstore::{
    Expectation, InsertOutcome, Store, StoreConfig, StoreError, VerificationLevel, VerifyError,
};

use crate::common::make_xorb;

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, StoreConfig::new(1 << 40)).unwrap()
}

fn levels(s: &Store) -> Vec<(std::ops::Range<u32>, VerificationLevel)> {
    let mut v: Vec<_> = s.list().into_iter().map(|e| (e.range, e.level)).collect();
    v.sort_by_key(|(r, _)| (r.start, r.end));
    v
}

#[test]
fn requester_hashes_reject_bytes_but_never_raise_their_level() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let x = make_xorb(40, 6, 8_000);
    let out = s
        .insert(
            &x.hash(),
            1..4,
            x.bytes(1..4),
            &Expectation::requester_hashes(x.hashes(1..4)),
        )
        .unwrap();
    assert_eq!(
        out,
        InsertOutcome::Stored {
            level: VerificationLevel::Structural
        }
    );
    let mut wrong = x.hashes(4..6);
    wrong[1] = xet::MerkleHash::from_bytes([7; 32]);
    assert!(matches!(
        s.insert(
            &x.hash(),
            4..6,
            x.bytes(4..6),
            &Expectation::requester_hashes(wrong)
        ),
        Err(StoreError::Verify(VerifyError::ChunkHash { index: 5, .. }))
    ));
    // The whole xorb is still proven by its own hash, whoever sent the chunk hashes.
    let out = s
        .insert(
            &x.hash(),
            0..6,
            &x.xorb.data,
            &Expectation::requester_hashes(x.hashes(0..6)).xorb_chunks(6),
        )
        .unwrap();
    assert_eq!(
        out,
        InsertOutcome::Stored {
            level: VerificationLevel::XorbVerified
        }
    );
}

/// The displacement of issue 15: a wider range of altered (structurally valid) bytes used to
/// delete every stored range inside it, whatever its level.
#[test]
fn unproven_bytes_never_displace_a_proven_range() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let x = make_xorb(41, 6, 8_000);
    let impostor = make_xorb(42, 6, 8_000);
    let h = x.hash();
    s.insert(
        &h,
        2..4,
        x.bytes(2..4),
        &Expectation::structural().file_verified(),
    )
    .unwrap();
    // Altered bytes over it, vouched for by the sender's own hashes: refused.
    let err = s
        .insert(
            &h,
            0..6,
            &impostor.xorb.data,
            &Expectation::requester_hashes(impostor.hashes(0..6)),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Verify(VerifyError::Contradicts {
                start: 2,
                end: 4,
                level: VerificationLevel::FileVerified
            })
        ),
        "{err}"
    );
    assert_eq!(levels(&s), vec![(2..4, VerificationLevel::FileVerified)]);
    // The same with "trusted" chunk hashes that are wrong: refused too.
    assert!(matches!(
        s.insert(
            &h,
            2..4,
            impostor.bytes(2..4),
            &Expectation::with_chunk_hashes(impostor.hashes(2..4))
        ),
        Err(StoreError::Verify(VerifyError::Contradicts { .. }))
    ));
    // Right but unproven bytes around it are kept beside it, and it stays.
    let out = s
        .insert(&h, 0..6, &x.xorb.data, &Expectation::structural())
        .unwrap();
    assert_eq!(
        out,
        InsertOutcome::Stored {
            level: VerificationLevel::Structural
        }
    );
    assert_eq!(
        levels(&s),
        vec![
            (0..6, VerificationLevel::Structural),
            (2..4, VerificationLevel::FileVerified)
        ]
    );
    assert_eq!(
        s.get(&h, 2..4).unwrap().level(),
        VerificationLevel::FileVerified
    );
    assert_eq!(&*s.get(&h, 1..3).unwrap(), x.bytes(1..3));
}

#[test]
fn proven_bytes_displace_disagreeing_unproven_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let x = make_xorb(43, 6, 8_000);
    let impostor = make_xorb(44, 6, 8_000);
    let h = x.hash();
    // Unproven altered bytes, partly overlapping what arrives next (no range covers the other).
    s.insert(&h, 0..3, impostor.bytes(0..3), &Expectation::structural())
        .unwrap();
    let out = s
        .insert(
            &h,
            2..6,
            x.bytes(2..6),
            &Expectation::structural().file_verified(),
        )
        .unwrap();
    assert_eq!(
        out,
        InsertOutcome::Stored {
            level: VerificationLevel::FileVerified
        }
    );
    assert_eq!(levels(&s), vec![(2..6, VerificationLevel::FileVerified)]);
    // Unproven replaces unproven that disagrees (neither is proven; the new one matched the
    // requester's hashes).
    s.insert(&h, 0..2, impostor.bytes(0..2), &Expectation::structural())
        .unwrap();
    s.insert(
        &h,
        0..2,
        x.bytes(0..2),
        &Expectation::requester_hashes(x.hashes(0..2)),
    )
    .unwrap();
    assert_eq!(&*s.get(&h, 0..2).unwrap(), x.bytes(0..2));
    assert_eq!(
        levels(&s),
        vec![
            (0..2, VerificationLevel::Structural),
            (2..6, VerificationLevel::FileVerified)
        ]
    );
}
