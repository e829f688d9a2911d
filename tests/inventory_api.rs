//! The inventory through the CLI and the HTTP API, end to end: importing a real
//! chain made with `openssl` (fields compared with what `openssl x509` prints),
//! deduplication with sightings, filters, pagination, 4xx on bad input, and
//! `/metrics` as valid Prometheus text.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use common::{Daemon, fingerprint, make_chain, openssl};
use serde_json::Value;

fn openssl_field(dir: &std::path::Path, pem: &str, flag: &str) -> String {
    let out = openssl(
        dir,
        &["x509", "-in", pem, "-noout", flag, "-nameopt", "RFC2253"],
    );
    out.trim().split_once('=').unwrap().1.trim().to_string()
}

#[test]
fn import_chain_matches_openssl_and_dedups_without_a_daemon() {
    let daemon = Daemon::new("");
    let work = daemon.path("pki");
    std::fs::create_dir(&work).unwrap();
    make_chain(&work, "shop.example.com", 200);
    let chain = work.join("chain.pem");

    // No daemon running: the CLI opens the embedded store itself.
    let out = daemon.cli_json(&["import", chain.to_str().unwrap()]);
    assert_eq!(out["added"].as_array().unwrap().len(), 3, "{out}");

    let leaf_fp = fingerprint(&work, "leaf.pem");
    let shown = daemon.cli_json(&["certificates", "show", &leaf_fp]);
    let cert = &shown["certificate"];
    assert_eq!(cert["fingerprint"], leaf_fp);
    let serial = openssl_field(&work, "leaf.pem", "-serial").to_lowercase();
    assert_eq!(cert["serial"], serial);
    let end = openssl_field(&work, "leaf.pem", "-enddate");
    let end = chrono::NaiveDateTime::parse_from_str(&end.replace(" GMT", ""), "%b %e %H:%M:%S %Y")
        .unwrap()
        .and_utc()
        .timestamp();
    assert_eq!(cert["not_after"], end);
    assert_eq!(cert["subject_cn"], "shop.example.com");
    assert_eq!(cert["issuer_cn"], "Test Issuing CA");
    assert_eq!(
        cert["san_dns"],
        serde_json::json!(["shop.example.com", "www.shop.example.com"])
    );
    assert_eq!(cert["san_ip"], serde_json::json!(["192.0.2.7"]));
    assert_eq!(cert["key_algorithm"], "EC");
    assert_eq!(cert["key_bits"], 256);
    assert_eq!(
        cert["extended_key_usage"],
        serde_json::json!(["serverAuth"])
    );
    assert_eq!(cert["is_ca"], false);
    assert_eq!(cert["usage"], "server");
    assert_eq!(cert["status"], "valid");
    let root = daemon.cli_json(&["certificates", "show", &fingerprint(&work, "root.pem")]);
    assert_eq!(root["certificate"]["is_ca"], true);
    assert_eq!(root["certificate"]["self_signed"], true);
    assert_eq!(root["certificate"]["usage"], "ca");
    assert_eq!(root["certificate"]["key_bits"], 2048);

    // The same chain from another path: nothing new, one more sighting.
    let copy = daemon.path("copy.pem");
    std::fs::copy(&chain, &copy).unwrap();
    let out = daemon.cli_json(&["import", copy.to_str().unwrap()]);
    assert_eq!(out["added"].as_array().unwrap().len(), 0);
    assert_eq!(out["known"].as_array().unwrap().len(), 3);
    let shown = daemon.cli_json(&["certificates", "show", &leaf_fp]);
    let locations: HashSet<&str> = shown["sightings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["location"].as_str().unwrap())
        .collect();
    assert!(
        locations.contains(chain.to_str().unwrap()) && locations.contains(copy.to_str().unwrap()),
        "{locations:?}"
    );
    let list = daemon.cli_json(&["certificates", "list"]);
    assert_eq!(list["items"].as_array().unwrap().len(), 3, "no duplicates");

    // DER is accepted; a file with no certificate is refused with its name.
    openssl(
        &work,
        &[
            "x509", "-in", "leaf.pem", "-outform", "DER", "-out", "leaf.der",
        ],
    );
    let out = daemon.cli_json(&["import", work.join("leaf.der").to_str().unwrap()]);
    assert_eq!(out["known"][0], leaf_fp);
    let junk = daemon.path("notes.txt");
    std::fs::write(&junk, "not a certificate").unwrap();
    let out = daemon.cli(&["import", junk.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("notes.txt"));

    // The CSV export is RFC 4180: the subject DN holds commas and is quoted.
    let csv = daemon.cli_ok(&["certificates", "list", "--format", "csv"]);
    assert!(csv.starts_with("fingerprint,status,"), "{csv}");
    assert!(
        csv.contains("\"CN=Test Root CA,O=Certkeeper Test\"")
            || csv.contains("\"O=Certkeeper Test"),
        "{csv}"
    );
}

/// Imports `n` leaf certificates valid for 1..=n*10 days, plus their CAs.
fn populate(daemon: &Daemon, n: u32) -> Vec<String> {
    let work = daemon.path("many");
    std::fs::create_dir_all(&work).unwrap();
    make_chain(&work, "base.example.net", 400);
    let mut fps = Vec::new();
    let mut bundle = String::new();
    for i in 1..=n {
        let days = (i * 10).to_string();
        let name = format!("host{i}.example.net");
        openssl(
            &work,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "k.pem",
                "-out",
                "c.pem",
                "-days",
                &days,
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                &format!("subjectAltName=DNS:{name}"),
            ],
        );
        fps.push(fingerprint(&work, "c.pem"));
        bundle.push_str(&std::fs::read_to_string(work.join("c.pem")).unwrap());
    }
    std::fs::write(work.join("bundle.pem"), bundle).unwrap();
    let out = daemon.cli_json(&[
        "import",
        work.join("bundle.pem").to_str().unwrap(),
        work.join("chain.pem").to_str().unwrap(),
    ]);
    assert_eq!(out["added"].as_array().unwrap().len() as u32, n + 3);
    fps
}

fn get_json(daemon: &Daemon, path: &str) -> (u16, Value) {
    let (status, body) = daemon.get(path);
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")),
    )
}

#[test]
fn api_filters_pages_and_refuses_bad_input() {
    let mut daemon = Daemon::new("");
    let fps = populate(&daemon, 12);
    daemon.start();

    // Everything, soonest first: 12 self-signed leaves + root, inter, leaf.
    let (status, page) = get_json(&daemon, "/api/v1/certificates?limit=1000");
    assert_eq!(status, 200);
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 15);
    let not_after: Vec<i64> = items
        .iter()
        .map(|c| c["not_after"].as_i64().unwrap())
        .collect();
    assert!(not_after.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(
        items[0]["fingerprint"], fps[0],
        "the 10-day certificate comes first"
    );

    // Pagination: pages of 4 cover everything exactly once.
    let mut seen = Vec::new();
    let mut path = "/api/v1/certificates?limit=4".to_string();
    loop {
        let (status, page) = get_json(&daemon, &path);
        assert_eq!(status, 200);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 4);
        seen.extend(
            items
                .iter()
                .map(|c| c["fingerprint"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/certificates?limit=4&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 15);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 15);

    // Sorted by subject or issuer, either way, in pages of 4: each
    // certificate once, in the order asked. Most share an issuer, so the
    // pages break ties by fingerprint.
    let walk = |query: &str| {
        let mut rows: Vec<(String, String, String)> = Vec::new();
        let mut path = format!("/api/v1/certificates?limit=4&{query}");
        loop {
            let (status, page) = get_json(&daemon, &path);
            assert_eq!(status, 200, "{path}: {page}");
            let text = |c: &Value, k: &str| c[k].as_str().unwrap().to_owned();
            rows.extend(page["items"].as_array().unwrap().iter().map(|c| {
                (
                    text(c, "subject"),
                    text(c, "issuer"),
                    text(c, "fingerprint"),
                )
            }));
            match page["next_cursor"].as_str() {
                Some(c) => path = format!("/api/v1/certificates?limit=4&{query}&cursor={c}"),
                None => return rows,
            }
        }
    };
    for (query, key) in [
        ("sort=subject", 0),
        ("sort=issuer", 1),
        ("sort=subject&order=desc", 0),
        ("sort=issuer&order=desc", 1),
    ] {
        let rows = walk(query);
        let keys: Vec<(String, String)> = rows
            .iter()
            .map(|r| (if key == 0 { &r.0 } else { &r.1 }.clone(), r.2.clone()))
            .collect();
        let mut expected = keys.clone();
        expected.sort();
        if query.ends_with("desc") {
            expected.reverse();
        }
        assert_eq!(keys.len(), 15, "{query}");
        assert_eq!(keys, expected, "{query}");
    }
    // A cursor belongs to its order; an unknown order is named.
    let (_, first) = get_json(&daemon, "/api/v1/certificates?limit=4&sort=subject");
    let cursor = first["next_cursor"].as_str().unwrap();
    let (status, body) = get_json(&daemon, &format!("/api/v1/certificates?cursor={cursor}"));
    assert!(
        status == 400 && body.to_string().contains("cursor"),
        "{body}"
    );
    let (status, body) = get_json(&daemon, "/api/v1/certificates?sort=colour");
    assert!(status == 400 && body.to_string().contains("sort"), "{body}");

    // Filters: expiring within 30 days = the 10, 20 and 30-day ones; status the same.
    let (_, page) = get_json(&daemon, "/api/v1/certificates?expiring_within=30d");
    let got: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["fingerprint"].as_str().unwrap())
        .collect();
    assert_eq!(got, fps[..3].iter().map(String::as_str).collect::<Vec<_>>());
    let (_, page) = get_json(&daemon, "/api/v1/certificates?status=expiring");
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    let (_, page) = get_json(&daemon, "/api/v1/certificates?issuer=test%20issuing");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (_, page) = get_json(&daemon, "/api/v1/certificates?q=HOST7.example");
    assert_eq!(page["items"][0]["subject_cn"], "host7.example.net");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (_, counts) = get_json(&daemon, "/api/v1/counts");
    assert_eq!(counts["expiring"], 3);
    assert_eq!(counts["valid"], 12);

    // One certificate with its sightings; colons and capitals are accepted.
    let colon_fp: String = fps[4]
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let (status, detail) = get_json(&daemon, &format!("/api/v1/certificates/{colon_fp}"));
    assert_eq!(status, 200);
    assert_eq!(detail["certificate"]["fingerprint"], fps[4]);
    assert_eq!(detail["sightings"][0]["kind"], "import");

    // Bad input: 4xx with a JSON message that says what is wrong.
    for (path, code, needle) in [
        ("/api/v1/certificates?status=shiny", 400, "expected one of"),
        ("/api/v1/certificates?limit=0", 400, "limit"),
        ("/api/v1/certificates?limit=100000", 400, "limit"),
        (
            "/api/v1/certificates?expiring_within=soon",
            400,
            "expiring_within",
        ),
        ("/api/v1/certificates?cursor=bogus", 400, "cursor"),
        ("/api/v1/certificates?colour=red", 400, "colour"),
        ("/api/v1/certificates/xyz", 400, "fingerprint"),
        (
            &format!("/api/v1/certificates/{}", "0".repeat(64)),
            404,
            "no certificate",
        ),
        ("/api/v1/nothing", 404, "openapi"),
    ] {
        let (status, body) = get_json(&daemon, path);
        assert_eq!(status, code, "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{path}: {message}");
    }
    let (status, body) = common::http("POST", &daemon.url("/api/v1/import"), Some(b"garbage"), &[]);
    assert_eq!(status, 422, "{body}");

    // The API's import and the CLI through a running daemon (store locked).
    let pem = std::fs::read(daemon.path("many/leaf.pem")).unwrap();
    let (status, body) = common::http(
        "POST",
        &daemon.url("/api/v1/import?location=upload-1"),
        Some(&pem),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    let outcome: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(outcome["known"].as_array().unwrap().len(), 1);
    let list = daemon.cli_json(&["certificates", "list", "--status", "expiring"]);
    assert_eq!(list["items"].as_array().unwrap().len(), 3, "CLI via API");

    // The OpenAPI document is served.
    let (status, doc) = get_json(&daemon, "/api/v1/openapi.json");
    assert_eq!(status, 200);
    assert!(doc["paths"]["/api/v1/certificates"]["get"].is_object());
}

#[test]
fn metrics_are_valid_prometheus_text() {
    let mut daemon = Daemon::new("");
    let fps = populate(&daemon, 3);
    daemon.start();
    let (status, body) = daemon.get("/metrics");
    assert_eq!(status, 200);
    let samples = parse_prometheus(&body);
    let get = |name: &str, label: &str, value: &str| {
        samples
            .iter()
            .find(|(n, labels, _)| {
                n == name && labels.iter().any(|(k, v)| k == label && v == value)
            })
            .map(|s| s.2)
    };
    assert_eq!(get("certkeeper_certificates", "status", "valid"), Some(3.0));
    assert_eq!(
        get("certkeeper_certificates", "status", "expiring"),
        Some(3.0)
    );
    let shown = daemon.cli_json(&["certificates", "show", &fps[0]]);
    assert_eq!(
        get(
            "certkeeper_certificate_not_after_timestamp_seconds",
            "fingerprint",
            &fps[0]
        ),
        Some(shown["certificate"]["not_after"].as_f64().unwrap())
    );
    assert!(get("certkeeper_job_runs_total", "job", "inventory-refresh").is_some());
}

/// Parses the Prometheus text format strictly: every line is a comment
/// (`# HELP`/`# TYPE` with a known type) or `name{label="value",...} number`.
/// One sample: metric name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut typed = HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(typed.insert(name.to_string()), "TYPE twice for {name}");
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment: {line}");
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').unwrap_or_else(|| panic!("{line}"))),
            None => (series, ""),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        assert!(typed.contains(name), "sample before its TYPE: {line}");
        let mut parsed = Vec::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (key, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => panic!("{line}"),
                    },
                    Some((i, '"')) => break i,
                    Some((_, c)) => value.push(c),
                    None => panic!("unterminated label: {line}"),
                }
            };
            parsed.push((key.to_string(), value));
            rest = after[end + 1..]
                .strip_prefix(',')
                .unwrap_or(&after[end + 1..]);
        }
        samples.push((name.to_string(), parsed, value));
    }
    samples
}
