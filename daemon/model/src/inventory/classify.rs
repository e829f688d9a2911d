//! What a certificate is for and how its subject was validated: the type
//! (server, client, code signing, CA) and the CA/Browser Forum validation
//! level (DV/OV/IV/EV), derived from a parsed certificate's fields.

use serde::{Deserialize, Serialize};

use super::ParsedCertificate;

const POLICY_EV: &str = "2.23.140.1.1";
const POLICY_DV: &str = "2.23.140.1.2.1";
const POLICY_OV: &str = "2.23.140.1.2.2";
const POLICY_IV: &str = "2.23.140.1.2.3";

/// The validation level a publicly trusted CA asserts in a certificate's
/// certificatePolicies (CA/Browser Forum reserved policy OIDs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidationLevel {
    /// Domain validated (2.23.140.1.2.1).
    Dv,
    /// Organisation validated (2.23.140.1.2.2).
    Ov,
    /// Individual validated (2.23.140.1.2.3).
    Iv,
    /// Extended validation (2.23.140.1.1).
    Ev,
}

/// What a certificate is for, as the inventory groups certificates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateType {
    /// TLS server (EKU serverAuth, or no EKU but DNS names).
    Server,
    /// TLS client only (EKU clientAuth without serverAuth).
    Client,
    /// Code signing (EKU codeSigning).
    CodeSigning,
    /// A certificate authority (basicConstraints CA:TRUE).
    Ca,
    /// Anything else (e-mail protection, time stamping, ...).
    #[default]
    Other,
}

/// The validation level in `cert`'s certificatePolicies, the strongest if
/// several are asserted; `None` without one (private CAs, no extension).
pub fn validation_level(cert: &ParsedCertificate) -> Option<ValidationLevel> {
    let asserts = |oid: &str| cert.certificate_policies.iter().any(|p| p == oid);
    [
        (POLICY_EV, ValidationLevel::Ev),
        (POLICY_OV, ValidationLevel::Ov),
        (POLICY_IV, ValidationLevel::Iv),
        (POLICY_DV, ValidationLevel::Dv),
    ]
    .into_iter()
    .find_map(|(oid, level)| asserts(oid).then_some(level))
}

/// What `cert` is for: a CA whatever its EKU; else code signing, TLS server
/// (serverAuth, or no EKU at all but DNS names), TLS client (clientAuth
/// without serverAuth), or other.
pub fn certificate_type(cert: &ParsedCertificate) -> CertificateType {
    let has = |usage: &str| cert.extended_key_usage.iter().any(|u| u == usage);
    if cert.is_ca {
        CertificateType::Ca
    } else if has("codeSigning") {
        CertificateType::CodeSigning
    } else if has("serverAuth") || (cert.extended_key_usage.is_empty() && !cert.san_dns.is_empty())
    {
        CertificateType::Server
    } else if has("clientAuth") {
        CertificateType::Client
    } else {
        CertificateType::Other
    }
}
