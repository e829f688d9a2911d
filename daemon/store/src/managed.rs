//! Managed certificates' lifecycle state.
//!
//! A managed certificate is one `managed:<name>` document holding what is
//! current (fingerprint, chain, sealed key), when to renew, the backoff after
//! failures, and the operation in progress with the step it reached. The
//! renewal worker writes the step *before* acting on it, so a daemon killed
//! at any point resumes the same operation after restart: the issued chain
//! is kept once the CA returns it (no second order), deployment is
//! idempotent, and a revocation that already happened is recognised.
//!
//! Connectors' own state is in `connector_state.rs`, the event outbox in
//! `outbox.rs`.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::leases::Lease;
use super::{Store, StoreError, take_returned, with_conflict_retry};
use certkeeper_model::inventory::Status;

/// What a managed certificate is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// First issuance.
    Issue,
    /// Scheduled or requested renewal.
    Renew,
    /// Revoke-and-replace: the old certificate is revoked once the new one
    /// is serving.
    Replace,
}

/// How far an operation got; each step is persisted before the next runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Key made (sealed below), CSR sent or about to be.
    Ordering,
    /// The CA returned the certificate; not yet deployed.
    Issued,
    /// Deployed and verified on every target.
    Deployed,
    /// The old certificate is revoked (replace only).
    Revoked,
}

/// A certificate held by a managed entry (current, new or previous).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// SHA-256 fingerprint, lowercase hex.
    pub fingerprint: String,
    /// Leaf then chain, PEM.
    pub chain_pem: String,
    /// Start of validity (Unix seconds).
    pub not_before: i64,
    /// End of validity (Unix seconds).
    pub not_after: i64,
}

/// An operation in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// What it does.
    pub kind: OperationKind,
    /// How far it got.
    pub step: Step,
    /// Revocation reason (replace), RFC 5280 name.
    pub reason: Option<String>,
    /// The new private key, sealed; made once per operation.
    pub key_sealed: Option<String>,
    /// The new certificate, once issued.
    pub new: Option<Held>,
    /// When it started (Unix seconds).
    pub started: i64,
}

/// The lifecycle state of one managed certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedState {
    /// The `[[certificate]]` name.
    pub name: String,
    /// Digest of the config that decides what is issued (names, connector,
    /// key type, usage); a change triggers a re-issue.
    pub spec: String,
    /// Issuances completed.
    pub generation: u64,
    /// The certificate in service.
    pub current: Option<Held>,
    /// The current private key, sealed.
    pub key_sealed: Option<String>,
    /// Earlier certificates (newest first, a few), for `revoke`.
    #[serde(default)]
    pub previous: Vec<Held>,
    /// When the next renewal is due (Unix seconds).
    pub renew_at: Option<i64>,
    /// The CA's suggested window (`[start, end]`), if it offers one.
    pub window: Option<(i64, i64)>,
    /// When the CA's window was last asked for.
    pub window_checked: Option<i64>,
    /// Renew at the next check whatever the schedule says.
    #[serde(default)]
    pub force: bool,
    /// Failures since the last success.
    #[serde(default)]
    pub attempts: u32,
    /// No attempt before this time (backoff; Unix seconds).
    pub next_attempt: Option<i64>,
    /// The last failure, for operators.
    pub last_error: Option<String>,
    /// When the last operation finished (Unix seconds).
    pub last_success: Option<i64>,
    /// The operation in progress.
    pub operation: Option<Operation>,
    /// Bumped by every save; a save from a copy read at an older version is
    /// refused ([`Store::save_managed`]), so two writers (the worker inside
    /// a CA call, a replace request) never overwrite each other's step.
    #[serde(default)]
    pub version: u64,
}

/// The context a managed certificate's private key is sealed under.
pub fn key_context(name: &str) -> String {
    format!("managed:{name}:key")
}

impl ManagedState {
    /// A certificate never issued yet.
    pub fn new(name: &str, spec: &str) -> Self {
        Self {
            name: name.to_owned(),
            spec: spec.to_owned(),
            generation: 0,
            current: None,
            key_sealed: None,
            previous: Vec::new(),
            renew_at: None,
            window: None,
            window_checked: None,
            force: false,
            attempts: 0,
            next_attempt: None,
            last_error: None,
            last_success: None,
            operation: None,
            version: 0,
        }
    }
}

impl Store {
    /// One managed certificate's state.
    pub async fn managed(&self, name: &str) -> Result<Option<ManagedState>, StoreError> {
        let rows: Vec<ManagedState> = self
            .rows(
                "SELECT * OMIT id FROM type::record('managed', $name)",
                json!({ "name": name }),
                0,
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    /// The managed certificate whose current or an earlier certificate is
    /// `fingerprint`.
    pub async fn managed_holding(
        &self,
        fingerprint: &str,
    ) -> Result<Option<ManagedState>, StoreError> {
        let rows: Vec<ManagedState> = self
            .rows(
                "SELECT * OMIT id FROM managed WHERE current.fingerprint = $fp \
                 OR previous.*.fingerprint CONTAINS $fp LIMIT 1",
                json!({ "fp": fingerprint }),
                0,
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    /// Every managed certificate's state, by name.
    pub async fn managed_all(&self) -> Result<Vec<ManagedState>, StoreError> {
        self.rows("SELECT * OMIT id FROM managed ORDER BY name", json!({}), 0)
            .await
    }

    /// Saves a managed certificate's state (whole document).
    ///
    /// Conditional: written only when the stored version is still the one
    /// `state` was read at, checked in the same transaction, and then
    /// `state.version` moves on by one. Otherwise [`StoreError::Changed`]
    /// and nothing is written: another writer got in first.
    pub async fn save_managed(&self, state: &mut ManagedState) -> Result<(), StoreError> {
        self.save_managed_inner(state, None).await
    }

    /// [`save_managed`](Self::save_managed) by the holder of `lease`: also
    /// refused, with [`StoreError::Fenced`], when the lease has moved to
    /// another holder or epoch since it was taken. The renewal worker
    /// records every step's result this way, so a daemon that stalled past
    /// its lease cannot overwrite what the new holder did.
    pub async fn save_managed_fenced(
        &self,
        state: &mut ManagedState,
        lease: &Lease,
    ) -> Result<(), StoreError> {
        self.save_managed_inner(state, Some(lease)).await
    }

    async fn save_managed_inner(
        &self,
        state: &mut ManagedState,
        lease: Option<&Lease>,
    ) -> Result<(), StoreError> {
        let mut doc = state.clone();
        doc.version = state.version + 1;
        let vars = json!({
            "name": state.name, "doc": doc, "expected": state.version,
            "lease": lease.map(|l| &l.key), "holder": lease.map(|l| &l.holder),
            "epoch": lease.map(|l| l.epoch),
        });
        let result = with_conflict_retry(|| {
            self.run(
                "BEGIN TRANSACTION;
                 IF $lease != NONE {
                     LET $held = (SELECT holder, epoch FROM ONLY type::record('lease', $lease));
                     IF $held.holder != $holder OR $held.epoch != $epoch { THROW 'lease fenced' };
                 };
                 LET $stored = (SELECT VALUE version FROM ONLY type::record('managed', $name));
                 IF ($stored ?? 0) != $expected { THROW 'managed version moved on' };
                 UPSERT type::record('managed', $name) CONTENT $doc RETURN NONE;
                 COMMIT TRANSACTION;",
                vars.clone(),
            )
        })
        .await;
        match result {
            Ok(_) => {
                state.version = doc.version;
                Ok(())
            }
            Err(e) if e.to_string().contains("managed version moved on") => Err(
                StoreError::Changed(format!("managed certificate `{}`", state.name)),
            ),
            Err(e) if e.to_string().contains("lease fenced") => Err(StoreError::Fenced(format!(
                "managed certificate `{}`",
                state.name
            ))),
            Err(e) => Err(e),
        }
    }

    /// Managed certificates created through the API: their `[[certificate]]`
    /// tables as JSON, by name.
    pub async fn managed_specs(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        self.rows(
            "SELECT VALUE spec FROM managed_spec ORDER BY name",
            json!({}),
            0,
        )
        .await
    }

    /// Saves a managed certificate created through the API; false when the
    /// name is taken.
    pub async fn create_managed_spec(
        &self,
        name: &str,
        spec: &serde_json::Value,
    ) -> Result<bool, StoreError> {
        let vars = json!({ "name": name, "spec": spec });
        match self
            .run(
                "CREATE type::record('managed_spec', $name) CONTENT { name: $name, spec: $spec } RETURN NONE",
                vars,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.to_string().contains("already exists") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes a managed certificate created through the API; false when
    /// there was none.
    pub async fn delete_managed_spec(&self, name: &str) -> Result<bool, StoreError> {
        let gone: Vec<String> = self
            .rows(
                "DELETE type::record('managed_spec', $name) RETURN BEFORE.name",
                json!({ "name": name }),
                0,
            )
            .await?;
        Ok(!gone.is_empty())
    }

    /// Sets `force` on every managed certificate (or those named) so the
    /// worker renews them at its next check; returns how many.
    pub async fn force_renewal(&self, names: Option<&[String]>) -> Result<u64, StoreError> {
        let mut response = match names {
            Some(names) => {
                self.run(
                    "BEGIN TRANSACTION; LET $n = (UPDATE managed SET force = true, next_attempt = NONE WHERE name IN $names RETURN name); RETURN [array::len($n)]; COMMIT TRANSACTION;",
                    json!({ "names": names }),
                )
                .await?
            }
            None => {
                self.run(
                    "BEGIN TRANSACTION; LET $n = (UPDATE managed SET force = true, next_attempt = NONE RETURN name); RETURN [array::len($n)]; COMMIT TRANSACTION;",
                    json!({}),
                )
                .await?
            }
        };
        let n: Vec<u64> = take_returned(&mut response)?;
        Ok(n.first().copied().unwrap_or(0))
    }

    /// Links `old` → `new` in the inventory lineage.
    pub async fn set_lineage(&self, old: &str, new: &str) -> Result<(), StoreError> {
        let vars = json!({ "old": old, "new": new });
        with_conflict_retry(|| {
            self.run(
                "BEGIN TRANSACTION;
                 UPDATE type::record('certificate', $old) SET replaced_by = $new RETURN NONE;
                 UPDATE type::record('certificate', $new) SET replaces = $old RETURN NONE;
                 COMMIT TRANSACTION;",
                vars.clone(),
            )
        })
        .await?;
        Ok(())
    }

    /// Sets a certificate's status (revoked, deactivated), keeping the
    /// counters right. No-op for an unknown fingerprint.
    pub async fn set_status(&self, fingerprint: &str, status: Status) -> Result<(), StoreError> {
        let vars = json!({ "fp": fingerprint, "to": status });
        with_conflict_retry(|| {
            self.run(
                "BEGIN TRANSACTION;
                 LET $id = type::record('certificate', $fp);
                 LET $from = (SELECT VALUE status FROM $id)[0];
                 IF $from != NONE AND $from != $to {
                     UPDATE $id SET status = $to RETURN NONE;
                     UPSERT type::record('status_count', $from) SET n = (n ?? 0) - 1 RETURN NONE;
                     UPSERT type::record('status_count', $to) SET n = (n ?? 0) + 1 RETURN NONE;
                 };
                 COMMIT TRANSACTION;",
                vars.clone(),
            )
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::Vault;

    #[tokio::test]
    async fn managed_state_round_trips_and_connector_state_is_sealed() {
        let store = Store::memory().await.unwrap();
        let mut state = ManagedState::new("www", "spec-1");
        state.operation = Some(Operation {
            kind: OperationKind::Replace,
            step: Step::Issued,
            reason: Some("keyCompromise".into()),
            key_sealed: Some("v1:abc".into()),
            new: None,
            started: 5,
        });
        store.save_managed(&mut state).await.unwrap();
        assert_eq!(store.managed("www").await.unwrap(), Some(state.clone()));
        assert_eq!(state.version, 1);
        assert_eq!(store.force_renewal(None).await.unwrap(), 1);
        assert!(store.managed("www").await.unwrap().unwrap().force);

        let vault = Vault::ephemeral().unwrap();
        let cs = store.connector_state("acme", vault.clone());
        cs.save("account", b"secret-account-key").await.unwrap();
        assert_eq!(
            cs.load("account").await.unwrap().as_deref(),
            Some(&b"secret-account-key"[..])
        );
        assert_eq!(cs.load("missing").await.unwrap(), None);
        let raw: Vec<String> = store
            .rows("SELECT VALUE value FROM connector_state", json!({}), 0)
            .await
            .unwrap();
        assert!(!raw[0].contains("secret-account-key"));
        // Another connector's rows are apart.
        let other = store.connector_state("other", vault);
        assert_eq!(other.load("account").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_save_from_a_stale_copy_is_refused_and_writes_nothing() {
        let store = Store::memory().await.unwrap();
        let mut first = ManagedState::new("www", "spec-1");
        store.save_managed(&mut first).await.unwrap();
        // Two writers read the same version: the worker, then a replace.
        let mut worker = store.managed("www").await.unwrap().unwrap();
        let mut replace = worker.clone();
        replace.operation = Some(Operation {
            kind: OperationKind::Replace,
            step: Step::Ordering,
            reason: Some("keyCompromise".into()),
            key_sealed: None,
            new: None,
            started: 7,
        });
        store.save_managed(&mut replace).await.unwrap();
        worker.operation = Some(Operation {
            kind: OperationKind::Renew,
            step: Step::Issued,
            reason: None,
            key_sealed: None,
            new: None,
            started: 5,
        });
        let err = store.save_managed(&mut worker).await.unwrap_err();
        assert!(matches!(err, StoreError::Changed(_)), "{err}");
        let stored = store.managed("www").await.unwrap().unwrap();
        assert_eq!(stored, replace, "the replace survives the stale write");
        // Read again, the worker may write.
        let mut again = store.managed("www").await.unwrap().unwrap();
        again.attempts = 1;
        store.save_managed(&mut again).await.unwrap();
        assert_eq!(store.managed("www").await.unwrap().unwrap().version, 3);
    }

    #[tokio::test]
    async fn a_write_under_a_lease_taken_over_is_refused() {
        let store = Store::memory().await.unwrap();
        let mut state = ManagedState::new("www", "spec-1");
        store.save_managed(&mut state).await.unwrap();
        let a = store
            .acquire_lease("managed:www", "a", 30)
            .await
            .unwrap()
            .unwrap();
        let mut by_a = store.managed("www").await.unwrap().unwrap();
        by_a.attempts = 1;
        store.save_managed_fenced(&mut by_a, &a).await.unwrap();
        // a stalls past its lease; b takes over and moves on.
        store.release_lease(&a).await.unwrap();
        let b = store
            .acquire_lease("managed:www", "b", 30)
            .await
            .unwrap()
            .unwrap();
        let mut by_b = store.managed("www").await.unwrap().unwrap();
        by_b.generation = 1;
        store.save_managed_fenced(&mut by_b, &b).await.unwrap();
        // a wakes up with the current version (no other check would stop it).
        by_a.version = by_b.version;
        by_a.last_error = Some("late".into());
        let err = store.save_managed_fenced(&mut by_a, &a).await.unwrap_err();
        assert!(matches!(err, StoreError::Fenced(_)), "{err}");
        let stored = store.managed("www").await.unwrap().unwrap();
        assert_eq!((stored.generation, stored.last_error), (1, None));
    }
}
