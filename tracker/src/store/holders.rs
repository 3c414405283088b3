//! The binary form in which Redis keeps one peer's holding of one xorb (no I/O).
//!
//! A *record* names the peer and lists the chunk ranges it holds, so that the values of a
//! xorb's holders hash (`HVALS`) are self-contained and a lookup never needs the field names:
//!
//! ```text
//! u8  version (1)
//! u8  peer id length (1..=128), then the id's bytes
//! u16 number of ranges n (1..=4096), big-endian
//! n × (u32 start, u32 end), big-endian; sorted, disjoint, not touching, start < end
//! ```
//!
//! [`Record::decode`] checks every one of these rules and never panics, so a corrupt or
//! foreign value in Redis becomes a [`RecordError`] that the caller can log and skip.

use crate::ranges::{RangeError, RangeSet, MAX_RANGES_PER_XORB};

/// The first byte of every record.
pub const RECORD_VERSION: u8 = 1;
/// Longest peer id a record can carry (the API allows 128 characters).
pub const MAX_ID_LEN: usize = 128;

/// Why a stored record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record is cut short")]
    Truncated,
    #[error("unknown record version {0}")]
    Version(u8),
    #[error("peer id length {0} is outside 1..={MAX_ID_LEN}")]
    IdLength(usize),
    #[error("range count {0} is outside 1..={MAX_RANGES_PER_XORB}")]
    RangeCount(usize),
    #[error("ranges are not sorted, disjoint and non-empty")]
    Unordered,
    #[error("{0} trailing bytes after the record")]
    Trailing(usize),
}

/// Appends the record of `id` holding `ranges` to `out`.
///
/// `id` must be 1–128 bytes and `ranges` non-empty; both hold for validated announcements
/// (the API checks ids, and empty sets are deleted rather than stored).
pub fn encode(out: &mut Vec<u8>, id: &str, ranges: &RangeSet) -> Result<(), RecordError> {
    let id = id.as_bytes();
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(RecordError::IdLength(id.len()));
    }
    let n = ranges.len();
    if n == 0 || n > MAX_RANGES_PER_XORB {
        return Err(RecordError::RangeCount(n));
    }
    out.reserve(4 + id.len() + 8 * n);
    out.push(RECORD_VERSION);
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    out.extend_from_slice(&(n as u16).to_be_bytes());
    for &(s, e) in ranges.ranges() {
        out.extend_from_slice(&s.to_be_bytes());
        out.extend_from_slice(&e.to_be_bytes());
    }
    Ok(())
}

/// [`encode`] into a fresh vector.
pub fn encode_to_vec(id: &str, ranges: &RangeSet) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    encode(&mut out, id, ranges)?;
    Ok(out)
}

/// A validated record, borrowing the stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    id: &'a [u8],
    /// `8 × n` bytes of big-endian `(start, end)` pairs, already checked for order.
    ranges: &'a [u8],
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl<'a> Record<'a> {
    /// Reads the record at the start of `buf`; returns it and the number of bytes it used.
    pub fn decode_prefix(buf: &'a [u8]) -> Result<(Record<'a>, usize), RecordError> {
        let (&version, rest) = buf.split_first().ok_or(RecordError::Truncated)?;
        if version != RECORD_VERSION {
            return Err(RecordError::Version(version));
        }
        let (&id_len, rest) = rest.split_first().ok_or(RecordError::Truncated)?;
        let id_len = id_len as usize;
        if id_len == 0 || id_len > MAX_ID_LEN {
            return Err(RecordError::IdLength(id_len));
        }
        let id = rest.get(..id_len).ok_or(RecordError::Truncated)?;
        let rest = &rest[id_len..];
        let count = rest.get(..2).ok_or(RecordError::Truncated)?;
        let n = u16::from_be_bytes([count[0], count[1]]) as usize;
        if n == 0 || n > MAX_RANGES_PER_XORB {
            return Err(RecordError::RangeCount(n));
        }
        let ranges = rest.get(2..2 + 8 * n).ok_or(RecordError::Truncated)?;
        // Sorted, disjoint, not touching (as `RangeSet` keeps them), each non-empty.
        let mut prev_end: Option<u32> = None;
        for pair in ranges.chunks_exact(8) {
            let (s, e) = (be32(&pair[..4]), be32(&pair[4..]));
            if s >= e || prev_end.is_some_and(|p| p >= s) {
                return Err(RecordError::Unordered);
            }
            prev_end = Some(e);
        }
        let used = 2 + id_len + 2 + 8 * n;
        Ok((Record { id, ranges }, used))
    }

    /// Reads a value that must hold exactly one record.
    pub fn decode(buf: &'a [u8]) -> Result<Record<'a>, RecordError> {
        let (r, used) = Record::decode_prefix(buf)?;
        if used != buf.len() {
            return Err(RecordError::Trailing(buf.len() - used));
        }
        Ok(r)
    }

    /// The peer id's bytes (not checked against the API's alphabet).
    pub fn id(&self) -> &'a [u8] {
        self.id
    }

    /// The held ranges, in order.
    pub fn ranges(&self) -> impl Iterator<Item = (u32, u32)> + 'a {
        self.ranges
            .chunks_exact(8)
            .map(|p| (be32(&p[..4]), be32(&p[4..])))
    }

    /// Whether one held range covers all of `[start, end)` (a binary search; the order was
    /// checked when the record was decoded).
    pub fn covers(&self, start: u32, end: u32) -> bool {
        let n = self.ranges.len() / 8;
        let start_at = |i: usize| be32(&self.ranges[8 * i..]);
        // First range starting after `start`; the one before it is the only candidate.
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if start_at(mid) <= start {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo > 0 && {
            let (s, e) = (start_at(lo - 1), be32(&self.ranges[8 * (lo - 1) + 4..]));
            s <= start && end <= e
        }
    }

    /// The ranges as a [`RangeSet`].
    pub fn to_set(&self) -> Result<RangeSet, RangeError> {
        RangeSet::from_ranges(self.ranges())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(r: &[(u32, u32)]) -> RangeSet {
        RangeSet::from_ranges(r.iter().copied()).expect("valid ranges")
    }

    #[test]
    fn layout_is_as_documented() {
        let bytes = encode_to_vec("ab", &set(&[(1, 2), (300, 70_000)])).expect("encode");
        assert_eq!(
            bytes,
            [1, 2, b'a', b'b', 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 1, 44, 0, 1, 17, 112]
        );
        let r = Record::decode(&bytes).expect("decode");
        assert_eq!(r.id(), b"ab");
        assert_eq!(r.ranges().collect::<Vec<_>>(), [(1, 2), (300, 70_000)]);
    }

    #[test]
    fn encode_refuses_what_cannot_be_stored() {
        let one = set(&[(0, 1)]);
        assert_eq!(encode_to_vec("", &one), Err(RecordError::IdLength(0)));
        assert_eq!(
            encode_to_vec(&"x".repeat(129), &one),
            Err(RecordError::IdLength(129))
        );
        assert_eq!(
            encode_to_vec("p", &RangeSet::new()),
            Err(RecordError::RangeCount(0))
        );
    }

    #[test]
    fn covers_like_a_range_set() {
        let s = set(&[(0, 10), (20, 30), (40, 41)]);
        let bytes = encode_to_vec("p", &s).expect("encode");
        let r = Record::decode(&bytes).expect("decode");
        for start in 0..45 {
            for end in start + 1..46 {
                assert_eq!(r.covers(start, end), s.covers(start, end), "{start}..{end}");
            }
        }
    }

    #[test]
    fn malformed_values_are_errors() {
        let good = encode_to_vec("peer", &set(&[(0, 4), (8, 9)])).expect("encode");
        // Every truncation.
        for cut in 0..good.len() {
            assert!(Record::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(Record::decode(&trailing), Err(RecordError::Trailing(1)));
        // The old text form, and other garbage.
        for bad in [&b"0-64"[..], b"", b"\x01\x00", b"\x02\x01p\x00\x01"] {
            assert!(Record::decode(bad).is_err(), "{bad:?}");
        }
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            Record::decode(&b).map(|_| ())
        };
        assert_eq!(with(&|b| b[0] = 9), Err(RecordError::Version(9)));
        assert_eq!(with(&|b| b[1] = 0), Err(RecordError::IdLength(0)));
        assert_eq!(with(&|b| b[1] = 200), Err(RecordError::IdLength(200)));
        assert_eq!(with(&|b| b[7] = 0), Err(RecordError::RangeCount(0)));
        assert_eq!(
            with(&|b| b[6..8].copy_from_slice(&5000u16.to_be_bytes())),
            Err(RecordError::RangeCount(5000))
        );
        // Empty range, reversed range, overlapping, touching.
        assert_eq!(with(&|b| b[15] = 0), Err(RecordError::Unordered));
        assert_eq!(with(&|b| b[23] = 7), Err(RecordError::Unordered));
        assert_eq!(with(&|b| b[19] = 3), Err(RecordError::Unordered));
        assert_eq!(with(&|b| b[19] = 4), Err(RecordError::Unordered));
    }

    #[test]
    fn records_follow_each_other() {
        let mut buf = Vec::new();
        encode(&mut buf, "a", &set(&[(0, 1)])).expect("encode");
        encode(&mut buf, "bb", &set(&[(5, 9)])).expect("encode");
        let (a, used) = Record::decode_prefix(&buf).expect("first");
        assert_eq!(a.id(), b"a");
        let b = Record::decode(&buf[used..]).expect("second");
        assert_eq!(b.id(), b"bb");
        assert!(b.covers(5, 9) && !b.covers(4, 9));
    }

    proptest! {
        #[test]
        fn round_trips(
            id in "[A-Za-z0-9._:@-]{1,128}",
            ranges in proptest::collection::vec((0u32..100_000, 1u32..500), 1..50),
        ) {
            let s = RangeSet::from_ranges(ranges.iter().map(|&(a, l)| (a, a + l))).expect("valid");
            let bytes = encode_to_vec(&id, &s).expect("encode");
            let r = Record::decode(&bytes).expect("decode");
            prop_assert_eq!(r.id(), id.as_bytes());
            prop_assert_eq!(r.to_set().expect("set"), s.clone());
            for &(a, l) in &ranges {
                prop_assert_eq!(r.covers(a, a + l), s.covers(a, a + l));
                prop_assert_eq!(r.covers(a + l / 2, a + l + 1), s.covers(a + l / 2, a + l + 1));
            }
        }

        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok((r, used)) = Record::decode_prefix(&bytes) {
                prop_assert!(used <= bytes.len());
                prop_assert!(r.to_set().is_ok());
                let _ = r.covers(0, 1);
            }
        }
    }
}
