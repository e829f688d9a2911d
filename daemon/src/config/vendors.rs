//! `[[connector]]` tables of the vendor CA connectors: `vault` (HashiCorp
//! Vault and OpenBao PKI), `digicert` (CertCentral), `sectigo` (Certificate
//! Manager) and `aws_pca` (AWS Private CA); `command` (any other CA,
//! through a program) is in `command.rs`.
//!
//! Each table is a closed struct (`deny_unknown_fields`: a misspelt key is
//! refused by name). Secrets are given inline, as `<key>_file` (a file
//! holding the secret, e.g. a systemd credential), or through the
//! environment (`CERTKEEPER__CONNECTOR__...`, like every key); [`check`]
//! reads the files and turns each table into its connector's settings
//! once, so a mistake is reported at start (and by `certkeeper validate`)
//! with the key and the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, merge_secret};
use certkeeper_base::Secret;
use certkeeper_connectors::aws_pca::AwsPcaSettings;
use certkeeper_connectors::digicert::DigicertSettings;
use certkeeper_connectors::sectigo::SectigoSettings;
use certkeeper_connectors::vault::{VaultAuth, VaultSettings};

pub(super) fn default_max_orders() -> usize {
    16
}

/// `[[connector]] type = "aws_pca"`: an AWS Private CA, called with SigV4.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsPcaConnectorConfig {
    /// Unique name of the connector.
    pub name: String,
    /// ARN of the issuing CA
    /// (`arn:aws:acm-pca:REGION:ACCOUNT:certificate-authority/ID`).
    pub certificate_authority_arn: String,
    /// The AWS region. Default: the ARN's.
    pub region: Option<String>,
    /// Access key id of the IAM identity.
    pub access_key_id: String,
    /// Its secret access key, a secret.
    pub secret_access_key: Option<Secret>,
    /// File holding the secret access key.
    pub secret_access_key_file: Option<PathBuf>,
    /// Session token of temporary credentials, a secret.
    pub session_token: Option<Secret>,
    /// File holding the session token.
    pub session_token_file: Option<PathBuf>,
    /// API endpoint. Default `https://acm-pca.REGION.amazonaws.com/`
    /// (plain `http` only to loopback, for a test server).
    pub endpoint: Option<String>,
    /// `SigningAlgorithm` (`SHA256WITHECDSA`, ...). Default: the one that
    /// fits the CA's key.
    pub signing_algorithm: Option<String>,
    /// Certificate template ARN for requests without a profile. Default:
    /// AWS's end-entity template for the usage.
    pub template_arn: Option<String>,
    /// Validity when the certificate asks for none, in days. Default 90.
    #[serde(default = "default_validity_days")]
    pub default_validity_days: u32,
    /// Timeout of each request. Default 30.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_seconds: u64,
    /// How long one issuance waits for the CA before it is retried later
    /// (the same certificate is resumed). Default 120.
    #[serde(default = "default_issue_deadline")]
    pub issue_deadline_seconds: u64,
    /// Most issuances at once. Default 16.
    #[serde(default = "default_max_orders")]
    pub max_concurrent_orders: usize,
    /// CAA issuer domain names, for the CAA report (a private CA has none
    /// in public DNS).
    #[serde(default)]
    pub caa_identities: Vec<String>,
}

fn default_validity_days() -> u32 {
    90
}

fn default_request_timeout() -> u64 {
    30
}

fn default_issue_deadline() -> u64 {
    120
}

impl AwsPcaConnectorConfig {
    /// The connector crate's settings (secrets read by [`check`]).
    pub fn settings(&self) -> Result<AwsPcaSettings, String> {
        let secret = self
            .secret_access_key
            .clone()
            .ok_or("secret_access_key (or secret_access_key_file) is required")?;
        let mut settings = AwsPcaSettings::new(
            &self.name,
            &self.certificate_authority_arn,
            &self.access_key_id,
            secret,
        );
        settings.region = self.region.clone();
        settings.session_token = self.session_token.clone();
        settings.endpoint = self.endpoint.clone();
        settings.signing_algorithm = self.signing_algorithm.clone();
        settings.template_arn = self.template_arn.clone();
        settings.default_validity_days = self.default_validity_days;
        settings.request_timeout = Duration::from_secs(self.request_timeout_seconds);
        settings.issue_deadline = Duration::from_secs(self.issue_deadline_seconds);
        Ok(settings)
    }

    fn check(&mut self, path: &Path, key: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        self.secret_access_key = merge_secret(
            path,
            &key("secret_access_key"),
            self.secret_access_key.take(),
            &self.secret_access_key_file,
        )?;
        self.session_token = merge_secret(
            path,
            &key("session_token"),
            self.session_token.take(),
            &self.session_token_file,
        )?;
        if self.request_timeout_seconds == 0 || self.issue_deadline_seconds == 0 {
            return Err(ConfigError::new(
                path,
                Some(key("request_timeout_seconds")),
                "request_timeout_seconds and issue_deadline_seconds must be above 0",
            ));
        }
        let settings = self
            .settings()
            .map_err(|e| ConfigError::new(path, Some(key("secret_access_key")), e))?;
        let state: std::sync::Arc<dyn certkeeper_connectors::StateStore> =
            std::sync::Arc::new(certkeeper_connectors::MemoryState::default());
        certkeeper_connectors::aws_pca::AwsPcaConnector::open(settings, state)
            .map(drop)
            .map_err(|e| ConfigError::new(path, Some(key("certificate_authority_arn")), e.message))
    }
}

/// Reads a CA bundle file (PEM) for a connector's TLS trust.
fn read_bundle(
    path: &Path,
    key: &dyn Fn(&str) -> String,
    file: &Option<PathBuf>,
) -> Result<Option<String>, ConfigError> {
    let Some(file) = file else { return Ok(None) };
    let text = std::fs::read_to_string(file).map_err(|e| {
        ConfigError::new(
            path,
            Some(key("ca_bundle_file")),
            format!("cannot read {}: {e}", file.display()),
        )
    })?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(ConfigError::new(
            path,
            Some(key("ca_bundle_file")),
            format!("{} holds no PEM certificate", file.display()),
        ));
    }
    Ok(Some(text))
}

fn default_poll() -> u64 {
    15
}

fn default_max_wait() -> u64 {
    300
}

fn default_page() -> u32 {
    100
}

fn above_zero(
    path: &Path,
    key: &dyn Fn(&str) -> String,
    values: &[(&str, u64)],
) -> Result<(), ConfigError> {
    for (name, value) in values {
        if *value == 0 {
            return Err(ConfigError::new(
                path,
                Some(key(name)),
                "expected a number above 0",
            ));
        }
    }
    Ok(())
}

/// `[[connector]] type = "vault"`: the PKI secrets engine of HashiCorp
/// Vault or OpenBao, signing CSRs with a role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConnectorConfig {
    /// Unique name of the connector.
    pub name: String,
    /// Vault's address, e.g. `https://vault.internal:8200` (plain `http`
    /// only to loopback).
    pub url: String,
    /// Where the PKI engine is mounted. Default `pki`.
    #[serde(default = "default_mount")]
    pub mount: String,
    /// The role that signs (`/v1/{mount}/sign/{role}`).
    pub role: String,
    /// A Vault token, a secret (or `token_file`; or AppRole below).
    pub token: Option<Secret>,
    /// File holding the token.
    pub token_file: Option<PathBuf>,
    /// AppRole login instead of a token: the RoleID.
    pub approle_role_id: Option<String>,
    /// The AppRole SecretID, a secret.
    pub approle_secret_id: Option<Secret>,
    /// File holding the SecretID.
    pub approle_secret_id_file: Option<PathBuf>,
    /// Where the AppRole auth method is mounted. Default `approle`.
    #[serde(default = "default_approle")]
    pub approle_mount: String,
    /// Vault Enterprise / OpenBao namespace (`X-Vault-Namespace`).
    pub namespace: Option<String>,
    /// TTL asked for each certificate, in seconds. Default: the role's.
    pub ttl_seconds: Option<u64>,
    /// Timeout of each request. Default 30.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_seconds: u64,
    /// PEM bundle trusted for Vault's TLS besides the system roots.
    pub ca_bundle_file: Option<PathBuf>,
    /// Certificates per listing page (CA import). Default 100.
    #[serde(default = "default_page")]
    pub list_page_size: u32,
    /// Most issuances at once. Default 16.
    #[serde(default = "default_max_orders")]
    pub max_concurrent_orders: usize,
    /// CAA issuer domain names, for the CAA report (a private CA has none
    /// in public DNS).
    #[serde(default)]
    pub caa_identities: Vec<String>,
    /// Filled by [`check`] from `ca_bundle_file`.
    #[serde(skip)]
    pub ca_bundle_pem: Option<String>,
}

fn default_mount() -> String {
    "pki".into()
}

fn default_approle() -> String {
    "approle".into()
}

impl VaultConnectorConfig {
    /// The connector crate's settings (secrets read by [`check`]).
    pub fn settings(&self) -> Result<VaultSettings, String> {
        let auth = match (&self.token, &self.approle_role_id, &self.approle_secret_id) {
            (Some(token), None, None) => VaultAuth::Token {
                token: token.clone(),
            },
            (None, Some(role_id), Some(secret_id)) => VaultAuth::AppRole {
                mount: self.approle_mount.clone(),
                role_id: role_id.clone(),
                secret_id: secret_id.clone(),
            },
            (None, None, None) => {
                return Err("give token (or token_file), or approle_role_id and                      approle_secret_id (or approle_secret_id_file)"
                    .into());
            }
            (Some(_), _, _) => {
                return Err("give a token or an AppRole login, not both".into());
            }
            _ => return Err("approle_role_id and approle_secret_id go together".into()),
        };
        let mut settings = VaultSettings::new(&self.name, &self.url, &self.role, auth);
        settings.mount = self.mount.clone();
        settings.namespace = self.namespace.clone();
        settings.ttl = self.ttl_seconds.map(Duration::from_secs);
        settings.request_timeout = Duration::from_secs(self.request_timeout_seconds);
        settings.ca_bundle_pem = self.ca_bundle_pem.clone();
        settings.list_page_size = self.list_page_size;
        Ok(settings)
    }

    fn check(&mut self, path: &Path, key: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        self.token = merge_secret(path, &key("token"), self.token.take(), &self.token_file)?;
        self.approle_secret_id = merge_secret(
            path,
            &key("approle_secret_id"),
            self.approle_secret_id.take(),
            &self.approle_secret_id_file,
        )?;
        self.ca_bundle_pem = read_bundle(path, key, &self.ca_bundle_file)?;
        above_zero(
            path,
            key,
            &[
                ("request_timeout_seconds", self.request_timeout_seconds),
                ("list_page_size", u64::from(self.list_page_size)),
            ],
        )?;
        let settings = self
            .settings()
            .map_err(|e| ConfigError::new(path, Some(key("token")), e))?;
        certkeeper_connectors::vault::VaultConnector::new(settings)
            .map(drop)
            .map_err(|e| ConfigError::new(path, Some(key("url")), e.message))
    }
}

/// `[[connector]] type = "digicert"`: DigiCert CertCentral (Services API
/// v2), ordering a product and collecting the certificate once issued.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigicertConnectorConfig {
    /// Unique name of the connector.
    pub name: String,
    /// The API's base. Default `https://www.digicert.com/services/v2`.
    pub url: Option<String>,
    /// The API key (`X-DC-DEVKEY`), a secret.
    pub api_key: Option<Secret>,
    /// File holding the API key.
    pub api_key_file: Option<PathBuf>,
    /// The product ordered (`ssl_basic`, `ssl_plus`, `ssl_ev_basic`, ...);
    /// a certificate's `profile` overrides it.
    pub product: String,
    /// The CertCentral organisation the certificates are for.
    pub organization_id: u64,
    /// Validity ordered, in days. Default: the product's (one year).
    pub validity_days: Option<u32>,
    /// Ask CertCentral to skip the approval step (an account setting must
    /// allow it). Default false.
    #[serde(default)]
    pub skip_approval: bool,
    /// Seconds between looks at a pending order. Default 15.
    #[serde(default = "default_poll")]
    pub poll_interval_seconds: u64,
    /// How long one issuance waits for the order before it is retried
    /// later (the same order is resumed). Default 300.
    #[serde(default = "default_max_wait")]
    pub max_wait_seconds: u64,
    /// Timeout of each request. Default 30.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_seconds: u64,
    /// PEM bundle trusted for the API's TLS besides the system roots.
    pub ca_bundle_file: Option<PathBuf>,
    /// Orders per listing page (CA import). Default 100.
    #[serde(default = "default_page")]
    pub list_page_size: u32,
    /// Most issuances at once. Default 16.
    #[serde(default = "default_max_orders")]
    pub max_concurrent_orders: usize,
    /// CAA issuer domain names, for the CAA report. Default `digicert.com`.
    #[serde(default = "default_digicert_caa")]
    pub caa_identities: Vec<String>,
    /// Filled by [`check`] from `ca_bundle_file`.
    #[serde(skip)]
    pub ca_bundle_pem: Option<String>,
}

fn default_digicert_caa() -> Vec<String> {
    vec!["digicert.com".into()]
}

impl DigicertConnectorConfig {
    /// The connector crate's settings (secrets read by [`check`]).
    pub fn settings(&self) -> Result<DigicertSettings, String> {
        let key = self
            .api_key
            .clone()
            .ok_or("api_key (or api_key_file) is required")?;
        let mut settings =
            DigicertSettings::new(&self.name, key, &self.product, self.organization_id);
        if let Some(url) = &self.url {
            settings.base_url = url.clone();
        }
        settings.validity_days = self.validity_days;
        settings.skip_approval = self.skip_approval;
        settings.poll_interval = Duration::from_secs(self.poll_interval_seconds);
        settings.max_wait = Duration::from_secs(self.max_wait_seconds);
        settings.request_timeout = Duration::from_secs(self.request_timeout_seconds);
        settings.ca_bundle_pem = self.ca_bundle_pem.clone();
        settings.list_page_size = self.list_page_size;
        Ok(settings)
    }

    fn check(&mut self, path: &Path, key: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        self.api_key = merge_secret(
            path,
            &key("api_key"),
            self.api_key.take(),
            &self.api_key_file,
        )?;
        self.ca_bundle_pem = read_bundle(path, key, &self.ca_bundle_file)?;
        above_zero(
            path,
            key,
            &[
                ("poll_interval_seconds", self.poll_interval_seconds),
                ("max_wait_seconds", self.max_wait_seconds),
                ("request_timeout_seconds", self.request_timeout_seconds),
                ("list_page_size", u64::from(self.list_page_size)),
            ],
        )?;
        let settings = self
            .settings()
            .map_err(|e| ConfigError::new(path, Some(key("api_key")), e))?;
        let state: std::sync::Arc<dyn certkeeper_connectors::StateStore> =
            std::sync::Arc::new(certkeeper_connectors::MemoryState::default());
        certkeeper_connectors::digicert::DigicertConnector::new(settings, state)
            .map(drop)
            .map_err(|e| ConfigError::new(path, Some(key("url")), e.message))
    }
}

/// `[[connector]] type = "sectigo"`: Sectigo Certificate Manager's REST
/// API, enrolling and collecting the certificate once issued.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SectigoConnectorConfig {
    /// Unique name of the connector.
    pub name: String,
    /// The SCM instance. Default `https://cert-manager.com`.
    pub url: Option<String>,
    /// The customer URI (`customerUri` header).
    pub customer_uri: String,
    /// The API account's login.
    pub login: String,
    /// Its password, a secret.
    pub password: Option<Secret>,
    /// File holding the password.
    pub password_file: Option<PathBuf>,
    /// The organisation (or department) id enrolled under.
    pub org_id: u64,
    /// The certificate type id (`GET /api/ssl/v1/types`); a certificate's
    /// numeric `profile` overrides it.
    pub cert_type: u64,
    /// Term ordered, in days (one the type offers). Default 365.
    #[serde(default = "default_term")]
    pub term_days: u32,
    /// Who SCM records as the external requester (an e-mail address).
    pub external_requester: Option<String>,
    /// Seconds between looks at a pending enrollment. Default 15.
    #[serde(default = "default_poll")]
    pub poll_interval_seconds: u64,
    /// How long one issuance waits before it is retried later (the same
    /// enrollment is resumed). Default 300.
    #[serde(default = "default_max_wait")]
    pub max_wait_seconds: u64,
    /// Timeout of each request. Default 30.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_seconds: u64,
    /// PEM bundle trusted for the API's TLS besides the system roots.
    pub ca_bundle_file: Option<PathBuf>,
    /// Certificates per listing page (CA import). Default 100.
    #[serde(default = "default_page")]
    pub list_page_size: u32,
    /// Most issuances at once. Default 16.
    #[serde(default = "default_max_orders")]
    pub max_concurrent_orders: usize,
    /// CAA issuer domain names, for the CAA report. Default `sectigo.com`
    /// and `comodoca.com`.
    #[serde(default = "default_sectigo_caa")]
    pub caa_identities: Vec<String>,
    /// Filled by [`check`] from `ca_bundle_file`.
    #[serde(skip)]
    pub ca_bundle_pem: Option<String>,
}

fn default_term() -> u32 {
    365
}

fn default_sectigo_caa() -> Vec<String> {
    vec!["sectigo.com".into(), "comodoca.com".into()]
}

impl SectigoConnectorConfig {
    /// The connector crate's settings (secrets read by [`check`]).
    pub fn settings(&self) -> Result<SectigoSettings, String> {
        let password = self
            .password
            .clone()
            .ok_or("password (or password_file) is required")?;
        let mut settings = SectigoSettings::new(
            &self.name,
            &self.customer_uri,
            &self.login,
            password,
            self.org_id,
            self.cert_type,
        );
        if let Some(url) = &self.url {
            settings.base_url = url.clone();
        }
        settings.term_days = self.term_days;
        settings.external_requester = self.external_requester.clone();
        settings.poll_interval = Duration::from_secs(self.poll_interval_seconds);
        settings.max_wait = Duration::from_secs(self.max_wait_seconds);
        settings.request_timeout = Duration::from_secs(self.request_timeout_seconds);
        settings.ca_bundle_pem = self.ca_bundle_pem.clone();
        settings.list_page_size = self.list_page_size;
        Ok(settings)
    }

    fn check(&mut self, path: &Path, key: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        self.password = merge_secret(
            path,
            &key("password"),
            self.password.take(),
            &self.password_file,
        )?;
        self.ca_bundle_pem = read_bundle(path, key, &self.ca_bundle_file)?;
        above_zero(
            path,
            key,
            &[
                ("poll_interval_seconds", self.poll_interval_seconds),
                ("max_wait_seconds", self.max_wait_seconds),
                ("request_timeout_seconds", self.request_timeout_seconds),
                ("list_page_size", u64::from(self.list_page_size)),
                ("term_days", u64::from(self.term_days)),
            ],
        )?;
        let settings = self
            .settings()
            .map_err(|e| ConfigError::new(path, Some(key("password")), e))?;
        let state: std::sync::Arc<dyn certkeeper_connectors::StateStore> =
            std::sync::Arc::new(certkeeper_connectors::MemoryState::default());
        certkeeper_connectors::sectigo::SectigoConnector::new(settings, state)
            .map(drop)
            .map_err(|e| ConfigError::new(path, Some(key("url")), e.message))
    }
}

/// Reads a vendor connector's secret files and checks that its settings
/// build, naming the key on error.
pub(super) fn check(
    connector: &mut super::ConnectorConfig,
    path: &Path,
    key: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    use super::ConnectorConfig as C;
    match connector {
        C::Command(c) => c.check(path, key),
        C::Vault(c) => c.check(path, key),
        C::Digicert(c) => c.check(path, key),
        C::Sectigo(c) => c.check(path, key),
        C::AwsPca(c) => c.check(path, key),
        C::Acme(_) | C::InternalCa(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, ConfigError, ConnectorConfig};

    fn load(dir: &std::path::Path, toml: &str) -> Result<Config, ConfigError> {
        let path = dir.join("certkeeper.toml");
        std::fs::write(&path, format!("[store]\nurl = \"mem://\"\n{toml}")).unwrap();
        Config::load(&path)
    }

    #[test]
    fn a_misspelt_key_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for (kind, table) in [
            ("command", "program = \"/bin/true\"\ntimeout_second = 5\n"),
            (
                "aws_pca",
                "certificate_authority_arn = \"arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/x\"\n\
                 access_key_id = \"AKIDEXAMPLE\"\nsecret_access_key = \"s\"\ntimeout_second = 5\n",
            ),
            (
                "vault",
                "url = \"http://127.0.0.1:8200\"\nrole = \"web\"\ntoken = \"t\"\ntimeout_second = 5\n",
            ),
            (
                "digicert",
                "api_key = \"k\"\nproduct = \"ssl_basic\"\norganization_id = 1\ntimeout_second = 5\n",
            ),
            (
                "sectigo",
                "customer_uri = \"acme\"\nlogin = \"l\"\npassword = \"p\"\norg_id = 1\ncert_type = 2\n\
                 timeout_second = 5\n",
            ),
        ] {
            let err = load(
                dir.path(),
                &format!("[[connector]]\ntype = \"{kind}\"\nname = \"c\"\n{table}"),
            )
            .unwrap_err();
            assert!(err.to_string().contains("timeout_second"), "{kind}: {err}");
        }
    }

    #[test]
    fn secrets_come_from_files_and_never_show() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "tok-s3cret\n").unwrap();
        let aws = dir.path().join("aws");
        std::fs::write(&aws, "aws-s3cret\n").unwrap();
        let config = load(
            dir.path(),
            &format!(
                "[[connector]]\ntype = \"command\"\nname = \"legacy\"\nprogram = \"/bin/true\"\n\
                 env = {{ MODE = \"test\" }}\nenv_files = {{ TOKEN = {token:?} }}\n\
                 [[connector]]\ntype = \"aws_pca\"\nname = \"pca\"\n\
                 certificate_authority_arn = \"arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/x\"\n\
                 access_key_id = \"AKIDEXAMPLE\"\nsecret_access_key_file = {aws:?}\n"
            ),
        )
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("tok-s3cret") && !shown.contains("aws-s3cret"));
        let ConnectorConfig::Command(command) = &config.connectors[0] else {
            panic!("not a command connector")
        };
        let settings = command.settings().unwrap();
        let env: Vec<(&str, &str)> = settings
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        assert_eq!(env, vec![("MODE", "test"), ("TOKEN", "tok-s3cret")]);
        let ConnectorConfig::AwsPca(pca) = &config.connectors[1] else {
            panic!("not an aws_pca connector")
        };
        assert_eq!(
            pca.settings().unwrap().secret_access_key.expose(),
            "aws-s3cret"
        );
        // A relative program and a bad ARN are refused at load, by key.
        let err = load(
            dir.path(),
            "[[connector]]\ntype = \"command\"\nname = \"c\"\nprogram = \"bin/ca\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("connector[0].program"), "{err}");
        let err = load(
            dir.path(),
            "[[connector]]\ntype = \"aws_pca\"\nname = \"p\"\ncertificate_authority_arn = \"nope\"\n\
             access_key_id = \"A\"\nsecret_access_key = \"s\"\n",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("connector[0].certificate_authority_arn"),
            "{err}"
        );
        // Vault: a token or an AppRole, not neither; the CAA identity of a
        // commercial CA is known without configuring it.
        let err = load(
            dir.path(),
            "[[connector]]\ntype = \"vault\"\nname = \"v\"\nurl = \"http://127.0.0.1:8200\"\nrole = \"r\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("connector[0].token"), "{err}");
        let config = load(
            dir.path(),
            "[[connector]]\ntype = \"digicert\"\nname = \"dc\"\napi_key = \"k\"\nproduct = \"ssl_basic\"\n\
             organization_id = 7\n",
        )
        .unwrap();
        assert_eq!(config.connectors[0].caa_identities(), ["digicert.com"]);
    }
}
