//! The scanner: expands targets into endpoints, probes them concurrently,
//! reads file trees, and runs the installation check on every chain found.
//!
//! Results stream out through a channel as they come, so a scan of a large
//! estate holds only what is in flight. Closed ports and silent hosts yield
//! nothing (they are the common case and cost one connect timeout); an open
//! port that fails the handshake yields a record with its error, so hostile
//! or broken peers are reported rather than lost. Concurrency is bounded by a
//! semaphore, and each probe by the probe's own timeouts and byte caps.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::dns::Resolver;
use super::files::{self, FileScanOptions};
use super::findings::{self, Context, Policy};
use super::model::{Finding, FindingCode, Origin, ScanRecord, Starttls};
use super::probe::{ProbeOptions, Prober};
use super::targets::{Endpoint, Resolve, Target};
use certkeeper_model::inventory::parse;

/// A network scan.
#[derive(Debug, Clone)]
pub struct NetworkScan {
    /// What to scan.
    pub targets: Vec<Target>,
    /// Ports to try on every address.
    pub ports: Vec<u16>,
    /// Name/port/address overrides, scanned as given, without DNS.
    pub resolves: Vec<Resolve>,
    /// STARTTLS protocol per port, over the well-known defaults.
    pub starttls: HashMap<u16, Option<Starttls>>,
    /// Probes in flight at once.
    pub concurrency: usize,
    /// Timeouts and caps of each probe.
    pub probe: ProbeOptions,
    /// How long a name may take to resolve.
    pub dns_timeout: Duration,
    /// Name servers to ask; empty = the system's (/etc/resolv.conf).
    pub dns_servers: Vec<SocketAddr>,
}

/// Counters a progress display reads while the scan runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Endpoints to probe (grows as names resolve).
    pub total: AtomicU64,
    /// Endpoints probed.
    pub done: AtomicU64,
    /// Certificates found.
    pub found: AtomicU64,
}

/// A scan that could not run.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The TLS library could not be set up.
    #[error("cannot set up TLS probing: {0}")]
    Probe(String),
    /// The DNS resolver could not be set up.
    #[error("DNS: {0}")]
    Dns(String),
    /// A file-scan option was invalid.
    #[error("{0}")]
    Files(String),
}

impl NetworkScan {
    /// The STARTTLS protocol to speak on `port`.
    fn starttls_for(&self, port: u16) -> Option<Starttls> {
        match self.starttls.get(&port) {
            Some(choice) => *choice,
            None => Starttls::for_port(port),
        }
    }
}

/// Runs a network scan, sending one record per endpoint that answered.
pub async fn scan_network(
    scan: NetworkScan,
    policy: Arc<Policy>,
    progress: Arc<Progress>,
    out: mpsc::Sender<ScanRecord>,
) -> Result<(), ScanError> {
    let prober = Arc::new(Prober::new(scan.probe).map_err(|e| ScanError::Probe(e.to_string()))?);
    let resolver = if scan.dns_servers.is_empty() {
        Resolver::system(scan.dns_timeout)
    } else {
        Resolver::with_servers(&scan.dns_servers, scan.dns_timeout)
    }
    .map_err(|e| ScanError::Dns(e.to_string()))?;
    let scan = Arc::new(scan);
    let limit = Arc::new(Semaphore::new(scan.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let ports = scan.ports.len() as u64;

    let planned: u64 = scan
        .targets
        .iter()
        .filter(|t| !matches!(t, Target::Name(_)))
        .map(|t| u64::try_from(t.size()).unwrap_or(u64::MAX))
        .fold(0u64, |a, b| a.saturating_add(b.saturating_mul(ports)))
        .saturating_add(scan.resolves.len() as u64);
    progress.total.store(planned, Ordering::Relaxed);

    for resolve in &scan.resolves {
        let endpoint = Endpoint {
            addr: SocketAddr::new(resolve.address, resolve.port),
            sni: Some(resolve.name.clone()),
        };
        spawn_probe(
            &mut tasks, &limit, &prober, &scan, &policy, &progress, &out, endpoint,
        )
        .await;
    }
    for target in &scan.targets {
        match target {
            Target::Name(name) => {
                // Names resolve in their own task, so a slow resolver does not
                // hold up the addresses behind it.
                let (resolver, scan, policy, progress, out, prober, limit) = (
                    resolver.clone(),
                    scan.clone(),
                    policy.clone(),
                    progress.clone(),
                    out.clone(),
                    prober.clone(),
                    limit.clone(),
                );
                let name = name.clone();
                tasks.spawn(async move {
                    scan_name(name, resolver, scan, policy, progress, out, prober, limit).await;
                });
            }
            _ => {
                for ip in target.addresses() {
                    for &port in &scan.ports {
                        let endpoint = Endpoint {
                            addr: SocketAddr::new(ip, port),
                            sni: None,
                        };
                        spawn_probe(
                            &mut tasks, &limit, &prober, &scan, &policy, &progress, &out, endpoint,
                        )
                        .await;
                    }
                    // Reap finished probes as we go so the set stays small.
                    while tasks.try_join_next().is_some() {}
                }
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn spawn_probe(
    tasks: &mut JoinSet<()>,
    limit: &Arc<Semaphore>,
    prober: &Arc<Prober>,
    scan: &Arc<NetworkScan>,
    policy: &Arc<Policy>,
    progress: &Arc<Progress>,
    out: &mpsc::Sender<ScanRecord>,
    endpoint: Endpoint,
) {
    let Ok(permit) = limit.clone().acquire_owned().await else {
        return;
    };
    let (prober, policy, progress, out) = (
        prober.clone(),
        policy.clone(),
        progress.clone(),
        out.clone(),
    );
    let starttls = scan.starttls_for(endpoint.addr.port());
    tasks.spawn(async move {
        let record = probe_endpoint(&prober, &policy, &endpoint, starttls).await;
        drop(permit);
        progress.done.fetch_add(1, Ordering::Relaxed);
        if let Some(record) = record {
            progress
                .found
                .fetch_add(record.chain.len() as u64, Ordering::Relaxed);
            let _ = out.send(record).await;
        }
    });
}

/// Probes one endpoint; `None` for a closed port or silent host.
pub async fn probe_endpoint(
    prober: &Prober,
    policy: &Policy,
    endpoint: &Endpoint,
    starttls: Option<Starttls>,
) -> Option<ScanRecord> {
    let sni = endpoint.sni.as_deref();
    let origin = |tls_version: Option<String>, cipher: Option<String>| Origin::Network {
        ip: endpoint.addr.ip(),
        port: endpoint.addr.port(),
        sni: endpoint.sni.clone(),
        starttls,
        tls_version,
        cipher,
    };
    match prober.probe(endpoint.addr, sni, starttls).await {
        Ok(probed) => {
            let mut chain = Vec::with_capacity(probed.chain_der.len());
            for der in &probed.chain_der {
                match parse::parse_der(der) {
                    Ok(cert) => chain.push(cert),
                    Err(e) => {
                        return Some(ScanRecord {
                            origin: origin(Some(probed.tls_version), Some(probed.cipher)),
                            chain: Vec::new(),
                            findings: Vec::new(),
                            error: Some(format!("the server sent an unreadable certificate: {e}")),
                        });
                    }
                }
            }
            let context = Context {
                now: chrono::Utc::now().timestamp(),
                name: sni,
                tls_version: Some(&probed.tls_version),
                network: true,
                presented: Some(&probed.chain),
                fetched: &[],
            };
            let findings = check_online(&chain, &context, policy).await;
            Some(ScanRecord {
                origin: origin(Some(probed.tls_version.clone()), Some(probed.cipher)),
                chain,
                findings,
                error: None,
            })
        }
        Err(e) if e.is_closed() => None,
        Err(e) => Some(ScanRecord {
            origin: origin(None, None),
            chain: Vec::new(),
            findings: Vec::new(),
            error: Some(e.to_string()),
        }),
    }
}

/// [`findings::check`], then what needs the network, as the policy asks:
/// for an `untrusted` network chain, the leaf's issuer fetched from its AIA
/// caIssuers URL and the chain checked again with it
/// ([`Policy::aia`]); the leaf's revocation status ([`Policy::revocation`]).
/// Failures of either are logged (a warning naming the certificate) and add
/// no finding: a CA's server being down says nothing about a certificate.
/// The findings stay sorted by code, each at most once.
pub async fn check_online(
    chain: &[certkeeper_model::inventory::ParsedCertificate],
    context: &Context<'_>,
    policy: &Policy,
) -> Vec<Finding> {
    let mut findings = findings::check(chain, context, policy);
    let Some(leaf) = chain.first() else {
        return findings;
    };
    let mut fetched = Vec::new();
    if let Some(aia) = &policy.aia
        && context.network
        && findings.iter().any(|f| f.code == FindingCode::Untrusted)
    {
        match aia.issuers(leaf).await {
            Ok(issuers) if !issuers.is_empty() => {
                fetched = issuers;
                let again = Context {
                    fetched: &fetched,
                    ..*context
                };
                findings = findings::check(chain, &again, policy);
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(cert = %leaf.fingerprint, error = %error, "cannot fetch the leaf's issuer from its AIA URL");
            }
        }
    }
    if let Some(checker) = &policy.revocation
        && !leaf.self_signed
    {
        let issuer = chain
            .iter()
            .skip(1)
            .chain(policy.trust.intermediates())
            .chain(&fetched)
            .find(|ca| findings::issued_by(leaf, ca));
        match issuer {
            Some(issuer) => match checker.check(chain, Some(issuer)).await {
                Ok(Some(revoked)) => {
                    findings.push(revoked);
                    findings.sort_by_key(|f| f.code);
                    findings.dedup_by_key(|f| f.code);
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(cert = %leaf.fingerprint, error = %error, "revocation status unknown");
                }
            },
            None => {
                tracing::debug!(cert = %leaf.fingerprint, "revocation not checked: the issuer is not at hand");
            }
        }
    }
    findings
}

#[allow(clippy::too_many_arguments)]
async fn scan_name(
    name: String,
    resolver: Resolver,
    scan: Arc<NetworkScan>,
    policy: Arc<Policy>,
    progress: Arc<Progress>,
    out: mpsc::Sender<ScanRecord>,
    prober: Arc<Prober>,
    limit: Arc<Semaphore>,
) {
    let addresses: Vec<IpAddr> = match resolver.lookup(&name).await {
        Ok(resolution) => resolution.addresses,
        Err(e) => {
            tracing::warn!(%name, error = %e, "cannot resolve");
            return;
        }
    };
    progress.total.fetch_add(
        (addresses.len() * scan.ports.len()) as u64,
        Ordering::Relaxed,
    );
    let mut tasks = JoinSet::new();
    for ip in &addresses {
        for &port in &scan.ports {
            let endpoint = Endpoint {
                addr: SocketAddr::new(*ip, port),
                sni: Some(name.clone()),
            };
            let Ok(permit) = limit.clone().acquire_owned().await else {
                return;
            };
            let (prober, policy, starttls) =
                (prober.clone(), policy.clone(), scan.starttls_for(port));
            tasks.spawn(async move {
                let record = probe_endpoint(&prober, &policy, &endpoint, starttls).await;
                drop(permit);
                record
            });
        }
    }
    let mut secured = false;
    while let Some(done) = tasks.join_next().await {
        progress.done.fetch_add(1, Ordering::Relaxed);
        if let Ok(Some(record)) = done {
            secured |= !record.chain.is_empty();
            progress
                .found
                .fetch_add(record.chain.len() as u64, Ordering::Relaxed);
            let _ = out.send(record).await;
        }
    }
    if !secured {
        // "Are all servers that should be protected secured?": a managed
        // name that serves plain HTTP and no TLS is flagged.
        for ip in addresses {
            if answers_plain_http(SocketAddr::new(ip, 80), &name, scan.probe.connect_timeout).await
            {
                let _ = out
                    .send(ScanRecord {
                        origin: Origin::Network {
                            ip,
                            port: 80,
                            sni: Some(name.clone()),
                            starttls: None,
                            tls_version: None,
                            cipher: None,
                        },
                        chain: Vec::new(),
                        findings: vec![Finding {
                            detail: Some("answers plain HTTP on port 80 and serves no TLS".into()),
                            ..Finding::new(FindingCode::Unprotected)
                        }],
                        error: None,
                    })
                    .await;
            }
        }
    }
}

/// Whether `addr` answers an HTTP request in plain text.
async fn answers_plain_http(addr: SocketAddr, name: &str, timeout: Duration) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("HEAD / HTTP/1.0\r\nHost: {name}\r\nUser-Agent: certkeeper\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 5];
        stream.read_exact(&mut head).await.ok()?;
        Some(&head == b"HTTP/")
    };
    matches!(
        tokio::time::timeout(timeout * 2, attempt).await,
        Ok(Some(true))
    )
}

/// Reads file trees, sending one record per certificate file (and per
/// malformed one, with its error). The walk runs on one blocking thread;
/// reading, parsing and the installation check, most of the work, on one
/// worker per core, so records come out in no particular order.
pub async fn scan_files(
    options: FileScanOptions,
    policy: Arc<Policy>,
    progress: Arc<Progress>,
    out: mpsc::Sender<ScanRecord>,
) -> Result<(), ScanError> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let candidates = files::walk(&options).map_err(|e| ScanError::Files(e.to_string()))?;
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (to_visit, visits) = std::sync::mpsc::sync_channel::<files::Candidate>(1024);
        let visits = std::sync::Mutex::new(visits);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let (visits, policy, progress, out, handle, options) =
                    (&visits, &policy, &progress, &out, &handle, &options);
                scope.spawn(move || {
                    // Once the consumer is gone, keep draining (without
                    // reading) so the walker never blocks on a full queue.
                    let mut closed = false;
                    loop {
                        let next = match visits.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => break,
                        };
                        let Ok(candidate) = next else { break };
                        if closed {
                            continue;
                        }
                        let record = match files::visit(&candidate, options) {
                            None => None,
                            Some(Ok(hit)) => Some(file_record(hit, policy, progress)),
                            Some(Err(e)) => file_error_record(&e),
                        };
                        progress.done.fetch_add(1, Ordering::Relaxed);
                        if let Some(record) = record {
                            closed = handle.block_on(out.send(record)).is_err();
                        }
                    }
                });
            }
            for candidate in candidates {
                if out.is_closed() {
                    break;
                }
                match candidate {
                    Ok(candidate) => {
                        if to_visit.send(candidate).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        progress.done.fetch_add(1, Ordering::Relaxed);
                        if let Some(record) = file_error_record(&e)
                            && handle.block_on(out.send(record)).is_err()
                        {
                            break;
                        }
                    }
                }
            }
            drop(to_visit);
        });
        Ok(())
    })
    .await
    .map_err(|e| ScanError::Files(format!("file scan stopped: {e}")))?
}

/// Checks one certificate file and makes its record.
fn file_record(hit: files::FileHit, policy: &Policy, progress: &Progress) -> ScanRecord {
    let context = Context {
        now: chrono::Utc::now().timestamp(),
        name: None,
        tls_version: None,
        network: false,
        presented: None,
        fetched: &[],
    };
    let findings = findings::check(&hit.certificates, &context, policy);
    progress
        .found
        .fetch_add(hit.certificates.len() as u64, Ordering::Relaxed);
    ScanRecord {
        origin: Origin::File {
            path: hit.path.display().to_string(),
            format: hit.format,
            key_beside: hit.key_beside,
        },
        chain: hit.certificates,
        findings,
        error: None,
    }
}

fn file_error_record(error: &files::FileError) -> Option<ScanRecord> {
    let (path, format) = match error {
        files::FileError::Malformed { path, format, .. } => (path.display().to_string(), *format),
        files::FileError::Pkcs12Password { path } => {
            (path.display().to_string(), super::model::FileFormat::Pkcs12)
        }
        files::FileError::Io { .. } => {
            tracing::warn!(error = %error, "cannot read file");
            return None;
        }
        files::FileError::Glob { .. } => return None,
    };
    Some(ScanRecord {
        origin: Origin::File {
            path,
            format,
            key_beside: false,
        },
        chain: Vec::new(),
        findings: Vec::new(),
        error: Some(error.to_string()),
    })
}
