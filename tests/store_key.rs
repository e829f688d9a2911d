//! The store key: every daemon on one store must hold the same one. A
//! daemon started with another key refuses to start, naming its key file,
//! and seals nothing with it; started again with the right key it runs, and
//! what was sealed before still opens.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::Daemon;

#[test]
fn a_daemon_with_another_store_key_refuses_to_start_and_writes_nothing() {
    let mut daemon = Daemon::new("");
    let key = daemon.path("cluster.key");
    // 32 random bytes, base64: what `openssl rand -base64 32` prints.
    let make_key = |path: &std::path::Path| {
        let out = Command::new("openssl")
            .args(["rand", "-base64", "32"])
            .output()
            .unwrap();
        std::fs::write(path, out.stdout).unwrap();
    };
    make_key(&key);
    let config = std::fs::read_to_string(&daemon.config).unwrap();
    let config = config.replacen("[store]\n", &format!("[store]\nkey_file = {key:?}\n"), 1);
    std::fs::write(&daemon.config, format!("{config}\n{}", daemon.corp_ca())).unwrap();
    daemon.start();
    // The internal CA's keys are sealed with the cluster key now.
    let (status, crl) = daemon.get("/crl/corp-ca");
    assert_eq!(status, 200, "{crl}");
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(30));

    let right = std::fs::read(&key).unwrap();
    make_key(&key);
    let out = Command::new(common::BIN)
        .args(["run", "--config"])
        .arg(&daemon.config)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with another key: {stderr}");
    assert!(
        stderr.contains("is not this store's") && stderr.contains(&key.display().to_string()),
        "the error names the key file and says what is wrong: {stderr}"
    );

    // The right key again: it starts, and the CA sealed before still opens.
    std::fs::write(&key, right).unwrap();
    daemon.start();
    let (status, crl) = daemon.get("/crl/corp-ca");
    assert_eq!(status, 200, "{crl}");
    assert!(!daemon.log().contains("cannot unseal"), "{}", daemon.log());
}

/// Key rotation: with the daemon stopped, `certkeeper rekey --new-key`
/// reseals every secret; the daemon then starts only with the new key, its
/// internal CA and the managed certificate's private key still open (a
/// renewal that reuses the key succeeds), and the old key is refused.
#[test]
fn rekey_moves_every_secret_to_the_new_key() {
    let mut daemon = Daemon::new("");
    let (old, new) = (daemon.path("old.key"), daemon.path("new.key"));
    for key in [&old, &new] {
        common::surreal::make_key(key);
    }
    let extra = format!(
        "[renewal]\ncheck_interval_seconds = 1\n\n{}\n[[certificate]]\nname = \"www\"\n\
         identifiers = [\"www.corp.test\"]\nconnector = \"corp-ca\"\n",
        daemon.corp_ca()
    );
    let write = |daemon: &Daemon, key: &std::path::Path| {
        daemon.write_config(&extra);
        let config = std::fs::read_to_string(&daemon.config).unwrap();
        let config = config.replacen("[store]\n", &format!("[store]\nkey_file = {key:?}\n"), 1);
        std::fs::write(&daemon.config, config).unwrap();
    };
    write(&daemon, &old);
    daemon.start();
    let first = www_at(&daemon, 1, "never issued");
    let out = daemon.cli(&["rekey", "--new-key", new.to_str().unwrap()]);
    assert!(!out.status.success(), "rekey ran beside the daemon");
    assert!(String::from_utf8_lossy(&out.stderr).contains("stop every daemon"));
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(30));

    let done = daemon.cli_ok(&["rekey", "--new-key", new.to_str().unwrap()]);
    assert!(
        done.contains("resealed 1 managed certificate keys"),
        "{done}"
    );
    // The old key no longer starts a daemon on this store.
    let out = Command::new(common::BIN)
        .args(["run", "--config"])
        .arg(&daemon.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not this store's"));

    write(&daemon, &new);
    daemon.start();
    let (status, crl) = daemon.get("/crl/corp-ca");
    assert_eq!(status, 200, "{crl}");
    daemon.cli_ok(&["renew", "www"]);
    let renewed = www_at(&daemon, 2, "not renewed under the new key");
    assert_ne!(renewed["fingerprint"], first["fingerprint"]);
    assert!(!daemon.log().contains("cannot unseal"), "{}", daemon.log());
}

/// The managed certificate `www` once it reaches `generation`.
fn www_at(daemon: &Daemon, generation: u64, what: &str) -> serde_json::Value {
    common::eventually(Duration::from_secs(60), || {
        let managed = daemon.cli_json(&["managed"]);
        let www = managed["items"]
            .as_array()?
            .iter()
            .find(|i| i["name"] == "www")?
            .clone();
        (www["generation"] == generation).then_some(www)
    })
    .unwrap_or_else(|| panic!("{what}: {}", daemon.log()))
}
