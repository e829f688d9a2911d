//! Tests of the command connector: the shared conformance suite against the
//! worked example itself (`contrib/command-connector/openssl-ca.py` over a
//! fresh `openssl ca` directory), then what an operator relies on when a
//! program misbehaves — garbage, a 10 MB answer, a wrong protocol version,
//! a program that never answers (killed with its children, nothing left
//! running), one that crashes (transient, its stderr quoted) — and that the
//! program sees a clean environment and no error ever shows a secret.
//! The misbehaving programs are the scripts in `tests/command_scripts/`.

// Helpers outside `#[test]` functions are test code too: a failed unwrap is
// a failed test (see clippy.toml).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use certkeeper_connectors::command::{CommandConnector, CommandSettings, DEFAULT_PATH, Secret};
use certkeeper_connectors::conformance::{self, Fixture};
use certkeeper_connectors::{Connector, ErrorClass, Identifier, IssueRequest};
use openssl::x509::X509;

const PASSPHRASE: &str = "example ca passphrase";
const TOKEN: &str = "tok-5ecr3t-value";

fn dns(name: &str) -> Identifier {
    Identifier::Dns(name.into())
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/command-connector/openssl-ca.py")
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/command_scripts")
        .join(name)
}

/// A connector running `program` with `args`, a short timeout and
/// `API_TOKEN` set to the secret.
fn connector(program: PathBuf, args: &[&str]) -> CommandConnector {
    let mut settings = CommandSettings::new("cmd", program);
    settings.args = args.iter().map(|a| (*a).to_owned()).collect();
    settings.env = vec![("API_TOKEN".into(), Secret::new(TOKEN))];
    settings.timeout = Duration::from_secs(5);
    CommandConnector::new(settings).unwrap()
}

/// A fresh CA made by the example's own `init`, its key under a passphrase.
fn example_ca(dir: &Path) -> PathBuf {
    let ca = dir.join("ca");
    let out = Command::new(example())
        .args([
            "init",
            ca.to_str().unwrap(),
            "--subject",
            "/CN=Test Example CA",
        ])
        .env("CA_KEY_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    ca
}

/// The example pointed at `ca_dir`, issuing under `svc.test` and 10/8.
fn example_connector(ca_dir: &Path, page_size: &str) -> CommandConnector {
    let mut settings = CommandSettings::new("openssl-ca", example());
    settings.args = [
        "answer",
        "--ca-dir",
        ca_dir.to_str().unwrap(),
        "--allow-domain",
        "svc.test",
        "--allow-ip",
        "10.0.0.0/8",
        "--page-size",
        page_size,
    ]
    .map(str::to_owned)
    .to_vec();
    settings.env = vec![("CA_KEY_PASSPHRASE".into(), Secret::new(PASSPHRASE))];
    settings.timeout = Duration::from_secs(30);
    CommandConnector::new(settings).unwrap()
}

async fn issue_error(connector: &CommandConnector) -> certkeeper_connectors::ConnectorError {
    let ids = vec![dns("a.svc.test")];
    let (_, csr) = conformance::key_and_csr(&ids).unwrap();
    connector
        .issue(&IssueRequest::new(csr, ids))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn the_openssl_example_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = example_ca(dir.path());
    let ca = example_connector(&ca_dir, "2");
    // The same program pointed at a CA directory that is not there (an
    // unmounted volume): it answers a transient error.
    let down = example_connector(&dir.path().join("missing"), "2");
    let fixture = Fixture {
        connector: &ca,
        identifiers: vec![
            dns("api.svc.test"),
            dns("a.b.svc.test"),
            Identifier::Ip("10.1.2.3".parse().unwrap()),
        ],
        refused: vec![
            dns("www.example.com"),
            dns("*.svc.test"),
            dns("svc.test.example.com"),
            Identifier::Ip("192.0.2.1".parse().unwrap()),
        ],
        unreachable: Some(&down),
    };
    conformance::run(&fixture).await.unwrap();

    // What the suite issued, listed from index.txt two at a time: three
    // certificates (the retry under one idempotency key got the one issued
    // by the first try again), the first of them revoked.
    let mut listed = Vec::new();
    let mut cursor = None;
    loop {
        let page = ca.list_issued(cursor.as_deref()).await.unwrap().unwrap();
        assert!(page.records.len() <= 2);
        listed.extend(page.records);
        cursor = page.cursor;
        if !page.more {
            break;
        }
    }
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed[0].revoked);
    assert!(!listed[1].revoked && !listed[2].revoked);
    for record in &listed {
        X509::from_der(&record.certificate_der).unwrap();
        assert!(record.ca_reference.is_some());
    }
    // From the last cursor on there is nothing new.
    let rest = ca.list_issued(cursor.as_deref()).await.unwrap().unwrap();
    assert!(rest.records.is_empty() && !rest.more);
    // The example has no renewal information: "unsupported" is no window.
    let der = listed[1].certificate_der.clone();
    assert_eq!(ca.renewal_info(&der).await.unwrap(), None);

    // Under one idempotency key the same certificate comes back until the
    // daemon says it recorded it; then the key orders afresh.
    let ids = vec![dns("again.svc.test")];
    let (_, csr) = conformance::key_and_csr(&ids).unwrap();
    let mut request = IssueRequest::new(csr, ids);
    request.idempotency_key = Some("renewal-3".into());
    let first = ca.issue(&request).await.unwrap();
    let retried = ca.issue(&request).await.unwrap();
    assert_eq!(retried.ca_reference, first.ca_reference);
    ca.recorded("renewal-3").await;
    let fresh = ca.issue(&request).await.unwrap();
    assert_ne!(fresh.ca_reference, first.ca_reference);
}

#[tokio::test]
async fn garbage_and_a_wrong_version_are_permanent_and_name_the_answer() {
    let garbage = connector(script("answer.sh"), &["certificate coming soon"]);
    let err = issue_error(&garbage).await;
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(
        err.message
            .contains("the program answered something that is not JSON"),
        "{err}"
    );
    assert!(err.message.contains("certificate coming soon"), "{err}");

    let newer = connector(script("answer.sh"), &[r#"{"version":2,"ok":true}"#]);
    let err = newer.health().await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("protocol version 2"), "{err}");
    assert!(err.message.contains("speaks version 1"), "{err}");

    let nothing = connector(script("answer.sh"), &[""]);
    let err = nothing.health().await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("nothing on stdout"), "{err}");

    let no_chain = connector(
        script("answer.sh"),
        &[r#"{"version":1,"chain_pem":"nope"}"#],
    );
    let err = issue_error(&no_chain).await;
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("chain_pem"), "{err}");

    // An error object is believed, with its class.
    let busy = connector(
        script("answer.sh"),
        &[
            r#"{"version":1,"error":{"class":"retry_after","retry_after_seconds":90,"message":"queue full"}}"#,
        ],
    );
    let err = issue_error(&busy).await;
    assert_eq!(err.class, ErrorClass::RetryAfter(Duration::from_secs(90)));
    assert!(err.message.contains("queue full"), "{err}");

    // "unsupported" is no listing for list_issued, an error for issue.
    let minimal = connector(
        script("answer.sh"),
        &[r#"{"version":1,"unsupported":true}"#],
    );
    assert!(minimal.list_issued(None).await.unwrap().is_none());
    let err = issue_error(&minimal).await;
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("does not support"), "{err}");
}

#[tokio::test]
async fn a_10_mb_answer_is_refused() {
    let huge = connector(script("huge.sh"), &[]);
    let started = Instant::now();
    let err = huge.health().await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("more than 1048576 bytes"), "{err}");
    assert!(err.message.contains("max_output"), "{err}");
    // Refused as soon as the limit was crossed, not at the timeout.
    assert!(started.elapsed() < Duration::from_secs(4));
}

/// Whether process `pid` still exists (a zombie counts: it is left over).
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn a_program_past_its_timeout_is_killed_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let mut settings = CommandSettings::new("slow", script("slow.sh"));
    settings.args = vec![pids.to_str().unwrap().to_owned()];
    settings.timeout = Duration::from_secs(2);
    let slow = CommandConnector::new(settings).unwrap();

    let started = Instant::now();
    let err = slow.health().await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.class, ErrorClass::Transient);
    assert!(err.message.contains("did not answer within 2s"), "{err}");
    assert!(err.message.contains("killed"), "{err}");
    assert!(took < Duration::from_secs(5), "{took:?}");

    let text = std::fs::read_to_string(&pids).unwrap();
    let pids: Vec<u32> = text.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(pids.len(), 2, "{text}");
    // The script itself was reaped by the connector: gone at once.
    assert!(!alive(pids[0]), "the program {} is left over", pids[0]);
    // Its `sleep` was killed with the process group; orphaned, it is reaped
    // by init, which may take a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pids[1]) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!alive(pids[1]), "its child {} is left over", pids[1]);
}

/// Waits up to ten seconds for every one of `pids` to be gone.
async fn all_gone(pids: &[u32]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&pid| alive(pid)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    !pids.iter().any(|&pid| alive(pid))
}

#[tokio::test]
async fn a_program_whose_caller_gives_up_is_killed_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let mut settings = CommandSettings::new("slow", script("slow.sh"));
    settings.args = vec![pids.to_str().unwrap().to_owned()];
    settings.timeout = Duration::from_secs(120);
    let slow = CommandConnector::new(settings).unwrap();

    // The daemon cancels the operation (shutdown, a renewal's own deadline):
    // the future is dropped long before the connector's timeout.
    let gave_up = tokio::time::timeout(Duration::from_secs(2), slow.health()).await;
    assert!(gave_up.is_err());
    let text = std::fs::read_to_string(&pids).unwrap();
    let pids: Vec<u32> = text.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(pids.len(), 2, "{text}");
    assert!(all_gone(&pids).await, "left over: {pids:?}");
}

#[tokio::test]
async fn a_crashing_program_is_transient_and_its_stderr_quoted_without_secrets() {
    let fails = connector(script("fails.sh"), &[]);
    let err = issue_error(&fails).await;
    assert_eq!(err.class, ErrorClass::Transient);
    assert!(err.message.contains("exited with status 1"), "{err}");
    assert!(err.message.contains("backend exploded"), "{err}");
    assert!(err.message.contains("[redacted]"), "{err}");
    assert!(!err.to_string().contains(TOKEN), "{err}");
    assert!(!format!("{err:?}").contains(TOKEN), "{err:?}");
    assert!(
        !err.message.contains('\u{1b}') && !err.message.contains('\n'),
        "{err:?}"
    );

    // A program that exits non-zero with a valid error answer is believed.
    let refusing = connector(
        script("answer.sh"),
        &[
            r#"{"version":1,"error":{"class":"permanent","message":"name not allowed"}}"#,
            "3",
        ],
    );
    let err = issue_error(&refusing).await;
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("name not allowed"), "{err}");

    let missing = connector(script("no-such-script.sh"), &[]);
    let err = missing.health().await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("cannot start the program"), "{err}");
}

#[tokio::test]
async fn the_program_gets_a_clean_environment_and_no_secret_leaks() {
    let dir = tempfile::tempdir().unwrap();
    // The test process has variables of its own (HOME, CARGO_*): none may
    // reach the program.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    let mut settings = CommandSettings::new("env", script("env.sh"));
    settings.env = vec![
        ("API_TOKEN".into(), Secret::new(TOKEN)),
        ("CA_PROFILE".into(), Secret::new("web")),
    ];
    settings.working_dir = Some(dir.path().to_owned());
    let env = CommandConnector::new(settings).unwrap();

    let ids = vec![dns("a.svc.test")];
    let (_, csr) = conformance::key_and_csr(&ids).unwrap();
    let mut request = IssueRequest::new(csr, ids);
    request.idempotency_key = Some("renewal-7".into());
    let err = env.issue(&request).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::RetryAfter(Duration::from_secs(42)));
    assert!(
        err.message.contains("the CA refused password [redacted]"),
        "{err}"
    );
    assert!(!err.to_string().contains(TOKEN), "{err}");

    let mut environment: Vec<String> = std::fs::read_to_string(dir.path().join("environment.txt"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    environment.sort();
    assert_eq!(
        environment,
        [
            format!("API_TOKEN={TOKEN}"),
            "CA_PROFILE=web".to_owned(),
            format!("PATH={DEFAULT_PATH}"),
        ]
    );
    let directory = std::fs::read_to_string(dir.path().join("directory.txt")).unwrap();
    assert_eq!(
        Path::new(directory.trim()).canonicalize().unwrap(),
        dir.path().canonicalize().unwrap()
    );

    // The request, as contrib/command-connector/README.md documents it.
    let sent: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("request.json")).unwrap()).unwrap();
    assert_eq!(sent["version"], 1);
    assert_eq!(sent["operation"], "issue");
    assert_eq!(sent["connector"], "env");
    assert_eq!(sent["identifiers"][0]["type"], "dns");
    assert_eq!(sent["identifiers"][0]["value"], "a.svc.test");
    assert_eq!(sent["usage"], "server");
    assert_eq!(sent["idempotency_key"], "renewal-7");
    assert!(
        sent["csr_pem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE REQUEST-----\n")
    );
    for absent in ["validity_seconds", "profile", "replaces_pem"] {
        assert!(sent[absent].is_null(), "{absent}: {}", sent[absent]);
    }

    // Setting PATH replaces the default.
    let mut settings = CommandSettings::new("env", script("env.sh"));
    settings.env = vec![("PATH".into(), Secret::new("/usr/bin:/bin"))];
    settings.working_dir = Some(dir.path().to_owned());
    let _ = CommandConnector::new(settings).unwrap().health().await;
    let environment = std::fs::read_to_string(dir.path().join("environment.txt")).unwrap();
    assert_eq!(environment.trim(), "PATH=/usr/bin:/bin");
}
