//! The daemon's lifecycle, end to end with the real binary: READY on a fake
//! systemd notify socket, the API answering, SIGHUP with a broken config
//! keeping the old one, SIGHUP with a good one applying it, SIGTERM exiting 0
//! with STOPPING, and config errors and environment overrides as users meet them.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Daemon, eventually};

#[test]
fn start_reload_and_stop_like_systemd_would() {
    let mut daemon = Daemon::new("");
    daemon.start_with_env(&[("WATCHDOG_USEC", "2000000")]);
    daemon.wait_notify("WATCHDOG=1", Duration::from_secs(10));
    assert_eq!(daemon.get("/healthz"), (200, "ok\n".to_string()));
    assert_eq!(daemon.get("/readyz").0, 200);

    // A broken config: the daemon says so and keeps running on the old one.
    std::fs::write(
        &daemon.config,
        "[api]\nlisten = \"127.0.0.1:1\"\nbogus_key = 1\n",
    )
    .unwrap();
    daemon.signal("HUP");
    daemon.wait_notify("READY=1", Duration::from_secs(10));
    assert_eq!(
        daemon.get("/healthz").0,
        200,
        "still serving after a bad reload"
    );
    let log = daemon.log();
    assert!(log.contains("keeping the running one"), "{log}");
    assert!(
        log.contains("bogus_key"),
        "the log names the bad key: {log}"
    );

    // A good config with a new job: applied without a restart.
    daemon.write_config(
        "[[job]]\ntype = \"command\"\nname = \"added-on-reload\"\nschedule = \"0 0 0 1 1 *\"\ncommand = [\"true\"]\n",
    );
    daemon.signal("HUP");
    daemon.wait_notify("READY=1", Duration::from_secs(10));
    let jobs = eventually(Duration::from_secs(10), || {
        let (status, body) = daemon.get("/api/v1/jobs");
        (status == 200 && body.contains("added-on-reload")).then_some(body)
    });
    assert!(
        jobs.is_some(),
        "the reloaded job is scheduled; log:\n{}",
        daemon.log()
    );

    daemon.signal("TERM");
    let seen = daemon.wait_notify("STOPPING=1", Duration::from_secs(10));
    assert!(!seen.is_empty());
    let status = daemon.wait_exit(Duration::from_secs(40));
    assert!(
        status.success(),
        "SIGTERM exits 0, got {status}; log:\n{}",
        daemon.log()
    );
}

#[test]
fn validate_names_the_file_and_key() {
    let daemon = Daemon::new("[scheduler]\nlease_secnds = 10\n");
    let out = daemon.cli(&["validate"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("certkeeper.toml"), "{stderr}");
    assert!(stderr.contains("lease_secnds"), "{stderr}");
    assert!(
        stderr.contains("lease_seconds"),
        "lists what is expected: {stderr}"
    );

    let good = Daemon::new("");
    assert!(good.cli(&["validate"]).status.success());

    let missing = good.dir.path().join("nope.toml");
    let out = std::process::Command::new(common::BIN)
        .args(["validate", "--config"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.toml"));
}

#[test]
fn environment_overrides_the_file() {
    let mut daemon = Daemon::new("");
    // A bad value from the environment is blamed on the variable.
    let out = std::process::Command::new(common::BIN)
        .args(["validate", "--config"])
        .arg(&daemon.config)
        .env("CERTKEEPER__SCHEDULER__LEASE_SECONDS", "often")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("scheduler.lease_seconds"), "{stderr}");
    assert!(
        stderr.contains("CERTKEEPER__SCHEDULER__LEASE_SECONDS"),
        "{stderr}"
    );

    // A good one wins over the file: the API moves to the overridden port.
    let port = common::free_port();
    daemon.start_with_env(&[("CERTKEEPER__API__LISTEN", &format!("127.0.0.1:{port}"))]);
    let (status, _) = common::http(
        "GET",
        &format!("http://127.0.0.1:{port}/healthz"),
        None,
        &[],
    );
    assert_eq!(status, 200);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", daemon.port)).is_err(),
        "file's port unused"
    );
}

#[test]
fn secrets_stay_out_of_logs_errors_and_api() {
    let mut daemon = Daemon::new("");
    let token_file = daemon.path("api-token");
    std::fs::write(&token_file, "tok-3f9a1c-secret\n").unwrap();
    daemon.write_config("[log]\nlevel = \"debug\"\n");
    let base = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::write(
        &daemon.config,
        base.replace(
            "[api]\n",
            &format!("[api]\ntoken_file = {:?}\n", token_file),
        ),
    )
    .unwrap();
    daemon.start();
    let (status, body) = daemon.get("/api/v1/certificates");
    assert_eq!(status, 401, "{body}");
    let (status, _) = common::http(
        "GET",
        &daemon.url("/api/v1/certificates"),
        None,
        &[("Authorization", "Bearer tok-3f9a1c-secret")],
    );
    assert_eq!(status, 200);
    // The CLI reads the token from the same config and talks to the daemon.
    daemon.cli_ok(&["certificates", "list"]);
    // Both secrets were set as an inline value too: refused, without the value.
    let out = std::process::Command::new(common::BIN)
        .args(["validate", "--config"])
        .arg(&daemon.config)
        .env("CERTKEEPER__API__TOKEN", "tok-inline-secret")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        !stderr.contains("tok-inline-secret") && !stderr.contains("tok-3f9a1c"),
        "{stderr}"
    );
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(40));
    assert!(
        !daemon.log().contains("tok-3f9a1c"),
        "the token reached the log"
    );
}

#[test]
fn api_over_tls_with_the_cli_trusting_its_certificate() {
    let mut daemon = Daemon::new("");
    let dir = daemon.dir.path().to_path_buf();
    common::openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "api.key",
            "-out",
            "api.crt",
            "-days",
            "30",
            "-subj",
            "/CN=certkeeper api",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ],
    );
    let base = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::write(
        &daemon.config,
        base.replace(
            "[api]\n",
            &format!(
                "[api]\ntls_cert = {:?}\ntls_key = {:?}\n",
                dir.join("api.crt"),
                dir.join("api.key")
            ),
        ),
    )
    .unwrap();
    daemon.start();
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain =
        std::panic::catch_unwind(|| common::http("GET", &daemon.url("/healthz"), None, &[]));
    assert!(plain.is_err() || plain.unwrap().0 != 200);
    // The CLI finds the daemon over https (it would otherwise fail on the locked store).
    let out = daemon.cli_json(&["jobs"]);
    assert!(
        out.as_array()
            .unwrap()
            .iter()
            .any(|j| j["name"] == "inventory-refresh"),
        "{out}"
    );
    // openssl agrees the API speaks TLS with that certificate.
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", daemon.port),
            "-CAfile",
        ])
        .arg(dir.join("api.crt"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
}

#[test]
fn a_client_that_never_finishes_its_request_head_is_disconnected() {
    use std::io::{Read, Write};
    let mut daemon = Daemon::new("");
    daemon.start();
    // Half a request head, then nothing (slowloris).
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", daemon.port)).unwrap();
    stream
        .write_all(b"GET /api/v1/whoami HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    // The daemon closes it after its header-read timeout (10 s); without one
    // it would wait for ever and this read would time out.
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        // A reset instead of a clean close is a close too.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the connection was still open after 60 s: {e}"),
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    // Everyone else is still served.
    let (status, _) = common::http("GET", &daemon.url("/healthz"), None, &[]);
    assert_eq!(status, 200);
}
