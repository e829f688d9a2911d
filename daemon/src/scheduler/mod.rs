//! The job scheduler: runs jobs on cron schedules, one run per due time across
//! every daemon sharing the store.
//!
//! Each loop turn reads the current config (so SIGHUP changes apply at the
//! next turn), claims every due run through the store's leases
//! (`certkeeper_store::jobs`), and runs claimed jobs as tasks that renew their lease
//! while they work. The loop also pings the systemd watchdog, so a wedged
//! scheduler gets the daemon restarted. Missed due times (the daemon was
//! down) are caught up with one run, not one per missed tick.
//!
//! Job bodies: the built-in [`REFRESH_JOB`] moves certificates between
//! `valid`, `expiring` and `expired`; `import` jobs read certificate files;
//! `command` jobs run a program; [`discovery`] runs the configured
//! discovery sources; report jobs write scheduled reports.

pub mod ca_import;
pub mod ct;
pub mod discovery;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, JobConfig};
use certkeeper_model::inventory::SightingKind;
use certkeeper_store::Store;

pub use crate::config::REFRESH_JOB;

/// What a job does.
#[derive(Debug, Clone)]
pub enum JobBody {
    /// Move certificates between valid/expiring/expired.
    Refresh {
        /// Days before `not_after` that count as expiring.
        expiring_days: u32,
    },
    /// Import certificate files.
    Import {
        /// The files.
        paths: Vec<std::path::PathBuf>,
        /// Days before `not_after` that count as expiring.
        expiring_days: u32,
    },
    /// Run a discovery source and record what it finds.
    Discovery {
        /// The source.
        source: Box<crate::scheduler::discovery::Source>,
        /// The installation-check policy.
        policy: Box<crate::config::PolicyConfig>,
        /// Where AIA and revocation fetches may connect
        /// (`security.restrict_outbound`).
        outbound: Option<Box<certkeeper_model::admin::ssrf::UrlPolicy>>,
        /// Days before `not_after` that count as expiring.
        expiring_days: u32,
    },
    /// Import the certificates a CA account holds.
    CaImport {
        /// The source.
        source: Box<crate::config::CaSource>,
        /// Days before `not_after` that count as expiring.
        expiring_days: u32,
    },
    /// Follow Certificate Transparency logs.
    Ct {
        /// The source.
        source: Box<crate::config::CtSource>,
        /// The policy (its approved issuers).
        policy: Box<crate::config::PolicyConfig>,
        /// Where log fetches may connect (`security.restrict_outbound`).
        outbound: Option<Box<certkeeper_model::admin::ssrf::UrlPolicy>>,
        /// Days before `not_after` that count as expiring.
        expiring_days: u32,
    },
    /// Write a report and announce it.
    Report(Box<crate::config::ReportJob>, String),
    /// Run a program.
    Command {
        /// Program and arguments.
        argv: Vec<String>,
        /// Kill it after this long.
        timeout: Duration,
    },
}

/// A job as the scheduler runs it.
#[derive(Debug, Clone)]
pub struct ScheduledJob {
    /// Unique name.
    pub name: String,
    /// Cron expression as configured.
    pub schedule_text: String,
    /// Parsed schedule.
    pub schedule: cron::Schedule,
    /// What it does.
    pub body: JobBody,
}

impl ScheduledJob {
    /// The next due time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> i64 {
        self.schedule
            .after(&after)
            .next()
            .map(|t| t.timestamp())
            // A schedule with no future time (a past year): park it far away.
            .unwrap_or(i64::MAX / 2)
    }
}

/// The jobs a config asks for, the built-in refresh job first.
pub fn jobs_from_config(config: &Config) -> Vec<ScheduledJob> {
    let expiring_days = config.inventory.expiring_days;
    let mut jobs = Vec::new();
    let mut push = |name: &str, schedule: &str, body: JobBody| {
        // Config::load has validated every schedule.
        if let Ok(parsed) = crate::config::parse_schedule(schedule) {
            jobs.push(ScheduledJob {
                name: name.to_string(),
                schedule_text: schedule.to_string(),
                schedule: parsed,
                body,
            });
        }
    };
    push(
        REFRESH_JOB,
        &config.inventory.refresh_schedule,
        JobBody::Refresh { expiring_days },
    );
    for job in &config.jobs {
        let body = match job {
            JobConfig::Import(j) => JobBody::Import {
                paths: j.paths.clone(),
                expiring_days,
            },
            JobConfig::Command(c) => JobBody::Command {
                argv: c.command.clone(),
                timeout: Duration::from_secs(c.timeout_seconds),
            },
            JobConfig::Report(r) => JobBody::Report(Box::new(r.clone()), config.api.base_url()),
        };
        push(job.name(), job.schedule(), body);
    }
    use crate::scheduler::discovery::Source;
    let sources = config
        .discovery
        .network
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.schedule.as_str(),
                Source::Network(s.clone()),
            )
        })
        .chain(config.discovery.files.iter().map(|s| {
            (
                s.name.as_str(),
                s.schedule.as_str(),
                Source::Files(s.clone()),
            )
        }));
    for source in &config.discovery.ca {
        let body = JobBody::CaImport {
            source: Box::new(source.clone()),
            expiring_days,
        };
        push(&source.name, &source.schedule, body);
    }
    if let Some(ct) = &config.discovery.ct {
        let body = JobBody::Ct {
            source: Box::new(ct.clone()),
            policy: Box::new(config.discovery.policy.clone()),
            outbound: config
                .security
                .restrict_outbound
                .then(|| Box::new(config.security.url_policy())),
            expiring_days,
        };
        push(&ct.name, ct.effective_schedule(), body);
    }
    for (name, schedule, source) in sources {
        let body = JobBody::Discovery {
            source: Box::new(source),
            policy: Box::new(config.discovery.policy.clone()),
            outbound: config
                .security
                .restrict_outbound
                .then(|| Box::new(config.security.url_policy())),
            expiring_days,
        };
        push(name, schedule, body);
    }
    jobs
}

/// Registers the config's jobs, so `certkeeper jobs` and `/metrics` list
/// them; the daemon does it before it reports ready, and the scheduler again
/// for every reloaded config.
pub async fn register_jobs(store: &Store, config: &Config) {
    register(store, &jobs_from_config(config)).await;
}

async fn register(store: &Store, jobs: &[ScheduledJob]) {
    for job in jobs {
        let first = job.next_after(Utc::now());
        if let Err(e) = store
            .register_job(&job.name, &job.schedule_text, first)
            .await
        {
            tracing::warn!(job = %job.name, error = %e, "cannot register job");
        }
    }
}

/// Runs the scheduler until `cancel` fires, then waits up to the configured
/// shutdown timeout for running jobs.
pub async fn run(
    store: Store,
    mut config: watch::Receiver<Arc<Config>>,
    connectors: Arc<crate::renewal::Registry>,
    holder: String,
    cancel: CancellationToken,
) {
    let mut running: JoinSet<String> = JoinSet::new();
    let mut shards: JoinSet<()> = JoinSet::new();
    let mut active: HashSet<String> = HashSet::new();
    let mut registered_for: Option<Arc<Config>> = None;
    let watchdog = crate::systemd::watchdog_interval();
    loop {
        let current = config.borrow_and_update().clone();
        let jobs = jobs_from_config(&current);
        if registered_for
            .as_ref()
            .is_none_or(|c| !Arc::ptr_eq(c, &current))
        {
            register(&store, &jobs).await;
            registered_for = Some(current.clone());
        }
        if watchdog.is_some() {
            crate::systemd::notify_watchdog();
        }

        let lease = current.scheduler.lease_seconds as i64;
        let mut sleep_for = Duration::from_secs(1);
        match store.jobs().await {
            Ok(states) => {
                // Leases are timed on the database's clock, which every
                // daemon sharing the store reads alike.
                let now = db_now(&store).await;
                for job in &jobs {
                    let Some(state) = states.iter().find(|s| s.name == job.name) else {
                        continue;
                    };
                    if state.next_due > now || active.contains(&job.name) {
                        continue;
                    }
                    match store
                        .claim_run(&job.name, state.next_due, &holder, now, lease)
                        .await
                    {
                        Ok(Some(run)) => {
                            if run.attempts > 1 {
                                tracing::warn!(job = %job.name, due = run.due, attempts = run.attempts,
                                    "resuming a job run whose previous holder stopped");
                            }
                            active.insert(job.name.clone());
                            running.spawn(run_one(
                                store.clone(),
                                connectors.clone(),
                                job.clone(),
                                run.due,
                                holder.clone(),
                                lease,
                                cancel.clone(),
                            ));
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(job = %job.name, error = %e, "cannot claim job run")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "scheduler cannot read jobs; retrying");
                sleep_for = Duration::from_secs(2);
            }
        }
        take_shards(&store, &current, &holder, lease, &cancel, &mut shards).await;

        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(sleep_for) => {}
            _ = config.changed() => {}
            Some(done) = running.join_next(), if !running.is_empty() => {
                if let Ok(name) = done { active.remove(&name); }
            }
            Some(_) = shards.join_next(), if !shards.is_empty() => {}
        }
        while let Some(done) = running.try_join_next() {
            if let Ok(name) = done {
                active.remove(&name);
            }
        }
    }

    // Shard scans stop at once and give their leases up to the others.
    while shards.join_next().await.is_some() {}
    let deadline = Duration::from_secs(config.borrow().scheduler.shutdown_timeout_seconds);
    if !running.is_empty() {
        tracing::info!(jobs = running.len(), "waiting for running jobs to finish");
        if tokio::time::timeout(deadline, async {
            while running.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::warn!(
                "jobs still running at the shutdown deadline; abandoning them (their leases will lapse and they resume on the next start)"
            );
            running.abort_all();
        }
    }
}

/// Claims pending discovery shards of the config's network jobs, by any
/// daemon's runs, while this daemon has fewer than `scheduler.shard_workers`
/// in hand, and scans each in a task of its own.
async fn take_shards(
    store: &Store,
    config: &Arc<Config>,
    holder: &str,
    lease: i64,
    cancel: &CancellationToken,
    shards: &mut JoinSet<()>,
) {
    let jobs: Vec<String> = config
        .discovery
        .network
        .iter()
        .map(|s| s.name.clone())
        .collect();
    while shards.len() < config.scheduler.shard_workers && !cancel.is_cancelled() {
        match store.claim_shard(&jobs, holder, lease).await {
            Ok(Some((shard, taken))) => {
                if shard.attempts > 1 {
                    tracing::warn!(job = %shard.job, shard = shard.index, attempts = shard.attempts,
                        "resuming a discovery shard whose previous holder stopped");
                }
                shards.spawn(scan_shard(
                    store.clone(),
                    config.clone(),
                    shard,
                    taken,
                    lease,
                    cancel.clone(),
                ));
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim a discovery shard");
                break;
            }
        }
    }
}

/// Scans a claimed shard, extending its lease while it works, and records
/// it done; on shutdown, or when the lease was taken over, it stops and
/// leaves the shard to whoever holds it next.
async fn scan_shard(
    store: Store,
    config: Arc<Config>,
    shard: certkeeper_store::shards::Shard,
    mut lease: certkeeper_store::leases::Lease,
    lease_seconds: i64,
    cancel: CancellationToken,
) {
    let Some(source) = config
        .discovery
        .network
        .iter()
        .find(|s| s.name == shard.job)
    else {
        let _ = store.release_lease(&lease).await;
        return;
    };
    let outbound = config
        .security
        .restrict_outbound
        .then(|| config.security.url_policy());
    let body = discovery::run_shard(
        &store,
        source,
        &shard.plan,
        &config.discovery.policy,
        outbound.as_ref(),
        config.inventory.expiring_days,
    );
    tokio::pin!(body);
    let renew_every = Duration::from_secs((lease_seconds / 3).max(1) as u64);
    let result = loop {
        tokio::select! {
            result = &mut body => break result,
            () = cancel.cancelled() => {
                tracing::info!(job = %shard.job, shard = shard.index, "discovery shard stopped by shutdown; another daemon or the next start scans it");
                if let Err(e) = store.release_lease(&lease).await {
                    tracing::warn!(job = %shard.job, shard = shard.index, error = %e, "cannot give up a discovery shard's lease; it lapses on its own");
                }
                return;
            }
            _ = tokio::time::sleep(renew_every) => {
                match store.extend_lease(&lease, lease_seconds).await {
                    Ok(Some(extended)) => lease = extended,
                    Ok(None) => {
                        tracing::warn!(job = %shard.job, shard = shard.index, "lost the lease of a discovery shard; leaving it to its new holder");
                        return;
                    }
                    Err(e) => tracing::warn!(job = %shard.job, shard = shard.index, error = %e, "cannot extend a discovery shard's lease"),
                }
            }
        }
    };
    let (tally, error) = match result {
        Ok(summary) => (
            certkeeper_store::shards::ShardTally {
                places: summary.places,
                added: summary.added,
                errors: summary.errors,
            },
            None,
        ),
        Err(e) => (certkeeper_store::shards::ShardTally::default(), Some(e)),
    };
    match store
        .finish_shard(&shard, &lease, tally, error.as_deref())
        .await
    {
        Ok(()) => {
            tracing::debug!(job = %shard.job, shard = shard.index, places = tally.places, "discovery shard done")
        }
        Err(certkeeper_store::StoreError::Fenced(what)) => tracing::warn!(
            job = %shard.job, shard = shard.index,
            "{what}: another daemon took it over while this one stalled; its result is refused (the new holder's stands)"
        ),
        Err(e) => {
            tracing::warn!(job = %shard.job, shard = shard.index, error = %e, "cannot record a discovery shard done; it is scanned again once its lease lapses")
        }
    }
}

/// The database's clock, or this node's when the store cannot be asked
/// (the next store call will say why).
async fn db_now(store: &Store) -> i64 {
    store
        .db_now()
        .await
        .unwrap_or_else(|_| Utc::now().timestamp())
}

/// Runs one claimed job, renewing its lease, and records the outcome.
///
/// A status refresh and a sharded discovery run stop at shutdown instead
/// of holding it up, between two of their transactions (a refresh batch,
/// a look at the shards): the run stays unfinished, its lease lapses, and
/// it resumes on the next start or another daemon.
async fn run_one(
    store: Store,
    connectors: Arc<crate::renewal::Registry>,
    job: ScheduledJob,
    due: i64,
    holder: String,
    lease: i64,
    cancel: CancellationToken,
) -> String {
    let renew_every = Duration::from_secs((lease / 3).max(1) as u64);
    let body = execute_run(&store, &connectors, &job, due, &cancel);
    tokio::pin!(body);
    let result = loop {
        tokio::select! {
            result = &mut body => break result,
            _ = tokio::time::sleep(renew_every) => {
                let expires = db_now(&store).await + lease;
                match store.renew_lease(&job.name, due, &holder, expires).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(job = %job.name, "lost the lease of a running job; stopping it");
                        return job.name.clone();
                    }
                    Err(e) => tracing::warn!(job = %job.name, error = %e, "cannot renew job lease"),
                }
            }
        }
    };
    let Some(result) = result else {
        tracing::info!(job = %job.name, "job run stopped by shutdown; it resumes on the next start");
        return job.name.clone();
    };
    let now = Utc::now();
    let next_due = job.next_after(now);
    let error = result.err().map(|e| e.to_string());
    match &error {
        None => tracing::info!(job = %job.name, due, "job run succeeded"),
        Some(e) => {
            tracing::warn!(job = %job.name, due, error = %e, "job run failed");
            job_failed_event(&store, &job.name, due, e, now).await;
        }
    }
    if let Err(e) = store
        .finish_run(
            &job.name,
            due,
            &holder,
            now.timestamp(),
            error.as_deref(),
            next_due,
        )
        .await
    {
        tracing::error!(job = %job.name, error = %e, "cannot record the end of a job run; it will run again when its lease lapses");
    }
    job.name.clone()
}

/// Longest job error an event carries, in characters.
const EVENT_ERROR_CHARS: usize = 500;

/// Records a `job_failed` event for the run due at `due`, before the run's
/// end is recorded: a daemon killed in between runs the job again, and the
/// event's id (job and due time) keeps that run from alerting twice.
async fn job_failed_event(store: &Store, job: &str, due: i64, error: &str, now: DateTime<Utc>) {
    let error = if error.chars().count() > EVENT_ERROR_CHARS {
        format!(
            "{}…",
            error.chars().take(EVENT_ERROR_CHARS).collect::<String>()
        )
    } else {
        error.to_owned()
    };
    let event = certkeeper_integrations::Event {
        id: format!("job_failed:{job}:{due}"),
        at: now,
        kind: certkeeper_integrations::EventKind::JobFailed {
            job: job.to_owned(),
            error,
        },
        certificate: None,
    };
    let stored = certkeeper_model::event::StoredEvent::from(&event);
    if let Err(e) = store.push_event(&stored).await {
        tracing::warn!(job = %job, error = %e, "cannot record the job_failed event (recorded already, or the store failed)");
    }
}

/// Why a job run failed; its text is recorded on the run for operators.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] certkeeper_store::StoreError),
    /// Files of an `import` job that could not be imported (the others were).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Import(Vec<certkeeper_store::import::ImportError>),
    /// A discovery source could not be scanned or recorded.
    #[error("{0}")]
    Discovery(String),
    /// The program of a `command` job failed.
    #[error("{0}")]
    Command(String),
    /// A scheduled report could not be written.
    #[error(transparent)]
    Report(#[from] crate::reports::ReportError),
}

/// The network source of a job the scheduler runs in shards.
fn sharded(job: &ScheduledJob) -> Option<&crate::config::NetworkSource> {
    match &job.body {
        JobBody::Discovery { source, .. } => match source.as_ref() {
            discovery::Source::Network(network) => Some(network),
            discovery::Source::Files(_) => None,
        },
        _ => None,
    }
}

/// The body of a claimed run: a network discovery source runs in shards
/// that every daemon's scheduler helps scan ([`discovery::coordinate`]),
/// everything else as [`execute`]. `None`: a refresh or a sharded run
/// stopped by shutdown before it finished.
async fn execute_run(
    store: &Store,
    connectors: &crate::renewal::Registry,
    job: &ScheduledJob,
    due: i64,
    cancel: &CancellationToken,
) -> Option<Result<(), JobError>> {
    if let JobBody::Refresh { expiring_days } = &job.body {
        let stop = || cancel.is_cancelled();
        return match store
            .refresh_statuses_until(Utc::now().timestamp(), *expiring_days, &stop)
            .await
        {
            Ok(None) => None,
            Ok(Some(moved)) => {
                if moved > 0 {
                    tracing::info!(moved, "certificate statuses refreshed");
                }
                Some(Ok(()))
            }
            Err(e) => Some(Err(e.into())),
        };
    }
    if let JobBody::Ct { .. } = &job.body {
        return Some(execute_ct(store, &job.body, cancel).await);
    }
    let Some(network) = sharded(job) else {
        return Some(execute(store, connectors, &job.body).await);
    };
    let summary = match discovery::coordinate(store, &job.name, due, network, cancel).await? {
        Ok(summary) => summary,
        Err(e) => return Some(Err(JobError::Discovery(e))),
    };
    tracing::info!(
        places = summary.places,
        added = summary.added,
        unreadable = summary.errors,
        "discovery run finished"
    );
    Some(Ok(()))
}

/// The body of a job, run in this process; CA import lists through the
/// connector of that name in `connectors`.
pub async fn execute(
    store: &Store,
    connectors: &crate::renewal::Registry,
    body: &JobBody,
) -> Result<(), JobError> {
    match body {
        JobBody::Refresh { expiring_days } => {
            let moved = store
                .refresh_statuses(Utc::now().timestamp(), *expiring_days)
                .await?;
            if moved > 0 {
                tracing::info!(moved, "certificate statuses refreshed");
            }
            Ok(())
        }
        JobBody::Import {
            paths,
            expiring_days,
        } => {
            let mut errors = Vec::new();
            for path in paths {
                match certkeeper_store::import::import_path(
                    store,
                    path,
                    SightingKind::File,
                    *expiring_days,
                )
                .await
                {
                    Ok(outcome) => {
                        tracing::info!(path = %path.display(), added = outcome.added.len(),
                        known = outcome.known.len(), "imported certificates")
                    }
                    Err(e) => errors.push(e),
                }
            }
            if errors.is_empty() {
                Ok(())
            } else {
                Err(JobError::Import(errors))
            }
        }
        JobBody::Discovery {
            source,
            policy,
            outbound,
            expiring_days,
        } => {
            let summary = crate::scheduler::discovery::run(
                store,
                source,
                policy,
                outbound.as_deref(),
                *expiring_days,
            )
            .await
            .map_err(JobError::Discovery)?;
            tracing::info!(
                places = summary.places,
                added = summary.added,
                unreadable = summary.errors,
                "discovery run finished"
            );
            Ok(())
        }
        JobBody::CaImport {
            source,
            expiring_days,
        } => {
            let connector = connectors
                .connectors
                .get(&source.connector)
                .map(|entry| entry.connector.clone())
                .ok_or_else(|| {
                    JobError::Discovery(format!("no connector named `{}`", source.connector))
                })?;
            let started = std::time::Instant::now();
            let summary = ca_import::run(store, source, &connector, *expiring_days)
                .await
                .map_err(JobError::Discovery)?;
            tracing::info!(
                connector = %source.connector,
                pages = summary.pages,
                listed = summary.listed,
                added = summary.added,
                unreadable = summary.unreadable,
                issued_not_deployed = summary.not_deployed,
                unmanaged_account = summary.unmanaged,
                seconds = started.elapsed().as_secs_f64(),
                "CA import finished"
            );
            Ok(())
        }
        JobBody::Ct { .. } => execute_ct(store, body, &CancellationToken::new()).await,
        JobBody::Command { argv, timeout } => {
            run_command(argv, *timeout).await.map_err(JobError::Command)
        }
        JobBody::Report(job, base_url) => {
            Ok(crate::reports::scheduled(store, job, base_url).await?)
        }
    }
}

/// Runs a CT job body until every log is at its head or `cancel` fires
/// (shutdown: the positions saved so far hold, the next run continues).
async fn execute_ct(
    store: &Store,
    body: &JobBody,
    cancel: &CancellationToken,
) -> Result<(), JobError> {
    let JobBody::Ct {
        source,
        policy,
        outbound,
        expiring_days,
    } = body
    else {
        return Ok(());
    };
    let started = std::time::Instant::now();
    let summary = ct::run(
        store,
        source,
        policy,
        outbound.as_deref(),
        *expiring_days,
        cancel,
    )
    .await
    .map_err(JobError::Discovery)?;
    if summary.entries > 0 || summary.failed > 0 {
        tracing::info!(
            logs = summary.logs,
            failed = summary.failed,
            entries = summary.entries,
            matches = summary.matches,
            added = summary.added,
            shadow_issuance = summary.shadow,
            unknown_issuance = summary.unknown,
            seconds = started.elapsed().as_secs_f64(),
            "CT monitoring run finished"
        );
    }
    // A log's failure is on the log (certkeeper ct status), and alerted
    // when it misbehaved; failing the job too would alert every run.
    Ok(())
}

async fn run_command(argv: &[String], timeout: Duration) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| {
            format!(
                "{program} did not finish within {}s and was killed",
                timeout.as_secs()
            )
        })?
        .map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: String = stderr
            .trim()
            .chars()
            .rev()
            .take(500)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Err(format!("{program} exited with {}: {tail}", output.status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(jobs: &str) -> Config {
        config_from(&format!(
            "[store]\nurl = \"mem://\"\n[scheduler]\nlease_seconds = 3\n{jobs}"
        ))
    }

    fn config_from(text: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path).unwrap()
    }

    #[tokio::test]
    async fn a_job_runs_on_its_schedule() {
        let store = Store::memory().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ticks");
        let config = config_with(&format!(
            "[[job]]\ntype = \"command\"\nname = \"tick\"\nschedule = \"* * * * * *\"\ncommand = [\"sh\", \"-c\", \"echo x >> {}\"]\n",
            out.display()
        ));
        let (_tx, rx) = watch::channel(Arc::new(config));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(
            store.clone(),
            rx,
            Arc::default(),
            "t".into(),
            cancel.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(3500)).await;
        cancel.cancel();
        task.await.unwrap();
        let ticks = std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .count();
        assert!(ticks >= 2, "an every-second job ran {ticks} times in 3.5 s");
        let state = store
            .jobs()
            .await
            .unwrap()
            .into_iter()
            .find(|j| j.name == "tick")
            .unwrap();
        assert_eq!(state.runs as usize, ticks);
        assert_eq!(state.failures, 0);
    }

    /// Listeners on 127.0.0.1 to 127.0.0.`n`, one port, that accept and
    /// never answer: each probe waits out its handshake timeout, so a shard
    /// of them takes seconds.
    fn tarpits(n: u8) -> (u16, Vec<std::net::TcpListener>) {
        'port: loop {
            let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = first.local_addr().unwrap().port();
            let mut all = vec![first];
            for i in 2..=n {
                match std::net::TcpListener::bind(("127.0.0.".to_owned() + &i.to_string(), port)) {
                    Ok(l) => all.push(l),
                    Err(_) => continue 'port,
                }
            }
            return (port, all);
        }
    }

    fn sharded_config(port: u16, workers: usize) -> Arc<Config> {
        Arc::new(config_from(&format!(
            "[store]\nurl = \"mem://\"\n[scheduler]\nlease_seconds = 3\nshard_workers = {workers}\n\
             [[discovery.network]]\nname = \"net\"\nschedule = \"0 0 0 1 1 * 2099\"\n\
             targets = [\"127.0.0.1-127.0.0.8\"]\nports = [{port}]\ntimeout_seconds = 1\nshard_size = 1\n"
        )))
    }

    async fn schedulers(
        store: &Store,
        configs: &[(&str, Arc<Config>)],
        cancel: &CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        for (holder, config) in configs {
            let (tx, rx) = watch::channel(config.clone());
            std::mem::forget(tx);
            tasks.push(tokio::spawn(run(
                store.clone(),
                rx,
                Arc::default(),
                (*holder).into(),
                cancel.clone(),
            )));
        }
        tasks
    }

    /// The shards of the network job's run as its coordinator leaves them.
    async fn finished_shards(store: &Store) -> Vec<certkeeper_store::shards::Shard> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let state = store.jobs().await.unwrap();
            if let Some(net) = state.iter().find(|j| j.name == "net")
                && net.runs > 0
            {
                assert_eq!(net.failures, 0, "{:?}", net.last_error);
                let run = &store.job_runs("net", 1).await.unwrap()[0];
                return store.shards("net", run.due).await.unwrap();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the run never finished"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    #[tokio::test]
    async fn two_schedulers_share_a_network_jobs_shards() {
        let store = Store::memory().await.unwrap();
        let (port, _tarpits) = tarpits(8);
        let config = sharded_config(port, 2);
        let cancel = CancellationToken::new();
        let tasks = schedulers(&store, &[("a", config.clone()), ("b", config)], &cancel).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(store.run_job_now("net", 0).await.unwrap());
        let shards = finished_shards(&store).await;
        cancel.cancel();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(shards.len(), 8, "one shard per address");
        assert!(
            shards.iter().all(|s| s.done && s.error.is_none()),
            "{shards:?}"
        );
        let by: HashSet<&str> = shards
            .iter()
            .filter_map(|s| s.finished_by.as_deref())
            .collect();
        assert_eq!(by, HashSet::from(["a", "b"]), "both daemons scanned");
        assert!(
            shards.iter().all(|s| s.attempts == 1),
            "no shard scanned twice"
        );
        let mut targets: Vec<&str> = shards.iter().map(|s| s.plan.targets[0].as_str()).collect();
        targets.sort();
        targets.dedup();
        assert_eq!(targets.len(), 8, "every address in one shard");
    }

    #[tokio::test]
    async fn a_stopped_schedulers_shards_are_finished_by_the_other() {
        let store = Store::memory().await.unwrap();
        let (port, _tarpits) = tarpits(8);
        let cancel_a = CancellationToken::new();
        let cancel_b = CancellationToken::new();
        // Either may hold the run; if b does, a takes the run over too.
        let b = schedulers(&store, &[("b", sharded_config(port, 2))], &cancel_b).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let a = schedulers(&store, &[("a", sharded_config(port, 1))], &cancel_a).await;
        assert!(store.run_job_now("net", 0).await.unwrap());
        // b stops while it holds shards (each takes about 2 s).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let runs = store.job_runs("net", 1).await.unwrap();
            if let Some(run) = runs.first()
                && store
                    .shards("net", run.due)
                    .await
                    .unwrap()
                    .iter()
                    .any(|s| s.holder.as_deref() == Some("b") && !s.done)
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "b never took a shard");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        cancel_b.cancel();
        for t in b {
            t.await.unwrap();
        }
        let shards = finished_shards(&store).await;
        cancel_a.cancel();
        for t in a {
            t.await.unwrap();
        }
        assert!(shards.iter().all(|s| s.done), "{shards:?}");
        let retaken = shards.iter().filter(|s| s.attempts == 2).count();
        assert!(
            retaken >= 1,
            "b's shards were given up and taken by a: {shards:?}"
        );
        assert!(
            shards
                .iter()
                .filter(|s| s.attempts == 2)
                .all(|s| s.finished_by.as_deref() == Some("a"))
        );
    }

    #[tokio::test]
    async fn two_schedulers_never_run_one_due_job_twice() {
        let store = Store::memory().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("runs");
        // Each run appends its due second; duplicates would show twice.
        let config = config_with(&format!(
            "[[job]]\ntype = \"command\"\nname = \"once\"\nschedule = \"* * * * * *\"\ncommand = [\"sh\", \"-c\", \"date +%s >> {}; sleep 0.3\"]\n",
            out.display()
        ));
        let config = Arc::new(config);
        let cancel = CancellationToken::new();
        let mut tasks = Vec::new();
        for holder in ["a", "b"] {
            let (tx, rx) = watch::channel(config.clone());
            std::mem::forget(tx);
            tasks.push(tokio::spawn(run(
                store.clone(),
                rx,
                Arc::default(),
                holder.into(),
                cancel.clone(),
            )));
        }
        tokio::time::sleep(Duration::from_secs(4)).await;
        cancel.cancel();
        for t in tasks {
            t.await.unwrap();
        }
        let mut dues: Vec<i64> = Vec::new();
        for name in ["once"] {
            for run in store.job_runs(name, 100).await.unwrap() {
                assert_eq!(run.attempts, 1, "no run was taken over");
                dues.push(run.due);
            }
        }
        let unique: HashSet<i64> = dues.iter().copied().collect();
        assert_eq!(unique.len(), dues.len());
        let lines = std::fs::read_to_string(&out).unwrap().lines().count();
        assert_eq!(lines, dues.len(), "each claimed run executed exactly once");
        assert!(lines >= 2);
    }
}
