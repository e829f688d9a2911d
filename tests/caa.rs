//! CAA lookups and verdicts against a real BIND 9 (`named` from Debian's
//! bind9), started once per test on a free loopback port with its own
//! config, zones and log in a tempdir, and killed when the test ends.
//!
//! Two zones: `test` (no CAA anywhere, so names under it have none) and
//! `example.test`, delegated from it, with one case per name:
//!
//! | name | records | what it shows |
//! |------|---------|---------------|
//! | `example.test` | `issue "letsencrypt.org"`, `iodef` | the apex set, inherited below |
//! | `www`, `nx` (absent) | none | inherit from the apex, even for NXDOMAIN |
//! | `wild` | `issue "letsencrypt.org"`, `issuewild ";"` | issuewild precedence for wildcards |
//! | `wildonly` | `issuewild "pki.goog"` | issuewild does not restrict plain names |
//! | `closed` | `issue ";"` | forbids every CA |
//! | `crit` | `issue "letsencrypt.org"`, `128 tbs "x"` | critical unknown tag forbids |
//! | `own`, `sub.own` | `issue "pki.goog; …"`, `"Sectigo.COM"` | a subdomain overrides the parent |
//! | `alias` | CNAME to `own` | CNAMEs are followed |

// Test scaffolding: a failed expect is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::named::Named;

use certkeeper_discovery::caa::{
    CaaError, CaaReportRow, CaaSet, CaaVerdict, evaluate, lookup_caa, report,
};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

const PARENT_ZONE: &str = "\
$TTL 60
@          IN SOA ns.test. hostmaster.test. 1 60 60 600 60
@          IN NS  ns.test.
ns         IN A   127.0.0.1
plain      IN A   127.0.0.1
www.plain  IN A   127.0.0.1
example    IN NS  ns.example.test.
ns.example IN A   127.0.0.1
";

const ZONE: &str = "\
$TTL 60
@        IN SOA   ns.example.test. hostmaster.example.test. 1 60 60 600 60
@        IN NS    ns
ns       IN A     127.0.0.1
@        IN CAA   0 issue \"letsencrypt.org\"
@        IN CAA   0 iodef \"mailto:security@example.test\"
www      IN A     127.0.0.1
wild     IN CAA   0 issue \"letsencrypt.org\"
wild     IN CAA   0 issuewild \";\"
wildonly IN CAA   0 issuewild \"pki.goog\"
closed   IN CAA   0 issue \";\"
crit     IN CAA   0 issue \"letsencrypt.org\"
crit     IN CAA   128 tbs \"x\"
own      IN CAA   0 issue \"pki.goog; cansignhttpexchanges=yes\"
own      IN CAA   0 issue \"Sectigo.COM\"
sub.own  IN A     127.0.0.1
alias    IN CNAME own
";

/// A resolver that asks `named` only (UDP, TCP on truncation).
fn resolver(named: &Named) -> TokioResolver {
    let mut udp = ConnectionConfig::udp();
    udp.port = named.port;
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = named.port;
    let server = NameServerConfig::new(Ipv4Addr::LOCALHOST.into(), true, vec![udp, tcp]);
    let config = ResolverConfig::from_name_servers(vec![server]);
    let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
    let options = builder.options_mut();
    options.use_hosts_file = ResolveHosts::Never;
    options.timeout = Duration::from_secs(2);
    options.attempts = 1;
    builder.build().expect("resolver")
}

/// A named.conf that touches nothing outside `dir`: no command channel,
/// no recursion, session and managed keys in `dir`.
fn write_config(dir: &Path, port: u16) -> PathBuf {
    let d = dir.display();
    fs::write(dir.join("test.zone"), PARENT_ZONE).expect("parent zone");
    fs::write(dir.join("example.test.zone"), ZONE).expect("zone");
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
}};
controls {{ }};
zone "test" {{ type primary; file "{d}/test.zone"; }};
zone "example.test" {{ type primary; file "{d}/example.test.zone"; }};
"#
    );
    let path = dir.join("named.conf");
    fs::write(&path, conf).expect("named.conf");
    path
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[tokio::test]
async fn finds_the_relevant_record_set_like_a_ca() {
    let named = Named::start(write_config);
    let resolver = resolver(&named);
    let lookup = |name: &'static str| {
        let resolver = resolver.clone();
        async move { lookup_caa(&resolver, name).await.expect(name) }
    };

    let apex = CaaSet {
        found_at: Some("example.test".into()),
        issue: Some(strings(&["letsencrypt.org"])),
        issuewild: None,
        iodef: strings(&["mailto:security@example.test"]),
        critical_unknown: false,
    };
    assert_eq!(lookup("example.test").await, apex);
    // Names without records inherit the closest parent's, existing or not.
    assert_eq!(lookup("www.example.test").await, apex);
    assert_eq!(lookup("a.b.nx.example.test").await, apex);
    assert_eq!(lookup("WWW.Example.Test.").await, apex);

    // A subdomain's own records override the parent's, for it and below it.
    let own = lookup("sub.own.example.test").await;
    assert_eq!(own.found_at.as_deref(), Some("own.example.test"));
    assert_eq!(own.issue, Some(strings(&["pki.goog", "sectigo.com"])));
    assert!(own.iodef.is_empty());

    // The resolver follows the CNAME; the set is reported for the name asked.
    let alias = lookup("alias.example.test").await;
    assert_eq!(alias.found_at.as_deref(), Some("alias.example.test"));
    assert_eq!(alias.issue, own.issue);

    // No CAA anywhere up to the top-level domain.
    assert_eq!(lookup("www.plain.test").await, CaaSet::default());

    // A wildcard uses the records of the name below the '*'.
    assert_eq!(lookup("*.www.example.test").await, apex);

    let crit = lookup("crit.example.test").await;
    assert!(crit.critical_unknown);
}

#[tokio::test]
async fn verdicts_per_case() {
    let named = Named::start(write_config);
    let resolver = resolver(&named);
    let le = strings(&["letsencrypt.org"]);
    let google = strings(&["pki.goog"]);
    let verdict = async |name: &str, ca: &[String], wildcard: bool| {
        let set = lookup_caa(&resolver, name).await.expect(name);
        evaluate(&set, ca, wildcard)
    };
    let forbidden = |allowed: &[&str]| CaaVerdict::Forbidden {
        allowed: strings(allowed),
    };

    assert_eq!(
        verdict("www.example.test", &le, false).await,
        CaaVerdict::Allowed
    );
    assert_eq!(
        verdict("www.example.test", &google, false).await,
        forbidden(&["letsencrypt.org"])
    );
    // issue also governs wildcards when there is no issuewild.
    assert_eq!(
        verdict("example.test", &le, true).await,
        CaaVerdict::Allowed
    );
    // issuewild ";" forbids wildcards while plain names stay allowed.
    assert_eq!(
        verdict("wild.example.test", &le, false).await,
        CaaVerdict::Allowed
    );
    assert_eq!(
        verdict("wild.example.test", &le, true).await,
        forbidden(&[])
    );
    // issuewild alone restricts wildcards only.
    assert_eq!(
        verdict("wildonly.example.test", &le, false).await,
        CaaVerdict::Allowed
    );
    assert_eq!(
        verdict("wildonly.example.test", &le, true).await,
        forbidden(&["pki.goog"])
    );
    assert_eq!(
        verdict("wildonly.example.test", &google, true).await,
        CaaVerdict::Allowed
    );
    // issue ";" forbids every CA.
    assert_eq!(
        verdict("closed.example.test", &le, false).await,
        forbidden(&[])
    );
    assert_eq!(
        verdict("x.closed.example.test", &google, true).await,
        forbidden(&[])
    );
    // An unknown critical tag forbids even a listed CA.
    assert_eq!(
        verdict("crit.example.test", &le, false).await,
        CaaVerdict::Critical
    );
    // The override: Let's Encrypt, allowed at the apex, is not below own.
    assert_eq!(
        verdict("sub.own.example.test", &le, false).await,
        CaaVerdict::Forbidden {
            allowed: strings(&["pki.goog", "sectigo.com"])
        }
    );
    assert_eq!(
        verdict("sub.own.example.test", &google, false).await,
        CaaVerdict::Allowed
    );
    assert_eq!(
        verdict("www.plain.test", &[], false).await,
        CaaVerdict::AllowedNoRecords
    );
}

#[tokio::test]
async fn a_failed_lookup_is_an_error_not_an_empty_set() {
    let named = Named::start(write_config);
    // named serves neither this name nor its parents and does not recurse: REFUSED.
    let error = lookup_caa(&resolver(&named), "www.example.org")
        .await
        .expect_err("REFUSED is not 'no records'");
    assert!(
        matches!(&error, CaaError::Failed { name, .. } if name == "www.example.org"),
        "{error:?}"
    );
    assert!(error.is_transient());
    let error = lookup_caa(&resolver(&named), "bad..name")
        .await
        .expect_err("invalid");
    assert_eq!(error, CaaError::InvalidName("bad..name".into()));
    assert!(!error.is_transient());
}

#[tokio::test]
async fn reports_every_domain_against_every_connector() {
    let named = Named::start(write_config);
    let domains = strings(&[
        "www.example.test",
        "*.wild.example.test",
        "plain.test",
        "nope.example.org",
    ]);
    let connectors = vec![
        ("letsencrypt".to_owned(), strings(&["letsencrypt.org"])),
        ("google".to_owned(), strings(&["pki.goog"])),
    ];
    let rows = report(&resolver(&named), &domains, &connectors).await;
    let row = |domain: &str, connector: &str| -> &CaaReportRow {
        rows.iter()
            .find(|r| r.domain == domain && r.connector == connector)
            .expect("row")
    };
    assert_eq!(rows.len(), 8);
    assert_eq!(
        (rows[0].domain.as_str(), rows[0].connector.as_str()),
        ("www.example.test", "letsencrypt")
    );
    let le = row("www.example.test", "letsencrypt");
    assert_eq!(le.verdict, Ok(CaaVerdict::Allowed));
    assert_eq!(le.allowed_cas, Some(strings(&["letsencrypt.org"])));
    let google = row("www.example.test", "google");
    assert_eq!(
        google.verdict,
        Ok(CaaVerdict::Forbidden {
            allowed: strings(&["letsencrypt.org"])
        })
    );
    let wild = row("*.wild.example.test", "letsencrypt");
    assert_eq!(wild.verdict, Ok(CaaVerdict::Forbidden { allowed: vec![] }));
    assert_eq!(wild.allowed_cas, Some(vec![]));
    let plain = row("plain.test", "google");
    assert_eq!(plain.verdict, Ok(CaaVerdict::AllowedNoRecords));
    assert_eq!(plain.allowed_cas, None);
    assert!(row("nope.example.org", "google").verdict.is_err());
}

/// The report through the API: a daemon whose CAA lookups go to this
/// named, two connectors known by different CAA identities, and managed
/// domains with and without records.
#[test]
fn the_caa_report_says_which_connector_may_issue_for_each_managed_domain() {
    let named = Named::start(write_config);
    let mut daemon = common::Daemon::new("");
    daemon.write_config(&format!(
        r#"
[admin]
caa_dns_servers = ["127.0.0.1:{port}"]

[[connector]]
name = "le"
type = "internal_ca"
passphrase = "correct horse battery staple"
allowed_dns = [".test"]
caa_identities = ["letsencrypt.org"]
crl_path = "{crl1}"

[[connector]]
name = "goog"
type = "internal_ca"
passphrase = "correct horse battery staple"
allowed_dns = [".test"]
caa_identities = ["pki.goog"]
crl_path = "{crl2}"
"#,
        port = named.port,
        crl1 = daemon.path("le.crl").display(),
        crl2 = daemon.path("goog.crl").display(),
    ));
    daemon.start();
    let post = |path: &str, body: serde_json::Value| {
        let (status, text) = common::http(
            "POST",
            &daemon.url(path),
            Some(body.to_string().as_bytes()),
            &[("Content-Type", "application/json")],
        );
        assert!((200..300).contains(&status), "{path}: {status} {text}");
    };
    post("/api/v1/org-units", serde_json::json!({ "name": "web" }));
    for (domain, wild) in [
        ("example.test", true),
        ("closed.example.test", false),
        ("plain.test", false),
    ] {
        post(
            "/api/v1/domains",
            serde_json::json!({ "domain": domain, "org_unit": "web", "mode": "pre_approved", "allow_wildcards": wild }),
        );
    }
    post(
        "/api/v1/domains",
        serde_json::json!({ "domain": "blocked.test", "mode": "blocked" }),
    );
    let (status, text) = common::http("GET", &daemon.url("/api/v1/domains/caa"), None, &[]);
    assert_eq!(status, 200, "{text}");
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    let verdict = |domain: &str, connector: &str| -> String {
        let row = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["domain"] == domain && r["connector"] == connector)
            .unwrap_or_else(|| panic!("no row {domain} {connector}: {body}"));
        row["verdict"]["verdict"]
            .as_str()
            .unwrap_or("error")
            .to_owned()
    };
    assert_eq!(verdict("example.test", "le"), "allowed");
    assert_eq!(verdict("example.test", "goog"), "forbidden");
    assert_eq!(
        verdict("*.example.test", "le"),
        "allowed",
        "issue applies to wildcards without issuewild"
    );
    assert_eq!(verdict("closed.example.test", "le"), "forbidden");
    assert_eq!(verdict("plain.test", "goog"), "allowed_no_records");
    assert!(
        !text.contains("blocked.test"),
        "blocked domains are not reported: {text}"
    );
}
