//! What the API and the CLI ask of the worker: renew now, replace, revoke,
//! and managed certificates created or removed at run time.

use certkeeper_connectors::RevocationReason;
use chrono::Utc;

use super::*;
use crate::config::CertificateConfig;
use certkeeper_store::StoreError;
use certkeeper_store::managed::{ManagedState, Operation, OperationKind, Step};

/// Times a replace request reads and writes again when the worker saved
/// in between.
const REPLACE_ATTEMPTS: usize = 5;

impl Renewer {
    /// Marks managed certificates (all, or those named) for renewal now.
    pub async fn renew(&self, names: Option<&[String]>) -> Result<u64, RequestError> {
        if let Some(names) = names
            && let Some(unknown) = names.iter().find(|n| self.certificate(n).is_none())
        {
            return Err(RequestError::NotFound(format!(
                "no managed certificate named `{unknown}`"
            )));
        }
        let n = self
            .store
            .force_renewal(names)
            .await
            .map_err(|e| RequestError::Failed(e.to_string()))?;
        self.wake();
        Ok(n)
    }

    /// Starts revoke-and-replace of the managed certificate currently
    /// serving as `fingerprint`; returns its name.
    pub async fn replace(
        &self,
        fingerprint: &str,
        reason: RevocationReason,
    ) -> Result<String, RequestError> {
        // Read, check, write, conditional on the version read: a worker
        // saving its step in between makes the write fail, and the checks
        // run again on what it saved (it may have moved past ordering).
        for _ in 0..REPLACE_ATTEMPTS {
            if let Some(name) = self.try_replace(fingerprint, reason).await? {
                return Ok(name);
            }
        }
        Err(RequestError::Conflict(format!(
            "the managed certificate of {fingerprint} keeps changing; try again"
        )))
    }

    /// One read-check-write of [`Self::replace`]; `Ok(None)` when the state
    /// changed between the read and the write.
    async fn try_replace(
        &self,
        fingerprint: &str,
        reason: RevocationReason,
    ) -> Result<Option<String>, RequestError> {
        let failed = |e: StoreError| RequestError::Failed(e.to_string());
        let states = self.store.managed_all().await.map_err(failed)?;
        let mut state = states
            .into_iter()
            .find(|s| {
                s.current
                    .as_ref()
                    .is_some_and(|c| c.fingerprint == fingerprint)
            })
            .ok_or_else(|| {
                RequestError::NotFound(format!(
                    "{fingerprint} is not the current certificate of any managed certificate"
                ))
            })?;
        if self.certificate(&state.name).is_none() {
            return Err(RequestError::Conflict(format!(
                "`{}` is no longer in the config",
                state.name
            )));
        }
        if let Some(op) = &state.operation {
            if op.kind == OperationKind::Replace {
                // Asked twice: the first request is still in progress.
                return Ok(Some(state.name));
            }
            if op.step != Step::Ordering {
                return Err(RequestError::Conflict(format!(
                    "`{}` has a {:?} in progress at step {:?}; try again when it is done",
                    state.name, op.kind, op.step
                )));
            }
        }
        let reason_text = match reason {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "keyCompromise",
            RevocationReason::AffiliationChanged => "affiliationChanged",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessationOfOperation",
        };
        state.operation = Some(Operation {
            kind: OperationKind::Replace,
            step: Step::Ordering,
            reason: Some(reason_text.to_owned()),
            key_sealed: None,
            new: None,
            started: Utc::now().timestamp(),
        });
        state.next_attempt = None;
        state.attempts = 0;
        match self.store.save_managed(&mut state).await {
            Ok(()) => {}
            // The worker saved a step since we read: check again.
            Err(StoreError::Changed(_)) => return Ok(None),
            Err(e) => return Err(failed(e)),
        }
        self.wake();
        Ok(Some(state.name))
    }

    /// Revokes a certificate Certkeeper issued that is no longer in service
    /// (a previous one, or the current one of a certificate removed from the
    /// config).
    pub async fn revoke(
        &self,
        fingerprint: &str,
        reason: RevocationReason,
    ) -> Result<String, RequestError> {
        let failed = |e: StoreError| RequestError::Failed(e.to_string());
        let states = self.store.managed_all().await.map_err(failed)?;
        for state in states {
            let configured = self.certificate(&state.name);
            if let Some(current) = &state.current
                && current.fingerprint == fingerprint
                && configured.is_some()
            {
                return Err(RequestError::Conflict(format!(
                    "{fingerprint} is in service as `{}`: use replace to revoke it and put a \
                     new certificate in its place",
                    state.name
                )));
            }
            let held = state
                .current
                .iter()
                .chain(&state.previous)
                .find(|h| h.fingerprint == fingerprint)
                .cloned();
            if let Some(held) = held {
                let connector = configured.map(|c| c.connector.clone()).ok_or_else(|| {
                    RequestError::Conflict(format!(
                        "`{}` is no longer in the config, so its connector is unknown",
                        state.name
                    ))
                })?;
                self.revoke_held(&connector, &held, reason)
                    .await
                    .map_err(|f| RequestError::Failed(f.message))?;
                return Ok(state.name);
            }
        }
        Err(RequestError::NotFound(format!(
            "{fingerprint} was not issued through Certkeeper; revoke it at its CA"
        )))
    }

    pub(super) fn certificate(&self, name: &str) -> Option<CertificateConfig> {
        self.certificates.read().ok()?.get(name).cloned()
    }

    pub(super) fn all_certificates(&self) -> Vec<CertificateConfig> {
        self.certificates
            .read()
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Loads the managed certificates created through the API (at start).
    pub async fn load_api_certificates(&self) -> Result<(), StoreError> {
        for spec in self.store.managed_specs().await? {
            match serde_json::from_value::<CertificateConfig>(spec) {
                Ok(cert) => {
                    if self.certificate(&cert.name).is_some() {
                        tracing::warn!(managed = %cert.name, "a [[certificate]] in the config has the name of one created through the API; the config's wins");
                        continue;
                    }
                    if let Err((key, e)) = cert.validate(&self.connector_names) {
                        tracing::error!(managed = %cert.name, key = %key, error = %e, "managed certificate created through the API no longer fits the config; not renewed");
                        continue;
                    }
                    if let Ok(mut names) = self.from_api.write() {
                        names.insert(cert.name.clone());
                    }
                    if let Ok(mut all) = self.certificates.write() {
                        all.insert(cert.name.clone(), cert);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "unreadable managed certificate in the store")
                }
            }
        }
        Ok(())
    }

    /// Creates a managed certificate from a `[[certificate]]` table sent to
    /// the API. It may not carry deploy targets: writing files and running
    /// commands on this host is for the config file, not API clients.
    /// The configured connectors' names.
    pub fn connector_names(&self) -> &std::collections::HashSet<String> {
        &self.connector_names
    }

    /// Starts managing a certificate described by a `[[certificate]]` table
    /// as JSON; it is issued at once.
    pub async fn create(&self, spec: serde_json::Value) -> Result<String, RequestError> {
        let cert: CertificateConfig = serde_json::from_value(spec.clone())
            .map_err(|e| RequestError::Invalid(format!("not a certificate: {e}")))?;
        cert.validate(&self.connector_names)
            .map_err(|(key, e)| RequestError::Invalid(format!("{key}: {e}")))?;
        if !cert.deploy.is_empty() {
            return Err(RequestError::Invalid(
                "deploy: deploy targets (files, reload commands) are configured in the config \
                 file, not through the API"
                    .into(),
            ));
        }
        if self.certificate(&cert.name).is_some() {
            return Err(RequestError::Conflict(format!(
                "a managed certificate named `{}` exists",
                cert.name
            )));
        }
        let created = self
            .store
            .create_managed_spec(&cert.name, &spec)
            .await
            .map_err(|e| RequestError::Failed(e.to_string()))?;
        if !created {
            return Err(RequestError::Conflict(format!(
                "a managed certificate named `{}` exists",
                cert.name
            )));
        }
        let name = cert.name.clone();
        if let Ok(mut names) = self.from_api.write() {
            names.insert(name.clone());
        }
        if let Ok(mut all) = self.certificates.write() {
            all.insert(name.clone(), cert);
        }
        self.wake();
        Ok(name)
    }

    /// Stops managing a certificate created through the API (its state and
    /// certificates stay, so it can still be revoked).
    pub async fn remove(&self, name: &str) -> Result<(), RequestError> {
        let from_api = self
            .from_api
            .read()
            .map(|n| n.contains(name))
            .unwrap_or(false);
        if !from_api {
            return Err(if self.certificate(name).is_some() {
                RequestError::Conflict(format!("`{name}` is in the config file; remove it there"))
            } else {
                RequestError::NotFound(format!("no managed certificate named `{name}`"))
            });
        }
        self.store
            .delete_managed_spec(name)
            .await
            .map_err(|e| RequestError::Failed(e.to_string()))?;
        if let Ok(mut names) = self.from_api.write() {
            names.remove(name);
        }
        if let Ok(mut all) = self.certificates.write() {
            all.remove(name);
        }
        Ok(())
    }

    /// Every managed certificate's state.
    pub async fn list(&self) -> Result<Vec<ManagedState>, StoreError> {
        self.store.managed_all().await
    }
}
