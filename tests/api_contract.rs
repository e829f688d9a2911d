//! The API keeps the contract its OpenAPI document states, as checked by
//! schemathesis (a property-based API tester, installed from PyPI into the
//! tests' virtual environment by `tests/run.sh`): every operation is called
//! with generated valid and invalid inputs, with the admin token so that
//! authenticated routes are reached, and every answer must be no server
//! error, a status code and content type the document lists for it, and a
//! body that matches the document's schema.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Daemon, http};

const ROOT: &str = "root-token-for-the-contract-0123456789";

/// The schemathesis command: the tests' virtual environment's (see
/// `tests/run.sh`), else one on PATH.
fn schemathesis() -> PathBuf {
    let from_venv = std::env::var_os("CERTKEEPER_TEST_VENV")
        .map(|v| PathBuf::from(v).join("bin/schemathesis"))
        .filter(|p| p.is_file());
    from_venv
        .or_else(|| {
            Command::new("schemathesis")
                .arg("--version")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|_| PathBuf::from("schemathesis"))
        })
        .expect(
            "schemathesis is needed: ./tests/run.sh installs it into the tests' virtual \
             environment (CERTKEEPER_TEST_VENV)",
        )
}

/// Runs schemathesis over the operations `filter` selects; returns its
/// exit status and output.
fn run(daemon: &Daemon, filter: &[&str], max_examples: u32) -> (bool, String) {
    let report = daemon.path(&format!(
        "schemathesis-{}.txt",
        filter.join("_").replace('/', "")
    ));
    let output = Command::new(schemathesis())
        .args(["run", &daemon.url("/api/v1/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {ROOT}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
        ])
        .args(["--max-examples", &max_examples.to_string()])
        .args(["--seed", "20261203"])
        .args(["--workers", "2"])
        .args(["--request-timeout", "30"])
        .args(["--generation-with-security-parameters", "false"])
        .args(["--no-color", "--continue-on-failure"])
        .args(filter)
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(daemon.dir.path())
        .output()
        .expect("schemathesis runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(report, &text).unwrap();
    (output.status.success(), text)
}

#[test]
fn every_operation_answers_as_its_openapi_entry_says() {
    let mut daemon = Daemon::new("");
    // An organisation to act on: the internal CA (so requests, renewals and
    // revocations reach a real connector) and a certificate in the inventory.
    // The common config writes [api] first: the token goes into that table.
    let corp_ca = daemon.corp_ca();
    let config = std::fs::read_to_string(&daemon.config).unwrap().replacen(
        "[api]\n",
        &format!("[api]\ntoken = \"{ROOT}\"\n"),
        1,
    );
    std::fs::write(&daemon.config, format!("{config}\n{corp_ca}")).unwrap();
    daemon.start();
    let pem = common::self_signed(&daemon.path(""), "contract.corp.test", 20);
    let (status, body) = http(
        "POST",
        &daemon.url("/api/v1/import"),
        Some(&pem),
        &[("Authorization", &format!("Bearer {ROOT}"))],
    );
    assert_eq!(status, 200, "{body}");

    // Sign-in last and on its own: its generated failures lock the source
    // address out, which would turn every later call into a 429.
    let mut failures = Vec::new();
    for (filter, examples) in [
        (&["--exclude-path", "/api/v1/login"][..], 30),
        (&["--include-path", "/api/v1/login"][..], 30),
    ] {
        let (ok, text) = run(&daemon, filter, examples);
        if !ok {
            failures.push(text);
        }
    }
    assert!(
        failures.is_empty(),
        "schemathesis found contract failures:\n{}\n--- daemon log ---\n{}",
        failures.join("\n"),
        daemon.log()
    );
}
