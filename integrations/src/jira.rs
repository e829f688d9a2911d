//! Jira: one issue per incident, commented on while the problem lasts and
//! commented on (and optionally transitioned to done) when it is resolved.
//!
//! Follows Atlassian's Jira REST API references, Cloud v3
//! (<https://developer.atlassian.com/cloud/jira/platform/rest/v3/>) and
//! Data Center v2 (<https://developer.atlassian.com/server/jira/platform/rest/>),
//! chosen by `api_version`:
//!
//! - Search, [Cloud](https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-search/#api-rest-api-3-search-jql-get)
//!   / [Data Center](https://developer.atlassian.com/server/jira/platform/rest/v10000/api-group-search/):
//!   `GET /rest/api/3/search/jql` on v3 and `GET /rest/api/2/search` on v2,
//!   with `jql`, `fields` and `maxResults`; both answer
//!   `{"issues":[{"id","key","fields":{..}}], ..}`. Atlassian removed
//!   `GET /rest/api/3/search` from Cloud in 2025 in favour of `search/jql`
//!   (which pages by token instead of `startAt`, irrelevant for one result);
//!   Data Center still documents only `search`.
//! - [Create issue](https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issues/#api-rest-api-3-issue-post):
//!   `POST /rest/api/{v}/issue` with `fields.project.key`,
//!   `fields.summary` (at most 255 characters, one line),
//!   `fields.issuetype.name`, `fields.labels` (no spaces) and
//!   `fields.description`: on v3 an
//!   [Atlassian Document Format](https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/)
//!   document (`{"type":"doc","version":1,"content":[paragraph..]}`, each
//!   paragraph holding non-empty `text` nodes, bold ones with a `strong`
//!   mark), on v2 a string in Jira's wiki markup. Answers 201 with
//!   `{"id","key","self"}`.
//! - [Add comment](https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-comments/#api-rest-api-3-issue-issueidorkey-comment-post):
//!   `POST /rest/api/{v}/issue/{key}/comment` with `body` (ADF on v3, a
//!   string on v2); answers 201.
//! - [Transitions](https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issues/#api-rest-api-3-issue-issueidorkey-transitions-get):
//!   `GET /rest/api/{v}/issue/{key}/transitions` lists
//!   `{"transitions":[{"id","name","to":{"name"}}]}`;
//!   `POST` to the same path with `{"transition":{"id":..}}` runs one and
//!   answers 204.
//!
//! Authentication is HTTP basic (Cloud: account e-mail and API token; Data
//! Center: user name and password) or a bearer personal access token (Data
//! Center).
//!
//! ```toml
//! [notifier.ops-jira]
//! type = "jira"
//! base_url = "https://example.atlassian.net"
//! project = "OPS"
//! issue_type = "Task"            # default
//! labels = ["tls"]               # besides "certkeeper" and the incident label
//! api_version = 3                # 2 for Data Center
//! done_transition = "Done"       # unset: comment only
//! auth = { type = "basic", username = "certkeeper@example.com", token = "..." }
//! # auth = { type = "bearer", token = "..." }   # Data Center PAT
//! ```
//!
//! # Stateless deduplication: Jira is the source of truth
//!
//! Which events open, update and resolve an incident, and its key, come from
//! [`crate::incident`], as for the paging channels. Jira has no dedup key, so
//! each issue carries the label [`issue_label`] (`certkeeper-` and 32 hex
//! digits of the key's SHA-256; labels cannot hold spaces or colons reliably)
//! and the notifier keeps no state: before opening an issue it searches the
//! project for an issue with that label that is not in the Done status
//! category, and comments on it if there is one. So an issue closed by hand
//! ends the incident, a retried delivery whose first attempt did create the
//! issue comments instead of duplicating it, and a restart loses nothing.
//! Cloud's search is eventually consistent for a few seconds after a write;
//! events about one incident come hours apart, so this does not matter.
//!
//! A resolving event (renewal, issuance) comments on every open issue with
//! one of its keys and, when `done_transition` is set, runs the transition
//! of that name (or leading to a status of that name). A workflow whose done
//! transition has a screen with required fields cannot be run this way; leave
//! `done_transition` unset there and close the issues by hand.

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
use crate::render::{render, truncate};
use crate::{ErrorClass, Event, Notifier, NotifyError};

/// Longest `summary` Jira accepts.
pub const MAX_SUMMARY_CHARS: usize = 255;

/// Longest text field (description, comment) Jira accepts.
const MAX_TEXT_CHARS: usize = 32_767;

/// How many open issues of one incident a resolving event handles.
const MAX_RESOLVED_PER_KEY: u32 = 20;

/// Which REST API the Jira speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u8")]
pub enum JiraApiVersion {
    /// `/rest/api/2`: Data Center and Server; text fields are wiki markup.
    V2,
    /// `/rest/api/3`: Cloud; text fields are Atlassian Document Format.
    #[default]
    V3,
}

impl TryFrom<u8> for JiraApiVersion {
    type Error = String;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        match value {
            2 => Ok(Self::V2),
            3 => Ok(Self::V3),
            other => Err(format!("api_version must be 2 or 3, not {other}")),
        }
    }
}

impl JiraApiVersion {
    fn segment(self) -> &'static str {
        match self {
            Self::V2 => "2",
            Self::V3 => "3",
        }
    }
}

/// How Certkeeper signs in to Jira.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum JiraAuth {
    /// HTTP basic: Cloud account e-mail and API token, or a Data Center user
    /// name and password.
    Basic {
        /// Account e-mail (Cloud) or user name (Data Center).
        username: String,
        /// API token (Cloud) or password (Data Center).
        token: Secret,
    },
    /// `Authorization: Bearer`: a Data Center personal access token.
    Bearer {
        /// The personal access token.
        token: Secret,
    },
}

/// Settings of a Jira project (`type = "jira"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraSettings {
    /// Jira's base URL (`https://example.atlassian.net`, or
    /// `https://jira.example.com/jira` with a context path).
    pub base_url: String,
    /// Key of the project issues are opened in (`OPS`).
    pub project: String,
    /// Name of the issue type to open; `Task` unless set.
    #[serde(default = "default_issue_type")]
    pub issue_type: String,
    /// Labels every issue gets besides `certkeeper` and the incident label.
    #[serde(default)]
    pub labels: Vec<String>,
    /// How to sign in.
    pub auth: JiraAuth,
    /// REST API version: 3 (Cloud, default) or 2 (Data Center, Server).
    #[serde(default)]
    pub api_version: JiraApiVersion,
    /// Name of the transition (or of its target status) run on an issue
    /// when its certificate is renewed; unset, renewals only comment.
    #[serde(default)]
    pub done_transition: Option<String>,
    /// Seconds to wait for each answer.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_issue_type() -> String {
    "Task".into()
}

impl JiraSettings {
    /// Settings for one project, other fields at their defaults.
    pub fn new(base_url: impl Into<String>, project: impl Into<String>, auth: JiraAuth) -> Self {
        Self {
            base_url: base_url.into(),
            project: project.into(),
            issue_type: default_issue_type(),
            labels: Vec::new(),
            auth,
            api_version: JiraApiVersion::default(),
            done_transition: None,
            timeout_secs: default_timeout_secs(),
        }
    }
}

/// The label that ties a Jira issue to an incident key: `certkeeper-` and
/// the first 32 hex digits of the key's SHA-256.
pub fn issue_label(incident_key: &str) -> String {
    let digest = hex::encode(sha256(incident_key.as_bytes()));
    format!("certkeeper-{}", &digest[..32])
}

/// Opens, comments on and resolves Jira issues.
#[derive(Debug)]
pub struct JiraNotifier {
    name: String,
    settings: JiraSettings,
    http: HttpSender,
}

impl JiraNotifier {
    /// A Jira notifier called `name`.
    pub fn new(name: impl Into<String>, settings: JiraSettings) -> Result<Self, NotifyError> {
        let name = name.into();
        let mut http = HttpSender::new(&name, Duration::from_secs(settings.timeout_secs))?;
        match &settings.auth {
            JiraAuth::Basic { username, token } => {
                // A peer echoing the Authorization header echoes it in base64.
                let basic = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", token.expose()));
                http = http.redacting(token).redacting(&Secret::new(basic));
            }
            JiraAuth::Bearer { token } => http = http.redacting(token),
        }
        if settings.project.trim().is_empty() {
            return Err(http.error(ErrorClass::Permanent, "project must not be empty"));
        }
        if let Some(bad) = settings
            .labels
            .iter()
            .find(|l| l.is_empty() || l.chars().count() > 255 || l.contains(char::is_whitespace))
        {
            return Err(http.error(
                ErrorClass::Permanent,
                format!("label {bad:?} is not a Jira label (1 to 255 characters, no spaces)"),
            ));
        }
        http.parse_url(&settings.base_url)?;
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

    /// `base_url` + `/rest/api/{v}/` + `segments`, each percent-encoded.
    fn endpoint(&self, segments: &[&str]) -> Result<Url, NotifyError> {
        self.http.endpoint(
            &self.settings.base_url,
            "Jira base_url",
            &["rest", "api", self.settings.api_version.segment()],
            segments,
        )
    }

    fn authorized(&self, request: RequestBuilder) -> RequestBuilder {
        let request = request.header(ACCEPT, "application/json");
        match &self.settings.auth {
            JiraAuth::Basic { username, token } => {
                request.basic_auth(username, Some(token.expose()))
            }
            JiraAuth::Bearer { token } => {
                request.header(AUTHORIZATION, format!("Bearer {}", token.expose()))
            }
        }
    }

    async fn read_json(&self, request: RequestBuilder) -> Result<Value, NotifyError> {
        self.http
            .send_for_json(self.authorized(request), "Jira", "is base_url right?")
            .await
    }

    async fn post(&self, url: Url, body: &Value) -> Result<Value, NotifyError> {
        let request = self.authorized(self.http.client().post(url).json(body));
        let response = self.http.send_for_response(request).await?;
        // Only read for logging: a 201 or 204 is success whatever it says.
        Ok(response.json().await.unwrap_or(Value::Null))
    }

    /// Keys of the open issues labelled for `incident_key`, newest first.
    async fn open_issues(
        &self,
        incident_key: &str,
        limit: u32,
    ) -> Result<Vec<String>, NotifyError> {
        let path: &[&str] = match self.settings.api_version {
            JiraApiVersion::V2 => &["search"],
            JiraApiVersion::V3 => &["search", "jql"],
        };
        let mut url = self.endpoint(path)?;
        let jql = format!(
            "project = {} AND labels = {} AND statusCategory != Done ORDER BY created DESC",
            jql_string(&self.settings.project),
            jql_string(&issue_label(incident_key)),
        );
        url.query_pairs_mut()
            .append_pair("jql", &jql)
            .append_pair("fields", "key,status")
            .append_pair("maxResults", &limit.to_string());
        let answer = self.read_json(self.http.client().get(url)).await?;
        let issues = answer["issues"].as_array().ok_or_else(|| {
            self.http.error(
                ErrorClass::Permanent,
                "Jira's search answer has no issues list",
            )
        })?;
        Ok(issues
            .iter()
            .filter_map(|issue| issue["key"].as_str().or_else(|| issue["id"].as_str()))
            .map(str::to_owned)
            .collect())
    }

    async fn create(&self, event: &Event, incident_key: &str) -> Result<(), NotifyError> {
        let r = render(event);
        let mut labels = vec!["certkeeper".to_owned(), issue_label(incident_key)];
        for label in &self.settings.labels {
            if !labels.contains(label) {
                labels.push(label.clone());
            }
        }
        let body = json!({
            "fields": {
                "project": { "key": self.settings.project },
                "summary": truncate(&single_line(&r.title), MAX_SUMMARY_CHARS),
                "issuetype": { "name": self.settings.issue_type },
                "labels": labels,
                "description": self.text(&description(event, incident_key)),
            }
        });
        let answer = self.post(self.endpoint(&["issue"])?, &body).await?;
        tracing::info!(
            notifier = %self.name,
            issue = %answer["key"].as_str().unwrap_or("?"),
            incident = %incident_key,
            "opened Jira issue"
        );
        Ok(())
    }

    async fn comment(&self, issue: &str, text: &[Paragraph]) -> Result<(), NotifyError> {
        let url = self.endpoint(&["issue", issue, "comment"])?;
        self.post(url, &json!({ "body": self.text(text) })).await?;
        Ok(())
    }

    /// Runs the configured done transition on `issue`; `Ok(Some(message))`
    /// when the issue has no such transition.
    async fn transition(&self, issue: &str, wanted: &str) -> Result<Option<String>, NotifyError> {
        let url = self.endpoint(&["issue", issue, "transitions"])?;
        let answer = self.read_json(self.http.client().get(url.clone())).await?;
        let transitions = answer["transitions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let named = |t: &Value, field: &Value| {
            field
                .as_str()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case(wanted.trim()))
                && t["id"].is_string()
        };
        let chosen = transitions
            .iter()
            .find(|t| named(t, &t["name"]))
            .or_else(|| transitions.iter().find(|t| named(t, &t["to"]["name"])));
        let Some(chosen) = chosen else {
            let available: Vec<&str> = transitions
                .iter()
                .filter_map(|t| t["name"].as_str())
                .collect();
            return Ok(Some(format!(
                "issue {issue} has no transition {wanted:?} (available: {})",
                available.join(", ")
            )));
        };
        self.post(url, &json!({ "transition": { "id": chosen["id"] } }))
            .await?;
        tracing::info!(notifier = %self.name, issue = %issue, transition = %wanted, "resolved Jira issue");
        Ok(None)
    }

    async fn resolve(&self, event: &Event, keys: &[String]) -> Result<(), NotifyError> {
        let text = comment(event);
        let mut missing = Vec::new();
        for key in keys {
            for issue in self.open_issues(key, MAX_RESOLVED_PER_KEY).await? {
                self.comment(&issue, &text).await?;
                if let Some(wanted) = &self.settings.done_transition {
                    missing.extend(self.transition(&issue, wanted).await?);
                }
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            // The comments are in; rerunning would only repeat them, so this
            // is for an operator to fix in the workflow or the setting.
            Err(self.http.error(ErrorClass::Permanent, missing.join("; ")))
        }
    }

    /// A text field's value in this API version's format.
    fn text(&self, paragraphs: &[Paragraph]) -> Value {
        match self.settings.api_version {
            JiraApiVersion::V2 => Value::String(truncate(&wiki(paragraphs), MAX_TEXT_CHARS)),
            JiraApiVersion::V3 => adf(paragraphs),
        }
    }
}

#[async_trait]
impl Notifier for JiraNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    /// The open-ticket search, then a create or a comment at `timeout_secs` each.
    fn max_send_time(&self) -> Duration {
        Duration::from_secs(self.settings.timeout_secs.saturating_mul(3))
    }

    async fn send(&self, event: &Event) -> Result<(), NotifyError> {
        match incident_action(event) {
            IncidentAction::Ignore => Ok(()),
            IncidentAction::Trigger { key } => match self.open_issues(&key, 1).await?.first() {
                Some(issue) => self.comment(issue, &comment(event)).await,
                None => self.create(event, &key).await,
            },
            IncidentAction::Resolve { keys } => self.resolve(event, &keys).await,
        }
    }
}

/// One paragraph: runs of text, bold or not.
type Paragraph = Vec<(String, bool)>;

fn plain(text: impl Into<String>) -> Paragraph {
    vec![(text.into(), false)]
}

fn detail_paragraphs(event: &Event) -> Vec<Paragraph> {
    render(event)
        .details
        .into_iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(label, value)| {
            vec![
                (format!("{label}:"), true),
                (format!(" {}", truncate(&value, 2000)), false),
            ]
        })
        .collect()
}

/// A new issue's description: what happened, the facts, and how the issue
/// is tied to its incident.
fn description(event: &Event, incident_key: &str) -> Vec<Paragraph> {
    let mut text = vec![plain(render(event).summary)];
    text.extend(detail_paragraphs(event));
    text.push(plain(format!(
        "Opened by Certkeeper for incident {incident_key}. Later events about it are added \
         as comments; it is resolved when the certificate is renewed."
    )));
    text
}

/// A comment: the event's headline, what happened and the facts.
fn comment(event: &Event) -> Vec<Paragraph> {
    let r = render(event);
    let mut text = vec![vec![(single_line(&r.title), true)], plain(r.summary)];
    text.extend(detail_paragraphs(event));
    text
}

/// An Atlassian Document Format document of `paragraphs`; empty runs are
/// left out since ADF refuses empty text nodes.
fn adf(paragraphs: &[Paragraph]) -> Value {
    let content: Vec<Value> = paragraphs
        .iter()
        .map(|runs| {
            runs.iter()
                .filter(|(text, _)| !text.is_empty())
                .map(|(text, bold)| {
                    let text = truncate(text, MAX_TEXT_CHARS);
                    if *bold {
                        json!({ "type": "text", "text": text, "marks": [{ "type": "strong" }] })
                    } else {
                        json!({ "type": "text", "text": text })
                    }
                })
                .collect::<Vec<_>>()
        })
        .filter(|runs| !runs.is_empty())
        .map(|runs| json!({ "type": "paragraph", "content": runs }))
        .collect();
    json!({ "type": "doc", "version": 1, "content": content })
}

/// `paragraphs` as Jira wiki markup: bold as `*text*`, and the characters
/// that start macros, links, tables, images and bold escaped, since
/// certificate names (`*.example.com`) and errors may hold them.
fn wiki(paragraphs: &[Paragraph]) -> String {
    paragraphs
        .iter()
        .map(|runs| {
            runs.iter()
                .map(|(text, bold)| {
                    let escaped = wiki_escape(text);
                    if *bold && !text.trim().is_empty() {
                        format!("*{}*", escaped.trim())
                    } else {
                        escaped
                    }
                })
                .collect::<String>()
        })
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn wiki_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '{' | '}' | '[' | ']' | '|' | '*' | '!') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A JQL string literal.
fn jql_string(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Jira refuses a summary with line breaks.
fn single_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::sample_event;

    #[test]
    fn labels_are_jira_legal_and_stable() {
        let label = issue_label("certkeeper:finding-weak_key:at:10.0.0.5:443 (www.example.com)");
        assert_eq!(label.len(), "certkeeper-".len() + 32);
        assert!(!label.contains(char::is_whitespace));
        assert_eq!(
            label,
            issue_label("certkeeper:finding-weak_key:at:10.0.0.5:443 (www.example.com)")
        );
        assert_ne!(label, issue_label("certkeeper:expiry:cert:aa"));
    }

    #[test]
    fn adf_has_no_empty_text_nodes() {
        let doc = adf(&[vec![("".into(), true)], plain("x")]);
        assert_eq!(doc["content"].as_array().map(Vec::len), Some(1));
        assert_eq!(doc["content"][0]["content"][0]["text"], "x");
    }

    #[test]
    fn wiki_text_escapes_markup() {
        let text = wiki(&[vec![
            ("SANs:".into(), true),
            (" *.example.com [x]".into(), false),
        ]]);
        assert_eq!(text, "*SANs:* \\*.example.com \\[x\\]");
    }

    #[test]
    fn jql_strings_are_quoted() {
        assert_eq!(jql_string(r#"O"K\"#), r#""O\"K\\""#);
    }

    #[test]
    fn settings_refuse_unknown_keys_and_versions() {
        let parse = |v: Value| serde_json::from_value::<JiraSettings>(v);
        let base = json!({
            "base_url": "https://example.atlassian.net",
            "project": "OPS",
            "auth": {"type": "bearer", "token": "t"},
        });
        let settings = parse(base.clone()).unwrap();
        assert_eq!(settings.api_version, JiraApiVersion::V3);
        assert_eq!(settings.issue_type, "Task");
        let mut bad = base.clone();
        bad["api_version"] = json!(4);
        assert!(parse(bad).unwrap_err().to_string().contains("api_version"));
        let mut bad = base.clone();
        bad["auth"] = json!({"type": "basic", "username": "u", "token": "t", "pasword": "p"});
        assert!(parse(bad).unwrap_err().to_string().contains("pasword"));
    }

    #[test]
    fn labels_with_spaces_are_refused() {
        let mut settings = JiraSettings::new(
            "https://example.atlassian.net",
            "OPS",
            JiraAuth::Bearer {
                token: Secret::new("jira-personal-access-token"),
            },
        );
        settings.labels = vec!["two words".into()];
        let err = JiraNotifier::new("jira", settings).unwrap_err();
        assert_eq!(err.class, ErrorClass::Permanent);
        assert!(err.message.contains("two words"), "{}", err.message);
    }

    #[test]
    fn descriptions_name_the_incident() {
        let event = sample_event("certificate_expired").unwrap();
        let text = wiki(&description(&event, "certkeeper:expiry:cert:aa"));
        assert!(text.contains("certkeeper:expiry:cert:aa"), "{text}");
        assert!(text.contains("*Subject:*"), "{text}");
    }
}
