//! Certificate Transparency follower: reads public CT logs, verifies what it
//! reads, and hands the daemon the entries so it can spot certificates
//! issued for watched domains.
//!
//! Two kinds of log are followed: RFC 6962 logs (§4 of the RFC: `get-sth`,
//! `get-sth-consistency`, `get-proof-by-hash`, `get-entries`) and tiled logs
//! of the static CT API (c2sp.org/static-ct-api: a signed-note checkpoint,
//! data tiles, hash tiles and issuer certificates). Whatever the kind, the
//! follower trusts nothing it has not verified:
//!
//! - every tree head is signed by the log's key ([`sig`]);
//! - every new tree head is consistent with the previous one (RFC 6962
//!   §2.1.2 consistency proofs, fetched from an RFC 6962 log or computed
//!   from a tiled log's hash tiles, [`merkle`]);
//! - every entry is hashed into a compact Merkle frontier, and each batch
//!   ends with a proof that the frontier is a prefix of the signed tree, so
//!   the [`Position`] the daemon persists only ever covers verified leaves.
//!
//! [`loglist`] reads Chrome's log list, [`entry`] parses leaves into
//! [`Entry`]s, [`watch`] matches them against watched domains, [`client`]
//! is the bounded HTTP client, and [`follow`] ties it together.

pub mod client;
pub mod entry;
pub mod follow;
pub mod loglist;
pub mod merkle;
pub mod sig;
pub mod tiles;
pub mod watch;

use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use client::{ClientError, ClientOptions};
pub use entry::{Entry, EntryKind};
pub use follow::{Batch, FollowOptions, Follower, Start};
pub use loglist::{fetch_log_list, parse_log_list};
pub use watch::Watch;

/// A log to follow: where it is, what kind it is and the key it signs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSpec {
    /// A human name (the log list's `description`), used in messages.
    pub name: String,
    /// The log ID: SHA-256 of the key's DER (RFC 6962 §3.2).
    pub id: [u8; 32],
    /// The log's public key, DER SubjectPublicKeyInfo.
    pub key_der: Vec<u8>,
    /// The maximum merge delay the log promises, if known.
    pub mmd: Option<Duration>,
    /// The API the log speaks and where.
    pub kind: LogKind,
}

/// The API a log speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogKind {
    /// An RFC 6962 log; `url` is its base URL (the `ct/v1/...` paths go
    /// under it).
    Rfc6962 {
        /// Base URL, e.g. `https://ct.example/2025h1/`.
        url: String,
    },
    /// A static-ct-api (tiled) log.
    Tiled {
        /// Monitoring prefix, e.g. `https://ct.example/2025h1/`.
        monitoring_url: String,
        /// The checkpoint origin line; by the spec the submission URL
        /// without scheme and trailing slash.
        origin: String,
    },
}

impl LogSpec {
    /// A log from its name, kind and base64 DER public key (as in the log
    /// list); the ID is computed from the key.
    pub fn new(name: &str, kind: LogKind, key_b64: &str) -> Result<LogSpec, CtError> {
        let key_der = base64::engine::general_purpose::STANDARD
            .decode(key_b64.trim())
            .map_err(|e| CtError::Config {
                log: name.to_owned(),
                reason: format!("the key is not base64: {e}"),
            })?;
        sig::LogKey::from_der(&key_der).map_err(|reason| CtError::Config {
            log: name.to_owned(),
            reason,
        })?;
        let id: [u8; 32] = Sha256::digest(&key_der).into();
        Ok(LogSpec {
            name: name.to_owned(),
            id,
            key_der,
            mmd: None,
            kind,
        })
    }
}

/// How far a log has been read and verified: what the daemon persists after
/// each batch, and hands back to [`Follower::new`] to resume.
///
/// `tree_size`, `root_hash` and `timestamp` are the last verified signed
/// tree head; `frontier` holds the roots of the maximal complete subtrees
/// over the first `next_index` leaves (RFC 6962 §2.1 tree shape, highest
/// first), so its length is the number of bits set in `next_index`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Size of the verified tree head.
    pub tree_size: u64,
    /// Root hash of the verified tree head (hex).
    #[serde(with = "hex_hash")]
    pub root_hash: [u8; 32],
    /// Timestamp of the verified tree head, ms since the epoch.
    pub timestamp: u64,
    /// Index of the next entry to read; every entry before it was
    /// delivered and verified.
    pub next_index: u64,
    /// Merkle frontier over the first `next_index` leaves (hex hashes).
    #[serde(with = "hex_hashes")]
    pub frontier: Vec<[u8; 32]>,
}

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }

    pub fn parse(text: &str) -> Result<[u8; 32], String> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|e| format!("not a hex hash: {e}"))?;
        Ok(out)
    }
}

mod hex_hashes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hashes: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(hashes.iter().map(hex::encode))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts
            .iter()
            .map(|t| super::hex_hash::parse(t).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// Why following a log failed. Every message names the log.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CtError {
    /// The log's configuration is unusable (bad key, bad URL, bad position).
    #[error("CT log {log}: configuration: {reason}")]
    Config {
        /// The log.
        log: String,
        /// What is wrong.
        reason: String,
    },
    /// A request failed (network, timeout, status, size cap).
    #[error("CT log {log}: {source}")]
    Http {
        /// The log.
        log: String,
        /// The failure.
        #[source]
        source: ClientError,
    },
    /// The log answered something that does not parse.
    #[error("CT log {log}: malformed {what}: {reason}")]
    Malformed {
        /// The log.
        log: String,
        /// What was being read (`get-sth`, `checkpoint`, `data tile`, ...).
        what: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A tree head's signature does not verify with the log's key.
    #[error("CT log {log}: tree head signature does not verify: {reason}")]
    Signature {
        /// The log.
        log: String,
        /// Details.
        reason: String,
    },
    /// One entry cannot be parsed.
    #[error("CT log {log}: entry {index}: {reason}")]
    Entry {
        /// The log.
        log: String,
        /// The entry's index.
        index: u64,
        /// What was wrong.
        reason: String,
    },
    /// Two signed tree heads cannot both be true: the log shows different
    /// histories (split view).
    #[error("CT log {log}: fork: {reason}")]
    Fork {
        /// The log.
        log: String,
        /// Details.
        reason: String,
    },
    /// A tree head contradicts what was verified before (e.g. the tree
    /// shrank).
    #[error("CT log {log}: inconsistent tree: {reason}")]
    Inconsistent {
        /// The log.
        log: String,
        /// Details.
        reason: String,
    },
    /// The entries served do not hash to the signed tree.
    #[error("CT log {log}: entries do not match the signed tree of size {tree_size}: {reason}")]
    LeafMismatch {
        /// The log.
        log: String,
        /// The signed tree size checked against.
        tree_size: u64,
        /// Details.
        reason: String,
    },
    /// The log signed a tree it does not serve the entries of.
    #[error(
        "CT log {log}: entry {index} of the signed tree of size {tree_size} is not served \
         after {attempts} attempts"
    )]
    NotServed {
        /// The log.
        log: String,
        /// The first missing entry.
        index: u64,
        /// The signed tree size.
        tree_size: u64,
        /// How many times it was asked for.
        attempts: u32,
    },
}

impl CtError {
    /// Whether this is evidence of log misbehaviour an operator should see
    /// (a split view, a bad signature, an inconsistent or lying tree),
    /// rather than trouble reaching the log.
    pub fn is_alert(&self) -> bool {
        matches!(
            self,
            CtError::Fork { .. }
                | CtError::Signature { .. }
                | CtError::Inconsistent { .. }
                | CtError::LeafMismatch { .. }
        )
    }

    /// Whether trying again later may succeed: network trouble, timeouts,
    /// 5xx answers and entries not served yet.
    pub fn is_transient(&self) -> bool {
        match self {
            CtError::Http { source, .. } => source.is_transient(),
            CtError::NotServed { .. } => true,
            _ => false,
        }
    }

    /// The log this error is about.
    pub fn log(&self) -> &str {
        match self {
            CtError::Config { log, .. }
            | CtError::Http { log, .. }
            | CtError::Malformed { log, .. }
            | CtError::Signature { log, .. }
            | CtError::Entry { log, .. }
            | CtError::Fork { log, .. }
            | CtError::Inconsistent { log, .. }
            | CtError::LeafMismatch { log, .. }
            | CtError::NotServed { log, .. } => log,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn position_round_trips_as_hex() {
        let position = Position {
            tree_size: 5,
            root_hash: [7; 32],
            timestamp: 1,
            next_index: 3,
            frontier: vec![[1; 32], [2; 32]],
        };
        let json = serde_json::to_string(&position).unwrap();
        assert!(json.contains(&"07".repeat(32)), "{json}");
        assert_eq!(serde_json::from_str::<Position>(&json).unwrap(), position);
        assert!(serde_json::from_str::<Position>(&json.replace("07", "zz")).is_err());
    }

    #[test]
    fn alert_and_transient_classes() {
        let fork = CtError::Fork {
            log: "a".into(),
            reason: "x".into(),
        };
        assert!(fork.is_alert() && !fork.is_transient());
        assert!(fork.to_string().contains("CT log a"));
        let missing = CtError::NotServed {
            log: "a".into(),
            index: 1,
            tree_size: 2,
            attempts: 3,
        };
        assert!(!missing.is_alert() && missing.is_transient());
    }
}
