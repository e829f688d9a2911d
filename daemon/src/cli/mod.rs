//! The command line: `run`, `validate`, `certificates list|show`, `import`,
//! `jobs`.
//!
//! Commands other than `run` work whether or not the daemon is up. The
//! embedded store admits one process, so when the daemon answers on its API
//! address the CLI talks to it over HTTP (with the configured token);
//! otherwise it opens the store itself. Output is a table by default, or
//! `--format json|csv` for scripts.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};

mod admin;
mod alerts;
mod lifecycle;
mod output;
mod report;
mod requests;
mod scan;

use output::{print_certificate, print_certificates, print_job_runs, print_job_shards, print_jobs};

use crate::config::{self, Config, LogFormat};
use certkeeper_model::inventory::{CertificateRecord, SightingKind, Status};
use certkeeper_store::Store;
use certkeeper_store::ct::CtLogState;
use certkeeper_store::findings::CertificateDetail;
use certkeeper_store::import::ImportOutcome;
use certkeeper_store::inventory::{CertificateFilter, Page};
use certkeeper_store::jobs::{JobRun, JobState};
use certkeeper_store::shards::Shard;

/// Keeps every TLS and code-signing certificate of an organisation under control.
#[derive(Debug, Parser)]
#[command(name = "certkeeper", version, about, long_about = None)]
pub struct Cli {
    /// Config file.
    #[arg(long, short = 'c', global = true, env = "CERTKEEPER_CONFIG", default_value = config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (systemd Type=notify; SIGHUP reloads the config).
    Run,
    /// Check the config and exit: 0 when valid, 1 with the reason when not.
    Validate,
    /// Look at the certificate inventory.
    #[command(subcommand)]
    Certificates(CertificatesCommand),
    /// Import certificate files (PEM bundles or DER) into the inventory.
    Import {
        /// Files to import.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Find certificates on the network and on disk, now, without a config
    /// or a store (like nmap): one record per sighting, with findings.
    Scan(scan::ScanArgs),
    /// Where is this certificate deployed? Every place a certificate (by
    /// fingerprint) or a name's certificates (by DNS name) were seen.
    Where {
        /// A SHA-256 fingerprint (colons allowed) or a DNS name.
        what: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Scheduled jobs: schedule, next run, last result.
    Jobs {
        /// Instead, list the latest runs of this job (due time, state,
        /// attempts, lease holder, error).
        #[arg(long, value_name = "JOB", conflicts_with_all = ["run_now", "shards"])]
        runs: Option<String>,
        /// Instead, list the shards of this network job's latest run: what
        /// each scans, which daemon finished it, what it found.
        #[arg(long, value_name = "JOB", conflicts_with = "run_now")]
        shards: Option<String>,
        /// Instead, run this job now: the daemon runs it at once (through
        /// the usual lease); without a daemon, this command runs it.
        #[arg(long, value_name = "JOB")]
        run_now: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Managed certificates: what is in service, when it renews, what is in
    /// progress and the last error.
    Managed {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Renew managed certificates now (through the running daemon).
    Renew {
        /// Names of the managed certificates.
        names: Vec<String>,
        /// Renew every managed certificate.
        #[arg(long, conflicts_with = "names")]
        all: bool,
    },
    /// Adopt a certificate the inventory found (discovery, CA import) as a
    /// managed certificate that renews through a connector; nothing is
    /// issued now. Prints the `[[certificate]]` block that deploys it where
    /// it was seen, for the config file.
    Adopt(lifecycle::AdoptArgs),
    /// Revoke and replace: issue a new certificate with a fresh key, deploy
    /// and verify it everywhere the old one was seen, then revoke the old one.
    Replace(lifecycle::ReplaceArgs),
    /// Revoke a certificate Certkeeper issued that is no longer in service.
    Revoke(lifecycle::RevokeArgs),
    /// Retire a certificate Certkeeper does not manage (its server is gone):
    /// status `deactivated`, its alerts end. `--undo` brings it back.
    Deactivate(lifecycle::DeactivateArgs),
    /// Certificates discovery has stopped seeing: candidates to deactivate.
    Candidates {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Expiry alerts (list, acknowledge) and the notification delivery log.
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// Accounts: create the first primary admin, users, roles, org units.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// API tokens: create (shown once), list, revoke.
    #[command(subcommand)]
    Token(admin::TokenCommand),
    /// The audit log: verify its hash chain, export it (JSON lines or CEF).
    #[command(subcommand)]
    Audit(admin::AuditCommand),
    /// Request a certificate (decided by the domain policy), or enroll many
    /// from a CSV file.
    Request(requests::RequestArgs),
    /// Enrollment requests in your scope.
    Requests {
        /// Only `pending`, `approved` or `rejected`.
        #[arg(long)]
        state: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Approve a pending request (it is issued at once).
    Approve {
        /// The request's id.
        id: String,
    },
    /// Reject a pending request.
    Reject {
        /// The request's id.
        id: String,
        /// Why, for the requester.
        #[arg(long)]
        reason: String,
    },
    /// A report (inventory, expiring, units, readiness47) as CSV, JSON, HTML
    /// or PDF.
    Report(report::ReportArgs),
    /// Reseal every secret in the store (managed certificates' keys,
    /// connector accounts, the internal CA) under a new store key. Stop every
    /// daemon on the store first; afterwards give them all the new key.
    Rekey {
        /// The new key file (32 random bytes, base64: `openssl rand -base64 32`).
        #[arg(long, value_name = "FILE")]
        new_key: PathBuf,
    },
    /// Certificate Transparency monitoring: each log's position, lag and
    /// last error.
    #[command(subcommand)]
    Ct(CtCommand),
    /// Hand a pending request to another approver.
    Assign {
        /// The request's id.
        id: String,
        /// The approver's account.
        #[arg(long)]
        to: String,
    },
}

/// `certificates` subcommands.
#[derive(Debug, Subcommand)]
pub enum CertificatesCommand {
    /// List certificates, soonest to expire first.
    List {
        /// Only this status (valid, expiring, expired, revoked, ...).
        #[arg(long)]
        status: Option<Status>,
        /// Only certificates expiring within this time, e.g. 30d, 12h.
        #[arg(long)]
        expiring_within: Option<String>,
        /// Only issuers whose DN contains this text.
        #[arg(long)]
        issuer: Option<String>,
        /// Only this organisation unit.
        #[arg(long)]
        org_unit: Option<String>,
        /// Text search over names, issuer, serial and fingerprint.
        #[arg(long, short = 'q')]
        query: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Continue from a previous page's cursor.
        #[arg(long)]
        cursor: Option<String>,
        /// Fetch every page.
        #[arg(long)]
        all: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show one certificate and where it was seen.
    Show {
        /// SHA-256 fingerprint (colons allowed).
        fingerprint: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

/// `ct` subcommands.
#[derive(Debug, Subcommand)]
pub enum CtCommand {
    /// Each followed log: verified tree size, next entry, lag (entries not
    /// read yet), when it was last read, entries and matches read, and its
    /// last error.
    Status {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// JSON.
    Json,
    /// CSV (RFC 4180).
    Csv,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Scan(args) = cli.command {
        init_logging(&Config::default(), false);
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
        return match runtime.block_on(scan::run(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    if let Command::Validate = cli.command {
        return match Config::load(&cli.config) {
            Ok(_) => {
                println!("{}: configuration is valid", cli.config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let is_daemon = matches!(cli.command, Command::Run);
    init_logging(&config, is_daemon);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Run => crate::daemon::run(cli.config, config).await,
            Command::Rekey { new_key } => rekey(&config, &new_key).await,
            other => run_command(other, config).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if is_daemon {
                tracing::error!(error = format!("{e:#}"), "certkeeper failed");
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config, daemon: bool) {
    use tracing_subscriber::EnvFilter;
    let level = if daemon {
        config.log.level.as_str()
    } else {
        "warn"
    };
    // The store engine narrates every open and flush at INFO; keep it to
    // warnings unless the filter names it. SurrealKV's drop-time "no runtime
    // available" warning comes after `Store::close` has already flushed and
    // closed it, so its errors are all that matter from it.
    let mut default = level.to_string();
    if !level.contains("surrealdb") {
        default.push_str(",surrealdb=warn");
    }
    if !level.contains("surrealkv") {
        default.push_str(",surrealkv=error");
    }
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&default))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Under systemd the journal timestamps every line already.
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let _ = match (config.log.format, journal) {
        (LogFormat::Json, _) => builder.json().try_init(),
        (LogFormat::Text, true) => builder.without_time().try_init(),
        (LogFormat::Text, false) => builder.try_init(),
    };
}

/// Where CLI commands are answered: the running daemon, or the store directly.
enum Backend {
    Api(ApiClient),
    Local(Store, Box<Config>),
}

async fn backend(config: &Config) -> anyhow::Result<Backend> {
    let client = ApiClient::new(config)?;
    let probe = client.probe().await;
    if probe.is_ok() {
        return Ok(Backend::Api(client));
    }
    let store = Store::open(&config.store).await.with_context(|| {
        let why = probe.err().unwrap_or_default();
        format!(
            "cannot open the store at {} (the daemon's API at {}: {why})",
            config.store.url, client.base
        )
    })?;
    Ok(Backend::Local(store, Box::new(config.clone())))
}

/// `certkeeper rekey`: reseals the store under `new_key` with no daemon
/// running (a daemon would keep sealing with the old key).
async fn rekey(config: &Config, new_key: &std::path::Path) -> anyhow::Result<()> {
    if ApiClient::new(config)?.probe().await.is_ok() {
        bail!("the daemon is running: stop every daemon on this store before changing its key");
    }
    let old = certkeeper_store::vault::Vault::for_store(&config.store)
        .context("cannot open the current store key (store.key_file)")?;
    let new = certkeeper_store::vault::Vault::open_existing(new_key)
        .with_context(|| format!("cannot use {} as the new key", new_key.display()))?;
    let store = Store::open(&config.store)
        .await
        .with_context(|| format!("cannot open the store at {}", config.store.url))?;
    let result = store.rekey(&old, &new).await;
    store.close(Duration::from_secs(20)).await;
    let report = result.context("rekey stopped; run it again with the same keys to finish")?;
    println!(
        "resealed {} managed certificate keys and {} connector values ({} already under the new key); \
         now point [store] key_file (or the credential store-key) of every daemon at {}",
        report.managed_keys,
        report.connector_state,
        report.already,
        new_key.display()
    );
    Ok(())
}

async fn run_command(command: Command, config: Config) -> anyhow::Result<()> {
    let backend = backend(&config).await?;
    let result = answer(command, &config, &backend).await;
    if let Backend::Local(store, _) = backend {
        store.close(Duration::from_secs(20)).await;
    }
    result
}

async fn answer(command: Command, config: &Config, backend: &Backend) -> anyhow::Result<()> {
    match command {
        Command::Run | Command::Validate | Command::Scan(_) | Command::Rekey { .. } => {
            unreachable_command()
        }
        Command::Import { files, format } => {
            let mut total = ImportOutcome::default();
            let mut failed = 0;
            for file in &files {
                match backend.import(file, config.inventory.expiring_days).await {
                    Ok(outcome) => {
                        if format == Format::Table {
                            println!(
                                "{}: {} added, {} already known",
                                file.display(),
                                outcome.added.len(),
                                outcome.known.len()
                            );
                        }
                        total.added.extend(outcome.added);
                        total.known.extend(outcome.known);
                    }
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        failed += 1;
                    }
                }
            }
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&total)?),
                Format::Csv => {
                    println!("fingerprint,result");
                    for fp in &total.added {
                        println!("{fp},added");
                    }
                    for fp in &total.known {
                        println!("{fp},known");
                    }
                }
                Format::Table => {}
            }
            if failed > 0 {
                bail!("{failed} of {} files could not be imported", files.len());
            }
            Ok(())
        }
        Command::Where { what, format } => {
            let compact = what.replace(':', "").to_lowercase();
            let details = if compact.len() == 64 && compact.bytes().all(|b| b.is_ascii_hexdigit()) {
                backend.certificate(&compact).await?.into_iter().collect()
            } else {
                let name = what.trim_end_matches('.').to_lowercase();
                let mut filter = CertificateFilter {
                    q: Some(name.clone()),
                    limit: 500,
                    now: chrono::Utc::now().timestamp(),
                    ..Default::default()
                };
                let mut details = Vec::new();
                loop {
                    let page = backend.list(&filter).await?;
                    for cert in page
                        .items
                        .iter()
                        .filter(|c| certkeeper_model::hostname::covers(&c.cert, &name))
                    {
                        details.extend(backend.certificate(&cert.cert.fingerprint).await?);
                    }
                    match page.next_cursor {
                        Some(cursor) => filter.cursor = Some(cursor),
                        None => break,
                    }
                }
                details
            };
            if details.is_empty() {
                bail!("no certificate for `{what}` in the inventory");
            }
            output::print_where(&details, format)
        }
        Command::Managed { format } => lifecycle::managed(backend, format).await,
        Command::Ct(CtCommand::Status { format }) => {
            output::print_ct_logs(&backend.ct_logs().await?, format)
        }
        Command::Renew { names, all } => lifecycle::renew(backend, &names, all).await,
        Command::Adopt(args) => lifecycle::adopt(backend, &args).await,
        Command::Replace(args) => lifecycle::replace(backend, &args).await,
        Command::Revoke(args) => lifecycle::revoke(backend, &args).await,
        Command::Deactivate(args) => lifecycle::deactivate(backend, &args).await,
        Command::Candidates { format } => lifecycle::candidates(backend, format).await,
        Command::Alerts(command) => alerts::answer(command, backend).await,
        Command::Admin(command) => admin::admin(command, backend).await,
        Command::Token(command) => admin::token(command, backend).await,
        Command::Audit(command) => admin::audit(command, backend).await,
        Command::Request(args) => requests::request(args, backend).await,
        Command::Report(args) => report::report(args, backend).await,
        Command::Requests { state, format } => requests::list(backend, state, format).await,
        Command::Approve { id } => {
            requests::decide(backend, "approve", &id, serde_json::json!({})).await
        }
        Command::Reject { id, reason } => {
            requests::decide(
                backend,
                "reject",
                &id,
                serde_json::json!({ "reason": reason }),
            )
            .await
        }
        Command::Assign { id, to } => {
            requests::decide(backend, "assign", &id, serde_json::json!({ "to": to })).await
        }
        Command::Jobs {
            run_now: Some(name),
            ..
        } => {
            backend.run_job_now(&name).await?;
            println!("{name}: started");
            Ok(())
        }
        Command::Jobs {
            shards: Some(name),
            format,
            ..
        } => {
            let shards = backend.job_shards(&name).await?;
            print_job_shards(&shards, format)
        }
        Command::Jobs {
            runs: None, format, ..
        } => {
            let jobs = backend.jobs().await?;
            print_jobs(&jobs, format)
        }
        Command::Jobs {
            runs: Some(name),
            format,
            ..
        } => {
            let runs = backend.job_runs(&name).await?;
            print_job_runs(&runs, format)
        }
        Command::Certificates(CertificatesCommand::Show {
            fingerprint,
            format,
        }) => {
            let Some(detail) = backend.certificate(&fingerprint).await? else {
                bail!("no certificate with fingerprint {fingerprint}");
            };
            print_certificate(&detail, format)
        }
        Command::Certificates(CertificatesCommand::List {
            status,
            expiring_within,
            issuer,
            org_unit,
            query,
            limit,
            cursor,
            all,
            format,
        }) => {
            let expiring_within = expiring_within
                .map(|d| crate::api::parse_duration(&d))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--expiring-within: {e}"))?;
            if limit == 0 {
                bail!("--limit: expected a number above 0");
            }
            let mut filter = CertificateFilter {
                status,
                expiring_within,
                issuer,
                org_unit,
                q: query,
                org_units: None,
                contact: None,
                limit,
                cursor,
                now: chrono::Utc::now().timestamp(),
                ..Default::default()
            };
            let mut items = Vec::new();
            let next = loop {
                let page = backend.list(&filter).await?;
                items.extend(page.items);
                match page.next_cursor {
                    Some(c) if all => filter.cursor = Some(c),
                    other => break other,
                }
            };
            print_certificates(&items, format, next.as_deref())
        }
    }
}

fn unreachable_command() -> anyhow::Result<()> {
    bail!("this command is handled before the store is opened")
}

impl Backend {
    async fn import(
        &self,
        file: &std::path::Path,
        expiring_days: u32,
    ) -> anyhow::Result<ImportOutcome> {
        match self {
            Backend::Local(store, _) => Ok(certkeeper_store::import::import_path(
                store,
                file,
                SightingKind::Import,
                expiring_days,
            )
            .await?),
            Backend::Api(client) => {
                let bytes = std::fs::read(file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let location = std::path::absolute(file)
                    .unwrap_or_else(|_| file.to_path_buf())
                    .display()
                    .to_string();
                let response = client
                    .request(reqwest::Method::POST, "/api/v1/import")
                    .query(&[("location", location.as_str())])
                    .body(bytes)
                    .send()
                    .await?;
                client.json(response).await
            }
        }
    }

    async fn jobs(&self) -> anyhow::Result<Vec<JobState>> {
        match self {
            Backend::Local(store, config) => {
                // Show configured jobs even if the daemon never ran them yet.
                let mut jobs = store.jobs().await?;
                for job in crate::scheduler::jobs_from_config(config) {
                    if !jobs.iter().any(|j| j.name == job.name) {
                        jobs.push(JobState {
                            name: job.name.clone(),
                            schedule: job.schedule_text.clone(),
                            next_due: job.next_after(chrono::Utc::now()),
                            runs: 0,
                            failures: 0,
                            last_status: None,
                            last_error: None,
                            last_finished: None,
                        });
                    }
                }
                Ok(jobs)
            }
            Backend::Api(client) => {
                let response = client
                    .request(reqwest::Method::GET, "/api/v1/jobs")
                    .send()
                    .await?;
                client.json(response).await
            }
        }
    }

    async fn ct_logs(&self) -> anyhow::Result<Vec<CtLogState>> {
        match self {
            Backend::Local(store, _) => Ok(store.ct_logs().await?),
            Backend::Api(client) => {
                let response = client
                    .request(reqwest::Method::GET, "/api/v1/ct/logs")
                    .send()
                    .await?;
                client.json(response).await
            }
        }
    }

    async fn job_shards(&self, name: &str) -> anyhow::Result<Vec<Shard>> {
        match self {
            Backend::Local(store, _) => Ok(store.latest_shards(name).await?),
            Backend::Api(client) => {
                let path = format!(
                    "/api/v1/jobs/{}/shards",
                    url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
                );
                let response = client.request(reqwest::Method::GET, &path).send().await?;
                client.json(response).await
            }
        }
    }

    async fn job_runs(&self, name: &str) -> anyhow::Result<Vec<JobRun>> {
        match self {
            Backend::Local(store, _) => Ok(store.job_runs(name, 50).await?),
            Backend::Api(client) => {
                let path = format!(
                    "/api/v1/jobs/{}/runs",
                    url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
                );
                let response = client.request(reqwest::Method::GET, &path).send().await?;
                client.json(response).await
            }
        }
    }

    async fn certificate(&self, fingerprint: &str) -> anyhow::Result<Option<CertificateDetail>> {
        let fp = fingerprint.replace(':', "").to_lowercase();
        match self {
            Backend::Local(store, _) => Ok(store.certificate_detail(&fp).await?),
            Backend::Api(client) => {
                let response = client
                    .request(reqwest::Method::GET, &format!("/api/v1/certificates/{fp}"))
                    .send()
                    .await?;
                if response.status() == reqwest::StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                Ok(Some(client.json(response).await?))
            }
        }
    }

    async fn run_job_now(&self, name: &str) -> anyhow::Result<()> {
        match self {
            Backend::Local(store, config) => {
                // No daemon: run it here and now.
                let job = crate::scheduler::jobs_from_config(config)
                    .into_iter()
                    .find(|j| j.name == name)
                    .with_context(|| format!("no job named `{name}` in the config"))?;
                // Only a CA import needs the connectors (and so the store key).
                let connectors = match &job.body {
                    crate::scheduler::JobBody::CaImport { .. } => {
                        let vault = certkeeper_store::vault::Vault::for_store(&config.store)
                            .context("cannot open the store key (store.key_file)")?;
                        crate::renewal::Registry::build(config, store, &vault)
                            .await
                            .context("cannot set up the connectors")?
                    }
                    _ => crate::renewal::Registry::default(),
                };
                crate::scheduler::execute(store, &connectors, &job.body)
                    .await
                    .map_err(|e| anyhow::anyhow!("job {name} failed: {e}"))
            }
            Backend::Api(client) => {
                let path = format!(
                    "/api/v1/jobs/{}/run",
                    url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
                );
                let response = client.request(reqwest::Method::POST, &path).send().await?;
                client.json::<serde_json::Value>(response).await.map(|_| ())
            }
        }
    }

    async fn list(&self, filter: &CertificateFilter) -> anyhow::Result<Page> {
        match self {
            Backend::Local(store, _) => Ok(store.list_certificates(filter).await?),
            Backend::Api(client) => {
                let mut query: Vec<(&str, String)> = vec![("limit", filter.limit.to_string())];
                if let Some(s) = filter.status {
                    query.push(("status", s.to_string()));
                }
                if let Some(w) = filter.expiring_within {
                    query.push(("expiring_within", w.to_string()));
                }
                for (k, v) in [
                    ("issuer", &filter.issuer),
                    ("org_unit", &filter.org_unit),
                    ("q", &filter.q),
                    ("cursor", &filter.cursor),
                ] {
                    if let Some(v) = v {
                        query.push((k, v.clone()));
                    }
                }
                let response = client
                    .request(reqwest::Method::GET, "/api/v1/certificates")
                    .query(&query)
                    .send()
                    .await?;
                #[derive(serde::Deserialize)]
                struct WirePage {
                    items: Vec<CertificateRecord>,
                    next_cursor: Option<String>,
                }
                let page: WirePage = client.json(response).await?;
                Ok(Page {
                    items: page.items,
                    next_cursor: page.next_cursor,
                })
            }
        }
    }
}

/// A client of the daemon's own API.
struct ApiClient {
    base: String,
    http: reqwest::Client,
    token: Option<certkeeper_base::Secret>,
}

impl ApiClient {
    fn new(config: &Config) -> anyhow::Result<Self> {
        let mut addr = config.api.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(120));
        let scheme = if let Some(cert) = &config.api.tls_cert {
            // Trust the daemon's own certificate, whoever issued it.
            let pem = std::fs::read(cert)
                .with_context(|| format!("api.tls_cert: cannot read {}", cert.display()))?;
            for c in reqwest::Certificate::from_pem_bundle(&pem)? {
                builder = builder.add_root_certificate(c);
            }
            "https"
        } else {
            "http"
        };
        Ok(Self {
            base: format!("{scheme}://{addr}"),
            http: builder.build()?,
            // A user's token (`certkeeper token create`) wins over the
            // config's, so people act as themselves in the audit log.
            token: std::env::var("CERTKEEPER_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
                .map(certkeeper_base::Secret::new)
                .or_else(|| config.api.token.clone()),
        })
    }

    /// Whether the daemon answers; the error says why not (refused, TLS, ...).
    async fn probe(&self) -> Result<(), String> {
        let response = self
            .http
            .get(format!("{}/healthz", self.base))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .map_err(|e| {
                // reqwest's Display hides the cause (a TLS failure, a refusal).
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    text = format!("{text}: {s}");
                    source = s.source();
                }
                text
            })?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", response.status()))
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => builder.bearer_auth(t.expose()),
            None => builder,
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        response: reqwest::Response,
    ) -> anyhow::Result<T> {
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            bail!("the daemon answered {status}: {message}");
        }
        Ok(serde_json::from_slice(&body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
