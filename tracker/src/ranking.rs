//! Orders the peers that hold a range: who should the asker try first?
//!
//! Same zone as the asker first, then edges before clients, then least loaded, with a random
//! tie-break among equals so that identical askers spread over identical peers. The asker
//! itself is never returned.

use rand::Rng;

use crate::model::{PeerRecord, Role};

/// Who is asking.
#[derive(Debug, Clone, Copy, Default)]
pub struct Asker<'a> {
    pub peer_id: Option<&'a str>,
    pub zone: Option<&'a str>,
}

/// Sort key: (other zone, role, load, random tie-break); smaller is better.
type RankKey = (bool, u8, u32, u32);

/// Returns at most `limit` of `candidates`, best first.
/// `T` is whatever identifies a candidate to the caller (an index, an id).
pub fn rank<'a, T: Copy, R: Rng + ?Sized>(
    candidates: impl IntoIterator<Item = (T, &'a PeerRecord)>,
    asker: Asker<'_>,
    limit: usize,
    rng: &mut R,
) -> Vec<T> {
    let mut keyed: Vec<(RankKey, T)> = candidates
        .into_iter()
        .filter(|(_, p)| Some(p.id.as_str()) != asker.peer_id)
        .map(|(id, p)| {
            let other_zone = match asker.zone {
                Some(z) if !z.is_empty() => p.zone != z,
                _ => false,
            };
            let role = match p.role {
                Role::Edge => 0,
                Role::Client | Role::Seed => 1,
            };
            ((other_zone, role, p.load, rng.random::<u32>()), id)
        })
        .collect();
    keyed.sort_unstable_by_key(|(k, _)| *k);
    keyed.into_iter().take(limit).map(|(_, id)| id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn peer(id: &str, role: Role, zone: &str, load: u32) -> PeerRecord {
        PeerRecord {
            id: id.into(),
            addr: format!("{id}:1"),
            role,
            zone: zone.into(),
            free_bytes: 0,
            load,
        }
    }

    fn ranked(peers: &[PeerRecord], asker: Asker<'_>, limit: usize) -> Vec<String> {
        let mut rng = rand::rng();
        rank(
            peers.iter().map(|p| (p.id.as_str(), p)),
            asker,
            limit,
            &mut rng,
        )
        .into_iter()
        .map(String::from)
        .collect()
    }

    #[test]
    fn zone_then_role_then_load() {
        let peers = vec![
            peer("client-far", Role::Client, "b", 0),
            peer("edge-far", Role::Edge, "b", 0),
            peer("client-near", Role::Client, "a", 0),
            peer("edge-near-busy", Role::Edge, "a", 5),
            peer("edge-near-idle", Role::Edge, "a", 1),
        ];
        let asker = Asker {
            peer_id: None,
            zone: Some("a"),
        };
        assert_eq!(
            ranked(&peers, asker, 10),
            [
                "edge-near-idle",
                "edge-near-busy",
                "client-near",
                "edge-far",
                "client-far"
            ]
        );
        assert_eq!(
            ranked(&peers, asker, 2),
            ["edge-near-idle", "edge-near-busy"]
        );
    }

    #[test]
    fn no_zone_means_role_then_load() {
        let peers = vec![
            peer("c", Role::Client, "a", 0),
            peer("e", Role::Edge, "b", 3),
        ];
        assert_eq!(ranked(&peers, Asker::default(), 10), ["e", "c"]);
    }

    #[test]
    fn never_the_asker() {
        let peers = vec![
            peer("me", Role::Edge, "a", 0),
            peer("other", Role::Client, "b", 9),
        ];
        let asker = Asker {
            peer_id: Some("me"),
            zone: Some("a"),
        };
        assert_eq!(ranked(&peers, asker, 10), ["other"]);
    }

    #[test]
    fn equals_are_shuffled() {
        let peers: Vec<PeerRecord> = (0..4)
            .map(|i| peer(&format!("e{i}"), Role::Edge, "a", 0))
            .collect();
        let mut firsts = HashMap::new();
        for _ in 0..400 {
            *firsts
                .entry(ranked(&peers, Asker::default(), 1)[0].clone())
                .or_insert(0) += 1;
        }
        assert_eq!(
            firsts.len(),
            4,
            "every equal peer comes first sometimes: {firsts:?}"
        );
        assert!(firsts.values().all(|&n| n > 40), "roughly even: {firsts:?}");
    }
}
