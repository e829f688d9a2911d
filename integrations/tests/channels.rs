//! Every channel against the shared conformance harness, each with a shape
//! check written from its vendor's public API reference.

// A failed unwrap is a failed test (see clippy.toml); shape-check helpers are
// outside the reach of `allow-unwrap-in-tests`.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use base64::Engine;
use certkeeper_integrations::Secret;
use certkeeper_integrations::conformance::{SAMPLE_PREVIOUS_FINGERPRINT, sample_event};
use certkeeper_integrations::discord::{DiscordNotifier, DiscordSettings};
use certkeeper_integrations::mattermost::{MattermostNotifier, MattermostSettings};
use certkeeper_integrations::opsgenie::{OpsgenieNotifier, OpsgenieSettings};
use certkeeper_integrations::pagerduty::{PagerDutyNotifier, PagerDutySettings};
use certkeeper_integrations::render::kind_name;
use certkeeper_integrations::slack::{SlackNotifier, SlackSettings};
use certkeeper_integrations::sms::{SmsNotifier, SmsSettings};
use certkeeper_integrations::teams::{TeamsNotifier, TeamsSettings};
use certkeeper_integrations::webhook::{
    WebhookFormat, WebhookNotifier, WebhookSettings, signature,
};
use certkeeper_integrations::{Event, Notifier};
use serde_json::Value;
use support::{Channel, Receiver, RecordedRequest, run};

const TIMEOUT: Duration = Duration::from_secs(1);

fn one(requests: &[RecordedRequest]) -> &RecordedRequest {
    assert_eq!(requests.len(), 1, "expected one request: {requests:#?}");
    &requests[0]
}

fn non_empty_str(v: &Value, what: &str) -> String {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"));
    assert!(!s.is_empty(), "{what} is empty");
    s.to_owned()
}

/// Events the paging channels act on, and how many requests each makes.
fn paging_requests(event: &Event) -> usize {
    match kind_name(&event.kind) {
        "certificate_discovered"
        | "request_pending_approval"
        | "request_approved"
        | "request_rejected"
        | "report_ready" => 0,
        // Expiry and revocation of the replaced certificate, renewal and
        // deployment of the managed one.
        "renewal_succeeded" => 4,
        _ => 1,
    }
}

// ---- webhook ---------------------------------------------------------------

const HMAC_SECRET: &str = "whsec-conformance-0123456789";

fn check_signed(req: &RecordedRequest, event: &Event) {
    let ts = req
        .header("x-certkeeper-timestamp")
        .expect("timestamp header");
    assert!(ts.parse::<i64>().is_ok(), "timestamp {ts}");
    let expected = signature(HMAC_SECRET.as_bytes(), ts, &req.body).unwrap();
    assert_eq!(
        req.header("x-certkeeper-signature"),
        Some(expected.as_str())
    );
    assert_eq!(req.header("idempotency-key"), Some(event.id.as_str()));
}

#[tokio::test]
async fn webhook_passes_the_conformance_harness() {
    let receiver = Receiver::start(204, "").await;
    let mut settings = WebhookSettings::new(
        format!("{}/hooks/certkeeper", receiver.url()),
        Secret::new(HMAC_SECRET),
    );
    settings.timeout_secs = TIMEOUT.as_secs();
    let notifier = WebhookNotifier::new("webhook", settings).unwrap();
    let check = |event: &Event, requests: &[RecordedRequest]| {
        let req = one(requests);
        req.assert_json_post("/hooks/certkeeper");
        check_signed(req, event);
        let back: Event = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(&back, event);
    };
    let channel = Channel {
        secrets: vec![HMAC_SECRET.into()],
        timeout: TIMEOUT,
        check: &check,
    };
    run(&notifier, &receiver, channel).await;
}

#[tokio::test]
async fn webhook_cloudevents_passes_the_conformance_harness() {
    let receiver = Receiver::start(202, "").await;
    let mut settings =
        WebhookSettings::new(format!("{}/ce", receiver.url()), Secret::new(HMAC_SECRET));
    settings.format = WebhookFormat::CloudEvents;
    settings.source = "/certkeeper/prod".into();
    settings.timeout_secs = TIMEOUT.as_secs();
    let notifier = WebhookNotifier::new("cloudevents", settings).unwrap();
    let check = |event: &Event, requests: &[RecordedRequest]| {
        let req = one(requests);
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/ce");
        // CloudEvents HTTP binding, structured content mode.
        assert_eq!(
            req.header("content-type"),
            Some("application/cloudevents+json")
        );
        check_signed(req, event);
        let ce = req.json();
        assert_eq!(ce["specversion"], "1.0");
        assert_eq!(ce["id"], event.id.as_str());
        assert_eq!(ce["source"], "/certkeeper/prod");
        assert_eq!(
            ce["type"],
            format!("com.certkeeper.{}", kind_name(&event.kind)).as_str()
        );
        let time = non_empty_str(&ce["time"], "time");
        assert!(chrono::DateTime::parse_from_rfc3339(&time).is_ok());
        assert_eq!(ce["datacontenttype"], "application/json");
        let data: Event = serde_json::from_value(ce["data"].clone()).unwrap();
        assert_eq!(&data, event);
    };
    let channel = Channel {
        secrets: vec![HMAC_SECRET.into()],
        timeout: TIMEOUT,
        check: &check,
    };
    run(&notifier, &receiver, channel).await;
}

// ---- slack -----------------------------------------------------------------

#[tokio::test]
async fn slack_passes_the_conformance_harness() {
    let receiver = Receiver::start(200, "ok").await;
    let path = "/services/T0CERTKPR/B0CERTKPR/slackhooksecret0123456789";
    let mut settings = SlackSettings::new(Secret::new(format!("{}{path}", receiver.url())));
    settings.timeout_secs = TIMEOUT.as_secs();
    let notifier = SlackNotifier::new("slack", settings).unwrap();
    let check = |_: &Event, requests: &[RecordedRequest]| {
        let req = one(requests);
        req.assert_json_post(path);
        let body = req.json();
        non_empty_str(&body["text"], "text");
        let blocks = body["blocks"].as_array().expect("blocks");
        assert!(!blocks.is_empty() && blocks.len() <= 50);
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        assert!(
            non_empty_str(&blocks[0]["text"]["text"], "header")
                .chars()
                .count()
                <= 150
        );
        for block in blocks {
            match block["type"].as_str() {
                Some("header") => {}
                Some("section") => {
                    let has_text = block["text"]["text"].is_string();
                    let fields = block["fields"].as_array();
                    assert!(has_text || fields.is_some(), "section needs text or fields");
                    if let Some(fields) = fields {
                        assert!(fields.len() <= 10);
                        for f in fields {
                            assert_eq!(f["type"], "mrkdwn");
                            assert!(non_empty_str(&f["text"], "field").chars().count() <= 2000);
                        }
                    }
                }
                Some("context") => assert!(block["elements"].as_array().is_some()),
                other => panic!("unexpected block type {other:?}"),
            }
        }
    };
    let channel = Channel {
        secrets: vec![path.into(), "slackhooksecret0123456789".into()],
        timeout: TIMEOUT,
        check: &check,
    };
    run(&notifier, &receiver, channel).await;
}

// ---- pagerduty -------------------------------------------------------------

const ROUTING_KEY: &str = "R0UTINGKEYSECRET0123456789abcdef";

#[tokio::test]
async fn pagerduty_passes_the_conformance_harness() {
    let receiver = Receiver::start(
        202,
        r#"{"status":"success","message":"Event processed","dedup_key":"k"}"#,
    )
    .await;
    let mut settings = PagerDutySettings::new(Secret::new(ROUTING_KEY));
    settings.url = receiver.url();
    settings.timeout_secs = TIMEOUT.as_secs();
    let notifier = PagerDutyNotifier::new("pagerduty", settings).unwrap();
    let check = |event: &Event, requests: &[RecordedRequest]| {
        assert_eq!(requests.len(), paging_requests(event), "{}", event.id);
        for req in requests {
            req.assert_json_post("/v2/enqueue");
            let body = req.json();
            assert_eq!(body["routing_key"], ROUTING_KEY);
            let key = non_empty_str(&body["dedup_key"], "dedup_key");
            assert!(key.chars().count() <= 255);
            match body["event_action"].as_str() {
                Some("trigger") => {
                    let payload = &body["payload"];
                    let summary = non_empty_str(&payload["summary"], "summary");
                    assert!(summary.chars().count() <= 1024);
                    non_empty_str(&payload["source"], "source");
                    let severity = non_empty_str(&payload["severity"], "severity");
                    assert!(["critical", "error", "warning", "info"].contains(&severity.as_str()));
                }
                Some("resolve") => {
                    assert!(matches!(
                        kind_name(&event.kind),
                        "renewal_succeeded" | "certificate_issued"
                    ));
                }
                other => panic!("event_action {other:?}"),
            }
        }
    };
    let channel = Channel {
        secrets: vec![ROUTING_KEY.into()],
        timeout: TIMEOUT,
        check: &check,
    };
    run(&notifier, &receiver, channel).await;
}

#[tokio::test]
async fn pagerduty_resolves_the_incident_a_renewal_ends() {
    let receiver = Receiver::start(202, r#"{"status":"success"}"#).await;
    let mut settings = PagerDutySettings::new(Secret::new(ROUTING_KEY));
    settings.url = receiver.url();
    let notifier = PagerDutyNotifier::new("pagerduty", settings).unwrap();
    let mut expiring = sample_event("certificate_expiring").unwrap();
    expiring.certificate.as_mut().unwrap().fingerprint = SAMPLE_PREVIOUS_FINGERPRINT.into();
    notifier.send(&expiring).await.unwrap();
    let trigger = one(&receiver.take()).json();
    assert_eq!(trigger["event_action"], "trigger");
    notifier
        .send(&sample_event("renewal_succeeded").unwrap())
        .await
        .unwrap();
    let resolved: Vec<Value> = receiver
        .take()
        .iter()
        .map(|r| r.json()["dedup_key"].clone())
        .collect();
    assert!(resolved.contains(&trigger["dedup_key"]), "{resolved:?}");
}

// ---- teams -----------------------------------------------------------------

#[tokio::test]
async fn teams_passes_the_conformance_harness() {
    let receiver = Receiver::start(202, "").await;
    let path = "/workflows/2f1e0d9c8b7a/triggers/manual/paths/invoke";
    let sig = "teamsworkflowsig0123456789";
    let url = format!(
        "{}{path}?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={sig}",
        receiver.url()
    );
    let mut settings = TeamsSettings::new(Secret::new(url));
    settings.timeout_secs = TIMEOUT.as_secs();
    let notifier = TeamsNotifier::new("teams", settings).unwrap();
    let check = |_: &Event, requests: &[RecordedRequest]| {
        let req = one(requests);
        req.assert_json_post(path);
        assert!(req.query.as_deref().unwrap_or_default().contains(sig));
        let body = req.json();
        assert_eq!(body["type"], "message");
        let attachments = body["attachments"].as_array().expect("attachments");
        assert_eq!(attachments.len(), 1);
        let a = &attachments[0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        let card = &a["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        non_empty_str(&card["version"], "version");
        non_empty_str(&card["$schema"], "$schema");
        let items = card["body"].as_array().expect("card body");
        assert!(!items.is_empty());
        for item in items {
            match item["type"].as_str() {
                Some("TextBlock") => {
                    non_empty_str(&item["text"], "TextBlock text");
                }
                Some("FactSet") => {
                    for fact in item["facts"].as_array().expect("facts") {
                        non_empty_str(&fact["title"], "fact title");
                        non_empty_str(&fact["value"], "fact value");
                    }
                }
                other => panic!("unexpected card element {other:?}"),
            }
        }
    };
    let channel = Channel {
        secrets: vec![sig.into()],
        timeout: TIMEOUT,
        check: &check,
    };
    run(&notifier, &receiver, channel).await;
}

// ---- opsgenie --------------------------------------------------------------

const GENIE_KEY: &str = "eb243592-faa2-4ba2-a551q-1afdf565c889";

#[tokio::test]
async fn opsgenie_passes_the_conformance_harness() {
    let receiver = Receiver::start(
        202,
        r#"{"result":"Request will be processed","took":0.302,"requestId":"43a29c5c"}"#,
    )
    .await;
    let mut settings = OpsgenieSettings::new(Secret::new(GENIE_KEY));
    settings.url = receiver.url();
    settings.timeout_secs = TIMEOUT.as_secs();
    let notifier = OpsgenieNotifier::new("opsgenie", settings).unwrap();
    let check = |event: &Event, requests: &[RecordedRequest]| {
        assert_eq!(requests.len(), paging_requests(event), "{}", event.id);
        let resolving = matches!(
            kind_name(&event.kind),
            "renewal_succeeded" | "certificate_issued"
        );
        for req in requests {
            assert_eq!(
                req.header("authorization"),
                Some(format!("GenieKey {GENIE_KEY}").as_str())
            );
            let body = req.json();
            if resolving {
                assert_eq!(req.method, "POST");
                let alias = req
                    .path
                    .strip_prefix("/v2/alerts/")
                    .and_then(|p| p.strip_suffix("/close"))
                    .unwrap_or_else(|| panic!("close path {}", req.path));
                assert!(!alias.is_empty() && !alias.contains('/'));
                assert_eq!(req.query.as_deref(), Some("identifierType=alias"));
                non_empty_str(&body["source"], "source");
            } else {
                req.assert_json_post("/v2/alerts");
                let message = non_empty_str(&body["message"], "message");
                assert!(message.chars().count() <= 130);
                let alias = non_empty_str(&body["alias"], "alias");
                assert!(alias.chars().count() <= 512);
                let priority = non_empty_str(&body["priority"], "priority");
                assert!(["P1", "P2", "P3", "P4", "P5"].contains(&priority.as_str()));
                assert!(
                    body["details"]
                        .as_object()
                        .expect("details")
                        .values()
                        .all(Value::is_string)
                );
            }
        }
    };
    let channel = Channel {
        secrets: vec![GENIE_KEY.into()],
        timeout: TIMEOUT,
        check: &check,
    };
    run(&notifier, &receiver, channel).await;
}

// ---- sms (Twilio shape) ----------------------------------------------------

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "twilioauthtokensecret0123456789";

#[tokio::test]
async fn sms_passes_the_conformance_harness() {
    let receiver = Receiver::start(201, r#"{"sid":"SM0123","status":"queued"}"#).await;
    let mut settings = SmsSettings::new(
        ACCOUNT_SID,
        Secret::new(AUTH_TOKEN),
        "+15005550006",
        "+4915112345678",
    );
    settings.url = receiver.url();
    settings.timeout_secs = TIMEOUT.as_secs();
    let notifier = SmsNotifier::new("sms", settings).unwrap();
    let check = |_: &Event, requests: &[RecordedRequest]| {
        let req = one(requests);
        assert_eq!(req.method, "POST");
        assert_eq!(
            req.path,
            format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
        );
        assert_eq!(
            req.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"));
        assert_eq!(
            req.header("authorization"),
            Some(format!("Basic {basic}").as_str())
        );
        let form = req.form();
        let get = |k: &str| {
            form.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("form field {k} missing"))
        };
        assert_eq!(get("To"), "+4915112345678");
        assert_eq!(get("From"), "+15005550006");
        let body = get("Body");
        assert!(!body.is_empty() && body.chars().count() <= 1600);
    };
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"));
    let channel = Channel {
        secrets: vec![AUTH_TOKEN.into(), basic],
        timeout: TIMEOUT,
        check: &check,
    };
    run(&notifier, &receiver, channel).await;
}

// ---- discord ---------------------------------------------------------------

#[tokio::test]
async fn discord_passes_the_conformance_harness() {
    let receiver = Receiver::start(204, "").await;
    let token = "discordwebhooktokensecret0123456789";
    let path = format!("/api/webhooks/112233445566778899/{token}");
    let mut settings = DiscordSettings::new(Secret::new(format!("{}{path}", receiver.url())));
    settings.timeout_secs = TIMEOUT.as_secs();
    let notifier = DiscordNotifier::new("discord", settings).unwrap();
    let check = |_: &Event, requests: &[RecordedRequest]| {
        let req = one(requests);
        req.assert_json_post(&path);
        let body = req.json();
        let content = body["content"].as_str().unwrap_or_default();
        let embeds = body["embeds"].as_array().cloned().unwrap_or_default();
        assert!(
            !content.is_empty() || !embeds.is_empty(),
            "content or embeds required"
        );
        assert!(content.chars().count() <= 2000);
        assert!(embeds.len() <= 10);
        for embed in &embeds {
            assert!(non_empty_str(&embed["title"], "title").chars().count() <= 256);
            assert!(
                embed["description"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .count()
                    <= 4096
            );
            assert!(embed["color"].is_u64());
            let fields = embed["fields"].as_array().expect("fields");
            assert!(fields.len() <= 25);
            for f in fields {
                assert!(non_empty_str(&f["name"], "name").chars().count() <= 256);
                assert!(non_empty_str(&f["value"], "value").chars().count() <= 1024);
            }
        }
        assert_eq!(body["allowed_mentions"]["parse"], serde_json::json!([]));
    };
    let channel = Channel {
        secrets: vec![token.into()],
        timeout: TIMEOUT,
        check: &check,
    };
    run(&notifier, &receiver, channel).await;
}

// ---- mattermost ------------------------------------------------------------

#[tokio::test]
async fn mattermost_passes_the_conformance_harness() {
    let receiver = Receiver::start(200, "ok").await;
    let key = "xi6fsghd3pbymdtswddpd9m4rh";
    let path = format!("/hooks/{key}");
    let mut settings = MattermostSettings::new(Secret::new(format!("{}{path}", receiver.url())));
    settings.channel = Some("certificates".into());
    settings.timeout_secs = TIMEOUT.as_secs();
    let notifier = MattermostNotifier::new("mattermost", settings).unwrap();
    let check = |_: &Event, requests: &[RecordedRequest]| {
        let req = one(requests);
        req.assert_json_post(&path);
        let body = req.json();
        let text = body["text"].as_str().unwrap_or_default();
        let attachments = body["attachments"].as_array().cloned().unwrap_or_default();
        assert!(
            !text.is_empty() || !attachments.is_empty(),
            "text or attachments required"
        );
        assert_eq!(body["channel"], "certificates");
        for a in &attachments {
            non_empty_str(&a["fallback"], "fallback");
            for f in a["fields"].as_array().expect("fields") {
                non_empty_str(&f["title"], "field title");
                assert!(f["short"].is_boolean());
            }
        }
    };
    let channel = Channel {
        secrets: vec![key.into()],
        timeout: TIMEOUT,
        check: &check,
    };
    run(&notifier, &receiver, channel).await;
}

#[test]
fn notifier_names_are_reported() {
    let n = SlackNotifier::new(
        "ops-slack",
        SlackSettings::new(Secret::new("https://hooks.slack.com/services/x")),
    )
    .unwrap();
    assert_eq!(n.name(), "ops-slack");
}
