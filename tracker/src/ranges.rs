//! Sets of chunk ranges `[start, end)` that one peer holds of one xorb.
//!
//! A [`RangeSet`] keeps its ranges sorted, disjoint and merged (touching ranges become one), so
//! "does this peer hold all of `[s, e)`?" is one binary search. The compact text form
//! (`"0-10,20-30"`) is for logs and debugging; the Redis store keeps ranges in the binary
//! records of `store::holders`.

use std::fmt;

/// Most separate ranges one peer may hold of one xorb (a xorb has at most 8,192 chunks, so a
/// merged set has at most 4,096 ranges; anything above that is not a real cache).
pub const MAX_RANGES_PER_XORB: usize = 4096;

/// Errors building or decoding a [`RangeSet`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("chunk range start {start} is not below its end {end}")]
    Empty { start: u32, end: u32 },
    #[error("more than {MAX_RANGES_PER_XORB} separate ranges for one xorb")]
    TooMany,
    #[error("malformed range text {0:?}")]
    Malformed(String),
}

/// Sorted, disjoint, merged chunk ranges.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<(u32, u32)>,
}

impl fmt::Debug for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RangeSet({})", self.encode())
    }
}

impl RangeSet {
    pub fn new() -> Self {
        RangeSet::default()
    }

    /// Builds a set from ranges in any order, merging overlaps.
    pub fn from_ranges(ranges: impl IntoIterator<Item = (u32, u32)>) -> Result<Self, RangeError> {
        let mut set = RangeSet::new();
        for (s, e) in ranges {
            set.insert(s, e)?;
        }
        Ok(set)
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.ranges
    }

    /// Adds `[start, end)`, merging with every range it overlaps or touches.
    pub fn insert(&mut self, start: u32, end: u32) -> Result<(), RangeError> {
        if start >= end {
            return Err(RangeError::Empty { start, end });
        }
        // First range whose end reaches `start` (touching counts) and first whose start is past `end`.
        let lo = self.ranges.partition_point(|&(_, e)| e < start);
        let hi = self.ranges.partition_point(|&(s, _)| s <= end);
        if lo == hi && self.ranges.len() >= MAX_RANGES_PER_XORB {
            return Err(RangeError::TooMany);
        }
        let (mut s, mut e) = (start, end);
        if lo < hi {
            s = s.min(self.ranges[lo].0);
            e = e.max(self.ranges[hi - 1].1);
        }
        self.ranges.splice(lo..hi, [(s, e)]);
        Ok(())
    }

    /// Removes `[start, end)`, splitting a range that contains it.
    pub fn remove(&mut self, start: u32, end: u32) -> Result<(), RangeError> {
        if start >= end {
            return Err(RangeError::Empty { start, end });
        }
        let lo = self.ranges.partition_point(|&(_, e)| e <= start);
        let hi = self.ranges.partition_point(|&(s, _)| s < end);
        if lo >= hi {
            return Ok(());
        }
        let mut keep = Vec::with_capacity(2);
        let (first_s, _) = self.ranges[lo];
        let (_, last_e) = self.ranges[hi - 1];
        if first_s < start {
            keep.push((first_s, start));
        }
        if last_e > end {
            keep.push((end, last_e));
        }
        if self.ranges.len() - (hi - lo) + keep.len() > MAX_RANGES_PER_XORB {
            return Err(RangeError::TooMany);
        }
        self.ranges.splice(lo..hi, keep);
        Ok(())
    }

    /// Adds every range of `other`.
    pub fn insert_all(&mut self, other: &RangeSet) -> Result<(), RangeError> {
        other
            .ranges
            .iter()
            .try_for_each(|&(s, e)| self.insert(s, e))
    }

    /// Removes every range of `other`.
    pub fn remove_all(&mut self, other: &RangeSet) -> Result<(), RangeError> {
        other
            .ranges
            .iter()
            .try_for_each(|&(s, e)| self.remove(s, e))
    }

    /// Whether one held range covers all of `[start, end)`.
    pub fn covers(&self, start: u32, end: u32) -> bool {
        let i = self.ranges.partition_point(|&(s, _)| s <= start);
        i > 0 && {
            let (s, e) = self.ranges[i - 1];
            s <= start && end <= e
        }
    }

    /// The compact text form: `"s-e,s-e"` (empty for an empty set).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(self.ranges.len() * 10);
        for (i, (s, e)) in self.ranges.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&s.to_string());
            out.push('-');
            out.push_str(&e.to_string());
        }
        out
    }

    /// Parses [`RangeSet::encode`]'s form; never panics on bad input.
    pub fn decode(text: &str) -> Result<Self, RangeError> {
        let mut set = RangeSet::new();
        if text.is_empty() {
            return Ok(set);
        }
        for part in text.split(',') {
            let bad = || RangeError::Malformed(part.chars().take(40).collect());
            let (s, e) = part.split_once('-').ok_or_else(bad)?;
            let s: u32 = s.parse().map_err(|_| bad())?;
            let e: u32 = e.parse().map_err(|_| bad())?;
            set.insert(s, e)?;
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(r: &[(u32, u32)]) -> RangeSet {
        RangeSet::from_ranges(r.iter().copied()).expect("valid ranges")
    }

    #[test]
    fn insert_merges_overlapping_and_touching() {
        let mut s = set(&[(10, 20), (30, 40)]);
        s.insert(20, 30).expect("insert");
        assert_eq!(s.ranges(), &[(10, 40)]);
        s.insert(0, 5).expect("insert");
        s.insert(50, 60).expect("insert");
        assert_eq!(s.ranges(), &[(0, 5), (10, 40), (50, 60)]);
        s.insert(3, 55).expect("insert");
        assert_eq!(s.ranges(), &[(0, 60)]);
    }

    #[test]
    fn remove_splits_and_trims() {
        let mut s = set(&[(0, 100)]);
        s.remove(10, 20).expect("remove");
        assert_eq!(s.ranges(), &[(0, 10), (20, 100)]);
        s.remove(5, 30).expect("remove");
        assert_eq!(s.ranges(), &[(0, 5), (30, 100)]);
        s.remove(0, 1000).expect("remove");
        assert!(s.is_empty());
        s.remove(1, 2).expect("removing from nothing is fine");
    }

    #[test]
    fn covers_needs_one_range_to_hold_it_all() {
        let s = set(&[(0, 10), (20, 30)]);
        assert!(s.covers(0, 10));
        assert!(s.covers(22, 25));
        assert!(!s.covers(5, 25));
        assert!(!s.covers(10, 11));
        assert!(!s.covers(29, 31));
        assert!(!RangeSet::new().covers(0, 1));
    }

    #[test]
    fn empty_ranges_are_refused() {
        assert_eq!(
            RangeSet::new().insert(5, 5),
            Err(RangeError::Empty { start: 5, end: 5 })
        );
        assert!(RangeSet::new().remove(6, 5).is_err());
    }

    #[test]
    fn too_many_ranges_are_refused() {
        let mut s = RangeSet::new();
        for i in 0..MAX_RANGES_PER_XORB as u32 {
            s.insert(2 * i, 2 * i + 1).expect("under the limit");
        }
        assert_eq!(s.insert(1_000_000, 1_000_001), Err(RangeError::TooMany));
        // merging into an existing range is still fine
        s.insert(0, 3).expect("merge");
    }

    #[test]
    fn text_form_round_trips_and_rejects_garbage() {
        let s = set(&[(0, 10), (20, 30)]);
        assert_eq!(s.encode(), "0-10,20-30");
        assert_eq!(RangeSet::decode(&s.encode()), Ok(s));
        assert_eq!(RangeSet::decode(""), Ok(RangeSet::new()));
        for bad in ["x", "1-", "-2", "5-3", "1-2,,3-4", "99999999999-1"] {
            assert!(RangeSet::decode(bad).is_err(), "{bad}");
        }
    }

    mod model {
        use super::super::*;
        use proptest::prelude::*;

        /// Operations on chunks 0..64, checked against a plain bitmap.
        fn op() -> impl Strategy<Value = (bool, u32, u32)> {
            (any::<bool>(), 0u32..64, 1u32..16)
                .prop_map(|(add, s, len)| (add, s, (s + len).min(64)))
        }

        proptest! {
            #[test]
            fn matches_a_bitmap(ops in proptest::collection::vec(op(), 0..40), q in (0u32..64, 1u32..20)) {
                let mut set = RangeSet::new();
                let mut bits = [false; 64];
                for (add, s, e) in ops {
                    if add { set.insert(s, e).expect("insert") } else { set.remove(s, e).expect("remove") }
                    for b in &mut bits[s as usize..e as usize] { *b = add; }
                }
                // Sorted, disjoint, not touching.
                for w in set.ranges().windows(2) {
                    prop_assert!(w[0].1 < w[1].0);
                }
                let (qs, qe) = (q.0, (q.0 + q.1).min(64));
                let expected = bits[qs as usize..qe as usize].iter().all(|&b| b);
                prop_assert_eq!(set.covers(qs, qe), expected);
                prop_assert_eq!(RangeSet::decode(&set.encode()).expect("decode"), set.clone());
                let held: usize = set.ranges().iter().map(|(s, e)| (e - s) as usize).sum();
                prop_assert_eq!(held, bits.iter().filter(|&&b| b).count());
            }
        }
    }
}
