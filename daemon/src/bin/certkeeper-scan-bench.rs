//! `certkeeper-scan-bench`: measures `certkeeper scan` against its peers on
//! this machine, in the same run, and prints the figures (it never asserts
//! timings).
//!
//! - **network**: one nginx serves `--endpoints` TLS endpoints (default
//!   1000) built like a user's estate (`bench/estate.rs`): every endpoint a
//!   certificate of its own; EC P-256 and P-384, RSA 2048 and 3072 leaves,
//!   most from an issuing CA and served with it, some from the root alone,
//!   and one in twenty legacy (TLS 1.0 only, RSA 1024, SHA-1). They sit on
//!   127.20.0.0/24, 127.21.0.0/24, ... (250 addresses per /24, even hosts
//!   on 443, odd hosts on 8443, so the ranges also hold as many closed
//!   ports), or with `--wide` spread over one /16, 127.100.0.0/16 (default
//!   10,000 endpoints among 131,072 probes, nearly all closed). `nmap -Pn -n
//!   -T4 -p 443,8443 --script ssl-cert` and `certkeeper scan --ports
//!   443,8443 --format json --timeout 1s --trusted-roots ROOT` scan the same
//!   ranges; prints both times, peak RSS, the ratio, each tool's count of
//!   certificates, and whether certkeeper found every endpoint with its
//!   right leaf and exactly the findings it should have (none, except
//!   weak_key, weak_signature and legacy_protocol on the legacy ones).
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
//! Flags: `--endpoints N`, `--wide`, `--files N`, `--dir PATH` (work dir, reused;
//! default: a temporary directory removed at exit), `--runs N` (best of N,
//! default 2), `--concurrency N` (certkeeper's, default 256 as the CLI's),
//! `--skip-network`, `--skip-files`. Needs nginx, nmap and the `certkeeper`
//! binary beside this one; both nginx and certkeeper get the hard
//! `RLIMIT_NOFILE` as their soft limit.

#[path = "bench/common.rs"]
mod common;
#[path = "bench/estate.rs"]
mod estate;

use common::{WorkDir, find_tool, peak_kib};
use estate::{Endpoint, Layout, Pki};

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

/// Distinct certificates the file tree is built from.
const FILE_CERTS: usize = 300;
/// Certificate files per directory of the tree.
const FILES_PER_DIR: usize = 100;

struct Args {
    endpoints: usize,
    layout: Layout,
    files: usize,
    dir: Option<PathBuf>,
    runs: usize,
    concurrency: usize,
    skip_network: bool,
    skip_files: bool,
}

const USAGE: &str = "certkeeper-scan-bench [--endpoints N] [--wide] [--files N] [--dir PATH] [--runs N] \
[--concurrency N] [--skip-network] [--skip-files]";

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        endpoints: 0,
        layout: Layout::Subnets,
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
            "--wide" => args.layout = Layout::Wide,
            "--skip-network" => args.skip_network = true,
            "--skip-files" => args.skip_files = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if args.endpoints == 0 {
        args.endpoints = match args.layout {
            Layout::Subnets => 1_000,
            Layout::Wide => 10_000,
        };
    }
    ensure!(
        args.endpoints <= args.layout.capacity(),
        "--endpoints: at most {} with this layout",
        args.layout.capacity()
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
    if !args.skip_network {
        network(&args, &work.path, &certkeeper)?;
    }
    if !args.skip_files {
        files(&args, &work.path, &certkeeper, &mut Pki::new()?)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Certificates

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

/// What [`best_of`] measured.
struct Run {
    best: Duration,
    times: Vec<Duration>,
    /// The highest peak RSS (VmHWM) of any run, in KiB.
    peak_kib: u64,
}

/// Runs `command` `runs` times, its stdout into `out` (kept as the command
/// set it when `out` is None), watching its peak RSS; returns the times and
/// the first run's stdout.
fn best_of(
    runs: usize,
    out: Option<&Path>,
    mut command: impl FnMut() -> Command,
) -> anyhow::Result<(Run, Vec<u8>)> {
    let mut run = Run {
        best: Duration::MAX,
        times: Vec::new(),
        peak_kib: 0,
    };
    let mut first = None;
    for _ in 0..runs {
        let mut c = command();
        if let Some(out) = out {
            c.stdout(std::fs::File::create(out)?);
        }
        c.stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = c.spawn().with_context(|| format!("running {c:?}"))?;
        let mut stderr = child.stderr.take().context("stderr")?;
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            text
        });
        let status = loop {
            if let Some(hwm) = peak_kib(child.id()) {
                run.peak_kib = run.peak_kib.max(hwm);
            }
            if let Some(status) = child.try_wait()? {
                break status;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = start.elapsed();
        run.times.push(took);
        run.best = run.best.min(took);
        let stderr = reader.join().unwrap_or_default();
        ensure!(status.success(), "{c:?} failed ({status}): {stderr}");
        if first.is_none() {
            first = Some(match out {
                Some(out) => std::fs::read(out)?,
                None => Vec::new(),
            });
        }
    }
    Ok((run, first.context("no run")?))
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

fn network(args: &Args, work: &Path, certkeeper: &Path) -> anyhow::Result<()> {
    let nginx_bin = find_tool("nginx", &["/usr/sbin/nginx", "/usr/bin/nginx"])?;
    let nmap = find_tool("nmap", &["/usr/bin/nmap", "/usr/local/bin/nmap"])?;
    let n = args.endpoints;
    let layout = args.layout;
    let ranges = layout.ranges(n);
    let addresses = layout.addresses(n);
    println!(
        "\n== network: {n} TLS endpoints on {} ({} probes: {addresses} addresses x 2 ports)",
        ranges.join(" "),
        addresses * 2,
    );

    let dir = work.join("network");
    let certs = dir.join("certs");
    if certs.exists() {
        std::fs::remove_dir_all(&certs)?;
    }
    std::fs::create_dir_all(&certs)?;
    std::fs::create_dir_all(dir.join("logs"))?;
    let built = Instant::now();
    let mut pki = Pki::new()?;
    std::fs::write(dir.join("ca.pem"), pki.root.cert.to_pem()?)?;
    let mut expected: HashMap<SocketAddr, Endpoint> = HashMap::new();
    let mut servers = String::new();
    for i in 0..n {
        let endpoint = pki.endpoint(layout, i, n, &certs)?;
        servers.push_str(&endpoint.nginx);
        expected.insert(endpoint.addr, endpoint);
    }
    let mut mix: BTreeMap<String, usize> = BTreeMap::new();
    for e in expected.values() {
        let p = e.profile;
        let label = format!(
            "{:?}{}",
            p.key,
            if p.legacy {
                " legacy (TLS 1.0, SHA-1)"
            } else if p.via_intermediate {
                " via the issuing CA"
            } else {
                " from the root"
            }
        );
        *mix.entry(label).or_default() += 1;
    }
    println!(
        "estate: {n} distinct leaves, built in {:.1}s: {}",
        built.elapsed().as_secs_f64(),
        mix.iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    std::fs::write(
        dir.join("nginx.conf"),
        format!(
            "daemon off; master_process on; worker_processes 2; worker_rlimit_nofile {nofile};\n\
             pid {d}/nginx.pid; error_log {d}/logs/error.log;\n\
             events {{ worker_connections {nofile}; }}\n\
             http {{ access_log off; client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; \
             fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
             {servers}}}\n",
            d = dir.display(),
            nofile = (n + 8_192).max(16_384),
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
    let last = layout.endpoint(n.saturating_sub(1), n);
    loop {
        if TcpStream::connect_timeout(&last, Duration::from_millis(200)).is_ok() {
            break;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            bail!("nginx exited ({status}): {}", server.error_log());
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("nginx did not start in 120s: {}", server.error_log());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "nginx up in {:.1}s (2 workers), {n} endpoints",
        started.elapsed().as_secs_f64()
    );

    let out = server.dir.join("out");
    let (nmap_run, nmap_stdout) = best_of(args.runs, Some(&out), || {
        let mut c = Command::new(&nmap);
        c.args(["-Pn", "-n", "-T4", "-p", "443,8443", "--script", "ssl-cert"])
            .args(&ranges);
        c
    })?;
    let nmap_found = String::from_utf8_lossy(&nmap_stdout)
        .lines()
        .filter(|l| l.contains("ssl-cert: Subject"))
        .count();

    let roots = server.dir.join("ca.pem");
    let (ck_run, ck_stdout) = best_of(args.runs, Some(&out), || {
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
    let check = check_network(&ck_stdout, &expected)?;
    drop(server);

    println!(
        "nmap -Pn -n -T4 -p 443,8443 --script ssl-cert: best {:.3}s ({}), peak RSS {:.1} MiB, {nmap_found} certificates",
        nmap_run.best.as_secs_f64(),
        show(&nmap_run.times),
        nmap_run.peak_kib as f64 / 1024.0
    );
    println!(
        "certkeeper scan --concurrency {}: best {:.3}s ({}), peak RSS {:.1} MiB, {} certificates",
        args.concurrency,
        ck_run.best.as_secs_f64(),
        show(&ck_run.times),
        ck_run.peak_kib as f64 / 1024.0,
        check.with_chain
    );
    println!(
        "ratio nmap/certkeeper: {:.2}x (target >= 5x)",
        nmap_run.best.as_secs_f64() / ck_run.best.as_secs_f64().max(1e-9)
    );
    let complete = check.correct == n && check.problems.is_empty();
    println!(
        "certkeeper found {}/{n} endpoints with the right leaf and exactly the expected findings ({:.1}%){}",
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
    expected: &HashMap<SocketAddr, Endpoint>,
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
        if got != want.fingerprint {
            check
                .problems
                .push(format!("{addr}: leaf {got}, expected {}", want.fingerprint));
            continue;
        }
        let mut codes: Vec<&str> = record["findings"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(|f| f["code"].as_str())
            .collect();
        codes.sort_unstable();
        let mut wanted = want.profile.expected_findings().to_vec();
        wanted.sort_unstable();
        if codes != wanted {
            check.problems.push(format!(
                "{addr} ({:?}): findings {codes:?}, expected {wanted:?}",
                want.profile
            ));
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

fn files(args: &Args, work: &Path, certkeeper: &Path, pki: &mut Pki) -> anyhow::Result<()> {
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
            let leaf = pki.root_leaf(&format!("host{i}.files.bench.test"), i.is_multiple_of(10))?;
            certs.push((leaf.to_pem()?, leaf.to_der()?));
        }
        let ca_pem = pki.root.cert.to_pem()?;
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
    best_of(1, None, cat)?;
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

    let (cat_run, _) = best_of(args.runs, None, cat)?;
    let (ck_run, _) = best_of(args.runs, None, || {
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
        cat_run.best.as_secs_f64(),
        show(&cat_run.times)
    );
    println!(
        "certkeeper scan --files --format json > /dev/null: best {:.3}s ({}), {:.0} files/s",
        ck_run.best.as_secs_f64(),
        show(&ck_run.times),
        n as f64 / ck_run.best.as_secs_f64().max(1e-9)
    );
    println!(
        "ratio certkeeper/cat: {:.2}x (target <= 2x)",
        ck_run.best.as_secs_f64() / cat_run.best.as_secs_f64().max(1e-9)
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
