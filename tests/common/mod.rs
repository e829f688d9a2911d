//! Harness for end-to-end tests: starts the real `certkeeper` binary with a
//! temporary config and state directory, waits for systemd-style READY on a
//! fake `NOTIFY_SOCKET`, and drives it over its API and CLI as a user would.

#![allow(dead_code, clippy::unwrap_used)]

pub mod named;
pub mod nginx;
pub mod surreal;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A two-thread runtime for the servers a test runs in-process (vendor
/// fakes, CT logs) while the daemon runs as a process.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_certkeeper");

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A state directory with a config, and a daemon that may be running.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub config: PathBuf,
    pub child: Option<Child>,
    notify: Option<UnixDatagram>,
}

impl Daemon {
    /// A config with the API on a free port, the embedded store in the temp
    /// dir, plus `extra` TOML appended. Not started.
    pub fn new(extra: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("certkeeper.toml");
        let d = Daemon {
            dir,
            port,
            config,
            child: None,
            notify: None,
        };
        d.write_config(extra);
        d
    }

    /// Rewrites the config (same port and store) with `extra` appended.
    pub fn write_config(&self, extra: &str) {
        let store = self.dir.path().join("store");
        std::fs::write(
            &self.config,
            format!(
                "[api]\nlisten = \"127.0.0.1:{}\"\n\n[store]\nurl = \"surrealkv://{}\"\n\n{extra}",
                self.port,
                store.display()
            ),
        )
        .unwrap();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The `corp-ca` internal CA of the tests' organisation, for `.corp.test`
    /// names, its CRL in this daemon's directory: a `[[connector]]` table.
    pub fn corp_ca(&self) -> String {
        format!(
            "[[connector]]\nname = \"corp-ca\"\ntype = \"internal_ca\"\n\
             passphrase = \"correct horse battery staple\"\nallowed_dns = [\".corp.test\"]\n\
             backdate_seconds = 0\ncrl_path = \"{}\"\n",
            self.path("corp.crl").display()
        )
    }

    /// Starts `certkeeper run` and waits for READY=1.
    pub fn start(&mut self) {
        self.start_with_env(&[]);
    }

    /// Starts with extra environment variables and waits for READY=1.
    pub fn start_with_env(&mut self, env: &[(&str, &str)]) {
        let socket_path = self.dir.path().join(format!("notify-{}", free_port()));
        let notify = UnixDatagram::bind(&socket_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .unwrap();
        let mut command = Command::new(BIN);
        command
            .args(["run", "--config"])
            .arg(&self.config)
            .env("NOTIFY_SOCKET", &socket_path)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in env {
            command.env(k, v);
        }
        self.child = Some(command.spawn().unwrap());
        self.notify = Some(notify);
        self.wait_notify("READY=1", Duration::from_secs(90));
    }

    /// Waits for a notify message containing `what`; panics with the log on timeout.
    pub fn wait_notify(&mut self, what: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Ok(n) = self.notify.as_ref().unwrap().recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                let done = msg.lines().any(|l| l == what);
                seen.push(msg);
                if done {
                    return seen;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "daemon exited ({status}) before {what}; log:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "no {what} within {timeout:?} (got {seen:?}); log:\n{}",
                    self.log()
                );
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends a signal by name (`HUP`, `TERM`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the daemon to exit and returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "daemon did not exit within {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs a CLI command with this config.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap()
    }

    /// Runs a CLI command as the holder of `token` (`CERTKEEPER_TOKEN`).
    pub fn cli_as(&self, token: &str, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env("CERTKEEPER_TOKEN", token)
            .output()
            .unwrap()
    }

    /// Runs a CLI command that must succeed; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "certkeeper {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a CLI command with `--format json` and parses its output.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        serde_json::from_str(&self.cli_ok(&all)).unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// GET over HTTP; returns status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        http("GET", &self.url(path), None, &[])
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A minimal blocking HTTP/1.1 client (the tests should not share code with
/// the CLI's client that they check).
pub fn http(
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let (status, _, body) = http_full(method, url, body, headers);
    (status, body)
}

/// As [`http`], also answering the response's header block.
pub fn http_full(
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let body = body.unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let body = if head.to_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, head.to_owned(), body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

/// A self-signed P-256 certificate for `cn`, expiring in `days`, as PEM
/// (its key is left beside it in `dir`).
pub fn self_signed(dir: &Path, cn: &str, days: u32) -> Vec<u8> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{cn}.key"),
            "-out",
            &format!("{cn}.pem"),
            "-days",
            &days.to_string(),
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    std::fs::read(dir.join(format!("{cn}.pem"))).unwrap()
}

/// Runs `openssl` with args in `dir`; panics with its stderr on failure.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A root CA, an intermediate and a leaf (valid `leaf_days`), written to
/// `dir` as root.pem, inter.pem, leaf.pem and chain.pem (leaf, inter, root).
pub fn make_chain(dir: &Path, name: &str, leaf_days: u32) {
    let days = leaf_days.to_string();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "root.key",
            "-out",
            "root.pem",
            "-days",
            "3650",
            "-subj",
            "/O=Certkeeper Test/CN=Test Root CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "inter.key",
            "-out",
            "inter.csr",
            "-subj",
            "/O=Certkeeper Test/CN=Test Issuing CA",
        ],
    );
    std::fs::write(
        dir.join("inter.ext"),
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "inter.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-out",
            "inter.pem",
            "-days",
            "1825",
            "-extfile",
            "inter.ext",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    std::fs::write(
        dir.join("leaf.ext"),
        format!("subjectAltName=DNS:{name},DNS:www.{name},IP:192.0.2.7\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "inter.pem",
            "-CAkey",
            "inter.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            &days,
            "-extfile",
            "leaf.ext",
        ],
    );
    let chain: String = ["leaf.pem", "inter.pem", "root.pem"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap())
        .collect();
    std::fs::write(dir.join("chain.pem"), chain).unwrap();
}

/// `openssl x509 -noout -fingerprint -sha256` as lowercase hex without colons.
pub fn fingerprint(dir: &Path, pem: &str) -> String {
    let out = openssl(
        dir,
        &["x509", "-in", pem, "-noout", "-fingerprint", "-sha256"],
    );
    out.trim()
        .split('=')
        .nth(1)
        .unwrap()
        .replace(':', "")
        .to_lowercase()
}

/// Polls `check` until it returns Some or `timeout` passes.
pub fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs `certkeeper scan --format json` with `args`; returns its records.
pub fn scan(args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(BIN)
        .args(["scan", "--format", "json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "certkeeper scan {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The finding codes of a scan record, sorted.
pub fn codes(record: &serde_json::Value) -> Vec<&str> {
    let mut codes: Vec<&str> = record["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    codes.sort_unstable();
    codes
}

/// The managed certificate `name` as `certkeeper managed` shows it (null
/// when there is none).
pub fn managed(daemon: &Daemon, name: &str) -> serde_json::Value {
    let all = daemon.cli_json(&["managed"]);
    all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

/// Waits up to `secs` for `name` to satisfy `ok`; panics with the log.
pub fn wait_managed(
    daemon: &Daemon,
    name: &str,
    secs: u64,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    eventually(Duration::from_secs(secs), || {
        let m = managed(daemon, name);
        ok(&m).then_some(m)
    })
    .unwrap_or_else(|| {
        panic!(
            "{name}: {what} did not happen; now {}\n--- daemon log ---\n{}",
            managed(daemon, name),
            daemon.log()
        )
    })
}

/// How many runs of `job` `certkeeper jobs` counts.
pub fn job_runs(daemon: &Daemon, job: &str) -> i64 {
    daemon
        .cli_json(&["jobs"])
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == job)
        .and_then(|j| j["runs"].as_i64())
        .unwrap_or(0)
}

/// Runs the CA import job `job` now and waits for it; its `CA import
/// finished` log line.
pub fn run_ca_import(daemon: &Daemon, job: &str) -> String {
    let before = job_runs(daemon, job);
    let seen = daemon.log().matches("CA import finished").count();
    daemon.cli_ok(&["jobs", "--run-now", job]);
    eventually(Duration::from_secs(60), || {
        (job_runs(daemon, job) > before).then_some(())
    })
    .unwrap_or_else(|| panic!("{job} did not run\n{}", daemon.log()));
    let jobs = daemon.cli_json(&["jobs"]);
    let state = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == job)
        .unwrap();
    assert_eq!(state["failures"], 0, "{job}: {state}");
    daemon
        .log()
        .lines()
        .filter(|l| l.contains("CA import finished"))
        .nth(seen)
        .unwrap_or_else(|| panic!("{job} logged no result\n{}", daemon.log()))
        .to_owned()
}

/// The value of `name=` in a (coloured) log line.
pub fn log_field(line: &str, name: &str) -> String {
    // The log is coloured: drop the escape sequences first.
    let mut plain = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        .to_owned()
}
