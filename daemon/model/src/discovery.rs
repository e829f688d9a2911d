//! What discovery finds: where a certificate was seen (network endpoint or
//! file), the chain found there, and the findings of the installation check.
//!
//! These types are shared by the network probe, the file reader, the policy
//! checks, the `certkeeper scan` output and the inventory. Field and code
//! names are the JSON the scan prints, so they are part of the interface.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::inventory::ParsedCertificate;

/// STARTTLS protocols: a plain-text greeting, then an upgrade to TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Starttls {
    /// SMTP `STARTTLS` (RFC 3207), ports 25 and 587.
    Smtp,
    /// IMAP `STARTTLS` (RFC 3501), port 143.
    Imap,
    /// POP3 `STLS` (RFC 2595), port 110.
    Pop3,
    /// LDAP StartTLS extended operation (RFC 4511), port 389.
    Ldap,
    /// FTP `AUTH TLS` (RFC 4217), port 21.
    Ftp,
    /// PostgreSQL `SSLRequest`, port 5432.
    Postgres,
}

impl Starttls {
    /// The protocol spoken on a well-known port before TLS, if any.
    pub fn for_port(port: u16) -> Option<Starttls> {
        match port {
            25 | 587 => Some(Starttls::Smtp),
            143 => Some(Starttls::Imap),
            110 => Some(Starttls::Pop3),
            389 => Some(Starttls::Ldap),
            21 => Some(Starttls::Ftp),
            5432 => Some(Starttls::Postgres),
            _ => None,
        }
    }

    /// Parses the names used in config and on the command line.
    pub fn parse(name: &str) -> Option<Starttls> {
        match name {
            "smtp" => Some(Starttls::Smtp),
            "imap" => Some(Starttls::Imap),
            "pop3" => Some(Starttls::Pop3),
            "ldap" => Some(Starttls::Ldap),
            "ftp" => Some(Starttls::Ftp),
            "postgres" | "postgresql" => Some(Starttls::Postgres),
            _ => None,
        }
    }
}

/// Formats of certificate files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// Base64 between `-----BEGIN ...-----` lines; may hold several.
    Pem,
    /// One binary certificate.
    Der,
    /// A PKCS#7 (CMS) certificate bundle, PEM or DER (`.p7b`, `.p7c`).
    Pkcs7,
    /// A PKCS#12 key store (`.p12`, `.pfx`).
    Pkcs12,
    /// A Java key store.
    Jks,
}

/// The finding codes of the installation check. Stable: alerts, reports and
/// users' scripts match on them. New codes are added at the end, since
/// findings are sorted by code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingCode {
    /// `not_after` has passed.
    Expired,
    /// `not_before` is in the future.
    NotYetValid,
    /// Expires within the policy's threshold (`days` says how soon).
    Expiring,
    /// RSA/DSA key under the policy minimum (2048 by default), EC under 256.
    WeakKey,
    /// Signed with SHA-1 or MD5.
    WeakSignature,
    /// The leaf is self-signed.
    SelfSigned,
    /// The server did not send an intermediate the chain needs, and that
    /// intermediate is known (configured, or fetched from the leaf's AIA
    /// caIssuers URL): with it, the chain verifies.
    IncompleteChain,
    /// Does not chain to the system roots or the configured private roots,
    /// including a leaf whose issuer is in no trust store, was not sent and
    /// is not a known intermediate.
    Untrusted,
    /// The SNI name (or scanned name) is not covered by the leaf's SANs.
    HostnameMismatch,
    /// Issued by a CA outside the configured approved list.
    UnapprovedIssuer,
    /// The endpoint negotiated TLS 1.1 or older (or SSL).
    LegacyProtocol,
    /// Validity period longer than the policy maximum (398 days by default).
    ValidityTooLong,
    /// A managed name answers plain HTTP on port 80 but serves no TLS.
    Unprotected,
    /// The leaf names a wildcard (`*.example.com`) and the policy allows
    /// none.
    Wildcard,
    /// The server sends its chain out of order (a certificate not followed
    /// by its issuer) or with certificates that are not on the leaf's path.
    ChainOrder,
    /// The leaf's CA has revoked it (its CRL or its OCSP responder says so).
    Revoked,
    /// A configured CA account holds it (CA import) and it is in force, but
    /// no network or file discovery has seen it deployed.
    IssuedNotDeployed,
    /// Seen deployed, issued by a CA that a configured account uses, but
    /// held by none of the configured accounts (bought or issued outside
    /// the managed account).
    UnmanagedAccount,
    /// Logged in Certificate Transparency for a watched domain, not issued
    /// by Certkeeper and not from an approved issuer: bought or issued
    /// outside the approved process, or mis-issued.
    ShadowIssuance,
    /// Logged in Certificate Transparency for a watched domain by an
    /// approved CA, but not issued by Certkeeper and not in the inventory
    /// otherwise (no CA account holds it, nobody has seen it deployed).
    UnknownIssuance,
}

/// One finding on a sighting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What is wrong.
    pub code: FindingCode,
    /// Days left (`expiring`), or days since expiry (`expired`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days: Option<i64>,
    /// A short human explanation (e.g. "RSA 1024 bits", "TLSv1").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Finding {
    /// A finding with neither days nor detail.
    pub fn new(code: FindingCode) -> Self {
        Self {
            code,
            days: None,
            detail: None,
        }
    }
}

/// Where a chain was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Origin {
    /// A TLS endpoint.
    Network {
        /// Address connected to.
        ip: IpAddr,
        /// Port connected to.
        port: u16,
        /// Server name sent in the handshake, if any.
        sni: Option<String>,
        /// STARTTLS protocol used before the handshake, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        starttls: Option<Starttls>,
        /// Negotiated protocol, as OpenSSL names it (`TLSv1.3`).
        tls_version: Option<String>,
        /// Negotiated cipher suite, as OpenSSL names it.
        cipher: Option<String>,
    },
    /// A file on disk.
    File {
        /// The file's path.
        path: String,
        /// Its format.
        format: FileFormat,
        /// Whether a private key matching the leaf is in the file or beside it.
        key_beside: bool,
    },
}

/// One place where certificates were found (or an endpoint that answered
/// but could not be read), with the installation check's findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRecord {
    /// Where.
    pub origin: Origin,
    /// The chain found there, leaf first (empty when `error` is set).
    pub chain: Vec<ParsedCertificate>,
    /// What the installation check found.
    pub findings: Vec<Finding>,
    /// Why the place could not be read (an open port that never finished
    /// the handshake, a malformed file).
    pub error: Option<String>,
}
