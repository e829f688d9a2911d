//! Reports against a known inventory, in every format, through the CLI and
//! the API: counts, rows and dates checked; CSV parsed; HTML one file with
//! its charts; PDF read back with `pdftotext` (Debian's poppler-utils).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Daemon, eventually, http};
use serde_json::{Value, json};

const ROOT: &str = "root-token-for-reports-0123456789";

/// A self-signed certificate for `cn` expiring `days` from now (negative:
/// expired), as PEM.
fn certificate(_dir: &std::path::Path, cn: &str, days: i64) -> Vec<u8> {
    use openssl::asn1::Asn1Time;
    use openssl::x509::extension::SubjectAlternativeName;
    use openssl::x509::{X509Builder, X509NameBuilder};
    let now = chrono::Utc::now().timestamp();
    let key = openssl::pkey::PKey::ec_gen("prime256v1").unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(now - 400 * 86_400).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(now + days * 86_400 + 3600).unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .dns(cn)
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(&key, openssl::hash::MessageDigest::sha256())
        .unwrap();
    b.build().to_pem().unwrap()
}

fn call(
    daemon: &Daemon,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, String) {
    let auth = format!("Bearer {token}");
    let body = body.map(|b| b.to_string());
    http(
        method,
        &daemon.url(path),
        body.as_deref().map(str::as_bytes),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
    )
}

/// web: in 10 (é in its unit name's contact), 40 and 70 days; finance: in
/// 20 and 200 days; one expired (web). Returns the daemon and fingerprints.
fn inventory() -> (Daemon, HashMap<&'static str, String>) {
    inventory_with("")
}

/// As [`inventory`], with `extra` config appended.
fn inventory_with(extra: &str) -> (Daemon, HashMap<&'static str, String>) {
    let mut daemon = Daemon::new("");
    daemon.write_config(&format!(
        "[api]\nlisten = \"127.0.0.1:{}\"\ntoken = \"{ROOT}\"\n\n[[connector]]\nname = \"corp-ca\"\ntype = \"internal_ca\"\npassphrase = \"correct horse battery staple\"\nallowed_dns = [\".corp.test\"]\ncrl_path = \"{}\"\n{extra}",
        daemon.port,
        daemon.path("corp.crl").display()
    ));
    // write_config put [api] first already; drop its duplicate table.
    let text = std::fs::read_to_string(&daemon.config).unwrap();
    let fixed = text.replacen(
        &format!("[api]\nlisten = \"127.0.0.1:{}\"\n\n", daemon.port),
        "",
        1,
    );
    std::fs::write(&daemon.config, fixed).unwrap();
    daemon.start();
    let dir = daemon.path("pki");
    std::fs::create_dir_all(&dir).unwrap();
    for unit in ["web", "finance"] {
        call(
            &daemon,
            "POST",
            "/api/v1/org-units",
            ROOT,
            Some(json!({ "name": unit })),
        );
    }
    let mut fps = HashMap::new();
    for (cn, days, unit) in [
        ("d10.corp.test", 10, "web"),
        ("d40.corp.test", 40, "web"),
        ("d70.corp.test", 70, "web"),
        ("d20.corp.test", 20, "finance"),
        ("d200.corp.test", 200, "finance"),
        ("old.corp.test", -5, "web"),
    ] {
        let pem = certificate(&dir, cn, days);
        let (status, body) = http(
            "POST",
            &daemon.url("/api/v1/import"),
            Some(&pem),
            &[("Authorization", &format!("Bearer {ROOT}"))],
        );
        assert_eq!(status, 200, "{body}");
        let fp = serde_json::from_str::<Value>(&body).unwrap()["added"][0]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, body) = call(
            &daemon,
            "POST",
            "/api/v1/certificates/assign",
            ROOT,
            Some(json!({ "fingerprints": [fp], "org_unit": unit })),
        );
        assert_eq!(status, 200, "{body}");
        fps.insert(cn, fp);
    }
    (daemon, fps)
}

#[test]
fn every_format_shows_the_known_inventory() {
    let (daemon, fps) = inventory();
    let out = |name: &str| daemon.path(name);
    // CSV: RFC 4180, parsed back; the expiring report has exactly the
    // certificates within 90 days, soonest first, with their days left.
    daemon.cli_ok(&[
        "report",
        "expiring",
        "--format",
        "csv",
        "--out",
        out("e.csv").to_str().unwrap(),
    ]);
    let mut reader = csv::Reader::from_path(out("e.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let subjects: Vec<&str> = rows
        .iter()
        .map(|r| r.get(col("subject")).unwrap())
        .collect();
    assert_eq!(
        subjects,
        [
            "CN=d10.corp.test",
            "CN=d20.corp.test",
            "CN=d40.corp.test",
            "CN=d70.corp.test"
        ]
    );
    let days: Vec<i64> = rows
        .iter()
        .map(|r| r.get(col("days_left")).unwrap().parse().unwrap())
        .collect();
    assert_eq!(days, [10, 20, 40, 70], "whole days left");
    assert_eq!(
        rows[0].get(col("fingerprint")).unwrap(),
        fps["d10.corp.test"]
    );
    assert_eq!(rows[0].get(col("org_unit")).unwrap(), "web");
    // JSON: the same rows, the summary buckets.
    let text = daemon.cli_ok(&[
        "report",
        "expiring",
        "--format",
        "json",
        "--within-days",
        "30",
    ]);
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["count"], 2, "{json}");
    assert_eq!(json["summary"]["within 30 days"], "2");
    // The weekly chart: d10 in week 1 (days 7-13), d20 in week 2.
    let weeks: Vec<u64> = json["Expiries per week"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(weeks.iter().sum::<u64>(), 2, "{json}");
    assert_eq!((weeks[1], weeks[2]), (1, 1), "{json}");
    // Inventory: counts by status agree with the inventory.
    let text = daemon.cli_ok(&["report", "inventory", "--format", "json"]);
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["count"], 6);
    assert_eq!(json["summary"]["total"], "6");
    assert_eq!(json["summary"]["expired"], "1");
    // HTML: one self-contained file with its charts and rows.
    daemon.cli_ok(&[
        "report",
        "expiring",
        "--format",
        "html",
        "--out",
        out("e.html").to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(out("e.html")).unwrap();
    assert_eq!(html.matches("<html").count(), 1);
    assert!(html.contains("<svg"), "a chart");
    assert!(
        !html.contains("<script") && !html.contains("src="),
        "self-contained, no script"
    );
    assert!(html.contains("CN=d70.corp.test") && !html.contains("CN=d200.corp.test"));
    // PDF: text extracts and holds the rows.
    daemon.cli_ok(&[
        "report",
        "expiring",
        "--format",
        "pdf",
        "--out",
        out("e.pdf").to_str().unwrap(),
    ]);
    let info = std::process::Command::new("pdfinfo")
        .arg(out("e.pdf"))
        .output()
        .unwrap();
    assert!(
        info.status.success(),
        "{}",
        String::from_utf8_lossy(&info.stderr)
    );
    let text = std::process::Command::new("pdftotext")
        .args(["-layout"])
        .arg(out("e.pdf"))
        .arg("-")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    for cn in [
        "d10.corp.test",
        "d20.corp.test",
        "d40.corp.test",
        "d70.corp.test",
    ] {
        assert!(text.contains(cn), "{cn} in the PDF:\n{text}");
    }
    assert!(!text.contains("d200.corp.test"));
}

#[test]
fn reports_through_the_api_keep_to_the_callers_scope() {
    let (daemon, _) = inventory();
    call(
        &daemon,
        "POST",
        "/api/v1/users",
        ROOT,
        Some(json!({ "name": "fred", "role": "department_admin", "units": ["finance"] })),
    );
    let (_, t) = call(
        &daemon,
        "POST",
        "/api/v1/tokens",
        ROOT,
        Some(json!({ "user": "fred" })),
    );
    let fred = serde_json::from_str::<Value>(&t).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = call(
        &daemon,
        "GET",
        "/api/v1/reports/expiring?format=csv",
        &fred,
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("d20.corp.test"), "{body}");
    assert!(
        !body.contains("d10.corp.test"),
        "another unit's certificate: {body}"
    );
    let (status, _) = call(
        &daemon,
        "GET",
        "/api/v1/reports/expiring?org_unit=web",
        &fred,
        None,
    );
    assert_eq!(status, 404, "a unit outside the scope");
    let (status, body) = call(&daemon, "GET", "/api/v1/reports/nope", &fred, None);
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("inventory"),
        "the error lists the kinds: {body}"
    );
    let (status, _) = call(
        &daemon,
        "GET",
        "/api/v1/reports/expiring?format=docx",
        &fred,
        None,
    );
    assert_eq!(status, 400);
    // 47-day readiness: what Certkeeper renews is ready, the rest is listed.
    let (status, r) = call(
        &daemon,
        "POST",
        "/api/v1/domains",
        ROOT,
        Some(json!({ "domain": "auto.corp.test", "org_unit": "web", "mode": "pre_approved" })),
    );
    assert_eq!(status, 200, "{r}");
    let (status, r) = call(
        &daemon,
        "POST",
        "/api/v1/requests",
        ROOT,
        Some(
            json!({ "identifiers": ["www.auto.corp.test"], "org_unit": "web", "connector": "corp-ca" }),
        ),
    );
    assert_eq!(status, 201, "{r}");
    eventually(Duration::from_secs(60), || {
        let (_, body) = call(
            &daemon,
            "GET",
            "/api/v1/reports/readiness47?format=json",
            ROOT,
            None,
        );
        let json: Value = serde_json::from_str(&body).ok()?;
        (json["summary"]["renewed and deployed by Certkeeper"] == "1").then_some(json)
    })
    .map(|json| {
        let rows = json["rows"].as_array().unwrap();
        assert!(
            rows.iter()
                .all(|r| !r["subject"].as_str().unwrap().contains("auto.corp.test")),
            "{json}"
        );
        assert!(
            rows.iter().any(|r| r["subject"] == "CN=d10.corp.test"),
            "{json}"
        );
    })
    .expect("the issued certificate counts as ready");
    // Units: the forecast counts the managed certificate's renewal.
    call(
        &daemon,
        "POST",
        "/api/v1/units",
        ROOT,
        Some(json!({ "connector": "corp-ca", "add": 5, "threshold": 1 })),
    );
    let (_, body) = call(
        &daemon,
        "GET",
        "/api/v1/reports/units?format=csv",
        ROOT,
        None,
    );
    let mut lines = body.lines();
    assert_eq!(
        lines.next().unwrap(),
        "connector,purchased,used,remaining,threshold,needed_next_12_months,to_buy"
    );
    assert_eq!(lines.next().unwrap(), "corp-ca,5,0,5,1,1,0", "{body}");
}

#[test]
fn scheduled_reports_land_in_their_directory_and_are_announced() {
    let (mut daemon, _) = inventory();
    let dir = daemon.path("reports");
    let text = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::write(
        &daemon.config,
        format!(
            "{text}\n[[job]]\ntype = \"report\"\nname = \"weekly-expiring\"\nschedule = \"*/2 * * * * *\"\nkind = \"expiring\"\nformat = \"csv\"\ndirectory = \"{}\"\nkeep = 2\n",
            dir.display()
        ),
    )
    .unwrap();
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(30));
    daemon.start();
    // Three runs or more: only the newest two are kept, none half-written.
    let files = eventually(Duration::from_secs(60), || {
        let (_, body) = call(&daemon, "GET", "/api/v1/events?limit=1000", ROOT, None);
        let ready = serde_json::from_str::<Value>(&body).ok()?["items"]
            .as_array()?
            .iter()
            .filter(|e| e["kind"]["type"] == "report_ready")
            .count();
        (ready >= 3).then(|| {
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                .collect();
            names.sort();
            names
        })
    })
    .unwrap_or_else(|| panic!("no scheduled reports\n{}", daemon.log()));
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files
            .iter()
            .all(|f| f.starts_with("weekly-expiring-") && f.ends_with(".csv")),
        "{files:?}"
    );
    let csv = std::fs::read_to_string(dir.join(&files[1])).unwrap();
    assert!(csv.starts_with("subject,"), "{csv}");
    assert_eq!(
        csv.lines().count(),
        5,
        "header and the 4 certificates within 90 days: {csv}"
    );
    // The event says where the report is, for the e-mail or chat message.
    let (_, body) = call(&daemon, "GET", "/api/v1/events?limit=1000", ROOT, None);
    let events: Value = serde_json::from_str(&body).unwrap();
    let location = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"]["type"] == "report_ready")
        .map(|e| e["kind"]["location"].as_str().unwrap().to_owned())
        .unwrap();
    assert!(location.starts_with(dir.to_str().unwrap()), "{location}");
    // And where to download it through the API (a webhook or chat message
    // carries the link): the same bytes as the file, for a token that may
    // read reports.
    let fetched = eventually(Duration::from_secs(30), || {
        let (_, body) = call(&daemon, "GET", "/api/v1/events?limit=1000", ROOT, None);
        let events: Value = serde_json::from_str(&body).ok()?;
        let ready = events["items"]
            .as_array()?
            .iter()
            .find(|e| e["kind"]["type"] == "report_ready")?
            .clone();
        let url = ready["kind"]["url"].as_str()?.to_owned();
        assert!(
            url.starts_with(&daemon.url("/api/v1/reports/files/weekly-expiring/weekly-expiring-")),
            "{url}"
        );
        let file = std::fs::read(ready["kind"]["location"].as_str()?).ok()?;
        let (status, body) = http(
            "GET",
            &url,
            None,
            &[("Authorization", &format!("Bearer {ROOT}"))],
        );
        (status == 200 && body.as_bytes() == file.as_slice()).then_some(url)
    })
    .unwrap_or_else(|| panic!("the report's link never served its file\n{}", daemon.log()));
    let (status, _) = http("GET", &fetched, None, &[]);
    assert_eq!(status, 401, "a token is needed");
    // The job's files are listed, newest first, each with its link.
    let (status, body) = call(&daemon, "GET", "/api/v1/reports/files", ROOT, None);
    assert_eq!(status, 200, "{body}");
    let listed: Value = serde_json::from_str(&body).unwrap();
    let job = &listed["items"][0];
    assert_eq!(job["job"], "weekly-expiring", "{listed}");
    let names: Vec<&str> = job["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(!names.is_empty() && names.len() <= 2, "{listed}");
    assert!(
        names.windows(2).all(|w| w[0] > w[1]),
        "newest first: {names:?}"
    );
    assert!(
        job["files"][0]["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/weekly-expiring/{}", names[0]))
    );
    for path in [
        "/api/v1/reports/files/weekly-expiring/..%2f..%2fstore.key",
        "/api/v1/reports/files/weekly-expiring/weekly-expiring-x.csv",
        "/api/v1/reports/files/no-such-job/no-such-job-20261127-060000.csv",
        "/api/v1/reports/files/weekly-expiring/weekly-expiring-20000101-000000.csv",
    ] {
        let (status, body) = call(&daemon, "GET", path, ROOT, None);
        assert_eq!(status, 404, "{path}: {body}");
    }
    // A public_url that is not http(s) is refused, naming the key.
    std::fs::write(
        &daemon.config,
        "[api]\npublic_url = \"ftp://certkeeper.example.com\"\n",
    )
    .unwrap();
    let out = daemon.cli(&["validate"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("api.public_url"),
        "{text}"
    );
    // A misspelt kind is refused by validate, naming the key.
    std::fs::write(
        &daemon.config,
        format!("[[job]]\ntype = \"report\"\nname = \"r\"\nschedule = \"0 0 * * * *\"\nkind = \"expring\"\ndirectory = \"{}\"\n", dir.display()),
    )
    .unwrap();
    let out = daemon.cli(&["validate"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("job[0].kind") && text.contains("expring"),
        "{text}"
    );
}

/// History per month, by org unit and administrator, findings by owner, and
/// the date-range and administrator filters, against the known inventory.
#[test]
fn history_org_units_and_findings_by_owner() {
    let files = tempfile::tempdir().unwrap();
    let (daemon, _fps) = inventory_with(&format!(
        "[[discovery.files]]\nname = \"pki-files\"\nschedule = \"0 0 0 1 1 *\"\nroots = [{:?}]\n",
        files.path().display().to_string()
    ));
    let now = chrono::Utc::now().timestamp();
    let day = |offset: i64| {
        chrono::DateTime::from_timestamp(now + offset * 86_400, 0)
            .unwrap()
            .format("%Y-%m-%d")
            .to_string()
    };
    let json = |path: &str, token: &str| -> Value {
        let (status, body) = call(&daemon, "GET", path, token, None);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    };
    // History: all six were issued 400 days ago, one expired 5 days ago.
    let h = json(
        &format!(
            "/api/v1/reports/history?format=json&from={}&to={}",
            day(-420),
            day(0)
        ),
        ROOT,
    );
    assert_eq!(h["summary"]["issued"], "6", "{h}");
    assert_eq!(h["summary"]["expired"], "1", "{h}");
    let month = |offset: i64| day(offset)[..7].to_owned();
    let rows = h["rows"].as_array().unwrap();
    let issued_month = rows.iter().find(|r| r["month"] == month(-400)).unwrap();
    assert_eq!(issued_month["issued"], "6");
    let expired_month = rows.iter().find(|r| r["month"] == month(-5)).unwrap();
    assert_eq!(expired_month["expired"], "1");
    assert!(
        rows.len() >= 14,
        "one row per month of the period: {}",
        rows.len()
    );

    // By org unit and administrator.
    for (user, unit) in [("dave", "web"), ("fred", "finance")] {
        let (status, body) = call(
            &daemon,
            "POST",
            "/api/v1/users",
            ROOT,
            Some(json!({ "name": user, "role": "department_admin", "units": [unit] })),
        );
        assert_eq!(status, 201, "{body}");
    }
    let units = json("/api/v1/reports/org-units?format=json", ROOT);
    let row = |r: &Value, unit: &str| {
        r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["org_unit"] == unit)
            .cloned()
    };
    let web = row(&units, "web").unwrap();
    assert_eq!(web["administrators"], "dave");
    assert_eq!(web["certificates"], "4");
    assert_eq!(web["expired"], "1");
    assert_eq!(row(&units, "finance").unwrap()["certificates"], "2");
    let freds = json(
        "/api/v1/reports/org-units?format=json&administrator=fred",
        ROOT,
    );
    assert!(row(&freds, "web").is_none() && row(&freds, "finance").is_some());
    let (status, body) = call(
        &daemon,
        "GET",
        "/api/v1/reports/org-units?administrator=nobody",
        ROOT,
        None,
    );
    assert_eq!(status, 400, "{body}");

    // The administrator and date-range filters on the inventory report.
    let (_, csv) = call(
        &daemon,
        "GET",
        "/api/v1/reports/inventory?format=csv&administrator=dave",
        ROOT,
        None,
    );
    assert_eq!(csv.lines().count(), 1 + 4, "{csv}");
    let (_, csv) = call(
        &daemon,
        "GET",
        &format!(
            "/api/v1/reports/inventory?format=csv&from={}&to={}",
            day(30),
            day(75)
        ),
        ROOT,
        None,
    );
    let names: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(names, ["CN=d40.corp.test", "CN=d70.corp.test"], "{csv}");
    let (status, body) = call(
        &daemon,
        "GET",
        "/api/v1/reports/inventory?from=2026-13-01",
        ROOT,
        None,
    );
    assert!(status == 400 && body.contains("from"), "{body}");

    // Findings by owner: the expired certificate, found in a file.
    let expired = certificate(files.path(), "old.corp.test", -5);
    std::fs::write(files.path().join("old.pem"), &expired).unwrap();
    let (status, body) = call(&daemon, "POST", "/api/v1/jobs/pki-files/run", ROOT, None);
    assert_eq!(status, 202, "{body}");
    let report = common::eventually(std::time::Duration::from_secs(30), || {
        let r = json("/api/v1/reports/findings?format=json", ROOT);
        (r["count"].as_u64()? > 0).then_some(r)
    })
    .unwrap_or_else(|| panic!("no findings\n{}", daemon.log()));
    let rows = report["rows"].as_array().unwrap();
    assert!(
        rows.iter()
            .all(|r| r["location"].as_str().unwrap().contains("old.pem")),
        "{report}"
    );
    assert!(rows.iter().any(|r| r["finding"] == "expired"), "{report}");
    // The file's certificate is a new one (a new key), so it has no unit
    // until assigned: assign it to web and the report follows.
    let fp = rows[0]["fingerprint"].as_str().unwrap().to_owned();
    call(
        &daemon,
        "POST",
        "/api/v1/certificates/assign",
        ROOT,
        Some(json!({ "fingerprints": [fp], "org_unit": "web" })),
    );
    let report = json("/api/v1/reports/findings?format=json", ROOT);
    assert!(
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["org_unit"] == "web")
    );
    // A finance administrator sees none of web's findings.
    let (status, body) = call(
        &daemon,
        "POST",
        "/api/v1/tokens",
        ROOT,
        Some(json!({ "user": "fred", "label": "t" })),
    );
    assert_eq!(status, 201, "{body}");
    let fred: Value = serde_json::from_str(&body).unwrap();
    let theirs = json(
        "/api/v1/reports/findings?format=json",
        fred["token"].as_str().unwrap(),
    );
    assert_eq!(theirs["count"], 0, "{theirs}");
    // PDF and HTML of the new kinds render with their rows.
    let (status, html) = call(
        &daemon,
        "GET",
        "/api/v1/reports/history?format=html",
        ROOT,
        None,
    );
    assert!(status == 200 && html.contains("<svg") && html.contains("Issued per month"));

    // Requests belong to the inventory: two pending for web (the domain
    // needs approval), one rejected (no rule for its domain).
    let (status, body) = call(
        &daemon,
        "POST",
        "/api/v1/domains",
        ROOT,
        Some(json!({ "domain": "app.corp.test", "org_unit": "web", "mode": "requires_approval" })),
    );
    assert_eq!(status, 200, "{body}");
    for name in ["a.app.corp.test", "b.app.corp.test", "x.elsewhere.test"] {
        let (status, body) = call(
            &daemon,
            "POST",
            "/api/v1/requests",
            ROOT,
            Some(json!({ "identifiers": [name], "org_unit": "web", "connector": "corp-ca" })),
        );
        let expected = if name.ends_with("elsewhere.test") {
            422
        } else {
            202
        };
        assert_eq!(status, expected, "{name}: {body}");
    }
    let inventory = json("/api/v1/reports/inventory?format=json", ROOT);
    assert_eq!(inventory["summary"]["requests pending"], "2", "{inventory}");
    assert_eq!(
        inventory["summary"]["requests rejected"], "1",
        "{inventory}"
    );
    let rows = inventory["rows"].as_array().unwrap();
    let mut pending: Vec<&str> = rows
        .iter()
        .filter(|r| r["status"] == "pending")
        .map(|r| r["subject"].as_str().unwrap())
        .collect();
    pending.sort_unstable();
    assert_eq!(
        pending,
        ["a.app.corp.test", "b.app.corp.test"],
        "{inventory}"
    );
    assert!(
        rows.iter()
            .any(|r| r["status"] == "rejected" && r["subject"] == "x.elsewhere.test"),
        "{inventory}"
    );
    // Certificate-only filters leave the requests out; an org unit keeps them.
    let valid = json("/api/v1/reports/inventory?format=json&status=valid", ROOT);
    assert!(
        valid["summary"].get("requests pending").is_none(),
        "{valid}"
    );
    let finance = json(
        "/api/v1/reports/inventory?format=json&org_unit=finance",
        ROOT,
    );
    assert_eq!(finance["summary"]["requests pending"], "0", "{finance}");
    let units = json("/api/v1/reports/org-units?format=json", ROOT);
    let web = row(&units, "web").unwrap();
    assert_eq!(
        (
            web["requests_pending"].as_str(),
            web["requests_rejected"].as_str()
        ),
        (Some("2"), Some("1")),
        "{web}"
    );
}
