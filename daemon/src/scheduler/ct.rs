//! Certificate Transparency monitoring as a job: `[discovery.ct]` follows
//! each configured or listed log with the CT engine
//! ([`certkeeper_discovery::ct`]) from the last verified entry to the log's
//! current head, and records the certificates for the watched domains.
//!
//! - Watched: the configured `domains` and, unless `managed_domains =
//!   false`, every DNS name of the domain rules, each with its subdomains.
//! - Each matching certificate (or precertificate, when the log holds no
//!   final certificate) enters the inventory with a `ct` sighting at
//!   `ct:LOG`, merged by fingerprint with every other sighting.
//! - Classified by serial and issuer (which a precertificate shares with
//!   its final certificate): issued through a connector, it is Certkeeper's
//!   own; else from an approved issuer (`[discovery.policy]
//!   approved_issuers`, or a CA the organisation's connectors and CA
//!   accounts use) and known to the inventory otherwise, it is accounted
//!   for; from an approved issuer but unknown, `unknown_issuance`; from any
//!   other issuer, `shadow_issuance`. Findings are recorded at
//!   `ct/SERIAL@ISSUER`, one place per certificate whichever logs hold it,
//!   so a precertificate and its final certificate in three logs raise one
//!   finding and one event.
//! - Positions: after each batch is recorded, the engine's position (tree
//!   head, next index, Merkle frontier) is saved (store `ct.rs`); a run
//!   after a restart or `kill -9` continues there, reading at most that
//!   batch again, which records nothing twice: the events have stable ids
//!   and are written before the findings that say they were raised.
//! - A log that misbehaves (a fork, a bad signature, entries that do not
//!   hash to its tree) is a `ct_log_misbehaved` event, once per distinct
//!   error; a log that cannot be reached is only an error in `certkeeper ct
//!   status`. One log's failure never stops the others.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use certkeeper_discovery::ct::{
    ClientOptions, CtError, Entry, EntryKind, FollowOptions, Follower, LogSpec, Position, Start,
    Watch,
};
use certkeeper_model::discovery::{Finding, FindingCode};
use certkeeper_model::inventory::{CertificateRecord, SightingKind};
use certkeeper_store::Store;
use certkeeper_store::ct::CtAdvance;
use sha2::Digest as _;
use tokio_util::sync::CancellationToken;

use crate::config::{CtSource, CtStart, PolicyConfig};

/// How long a fetched log list is used before it is fetched again.
const LOG_LIST_TTL: Duration = Duration::from_secs(3600);

/// What a run read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CtSummary {
    /// Logs followed.
    pub logs: u64,
    /// Of those, logs that failed.
    pub failed: u64,
    /// Entries read.
    pub entries: u64,
    /// Of those, certificates for the watched domains.
    pub matches: u64,
    /// Certificates new to the inventory.
    pub added: u64,
    /// New `shadow_issuance` findings.
    pub shadow: u64,
    /// New `unknown_issuance` findings.
    pub unknown: u64,
}

/// The sighting location of certificates logged in `log`.
pub fn location(log: &str) -> String {
    format!("ct:{log}")
}

/// What one run needs, built once.
struct Context<'a> {
    store: &'a Store,
    source: &'a CtSource,
    watch: Watch,
    approved: HashSet<String>,
    expiring_days: u32,
    options: FollowOptions,
    cancel: &'a CancellationToken,
}

/// Runs one pass of `source`: every log from where it stands to its head.
/// Errs only when nothing can be followed at all (no domains, no logs);
/// a failing log is recorded on the log and the others go on.
pub async fn run(
    store: &Store,
    source: &CtSource,
    policy: &PolicyConfig,
    outbound: Option<&certkeeper_model::admin::ssrf::UrlPolicy>,
    expiring_days: u32,
    cancel: &CancellationToken,
) -> Result<CtSummary, String> {
    let domains = watched_domains(store, source).await?;
    if domains.is_empty() {
        return Err(format!(
            "`{}` watches no domains: list some in [discovery.ct] domains, or add domain rules \
             (certkeeper domains add)",
            source.name
        ));
    }
    let mut client = ClientOptions {
        timeout: Duration::from_secs(source.timeout_seconds),
        ..ClientOptions::default()
    };
    if let Some(policy) = outbound {
        let policy = policy.clone();
        client.filter = Arc::new(move |ip| policy.check_ip(ip).is_ok());
    }
    let logs = logs(source, &client).await?;
    let mut approved: HashSet<String> = store
        .connector_issuers()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    if let Some(path) = &policy.approved_issuers {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let cas = certkeeper_model::inventory::parse::parse_certificates(&bytes)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        approved.extend(cas.into_iter().map(|ca| ca.subject));
    }
    let options = FollowOptions {
        batch_size: source.batch_size,
        parallel: source.parallel,
        start: match source.start {
            CtStart::Head => Start::Head,
            CtStart::Beginning => Start::Beginning,
        },
        client,
        ..FollowOptions::default()
    };
    let context = Context {
        store,
        source,
        watch: Watch::new(&domains),
        approved,
        expiring_days,
        options,
        cancel,
    };
    let mut summary = CtSummary::default();
    let outcomes =
        futures_util::future::join_all(logs.into_iter().map(|log| follow(&context, log))).await;
    for outcome in outcomes {
        summary.logs += 1;
        match outcome {
            Ok(read) => {
                summary.entries += read.entries;
                summary.matches += read.matches;
                summary.added += read.added;
                summary.shadow += read.shadow;
                summary.unknown += read.unknown;
            }
            Err(()) => summary.failed += 1,
        }
    }
    Ok(summary)
}

/// The configured domains and, unless turned off, the domain rules' DNS
/// names (not their IP addresses or networks).
async fn watched_domains(store: &Store, source: &CtSource) -> Result<Vec<String>, String> {
    let mut domains: Vec<String> = source.domains.clone();
    if source.managed_domains {
        let rules = store.domain_rules().await.map_err(|e| e.to_string())?;
        domains.extend(
            rules
                .into_iter()
                .map(|rule| rule.domain)
                .filter(|d| d.parse::<std::net::IpAddr>().is_err() && !d.contains('/')),
        );
    }
    for domain in &mut domains {
        *domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    }
    domains.sort();
    domains.dedup();
    Ok(domains)
}

/// The logs to follow: the configured ones, then those of the log list
/// that are not configured by name or key.
async fn logs(source: &CtSource, client: &ClientOptions) -> Result<Vec<LogSpec>, String> {
    let mut logs = Vec::new();
    for log in &source.log {
        // Config::load has validated each.
        logs.push(
            log.spec()
                .map_err(|(key, e)| format!("discovery.ct.log `{}`.{key}: {e}", log.name))?,
        );
    }
    if let Some(list) = source.log_list.as_deref() {
        for listed in log_list(list, client).await? {
            if !logs
                .iter()
                .any(|l| l.name == listed.name || l.id == listed.id)
            {
                logs.push(listed);
            }
        }
    }
    if logs.is_empty() {
        return Err(format!("`{}` has no logs to follow", source.name));
    }
    Ok(logs)
}

/// Logs of the list at `list` (a file, or a URL fetched at most hourly).
async fn log_list(list: &str, client: &ClientOptions) -> Result<Vec<LogSpec>, String> {
    type Cache = Mutex<Option<(String, Instant, Vec<LogSpec>)>>;
    static CACHE: Cache = Mutex::new(None);
    if !list.starts_with("http://") && !list.starts_with("https://") {
        let bytes = tokio::fs::read(list)
            .await
            .map_err(|e| format!("log list {list}: {e}"))?;
        return certkeeper_discovery::ct::parse_log_list(&bytes)
            .map_err(|e| format!("log list {list}: {e}"));
    }
    if let Ok(cache) = CACHE.lock()
        && let Some((url, at, logs)) = cache.as_ref()
        && url == list
        && at.elapsed() < LOG_LIST_TTL
    {
        return Ok(logs.clone());
    }
    let logs = certkeeper_discovery::ct::fetch_log_list(list, client)
        .await
        .map_err(|e| format!("log list {list}: {e}"))?;
    if let Ok(mut cache) = CACHE.lock() {
        *cache = Some((list.to_owned(), Instant::now(), logs.clone()));
    }
    Ok(logs)
}

/// What one log gave this run.
#[derive(Debug, Default)]
struct Read {
    entries: u64,
    matches: u64,
    added: u64,
    shadow: u64,
    unknown: u64,
}

/// Follows `log` to its head; its failure is recorded on the log (and
/// alerted when it misbehaved), not returned.
async fn follow(context: &Context<'_>, log: LogSpec) -> Result<Read, ()> {
    let name = log.name.clone();
    match follow_log(context, log).await {
        Ok(read) => {
            if read.entries > 0 {
                tracing::info!(log = %name, entries = read.entries, matches = read.matches,
                    added = read.added, shadow_issuance = read.shadow,
                    unknown_issuance = read.unknown, "CT log read");
            }
            Ok(read)
        }
        Err(Failure::Store(e)) => {
            tracing::warn!(log = %name, error = %e, "cannot record what the CT log holds");
            Err(())
        }
        Err(Failure::Log(e)) => {
            let now = chrono::Utc::now().timestamp();
            let text = e.to_string();
            let alert = e.is_alert();
            tracing::warn!(log = %name, error = %text, misbehaved = alert, "CT log failed");
            // The event first, with an id naming the error: a crash before
            // the error is recorded alerts no second time.
            if alert {
                misbehaved_event(context.store, &name, &text, now).await;
            }
            if let Err(e) = context.store.ct_log_failed(&name, &text, alert, now).await {
                tracing::warn!(log = %name, error = %e, "cannot record the CT log's error");
            }
            Err(())
        }
    }
}

enum Failure {
    Log(CtError),
    Store(String),
}

async fn follow_log(context: &Context<'_>, log: LogSpec) -> Result<Read, Failure> {
    let store = context.store;
    let name = log.name.clone();
    let saved = store
        .ct_log(&name)
        .await
        .map_err(|e| Failure::Store(e.to_string()))?
        .and_then(|state| state.position)
        .and_then(|position| serde_json::from_value::<Position>(position).ok());
    let fresh = saved.is_none();
    let mut follower = Follower::new(log, saved, context.options.clone()).map_err(Failure::Log)?;
    follower.update_head().await.map_err(Failure::Log)?;
    let place = location(&name);
    let mut read = Read::default();
    let mut saved_once = false;
    while !context.cancel.is_cancelled() {
        let Some(batch) = follower.next_batch().await.map_err(Failure::Log)? else {
            break;
        };
        let now = chrono::Utc::now().timestamp();
        let matched: Vec<&Entry> = batch
            .entries
            .iter()
            .filter(|entry| context.watch.matches_entry(entry))
            .collect();
        let recorded = record(context, &name, &place, &matched, now).await?;
        read.added += recorded.added;
        read.shadow += recorded.shadow;
        read.unknown += recorded.unknown;
        read.entries += batch.entries.len() as u64;
        read.matches += matched.len() as u64;
        save(
            store,
            &name,
            &batch.position,
            batch.entries.len(),
            matched.len(),
            now,
        )
        .await?;
        saved_once = true;
    }
    // A new log starting at its head has no batch to read yet: save the
    // head, so the next run reads from here and not from a later head.
    if fresh
        && !saved_once
        && let Some(position) = follower.position()
    {
        let now = chrono::Utc::now().timestamp();
        save(store, &name, position, 0, 0, now).await?;
    }
    Ok(read)
}

async fn save(
    store: &Store,
    log: &str,
    position: &Position,
    entries: usize,
    matches: usize,
    now: i64,
) -> Result<(), Failure> {
    let value = serde_json::to_value(position).map_err(|e| Failure::Store(e.to_string()))?;
    let advance = CtAdvance {
        position: &value,
        tree_size: position.tree_size,
        next_index: position.next_index,
        head_timestamp: i64::try_from(position.timestamp).unwrap_or(i64::MAX),
        entries: entries as u64,
        matches: matches as u64,
    };
    store
        .advance_ct_log(log, &advance, now)
        .await
        .map_err(|e| Failure::Store(e.to_string()))
}

/// The certificate an entry stands for: the final certificate, or the
/// precertificate when that is all the log holds.
fn entry_der(entry: &Entry) -> Option<&[u8]> {
    match &entry.kind {
        EntryKind::Certificate { der } => Some(der),
        EntryKind::Precertificate { precert_der, .. } => precert_der.as_deref(),
    }
}

/// Records a batch's matching entries and classifies each.
async fn record(
    context: &Context<'_>,
    log: &str,
    place: &str,
    entries: &[&Entry],
    now: i64,
) -> Result<Read, Failure> {
    let store = context.store;
    let mut read = Read::default();
    if entries.is_empty() {
        return Ok(read);
    }
    let mut records = Vec::with_capacity(entries.len());
    let mut indexes = Vec::with_capacity(entries.len());
    for entry in entries {
        let Some(der) = entry_der(entry) else {
            continue;
        };
        match certkeeper_model::inventory::parse::parse_der(der) {
            Ok(parsed) => {
                records.push(CertificateRecord::discovered(
                    parsed,
                    now,
                    context.expiring_days,
                ));
                indexes.push(entry.index);
            }
            Err(e) => {
                tracing::info!(log = %log, index = entry.index, error = %e,
                    "a CT entry for a watched domain is not a readable certificate");
            }
        }
    }
    let outcome = store
        .record_certificates_from(
            &records,
            SightingKind::Ct,
            place,
            Some(&context.source.name),
            now,
        )
        .await
        .map_err(|e| Failure::Store(e.to_string()))?;
    read.added = outcome.added.len() as u64;
    for (record, index) in records.iter().zip(indexes) {
        let cert = &record.cert;
        let known = store
            .ct_provenance(&cert.serial, &cert.issuer)
            .await
            .map_err(|e| Failure::Store(e.to_string()))?;
        if known.issued {
            continue;
        }
        let approved = context.approved.contains(&cert.issuer);
        let code = match (approved, known.known) {
            (true, true) => continue,
            (true, false) => FindingCode::UnknownIssuance,
            (false, _) => FindingCode::ShadowIssuance,
        };
        let issuer = cert.issuer_cn.as_deref().unwrap_or(&cert.issuer);
        let detail = format!(
            "logged in {log} at index {index}: {} from {issuer}{}",
            cert.san_dns.join(", "),
            if approved {
                ", an approved CA, but no CA account holds it and nobody has seen it deployed"
            } else {
                ", not an approved issuer"
            }
        );
        let finding = Finding {
            code,
            days: None,
            detail: Some(detail),
        };
        let at = finding_place(&cert.serial, &cert.issuer);
        if finding_event(store, &at, &finding, record, now).await {
            match code {
                FindingCode::UnknownIssuance => read.unknown += 1,
                _ => read.shadow += 1,
            }
        }
        store
            .record_findings_new(&at, &cert.fingerprint, std::slice::from_ref(&finding), now)
            .await
            .map_err(|e| Failure::Store(e.to_string()))?;
    }
    Ok(read)
}

/// Where a CT finding is recorded: one place per certificate (serial and
/// issuer), whichever logs hold it and whether as a precertificate or not.
fn finding_place(serial: &str, issuer: &str) -> String {
    let issuer = hex::encode(&sha2::Sha256::digest(issuer.as_bytes())[..8]);
    format!("ct/{serial}@{issuer}")
}

/// Writes the finding's `discovery_finding` event, with an id that is the
/// same for the same finding at the same place, so a batch read again after
/// a crash (or the final certificate after its precertificate) alerts no
/// second time. Answers whether the event is new.
async fn finding_event(
    store: &Store,
    place: &str,
    finding: &Finding,
    record: &CertificateRecord,
    now: i64,
) -> bool {
    let code = serde_json::to_value(finding.code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let event = certkeeper_integrations::Event {
        id: format!("finding:{place}:{code}"),
        at: chrono::DateTime::from_timestamp(now, 0).unwrap_or_default(),
        kind: certkeeper_integrations::EventKind::DiscoveryFinding {
            code,
            location: place.to_owned(),
            detail: finding.detail.clone(),
        },
        certificate: Some(record.summary(vec![place.to_owned()])),
    };
    let stored = certkeeper_model::event::StoredEvent::from(&event);
    match store.push_event_once(&stored).await {
        Ok(new) => new,
        Err(e) => {
            tracing::warn!(place = %place, error = %e, "cannot record the CT finding event");
            false
        }
    }
}

/// Writes a `ct_log_misbehaved` event for `log`, once per distinct error.
async fn misbehaved_event(store: &Store, log: &str, error: &str, now: i64) {
    let digest = hex::encode(&sha2::Sha256::digest(error.as_bytes())[..8]);
    let event = certkeeper_integrations::Event {
        id: format!("ct_log:{log}:{digest}"),
        at: chrono::DateTime::from_timestamp(now, 0).unwrap_or_default(),
        kind: certkeeper_integrations::EventKind::CtLogMisbehaved {
            log: log.to_owned(),
            error: error.to_owned(),
        },
        certificate: None,
    };
    let stored = certkeeper_model::event::StoredEvent::from(&event);
    if let Err(e) = store.push_event_once(&stored).await {
        tracing::warn!(log = %log, error = %e, "cannot record the ct_log_misbehaved event");
    }
}
