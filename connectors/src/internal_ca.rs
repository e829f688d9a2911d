//! The internal CA: Certkeeper itself runs a private two-tier CA (a root and
//! an issuing intermediate) for names no public CA will certify, and for
//! client and code-signing certificates.
//!
//! [`InternalCa::open`] loads the CA from the connector's [`StateStore`], or
//! creates (or imports) it on first use; the private keys are stored as
//! PKCS#8 encrypted under the daemon's passphrase (`authority`). Issuing
//! takes a PKCS#10 CSR and signs the request's names once the
//! [`IssuancePolicy`] accepted them (`policy`, `profile`); every certificate
//! is recorded so [`Connector::list_issued`] can answer (`ledger`). Revoking
//! signs a new CRL at once (`crl`, encoded by the small DER writer in
//! `der`); the daemon calls [`InternalCa::refresh_crl_if_due`] periodically
//! (at [`InternalCa::crl_due_at`]) so the CRL is replaced well before its
//! nextUpdate.
//!
//! An internal CA has no ACME Renewal Information, so
//! [`Connector::renewal_info`] returns a synthetic window (see
//! [`synthetic_window`]) and the scheduler treats these certificates like
//! any other.
//!
//! Error classes: policy refusals, bad CSRs, foreign certificates and
//! configuration problems are permanent; failures of the state store are
//! transient. No error or log line carries key material or the passphrase.

mod authority;
mod crl;
mod der;
mod ledger;
mod policy;
mod profile;
mod settings;

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use openssl::x509::{X509, X509Req};

pub use authority::{CaKeyType, CaSource, GenerateCa, ImportCa, PemSource};
pub use policy::{IpNetwork, IssuancePolicy, LeafKeyType, NamePolicy};
pub use settings::{CrlSettings, InternalCaSettings, Secret};

use authority::{Authority, CA_KEY, SealedCa, chrono_duration, random_serial, utc_time};
use crl::{CRL_KEY, Revocations, Revoked};
use ledger::Ledger;

use crate::{
    Connector, ConnectorError, ErrorClass, IssueRequest, Issued, IssuedPage, IssuedRecord,
    RenewalWindow, RevokeRequest, StateStore,
};

/// What went wrong inside the CA, before it is given the connector's name.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CaError {
    /// The request was refused: policy, bad CSR, foreign certificate.
    #[error("{0}")]
    Refused(String),
    /// The certificate to revoke is already revoked.
    #[error("{0}")]
    AlreadyRevoked(String),
    /// The configuration or the stored state is unusable.
    #[error("{0}")]
    Config(String),
    /// The state store failed; retrying may help.
    #[error("state store: {0}")]
    Store(String),
    /// OpenSSL failed (its messages name functions, never key material).
    #[error("OpenSSL: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
}

impl CaError {
    fn into_connector(self, connector: &str) -> ConnectorError {
        if let Self::AlreadyRevoked(message) = self {
            return ConnectorError::already_revoked(connector, message);
        }
        let class = match self {
            Self::Store(_) => ErrorClass::Transient,
            _ => ErrorClass::Permanent,
        };
        ConnectorError::new(connector, self.to_string(), class)
    }
}

/// The renewal window of a certificate valid from `not_before` to
/// `not_after`: from two thirds to five sixths of its lifetime. A 90-day
/// certificate is renewed between day 60 and day 75, leaving two weeks to
/// notice failures, like ACME clients without ARI.
pub fn synthetic_window(not_before: DateTime<Utc>, not_after: DateTime<Utc>) -> RenewalWindow {
    let lifetime = not_after - not_before;
    RenewalWindow {
        start: not_before + lifetime * 2 / 3,
        end: not_before + lifetime * 5 / 6,
        retry_after: Some(Duration::from_secs(6 * 3600)),
    }
}

/// A running internal CA; see the [module documentation](self).
pub struct InternalCa {
    name: String,
    authority: Authority,
    root_pem: String,
    intermediate_pem: String,
    passphrase: Secret,
    policy: IssuancePolicy,
    crl_settings: CrlSettings,
    backdate: Duration,
    store: Arc<dyn StateStore>,
    ledger: tokio::sync::Mutex<Ledger>,
    revocations: tokio::sync::Mutex<Revocations>,
    /// The current CRL (DER) and when it is due, readable without awaiting.
    published: Mutex<(Arc<Vec<u8>>, DateTime<Utc>)>,
    /// Set when the CRL file could not be written, so the next refresh retries.
    crl_file_stale: AtomicBool,
}

impl fmt::Debug for InternalCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InternalCa")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl InternalCa {
    /// Loads the CA from `state`, or creates or imports it (per
    /// `settings.ca`) and saves it there when the store holds none.
    ///
    /// A wrong passphrase, a bad policy or an import that does not match the
    /// stored CA is a permanent error; a failing store a transient one.
    pub async fn open(
        settings: InternalCaSettings,
        state: Arc<dyn StateStore>,
    ) -> Result<Self, ConnectorError> {
        let name = settings.name.clone();
        Self::open_inner(settings, state)
            .await
            .map_err(|e| e.into_connector(&name))
    }

    async fn open_inner(
        settings: InternalCaSettings,
        store: Arc<dyn StateStore>,
    ) -> Result<Self, CaError> {
        settings.validate()?;
        let now = Utc::now();
        let authority = match store.load(CA_KEY).await.map_err(CaError::Store)? {
            Some(bytes) => {
                let sealed = SealedCa::from_bytes(&bytes)?;
                let authority = sealed.open(&settings.passphrase)?;
                if let CaSource::Import(import) = &settings.ca {
                    check_same_ca(import, &authority).await?;
                }
                authority
            }
            None => {
                let (authority, sealed) = match &settings.ca {
                    CaSource::Generate(generate) => {
                        Authority::generate(generate, &settings.passphrase, now)?
                    }
                    CaSource::Import(import) => {
                        Authority::import(import, &settings.passphrase).await?
                    }
                };
                // Written only if no other daemon sharing the store made
                // one meanwhile; then theirs is the CA.
                if store
                    .save_versioned(CA_KEY, &sealed.to_bytes()?, 0)
                    .await
                    .map_err(CaError::Store)?
                {
                    tracing::info!(connector = %settings.name, "stored a new internal CA");
                    authority
                } else {
                    let bytes = store
                        .load(CA_KEY)
                        .await
                        .map_err(CaError::Store)?
                        .ok_or_else(|| CaError::Store("the stored CA vanished".into()))?;
                    SealedCa::from_bytes(&bytes)?.open(&settings.passphrase)?
                }
            }
        };
        let revocations = match store.load(CRL_KEY).await.map_err(CaError::Store)? {
            Some(bytes) => Revocations::from_bytes(&bytes)?,
            None => {
                let this_update = now - chrono_duration(settings.backdate);
                let next_update = now + chrono_duration(settings.crl.validity);
                let first = Revocations::first(&authority, this_update, next_update)?;
                if store
                    .save_versioned(CRL_KEY, &first.to_bytes()?, 0)
                    .await
                    .map_err(CaError::Store)?
                {
                    first
                } else {
                    let bytes = store
                        .load(CRL_KEY)
                        .await
                        .map_err(CaError::Store)?
                        .ok_or_else(|| CaError::Store("the stored CRL vanished".into()))?;
                    Revocations::from_bytes(&bytes)?
                }
            }
        };
        let ledger = Ledger::open(store.as_ref()).await?;
        let expires = utc_time(authority.intermediate.not_after())?;
        if expires - now < chrono::Duration::days(30) {
            tracing::warn!(
                connector = %settings.name, expires = %expires,
                "the internal CA's intermediate expires within 30 days"
            );
        }
        let published = (Arc::new(revocations.crl_der()?), revocations.due_at());
        let ca = Self {
            root_pem: pem_string(authority.root.to_pem()?)?,
            intermediate_pem: pem_string(authority.intermediate.to_pem()?)?,
            name: settings.name,
            authority,
            passphrase: settings.passphrase,
            policy: settings.policy,
            crl_settings: settings.crl,
            backdate: settings.backdate,
            store,
            ledger: tokio::sync::Mutex::new(ledger),
            revocations: tokio::sync::Mutex::new(revocations),
            published: Mutex::new(published),
            crl_file_stale: AtomicBool::new(true),
        };
        // After a long downtime the stored CRL may be due or even expired.
        ca.refresh(now).await?;
        Ok(ca)
    }

    /// The root certificate, PEM: what relying parties must trust.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// The issuing intermediate certificate, PEM.
    pub fn intermediate_pem(&self) -> &str {
        &self.intermediate_pem
    }

    /// The current CRL, DER-encoded.
    pub fn crl_der(&self) -> Vec<u8> {
        self.published().0.as_ref().clone()
    }

    /// The current CRL, PEM-encoded.
    pub fn crl_pem(&self) -> String {
        crl::crl_pem(&self.published().0)
    }

    /// When [`refresh_crl_if_due`](Self::refresh_crl_if_due) will next sign
    /// a new CRL; the daemon can sleep until then.
    pub fn crl_due_at(&self) -> DateTime<Utc> {
        self.published().1
    }

    fn published(&self) -> (Arc<Vec<u8>>, DateTime<Utc>) {
        // A poisoned lock still holds a complete value: it is only ever
        // replaced whole.
        let guard = self.published.lock().unwrap_or_else(|e| e.into_inner());
        (guard.0.clone(), guard.1)
    }

    /// Signs a new CRL if two thirds of the current one's validity have
    /// passed at `now`, and retries writing the CRL file if that failed
    /// before. Returns whether a new CRL was signed.
    pub async fn refresh_crl_if_due(&self, now: DateTime<Utc>) -> Result<bool, ConnectorError> {
        self.refresh(now)
            .await
            .map_err(|e| e.into_connector(&self.name))
    }

    async fn refresh(&self, now: DateTime<Utc>) -> Result<bool, CaError> {
        let signed = self
            .update_revocations(now, |stored| Ok(now >= stored.due_at()))
            .await?;
        if signed || self.crl_file_stale.load(Ordering::Acquire) {
            self.write_crl_file().await;
        }
        Ok(signed)
    }

    /// Applies `change` to the stored revocations and, when it returns true,
    /// signs the next CRL over them and saves both with one conditional
    /// write ([`StateStore::save_versioned`]). When another daemon sharing
    /// the store wrote in between, the stored state is read again and
    /// `change` applied to it, so no revocation is lost and CRL numbers
    /// only grow. Either way what is stored is what is published here.
    async fn update_revocations<F>(
        &self,
        now: DateTime<Utc>,
        mut change: F,
    ) -> Result<bool, CaError>
    where
        F: FnMut(&mut Revocations) -> Result<bool, CaError>,
    {
        let mut memory = self.revocations.lock().await;
        for attempt in 0..32u64 {
            let (bytes, version) = self
                .store
                .load_versioned(CRL_KEY)
                .await
                .map_err(CaError::Store)?;
            let mut next = match &bytes {
                Some(bytes) => Revocations::from_bytes(bytes)?,
                None => memory.clone(),
            };
            if !change(&mut next)? {
                if next.crl_number != memory.crl_number {
                    // Another daemon signed since: publish what it stored.
                    self.publish(&next)?;
                    *memory = next;
                }
                return Ok(false);
            }
            let this_update = now - chrono_duration(self.backdate);
            let next_update = now + chrono_duration(self.crl_settings.validity);
            next.reissue(&self.authority, this_update, next_update)?;
            if self
                .store
                .save_versioned(CRL_KEY, &next.to_bytes()?, version)
                .await
                .map_err(CaError::Store)?
            {
                self.publish(&next)?;
                tracing::info!(connector = %self.name, crl_number = next.crl_number, "signed a new CRL");
                *memory = next;
                return Ok(true);
            }
            let jitter = u64::from(Utc::now().timestamp_subsec_micros() % 10);
            tokio::time::sleep(Duration::from_millis(2 * attempt + jitter)).await;
        }
        Err(CaError::Store(
            "the revocation list kept changing under other writers; try again".into(),
        ))
    }

    /// Serves `state`'s CRL from memory and marks the CRL file for rewriting.
    fn publish(&self, state: &Revocations) -> Result<(), CaError> {
        let published = (Arc::new(state.crl_der()?), state.due_at());
        *self.published.lock().unwrap_or_else(|e| e.into_inner()) = published;
        self.crl_file_stale.store(true, Ordering::Release);
        Ok(())
    }

    /// Writes the current CRL to the configured file, if any. A failure is
    /// logged and retried on the next refresh rather than failing the
    /// revocation, which is already saved and published in memory.
    async fn write_crl_file(&self) {
        let Some(path) = &self.crl_settings.path else {
            return;
        };
        let der = self.crl_der();
        match crl::write_atomically(path, der).await {
            Ok(()) => self.crl_file_stale.store(false, Ordering::Release),
            Err(e) => {
                self.crl_file_stale.store(true, Ordering::Release);
                tracing::error!(
                    connector = %self.name, path = %path.display(), error = %e,
                    "cannot write the CRL file; relying parties see a stale CRL"
                );
            }
        }
    }

    /// Parses `certificate_der` and checks the intermediate signed it.
    fn own_certificate(&self, certificate_der: &[u8]) -> Result<X509, CaError> {
        let cert = X509::from_der(certificate_der)
            .map_err(|_| CaError::Refused("not a DER X.509 certificate".into()))?;
        let same_issuer = cert
            .issuer_name()
            .try_cmp(self.authority.intermediate.subject_name())
            .is_ok_and(|o| o.is_eq());
        let key = self.authority.intermediate.public_key()?;
        if !same_issuer || !cert.verify(&key).unwrap_or(false) {
            return Err(CaError::Refused(
                "the certificate was not issued by this CA".into(),
            ));
        }
        Ok(cert)
    }

    async fn issue_inner(&self, request: &IssueRequest) -> Result<Issued, CaError> {
        if let Some(profile) = &request.profile {
            return Err(CaError::Refused(format!(
                "unknown profile `{profile}`: the internal CA has none"
            )));
        }
        self.policy
            .check_usage(request.usage)
            .map_err(CaError::Refused)?;
        if request.identifiers.is_empty() {
            return Err(CaError::Refused("the request names no identifier".into()));
        }
        let mut identifiers = Vec::with_capacity(request.identifiers.len());
        for id in &request.identifiers {
            let id = self.policy.check_identifier(id).map_err(CaError::Refused)?;
            if !identifiers.contains(&id) {
                identifiers.push(id);
            }
        }
        let csr = X509Req::from_der(&request.csr_der)
            .map_err(|_| CaError::Refused("the CSR is not a DER PKCS#10 request".into()))?;
        let key = csr
            .public_key()
            .map_err(|_| CaError::Refused("the CSR's public key is unreadable".into()))?;
        if !csr.verify(&key).unwrap_or(false) {
            return Err(CaError::Refused(
                "the CSR's signature does not verify".into(),
            ));
        }
        let key_type = self.policy.check_key(&key).map_err(CaError::Refused)?;
        let validity = self
            .policy
            .validity(request.validity)
            .map_err(CaError::Refused)?;

        let now = Utc::now();
        let ca_until = utc_time(self.authority.intermediate.not_after())?;
        let not_after = (now + chrono_duration(validity)).min(ca_until);
        if not_after <= now {
            return Err(CaError::Config(
                "the intermediate certificate has expired".into(),
            ));
        }
        let leaf = profile::Leaf {
            identifiers: &identifiers,
            key: &key,
            key_type,
            usage: request.usage,
            not_before: now - chrono_duration(self.backdate),
            not_after,
            crl_url: self.crl_settings.distribution_url.as_deref(),
        };

        let mut ledger = self.ledger.lock().await;
        let (cert, serial) = loop {
            let serial = random_serial()?;
            let hex = crl::hex_encode(&serial.to_vec());
            // 126 random bits make a repeat absurd, but a lookup is cheap
            // and a duplicate serial would be a CA-breaking bug.
            let taken = self
                .store
                .load(&ledger::certificate_key(&hex))
                .await
                .map_err(CaError::Store)?;
            if taken.is_none() {
                break (profile::sign(&self.authority, &leaf, &serial)?, hex);
            }
        };
        let cert_der = cert.to_der()?;
        ledger
            .record(self.store.as_ref(), &serial, &cert_der)
            .await?;
        drop(ledger);

        tracing::info!(
            connector = %self.name, serial = %serial, usage = ?request.usage,
            names = identifiers.len(), not_after = %not_after, "issued a certificate"
        );
        let chain = format!("{}{}", pem_string(cert.to_pem()?)?, self.intermediate_pem);
        Ok(Issued::new(chain, Some(serial)))
    }

    async fn revoke_inner(&self, request: &RevokeRequest) -> Result<(), CaError> {
        let cert = self.own_certificate(&request.certificate_der)?;
        let serial = cert.serial_number().to_bn()?;
        if serial.is_negative() {
            return Err(CaError::Refused(
                "the certificate has a negative serial".into(),
            ));
        }
        let hex = crl::hex_encode(&serial.to_vec());
        let now = Utc::now();
        let reason = request.reason.code();
        self.update_revocations(now, |stored| {
            if stored.revoked.contains_key(&hex) {
                return Err(CaError::AlreadyRevoked(format!(
                    "certificate {hex} is already revoked"
                )));
            }
            stored.revoked.insert(
                hex.clone(),
                Revoked {
                    at: now.timestamp(),
                    reason,
                },
            );
            Ok(true)
        })
        .await?;
        tracing::info!(
            connector = %self.name, serial = %hex, reason = ?request.reason,
            "revoked a certificate"
        );
        self.write_crl_file().await;
        Ok(())
    }

    async fn renewal_info_inner(&self, certificate_der: &[u8]) -> Result<RenewalWindow, CaError> {
        let cert = self.own_certificate(certificate_der)?;
        let hex = crl::hex_encode(&cert.serial_number().to_bn()?.to_vec());
        if self.revocations.lock().await.revoked.contains_key(&hex) {
            // A revoked certificate should be replaced now.
            let now = Utc::now();
            return Ok(RenewalWindow {
                start: now,
                end: now,
                retry_after: None,
            });
        }
        Ok(synthetic_window(
            utc_time(cert.not_before())?,
            utc_time(cert.not_after())?,
        ))
    }

    /// A page of issued certificates from `cursor`, the position (count
    /// of serials) the previous page ended at.
    async fn list_issued_inner(&self, cursor: Option<&str>) -> Result<IssuedPage, CaError> {
        let start = match cursor {
            None => 0,
            Some(text) => text.parse::<u64>().map_err(|_| {
                CaError::Config(format!("`{text}` is not a listing cursor of this CA"))
            })?,
        };
        let snapshot = self.ledger.lock().await.snapshot();
        let (serials, more) = ledger::serials_from(self.store.as_ref(), snapshot, start).await?;
        let revoked: HashSet<String> = self
            .revocations
            .lock()
            .await
            .revoked
            .keys()
            .cloned()
            .collect();
        let mut records = Vec::with_capacity(serials.len());
        for serial in &serials {
            let der = self
                .store
                .load(&ledger::certificate_key(serial))
                .await
                .map_err(CaError::Store)?
                .ok_or_else(|| {
                    CaError::Config(format!("issued certificate {serial} is missing"))
                })?;
            records.push(
                IssuedRecord::new(der, revoked.contains(serial)).with_reference(serial.clone()),
            );
        }
        let next = start + serials.len() as u64;
        Ok(IssuedPage::new(records, Some(next.to_string()), more))
    }

    async fn health_inner(&self) -> Result<(), CaError> {
        let bytes = self
            .store
            .load(CA_KEY)
            .await
            .map_err(CaError::Store)?
            .ok_or_else(|| CaError::Config("the state store no longer holds the CA".into()))?;
        let stored = SealedCa::from_bytes(&bytes)?.open(&self.passphrase)?;
        if !stored.key.public_eq(&self.authority.key) {
            return Err(CaError::Config(
                "the state store holds a different CA key than the one in use".into(),
            ));
        }
        let now = Utc::now();
        let not_before = utc_time(self.authority.intermediate.not_before())?;
        let not_after = utc_time(self.authority.intermediate.not_after())?;
        if not_before > now {
            return Err(CaError::Config(format!(
                "the intermediate certificate is not valid before {not_before}"
            )));
        }
        if not_after - now < chrono::Duration::days(1) {
            return Err(CaError::Config(format!(
                "the intermediate certificate expires at {not_after}, within a day"
            )));
        }
        Ok(())
    }
}

/// On reopening with an `Import` source, refuses a store holding another CA
/// rather than silently using either.
async fn check_same_ca(import: &ImportCa, authority: &Authority) -> Result<(), CaError> {
    let same = |pem: &[u8], cert: &X509| {
        X509::from_pem(pem)
            .ok()
            .and_then(|c| c.to_der().ok())
            .zip(cert.to_der().ok())
            .is_some_and(|(a, b)| a == b)
    };
    let root = import.root_certificate.read("root certificate").await?;
    let intermediate = import
        .intermediate_certificate
        .read("intermediate certificate")
        .await?;
    if same(&root, &authority.root) && same(&intermediate, &authority.intermediate) {
        Ok(())
    } else {
        Err(CaError::Config(
            "the state store already holds a different CA than the configured import; \
             point the connector at an empty store to import another CA"
                .into(),
        ))
    }
}

fn pem_string(pem: Vec<u8>) -> Result<String, CaError> {
    String::from_utf8(pem).map_err(|_| CaError::Config("OpenSSL produced non-ASCII PEM".into()))
}

#[async_trait]
impl Connector for InternalCa {
    fn name(&self) -> &str {
        &self.name
    }

    async fn issue(&self, request: &IssueRequest) -> Result<Issued, ConnectorError> {
        self.issue_inner(request).await.map_err(|e| {
            tracing::info!(connector = %self.name, error = %e, "issuance failed");
            e.into_connector(&self.name)
        })
    }

    /// Revokes a certificate the intermediate signed (including any it
    /// signed before being imported) and publishes a new CRL at once.
    /// Revoking twice, or a certificate of another issuer, is permanent.
    async fn revoke(&self, request: &RevokeRequest) -> Result<(), ConnectorError> {
        self.revoke_inner(request)
            .await
            .map_err(|e| e.into_connector(&self.name))
    }

    /// A synthetic window ([`synthetic_window`]); for a revoked certificate,
    /// a window that is open now.
    async fn renewal_info(
        &self,
        certificate_der: &[u8],
    ) -> Result<Option<RenewalWindow>, ConnectorError> {
        self.renewal_info_inner(certificate_der)
            .await
            .map(Some)
            .map_err(|e| e.into_connector(&self.name))
    }

    async fn list_issued(
        &self,
        cursor: Option<&str>,
    ) -> Result<Option<IssuedPage>, ConnectorError> {
        self.list_issued_inner(cursor)
            .await
            .map(Some)
            .map_err(|e| e.into_connector(&self.name))
    }

    /// Reloads and decrypts the stored keys and checks the intermediate is
    /// valid for at least another day.
    async fn health(&self) -> Result<(), ConnectorError> {
        self.health_inner()
            .await
            .map_err(|e| e.into_connector(&self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn secrets_do_not_show_in_debug() {
        let settings = InternalCaSettings::new(
            "ca",
            Secret::new("hunter2"),
            CaSource::Import(ImportCa {
                root_certificate: PemSource::File("/r.pem".into()),
                root_key: None,
                intermediate_certificate: PemSource::File("/i.pem".into()),
                intermediate_key: PemSource::Inline("-----BEGIN PRIVATE KEY-----".into()),
                key_passphrase: Some(Secret::new("swordfish")),
            }),
        );
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("swordfish"), "{shown}");
        assert!(!shown.contains("BEGIN PRIVATE KEY"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn window_covers_two_thirds_to_five_sixths() {
        let start = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).single().unwrap();
        let window = synthetic_window(start, start + chrono::Duration::days(90));
        assert_eq!(window.start, start + chrono::Duration::days(60));
        assert_eq!(window.end, start + chrono::Duration::days(75));
    }

    #[test]
    fn store_failures_are_transient_and_the_rest_permanent() {
        let store = CaError::Store("down".into()).into_connector("ca");
        assert_eq!(store.class, ErrorClass::Transient);
        let refused = CaError::Refused("no".into()).into_connector("ca");
        assert_eq!(refused.class, ErrorClass::Permanent);
    }
}
