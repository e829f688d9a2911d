//! `certkeeper-scan-bench`: measures `certkeeper scan` against its peers on
//! this machine, in the same run, and prints the figures (it never asserts
//! timings).
//!
//! - **network**: one nginx serves `--endpoints` TLS endpoints (default 1000)
//!   on 127.20.0.0/24, 127.21.0.0/24, ... (250 addresses per /24, even hosts
//!   on 443, odd hosts on 8443, so the ranges also hold as many closed ports),
//!   with leaves issued by a private CA. `nmap -Pn -n -T4 -p 443,8443 --script
//!   ssl-cert` and `certkeeper scan --ports 443,8443 --format json --timeout
//!   1s --trusted-roots CA` scan the same ranges; prints both times, the
//!   ratio, each tool's count of certificates, and whether certkeeper found
//!   every endpoint with its right leaf and no findings (the CA is trusted,
//!   leaves are short-lived and well-formed, so any finding is a false one).
//! - **files**: a tree of `--files` certificate files (default 100,000; PEM,
//!   PEM chains and DER, 100 per directory) built from a few hundred real
//!   certificates and kept in `--dir` for the next run; after a warm-up read,
//!   times `find DIR -type f -exec cat {} +` against `certkeeper scan --files
//!   DIR --format json`, both to /dev/null, and checks certkeeper's count.
//!
//! ```sh
//! cargo build --release -p certkeeper --bins
//! target/release/certkeeper-scan-bench --dir /var/tmp/scan-bench
//! ```
//!
//! Flags: `--endpoints N`, `--files N`, `--dir PATH` (work dir, reused;
//! default: a temporary directory removed at exit), `--runs N` (best of N,
//! default 2), `--concurrency N` (certkeeper's, default 256 as the CLI's),
//! `--skip-network`, `--skip-files`. Needs nginx, nmap and the `certkeeper`
//! binary beside this one; both nginx and certkeeper get the hard
//! `RLIMIT_NOFILE` as their soft limit.

#[path = "bench/common.rs"]
mod common;

use common::{WorkDir, ec_key, find_tool, random_serial};

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509NameBuilder};
use serde_json::Value;

/// Addresses used per /24 (hosts .1 to .250).
const PER_SUBNET: usize = 250;
/// Second octet of the first /24 (127.20.0.0/24).
const FIRST_SUBNET: usize = 20;
/// Distinct leaves the nginx estate serves (reused across servers).
const NETWORK_LEAVES: usize = 8;
/// Distinct certificates the file tree is built from.
const FILE_CERTS: usize = 300;
/// Certificate files per directory of the tree.
const FILES_PER_DIR: usize = 100;

struct Args {
    endpoints: usize,
    files: usize,
    dir: Option<PathBuf>,
    runs: usize,
    concurrency: usize,
    skip_network: bool,
    skip_files: bool,
}

const USAGE: &str = "certkeeper-scan-bench [--endpoints N] [--files N] [--dir PATH] [--runs N] \
[--concurrency N] [--skip-network] [--skip-files]";

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        endpoints: 1000,
        files: 100_000,
        dir: None,
        runs: 2,
        concurrency: 256,
        skip_network: false,
        skip_files: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut number = || -> anyhow::Result<usize> {
            let v = it.next().with_context(|| format!("{a} needs a value"))?;
            v.parse()
                .with_context(|| format!("{a}: `{v}` is not a number"))
        };
        match a.as_str() {
            "--endpoints" => args.endpoints = number()?,
            "--files" => args.files = number()?,
            "--runs" => args.runs = number()?.max(1),
            "--concurrency" => args.concurrency = number()?.max(1),
            "--dir" => args.dir = Some(it.next().context("--dir needs a value")?.into()),
            "--skip-network" => args.skip_network = true,
            "--skip-files" => args.skip_files = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    ensure!(
        args.endpoints <= PER_SUBNET * (256 - FIRST_SUBNET),
        "--endpoints: at most {}",
        PER_SUBNET * (256 - FIRST_SUBNET)
    );
    Ok(args)
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let certkeeper = std::env::current_exe()?.with_file_name("certkeeper");
    ensure!(
        certkeeper.exists(),
        "{} not found: build it first (cargo build --release -p certkeeper --bins)",
        certkeeper.display()
    );
    let work = WorkDir::new(args.dir.as_deref(), "certkeeper-scan-bench")?;
    println!(
        "certkeeper-scan-bench: {} ({} profile), work dir {}, best of {} runs",
        certkeeper.display(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        work.path.display(),
        args.runs
    );
    let ca = Ca::new()?;
    if !args.skip_network {
        network(&args, &work.path, &certkeeper, &ca)?;
    }
    if !args.skip_files {
        files(&args, &work.path, &certkeeper, &ca)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Certificates

/// The private CA every leaf is issued by.
struct Ca {
    cert: X509,
    key: PKey<Private>,
}

/// A leaf certificate and its key.
struct Leaf {
    cert: X509,
    key: PKey<Private>,
}

impl Ca {
    fn new() -> anyhow::Result<Ca> {
        let key = ec_key()?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_text("O", "Certkeeper Bench")?;
        name.append_entry_by_text("CN", "Certkeeper Bench Root")?;
        let name = name.build();
        let mut cert = X509::builder()?;
        cert.set_version(2)?;
        cert.set_serial_number(&*random_serial()?)?;
        cert.set_subject_name(&name)?;
        cert.set_issuer_name(&name)?;
        cert.set_pubkey(&key)?;
        cert.set_not_before(&*Asn1Time::days_from_now(0)?)?;
        cert.set_not_after(&*Asn1Time::days_from_now(3650)?)?;
        cert.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        cert.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
        let ski = SubjectKeyIdentifier::new().build(&cert.x509v3_context(None, None))?;
        cert.append_extension(ski)?;
        cert.sign(&key, MessageDigest::sha256())?;
        Ok(Ca {
            cert: cert.build(),
            key,
        })
    }

    /// Issues a 90-day server certificate for `cn` (EC P-256, or RSA 2048).
    fn issue(&self, cn: &str, rsa: bool) -> anyhow::Result<Leaf> {
        let key = if rsa {
            PKey::from_rsa(Rsa::generate(2048)?)?
        } else {
            ec_key()?
        };
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_text("CN", cn)?;
        let name = name.build();
        let mut cert = X509::builder()?;
        cert.set_version(2)?;
        cert.set_serial_number(&*random_serial()?)?;
        cert.set_subject_name(&name)?;
        cert.set_issuer_name(self.cert.subject_name())?;
        cert.set_pubkey(&key)?;
        cert.set_not_before(&*Asn1Time::days_from_now(0)?)?;
        cert.set_not_after(&*Asn1Time::days_from_now(90)?)?;
        cert.append_extension(BasicConstraints::new().critical().build()?)?;
        cert.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .key_encipherment()
                .build()?,
        )?;
        cert.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
        let context = cert.x509v3_context(Some(&self.cert), None);
        let san = SubjectAlternativeName::new().dns(cn).build(&context)?;
        let aki = AuthorityKeyIdentifier::new().keyid(true).build(&context)?;
        cert.append_extension(san)?;
        cert.append_extension(aki)?;
        cert.sign(&self.key, MessageDigest::sha256())?;
        Ok(Leaf {
            cert: cert.build(),
            key,
        })
    }
}

/// Lowercase hex SHA-256 of the DER, as certkeeper prints fingerprints.
fn fingerprint(cert: &X509) -> anyhow::Result<String> {
    Ok(hex::encode(cert.digest(MessageDigest::sha256())?))
}

// ---------------------------------------------------------------------------
// Processes

/// A child that gets the hard `RLIMIT_NOFILE` as its soft limit.
fn with_nofile(program: &Path) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(r#"ulimit -n "$(ulimit -Hn)" && exec "$0" "$@""#)
        .arg(program);
    command
}

/// Runs `command` `runs` times; returns the best wall time and the output of
/// the first run.
fn best_of(
    runs: usize,
    mut command: impl FnMut() -> Command,
) -> anyhow::Result<(Duration, Vec<Duration>, std::process::Output)> {
    let mut times = Vec::new();
    let mut first = None;
    for _ in 0..runs {
        let mut c = command();
        let start = Instant::now();
        let out = c.output().with_context(|| format!("running {c:?}"))?;
        times.push(start.elapsed());
        ensure!(
            out.status.success(),
            "{c:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        first.get_or_insert(out);
    }
    let best = times.iter().min().copied().unwrap_or_default();
    Ok((best, times, first.context("no run")?))
}

fn show(times: &[Duration]) -> String {
    times
        .iter()
        .map(|t| format!("{:.3}s", t.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// nginx, stopped (TERM to the master, which stops its workers) on drop.
struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("logs/error.log")).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------
// Network

/// Endpoint `i` of the estate.
fn endpoint(i: usize) -> SocketAddr {
    let subnet = FIRST_SUBNET + i / PER_SUBNET;
    let host = 1 + i % PER_SUBNET;
    // Both octets are below 256: `endpoints` is bounded in `args`.
    let ip = Ipv4Addr::new(127, subnet as u8, 0, host as u8);
    SocketAddr::new(IpAddr::V4(ip), if i.is_multiple_of(2) { 443 } else { 8443 })
}

fn network(args: &Args, work: &Path, certkeeper: &Path, ca: &Ca) -> anyhow::Result<()> {
    let nginx_bin = find_tool("nginx", &["/usr/sbin/nginx", "/usr/bin/nginx"])?;
    let nmap = find_tool("nmap", &["/usr/bin/nmap", "/usr/local/bin/nmap"])?;
    let n = args.endpoints;
    let subnets = n.div_ceil(PER_SUBNET);
    let ranges: Vec<String> = (0..subnets)
        .map(|s| format!("127.{}.0.0/24", FIRST_SUBNET + s))
        .collect();
    println!(
        "\n== network: {n} TLS endpoints on {} ({} probes: {} addresses x 2 ports)",
        ranges.join(" "),
        subnets * 256 * 2,
        subnets * 256
    );

    let dir = work.join("network");
    std::fs::create_dir_all(dir.join("logs"))?;
    std::fs::write(dir.join("ca.pem"), ca.cert.to_pem()?)?;
    let mut leaves = Vec::new();
    for i in 0..NETWORK_LEAVES {
        let leaf = ca.issue(&format!("server{i}.bench.test"), false)?;
        std::fs::write(dir.join(format!("leaf{i}.pem")), leaf.cert.to_pem()?)?;
        std::fs::write(
            dir.join(format!("leaf{i}.key")),
            leaf.key.private_key_to_pem_pkcs8()?,
        )?;
        leaves.push(fingerprint(&leaf.cert)?);
    }
    let mut expected: HashMap<SocketAddr, &str> = HashMap::new();
    let mut servers = String::new();
    for i in 0..n {
        let addr = endpoint(i);
        let leaf = i % NETWORK_LEAVES;
        expected.insert(addr, &leaves[leaf]);
        servers.push_str(&format!(
            "server {{ listen {addr} ssl; ssl_certificate {d}/leaf{leaf}.pem; \
             ssl_certificate_key {d}/leaf{leaf}.key; return 200 ok; }}\n",
            d = dir.display()
        ));
    }
    std::fs::write(
        dir.join("nginx.conf"),
        format!(
            "daemon off; master_process on; worker_processes 2; worker_rlimit_nofile 16384;\n\
             pid {d}/nginx.pid; error_log {d}/logs/error.log;\n\
             events {{ worker_connections 8192; }}\n\
             http {{ access_log off; client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; \
             fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
             {servers}}}\n",
            d = dir.display()
        ),
    )?;
    let _ = std::fs::remove_file(dir.join("logs/error.log"));
    let child = with_nofile(&nginx_bin)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nginx")?;
    let mut server = Nginx { child, dir };
    let started = Instant::now();
    let last = endpoint(n.saturating_sub(1));
    loop {
        if TcpStream::connect_timeout(&last, Duration::from_millis(200)).is_ok() {
            break;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            bail!("nginx exited ({status}): {}", server.error_log());
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("nginx did not start in 30s: {}", server.error_log());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "nginx up in {:.1}s (2 workers), {n} endpoints",
        started.elapsed().as_secs_f64()
    );

    let (nmap_best, nmap_times, nmap_out) = best_of(args.runs, || {
        let mut c = Command::new(&nmap);
        c.args(["-Pn", "-n", "-T4", "-p", "443,8443", "--script", "ssl-cert"])
            .args(&ranges);
        c
    })?;
    let nmap_found = String::from_utf8_lossy(&nmap_out.stdout)
        .lines()
        .filter(|l| l.contains("ssl-cert: Subject"))
        .count();

    let roots = server.dir.join("ca.pem");
    let (ck_best, ck_times, ck_out) = best_of(args.runs, || {
        let mut c = with_nofile(certkeeper);
        c.arg("scan")
            .args(&ranges)
            .args(["--ports", "443,8443", "--format", "json", "--timeout", "1s"])
            .arg("--concurrency")
            .arg(args.concurrency.to_string())
            .arg("--trusted-roots")
            .arg(&roots);
        c
    })?;
    let check = check_network(&ck_out.stdout, &expected)?;
    drop(server);

    println!(
        "nmap -Pn -n -T4 -p 443,8443 --script ssl-cert: best {:.3}s ({}), {nmap_found} certificates",
        nmap_best.as_secs_f64(),
        show(&nmap_times)
    );
    println!(
        "certkeeper scan --concurrency {}: best {:.3}s ({}), {} certificates",
        args.concurrency,
        ck_best.as_secs_f64(),
        show(&ck_times),
        check.with_chain
    );
    println!(
        "ratio nmap/certkeeper: {:.2}x (target >= 5x)",
        nmap_best.as_secs_f64() / ck_best.as_secs_f64().max(1e-9)
    );
    let complete = check.correct == n && check.problems.is_empty();
    println!(
        "certkeeper found {}/{n} endpoints with the right leaf and no findings ({:.1}%){}",
        check.correct,
        100.0 * check.correct as f64 / n.max(1) as f64,
        if complete { ": 100%, correct" } else { "" }
    );
    for problem in check.problems.iter().take(10) {
        println!("  problem: {problem}");
    }
    if check.problems.len() > 10 {
        println!("  ... {} problems in all", check.problems.len());
    }
    Ok(())
}

struct NetworkCheck {
    /// Records with a non-empty chain.
    with_chain: usize,
    /// Expected endpoints found once, with the right leaf and no findings.
    correct: usize,
    problems: Vec<String>,
}

fn check_network(
    stdout: &[u8],
    expected: &HashMap<SocketAddr, &str>,
) -> anyhow::Result<NetworkCheck> {
    let text = std::str::from_utf8(stdout).context("certkeeper printed non-UTF-8")?;
    let mut seen: HashMap<SocketAddr, usize> = HashMap::new();
    let mut check = NetworkCheck {
        with_chain: 0,
        correct: 0,
        problems: Vec::new(),
    };
    for line in text.lines() {
        let record: Value = serde_json::from_str(line).context("certkeeper printed bad JSON")?;
        let addr = record["ip"]
            .as_str()
            .and_then(|ip| ip.parse::<IpAddr>().ok())
            .zip(record["port"].as_u64().and_then(|p| u16::try_from(p).ok()))
            .map(|(ip, port)| SocketAddr::new(ip, port));
        let Some(addr) = addr else {
            check
                .problems
                .push(format!("record without ip/port: {line}"));
            continue;
        };
        *seen.entry(addr).or_default() += 1;
        let chain = record["chain"].as_array().map_or(&[][..], Vec::as_slice);
        if chain.is_empty() {
            check
                .problems
                .push(format!("{addr}: no chain, error {}", record["error"]));
            continue;
        }
        check.with_chain += 1;
        let Some(want) = expected.get(&addr) else {
            check.problems.push(format!("{addr}: not an endpoint"));
            continue;
        };
        let got = chain[0]["fingerprint_sha256"].as_str().unwrap_or_default();
        if got != *want {
            check
                .problems
                .push(format!("{addr}: leaf {got}, expected {want}"));
            continue;
        }
        let findings = record["findings"].as_array().map_or(0, Vec::len);
        if findings > 0 {
            check
                .problems
                .push(format!("{addr}: findings {}", record["findings"]));
            continue;
        }
        check.correct += 1;
    }
    for (addr, count) in &seen {
        if *count > 1 {
            check.problems.push(format!("{addr}: {count} records"));
        }
    }
    let mut missing: Vec<&SocketAddr> = expected.keys().filter(|a| !seen.contains_key(a)).collect();
    missing.sort();
    for addr in missing {
        check.problems.push(format!("{addr}: not found"));
    }
    Ok(check)
}

// ---------------------------------------------------------------------------
// Files

/// The bytes of file `i` of the tree, its relative path, and how many
/// certificates it holds.
fn tree_file(i: usize, certs: &[(Vec<u8>, Vec<u8>)], ca_pem: &[u8]) -> (PathBuf, Vec<u8>, usize) {
    // A stride coprime with FILE_CERTS, so neighbours hold different certificates.
    let (pem, der) = &certs[(i * 7) % certs.len()];
    let dir = PathBuf::from(format!(
        "d{:03}/e{:02}",
        i / (FILES_PER_DIR * 100),
        (i / FILES_PER_DIR) % 100
    ));
    match i % 10 {
        0..=3 => (dir.join(format!("cert{i}.pem")), pem.clone(), 1),
        4 | 5 => {
            let mut chain = pem.clone();
            chain.extend_from_slice(ca_pem);
            (dir.join(format!("fullchain{i}.crt")), chain, 2)
        }
        6..=8 => (dir.join(format!("cert{i}.der")), der.clone(), 1),
        _ => (dir.join(format!("cert{i}.cer")), der.clone(), 1),
    }
}

fn files(args: &Args, work: &Path, certkeeper: &Path, ca: &Ca) -> anyhow::Result<()> {
    let n = args.files;
    let tree = work.join(format!("files-{n}"));
    let marker = work.join(format!("files-{n}.done"));
    println!("\n== files: {n} certificate files in {}", tree.display());
    let expected_certs = if marker.exists() {
        let text = std::fs::read_to_string(&marker)?;
        let certs = text
            .trim()
            .parse()
            .with_context(|| format!("{}: not a count", marker.display()))?;
        println!("reusing the tree ({certs} certificates)");
        certs
    } else {
        let started = Instant::now();
        if tree.exists() {
            std::fs::remove_dir_all(&tree)?;
        }
        let mut certs = Vec::with_capacity(FILE_CERTS);
        for i in 0..FILE_CERTS {
            // One in ten RSA: realistic, and RSA key generation is slow.
            let leaf = ca.issue(&format!("host{i}.files.bench.test"), i.is_multiple_of(10))?;
            certs.push((leaf.cert.to_pem()?, leaf.cert.to_der()?));
        }
        let ca_pem = ca.cert.to_pem()?;
        let mut total = 0;
        for i in 0..n {
            let (rel, bytes, count) = tree_file(i, &certs, &ca_pem);
            let path = tree.join(rel);
            if i.is_multiple_of(FILES_PER_DIR)
                && let Some(parent) = path.parent()
            {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, bytes).with_context(|| format!("{}", path.display()))?;
            total += count;
        }
        std::fs::write(&marker, total.to_string())?;
        println!(
            "built the tree in {:.1}s ({FILE_CERTS} distinct certificates, {total} in all)",
            started.elapsed().as_secs_f64()
        );
        total
    };
    let cat = || {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(r#"find "$0" -type f -exec cat {} + > /dev/null"#)
            .arg(&tree);
        c
    };
    // Warm the page cache (it cannot be dropped here) and check certkeeper's
    // output once, untimed.
    best_of(1, cat)?;
    let out = with_nofile(certkeeper)
        .arg("scan")
        .arg("--files")
        .arg(&tree)
        .args(["--format", "json"])
        .output()?;
    ensure!(
        out.status.success(),
        "certkeeper scan --files failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut records, mut certificates, mut errors) = (0, 0, BTreeMap::new());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let record: Value = serde_json::from_str(line).context("certkeeper printed bad JSON")?;
        records += 1;
        certificates += record["chain"].as_array().map_or(0, Vec::len);
        if let Some(e) = record["error"].as_str() {
            errors.insert(record["path"].to_string(), e.to_owned());
        }
    }

    let (cat_best, cat_times, _) = best_of(args.runs, cat)?;
    let (ck_best, ck_times, _) = best_of(args.runs, || {
        let mut c = with_nofile(certkeeper);
        c.arg("scan")
            .arg("--files")
            .arg(&tree)
            .args(["--format", "json"])
            .stdout(Stdio::null());
        c
    })?;
    println!(
        "find -type f -exec cat {{}} + > /dev/null: best {:.3}s ({})",
        cat_best.as_secs_f64(),
        show(&cat_times)
    );
    println!(
        "certkeeper scan --files --format json > /dev/null: best {:.3}s ({}), {:.0} files/s",
        ck_best.as_secs_f64(),
        show(&ck_times),
        n as f64 / ck_best.as_secs_f64().max(1e-9)
    );
    println!(
        "ratio certkeeper/cat: {:.2}x (target <= 2x)",
        ck_best.as_secs_f64() / cat_best.as_secs_f64().max(1e-9)
    );
    println!(
        "certkeeper found {records}/{n} files, {certificates}/{expected_certs} certificates, {} errors{}",
        errors.len(),
        if records == n && certificates == expected_certs && errors.is_empty() {
            ": 100%"
        } else {
            ""
        }
    );
    for (path, error) in errors.iter().take(5) {
        println!("  error: {path}: {error}");
    }
    Ok(())
}
