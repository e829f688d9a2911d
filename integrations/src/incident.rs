//! Incidents for the paging channels (PagerDuty, Opsgenie): which events
//! open one, which close them, and the key that ties the two together.
//!
//! A problem opens an incident whose key is `certkeeper:<class>:<subject>`.
//! Expiry and revocation are problems of one certificate, so their subject is
//! its fingerprint; a failed renewal or deployment is a problem of a managed
//! certificate that outlives any one fingerprint, so its subject is the
//! managed name. "Expiring" and "expired" share the class `expiry`, so an
//! expiry updates the open "expiring" incident instead of paging twice.
//!
//! A renewal (`renewal_succeeded`: the new certificate is serving) resolves
//! the expiry and revocation incidents of the certificate it replaced and the
//! renewal and deployment incidents of its managed certificate; an issuance
//! (`certificate_issued`) resolves the renewal incident only, since nothing
//! has been deployed yet. Resolving a key no incident has is harmless at both
//! vendors.

use openssl::sha::sha256;

use crate::{Event, EventKind};

/// Longest key sent as is; PagerDuty accepts 255 characters, Opsgenie 512.
const MAX_KEY_CHARS: usize = 255;

/// What a paging channel does with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncidentAction {
    /// Open (or update) the incident with this key.
    Trigger {
        /// The deduplication key.
        key: String,
    },
    /// Resolve every incident with one of these keys.
    Resolve {
        /// The deduplication keys.
        keys: Vec<String>,
    },
    /// Nothing to page about (a certificate was merely discovered).
    Ignore,
}

/// The incident action for `event`.
pub fn incident_action(event: &Event) -> IncidentAction {
    let fingerprint = event.certificate.as_ref().map(|c| c.fingerprint.as_str());
    let cert_subject = || match fingerprint {
        Some(fp) if !fp.is_empty() => format!("cert:{fp}"),
        _ => format!("event:{}", event.id),
    };
    let trigger = |class: &str, subject: String| IncidentAction::Trigger {
        key: dedup_key(class, &subject),
    };
    match &event.kind {
        EventKind::CertificateDiscovered => IncidentAction::Ignore,
        EventKind::CertificateExpiring { .. } | EventKind::CertificateExpired => {
            trigger("expiry", cert_subject())
        }
        EventKind::CertificateRevoked => trigger("revocation", cert_subject()),
        EventKind::JobFailed { job, .. } => trigger("job", format!("job:{job}")),
        EventKind::RenewalFailed { managed, .. } => {
            trigger("renewal", format!("managed:{managed}"))
        }
        EventKind::DeploymentFailed { managed, .. } => {
            trigger("deployment", format!("managed:{managed}"))
        }
        EventKind::DiscoveryFinding { code, location, .. } => {
            trigger(&format!("finding-{code}"), format!("at:{location}"))
        }
        EventKind::RenewalSucceeded { managed, previous } => {
            let mut keys = Vec::new();
            if let Some(fp) = previous.as_deref().or(fingerprint) {
                keys.push(dedup_key("expiry", &format!("cert:{fp}")));
                keys.push(dedup_key("revocation", &format!("cert:{fp}")));
            }
            keys.push(dedup_key("renewal", &format!("managed:{managed}")));
            keys.push(dedup_key("deployment", &format!("managed:{managed}")));
            IncidentAction::Resolve { keys }
        }
        EventKind::CertificateIssued { managed } => IncidentAction::Resolve {
            keys: vec![dedup_key("renewal", &format!("managed:{managed}"))],
        },
        EventKind::AlertEscalated { .. } => trigger("expiry", cert_subject()),
        EventKind::ExpiryDigest { .. } => trigger("expiry-digest", format!("event:{}", event.id)),
        EventKind::UnitsLow { connector, .. } => trigger("units", format!("connector:{connector}")),
        EventKind::CtLogMisbehaved { log, .. } => trigger("ct-log", format!("log:{log}")),
        EventKind::RequestPendingApproval { .. }
        | EventKind::RequestApproved { .. }
        | EventKind::RequestRejected { .. }
        | EventKind::ReportReady { .. } => IncidentAction::Ignore,
    }
}

/// `certkeeper:<class>:<subject>`, or its SHA-256 when too long for the vendors.
pub fn dedup_key(class: &str, subject: &str) -> String {
    let key = format!("certkeeper:{class}:{subject}");
    if key.chars().count() <= MAX_KEY_CHARS {
        key
    } else {
        format!(
            "certkeeper:{class}:sha256:{}",
            hex::encode(sha256(subject.as_bytes()))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CertificateSummary;
    use chrono::Utc;

    fn event(kind: EventKind, fp: &str) -> Event {
        Event {
            id: "e".into(),
            at: Utc::now(),
            kind,
            certificate: Some(CertificateSummary {
                fingerprint: fp.into(),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_renewal_resolves_the_expiry_of_the_certificate_it_replaced() {
        let expiring = event(
            EventKind::CertificateExpiring {
                threshold_days: 7,
                days_left: 6,
            },
            "aa",
        );
        let IncidentAction::Trigger { key } = incident_action(&expiring) else {
            panic!("expiring must trigger");
        };
        let renewed = event(
            EventKind::RenewalSucceeded {
                managed: "www".into(),
                previous: Some("aa".into()),
            },
            "bb",
        );
        let IncidentAction::Resolve { keys } = incident_action(&renewed) else {
            panic!("renewal must resolve");
        };
        assert!(keys.contains(&key));
    }

    #[test]
    fn expiring_and_expired_share_one_incident() {
        let a = incident_action(&event(
            EventKind::CertificateExpiring {
                threshold_days: 7,
                days_left: 1,
            },
            "aa",
        ));
        let b = incident_action(&event(EventKind::CertificateExpired, "aa"));
        assert_eq!(a, b);
    }

    #[test]
    fn long_keys_are_hashed_to_fit() {
        let key = dedup_key("job", &"x".repeat(400));
        assert!(key.len() <= MAX_KEY_CHARS);
    }
}
