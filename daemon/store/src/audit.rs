//! The audit log in the store: `audit:⟨seq⟩` rows sealed into a hash chain
//! (see `certkeeper_model::admin::audit_chain`), appended one transaction at a time after the
//! `audit_head` row that holds the last sequence number and hash.
//!
//! The append reads the head and writes the entry and the new head in one
//! transaction, so two writers cannot both take the same sequence number
//! (the second one conflicts and retries on the new head). An entry is
//! written before the action's answer is sent: an action whose audit entry
//! cannot be written fails.

use serde_json::json;

use super::{Store, StoreError, take_rows};
use certkeeper_model::admin::audit_chain::{AuditEntry, GENESIS_HASH, Verifier, seal};

/// What `verify_audit` found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditReport {
    /// Whether the whole chain checks out.
    pub intact: bool,
    /// Entries checked.
    pub entries: u64,
    /// The entry at which the chain breaks.
    pub seq: Option<u64>,
    /// Why, for people.
    pub reason: Option<String>,
}

/// Entries read per page when verifying or exporting.
pub const PAGE: usize = 1000;

impl Store {
    /// Seals `entry` after the current head and appends it; returns it sealed.
    pub async fn append_audit(&self, entry: AuditEntry) -> Result<AuditEntry, StoreError> {
        self.append_audit_keyed(None, entry)
            .await?
            .ok_or_else(|| StoreError::Engine("audit log: an unkeyed entry was skipped".into()))
    }

    /// Appends `entry` unless an entry under `key` was appended before, in
    /// the same transaction as the check: for an action a retry or another
    /// daemon may run again (recording an issued certificate), so the log
    /// holds it once however often it ran. `None` when it was already there.
    pub async fn append_audit_once(
        &self,
        key: &str,
        entry: AuditEntry,
    ) -> Result<Option<AuditEntry>, StoreError> {
        self.append_audit_keyed(Some(key), entry).await
    }

    async fn append_audit_keyed(
        &self,
        key: Option<&str>,
        mut entry: AuditEntry,
    ) -> Result<Option<AuditEntry>, StoreError> {
        // The store drops `null` members (an absent field is NONE); seal what
        // will be read back, or the hash would never match again.
        for value in [&mut entry.before, &mut entry.after].into_iter().flatten() {
            super::strip_nulls(value);
        }
        for attempt in 0..50u32 {
            let head: Vec<serde_json::Value> = self
                .rows(
                    "SELECT seq, hash FROM type::record('audit_head', 'head')",
                    json!({}),
                    0,
                )
                .await?;
            let (seq, prev) = head
                .first()
                .map(|h| {
                    (
                        h["seq"].as_u64().unwrap_or(0),
                        h["hash"].as_str().unwrap_or(GENESIS_HASH).to_owned(),
                    )
                })
                .unwrap_or((0, GENESIS_HASH.to_owned()));
            let mut next = entry.clone();
            next.seq = seq + 1;
            let sealed = seal(next, &prev);
            let vars = json!({
                "seq": sealed.seq,
                "prev_seq": seq,
                "prev": prev,
                "doc": serde_json::to_value(&sealed)?,
                "key": key,
            });
            // The head must still be what we sealed after: a writer that got
            // there first makes this transaction fail, and we go again.
            let result = self
                .run(
                    "BEGIN TRANSACTION;
                     LET $head = (SELECT seq, hash FROM ONLY type::record('audit_head', 'head'));
                     IF ($head.seq ?? 0) != $prev_seq { THROW 'audit head moved' };
                     IF $key != NONE {
                         IF (SELECT VALUE seq FROM ONLY type::record('audit_key', $key)) != NONE {
                             THROW 'audit entry already appended'
                         };
                         CREATE type::record('audit_key', $key) CONTENT { seq: $seq } RETURN NONE;
                     };
                     CREATE type::record('audit', $seq) CONTENT $doc RETURN NONE;
                     UPSERT type::record('audit_head', 'head') CONTENT { seq: $seq, hash: $doc.hash } RETURN NONE;
                     COMMIT TRANSACTION;",
                    vars,
                )
                .await;
            match result {
                Ok(_) => return Ok(Some(sealed)),
                Err(e) if e.to_string().contains("audit entry already appended") => {
                    return Ok(None);
                }
                Err(e)
                    if e.is_conflict()
                        || e.to_string().contains("audit head moved")
                        || e.to_string().contains("already exists") =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(u64::from(attempt) * 5))
                        .await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Engine(
            "audit log: could not append after 50 tries (too many writers)".into(),
        ))
    }

    /// Walks the whole chain, a page at a time, and checks that its end is
    /// the head the appends recorded (so deleting the newest entries shows).
    pub async fn verify_audit(&self) -> Result<AuditReport, StoreError> {
        let mut verifier = Verifier::new();
        let mut after = 0;
        let broken = |e: certkeeper_model::admin::audit_chain::ChainBreak, n: u64| AuditReport {
            intact: false,
            entries: n,
            seq: Some(e.seq()),
            reason: Some(e.to_string()),
        };
        loop {
            let page = self.audit_page(after, PAGE).await?;
            for entry in &page {
                if let Err(e) = verifier.push(entry) {
                    return Ok(broken(e, verifier.count()));
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE => after = last.seq,
                _ => break,
            }
        }
        let head: Vec<serde_json::Value> = self
            .rows(
                "SELECT seq, hash FROM type::record('audit_head', 'head')",
                json!({}),
                0,
            )
            .await?;
        let (head_seq, head_hash) = head
            .first()
            .map(|h| {
                (
                    h["seq"].as_u64().unwrap_or(0),
                    h["hash"].as_str().unwrap_or("").to_owned(),
                )
            })
            .unwrap_or((0, GENESIS_HASH.to_owned()));
        if head_seq != verifier.count() || head_hash != verifier.last_hash() {
            return Ok(AuditReport {
                intact: false,
                entries: verifier.count(),
                seq: Some(verifier.count() + 1),
                reason: Some(format!(
                    "the log ends at entry {} but {head_seq} entries were written: the newest entries were deleted or replaced",
                    verifier.count()
                )),
            });
        }
        Ok(AuditReport {
            intact: true,
            entries: verifier.count(),
            seq: None,
            reason: None,
        })
    }

    /// Entries with `seq` above `after`, in order, at most `limit`.
    pub async fn audit_page(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut response = self
            .run(
                "SELECT * OMIT id FROM audit WHERE seq > $after ORDER BY seq LIMIT $limit",
                json!({ "after": after, "limit": limit }),
            )
            .await?;
        take_rows(&mut response, 0)
    }

    /// The newest entries, newest first, optionally only of one actor or
    /// one object.
    pub async fn audit_recent(
        &self,
        actor: Option<&str>,
        object: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut conditions = Vec::new();
        if actor.is_some() {
            conditions.push("actor = $actor");
        }
        if object.is_some() {
            conditions.push("object = $object");
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        self.rows(
            &format!("SELECT * OMIT id FROM audit {filter} ORDER BY seq DESC LIMIT $limit"),
            json!({ "actor": actor, "object": object, "limit": limit }),
            0,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_keyed_entry_is_appended_once_and_the_chain_stays_whole() {
        let store = Store::memory().await.unwrap();
        let entry = || AuditEntry::new("system", "certificate_issue", Some("ab12".into()));
        let mut tasks = Vec::new();
        // The same action recorded by four writers at once, among others.
        for i in 0..4 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                let once = s
                    .append_audit_once("certificate_issue:ab12", entry())
                    .await
                    .unwrap();
                s.append_audit(AuditEntry::new("system", "import", Some(format!("f{i}"))))
                    .await
                    .unwrap();
                once.is_some()
            }));
        }
        let mut appended = 0;
        for t in tasks {
            appended += usize::from(t.await.unwrap());
        }
        assert_eq!(appended, 1);
        let page = store.audit_page(0, 100).await.unwrap();
        let issues = page
            .iter()
            .filter(|e| e.action == "certificate_issue")
            .count();
        assert_eq!((page.len(), issues), (5, 1));
        assert!(store.verify_audit().await.unwrap().intact);
    }
}
