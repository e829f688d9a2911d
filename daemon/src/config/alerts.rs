//! `[alerts]` and `[notifier.NAME]`: the alert ledger, routing rules and
//! delivery.
//!
//! ```toml
//! [notifier.ops-slack]
//! type = "slack"
//! webhook_url = "https://hooks.slack.com/services/..."
//!
//! [notifier.mail]
//! type = "email"
//! host = "smtp.example.com"
//! from = "certkeeper@example.com"
//!
//! [alerts]
//! thresholds_days = [90, 60, 30, 14, 7, 3, 1]
//! contact_channels = ["mail"]          # certificates' own contacts get their alerts here
//!
//! [alerts.escalation]
//! after_days = 5                       # an expiry alert unacknowledged this long...
//! channels = ["jira"]                  # ...opens a ticket here
//! contacts = ["ssladmin@example.com"]  # ...and tells these people
//!
//! [[alerts.route]]
//! events = ["certificate_expiring", "certificate_expired", "renewal_failed"]
//! min_severity = "warning"
//! org_units = ["Web Platform"]
//! channels = ["ops-slack", "mail"]
//! contacts = ["web-oncall@example.com"]
//! quiet_hours = "22:00-07:00"          # UTC; critical events still go at once
//! ```

use std::collections::BTreeMap;

use certkeeper_integrations::config::ChannelConfig;
use certkeeper_integrations::render::Severity;
use serde::Deserialize;

/// `[alerts]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Days before `not_after` at which an expiry alert is raised, once per
    /// certificate and threshold. Default `[90, 60, 30, 14, 7, 3, 1]`.
    #[serde(default = "default_thresholds")]
    pub thresholds_days: Vec<u32>,
    /// Seconds between ledger checks (expiry thresholds, escalations).
    /// Default 300.
    #[serde(default = "default_check_interval")]
    pub check_interval_seconds: u64,
    /// Channels that deliver to a certificate's own contacts (its technical
    /// contact, owners). Default: every `email` notifier.
    pub contact_channels: Option<Vec<String>>,
    /// Whether a certificate's contacts get its alerts without a route
    /// naming them. Default true.
    #[serde(default = "yes")]
    pub notify_certificate_contacts: bool,
    /// Escalation of unacknowledged expiry alerts.
    pub escalation: Option<EscalationConfig>,
    /// Routing rules (`[[alerts.route]]`); an event goes to every matching route.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// Most messages per minute per channel; over it, messages wait (none
    /// are dropped). Channel name → limit.
    #[serde(default)]
    pub rate_limits: BTreeMap<String, u32>,
    /// How deliveries are retried.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Whether every CA certificate (root or intermediate) raises expiry
    /// alerts. Default false: those of CA bundles (naming no host, never
    /// served by an endpoint: the roots of `ca-certificates.crt`, found on
    /// disk or imported) do not, since nobody renews those by hand; one a
    /// server sends in its chain, and a self-signed certificate that names
    /// a host, do.
    #[serde(default)]
    pub ca_certificates: bool,
    /// When one batch of alerts (up to 500 events, as a ledger pass writes
    /// them) would send one channel more expiry messages
    /// (`certificate_expiring`, `certificate_expired`) than this, the
    /// channel (or person) gets one `expiry_digest` message listing them
    /// instead. 0: never digest. Default 50.
    #[serde(default = "default_digest_over")]
    pub digest_over: usize,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            ca_certificates: false,
            digest_over: default_digest_over(),
            thresholds_days: default_thresholds(),
            check_interval_seconds: default_check_interval(),
            contact_channels: None,
            notify_certificate_contacts: true,
            escalation: None,
            routes: Vec::new(),
            rate_limits: BTreeMap::new(),
            delivery: DeliveryConfig::default(),
        }
    }
}

fn default_digest_over() -> usize {
    50
}

fn default_thresholds() -> Vec<u32> {
    vec![90, 60, 30, 14, 7, 3, 1]
}

fn default_check_interval() -> u64 {
    300
}

fn yes() -> bool {
    true
}

/// `[alerts.escalation]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationConfig {
    /// Days an expiry alert may stay unacknowledged before it escalates.
    pub after_days: u32,
    /// Channels the escalation goes to (a ticketing integration).
    #[serde(default)]
    pub channels: Vec<String>,
    /// People told of the escalation (through the contact channels).
    #[serde(default)]
    pub contacts: Vec<String>,
}

/// One `[[alerts.route]]`: which events go where. Every condition given must
/// hold; an empty list matches anything.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Event types (`certificate_expiring`, `renewal_failed`, ...). Empty:
    /// every type but `certificate_discovered` (one per certificate a scan
    /// finds first), which only a route naming it receives.
    #[serde(default)]
    pub events: Vec<String>,
    /// Least severity: `info`, `warning` or `critical`.
    pub min_severity: Option<SeverityName>,
    /// The certificate's organisation unit is one of these.
    #[serde(default)]
    pub org_units: Vec<String>,
    /// The certificate carries one of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The issuer DN contains one of these (case-insensitive).
    #[serde(default)]
    pub issuers: Vec<String>,
    /// Channels (notifier names) to deliver to.
    #[serde(default)]
    pub channels: Vec<String>,
    /// People and aliases to deliver to, through `channels` that address
    /// people (e-mail, SMS).
    #[serde(default)]
    pub contacts: Vec<String>,
    /// `HH:MM-HH:MM` (UTC) during which this route's non-critical messages
    /// wait until the end of the window.
    pub quiet_hours: Option<String>,
}

/// A severity as config spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeverityName {
    /// `info`.
    Info,
    /// `warning`.
    Warning,
    /// `critical`.
    Critical,
}

impl From<SeverityName> for Severity {
    fn from(s: SeverityName) -> Self {
        match s {
            SeverityName::Info => Severity::Info,
            SeverityName::Warning => Severity::Warning,
            SeverityName::Critical => Severity::Critical,
        }
    }
}

/// `[alerts.delivery]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Messages in flight at once to one channel. Default 16.
    #[serde(default = "default_per_channel")]
    pub per_channel_concurrency: usize,
    /// First retry delay in seconds; it doubles per attempt. Default 2.
    #[serde(default = "default_backoff")]
    pub backoff_initial_seconds: u64,
    /// Longest retry delay in seconds. Default 600.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_seconds: u64,
    /// Hours a transient failure is retried before the message is marked
    /// failed (it stays in the delivery log). Default 72.
    #[serde(default = "default_give_up")]
    pub give_up_after_hours: u64,
    /// Days delivered messages stay in the delivery log (failed ones stay
    /// until removed by hand). Default 30.
    #[serde(default = "default_keep_days")]
    pub keep_days: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            per_channel_concurrency: default_per_channel(),
            backoff_initial_seconds: default_backoff(),
            backoff_max_seconds: default_backoff_max(),
            give_up_after_hours: default_give_up(),
            keep_days: default_keep_days(),
        }
    }
}

fn default_per_channel() -> usize {
    16
}

fn default_backoff() -> u64 {
    2
}

fn default_backoff_max() -> u64 {
    600
}

fn default_give_up() -> u64 {
    72
}

fn default_keep_days() -> u64 {
    30
}

/// A quiet-hours window, minutes after midnight UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// Start, inclusive.
    pub start: u32,
    /// End, exclusive; below `start` when the window spans midnight.
    pub end: u32,
}

impl QuietHours {
    /// Parses `HH:MM-HH:MM`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}`: expected HH:MM-HH:MM (UTC), e.g. 22:00-07:00");
        let (a, b) = text.split_once('-').ok_or_else(bad)?;
        let minutes = |t: &str| -> Option<u32> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let (start, end) = (minutes(a).ok_or_else(bad)?, minutes(b).ok_or_else(bad)?);
        if start == end {
            return Err(bad());
        }
        Ok(Self { start, end })
    }

    /// When a message due at `now` (Unix seconds) may go: `now`, or the end
    /// of the window `now` falls in.
    pub fn release(&self, now: i64) -> i64 {
        let day = now.div_euclid(86_400) * 86_400;
        let minute = (now.rem_euclid(86_400) / 60) as u32;
        let inside = if self.start < self.end {
            minute >= self.start && minute < self.end
        } else {
            minute >= self.start || minute < self.end
        };
        if !inside {
            return now;
        }
        let end = day + i64::from(self.end) * 60;
        if end > now { end } else { end + 86_400 }
    }
}

/// Checks `[alerts]` against the notifiers; `Err((key, message))`.
pub fn check(
    alerts: &AlertsConfig,
    notifiers: &BTreeMap<String, ChannelConfig>,
) -> Result<(), (String, String)> {
    let known = |key: String, names: &[String]| -> Result<(), (String, String)> {
        match names.iter().find(|n| !notifiers.contains_key(*n)) {
            Some(n) => Err((
                key,
                format!(
                    "no notifier `{n}`; define it as [notifier.{n}] (known: {})",
                    notifiers.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )),
            None => Ok(()),
        }
    };
    if alerts.thresholds_days.iter().any(|&t| t == 0 || t > 3650) {
        return Err((
            "alerts.thresholds_days".into(),
            "expected days from 1 to 3650".into(),
        ));
    }
    if alerts.check_interval_seconds == 0 {
        return Err((
            "alerts.check_interval_seconds".into(),
            "expected at least 1".into(),
        ));
    }
    if let Some(channels) = &alerts.contact_channels {
        known("alerts.contact_channels".into(), channels)?;
    }
    if let Some(e) = &alerts.escalation {
        if e.after_days == 0 {
            return Err((
                "alerts.escalation.after_days".into(),
                "expected at least 1".into(),
            ));
        }
        known("alerts.escalation.channels".into(), &e.channels)?;
    }
    for (i, route) in alerts.routes.iter().enumerate() {
        let key = |k: &str| format!("alerts.route[{i}].{k}");
        if route.channels.is_empty() && route.contacts.is_empty() {
            return Err((key("channels"), "expected channels or contacts".into()));
        }
        known(key("channels"), &route.channels)?;
        for event in &route.events {
            if !EVENT_TYPES.contains(&event.as_str()) {
                return Err((
                    key("events"),
                    format!("`{event}`: expected one of {}", EVENT_TYPES.join(", ")),
                ));
            }
        }
        if let Some(q) = &route.quiet_hours {
            QuietHours::parse(q).map_err(|e| (key("quiet_hours"), e))?;
        }
    }
    let rate_channels: Vec<String> = alerts.rate_limits.keys().cloned().collect();
    known("alerts.rate_limits".into(), &rate_channels)?;
    if alerts.rate_limits.values().any(|&n| n == 0) {
        return Err((
            "alerts.rate_limits".into(),
            "expected at least 1 message per minute".into(),
        ));
    }
    let d = &alerts.delivery;
    if d.per_channel_concurrency == 0 || d.backoff_initial_seconds == 0 {
        return Err((
            "alerts.delivery.per_channel_concurrency".into(),
            "per_channel_concurrency and backoff_initial_seconds must be above 0".into(),
        ));
    }
    for (name, channel) in notifiers {
        channel
            .clone()
            .build(name)
            .map_err(|e| (format!("notifier.{name}"), e.message))?;
    }
    Ok(())
}

/// Every event type routes may name.
pub const EVENT_TYPES: [&str; 17] = [
    "certificate_discovered",
    "certificate_expiring",
    "certificate_expired",
    "certificate_revoked",
    "job_failed",
    "certificate_issued",
    "renewal_succeeded",
    "renewal_failed",
    "discovery_finding",
    "deployment_failed",
    "request_pending_approval",
    "request_approved",
    "request_rejected",
    "units_low",
    "report_ready",
    "alert_escalated",
    "ct_log_misbehaved",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_hold_messages_until_the_window_ends() {
        let q = QuietHours::parse("22:00-07:00").unwrap();
        let day = 20_000 * 86_400;
        assert_eq!(q.release(day + 12 * 3600), day + 12 * 3600, "noon passes");
        assert_eq!(q.release(day + 23 * 3600), day + 86_400 + 7 * 3600);
        assert_eq!(q.release(day + 3600), day + 7 * 3600);
        let q = QuietHours::parse("12:00-13:30").unwrap();
        assert_eq!(q.release(day + 12 * 3600 + 60), day + 13 * 3600 + 1800);
        assert!(QuietHours::parse("25:00-07:00").is_err());
        assert!(QuietHours::parse("07:00").is_err());
    }

    #[test]
    fn every_event_type_is_known_to_routes() {
        for event in certkeeper_integrations::conformance::sample_events() {
            let name = certkeeper_integrations::render::kind_name(&event.kind);
            assert!(EVENT_TYPES.contains(&name), "{name}");
        }
    }
}
