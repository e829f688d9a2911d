//! The inventory model: certificates keyed by SHA-256 fingerprint, where each
//! was seen, who owns it, and where it stands in its lifecycle.
//!
//! [`parse`] turns PEM/DER into [`parse::ParsedCertificate`]; the store
//! (`certkeeper_store::inventory`) merges those by fingerprint and keeps every
//! [`Sighting`]; `certkeeper_store::import` is the one entry point for files,
//! used by the CLI, the API and `import` jobs alike.

pub mod classify;
pub mod parse;

use serde::{Deserialize, Serialize};

pub use classify::{CertificateType, ValidationLevel};
pub use parse::ParsedCertificate;

/// Where a certificate stands. `valid`, `expiring` and `expired` follow the
/// clock (the refresh job moves them); the others are set by workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Requested, not yet decided.
    Requested,
    /// Waiting for an approver.
    Pending,
    /// Approved, not yet issued.
    Approved,
    /// Refused by an approver or a rule.
    Rejected,
    /// In force, more than `expiring_days` left.
    Valid,
    /// In force, `expiring_days` or fewer left.
    Expiring,
    /// Past `not_after`.
    Expired,
    /// Revoked by its CA.
    Revoked,
    /// Taken out of management by an administrator.
    Deactivated,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 9] = [
        Status::Requested,
        Status::Pending,
        Status::Approved,
        Status::Rejected,
        Status::Valid,
        Status::Expiring,
        Status::Expired,
        Status::Revoked,
        Status::Deactivated,
    ];

    /// The lowercase name used in the store, the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Requested => "requested",
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Valid => "valid",
            Status::Expiring => "expiring",
            Status::Expired => "expired",
            Status::Revoked => "revoked",
            Status::Deactivated => "deactivated",
        }
    }

    /// The status an in-force certificate has at `now`.
    pub fn by_time(not_after: i64, now: i64, expiring_days: u32) -> Status {
        if not_after < now {
            Status::Expired
        } else if not_after <= now + i64::from(expiring_days) * 86_400 {
            Status::Expiring
        } else {
            Status::Valid
        }
    }
}

impl std::str::FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown status `{s}`; expected one of {}", all.join(", "))
            })
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A certificate as the inventory holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRecord {
    /// The certificate's own fields.
    #[serde(flatten)]
    pub cert: ParsedCertificate,
    /// Lifecycle status.
    pub status: Status,
    /// What it is for (server, client, code signing, CA, other).
    #[serde(default)]
    pub usage: CertificateType,
    /// DV/OV/IV/EV, where a public CA asserted one.
    #[serde(default)]
    pub validation_level: Option<ValidationLevel>,
    /// Owning organisation unit.
    pub org_unit: Option<String>,
    /// People or aliases responsible for it.
    pub contacts: Vec<String>,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// Fingerprint of the certificate this one replaced.
    pub replaces: Option<String>,
    /// Fingerprint of the certificate that replaced this one.
    pub replaced_by: Option<String>,
    /// When the inventory first learnt of it (Unix seconds).
    pub first_seen: i64,
    /// When it was last seen anywhere (Unix seconds).
    pub last_seen: i64,
    /// Who retired it, when and why, while its status is `deactivated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivated: Option<Deactivation>,
}

/// Who retired a certificate, when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deactivation {
    /// When (Unix seconds).
    pub at: i64,
    /// The account or token that did it.
    pub by: String,
    /// Why, as they said.
    #[serde(default)]
    pub reason: Option<String>,
}

impl CertificateRecord {
    /// A newly discovered certificate: status by the clock, no owner yet.
    pub fn discovered(cert: ParsedCertificate, now: i64, expiring_days: u32) -> Self {
        Self {
            status: Status::by_time(cert.not_after, now, expiring_days),
            usage: classify::certificate_type(&cert),
            validation_level: classify::validation_level(&cert),
            cert,
            org_unit: None,
            contacts: Vec::new(),
            tags: Vec::new(),
            replaces: None,
            replaced_by: None,
            first_seen: now,
            last_seen: now,
            deactivated: None,
        }
    }

    /// The certificate as events and alerts carry it, seen at `seen_at`.
    pub fn summary(&self, seen_at: Vec<String>) -> certkeeper_integrations::CertificateSummary {
        certkeeper_integrations::CertificateSummary {
            fingerprint: self.cert.fingerprint.clone(),
            subject: self.cert.subject.clone(),
            sans: self
                .cert
                .san_dns
                .iter()
                .chain(&self.cert.san_ip)
                .chain(&self.cert.san_email)
                .chain(&self.cert.san_uri)
                .cloned()
                .collect(),
            issuer: self.cert.issuer.clone(),
            serial: self.cert.serial.clone(),
            not_after: chrono::DateTime::from_timestamp(self.cert.not_after, 0),
            seen_at,
            org_unit: self.org_unit.clone(),
            contacts: self.contacts.clone(),
            tags: self.tags.clone(),
        }
    }

    /// Lowercase text that `q=` searches: names, issuer, serial, fingerprint.
    pub fn search_text(&self) -> String {
        let c = &self.cert;
        let mut parts = vec![
            c.subject.as_str(),
            c.issuer.as_str(),
            c.serial.as_str(),
            c.fingerprint.as_str(),
        ];
        parts.extend(c.san_dns.iter().map(String::as_str));
        parts.extend(c.san_ip.iter().map(String::as_str));
        parts.extend(c.san_email.iter().map(String::as_str));
        parts.extend(c.san_uri.iter().map(String::as_str));
        parts.join("\n").to_lowercase()
    }
}

/// How a sighting was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SightingKind {
    /// Presented by a TLS endpoint (`ip:port` and SNI).
    Endpoint,
    /// Found in a file on disk.
    File,
    /// Issued through, or listed by, a connector.
    Connector,
    /// Imported by hand (CLI or API upload).
    Import,
    /// Logged in a Certificate Transparency log Certkeeper follows
    /// (location `ct:LOG`): issued by a public CA, not necessarily deployed.
    Ct,
}

impl SightingKind {
    /// The lowercase name used in the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            SightingKind::Endpoint => "endpoint",
            SightingKind::File => "file",
            SightingKind::Connector => "connector",
            SightingKind::Import => "import",
            SightingKind::Ct => "ct",
        }
    }
}

/// Where and when a certificate was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sighting {
    /// The certificate seen.
    pub fingerprint: String,
    /// How it was seen.
    pub kind: SightingKind,
    /// `ip:port (sni)`, a file path, a connector name, or an upload label.
    pub location: String,
    /// First time seen there (Unix seconds).
    pub first_seen: i64,
    /// Last time seen there (Unix seconds).
    pub last_seen: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_by_time() {
        let now = 1_000_000_000;
        assert_eq!(Status::by_time(now - 1, now, 30), Status::Expired);
        assert_eq!(
            Status::by_time(now + 86_400 * 30, now, 30),
            Status::Expiring
        );
        assert_eq!(Status::by_time(now + 86_400 * 31, now, 30), Status::Valid);
    }

    #[test]
    fn status_names_round_trip() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!(
            "bogus"
                .parse::<Status>()
                .unwrap_err()
                .contains("expected one of")
        );
    }
}
