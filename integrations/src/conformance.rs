//! The events every notifier is tested with: one of each [`EventKind`],
//! about a fully described certificate, so a channel's shape check sees every
//! field it may render.
//!
//! The conformance harness itself (a local HTTP receiver and the checks all
//! channels pass) lives in `tests/support/`, since the receiver is built on
//! hyper, a dev-dependency; these samples are here so the daemon's tests can
//! use them too.

use chrono::{DateTime, Duration, Utc};

use crate::{CertificateSummary, Event, EventKind};

/// Fingerprint of the sample certificate.
pub const SAMPLE_FINGERPRINT: &str =
    "5f1c3a9e0b7d24c68e13f0a2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1";
/// Fingerprint of the certificate the sample renewal replaced.
pub const SAMPLE_PREVIOUS_FINGERPRINT: &str =
    "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";

fn at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default()
}

/// The sample certificate: `www.example.com`, seen on two hosts, owned by Web.
pub fn sample_certificate() -> CertificateSummary {
    CertificateSummary {
        fingerprint: SAMPLE_FINGERPRINT.into(),
        subject: "CN=www.example.com,O=Example Corp,C=DE".into(),
        sans: vec!["www.example.com".into(), "example.com".into()],
        issuer: "CN=Example Issuing CA 1,O=Example Corp".into(),
        serial: "04d2a1b3c4".into(),
        not_after: Some(at() + Duration::days(5)),
        seen_at: vec![
            "10.0.0.5:443 (www.example.com)".into(),
            "/etc/nginx/tls/www.pem".into(),
        ],
        org_unit: Some("Web Platform".into()),
        contacts: vec!["web-oncall@example.com".into()],
        tags: vec!["pci".into()],
    }
}

/// One event of each kind, ids `sample-<kind>`.
pub fn sample_events() -> Vec<Event> {
    let with_cert = |kind: EventKind| {
        Some(sample_certificate()).filter(|_| {
            !matches!(
                kind,
                EventKind::JobFailed { .. }
                    | EventKind::UnitsLow { .. }
                    | EventKind::CtLogMisbehaved { .. }
                    | EventKind::ReportReady { .. }
                    | EventKind::RequestPendingApproval { .. }
                    | EventKind::RequestRejected { .. }
            )
        })
    };
    let kinds = vec![
        EventKind::CertificateDiscovered,
        EventKind::CertificateExpiring {
            threshold_days: 7,
            days_left: 5,
        },
        EventKind::CertificateExpired,
        EventKind::CertificateRevoked,
        EventKind::JobFailed {
            job: "network-scan".into(),
            error: "connection refused\nby 10.0.0.0/24 <scanner> & co".into(),
        },
        EventKind::CertificateIssued {
            managed: "www".into(),
        },
        EventKind::RenewalSucceeded {
            managed: "www".into(),
            previous: Some(SAMPLE_PREVIOUS_FINGERPRINT.into()),
        },
        EventKind::RenewalFailed {
            managed: "www".into(),
            error: "ACME order failed: rateLimited".into(),
            permanent: false,
            next_attempt: at() + Duration::hours(1),
        },
        EventKind::DiscoveryFinding {
            code: "weak_key".into(),
            location: "10.0.0.5:443 (www.example.com)".into(),
            detail: Some("RSA 1024-bit key".into()),
        },
        EventKind::DeploymentFailed {
            managed: "www".into(),
            target: "nginx-web-1".into(),
            error: "reload failed: exit status 1".into(),
        },
        EventKind::RequestPendingApproval {
            request: "req-42".into(),
            requester: "alice@example.com".into(),
            identifiers: vec!["shop.example.com".into()],
        },
        EventKind::RequestApproved {
            request: "req-42".into(),
            approver: "bob@example.com".into(),
        },
        EventKind::RequestRejected {
            request: "req-43".into(),
            reason: "domain blocked.example is blocked".into(),
        },
        EventKind::UnitsLow {
            connector: "digicert-ov".into(),
            remaining: 4,
            threshold: 10,
        },
        EventKind::ReportReady {
            report: "expiring".into(),
            location: "/var/lib/certkeeper/reports/expiring-2026-11-27.csv".into(),
            url: Some(
                "https://certkeeper.example.com/api/v1/reports/files/weekly/weekly-20261127-060000.csv"
                    .into(),
            ),
        },
        EventKind::AlertEscalated {
            alert: "alert-0001".into(),
            threshold_days: 30,
            days_left: 23,
            unacknowledged_days: 7,
        },
        EventKind::CtLogMisbehaved {
            log: "Example CT Log 2026h2".into(),
            error: "tree heads of size 1200 with different roots (a fork)".into(),
        },
    ];
    kinds
        .into_iter()
        .map(|kind| Event {
            id: format!("sample-{}", crate::render::kind_name(&kind)),
            at: at(),
            certificate: with_cert(kind.clone()),
            kind,
        })
        .collect()
}

/// The sample of one kind, by its snake_case name.
pub fn sample_event(kind: &str) -> Option<Event> {
    sample_events()
        .into_iter()
        .find(|e| crate::render::kind_name(&e.kind) == kind)
}
