//! The ticketing channels (Jira, ServiceNow) against in-memory fakes of
//! their vendors' APIs (`support::jira`, `support::servicenow`, written from
//! the public references): one ticket per incident, comments or work notes
//! instead of duplicates, resolution on renewal, a new ticket after that,
//! delivery classes, and no secret in any error.

// A failed unwrap is a failed test (see clippy.toml); check helpers are
// outside the reach of `allow-unwrap-in-tests`.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use base64::Engine;
use certkeeper_integrations::Secret;
use certkeeper_integrations::conformance::{SAMPLE_PREVIOUS_FINGERPRINT, sample_event};
use certkeeper_integrations::incident::{IncidentAction, incident_action};
use certkeeper_integrations::jira::{JiraApiVersion, JiraAuth, JiraNotifier, JiraSettings};
use certkeeper_integrations::render::{Severity, render};
use certkeeper_integrations::servicenow::{
    ServiceNowAuth, ServiceNowNotifier, ServiceNowSettings, correlation_id,
};
use certkeeper_integrations::{ErrorClass, Event, Notifier, NotifyError};
use serde_json::{Value, json};
use support::jira::{FakeJira, check_adf};
use support::servicenow::FakeServiceNow;
use support::{Channel, Receiver, RecordedRequest, run};

const TIMEOUT: Duration = Duration::from_secs(1);

const JIRA_USER: &str = "certkeeper@example.com";
const JIRA_TOKEN: &str = "ATATT3xFfGF0jiraapitokensecret0123";
const JIRA_PAT: &str = "NjQ0MzIxjirapersonalaccesstoken0123";
const SNOW_USER: &str = "certkeeper.integration";
const SNOW_PASSWORD: &str = "snowintegrationpassword0123456";
const SNOW_TOKEN: &str = "snowoauthaccesstoken0123456789abc";

fn basic(user: &str, secret: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
}

/// The label the module doc promises: `certkeeper-` and 32 hex digits of
/// the key's SHA-256, computed here independently.
fn label(key: &str) -> String {
    let digest = hex::encode(openssl::sha::sha256(key.as_bytes()));
    format!("certkeeper-{}", &digest[..32])
}

fn trigger_key(event: &Event) -> String {
    match incident_action(event) {
        IncidentAction::Trigger { key } => key,
        other => panic!("{} does not trigger: {other:?}", event.id),
    }
}

fn query_param(request: &RecordedRequest, name: &str) -> String {
    let query = request.query.clone().unwrap_or_default();
    let url = reqwest::Url::parse(&format!("http://q.invalid/?{query}")).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {name} in {query}"))
}

/// Events about the certificate the sample renewal replaced: expiring,
/// escalated, and the renewal that ends them.
fn expiring() -> Event {
    let mut event = sample_event("certificate_expiring").unwrap();
    event.certificate.as_mut().unwrap().fingerprint = SAMPLE_PREVIOUS_FINGERPRINT.into();
    event
}

fn escalated() -> Event {
    let mut event = sample_event("alert_escalated").unwrap();
    event.certificate.as_mut().unwrap().fingerprint = SAMPLE_PREVIOUS_FINGERPRINT.into();
    event
}

fn renewed() -> Event {
    sample_event("renewal_succeeded").unwrap()
}

fn assert_no_secret(err: &NotifyError, secrets: &[&str]) {
    for text in [err.to_string(), format!("{err:?}")] {
        for secret in secrets {
            assert!(!text.contains(secret), "leaks {secret}: {text}");
        }
    }
}

fn by_method<'a>(requests: &'a [RecordedRequest], method: &str) -> Vec<&'a RecordedRequest> {
    requests.iter().filter(|r| r.method == method).collect()
}

// ---- jira ------------------------------------------------------------------

fn jira_basic() -> JiraAuth {
    JiraAuth::Basic {
        username: JIRA_USER.into(),
        token: Secret::new(JIRA_TOKEN),
    }
}

fn jira_bearer() -> JiraAuth {
    JiraAuth::Bearer {
        token: Secret::new(JIRA_PAT),
    }
}

fn jira_auth_header(auth: &JiraAuth) -> String {
    match auth {
        JiraAuth::Basic { .. } => format!("Basic {}", basic(JIRA_USER, JIRA_TOKEN)),
        JiraAuth::Bearer { .. } => format!("Bearer {JIRA_PAT}"),
    }
}

fn jira_notifier(
    receiver: &Receiver,
    version: JiraApiVersion,
    auth: JiraAuth,
    done: Option<&str>,
) -> JiraNotifier {
    let mut settings = JiraSettings::new(receiver.url(), "OPS", auth);
    settings.api_version = version;
    settings.labels = vec!["tls".into()];
    settings.done_transition = done.map(str::to_owned);
    settings.timeout_secs = TIMEOUT.as_secs();
    JiraNotifier::new("jira", settings).unwrap()
}

fn v(version: JiraApiVersion) -> &'static str {
    match version {
        JiraApiVersion::V2 => "2",
        JiraApiVersion::V3 => "3",
    }
}

fn search_path(version: JiraApiVersion) -> &'static str {
    match version {
        JiraApiVersion::V2 => "/rest/api/2/search",
        JiraApiVersion::V3 => "/rest/api/3/search/jql",
    }
}

/// A search for the open issue of `key`.
fn check_jira_search(req: &RecordedRequest, version: JiraApiVersion, key: &str, max: &str) {
    assert_eq!(req.method, "GET");
    assert_eq!(req.path, search_path(version));
    let jql = query_param(req, "jql");
    assert!(jql.contains(r#"project = "OPS""#), "{jql}");
    assert!(
        jql.contains(&format!(r#"labels = "{}""#, label(key))),
        "{jql}"
    );
    assert!(jql.contains("statusCategory != Done"), "{jql}");
    assert_eq!(query_param(req, "maxResults"), max);
    assert!(query_param(req, "fields").split(',').any(|f| f == "status"));
}

/// A text field: ADF on v3, a non-empty string on v2.
fn check_jira_text(version: JiraApiVersion, value: &Value) -> String {
    match version {
        JiraApiVersion::V3 => {
            check_adf(value).unwrap();
            value.to_string()
        }
        JiraApiVersion::V2 => {
            let s = value.as_str().expect("v2 text fields are strings");
            assert!(!s.trim().is_empty());
            s.to_owned()
        }
    }
}

fn check_jira_create(req: &RecordedRequest, version: JiraApiVersion, event: &Event, key: &str) {
    req.assert_json_post(&format!("/rest/api/{}/issue", v(version)));
    let fields = &req.json()["fields"];
    assert_eq!(fields["project"]["key"], "OPS");
    assert_eq!(fields["issuetype"]["name"], "Task");
    assert_eq!(fields["labels"], json!(["certkeeper", label(key), "tls"]));
    let summary = fields["summary"].as_str().unwrap();
    assert_eq!(summary, render(event).title);
    assert!(summary.chars().count() <= 255 && !summary.contains('\n'));
    let description = check_jira_text(version, &fields["description"]);
    assert!(description.contains(key), "{description}");
}

fn check_jira_comment(req: &RecordedRequest, version: JiraApiVersion, issue: &str) -> String {
    req.assert_json_post(&format!("/rest/api/{}/issue/{issue}/comment", v(version)));
    check_jira_text(version, &req.json()["body"])
}

#[tokio::test]
async fn jira_v3_opens_one_issue_comments_then_transitions_it_to_done() {
    let fake = FakeJira::new(3, "OPS");
    let receiver = Receiver::start_with(fake.responder()).await;
    let version = JiraApiVersion::V3;
    let notifier = jira_notifier(&receiver, version, jira_basic(), Some("Done"));
    let key = trigger_key(&expiring());

    // The first alert opens one issue.
    notifier.send(&expiring()).await.unwrap();
    let requests = receiver.take();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    for req in &requests {
        assert_eq!(
            req.header("authorization"),
            Some(jira_auth_header(&jira_basic()).as_str())
        );
        assert_eq!(req.header("accept"), Some("application/json"));
    }
    check_jira_search(&requests[0], version, &key, "1");
    check_jira_create(&requests[1], version, &expiring(), &key);
    let issues = fake.issues();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].key, "OPS-1");

    // Escalation of the same certificate comments; no second issue.
    notifier.send(&escalated()).await.unwrap();
    let requests = receiver.take();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    check_jira_search(&requests[0], version, &key, "1");
    let text = check_jira_comment(&requests[1], version, "OPS-1");
    assert!(text.contains("Escalated"), "{text}");
    assert_eq!(fake.issues().len(), 1);
    assert_eq!(fake.issues()[0].comments.len(), 1);

    // The renewal comments and runs the Done transition.
    notifier.send(&renewed()).await.unwrap();
    let requests = receiver.take();
    let searches: Vec<_> = requests
        .iter()
        .filter(|r| r.path == search_path(version))
        .collect();
    let IncidentAction::Resolve { keys } = incident_action(&renewed()) else {
        panic!("renewal must resolve");
    };
    assert_eq!(searches.len(), keys.len());
    let posts = by_method(&requests, "POST");
    assert_eq!(posts.len(), 2, "{requests:#?}");
    let text = check_jira_comment(posts[0], version, "OPS-1");
    assert!(text.contains("renewed"), "{text}");
    assert!(
        requests
            .iter()
            .any(|r| r.method == "GET" && r.path == "/rest/api/3/issue/OPS-1/transitions")
    );
    posts[1].assert_json_post("/rest/api/3/issue/OPS-1/transitions");
    assert_eq!(posts[1].json(), json!({"transition": {"id": "31"}}));
    let issue = &fake.issues()[0];
    assert_eq!(issue.category, "done");
    assert_eq!(issue.comments.len(), 2);

    // After resolution the certificate expiring again is a new issue.
    notifier.send(&expiring()).await.unwrap();
    let requests = receiver.take();
    check_jira_create(&requests[1], version, &expiring(), &key);
    let issues = fake.issues();
    assert_eq!(issues.len(), 2);
    assert_eq!(issues[1].key, "OPS-2");
    assert!(issues[1].labels.contains(&label(&key)));
}

#[tokio::test]
async fn jira_v2_sends_wiki_text_with_a_bearer_token_and_only_comments_without_done_transition() {
    let fake = FakeJira::new(2, "OPS");
    let receiver = Receiver::start_with(fake.responder()).await;
    let version = JiraApiVersion::V2;
    let notifier = jira_notifier(&receiver, version, jira_bearer(), None);
    let key = trigger_key(&expiring());

    notifier.send(&expiring()).await.unwrap();
    let requests = receiver.take();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {JIRA_PAT}").as_str())
    );
    check_jira_search(&requests[0], version, &key, "1");
    check_jira_create(&requests[1], version, &expiring(), &key);
    let description = requests[1].json()["fields"]["description"].clone();
    assert!(description.as_str().unwrap().contains("*Subject:*"));

    notifier.send(&expiring()).await.unwrap();
    let requests = receiver.take();
    check_jira_comment(&requests[1], version, "OPS-1");
    assert_eq!(fake.issues().len(), 1);

    // Without done_transition a renewal only comments; the issue stays open
    // until someone closes it.
    notifier.send(&renewed()).await.unwrap();
    let requests = receiver.take();
    assert!(requests.iter().all(|r| !r.path.ends_with("/transitions")));
    assert_eq!(by_method(&requests, "POST").len(), 1);
    assert_eq!(fake.issues()[0].category, "new");
    assert_eq!(fake.issues()[0].comments.len(), 2);

    // Jira is the source of truth: closed by hand, the next alert opens anew.
    fake.close_by_hand("OPS-1");
    notifier.send(&escalated()).await.unwrap();
    assert_eq!(fake.issues().len(), 2);
    receiver.take();
}

#[tokio::test]
async fn jira_refusals_are_classified_and_never_show_the_token() {
    let fake = FakeJira::new(3, "OPS");
    let receiver = Receiver::start_with(fake.responder()).await;
    let notifier = jira_notifier(&receiver, JiraApiVersion::V3, jira_basic(), Some("Close"));
    let secrets = [JIRA_TOKEN, &basic(JIRA_USER, JIRA_TOKEN)];

    receiver.refuse_next(401, None);
    let err = notifier.send(&expiring()).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    assert_no_secret(&err, &secrets);

    // The search succeeds, the create is refused: nothing was created, and
    // the retry creates exactly one issue.
    receiver.refuse_next_matching("POST", "/rest/api/3/issue", 503, Some("30"));
    let err = notifier.send(&expiring()).await.unwrap_err();
    assert_eq!(
        err.class,
        ErrorClass::RetryAfter(Duration::from_secs(30)),
        "{err}"
    );
    assert_no_secret(&err, &secrets);
    receiver.refuse_next_matching("POST", "/rest/api/3/issue", 500, None);
    let err = notifier.send(&expiring()).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Transient, "{err}");
    assert_no_secret(&err, &secrets);
    assert!(fake.issues().is_empty());
    notifier.send(&expiring()).await.unwrap();
    notifier.send(&expiring()).await.unwrap();
    assert_eq!(fake.issues().len(), 1);

    // A done transition the workflow lacks is for an operator to fix; the
    // renewal comment is in regardless.
    let err = notifier.send(&renewed()).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    assert!(err.message.contains("\"Close\""), "{err}");
    assert!(err.message.contains("Done"), "lists the transitions: {err}");
    assert_eq!(fake.issues()[0].comments.len(), 2);
    receiver.take();
}

fn jira_conformance_check(
    version: JiraApiVersion,
    auth: String,
) -> impl Fn(&Event, &[RecordedRequest]) {
    move |event: &Event, requests: &[RecordedRequest]| {
        for req in requests {
            assert_eq!(req.header("authorization"), Some(auth.as_str()));
        }
        match incident_action(event) {
            IncidentAction::Ignore => assert!(requests.is_empty(), "{}", event.id),
            IncidentAction::Trigger { key } => {
                assert_eq!(requests.len(), 2, "{}: {requests:#?}", event.id);
                check_jira_search(&requests[0], version, &key, "1");
                let req = &requests[1];
                if req.path.ends_with("/comment") {
                    check_jira_comment(req, version, req.path.split('/').nth(5).unwrap());
                } else {
                    check_jira_create(req, version, event, &key);
                }
            }
            IncidentAction::Resolve { keys } => {
                let searches = requests
                    .iter()
                    .filter(|r| r.path == search_path(version))
                    .count();
                assert_eq!(searches, keys.len(), "{}", event.id);
                for req in requests.iter().filter(|r| r.path != search_path(version)) {
                    assert!(
                        req.path.ends_with("/comment") || req.path.ends_with("/transitions"),
                        "{}",
                        req.path
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn jira_passes_the_conformance_harness() {
    for (version, auth) in [
        (JiraApiVersion::V3, jira_basic()),
        (JiraApiVersion::V2, jira_bearer()),
    ] {
        let fake = FakeJira::new(if version == JiraApiVersion::V3 { 3 } else { 2 }, "OPS");
        let receiver = Receiver::start_with(fake.responder()).await;
        let header = jira_auth_header(&auth);
        let notifier = jira_notifier(&receiver, version, auth, Some("Done"));
        let check = jira_conformance_check(version, header);
        let channel = Channel {
            secrets: vec![
                JIRA_TOKEN.into(),
                JIRA_PAT.into(),
                basic(JIRA_USER, JIRA_TOKEN),
            ],
            timeout: TIMEOUT,
            check: &check,
        };
        run(&notifier, &receiver, channel).await;
        assert!(!fake.issues().is_empty());
    }
}

// ---- servicenow ------------------------------------------------------------

fn snow_notifier(receiver: &Receiver, auth: ServiceNowAuth) -> ServiceNowNotifier {
    let mut settings = ServiceNowSettings::new(receiver.url(), auth);
    settings.assignment_group = Some("PKI Operations".into());
    settings.caller_id = Some("certkeeper.integration".into());
    settings.timeout_secs = TIMEOUT.as_secs();
    ServiceNowNotifier::new("servicenow", settings).unwrap()
}

fn snow_basic() -> ServiceNowAuth {
    ServiceNowAuth::Basic {
        username: SNOW_USER.into(),
        password: Secret::new(SNOW_PASSWORD),
    }
}

fn snow_bearer() -> ServiceNowAuth {
    ServiceNowAuth::Bearer {
        token: Secret::new(SNOW_TOKEN),
    }
}

const TABLE: &str = "/api/now/table/incident";

fn check_snow_query(req: &RecordedRequest, key: &str, limit: &str) {
    assert_eq!(req.method, "GET");
    assert_eq!(req.path, TABLE);
    assert_eq!(req.header("accept"), Some("application/json"));
    let query = query_param(req, "sysparm_query");
    let terms: Vec<&str> = query.split('^').collect();
    assert_eq!(terms[0], format!("correlation_id={key}"), "{query}");
    assert!(terms.contains(&"active=true"), "{query}");
    assert!(terms.contains(&"stateNOT IN6,7,8"), "{query}");
    assert_eq!(query_param(req, "sysparm_fields"), "sys_id,number");
    assert_eq!(query_param(req, "sysparm_limit"), limit);
}

fn level(event: &Event) -> &'static str {
    match render(event).severity {
        Severity::Critical => "1",
        Severity::Warning => "2",
        Severity::Info => "3",
    }
}

fn check_snow_create(req: &RecordedRequest, event: &Event, key: &str) {
    req.assert_json_post(TABLE);
    let correlation = correlation_id(key);
    let body = req.json();
    let short = body["short_description"].as_str().unwrap();
    assert_eq!(short, render(event).title);
    assert!(short.chars().count() <= 160);
    assert!(body["description"].as_str().unwrap().contains(key));
    assert_eq!(body["correlation_id"], correlation.as_str());
    assert_eq!(body["correlation_display"], "Certkeeper");
    assert_eq!(body["urgency"], level(event));
    assert_eq!(body["impact"], level(event));
    assert_eq!(body["category"], "software");
    assert_eq!(body["assignment_group"], "PKI Operations");
    assert_eq!(body["caller_id"], "certkeeper.integration");
}

fn check_snow_patch(req: &RecordedRequest) -> (String, Value) {
    assert_eq!(req.method, "PATCH");
    let sys_id = req
        .path
        .strip_prefix("/api/now/table/incident/")
        .unwrap_or_else(|| panic!("PATCH path {}", req.path));
    assert_eq!(sys_id.len(), 32, "{sys_id}");
    let ct = req.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("application/json"), "{ct}");
    (sys_id.to_owned(), req.json())
}

#[tokio::test]
async fn servicenow_opens_one_incident_adds_work_notes_then_resolves_it() {
    let fake = FakeServiceNow::new();
    let receiver = Receiver::start_with(fake.responder()).await;
    let notifier = snow_notifier(&receiver, snow_basic());
    let key = trigger_key(&expiring());
    let auth = format!("Basic {}", basic(SNOW_USER, SNOW_PASSWORD));

    notifier.send(&expiring()).await.unwrap();
    let requests = receiver.take();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    for req in &requests {
        assert_eq!(req.header("authorization"), Some(auth.as_str()));
    }
    check_snow_query(&requests[0], &key, "1");
    check_snow_create(&requests[1], &expiring(), &key);
    assert_eq!(
        requests[1].json()["urgency"],
        "1",
        "5 days left is critical"
    );
    let incidents = fake.incidents();
    assert_eq!(incidents.len(), 1);
    let sys_id = incidents[0].sys_id.clone();

    // Escalation adds a work note; no second incident.
    notifier.send(&escalated()).await.unwrap();
    let requests = receiver.take();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    check_snow_query(&requests[0], &key, "1");
    let (patched, body) = check_snow_patch(&requests[1]);
    assert_eq!(patched, sys_id);
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert!(body["work_notes"].as_str().unwrap().contains("Escalated"));
    assert_eq!(fake.incidents().len(), 1);
    assert_eq!(fake.incidents()[0].work_notes.len(), 1);

    // The renewal resolves it with close code and notes.
    notifier.send(&renewed()).await.unwrap();
    let requests = receiver.take();
    let IncidentAction::Resolve { keys } = incident_action(&renewed()) else {
        panic!("renewal must resolve");
    };
    assert_eq!(by_method(&requests, "GET").len(), keys.len());
    let patches = by_method(&requests, "PATCH");
    assert_eq!(patches.len(), 1, "{requests:#?}");
    let (patched, body) = check_snow_patch(patches[0]);
    assert_eq!(patched, sys_id);
    assert_eq!(body["state"], "6");
    assert_eq!(body["close_code"], "Solved (Permanently)");
    assert!(body["close_notes"].as_str().unwrap().contains("renewed"));
    let incident = &fake.incidents()[0];
    assert_eq!(incident.state, "6");
    assert!(
        incident.active,
        "ServiceNow keeps resolved incidents active"
    );

    // A resolved incident is not reused: expiring again opens a new one.
    notifier.send(&expiring()).await.unwrap();
    let requests = receiver.take();
    check_snow_create(&requests[1], &expiring(), &key);
    assert_eq!(fake.incidents().len(), 2);
}

#[tokio::test]
async fn servicenow_refusals_are_classified_and_never_show_the_password() {
    let fake = FakeServiceNow::new();
    let receiver = Receiver::start_with(fake.responder()).await;
    let notifier = snow_notifier(&receiver, snow_basic());
    let secrets = [SNOW_PASSWORD, &basic(SNOW_USER, SNOW_PASSWORD)];

    receiver.refuse_next(401, None);
    let err = notifier.send(&expiring()).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    assert_no_secret(&err, &secrets);

    receiver.refuse_next_matching("POST", TABLE, 503, Some("120"));
    let err = notifier.send(&expiring()).await.unwrap_err();
    assert_eq!(
        err.class,
        ErrorClass::RetryAfter(Duration::from_secs(120)),
        "{err}"
    );
    assert_no_secret(&err, &secrets);

    notifier.send(&expiring()).await.unwrap();
    receiver.refuse_next_matching("PATCH", TABLE, 500, None);
    let err = notifier.send(&escalated()).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Transient, "{err}");
    assert_no_secret(&err, &secrets);
    notifier.send(&escalated()).await.unwrap();
    assert_eq!(fake.incidents().len(), 1);
    assert_eq!(fake.incidents()[0].work_notes.len(), 1);
    receiver.take();
}

#[tokio::test]
async fn servicenow_passes_the_conformance_harness() {
    let fake = FakeServiceNow::new();
    let receiver = Receiver::start_with(fake.responder()).await;
    let notifier = snow_notifier(&receiver, snow_bearer());
    let auth = format!("Bearer {SNOW_TOKEN}");
    let check = |event: &Event, requests: &[RecordedRequest]| {
        for req in requests {
            assert_eq!(req.header("authorization"), Some(auth.as_str()));
        }
        match incident_action(event) {
            IncidentAction::Ignore => assert!(requests.is_empty(), "{}", event.id),
            IncidentAction::Trigger { key } => {
                assert_eq!(requests.len(), 2, "{}: {requests:#?}", event.id);
                check_snow_query(&requests[0], &correlation_id(&key), "1");
                if requests[1].method == "POST" {
                    check_snow_create(&requests[1], event, &key);
                } else {
                    let (_, body) = check_snow_patch(&requests[1]);
                    assert!(body["work_notes"].is_string(), "{body}");
                }
            }
            IncidentAction::Resolve { keys } => {
                assert_eq!(by_method(requests, "GET").len(), keys.len());
                for req in by_method(requests, "PATCH") {
                    let (_, body) = check_snow_patch(req);
                    assert_eq!(body["state"], "6");
                }
            }
        }
    };
    let channel = Channel {
        secrets: vec![SNOW_TOKEN.into()],
        timeout: TIMEOUT,
        check: &check,
    };
    run(&notifier, &receiver, channel).await;
    assert!(!fake.incidents().is_empty());
}
