//! ServiceNow: one incident per Certkeeper incident, given work notes while
//! the problem lasts and resolved when the certificate is renewed.
//!
//! Follows ServiceNow's Table API reference
//! (<https://www.servicenow.com/docs/r/api-reference/rest-apis/c_TableAPI.html>,
//! also at <https://developer.servicenow.com/dev.do#!/reference/api/latest/rest/c_TableAPI>)
//! on the `incident` table:
//!
//! - `GET /api/now/table/incident` with `sysparm_query` (an encoded query:
//!   `field=value` terms joined by `^`), `sysparm_fields` and
//!   `sysparm_limit` answers 200 `{"result":[{"sys_id","number"}]}`.
//! - `POST /api/now/table/incident` with a JSON object of field values
//!   answers 201 `{"result":{..the record..}}`. Certkeeper sets
//!   `short_description` (at most 160 characters), `description`, `urgency`
//!   and `impact` (`1` high, `2` medium, `3` low, from the event's severity),
//!   `category`, `correlation_id` (at most 100 characters) and
//!   `correlation_display` (`Certkeeper`), and `assignment_group` and
//!   `caller_id` when configured (a reference field takes a `sys_id`, or a
//!   display value the instance can match).
//! - `PATCH /api/now/table/incident/{sys_id}` with the fields to change
//!   answers 200: `work_notes` adds a work note; `state` `6` (Resolved) with
//!   `close_code` and `close_notes` resolves the incident.
//!
//! Requests carry HTTP basic auth (an integration user with the `itil` role)
//! or an OAuth bearer token, and `Accept: application/json`. ServiceNow
//! answers 401 for bad credentials and 403 for missing roles, both refused
//! for good.
//!
//! ```toml
//! [notifier.ops-servicenow]
//! type = "servicenow"
//! instance_url = "https://example.service-now.com"
//! category = "software"                  # default
//! assignment_group = "PKI Operations"    # optional
//! caller_id = "certkeeper.integration"   # optional
//! close_code = "Solved (Permanently)"    # default; newer instances: "Solution provided"
//! auth = { type = "basic", username = "certkeeper.integration", password = "..." }
//! # auth = { type = "bearer", token = "..." }   # OAuth access token
//! ```
//!
//! # Stateless deduplication: ServiceNow is the source of truth
//!
//! Which events open, update and resolve an incident, and its key, come from
//! [`crate::incident`], as for the paging channels. The key travels as the
//! incident's `correlation_id` ([`correlation_id`]: the key itself, or its
//! SHA-256 when it is too long or holds the encoded-query characters `^` or
//! `=`), and the notifier keeps no state: before opening an incident it asks
//! for an open one with that `correlation_id` and adds a work note to it if
//! there is one. "Open" is `active=true` and not Resolved, Closed or
//! Canceled: a resolved incident stays `active` until it is closed, and a
//! certificate that is expiring again after a renewal deserves a new
//! incident, not a note on the old one. So an incident resolved by hand ends
//! it, a retried delivery whose first attempt did create the incident adds a
//! note instead of a duplicate, and a restart loses nothing.
//!
//! A resolving event (renewal, issuance) resolves every open incident with
//! one of its keys, with `close_code` and the event's text as `close_notes`.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use openssl::sha::sha256;
use reqwest::header::{ACCEPT, AUTHORIZATION};
use reqwest::{RequestBuilder, Url};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Secret;
use crate::http::{HttpSender, default_timeout_secs};
use crate::incident::{IncidentAction, incident_action};
use crate::render::{Severity, render, truncate};
use crate::{ErrorClass, Event, Notifier, NotifyError};

/// Longest `short_description` the base incident table holds.
pub const MAX_SHORT_DESCRIPTION_CHARS: usize = 160;

/// Longest `correlation_id` the base task table holds.
pub const MAX_CORRELATION_ID_CHARS: usize = 100;

/// `state` of a resolved incident.
pub const STATE_RESOLVED: &str = "6";

/// Not Resolved (6), Closed (7) or Canceled (8): an incident still worked on.
const OPEN_STATES: &str = "stateNOT IN6,7,8";

/// How many open incidents of one key a resolving event handles.
const MAX_RESOLVED_PER_KEY: u32 = 20;

/// How Certkeeper signs in to ServiceNow.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServiceNowAuth {
    /// HTTP basic with an integration user.
    Basic {
        /// The user's `user_name`.
        username: String,
        /// Its password.
        password: Secret,
    },
    /// `Authorization: Bearer` with an OAuth access token.
    Bearer {
        /// The access token.
        token: Secret,
    },
}

/// Settings of a ServiceNow instance (`type = "servicenow"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNowSettings {
    /// The instance's URL (`https://example.service-now.com`).
    pub instance_url: String,
    /// How to sign in.
    pub auth: ServiceNowAuth,
    /// The incidents' `category`; `software` unless set.
    #[serde(default = "default_category")]
    pub category: String,
    /// The incidents' `assignment_group` (sys_id or name), if any.
    #[serde(default)]
    pub assignment_group: Option<String>,
    /// The incidents' `caller_id` (sys_id or user name), if any.
    #[serde(default)]
    pub caller_id: Option<String>,
    /// `close_code` of a resolution; `Solved (Permanently)` unless set. Use
    /// a value of your instance's choice list.
    #[serde(default = "default_close_code")]
    pub close_code: String,
    /// Seconds to wait for each answer.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_category() -> String {
    "software".into()
}

fn default_close_code() -> String {
    "Solved (Permanently)".into()
}

impl ServiceNowSettings {
    /// Settings for one instance, other fields at their defaults.
    pub fn new(instance_url: impl Into<String>, auth: ServiceNowAuth) -> Self {
        Self {
            instance_url: instance_url.into(),
            auth,
            category: default_category(),
            assignment_group: None,
            caller_id: None,
            close_code: default_close_code(),
            timeout_secs: default_timeout_secs(),
        }
    }
}

/// The `correlation_id` of an incident key: the key itself when it fits and
/// is safe inside an encoded query, else `certkeeper:sha256:<hex>`.
pub fn correlation_id(incident_key: &str) -> String {
    let safe = incident_key.chars().count() <= MAX_CORRELATION_ID_CHARS
        && !incident_key.contains(['^', '='])
        && incident_key.trim() == incident_key;
    if safe {
        incident_key.to_owned()
    } else {
        format!(
            "certkeeper:sha256:{}",
            hex::encode(sha256(incident_key.as_bytes()))
        )
    }
}

/// `1` (high), `2` (medium) or `3` (low): urgency and impact alike.
fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "1",
        Severity::Warning => "2",
        Severity::Info => "3",
    }
}

/// Opens, annotates and resolves ServiceNow incidents.
#[derive(Debug)]
pub struct ServiceNowNotifier {
    name: String,
    settings: ServiceNowSettings,
    http: HttpSender,
}

impl ServiceNowNotifier {
    /// A ServiceNow notifier called `name`.
    pub fn new(name: impl Into<String>, settings: ServiceNowSettings) -> Result<Self, NotifyError> {
        let name = name.into();
        let mut http = HttpSender::new(&name, Duration::from_secs(settings.timeout_secs))?;
        match &settings.auth {
            ServiceNowAuth::Basic { username, password } => {
                // A peer echoing the Authorization header echoes it in base64.
                let basic = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()));
                http = http.redacting(password).redacting(&Secret::new(basic));
            }
            ServiceNowAuth::Bearer { token } => http = http.redacting(token),
        }
        http.parse_url(&settings.instance_url)?;
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

    /// `instance_url` + `/api/now/table/incident/` + `segments`.
    fn endpoint(&self, segments: &[&str]) -> Result<Url, NotifyError> {
        self.http.endpoint(
            &self.settings.instance_url,
            "ServiceNow instance_url",
            &["api", "now", "table", "incident"],
            segments,
        )
    }

    fn authorized(&self, request: RequestBuilder) -> RequestBuilder {
        let request = request.header(ACCEPT, "application/json");
        match &self.settings.auth {
            ServiceNowAuth::Basic { username, password } => {
                request.basic_auth(username, Some(password.expose()))
            }
            ServiceNowAuth::Bearer { token } => {
                request.header(AUTHORIZATION, format!("Bearer {}", token.expose()))
            }
        }
    }

    async fn send_json(&self, request: RequestBuilder) -> Result<Value, NotifyError> {
        // A 2xx HTML page is the instance's login or hibernation page, not
        // the Table API: the URL or the instance needs an operator.
        self.http
            .send_for_json(
                self.authorized(request),
                "ServiceNow",
                "is instance_url right and the instance awake?",
            )
            .await
    }

    /// `sys_id` and `number` of the open incidents correlated with `key`.
    async fn open_incidents(
        &self,
        key: &str,
        limit: u32,
    ) -> Result<Vec<(String, String)>, NotifyError> {
        let mut url = self.endpoint(&[])?;
        let query = format!(
            "correlation_id={}^active=true^{OPEN_STATES}^ORDERBYDESCsys_created_on",
            correlation_id(key)
        );
        url.query_pairs_mut()
            .append_pair("sysparm_query", &query)
            .append_pair("sysparm_fields", "sys_id,number")
            .append_pair("sysparm_limit", &limit.to_string());
        let answer = self.send_json(self.http.client().get(url)).await?;
        let records = answer["result"].as_array().ok_or_else(|| {
            self.http.error(
                ErrorClass::Permanent,
                "ServiceNow's answer has no result list",
            )
        })?;
        Ok(records
            .iter()
            .filter_map(|r| {
                let sys_id = r["sys_id"].as_str().filter(|s| !s.is_empty())?;
                let number = r["number"].as_str().unwrap_or(sys_id);
                Some((sys_id.to_owned(), number.to_owned()))
            })
            .collect())
    }

    async fn update(&self, sys_id: &str, fields: &Value) -> Result<(), NotifyError> {
        let url = self.endpoint(&[sys_id])?;
        self.send_json(self.http.client().patch(url).json(fields))
            .await
            .map(drop)
    }

    fn create_body(&self, event: &Event, key: &str) -> Value {
        let r = render(event);
        let short = r.title.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut description = r.plain_text();
        description.push_str(&format!(
            "\n\nOpened by Certkeeper for incident {key}. Later events about it are added as \
             work notes; it is resolved when the certificate is renewed."
        ));
        let mut body = json!({
            "short_description": truncate(&short, MAX_SHORT_DESCRIPTION_CHARS),
            "description": description,
            "urgency": level(r.severity),
            "impact": level(r.severity),
            "category": self.settings.category,
            "correlation_id": correlation_id(key),
            "correlation_display": "Certkeeper",
        });
        if let Some(group) = &self.settings.assignment_group {
            body["assignment_group"] = json!(group);
        }
        if let Some(caller) = &self.settings.caller_id {
            body["caller_id"] = json!(caller);
        }
        body
    }

    async fn trigger(&self, event: &Event, key: &str) -> Result<(), NotifyError> {
        if let Some((sys_id, _)) = self.open_incidents(key, 1).await?.first() {
            let note = json!({ "work_notes": render(event).plain_text() });
            return self.update(sys_id, &note).await;
        }
        let url = self.endpoint(&[])?;
        let body = self.create_body(event, key);
        let answer = self
            .send_json(self.http.client().post(url).json(&body))
            .await?;
        tracing::info!(
            notifier = %self.name,
            incident = %answer["result"]["number"].as_str().unwrap_or("?"),
            key = %key,
            "opened ServiceNow incident"
        );
        Ok(())
    }

    async fn resolve(&self, event: &Event, keys: &[String]) -> Result<(), NotifyError> {
        let notes = render(event).plain_text();
        for key in keys {
            for (sys_id, number) in self.open_incidents(key, MAX_RESOLVED_PER_KEY).await? {
                let fields = json!({
                    "state": STATE_RESOLVED,
                    "close_code": self.settings.close_code,
                    "close_notes": notes,
                });
                self.update(&sys_id, &fields).await?;
                tracing::info!(notifier = %self.name, incident = %number, "resolved ServiceNow incident");
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Notifier for ServiceNowNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    /// The open-incident lookup, then a create or an update at `timeout_secs` each.
    fn max_send_time(&self) -> Duration {
        Duration::from_secs(self.settings.timeout_secs.saturating_mul(3))
    }

    async fn send(&self, event: &Event) -> Result<(), NotifyError> {
        match incident_action(event) {
            IncidentAction::Ignore => Ok(()),
            IncidentAction::Trigger { key } => self.trigger(event, &key).await,
            IncidentAction::Resolve { keys } => self.resolve(event, &keys).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_ids_fit_and_stay_out_of_the_query_syntax() {
        let short = "certkeeper:expiry:cert:aa";
        assert_eq!(correlation_id(short), short);
        for key in [
            "certkeeper:job:job:a^ORactive=false".to_owned(),
            format!("certkeeper:job:job:{}", "x".repeat(200)),
        ] {
            let id = correlation_id(&key);
            assert!(id.starts_with("certkeeper:sha256:"), "{id}");
            assert!(id.chars().count() <= MAX_CORRELATION_ID_CHARS);
            assert_eq!(id, correlation_id(&key));
        }
    }

    #[test]
    fn severity_sets_urgency_and_impact() {
        assert_eq!(level(Severity::Critical), "1");
        assert_eq!(level(Severity::Warning), "2");
        assert_eq!(level(Severity::Info), "3");
    }

    #[test]
    fn settings_refuse_unknown_keys() {
        let parse = |v: Value| serde_json::from_value::<ServiceNowSettings>(v);
        let ok = parse(json!({
            "instance_url": "https://example.service-now.com",
            "auth": {"type": "basic", "username": "u", "password": "p"},
        }))
        .unwrap();
        assert_eq!(ok.close_code, "Solved (Permanently)");
        assert_eq!(ok.category, "software");
        let err = parse(json!({
            "instance_url": "https://example.service-now.com",
            "auth": {"type": "bearer", "token": "t"},
            "close_cod": "x",
        }))
        .unwrap_err();
        assert!(err.to_string().contains("close_cod"), "{err}");
    }

    #[test]
    fn debug_output_hides_the_password() {
        let settings = ServiceNowSettings::new(
            "https://example.service-now.com",
            ServiceNowAuth::Basic {
                username: "u".into(),
                password: Secret::new("snow-password-123"),
            },
        );
        let notifier = ServiceNowNotifier::new("sn", settings).unwrap();
        assert!(!format!("{notifier:?}").contains("snow-password-123"));
    }
}
