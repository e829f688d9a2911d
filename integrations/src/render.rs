//! The human side of an event: what every channel shows people.
//!
//! [`render`] turns an [`Event`] into a title, a one-line summary, labelled
//! details and a [`Severity`]; each channel only lays these out in its
//! vendor's format (Block Kit, Adaptive Card, embed, SMS text), so an alert
//! reads the same in Slack as on a phone.

use std::fmt;

use crate::{CertificateSummary, Event, EventKind};

/// Expiring this close (in days) is critical rather than a warning.
const CRITICAL_DAYS_LEFT: i64 = 7;

/// How urgent an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Good to know; nothing to do.
    Info,
    /// Someone should look soon.
    Warning,
    /// Someone must act now.
    Critical,
}

impl Severity {
    /// `critical`, `warning` or `info` (also PagerDuty's spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event as people read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Short headline: `Certificate expired: www.example.com`.
    pub title: String,
    /// One line saying what happened and what it means.
    pub summary: String,
    /// Labelled facts, most specific first (error, subject, SANs, ...).
    pub details: Vec<(&'static str, String)>,
    /// How urgent it is.
    pub severity: Severity,
}

impl Rendered {
    /// Title, summary and details as plain text lines (SMS, fallbacks).
    pub fn plain_text(&self) -> String {
        let mut text = format!("{}\n{}", self.title, self.summary);
        for (label, value) in &self.details {
            text.push_str(&format!("\n{label}: {value}"));
        }
        text
    }
}

/// The severity of an event kind.
pub fn severity(kind: &EventKind) -> Severity {
    match kind {
        EventKind::ExpiryDigest { expired, .. } if *expired > 0 => Severity::Critical,
        EventKind::CertificateExpired
        | EventKind::RenewalFailed { .. }
        | EventKind::DeploymentFailed { .. }
        | EventKind::AlertEscalated { .. }
        | EventKind::CtLogMisbehaved { .. } => Severity::Critical,
        EventKind::CertificateExpiring { days_left, .. } if *days_left <= CRITICAL_DAYS_LEFT => {
            Severity::Critical
        }
        EventKind::CertificateExpiring { .. }
        | EventKind::ExpiryDigest { .. }
        | EventKind::DiscoveryFinding { .. }
        | EventKind::RequestPendingApproval { .. }
        | EventKind::UnitsLow { .. } => Severity::Warning,
        EventKind::CertificateDiscovered
        | EventKind::CertificateRevoked
        | EventKind::JobFailed { .. }
        | EventKind::CertificateIssued { .. }
        | EventKind::RenewalSucceeded { .. }
        | EventKind::RequestApproved { .. }
        | EventKind::RequestRejected { .. }
        | EventKind::ReportReady { .. } => Severity::Info,
    }
}

/// The kind's snake_case name, as in the event's JSON `type` tag.
pub fn kind_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::CertificateDiscovered => "certificate_discovered",
        EventKind::CertificateExpiring { .. } => "certificate_expiring",
        EventKind::CertificateExpired => "certificate_expired",
        EventKind::CertificateRevoked => "certificate_revoked",
        EventKind::JobFailed { .. } => "job_failed",
        EventKind::CertificateIssued { .. } => "certificate_issued",
        EventKind::RenewalSucceeded { .. } => "renewal_succeeded",
        EventKind::RenewalFailed { .. } => "renewal_failed",
        EventKind::DiscoveryFinding { .. } => "discovery_finding",
        EventKind::DeploymentFailed { .. } => "deployment_failed",
        EventKind::RequestPendingApproval { .. } => "request_pending_approval",
        EventKind::RequestApproved { .. } => "request_approved",
        EventKind::RequestRejected { .. } => "request_rejected",
        EventKind::UnitsLow { .. } => "units_low",
        EventKind::ReportReady { .. } => "report_ready",
        EventKind::AlertEscalated { .. } => "alert_escalated",
        EventKind::ExpiryDigest { .. } => "expiry_digest",
        EventKind::CtLogMisbehaved { .. } => "ct_log_misbehaved",
    }
}

/// Renders an event for people.
pub fn render(event: &Event) -> Rendered {
    let cert = event.certificate.as_ref();
    let name = cert
        .map(display_name)
        .unwrap_or_else(|| "a certificate".into());
    let mut details: Vec<(&'static str, String)> = Vec::new();
    let (title, summary) = match &event.kind {
        EventKind::CertificateDiscovered => (
            format!("New certificate discovered: {name}"),
            format!("{name} was added to the inventory{}.", expiry_clause(cert)),
        ),
        EventKind::CertificateExpiring {
            threshold_days,
            days_left,
        } => (
            format!("Certificate expires {}: {name}", in_days(*days_left)),
            format!(
                "{name} expires {}{}; it crossed the {threshold_days}-day threshold.",
                in_days(*days_left),
                on_date(cert)
            ),
        ),
        EventKind::CertificateExpired => (
            format!("Certificate expired: {name}"),
            format!("{name} expired{}; clients now refuse it.", on_date(cert)),
        ),
        EventKind::CertificateRevoked => (
            format!("Certificate revoked: {name}"),
            format!("{name} was revoked; where it is still served it must be replaced."),
        ),
        EventKind::JobFailed { job, error } => {
            details.push(("Error", one_line(error)));
            (
                format!("Job failed: {job}"),
                format!("The scheduled job {job} failed: {}", one_line(error)),
            )
        }
        EventKind::CertificateIssued { managed } => (
            format!("Certificate issued: {managed}"),
            format!(
                "A certificate was issued for {managed}{}.",
                expiry_clause(cert)
            ),
        ),
        EventKind::RenewalSucceeded { managed, previous } => {
            if let Some(previous) = previous {
                details.push(("Replaces", previous.clone()));
            }
            (
                format!("Certificate renewed: {managed}"),
                format!(
                    "{managed} was renewed and the new certificate is serving{}.",
                    expiry_clause(cert)
                ),
            )
        }
        EventKind::RenewalFailed {
            managed,
            error,
            permanent,
            next_attempt,
        } => {
            details.push(("Error", one_line(error)));
            let next = if *permanent {
                "retrying will not help until the cause is fixed".to_owned()
            } else {
                details.push(("Next attempt", format_time(next_attempt)));
                format!("next attempt {}", format_time(next_attempt))
            };
            (
                format!("Renewal failed: {managed}"),
                format!("Renewing {managed} failed ({}); {next}.", one_line(error)),
            )
        }
        EventKind::DiscoveryFinding {
            code,
            location,
            detail,
        } => {
            details.push(("Finding", code.clone()));
            details.push(("Location", location.clone()));
            if let Some(detail) = detail {
                details.push(("Detail", one_line(detail)));
            }
            let what = detail
                .as_deref()
                .map(one_line)
                .unwrap_or_else(|| code.clone());
            (
                format!("Finding {code} at {location}"),
                format!("The installation check at {location} found: {what}."),
            )
        }
        EventKind::DeploymentFailed {
            managed,
            target,
            error,
        } => {
            details.push(("Target", target.clone()));
            details.push(("Error", one_line(error)));
            (
                format!("Deployment failed: {managed} to {target}"),
                format!(
                    "Deploying {managed} to {target} failed ({}); the previous files were restored.",
                    one_line(error)
                ),
            )
        }
        EventKind::RequestPendingApproval {
            request,
            requester,
            identifiers,
        } => {
            details.push(("Request", request.clone()));
            details.push(("Requester", requester.clone()));
            details.push(("Identifiers", identifiers.join(", ")));
            (
                format!("Approval needed: request {request}"),
                format!(
                    "{requester} asked for a certificate for {}; it waits for an approver.",
                    identifiers.join(", ")
                ),
            )
        }
        EventKind::RequestApproved { request, approver } => {
            details.push(("Request", request.clone()));
            details.push(("Approver", approver.clone()));
            (
                format!("Request approved: {request}"),
                format!("Request {request} was approved by {approver}."),
            )
        }
        EventKind::RequestRejected { request, reason } => {
            details.push(("Request", request.clone()));
            details.push(("Reason", one_line(reason)));
            (
                format!("Request rejected: {request}"),
                format!("Request {request} was rejected: {}.", one_line(reason)),
            )
        }
        EventKind::UnitsLow {
            connector,
            remaining,
            threshold,
        } => {
            details.push(("Connector", connector.clone()));
            details.push(("Units left", remaining.to_string()));
            (
                format!("Units running low: {connector}"),
                format!(
                    "{connector} has {remaining} certificate units left (threshold {threshold}); buy more before issuance stops."
                ),
            )
        }
        EventKind::ReportReady {
            report,
            location,
            url,
        } => {
            details.push(("Report", report.clone()));
            details.push(("Location", location.clone()));
            let mut text = format!("The {report} report is ready at {location}.");
            if let Some(url) = url {
                details.push(("Download", url.clone()));
                text.push_str(&format!(" Download it from {url}"));
            }
            (format!("Report ready: {report}"), text)
        }
        EventKind::ExpiryDigest {
            alerts,
            expired,
            lines,
        } => {
            let mut text = lines.join("\n");
            let more = alerts.saturating_sub(lines.len() as u64);
            if more > 0 {
                text.push_str(&format!("\n... and {more} more (certkeeper alerts list)"));
            }
            (
                format!("{alerts} certificate expiry alerts, {expired} already expired"),
                text,
            )
        }
        EventKind::CtLogMisbehaved { log, error } => {
            details.push(("Log", log.clone()));
            details.push(("Error", one_line(error)));
            (
                format!("Certificate Transparency log misbehaved: {log}"),
                format!(
                    "The CT log {log} served what does not verify: {}. Certkeeper stopped reading it until it serves a verifiable tree head again.",
                    one_line(error)
                ),
            )
        }
        EventKind::AlertEscalated {
            alert,
            threshold_days,
            days_left,
            unacknowledged_days,
        } => {
            details.push(("Alert", alert.clone()));
            (
                format!("Escalated: {name} expires {}", in_days(*days_left)),
                format!(
                    "Nobody acknowledged the {threshold_days}-day expiry alert for {name} in {unacknowledged_days} days; it expires {}{}.",
                    in_days(*days_left),
                    on_date(cert)
                ),
            )
        }
    };
    if let Some(cert) = cert {
        certificate_details(cert, &mut details);
    }
    Rendered {
        title,
        summary,
        details,
        severity: severity(&event.kind),
    }
}

fn certificate_details(cert: &CertificateSummary, details: &mut Vec<(&'static str, String)>) {
    let mut push = |label, value: String| {
        if !value.is_empty() {
            details.push((label, value));
        }
    };
    push("Subject", cert.subject.clone());
    push("SANs", cert.sans.join(", "));
    push("Issuer", cert.issuer.clone());
    push("Serial", cert.serial.clone());
    push("Fingerprint (SHA-256)", cert.fingerprint.clone());
    push(
        "Expires",
        cert.not_after.as_ref().map(format_time).unwrap_or_default(),
    );
    push("Seen at", cert.seen_at.join(", "));
    let owner = match (&cert.org_unit, cert.contacts.is_empty()) {
        (Some(unit), true) => unit.clone(),
        (Some(unit), false) => format!("{unit} ({})", cert.contacts.join(", ")),
        (None, false) => cert.contacts.join(", "),
        (None, true) => String::new(),
    };
    push("Owner", owner);
}

/// The name people know a certificate by: its first SAN, else the subject's
/// CN, else the subject, else a fingerprint prefix.
pub fn display_name(cert: &CertificateSummary) -> String {
    if let Some(san) = cert.sans.first() {
        return san.clone();
    }
    let cn = cert
        .subject
        .split(',')
        .filter_map(|rdn| rdn.trim().strip_prefix("CN="))
        .next();
    match cn {
        Some(cn) => cn.to_owned(),
        None if !cert.subject.is_empty() => cert.subject.clone(),
        None => cert.fingerprint.chars().take(16).collect(),
    }
}

fn format_time(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn in_days(days_left: i64) -> String {
    match days_left {
        i64::MIN..=0 => "today".to_owned(),
        1 => "in 1 day".to_owned(),
        n => format!("in {n} days"),
    }
}

fn on_date(cert: Option<&CertificateSummary>) -> String {
    match cert.and_then(|c| c.not_after.as_ref()) {
        Some(at) => format!(" on {}", format_time(at)),
        None => String::new(),
    }
}

fn expiry_clause(cert: Option<&CertificateSummary>) -> String {
    match cert.and_then(|c| c.not_after.as_ref()) {
        Some(at) => format!(" (valid until {})", format_time(at)),
        None => String::new(),
    }
}

/// Text for Markdown chat (Mattermost, Discord) made inert: certificate
/// subjects, SANs and places come from whoever made the certificate, so
/// Markdown's punctuation is backslash-escaped (CommonMark §2.4) and every
/// `@` gets a zero-width space after it, so that a certificate named
/// `@channel` or `*urgent*` neither pings a channel nor formats the message.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '<' | '#' | '[' | ']' | '(' | ')' => {
                out.push('\\');
                out.push(c);
            }
            '@' => out.push_str("@\u{200B}"),
            _ => out.push(c),
        }
    }
    out
}

/// Text for Slack's mrkdwn made inert. Slack has no backslash escape: its
/// control characters `&`, `<` and `>` become `&amp;`, `&lt;` and `&gt;`
/// (<https://api.slack.com/reference/surfaces/formatting#escaping>), which
/// also disarms `<!channel>`, `<@U123>` and `<http://x|links>`; the
/// formatting marks `*`, `_`, `~` and `` ` `` get a zero-width space on each
/// side, so they sit inside a word where Slack does not format; and every
/// `@` is followed by one, so a bare `@here` or `@channel` pings no one.
/// People read the text unchanged.
pub fn escape_mrkdwn(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '*' | '_' | '~' | '`' => {
                out.push('\u{200B}');
                out.push(c);
                out.push('\u{200B}');
            }
            '@' => out.push_str("@\u{200B}"),
            _ => out.push(c),
        }
    }
    out
}

/// Text for Slack's `plain_text` objects (headers), which Slack shows as
/// written: only mentions are disarmed, a zero-width space after every `<`
/// (`<!channel>`, `<@U123>`) and `@` (`@here`).
pub fn escape_slack_plain(text: &str) -> String {
    text.replace('<', "<\u{200B}").replace('@', "@\u{200B}")
}

/// Text for Microsoft Teams cards (Adaptive Card `TextBlock` and `FactSet`
/// values are Markdown) made inert: [`escape_markdown`], whose escaped `<`
/// and `>` also disarm `<at>` mention tags, plus a zero-width space inside
/// every `<at` so that no renderer that ignores the backslash sees the tag.
pub fn escape_teams(text: &str) -> String {
    let escaped = escape_markdown(text);
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped.as_str();
    while let Some(at) = find_ignore_case(rest, "<at") {
        out.push_str(&rest[..at + 1]);
        out.push('\u{200B}');
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    out
}

fn find_ignore_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack.char_indices().map(|(i, _)| i).find(|&i| {
        haystack
            .get(i..i + needle.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(needle))
    })
}

/// `text` cut to at most `max_chars` characters, ending in `…` when cut;
/// vendors refuse (not truncate) fields over their limits.
pub fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Errors from peers may span lines; a summary must not.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn expiring(days_left: i64) -> EventKind {
        EventKind::CertificateExpiring {
            threshold_days: 30,
            days_left,
        }
    }

    #[test]
    fn severity_follows_the_kind_and_days_left() {
        assert_eq!(severity(&expiring(7)), Severity::Critical);
        assert_eq!(severity(&expiring(8)), Severity::Warning);
        assert_eq!(severity(&EventKind::CertificateExpired), Severity::Critical);
        assert_eq!(severity(&EventKind::CertificateDiscovered), Severity::Info);
        let finding = EventKind::DiscoveryFinding {
            code: "weak_key".into(),
            location: "10.0.0.5:443".into(),
            detail: None,
        };
        assert_eq!(severity(&finding), Severity::Warning);
    }

    #[test]
    fn details_carry_the_certificate_facts() {
        let event = Event {
            id: "e".into(),
            at: Utc::now(),
            kind: expiring(3),
            certificate: Some(CertificateSummary {
                fingerprint: "ab12".into(),
                subject: "CN=www.example.com,O=Example".into(),
                sans: vec![],
                issuer: "CN=Example CA".into(),
                serial: "01".into(),
                not_after: None,
                seen_at: vec!["10.0.0.5:443".into()],
                org_unit: Some("Web".into()),
                contacts: vec!["web@example.com".into()],
                tags: vec![],
            }),
        };
        let r = render(&event);
        assert_eq!(r.title, "Certificate expires in 3 days: www.example.com");
        assert!(
            r.details
                .contains(&("Owner", "Web (web@example.com)".into()))
        );
        assert!(r.details.contains(&("Issuer", "CN=Example CA".into())));
        assert!(!r.summary.contains('\n'));
    }

    /// Text as a reader sees it: invisible spaces gone, entities decoded.
    fn as_read(text: &str) -> String {
        text.replace('\u{200B}', "")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }

    #[test]
    fn slack_mrkdwn_from_certificates_is_inert_but_reads_the_same() {
        let hostile = "*bold* <!channel> <@U0123> <http://evil|x> @here _i_ ~s~ `c` a&b";
        let escaped = escape_mrkdwn(hostile);
        for live in [
            "*bold*",
            "<!channel>",
            "<@U0123>",
            "<http",
            "@here",
            "_i_",
            "~s~",
            "`c`",
        ] {
            assert!(!escaped.contains(live), "{live} survived in {escaped:?}");
        }
        assert!(!escaped.contains('<') && !escaped.contains('>'));
        assert_eq!(as_read(&escaped), hostile);
        assert_eq!(escape_mrkdwn("www.example.com"), "www.example.com");

        let plain = escape_slack_plain("CN=<!here> @channel");
        assert!(!plain.contains("<!") && !plain.contains("@c"), "{plain}");
        assert_eq!(as_read(&plain), "CN=<!here> @channel");
    }

    #[test]
    fn teams_markdown_from_certificates_is_inert() {
        let escaped = escape_teams("<at>Boss</at> <AT>x</AT> [x](http://evil) **b**");
        assert!(!escaped.to_ascii_lowercase().contains("<at"), "{escaped}");
        assert!(!escaped.contains("[x]("), "{escaped}");
        assert!(!escaped.contains("**"), "{escaped}");
        assert_eq!(escape_teams("www.example.com"), "www.example.com");
    }

    #[test]
    fn markdown_from_certificates_is_inert() {
        assert_eq!(escape_markdown("www.example.com"), "www.example.com");
        assert_eq!(escape_markdown("*urgent*"), "\\*urgent\\*");
        assert_eq!(
            escape_markdown("[x](http://evil.test)"),
            "\\[x\\]\\(http://evil.test\\)"
        );
        assert_eq!(escape_markdown("CN=@channel"), "CN=@\u{200B}channel");
        assert!(!escape_markdown("@here @all").contains("@h"));
        assert_eq!(escape_markdown("a\\b"), "a\\\\b");
    }
}
