//! The store on SurrealDB's own server, as organisations that outgrow one
//! machine run it: `surreal start` (SurrealDB 3.3.5, built from the
//! `surrealdb-server` crate by `tests/run.sh`, see `tests/surrealdb-server`)
//! on a free loopback port with a data directory and root credentials, and
//! daemons connecting to it over `ws://`. Two daemons sharing the server and
//! the store key see one inventory and keep one audit chain; a third with
//! another key refuses to start.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::surreal::Server;
use common::{Daemon, http};
use serde_json::Value;

const TOKEN: &str = "root-token-for-remote-store-tests-0123";

/// A daemon (not started) whose store is `server`, sealed with `key`.
fn daemon_on(server: &Server, key: &std::path::Path) -> Daemon {
    let daemon = Daemon::new("");
    std::fs::write(
        &daemon.config,
        format!(
            "[api]\nlisten = \"127.0.0.1:{}\"\ntoken = \"{TOKEN}\"\n\n{}",
            daemon.port,
            server.store_table(key)
        ),
    )
    .unwrap();
    daemon
}

fn call(daemon: &Daemon, method: &str, path: &str, body: Option<&[u8]>) -> (u16, Value) {
    let (status, text) = http(
        method,
        &daemon.url(path),
        body,
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    );
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn fingerprints(daemon: &Daemon) -> Vec<String> {
    let (status, list) = call(daemon, "GET", "/api/v1/certificates", None);
    assert_eq!(status, 200, "{list}");
    let mut fps: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["fingerprint"].as_str().unwrap().to_owned())
        .collect();
    fps.sort();
    fps
}

#[test]
fn two_daemons_share_one_store_on_a_surrealdb_server() {
    let server = Server::start();
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("cluster.key");
    let make_key = common::surreal::make_key;
    make_key(&key);
    let mut a = daemon_on(&server, &key);
    let mut b = daemon_on(&server, &key);
    a.start();
    b.start();

    // What one daemon imports, the other lists.
    let pem_a = common::self_signed(&a.path(""), "a.remote.test", 60);
    let (status, added) = call(&a, "POST", "/api/v1/import", Some(&pem_a));
    assert_eq!(status, 200, "{added}\n{}", a.log());
    let pem_b = common::self_signed(&b.path(""), "b.remote.test", 60);
    let (status, _) = call(&b, "POST", "/api/v1/import", Some(&pem_b));
    assert_eq!(status, 200);
    let seen_by_a = fingerprints(&a);
    assert_eq!(seen_by_a.len(), 2, "{seen_by_a:?}");
    assert_eq!(seen_by_a, fingerprints(&b), "one inventory");

    // Both appended to the audit log: one chain, intact, seen alike.
    for daemon in [&a, &b] {
        let (status, verify) = call(daemon, "GET", "/api/v1/audit/verify", None);
        assert_eq!(status, 200, "{verify}");
        assert_eq!(verify["intact"], true, "{verify}");
    }
    let (_, log) = call(&a, "GET", "/api/v1/audit?limit=1000", None);
    let imports = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "import")
        .count();
    assert_eq!(imports, 2, "{log}");

    // A third daemon with a key of its own stops before sealing anything.
    let other = keys.path().join("other.key");
    make_key(&other);
    let c = daemon_on(&server, &other);
    let out = Command::new(common::BIN)
        .args(["run", "--config"])
        .arg(&c.config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("is not this store's") && stderr.contains(&other.display().to_string()),
        "{stderr}"
    );
    assert_eq!(fingerprints(&a).len(), 2);
}
