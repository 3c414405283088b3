//! The store's in-memory index, pure: which ranges are held (per xorb), their order of last use
//! (least recently used first), the bytes they take against the quota (plus bytes reserved by
//! writes in flight), the pins, and the decisions made on them: which range serves a lookup,
//! which ranges cover a span, which ranges to evict to make room. No I/O and no clock (the
//! caller passes `now`); the store does the file work the decisions call for.
//!
//! Entries are anything that says its xorb, chunk range, bytes on disk and verification level
//! ([`Entry`]); the store indexes `Arc<Stored>`, the tests a plain struct.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::time::{Duration, Instant};

use xet::MerkleHash;

use crate::error::StoreError;
use crate::verify::VerificationLevel;

/// A stored range's file access time is refreshed at most this often (it orders LRU after a
/// restart).
pub(crate) const ACCESS_PERSIST_INTERVAL: Duration = Duration::from_secs(60);

/// Identifies one entry of an [`Index`] for as long as it is held.
pub(crate) type Id = u64;

/// Pin label → the chunk ranges it pins.
pub type Pins = BTreeMap<String, Vec<(MerkleHash, Range<u32>)>>;

/// What the index needs to know of a stored range.
pub(crate) trait Entry {
    fn xorb(&self) -> MerkleHash;
    fn range(&self) -> Range<u32>;
    /// Bytes on disk, counted against the quota.
    fn file_len(&self) -> u64;
    /// The current level (it may rise while the entry is held).
    fn level(&self) -> VerificationLevel;
}

#[derive(Debug)]
struct Slot<E> {
    entry: E,
    tick: u64,
    /// When the entry's access time was last persisted (`None`: not since it was added).
    persisted: Option<Instant>,
}

/// The index. See the module docs.
#[derive(Debug)]
pub(crate) struct Index<E> {
    slots: HashMap<Id, Slot<E>>,
    by_xorb: HashMap<MerkleHash, Vec<Id>>,
    /// Tick of last use → id; the first is the least recently used.
    lru: BTreeMap<u64, Id>,
    next_tick: u64,
    next_id: Id,
    used: u64,
    in_flight: u64,
    pins: Pins,
    pinned: HashMap<MerkleHash, Vec<Range<u32>>>,
}

impl<E> Default for Index<E> {
    fn default() -> Self {
        Self {
            slots: HashMap::new(),
            by_xorb: HashMap::new(),
            lru: BTreeMap::new(),
            next_tick: 0,
            next_id: 0,
            used: 0,
            in_flight: 0,
            pins: Pins::new(),
            pinned: HashMap::new(),
        }
    }
}

fn overlaps(a: &Range<u32>, b: &Range<u32>) -> bool {
    a.start < b.end && b.start < a.end
}

fn contains(outer: &Range<u32>, inner: &Range<u32>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

impl<E: Entry + Clone> Index<E> {
    /// Adds `entry` as the most recently used; returns its id.
    pub(crate) fn add(&mut self, entry: E) -> Id {
        let id = self.next_id;
        self.next_id += 1;
        let tick = self.next_tick;
        self.next_tick += 1;
        self.used += entry.file_len();
        self.by_xorb.entry(entry.xorb()).or_default().push(id);
        self.lru.insert(tick, id);
        self.slots.insert(
            id,
            Slot {
                entry,
                tick,
                persisted: None,
            },
        );
        id
    }

    /// Removes `id`; returns its entry when it was held.
    pub(crate) fn remove(&mut self, id: Id) -> Option<E> {
        let slot = self.slots.remove(&id)?;
        self.lru.remove(&slot.tick);
        self.used -= slot.entry.file_len();
        let xorb = slot.entry.xorb();
        if let Some(ids) = self.by_xorb.get_mut(&xorb) {
            ids.retain(|&x| x != id);
            if ids.is_empty() {
                self.by_xorb.remove(&xorb);
            }
        }
        Some(slot.entry)
    }

    /// Removes every id of `ids`; returns the entries that were held.
    pub(crate) fn remove_all(&mut self, ids: impl IntoIterator<Item = Id>) -> Vec<E> {
        ids.into_iter().filter_map(|id| self.remove(id)).collect()
    }

    pub(crate) fn get(&self, id: Id) -> Option<&E> {
        self.slots.get(&id).map(|s| &s.entry)
    }

    /// Marks `id` most recently used. Returns its entry when its access time is due to be
    /// persisted (first use since it was added, or [`ACCESS_PERSIST_INTERVAL`] since the last
    /// time); the caller persists it.
    pub(crate) fn touch(&mut self, id: Id, now: Instant) -> Option<E> {
        let tick = self.next_tick;
        self.next_tick += 1;
        let slot = self.slots.get_mut(&id)?;
        self.lru.remove(&slot.tick);
        slot.tick = tick;
        self.lru.insert(tick, id);
        let due = slot
            .persisted
            .is_none_or(|t| now.saturating_duration_since(t) >= ACCESS_PERSIST_INTERVAL);
        if due {
            slot.persisted = Some(now);
            return Some(slot.entry.clone());
        }
        None
    }

    /// The ids held for `xorb`.
    pub(crate) fn ids_of(&self, xorb: &MerkleHash) -> &[Id] {
        self.by_xorb.get(xorb).map_or(&[], |v| v.as_slice())
    }

    /// The entries held for `xorb`, with their ids.
    pub(crate) fn entries_of<'a>(
        &'a self,
        xorb: &MerkleHash,
    ) -> impl Iterator<Item = (Id, &'a E)> + 'a {
        self.ids_of(xorb)
            .iter()
            .filter_map(|&id| self.get(id).map(|e| (id, e)))
    }

    /// Every entry, in no particular order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (Id, &E)> + '_ {
        self.slots.iter().map(|(id, s)| (*id, &s.entry))
    }

    /// Every entry, least recently used first.
    pub(crate) fn lru_order(&self) -> impl Iterator<Item = &E> + '_ {
        self.lru.values().filter_map(|&id| self.get(id))
    }

    /// The best entry of `xorb` covering `r`: highest level, then smallest.
    pub(crate) fn find_covering(&self, xorb: &MerkleHash, r: &Range<u32>) -> Option<Id> {
        self.entries_of(xorb)
            .filter(|(_, e)| contains(&e.range(), r))
            .max_by_key(|(_, e)| {
                let er = e.range();
                (e.level(), std::cmp::Reverse(er.end - er.start))
            })
            .map(|(id, _)| id)
    }

    /// Entries that together cover `r` in order, each with the part of `r` it serves, taking at
    /// each step the entry reaching furthest. `None` when some chunk of `r` is not held.
    pub(crate) fn cover(&self, xorb: &MerkleHash, r: &Range<u32>) -> Option<Vec<(Id, Range<u32>)>> {
        let mut pieces = Vec::new();
        let mut cur = r.start;
        while cur < r.end {
            let (id, er) = self
                .entries_of(xorb)
                .map(|(id, e)| (id, e.range()))
                .filter(|(_, er)| er.start <= cur && cur < er.end)
                .max_by_key(|(_, er)| er.end)?;
            let end = er.end.min(r.end);
            pieces.push((id, cur..end));
            cur = end;
        }
        Some(pieces)
    }

    /// Ids of the entries of `xorb` that overlap `r`.
    pub(crate) fn overlapping(&self, xorb: &MerkleHash, r: &Range<u32>) -> Vec<Id> {
        self.entries_of(xorb)
            .filter(|(_, e)| overlaps(&e.range(), r))
            .map(|(id, _)| id)
            .collect()
    }

    /// Ids of the entries of `xorb` wholly inside `r`.
    pub(crate) fn inside(&self, xorb: &MerkleHash, r: &Range<u32>) -> Vec<Id> {
        self.entries_of(xorb)
            .filter(|(_, e)| contains(r, &e.range()))
            .map(|(id, _)| id)
            .collect()
    }

    /// True when a pin overlaps `e`.
    pub(crate) fn is_pinned(&self, e: &E) -> bool {
        let r = e.range();
        self.pinned
            .get(&e.xorb())
            .is_some_and(|rs| rs.iter().any(|p| overlaps(p, &r)))
    }

    pub(crate) fn pins(&self) -> &Pins {
        &self.pins
    }

    /// Replaces every pin.
    pub(crate) fn set_pins(&mut self, pins: Pins) {
        self.pins = pins;
        self.rebuild_pinned();
    }

    /// Adds `ranges` to the pins of `label`. A label's pins are a set: pinning a range it
    /// already pins changes nothing.
    pub(crate) fn pin(&mut self, label: &str, ranges: &[(MerkleHash, Range<u32>)]) {
        let set = self.pins.entry(label.to_string()).or_default();
        set.extend(ranges.iter().cloned());
        set.sort_by_key(|(x, r)| (*x, r.start, r.end));
        set.dedup();
        self.rebuild_pinned();
    }

    /// Removes the pins of `label`; returns whether it had any.
    pub(crate) fn unpin(&mut self, label: &str) -> bool {
        let existed = self.pins.remove(label).is_some();
        if existed {
            self.rebuild_pinned();
        }
        existed
    }

    fn rebuild_pinned(&mut self) {
        self.pinned.clear();
        for ranges in self.pins.values() {
            for (x, r) in ranges {
                self.pinned.entry(*x).or_default().push(r.clone());
            }
        }
    }

    /// Bytes held.
    pub(crate) fn used(&self) -> u64 {
        self.used
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Reserves `bytes` for a write in flight (they count against the quota until released).
    pub(crate) fn reserve(&mut self, bytes: u64) {
        self.in_flight += bytes;
    }

    /// Releases bytes [`Index::reserve`]d.
    pub(crate) fn release(&mut self, bytes: u64) {
        self.in_flight = self.in_flight.saturating_sub(bytes);
    }

    /// Removes least recently used unpinned entries until `needed` more bytes fit under `quota`
    /// (with the bytes in flight), and returns them for the caller to delete. Either frees
    /// enough or removes nothing and returns [`StoreError::QuotaExceeded`].
    pub(crate) fn make_room(&mut self, needed: u64, quota: u64) -> Result<Vec<E>, StoreError> {
        let mut to_free = (self.used + self.in_flight + needed).saturating_sub(quota);
        if to_free == 0 {
            return Ok(Vec::new());
        }
        let mut victims = Vec::new();
        for &id in self.lru.values() {
            if to_free == 0 {
                break;
            }
            let Some(e) = self.get(id) else {
                continue;
            };
            if self.is_pinned(e) {
                continue;
            }
            to_free = to_free.saturating_sub(e.file_len());
            victims.push(id);
        }
        if to_free > 0 {
            let pinned = self
                .slots
                .values()
                .filter(|s| self.is_pinned(&s.entry))
                .map(|s| s.entry.file_len())
                .sum();
            return Err(StoreError::QuotaExceeded {
                needed,
                quota,
                pinned,
                in_flight: self.in_flight,
            });
        }
        Ok(self.remove_all(victims))
    }

    /// Every xorb held with its chunk ranges, overlapping and adjacent ranges merged, sorted by
    /// xorb.
    pub(crate) fn holdings(&self) -> Vec<(MerkleHash, Vec<Range<u32>>)> {
        let mut out: Vec<(MerkleHash, Vec<Range<u32>>)> = self
            .by_xorb
            .keys()
            .map(|x| {
                let mut rs: Vec<Range<u32>> = self.entries_of(x).map(|(_, e)| e.range()).collect();
                (*x, coalesce(&mut rs))
            })
            .filter(|(_, rs)| !rs.is_empty())
            .collect();
        out.sort_by_key(|a| a.0);
        out
    }
}

/// Sorts and merges overlapping or adjacent ranges.
pub(crate) fn coalesce(rs: &mut [Range<u32>]) -> Vec<Range<u32>> {
    rs.sort_by_key(|r| (r.start, r.end));
    let mut out: Vec<Range<u32>> = Vec::new();
    for r in rs.iter() {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r.clone()),
        }
    }
    out
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
