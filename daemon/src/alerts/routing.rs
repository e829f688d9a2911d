//! Routing: which channels and people an event goes to.
//!
//! An event goes to every `[[alerts.route]]` that matches it (event type,
//! least severity, org unit, tag, issuer); a route's contacts are addressed
//! through its person channels, or through `contact_channels` when it names
//! none. A certificate's own contacts get its alerts through
//! `contact_channels` unless `notify_certificate_contacts = false`. An
//! escalation also goes to `[alerts.escalation]`'s channels and contacts.
//! Targets on the same channel merge: one message, the union of recipients,
//! sent at the earliest time any route allows (quiet hours hold a route's
//! non-critical messages until the window ends).

use std::collections::BTreeMap;

use certkeeper_integrations::config::ChannelConfig;
use certkeeper_integrations::render::{Severity, kind_name, severity};
use certkeeper_integrations::{Event, EventKind};

use crate::config::alerts::{AlertsConfig, QuietHours, RouteConfig};

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The notifier.
    pub channel: String,
    /// People and aliases (person channels only use them).
    pub recipients: Vec<String>,
    /// Not before this time (Unix seconds).
    pub not_before: i64,
}

/// Compiled routing rules.
#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<(RouteConfig, Option<QuietHours>)>,
    contact_channels: Vec<String>,
    notify_contacts: bool,
    escalation_channels: Vec<String>,
    escalation_contacts: Vec<String>,
    reach: BTreeMap<String, super::contacts::Reach>,
    /// `[alerts] digest_over`.
    pub(super) digest_over: usize,
}

impl Router {
    /// Builds the router; `[alerts]` has been checked.
    pub fn new(config: &AlertsConfig, notifiers: &BTreeMap<String, ChannelConfig>) -> Self {
        let contact_channels = config.contact_channels.clone().unwrap_or_else(|| {
            notifiers
                .iter()
                .filter(|(_, c)| c.addresses_people())
                .map(|(n, _)| n.clone())
                .collect()
        });
        Self {
            routes: config
                .routes
                .iter()
                .map(|r| {
                    let quiet = r
                        .quiet_hours
                        .as_deref()
                        .and_then(|q| QuietHours::parse(q).ok());
                    (r.clone(), quiet)
                })
                .collect(),
            contact_channels,
            notify_contacts: config.notify_certificate_contacts,
            escalation_channels: config
                .escalation
                .as_ref()
                .map(|e| e.channels.clone())
                .unwrap_or_default(),
            escalation_contacts: config
                .escalation
                .as_ref()
                .map(|e| e.contacts.clone())
                .unwrap_or_default(),
            reach: notifiers
                .iter()
                .map(|(n, c)| (n.clone(), super::contacts::Reach::of(c)))
                .collect(),
            digest_over: config.digest_over,
        }
    }

    /// The deliveries of `event` at `now`: [`targets`](Self::targets) with
    /// their people resolved through `directory` (see `contacts.rs`).
    pub fn deliveries(
        &self,
        event: &Event,
        now: i64,
        directory: &super::contacts::Directory,
    ) -> Vec<super::contacts::Resolved> {
        // A certificate's contacts are people even where no contact channel
        // reaches them: their entries may ask for channels of their own.
        let contacts: &[String] = match &event.certificate {
            Some(c)
                if self.notify_contacts
                    && !matches!(event.kind, EventKind::CertificateDiscovered) =>
            {
                &c.contacts
            }
            _ => &[],
        };
        directory.resolve(event, self.targets(event, now), &self.reach, contacts, now)
    }

    /// Where `event` goes, at `now`.
    pub fn targets(&self, event: &Event, now: i64) -> Vec<Target> {
        let mut merged: BTreeMap<String, Target> = BTreeMap::new();
        let mut add = |channel: &str, recipients: &[String], not_before: i64| {
            let t = merged.entry(channel.to_owned()).or_insert_with(|| Target {
                channel: channel.to_owned(),
                recipients: Vec::new(),
                not_before,
            });
            t.not_before = t.not_before.min(not_before);
            for r in recipients {
                if !t.recipients.iter().any(|x| x.eq_ignore_ascii_case(r)) {
                    t.recipients.push(r.clone());
                }
            }
        };
        let critical = severity(&event.kind) == Severity::Critical;
        for (route, quiet) in &self.routes {
            if !matches(route, event) {
                continue;
            }
            let at = match quiet {
                Some(q) if !critical => q.release(now),
                _ => now,
            };
            for channel in &route.channels {
                add(channel, &route.contacts, at);
            }
            if route.channels.is_empty() {
                for channel in &self.contact_channels {
                    add(channel, &route.contacts, at);
                }
            }
        }
        if let Some(cert) = &event.certificate
            && self.notify_contacts
            && !cert.contacts.is_empty()
            && !matches!(event.kind, EventKind::CertificateDiscovered)
        {
            for channel in &self.contact_channels {
                add(channel, &cert.contacts, now);
            }
        }
        if matches!(event.kind, EventKind::AlertEscalated { .. }) {
            for channel in &self.escalation_channels {
                add(channel, &[], now);
            }
            if !self.escalation_contacts.is_empty() {
                for channel in &self.contact_channels {
                    add(channel, &self.escalation_contacts, now);
                }
            }
        }
        merged.into_values().collect()
    }
}

fn matches(route: &RouteConfig, event: &Event) -> bool {
    if route.events.is_empty() {
        // A catch-all route does not take `certificate_discovered`: the
        // first scan of an estate would send one per certificate. A route
        // that names it gets it.
        if matches!(event.kind, EventKind::CertificateDiscovered) {
            return false;
        }
    } else if !route.events.iter().any(|e| e == kind_name(&event.kind)) {
        return false;
    }
    if let Some(min) = route.min_severity
        && severity(&event.kind) < Severity::from(min)
    {
        return false;
    }
    let cert = event.certificate.as_ref();
    if !route.org_units.is_empty()
        && !cert
            .and_then(|c| c.org_unit.as_ref())
            .is_some_and(|u| route.org_units.iter().any(|x| x.eq_ignore_ascii_case(u)))
    {
        return false;
    }
    if !route.tags.is_empty()
        && !cert.is_some_and(|c| {
            c.tags
                .iter()
                .any(|t| route.tags.iter().any(|x| x.eq_ignore_ascii_case(t)))
        })
    {
        return false;
    }
    if !route.issuers.is_empty()
        && !cert.is_some_and(|c| {
            let issuer = c.issuer.to_lowercase();
            route
                .issuers
                .iter()
                .any(|x| issuer.contains(&x.to_lowercase()))
        })
    {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use certkeeper_integrations::conformance::sample_event;
    use serde_json::json;

    fn router(alerts: serde_json::Value) -> Router {
        let notifiers: BTreeMap<String, ChannelConfig> = serde_json::from_value(json!({
            "slack": {"type": "slack", "webhook_url": "https://hooks.slack.com/services/x"},
            "pager": {"type": "pagerduty", "routing_key": "k"},
            "jira": {"type": "webhook", "url": "https://jira.example.com/h", "secret": "s"},
        }))
        .unwrap();
        let mut config: AlertsConfig = serde_json::from_value(alerts).unwrap();
        config
            .contact_channels
            .get_or_insert_with(|| vec!["slack".into()]);
        Router::new(&config, &notifiers)
    }

    fn channels(targets: &[Target]) -> Vec<&str> {
        targets.iter().map(|t| t.channel.as_str()).collect()
    }

    #[test]
    fn routes_match_on_type_severity_unit_tag_and_issuer() {
        let r = router(json!({
            "notify_certificate_contacts": false,
            "route": [
                {"events": ["certificate_expiring"], "channels": ["slack"]},
                {"min_severity": "critical", "channels": ["pager"]},
                {"org_units": ["web platform"], "tags": ["pci"], "issuers": ["example issuing"], "channels": ["jira"]},
                {"org_units": ["Finance"], "channels": ["pager"], "contacts": ["cfo@example.com"]},
            ]
        }));
        let expiring = sample_event("certificate_expiring").unwrap();
        // 5 days left: critical; Web Platform, tagged pci, Example Issuing CA.
        assert_eq!(
            channels(&r.targets(&expiring, 0)),
            ["jira", "pager", "slack"]
        );
        let issued = sample_event("certificate_issued").unwrap();
        assert_eq!(channels(&r.targets(&issued, 0)), ["jira"]);
        let mut other_unit = issued.clone();
        if let Some(c) = other_unit.certificate.as_mut() {
            c.org_unit = Some("Finance".into());
        }
        let t = r.targets(&other_unit, 0);
        assert_eq!(channels(&t), ["pager"]);
        assert_eq!(t[0].recipients, ["cfo@example.com"]);
    }

    #[test]
    fn certificate_contacts_get_its_alerts_and_recipients_merge() {
        let r = router(json!({
            "route": [{"events": ["certificate_expiring"], "channels": ["slack"], "contacts": ["ssladmin@example.com"]}]
        }));
        let t = r.targets(&sample_event("certificate_expiring").unwrap(), 0);
        assert_eq!(t.len(), 1);
        assert_eq!(
            t[0].recipients,
            ["ssladmin@example.com", "web-oncall@example.com"]
        );
        let discovered = sample_event("certificate_discovered").unwrap();
        assert!(r.targets(&discovered, 0).is_empty());
    }

    #[test]
    fn only_a_route_naming_it_gets_certificate_discovered() {
        let r = router(json!({
            "notify_certificate_contacts": false,
            "route": [
                {"channels": ["catch-all"]},
                {"events": ["certificate_discovered", "job_failed"], "channels": ["inventory-feed"]}
            ]
        }));
        let discovered = sample_event("certificate_discovered").unwrap();
        assert_eq!(channels(&r.targets(&discovered, 0)), ["inventory-feed"]);
        let failed = sample_event("job_failed").unwrap();
        let targets = r.targets(&failed, 0);
        let mut both = channels(&targets);
        both.sort_unstable();
        assert_eq!(both, ["catch-all", "inventory-feed"]);
    }

    #[test]
    fn quiet_hours_hold_only_non_critical_messages() {
        let r = router(json!({
            "notify_certificate_contacts": false,
            "route": [{"channels": ["slack"], "quiet_hours": "00:00-06:00"}]
        }));
        let night = 20_000 * 86_400 + 3600;
        let finding = sample_event("discovery_finding").unwrap();
        assert_eq!(r.targets(&finding, night)[0].not_before, night + 5 * 3600);
        let failed = sample_event("renewal_failed").unwrap();
        assert_eq!(r.targets(&failed, night)[0].not_before, night);
    }

    #[test]
    fn escalations_reach_the_ticketing_channel_and_escalation_contacts() {
        let r = router(json!({
            "notify_certificate_contacts": false,
            "escalation": {"after_days": 3, "channels": ["jira"], "contacts": ["ssladmin@example.com"]},
        }));
        let t = r.targets(&sample_event("alert_escalated").unwrap(), 0);
        assert_eq!(channels(&t), ["jira", "slack"]);
        assert_eq!(t[1].recipients, ["ssladmin@example.com"]);
        assert!(
            r.targets(&sample_event("certificate_expiring").unwrap(), 0)
                .is_empty()
        );
    }
}
