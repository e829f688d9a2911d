//! A real `moto_server` (the AWS mock, installed into the test virtualenv
//! by `tests/run.sh`, named by `CERTKEEPER_TEST_VENV`) on a free loopback
//! port, for the `aws_pca` connector's tests and the daemon's. Not a fake of
//! ours: what moto lacks is listed at the top of `connectors/tests/aws_pca.rs`.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use certkeeper_connectors::AddressGuard;
use certkeeper_connectors::aws_pca::client::ApiClient;
use certkeeper_connectors::aws_pca::{Credentials, Secret};
use serde_json::{Value, json};

/// The region every test uses.
pub const REGION: &str = "us-east-1";
/// The access key the tests sign with (moto checks no signature).
pub const ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
/// Its secret access key.
pub const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// A `moto_server`, killed on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT/`.
    pub endpoint: String,
    logs: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts one and waits until it accepts connections.
    pub fn start() -> Moto {
        let venv = std::env::var_os("CERTKEEPER_TEST_VENV").unwrap_or_else(|| {
            panic!(
                "CERTKEEPER_TEST_VENV is not set: run the tests through tests/run.sh, which \
                 installs moto[server] into the test virtualenv"
            )
        });
        let program = PathBuf::from(venv).join("bin/moto_server");
        assert!(
            program.exists(),
            "{} is missing: run tests/run.sh to install moto[server] into the test virtualenv",
            program.display()
        );
        let logs = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(logs.path().join("moto.log")).unwrap();
        let port = super::free_port();
        let child = Command::new(&program)
            .args(["-p", &port.to_string(), "-H", "127.0.0.1"])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}/"),
            logs,
        };
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                let log = std::fs::read_to_string(moto.logs.path().join("moto.log")).unwrap();
                panic!("moto_server exited ({status}): {log}");
            }
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// A raw client for setting moto up, signing as the connector does.
    pub fn api(&self) -> ApiClient {
        api(&self.endpoint)
    }

    /// Calls `operation`, panicking on an error answer.
    pub async fn call(&self, operation: &str, body: Value) -> Value {
        call(&self.api(), operation, body).await
    }

    /// Creates a root CA with this key, signing algorithm and subject, left
    /// `PENDING_CERTIFICATE` (no CA certificate imported yet); its ARN.
    pub async fn create_ca(&self, key: &str, signing: &str, subject: Value) -> String {
        let created = self
            .call(
                "CreateCertificateAuthority",
                json!({
                    "CertificateAuthorityType": "ROOT",
                    "CertificateAuthorityConfiguration": {
                        "KeyAlgorithm": key,
                        "SigningAlgorithm": signing,
                        "Subject": subject,
                    },
                }),
            )
            .await;
        created["CertificateAuthorityArn"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates a root CA and activates it as AWS's documentation does for a
    /// root: the CA's CSR is issued with the `RootCACertificate/V1` template
    /// and the result imported (moto creates every CA in
    /// `PENDING_CERTIFICATE`, as AWS does). Answers its ARN.
    pub async fn create_active_ca(&self) -> String {
        let api = self.api();
        let arn = self
            .create_ca(
                "RSA_2048",
                "SHA256WITHRSA",
                json!({"CommonName": "Certkeeper Test Root", "Organization": "Certkeeper"}),
            )
            .await;
        let csr = call(
            &api,
            "GetCertificateAuthorityCsr",
            json!({"CertificateAuthorityArn": arn}),
        )
        .await;
        let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        let issued = call(
            &api,
            "IssueCertificate",
            json!({
                "CertificateAuthorityArn": arn,
                "Csr": b64(csr["Csr"].as_str().unwrap()),
                "SigningAlgorithm": "SHA256WITHRSA",
                "TemplateArn": "arn:aws:acm-pca:::template/RootCACertificate/V1",
                "Validity": {"Type": "YEARS", "Value": 10},
            }),
        )
        .await;
        let root = call(
            &api,
            "GetCertificate",
            json!({"CertificateAuthorityArn": arn, "CertificateArn": issued["CertificateArn"]}),
        )
        .await;
        call(
            &api,
            "ImportCertificateAuthorityCertificate",
            json!({
                "CertificateAuthorityArn": arn,
                "Certificate": b64(root["Certificate"].as_str().unwrap()),
            }),
        )
        .await;
        arn
    }

    /// moto's record of the CA `arn` (its internal state, not an AWS API:
    /// AWS shows revocations in the CA's CRL, which moto does not write).
    pub async fn ca_state(&self, arn: &str) -> Value {
        let data: Value = reqwest::get(format!("{}moto-api/data.json", self.endpoint))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        data["acmpca"]["CertificateAuthority"]
            .as_array()
            .unwrap()
            .iter()
            .find(|ca| ca["arn"] == arn)
            .cloned()
            .unwrap()
    }
}

/// The credentials the tests sign with.
pub fn credentials() -> Credentials {
    Credentials {
        access_key_id: ACCESS_KEY_ID.into(),
        secret_access_key: Secret::new(SECRET_KEY),
        session_token: None,
    }
}

/// A raw client for `endpoint`, signing as the connector does.
pub fn api(endpoint: &str) -> ApiClient {
    ApiClient::new(
        endpoint,
        REGION,
        credentials(),
        Duration::from_secs(10),
        1 << 20,
        &AddressGuard::allow_all(),
    )
    .unwrap()
}

/// Calls `operation` on `api`, panicking on an error answer.
pub async fn call(api: &ApiClient, operation: &str, body: Value) -> Value {
    api.call(operation, &body)
        .await
        .unwrap_or_else(|e| panic!("{operation}: {e}"))
}
