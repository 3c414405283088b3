//! The role vocabulary of a fleet node, shared by the wire Handshake and the tracker's JSON API
//! (`"edge"`, `"client"`, `"seed"`), so a node names itself the same way on both.

use serde::{Deserialize, Serialize};

/// What a node of the fleet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Role {
    /// A downloader that does not serve (`zest pull`).
    Client = 0,
    /// An edge cache (`zest-edge`).
    Edge = 1,
    /// A client serving its local store (`zest seed`).
    Seed = 2,
}

impl Role {
    /// The Handshake byte's meaning, if any.
    pub fn from_u8(v: u8) -> Option<Role> {
        Some(match v {
            0 => Role::Client,
            1 => Role::Edge,
            2 => Role::Seed,
            _ => return None,
        })
    }

    /// The JSON / log spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Edge => "edge",
            Role::Seed => "seed",
        }
    }

    /// Parses [`Role::as_str`]'s spelling.
    pub fn parse(s: &str) -> Option<Role> {
        [Role::Client, Role::Edge, Role::Seed]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_on_both_encodings() {
        for r in [Role::Client, Role::Edge, Role::Seed] {
            assert_eq!(Role::from_u8(r as u8), Some(r));
            assert_eq!(Role::parse(r.as_str()), Some(r));
            let json = serde_json::to_string(&r).expect("json");
            assert_eq!(json, format!("\"{}\"", r.as_str()));
            assert_eq!(serde_json::from_str::<Role>(&json).expect("parse"), r);
        }
        assert_eq!(Role::from_u8(3), None);
        assert_eq!(Role::parse("Edge"), None);
    }
}
