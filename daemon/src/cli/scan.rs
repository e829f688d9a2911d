//! `certkeeper scan`: a one-shot discovery run with no config and no store,
//! the way nmap is used. Prints one record per sighting: a table, CSV, or
//! one JSON object per line; progress goes to stderr when it is a terminal.
//! Exits 0 whatever the findings; non-zero only when the scan cannot run.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Format;
use super::output::csv_field;
use certkeeper_discovery::files::FileScanOptions;
use certkeeper_discovery::findings::{self, Policy};
use certkeeper_discovery::model::{Origin, ScanRecord, Starttls};
use certkeeper_discovery::probe::ProbeOptions;
use certkeeper_discovery::scan::{NetworkScan, Progress, scan_files, scan_network};
use certkeeper_discovery::targets::{self, Resolve};
use certkeeper_model::inventory::ParsedCertificate;

/// Arguments of `certkeeper scan`.
#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Addresses, CIDRs (10.0.0.0/24, 2001:db8::/120), ranges (10.0.0.1-50),
    /// host names, or @FILE with one per line.
    pub targets: Vec<String>,
    /// Ports to try on every address.
    #[arg(long, default_value = "443,8443,636,993,995,465")]
    pub ports: String,
    /// Scan ADDRESS as NAME on PORT, without DNS (as curl's --resolve).
    #[arg(long = "resolve", value_name = "NAME:PORT:ADDRESS")]
    pub resolve: Vec<String>,
    /// Directory trees to search for certificate files.
    #[arg(long = "files", value_name = "DIR")]
    pub files: Vec<PathBuf>,
    /// STARTTLS protocol for a port, over the defaults (25/587 smtp, 143 imap,
    /// 110 pop3, 389 ldap, 21 ftp, 5432 postgres): e.g. 2525:smtp, 25:none.
    #[arg(long = "starttls", value_name = "PORT:PROTOCOL")]
    pub starttls: Vec<String>,
    /// PEM bundle of private roots trusted besides the system's.
    #[arg(long, value_name = "PEM")]
    pub trusted_roots: Option<PathBuf>,
    /// PEM bundle of known intermediate CAs: a server that leaves one out of
    /// its chain is incomplete_chain; an issuer found nowhere is untrusted.
    #[arg(long, value_name = "PEM")]
    pub intermediates: Option<PathBuf>,
    /// Fetch a missing issuer from the leaf's AIA caIssuers URL (HTTP).
    #[arg(long)]
    pub fetch_aia: bool,
    /// Check each leaf's revocation (OCSP, then CRL) and flag revoked.
    #[arg(long)]
    pub check_revocation: bool,
    /// PEM bundle of the CA certificates whose issuance is approved; anything
    /// else is flagged unapproved_issuer (without it, that check is off).
    #[arg(long, value_name = "PEM")]
    pub approved_issuers: Option<PathBuf>,
    /// Probes in flight at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Name server to resolve names with (repeatable); default: the system's.
    #[arg(long = "dns-server", value_name = "ADDRESS[:PORT]")]
    pub dns_servers: Vec<String>,
    /// Connect timeout per endpoint (the TLS handshake gets twice as long).
    #[arg(long, default_value = "3s")]
    pub timeout: String,
    /// Days before expiry that count as expiring.
    #[arg(long, default_value_t = 30)]
    pub expiring_days: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Runs the scan and prints its records.
pub async fn run(args: ScanArgs) -> anyhow::Result<()> {
    if args.targets.is_empty() && args.resolve.is_empty() && args.files.is_empty() {
        bail!("nothing to scan: give targets, --resolve NAME:PORT:ADDRESS or --files DIR");
    }
    if args.concurrency == 0 {
        bail!("--concurrency: expected a number above 0");
    }
    let targets = targets::parse_targets(&args.targets)?;
    let ports = targets::parse_ports(&args.ports).context("--ports")?;
    let resolves = args
        .resolve
        .iter()
        .map(|r| Resolve::parse(r))
        .collect::<Result<Vec<_>, _>>()
        .context("--resolve")?;
    let mut starttls = HashMap::new();
    for s in &args.starttls {
        let (port, proto) = s
            .split_once(':')
            .with_context(|| format!("--starttls `{s}`: expected PORT:PROTOCOL, e.g. 2525:smtp"))?;
        let port: u16 = port
            .parse()
            .with_context(|| format!("--starttls `{s}`: `{port}` is not a port"))?;
        let proto = match proto {
            "none" => None,
            p => Some(Starttls::parse(p).with_context(|| {
                format!("--starttls `{s}`: expected smtp, imap, pop3, ldap, ftp, postgres or none")
            })?),
        };
        starttls.insert(port, proto);
    }
    let timeout = Duration::from_secs(
        u64::try_from(
            crate::api::parse_duration(&args.timeout)
                .map_err(|e| anyhow::anyhow!("--timeout: {e}"))?,
        )
        .unwrap_or(3)
        .max(1),
    );
    let policy = Arc::new(policy(&args)?);

    let progress = Arc::new(Progress::default());
    let (tx, mut rx) = mpsc::channel::<ScanRecord>(1024);
    let mut work = tokio::task::JoinSet::new();
    if !targets.is_empty() || !resolves.is_empty() {
        let scan = NetworkScan {
            targets,
            ports,
            resolves,
            starttls,
            concurrency: args.concurrency,
            probe: ProbeOptions {
                connect_timeout: timeout,
                handshake_timeout: timeout * 2,
                ..ProbeOptions::default()
            },
            dns_timeout: timeout * 2,
            dns_servers: certkeeper_discovery::dns::parse_dns_servers(&args.dns_servers)
                .context("--dns-server")?,
        };
        work.spawn(scan_network(
            scan,
            policy.clone(),
            progress.clone(),
            tx.clone(),
        ));
    }
    for root in &args.files {
        if !root.exists() {
            bail!("--files {}: no such directory", root.display());
        }
        let options = FileScanOptions {
            roots: vec![root.clone()],
            ..FileScanOptions::default()
        };
        work.spawn(scan_files(
            options,
            policy.clone(),
            progress.clone(),
            tx.clone(),
        ));
    }
    drop(tx);

    let ticker =
        (std::io::stderr().is_terminal()).then(|| tokio::spawn(show_progress(progress.clone())));
    let mut out = std::io::stdout().lock();
    let mut table = Vec::new();
    if args.format == Format::Csv {
        writeln!(
            out,
            "source,location,sni,tls_version,fingerprint,subject,issuer,not_after,key,findings,error"
        )?;
    }
    while let Some(record) = rx.recv().await {
        match args.format {
            Format::Json => writeln!(out, "{}", serde_json::to_string(&record_json(&record))?)?,
            Format::Csv => writeln!(out, "{}", csv_line(&record))?,
            Format::Table => table.push(record),
        }
    }
    while let Some(result) = work.join_next().await {
        result.context("scan task")??;
    }
    if let Some(ticker) = ticker {
        ticker.abort();
        eprint!("\r\x1b[2K");
    }
    if args.format == Format::Table {
        print_table(&mut out, &mut table)?;
    }
    Ok(())
}

/// The same policy a `[discovery.policy]` section builds, from the flags.
fn policy(args: &ScanArgs) -> anyhow::Result<Policy> {
    let config = crate::config::PolicyConfig {
        approved_issuers: args.approved_issuers.clone(),
        trusted_roots: args.trusted_roots.clone(),
        intermediates: args.intermediates.clone(),
        fetch_aia: args.fetch_aia,
        check_revocation: args.check_revocation,
        ..crate::config::PolicyConfig::default()
    };
    crate::scheduler::discovery::policy(&config, args.expiring_days, None)
        .map_err(|e| anyhow::anyhow!("--trusted-roots/--intermediates/--approved-issuers: {e}"))
}

async fn show_progress(progress: Arc<Progress>) {
    let start = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let done = progress.done.load(Ordering::Relaxed);
        let total = progress.total.load(Ordering::Relaxed).max(done);
        let found = progress.found.load(Ordering::Relaxed);
        let rate = done as f64 / start.elapsed().as_secs_f64().max(0.001);
        let eta = if rate > 0.0 && total > done {
            format!(", ETA {:.0}s", (total - done) as f64 / rate)
        } else {
            String::new()
        };
        eprint!("\r\x1b[2K{done}/{total} done, {found} certificates, {rate:.0}/s{eta}");
    }
}

fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn eku_name(eku: &str) -> String {
    match eku {
        "serverAuth" => "server_auth".into(),
        "clientAuth" => "client_auth".into(),
        "codeSigning" => "code_signing".into(),
        "emailProtection" => "email_protection".into(),
        "timeStamping" => "time_stamping".into(),
        "OCSPSigning" => "ocsp_signing".into(),
        other => other.to_string(),
    }
}

fn chain_entry(c: &ParsedCertificate) -> Value {
    let mut sans: Vec<&str> = c.san_dns.iter().map(String::as_str).collect();
    sans.extend(c.san_ip.iter().map(String::as_str));
    sans.extend(c.san_email.iter().map(String::as_str));
    sans.extend(c.san_uri.iter().map(String::as_str));
    json!({
        "fingerprint_sha256": c.fingerprint,
        "subject": c.subject,
        "issuer": c.issuer,
        "serial": c.serial,
        "not_before": rfc3339(c.not_before),
        "not_after": rfc3339(c.not_after),
        "key_type": c.key_algorithm.to_lowercase(),
        "key_bits": c.key_bits,
        "signature_algorithm": c.signature_algorithm,
        "sans": sans,
        "eku": c.extended_key_usage.iter().map(|e| eku_name(e)).collect::<Vec<_>>(),
        "type": findings::certificate_type(c),
        "validation_level": findings::validation_level(c),
    })
}

/// The JSON object a record prints as (the documented scan format).
pub fn record_json(record: &ScanRecord) -> Value {
    let mut object = match serde_json::to_value(&record.origin) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    object.insert(
        "chain".into(),
        record.chain.iter().map(chain_entry).collect(),
    );
    object.insert("findings".into(), json!(record.findings));
    if let Some(error) = &record.error {
        object.insert("error".into(), json!(error));
    }
    Value::Object(object)
}

fn location(origin: &Origin) -> (String, String, String, String) {
    match origin {
        Origin::Network {
            ip,
            port,
            sni,
            tls_version,
            ..
        } => (
            "network".into(),
            std::net::SocketAddr::new(*ip, *port).to_string(),
            sni.clone().unwrap_or_default(),
            tls_version.clone().unwrap_or_default(),
        ),
        Origin::File { path, format, .. } => (
            "file".into(),
            path.clone(),
            String::new(),
            serde_json::to_value(format)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        ),
    }
}

fn finding_codes(record: &ScanRecord) -> String {
    record
        .findings
        .iter()
        .map(|f| {
            let code = serde_json::to_value(f.code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            match f.days {
                Some(d) => format!("{code}({d}d)"),
                None => code,
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn csv_line(record: &ScanRecord) -> String {
    let (source, loc, sni, version) = location(&record.origin);
    let leaf = record.chain.first();
    let cells = [
        source,
        loc,
        sni,
        version,
        leaf.map(|c| c.fingerprint.clone()).unwrap_or_default(),
        leaf.map(|c| c.subject.clone()).unwrap_or_default(),
        leaf.map(|c| c.issuer.clone()).unwrap_or_default(),
        leaf.map(|c| rfc3339(c.not_after)).unwrap_or_default(),
        leaf.map(|c| format!("{} {}", c.key_algorithm, c.key_bits))
            .unwrap_or_default(),
        finding_codes(record),
        record.error.clone().unwrap_or_default(),
    ];
    cells
        .iter()
        .map(|c| csv_field(c))
        .collect::<Vec<_>>()
        .join(",")
}

fn print_table(out: &mut impl std::io::Write, records: &mut [ScanRecord]) -> anyhow::Result<()> {
    records.sort_by_key(|r| location(&r.origin).1);
    let rows: Vec<[String; 5]> = records
        .iter()
        .map(|r| {
            let (_, loc, sni, _) = location(&r.origin);
            let leaf = r.chain.first();
            let place = if sni.is_empty() {
                loc
            } else {
                format!("{loc} ({sni})")
            };
            [
                place,
                leaf.map(|c| c.subject_cn.clone().unwrap_or_else(|| c.subject.clone()))
                    .unwrap_or_else(|| "-".into()),
                leaf.map(|c| c.issuer_cn.clone().unwrap_or_else(|| c.issuer.clone()))
                    .unwrap_or_default(),
                leaf.map(|c| rfc3339(c.not_after)).unwrap_or_default(),
                match &r.error {
                    Some(e) => format!("error: {e}"),
                    None => finding_codes(r),
                },
            ]
        })
        .collect();
    let header = ["WHERE", "SUBJECT", "ISSUER", "NOT AFTER", "FINDINGS"];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in &rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    writeln!(out, "{} sightings", rows.len())?;
    Ok(())
}
