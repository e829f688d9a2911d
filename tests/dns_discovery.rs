//! Discovery by name end to end: `certkeeper scan NAME... --dns-server` asks
//! a real BIND 9 (`named` from Debian's bind9, started on a free loopback
//! port with its own config and zone in a tempdir) for the addresses of the
//! names of `corp.test`, and probes them where nginx (Debian's package)
//! serves them, one server block per loopback address. Nothing here uses
//! `--resolve`: every address in the output comes from BIND.
//!
//! | name | records | served | expected |
//! |------|---------|--------|----------|
//! | `www` | A 127.0.21.1 | TLS, leaf for www.corp.test; HTTP on :80 too | one record, no findings (TLS, so not `unprotected`) |
//! | `shop` | A 127.0.21.2 | TLS, leaf for store.corp.test only | `hostname_mismatch` |
//! | `plain` | A 127.0.21.3 | plain HTTP on :80 only | `unprotected`, on port 80 |
//! | `api` | A 127.0.21.4, A 127.0.21.5 | TLS on both | one record per address, no findings |
//! | `alias` | CNAME `www` | www's server | followed: 127.0.21.1, `hostname_mismatch` |
//! | `dark` | A 127.0.21.6 | nothing | no record |
//! | `missing` | none (NXDOMAIN) | — | no record; a warning on stderr |
//!
//! The plain-HTTP check of the scanner only ever asks port 80 (see
//! `scan_name` in daemon/discovery/src/scan.rs), so nginx binds
//! 127.0.21.1:80 and 127.0.21.3:80; that needs root (or a lowered
//! `net.ipv4.ip_unprivileged_port_start`), as the other end-to-end tests
//! that run Postfix and Dovecot do.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::named::Named;
use common::nginx::Nginx;
use common::{codes, fingerprint, make_chain, openssl};
use serde_json::Value;

const ZONE: &str = "\
$TTL 60
@       IN SOA   ns.corp.test. hostmaster.corp.test. 1 60 60 600 60
@       IN NS    ns
ns      IN A     127.0.0.1
www     IN A     127.0.21.1
shop    IN A     127.0.21.2
plain   IN A     127.0.21.3
api     IN A     127.0.21.4
api     IN A     127.0.21.5
alias   IN CNAME www
dark    IN A     127.0.21.6
";

/// A named.conf that touches nothing outside `dir`: no command channel, no
/// recursion (so `missing.corp.test` is an authoritative NXDOMAIN), session
/// and managed keys in `dir`.
fn write_named_config(dir: &Path, port: u16) -> PathBuf {
    let d = dir.display();
    fs::write(dir.join("corp.test.zone"), ZONE).unwrap();
    let conf = format!(
        r#"options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    querylog yes;
}};
controls {{ }};
zone "corp.test" {{ type primary; file "{d}/corp.test.zone"; }};
"#
    );
    let path = dir.join("named.conf");
    fs::write(&path, conf).unwrap();
    path
}

/// Serves TLS on `port` of each (address, chain, key) in `tls`, and plain
/// HTTP on port 80 of each address in `http`, from one nginx whose config,
/// logs and temporary files are in `d`.
fn start_nginx(d: &Path, port: u16, tls: &[(&str, &str, &str)], http: &[&str]) -> Nginx {
    let dd = d.display();
    let mut servers = String::new();
    for (ip, chain, key) in tls {
        servers.push_str(&format!(
            "server {{ listen {ip}:{port} ssl; ssl_certificate {dd}/{chain}; ssl_certificate_key {dd}/{key}; return 200 ok; }}\n"
        ));
    }
    for ip in http {
        servers.push_str(&format!("server {{ listen {ip}:80; return 200 plain; }}\n"));
    }
    let listening: Vec<(&str, u16)> = tls
        .iter()
        .map(|(ip, _, _)| (*ip, port))
        .chain(http.iter().map(|ip| (*ip, 80)))
        .collect();
    Nginx::start(d, &servers, &listening)
}

/// Issues `{file}.pem` (+ `{file}.key`) for `dns` from the intermediate that
/// [`make_chain`] left in `d`, valid 90 days.
fn issue_leaf(d: &Path, file: &str, dns: &str) {
    let (key, csr, pem, ext) = (
        format!("{file}.key"),
        format!("{file}.csr"),
        format!("{file}.pem"),
        format!("{file}.ext"),
    );
    openssl(
        d,
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
            &format!("/CN={dns}"),
        ],
    );
    fs::write(
        d.join(&ext),
        format!(
            "subjectAltName=DNS:{dns}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n"
        ),
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "inter.pem",
            "-CAkey",
            "inter.key",
            "-out",
            &pem,
            "-days",
            "90",
            "-extfile",
            &ext,
        ],
    );
    let served = fs::read_to_string(d.join(&pem)).unwrap()
        + &fs::read_to_string(d.join("inter.pem")).unwrap();
    fs::write(d.join(format!("{file}-chain.pem")), served).unwrap();
}

#[test]
fn names_are_resolved_by_bind_and_each_gets_its_own_findings() {
    // The plain-HTTP check asks port 80 only: without it there is nothing
    // to test for `unprotected`, so say so rather than pass.
    if let Err(e) = TcpListener::bind("127.0.21.3:80") {
        panic!(
            "cannot bind 127.0.21.3:80 ({e}): the unprotected check only probes port 80; \
             run the tests as root (as tests/run.sh does for Postfix and Dovecot)"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // root.pem, inter.pem, and leaf.pem for corp.test and www.corp.test.
    make_chain(d, "corp.test", 90);
    let www_chain = fs::read_to_string(d.join("leaf.pem")).unwrap()
        + &fs::read_to_string(d.join("inter.pem")).unwrap();
    fs::write(d.join("www-chain.pem"), www_chain).unwrap();
    issue_leaf(d, "store", "store.corp.test");
    issue_leaf(d, "api", "api.corp.test");
    let fp = |pem: &str| fingerprint(d, pem);
    let (www_fp, store_fp, api_fp, inter_fp) = (
        fp("leaf.pem"),
        fp("store.pem"),
        fp("api.pem"),
        fp("inter.pem"),
    );

    let named = Named::start(write_named_config);
    let port = common::free_port();
    let _nginx = start_nginx(
        d,
        port,
        &[
            ("127.0.21.1", "www-chain.pem", "leaf.key"),
            ("127.0.21.2", "store-chain.pem", "store.key"),
            ("127.0.21.4", "api-chain.pem", "api.key"),
            ("127.0.21.5", "api-chain.pem", "api.key"),
        ],
        &["127.0.21.1", "127.0.21.3"],
    );

    let out = Command::new(common::BIN)
        .args([
            "scan",
            "www.corp.test",
            "shop.corp.test",
            "plain.corp.test",
            "api.corp.test",
            "alias.corp.test",
            "dark.corp.test",
            "missing.corp.test",
            "--dns-server",
            &format!("127.0.0.1:{}", named.port),
            "--ports",
            &port.to_string(),
            "--trusted-roots",
            &d.join("root.pem").display().to_string(),
            "--format",
            "json",
        ])
        // The default filter (warnings) is what a user sees.
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "certkeeper scan failed: {stderr}");
    let records: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    // One record per (name, address, port), keyed so order does not matter.
    let mut by_key: BTreeMap<(String, String, u64), &Value> = BTreeMap::new();
    for record in &records {
        assert_eq!(record["source"], "network", "{record}");
        let key = (
            record["sni"].as_str().unwrap().to_owned(),
            record["ip"].as_str().unwrap().to_owned(),
            record["port"].as_u64().unwrap(),
        );
        assert!(
            by_key.insert(key, record).is_none(),
            "duplicate record: {record}"
        );
    }
    let tls = u64::from(port);
    let key = |name: &str, ip: &str, port: u64| (name.to_owned(), ip.to_owned(), port);
    let expected_keys = [
        key("alias.corp.test", "127.0.21.1", tls),
        key("api.corp.test", "127.0.21.4", tls),
        key("api.corp.test", "127.0.21.5", tls),
        key("plain.corp.test", "127.0.21.3", 80),
        key("shop.corp.test", "127.0.21.2", tls),
        key("www.corp.test", "127.0.21.1", tls),
    ];
    assert_eq!(
        by_key.keys().cloned().collect::<Vec<_>>(),
        expected_keys,
        "exactly these sightings (names from BIND, not dark or missing): {records:#?}\nstderr: {stderr}\nnamed log:\n{}",
        named.log()
    );

    // Each TLS sighting carries the chain nginx serves on that address.
    let tls_cases: [(&str, &str, &str, &[&str]); 5] = [
        ("www.corp.test", "127.0.21.1", &www_fp, &[]),
        (
            "shop.corp.test",
            "127.0.21.2",
            &store_fp,
            &["hostname_mismatch"],
        ),
        ("api.corp.test", "127.0.21.4", &api_fp, &[]),
        ("api.corp.test", "127.0.21.5", &api_fp, &[]),
        // The CNAME is followed to www's address; the name checked is the
        // one scanned, which www's leaf does not cover.
        (
            "alias.corp.test",
            "127.0.21.1",
            &www_fp,
            &["hostname_mismatch"],
        ),
    ];
    for (name, ip, leaf_fp, expected) in tls_cases {
        let record = by_key[&key(name, ip, tls)];
        assert!(record.get("error").is_none(), "{record}");
        assert!(record.get("starttls").is_none(), "{record}");
        let chain = record["chain"].as_array().unwrap();
        assert_eq!(chain.len(), 2, "leaf and intermediate: {record}");
        assert_eq!(chain[0]["fingerprint_sha256"], leaf_fp, "{record}");
        assert_eq!(
            chain[1]["fingerprint_sha256"],
            inter_fp.as_str(),
            "{record}"
        );
        assert_eq!(codes(record), expected, "{record}");
    }

    // plain.corp.test answers HTTP on port 80 and serves no TLS.
    let plain = by_key[&key("plain.corp.test", "127.0.21.3", 80)];
    assert_eq!(plain["chain"].as_array().unwrap().len(), 0, "{plain}");
    assert!(plain.get("error").is_none(), "{plain}");
    assert_eq!(codes(plain), ["unprotected"], "{plain}");
    // www.corp.test answers on port 80 too, but it serves TLS: not flagged
    // (its only record is the clean TLS one checked above).

    // The NXDOMAIN name yields no record; the user is told on stderr.
    assert!(
        stderr.contains("cannot resolve") && stderr.contains("missing.corp.test"),
        "stderr: {stderr}"
    );
    assert!(!stderr.contains("dark.corp.test"), "stderr: {stderr}");

    // BIND answered every name (querylog), so none of the addresses came
    // from anywhere else.
    let log = named.log();
    for name in ["www", "shop", "plain", "api", "alias", "dark", "missing"] {
        assert!(
            log.contains(&format!("query: {name}.corp.test IN A ")),
            "named saw no A query for {name}.corp.test:\n{log}"
        );
    }
}
