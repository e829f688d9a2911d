//! Connector plugins: how Certkeeper obtains and revokes certificates.
//!
//! A connector is anything that can turn a certificate signing request into a
//! certificate: an ACME CA (Let's Encrypt, an internal step-ca, a commercial CA's
//! ACME endpoint), an internal CA run by Certkeeper itself, or a vendor REST API.
//! The daemon's renewal scheduler talks to every connector through the one
//! [`Connector`] trait, so it treats every certificate alike whatever its CA.
//!
//! Arguments travel in request structs ([`IssueRequest`], [`RevokeRequest`]) so
//! that adding a field does not break every implementation. Errors say whether
//! retrying can help ([`ErrorClass`]), which the scheduler uses to back off.
//!
//! This crate never depends on the daemon; implementations live in submodules
//! added by later work (`acme`, `internal_ca`).

pub mod acme;
pub mod aws_pca;
pub mod command;
pub mod conformance;
pub mod csr;
pub mod digicert;
pub mod internal_ca;
pub mod rest;
pub mod sectigo;
pub mod vault;

pub use certkeeper_base::{AddressGuard, AddressRefused, ErrorClass, Secret};

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// An identifier a certificate is requested for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Identifier {
    /// A DNS name, possibly a wildcard (`*.example.com`).
    Dns(String),
    /// An IPv4 or IPv6 address.
    Ip(std::net::IpAddr),
    /// An e-mail address (S/MIME).
    Email(String),
}

/// What a certificate will be used for; connectors map it to a CA profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Usage {
    /// TLS server authentication.
    Server,
    /// TLS client authentication.
    Client,
    /// Code signing.
    CodeSigning,
}

/// A request to issue (or re-issue) a certificate.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IssueRequest {
    /// The DER-encoded PKCS#10 certificate signing request.
    pub csr_der: Vec<u8>,
    /// Identifiers the certificate must cover (also present in the CSR).
    pub identifiers: Vec<Identifier>,
    /// Requested validity; the CA may grant less.
    pub validity: Option<Duration>,
    /// A CA-specific profile name (ACME profiles, internal CA templates).
    pub profile: Option<String>,
    /// What the certificate is for.
    pub usage: Usage,
    /// The DER-encoded certificate this one replaces, if a renewal (ACME
    /// sends its RFC 9773 identifier as the order's `replaces`).
    pub replaces: Option<Vec<u8>>,
    /// The caller's name for this issuance (the daemon passes the renewal
    /// operation's id), the same on every retry of it. A connector that
    /// places orders at the CA keeps the order under this key until the
    /// certificate is downloaded, so a retry after a crash or a timeout
    /// continues that order instead of placing a second one; retries must
    /// carry the same CSR (an order finalized with another key is dropped).
    /// `None` (the default): every call starts afresh.
    pub idempotency_key: Option<String>,
}

impl IssueRequest {
    /// A request for `identifiers` from `csr_der`, with defaults for the rest.
    pub fn new(csr_der: Vec<u8>, identifiers: Vec<Identifier>) -> Self {
        Self {
            csr_der,
            identifiers,
            validity: None,
            profile: None,
            usage: Usage::Server,
            replaces: None,
            idempotency_key: None,
        }
    }
}

/// A certificate a connector issued.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Issued {
    /// The leaf certificate followed by its chain, PEM-encoded.
    pub chain_pem: String,
    /// The CA's own reference to it (ACME certificate URL, internal serial).
    pub ca_reference: Option<String>,
}

impl Issued {
    /// A certificate with its chain and the CA's reference.
    pub fn new(chain_pem: String, ca_reference: Option<String>) -> Self {
        Self {
            chain_pem,
            ca_reference,
        }
    }
}

/// RFC 5280 revocation reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationReason {
    /// No reason given (code 0).
    Unspecified,
    /// The private key was compromised (code 1).
    KeyCompromise,
    /// The subject's affiliation changed (code 3).
    AffiliationChanged,
    /// The certificate was replaced (code 4).
    Superseded,
    /// The certificate is no longer needed (code 5).
    CessationOfOperation,
}

impl RevocationReason {
    /// The reason code RFC 5280 section 5.3.1 assigns.
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
        }
    }
}

impl std::str::FromStr for RevocationReason {
    type Err = String;

    /// Parses the RFC 5280 name (`keyCompromise`) or its snake_case form.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace(['_', '-'], "").as_str() {
            "unspecified" => Ok(Self::Unspecified),
            "keycompromise" => Ok(Self::KeyCompromise),
            "affiliationchanged" => Ok(Self::AffiliationChanged),
            "superseded" => Ok(Self::Superseded),
            "cessationofoperation" => Ok(Self::CessationOfOperation),
            _ => Err(format!(
                "unknown revocation reason `{s}` (expected unspecified, keyCompromise, \
                 affiliationChanged, superseded or cessationOfOperation)"
            )),
        }
    }
}

/// A request to revoke a certificate.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RevokeRequest {
    /// The DER-encoded certificate to revoke.
    pub certificate_der: Vec<u8>,
    /// Why it is revoked.
    pub reason: RevocationReason,
}

impl RevokeRequest {
    /// A request to revoke `certificate_der` for `reason`.
    pub fn new(certificate_der: Vec<u8>, reason: RevocationReason) -> Self {
        Self {
            certificate_der,
            reason,
        }
    }
}

/// A certificate the CA says it issued (for importing a CA's certificates).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IssuedRecord {
    /// The DER-encoded certificate.
    pub certificate_der: Vec<u8>,
    /// Whether the CA has revoked it (as of the listing).
    pub revoked: bool,
    /// The CA's own reference to it (order id, serial), where it has one.
    pub ca_reference: Option<String>,
    /// Who requested it at the CA (a user, an e-mail address), where the
    /// CA records it: the inventory's owner contact for it.
    pub requester: Option<String>,
    /// The organisation or division it was ordered under at the CA.
    pub organization: Option<String>,
}

impl IssuedRecord {
    /// A record of `certificate_der`.
    pub fn new(certificate_der: Vec<u8>, revoked: bool) -> Self {
        Self {
            certificate_der,
            revoked,
            ca_reference: None,
            requester: None,
            organization: None,
        }
    }

    /// The same record with the CA's reference.
    pub fn with_reference(mut self, reference: impl Into<String>) -> Self {
        self.ca_reference = Some(reference.into());
        self
    }

    /// The same record with the owner fields the CA holds.
    pub fn with_owner(mut self, requester: Option<String>, organization: Option<String>) -> Self {
        self.requester = requester;
        self.organization = organization;
        self
    }
}

/// One page of the certificates a CA account holds.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct IssuedPage {
    /// The certificates on this page.
    pub records: Vec<IssuedRecord>,
    /// Where the next call continues: pass it back as the cursor. On the
    /// last page (`more` false) it marks the end of the listing, so a later
    /// run that starts from it receives only what the CA issued since.
    pub cursor: Option<String>,
    /// Whether more pages follow now.
    pub more: bool,
}

impl IssuedPage {
    /// A page of `records` continuing at `cursor`.
    pub fn new(records: Vec<IssuedRecord>, cursor: Option<String>, more: bool) -> Self {
        Self {
            records,
            cursor,
            more,
        }
    }
}

/// Durable storage for a connector's own state: an ACME account, a CA's keys
/// and revocation list. The daemon backs it with its store and encrypts the
/// values at rest; keys are short names local to one connector.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// The value saved under `key`, if any.
    async fn load(&self, key: &str) -> Result<Option<Vec<u8>>, String>;
    /// Saves `value` under `key`, durably, replacing any earlier value.
    async fn save(&self, key: &str, value: &[u8]) -> Result<(), String>;
    /// Forgets the value under `key` (nothing to do when there is none).
    /// The default saves an empty value, which connectors read as absent;
    /// stores that can delete should override it.
    async fn remove(&self, key: &str) -> Result<(), String> {
        self.save(key, &[]).await
    }
    /// The value under `key` with its version: a number that changes with
    /// every write (0 when there is no value). Pass it to
    /// [`save_versioned`](Self::save_versioned) to write only if nobody else
    /// wrote in between.
    ///
    /// The default derives the version from the value's digest and, with
    /// the default `save_versioned`, is only right for a store that one
    /// process uses and whose caller serialises its writes; a store that
    /// several daemons share must override both with one conditional write.
    async fn load_versioned(&self, key: &str) -> Result<(Option<Vec<u8>>, u64), String> {
        let value = self.load(key).await?;
        let version = value.as_deref().map_or(0, digest_version);
        Ok((value, version))
    }
    /// Saves `value` under `key` if its version is still `expected` (0: no
    /// value yet); `false`, writing nothing, when another writer got in
    /// first. Read again and redo.
    async fn save_versioned(&self, key: &str, value: &[u8], expected: u64) -> Result<bool, String> {
        let (_, version) = self.load_versioned(key).await?;
        if version != expected {
            return Ok(false);
        }
        self.save(key, value).await?;
        Ok(true)
    }
}

/// Secrets shorter than this are not blanked out of error messages: no
/// real credential is that short, and blanking every `t` of a message
/// (a test token `t`) would leave nothing readable.
pub(crate) const SCRUB_MIN_CHARS: usize = 6;

/// A version number for a stored value, from its content (never 0).
fn digest_version(value: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish().max(1)
}

/// A [`StateStore`] in memory, for tests and one-shot CLI use.
#[derive(Debug, Default)]
pub struct MemoryState {
    values: std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>,
}

#[async_trait]
impl StateStore for MemoryState {
    async fn load(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let values = self.values.lock().map_err(|_| "state lock poisoned")?;
        Ok(values.get(key).cloned())
    }

    async fn save(&self, key: &str, value: &[u8]) -> Result<(), String> {
        let mut values = self.values.lock().map_err(|_| "state lock poisoned")?;
        values.insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    async fn remove(&self, key: &str) -> Result<(), String> {
        let mut values = self.values.lock().map_err(|_| "state lock poisoned")?;
        values.remove(key);
        Ok(())
    }

    async fn save_versioned(&self, key: &str, value: &[u8], expected: u64) -> Result<bool, String> {
        // Checked and written under one lock: atomic for every caller.
        let mut values = self.values.lock().map_err(|_| "state lock poisoned")?;
        if values.get(key).map_or(0, |v| digest_version(v)) != expected {
            return Ok(false);
        }
        values.insert(key.to_owned(), value.to_vec());
        Ok(true)
    }
}

/// A window in which the CA suggests renewing (ACME Renewal Information, RFC 9773).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalWindow {
    /// Earliest suggested renewal time.
    pub start: DateTime<Utc>,
    /// Latest suggested renewal time.
    pub end: DateTime<Utc>,
    /// When to ask again.
    pub retry_after: Option<Duration>,
}

/// An error from a connector.
#[derive(Debug, thiserror::Error)]
#[error("connector {connector}: {message}")]
pub struct ConnectorError {
    /// Name of the connector that failed.
    pub connector: String,
    /// What went wrong, for operators; never holds secrets.
    pub message: String,
    /// Whether retrying can help.
    pub class: ErrorClass,
    /// The CA refused a revocation because the certificate is already
    /// revoked: a revocation that happened before (a run killed after it)
    /// counts as done.
    pub already_revoked: bool,
}

impl ConnectorError {
    /// The permanent "already revoked" answer to a revocation.
    pub fn already_revoked(connector: &str, message: impl Into<String>) -> Self {
        Self {
            already_revoked: true,
            ..Self::permanent(connector, message)
        }
    }

    /// A permanent error of `connector`.
    pub fn permanent(connector: &str, message: impl Into<String>) -> Self {
        Self::new(connector, message, ErrorClass::Permanent)
    }

    /// A transient error of `connector`.
    pub fn transient(connector: &str, message: impl Into<String>) -> Self {
        Self::new(connector, message, ErrorClass::Transient)
    }

    /// An error of `connector` with its class.
    pub fn new(connector: &str, message: impl Into<String>, class: ErrorClass) -> Self {
        Self {
            connector: connector.to_owned(),
            message: message.into(),
            class,
            already_revoked: false,
        }
    }

    /// Whether the scheduler may retry the operation.
    pub fn is_retryable(&self) -> bool {
        self.class.is_retryable()
    }
}

/// A way to obtain and revoke certificates.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The connector's configured name.
    fn name(&self) -> &str;

    /// Issues a certificate for the request.
    ///
    /// With an [`IssueRequest::idempotency_key`], an order-then-poll CA
    /// keeps what it needs to resume the order under that key, and a
    /// later call with the same key (a retry, another daemon after a crash)
    /// returns the same certificate instead of ordering again, until the
    /// caller says with [`recorded`](Self::recorded) that it has saved it.
    async fn issue(&self, request: &IssueRequest) -> Result<Issued, ConnectorError>;

    /// The caller has durably recorded what [`issue`](Self::issue) returned
    /// for `idempotency_key`: the connector may forget the order it kept
    /// for it. Until then a crash between the CA's answer and the caller's
    /// record costs no second certificate. Nothing to do by default.
    async fn recorded(&self, _idempotency_key: &str) {}

    /// Revokes a certificate.
    async fn revoke(&self, request: &RevokeRequest) -> Result<(), ConnectorError>;

    /// The CA's suggested renewal window for a certificate, where it offers one.
    async fn renewal_info(
        &self,
        _certificate_der: &[u8],
    ) -> Result<Option<RenewalWindow>, ConnectorError> {
        Ok(None)
    }

    /// The certificates the CA account holds, a page at a time, where the
    /// CA can list them (`None` when it cannot, as ACME). `cursor` is `None`
    /// for the first page and otherwise a page's [`IssuedPage::cursor`]:
    /// CA import saves the last one and later starts from it, so each run
    /// reads only what is new (incremental).
    async fn list_issued(
        &self,
        _cursor: Option<&str>,
    ) -> Result<Option<IssuedPage>, ConnectorError> {
        Ok(None)
    }

    /// Checks that the CA is reachable and the account usable.
    async fn health(&self) -> Result<(), ConnectorError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_reason_codes_follow_rfc5280() {
        assert_eq!(RevocationReason::Unspecified.code(), 0);
        assert_eq!(RevocationReason::KeyCompromise.code(), 1);
        assert_eq!(RevocationReason::Superseded.code(), 4);
    }

    #[test]
    fn only_permanent_errors_are_final() {
        let err = |class| ConnectorError {
            connector: "x".into(),
            message: "m".into(),
            class,
            already_revoked: false,
        };
        assert!(!err(ErrorClass::Permanent).is_retryable());
        assert!(err(ErrorClass::Transient).is_retryable());
        assert!(err(ErrorClass::RetryAfter(Duration::from_secs(5))).is_retryable());
    }
}
