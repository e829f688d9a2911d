//! `certkeeper-renew-bench`: measures how fast the daemon renews managed
//! certificates through ACME against `lego`, on this machine, in the same run,
//! and prints the figures (it never asserts timings).
//!
//! - **pebble**: `--pebbles` instances of Debian's `pebble` (default 8) on
//!   free loopback ports, with `PEBBLE_VA_NOSLEEP=1 PEBBLE_VA_ALWAYS_VALID=1`
//!   (no challenge is really fetched, so both clients are measured, not the
//!   VA) and `PEBBLE_AUTHZREUSE=0` (pebble would otherwise reuse half of the
//!   daemon's authorizations on renewal, work lego issuing fresh names never
//!   gets to skip). Their HTTPS certificate for 127.0.0.1 comes from a CA the
//!   bench generates. Pebble 2.4 deadlocks its in-memory store under heavy
//!   concurrent load, so the load is spread over several instances and each
//!   connector runs at most `--pebble-concurrency` orders at once.
//! - **certkeeper**: `certkeeper run` with one ACME connector per pebble and
//!   `--count` managed certificates (default 500) spread round-robin over
//!   them. The daemon issues them all on start (timed, reported, not the
//!   measured figure); then `POST /api/v1/managed/renew-all` is timed until
//!   every certificate's generation has gone up by one.
//! - **lego**: the same names issued with `lego run`, `--lego-parallel`
//!   processes at a time (default 8), name `i` on the same pebble as the
//!   daemon's certificate `i`. One untimed warm-up issuance per pebble first
//!   registers lego's account there, as the daemon's account is registered
//!   before its renewals.
//!
//! Prints both times, rates, the ratio lego/certkeeper (target >= 2x) and each
//! side's successes and failures. When no certificate completes for
//! `--stall-seconds` on either side, it probes every pebble (its directory,
//! and its store through the management port) and stops, naming the pebble
//! instances that still had work in flight and those that no longer answer.
//!
//! ```sh
//! cargo build --release -p certkeeper --bins
//! target/release/certkeeper-renew-bench --dir /var/tmp/renew-bench
//! ```
//!
//! Flags: `--count N` (default 500), `--pebbles N` (default 8),
//! `--pebble-concurrency N` (each connector's `max_concurrent_orders`,
//! default 32), `--lego-parallel N` (default 8), `--dir PATH` (work dir, its
//! state wiped at start and kept at exit; default: a temporary directory,
//! removed at exit unless the run failed), `--stall-seconds N` (default 60),
//! `--skip-lego`, `--skip-certkeeper`. Needs pebble, lego and the `certkeeper`
//! binary beside this one.

#[path = "bench/common.rs"]
mod common;

use common::{WorkDir, ec_key, find_tool, random_serial};

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509NameBuilder};
use serde_json::{Value, json};

/// How often the daemon's API and the lego processes are looked at.
const POLL: Duration = Duration::from_millis(200);
/// How often a progress line is printed while waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Timeout of each probe of a pebble when diagnosing a stall.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long pebble and the daemon get to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

struct Args {
    count: usize,
    pebbles: usize,
    pebble_concurrency: usize,
    lego_parallel: usize,
    dir: Option<PathBuf>,
    stall: Duration,
    skip_lego: bool,
    skip_certkeeper: bool,
}

const USAGE: &str = "certkeeper-renew-bench [--count N] [--pebbles N] [--pebble-concurrency N] \
[--lego-parallel N] [--dir PATH] [--stall-seconds N] [--skip-lego] [--skip-certkeeper]";

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        count: 500,
        pebbles: 8,
        pebble_concurrency: 32,
        lego_parallel: 8,
        dir: None,
        stall: Duration::from_secs(60),
        skip_lego: false,
        skip_certkeeper: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut number = || -> anyhow::Result<usize> {
            let v = it.next().with_context(|| format!("{a} needs a value"))?;
            v.parse()
                .with_context(|| format!("{a}: `{v}` is not a number"))
        };
        match a.as_str() {
            "--count" => args.count = number()?,
            "--pebbles" => args.pebbles = number()?.max(1),
            "--pebble-concurrency" => args.pebble_concurrency = number()?.max(1),
            "--lego-parallel" => args.lego_parallel = number()?.max(1),
            "--stall-seconds" => args.stall = Duration::from_secs(number()?.max(1) as u64),
            "--dir" => args.dir = Some(it.next().context("--dir needs a value")?.into()),
            "--skip-lego" => args.skip_lego = true,
            "--skip-certkeeper" => args.skip_certkeeper = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    ensure!(
        args.count <= 10_000,
        "--count: at most 10000 (names are cert-NNNN)"
    );
    Ok(args)
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let mut work = WorkDir::new(args.dir.as_deref(), "certkeeper-renew-bench")?;
    let result = bench(&args, &work.path);
    if result.is_err() {
        // The logs of pebble, the daemon and lego say what went wrong.
        work.keep();
    }
    result
}

fn bench(args: &Args, work: &Path) -> anyhow::Result<()> {
    let certkeeper = std::env::current_exe()?.with_file_name("certkeeper");
    if !args.skip_certkeeper {
        ensure!(
            certkeeper.exists(),
            "{} not found: build it first (cargo build --release -p certkeeper --bins)",
            certkeeper.display()
        );
    }
    let pebble_bin = find_tool("pebble", &["/usr/bin/pebble"])?;
    let lego_bin = if args.skip_lego {
        None
    } else {
        Some(find_tool("lego", &["/usr/bin/lego"])?)
    };
    println!(
        "certkeeper-renew-bench: {} ({} profile), work dir {}",
        certkeeper.display(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        work.display()
    );
    println!(
        "{} certificates over {} pebble instances (NOSLEEP, ALWAYS_VALID, AUTHZREUSE=0), \
         at most {} orders at once per pebble for certkeeper, lego {} in parallel",
        args.count, args.pebbles, args.pebble_concurrency, args.lego_parallel
    );
    // Ports: per pebble ACME + management, the daemon's API, per connector an
    // HTTP-01 responder, one per lego slot (and warm-up process).
    let lego_slots = args.lego_parallel.max(args.pebbles);
    let mut ports = Ports::new(2 * args.pebbles + 1 + args.pebbles + lego_slots)?;

    let tls = PebbleTls::new(work)?;
    let http = Http::new(&tls.ca_pem)?;
    let pebbles = start_pebbles(args, work, &pebble_bin, &tls, &http, &mut ports)?;

    let ck = if args.skip_certkeeper {
        None
    } else {
        Some(run_certkeeper(
            args,
            work,
            &certkeeper,
            &tls,
            &http,
            &pebbles,
            &mut ports,
        )?)
    };
    let lego = match &lego_bin {
        Some(bin) => Some(run_lego(
            args, work, bin, &tls, &http, &pebbles, &mut ports,
        )?),
        None => None,
    };
    drop(pebbles);

    println!("\n== results: {} certificates", args.count);
    if let Some(ck) = &ck {
        println!(
            "certkeeper first issuance (on start): {:.2}s ({:.1} certificates/s), {} issued",
            ck.first.as_secs_f64(),
            rate(ck.issued, ck.first),
            ck.issued
        );
        println!(
            "certkeeper renew-all: {:.2}s ({:.1} certificates/s), {} renewed, {} failed, \
             {} with a new fingerprint",
            ck.renewal.as_secs_f64(),
            rate(ck.renewed, ck.renewal),
            ck.renewed,
            args.count - ck.renewed,
            ck.new_fingerprints
        );
    }
    if let Some(lego) = &lego {
        println!(
            "lego run, {} in parallel: {:.2}s ({:.1} certificates/s), {} issued, {} failed",
            args.lego_parallel,
            lego.elapsed.as_secs_f64(),
            rate(lego.ok, lego.elapsed),
            lego.ok,
            lego.failures.len()
        );
        for (name, error) in lego.failures.iter().take(5) {
            println!("  lego failed: {name}: {error}");
        }
    }
    if let (Some(ck), Some(lego)) = (&ck, &lego) {
        println!(
            "ratio lego/certkeeper: {:.2}x (target >= 2x)",
            lego.elapsed.as_secs_f64() / ck.renewal.as_secs_f64().max(1e-9)
        );
        if ck.renewed != lego.ok {
            println!(
                "  success counts differ ({} vs {}): ratio of rates {:.2}x",
                ck.renewed,
                lego.ok,
                rate(ck.renewed, ck.renewal) / rate(lego.ok, lego.elapsed).max(1e-9)
            );
        }
    }
    Ok(())
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// Managed certificate `i`'s name (also its DNS name under `.bench.test`).
fn cert_name(i: usize) -> String {
    format!("cert-{i:04}")
}

// ---------------------------------------------------------------------------
// Processes and ports

/// A child process killed and reaped when dropped, so that every exit path,
/// errors included, stops it.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A child's log file, opened for appending, so that its stdout and stderr
/// (two handles) do not overwrite each other.
fn log_file(path: &Path) -> anyhow::Result<File> {
    File::options()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("{}", path.display()))
}

/// The last non-empty lines of a log file, for error messages.
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut tail: Vec<&str> = text
        .lines()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .take(lines)
        .collect();
    tail.reverse();
    tail.join("\n")
}

/// Free loopback TCP ports, all distinct: they are held until every one is
/// found, then released for the children to bind.
///
/// They are taken below the kernel's ephemeral range: lego and the daemon
/// bind their HTTP-01 ports again for every order, and thousands of client
/// connections to pebble would otherwise sooner or later be using one of
/// them as their local port at that moment.
struct Ports(std::vec::IntoIter<u16>);

impl Ports {
    fn new(n: usize) -> anyhow::Result<Ports> {
        let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
            .unwrap_or(32768);
        let (low, high) = (10_000u16, ephemeral_low.max(10_001));
        // A random start, so that concurrent runs rarely probe the same ports.
        let mut start = [0u8; 2];
        openssl::rand::rand_bytes(&mut start)?;
        let span = u32::from(high - low);
        let start = u32::from(u16::from_le_bytes(start)) % span;
        let mut held = Vec::with_capacity(n);
        for k in 0..span {
            if held.len() == n {
                break;
            }
            // Below `high`, so it fits.
            let port = low + ((start + k) % span) as u16;
            if let Ok(l) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
                held.push(l);
            }
        }
        ensure!(
            held.len() == n,
            "only {} free ports in {low}..{high}",
            held.len()
        );
        let ports = held
            .iter()
            .map(|l| Ok(l.local_addr()?.port()))
            .collect::<anyhow::Result<Vec<u16>>>()?;
        Ok(Ports(ports.into_iter()))
    }

    fn take(&mut self) -> anyhow::Result<SocketAddr> {
        let port = self.0.next().context("ran out of reserved ports")?;
        Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }
}

/// Waits until `addr` accepts connections, or `child` exits, or the start
/// timeout passes.
fn wait_listening(
    addr: SocketAddr,
    child: &mut Child,
    what: &str,
    log: &Path,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited ({status}):\n{}", log_tail(log, 20));
        }
        if started.elapsed() > START_TIMEOUT {
            bail!(
                "{what} did not listen on {addr} in {}s:\n{}",
                START_TIMEOUT.as_secs(),
                log_tail(log, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// HTTP

/// A small runtime and two clients: one trusting only the bench CA (pebble's
/// HTTPS), one for the daemon's plain-HTTP API on loopback.
struct Http {
    rt: tokio::runtime::Runtime,
    pebble: reqwest::Client,
    api: reqwest::Client,
}

impl Http {
    fn new(ca_pem: &[u8]) -> anyhow::Result<Http> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let pebble = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca_pem)?])
            .timeout(PROBE_TIMEOUT)
            .build()?;
        let api = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Http { rt, pebble, api })
    }

    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// GETs `url` from a pebble: the status and how long it took, or why not.
    fn probe(&self, url: &str) -> Result<(u16, Duration), String> {
        let started = Instant::now();
        self.block_on(async {
            match self.pebble.get(url).send().await {
                Ok(r) => Ok((r.status().as_u16(), started.elapsed())),
                Err(e) if e.is_timeout() => {
                    Err(format!("no answer in {}s", PROBE_TIMEOUT.as_secs_f64()))
                }
                Err(e) => Err(error_chain(&e)),
            }
        })
    }
}

/// An error with its sources (reqwest's Display hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

// ---------------------------------------------------------------------------
// Pebble

/// The CA behind pebble's HTTPS certificate and that certificate, as files.
struct PebbleTls {
    ca_pem: Vec<u8>,
    ca_file: PathBuf,
    cert_file: PathBuf,
    key_file: PathBuf,
}

impl PebbleTls {
    /// A one-day root and a leaf for `127.0.0.1` and `localhost`, written to
    /// `work`.
    fn new(work: &Path) -> anyhow::Result<PebbleTls> {
        let ca_key = ec_key()?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_text("CN", "Certkeeper Renew Bench pebble TLS CA")?;
        let ca_name = name.build();
        let mut ca = X509::builder()?;
        ca.set_version(2)?;
        ca.set_serial_number(&*random_serial()?)?;
        ca.set_subject_name(&ca_name)?;
        ca.set_issuer_name(&ca_name)?;
        ca.set_pubkey(&ca_key)?;
        ca.set_not_before(&*Asn1Time::days_from_now(0)?)?;
        ca.set_not_after(&*Asn1Time::days_from_now(1)?)?;
        ca.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        ca.append_extension(KeyUsage::new().critical().key_cert_sign().build()?)?;
        let ski = SubjectKeyIdentifier::new().build(&ca.x509v3_context(None, None))?;
        ca.append_extension(ski)?;
        ca.sign(&ca_key, MessageDigest::sha256())?;
        let ca = ca.build();

        let key = ec_key()?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_text("CN", "127.0.0.1")?;
        let name = name.build();
        let mut cert = X509::builder()?;
        cert.set_version(2)?;
        cert.set_serial_number(&*random_serial()?)?;
        cert.set_subject_name(&name)?;
        cert.set_issuer_name(ca.subject_name())?;
        cert.set_pubkey(&key)?;
        cert.set_not_before(&*Asn1Time::days_from_now(0)?)?;
        cert.set_not_after(&*Asn1Time::days_from_now(1)?)?;
        cert.append_extension(BasicConstraints::new().critical().build()?)?;
        cert.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
        cert.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
        let context = cert.x509v3_context(Some(&ca), None);
        let san = SubjectAlternativeName::new()
            .ip("127.0.0.1")
            .dns("localhost")
            .build(&context)?;
        let aki = AuthorityKeyIdentifier::new().keyid(true).build(&context)?;
        cert.append_extension(san)?;
        cert.append_extension(aki)?;
        cert.sign(&ca_key, MessageDigest::sha256())?;
        let cert = cert.build();

        let tls = PebbleTls {
            ca_pem: ca.to_pem()?,
            ca_file: work.join("pebble-tls-ca.pem"),
            cert_file: work.join("pebble-tls-cert.pem"),
            key_file: work.join("pebble-tls-key.pem"),
        };
        std::fs::write(&tls.ca_file, &tls.ca_pem)?;
        std::fs::write(&tls.cert_file, cert.to_pem()?)?;
        std::fs::write(&tls.key_file, key.private_key_to_pem_pkcs8()?)?;
        Ok(tls)
    }
}

/// A running pebble instance.
struct Pebble {
    name: String,
    /// `https://127.0.0.1:PORT/dir`.
    directory: String,
    /// The management port, whose `/cert-status-by-serial/` reads pebble's
    /// store (and so hangs when the store is deadlocked).
    management: SocketAddr,
    log: PathBuf,
    _process: Guard,
}

fn start_pebbles(
    args: &Args,
    work: &Path,
    bin: &Path,
    tls: &PebbleTls,
    http: &Http,
    ports: &mut Ports,
) -> anyhow::Result<Vec<Pebble>> {
    let started = Instant::now();
    // A DNS server nothing answers: with ALWAYS_VALID pebble never resolves
    // a name, and this keeps it from asking the host's resolver if it did.
    let dns = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?;
    let mut pebbles = Vec::with_capacity(args.pebbles);
    for i in 0..args.pebbles {
        let listen = ports.take()?;
        let management = ports.take()?;
        let config = work.join(format!("pebble-{i}.json"));
        let log = work.join(format!("pebble-{i}.log"));
        let _ = std::fs::remove_file(&log);
        std::fs::write(
            &config,
            serde_json::to_vec_pretty(&json!({
                "pebble": {
                    "listenAddress": listen.to_string(),
                    "managementListenAddress": management.to_string(),
                    "certificate": tls.cert_file,
                    "privateKey": tls.key_file,
                    // Where the VA would fetch challenges; it never does with
                    // ALWAYS_VALID.
                    "httpPort": 5002,
                    "tlsPort": 5001,
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": false
                }
            }))?,
        )?;
        let child = Command::new(bin)
            .arg("-config")
            .arg(&config)
            .arg("-dnsserver")
            .arg(dns.to_string())
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_VA_ALWAYS_VALID", "1")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdin(Stdio::null())
            .stdout(log_file(&log)?)
            .stderr(log_file(&log)?)
            .spawn()
            .context("starting pebble")?;
        let mut process = Guard(child);
        let name = format!("pebble-{i}");
        wait_listening(listen, &mut process.0, &name, &log)?;
        wait_listening(management, &mut process.0, &name, &log)?;
        pebbles.push(Pebble {
            name,
            directory: format!("https://{listen}/dir"),
            management,
            log,
            _process: process,
        });
    }
    for p in &pebbles {
        match http.probe(&p.directory) {
            Ok((200, _)) => {}
            Ok((status, _)) => bail!("{}: {} answered {status}", p.name, p.directory),
            Err(e) => bail!("{}: {}: {e}\n{}", p.name, p.directory, log_tail(&p.log, 10)),
        }
    }
    println!(
        "{} pebble instances up in {:.1}s",
        pebbles.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(pebbles)
}

/// One line per pebble instance: its work still in flight and whether its
/// directory and its store answer. Returns the report and the names of the
/// instances that did not answer.
fn diagnose(
    http: &Http,
    pebbles: &[Pebble],
    in_flight: &BTreeMap<usize, Vec<String>>,
) -> (String, Vec<String>) {
    let mut report = String::new();
    let mut hung = Vec::new();
    for (i, p) in pebbles.iter().enumerate() {
        let work = in_flight.get(&i).map_or(&[][..], Vec::as_slice);
        let dir = http.probe(&p.directory);
        // Any serial: a 404 means the store was read.
        let store = http.probe(&format!(
            "https://{}/cert-status-by-serial/01",
            p.management
        ));
        let show = |r: &Result<(u16, Duration), String>| match r {
            Ok((status, took)) => format!("{status} in {}ms", took.as_millis()),
            Err(e) => e.clone(),
        };
        let verdict = match (&dir, &store) {
            (Ok(_), Ok(_)) => "answers",
            (Ok(_), Err(_)) => "HUNG: the directory answers, the store does not (deadlocked)",
            (Err(_), _) => "HUNG: does not answer",
        };
        if dir.is_err() || store.is_err() {
            hung.push(p.name.clone());
        }
        let mut names = work.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        if work.len() > 5 {
            names.push_str(", ...");
        }
        report.push_str(&format!(
            "  {} ({}): {} unfinished{}; directory {}, store {}: {verdict}\n",
            p.name,
            p.directory,
            work.len(),
            if work.is_empty() {
                String::new()
            } else {
                format!(" ({names})")
            },
            show(&dir),
            show(&store),
        ));
    }
    (report, hung)
}

/// The error a stall stops the run with.
fn stalled(
    side: &str,
    stall: Duration,
    http: &Http,
    pebbles: &[Pebble],
    in_flight: &BTreeMap<usize, Vec<String>>,
    extra: &str,
) -> anyhow::Error {
    let (report, hung) = diagnose(http, pebbles, in_flight);
    anyhow::anyhow!(
        "{side}: no certificate completed for {}s; stopped.\n{report}{extra}{}",
        stall.as_secs(),
        if hung.is_empty() {
            "every pebble answers: the stall is not a hung pebble (see the logs in the work dir)"
                .to_owned()
        } else {
            format!(
                "pebble instance(s) not answering: {} (pebble 2.4 deadlocks its store under \
                 heavy load; try more --pebbles or a lower --pebble-concurrency)",
                hung.join(", ")
            )
        }
    )
}

// ---------------------------------------------------------------------------
// Certkeeper

struct CertkeeperRun {
    /// First issuance of every certificate, from the API answering.
    first: Duration,
    issued: usize,
    /// `renew-all` until every generation went up.
    renewal: Duration,
    renewed: usize,
    new_fingerprints: usize,
}

/// A TOML basic string (JSON's escapes are a subset of TOML's).
fn toml_str(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// One item of `GET /api/v1/managed`.
struct Managed {
    generation: u64,
    fingerprint: Option<String>,
    state: String,
    last_error: Option<String>,
}

/// The daemon's API, as the bench uses it.
struct Api<'a> {
    http: &'a Http,
    base: String,
    token: String,
}

impl Api<'_> {
    async fn get(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<(u16, String)> {
        let r = self
            .http
            .api
            .get(format!("{}{path}", self.base))
            .query(query)
            .bearer_auth(&self.token)
            .send()
            .await?;
        Ok((r.status().as_u16(), r.text().await?))
    }

    /// Every managed certificate by name (following `next_cursor` if the
    /// listing is paged).
    fn managed(&self) -> anyhow::Result<HashMap<String, Managed>> {
        let mut items = HashMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let query: Vec<(&str, &str)> = cursor.iter().map(|c| ("cursor", c.as_str())).collect();
            let (status, body) = self.http.block_on(self.get("/api/v1/managed", &query))?;
            ensure!(status == 200, "GET /api/v1/managed: {status}: {body}");
            let page: Value =
                serde_json::from_str(&body).context("GET /api/v1/managed: bad JSON")?;
            let list = page["items"]
                .as_array()
                .context("GET /api/v1/managed: no `items` array")?;
            for item in list {
                let Some(name) = item["name"].as_str() else {
                    continue;
                };
                items.insert(
                    name.to_owned(),
                    Managed {
                        generation: item["generation"].as_u64().unwrap_or(0),
                        fingerprint: item["fingerprint"].as_str().map(str::to_owned),
                        state: item["state"].as_str().unwrap_or_default().to_owned(),
                        last_error: item["last_error"].as_str().map(str::to_owned),
                    },
                );
            }
            match page["next_cursor"].as_str() {
                Some(c) if !c.is_empty() && !list.is_empty() => cursor = Some(c.to_owned()),
                _ => return Ok(items),
            }
        }
    }
}

fn run_certkeeper(
    args: &Args,
    work: &Path,
    certkeeper: &Path,
    tls: &PebbleTls,
    http: &Http,
    pebbles: &[Pebble],
    ports: &mut Ports,
) -> anyhow::Result<CertkeeperRun> {
    println!("\n== certkeeper");
    let data = work.join("data");
    if data.exists() {
        std::fs::remove_dir_all(&data)?;
    }
    let api_addr = ports.take()?;
    let mut token = [0u8; 24];
    openssl::rand::rand_bytes(&mut token)?;
    let token: String = token.iter().map(|b| format!("{b:02x}")).collect();

    let mut config = format!(
        "# Written by certkeeper-renew-bench.\n[api]\nlisten = \"{api_addr}\"\ntoken = {}\n\n\
         [store]\nurl = {}\n",
        toml_str(&token),
        toml_str(&format!("surrealkv://{}", data.display()))
    );
    for p in pebbles {
        config.push_str(&format!(
            "\n[[connector]]\nname = {}\ntype = \"acme\"\ndirectory_url = {}\nroots_file = {}\n\
             max_concurrent_orders = {}\n[connector.challenge]\ntype = \"http01\"\n\
             listen = \"{}\"\n",
            toml_str(&p.name),
            toml_str(&p.directory),
            toml_str(&tls.ca_file.to_string_lossy()),
            args.pebble_concurrency,
            ports.take()?
        ));
    }
    for i in 0..args.count {
        config.push_str(&format!(
            "\n[[certificate]]\nname = \"{name}\"\nidentifiers = [\"{name}.bench.test\"]\n\
             connector = {}\nkey_type = \"ecdsa_p256\"\n",
            toml_str(&pebbles[i % pebbles.len()].name),
            name = cert_name(i)
        ));
    }
    let config_file = work.join("certkeeper.toml");
    std::fs::write(&config_file, config)?;

    let log = work.join("certkeeper.log");
    let _ = std::fs::remove_file(&log);
    // The hard RLIMIT_NOFILE as soft limit: hundreds of orders in flight.
    let child = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n "$(ulimit -Hn)" && exec "$0" "$@""#)
        .arg(certkeeper)
        .arg("run")
        .arg("--config")
        .arg(&config_file)
        .stdin(Stdio::null())
        .stdout(log_file(&log)?)
        .stderr(log_file(&log)?)
        .spawn()
        .context("starting certkeeper run")?;
    let mut daemon = Guard(child);
    let api = Api {
        http,
        base: format!("http://{api_addr}"),
        token,
    };
    let started = Instant::now();
    loop {
        let health = http.block_on(async {
            for path in ["/api/v1/health", "/healthz"] {
                if let Ok((200, _)) = api.get(path, &[]).await {
                    return true;
                }
            }
            false
        });
        if health {
            break;
        }
        if let Some(status) = daemon.0.try_wait()? {
            bail!("certkeeper exited ({status}):\n{}", log_tail(&log, 20));
        }
        if started.elapsed() > START_TIMEOUT {
            bail!(
                "certkeeper's API did not answer on {api_addr} in {}s:\n{}",
                START_TIMEOUT.as_secs(),
                log_tail(&log, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "daemon up in {:.1}s (API on {api_addr}), {} managed certificates, {} connectors",
        started.elapsed().as_secs_f64(),
        args.count,
        pebbles.len()
    );

    let mut wait = Waiter {
        args,
        http,
        pebbles,
        api: &api,
        daemon: &mut daemon,
        log: &log,
    };
    let (first, before) = wait.until("first issuance", |_| 1)?;
    let issued = before.values().filter(|m| m.generation >= 1).count();
    println!("first issuance: {:.2}s", first.as_secs_f64());

    let started = Instant::now();
    let (status, body) = http.block_on(async {
        let r = http
            .api
            .post(format!("{}/api/v1/managed/renew-all", api.base))
            .bearer_auth(&api.token)
            .send()
            .await?;
        anyhow::Ok((r.status().as_u16(), r.text().await?))
    })?;
    ensure!(
        (200..300).contains(&status),
        "POST /api/v1/managed/renew-all: {status}: {body}"
    );
    if status != 202 {
        println!("  note: renew-all answered {status}, not 202");
    }
    let baseline: HashMap<String, u64> = before
        .iter()
        .map(|(name, m)| (name.clone(), m.generation))
        .collect();
    let (renewal, after) = wait.until_from(started, "renewal", |name| {
        baseline.get(name).copied().unwrap_or(1) + 1
    })?;
    let renewed = after
        .iter()
        .filter(|(name, m)| m.generation > baseline.get(*name).copied().unwrap_or(u64::MAX))
        .count();
    let new_fingerprints = after
        .iter()
        .filter(|(name, m)| {
            m.fingerprint.is_some()
                && m.fingerprint != before.get(*name).and_then(|b| b.fingerprint.clone())
        })
        .count();
    println!("renew-all: {:.2}s", renewal.as_secs_f64());
    drop(daemon);
    Ok(CertkeeperRun {
        first,
        issued,
        renewal,
        renewed,
        new_fingerprints,
    })
}

/// Polls the daemon until every managed certificate reaches a generation.
struct Waiter<'a> {
    args: &'a Args,
    http: &'a Http,
    pebbles: &'a [Pebble],
    api: &'a Api<'a>,
    daemon: &'a mut Guard,
    log: &'a Path,
}

impl Waiter<'_> {
    fn until(
        &mut self,
        phase: &str,
        target: impl Fn(&str) -> u64,
    ) -> anyhow::Result<(Duration, HashMap<String, Managed>)> {
        self.until_from(Instant::now(), phase, target)
    }

    /// Waits from `started` until every certificate's generation is at
    /// least `target(name)`; stops when none progresses for the stall time.
    fn until_from(
        &mut self,
        started: Instant,
        phase: &str,
        target: impl Fn(&str) -> u64,
    ) -> anyhow::Result<(Duration, HashMap<String, Managed>)> {
        let n = self.args.count;
        let mut best = 0;
        let mut last_progress = Instant::now();
        let mut last_print = Instant::now();
        let mut last_error: Option<String> = None;
        loop {
            if let Some(status) = self.daemon.0.try_wait()? {
                bail!(
                    "certkeeper exited during {phase} ({status}):\n{}",
                    log_tail(self.log, 20)
                );
            }
            let items = match self.api.managed() {
                Ok(items) => Some(items),
                Err(e) => {
                    last_error = Some(format!("{e:#}"));
                    None
                }
            };
            if let Some(items) = items {
                let done = (0..n)
                    .filter(|i| {
                        let name = cert_name(*i);
                        items
                            .get(&name)
                            .is_some_and(|m| m.generation >= target(&name))
                    })
                    .count();
                if done == n {
                    return Ok((started.elapsed(), items));
                }
                if done > best {
                    best = done;
                    last_progress = Instant::now();
                }
                if last_print.elapsed() >= PROGRESS_EVERY {
                    last_print = Instant::now();
                    println!(
                        "  {phase}: {done}/{n} after {:.0}s",
                        started.elapsed().as_secs_f64()
                    );
                }
                if last_progress.elapsed() >= self.args.stall {
                    let mut in_flight: BTreeMap<usize, Vec<String>> = BTreeMap::new();
                    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
                    let mut states: BTreeMap<String, usize> = BTreeMap::new();
                    for i in 0..n {
                        let name = cert_name(i);
                        let m = items.get(&name);
                        if m.is_some_and(|m| m.generation >= target(&name)) {
                            continue;
                        }
                        *states
                            .entry(m.map_or("(not listed)".to_owned(), |m| m.state.clone()))
                            .or_default() += 1;
                        if let Some(e) = m.and_then(|m| m.last_error.clone()) {
                            *errors.entry(e).or_default() += 1;
                        }
                        in_flight
                            .entry(i % self.pebbles.len())
                            .or_default()
                            .push(name);
                    }
                    let mut extra = format!(
                        "  certkeeper {phase}: {done}/{n} done; states of the rest: {states:?}\n"
                    );
                    for (e, count) in errors.iter().take(5) {
                        extra.push_str(&format!("  last_error ({count}x): {e}\n"));
                    }
                    return Err(stalled(
                        &format!("certkeeper {phase}"),
                        self.args.stall,
                        self.http,
                        self.pebbles,
                        &in_flight,
                        &extra,
                    ));
                }
            } else if last_progress.elapsed() >= self.args.stall {
                bail!(
                    "certkeeper {phase}: no listing from GET /api/v1/managed for {}s: {}\n{}",
                    self.args.stall.as_secs(),
                    last_error.unwrap_or_default(),
                    log_tail(self.log, 20)
                );
            }
            std::thread::sleep(POLL);
        }
    }
}

// ---------------------------------------------------------------------------
// lego

struct LegoRun {
    elapsed: Duration,
    ok: usize,
    failures: Vec<(String, String)>,
}

/// A lego process in flight.
struct Running {
    process: Guard,
    name: String,
    pebble: usize,
    slot: usize,
    log: PathBuf,
}

/// `lego run` for `domain` on pebble `p`, its HTTP-01 server on `port`.
fn lego_command(
    bin: &Path,
    tls: &PebbleTls,
    pebble: &Pebble,
    path: &Path,
    port: SocketAddr,
    domain: &str,
    log: &Path,
) -> anyhow::Result<Command> {
    let mut c = Command::new(bin);
    c.env("LEGO_CA_CERTIFICATES", &tls.ca_file)
        .arg("--accept-tos")
        .arg("--server")
        .arg(&pebble.directory)
        .args(["--email", "bench@example.com", "--http", "--http.port"])
        .arg(port.to_string())
        .arg("--domains")
        .arg(domain)
        .arg("--path")
        .arg(path)
        .args(["--key-type", "ec256", "run"])
        .stdin(Stdio::null())
        .stdout(log_file(log)?)
        .stderr(log_file(log)?);
    Ok(c)
}

fn run_lego(
    args: &Args,
    work: &Path,
    bin: &Path,
    tls: &PebbleTls,
    http: &Http,
    pebbles: &[Pebble],
    ports: &mut Ports,
) -> anyhow::Result<LegoRun> {
    println!("\n== lego");
    let root = work.join("lego");
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs)?;
    // One lego state dir (account, certificates) per pebble instance.
    let path = |p: usize| root.join(format!("pebble-{p}"));
    let slots = (0..args.lego_parallel.max(pebbles.len()))
        .map(|_| ports.take())
        .collect::<anyhow::Result<Vec<_>>>()?;

    // Untimed warm-up: registers lego's account on every pebble.
    let started = Instant::now();
    let mut warmups = Vec::new();
    for (i, pebble) in pebbles.iter().enumerate() {
        let log = logs.join(format!("warmup-{i}.log"));
        let domain = format!("warmup-{i}.bench.test");
        let child = lego_command(bin, tls, pebble, &path(i), slots[i], &domain, &log)?
            .spawn()
            .context("starting lego")?;
        warmups.push((Guard(child), log));
    }
    for (i, (process, log)) in warmups.iter_mut().enumerate() {
        loop {
            if let Some(status) = process.0.try_wait()? {
                ensure!(
                    status.success(),
                    "lego warm-up on {} failed ({status}):\n{}",
                    pebbles[i].name,
                    log_tail(log, 10)
                );
                break;
            }
            if started.elapsed() > args.stall {
                let in_flight = BTreeMap::from([(i, vec![format!("warmup-{i}")])]);
                return Err(stalled(
                    "lego warm-up",
                    args.stall,
                    http,
                    pebbles,
                    &in_flight,
                    "",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    drop(warmups);
    println!(
        "warm-up (one issuance and account per pebble, untimed): {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let n = args.count;
    let mut free: Vec<usize> = (0..args.lego_parallel).rev().collect();
    let mut running: Vec<Running> = Vec::new();
    let mut next = 0;
    let mut ok = 0;
    let mut failures = Vec::new();
    let started = Instant::now();
    let mut last_success = Instant::now();
    let mut last_print = Instant::now();
    loop {
        while next < n
            && let Some(slot) = free.pop()
        {
            let name = cert_name(next);
            let pebble = next % pebbles.len();
            let log = logs.join(format!("{name}.log"));
            let domain = format!("{name}.bench.test");
            let child = lego_command(
                bin,
                tls,
                &pebbles[pebble],
                &path(pebble),
                slots[slot],
                &domain,
                &log,
            )?
            .spawn()
            .context("starting lego")?;
            running.push(Running {
                process: Guard(child),
                name,
                pebble,
                slot,
                log,
            });
            next += 1;
        }
        if running.is_empty() {
            break;
        }
        let mut i = 0;
        while i < running.len() {
            let Some(status) = running[i].process.0.try_wait()? else {
                i += 1;
                continue;
            };
            let done = running.swap_remove(i);
            free.push(done.slot);
            let crt = path(done.pebble)
                .join("certificates")
                .join(format!("{}.bench.test.crt", done.name));
            if status.success() && crt.exists() {
                ok += 1;
                last_success = Instant::now();
            } else {
                failures.push((done.name, format!("{status}: {}", log_tail(&done.log, 1))));
            }
        }
        if last_print.elapsed() >= PROGRESS_EVERY {
            last_print = Instant::now();
            println!(
                "  lego: {ok}/{n} issued, {} failed after {:.0}s",
                failures.len(),
                started.elapsed().as_secs_f64()
            );
        }
        if last_success.elapsed() >= args.stall {
            let mut in_flight: BTreeMap<usize, Vec<String>> = BTreeMap::new();
            for r in &running {
                in_flight.entry(r.pebble).or_default().push(r.name.clone());
            }
            let extra = format!(
                "  lego: {ok}/{n} issued, {} failed, {} running\n",
                failures.len(),
                running.len()
            );
            return Err(stalled(
                "lego", args.stall, http, pebbles, &in_flight, &extra,
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = started.elapsed();
    println!("lego: {:.2}s", elapsed.as_secs_f64());
    Ok(LegoRun {
        elapsed,
        ok,
        failures,
    })
}
