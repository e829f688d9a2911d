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
    /// SHA-256 fingerprint of the certificate this one replaces, if a renewal.
    pub replaces: Option<String>,
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

/// A request to revoke a certificate.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RevokeRequest {
    /// The DER-encoded certificate to revoke.
    pub certificate_der: Vec<u8>,
    /// Why it is revoked.
    pub reason: RevocationReason,
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

/// Whether retrying a failed operation can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Retrying the same request will fail the same way (bad CSR, policy refusal).
    Permanent,
    /// A network or server hiccup; retry with backoff.
    Transient,
    /// The CA asked to wait this long (rate limit, `Retry-After`).
    RetryAfter(Duration),
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
}

impl ConnectorError {
    /// Whether the scheduler may retry the operation.
    pub fn is_retryable(&self) -> bool {
        !matches!(self.class, ErrorClass::Permanent)
    }
}

/// A way to obtain and revoke certificates.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The connector's configured name.
    fn name(&self) -> &str;

    /// Issues a certificate for the request.
    async fn issue(&self, request: &IssueRequest) -> Result<Issued, ConnectorError>;

    /// Revokes a certificate.
    async fn revoke(&self, request: &RevokeRequest) -> Result<(), ConnectorError>;

    /// The CA's suggested renewal window for a certificate, where it offers one.
    async fn renewal_info(
        &self,
        _certificate_der: &[u8],
    ) -> Result<Option<RenewalWindow>, ConnectorError> {
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
        };
        assert!(!err(ErrorClass::Permanent).is_retryable());
        assert!(err(ErrorClass::Transient).is_retryable());
        assert!(err(ErrorClass::RetryAfter(Duration::from_secs(5))).is_retryable());
    }
}
