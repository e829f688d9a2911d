//! PagerDuty: Events API v2 alerts that open on a problem and resolve when
//! the certificate is renewed.
//!
//! Follows PagerDuty's Events API v2 reference
//! (<https://developer.pagerduty.com/docs/events-api-v2/trigger-events/>,
//! <https://developer.pagerduty.com/docs/events-api-v2/resolve-events/>):
//! `POST /v2/enqueue` with a JSON body carrying `routing_key` (the
//! integration key), `event_action` (`trigger` or `resolve`) and `dedup_key`
//! (at most 255 characters); a trigger adds `payload` with the required
//! `summary` (at most 1024 characters), `source` and `severity`
//! (`critical`, `error`, `warning` or `info`), and the optional `timestamp`,
//! `component`, `group`, `class` and `custom_details`. PagerDuty answers 202
//! `{"status":"success","dedup_key":...}`, 400 for an invalid event and 429
//! when rate-limited.
//!
//! Which events trigger and which resolve, and the dedup key, come from
//! [`crate::incident`]; a purely informational event (a certificate was
//! discovered) pages nobody and sends nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Secret;
use crate::http::{HttpSender, default_timeout_secs};
use crate::incident::{IncidentAction, incident_action};
use crate::render::{kind_name, render, truncate};
use crate::{Event, EventKind, Notifier, NotifyError};

/// Settings of a PagerDuty service (`type = "pagerduty"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutySettings {
    /// The integration's routing key (Events API v2 integration key).
    pub routing_key: Secret,
    /// Events API base URL; `https://events.pagerduty.com` unless set.
    #[serde(default = "default_url")]
    pub url: String,
    /// `payload.source` when the event names no place (a job failure).
    #[serde(default = "default_source")]
    pub source: String,
    /// Seconds to wait for an answer.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_url() -> String {
    "https://events.pagerduty.com".into()
}

fn default_source() -> String {
    "certkeeper".into()
}

impl PagerDutySettings {
    /// Settings for `routing_key`, other fields at their defaults.
    pub fn new(routing_key: Secret) -> Self {
        Self {
            routing_key,
            url: default_url(),
            source: default_source(),
            timeout_secs: default_timeout_secs(),
        }
    }
}

/// Triggers and resolves PagerDuty alerts.
#[derive(Debug)]
pub struct PagerDutyNotifier {
    name: String,
    settings: PagerDutySettings,
    http: HttpSender,
}

impl PagerDutyNotifier {
    /// A PagerDuty notifier called `name`.
    pub fn new(name: impl Into<String>, settings: PagerDutySettings) -> Result<Self, NotifyError> {
        let name = name.into();
        let http = HttpSender::new(&name, Duration::from_secs(settings.timeout_secs))?
            .redacting(&settings.routing_key);
        Ok(Self {
            name,
            settings,
            http,
        })
    }

    /// The same notifier, connecting only to addresses `guard` allows
    /// (checked when each request connects; see [`crate::http`]).
    pub fn guarded(mut self, guard: &crate::AddressGuard) -> Result<Self, NotifyError> {
        self.http = self.http.guarded(guard)?;
        Ok(self)
    }

    fn trigger(&self, event: &Event, dedup_key: &str) -> Value {
        let r = render(event);
        let cert = event.certificate.as_ref();
        let source = match &event.kind {
            EventKind::DiscoveryFinding { location, .. } => Some(location.clone()),
            _ => cert.and_then(|c| c.seen_at.first().cloned()),
        }
        .unwrap_or_else(|| self.settings.source.clone());
        let details: BTreeMap<&str, &str> = r
            .details
            .iter()
            .map(|(label, value)| (*label, value.as_str()))
            .collect();
        let mut payload = json!({
            "summary": truncate(&r.title, 1024),
            "source": source,
            "severity": r.severity.as_str(),
            "timestamp": event.at.to_rfc3339(),
            "class": kind_name(&event.kind),
            "custom_details": details,
        });
        if let Some(cert) = cert {
            payload["component"] = json!(crate::render::display_name(cert));
            if let Some(unit) = &cert.org_unit {
                payload["group"] = json!(unit);
            }
        }
        json!({
            "routing_key": self.settings.routing_key.expose(),
            "event_action": "trigger",
            "dedup_key": dedup_key,
            "client": "Certkeeper",
            "payload": payload,
        })
    }

    async fn enqueue(&self, body: &Value) -> Result<(), NotifyError> {
        let mut url = self.http.parse_url(&self.settings.url)?;
        url.set_path("/v2/enqueue");
        self.http
            .send(self.http.client().post(url).json(body))
            .await
    }
}

#[async_trait]
impl Notifier for PagerDutyNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    /// One request at `timeout_secs`.
    fn max_send_time(&self) -> Duration {
        Duration::from_secs(self.settings.timeout_secs)
    }

    async fn send(&self, event: &Event) -> Result<(), NotifyError> {
        match incident_action(event) {
            IncidentAction::Ignore => Ok(()),
            IncidentAction::Trigger { key } => self.enqueue(&self.trigger(event, &key)).await,
            IncidentAction::Resolve { keys } => {
                for key in keys {
                    let body = json!({
                        "routing_key": self.settings.routing_key.expose(),
                        "event_action": "resolve",
                        "dedup_key": key,
                    });
                    self.enqueue(&body).await?;
                }
                Ok(())
            }
        }
    }
}
