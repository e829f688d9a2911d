//! Issuance, renewal, deployment and revoke-and-replace end to end, with the
//! real binary, a real nginx (Debian's package) serving what Certkeeper
//! deploys, and real CAs: Certkeeper's own internal CA, and Debian's pebble
//! (ACME, with real HTTP-01 validation against the built-in responder).
//!
//! What a user would notice is what is asserted: nginx serves the managed
//! certificate, a new one after the scheduled renewal, a new one after a
//! replacement; the old one is revoked (in the CRL, at pebble); a broken
//! reload leaves the previous files; a SIGKILL between "deployed" and
//! "revoked" resumes without a second order; CA import finds what the
//! internal CA issued, once, and later only what is new.

#![allow(clippy::unwrap_used)]

#[path = "../connectors/tests/acme_support/mod.rs"]
#[allow(dead_code, unreachable_pub, unused_imports)]
mod acme_support;
mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::nginx::{served, sites};
use common::{
    Daemon, eventually, free_port, log_field as field, managed, openssl, run_ca_import,
    wait_managed,
};
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use serde_json::Value;

#[test]
fn internal_ca_issues_deploys_renews_replaces_and_rolls_back_on_nginx() {
    let mut daemon = Daemon::new("");
    let root = daemon.path("nginx");
    let (www_port, short_port) = (free_port(), free_port());
    let (www_dir, short_dir) = (root.join("www"), root.join("short"));
    let server = sites(&root, &[(www_port, &www_dir), (short_port, &short_dir)]);
    let pid = std::fs::read_to_string(root.join("nginx.pid"))
        .ok()
        .or_else(|| {
            eventually(Duration::from_secs(5), || {
                std::fs::read_to_string(root.join("nginx.pid")).ok()
            })
        })
        .unwrap();
    let pid = pid.trim();
    let broken = daemon.path("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("cert.pem"), "previous certificate\n").unwrap();
    let crl = daemon.path("corp.crl");
    daemon.write_config(&format!(
        r#"
[renewal]
check_interval_seconds = 1
verify_timeout_seconds = 20

{corp_ca}
[[certificate]]
name = "www"
identifiers = ["www.corp.test"]
connector = "corp-ca"
org_unit = "web"
[[certificate.deploy]]
fullchain = "{www}/fullchain.pem"
key = "{www}/key.pem"
reload = ["kill", "-HUP", "{pid}"]
verify = ["127.0.0.1:{www_port}"]
sni = "www.corp.test"

[[certificate]]
name = "short"
identifiers = ["short.corp.test"]
connector = "corp-ca"
validity_seconds = 24
[[certificate.deploy]]
fullchain = "{short}/fullchain.pem"
key = "{short}/key.pem"
reload = ["kill", "-HUP", "{pid}"]
verify = ["127.0.0.1:{short_port}"]
sni = "short.corp.test"

[[certificate]]
name = "broken"
identifiers = ["broken.corp.test"]
connector = "corp-ca"
[[certificate.deploy]]
cert = "{broken}/cert.pem"
key = "{broken}/key.pem"
reload = ["sh", "-c", "echo reload failed >&2; exit 3"]
"#,
        corp_ca = daemon.corp_ca(),
        www = www_dir.display(),
        short = short_dir.display(),
        broken = broken.display(),
    ));
    daemon.start();

    // Issued, deployed, and nginx serves it.
    let www = wait_managed(&daemon, "www", 60, "first issuance", |m| {
        m["generation"] == 1
    });
    let fp1 = www["fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(
        served(www_port, "www.corp.test").as_deref(),
        Some(fp1.as_str())
    );
    let shown = daemon.cli_json(&["certificates", "show", &fp1]);
    assert_eq!(shown["certificate"]["org_unit"], "web", "{shown}");

    // A 24-second certificate renews on schedule (inside its window, about
    // 2/3 of the lifetime) and nginx serves the new one.
    let first_short = wait_managed(&daemon, "short", 60, "first issuance", |m| {
        m["generation"] == 1
    });
    let renewed = wait_managed(&daemon, "short", 90, "scheduled renewal", |m| {
        m["generation"].as_u64() >= Some(2)
    });
    assert_ne!(renewed["fingerprint"], first_short["fingerprint"]);
    let now_serving = eventually(Duration::from_secs(20), || {
        let m = managed(&daemon, "short");
        let fp = served(short_port, "short.corp.test")?;
        (Some(fp.as_str()) == m["fingerprint"].as_str()).then_some(fp)
    });
    assert!(
        now_serving.is_some(),
        "nginx does not serve the renewed certificate"
    );

    // Revoke and replace: a new certificate with a new key serves, the old
    // one is in the CRL as keyCompromise and revoked in the inventory.
    let out = daemon.cli_ok(&["replace", &fp1, "--reason", "keyCompromise"]);
    let fp2 = out.trim().to_owned();
    assert_eq!(fp2.len(), 64, "{out}");
    assert_ne!(fp2, fp1);
    assert_eq!(
        served(www_port, "www.corp.test").as_deref(),
        Some(fp2.as_str())
    );
    let old = daemon.cli_json(&["certificates", "show", &fp1]);
    assert_eq!(old["certificate"]["status"], "revoked", "{old}");
    assert_eq!(old["certificate"]["replaced_by"], fp2.as_str(), "{old}");
    let serial = old["certificate"]["serial"]
        .as_str()
        .unwrap()
        .to_uppercase();
    let (status, _) = daemon.get("/crl/corp-ca");
    assert_eq!(status, 200);
    let text = openssl(
        daemon.dir.path(),
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            crl.to_str().unwrap(),
            "-noout",
            "-text",
        ],
    );
    assert!(
        text.replace(':', "")
            .contains(serial.trim_start_matches('0')),
        "serial {serial} not in the CRL:\n{text}"
    );
    assert!(text.contains("Key Compromise"), "{text}");
    // Revoking again through the CLI is refused clearly (already revoked, or
    // no longer known as in service).
    let again = daemon.cli(&["replace", &fp1]);
    assert!(!again.status.success());

    // A managed certificate created through the API is issued too; one
    // with deploy targets is refused (the API cannot make this host write
    // files or run commands); the config's own cannot be deleted.
    let body = br#"{"name": "api-made", "identifiers": ["api.corp.test"], "connector": "corp-ca"}"#;
    let (status, answer) = common::http(
        "POST",
        &daemon.url("/api/v1/managed"),
        Some(body),
        &[("Content-Type", "application/json")],
    );
    assert_eq!(status, 201, "{answer}");
    let made = wait_managed(
        &daemon,
        "api-made",
        60,
        "issuance of an API-created certificate",
        |m| m["generation"] == 1,
    );
    assert!(made["fingerprint"].is_string());
    let body = format!(
        r#"{{"name": "api-deploy", "identifiers": ["x.corp.test"], "connector": "corp-ca", "deploy": [{{"cert": "{}/x.pem", "reload": ["touch", "/tmp/pwned"]}}]}}"#,
        broken.display()
    );
    let (status, answer) = common::http(
        "POST",
        &daemon.url("/api/v1/managed"),
        Some(body.as_bytes()),
        &[("Content-Type", "application/json")],
    );
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("deploy"), "{answer}");
    let body = br#"{"name": "bad", "identifiers": ["www.other.test"], "connector": "nope"}"#;
    let (status, answer) = common::http(
        "POST",
        &daemon.url("/api/v1/managed"),
        Some(body),
        &[("Content-Type", "application/json")],
    );
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("connector"), "{answer}");
    let (status, _) = common::http("DELETE", &daemon.url("/api/v1/managed/www"), None, &[]);
    assert_eq!(status, 409);
    let (status, _) = common::http("DELETE", &daemon.url("/api/v1/managed/api-made"), None, &[]);
    assert_eq!(status, 204);

    // A broken reload: the previous file is back, the key file that did not
    // exist is gone, and the failure is reported, not retried in a loop.
    let b = wait_managed(&daemon, "broken", 60, "a reported failure", |m| {
        m["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("reload"))
    });
    assert_eq!(b["state"], "failing", "{b}");
    assert!(b["next_attempt"].as_i64().is_some(), "{b}");
    assert_eq!(
        std::fs::read_to_string(broken.join("cert.pem")).unwrap(),
        "previous certificate\n"
    );
    assert!(!broken.join("key.pem").exists());
    // The failure and the lifecycle are events for alerting.
    let (_, body) = daemon.get("/api/v1/events?limit=1000");
    let events: Value = serde_json::from_str(&body).unwrap();
    let kinds: Vec<(String, String)> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"]["type"].as_str().unwrap_or_default().to_owned(),
                e["kind"]["managed"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for wanted in [
        ("deployment_failed", "broken"),
        ("renewal_failed", "broken"),
        ("certificate_issued", "www"),
        ("renewal_succeeded", "short"),
        ("certificate_revoked", ""),
    ] {
        assert!(
            kinds.iter().any(|(k, m)| k == wanted.0 && m == wanted.1),
            "no {wanted:?} event in {kinds:?}"
        );
    }

    // No private key anywhere a user can see.
    let log = daemon.log();
    assert!(!log.contains("PRIVATE KEY"), "a key reached the log");
    let (_, listing) = daemon.get("/api/v1/managed");
    assert!(
        !listing.contains("PRIVATE") && !listing.contains("v1:"),
        "{listing}"
    );
    assert!(
        !log.contains("correct horse"),
        "the CA passphrase reached the log"
    );
    drop(server);
}

/// A TCP forwarder the test can cut, to make a CA unreachable on demand.
struct Switch {
    port: u16,
    up: Arc<AtomicBool>,
}

impl Switch {
    fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let flag = up.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !flag.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let flag = flag.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        from.set_read_timeout(Some(Duration::from_millis(200))).ok();
                        loop {
                            if !flag.load(Ordering::SeqCst) {
                                break;
                            }
                            match from.read(&mut buf) {
                                Ok(0) => break,
                                Ok(n) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                                Err(e)
                                    if e.kind() == std::io::ErrorKind::WouldBlock
                                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                                Err(_) => break,
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                        let _ = from.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self { port, up }
    }

    fn set(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
}

/// GET over HTTPS without verification (pebble's management interface).
fn https_get(url: &str) -> String {
    let rest = url.strip_prefix("https://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut builder = SslConnector::builder(SslMethod::tls_client()).unwrap();
    builder.set_verify(SslVerifyMode::NONE);
    let tcp = TcpStream::connect(host).unwrap();
    let mut tls = builder.build().connect("localhost", tcp).unwrap();
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn acme_issue_deploy_replace_resumes_after_sigkill_between_deployed_and_revoked() {
    let http_port = free_port();
    let pebble = acme_support::Pebble::start(http_port, acme_support::PebbleDns::ChallTestSrv);
    let pebble_port: u16 = pebble
        .directory_url
        .trim_start_matches("https://127.0.0.1:")
        .trim_end_matches("/dir")
        .parse()
        .unwrap();
    let switch = Switch::start(pebble_port);
    let mut daemon = Daemon::new("");
    let roots = daemon.path("pebble-roots.pem");
    std::fs::write(&roots, &pebble.root_pem).unwrap();
    let root = daemon.path("nginx");
    let site_port = free_port();
    let site_dir = root.join("site");
    let server = sites(&root, &[(site_port, &site_dir)]);
    let pid = eventually(Duration::from_secs(5), || {
        std::fs::read_to_string(root.join("nginx.pid")).ok()
    })
    .unwrap();
    let (reloaded, go) = (daemon.path("reloaded"), daemon.path("go"));
    std::fs::write(&go, "").unwrap();
    daemon.write_config(&format!(
        r#"
[renewal]
check_interval_seconds = 1
verify_timeout_seconds = 20

[[connector]]
name = "pebble"
type = "acme"
directory_url = "https://127.0.0.1:{switch}/dir"
roots_file = "{roots}"
contacts = ["ops@example.com"]
request_timeout_seconds = 5
[connector.challenge]
type = "http01"
listen = "127.0.0.1:{http_port}"

[[certificate]]
name = "site"
identifiers = ["site.acme.test"]
connector = "pebble"
key_type = "rsa2048"
[[certificate.deploy]]
fullchain = "{dir}/fullchain.pem"
key = "{dir}/key.pem"
reload = ["sh", "-c", "kill -HUP {pid} && touch {reloaded} && while [ ! -e {go} ]; do sleep 0.1; done"]
verify = ["127.0.0.1:{site_port}"]
sni = "site.acme.test"
"#,
        switch = switch.port,
        roots = roots.display(),
        dir = site_dir.display(),
        pid = pid.trim(),
        reloaded = reloaded.display(),
        go = go.display(),
    ));
    daemon.start();
    let first = wait_managed(&daemon, "site", 90, "issuance through pebble", |m| {
        m["generation"] == 1
    });
    let fp1 = first["fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(
        served(site_port, "site.acme.test").as_deref(),
        Some(fp1.as_str())
    );
    let serial1 = daemon.cli_json(&["certificates", "show", &fp1])["certificate"]["serial"]
        .as_str()
        .unwrap()
        .to_owned();

    // Replace; while the reload runs, cut the CA off, so the old certificate
    // cannot be revoked once the new one is deployed and verified.
    std::fs::remove_file(&go).unwrap();
    let _ = std::fs::remove_file(&reloaded);
    daemon.cli_ok(&["replace", &fp1, "--no-wait", "--reason", "keyCompromise"]);
    assert!(
        eventually(Duration::from_secs(60), || reloaded.exists().then_some(())).is_some(),
        "the replacement was never deployed: {}",
        daemon.log()
    );
    switch.set(false);
    std::fs::write(&go, "").unwrap();
    let stuck = wait_managed(
        &daemon,
        "site",
        60,
        "a failed revocation at step deployed",
        |m| m["operation"]["step"] == "deployed" && m["attempts"].as_u64() >= Some(1),
    );
    let fp2 = stuck["operation"]["new_fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        served(site_port, "site.acme.test").as_deref(),
        Some(fp2.as_str())
    );
    // The old one is still valid at the CA: nothing revoked before verification.
    let status = https_get(&format!(
        "{}/cert-status-by-serial/{serial1}",
        pebble.management_url
    ));
    assert!(status.contains("Valid"), "{status}");

    // SIGKILL here, bring the CA back, restart: the same new certificate
    // stays (no second order) and the old one gets revoked.
    daemon.signal("KILL");
    daemon.wait_exit(Duration::from_secs(10));
    switch.set(true);
    daemon.start();
    daemon.cli_ok(&["renew", "site"]); // skip the backoff
    let done = wait_managed(&daemon, "site", 60, "the resumed replacement", |m| {
        m["operation"].is_null() && m["generation"] == 2
    });
    assert_eq!(
        done["fingerprint"],
        fp2.as_str(),
        "a second order was placed"
    );
    assert_eq!(done["previous"][0], fp1.as_str());
    let status = https_get(&format!(
        "{}/cert-status-by-serial/{serial1}",
        pebble.management_url
    ));
    assert!(status.contains("Revoked"), "{status}");
    assert_eq!(
        served(site_port, "site.acme.test").as_deref(),
        Some(fp2.as_str())
    );
    drop(server);
}

#[test]
fn acme_certificate_renews_on_schedule_with_replaces_and_lineage() {
    // Pebble issues 40-second certificates: with no ARI (pebble 2.4 has
    // none), the daemon renews at half the lifetime (under ten days).
    let http_port = free_port();
    let pebble = acme_support::Pebble::start_with_validity(
        http_port,
        acme_support::PebbleDns::ChallTestSrv,
        Some(40),
    );
    let mut daemon = Daemon::new("");
    let roots = daemon.path("pebble-roots.pem");
    std::fs::write(&roots, &pebble.root_pem).unwrap();
    let root = daemon.path("nginx");
    let port = free_port();
    let dir = root.join("short");
    let server = sites(&root, &[(port, &dir)]);
    let pid = eventually(Duration::from_secs(5), || {
        std::fs::read_to_string(root.join("nginx.pid")).ok()
    })
    .unwrap();
    daemon.write_config(&format!(
        r#"
[renewal]
check_interval_seconds = 1

[[connector]]
name = "pebble"
type = "acme"
directory_url = "{url}"
roots_file = "{roots}"
[connector.challenge]
type = "http01"
listen = "127.0.0.1:{http_port}"

[[certificate]]
name = "short"
identifiers = ["short.acme.test"]
connector = "pebble"
[[certificate.deploy]]
fullchain = "{dir}/fullchain.pem"
key = "{dir}/key.pem"
reload = ["kill", "-HUP", "{pid}"]
verify = ["127.0.0.1:{port}"]
sni = "short.acme.test"
"#,
        url = pebble.directory_url,
        roots = roots.display(),
        dir = dir.display(),
        pid = pid.trim(),
    ));
    daemon.start();
    let first = wait_managed(&daemon, "short", 90, "issuance", |m| m["generation"] == 1);
    let lifetime = first["not_after"].as_i64().unwrap() - first["renew_at"].as_i64().unwrap();
    assert!(
        (15..=25).contains(&lifetime),
        "renewal is not scheduled at half of a 40 s lifetime: {first}"
    );
    let second = wait_managed(&daemon, "short", 120, "the scheduled renewal", |m| {
        m["generation"].as_u64() >= Some(2)
    });
    let (old, new) = (
        first["fingerprint"].as_str().unwrap(),
        second["fingerprint"].as_str().unwrap(),
    );
    assert_ne!(old, new);
    let served_now = eventually(Duration::from_secs(20), || {
        let m = managed(&daemon, "short");
        let fp = served(port, "short.acme.test")?;
        (Some(fp.as_str()) == m["fingerprint"].as_str()).then_some(fp)
    });
    assert!(
        served_now.is_some(),
        "nginx does not serve the renewed certificate"
    );
    let shown = daemon.cli_json(&["certificates", "show", new]);
    if second["generation"] == 2 {
        assert_eq!(shown["certificate"]["replaces"], old, "{shown}");
    }
    drop(server);
}

#[test]
fn ca_import_fills_the_inventory_from_the_internal_ca_incrementally() {
    let mut daemon = Daemon::new("");
    let deployed = daemon.path("deployed");
    std::fs::create_dir_all(&deployed).unwrap();
    let mut certificates = String::new();
    for name in ["api", "mail", "vpn"] {
        certificates.push_str(&format!(
            "[[certificate]]\nname = \"{name}\"\nidentifiers = [\"{name}.corp.test\"]\n\
             connector = \"corp-ca\"\n[[certificate.deploy]]\nfullchain = \"{d}/{name}.pem\"\n\
             key = \"{d}/{name}.key\"\n",
            d = deployed.display()
        ));
    }
    daemon.write_config(&format!(
        "[renewal]\ncheck_interval_seconds = 1\n\n{corp_ca}\n\
         [[discovery.ca]]\nname = \"corp-import\"\nconnector = \"corp-ca\"\nschedule = \"0 0 0 1 1 * 2099\"\n\n\
         {certificates}",
        corp_ca = daemon.corp_ca(),
    ));
    daemon.start();
    let mut fingerprints = Vec::new();
    for name in ["api", "mail", "vpn"] {
        let m = wait_managed(&daemon, name, 60, "first issuance", |m| {
            m["generation"] == 1
        });
        fingerprints.push(m["fingerprint"].as_str().unwrap().to_owned());
    }

    // The first run lists all three; each is now held by the CA account.
    let first = run_ca_import(&daemon, "corp-import");
    assert_eq!(field(&first, "listed"), "3", "{first}");
    // Each is deployed by its managed certificate.
    assert_eq!(field(&first, "issued_not_deployed"), "0", "{first}");
    for fp in &fingerprints {
        let shown = daemon.cli_json(&["certificates", "show", fp]);
        let places: Vec<&str> = shown["sightings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["location"].as_str())
            .collect();
        assert!(places.contains(&"ca:corp-ca"), "{shown}");
    }
    // The second reads only what is new: nothing.
    let second = run_ca_import(&daemon, "corp-import");
    assert_eq!(field(&second, "listed"), "0", "{second}");
    assert_eq!(field(&second, "added"), "0", "{second}");

    // A renewal issues one more: the next run lists that one only.
    daemon.cli_ok(&["renew", "api"]);
    let renewed = wait_managed(&daemon, "api", 60, "renewal", |m| m["generation"] == 2);
    let third = run_ca_import(&daemon, "corp-import");
    assert_eq!(field(&third, "listed"), "1", "{third}");
    let shown = daemon.cli_json(&[
        "certificates",
        "show",
        renewed["fingerprint"].as_str().unwrap(),
    ]);
    assert!(shown.to_string().contains("ca:corp-ca"), "{shown}");
    eprintln!(
        "CA import of the internal CA: first run {} s (3 listed), second {} s (0 listed)",
        field(&first, "seconds"),
        field(&second, "seconds")
    );
    // A connector that cannot list is refused when the config is checked.
    let bad = daemon.path("bad.toml");
    std::fs::write(
        &bad,
        "[[connector]]\nname = \"le\"\ntype = \"acme\"\ndirectory_url = \"https://acme.invalid/dir\"\n\
         contacts = [\"ops@example.com\"]\n[connector.challenge]\ntype = \"webroot\"\npath = \"/tmp\"\n\
         [[discovery.ca]]\nname = \"le-import\"\nconnector = \"le\"\nschedule = \"0 0 * * * *\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_certkeeper"))
        .args(["validate", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("discovery.ca[0].connector") && err.contains("ACME"),
        "{err}"
    );
}

#[test]
fn adopt_makes_a_found_certificate_managed_without_issuing_and_renews_it() {
    let mut daemon = Daemon::new("");
    daemon.write_config(&format!(
        "[renewal]\ncheck_interval_seconds = 1\n\n{}",
        daemon.corp_ca()
    ));
    daemon.start();
    // A certificate the CA issued that nothing manages any more: created
    // through the API, issued, then no longer managed.
    let (status, body) = common::http(
        "POST",
        &daemon.url("/api/v1/managed"),
        Some(br#"{"name": "vpn", "identifiers": ["vpn.corp.test"], "connector": "corp-ca"}"#),
        &[("Content-Type", "application/json")],
    );
    assert_eq!(status, 201, "{body}");
    let issued = wait_managed(&daemon, "vpn", 60, "issuance", |m| m["generation"] == 1);
    let fp = issued["fingerprint"].as_str().unwrap().to_owned();
    let (status, body) = common::http("DELETE", &daemon.url("/api/v1/managed/vpn"), None, &[]);
    assert_eq!(status, 204, "{body}");

    let out = daemon.cli(&[
        "adopt",
        &fp,
        "--connector",
        "corp-ca",
        "--name",
        "vpn-adopted",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let block = String::from_utf8_lossy(&out.stdout);
    assert!(block.contains("name = \"vpn-adopted\""), "{block}");
    assert!(block.contains("\"vpn.corp.test\""), "{block}");
    // Managed now, with the found certificate in service: nothing issued.
    let adopted = managed(&daemon, "vpn-adopted");
    assert_eq!(adopted["fingerprint"], fp.as_str(), "{adopted}");
    assert_eq!(adopted["generation"], 0, "{adopted}");
    assert!(
        adopted["renew_at"].as_i64().unwrap() > chrono_now(),
        "renews later: {adopted}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(managed(&daemon, "vpn-adopted")["fingerprint"], fp.as_str());
    // Adopting it twice is refused, naming who manages it.
    let again = daemon.cli(&["adopt", &fp, "--connector", "corp-ca"]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("vpn-adopted"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    // An unknown certificate is a clear error.
    let unknown = daemon.cli(&["adopt", &"ab".repeat(32), "--connector", "corp-ca"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no certificate"));
    // Its renewal goes through the connector.
    daemon.cli_ok(&["renew", "vpn-adopted"]);
    let renewed = wait_managed(&daemon, "vpn-adopted", 60, "renewal", |m| {
        m["generation"] == 1
    });
    assert_ne!(renewed["fingerprint"], fp.as_str());
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
