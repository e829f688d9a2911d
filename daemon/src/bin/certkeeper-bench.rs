//! `certkeeper-bench`: loads synthetic certificates into an embedded store and
//! measures what an inventory of that size costs.
//!
//! Prints: load time and rate (through the same `record_certificates` path an
//! import uses, a sighting per certificate), and the rate of importing the
//! same certificates again (nothing new); the first alert-ledger pass over
//! the store with the default thresholds; the "expiring within 30 days"
//! query as the API runs it (first page of 100, and the count from the
//! counters); dashboard counts by status; the RSS of the real `certkeeper`
//! daemon idling on that store; how long the daemon takes to exit on
//! SIGTERM with its ledger pass and a status refresh in flight; the time and
//! peak RSS of `certkeeper report inventory` (every row, as CSV); and the time and peak RSS of
//! `certkeeper report expiring --within-days 90` as CSV and as PDF on it,
//! beside the peer: the same rows (same count, same spread of expiries)
//! exported to CSV by `sqlite3` from an indexed table, the plain database
//! dump a spreadsheet-driven team would run, with the ratio.
//! Times are medians over repeated runs.
//!
//! ```sh
//! cargo run --release -p certkeeper --bin certkeeper-bench -- --count 1000000
//! ```
//!
//! Certificates are synthetic (fields generated, PEM bodies of realistic
//! size filled with pseudo-random base64), spread evenly from one year past to
//! two years ahead, so about 4% fall within the 30-day window.

#![allow(clippy::unwrap_used)]

// Shared with the other benchmarks; this one reads only process sizes.
#[allow(dead_code)]
#[path = "bench/common.rs"]
mod common;

use common::peak_kib;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use certkeeper::config::StoreConfig;
use certkeeper_model::inventory::{CertificateRecord, ParsedCertificate, SightingKind, Status};
use certkeeper_store::Store;
use certkeeper_store::inventory::CertificateFilter;

struct Args {
    count: u64,
    dir: Option<PathBuf>,
    batch: usize,
    reuse: bool,
    /// The embedded store's block cache (`store.cache_mib`), when not the
    /// default.
    cache_mib: Option<u64>,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        count: 1_000_000,
        dir: None,
        batch: 5_000,
        reuse: false,
        cache_mib: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().context(format!("{a} needs a value"));
        match a.as_str() {
            "--count" => args.count = value()?.parse()?,
            "--dir" => args.dir = Some(value()?.into()),
            "--batch" => args.batch = value()?.parse()?,
            "--reuse" => args.reuse = true,
            "--cache-mib" => args.cache_mib = Some(value()?.parse()?),
            "--help" | "-h" => {
                println!(
                    "certkeeper-bench [--count N] [--dir PATH] [--batch N] [--reuse] [--cache-mib N]\n  --reuse: measure a store already loaded in --dir instead of loading\n  --cache-mib: the store's block cache for the load, re-import and ledger pass (store.cache_mib; default 64)"
                );
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

/// A cheap deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn synthetic(i: u64, now: i64, rng: &mut Rng) -> ParsedCertificate {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let not_after = now - 365 * 86_400 + (rng.next() % (3 * 365 * 86_400)) as i64;
    let issuers = [
        "Example Issuing CA 1",
        "Let's Encrypt R11",
        "DigiCert Global G2",
        "Internal Root",
    ];
    let issuer = issuers[(i % issuers.len() as u64) as usize];
    let mut pem = String::with_capacity(1_300);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in 0..18 {
        for _ in 0..64 {
            pem.push(B64[(rng.next() % 64) as usize] as char);
        }
        let _ = line;
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    let host = format!("host{i}.dept{}.example.com", i % 97);
    ParsedCertificate {
        fingerprint: format!(
            "{:016x}{:016x}{:016x}{:016x}",
            i,
            rng.next(),
            rng.next(),
            rng.next()
        ),
        subject: format!("CN={host}, O=Example Corp"),
        subject_cn: Some(host.clone()),
        issuer: format!("CN={issuer}, O=Example"),
        issuer_cn: Some(issuer.to_string()),
        serial: format!("{:032x}", rng.next()),
        not_before: not_after - 90 * 86_400,
        not_after,
        san_dns: vec![host.clone(), format!("www.{host}")],
        san_ip: vec![],
        san_email: vec![],
        san_uri: vec![],
        key_algorithm: "EC".into(),
        key_bits: 256,
        key_curve: Some("P-256".into()),
        signature_algorithm: "ecdsa-with-SHA256".into(),
        key_usage: vec!["digitalSignature".into()],
        extended_key_usage: vec!["serverAuth".into()],
        is_ca: false,
        self_signed: false,
        certificate_policies: vec!["2.23.140.1.2.1".into()],
        pem,
    }
}

async fn median<F, Fut, T>(runs: usize, mut f: F) -> anyhow::Result<(Duration, T)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        last = Some(f().await?);
        times.push(start.elapsed());
    }
    times.sort();
    Ok((times[runs / 2], last.context("no runs")?))
}

fn rss_kib(pid: u32) -> Option<u64> {
    common::status_kib(pid, "VmRSS:")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let _keep;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            let t = tempfile_dir()?;
            _keep = TempDirGuard(t.clone());
            t
        }
    };
    let url = format!("surrealkv://{}", dir.join("store").display());
    let now = chrono::Utc::now().timestamp();
    println!(
        "certkeeper-bench: {} synthetic certificates into {url}",
        args.count
    );

    let defaults = StoreConfig::default();
    let store = Store::open(&StoreConfig {
        url: url.clone(),
        cache_mib: args.cache_mib.unwrap_or(defaults.cache_mib),
        ..defaults
    })
    .await?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start = Instant::now();
    let mut loaded = 0u64;
    let mut last_report = Instant::now();
    if args.reuse {
        loaded = args.count;
    }
    while loaded < args.count {
        let n = (args.count - loaded).min(args.batch as u64);
        let records: Vec<CertificateRecord> = (loaded..loaded + n)
            .map(|i| CertificateRecord::discovered(synthetic(i, now, &mut rng), now, 30))
            .collect();
        store
            .record_certificates(&records, SightingKind::Import, "certkeeper-bench", now)
            .await?;
        loaded += n;
        if last_report.elapsed() > Duration::from_secs(30) {
            let rate = loaded as f64 / start.elapsed().as_secs_f64();
            eprintln!("  loaded {loaded} ({rate:.0}/s)");
            last_report = Instant::now();
        }
    }
    if !args.reuse {
        let load = start.elapsed();
        println!(
            "load:                      {:>10.1} s   ({:.0} certificates/s; target >= 10k/s)",
            load.as_secs_f64(),
            args.count as f64 / load.as_secs_f64()
        );
        // The same files again a second later: nothing new, every
        // certificate's last_seen and sighting refreshed.
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let start = Instant::now();
        let mut done = 0u64;
        let mut added = 0usize;
        while done < args.count {
            let n = (args.count - done).min(args.batch as u64);
            let records: Vec<CertificateRecord> = (done..done + n)
                .map(|i| CertificateRecord::discovered(synthetic(i, now, &mut rng), now + 1, 30))
                .collect();
            added += store
                .record_certificates(&records, SightingKind::Import, "certkeeper-bench", now + 1)
                .await?
                .added
                .len();
            done += n;
        }
        let again = start.elapsed();
        println!(
            "re-import (nothing new):   {:>10.1} s   ({:.0} certificates/s, {added} added; target >= 30k/s)",
            again.as_secs_f64(),
            args.count as f64 / again.as_secs_f64()
        );
        // The first alert-ledger pass, with the default thresholds, a
        // minute after the import (so every certificate is the backlog).
        let alerts: certkeeper::config::alerts::AlertsConfig =
            serde_json::from_value(serde_json::json!({}))?;
        let start = Instant::now();
        let report = certkeeper::alerts::ledger::pass(&store, &alerts, now + 60).await?;
        let took = start.elapsed();
        println!(
            "first alert-ledger pass:   {:>10.1} s   ({} rows, {} messages, {:.0} rows/s; target <= 120 s)",
            took.as_secs_f64(),
            report.raised,
            report.events,
            report.raised as f64 / took.as_secs_f64()
        );
    }

    let (t, page) = median(21, || async {
        Ok(store
            .list_certificates(&CertificateFilter {
                expiring_within: Some(30 * 86_400),
                limit: 100,
                now,
                ..Default::default()
            })
            .await?)
    })
    .await?;
    println!(
        "expiring within 30d, page: {:>10.2} ms  (first {} rows, target <= 50 ms)",
        t.as_secs_f64() * 1e3,
        page.items.len()
    );
    let (t, counts) = median(21, || async { Ok(store.counts_by_status().await?) }).await?;
    println!(
        "counts by status:          {:>10.2} ms  (target <= 100 ms) {:?}",
        t.as_secs_f64() * 1e3,
        counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(s, n)| format!("{s}={n}"))
            .collect::<Vec<_>>()
    );
    println!(
        "expiring count (counters): {:>10}",
        counts.get(&Status::Expiring).copied().unwrap_or(0)
    );
    let start = Instant::now();
    store.close(Duration::from_secs(600)).await;
    println!(
        "close (memtable flush):    {:>10.1} s",
        start.elapsed().as_secs_f64()
    );

    // The first open after a bulk load compacts the freshly written level-0
    // table, which the allocator keeps as resident memory afterwards; a
    // daemon's steady state is what the second start shows.
    for start in ["first start", "restart"] {
        match daemon_rss(&dir, &url).await {
            Ok((idle, after_query)) => println!(
                "daemon RSS idle, {start:<11} {:>8.1} MiB (after the API queries: {:.1} MiB; target <= 256 MiB)",
                idle as f64 / 1024.0,
                after_query as f64 / 1024.0
            ),
            Err(e) => println!("daemon RSS: not measured: {e:#}"),
        }
    }
    match sigterm_exit(&dir).await {
        Ok(took) => println!(
            "SIGTERM, pass in flight:   {:>10.1} s   to exit (ledger pass and status refresh running; target <= 10 s)",
            took.as_secs_f64()
        ),
        Err(e) => println!("SIGTERM exit: not measured: {e:#}"),
    }
    let du = std::process::Command::new("du")
        .arg("-sh")
        .arg(dir.join("store"))
        .output();
    if let Ok(out) = du {
        print!(
            "store on disk:             {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    match report(&dir, "inventory", "csv").await {
        Ok((took, peak_kib, size)) => println!(
            "inventory report, csv:    {:>10.2} s, peak RSS {:.1} MiB, {:.1} MiB written (`certkeeper report inventory`, all rows)",
            took.as_secs_f64(),
            peak_kib as f64 / 1024.0,
            size as f64 / 1_048_576.0
        ),
        Err(e) => println!("inventory report: not measured: {e:#}"),
    }
    let mut csv_time = None;
    for format in ["csv", "pdf"] {
        match report(&dir, "expiring", format).await {
            Ok((took, peak_kib, size)) => {
                println!(
                    "expiring report, {format}:     {:>10.2} s, peak RSS {:.1} MiB, {:.1} MiB written (`certkeeper report expiring --within-days 90` on the stopped store)",
                    took.as_secs_f64(),
                    peak_kib as f64 / 1024.0,
                    size as f64 / 1_048_576.0
                );
                if format == "csv" {
                    csv_time = Some(took);
                }
            }
            Err(e) => println!("expiring report, {format}: not measured: {e:#}"),
        }
    }
    match sqlite_peer(&dir, args.count, now) {
        Ok((took, rows)) => {
            println!(
                "peer: sqlite3 CSV export:  {:>10.2} s, {rows} rows (indexed table of the same {} rows)",
                took.as_secs_f64(),
                args.count
            );
            if let Some(ours) = csv_time {
                println!(
                    "ratio, report CSV / sqlite3: {:>8.1}x",
                    ours.as_secs_f64() / took.as_secs_f64()
                );
            }
        }
        Err(e) => println!("peer sqlite3: not measured: {e:#}"),
    }
    Ok(())
}

/// The peer: loads the same synthetic rows (regenerated from the same seed)
/// into an indexed SQLite table with the `sqlite3` shell, then times the
/// shell's CSV export of the certificates expiring within 90 days, soonest
/// first, with the report's columns. Returns the export time and rows.
fn sqlite_peer(dir: &std::path::Path, count: u64, now: i64) -> anyhow::Result<(Duration, u64)> {
    use std::io::Write as _;
    let db = dir.join("peer.sqlite");
    let _ = std::fs::remove_file(&db);
    let rows = dir.join("peer-rows.csv");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&rows)?);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for i in 0..count {
            let c = synthetic(i, now, &mut rng);
            writeln!(
                out,
                "\"{}\",{},\"{}\",{},{},valid,,{}",
                c.subject,
                c.san_dns.join(" "),
                c.issuer,
                c.serial,
                c.not_after,
                c.fingerprint
            )?;
        }
    }
    let load = format!(
        "CREATE TABLE c(subject TEXT, sans TEXT, issuer TEXT, serial TEXT, not_after INTEGER, status TEXT, org_unit TEXT, fingerprint TEXT);\n\
         .mode csv\n.import {} c\nCREATE INDEX c_expiry ON c(not_after, fingerprint);\n",
        rows.display()
    );
    let mut child = std::process::Command::new("sqlite3")
        .arg(&db)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("sqlite3 (Debian package sqlite3) is needed for the peer")?;
    child
        .stdin
        .take()
        .context("sqlite3 stdin")?
        .write_all(load.as_bytes())?;
    anyhow::ensure!(child.wait()?.success(), "sqlite3 import failed");
    let query = format!(
        "SELECT subject, sans, issuer, serial, date(not_after, 'unixepoch') AS not_after, \
         (not_after - {now}) / 86400 AS days_left, status, org_unit, fingerprint FROM c \
         WHERE not_after >= {now} AND not_after <= {} ORDER BY not_after, fingerprint",
        now + 90 * 86_400
    );
    let out = dir.join("peer-expiring.csv");
    let start = Instant::now();
    let status = std::process::Command::new("sqlite3")
        .args(["-csv", "-header"])
        .arg(&db)
        .arg(&query)
        .stdout(std::fs::File::create(&out)?)
        .status()?;
    let took = start.elapsed();
    anyhow::ensure!(status.success(), "sqlite3 export failed");
    let lines = std::fs::read_to_string(&out)?.lines().count() as u64;
    Ok((took, lines.saturating_sub(1)))
}

/// Runs `certkeeper report expiring` on the loaded store (the daemon is
/// stopped, so the CLI reads the store itself) and watches its peak RSS.
async fn report(
    dir: &std::path::Path,
    kind: &str,
    format: &str,
) -> anyhow::Result<(Duration, u64, u64)> {
    let exe = std::env::current_exe()?;
    let cli = exe.with_file_name("certkeeper");
    let out = dir.join(format!("{kind}.{format}"));
    let mut command = tokio::process::Command::new(&cli);
    command.args(["report", kind]);
    if kind == "expiring" {
        command.args(["--within-days", "90"]);
    }
    let start = Instant::now();
    let mut child = command
        .args(["--format", format, "--out"])
        .arg(&out)
        .arg("--config")
        .arg(dir.join("bench.toml"))
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("report pid")?;
    let mut peak = 0;
    let status = loop {
        if let Some(hwm) = peak_kib(pid) {
            peak = peak.max(hwm);
        }
        tokio::select! {
            status = child.wait() => break status?,
            () = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    };
    anyhow::ensure!(status.success(), "certkeeper report failed: {status}");
    Ok((start.elapsed(), peak, std::fs::metadata(&out)?.len()))
}

/// Starts the real daemon on the loaded store, lets it idle, reads its RSS.
async fn daemon_rss(dir: &std::path::Path, url: &str) -> anyhow::Result<(u64, u64)> {
    let exe = std::env::current_exe()?;
    let daemon = exe.with_file_name("certkeeper");
    anyhow::ensure!(daemon.exists(), "{} not built", daemon.display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = dir.join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\n[store]\nurl = \"{url}\"\n[log]\nlevel = \"warn\"\n"
        ),
    )?;
    let mut child = tokio::process::Command::new(&daemon)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("daemon pid")?;
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&client, &base).await?;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let idle = rss_kib(pid).context("read RSS")?;
    let mut timings = Vec::new();
    for path in [
        "/api/v1/counts",
        "/api/v1/certificates?expiring_within=30d&limit=100",
    ] {
        let mut runs = Vec::new();
        for _ in 0..11 {
            let start = Instant::now();
            client
                .get(format!("{base}{path}"))
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            runs.push(start.elapsed());
        }
        runs.sort();
        timings.push(format!("{path} {:.1} ms", runs[5].as_secs_f64() * 1e3));
    }
    println!(
        "  daemon API over HTTP, median of 11: {}",
        timings.join("; ")
    );
    let after = rss_kib(pid).context("read RSS")?;
    // A graceful stop, as systemd would, so the store is closed cleanly.
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let _ = child.wait().await;
    Ok((idle, after))
}

/// Waits up to two minutes for the daemon at `base` to answer `/readyz`.
async fn wait_ready(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    for _ in 0..600 {
        if client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("daemon did not become ready")
}

/// Starts the real daemon on the loaded store with a status refresh due at
/// once, sends SIGTERM two seconds after it is ready (its first ledger pass
/// over the store and the refresh in flight) and times its exit.
async fn sigterm_exit(dir: &std::path::Path) -> anyhow::Result<Duration> {
    let exe = std::env::current_exe()?;
    let daemon = exe.with_file_name("certkeeper");
    let config = dir.join("bench.toml");
    let base = std::fs::read_to_string(&config)?;
    let port = base
        .lines()
        .find_map(|l| l.strip_prefix("listen = \"127.0.0.1:"))
        .and_then(|l| l.trim_end_matches('"').parse::<u16>().ok())
        .context("bench.toml listen")?;
    let sigterm = dir.join("sigterm.toml");
    std::fs::write(
        &sigterm,
        format!("{base}[inventory]\nrefresh_schedule = \"* * * * * *\"\n"),
    )?;
    let mut child = tokio::process::Command::new(&daemon)
        .arg("run")
        .arg("--config")
        .arg(&sigterm)
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("daemon pid")?;
    let client = reqwest::Client::new();
    wait_ready(&client, &format!("http://127.0.0.1:{port}")).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let start = Instant::now();
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()?;
    let status = child.wait().await?;
    let took = start.elapsed();
    anyhow::ensure!(status.success(), "daemon exited with {status}");
    Ok(took)
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir().join(format!("certkeeper-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    Ok(base)
}

struct TempDirGuard(PathBuf);

impl Drop for TempDirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
