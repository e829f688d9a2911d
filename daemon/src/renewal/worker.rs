//! The renewal loop: which managed certificates are due, claiming one at a
//! time per name, driving its operation step by step, and recording
//! failures with their backoff and outbox event.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certkeeper_connectors::ErrorClass;
use certkeeper_integrations::{Event, EventKind};
use chrono::Utc;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::config::{CertificateConfig, Config};
use certkeeper_discovery::probe::{ProbeOptions, Prober};
use certkeeper_model::event::StoredEvent;
use certkeeper_model::inventory::CertificateRecord;
use certkeeper_store::leases::Lease;
use certkeeper_store::managed::{ManagedState, Operation, OperationKind, Step};
use certkeeper_store::vault::Vault;
use certkeeper_store::{Store, StoreError};

impl Renewer {
    /// A worker for `config`'s certificates.
    pub fn new(
        config: &Config,
        store: Store,
        vault: Vault,
        registry: Arc<Registry>,
        holder: String,
    ) -> anyhow::Result<Arc<Self>> {
        let prober = Prober::new(ProbeOptions::default())
            .map_err(|e| anyhow::anyhow!("cannot set up live verification: {e}"))?;
        Ok(Arc::new(Self {
            store,
            vault,
            registry,
            certificates: std::sync::RwLock::new(
                config
                    .certificates
                    .iter()
                    .map(|c| (c.name.clone(), c.clone()))
                    .collect(),
            ),
            from_api: std::sync::RwLock::default(),
            connector_names: config
                .connectors
                .iter()
                .map(|c| c.name().to_owned())
                .collect(),
            settings: config.renewal.clone(),
            expiring_days: config.inventory.expiring_days,
            auto_approve_renewals: config.admin.auto_approve_renewals,
            prober,
            wake: Notify::new(),
            limit: Arc::new(Semaphore::new(config.renewal.concurrency)),
            running: Mutex::new(HashSet::new()),
            leases: Mutex::new(HashMap::new()),
            holder,
            lease_seconds: i64::try_from(config.scheduler.lease_seconds).unwrap_or(i64::MAX),
            inventory_writes: tokio::sync::Mutex::new(()),
        }))
    }

    /// The connectors, for the CRL endpoint.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Checks at once instead of at the next interval.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs until `shutdown`; operations in flight stop at their next await
    /// and resume from their persisted step after restart.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let interval = Duration::from_secs(self.settings.check_interval_seconds);
        loop {
            if let Err(e) = self.check().await {
                tracing::error!(error = %e, "renewal check failed");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// One pass: starts every due operation not already running.
    pub(super) async fn check(self: &Arc<Self>) -> Result<(), StoreError> {
        let now = Utc::now().timestamp();
        for (name, entry) in &self.registry.connectors {
            if let Some(ca) = &entry.internal
                && let Err(e) = ca.refresh_crl_if_due(Utc::now()).await
            {
                tracing::error!(connector = %name, error = %e, "cannot refresh the CRL");
            }
        }
        let mut states: HashMap<String, ManagedState> = self
            .store
            .managed_all()
            .await?
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();
        for cert in self.all_certificates() {
            let (name, cert) = (&cert.name, &cert);
            let spec = spec_digest(cert);
            let state = match states.remove(name) {
                Some(state) => state,
                None => {
                    let mut state = ManagedState::new(name, &spec);
                    match self.save(&mut state).await {
                        Ok(()) => state,
                        // Another daemon sharing the store created it first.
                        Err(StoreError::Changed(_)) => continue,
                        Err(e) => return Err(e),
                    }
                }
            };
            let window_due = state.operation.is_none()
                && state.current.is_some()
                && cert.renew_before_days.is_none()
                && state
                    .window_checked
                    .is_none_or(|t| now - t >= WINDOW_REFRESH);
            if !(is_due(&state, &spec, now) || window_due) {
                continue;
            }
            if !self.claim(name) {
                continue;
            }
            let this = self.clone();
            let name = name.clone();
            tokio::spawn(async move {
                let Ok(_permit) = this.limit.clone().acquire_owned().await else {
                    return;
                };
                this.drive_leased(&name).await;
                this.release(&name);
            });
        }
        Ok(())
    }

    pub(super) fn claim(&self, name: &str) -> bool {
        self.running
            .lock()
            .map(|mut r| r.insert(name.to_owned()))
            .unwrap_or(false)
    }

    pub(super) fn release(&self, name: &str) {
        if let Ok(mut r) = self.running.lock() {
            r.remove(name);
        }
    }

    /// Drives `name` under its store lease, which is extended every third
    /// of its time while the operation runs and given up after. Another
    /// daemon holding it means it is being driven there: nothing to do.
    pub(super) async fn drive_leased(&self, name: &str) {
        let key = format!("managed:{name}");
        let lease = match self
            .store
            .acquire_lease(&key, &self.holder, self.lease_seconds)
            .await
        {
            Ok(Some(lease)) => lease,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(managed = %name, error = %e, "cannot take the lease on a managed certificate");
                return;
            }
        };
        if lease.epoch > 1 {
            tracing::debug!(managed = %name, epoch = lease.epoch, "took the lease on a managed certificate");
        }
        self.set_lease(name, Some(lease.clone()));
        let stop = CancellationToken::new();
        let keeper = tokio::spawn(keep_lease(
            self.store.clone(),
            lease.clone(),
            self.lease_seconds,
            stop.clone(),
        ));
        self.drive(name).await;
        stop.cancel();
        let _ = keeper.await;
        self.set_lease(name, None);
        if let Err(e) = self.store.release_lease(&lease).await {
            tracing::warn!(managed = %name, error = %e, "cannot give up the lease; it lapses by itself");
        }
    }

    fn set_lease(&self, name: &str, lease: Option<Lease>) {
        if let Ok(mut leases) = self.leases.lock() {
            match lease {
                Some(lease) => leases.insert(name.to_owned(), lease),
                None => leases.remove(name),
            };
        }
    }

    /// Saves `state`, fenced by the lease this daemon holds on it when it
    /// holds one (the worker always does; API requests save unfenced and
    /// rely on the version check). A refused late write is logged.
    pub(super) async fn save(&self, state: &mut ManagedState) -> Result<(), StoreError> {
        let lease = self
            .leases
            .lock()
            .ok()
            .and_then(|l| l.get(&state.name).cloned());
        let result = match &lease {
            Some(lease) => self.store.save_managed_fenced(state, lease).await,
            None => self.store.save_managed(state).await,
        };
        if let (Err(e @ StoreError::Fenced(_)), Some(lease)) = (&result, &lease) {
            tracing::warn!(
                managed = %state.name, epoch = lease.epoch, error = %e,
                "a late write after losing the lease was refused by its epoch"
            );
        }
        result
    }

    /// Drives one certificate's operation as far as it goes.
    pub(super) async fn drive(&self, name: &str) {
        let Some(cert) = self.certificate(name) else {
            return;
        };
        let cert = &cert;
        let mut state = match self.store.managed(name).await {
            Ok(Some(state)) => state,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(managed = %name, error = %e, "cannot load managed certificate");
                return;
            }
        };
        let now = Utc::now().timestamp();
        let spec = spec_digest(cert);
        if !is_due(&state, &spec, now) {
            // Only the CA's window needs refreshing.
            self.refresh_window(cert, &mut state, now).await;
            if let Err(e) = self.save(&mut state).await {
                tracing::error!(managed = %name, error = %e, "cannot save renewal window");
            }
            return;
        }
        if state.operation.is_none()
            && state.current.is_some()
            && !state.force
            && !self.auto_approve_renewals
            && self.from_api.read().is_ok_and(|names| names.contains(name))
            && name.starts_with("req-")
            && !self.renewal_approved(cert, &state, now).await
        {
            return;
        }
        if state.operation.is_none() {
            let kind = if state.current.is_none() {
                OperationKind::Issue
            } else {
                OperationKind::Renew
            };
            state.operation = Some(Operation {
                kind,
                step: Step::Ordering,
                reason: None,
                key_sealed: None,
                new: None,
                started: now,
            });
            state.spec = spec.clone();
            state.force = false;
            if let Err(e) = self.save(&mut state).await {
                tracing::error!(managed = %name, error = %e, "cannot start renewal");
                return;
            }
        }
        match self.advance(cert, &mut state).await {
            Ok(()) => {}
            Err(failure) if failure.superseded => {
                // A replace request (or another daemon) changed the state
                // while this step ran; its write stands, and the next pass
                // drives what it asked for.
                tracing::info!(managed = %name, "managed state changed during the step; starting again from the stored state");
                self.wake();
            }
            Err(failure) => self.fail(cert, &mut state, failure).await,
        }
    }

    /// Walks the operation's steps, persisting each.
    pub(super) async fn advance(
        &self,
        cert: &CertificateConfig,
        state: &mut ManagedState,
    ) -> Result<(), Failure> {
        loop {
            let Some(op) = state.operation.clone() else {
                return Ok(());
            };
            match op.step {
                Step::Ordering => self.order(cert, state, op).await?,
                Step::Issued => self.deploy_all(cert, state, &op).await?,
                Step::Deployed if op.kind == OperationKind::Replace => {
                    self.revoke_old(cert, state, &op).await?;
                }
                Step::Deployed | Step::Revoked => {
                    self.complete(cert, state, op).await?;
                    return Ok(());
                }
            }
        }
    }

    pub(super) async fn fail(
        &self,
        cert: &CertificateConfig,
        state: &mut ManagedState,
        failure: Failure,
    ) {
        state.attempts = state.attempts.saturating_add(1);
        let wait = timing::backoff(state.attempts, failure.class);
        let next = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        state.next_attempt = Some(next.timestamp());
        state.last_error = Some(failure.message.clone());
        tracing::error!(
            managed = %cert.name, error = %failure.message, attempts = state.attempts,
            next_attempt = %next, "renewal failed"
        );
        if let Err(e) = self.save(state).await {
            tracing::error!(managed = %cert.name, error = %e, "cannot save the renewal failure");
        }
        self.event(
            EventKind::RenewalFailed {
                managed: cert.name.clone(),
                error: failure.message,
                permanent: failure.class == ErrorClass::Permanent,
                next_attempt: next,
            },
            None,
            &format!("renewal-failed:{}:{}", cert.name, state.attempts),
        )
        .await;
    }

    pub(super) async fn event(
        &self,
        kind: EventKind,
        record: Option<&CertificateRecord>,
        id: &str,
    ) {
        let now = Utc::now();
        let certificate = match record {
            Some(r) => {
                let seen_at = self
                    .store
                    .locations_of(std::slice::from_ref(&r.cert.fingerprint))
                    .await
                    .ok()
                    .and_then(|mut m| m.remove(&r.cert.fingerprint))
                    .unwrap_or_default();
                Some(r.summary(seen_at))
            }
            None => None,
        };
        let event = Event {
            id: id.to_owned(),
            at: now,
            kind,
            certificate,
        };
        let stored = StoredEvent::from(&event);
        if let Err(e) = self.store.push_event(&stored).await {
            // A duplicate id means the event was recorded before a restart.
            if !e.to_string().contains("already exists") {
                tracing::error!(event = %id, error = %e, "cannot record event");
            }
        }
    }
}

/// Extends `lease` every third of `seconds` until `stop`; stops early when
/// the lease was lost (the fenced saves then refuse the late writes).
async fn keep_lease(store: Store, mut lease: Lease, seconds: i64, stop: CancellationToken) {
    let every = Duration::from_secs(u64::try_from(seconds / 3).unwrap_or(1).max(1));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match store.extend_lease(&lease, seconds).await {
            Ok(Some(extended)) => lease = extended,
            Ok(None) => {
                tracing::warn!(lease = %lease.key, epoch = lease.epoch, "lost the lease to another daemon");
                return;
            }
            Err(e) => tracing::warn!(lease = %lease.key, error = %e, "cannot extend the lease"),
        }
    }
}

/// Whether an operation should run now.
pub(super) fn is_due(state: &ManagedState, spec: &str, now: i64) -> bool {
    if state.next_attempt.is_some_and(|t| t > now) {
        return false;
    }
    state.operation.is_some()
        || state.current.is_none()
        || state.force
        || state.spec != spec
        || state.renew_at.is_some_and(|t| t <= now)
}

/// Digest of what decides the certificate's content.
pub(super) fn spec_digest(cert: &CertificateConfig) -> String {
    let spec = serde_json::json!({
        "identifiers": cert.identifiers, "connector": cert.connector,
        "key_type": cert.key_type, "usage": cert.usage, "profile": cert.profile,
    });
    hex::encode(Sha256::digest(spec.to_string().as_bytes()))
}
