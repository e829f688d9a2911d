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
async fn finding_event(
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

/// Runs a source and records its results; an error means it could not run.
pub async fn run(
    store: &Store,
    source: &Source,
    policy_config: &PolicyConfig,
    outbound: Option<&certkeeper_model::admin::ssrf::UrlPolicy>,
    expiring_days: u32,
) -> Result<RunSummary, String> {
    let policy = Arc::new(policy(policy_config, expiring_days, outbound)?);
    let progress = Arc::new(Progress::default());
    let (tx, mut rx) = mpsc::channel::<ScanRecord>(256);
    let scan = match source {
        Source::Network(s) => {
            let mut scan = network_scan(s)?;
            // Names the inventory has seen on these addresses are tried as SNI
            // too: a virtual host answers its own certificate only by name.
            let known = store.endpoint_names().await.map_err(|e| e.to_string())?;
            for (addr, name) in known {
                let wanted = scan.ports.contains(&addr.port())
                    && scan.targets.iter().any(|t| t.contains(addr.ip()))
                    && !scan
                        .resolves
                        .iter()
                        .any(|r| r.address == addr.ip() && r.port == addr.port() && r.name == name);
                if wanted {
                    scan.resolves.push(Resolve {
                        name,
                        port: addr.port(),
                        address: addr.ip(),
                    });
                }
            }
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
    scan.await
        .map_err(|e| format!("scan stopped: {e}"))?
        .map_err(|e| e.to_string())?;
    Ok(summary)
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
