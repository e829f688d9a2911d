//! Discovery end to end against real servers: an estate of certificates with
//! one defect each, served by nginx (Debian's package) on loopback addresses,
//! scanned with `certkeeper scan`; every endpoint must be found with exactly
//! its expected findings and nothing else flagged. Files of every format are
//! found by `--files`.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::nginx::Nginx;
use common::{fingerprint, openssl};
use serde_json::Value;

/// Issues `name.pem` (+ `name.key`) for `cn` signed by `ca` (`None` = self-signed).
fn issue(dir: &Path, name: &str, cn: &str, ca: Option<&str>, days: u32, key: &str, extra: &str) {
    let keyopt: Vec<&str> = match key {
        "rsa1024" => vec!["-newkey", "rsa:1024"],
        "rsa2048" => vec!["-newkey", "rsa:2048"],
        _ => vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    };
    let ext = format!(
        "subjectAltName=DNS:{cn}\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n{extra}"
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    let days = days.to_string();
    let (key_file, csr, cert, ext_file) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    let mut req = vec!["req", "-nodes", "-keyout", &key_file, "-subj"];
    let subj = format!("/CN={cn}");
    req.push(&subj);
    req.extend(&keyopt);
    match ca {
        None => {
            req.extend(["-x509", "-days", &days, "-out", &cert, "-addext"]);
            let san = format!("subjectAltName=DNS:{cn}");
            req.push(&san);
            req.extend(["-addext", "basicConstraints=critical,CA:FALSE"]);
            openssl(dir, &req);
        }
        Some(ca) => {
            req.extend(["-out", &csr]);
            openssl(dir, &req);
            let (ca_cert, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    &ca_cert,
                    "-CAkey",
                    &ca_key,
                    "-CAcreateserial",
                    "-out",
                    &cert,
                    "-days",
                    &days,
                    "-extfile",
                    &ext_file,
                ],
            );
        }
    }
}

fn make_ca(dir: &Path, name: &str, cn: &str, parent: Option<&str>) {
    let subj = format!("/O=Certkeeper Test/CN={cn}");
    let (key, cert) = (format!("{name}.key"), format!("{name}.pem"));
    match parent {
        None => {
            openssl(
                dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-384",
                    "-nodes",
                    "-keyout",
                    &key,
                    "-out",
                    &cert,
                    "-days",
                    "3650",
                    "-subj",
                    &subj,
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            );
        }
        Some(parent) => {
            let csr = format!("{name}.csr");
            openssl(
                dir,
                &[
                    "req",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    &key,
                    "-out",
                    &csr,
                    "-subj",
                    &subj,
                ],
            );
            std::fs::write(dir.join("ca.ext"), "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n").unwrap();
            let (pc, pk) = (format!("{parent}.pem"), format!("{parent}.key"));
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    &pc,
                    "-CAkey",
                    &pk,
                    "-CAcreateserial",
                    "-out",
                    &cert,
                    "-days",
                    "1825",
                    "-extfile",
                    "ca.ext",
                ],
            );
        }
    }
}

fn cat(dir: &Path, out: &str, files: &[&str]) {
    let text: String = files
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap())
        .collect();
    std::fs::write(dir.join(out), text).unwrap();
}

/// (sni, ip, served chain file, nginx extra directives, expected findings)
type Site = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

/// Serves `sites` from one nginx on a free port; returns the port and the server.
fn start_estate(d: &Path, sites: &[Site]) -> (u16, Nginx) {
    let port = common::free_port();
    (port, start_estate_on(d, sites, port))
}

/// Serves `sites` from one nginx on `port`.
fn start_estate_on(d: &Path, sites: &[Site], port: u16) -> Nginx {
    let mut servers = String::new();
    for (_, ip, chain, extra, _) in sites {
        let key = format!(
            "{}.key",
            chain.trim_end_matches(".pem").trim_end_matches("-chain")
        );
        servers.push_str(&format!(
            "server {{ listen {ip}:{port} ssl; ssl_certificate {d}/{chain}; ssl_certificate_key {d}/{key}; {extra} return 200 ok; }}\n",
            d = d.display()
        ));
    }
    let last = sites.last().map(|s| s.1).unwrap_or("127.0.0.1");
    Nginx::start(d, &servers, &[(last, port)])
}

#[test]
fn nginx_estate_is_found_with_exactly_the_expected_findings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d, "root", "Estate Root", None);
    make_ca(d, "inter", "Estate Issuing CA", Some("root"));
    make_ca(d, "rogue", "Rogue CA", None);
    issue(d, "good", "good.test", Some("inter"), 90, "ec", "");
    issue(d, "soon", "soon.test", Some("inter"), 10, "ec", "");
    issue(d, "weak", "weak.test", Some("inter"), 90, "rsa1024", "");
    issue(d, "self", "self.test", None, 90, "ec", "");
    issue(d, "legacy", "legacy.test", Some("inter"), 90, "rsa2048", "");
    issue(d, "bought", "bought.test", Some("rogue"), 90, "ec", "");
    issue(d, "long", "long.test", Some("inter"), 800, "ec", "");
    issue(d, "disorder", "disorder.test", Some("inter"), 90, "ec", "");
    make_ca(d, "stranger", "Stranger Root", None);
    make_ca(d, "stranger-inter", "Stranger Issuing CA", Some("stranger"));
    issue(
        d,
        "unknown",
        "unknown.test",
        Some("stranger-inter"),
        90,
        "ec",
        "",
    );
    cat(
        d,
        "disorder-chain.pem",
        &["disorder.pem", "root.pem", "inter.pem"],
    );
    for name in ["good", "soon", "weak", "legacy", "long"] {
        cat(
            d,
            &format!("{name}-chain.pem"),
            &[&format!("{name}.pem"), "inter.pem"],
        );
    }
    cat(d, "roots.pem", &["root.pem", "rogue.pem"]);

    let sites: &[Site] = &[
        ("good.test", "127.0.13.1", "good-chain.pem", "", &[]),
        (
            "incomplete.test",
            "127.0.13.2",
            "good.pem",
            "",
            &["hostname_mismatch", "incomplete_chain"],
        ),
        (
            "soon.test",
            "127.0.13.3",
            "soon-chain.pem",
            "",
            &["expiring"],
        ),
        (
            "wrong.test",
            "127.0.13.4",
            "good-chain.pem",
            "",
            &["hostname_mismatch"],
        ),
        (
            "weak.test",
            "127.0.13.5",
            "weak-chain.pem",
            "ssl_ciphers DEFAULT:@SECLEVEL=0;",
            &["weak_key"],
        ),
        (
            "self.test",
            "127.0.13.6",
            "self.pem",
            "",
            &["self_signed", "unapproved_issuer"],
        ),
        (
            "legacy.test",
            "127.0.13.7",
            "legacy-chain.pem",
            "ssl_protocols TLSv1; ssl_ciphers ALL:@SECLEVEL=0;",
            &["legacy_protocol"],
        ),
        (
            "bought.test",
            "127.0.13.8",
            "bought.pem",
            "",
            &["unapproved_issuer"],
        ),
        (
            "long.test",
            "127.0.13.9",
            "long-chain.pem",
            "",
            &["validity_too_long"],
        ),
        // The root before the intermediate it signed.
        (
            "disorder.test",
            "127.0.13.10",
            "disorder-chain.pem",
            "",
            &["chain_order"],
        ),
        // Issued under a CA no trust store and no list of intermediates
        // knows: not a missing intermediate, an unknown issuer.
        (
            "unknown.test",
            "127.0.13.11",
            "unknown.pem",
            "",
            &["unapproved_issuer", "untrusted"],
        ),
    ];
    let (port, server) = start_estate(d, sites);

    let mut args: Vec<String> = vec![
        "scan".into(),
        "--format".into(),
        "json".into(),
        "--ports".into(),
        port.to_string(),
    ];
    for (sni, ip, ..) in sites {
        args.push("--resolve".into());
        args.push(format!("{sni}:{port}:{ip}"));
    }
    // Closed ports and empty addresses in the same run cost nothing and yield nothing.
    args.push("127.0.14.0/29".into());
    args.extend([
        "--trusted-roots".into(),
        d.join("roots.pem").display().to_string(),
    ]);
    args.extend([
        "--approved-issuers".into(),
        d.join("inter.pem").display().to_string(),
    ]);
    // The organisation's intermediate is known: a server that leaves it out
    // is incomplete_chain (see incomplete.test).
    args.extend([
        "--intermediates".into(),
        d.join("inter.pem").display().to_string(),
    ]);
    let out = Command::new(common::BIN).args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    drop(server);

    let by_sni: BTreeMap<String, &Value> = records
        .iter()
        .map(|r| (r["sni"].as_str().unwrap_or_default().to_string(), r))
        .collect();
    assert_eq!(
        records.len(),
        sites.len(),
        "one record per endpoint, nothing else: {records:#?}"
    );
    for (sni, ip, chain, _, expected) in sites {
        let record = by_sni
            .get(*sni)
            .unwrap_or_else(|| panic!("{sni} not found"));
        assert_eq!(record["source"], "network");
        assert_eq!(record["ip"], *ip);
        assert_eq!(record["port"], port);
        assert_eq!(&common::codes(record), expected, "{sni}: {record}");
        let leaf_file = chain.trim_end_matches(".pem").trim_end_matches("-chain");
        assert_eq!(
            record["chain"][0]["fingerprint_sha256"],
            fingerprint(d, &format!("{leaf_file}.pem")),
            "{sni}"
        );
        let served = std::fs::read_to_string(d.join(chain))
            .unwrap()
            .matches("BEGIN CERTIFICATE")
            .count();
        assert_eq!(
            record["chain"].as_array().unwrap().len(),
            served,
            "{sni}: the whole presented chain, in order"
        );
    }
    let soon = by_sni["soon.test"];
    let days = soon["findings"][0]["days"].as_i64().unwrap();
    assert!((9..=10).contains(&days), "{soon}");
    assert_eq!(by_sni["legacy.test"]["tls_version"], "TLSv1");
    assert_eq!(by_sni["weak.test"]["chain"][0]["key_bits"], 1024);
    assert_eq!(
        by_sni["good.test"]["chain"][1]["subject"],
        "O=Certkeeper Test, CN=Estate Issuing CA"
    );
}

#[test]
fn files_of_every_format_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d, "root", "Files Root", None);
    issue(d, "leaf", "files.test", Some("root"), 90, "ec", "");
    issue(
        d,
        "signer",
        "Code Signer",
        Some("root"),
        90,
        "rsa2048",
        "extendedKeyUsage=codeSigning\n",
    );
    let tree = d.join("tree");
    std::fs::create_dir_all(tree.join("nested")).unwrap();
    cat(d, "tree/bundle.pem", &["leaf.pem", "root.pem"]);
    std::fs::copy(d.join("leaf.key"), tree.join("bundle.key")).unwrap();
    openssl(
        d,
        &[
            "x509",
            "-in",
            "leaf.pem",
            "-outform",
            "DER",
            "-out",
            "tree/leaf.der",
        ],
    );
    openssl(
        d,
        &[
            "crl2pkcs7",
            "-nocrl",
            "-certfile",
            "leaf.pem",
            "-certfile",
            "root.pem",
            "-out",
            "tree/nested/chain.p7b",
        ],
    );
    openssl(
        d,
        &[
            "pkcs12",
            "-export",
            "-in",
            "signer.pem",
            "-inkey",
            "signer.key",
            "-passout",
            "pass:",
            "-out",
            "tree/nested/signer.p12",
        ],
    );
    std::fs::write(tree.join("README.txt"), "not a certificate").unwrap();
    std::fs::write(
        tree.join("broken.der"),
        &std::fs::read(tree.join("leaf.der")).unwrap()[..100],
    )
    .unwrap();

    let out = Command::new(common::BIN)
        .args(["scan", "--format", "json", "--files"])
        .arg(&tree)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: BTreeMap<String, Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|r| {
            (
                Path::new(r["path"].as_str().unwrap())
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .to_string(),
                r,
            )
        })
        .collect();
    let names: Vec<&str> = records.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "broken.der",
            "bundle.pem",
            "chain.p7b",
            "leaf.der",
            "signer.p12"
        ],
        "README.txt and the key are skipped"
    );
    assert_eq!(records["bundle.pem"]["format"], "pem");
    assert_eq!(records["bundle.pem"]["key_beside"], true);
    assert_eq!(records["bundle.pem"]["chain"].as_array().unwrap().len(), 2);
    assert_eq!(records["leaf.der"]["format"], "der");
    assert_eq!(records["chain.p7b"]["format"], "pkcs7");
    assert_eq!(records["chain.p7b"]["chain"].as_array().unwrap().len(), 2);
    assert_eq!(records["signer.p12"]["format"], "pkcs12");
    assert_eq!(
        records["signer.p12"]["chain"][0]["eku"],
        serde_json::json!(["code_signing"])
    );
    assert_eq!(records["signer.p12"]["chain"][0]["type"], "code_signing");
    assert!(
        records["broken.der"]["error"].as_str().is_some(),
        "malformed files are reported"
    );
    let leaf_fp = fingerprint(d, "leaf.pem");
    for name in ["bundle.pem", "leaf.der", "chain.p7b"] {
        assert_eq!(
            records[name]["chain"][0]["fingerprint_sha256"], leaf_fp,
            "{name}"
        );
    }
}

#[test]
fn discovery_jobs_fill_the_inventory_and_answer_where() {
    let mut daemon = common::Daemon::new("");
    let pki = daemon.path("pki");
    std::fs::create_dir(&pki).unwrap();
    let d = pki.as_path();
    make_ca(d, "root", "Jobs Root", None);
    make_ca(d, "inter", "Jobs Issuing CA", Some("root"));
    issue(d, "good", "good.test", Some("inter"), 90, "ec", "");
    issue(d, "bare", "bare.test", Some("inter"), 90, "ec", "");
    cat(d, "good-chain.pem", &["good.pem", "inter.pem"]);
    let sites: &[Site] = &[
        ("good.test", "127.0.15.1", "good-chain.pem", "", &[]),
        (
            "bare.test",
            "127.0.15.2",
            "bare.pem",
            "",
            &["incomplete_chain"],
        ),
    ];
    let (port, _server) = start_estate(d, sites);
    daemon.write_config(&format!(
        "[discovery.policy]\ntrusted_roots = {root:?}\nintermediates = {inter:?}\n\n\
         [[discovery.network]]\nname = \"estate\"\nschedule = \"0 0 0 1 1 *\"\nports = [{port}]\n\
         resolve = [\"good.test:{port}:127.0.15.1\", \"bare.test:{port}:127.0.15.2\"]\n\n\
         [[discovery.files]]\nname = \"pki-files\"\nschedule = \"0 0 0 1 1 *\"\nroots = [{pki:?}]\ninclude = [\"good.pem\"]\n",
        root = d.join("root.pem"),
        inter = d.join("inter.pem"),
    ));
    daemon.start();
    let runs = |job: &str| -> i64 {
        let jobs = daemon.cli_json(&["jobs"]);
        jobs.as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == job)
            .map(|j| j["runs"].as_i64().unwrap())
            .unwrap_or(0)
    };
    // Scheduled once a year: run both by hand, as an operator would.
    for job in ["estate", "pki-files"] {
        assert!(
            daemon
                .cli_ok(&["jobs", "--run-now", job])
                .contains("started")
        );
        common::eventually(Duration::from_secs(30), || (runs(job) >= 1).then_some(()))
            .unwrap_or_else(|| panic!("{job} did not run; log:\n{}", daemon.log()));
    }

    // "Where is good.test's certificate deployed?": the endpoint and the file.
    let answer = daemon.cli_json(&["where", "good.test"]);
    let details = answer.as_array().unwrap();
    assert_eq!(details.len(), 1, "{answer}");
    assert_eq!(
        details[0]["certificate"]["fingerprint"],
        fingerprint(d, "good.pem")
    );
    let mut places: Vec<(String, String)> = details[0]["sightings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap().to_string(),
                s["location"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    places.sort();
    assert_eq!(
        places,
        vec![
            (
                "endpoint".to_string(),
                format!("127.0.15.1:{port} (good.test)")
            ),
            ("file".to_string(), d.join("good.pem").display().to_string()),
        ]
    );
    // The same question by fingerprint gives the same places.
    let by_fp = daemon.cli_json(&["where", &fingerprint(d, "good.pem")]);
    assert_eq!(by_fp[0]["sightings"].as_array().unwrap().len(), 2);

    // Findings are stored per place and queryable; nothing else is flagged.
    let (status, body) = daemon.get("/api/v1/findings?code=incomplete_chain");
    assert_eq!(status, 200, "{body}");
    let findings: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(findings.as_array().unwrap().len(), 1, "{findings}");
    assert_eq!(
        findings[0]["location"],
        format!("127.0.15.2:{port} (bare.test)")
    );
    assert_eq!(findings[0]["fingerprint"], fingerprint(d, "bare.pem"));
    let (_, body) = daemon.get("/api/v1/findings");
    let all: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        all.as_array().unwrap().len(),
        1,
        "nothing else flagged: {body}"
    );
    let (status, body) = daemon.get("/api/v1/findings?code=bogus");
    assert_eq!(status, 400, "{body}");
    // A new finding is an event for alerting, once: a rescan that finds the
    // same problem at the same place raises none.
    let finding_events = || -> Vec<Value> {
        let (_, body) = daemon.get("/api/v1/events");
        let events: Value = serde_json::from_str(&body).unwrap();
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"]["type"] == "discovery_finding")
            .cloned()
            .collect()
    };
    let events = finding_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["kind"]["code"], "incomplete_chain");
    assert_eq!(
        events[0]["certificate"]["fingerprint"],
        fingerprint(d, "bare.pem")
    );
    daemon.cli_ok(&["jobs", "--run-now", "estate"]);
    common::eventually(Duration::from_secs(30), || {
        (runs("estate") >= 2).then_some(())
    })
    .unwrap_or_else(|| panic!("estate did not run again; log:\n{}", daemon.log()));
    assert_eq!(
        finding_events().len(),
        1,
        "a known finding raised a second event"
    );
    let shown = daemon.cli_json(&["certificates", "show", &fingerprint(d, "bare.pem")]);
    assert_eq!(shown["findings"][0]["code"], "incomplete_chain");
    // The intermediate the good site sent is in the inventory too.
    let inter = daemon.cli_json(&["certificates", "show", &fingerprint(d, "inter.pem")]);
    assert_eq!(inter["certificate"]["is_ca"], true);
}

/// Certificates Certkeeper did not issue leave the inventory's alerts the way
/// an administrator expects: one renewed on its server by someone else is
/// linked as replaced by the new one; one whose server is gone becomes a
/// deactivation candidate after three scans miss it, and deactivating it
/// (audited, with the reason) takes it out of the candidates; `--undo`
/// brings it back.
#[test]
fn certificates_renewed_elsewhere_or_gone_are_retired() {
    let mut daemon = common::Daemon::new("");
    let pki = daemon.path("pki");
    std::fs::create_dir(&pki).unwrap();
    let d = pki.as_path();
    make_ca(d, "root", "Retire Root", None);
    make_ca(d, "inter", "Retire Issuing CA", Some("root"));
    issue(d, "www", "www.retire.test", Some("inter"), 90, "ec", "");
    cat(d, "www-chain.pem", &["www.pem", "inter.pem"]);
    let old = fingerprint(d, "www.pem");
    let sites: &[Site] = &[("www.retire.test", "127.0.16.1", "www-chain.pem", "", &[])];
    let (port, server) = start_estate(d, sites);
    daemon.write_config(&format!(
        "[discovery.policy]\ntrusted_roots = {root:?}\n\n\
         [[discovery.network]]\nname = \"estate\"\nschedule = \"0 0 0 1 1 *\"\nports = [{port}]\n\
         resolve = [\"www.retire.test:{port}:127.0.16.1\"]\n",
        root = d.join("root.pem"),
    ));
    daemon.start();
    let mut runs = 0;
    let mut scan = || {
        // Times are in whole seconds: a scan starting in the second the last
        // one saw the certificate could not tell it missed it.
        std::thread::sleep(Duration::from_millis(1100));
        runs += 1;
        daemon.cli_ok(&["jobs", "--run-now", "estate"]);
        common::eventually(Duration::from_secs(30), || {
            let jobs = daemon.cli_json(&["jobs"]);
            let done = jobs.as_array()?.iter().find(|j| j["name"] == "estate")?["runs"].as_i64()?;
            (done >= runs).then_some(())
        })
        .unwrap_or_else(|| panic!("scan {runs} did not finish; log:\n{}", daemon.log()));
    };
    scan();
    // The server's admin renews by hand: same names, a newer certificate.
    drop(server);
    std::thread::sleep(Duration::from_millis(1100));
    issue(d, "www", "www.retire.test", Some("inter"), 90, "ec", "");
    cat(d, "www-chain.pem", &["www.pem", "inter.pem"]);
    let new = fingerprint(d, "www.pem");
    assert_ne!(old, new);
    let server = start_estate_on(d, sites, port);
    scan();
    let shown = daemon.cli_json(&["certificates", "show", &old]);
    assert_eq!(shown["certificate"]["replaced_by"], new.as_str(), "{shown}");
    let shown = daemon.cli_json(&["certificates", "show", &new]);
    assert_eq!(shown["certificate"]["replaces"], old.as_str(), "{shown}");

    // The server is decommissioned: three scans miss it.
    drop(server);
    let candidates = |daemon: &common::Daemon| -> Vec<String> {
        let list = daemon.cli_json(&["candidates"]);
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["fingerprint"].as_str().unwrap().to_owned())
            .collect()
    };
    for _ in 0..2 {
        scan();
    }
    assert!(
        !candidates(&daemon).contains(&new),
        "missed twice is not yet a candidate"
    );
    scan();
    let listed = candidates(&daemon);
    assert!(listed.contains(&new), "{listed:?}");
    assert!(
        !listed.contains(&old),
        "a replaced certificate is not listed: {listed:?}"
    );

    let out = daemon.cli_ok(&["deactivate", &new, "--reason", "server decommissioned"]);
    assert!(out.contains("deactivated"), "{out}");
    let shown = daemon.cli_json(&["certificates", "show", &new]);
    assert_eq!(shown["certificate"]["status"], "deactivated", "{shown}");
    assert_eq!(
        shown["certificate"]["deactivated"]["reason"], "server decommissioned",
        "{shown}"
    );
    assert!(!candidates(&daemon).contains(&new));
    let (_, audit) = daemon.get(&format!("/api/v1/audit?object={new}"));
    assert!(audit.contains("certificate_deactivate"), "{audit}");
    let out = daemon.cli_ok(&["deactivate", &new, "--undo"]);
    assert!(out.contains("valid"), "{out}");
    let shown = daemon.cli_json(&["certificates", "show", &new]);
    assert_eq!(shown["certificate"]["status"], "valid", "{shown}");
}
