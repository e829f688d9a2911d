//! The alert ledger over simulated time, and delivery through the outbox to
//! a local webhook receiver.
//!
//! Ledger tests drive `alerts::ledger::pass` with a clock the test moves a
//! day at a time against a real (in-memory) store: each threshold fires
//! once, a daemon down across thresholds catches up with one message,
//! passes after a "restart" raise nothing, renewed certificates stop
//! alerting, and escalation happens once and not for acknowledged alerts.
//! Delivery tests run the router and senders against a hyper receiver that
//! checks the webhook's idempotency key and can refuse requests.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certkeeper::alerts::ledger::{self, PassReport};
use certkeeper::config::alerts::AlertsConfig;
use certkeeper_model::inventory::{CertificateRecord, SightingKind};
use certkeeper_store::Store;
use certkeeper_store::alerts::AckOutcome;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::x509::{X509Builder, X509NameBuilder};
use serde_json::{Value, json};

const DAY: i64 = 86_400;
/// A fixed "today" (2026-01-01T00:00:00Z) for simulated time.
const T0: i64 = 1_767_225_600;

/// A self-signed certificate for `cn` expiring at `not_after` (a CA, with
/// basicConstraints CA:TRUE, when `ca`), as the inventory records it.
fn self_signed(cn: &str, not_after: i64, ca: bool) -> CertificateRecord {
    let key = PKey::ec_gen("prime256v1").unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(T0 - 300 * DAY).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(not_after).unwrap())
        .unwrap();
    if ca {
        let constraints = openssl::x509::extension::BasicConstraints::new()
            .critical()
            .ca()
            .build()
            .unwrap();
        b.append_extension(constraints).unwrap();
    }
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let der = b.build().to_der().unwrap();
    let parsed = certkeeper_model::inventory::parse::parse_der(&der).unwrap();
    assert_eq!(parsed.is_ca, ca);
    CertificateRecord::discovered(parsed, T0, 30)
}

/// A self-signed leaf for `cn` expiring at `not_after`, owned by the Web
/// Platform unit and `contacts`.
fn record(cn: &str, not_after: i64, contacts: &[&str]) -> CertificateRecord {
    let mut r = self_signed(cn, not_after, false);
    r.contacts = contacts.iter().map(|c| c.to_string()).collect();
    r.org_unit = Some("Web Platform".into());
    r
}

async fn add(store: &Store, records: &[CertificateRecord]) {
    store
        .record_certificates(records, SightingKind::File, "/etc/ssl/test.pem", T0)
        .await
        .unwrap();
}

fn config(extra: Value) -> AlertsConfig {
    let mut base = json!({});
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    serde_json::from_value(base).unwrap()
}

/// Expiry events in the outbox: (fingerprint, kind, threshold).
async fn expiry_events(store: &Store) -> Vec<(String, String, u64)> {
    let mut out: Vec<(String, String, u64)> = store
        .recent_events(10_000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| {
            let kind = e.event["kind"]["type"].as_str()?.to_owned();
            if kind != "certificate_expiring" && kind != "certificate_expired" {
                return None;
            }
            Some((
                e.event["certificate"]["fingerprint"].as_str()?.to_owned(),
                kind,
                e.event["kind"]["threshold_days"].as_u64().unwrap_or(0),
            ))
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn each_threshold_fires_once_over_simulated_time() {
    let store = Store::memory().await.unwrap();
    let cert = record("daily.example.com", T0 + 95 * DAY, &[]);
    let fp = cert.cert.fingerprint.clone();
    add(&store, &[cert]).await;
    let cfg = config(json!({}));
    // Four passes a day for 100 days: thresholds 90..1, then expiry.
    let mut fired_on = Vec::new();
    for quarter in 0..400 {
        let now = T0 + quarter * DAY / 4;
        let report = ledger::pass(&store, &cfg, now).await.unwrap();
        if report.events > 0 {
            fired_on.push(((now - T0) / DAY, report.events));
        }
    }
    let events = expiry_events(&store).await;
    let thresholds: Vec<u64> = events.iter().map(|e| e.2).collect();
    assert_eq!(
        thresholds,
        [0, 1, 3, 7, 14, 30, 60, 90],
        "every threshold and the expiry once: {events:?}"
    );
    assert!(events.iter().all(|e| e.0 == fp));
    // Each fired on the day it was crossed: 95 - threshold.
    let days: Vec<i64> = fired_on.iter().map(|f| f.0).collect();
    assert_eq!(days, [5, 35, 65, 81, 88, 92, 94, 95], "{fired_on:?}");
    assert!(fired_on.iter().all(|f| f.1 == 1));
}

#[tokio::test]
async fn a_daemon_down_across_thresholds_catches_up_with_one_message_and_never_repeats() {
    let store = Store::memory().await.unwrap();
    let cert = record("catchup.example.com", T0 + 100 * DAY, &[]);
    add(&store, &[cert]).await;
    let cfg = config(json!({}));
    assert_eq!(
        ledger::pass(&store, &cfg, T0).await.unwrap(),
        PassReport::default(),
        "100 days left: nothing yet"
    );
    // Down from day 1 to day 75: 25 days left, 90, 60 and 30 crossed.
    let report = ledger::pass(&store, &cfg, T0 + 75 * DAY).await.unwrap();
    assert_eq!((report.raised, report.events), (3, 1), "{report:?}");
    let events = expiry_events(&store).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].2, 30, "the tightest threshold speaks");
    let ledger_rows = store.list_alerts(None, 100, None).await.unwrap().items;
    let folded: Vec<u32> = ledger_rows
        .iter()
        .filter(|a| a.folded)
        .map(|a| a.threshold)
        .collect();
    assert_eq!(
        folded.len(),
        2,
        "90 and 60 are recorded, folded: {ledger_rows:?}"
    );
    // "Restart": the same store, later passes the same day and the next.
    for hours in [1, 5, 23, 30] {
        let report = ledger::pass(&store, &cfg, T0 + 75 * DAY + hours * 3600)
            .await
            .unwrap();
        assert_eq!(report.events, 0, "nothing repeats after {hours} h");
    }
    assert_eq!(expiry_events(&store).await.len(), 1);
}

#[tokio::test]
async fn a_renewed_certificate_stops_alerting_and_its_alerts_resolve() {
    let store = Store::memory().await.unwrap();
    let old = record("renewed.example.com", T0 + 20 * DAY, &[]);
    let new = record("renewed.example.com", T0 + 110 * DAY, &[]);
    let (old_fp, new_fp) = (old.cert.fingerprint.clone(), new.cert.fingerprint.clone());
    add(&store, &[old, new]).await;
    let cfg = config(json!({}));
    let report = ledger::pass(&store, &cfg, T0).await.unwrap();
    assert_eq!(report.events, 1, "20 days left: the 30-day alert");
    store.set_lineage(&old_fp, &new_fp).await.unwrap();
    let report = ledger::pass(&store, &cfg, T0 + DAY).await.unwrap();
    assert_eq!(report.resolved, 3, "30, 60 and 90 resolved: {report:?}");
    // The old one crosses 14, 7, 3, 1 and expires: nothing more about it.
    for day in 2..=25 {
        ledger::pass(&store, &cfg, T0 + day * DAY).await.unwrap();
    }
    let events = expiry_events(&store).await;
    let about_old: Vec<_> = events.iter().filter(|e| e.0 == old_fp).collect();
    assert_eq!(about_old.len(), 1, "{events:?}");
    // The new one has 110 - 25 = 85 days left by now: its 90-day alert.
    assert!(events.iter().any(|e| e.0 == new_fp && e.2 == 90));
    assert!(
        store
            .list_alerts(Some("open"), 100, None)
            .await
            .unwrap()
            .items
            .iter()
            .all(|a| a.fingerprint == new_fp)
    );
}

#[tokio::test]
async fn unacknowledged_alerts_escalate_once_and_acknowledged_ones_never() {
    let store = Store::memory().await.unwrap();
    let ignored = record("ignored.example.com", T0 + 25 * DAY, &[]);
    let handled = record("handled.example.com", T0 + 25 * DAY, &[]);
    let (ignored_fp, handled_fp) = (
        ignored.cert.fingerprint.clone(),
        handled.cert.fingerprint.clone(),
    );
    add(&store, &[ignored, handled]).await;
    let cfg = config(json!({ "escalation": { "after_days": 3, "channels": [] } }));
    ledger::pass(&store, &cfg, T0).await.unwrap();
    let alert = format!("{handled_fp}_30");
    let acked = store.ack_alert(&alert, "alice", T0 + DAY).await.unwrap();
    assert!(
        matches!(&acked, AckOutcome::Acknowledged(a) if a.acked_by.as_deref() == Some("alice")),
        "{acked:?}"
    );
    assert!(matches!(
        store.ack_alert(&alert, "bob", T0 + DAY).await.unwrap(),
        AckOutcome::NotOpen(_)
    ));
    assert_eq!(
        store.ack_alert("nope_30", "alice", T0).await.unwrap(),
        AckOutcome::Missing,
        "an unknown id is not found"
    );
    let mut escalated = Vec::new();
    for day in 1..=10 {
        let report = ledger::pass(&store, &cfg, T0 + day * DAY).await.unwrap();
        escalated.push(report.escalated);
    }
    // Day 3: the ignored certificate's 30-day alert; day 14 - 25 + ... the
    // 14-day threshold is crossed on day 11, after this loop.
    assert_eq!(escalated, [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    let escalations: Vec<Value> = store
        .recent_events(1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .filter(|e| e["kind"]["type"] == "alert_escalated")
        .collect();
    assert_eq!(escalations.len(), 1, "{escalations:?}");
    assert_eq!(
        escalations[0]["certificate"]["fingerprint"],
        json!(ignored_fp)
    );
    assert_eq!(
        escalations[0]["kind"]["alert"],
        json!(format!("{ignored_fp}_30"))
    );
    assert_eq!(escalations[0]["kind"]["unacknowledged_days"], 3);
    assert_eq!(
        escalations[0]["certificate"]["seen_at"],
        json!(["/etc/ssl/test.pem"])
    );
}

// ---- delivery ---------------------------------------------------------------

/// A webhook receiver that deduplicates by `Idempotency-Key` and refuses
/// requests while told to.
#[derive(Clone, Default)]
struct Receiver {
    /// Idempotency key → times received with a 2xx answer.
    accepted: Arc<Mutex<HashMap<String, u32>>>,
    /// Requests refused so far.
    refused: Arc<Mutex<u32>>,
    /// Refuse every request whose key is in here, once, with a 503.
    refuse_once: Arc<Mutex<std::collections::HashSet<String>>>,
    /// Answer 400 (a permanent refusal) to these keys.
    reject: Arc<Mutex<std::collections::HashSet<String>>>,
}

impl Receiver {
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let this = this.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let this = this.clone();
                        async move { Ok::<_, Infallible>(this.answer(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        format!("http://{addr}/hook")
    }

    async fn answer(&self, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
        let key = req
            .headers()
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let _ = req.into_body().collect().await;
        let status = if self.reject.lock().unwrap().contains(&key) {
            400
        } else if self.refuse_once.lock().unwrap().remove(&key) {
            *self.refused.lock().unwrap() += 1;
            503
        } else {
            *self.accepted.lock().unwrap().entry(key).or_default() += 1;
            200
        };
        hyper::Response::builder()
            .status(status)
            .body(Full::new(Bytes::new()))
            .unwrap()
    }
}

fn full_config(url: &str) -> certkeeper::config::Config {
    let mut notifiers = BTreeMap::new();
    notifiers.insert(
        "hook".to_owned(),
        serde_json::from_value(
            json!({ "type": "webhook", "url": url, "secret": "s3cret-hmac-key" }),
        )
        .unwrap(),
    );
    certkeeper::config::Config {
        notifiers,
        alerts: config(json!({
            "check_interval_seconds": 3600,
            "route": [{ "channels": ["hook"] }],
            "delivery": { "backoff_initial_seconds": 1, "backoff_max_seconds": 2 },
        })),
        ..Default::default()
    }
}

async fn push(store: &Store, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("test-event-{i}");
        let event = json!({
            "id": id, "at": "2026-01-01T00:00:00Z",
            "kind": { "type": "certificate_revoked" },
            "certificate": { "fingerprint": format!("{i:064x}"), "subject": "CN=x", "sans": [],
                "issuer": "CN=ca", "serial": "01", "not_after": null, "seen_at": [], "org_unit": null, "contacts": [] },
        });
        store
            .push_event(&certkeeper_model::event::StoredEvent {
                id: id.clone(),
                time: T0 + i as i64,
                event,
            })
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

async fn wait_for(mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..600 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not done within 60 s");
}

#[tokio::test]
async fn events_are_delivered_once_each_through_retries_and_permanent_refusals_are_logged() {
    let store = Store::memory().await.unwrap();
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let ids = push(&store, 60).await;
    for id in ids.iter().take(20) {
        receiver.refuse_once.lock().unwrap().insert(id.clone());
    }
    receiver.reject.lock().unwrap().insert(ids[59].clone());
    let alerts = certkeeper::alerts::Alerts::new(&full_config(&url), store.clone()).unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(alerts.run(cancel.clone()));
    wait_for(async || {
        let counts: HashMap<String, u64> =
            store.delivery_counts().await.unwrap().into_iter().collect();
        counts.get("delivered") == Some(&59) && counts.get("failed") == Some(&1)
    })
    .await;
    cancel.cancel();
    running.await.unwrap();
    let accepted = receiver.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 59);
    assert!(
        accepted.values().all(|&n| n == 1),
        "no event twice: {accepted:?}"
    );
    assert_eq!(
        *receiver.refused.lock().unwrap(),
        20,
        "20 refused once, then retried"
    );
    let retried = store
        .list_deliveries(&certkeeper_store::alerts::DeliveryFilter {
            event: Some(ids[0].clone()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(retried.len(), 1);
    let outcomes: Vec<&str> = retried[0].log.iter().map(|l| l.outcome.as_str()).collect();
    assert_eq!(outcomes, ["retry", "delivered"], "{:?}", retried[0].log);
    assert!(
        retried[0].log[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("503")),
        "the log shows the answer: {:?}",
        retried[0].log
    );
    let failed = store
        .list_deliveries(&certkeeper_store::alerts::DeliveryFilter {
            state: Some("failed".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].event, ids[59]);
    assert_eq!(failed[0].attempts, 1, "a permanent refusal is not retried");
    // Retention: delivered messages go, the failed one stays.
    let now = chrono::Utc::now().timestamp();
    assert_eq!(store.prune_deliveries(now - 3600).await.unwrap(), 0);
    assert_eq!(store.prune_deliveries(now + 3600).await.unwrap(), 59);
    let counts: HashMap<String, u64> = store.delivery_counts().await.unwrap().into_iter().collect();
    assert_eq!(counts.get("failed"), Some(&1));
    assert_eq!(counts.get("delivered"), None);
}

#[tokio::test]
async fn one_channel_down_does_not_hold_up_another() {
    let store = Store::memory().await.unwrap();
    let receiver = Receiver::default();
    let url = receiver.start().await;
    // A black hole: accepts connections, never answers.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole_url = format!("http://{}/hook", hole.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hole.accept().await {
            held.push(s);
        }
    });
    let mut config = full_config(&url);
    config.notifiers.insert(
        "down".to_owned(),
        serde_json::from_value(
            json!({ "type": "webhook", "url": hole_url, "secret": "s", "timeout_secs": 5 }),
        )
        .unwrap(),
    );
    config.alerts.routes[0].channels.push("down".into());
    push(&store, 200).await;
    let alerts = certkeeper::alerts::Alerts::new(&config, store.clone()).unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(alerts.run(cancel.clone()));
    // All 200 reach the working channel while the other hangs.
    wait_for(async || receiver.accepted.lock().unwrap().len() == 200).await;
    let pending = store
        .list_deliveries(&certkeeper_store::alerts::DeliveryFilter {
            channel: Some("down".into()),
            state: Some("pending".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        pending.len(),
        200,
        "the hung channel's messages wait, none lost"
    );
    cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(40), running).await;
}

// ---- the daemon, killed mid-delivery ----------------------------------------

#[path = "common/mod.rs"]
mod common;

/// PEM of `n` certificates expiring 5 days after now.
fn bundle(n: usize) -> String {
    let now = chrono::Utc::now().timestamp();
    let key = PKey::ec_gen("prime256v1").unwrap();
    let mut pem = String::new();
    for i in 0..n {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", &format!("host{i}.example.com"))
            .unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(now - 80 * DAY).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(now + 5 * DAY).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        pem.push_str(&String::from_utf8(b.build().to_pem().unwrap()).unwrap());
    }
    pem
}

#[test]
fn a_daemon_killed_mid_delivery_delivers_everything_after_restart() {
    const N: usize = 150;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = Receiver::default();
    let slow = receiver.clone();
    // Slow enough (50 ms a request, 4 at a time) that the kill lands mid-way.
    let url = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let this = slow.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let this = this.clone();
                        async move {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok::<_, Infallible>(this.answer(req).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        format!("http://{addr}/hook")
    });
    let mut daemon = common::Daemon::new("");
    daemon.write_config(&format!(
        "[notifier.hook]\ntype = \"webhook\"\nurl = \"{url}\"\nsecret = \"whsec-test-0123456789\"\n\n\
         [alerts]\ncheck_interval_seconds = 1\ndigest_over = 0\n\n[alerts.delivery]\nper_channel_concurrency = 4\n\n\
         [[alerts.route]]\nevents = [\"certificate_expiring\"]\nchannels = [\"hook\"]\n"
    ));
    let file = daemon.path("bundle.pem");
    std::fs::write(&file, bundle(N)).unwrap();
    daemon.cli_ok(&["import", file.to_str().unwrap()]);
    daemon.start();
    common::eventually(Duration::from_secs(60), || {
        (receiver.accepted.lock().unwrap().len() >= N / 4).then_some(())
    })
    .expect("deliveries started");
    daemon.signal("KILL");
    daemon.wait_exit(Duration::from_secs(10));
    let before = receiver.accepted.lock().unwrap().len();
    assert!(before < N, "killed before the end ({before} of {N})");

    daemon.start();
    common::eventually(Duration::from_secs(90), || {
        (receiver.accepted.lock().unwrap().len() == N).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "{} of {N} delivered after restart\n{}",
            receiver.accepted.lock().unwrap().len(),
            daemon.log()
        )
    });
    // The delivery log agrees: each event delivered once, first attempt or
    // not. A message sent just before the kill whose outcome was not yet
    // written stays leased (30 s) and is then sent again, so this waits
    // past the lease before counting what was sent twice.
    let log = common::eventually(Duration::from_secs(60), || {
        let log = daemon.cli_json(&[
            "alerts",
            "deliveries",
            "--state",
            "delivered",
            "--limit",
            "1000",
        ]);
        (log["items"].as_array().unwrap().len() == N).then_some(log)
    })
    .unwrap_or_else(|| {
        let all = daemon.cli_json(&["alerts", "deliveries", "--limit", "1000"]);
        panic!(
            "not every delivery recorded as delivered: {}",
            all["counts"]
        )
    });
    let accepted = receiver.accepted.lock().unwrap().clone();
    let resent: u32 = accepted.values().map(|n| n - 1).sum();
    eprintln!("{N} events, {before} delivered before SIGKILL, {resent} re-sent after restart");
    assert!(
        resent <= 8,
        "only messages in flight at the kill are sent again: {resent}"
    );
    let events: std::collections::HashSet<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event"].as_str().unwrap())
        .collect();
    assert_eq!(events.len(), N);
    let (_, metrics) = daemon.get("/metrics");
    assert!(
        metrics.contains(&format!(
            "certkeeper_notification_deliveries{{state=\"delivered\"}} {N}"
        )),
        "{metrics}"
    );
    // No alert repeated after the restart: one ledger message per certificate.
    let alerts = daemon.cli_json(&["alerts", "list", "--limit", "1000"]);
    let speaking: Vec<&Value> = alerts["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["folded"] == false)
        .collect();
    assert_eq!(speaking.len(), N, "one 7-day alert per certificate");
    assert!(speaking.iter().all(|a| a["threshold"] == 7));
    // Acknowledge one through the CLI and the API it drives.
    let id = speaking[0]["id"].as_str().unwrap();
    let out = daemon.cli_ok(&["alerts", "ack", id, "--by", "alice"]);
    assert!(out.contains("acknowledged by alice"), "{out}");
    let again = daemon.cli(&["alerts", "ack", id]);
    assert!(!again.status.success(), "acknowledging twice is refused");
    let missing = daemon.cli(&["alerts", "ack", "no-such-alert"]);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no alert"),
        "{missing:?}"
    );
    drop(runtime);
}

#[test]
fn alert_config_mistakes_name_the_key_and_never_the_secret() {
    let daemon = common::Daemon::new("");
    let cases = [
        (
            "[notifier.hook]\ntype = \"webhook\"\nurl = \"https://h.example.com/x\"\nsecret = \"whsec-do-not-print\"\n\n[[alerts.route]]\nchannels = [\"hoook\"]\n",
            "alerts.route[0].channels",
            "no notifier `hoook`",
        ),
        (
            "[notifier.hook]\ntype = \"webhook\"\nurll = \"https://h.example.com/x\"\nsecret = \"whsec-do-not-print\"\n",
            "notifier.hook",
            "urll",
        ),
        (
            "[notifier.hook]\ntype = \"pager\"\nsecret = \"whsec-do-not-print\"\n",
            "notifier.hook",
            "pager",
        ),
        (
            "[alerts]\nthresholds_days = [30, 0]\n",
            "alerts.thresholds_days",
            "1 to 3650",
        ),
        (
            "[[alerts.route]]\nevents = [\"certificate_expiring\", \"cert_expired\"]\ncontacts = [\"a@example.com\"]\n",
            "alerts.route[0].events",
            "cert_expired",
        ),
        (
            "[[alerts.route]]\nchannels = []\nquiet_hours = \"22-07\"\ncontacts = [\"a@example.com\"]\n",
            "alerts.route[0].quiet_hours",
            "HH:MM-HH:MM",
        ),
    ];
    for (config, key, what) in cases {
        daemon.write_config(config);
        let out = daemon.cli(&["validate"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "accepted:\n{config}");
        assert!(text.contains(key), "no key {key} in: {text}");
        assert!(text.contains(what), "no {what} in: {text}");
        assert!(text.contains("certkeeper.toml"), "no file in: {text}");
        assert!(
            !text.contains("whsec-do-not-print"),
            "secret leaked: {text}"
        );
    }
}

#[test]
fn restricted_outbound_refuses_internal_urls_unless_allowed() {
    let daemon = common::Daemon::new("");
    let hook = |url: &str, extra: &str| {
        format!(
            "[security]\nrestrict_outbound = true\n{extra}\n[notifier.hook]\ntype = \"webhook\"\nurl = \"{url}\"\nsecret = \"whsec-0123456789\"\n"
        )
    };
    for (url, extra, accepted) in [
        ("http://169.254.169.254/latest/meta-data/", "", false),
        ("http://10.1.2.3/hook", "", false),
        ("http://[::ffff:127.0.0.1]:8080/hook", "", false),
        ("http://2130706433/hook", "", false),
        (
            "http://127.0.0.1:9/hook",
            "allowed_networks = [\"127.0.0.0/8\"]\n",
            true,
        ),
        ("https://203.0.113.7/hook", "", true),
        (
            "https://203.0.113.7/hook",
            "denied_networks = [\"203.0.113.0/24\"]\n",
            false,
        ),
    ] {
        daemon.write_config(&hook(url, extra));
        let out = daemon.cli(&["validate"]);
        let text = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.success(), accepted, "{url} {extra}: {text}");
        if !accepted {
            assert!(text.contains("notifier.hook"), "{text}");
            assert!(
                !text.contains("meta-data"),
                "the URL path is not echoed: {text}"
            );
        }
    }
    daemon.write_config("[security]\nallowed_networks = [\"ten\"]\n");
    let out = daemon.cli(&["validate"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("security.allowed_networks"));
}

/// A CA certificate for `cn` expiring at `not_after`, as the inventory
/// records it.
fn ca_record(cn: &str, not_after: i64) -> CertificateRecord {
    self_signed(cn, not_after, true)
}

#[tokio::test]
async fn roots_in_a_bundle_on_disk_raise_no_expiry_alert_unless_asked() {
    let store = Store::memory().await.unwrap();
    let bundled = ca_record("Old Root in ca-certificates.crt", T0 + 20 * DAY);
    let imported = ca_record("Old Root imported with the bundle", T0 + 20 * DAY);
    let served = ca_record("Intermediate a server sends", T0 + 20 * DAY);
    // `openssl req -x509` makes CA:TRUE certificates; this one names its host.
    let self_signed = ca_record("intranet.example.com", T0 + 20 * DAY);
    let leaf = record("www.example.com", T0 + 20 * DAY, &[]);
    store
        .record_certificates(
            std::slice::from_ref(&bundled),
            SightingKind::File,
            "/etc/ssl/certs/ca-certificates.crt",
            T0,
        )
        .await
        .unwrap();
    store
        .record_certificates(
            &[imported.clone(), self_signed.clone()],
            SightingKind::Import,
            "api upload",
            T0,
        )
        .await
        .unwrap();
    store
        .record_certificates(
            &[leaf.clone(), served.clone()],
            SightingKind::Endpoint,
            "10.0.0.1:443",
            T0,
        )
        .await
        .unwrap();
    ledger::pass(&store, &config(json!({})), T0).await.unwrap();
    let mut got: Vec<String> = expiry_events(&store)
        .await
        .into_iter()
        .map(|e| e.0)
        .collect();
    got.sort();
    let mut expected = vec![
        leaf.cert.fingerprint.clone(),
        served.cert.fingerprint.clone(),
        self_signed.cert.fingerprint.clone(),
    ];
    expected.sort();
    assert_eq!(
        got, expected,
        "the leaf, the served intermediate and the self-signed server certificate alert; the bundled roots not"
    );
    // Asked for, the bundled root alerts too.
    ledger::pass(&store, &config(json!({ "ca_certificates": true })), T0 + 60)
        .await
        .unwrap();
    assert!(
        expiry_events(&store)
            .await
            .iter()
            .any(|e| e.0 == bundled.cert.fingerprint)
    );
}

#[tokio::test]
async fn an_acknowledged_alert_is_quiet_until_the_next_threshold() {
    let store = Store::memory().await.unwrap();
    let cert = record("acked.example.com", T0 + 40 * DAY, &[]);
    let fp = cert.cert.fingerprint.clone();
    add(&store, &[cert]).await;
    let cfg = config(json!({}));
    ledger::pass(&store, &cfg, T0).await.unwrap();
    assert_eq!(
        expiry_events(&store).await,
        [(fp.clone(), "certificate_expiring".to_owned(), 60)]
    );
    let acked = store
        .ack_alert(&ledger::alert_id(&fp, 60), "alice", T0 + 60)
        .await
        .unwrap();
    assert!(matches!(acked, AckOutcome::Acknowledged(_)), "{acked:?}");
    // Daily passes from 39 down to 31 days left: nothing.
    for day in 1..=9 {
        let report = ledger::pass(&store, &cfg, T0 + day * DAY).await.unwrap();
        assert_eq!(report.events, 0, "day {day}: {report:?}");
    }
    // 30 days left: the next threshold speaks, acknowledged or not.
    let report = ledger::pass(&store, &cfg, T0 + 10 * DAY).await.unwrap();
    assert_eq!(report.events, 1, "{report:?}");
    let thresholds: Vec<u64> = expiry_events(&store).await.iter().map(|e| e.2).collect();
    assert_eq!(thresholds, [30, 60]);
}

/// A Messages API in Twilio's shape (`POST .../Messages.json`, form body with
/// `To`, `From`, `Body`; 201 Created), recording the `To` of every message.
#[derive(Clone, Default)]
struct TextReceiver {
    to: Arc<Mutex<Vec<String>>>,
}

impl TextReceiver {
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let this = self.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let this = this.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                            let this = this.clone();
                            async move {
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                let to = url::form_urlencoded::parse(&body)
                                    .find(|(k, _)| k == "To")
                                    .map(|(_, v)| v.into_owned())
                                    .unwrap_or_default();
                                this.to.lock().unwrap().push(to);
                                Ok::<_, Infallible>(
                                    hyper::Response::builder()
                                        .status(201)
                                        .body(Full::new(Bytes::from_static(b"{\"sid\":\"SM1\"}")))
                                        .unwrap(),
                                )
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        format!("http://{addr}")
    }
}

/// A contact that asked for the text channel by name is texted at its own
/// number, once, for the event types it wants only; the channel's own
/// number still gets what routing sends it.
#[tokio::test]
async fn contacts_are_reached_the_way_they_asked() {
    let store = Store::memory().await.unwrap();
    let texts = TextReceiver::default();
    let url = texts.start().await;
    let mut notifiers = BTreeMap::new();
    notifiers.insert(
        "text".to_owned(),
        serde_json::from_value(json!({
            "type": "sms", "account_sid": "AC123", "auth_token": "not-a-real-token",
            "from": "+15005550006", "to": "+15005550000", "url": url,
        }))
        .unwrap(),
    );
    let config = certkeeper::config::Config {
        notifiers,
        alerts: config(json!({
            "check_interval_seconds": 3600,
            // Revocations go to the on-call phone; nothing routes expiry
            // news to the text channel.
            "route": [{ "events": ["certificate_revoked"], "channels": ["text"] }],
            "delivery": { "backoff_initial_seconds": 1, "backoff_max_seconds": 2 },
        })),
        ..Default::default()
    };
    store
        .put_contact(&certkeeper_store::contacts::Contact {
            name: "ssladmin@example.com".into(),
            email: None,
            phone: Some("+4915112345678".into()),
            events: vec!["certificate_expiring".into()],
            channels: vec!["text".into()],
        })
        .await
        .unwrap();
    for (id, kind) in [
        (
            "expiring-1",
            json!({ "type": "certificate_expiring", "threshold_days": 30, "days_left": 29 }),
        ),
        ("revoked-1", json!({ "type": "certificate_revoked" })),
    ] {
        let event = json!({
            "id": id, "at": "2026-01-01T00:00:00Z", "kind": kind,
            "certificate": { "fingerprint": format!("{:064x}", 7), "subject": "CN=shop", "sans": [],
                "issuer": "CN=ca", "serial": "01", "not_after": null, "seen_at": [], "org_unit": null,
                "contacts": ["SSLAdmin@example.com"] },
        });
        store
            .push_event(&certkeeper_model::event::StoredEvent {
                id: id.into(),
                time: T0,
                event,
            })
            .await
            .unwrap();
    }
    let alerts = certkeeper::alerts::Alerts::new(&config, store.clone()).unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(alerts.run(cancel.clone()));
    wait_for(async || {
        let counts: HashMap<String, u64> =
            store.delivery_counts().await.unwrap().into_iter().collect();
        counts.get("delivered") == Some(&2)
    })
    .await;
    cancel.cancel();
    running.await.unwrap();
    let mut to = texts.to.lock().unwrap().clone();
    to.sort();
    assert_eq!(
        to,
        ["+15005550000", "+4915112345678"],
        "the expiry to the contact's phone, the revocation to the on-call number"
    );
}

/// A first pass over an estate already in the inventory records, for each
/// certificate, the one threshold it is in now, and later passes add no
/// rows for the looser thresholds it crossed before anyone watched.
#[tokio::test]
async fn a_first_pass_records_only_the_threshold_each_certificate_is_in_now() {
    let store = Store::memory().await.unwrap();
    let soon = record("soon.example.com", T0 + 21 * DAY, &[]);
    let gone = record("gone.example.com", T0 - 9 * DAY, &[]);
    let (soon_fp, gone_fp) = (soon.cert.fingerprint.clone(), gone.cert.fingerprint.clone());
    add(&store, &[soon, gone]).await;
    let cfg = config(json!({}));
    // The daemon starts a day after the import: 20 days left, 10 expired.
    let report = ledger::pass(&store, &cfg, T0 + DAY).await.unwrap();
    assert_eq!((report.raised, report.events), (2, 2), "{report:?}");
    for day in 2..=3 {
        ledger::pass(&store, &cfg, T0 + day * DAY).await.unwrap();
    }
    let mut rows: Vec<(String, u32)> = store
        .list_alerts(None, 100, None)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|a| (a.fingerprint, a.threshold))
        .collect();
    rows.sort();
    let mut expected = vec![(soon_fp, 30), (gone_fp, 0)];
    expected.sort();
    assert_eq!(rows, expected, "one row each, no folded 60 and 90");
}

/// Sixty certificates crossing an expiry threshold in one pass, with
/// `digest_over = 20`: the channel gets one digest message listing them,
/// not sixty; a restart sends nothing again.
#[test]
fn a_pass_over_the_digest_limit_sends_one_message_per_channel() {
    const N: usize = 60;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = Receiver::default();
    let url = runtime.block_on(receiver.start());
    let mut daemon = common::Daemon::new("");
    daemon.write_config(&format!(
        "[notifier.hook]\ntype = \"webhook\"\nurl = \"{url}\"\nsecret = \"whsec-test-0123456789\"\n\n\
         [alerts]\ncheck_interval_seconds = 1\ndigest_over = 20\n\n\
         [[alerts.route]]\nevents = [\"certificate_expiring\"]\nchannels = [\"hook\"]\n"
    ));
    let file = daemon.path("bundle.pem");
    std::fs::write(&file, bundle(N)).unwrap();
    daemon.cli_ok(&["import", file.to_str().unwrap()]);
    daemon.start();
    let delivered = common::eventually(Duration::from_secs(60), || {
        let log = daemon.cli_json(&["alerts", "deliveries", "--state", "delivered"]);
        let items = log["items"].as_array()?.clone();
        (!items.is_empty()).then_some(items)
    })
    .unwrap_or_else(|| panic!("nothing delivered\n{}", daemon.log()));
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0]["kind"], "expiry_digest");
    let alerts = daemon.cli_json(&["alerts", "list", "--limit", "1000"]);
    let alerted: std::collections::HashSet<&str> = alerts["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["fingerprint"].as_str().unwrap())
        .collect();
    assert_eq!(alerted.len(), N, "each certificate still has its alert");

    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(30));
    daemon.start();
    std::thread::sleep(Duration::from_secs(3));
    let accepted = receiver.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    assert_eq!(accepted.values().sum::<u32>(), 1, "sent once");
}
