//! Unit tests of the pure index: LRU order by use, quota decisions, pins, lookups, covers, and a
//! model-based property test of eviction.

#![allow(clippy::single_range_in_vec_init)]

use std::cell::Cell;
use std::ops::Range;
use std::rc::Rc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use xet::MerkleHash;

use super::{coalesce, Entry, Index, ACCESS_PERSIST_INTERVAL};
use crate::error::StoreError;
use crate::verify::VerificationLevel;

/// A test entry; the level is shared so a test can raise it while the entry is held.
#[derive(Clone, Debug)]
struct E {
    xorb: MerkleHash,
    range: Range<u32>,
    len: u64,
    level: Rc<Cell<VerificationLevel>>,
}

impl Entry for E {
    fn xorb(&self) -> MerkleHash {
        self.xorb
    }
    fn range(&self) -> Range<u32> {
        self.range.clone()
    }
    fn file_len(&self) -> u64 {
        self.len
    }
    fn level(&self) -> VerificationLevel {
        self.level.get()
    }
}

fn x(n: u8) -> MerkleHash {
    MerkleHash::from_bytes([n; 32])
}

fn e(xorb: u8, range: Range<u32>, len: u64) -> E {
    E {
        xorb: x(xorb),
        range,
        len,
        level: Rc::new(Cell::new(VerificationLevel::Structural)),
    }
}

fn ranges(v: &[E]) -> Vec<Range<u32>> {
    v.iter().map(|e| e.range.clone()).collect()
}

#[test]
fn used_bytes_follow_adds_and_removes() {
    let mut ix = Index::default();
    let a = ix.add(e(1, 0..4, 100));
    let b = ix.add(e(1, 4..8, 50));
    assert_eq!((ix.used(), ix.len()), (150, 2));
    assert_eq!(ix.remove(a).map(|e| e.len), Some(100));
    assert!(ix.remove(a).is_none(), "a second remove finds nothing");
    assert_eq!((ix.used(), ix.len()), (50, 1));
    assert_eq!(ix.ids_of(&x(1)), &[b]);
    ix.remove(b);
    assert!(ix.ids_of(&x(1)).is_empty());
    assert!(ix.holdings().is_empty());
}

#[test]
fn make_room_evicts_least_recently_used_first() {
    let mut ix = Index::default();
    let a = ix.add(e(1, 0..1, 10));
    ix.add(e(1, 1..2, 10));
    ix.add(e(1, 2..3, 10));
    // Using `a` makes 1..2 the least recently used.
    ix.touch(a, Instant::now());
    let victims = ix.make_room(10, 30).expect("room");
    assert_eq!(ranges(&victims), vec![1..2]);
    assert_eq!(ix.used(), 20);
    // Already fits: nothing goes.
    assert!(ix.make_room(10, 30).expect("room").is_empty());
    let order: Vec<_> = ix.lru_order().map(|e| e.range.clone()).collect();
    assert_eq!(order, vec![2..3, 0..1]);
}

#[test]
fn make_room_skips_pinned_and_fails_without_evicting() {
    let mut ix = Index::default();
    ix.add(e(1, 0..4, 10));
    ix.add(e(2, 0..4, 10));
    ix.add(e(1, 8..12, 10));
    // Overlapping counts as pinned.
    ix.pin("m@1", &[(x(1), 3..5)]);
    let victims = ix.make_room(10, 30).expect("room");
    assert_eq!(
        victims.iter().map(|v| v.xorb).collect::<Vec<_>>(),
        vec![x(2)]
    );
    match ix.make_room(100, 30) {
        Err(StoreError::QuotaExceeded {
            needed,
            quota,
            pinned,
            in_flight,
        }) => assert_eq!((needed, quota, pinned, in_flight), (100, 30, 10, 0)),
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    assert_eq!(ix.len(), 2, "a failed make_room evicts nothing");
    assert!(ix.unpin("m@1"));
    assert!(!ix.unpin("m@1"));
    assert_eq!(ranges(&ix.make_room(20, 30).expect("room")), vec![0..4]);
}

#[test]
fn pinning_the_same_ranges_twice_keeps_one_pin_each() {
    let mut ix: Index<E> = Index::default();
    ix.pin("m@1", &[(x(1), 0..4), (x(2), 1..3)]);
    ix.pin("m@1", &[(x(2), 1..3), (x(1), 0..4), (x(1), 0..4)]);
    assert_eq!(ix.pins().len(), 1);
    assert_eq!(ix.pins()["m@1"], vec![(x(1), 0..4), (x(2), 1..3)]);
    ix.pin("m@1", &[(x(1), 4..6)]);
    assert_eq!(ix.pins()["m@1"].len(), 3);
    assert!(ix.unpin("m@1"));
    assert!(ix.pins().is_empty());
}

#[test]
fn bytes_in_flight_count_against_the_quota() {
    let mut ix = Index::default();
    ix.add(e(1, 0..1, 10));
    ix.reserve(15);
    assert_eq!(ranges(&ix.make_room(10, 30).expect("room")), vec![0..1]);
    ix.release(15);
    ix.release(15);
    assert!(ix.make_room(30, 30).expect("room").is_empty());
}

#[test]
fn find_covering_prefers_level_then_size() {
    let mut ix = Index::default();
    let wide = ix.add(e(1, 0..10, 10));
    let narrow = ix.add(e(1, 2..6, 10));
    ix.add(e(2, 0..10, 10));
    assert_eq!(ix.find_covering(&x(1), &(3..5)), Some(narrow));
    assert_eq!(ix.find_covering(&x(1), &(5..8)), Some(wide));
    assert_eq!(ix.find_covering(&x(1), &(8..11)), None);
    assert_eq!(ix.find_covering(&x(3), &(0..1)), None);
    // A higher level wins over size, even after it was added.
    ix.get(wide)
        .expect("held")
        .level
        .set(VerificationLevel::FileVerified);
    assert_eq!(ix.find_covering(&x(1), &(3..5)), Some(wide));
}

#[test]
fn cover_stitches_pieces_reaching_furthest() {
    let mut ix = Index::default();
    let a = ix.add(e(1, 0..10, 1));
    let b = ix.add(e(1, 5..12, 1));
    let c = ix.add(e(1, 10..20, 1));
    assert_eq!(
        ix.cover(&x(1), &(5..15)),
        Some(vec![(b, 5..12), (c, 12..15)])
    );
    assert_eq!(ix.cover(&x(1), &(0..3)), Some(vec![(a, 0..3)]));
    assert_eq!(ix.cover(&x(1), &(15..21)), None);
    ix.remove(b);
    assert_eq!(
        ix.cover(&x(1), &(5..15)),
        Some(vec![(a, 5..10), (c, 10..15)])
    );
    ix.remove(c);
    assert_eq!(ix.cover(&x(1), &(5..15)), None);
}

#[test]
fn overlapping_and_inside() {
    let mut ix = Index::default();
    let a = ix.add(e(1, 0..4, 1));
    let b = ix.add(e(1, 4..8, 1));
    let c = ix.add(e(1, 2..6, 1));
    ix.add(e(2, 0..8, 1));
    let mut o = ix.overlapping(&x(1), &(3..5));
    o.sort();
    assert_eq!(o, vec![a, b, c]);
    assert_eq!(ix.overlapping(&x(1), &(8..9)), Vec::<u64>::new());
    let mut i = ix.inside(&x(1), &(0..6));
    i.sort();
    assert_eq!(i, vec![a, c]);
}

#[test]
fn touch_asks_to_persist_at_most_once_an_interval() {
    let mut ix = Index::default();
    let a = ix.add(e(1, 0..1, 1));
    let t0 = Instant::now();
    assert!(ix.touch(a, t0).is_some(), "first use persists");
    assert!(ix.touch(a, t0 + Duration::from_secs(1)).is_none());
    assert!(ix.touch(a, t0 + ACCESS_PERSIST_INTERVAL).is_some());
    assert!(ix.touch(a, t0 + ACCESS_PERSIST_INTERVAL).is_none());
    assert!(ix.touch(99, t0).is_none(), "unknown id");
}

#[test]
fn holdings_merge_per_xorb() {
    let mut ix = Index::default();
    ix.add(e(2, 0..2, 1));
    ix.add(e(1, 4..8, 1));
    ix.add(e(1, 0..4, 1));
    ix.add(e(1, 10..12, 1));
    assert_eq!(
        ix.holdings(),
        vec![(x(1), vec![0..8, 10..12]), (x(2), vec![0..2])]
    );
}

#[test]
fn coalesce_merges_overlapping_and_adjacent() {
    let mut v = vec![5..8, 0..2, 2..3, 7..10, 12..13];
    assert_eq!(coalesce(&mut v), vec![0..3, 5..10, 12..13]);
    assert!(coalesce(&mut []).is_empty());
}

#[derive(Clone, Debug)]
enum Op {
    Add {
        xorb: u8,
        start: u32,
        len: u32,
        bytes: u64,
    },
    Touch(usize),
    Remove(usize),
    Pin {
        xorb: u8,
        start: u32,
        len: u32,
    },
    Unpin,
    MakeRoom(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 0u32..16, 1u32..6, 1u64..40)
            .prop_map(|(xorb, start, len, bytes)| Op::Add { xorb, start, len, bytes }),
        2 => (0usize..32).prop_map(Op::Touch),
        1 => (0usize..32).prop_map(Op::Remove),
        1 => (0u8..3, 0u32..16, 1u32..6).prop_map(|(xorb, start, len)| Op::Pin { xorb, start, len }),
        1 => Just(Op::Unpin),
        2 => (0u64..60).prop_map(Op::MakeRoom),
    ]
}

proptest! {
    /// Against a model (a list in LRU order): used bytes are the sum of what is held, and
    /// `make_room` either frees enough by evicting exactly the least recently used unpinned
    /// entries needed, or evicts nothing and fails only when unpinned entries cannot free enough.
    #[test]
    fn make_room_matches_a_model(ops in proptest::collection::vec(op(), 1..60), quota in 20u64..120) {
        let mut ix: Index<E> = Index::default();
        // (id, entry), least recently used first.
        let mut model: Vec<(u64, E)> = Vec::new();
        let mut pins: Vec<(MerkleHash, Range<u32>)> = Vec::new();
        let t = Instant::now();
        let pinned = |pins: &[(MerkleHash, Range<u32>)], e: &E| {
            pins.iter().any(|(px, pr)| *px == e.xorb && pr.start < e.range.end && e.range.start < pr.end)
        };
        for op in ops {
            match op {
                Op::Add { xorb, start, len, bytes } => {
                    let en = e(xorb, start..start + len, bytes);
                    let id = ix.add(en.clone());
                    model.push((id, en));
                }
                Op::Touch(i) if !model.is_empty() => {
                    let (id, en) = model.remove(i % model.len());
                    ix.touch(id, t);
                    model.push((id, en));
                }
                Op::Remove(i) if !model.is_empty() => {
                    let (id, _) = model.remove(i % model.len());
                    prop_assert!(ix.remove(id).is_some());
                }
                Op::Pin { xorb, start, len } => {
                    let p = (x(xorb), start..start + len);
                    ix.pin("l", std::slice::from_ref(&p));
                    pins.push(p);
                }
                Op::Unpin => {
                    ix.unpin("l");
                    pins.clear();
                }
                Op::MakeRoom(needed) => {
                    let used: u64 = model.iter().map(|(_, e)| e.len).sum();
                    let mut to_free = (used + needed).saturating_sub(quota);
                    let mut want = Vec::new();
                    for (id, en) in &model {
                        if to_free == 0 {
                            break;
                        }
                        if !pinned(&pins, en) {
                            to_free = to_free.saturating_sub(en.len);
                            want.push(*id);
                        }
                    }
                    match ix.make_room(needed, quota) {
                        Ok(victims) => {
                            prop_assert_eq!(to_free, 0);
                            prop_assert_eq!(victims.len(), want.len());
                            prop_assert!(victims.iter().all(|v| !pinned(&pins, v)));
                            model.retain(|(id, _)| !want.contains(id));
                            let left: u64 = model.iter().map(|(_, e)| e.len).sum();
                            prop_assert!(left + needed <= quota);
                        }
                        Err(StoreError::QuotaExceeded { .. }) => prop_assert!(to_free > 0),
                        Err(other) => prop_assert!(false, "unexpected error {other}"),
                    }
                }
                _ => {}
            }
            let used: u64 = model.iter().map(|(_, e)| e.len).sum();
            prop_assert_eq!(ix.used(), used);
            prop_assert_eq!(ix.len(), model.len());
            let order: Vec<Range<u32>> = ix.lru_order().map(|e| e.range.clone()).collect();
            let want: Vec<Range<u32>> = model.iter().map(|(_, e)| e.range.clone()).collect();
            prop_assert_eq!(order, want);
        }
    }
}
