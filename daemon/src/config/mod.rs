//! The daemon's configuration: one TOML file plus `CERTKEEPER__SECTION__KEY`
//! environment overrides, layered by the `config` crate.
//!
//! Every section is a struct with `deny_unknown_fields`, so a misspelt key is
//! refused rather than silently ignored. Errors name the file, the key (as a
//! dotted path such as `job[1].schedule`) and what was expected; see
//! [`ConfigError`]. After deserialisation, [`Config::load`] runs the checks
//! serde cannot express (cron expressions, paired options, secret files) so
//! that `certkeeper validate` catches everything `certkeeper run` would.
//!
//! The commented example `contrib/certkeeper.example.toml` lists every key; a
//! test proves it parses.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use certkeeper_base::Secret;

pub mod alerts;
pub mod command;
pub mod discovery;
pub mod issuance;
pub mod report;
pub mod vendors;

pub use certkeeper_store::StoreConfig;
pub use discovery::{
    CaSource, CtLogConfig, CtSource, CtStart, DiscoveryConfig, FileSource, NetworkSource,
    PolicyConfig,
};
pub use issuance::{CertificateConfig, ConnectorConfig, KeyType};

/// The built-in job that moves certificates between valid, expiring and
/// expired as time passes; no configured job may take its name.
pub const REFRESH_JOB: &str = "inventory-refresh";

/// Where the config is read from when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/certkeeper/certkeeper.toml";

/// Prefix of environment overrides: `CERTKEEPER__API__LISTEN=127.0.0.1:9000`.
pub const ENV_PREFIX: &str = "CERTKEEPER";

/// A config that could not be loaded, naming the file and key at fault.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", file.display(), key.as_ref().map(|k| format!(": key `{k}`")).unwrap_or_default())]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// The offending key as a dotted path, when one is to blame.
    pub key: Option<String>,
    /// What was wrong and what was expected.
    pub message: String,
}

impl ConfigError {
    fn new(file: &Path, key: Option<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            key,
            message: message.into(),
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The HTTP API and web portal.
    #[serde(default)]
    pub api: ApiConfig,
    /// Where the inventory is stored.
    #[serde(default)]
    pub store: StoreConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The job scheduler.
    #[serde(default)]
    pub scheduler: SchedulerConfig,
    /// Inventory behaviour.
    #[serde(default)]
    pub inventory: InventoryConfig,
    /// Scheduled jobs (`[[job]]` tables).
    #[serde(default, rename = "job")]
    pub jobs: Vec<JobConfig>,
    /// Discovery sources and the installation-check policy.
    #[serde(default)]
    pub discovery: DiscoveryConfig,
    /// CAs certificates are issued through (`[[connector]]` tables).
    #[serde(default, rename = "connector")]
    pub connectors: Vec<ConnectorConfig>,
    /// Managed certificates (`[[certificate]]` tables).
    #[serde(default, rename = "certificate")]
    pub certificates: Vec<CertificateConfig>,
    /// How managed certificates are renewed.
    #[serde(default)]
    pub renewal: RenewalConfig,
    /// Alert ledger, routing and delivery.
    #[serde(default)]
    pub alerts: alerts::AlertsConfig,
    /// Administration settings.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Where Certkeeper may connect to.
    #[serde(default)]
    pub security: SecurityConfig,
    /// Notification channels (`[notifier.NAME]` tables, `type`-tagged).
    #[serde(default, rename = "notifier")]
    pub notifiers:
        std::collections::BTreeMap<String, certkeeper_integrations::config::ChannelConfig>,
}

/// `[renewal]`: the renewal worker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewalConfig {
    /// Seconds between checks of what is due. Default 30.
    #[serde(default = "default_renewal_interval")]
    pub check_interval_seconds: u64,
    /// Renewals (issue + deploy + verify) in flight at once, across all
    /// connectors. Default 256.
    #[serde(default = "default_renewal_concurrency")]
    pub concurrency: usize,
    /// Seconds a live verification keeps probing before it gives up. Default 30.
    #[serde(default = "default_verify_timeout")]
    pub verify_timeout_seconds: u64,
}

impl Default for RenewalConfig {
    fn default() -> Self {
        Self {
            check_interval_seconds: default_renewal_interval(),
            concurrency: default_renewal_concurrency(),
            verify_timeout_seconds: default_verify_timeout(),
        }
    }
}

fn default_renewal_interval() -> u64 {
    30
}

fn default_renewal_concurrency() -> usize {
    256
}

fn default_verify_timeout() -> u64 {
    30
}

/// `[security]`: outbound restrictions, so URLs in the configuration
/// (webhooks, ticketing, ACME directories) cannot make Certkeeper reach
/// internal services (SSRF).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// Refuse notifier and ACME URLs whose host is, or resolves to, a
    /// loopback, private, link-local (cloud metadata), CGNAT or other
    /// internal address unless `allowed_networks` lists it. Checked by
    /// `certkeeper validate` (address literals) and at start (resolved
    /// names). Default false.
    #[serde(default)]
    pub restrict_outbound: bool,
    /// Networks allowed although internal (`10.1.0.0/16` for an in-house Jira).
    #[serde(default)]
    pub allowed_networks: Vec<String>,
    /// Networks refused on top of the built-in list.
    #[serde(default)]
    pub denied_networks: Vec<String>,
}

impl SecurityConfig {
    /// The outbound policy.
    pub fn url_policy(&self) -> certkeeper_model::admin::ssrf::UrlPolicy {
        let nets = |list: &[String]| list.iter().filter_map(|n| parse_net(n).ok()).collect();
        certkeeper_model::admin::ssrf::UrlPolicy::new(
            nets(&self.allowed_networks),
            nets(&self.denied_networks),
        )
    }

    /// The check every outbound connection makes when it connects (after
    /// resolving, so a name that changes its answer cannot slip through):
    /// the [`url_policy`](Self::url_policy) with `restrict_outbound`, else
    /// everything allowed.
    pub fn address_guard(&self) -> certkeeper_base::AddressGuard {
        if !self.restrict_outbound {
            return certkeeper_base::AddressGuard::allow_all();
        }
        let policy = self.url_policy();
        certkeeper_base::AddressGuard::new(move |ip| {
            policy.check_ip(ip).map_err(|denial| denial.to_string())
        })
    }

    /// Every outbound URL of `config` with the key it comes from.
    pub fn outbound_urls(config: &Config) -> Vec<(String, String)> {
        let mut urls = Vec::new();
        for (name, channel) in &config.notifiers {
            if let Some(url) = channel.endpoint() {
                urls.push((format!("notifier.{name}"), url.to_owned()));
            }
        }
        for (i, connector) in config.connectors.iter().enumerate() {
            match connector {
                issuance::ConnectorConfig::Acme(acme) => urls.push((
                    format!("connector[{i}].directory_url"),
                    acme.directory_url.clone(),
                )),
                issuance::ConnectorConfig::AwsPca(pca) => {
                    if let Some(endpoint) = &pca.endpoint {
                        urls.push((format!("connector[{i}].endpoint"), endpoint.clone()));
                    }
                }
                issuance::ConnectorConfig::Vault(vault) => {
                    urls.push((format!("connector[{i}].url"), vault.url.clone()));
                }
                issuance::ConnectorConfig::Digicert(digicert) => {
                    if let Some(url) = &digicert.url {
                        urls.push((format!("connector[{i}].url"), url.clone()));
                    }
                }
                issuance::ConnectorConfig::Sectigo(sectigo) => {
                    if let Some(url) = &sectigo.url {
                        urls.push((format!("connector[{i}].url"), url.clone()));
                    }
                }
                _ => {}
            }
        }
        urls
    }
}

/// A network (`10.0.0.0/8`) or one address (`10.0.0.5`).
fn parse_net(text: &str) -> Result<ipnet::IpNet, String> {
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{text}` is not a network (10.0.0.0/8) or an address"))
}

/// `[admin]`: administration settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Whether certificates enrolled through requests renew without an
    /// approver. When false, each due renewal files a pending request
    /// (`renew-NAME-gN`) that an approver must approve. Default true.
    #[serde(default = "default_true")]
    pub auto_approve_renewals: bool,
    /// The four-eyes rule: an enrollment request is approved by someone
    /// other than the user who made it. Default true.
    #[serde(default = "default_true")]
    pub four_eyes: bool,
    /// Name servers (`ADDR[:PORT]`) the CAA report asks; default the
    /// system's.
    #[serde(default)]
    pub caa_dns_servers: Vec<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            auto_approve_renewals: true,
            four_eyes: true,
            caa_dns_servers: Vec::new(),
        }
    }
}

fn default_true() -> bool {
    true
}

/// `[api]`: the HTTP API and web portal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address and port to listen on. Default `127.0.0.1:8787`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// PEM certificate chain for serving the API over TLS. Needs `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Bearer token required on `/api/` routes. Without one the API is open to
    /// anyone who can reach `listen`, so keep it on loopback.
    pub token: Option<Secret>,
    /// File holding the bearer token (systemd `LoadCredential=`).
    pub token_file: Option<PathBuf>,
    /// Largest page `limit` a client may ask for. Default 1000.
    #[serde(default = "default_max_page")]
    pub max_page_size: usize,
    /// The address people and webhooks reach the API at (behind a proxy,
    /// say), for links in notifications: `https://certkeeper.example.com`.
    /// Default: `http(s)://` and `listen`.
    pub public_url: Option<String>,
    /// Reverse proxies in front of the API, as addresses or networks
    /// (`["127.0.0.1", "10.0.0.0/24"]`). A request from one of them is taken
    /// to come from the address it names in `X-Forwarded-For` (the rightmost
    /// entry that is not itself a trusted proxy), for sign-in limits and the
    /// audit log; from anyone else the header is ignored. Default: none.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

impl ApiConfig {
    /// `trusted_proxies`, parsed (the config's check refused bad entries).
    pub fn trusted_proxy_nets(&self) -> Vec<ipnet::IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|n| parse_net(n).ok())
            .collect()
    }

    /// The base of links to the API: `public_url`, or the listen address.
    pub fn base_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let scheme = if self.tls_cert.is_some() {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{}", self.listen)
            }
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            tls_cert: None,
            tls_key: None,
            token: None,
            token_file: None,
            max_page_size: default_max_page(),
            public_url: None,
            trusted_proxies: Vec::new(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8787))
}

fn default_max_page() -> usize {
    1000
}

/// `[log]`: logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `certkeeper=debug,info`. The
    /// `RUST_LOG` environment variable wins when set. Default `info`.
    #[serde(default = "default_level")]
    pub level: String,
    /// `text` (the default; the journal adds timestamps) or `json`.
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: default_level(),
            format: LogFormat::Text,
        }
    }
}

fn default_level() -> String {
    "info".into()
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[scheduler]`: how jobs are claimed and run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    /// How long a claimed job run is held before another daemon (or this one
    /// after a crash) may take it over. The holder renews the lease every third
    /// of this while the job runs. Default 60.
    #[serde(default = "default_lease")]
    pub lease_seconds: u64,
    /// Identity written into leases. Default: host name, process id and a
    /// random suffix, unique per start.
    pub holder: Option<String>,
    /// Seconds to wait for running jobs on shutdown before abandoning them
    /// (their leases then expire and they resume on the next start). Default 30.
    #[serde(default = "default_shutdown")]
    pub shutdown_timeout_seconds: u64,
    /// Discovery shards this daemon scans at once (of any daemon's network
    /// job runs, `discovery.network[].shard_size`). 0: this daemon leaves
    /// the scanning to the others. Default 2.
    #[serde(default = "default_shard_workers")]
    pub shard_workers: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            lease_seconds: default_lease(),
            holder: None,
            shutdown_timeout_seconds: default_shutdown(),
            shard_workers: default_shard_workers(),
        }
    }
}

fn default_shard_workers() -> usize {
    2
}

fn default_lease() -> u64 {
    60
}

fn default_shutdown() -> u64 {
    30
}

/// `[inventory]`: inventory behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryConfig {
    /// A valid certificate whose `not_after` is this many days away or fewer is
    /// `expiring`. Default 30.
    #[serde(default = "default_expiring_days")]
    pub expiring_days: u32,
    /// Cron schedule (seconds field first) of the built-in job that moves
    /// certificates to `expiring` and `expired` as time passes. Default every
    /// minute.
    #[serde(default = "default_refresh")]
    pub refresh_schedule: String,
    /// A certificate every discovery source that saw it has since scanned
    /// this many times without seeing it again is listed as a deactivation
    /// candidate (`GET /api/v1/deactivation-candidates`). 0 lists none.
    /// Default 3.
    #[serde(default = "default_missed_scans")]
    pub candidate_after_missed_scans: u32,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        Self {
            expiring_days: default_expiring_days(),
            refresh_schedule: default_refresh(),
            candidate_after_missed_scans: default_missed_scans(),
        }
    }
}

fn default_missed_scans() -> u32 {
    3
}

fn default_expiring_days() -> u32 {
    30
}

fn default_refresh() -> String {
    "0 * * * * *".into()
}

/// A `[[job]]` table: a scheduled job, tagged by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobConfig {
    /// Imports certificate files (PEM bundles, DER) into the inventory.
    Import(ImportJob),
    /// Runs a command (a hook): e.g. a script that copies certificates to
    /// where an import job reads them.
    Command(CommandJob),
    /// Writes a report to a directory and announces it (`report_ready`)
    /// through the alert routing (e-mail, webhook, chat).
    Report(ReportJob),
}

/// `type = "report"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportJob {
    /// Unique job name (also the report files' prefix).
    pub name: String,
    /// Cron schedule with a seconds field.
    pub schedule: String,
    /// `inventory`, `expiring`, `units`, `readiness47`, `history`,
    /// `org-units` or `findings`.
    pub kind: String,
    /// `csv` (default), `json`, `html` or `pdf`.
    #[serde(default = "default_report_format")]
    pub format: String,
    /// Directory the files go to (`NAME-YYYYMMDD-HHMMSS.EXT`).
    pub directory: PathBuf,
    /// Only this org unit (and those below it).
    pub org_unit: Option<String>,
    /// Expiring: the horizon in days.
    pub within_days: Option<i64>,
    /// Reports kept in the directory; older ones of this job are deleted. Default 30.
    #[serde(default = "default_keep_reports")]
    pub keep: usize,
}

fn default_report_format() -> String {
    "csv".into()
}

fn default_keep_reports() -> usize {
    30
}

impl JobConfig {
    /// The job's unique name.
    pub fn name(&self) -> &str {
        match self {
            Self::Import(j) => &j.name,
            Self::Command(j) => &j.name,
            Self::Report(j) => &j.name,
        }
    }

    /// The job's cron schedule.
    pub fn schedule(&self) -> &str {
        match self {
            Self::Import(j) => &j.schedule,
            Self::Command(j) => &j.schedule,
            Self::Report(j) => &j.schedule,
        }
    }
}

/// `type = "import"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportJob {
    /// Unique job name.
    pub name: String,
    /// Cron schedule with a seconds field: `sec min hour day month weekday`.
    pub schedule: String,
    /// Files to import.
    pub paths: Vec<PathBuf>,
}

/// `type = "command"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandJob {
    /// Unique job name.
    pub name: String,
    /// Cron schedule with a seconds field: `sec min hour day month weekday`.
    pub schedule: String,
    /// Program and arguments (no shell unless you name one).
    pub command: Vec<String>,
    /// Seconds after which the command is killed and the run fails. Default 300.
    #[serde(default = "default_command_timeout")]
    pub timeout_seconds: u64,
}

fn default_command_timeout() -> u64 {
    300
}

impl Config {
    /// Loads the file at `path` with environment overrides and checks it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        if !path.exists() {
            return Err(ConfigError::new(
                path,
                None,
                "no such file (give another with --config PATH)",
            ));
        }
        let layered = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix(ENV_PREFIX)
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()
            .map_err(|e| ConfigError::new(path, None, e.to_string()))?;
        let mut config: Config = serde_path_to_error::deserialize(layered).map_err(|e| {
            let key = e.path().to_string();
            let message = strip_config_suffix(&e.inner().to_string());
            let key = (key != ".").then_some(key);
            let message = match key
                .as_deref()
                .map(env_name)
                .filter(|v| std::env::var_os(v).is_some())
            {
                Some(var) => format!("{message} (set by environment variable {var})"),
                None => message,
            };
            ConfigError::new(path, key, message)
        })?;
        config.check(path)?;
        Ok(config)
    }

    /// Checks what serde cannot, and reads `*_file` secrets.
    fn check(&mut self, path: &Path) -> Result<(), ConfigError> {
        let err = |key: &str, msg: String| ConfigError::new(path, Some(key.to_string()), msg);
        self.api.token = merge_secret(
            path,
            "api.token",
            self.api.token.take(),
            &self.api.token_file,
        )?;
        self.store.password = merge_secret(
            path,
            "store.password",
            self.store.password.take(),
            &self.store.password_file,
        )?;
        if self.api.tls_cert.is_some() != self.api.tls_key.is_some() {
            return Err(err(
                "api.tls_cert",
                "tls_cert and tls_key must be given together".into(),
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(err(
                "log.level",
                format!(
                    "`{}` is not a log filter ({e}); expected e.g. `info` or `certkeeper=debug,info`",
                    self.log.level
                ),
            ));
        }
        if let Some(url) = &self.api.public_url
            && url::Url::parse(url)
                .ok()
                .is_none_or(|u| !["http", "https"].contains(&u.scheme()) || u.host().is_none())
        {
            return Err(err(
                "api.public_url",
                format!("`{url}` is not an http:// or https:// URL"),
            ));
        }
        if self.api.max_page_size == 0 {
            return Err(err("api.max_page_size", "expected a number above 0".into()));
        }
        for (key, value) in [
            ("store.cache_mib", self.store.cache_mib),
            ("store.memtable_mib", self.store.memtable_mib),
        ] {
            if !(1..=1 << 20).contains(&value) {
                return Err(err(
                    key,
                    format!("expected MiB from 1 to 1048576, got {value}"),
                ));
            }
        }
        self.store
            .parsed_url()
            .map_err(|e| err("store.url", e.to_string()))?;
        if self.scheduler.lease_seconds < 3 {
            return Err(err(
                "scheduler.lease_seconds",
                "expected at least 3 seconds".into(),
            ));
        }
        parse_schedule(&self.inventory.refresh_schedule)
            .map_err(|e| err("inventory.refresh_schedule", e))?;
        let mut names = std::collections::HashSet::new();
        self.check_discovery(path, &mut names)?;
        self.check_issuance(path)?;
        certkeeper_discovery::dns::parse_dns_servers(&self.admin.caa_dns_servers).map_err(|e| {
            ConfigError::new(path, Some("admin.caa_dns_servers".into()), e.to_string())
        })?;
        for (key, list) in [
            ("api.trusted_proxies", &self.api.trusted_proxies),
            ("security.allowed_networks", &self.security.allowed_networks),
            ("security.denied_networks", &self.security.denied_networks),
        ] {
            for n in list {
                parse_net(n).map_err(|e| ConfigError::new(path, Some(key.into()), e))?;
            }
        }
        if self.security.restrict_outbound {
            let policy = self.security.url_policy();
            for (key, url) in SecurityConfig::outbound_urls(self) {
                policy
                    .check_url(&url)
                    .map_err(|e| ConfigError::new(path, Some(key), e.to_string()))?;
            }
        }
        alerts::check(&self.alerts, &self.notifiers)
            .map_err(|(key, message)| ConfigError::new(path, Some(key), message))?;
        for (i, job) in self.jobs.iter().enumerate() {
            if job.name().is_empty() || job.name() == REFRESH_JOB {
                return Err(err(
                    &format!("job[{i}].name"),
                    format!(
                        "expected a non-empty name other than the built-in `{}`",
                        REFRESH_JOB
                    ),
                ));
            }
            if !names.insert(job.name().to_string()) {
                return Err(err(
                    &format!("job[{i}].name"),
                    format!("job name `{}` is used twice", job.name()),
                ));
            }
            parse_schedule(job.schedule()).map_err(|e| err(&format!("job[{i}].schedule"), e))?;
            if let JobConfig::Report(r) = job {
                report::Kind::parse(&r.kind).map_err(|e| err(&format!("job[{i}].kind"), e))?;
                report::Format::parse(&r.format)
                    .map_err(|e| err(&format!("job[{i}].format"), e))?;
                if r.keep == 0 {
                    return Err(err(&format!("job[{i}].keep"), "expected at least 1".into()));
                }
            }
            if let JobConfig::Command(c) = job
                && c.command.is_empty()
            {
                return Err(err(
                    &format!("job[{i}].command"),
                    "expected a program and its arguments".into(),
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    fn check_issuance(&mut self, path: &Path) -> Result<(), ConfigError> {
        use issuance::{ChallengeConfig, ConnectorConfig as C};
        let err = |key: String, msg: String| ConfigError::new(path, Some(key), msg);
        let mut names = std::collections::HashSet::new();
        for (i, connector) in self.connectors.iter_mut().enumerate() {
            let key = |k: &str| format!("connector[{i}].{k}");
            if connector.name().is_empty() || !names.insert(connector.name().to_owned()) {
                return Err(err(key("name"), "expected a non-empty, unique name".into()));
            }
            if connector.max_concurrent_orders() == 0 {
                return Err(err(
                    key("max_concurrent_orders"),
                    "expected at least 1".into(),
                ));
            }
            match connector {
                C::Acme(acme) => {
                    acme.eab_hmac_key = merge_secret(
                        path,
                        &key("eab_hmac_key"),
                        acme.eab_hmac_key.take(),
                        &acme.eab_hmac_key_file,
                    )?;
                    if let ChallengeConfig::Dns01(d) = &mut acme.challenge {
                        d.tsig_secret = merge_secret(
                            path,
                            &key("challenge.tsig_secret"),
                            d.tsig_secret.take(),
                            &d.tsig_secret_file,
                        )?;
                    }
                    if acme.request_timeout_seconds == 0 || acme.order_deadline_seconds == 0 {
                        return Err(err(
                            key("request_timeout_seconds"),
                            "request_timeout_seconds and order_deadline_seconds must be above 0"
                                .into(),
                        ));
                    }
                    acme.settings(None).map_err(|e| err(key("challenge"), e))?;
                }
                C::InternalCa(ca) => {
                    ca.passphrase = merge_secret(
                        path,
                        &key("passphrase"),
                        ca.passphrase.take(),
                        &ca.passphrase_file,
                    )?;
                    ca.settings().map_err(|e| err(key("passphrase"), e))?;
                }
                other => vendors::check(other, path, &key)?,
            }
        }
        let mut certs = std::collections::HashSet::new();
        for (i, cert) in self.certificates.iter().enumerate() {
            if !certs.insert(cert.name.clone()) {
                return Err(err(
                    format!("certificate[{i}].name"),
                    "expected a non-empty, unique name".into(),
                ));
            }
            cert.validate(&names)
                .map_err(|(key, msg)| err(format!("certificate[{i}].{key}"), msg))?;
        }
        if self.renewal.concurrency == 0 || self.renewal.check_interval_seconds == 0 {
            return Err(err(
                "renewal.concurrency".into(),
                "concurrency and check_interval_seconds must be above 0".into(),
            ));
        }
        Ok(())
    }

    fn check_discovery(
        &mut self,
        path: &Path,
        names: &mut std::collections::HashSet<String>,
    ) -> Result<(), ConfigError> {
        let err = |key: String, msg: String| ConfigError::new(path, Some(key), msg);
        let mut name_ok = |key: String, name: &str| {
            if name.is_empty() || name == REFRESH_JOB {
                return Err(err(key, "expected a non-empty, unique job name".into()));
            }
            if !names.insert(name.to_string()) {
                return Err(err(key, format!("job name `{name}` is used twice")));
            }
            Ok(())
        };
        for (i, source) in self.discovery.network.iter().enumerate() {
            let key = |field: &str| format!("discovery.network[{i}].{field}");
            name_ok(key("name"), &source.name)?;
            parse_schedule(&source.schedule).map_err(|e| err(key("schedule"), e))?;
            if source.targets.is_empty() && source.resolve.is_empty() {
                return Err(err(
                    key("targets"),
                    "expected targets or resolve entries".into(),
                ));
            }
            for target in &source.targets {
                if !target.starts_with('@') {
                    certkeeper_discovery::targets::Target::parse(target)
                        .map_err(|e| err(key("targets"), e.to_string()))?;
                }
            }
            for r in &source.resolve {
                certkeeper_discovery::targets::Resolve::parse(r)
                    .map_err(|e| err(key("resolve"), e.to_string()))?;
            }
            certkeeper_discovery::dns::parse_dns_servers(&source.dns_servers)
                .map_err(|e| err(key("dns_servers"), e.to_string()))?;
            if source.ports.is_empty() || source.ports.contains(&0) {
                return Err(err(key("ports"), "expected ports from 1 to 65535".into()));
            }
            for (port, proto) in &source.starttls {
                if port.parse::<u16>().is_err() {
                    return Err(err(key("starttls"), format!("`{port}` is not a port")));
                }
                if proto != "none" && certkeeper_discovery::model::Starttls::parse(proto).is_none()
                {
                    return Err(err(
                        key("starttls"),
                        format!(
                            "`{proto}`: expected smtp, imap, pop3, ldap, ftp, postgres or none"
                        ),
                    ));
                }
            }
            if source.concurrency == 0 || source.timeout_seconds == 0 {
                return Err(err(
                    key("concurrency"),
                    "concurrency and timeout_seconds must be above 0".into(),
                ));
            }
            if source.shard_size == 0 {
                return Err(err(key("shard_size"), "expected at least 1 address".into()));
            }
        }
        let mut file_passwords = Vec::new();
        for (i, source) in self.discovery.files.iter().enumerate() {
            let key = |field: &str| format!("discovery.files[{i}].{field}");
            name_ok(key("name"), &source.name)?;
            parse_schedule(&source.schedule).map_err(|e| err(key("schedule"), e))?;
            if source.roots.is_empty() {
                return Err(err(key("roots"), "expected at least one directory".into()));
            }
            for glob in source.include.iter().chain(&source.exclude) {
                globset::Glob::new(glob)
                    .map_err(|e| err(key("include"), format!("`{glob}`: {e}")))?;
            }
            let extra = match &source.pkcs12_passwords_file {
                Some(file) => Secret::from_file(file)
                    .map_err(|e| {
                        err(
                            key("pkcs12_passwords_file"),
                            format!("cannot read {}: {e}", file.display()),
                        )
                    })?
                    .expose()
                    .lines()
                    .map(Secret::new)
                    .collect(),
                None => Vec::new(),
            };
            file_passwords.push(extra);
        }
        for (source, extra) in self.discovery.files.iter_mut().zip(file_passwords) {
            source.pkcs12_passwords.extend(extra);
        }
        for (i, source) in self.discovery.ca.iter().enumerate() {
            let key = |field: &str| format!("discovery.ca[{i}].{field}");
            name_ok(key("name"), &source.name)?;
            parse_schedule(&source.schedule).map_err(|e| err(key("schedule"), e))?;
            match self
                .connectors
                .iter()
                .find(|c| c.name() == source.connector)
            {
                None => {
                    return Err(err(
                        key("connector"),
                        format!("no [[connector]] named `{}`", source.connector),
                    ));
                }
                Some(c) if c.kind() == "acme" => {
                    return Err(err(
                        key("connector"),
                        format!(
                            "`{}` is an ACME connector: ACME cannot list what an account holds",
                            source.connector
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some(ct) = &self.discovery.ct {
            let key = |field: &str| format!("discovery.ct.{field}");
            name_ok(key("name"), &ct.name)?;
            parse_schedule(&ct.schedule).map_err(|e| err(key("schedule"), e))?;
            if ct.log.is_empty() && ct.log_list.is_none() {
                return Err(err(
                    key("log"),
                    "expected a log_list or at least one [[discovery.ct.log]]".into(),
                ));
            }
            if ct.batch_size == 0 || ct.batch_size > 100_000 {
                return Err(err(key("batch_size"), "expected 1 to 100000".into()));
            }
            if ct.parallel == 0 || ct.parallel > 64 {
                return Err(err(key("parallel"), "expected 1 to 64".into()));
            }
            if ct.timeout_seconds == 0 {
                return Err(err(key("timeout_seconds"), "expected at least 1".into()));
            }
            for domain in &ct.domains {
                let bare = domain.trim().trim_end_matches('.');
                if bare.is_empty() || bare.contains(char::is_whitespace) || bare.contains('/') {
                    return Err(err(key("domains"), format!("`{domain}` is not a domain")));
                }
            }
            let mut log_names = std::collections::HashSet::new();
            for (i, log) in ct.log.iter().enumerate() {
                let key = |field: &str| format!("discovery.ct.log[{i}].{field}");
                if log.name.is_empty() || !log_names.insert(log.name.as_str()) {
                    return Err(err(
                        key("name"),
                        "expected a non-empty, unique log name".into(),
                    ));
                }
                log.spec().map_err(|(field, e)| err(key(field), e))?;
            }
            if let Some(list) = ct.log_list.as_deref()
                && !list.starts_with("http://")
                && !list.starts_with("https://")
            {
                let bytes = std::fs::read(list)
                    .map_err(|e| err(key("log_list"), format!("cannot read {list}: {e}")))?;
                certkeeper_discovery::ct::parse_log_list(&bytes)
                    .map_err(|e| err(key("log_list"), format!("{list}: {e}")))?;
            }
        }
        let policy = &self.discovery.policy;
        for (key, file) in [
            (
                "discovery.policy.approved_issuers",
                &policy.approved_issuers,
            ),
            ("discovery.policy.trusted_roots", &policy.trusted_roots),
        ] {
            if let Some(file) = file {
                let bytes = std::fs::read(file)
                    .map_err(|e| err(key.into(), format!("cannot read {}: {e}", file.display())))?;
                certkeeper_model::inventory::parse::parse_certificates(&bytes)
                    .map_err(|e| err(key.into(), format!("{}: {e}", file.display())))?;
            }
        }
        Ok(())
    }
}

/// Parses a cron expression, explaining the expected shape on failure.
pub fn parse_schedule(expr: &str) -> Result<cron::Schedule, String> {
    cron::Schedule::from_str(expr).map_err(|e| {
        format!(
            "`{expr}` is not a cron schedule ({e}); expected `sec min hour day-of-month month day-of-week [year]`, e.g. `0 0 3 * * *`"
        )
    })
}

fn merge_secret(
    path: &Path,
    key: &str,
    inline: Option<Secret>,
    file: &Option<PathBuf>,
) -> Result<Option<Secret>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            path,
            Some(key.to_string()),
            format!("give either {key} or {key}_file, not both"),
        )),
        (None, Some(file)) => Secret::from_file(file).map(Some).map_err(|e| {
            ConfigError::new(
                path,
                Some(format!("{key}_file")),
                format!("cannot read {}: {e}", file.display()),
            )
        }),
        (inline, None) => Ok(inline),
    }
}

/// The environment variable that overrides a dotted key.
fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}__{}", key.replace('.', "__").to_uppercase())
}

/// The config crate appends its own "for key ..." context; we name the key ourselves.
fn strip_config_suffix(message: &str) -> String {
    match message.find(" for key `") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("certkeeper.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load(&path)
    }

    #[test]
    fn smallest_config_gets_defaults() {
        let c =
            load_str("[api]\nlisten = \"127.0.0.1:9999\"\n[store]\nurl = \"mem://\"\n").unwrap();
        assert_eq!(c.api.listen.port(), 9999);
        assert_eq!(c.inventory.expiring_days, 30);
        assert_eq!(c.scheduler.lease_seconds, 60);
        assert!(c.jobs.is_empty());
    }

    #[test]
    fn misspelt_key_is_named_with_the_file() {
        let err = load_str("[api]\nlistn = \"127.0.0.1:9999\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("certkeeper.toml"), "{msg}");
        assert!(msg.contains("listn"), "{msg}");
        assert!(msg.contains("listen"), "expected keys are listed: {msg}");
    }

    #[test]
    fn bad_value_names_key_and_expectation() {
        let err = load_str("[scheduler]\nlease_seconds = \"soon\"\n").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("scheduler.lease_seconds"), "{err}");
        let err = load_str(
            "[[job]]\ntype = \"import\"\nname = \"a\"\nschedule = \"every day\"\npaths = []\n",
        )
        .unwrap_err();
        assert_eq!(err.key.as_deref(), Some("job[0].schedule"), "{err}");
        assert!(err.to_string().contains("sec min hour"), "{err}");
    }

    #[test]
    fn connectors_and_certificates_are_checked_key_by_key() {
        let ca = "[[connector]]\ntype = \"internal_ca\"\nname = \"ca\"\npassphrase = \"hunter2\"\n";
        let cert =
            "[[certificate]]\nname = \"www\"\nconnector = \"ca\"\nidentifiers = [\"www.a.test\"]\n";
        load_str(&format!("{ca}{cert}")).unwrap();
        // A misspelt key in a type-tagged table is named.
        let err = load_str(&format!("{ca}passphrse = \"x\"\n")).unwrap_err();
        assert!(err.to_string().contains("passphrse"), "{err}");
        let err = load_str(&format!("{ca}{cert}key_typ = \"rsa2048\"\n")).unwrap_err();
        assert!(err.to_string().contains("key_typ"), "{err}");
        // An unknown connector type lists the known ones.
        let err = load_str("[[connector]]\ntype = \"venafi\"\nname = \"d\"\n").unwrap_err();
        assert!(err.to_string().contains("acme"), "{err}");
        let err = load_str(&format!(
            "{ca}[[certificate]]\nname = \"www\"\nconnector = \"nope\"\nidentifiers = [\"a.test\"]\n"
        ))
        .unwrap_err();
        assert_eq!(
            err.key.as_deref(),
            Some("certificate[0].connector"),
            "{err}"
        );
        let err = load_str(&format!("{ca}{cert}key_type = \"rsa1024\"\n")).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("certificate[0].key_type"), "{err}");
        let err = load_str(&format!(
            "{ca}[[certificate]]\nname = \"www\"\nconnector = \"ca\"\nidentifiers = [\"not a name\"]\n"
        ))
        .unwrap_err();
        assert_eq!(
            err.key.as_deref(),
            Some("certificate[0].identifiers"),
            "{err}"
        );
        let err = load_str(&format!(
            "{ca}{cert}[[certificate.deploy]]\nreload = [\"true\"]\n"
        ))
        .unwrap_err();
        assert!(
            err.key
                .as_deref()
                .is_some_and(|k| k.starts_with("certificate[0].deploy[0]")),
            "{err}"
        );
        // The CA needs its passphrase; the error never shows a secret.
        let err = load_str("[[connector]]\ntype = \"internal_ca\"\nname = \"ca\"\n").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("connector[0].passphrase"), "{err}");
        let err = load_str(&format!("{ca}{ca}")).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("connector[1].name"), "{err}");
        assert!(!err.to_string().contains("hunter2"));
        let err = load_str(
            "[[connector]]\ntype = \"acme\"\nname = \"le\"\ndirectory_url = \"https://a.test/dir\"\n\
             [connector.challenge]\ntype = \"dns01\"\nserver = \"127.0.0.1:53\"\nzones = [\"a.test\"]\n\
             tsig_key_name = \"k\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("tsig_secret"), "{err}");
    }

    #[test]
    fn discovery_sources_are_checked_key_by_key() {
        let source = "[[discovery.network]]\nname = \"n\"\nschedule = \"0 * * * * *\"\n";
        let err = load_str(&format!("{source}targets = [\"10.0.0.0/33\"]\n")).unwrap_err();
        assert_eq!(
            err.key.as_deref(),
            Some("discovery.network[0].targets"),
            "{err}"
        );
        let err = load_str(&format!("{source}targets = [\"a.test\"]\nport = [443]\n")).unwrap_err();
        assert!(err.to_string().contains("`port`"), "{err}");
        let err = load_str(&format!(
            "{source}targets = [\"a.test\"]\nstarttls = {{ \"25\" = \"smtps\" }}\n"
        ))
        .unwrap_err();
        assert_eq!(
            err.key.as_deref(),
            Some("discovery.network[0].starttls"),
            "{err}"
        );
        let err = load_str(
            "[[discovery.files]]\nname = \"f\"\nschedule = \"0 * * * * *\"\nroots = [\"/etc\"]\ninclude = [\"a[\"]\n",
        )
        .unwrap_err();
        assert_eq!(
            err.key.as_deref(),
            Some("discovery.files[0].include"),
            "{err}"
        );
        let err = load_str(&format!(
            "{source}targets = [\"a.test\"]\n[[job]]\ntype = \"command\"\nname = \"n\"\nschedule = \"0 * * * * *\"\ncommand = [\"true\"]\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("used twice"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let passwords = dir.path().join("p12");
        std::fs::write(&passwords, "one\ntwo\n").unwrap();
        let c = load_str(&format!(
            "[[discovery.files]]\nname = \"f\"\nschedule = \"0 * * * * *\"\nroots = [\"/etc\"]\npkcs12_passwords = [\"zero\"]\npkcs12_passwords_file = {passwords:?}\n"
        ))
        .unwrap();
        let got: Vec<&str> = c.discovery.files[0]
            .pkcs12_passwords
            .iter()
            .map(|p| p.expose())
            .collect();
        assert_eq!(got, ["zero", "one", "two"]);
    }

    #[test]
    fn bad_log_filter_is_refused() {
        let err = load_str("[log]\nlevel = \"loud=,=\"\n").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("log.level"), "{err}");
    }

    #[test]
    fn unknown_job_type_and_key_are_refused() {
        let err =
            load_str("[[job]]\ntype = \"teleport\"\nname = \"a\"\nschedule = \"0 * * * * *\"\n")
                .unwrap_err();
        assert!(err.to_string().contains("teleport"), "{err}");
        let err = load_str(
            "[[job]]\ntype = \"import\"\nname = \"a\"\nschedule = \"0 * * * * *\"\npaths = []\npath = \"x\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("`path`"), "{err}");
    }

    #[test]
    fn secret_from_file_and_never_both() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("tok");
        std::fs::write(&secret, "abc\n").unwrap();
        let c = load_str(&format!("[api]\ntoken_file = {:?}\n", secret)).unwrap();
        assert_eq!(c.api.token.unwrap().expose(), "abc");
        let err = load_str(&format!(
            "[api]\ntoken = \"x\"\ntoken_file = {:?}\n",
            secret
        ))
        .unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
        assert!(!err.to_string().contains("abc"));
    }

    #[test]
    fn example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/certkeeper.example.toml");
        let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!c.jobs.is_empty(), "the example shows jobs");
    }
}
