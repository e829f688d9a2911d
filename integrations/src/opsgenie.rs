//! Opsgenie: alerts created on a problem and closed when it is resolved.
//!
//! Follows Opsgenie's Alert API reference
//! (<https://docs.opsgenie.com/docs/alert-api>): requests carry
//! `Authorization: GenieKey <API integration key>`; "Create Alert" is
//! `POST /v2/alerts` with a JSON body whose only required field is `message`
//! (at most 130 characters), plus `alias` (dedup key, at most 512),
//! `description` (at most 15000), `details` (string map), `entity`,
//! `source`, `priority` (`P1`..`P5`) and `tags`; "Close Alert" is
//! `POST /v2/alerts/{alias}/close?identifierType=alias` with optional
//! `source` and `note`. Both answer 202 Accepted with a `requestId`, since
//! Opsgenie processes them asynchronously.
//!
//! Which events create and which close, and the alias, come from
//! [`crate::incident`]; a certificate merely being discovered creates nothing.
//! EU accounts set `url` to `https://api.eu.opsgenie.com`.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::AUTHORIZATION;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Secret;
use crate::http::{HttpSender, default_timeout_secs};
use crate::incident::{IncidentAction, incident_action};
use crate::render::{Severity, display_name, kind_name, render, truncate};
use crate::{Event, Notifier, NotifyError};

/// Settings of an Opsgenie API integration (`type = "opsgenie"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsgenieSettings {
    /// The API integration's key.
    pub api_key: Secret,
    /// API base URL; `https://api.opsgenie.com` unless set.
    #[serde(default = "default_url")]
    pub url: String,
    /// Seconds to wait for an answer.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_url() -> String {
    "https://api.opsgenie.com".into()
}

impl OpsgenieSettings {
    /// Settings for `api_key`, other fields at their defaults.
    pub fn new(api_key: Secret) -> Self {
        Self {
            api_key,
            url: default_url(),
            timeout_secs: default_timeout_secs(),
        }
    }
}

/// Creates and closes Opsgenie alerts.
#[derive(Debug)]
pub struct OpsgenieNotifier {
    name: String,
    settings: OpsgenieSettings,
    http: HttpSender,
}

impl OpsgenieNotifier {
    /// An Opsgenie notifier called `name`.
    pub fn new(name: impl Into<String>, settings: OpsgenieSettings) -> Result<Self, NotifyError> {
        let name = name.into();
        let http = HttpSender::new(&name, Duration::from_secs(settings.timeout_secs))?
            .redacting(&settings.api_key);
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

    fn create_body(event: &Event, alias: &str) -> Value {
        let r = render(event);
        let priority = match r.severity {
            Severity::Critical => "P1",
            Severity::Warning => "P3",
            Severity::Info => "P5",
        };
        let details: BTreeMap<&str, String> = r
            .details
            .iter()
            .map(|(label, value)| (*label, truncate(value, 1000)))
            .collect();
        let mut body = json!({
            "message": truncate(&r.title, 130),
            "alias": alias,
            "description": truncate(&r.summary, 15000),
            "details": details,
            "source": "Certkeeper",
            "priority": priority,
            "tags": ["certkeeper", kind_name(&event.kind)],
        });
        if let Some(cert) = &event.certificate {
            body["entity"] = json!(truncate(&display_name(cert), 512));
        }
        body
    }

    async fn post(&self, url: reqwest::Url, body: &Value) -> Result<(), NotifyError> {
        let request = self
            .http
            .client()
            .post(url)
            .header(
                AUTHORIZATION,
                format!("GenieKey {}", self.settings.api_key.expose()),
            )
            .json(body);
        self.http.send(request).await
    }
}

#[async_trait]
impl Notifier for OpsgenieNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    /// One request at `timeout_secs`.
    fn max_send_time(&self) -> Duration {
        Duration::from_secs(self.settings.timeout_secs)
    }

    async fn send(&self, event: &Event) -> Result<(), NotifyError> {
        let base = self.http.parse_url(&self.settings.url)?;
        match incident_action(event) {
            IncidentAction::Ignore => Ok(()),
            IncidentAction::Trigger { key } => {
                let mut url = base;
                url.set_path("/v2/alerts");
                self.post(url, &Self::create_body(event, &key)).await
            }
            IncidentAction::Resolve { keys } => {
                let note = render(event).title;
                for key in keys {
                    let mut url = base.clone();
                    url.set_path("/");
                    // Pushing a segment percent-encodes the alias.
                    url.path_segments_mut()
                        .map_err(|()| {
                            self.http.error(
                                crate::ErrorClass::Permanent,
                                "the Opsgenie URL cannot have a path",
                            )
                        })?
                        .clear()
                        .extend(["v2", "alerts", key.as_str(), "close"]);
                    url.set_query(Some("identifierType=alias"));
                    let body = json!({ "source": "Certkeeper", "note": note });
                    self.post(url, &body).await?;
                }
                Ok(())
            }
        }
    }
}
