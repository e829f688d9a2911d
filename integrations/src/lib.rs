//! Where Certkeeper's events go: chat, ticketing, webhooks, e-mail.
//!
//! Every lifecycle happening is one typed [`Event`]; the daemon feeds the same
//! value to the audit log, the alert ledger, metrics and every [`Notifier`].
//! Channel implementations (Slack, Teams, PagerDuty, Jira, webhooks, SMTP) are
//! added as submodules by later work; each sends its vendor's own payload.
//!
//! This crate never depends on the daemon.
//!
//! Channels: [`webhook`] (signed JSON or CloudEvents), [`slack`], [`teams`],
//! [`mattermost`], [`discord`], [`pagerduty`], [`opsgenie`] and [`sms`]
//! (Twilio). They share [`http`] (sending and retry classes), [`render`] (the
//! text people read), [`incident`] (open/resolve keys for paging channels)
//! and [`Secret`]; [`config`] is the `type`-tagged configuration that builds
//! them, and [`conformance`] holds the sample events of the shared
//! conformance tests.
//! Ticketing: [`jira`] (issues) and [`servicenow`] (incidents) open one
//! ticket per [`incident`] key, comment on it while the problem lasts and
//! resolve it on renewal, finding it again by searching the ticket system
//! itself rather than keeping state.
//! [`email`] mails events through an SMTP relay, to the configured
//! addresses and the people an event names.

pub mod config;
pub mod conformance;
pub mod discord;
pub mod email;
pub mod http;
pub mod incident;
pub mod jira;
pub mod mattermost;
pub mod opsgenie;
pub mod pagerduty;
pub mod render;
pub mod servicenow;
pub mod slack;
pub mod sms;
pub mod teams;
pub mod webhook;

pub use certkeeper_base::{AddressGuard, AddressRefused, ErrorClass, Secret};

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The certificate an event is about, as people reading an alert need it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateSummary {
    /// SHA-256 fingerprint, lowercase hex.
    pub fingerprint: String,
    /// Subject distinguished name.
    pub subject: String,
    /// DNS, IP, e-mail and URI subject alternative names.
    pub sans: Vec<String>,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// End of validity.
    pub not_after: Option<DateTime<Utc>>,
    /// Where the certificate has been seen (`10.0.0.5:443 (www.example.com)`, a file path).
    pub seen_at: Vec<String>,
    /// Owning organisation unit.
    pub org_unit: Option<String>,
    /// Contacts responsible for it.
    pub contacts: Vec<String>,
    /// The inventory's labels on it (routing rules match them).
    #[serde(default)]
    pub tags: Vec<String>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// A certificate was added to the inventory for the first time.
    CertificateDiscovered,
    /// A certificate crossed an expiry threshold.
    CertificateExpiring {
        /// The threshold crossed, in days.
        threshold_days: u32,
        /// Whole days left until `not_after`.
        days_left: i64,
    },
    /// A certificate expired.
    CertificateExpired,
    /// A certificate was revoked.
    CertificateRevoked,
    /// A scheduled job failed.
    JobFailed {
        /// The job's name.
        job: String,
        /// The error, for operators.
        error: String,
    },
    /// A certificate was issued (first issuance or replacement): the
    /// confirmation subscribers get.
    CertificateIssued {
        /// The managed certificate's name.
        managed: String,
    },
    /// A managed certificate was renewed and the new one is serving.
    RenewalSucceeded {
        /// The managed certificate's name.
        managed: String,
        /// Fingerprint of the certificate it replaced.
        previous: Option<String>,
    },
    /// A renewal (or issuance) failed; it is retried at `next_attempt`.
    RenewalFailed {
        /// The managed certificate's name.
        managed: String,
        /// The error, for operators.
        error: String,
        /// Whether retrying can help at all.
        permanent: bool,
        /// When it is tried again.
        next_attempt: DateTime<Utc>,
    },
    /// The installation check raised a finding not seen at that place before
    /// (rogue or unapproved issuer, weak key, incomplete chain, hostname
    /// mismatch, ...).
    DiscoveryFinding {
        /// The finding's code (`weak_key`, `hostname_mismatch`, ...).
        code: String,
        /// Where: `ip:port (sni)` or a file path.
        location: String,
        /// What exactly, for people.
        detail: Option<String>,
    },
    /// Deploying to a target failed and the previous files were restored.
    DeploymentFailed {
        /// The managed certificate's name.
        managed: String,
        /// The deploy target.
        target: String,
        /// The error, for operators.
        error: String,
    },
    /// An enrollment request waits for an approver.
    RequestPendingApproval {
        /// The request's id.
        request: String,
        /// Who asked.
        requester: String,
        /// The identifiers asked for.
        identifiers: Vec<String>,
    },
    /// An enrollment request was approved.
    RequestApproved {
        /// The request's id.
        request: String,
        /// Who approved it (`rules` when a rule did).
        approver: String,
    },
    /// An enrollment request was rejected.
    RequestRejected {
        /// The request's id.
        request: String,
        /// Why, for the requester.
        reason: String,
    },
    /// A connector account's purchased units fell below the replenishment
    /// threshold.
    UnitsLow {
        /// The connector (account) whose units run low.
        connector: String,
        /// Units left.
        remaining: u64,
        /// The configured threshold.
        threshold: u64,
    },
    /// A report was produced.
    ReportReady {
        /// The report's kind (`expiring`, `inventory`, ...).
        report: String,
        /// The file on the daemon's host.
        location: String,
        /// Where to download it through the API (with a token that may
        /// read reports).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    },
    /// An expiry alert went unacknowledged for too long: ticketing
    /// integrations open a ticket, escalation contacts are told.
    AlertEscalated {
        /// The alert's id (`certkeeper alerts ack ID`).
        alert: String,
        /// The threshold the alert was raised at, in days.
        threshold_days: u32,
        /// Whole days left until `not_after`.
        days_left: i64,
        /// Days since the alert was raised.
        unacknowledged_days: u32,
    },
    /// Many expiry alerts for one channel at once (an alert pass that would
    /// send more than `[alerts] digest_over` messages to it), as one message.
    ExpiryDigest {
        /// Alerts the digest stands for.
        alerts: u64,
        /// Of those, certificates already expired.
        expired: u64,
        /// One line per alert, soonest first, at most a hundred.
        lines: Vec<String>,
    },
    /// A Certificate Transparency log Certkeeper follows misbehaved: it
    /// rewrote its history (a fork, or tree heads that are not consistent),
    /// signed a tree head with a wrong signature, or served entries that do
    /// not hash to its signed tree. Certkeeper stops reading the log until
    /// it serves a verifiable head again.
    CtLogMisbehaved {
        /// The log's configured or listed name.
        log: String,
        /// What was wrong, for operators.
        error: String,
    },
}

/// One lifecycle happening, with a stable id for deduplication downstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Stable identifier: the same happening always has the same id.
    pub id: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: EventKind,
    /// The certificate concerned, where there is one.
    pub certificate: Option<CertificateSummary>,
}

/// A delivery failure.
#[derive(Debug, thiserror::Error)]
#[error("notifier {notifier}: {message}")]
pub struct NotifyError {
    /// The notifier's configured name.
    pub notifier: String,
    /// What went wrong; never holds tokens or passwords.
    pub message: String,
    /// Whether retrying can help.
    pub class: ErrorClass,
}

/// A channel that delivers events.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// The notifier's configured name.
    fn name(&self) -> &str;
    /// Delivers one event.
    async fn send(&self, event: &Event) -> Result<(), NotifyError>;
    /// The longest one [`send_to`](Self::send_to) can take, every request
    /// of it at its timeout: the sender leases a delivery for longer than
    /// this and gives up on a send that outlasts it, so no other sender
    /// picks the delivery up while this one may still be sending.
    fn max_send_time(&self) -> Duration {
        Duration::from_secs(30)
    }
    /// Delivers one event to these recipients as well as the channel's
    /// configured ones. Person-addressed channels (e-mail, SMS) override it;
    /// the others have one destination and ignore `recipients`.
    async fn send_to(&self, event: &Event, recipients: &[String]) -> Result<(), NotifyError> {
        let _ = recipients;
        self.send(event).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_with_a_snake_case_type_tag() {
        let event = Event {
            id: "e1".into(),
            at: DateTime::from_timestamp(0, 0).unwrap_or_default(),
            kind: EventKind::CertificateExpiring {
                threshold_days: 30,
                days_left: 29,
            },
            certificate: None,
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["kind"]["type"], "certificate_expiring");
        assert_eq!(json["kind"]["threshold_days"], 30);
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }
}
