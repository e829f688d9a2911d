//! The steps of one operation, each persisted before the next acts:
//! ordering (key, CSR, order), issued (deploy and verify), deployed (revoke
//! the replaced certificate), and completion.

use std::time::Duration;

use certkeeper_connectors::csr::{KeyAlgorithm, build_csr, generate_key};
use certkeeper_connectors::{IssueRequest, RevocationReason, RevokeRequest};
use certkeeper_integrations::{Event, EventKind};
use chrono::Utc;
use openssl::x509::X509;
use sha2::{Digest, Sha256};

use super::*;
use crate::config::{CertificateConfig, KeyType};
use crate::deploy::{self, Material};
use certkeeper_base::Secret;
use certkeeper_discovery::probe::Prober;
use certkeeper_model::event::StoredEvent;
use certkeeper_model::inventory::{CertificateRecord, SightingKind, Status, parse};
use certkeeper_store::managed::{Held, ManagedState, Operation, OperationKind, Step};

impl Renewer {
    pub(super) async fn order(
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
                self.save(state).await?;
                pem
            }
        };
        let key = openssl::pkey::PKey::private_key_from_pem(&key_pem)
            .map_err(|e| Failure::permanent(format!("stored key unreadable: {e}")))?;
        let identifiers = cert.parsed_identifiers().map_err(Failure::permanent)?;
        let csr =
            build_csr(&key, &identifiers).map_err(|e| Failure::permanent(format!("CSR: {e}")))?;
        let mut request = IssueRequest::new(csr, identifiers);
        // The same for every attempt of this operation (a retry, a restart):
        // an order-then-poll CA resumes the order it placed instead of
        // placing another.
        request.idempotency_key = Some(idempotency_key(cert, &op));
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
        // certificate instead of ordering another. Only then may the
        // connector forget the order it kept to resume.
        self.save(state).await?;
        if let Some(key) = &request.idempotency_key {
            entry.connector.recorded(key).await;
        }
        tracing::info!(managed = %cert.name, cert = %parsed.fingerprint, "certificate issued");
        Ok(())
    }

    /// Puts a newly issued certificate into the inventory with its owner and
    /// lineage, once (idempotent: it runs again if a later step is retried).
    pub(super) async fn record_issued(
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
        let entry = certkeeper_model::admin::audit_chain::AuditEntry {
            source: Some(format!("connector {}", cert.connector)),
            before: record
                .replaces
                .as_ref()
                .map(|old| serde_json::json!({ "fingerprint": old })),
            after: Some(serde_json::json!({
                "managed": cert.name, "subject": record.cert.subject,
                "serial": record.cert.serial, "not_after": record.cert.not_after,
            })),
            ..certkeeper_model::admin::audit_chain::AuditEntry::new(
                "system",
                "certificate_issue",
                Some(record.cert.fingerprint.clone()),
            )
        };
        // Once per certificate, however often this step runs (a retry, a
        // daemon taking the operation over).
        let key = format!("certificate_issue:{}", record.cert.fingerprint);
        if let Err(e) = self.store.append_audit_once(&key, entry).await {
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

    pub(super) async fn deploy_all(
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
                return Err(if e.is_retryable() {
                    Failure::transient(error)
                } else {
                    Failure::permanent(error)
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
        self.save(state).await?;
        Ok(())
    }

    /// Checks every endpoint serves `fingerprint` steadily (see
    /// [`serves_steadily`]).
    pub(super) async fn verify_serving(
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

    pub(super) async fn revoke_old(
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
        self.save(state).await?;
        Ok(())
    }

    /// Revokes one certificate through `connector`; "already revoked" counts
    /// as done (a run killed after revoking and before saving).
    pub(super) async fn revoke_held(
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
        // The revocation itself, when the CA confirmed it (the API's entry
        // for a replace is only the request to do it).
        let entry = certkeeper_model::admin::audit_chain::AuditEntry {
            source: Some(format!("connector {connector}")),
            after: Some(serde_json::json!({ "reason": format!("{reason:?}") })),
            ..certkeeper_model::admin::audit_chain::AuditEntry::new(
                "system",
                "certificate_revoked",
                Some(held.fingerprint.clone()),
            )
        };
        if let Err(e) = self.store.append_audit(entry).await {
            tracing::error!(cert = %held.fingerprint, error = %e, "cannot write the revocation to the audit log");
        }
        self.event(
            EventKind::CertificateRevoked,
            None,
            &format!("revoked:{}", held.fingerprint),
        )
        .await;
        tracing::info!(cert = %held.fingerprint, ?reason, "certificate revoked");
        Ok(())
    }

    pub(super) async fn complete(
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
        // The event first, then the state that ends the operation: killed
        // in between, the next holder completes it again and records the
        // same event id, which the outbox keeps once. The other way round a
        // kill would lose the event.
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
        self.save(state).await?;
        tracing::info!(managed = %cert.name, cert = %new.fingerprint, generation = state.generation, "certificate in service");
        Ok(())
    }

    /// Asks the CA for its renewal window and picks a time in it.
    pub(super) async fn refresh_window(
        &self,
        cert: &CertificateConfig,
        state: &mut ManagedState,
        now: i64,
    ) {
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

    /// Whether the due renewal of a requested certificate may go ahead:
    /// `false` while its renewal request waits for an approver (or was
    /// rejected). The first time, it files that request (`renew-NAME-gN`)
    /// with a `request_pending_approval` event. Approving it forces the
    /// renewal.
    pub(super) async fn renewal_approved(
        &self,
        cert: &CertificateConfig,
        state: &ManagedState,
        now: i64,
    ) -> bool {
        let id = format!("renew-{}-g{}", cert.name, state.generation + 1);
        match self.store.request(&id).await {
            Ok(Some(r)) => r.state == certkeeper_model::request::RequestState::Approved,
            Ok(None) => {
                let request = certkeeper_store::requests::Request {
                    id: id.clone(),
                    requester: "system".into(),
                    org_unit: cert.org_unit.clone().unwrap_or_default(),
                    identifiers: cert.identifiers.clone(),
                    connector: cert.connector.clone(),
                    key_type: cert.key_type.clone(),
                    validity_days: cert.validity_days,
                    validity_seconds: cert.validity_seconds,
                    contact: cert.contacts.first().cloned().unwrap_or_default(),
                    state: certkeeper_model::request::RequestState::Pending,
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
                if let Err(e) = self
                    .store
                    .create_request(&request, &StoredEvent::from(&event))
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
    pub(super) async fn consume_unit(&self, connector: &str, fingerprint: &str, now: i64) {
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
                StoredEvent::from(&event)
            })
            .await;
        if let Err(e) = result {
            tracing::error!(connector, error = %e, "cannot count the issuance against purchased units");
        }
    }
}

/// The same for every attempt of one operation (a retry, a restart, another
/// daemon taking it over), so an order-then-poll CA resumes its order.
pub(super) fn idempotency_key(cert: &CertificateConfig, op: &Operation) -> String {
    format!("{}:{}:{:?}", cert.name, op.started, op.kind)
}

pub(super) fn key_context(name: &str) -> String {
    certkeeper_store::managed::key_context(name)
}

pub(super) fn key_algorithm(cert: &CertificateConfig) -> Result<KeyAlgorithm, Failure> {
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
pub(super) fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    X509::from_pem(pem.as_bytes()).ok()?.to_der().ok()
}

/// `ip:port` or `ip:port (sni)` as discovery writes sighting locations.
pub(super) fn parse_location(location: &str) -> Option<(std::net::SocketAddr, Option<String>)> {
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
pub(super) async fn serves_steadily(
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
