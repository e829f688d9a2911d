//! `[[connector]]` and `[[certificate]]`: the CAs Certkeeper issues through
//! and the certificates it manages (issues, renews, deploys, replaces).
//!
//! Each connector table is a closed enum tagged by `type`; its fields map onto
//! the connector crate's settings ([`ConnectorConfig::acme_settings`],
//! [`ConnectorConfig::internal_ca_settings`]). Secrets take the usual three
//! forms (inline, `*_file`, environment) and are merged by the config check.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use certkeeper_connectors::acme::{
    AcmeSettings, ChallengeSettings, Dns01Settings, ExternalAccountBinding,
};
use certkeeper_connectors::internal_ca::{
    CaKeyType, CaSource, GenerateCa, ImportCa, InternalCaSettings, IpNetwork, LeafKeyType,
    PemSource,
};
use certkeeper_connectors::{Identifier, Usage};
use serde::Deserialize;

use crate::deploy::DeployTarget;
use certkeeper_base::Secret;

/// A `[[connector]]` table: one CA account Certkeeper issues through.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConnectorConfig {
    /// An ACME CA (Let's Encrypt, a commercial CA's ACME endpoint, step-ca).
    Acme(AcmeConnectorConfig),
    /// A private CA run by Certkeeper itself.
    InternalCa(InternalCaConfig),
    /// HashiCorp Vault or OpenBao PKI.
    Vault(super::vendors::VaultConnectorConfig),
    /// DigiCert CertCentral.
    Digicert(super::vendors::DigicertConnectorConfig),
    /// Sectigo Certificate Manager.
    Sectigo(super::vendors::SectigoConnectorConfig),
    /// AWS Private CA.
    AwsPca(super::vendors::AwsPcaConnectorConfig),
    /// Any other CA, through a program speaking the command protocol.
    Command(super::command::CommandConnectorConfig),
}

impl ConnectorConfig {
    /// The connector's name, as `[[certificate]] connector` refers to it.
    pub fn name(&self) -> &str {
        match self {
            Self::Acme(c) => &c.name,
            Self::InternalCa(c) => &c.name,
            Self::Vault(c) => &c.name,
            Self::Digicert(c) => &c.name,
            Self::Sectigo(c) => &c.name,
            Self::AwsPca(c) => &c.name,
            Self::Command(c) => &c.name,
        }
    }

    /// The connector's `type`, as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Acme(_) => "acme",
            Self::InternalCa(_) => "internal_ca",
            Self::Vault(_) => "vault",
            Self::Digicert(_) => "digicert",
            Self::Sectigo(_) => "sectigo",
            Self::AwsPca(_) => "aws_pca",
            Self::Command(_) => "command",
        }
    }

    /// The CA's CAA issuer domain names.
    pub fn caa_identities(&self) -> &[String] {
        match self {
            Self::Acme(c) => &c.caa_identities,
            Self::InternalCa(c) => &c.caa_identities,
            Self::Vault(c) => &c.caa_identities,
            Self::Digicert(c) => &c.caa_identities,
            Self::Sectigo(c) => &c.caa_identities,
            Self::AwsPca(c) => &c.caa_identities,
            Self::Command(c) => &c.caa_identities,
        }
    }

    /// Most orders this connector runs at once.
    pub fn max_concurrent_orders(&self) -> usize {
        match self {
            Self::Acme(c) => c.max_concurrent_orders,
            Self::InternalCa(c) => c.max_concurrent_orders,
            Self::Vault(c) => c.max_concurrent_orders,
            Self::Digicert(c) => c.max_concurrent_orders,
            Self::Sectigo(c) => c.max_concurrent_orders,
            Self::AwsPca(c) => c.max_concurrent_orders,
            Self::Command(c) => c.max_concurrent_orders,
        }
    }
}

/// `[[connector]] type = "acme"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeConnectorConfig {
    /// Unique name of the connector.
    pub name: String,
    /// The CA's ACME directory URL (`https://acme-v02.api.letsencrypt.org/directory`).
    pub directory_url: String,
    /// PEM file of extra roots trusted for the directory's HTTPS certificate.
    pub roots_file: Option<PathBuf>,
    /// Contact e-mail addresses registered with the account.
    #[serde(default)]
    pub contacts: Vec<String>,
    /// External Account Binding key id, for CAs that require one.
    pub eab_key_id: Option<String>,
    /// External Account Binding HMAC key (base64url), a secret.
    pub eab_hmac_key: Option<Secret>,
    /// File holding the EAB HMAC key.
    pub eab_hmac_key_file: Option<PathBuf>,
    /// ACME profile sent with every order (`classic`, `shortlived`, ...).
    pub profile: Option<String>,
    /// Timeout of each request to the CA, in seconds. Default 30.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_seconds: u64,
    /// Deadline of a whole order, in seconds. Default 600.
    #[serde(default = "default_order_deadline")]
    pub order_deadline_seconds: u64,
    /// Most orders in flight at once on this CA. Default 16.
    #[serde(default = "default_max_orders")]
    pub max_concurrent_orders: usize,
    /// The issuer domain names this CA is known by in DNS CAA records
    /// (`letsencrypt.org`, `digicert.com`), for the CAA report.
    #[serde(default)]
    pub caa_identities: Vec<String>,
    /// How control of the identifiers is proven.
    pub challenge: ChallengeConfig,
}

/// `[connector.challenge]`, tagged by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChallengeConfig {
    /// HTTP-01 answered by Certkeeper's own responder.
    Http01(Http01Config),
    /// HTTP-01 answered by an existing web server from its document root.
    Webroot(WebrootConfig),
    /// DNS-01 through RFC 2136 dynamic updates signed with TSIG.
    Dns01(Dns01Config),
}

/// `type = "http01"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http01Config {
    /// Address the responder binds while orders are in flight (`0.0.0.0:80`).
    pub listen: SocketAddr,
}

/// `type = "webroot"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebrootConfig {
    /// The web server's document root for every name ordered.
    pub path: PathBuf,
}

/// `type = "dns01"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns01Config {
    /// Primary name server accepting the updates (`ip:port`).
    pub server: SocketAddr,
    /// Zones the server is primary for.
    pub zones: Vec<String>,
    /// TSIG key name (HMAC-SHA256).
    pub tsig_key_name: String,
    /// TSIG secret, base64 as `tsig-keygen` prints it.
    pub tsig_secret: Option<Secret>,
    /// File holding the TSIG secret.
    pub tsig_secret_file: Option<PathBuf>,
    /// Resolvers checked for propagation (`ip:port`); the server when empty.
    #[serde(default)]
    pub resolvers: Vec<SocketAddr>,
    /// How long to wait for the record to be visible, in seconds. Default 120.
    #[serde(default = "default_propagation")]
    pub propagation_timeout_seconds: u64,
}

/// `[[connector]] type = "internal_ca"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternalCaConfig {
    /// Unique name of the connector.
    pub name: String,
    /// Passphrase the CA keys are encrypted under at rest, a secret.
    pub passphrase: Option<Secret>,
    /// File holding the passphrase.
    pub passphrase_file: Option<PathBuf>,
    /// Key type of a generated CA: `ecdsa_p256` (default), `ecdsa_p384`,
    /// `rsa2048`, `rsa3072`, `rsa4096`.
    #[serde(default = "default_ca_key")]
    pub key_type: String,
    /// Common name of a generated root.
    pub root_common_name: Option<String>,
    /// Common name of a generated intermediate.
    pub intermediate_common_name: Option<String>,
    /// Organisation of a generated CA.
    pub organization: Option<String>,
    /// Import instead of generating: the root certificate (PEM file).
    pub import_root_cert: Option<PathBuf>,
    /// Import: the intermediate certificate (PEM file).
    pub import_intermediate_cert: Option<PathBuf>,
    /// Import: the intermediate's private key (PEM file).
    pub import_intermediate_key: Option<PathBuf>,
    /// Import: passphrase of the imported key file.
    pub import_key_passphrase_file: Option<PathBuf>,
    /// DNS name patterns the CA may certify (`.example.internal`, `*.corp.example`).
    #[serde(default)]
    pub allowed_dns: Vec<String>,
    /// Whether wildcard names may be issued.
    #[serde(default)]
    pub allow_wildcards: bool,
    /// IP networks whose addresses may be certified (`10.0.0.0/8`).
    #[serde(default)]
    pub allowed_ip_networks: Vec<String>,
    /// E-mail domains that may be certified.
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    /// Key types accepted in CSRs: `rsa`, `ecdsa_p256`, `ecdsa_p384`, `ed25519`.
    /// Default: all.
    #[serde(default)]
    pub allowed_key_types: Vec<String>,
    /// Longest validity granted, in seconds. Default 90 days.
    #[serde(default = "default_max_validity")]
    pub max_validity_seconds: u64,
    /// URL put in certificates as CRL distribution point.
    pub crl_url: Option<String>,
    /// File the DER CRL is written to.
    pub crl_path: Option<PathBuf>,
    /// Validity of each CRL, in seconds. Default 7 days.
    #[serde(default = "default_crl_validity")]
    pub crl_validity_seconds: u64,
    /// How far back notBefore is set, in seconds, so clients with a slow
    /// clock accept new certificates. Default 300.
    #[serde(default = "default_backdate")]
    pub backdate_seconds: u64,
    /// Most issuances at once. Default 16.
    #[serde(default = "default_max_orders")]
    pub max_concurrent_orders: usize,
    /// The issuer domain names this CA is known by in DNS CAA records
    /// (`letsencrypt.org`, `digicert.com`), for the CAA report.
    #[serde(default)]
    pub caa_identities: Vec<String>,
}

/// A `[[certificate]]` table: a certificate Certkeeper keeps issued, renewed
/// and deployed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// Unique name of the managed certificate.
    pub name: String,
    /// DNS names (`www.example.com`, `*.example.com`), IP addresses or e-mail
    /// addresses; the first DNS name becomes the subject CN.
    pub identifiers: Vec<String>,
    /// The connector that issues it.
    pub connector: String,
    /// `rsa2048`, `rsa3072`, `rsa4096`, `ecdsa_p256` (default), `ecdsa_p384`, `ed25519`.
    #[serde(default = "default_leaf_key")]
    pub key_type: String,
    /// Whether every renewal gets a new key. Default true.
    #[serde(default = "default_true")]
    pub rotate_key: bool,
    /// `server` (default), `client` or `code_signing`.
    #[serde(default = "default_usage")]
    pub usage: Usage,
    /// Requested validity in days (the CA may grant less).
    pub validity_days: Option<u32>,
    /// Requested validity in seconds (short-lived certificates); overrides
    /// `validity_days`.
    pub validity_seconds: Option<u64>,
    /// CA profile for this certificate.
    pub profile: Option<String>,
    /// Renew when this many days remain, instead of the CA's window or the
    /// default of one third of the lifetime.
    pub renew_before_days: Option<u32>,
    /// Owning organisation unit.
    pub org_unit: Option<String>,
    /// Contacts for alerts about it.
    #[serde(default)]
    pub contacts: Vec<String>,
    /// Where it is installed.
    #[serde(default)]
    pub deploy: Vec<DeployTarget>,
}

impl CertificateConfig {
    /// Checks what serde cannot, given the connectors' names; the error is
    /// (key relative to this table, message).
    pub fn validate(
        &self,
        connectors: &std::collections::HashSet<String>,
    ) -> Result<(), (String, String)> {
        if self.name.is_empty() {
            return Err(("name".into(), "expected a non-empty, unique name".into()));
        }
        self.parsed_identifiers()
            .map_err(|e| ("identifiers".to_owned(), e))?;
        if !connectors.contains(&self.connector) {
            return Err((
                "connector".into(),
                format!("no [[connector]] is named `{}`", self.connector),
            ));
        }
        self.key_type
            .parse::<KeyType>()
            .map_err(|e| ("key_type".to_owned(), e))?;
        for (j, target) in self.deploy.iter().enumerate() {
            target
                .validate()
                .map_err(|e| (format!("deploy[{j}].{}", e.key), e.message))?;
        }
        Ok(())
    }

    /// The identifiers, parsed.
    pub fn parsed_identifiers(&self) -> Result<Vec<Identifier>, String> {
        if self.identifiers.is_empty() {
            return Err("expected at least one identifier".into());
        }
        self.identifiers
            .iter()
            .map(|s| parse_identifier(s))
            .collect()
    }

    /// The requested validity.
    pub fn validity(&self) -> Option<Duration> {
        self.validity_seconds.map(Duration::from_secs).or_else(|| {
            self.validity_days
                .map(|d| Duration::from_secs(u64::from(d) * 86_400))
        })
    }
}

/// A key type Certkeeper generates for managed certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// RSA with this many bits.
    Rsa(u32),
    /// ECDSA P-256.
    EcdsaP256,
    /// ECDSA P-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
}

impl std::str::FromStr for KeyType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "rsa2048" => Self::Rsa(2048),
            "rsa3072" => Self::Rsa(3072),
            "rsa4096" => Self::Rsa(4096),
            "ecdsa_p256" => Self::EcdsaP256,
            "ecdsa_p384" => Self::EcdsaP384,
            "ed25519" => Self::Ed25519,
            other => {
                return Err(format!(
                    "unknown key type `{other}` (expected rsa2048, rsa3072, rsa4096, \
                     ecdsa_p256, ecdsa_p384 or ed25519)"
                ));
            }
        })
    }
}

/// Parses `www.example.com`, `*.example.com`, `10.0.0.1` or `ops@example.com`.
pub fn parse_identifier(s: &str) -> Result<Identifier, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(Identifier::Ip(ip));
    }
    if s.contains('@') {
        return Ok(Identifier::Email(s.to_owned()));
    }
    let name = s.strip_prefix("*.").unwrap_or(s);
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return Err(format!(
            "`{s}` is not a DNS name, IP address or e-mail address"
        ));
    }
    Ok(Identifier::Dns(s.to_ascii_lowercase()))
}

impl AcmeConnectorConfig {
    /// The connector crate's settings; `roots_pem` is the content of `roots_file`.
    pub fn settings(&self, roots_pem: Option<String>) -> Result<AcmeSettings, String> {
        let challenge = match &self.challenge {
            ChallengeConfig::Http01(h) => ChallengeSettings::Http01 { listen: h.listen },
            ChallengeConfig::Webroot(w) => ChallengeSettings::Http01Webroot {
                webroot: w.path.clone(),
            },
            ChallengeConfig::Dns01(d) => {
                let secret = d
                    .tsig_secret
                    .clone()
                    .ok_or("challenge.tsig_secret (or tsig_secret_file) is required")?;
                let mut settings =
                    Dns01Settings::new(d.server, d.zones.clone(), &d.tsig_key_name, secret);
                settings.resolvers = d.resolvers.clone();
                settings.propagation_timeout = Duration::from_secs(d.propagation_timeout_seconds);
                ChallengeSettings::Dns01(settings)
            }
        };
        let mut settings = AcmeSettings::new(&self.name, &self.directory_url, challenge);
        settings.extra_roots_pem = roots_pem;
        settings.contacts = self.contacts.clone();
        settings.profile = self.profile.clone();
        settings.request_timeout = Duration::from_secs(self.request_timeout_seconds);
        settings.order_deadline = Duration::from_secs(self.order_deadline_seconds);
        settings.external_account = match (&self.eab_key_id, &self.eab_hmac_key) {
            (Some(key_id), Some(hmac_key)) => Some(ExternalAccountBinding {
                key_id: key_id.clone(),
                hmac_key: hmac_key.clone(),
            }),
            (None, None) => None,
            _ => return Err("eab_key_id and eab_hmac_key must be given together".into()),
        };
        Ok(settings)
    }
}

impl InternalCaConfig {
    /// The connector crate's settings.
    pub fn settings(&self) -> Result<InternalCaSettings, String> {
        let passphrase = self.passphrase.clone().ok_or(
            "passphrase (or passphrase_file) is required: the CA keys are encrypted under it",
        )?;
        let source = match (
            &self.import_root_cert,
            &self.import_intermediate_cert,
            &self.import_intermediate_key,
        ) {
            (None, None, None) => {
                let mut generate = GenerateCa {
                    key_type: ca_key_type(&self.key_type)?,
                    organization: self.organization.clone(),
                    ..GenerateCa::default()
                };
                if let Some(cn) = &self.root_common_name {
                    generate.root_common_name = cn.clone();
                }
                if let Some(cn) = &self.intermediate_common_name {
                    generate.intermediate_common_name = cn.clone();
                }
                CaSource::Generate(generate)
            }
            (Some(root), Some(cert), Some(key)) => {
                let key_passphrase = match &self.import_key_passphrase_file {
                    Some(path) => Some(Secret::from_file(path).map_err(|e| {
                        format!(
                            "cannot read import_key_passphrase_file {}: {e}",
                            path.display()
                        )
                    })?),
                    None => None,
                };
                CaSource::Import(ImportCa {
                    root_certificate: PemSource::File(root.clone()),
                    root_key: None,
                    intermediate_certificate: PemSource::File(cert.clone()),
                    intermediate_key: PemSource::File(key.clone()),
                    key_passphrase,
                })
            }
            _ => {
                return Err(
                    "import_root_cert, import_intermediate_cert and import_intermediate_key \
                     must be given together"
                        .into(),
                );
            }
        };
        let mut settings = InternalCaSettings::new(&self.name, passphrase, source);
        let names = &mut settings.policy.names;
        names.dns = self.allowed_dns.clone();
        names.allow_wildcards = self.allow_wildcards;
        names.email_domains = self.allowed_email_domains.clone();
        names.ip_networks = self
            .allowed_ip_networks
            .iter()
            .map(|n| {
                n.parse::<IpNetwork>()
                    .map_err(|e| format!("allowed_ip_networks: `{n}`: {e}"))
            })
            .collect::<Result<_, _>>()?;
        if !self.allowed_key_types.is_empty() {
            settings.policy.key_types = self
                .allowed_key_types
                .iter()
                .map(|k| leaf_key_type(k))
                .collect::<Result<_, _>>()?;
        }
        settings.policy.max_validity = Duration::from_secs(self.max_validity_seconds);
        settings.policy.default_validity = settings
            .policy
            .default_validity
            .min(settings.policy.max_validity);
        settings.crl.distribution_url = self.crl_url.clone();
        settings.crl.path = self.crl_path.clone();
        settings.crl.validity = Duration::from_secs(self.crl_validity_seconds);
        settings.backdate = Duration::from_secs(self.backdate_seconds);
        Ok(settings)
    }
}

fn ca_key_type(s: &str) -> Result<CaKeyType, String> {
    Ok(match s {
        "ecdsa_p256" => CaKeyType::EcdsaP256,
        "ecdsa_p384" => CaKeyType::EcdsaP384,
        "rsa2048" => CaKeyType::Rsa2048,
        "rsa3072" => CaKeyType::Rsa3072,
        "rsa4096" => CaKeyType::Rsa4096,
        other => {
            return Err(format!(
                "key_type: unknown CA key type `{other}` (expected ecdsa_p256, ecdsa_p384, \
                 rsa2048, rsa3072 or rsa4096)"
            ));
        }
    })
}

fn leaf_key_type(s: &str) -> Result<LeafKeyType, String> {
    Ok(match s {
        "rsa" => LeafKeyType::Rsa,
        "ecdsa_p256" => LeafKeyType::EcdsaP256,
        "ecdsa_p384" => LeafKeyType::EcdsaP384,
        "ed25519" => LeafKeyType::Ed25519,
        other => {
            return Err(format!(
                "allowed_key_types: unknown `{other}` (expected rsa, ecdsa_p256, ecdsa_p384 \
                 or ed25519)"
            ));
        }
    })
}

fn default_request_timeout() -> u64 {
    30
}
fn default_order_deadline() -> u64 {
    600
}
fn default_max_orders() -> usize {
    16
}
fn default_propagation() -> u64 {
    120
}
fn default_ca_key() -> String {
    "ecdsa_p256".into()
}
fn default_max_validity() -> u64 {
    90 * 86_400
}
fn default_backdate() -> u64 {
    300
}
fn default_crl_validity() -> u64 {
    7 * 86_400
}
fn default_leaf_key() -> String {
    "ecdsa_p256".into()
}
fn default_true() -> bool {
    true
}
fn default_usage() -> Usage {
    Usage::Server
}
