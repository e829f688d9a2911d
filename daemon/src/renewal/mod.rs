//! The renewal worker: keeps every `[[certificate]]` issued, renewed,
//! deployed and verified, and runs revoke-and-replace.
//!
//! One loop checks every managed certificate each `check_interval_seconds`
//! (or at once when woken by the API) and drives the due ones, at most
//! `[renewal] concurrency` at a time and `max_concurrent_orders` per
//! connector. Driving an operation walks its steps, persisting each before
//! acting on the next (see `store::managed`):
//!
//! 1. **ordering**: a fresh key (sealed in the store), a CSR, the order;
//!    the issued chain is saved as soon as the CA returns it;
//! 2. **issued**: deploy to every target (atomic files, reload, live
//!    verification on several probes in a row, rollback on failure), and
//!    for a replacement also verify
//!    every endpoint where the old certificate was seen;
//! 3. **deployed**: for a replacement, revoke the old certificate (a CA that
//!    answers "already revoked" means a previous run did it);
//! 4. done: the new certificate becomes current, the lineage is recorded
//!    and the next renewal time set from the CA's window or the lifetime.
//!
//! A failure leaves the operation at its step with a persisted backoff
//! (`timing`), records a `renewal_failed` or `deployment_failed` event in
//! the outbox, and is logged at ERROR: never a silent retry loop.

pub mod timing;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certkeeper_connectors::csr::{KeyAlgorithm, build_csr, generate_key};
use certkeeper_connectors::internal_ca::InternalCa;
use certkeeper_connectors::{
    Connector, ConnectorError, ErrorClass, IssueRequest, RevocationReason, RevokeRequest,
};
use certkeeper_integrations::{Event, EventKind};
use chrono::Utc;
use openssl::x509::X509;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config::{CertificateConfig, Config, ConnectorConfig, KeyType, RenewalConfig};
use crate::deploy::{self, Material};
use crate::discovery::probe::{ProbeOptions, Prober};
use crate::inventory::{CertificateRecord, SightingKind, Status, parse};
use crate::secret::Secret;
use crate::store::managed::{Held, ManagedState, Operation, OperationKind, Step, StoredEvent};
use crate::store::vault::Vault;
use crate::store::{Store, StoreError};

/// How often the CA's renewal window is asked for (RFC 9773 asks for at
/// least twice a day).
const WINDOW_REFRESH: i64 = 6 * 3600;
/// Earlier certificates kept per managed certificate, for `revoke`.
const KEEP_PREVIOUS: usize = 5;
/// Probes in a row that must see the new certificate before a deployment
/// counts as verified, spread over [`VERIFY_SETTLE`].
const VERIFY_STREAK: u32 = 4;
/// How long the new certificate must be served without a lapse.
const VERIFY_SETTLE: Duration = Duration::from_millis(750);

/// A connector with its per-CA concurrency bound.
pub struct ConnectorEntry {
    /// The connector.
    pub connector: Arc<dyn Connector>,
    /// Orders in flight on it.
    pub limit: Arc<Semaphore>,
    /// The internal CA behind it, for its CRL.
    pub internal: Option<Arc<InternalCa>>,
}

/// Every configured connector, by name.
#[derive(Default)]
pub struct Registry {
    /// Connectors by name.
    pub connectors: HashMap<String, ConnectorEntry>,
}

impl Registry {
    /// Builds every `[[connector]]` with its state in the store (sealed by
    /// `vault`). ACME connectors do not contact their CA here; an internal CA
    /// is created on first start.
    pub async fn build(config: &Config, store: &Store, vault: &Vault) -> anyhow::Result<Self> {
        let mut connectors = HashMap::new();
        for c in &config.connectors {
            let state = store.connector_state(c.name(), vault.clone());
            let (connector, internal): (Arc<dyn Connector>, _) = match c {
                ConnectorConfig::Acme(acme) => {
                    let roots = match &acme.roots_file {
                        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                            anyhow::anyhow!(
                                "connector {}: cannot read roots_file {}: {e}",
                                acme.name,
                                path.display()
                            )
                        })?),
                        None => None,
                    };
                    let settings = acme
                        .settings(roots)
                        .map_err(|e| anyhow::anyhow!("connector {}: {e}", acme.name))?;
                    let connector = certkeeper_connectors::acme::open(settings, state).await?;
                    (Arc::new(connector), None)
                }
                ConnectorConfig::InternalCa(ca) => {
                    let settings = ca
                        .settings()
                        .map_err(|e| anyhow::anyhow!("connector {}: {e}", ca.name))?;
                    let ca = Arc::new(InternalCa::open(settings, state).await?);
                    (ca.clone(), Some(ca))
                }
            };
            connectors.insert(
                c.name().to_owned(),
                ConnectorEntry {
                    connector,
                    limit: Arc::new(Semaphore::new(c.max_concurrent_orders())),
                    internal,
                },
            );
        }
        Ok(Self { connectors })
    }

    fn get(&self, name: &str) -> Result<&ConnectorEntry, Failure> {
        self.connectors.get(name).ok_or_else(|| Failure {
            message: format!("no connector named `{name}`"),
            class: ErrorClass::Permanent,
        })
    }
}

/// Why a step failed, and whether retrying can help.
#[derive(Debug)]
struct Failure {
    message: String,
    class: ErrorClass,
}

impl From<ConnectorError> for Failure {
    fn from(e: ConnectorError) -> Self {
        Self {
            message: e.to_string(),
            class: e.class,
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self {
            message: format!("store: {e}"),
            class: ErrorClass::Transient,
        }
    }
}

impl Failure {
    fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            class: ErrorClass::Permanent,
        }
    }

    fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            class: ErrorClass::Transient,
        }
    }
}

/// A refused request from the API or CLI.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Nothing matches.
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be done in this state.
    #[error("{0}")]
    Conflict(String),
    /// The request itself is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The CA or store failed.
    #[error("{0}")]
    Failed(String),
}

/// The renewal worker and the lifecycle requests it serves.
pub struct Renewer {
    store: Store,
    vault: Vault,
    registry: Arc<Registry>,
    /// Managed certificates by name: the config's and those created
    /// through the API (`from_api`).
    certificates: std::sync::RwLock<HashMap<String, CertificateConfig>>,
    from_api: std::sync::RwLock<HashSet<String>>,
    connector_names: HashSet<String>,
    settings: RenewalConfig,
    expiring_days: u32,
    /// Whether renewals of certificates enrolled through requests go ahead
    /// without an approver (`[admin] auto_approve_renewals`).
    auto_approve_renewals: bool,
    prober: Prober,
    wake: Notify,
    running: Mutex<HashSet<String>>,
    limit: Arc<Semaphore>,
    inventory_writes: tokio::sync::Mutex<()>,
}

impl Renewer {
    /// A worker for `config`'s certificates.
    pub fn new(
        config: &Config,
        store: Store,
        vault: Vault,
        registry: Arc<Registry>,
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
    async fn check(self: &Arc<Self>) -> Result<(), StoreError> {
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
                    let state = ManagedState::new(name, &spec);
                    self.store.save_managed(&state).await?;
                    state
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
                this.drive(&name).await;
                this.release(&name);
            });
        }
        Ok(())
    }

    fn claim(&self, name: &str) -> bool {
        self.running
            .lock()
            .map(|mut r| r.insert(name.to_owned()))
            .unwrap_or(false)
    }

    fn release(&self, name: &str) {
        if let Ok(mut r) = self.running.lock() {
            r.remove(name);
        }
    }

    /// Drives one certificate's operation as far as it goes.
    async fn drive(&self, name: &str) {
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
            if let Err(e) = self.store.save_managed(&state).await {
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
            if let Err(e) = self.store.save_managed(&state).await {
                tracing::error!(managed = %name, error = %e, "cannot start renewal");
                return;
            }
        }
        match self.advance(cert, &mut state).await {
            Ok(()) => {}
            Err(failure) => self.fail(cert, &mut state, failure).await,
        }
    }

    /// Walks the operation's steps, persisting each.
    async fn advance(
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

    async fn order(
        &self,
        cert: &CertificateConfig,
        state: &mut ManagedState,
        mut op: Operation,
    ) -> Result<(), Failure> {
        let context = key_context(&cert.name);
        // One key per operation, sealed before the order, so a retry or a
        // restart sends the same key (and never leaks a fresh one).
        let key_pem = match &op.key_sealed {
            Some(sealed) => self
                .vault
                .open(&context, sealed)
                .map_err(|e| Failure::permanent(e.to_string()))?,
            None => {
                let reuse = !cert.rotate_key && op.kind != OperationKind::Replace;
                let pem = match (&state.key_sealed, reuse) {
                    (Some(sealed), true) => self
                        .vault
                        .open(&context, sealed)
                        .map_err(|e| Failure::permanent(e.to_string()))?,
                    _ => {
                        let algorithm = key_algorithm(cert)?;
                        generate_key(algorithm)
                            .and_then(|k| k.private_key_to_pem_pkcs8())
                            .map_err(|e| Failure::transient(format!("key generation: {e}")))?
                    }
                };
                op.key_sealed = Some(
                    self.vault
                        .seal(&context, &pem)
                        .map_err(|e| Failure::transient(e.to_string()))?,
                );
                state.operation = Some(op.clone());
                self.store.save_managed(state).await?;
                pem
            }
        };
        let key = openssl::pkey::PKey::private_key_from_pem(&key_pem)
            .map_err(|e| Failure::permanent(format!("stored key unreadable: {e}")))?;
        let identifiers = cert.parsed_identifiers().map_err(Failure::permanent)?;
        let csr =
            build_csr(&key, &identifiers).map_err(|e| Failure::permanent(format!("CSR: {e}")))?;
        let mut request = IssueRequest::new(csr, identifiers);
        request.usage = cert.usage;
        request.validity = cert.validity();
        request.profile = cert.profile.clone();
        if let Some(current) = &state.current {
            request.replaces = pem_to_der(&current.chain_pem);
        }
        let entry = self.registry.get(&cert.connector)?;
        let issued = {
            let _permit = entry
                .limit
                .acquire()
                .await
                .map_err(|_| Failure::transient("shutting down"))?;
            entry.connector.issue(&request).await?
        };
        let leaf_der = pem_to_der(&issued.chain_pem)
            .ok_or_else(|| Failure::permanent("the CA returned no certificate"))?;
        let parsed = parse::parse_der(&leaf_der).map_err(|e| {
            Failure::permanent(format!("the CA returned an unreadable certificate: {e}"))
        })?;
        let held = Held {
            fingerprint: parsed.fingerprint.clone(),
            chain_pem: issued.chain_pem.clone(),
            not_before: parsed.not_before,
            not_after: parsed.not_after,
        };
        op.new = Some(held);
        op.step = Step::Issued;
        state.operation = Some(op);
        // Saved before anything else: a restart from here deploys this
        // certificate instead of ordering another.
        self.store.save_managed(state).await?;
        tracing::info!(managed = %cert.name, cert = %parsed.fingerprint, "certificate issued");
        Ok(())
    }

    /// Puts a newly issued certificate into the inventory with its owner and
    /// lineage, once (idempotent: it runs again if a later step is retried).
    async fn record_issued(
        &self,
        cert: &CertificateConfig,
        state: &ManagedState,
        new: &Held,
    ) -> Result<(), Failure> {
        let der = pem_to_der(&new.chain_pem)
            .ok_or_else(|| Failure::permanent("stored certificate unreadable"))?;
        let parsed = parse::parse_der(&der)
            .map_err(|e| Failure::permanent(format!("stored certificate unreadable: {e}")))?;
        let now = Utc::now().timestamp();
        let mut record = CertificateRecord::discovered(parsed, now, self.expiring_days);
        record.org_unit = cert.org_unit.clone();
        record.contacts = cert.contacts.clone();
        record.replaces = state.current.as_ref().map(|c| c.fingerprint.clone());
        let location = format!("{}: {}", cert.connector, cert.name);
        {
            // Inventory writes touch shared counters: one at a time from here
            // rather than hundreds of conflicting transactions.
            let _writing = self.inventory_writes.lock().await;
            self.store
                .record_certificates(
                    std::slice::from_ref(&record),
                    SightingKind::Connector,
                    &location,
                    now,
                )
                .await?;
            if let Some(old) = &record.replaces {
                self.store
                    .set_lineage(old, &record.cert.fingerprint)
                    .await?;
            }
        }
        self.consume_unit(&cert.connector, &record.cert.fingerprint, now)
            .await;
        let entry = crate::admin::audit_chain::AuditEntry {
            source: Some(format!("connector {}", cert.connector)),
            before: record
                .replaces
                .as_ref()
                .map(|old| serde_json::json!({ "fingerprint": old })),
            after: Some(serde_json::json!({
                "managed": cert.name, "subject": record.cert.subject,
                "serial": record.cert.serial, "not_after": record.cert.not_after,
            })),
            ..crate::admin::audit_chain::AuditEntry::new(
                "system",
                "certificate_issue",
                Some(record.cert.fingerprint.clone()),
            )
        };
        if let Err(e) = self.store.append_audit(entry).await {
            tracing::error!(managed = %cert.name, error = %e, "cannot write the issuance to the audit log");
        }
        self.event(
            EventKind::CertificateIssued {
                managed: cert.name.clone(),
            },
            Some(&record),
            &format!("issued:{}", record.cert.fingerprint),
        )
        .await;
        Ok(())
    }

    async fn deploy_all(
        &self,
        cert: &CertificateConfig,
        state: &mut ManagedState,
        op: &Operation,
    ) -> Result<(), Failure> {
        let new = op
            .new
            .as_ref()
            .ok_or_else(|| Failure::permanent("issued step without a certificate"))?;
        let sealed = op
            .key_sealed
            .as_ref()
            .ok_or_else(|| Failure::permanent("issued step without a key"))?;
        self.record_issued(cert, state, new).await?;
        let key = self
            .vault
            .open(&key_context(&cert.name), sealed)
            .map_err(|e| Failure::permanent(e.to_string()))?;
        let key = Secret::new(String::from_utf8_lossy(&key).into_owned());
        let material = Material::from_fullchain(&new.chain_pem, key).map_err(Failure::permanent)?;
        for target in &cert.deploy {
            let endpoints: Vec<(String, u16)> = target
                .verify
                .iter()
                .map(|e| (e.host.clone(), e.port))
                .collect();
            let sni = target.sni.clone();
            let result = deploy::deploy(target, &material, async || {
                self.verify_serving(&endpoints, sni.as_deref(), &new.fingerprint)
                    .await
            })
            .await;
            if let Err(e) = result {
                let error = e.to_string();
                self.event(
                    EventKind::DeploymentFailed {
                        managed: cert.name.clone(),
                        target: target.label(),
                        error: error.clone(),
                    },
                    None,
                    &format!(
                        "deploy:{}:{}:{}",
                        new.fingerprint,
                        target.label(),
                        state.attempts
                    ),
                )
                .await;
                return Err(Failure {
                    message: error,
                    class: if e.is_retryable() {
                        ErrorClass::Transient
                    } else {
                        ErrorClass::Permanent
                    },
                });
            }
        }
        if op.kind == OperationKind::Replace
            && let Some(old) = &state.current
        {
            // Every endpoint where the old certificate was seen must now
            // serve the new one before the old one is revoked.
            let sightings = self
                .store
                .certificate(&old.fingerprint)
                .await?
                .map(|(_, s)| s)
                .unwrap_or_default();
            for sighting in sightings {
                if sighting.kind != SightingKind::Endpoint {
                    continue;
                }
                let Some((addr, sni)) = parse_location(&sighting.location) else {
                    continue;
                };
                self.verify_serving(
                    &[(addr.ip().to_string(), addr.port())],
                    sni.as_deref(),
                    &new.fingerprint,
                )
                .await
                .map_err(|e| {
                    Failure::transient(format!(
                        "{} still serves the old certificate, so it is not revoked yet: {e}",
                        sighting.location
                    ))
                })?;
            }
        }
        let mut op = op.clone();
        op.step = Step::Deployed;
        state.operation = Some(op);
        self.store.save_managed(state).await?;
        Ok(())
    }

    /// Checks every endpoint serves `fingerprint` steadily (see
    /// [`serves_steadily`]).
    async fn verify_serving(
        &self,
        endpoints: &[(String, u16)],
        sni: Option<&str>,
        fingerprint: &str,
    ) -> Result<(), String> {
        serves_steadily(
            &self.prober,
            endpoints,
            sni,
            fingerprint,
            Duration::from_secs(self.settings.verify_timeout_seconds),
        )
        .await
    }

    async fn revoke_old(
        &self,
        cert: &CertificateConfig,
        state: &mut ManagedState,
        op: &Operation,
    ) -> Result<(), Failure> {
        if let Some(old) = state.current.clone() {
            let reason = op
                .reason
                .as_deref()
                .unwrap_or("superseded")
                .parse::<RevocationReason>()
                .map_err(Failure::permanent)?;
            self.revoke_held(&cert.connector, &old, reason).await?;
        }
        let mut op = op.clone();
        op.step = Step::Revoked;
        state.operation = Some(op);
        self.store.save_managed(state).await?;
        Ok(())
    }

    /// Revokes one certificate through `connector`; "already revoked" counts
    /// as done (a run killed after revoking and before saving).
    async fn revoke_held(
        &self,
        connector: &str,
        held: &Held,
        reason: RevocationReason,
    ) -> Result<(), Failure> {
        let der = pem_to_der(&held.chain_pem)
            .ok_or_else(|| Failure::permanent("stored certificate unreadable"))?;
        let entry = self.registry.get(connector)?;
        match entry
            .connector
            .revoke(&RevokeRequest::new(der, reason))
            .await
        {
            Ok(()) => {}
            Err(e) if e.already_revoked => {}
            Err(e) => return Err(e.into()),
        }
        self.store
            .set_status(&held.fingerprint, Status::Revoked)
            .await?;
        self.event(
            EventKind::CertificateRevoked,
            None,
            &format!("revoked:{}", held.fingerprint),
        )
        .await;
        tracing::info!(cert = %held.fingerprint, ?reason, "certificate revoked");
        Ok(())
    }

    async fn complete(
        &self,
        cert: &CertificateConfig,
        state: &mut ManagedState,
        op: Operation,
    ) -> Result<(), Failure> {
        let new = op
            .new
            .clone()
            .ok_or_else(|| Failure::permanent("operation finished without a certificate"))?;
        let previous = state.current.take();
        if let Some(prev) = previous.clone() {
            state.previous.insert(0, prev);
            state.previous.truncate(KEEP_PREVIOUS);
        }
        state.current = Some(new.clone());
        state.key_sealed = op.key_sealed.clone();
        state.force = false;
        state.generation += 1;
        state.operation = None;
        state.attempts = 0;
        state.next_attempt = None;
        state.last_error = None;
        let now = Utc::now().timestamp();
        state.last_success = Some(now);
        state.window = None;
        state.window_checked = None;
        state.renew_at = Some(match cert.renew_before_days {
            Some(days) => new.not_after - i64::from(days) * 86_400,
            None => timing::default_renew_at(new.not_before, new.not_after),
        });
        if cert.renew_before_days.is_none() {
            self.refresh_window(cert, state, now).await;
        }
        self.store.save_managed(state).await?;
        if op.kind != OperationKind::Issue {
            self.event(
                EventKind::RenewalSucceeded {
                    managed: cert.name.clone(),
                    previous: previous.map(|p| p.fingerprint),
                },
                None,
                &format!("renewed:{}", new.fingerprint),
            )
            .await;
        }
        tracing::info!(managed = %cert.name, cert = %new.fingerprint, generation = state.generation, "certificate in service");
        Ok(())
    }

    /// Asks the CA for its renewal window and picks a time in it.
    async fn refresh_window(&self, cert: &CertificateConfig, state: &mut ManagedState, now: i64) {
        let Some(current) = &state.current else {
            return;
        };
        let Some(der) = pem_to_der(&current.chain_pem) else {
            return;
        };
        let Ok(entry) = self.registry.get(&cert.connector) else {
            return;
        };
        state.window_checked = Some(now);
        match entry.connector.renewal_info(&der).await {
            Ok(Some(window)) => {
                let (start, end) = (window.start.timestamp(), window.end.timestamp());
                if state.window != Some((start, end)) {
                    state.window = Some((start, end));
                    state.renew_at = Some(timing::pick_in_window(start, end, timing::random_u64()));
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(managed = %cert.name, error = %e, "renewal window unavailable; keeping the schedule");
            }
        }
    }

    async fn fail(&self, cert: &CertificateConfig, state: &mut ManagedState, failure: Failure) {
        state.attempts = state.attempts.saturating_add(1);
        let wait = timing::backoff(state.attempts, failure.class);
        let next = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        state.next_attempt = Some(next.timestamp());
        state.last_error = Some(failure.message.clone());
        tracing::error!(
            managed = %cert.name, error = %failure.message, attempts = state.attempts,
            next_attempt = %next, "renewal failed"
        );
        if let Err(e) = self.store.save_managed(state).await {
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

    /// Whether the due renewal of a requested certificate may go ahead:
    /// `false` while its renewal request waits for an approver (or was
    /// rejected). The first time, it files that request (`renew-NAME-gN`)
    /// with a `request_pending_approval` event. Approving it forces the
    /// renewal.
    async fn renewal_approved(
        &self,
        cert: &CertificateConfig,
        state: &ManagedState,
        now: i64,
    ) -> bool {
        let id = format!("renew-{}-g{}", cert.name, state.generation + 1);
        match self.store.request(&id).await {
            Ok(Some(r)) => r.state == "approved",
            Ok(None) => {
                let request = crate::store::requests::Request {
                    id: id.clone(),
                    requester: "system".into(),
                    org_unit: cert.org_unit.clone().unwrap_or_default(),
                    identifiers: cert.identifiers.clone(),
                    connector: cert.connector.clone(),
                    key_type: cert.key_type.clone(),
                    validity_days: cert.validity_days,
                    validity_seconds: cert.validity_seconds,
                    contact: cert.contacts.first().cloned().unwrap_or_default(),
                    state: "pending".into(),
                    assignee: None,
                    decided_by: None,
                    reason: Some(format!("renewal of {}", cert.name)),
                    managed: Some(cert.name.clone()),
                    created: now,
                    decided: None,
                };
                let event = Event {
                    id: format!("request:{id}:pending"),
                    at: Utc::now(),
                    kind: EventKind::RequestPendingApproval {
                        request: id.clone(),
                        requester: "system".into(),
                        identifiers: cert.identifiers.clone(),
                    },
                    certificate: None,
                };
                let doc = serde_json::to_value(&event).unwrap_or_default();
                if let Err(e) = self
                    .store
                    .create_request(&request, (event.id.clone(), doc))
                    .await
                    && !e.to_string().contains("already exists")
                {
                    tracing::error!(managed = %cert.name, error = %e, "cannot file the renewal request");
                }
                tracing::info!(managed = %cert.name, request = %id, "renewal waits for approval");
                false
            }
            Err(e) => {
                tracing::error!(managed = %cert.name, error = %e, "cannot read the renewal request");
                false
            }
        }
    }

    /// Counts the issuance against the connector's purchased units, if it is
    /// metered; a failure to count is logged, never a failed issuance.
    async fn consume_unit(&self, connector: &str, fingerprint: &str, now: i64) {
        let result = self
            .store
            .consume_unit(connector, fingerprint, now, |units| {
                let event = Event {
                    id: format!("units-low:{connector}:{}", units.purchased),
                    at: Utc::now(),
                    kind: EventKind::UnitsLow {
                        connector: connector.to_owned(),
                        remaining: u64::try_from(units.remaining()).unwrap_or(0),
                        threshold: u64::try_from(units.threshold).unwrap_or(0),
                    },
                    certificate: None,
                };
                (
                    event.id.clone(),
                    serde_json::to_value(&event).unwrap_or_default(),
                )
            })
            .await;
        if let Err(e) = result {
            tracing::error!(connector, error = %e, "cannot count the issuance against purchased units");
        }
    }

    async fn event(&self, kind: EventKind, record: Option<&CertificateRecord>, id: &str) {
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
        let stored = StoredEvent {
            id: id.to_owned(),
            time: now.timestamp(),
            event: serde_json::to_value(&event).unwrap_or_default(),
        };
        if let Err(e) = self.store.push_event(&stored).await {
            // A duplicate id means the event was recorded before a restart.
            if !e.to_string().contains("already exists") {
                tracing::error!(event = %id, error = %e, "cannot record event");
            }
        }
    }

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
                return Ok(state.name);
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
        self.store.save_managed(&state).await.map_err(failed)?;
        self.wake();
        Ok(state.name)
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

    fn certificate(&self, name: &str) -> Option<CertificateConfig> {
        self.certificates.read().ok()?.get(name).cloned()
    }

    fn all_certificates(&self) -> Vec<CertificateConfig> {
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

/// Whether an operation should run now.
fn is_due(state: &ManagedState, spec: &str, now: i64) -> bool {
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
fn spec_digest(cert: &CertificateConfig) -> String {
    let spec = serde_json::json!({
        "identifiers": cert.identifiers, "connector": cert.connector,
        "key_type": cert.key_type, "usage": cert.usage, "profile": cert.profile,
    });
    hex::encode(Sha256::digest(spec.to_string().as_bytes()))
}

fn key_context(name: &str) -> String {
    format!("managed:{name}:key")
}

fn key_algorithm(cert: &CertificateConfig) -> Result<KeyAlgorithm, Failure> {
    Ok(
        match cert
            .key_type
            .parse::<KeyType>()
            .map_err(Failure::permanent)?
        {
            KeyType::Rsa(bits) => KeyAlgorithm::Rsa(bits),
            KeyType::EcdsaP256 => KeyAlgorithm::EcdsaP256,
            KeyType::EcdsaP384 => KeyAlgorithm::EcdsaP384,
            KeyType::Ed25519 => KeyAlgorithm::Ed25519,
        },
    )
}

/// The DER of the first certificate in a PEM text.
fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    X509::from_pem(pem.as_bytes()).ok()?.to_der().ok()
}

/// `ip:port` or `ip:port (sni)` as discovery writes sighting locations.
fn parse_location(location: &str) -> Option<(std::net::SocketAddr, Option<String>)> {
    let (addr, sni) = match location.split_once(" (") {
        Some((addr, rest)) => (addr, rest.strip_suffix(')').map(str::to_owned)),
        None => (location, None),
    };
    Some((addr.parse().ok()?, sni))
}

/// Probes each endpoint until it serves `fingerprint` on
/// [`VERIFY_STREAK`] probes in a row, or `timeout` passes.
///
/// One good answer is not enough: a reloading server (nginx, for one)
/// runs its old workers beside the new ones for a moment, so the next
/// connection can still get the old certificate. A streak spanning
/// [`VERIFY_SETTLE`] outlasts that hand-over.
async fn serves_steadily(
    prober: &Prober,
    endpoints: &[(String, u16)],
    sni: Option<&str>,
    fingerprint: &str,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    for (host, port) in endpoints {
        let addr = match tokio::net::lookup_host((host.as_str(), *port)).await {
            Ok(mut addrs) => addrs
                .next()
                .ok_or_else(|| format!("{host}:{port} does not resolve"))?,
            Err(e) => return Err(format!("{host}:{port} does not resolve: {e}")),
        };
        let name = sni.or_else(|| {
            host.parse::<std::net::IpAddr>()
                .is_err()
                .then_some(host.as_str())
        });
        let mut streak = 0;
        loop {
            let last = match prober.probe(addr, name, None).await {
                Ok(probed) => match probed
                    .chain_der
                    .first()
                    .map(|d| hex::encode(Sha256::digest(d)))
                {
                    Some(fp) if fp == fingerprint => None,
                    Some(fp) => Some(format!("{host}:{port} serves {fp}")),
                    None => Some(format!("{host}:{port} presented no certificate")),
                },
                Err(e) => Some(format!("{host}:{port}: {e}")),
            };
            match last {
                None => {
                    streak += 1;
                    if streak >= VERIFY_STREAK {
                        break;
                    }
                }
                Some(last) => {
                    streak = 0;
                    if tokio::time::Instant::now() >= deadline {
                        return Err(format!("{last}, not the new certificate {fingerprint}"));
                    }
                }
            }
            tokio::time::sleep(VERIFY_SETTLE / (VERIFY_STREAK - 1)).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sighting_locations_parse() {
        let (addr, sni) = parse_location("127.0.0.1:443 (www.example.com)").unwrap();
        assert_eq!(addr.port(), 443);
        assert_eq!(sni.as_deref(), Some("www.example.com"));
        assert_eq!(parse_location("[::1]:8443").unwrap().1, None);
        assert!(parse_location("/etc/ssl/cert.pem").is_none());
    }

    /// A TLS server on loopback answering its `n`th connection with
    /// `script(n)`'s certificate; returns its port and a connection counter.
    async fn flapping_server(
        script: impl Fn(usize) -> usize + Send + 'static,
    ) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use openssl::ssl::{SslAcceptor, SslMethod};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let identities = [
            deploy::test_cert("new.test", None),
            deploy::test_cert("old.test", None),
        ];
        let acceptors: Vec<_> = identities
            .iter()
            .map(|(cert, key)| {
                let mut a = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
                a.set_certificate(cert).unwrap();
                a.set_private_key(key).unwrap();
                a.build()
            })
            .collect();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let ssl = openssl::ssl::Ssl::new(acceptors[script(n)].context()).unwrap();
                tokio::spawn(async move {
                    let mut tls = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
                    let _ = std::pin::Pin::new(&mut tls).accept().await;
                });
            }
        });
        (port, count)
    }

    /// After a reload, old and new workers answer side by side for a moment:
    /// a single good probe must not count as verified.
    #[tokio::test]
    async fn verification_waits_for_a_steady_streak() {
        let prober = Prober::new(ProbeOptions::default()).unwrap();
        // Connection 0 gets the new certificate, 1 the old, then new again.
        let (port, count) = flapping_server(|n| usize::from(n == 1)).await;
        // The server's own new certificate, read from a first probe.
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let first = prober.probe(addr, None, None).await.unwrap();
        let served_new = hex::encode(Sha256::digest(&first.chain_der[0]));
        let endpoints = [("127.0.0.1".to_owned(), port)];
        serves_steadily(
            &prober,
            &endpoints,
            None,
            &served_new,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        // Connection 1 (old) broke the streak: verified only after four
        // more new answers in a row (connections 2 to 5).
        let connections = count.load(std::sync::atomic::Ordering::SeqCst);
        assert!(connections >= 6, "verified after {connections} connections");

        // A server that never settles is refused once the timeout passes,
        // with the old certificate named.
        let (port, _) = flapping_server(|n| n % 2).await;
        let endpoints = [("127.0.0.1".to_owned(), port)];
        let first = prober
            .probe(([127, 0, 0, 1], port).into(), None, None)
            .await
            .unwrap();
        let flapping_new = hex::encode(Sha256::digest(&first.chain_der[0]));
        let error = serves_steadily(
            &prober,
            &endpoints,
            None,
            &flapping_new,
            Duration::from_secs(2),
        )
        .await
        .unwrap_err();
        assert!(
            error.contains("serves") && error.contains(&flapping_new),
            "{error}"
        );
    }

    #[test]
    fn due_rules() {
        let mut s = ManagedState::new("a", "x");
        assert!(is_due(&s, "x", 0), "never issued");
        s.current = Some(Held {
            fingerprint: "f".into(),
            chain_pem: String::new(),
            not_before: 0,
            not_after: 100,
        });
        s.renew_at = Some(50);
        assert!(!is_due(&s, "x", 10));
        assert!(is_due(&s, "x", 50));
        assert!(is_due(&s, "y", 10), "spec changed");
        s.next_attempt = Some(60);
        assert!(!is_due(&s, "x", 55), "backing off");
        s.force = true;
        assert!(!is_due(&s, "x", 55), "even forced, backoff holds");
    }
}
