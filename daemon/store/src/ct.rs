//! Where each Certificate Transparency log stands (`ct_log:⟨log⟩`): the
//! CT engine's position after the last verified entry recorded (tree head,
//! next index, Merkle frontier; opaque to the store), counts for
//! `certkeeper ct status`, and the log's last error.
//!
//! The position is written only after the batch it ends has been recorded
//! in the inventory, so a daemon killed mid-batch reads that batch again
//! (recording is idempotent) and never skips one.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Store, StoreError, with_conflict_retry};

/// One log's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CtLogState {
    /// The log's name (`ct:NAME` in the inventory).
    pub log: String,
    /// The engine's position after the last verified entry recorded
    /// (internal: not in API answers).
    #[serde(default, skip_serializing)]
    pub position: Option<Value>,
    /// Size of the last verified tree head.
    #[serde(default)]
    pub tree_size: u64,
    /// Index of the next entry to read.
    #[serde(default)]
    pub next_index: u64,
    /// The last verified tree head's timestamp (Unix milliseconds).
    #[serde(default)]
    pub head_timestamp: Option<i64>,
    /// When entries were last recorded (Unix seconds).
    #[serde(default)]
    pub read_at: Option<i64>,
    /// Entries read, all runs together.
    #[serde(default)]
    pub entries: u64,
    /// Of those, certificates for the watched domains.
    #[serde(default)]
    pub matches: u64,
    /// The last run's error, cleared by a run that reads the log.
    #[serde(default)]
    pub error: Option<String>,
    /// When it happened (Unix seconds).
    #[serde(default)]
    pub error_at: Option<i64>,
    /// Whether the error is the log misbehaving (a fork, a bad signature,
    /// entries that do not hash to the tree) rather than being unreachable.
    #[serde(default)]
    pub misbehaved: bool,
}

impl CtLogState {
    /// Entries the log has that are not read yet.
    pub fn lag(&self) -> u64 {
        self.tree_size.saturating_sub(self.next_index)
    }

    /// As the API and `certkeeper ct status --format json` show it: the
    /// state without the position, with the lag.
    pub fn view(&self) -> Value {
        let mut view = serde_json::to_value(self).unwrap_or_default();
        view["lag"] = json!(self.lag());
        view
    }
}

/// What one batch moved a log's position to.
#[derive(Debug, Clone, PartialEq)]
pub struct CtAdvance<'a> {
    /// The engine's position after the batch.
    pub position: &'a Value,
    /// Size of the verified tree head.
    pub tree_size: u64,
    /// Index of the next entry to read.
    pub next_index: u64,
    /// The verified head's timestamp (Unix milliseconds).
    pub head_timestamp: i64,
    /// Entries the batch held.
    pub entries: u64,
    /// Of those, matches.
    pub matches: u64,
}

impl Store {
    /// Every log's state, by name.
    pub async fn ct_logs(&self) -> Result<Vec<CtLogState>, StoreError> {
        self.rows("SELECT * OMIT id FROM ct_log ORDER BY log", json!({}), 0)
            .await
    }

    /// `log`'s state, if it was ever read.
    pub async fn ct_log(&self, log: &str) -> Result<Option<CtLogState>, StoreError> {
        let rows: Vec<CtLogState> = self
            .rows(
                "SELECT * OMIT id FROM type::record('ct_log', $log)",
                json!({ "log": log }),
                0,
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    /// Records that `log` has been read up to `advance` (its entries are
    /// in the inventory), clearing its last error.
    pub async fn advance_ct_log(
        &self,
        log: &str,
        advance: &CtAdvance<'_>,
        now: i64,
    ) -> Result<(), StoreError> {
        let vars = json!({
            "log": log,
            "position": advance.position,
            "tree_size": advance.tree_size,
            "next_index": advance.next_index,
            "head_timestamp": advance.head_timestamp,
            "entries": advance.entries,
            "matches": advance.matches,
            "now": now,
        });
        with_conflict_retry(|| {
            self.run(
                "UPSERT type::record('ct_log', $log) SET log = $log, position = $position,
                     tree_size = $tree_size, next_index = $next_index,
                     head_timestamp = $head_timestamp, read_at = $now,
                     entries = (entries ?? 0) + $entries, matches = (matches ?? 0) + $matches,
                     error = NONE, error_at = NONE, misbehaved = false
                     RETURN NONE",
                vars.clone(),
            )
        })
        .await?;
        Ok(())
    }

    /// Records `error` as `log`'s last; answers whether it differs from the
    /// error recorded before (so the same failure is alerted once, not at
    /// every run).
    pub async fn ct_log_failed(
        &self,
        log: &str,
        error: &str,
        misbehaved: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        let vars = json!({ "log": log, "error": error, "misbehaved": misbehaved, "now": now });
        let before: Vec<Value> = with_conflict_retry(|| async {
            let mut response = self
                .run(
                    "LET $before = (SELECT VALUE error FROM type::record('ct_log', $log))[0];
                     UPSERT type::record('ct_log', $log) SET log = $log, error = $error,
                         error_at = $now, misbehaved = $misbehaved RETURN NONE;
                     RETURN [$before];",
                    vars.clone(),
                )
                .await?;
            super::take_rows(&mut response, 2)
        })
        .await?;
        Ok(before.first().and_then(Value::as_str) != Some(error))
    }
}

/// What the inventory knows, besides CT, of the certificates with one
/// serial and issuer (a precertificate and its final certificate share
/// both).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CtProvenance {
    /// One was issued through a connector: Certkeeper issued it.
    pub issued: bool,
    /// One was seen somewhere other than a CT log (an endpoint, a file, a
    /// CA account, an upload).
    pub known: bool,
}

impl Store {
    /// What the inventory knows of the certificate `serial` from `issuer`.
    pub async fn ct_provenance(
        &self,
        serial: &str,
        issuer: &str,
    ) -> Result<CtProvenance, StoreError> {
        #[derive(Deserialize)]
        struct Seen {
            kind: String,
            location: String,
        }
        let seen: Vec<Seen> = self
            .rows(
                "LET $fps = (SELECT VALUE fingerprint FROM certificate
                     WHERE serial = $serial AND issuer = $issuer);
                 RETURN array::flatten($fps.map(|$f|
                     (SELECT kind, location FROM sighting WHERE fingerprint = $f)));",
                json!({ "serial": serial, "issuer": issuer }),
                1,
            )
            .await?;
        Ok(CtProvenance {
            issued: seen
                .iter()
                .any(|s| s.kind == "connector" && !s.location.starts_with("ca:")),
            known: seen.iter().any(|s| s.kind != "ct"),
        })
    }

    /// The issuers of the certificates issued through a connector or held
    /// by a configured CA account: the CAs the organisation's accounts use.
    pub async fn connector_issuers(&self) -> Result<Vec<String>, StoreError> {
        self.rows(
            "LET $fps = array::distinct((SELECT VALUE fingerprint FROM sighting
                 WHERE kind = 'connector'));
             RETURN array::distinct((SELECT VALUE issuer
                 FROM $fps.map(|$f| type::record('certificate', $f))));",
            json!({}),
            1,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_position_survives_and_an_error_is_new_once() {
        let store = Store::memory().await.unwrap();
        assert_eq!(store.ct_log("a").await.unwrap(), None);
        let position = json!({"tree_size": 10, "next_index": 4});
        let advance = CtAdvance {
            position: &position,
            tree_size: 10,
            next_index: 4,
            head_timestamp: 1_700_000_000_000,
            entries: 4,
            matches: 1,
        };
        store.advance_ct_log("a", &advance, 100).await.unwrap();
        store.advance_ct_log("a", &advance, 101).await.unwrap();
        let state = store.ct_log("a").await.unwrap().unwrap();
        assert_eq!(state.position, Some(position.clone()));
        assert_eq!((state.entries, state.matches, state.lag()), (8, 2, 6));
        assert_eq!(state.read_at, Some(101));

        assert!(store.ct_log_failed("a", "fork", true, 102).await.unwrap());
        assert!(!store.ct_log_failed("a", "fork", true, 103).await.unwrap());
        assert!(
            store
                .ct_log_failed("a", "timeout", false, 104)
                .await
                .unwrap()
        );
        let state = store.ct_log("a").await.unwrap().unwrap();
        assert_eq!(state.error.as_deref(), Some("timeout"));
        assert_eq!(
            state.position,
            Some(position.clone()),
            "an error keeps the position"
        );
        store.advance_ct_log("a", &advance, 105).await.unwrap();
        let logs = store.ct_logs().await.unwrap();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].error, None);
        assert!(!logs[0].misbehaved);
    }
}
