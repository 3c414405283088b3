//! The sources of one pull that sent bytes failing verification, with why (reported in the
//! pull's summary as `bad_sources`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::Source;

/// Bad sources by [`Source::key`], with the latest reason given.
#[derive(Debug, Default)]
pub struct BlameList {
    bad: Mutex<BTreeMap<String, String>>,
}

impl BlameList {
    /// Records that `source` sent bad bytes (`why`); the latest reason is kept.
    pub fn add(&self, source: &Source, why: &str) {
        self.bad
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(source.key().to_string(), why.to_string());
    }

    /// Every bad source so far, with why.
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        self.bad.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_blamed_under_their_key() {
        let b = BlameList::default();
        b.add(&Source::Peer("p1".into()), "first");
        b.add(&Source::Edge("e1".into()), "bad");
        b.add(&Source::Peer("p1".into()), "again");
        b.add(&Source::Local, "hash");
        let s = b.snapshot();
        assert_eq!(s.len(), 3);
        assert_eq!(s["p1"], "again");
        assert_eq!(s["e1"], "bad");
        assert_eq!(s["local"], "hash");
    }
}
