//! Configured discovery sources as jobs: run a `[[discovery.network]]` or
//! `[[discovery.files]]` source and record what it finds into the inventory
//! (certificates merged by fingerprint, a sighting per place, the place's
//! findings replaced). The engine that reads networks and files is the
//! `certkeeper-discovery` crate; this module is the job around it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::{FileSource, NetworkSource, PolicyConfig};
use certkeeper_discovery::files::FileScanOptions;
use certkeeper_discovery::findings::{Policy, Trust};
use certkeeper_discovery::model::{Origin, ScanRecord, Starttls};
use certkeeper_discovery::probe::ProbeOptions;
use certkeeper_discovery::scan::{NetworkScan, Progress, scan_files, scan_network};
use certkeeper_discovery::targets::{self, Resolve};
use certkeeper_model::inventory::{CertificateRecord, SightingKind};
use certkeeper_store::Store;
use certkeeper_store::shards::ShardPlan;

/// A configured source.
#[derive(Debug, Clone)]
pub enum Source {
    /// Endpoints to probe.
    Network(NetworkSource),
    /// File trees to read.
    Files(FileSource),
}

/// Builds the installation-check policy from `[discovery.policy]`. AIA and
/// revocation fetches connect only to addresses `outbound` allows (when
/// `security.restrict_outbound` gives one).
pub fn policy(
    config: &PolicyConfig,
    expiring_days: u32,
    outbound: Option<&certkeeper_model::admin::ssrf::UrlPolicy>,
) -> Result<Policy, String> {
    let read = |path: &std::path::Path| -> Result<_, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        certkeeper_model::inventory::parse::parse_certificates(&bytes)
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    let mut trust = match &config.trusted_roots {
        Some(path) => Trust::with_private_roots(&read(path)?),
        None => Trust::system(),
    }
    .map_err(|e| format!("trust store: {e}"))?;
    if let Some(path) = &config.intermediates {
        trust = trust
            .with_intermediates(&read(path)?)
            .map_err(|e| format!("intermediates: {e}"))?;
    }
    let filter: certkeeper_discovery::fetch::AddressFilter = match outbound {
        Some(p) => {
            let p = p.clone();
            Arc::new(move |ip| p.check_ip(ip).is_ok())
        }
        None => certkeeper_discovery::fetch::allow_all(),
    };
    Ok(Policy {
        expiring_days,
        min_rsa_bits: config.min_rsa_bits,
        min_ec_bits: config.min_ec_bits,
        max_validity_days: config.max_validity_days,
        approved_issuers: config.approved_issuers.as_deref().map(read).transpose()?,
        trust,
        allow_wildcards: config.allow_wildcards,
        aia: config.fetch_aia.then(|| {
            Arc::new(certkeeper_discovery::aia::Fetcher::new(
                certkeeper_discovery::aia::AiaOptions {
                    address_filter: filter.clone(),
                    ..Default::default()
                },
            ))
        }),
        revocation: config.check_revocation.then(|| {
            Arc::new(certkeeper_discovery::revocation::Checker::new(
                certkeeper_discovery::revocation::RevocationOptions {
                    address_filter: filter.clone(),
                    ..Default::default()
                },
            ))
        }),
    })
}

/// Records a `discovery_finding` event for a finding new at `place`.
pub(crate) async fn finding_event(
    store: &Store,
    place: &str,
    code: certkeeper_discovery::FindingCode,
    finding: Option<&certkeeper_discovery::Finding>,
    leaf: &CertificateRecord,
    now: i64,
) {
    let code = serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let id = format!("finding:{place}:{code}:{}:{now}", leaf.cert.fingerprint);
    let event = certkeeper_integrations::Event {
        id,
        at: chrono::DateTime::from_timestamp(now, 0).unwrap_or_default(),
        kind: certkeeper_integrations::EventKind::DiscoveryFinding {
            code: code.clone(),
            location: place.to_owned(),
            detail: finding.and_then(|f| f.detail.clone()),
        },
        certificate: Some(leaf.summary(vec![place.to_owned()])),
    };
    let stored = certkeeper_model::event::StoredEvent::from(&event);
    if let Err(e) = store.push_event(&stored).await {
        tracing::warn!(place = %place, code = %code, error = %e, "cannot record the finding event");
    }
}

/// Records a `certificate_discovered` event for a leaf the inventory did
/// not hold before this sighting (its id is the fingerprint: once ever).
async fn discovered_event(store: &Store, place: &str, leaf: &CertificateRecord, now: i64) {
    let event = certkeeper_integrations::Event {
        id: format!("discovered:{}", leaf.cert.fingerprint),
        at: chrono::DateTime::from_timestamp(now, 0).unwrap_or_default(),
        kind: certkeeper_integrations::EventKind::CertificateDiscovered,
        certificate: Some(leaf.summary(vec![place.to_owned()])),
    };
    let stored = certkeeper_model::event::StoredEvent::from(&event);
    if let Err(e) = store.push_event(&stored).await {
        tracing::warn!(place = %place, error = %e, "cannot record the certificate_discovered event");
    }
}

/// The sighting location text of a place: `ip:port`, `ip:port (sni)`, or a path.
pub fn location(origin: &Origin) -> String {
    match origin {
        Origin::Network { ip, port, sni, .. } => {
            let addr = std::net::SocketAddr::new(*ip, *port);
            match sni {
                Some(name) => format!("{addr} ({name})"),
                None => addr.to_string(),
            }
        }
        Origin::File { path, .. } => path.clone(),
    }
}

/// What a run found.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunSummary {
    /// Places where certificates were found.
    pub places: u64,
    /// Certificates new to the inventory.
    pub added: u64,
    /// Places that answered but could not be read.
    pub errors: u64,
}

/// Runs a source in this process and records its results (the CLI's
/// `jobs run` without a daemon); an error means it could not run. The
/// scheduler runs network sources in shards instead ([`coordinate`]).
pub async fn run(
    store: &Store,
    source: &Source,
    policy_config: &PolicyConfig,
    outbound: Option<&certkeeper_model::admin::ssrf::UrlPolicy>,
    expiring_days: u32,
) -> Result<RunSummary, String> {
    let policy = Arc::new(policy(policy_config, expiring_days, outbound)?);
    let progress = Arc::new(Progress::default());
    let (tx, rx) = mpsc::channel::<ScanRecord>(256);
    let scan = match source {
        Source::Network(s) => {
            let mut scan = network_scan(s)?;
            scan.resolves =
                with_known_names(store, &scan.targets, &scan.ports, scan.resolves).await?;
            tokio::spawn(scan_network(scan, policy, progress, tx))
        }
        Source::Files(s) => {
            let options = FileScanOptions {
                roots: s.roots.clone(),
                include: s.include.clone(),
                exclude: s.exclude.clone(),
                pkcs12_passwords: s.pkcs12_passwords.clone(),
                max_file_bytes: s.max_file_bytes,
                follow_symlinks: s.follow_symlinks,
            };
            tokio::spawn(scan_files(options, policy, progress, tx))
        }
    };
    let (kind, source_name) = match source {
        Source::Network(s) => (SightingKind::Endpoint, s.name.as_str()),
        Source::Files(s) => (SightingKind::File, s.name.as_str()),
    };
    let summary = record(store, rx, kind, source_name, expiring_days).await?;
    scan.await
        .map_err(|e| format!("scan stopped: {e}"))?
        .map_err(|e| e.to_string())?;
    Ok(summary)
}

/// `resolves` plus the names the inventory has seen on the targets'
/// addresses and ports: a virtual host answers its own certificate only by
/// name, so each is tried as SNI too.
async fn with_known_names(
    store: &Store,
    targets: &[targets::Target],
    ports: &[u16],
    mut resolves: Vec<Resolve>,
) -> Result<Vec<Resolve>, String> {
    let known = store.endpoint_names().await.map_err(|e| e.to_string())?;
    for (addr, name) in known {
        let wanted = ports.contains(&addr.port())
            && targets.iter().any(|t| t.contains(addr.ip()))
            && !resolves
                .iter()
                .any(|r| r.address == addr.ip() && r.port == addr.port() && r.name == name);
        if wanted {
            resolves.push(Resolve {
                name,
                port: addr.port(),
                address: addr.ip(),
            });
        }
    }
    Ok(resolves)
}

/// Records what a scan sends until it ends.
async fn record(
    store: &Store,
    mut rx: mpsc::Receiver<ScanRecord>,
    kind: SightingKind,
    source_name: &str,
    expiring_days: u32,
) -> Result<RunSummary, String> {
    let mut summary = RunSummary::default();
    while let Some(record) = rx.recv().await {
        let place = location(&record.origin);
        if let Some(error) = &record.error {
            tracing::info!(place = %place, error = %error, "discovery could not read a place");
            summary.errors += 1;
            continue;
        }
        let Some(leaf) = record.chain.first() else {
            continue;
        };
        let now = chrono::Utc::now().timestamp();
        let records: Vec<CertificateRecord> = record
            .chain
            .iter()
            .map(|c| CertificateRecord::discovered(c.clone(), now, expiring_days))
            .collect();
        let outcome = store
            .record_certificates_from(&records, kind, &place, Some(source_name), now)
            .await
            .map_err(|e| e.to_string())?;
        if kind == SightingKind::Endpoint {
            // Renewed outside Certkeeper (an ACME client on the server):
            // the certificate it replaced stops alerting.
            let linked = store
                .supersede_at(&place, &records[0], now)
                .await
                .map_err(|e| e.to_string())?;
            for old in linked {
                tracing::info!(place = %place, old = %old, new = %leaf.fingerprint, "a newer certificate with the same names replaced one at this endpoint");
            }
        }
        let new = store
            .record_findings_new(&place, &leaf.fingerprint, &record.findings, now)
            .await
            .map_err(|e| e.to_string())?;
        if outcome.added.contains(&leaf.fingerprint) {
            discovered_event(store, &place, &records[0], now).await;
        }
        for code in new {
            let finding = record.findings.iter().find(|f| f.code == code);
            finding_event(store, &place, code, finding, &records[0], now).await;
        }
        summary.places += 1;
        summary.added += outcome.added.len() as u64;
    }
    Ok(summary)
}

/// Cuts a network source's run into shards: its targets in pieces of
/// `shard_size` addresses, each with the SNI overrides (configured, and
/// names the inventory has seen there) whose address it covers; overrides
/// outside every target go with the first shard.
pub async fn plan(store: &Store, source: &NetworkSource) -> Result<Vec<ShardPlan>, String> {
    let scan = network_scan(source)?;
    let resolves = with_known_names(store, &scan.targets, &scan.ports, scan.resolves).await?;
    let pieces = targets::split(&scan.targets, u128::from(source.shard_size.max(1)));
    let mut plans: Vec<ShardPlan> = pieces
        .iter()
        .map(|piece| ShardPlan {
            targets: piece.iter().map(ToString::to_string).collect(),
            resolves: Vec::new(),
        })
        .collect();
    if plans.is_empty() {
        plans.push(ShardPlan::default());
    }
    for resolve in resolves {
        let home = pieces
            .iter()
            .position(|piece| piece.iter().any(|t| t.contains(resolve.address)))
            .unwrap_or(0);
        plans[home].resolves.push(resolve.to_string());
    }
    Ok(plans)
}

/// Scans one shard of a network source and records what it finds.
pub async fn run_shard(
    store: &Store,
    source: &NetworkSource,
    shard: &ShardPlan,
    policy_config: &PolicyConfig,
    outbound: Option<&certkeeper_model::admin::ssrf::UrlPolicy>,
    expiring_days: u32,
) -> Result<RunSummary, String> {
    let policy = Arc::new(policy(policy_config, expiring_days, outbound)?);
    let mut scan = network_scan(source)?;
    scan.targets = targets::parse_targets(&shard.targets).map_err(|e| e.to_string())?;
    scan.resolves = shard
        .resolves
        .iter()
        .map(|r| Resolve::parse(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel::<ScanRecord>(256);
    let task = tokio::spawn(scan_network(
        scan,
        policy,
        Arc::new(Progress::default()),
        tx,
    ));
    let summary = record(
        store,
        rx,
        SightingKind::Endpoint,
        &source.name,
        expiring_days,
    )
    .await;
    if summary.is_err() {
        task.abort();
    }
    let summary = summary?;
    task.await
        .map_err(|e| format!("scan stopped: {e}"))?
        .map_err(|e| e.to_string())?;
    Ok(summary)
}

/// Runs the network job `job`'s run due at `due` as shards: writes the
/// run's plan (or finds the one an earlier holder of the run wrote) and
/// waits until every shard is done, by whichever daemons' schedulers took
/// them (this one's among them); then adds up what they found. The shards
/// stay in the store until the job's next run, for operators to see who
/// scanned what. A shard that could not run fails the run with its error.
/// `None` when `cancel` fired first (shutdown): the plan stays for whoever
/// resumes the run.
pub async fn coordinate(
    store: &Store,
    job: &str,
    due: i64,
    source: &NetworkSource,
    cancel: &tokio_util::sync::CancellationToken,
) -> Option<Result<RunSummary, String>> {
    let outcome = coordinate_until(store, job, due, source, cancel).await;
    match outcome {
        Ok(None) => None,
        Ok(Some(summary)) => Some(Ok(summary)),
        Err(e) => Some(Err(e)),
    }
}

async fn coordinate_until(
    store: &Store,
    job: &str,
    due: i64,
    source: &NetworkSource,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Option<RunSummary>, String> {
    let mut shards = store.shards(job, due).await.map_err(|e| e.to_string())?;
    if shards.is_empty() {
        // The previous run's shards were kept for operators until now.
        if let Err(e) = store.drop_shards_before(job, due).await {
            tracing::warn!(job = %job, error = %e, "cannot forget earlier runs' shards");
        }
        let plans = plan(store, source).await?;
        shards = store
            .plan_shards(job, due, &plans)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(job = %job, shards = shards.len(), "discovery run planned");
    }
    let mut wait = Duration::from_millis(100);
    while !shards.iter().all(|s| s.done) {
        tokio::select! {
            () = cancel.cancelled() => return Ok(None),
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(1));
        shards = store.shards(job, due).await.map_err(|e| e.to_string())?;
    }
    let mut summary = RunSummary::default();
    let mut errors = Vec::new();
    for shard in &shards {
        summary.places += shard.tally.places;
        summary.added += shard.tally.added;
        summary.errors += shard.tally.errors;
        if let Some(e) = &shard.error {
            errors.push(format!("shard {}: {e}", shard.index));
        }
    }
    let holders: std::collections::BTreeSet<&str> = shards
        .iter()
        .filter_map(|s| s.finished_by.as_deref())
        .collect();
    tracing::info!(job = %job, shards = shards.len(), daemons = holders.len(), "discovery shards done");
    if errors.is_empty() {
        Ok(Some(summary))
    } else {
        Err(errors.join("; "))
    }
}

fn network_scan(s: &NetworkSource) -> Result<NetworkScan, String> {
    let targets = targets::parse_targets(&s.targets).map_err(|e| e.to_string())?;
    let resolves = s
        .resolve
        .iter()
        .map(|r| Resolve::parse(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mut starttls = HashMap::new();
    for (port, proto) in &s.starttls {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("starttls: `{port}` is not a port"))?;
        starttls.insert(port, Starttls::parse(proto));
    }
    let timeout = Duration::from_secs(s.timeout_seconds.max(1));
    Ok(NetworkScan {
        targets,
        ports: s.ports.clone(),
        resolves,
        starttls,
        concurrency: s.concurrency,
        probe: ProbeOptions {
            connect_timeout: timeout,
            handshake_timeout: timeout * 2,
            ..ProbeOptions::default()
        },
        dns_timeout: timeout * 2,
        dns_servers: certkeeper_discovery::dns::parse_dns_servers(&s.dns_servers)
            .map_err(|e| format!("dns_servers: {e}"))?,
    })
}
