//! Certificate Transparency monitoring through the daemon: `[discovery.ct]`
//! following real logs served on loopback by the test harness (`ct_log`: an
//! RFC 6962 log and a static-ct-api log with real Merkle trees and signed
//! tree heads, filled from test CAs).
//!
//! What a user would check is asserted: exactly the watched domains'
//! certificates enter the inventory (`ct:LOG` sightings), each not issued
//! through an approved CA is one `shadow_issuance` finding and one event
//! however many logs hold it (a precertificate and its final certificate
//! too), one from an approved CA is `unknown_issuance`; `certkeeper ct
//! status` shows each log read to its head; a `kill -9` mid-run resumes
//! with no entry read twice or skipped and no alert repeated; a forked log
//! or a bad signature is one `ct_log_misbehaved` alert while the other logs
//! are read on.

#![allow(clippy::unwrap_used)]

mod common;
mod ct_log;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Daemon, eventually, job_runs, runtime};
use ct_log::{Api, Log, Misbehaviour, TestCa};
use serde_json::Value;

/// A `[[discovery.ct.log]]` block for `log`, served at `url`.
fn log_block(log: &Log, api: Api, url: &str) -> String {
    match api {
        Api::Rfc6962 => format!(
            "[[discovery.ct.log]]\nname = \"{}\"\nurl = \"{url}\"\nkey = \"{}\"\n\n",
            log.name(),
            log.key_base64()
        ),
        Api::Static => format!(
            "[[discovery.ct.log]]\nname = \"{}\"\nmonitoring_url = \"{url}\"\norigin = \"{}\"\nkey = \"{}\"\n\n",
            log.name(),
            log.origin(),
            log.key_base64()
        ),
    }
}

/// `[discovery.ct]` watching `example.com`, read from the beginning, run
/// only on demand.
fn ct_config(extra: &str, batch: u64, parallel: usize) -> String {
    format!(
        "[discovery.ct]\ndomains = [\"example.com\"]\nmanaged_domains = false\n\
         start = \"beginning\"\nschedule = \"0 0 0 1 1 * 2099\"\nbatch_size = {batch}\n\
         parallel = {parallel}\ntimeout_seconds = 5\n\n{extra}"
    )
}

/// Runs the `ct` job now and waits until it has finished.
fn run_ct(daemon: &Daemon) {
    let before = job_runs(daemon, "ct");
    daemon.cli_ok(&["jobs", "--run-now", "ct"]);
    eventually(Duration::from_secs(120), || {
        (job_runs(daemon, "ct") > before).then_some(())
    })
    .unwrap_or_else(|| panic!("the ct job did not run\n{}", daemon.log()));
}

/// `certkeeper ct status`, by log name.
fn status(daemon: &Daemon) -> Vec<Value> {
    daemon
        .cli_json(&["ct", "status"])
        .as_array()
        .unwrap()
        .clone()
}

fn log_status(daemon: &Daemon, log: &Log) -> Value {
    status(daemon)
        .into_iter()
        .find(|s| s["log"] == log.name())
        .unwrap_or_else(|| panic!("{} is not in ct status", log.name()))
}

/// The daemon's events of `kind` (and, for findings, `code`).
fn events(daemon: &Daemon, kind: &str, code: Option<&str>) -> Vec<Value> {
    let (status, body) = daemon.get("/api/v1/events?limit=1000");
    assert_eq!(status, 200, "{body}");
    let all: Value = serde_json::from_str(&body).unwrap();
    all["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{all}"))
        .iter()
        .filter(|e| e["kind"]["type"] == kind)
        .filter(|e| code.is_none_or(|c| e["kind"]["code"] == c))
        .cloned()
        .collect()
}

/// The findings with `code`: their fingerprints' serials (the CN-less way a
/// precertificate and its final certificate are one).
fn findings(daemon: &Daemon, code: &str) -> Vec<Value> {
    let (status, body) = daemon.get(&format!("/api/v1/findings?code={code}&limit=1000"));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn sha256_hex(der: &[u8]) -> String {
    hex::encode(openssl::sha::sha256(der))
}

/// Where the inventory saw the certificate `fingerprint`.
fn sightings(daemon: &Daemon, fingerprint: &str) -> BTreeSet<String> {
    let shown = daemon.cli_json(&["certificates", "show", fingerprint]);
    shown["sightings"]
        .as_array()
        .unwrap_or_else(|| panic!("no sightings: {shown}"))
        .iter()
        .map(|s| s["location"].as_str().unwrap().to_owned())
        .collect()
}

fn pem(der: &[u8]) -> String {
    openssl::x509::X509::from_der(der)
        .unwrap()
        .to_pem()
        .map(|p| String::from_utf8(p).unwrap())
        .unwrap()
}

#[test]
fn watched_domains_certificates_are_recorded_and_alerted_once_whatever_logs_hold_them() {
    let rt = runtime();
    let shadow = TestCa::new("Shadow Issuing CA");
    let approved = TestCa::new("Approved Issuing CA");
    let rfc = Log::new(Api::Rfc6962);
    let tiled = Log::new(Api::Static);

    let www = shadow.issue(&["www.example.com"], 1001);
    let wildcard = shadow.issue(&["*.example.com"], 1002);
    let api = shadow.precert_pair(&["api.example.com"], 1003);
    let other = shadow.issue(&["www.other.test"], 1004);
    let lookalike = shadow.issue(&["notexample.com", "example.com.evil.test"], 1005);
    let mail = approved.issue(&["mail.example.com"], 2001);
    let shop = shadow.issue(&["shop.EXAMPLE.com"], 1006);

    let noise = shadow.template(&["host.unrelated.test"], false);
    rfc.add_templated(&noise, 50_000, 300);
    rfc.add_cert(&www, &shadow.chain());
    rfc.add_cert(&wildcard, &shadow.chain());
    rfc.add_precert_pair(&api);
    rfc.add_cert(&other, &shadow.chain());
    rfc.add_cert(&lookalike, &shadow.chain());
    rfc.add_cert(&mail, &approved.chain());
    rfc.add_templated(&noise, 60_000, 300);
    rfc.publish();
    // The same pair in the tiled log, and one only there.
    tiled.add_templated(&noise, 70_000, 600);
    tiled.add_precert_pair(&api);
    tiled.add_cert(&shop, &shadow.chain());
    tiled.publish();
    let (rfc_url, tiled_url) = rt.block_on(async { (rfc.serve().await, tiled.serve().await) });

    let mut daemon = Daemon::new("");
    let approved_pem = daemon.path("approved.pem");
    std::fs::write(&approved_pem, pem(&approved.cert_der())).unwrap();
    daemon.write_config(&format!(
        "[discovery.policy]\napproved_issuers = \"{}\"\n\n{}",
        approved_pem.display(),
        ct_config(
            &(log_block(&rfc, Api::Rfc6962, &rfc_url)
                + &log_block(&tiled, Api::Static, &tiled_url)),
            64,
            2
        )
    ));
    daemon.start();
    run_ct(&daemon);

    // Both logs read to their heads, every entry once.
    for log in [&rfc, &tiled] {
        let s = log_status(&daemon, log);
        assert_eq!(s["tree_size"], log.published_size(), "{s}");
        assert_eq!(s["next_index"], log.published_size(), "{s}");
        assert_eq!(s["lag"], 0, "{s}");
        assert_eq!(s["entries"], log.published_size(), "{s}");
        assert!(s["error"].is_null(), "{s}");
    }
    // www, the wildcard, the pair's two entries, mail.
    assert_eq!(log_status(&daemon, &rfc)["matches"], 5);
    // In the inventory, seen in CT: the watched ones, none of the others.
    let ct_rfc = format!("ct:{}", rfc.name());
    let ct_tiled = format!("ct:{}", tiled.name());
    for cert in [&www, &wildcard, &api.final_cert, &mail] {
        assert!(
            sightings(&daemon, &sha256_hex(cert)).contains(&ct_rfc),
            "{ct_rfc} missing"
        );
    }
    let both = sightings(&daemon, &sha256_hex(&api.final_cert));
    assert!(both.contains(&ct_tiled), "{both:?}");
    assert!(sightings(&daemon, &sha256_hex(&shop)).contains(&ct_tiled));
    for cert in [&other, &lookalike] {
        let out = daemon.cli(&["certificates", "show", &sha256_hex(cert)]);
        assert!(
            !out.status.success(),
            "an unwatched certificate is in the inventory"
        );
    }
    let unrelated = daemon.cli_json(&["certificates", "list", "-q", "unrelated.test"]);
    assert_eq!(
        unrelated["items"].as_array().map_or(0, Vec::len),
        0,
        "{unrelated}"
    );

    // One finding and one event per certificate: www, wildcard, api (its
    // precertificate and final certificate, in two logs), shop.
    let shadows = findings(&daemon, "shadow_issuance");
    assert_eq!(shadows.len(), 4, "{shadows:#?}");
    let unknown = findings(&daemon, "unknown_issuance");
    assert_eq!(unknown.len(), 1, "{unknown:#?}");
    assert_eq!(unknown[0]["fingerprint"], sha256_hex(&mail));
    assert_eq!(
        events(&daemon, "discovery_finding", Some("shadow_issuance")).len(),
        4
    );
    assert_eq!(
        events(&daemon, "discovery_finding", Some("unknown_issuance")).len(),
        1
    );

    // Read again: nothing new, nothing alerted twice.
    run_ct(&daemon);
    assert_eq!(log_status(&daemon, &rfc)["entries"], rfc.published_size());
    assert_eq!(
        events(&daemon, "discovery_finding", Some("shadow_issuance")).len(),
        4
    );
    // New entries are read from where the last run ended.
    let late = shadow.issue(&["late.example.com"], 1007);
    rfc.add_cert(&late, &shadow.chain());
    rfc.publish();
    run_ct(&daemon);
    let s = log_status(&daemon, &rfc);
    assert_eq!(s["entries"], rfc.published_size(), "{s}");
    assert_eq!(s["lag"], 0, "{s}");
    assert_eq!(findings(&daemon, "shadow_issuance").len(), 5);
    drop(rt);
}

#[test]
fn a_kill_during_a_ct_run_resumes_without_gaps_repeats_or_repeated_alerts() {
    let rt = runtime();
    let shadow = TestCa::new("Shadow Issuing CA");
    let rfc = Log::new(Api::Rfc6962);
    let noise = shadow.template(&["host.unrelated.test"], false);
    let watched = shadow.template(&["*.shop.example.com"], false);
    // 200 watched certificates spread through 60,000 entries.
    for block in 0..200 {
        rfc.add_templated(&noise, 1_000_000 + block * 300, 299);
        rfc.add_templated(&watched, 5_000_000 + block, 1);
    }
    rfc.publish();
    rfc.set_page_limit(32);
    let url = rt.block_on(rfc.serve());
    let size = rfc.published_size();

    let mut daemon = Daemon::new(&ct_config(&log_block(&rfc, Api::Rfc6962, &url), 32, 1));
    daemon.start();
    daemon.cli_ok(&["jobs", "--run-now", "ct"]);
    // Kill it once some batches are recorded and many are not.
    let progress = eventually(Duration::from_secs(60), || {
        status(&daemon)
            .first()
            .and_then(|s| s["next_index"].as_u64())
            .filter(|n| *n > 0)
    })
    .unwrap_or_else(|| panic!("no batch was recorded\n{}", daemon.log()));
    daemon.signal("KILL");
    daemon.wait_exit(Duration::from_secs(10));
    assert!(
        progress < size,
        "the run finished before it could be killed"
    );

    daemon.start();
    run_ct(&daemon);
    let s = log_status(&daemon, &rfc);
    assert_eq!(s["next_index"], size, "{s}");
    // Entries are counted when their batch is saved: a re-read batch or a
    // skipped one would show here.
    assert_eq!(s["entries"], size, "{s}");
    assert_eq!(s["matches"], 200, "{s}");
    assert_eq!(findings(&daemon, "shadow_issuance").len(), 200);
    assert_eq!(
        events(&daemon, "discovery_finding", Some("shadow_issuance")).len(),
        200
    );
    drop(rt);
}

#[test]
fn a_forked_or_badly_signed_log_is_alerted_once_and_the_others_are_read_on() {
    let rt = runtime();
    let shadow = TestCa::new("Shadow Issuing CA");
    let forking = Log::new(Api::Rfc6962);
    let liar = Log::new(Api::Static);
    let honest = Log::new(Api::Static);
    for (i, log) in [&forking, &liar, &honest].into_iter().enumerate() {
        log.add_cert(
            &shadow.issue(&["www.example.com"], 10 + i as u64),
            &shadow.chain(),
        );
        log.add_templated(&shadow.template(&["a.unrelated.test"], false), 100, 50);
        log.publish();
    }
    let urls: Vec<String> = rt.block_on(async {
        vec![
            forking.serve().await,
            liar.serve().await,
            honest.serve().await,
        ]
    });
    let blocks = log_block(&forking, Api::Rfc6962, &urls[0])
        + &log_block(&liar, Api::Static, &urls[1])
        + &log_block(&honest, Api::Static, &urls[2]);
    let mut daemon = Daemon::new(&ct_config(&blocks, 64, 2));
    daemon.start();
    run_ct(&daemon);
    for log in [&forking, &liar, &honest] {
        assert_eq!(log_status(&daemon, log)["lag"], 0);
    }

    // The forking log serves another history at the same size; the liar
    // signs its next head badly; the honest one logs another certificate.
    forking.fork();
    liar.add_cert(&shadow.issue(&["b.example.com"], 20), &shadow.chain());
    liar.publish();
    liar.set_misbehaviour(Some(Misbehaviour::BadSignature));
    honest.add_cert(&shadow.issue(&["c.example.com"], 30), &shadow.chain());
    honest.publish();
    run_ct(&daemon);
    run_ct(&daemon);

    let s = log_status(&daemon, &forking);
    assert_eq!(s["misbehaved"], true, "{s}");
    assert!(s["error"].as_str().unwrap().contains(forking.name()), "{s}");
    let s = log_status(&daemon, &liar);
    assert_eq!(s["misbehaved"], true, "{s}");
    assert_eq!(
        s["next_index"], 51,
        "nothing past the bad head is read: {s}"
    );
    let s = log_status(&daemon, &honest);
    assert_eq!(s["lag"], 0, "{s}");
    assert_eq!(s["next_index"], honest.published_size(), "{s}");
    assert!(s["error"].is_null(), "{s}");

    let alerts = events(&daemon, "ct_log_misbehaved", None);
    let logs: Vec<&str> = alerts
        .iter()
        .map(|e| e["kind"]["log"].as_str().unwrap())
        .collect();
    assert_eq!(alerts.len(), 2, "one alert per misbehaving log: {logs:?}");
    assert!(logs.contains(&forking.name()) && logs.contains(&liar.name()));
    // Status and metrics show it.
    let (_, metrics) = daemon.get("/metrics");
    assert!(
        metrics.contains(&format!(
            "certkeeper_ct_log_error{{log=\"{}\"}} 2",
            forking.name()
        )),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "certkeeper_ct_log_lag_entries{{log=\"{}\"}} 0",
        honest.name()
    )));
    drop(rt);
}
