//! `[discovery]`: the installation-check policy and the discovery sources
//! (`[[discovery.network]]`, `[[discovery.files]]`, `[[discovery.ca]]`),
//! each run as a job on its cron schedule.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use certkeeper_base::Secret;

/// `[discovery]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// What the installation check flags.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Network sources.
    #[serde(default)]
    pub network: Vec<NetworkSource>,
    /// File-tree sources.
    #[serde(default)]
    pub files: Vec<FileSource>,
    /// CA accounts whose certificates are imported (CA import).
    #[serde(default)]
    pub ca: Vec<CaSource>,
    /// Certificate Transparency monitoring.
    pub ct: Option<CtSource>,
}

/// `[discovery.ct]`: Certificate Transparency monitoring. Each run reads
/// every log from where the last verified entry left it up to the log's
/// current head, and records the certificates for the watched domains
/// (provenance `ct:LOG`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtSource {
    /// The job's name. Default `ct`.
    #[serde(default = "default_ct_name")]
    pub name: String,
    /// When it runs (cron, with seconds). Default every five minutes.
    /// Ignored when `continuous`.
    #[serde(default = "default_ct_schedule")]
    pub schedule: String,
    /// Follow the logs continuously: a run starts every second and reads
    /// up to each log's head, so new entries are read as soon as a log
    /// publishes them. Default false.
    #[serde(default)]
    pub continuous: bool,
    /// Domains watched besides the managed domains: each covers its
    /// subdomains, and a wildcard certificate under it matches.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Watch the domains of the domain rules (`certkeeper domains`) too.
    /// Default true.
    #[serde(default = "yes")]
    pub managed_domains: bool,
    /// A log list in Chrome's `log_list.json` v3 format: a file, or an
    /// `http(s)://` URL fetched at most hourly. Usable and qualified logs
    /// are followed; retired and rejected ones are not.
    pub log_list: Option<String>,
    /// Logs named here, besides (or instead of) a log list.
    #[serde(default)]
    pub log: Vec<CtLogConfig>,
    /// Where a log Certkeeper has not read before starts: `head` (only
    /// what it logs from now on, the default) or `beginning` (back-fill
    /// the whole log).
    #[serde(default)]
    pub start: CtStart,
    /// Entries asked for per request. Default 1024 (logs may answer fewer).
    #[serde(default = "default_ct_batch")]
    pub batch_size: u64,
    /// Requests in flight per log. Default 4.
    #[serde(default = "default_ct_parallel")]
    pub parallel: usize,
    /// Seconds one request may take. Default 30.
    #[serde(default = "default_ct_timeout")]
    pub timeout_seconds: u64,
}

/// One `[[discovery.ct.log]]`: an RFC 6962 log (`url`) or a static-ct-api
/// tiled log (`monitoring_url` and `origin`), with its public key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtLogConfig {
    /// The log's name in the inventory (`ct:NAME`) and in `certkeeper ct
    /// status`.
    pub name: String,
    /// An RFC 6962 log's base URL (`https://ct.example/2026h2/`).
    pub url: Option<String>,
    /// A tiled log's monitoring prefix.
    pub monitoring_url: Option<String>,
    /// A tiled log's checkpoint origin line. Default: the monitoring URL
    /// without its scheme and trailing slash.
    pub origin: Option<String>,
    /// The log's public key: base64 of its DER SubjectPublicKeyInfo, as in
    /// a log list.
    pub key: String,
}

/// Where a log read for the first time starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CtStart {
    /// At its current head.
    #[default]
    Head,
    /// At entry 0.
    Beginning,
}

fn default_ct_name() -> String {
    "ct".into()
}

fn default_ct_schedule() -> String {
    "0 */5 * * * *".into()
}

fn default_ct_batch() -> u64 {
    1024
}

fn default_ct_parallel() -> usize {
    4
}

fn default_ct_timeout() -> u64 {
    30
}

impl CtLogConfig {
    /// The log as the CT engine follows it; on a mistake, the key at fault
    /// and what is wrong.
    pub fn spec(&self) -> Result<certkeeper_discovery::ct::LogSpec, (&'static str, String)> {
        use certkeeper_discovery::ct::{LogKind, LogSpec};
        let http = |key: &'static str, url: &str| {
            let parsed = url::Url::parse(url).map_err(|e| (key, format!("`{url}`: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err((key, format!("`{url}`: expected an http(s) URL")));
            }
            Ok(url.to_owned())
        };
        let kind = match (&self.url, &self.monitoring_url) {
            (Some(url), None) => LogKind::Rfc6962 {
                url: http("url", url)?,
            },
            (None, Some(monitoring)) => {
                let monitoring_url = http("monitoring_url", monitoring)?;
                let origin = self.origin.clone().unwrap_or_else(|| {
                    let bare = monitoring_url
                        .split_once("://")
                        .map_or(monitoring_url.as_str(), |(_, rest)| rest);
                    bare.trim_end_matches('/').to_owned()
                });
                LogKind::Tiled {
                    monitoring_url,
                    origin,
                }
            }
            (Some(_), Some(_)) => {
                return Err((
                    "url",
                    "give url (an RFC 6962 log) or monitoring_url (a tiled log), not both".into(),
                ));
            }
            (None, None) => {
                return Err((
                    "url",
                    "expected url (an RFC 6962 log) or monitoring_url (a tiled log)".into(),
                ));
            }
        };
        LogSpec::new(&self.name, kind, &self.key).map_err(|e| ("key", e.to_string()))
    }
}

impl CtSource {
    /// The cron schedule the job runs on.
    pub fn effective_schedule(&self) -> &str {
        if self.continuous {
            "* * * * * *"
        } else {
            &self.schedule
        }
    }
}

/// `[[discovery.ca]]`: the certificates a CA account holds, pulled through
/// its connector's listing into the inventory (provenance `ca:CONNECTOR`),
/// incrementally: each run continues from where the last one ended.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaSource {
    /// Unique job name.
    pub name: String,
    /// Cron schedule with a seconds field.
    pub schedule: String,
    /// The `[[connector]]` whose CA account is listed; it must be one that
    /// can list (not `acme`: ACME has no listing of an account's
    /// certificates).
    pub connector: String,
    /// Read the whole listing again from the start (revocations of
    /// certificates imported before show up; costs a full listing each
    /// run). Default false: only what the CA issued since the last run.
    #[serde(default)]
    pub full: bool,
}

/// `[discovery.policy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// RSA and DSA keys shorter than this are `weak_key`. Default 2048.
    #[serde(default = "default_rsa")]
    pub min_rsa_bits: u32,
    /// EC keys shorter than this are `weak_key`. Default 256.
    #[serde(default = "default_ec")]
    pub min_ec_bits: u32,
    /// Leaf certificates valid longer than this are `validity_too_long`.
    /// Default 398 (the CA/Browser Forum limit).
    #[serde(default = "default_validity")]
    pub max_validity_days: u32,
    /// PEM bundle of the CA certificates whose issuance is approved; others
    /// are `unapproved_issuer`. Unset: the check is off.
    pub approved_issuers: Option<PathBuf>,
    /// PEM bundle of private roots trusted besides the system's.
    pub trusted_roots: Option<PathBuf>,
    /// PEM bundle of intermediate CAs known to the organisation: a server
    /// that leaves one of these out of its chain is `incomplete_chain` (it
    /// must send it); an issuer found nowhere is `untrusted`.
    pub intermediates: Option<PathBuf>,
    /// Whether wildcard certificates are allowed; false raises `wildcard`.
    /// Default true.
    #[serde(default = "yes")]
    pub allow_wildcards: bool,
    /// Fetch a leaf's missing issuer from its AIA caIssuers URL (plain
    /// HTTP, 3 s, 64 KiB, cached), to tell `incomplete_chain` from
    /// `untrusted` for public CAs. Default false.
    #[serde(default)]
    pub fetch_aia: bool,
    /// Check each leaf's revocation by OCSP, then CRL (5 s a request, 15 s
    /// in all, cached; only a verified answer counts) and raise `revoked`.
    /// Default false.
    #[serde(default)]
    pub check_revocation: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            min_rsa_bits: default_rsa(),
            min_ec_bits: default_ec(),
            max_validity_days: default_validity(),
            approved_issuers: None,
            trusted_roots: None,
            intermediates: None,
            allow_wildcards: true,
            fetch_aia: false,
            check_revocation: false,
        }
    }
}

fn yes() -> bool {
    true
}

fn default_rsa() -> u32 {
    2048
}

fn default_ec() -> u32 {
    256
}

fn default_validity() -> u32 {
    398
}

/// `[[discovery.network]]`: endpoints to probe.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSource {
    /// Unique job name.
    pub name: String,
    /// Cron schedule with a seconds field.
    pub schedule: String,
    /// Addresses, CIDRs, ranges, host names, or `@/path/to/file`.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Ports to try. Default 443, 8443, 636, 993, 995, 465.
    #[serde(default = "default_ports")]
    pub ports: Vec<u16>,
    /// `NAME:PORT:ADDRESS` overrides scanned without DNS.
    #[serde(default)]
    pub resolve: Vec<String>,
    /// STARTTLS per port over the defaults, e.g. `{ "2525" = "smtp", "25" = "none" }`.
    #[serde(default)]
    pub starttls: BTreeMap<String, String>,
    /// Probes in flight at once. Default 256.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Name servers for the targets' names (`ADDRESS` or `ADDRESS:PORT`);
    /// empty = the system's.
    #[serde(default)]
    pub dns_servers: Vec<String>,
    /// Connect timeout in seconds (the handshake gets twice as long). Default 3.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Addresses per shard: a run's targets are cut into shards of this
    /// many addresses (host names count one each) that every daemon sharing
    /// the store scans, one shard per worker (`scheduler.shard_workers`);
    /// a daemon stopped mid-run loses only its shards, which others take
    /// over once their leases lapse. Default 4096.
    #[serde(default = "default_shard_size")]
    pub shard_size: u64,
}

fn default_shard_size() -> u64 {
    4096
}

fn default_ports() -> Vec<u16> {
    certkeeper_discovery::targets::DEFAULT_PORTS.to_vec()
}

fn default_concurrency() -> usize {
    256
}

fn default_timeout() -> u64 {
    3
}

/// `[[discovery.files]]`: directory trees to search for certificate files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    /// Unique job name.
    pub name: String,
    /// Cron schedule with a seconds field.
    pub schedule: String,
    /// Directories to walk.
    pub roots: Vec<PathBuf>,
    /// Globs a file must match (relative path or file name); empty = all.
    #[serde(default)]
    pub include: Vec<String>,
    /// Globs of files and directories to skip.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Passwords tried on PKCS#12 files (after the empty one).
    #[serde(default)]
    pub pkcs12_passwords: Vec<Secret>,
    /// A file of PKCS#12 passwords, one per line (systemd `LoadCredential=`).
    pub pkcs12_passwords_file: Option<PathBuf>,
    /// Files larger than this many bytes are skipped. Default 10 MiB.
    #[serde(default = "default_max_file")]
    pub max_file_bytes: u64,
    /// Follow symbolic links. Default false.
    #[serde(default)]
    pub follow_symlinks: bool,
}

fn default_max_file() -> u64 {
    10 * 1024 * 1024
}
