//! STARTTLS discovery end to end against the real Debian servers of the
//! other protocols the probe speaks: OpenLDAP's slapd (LDAP StartTLS
//! extended operation), vsftpd (FTP `AUTH TLS`) and PostgreSQL (`SSLRequest`).
//! Each test makes a private root, an intermediate and a leaf, starts the
//! server from a config of its own in a temporary directory on a free
//! loopback port (never /etc/ldap, /etc/vsftpd.conf or the system's clusters,
//! never the system's services), and scans it with
//! `certkeeper scan --starttls PORT:PROTOCOL`. The chain read after the
//! upgrade must be exactly the one the server serves, with exactly the
//! expected findings: none for a good chain, `hostname_mismatch` for a name
//! the leaf does not cover, and `expiring` once the server is given a leaf
//! that runs out in 10 days.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{codes, fingerprint, make_chain, scan};
use serde_json::Value;

const SLAPD: &str = "/usr/sbin/slapd";
const VSFTPD: &str = "/usr/sbin/vsftpd";

/// A server process started by a test, with the temporary directory that
/// holds its config and log; stopped on drop (also when the test panics)
/// before that directory is removed.
struct Server {
    name: &'static str,
    dir: tempfile::TempDir,
    log: PathBuf,
    child: Option<Child>,
    port: u16,
}

impl Server {
    /// Spawns `command` (which must stay in the foreground) with its output
    /// to `log` and waits until 127.0.0.1:`port` accepts connections.
    fn spawn(
        name: &'static str,
        dir: tempfile::TempDir,
        port: u16,
        mut command: Command,
    ) -> Server {
        let log = dir.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let mut server = Server {
            name,
            dir,
            log,
            child: Some(child),
            port,
        };
        let up = common::eventually(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| ())
        });
        if up.is_none() {
            let status = server.child.as_mut().unwrap().try_wait().unwrap();
            panic!(
                "{name} did not listen on 127.0.0.1:{port} ({status:?}); log:\n{}",
                server.log()
            );
        }
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `signal` (each server's graceful one), SIGKILL if the process has not
    /// exited within 10 s; then checks nothing listens any more.
    fn stop(&mut self, signal: &str) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status();
        let exited = common::eventually(Duration::from_secs(10), || child.try_wait().ok()?);
        if exited.is_none() {
            let _ = child.kill();
        }
        let _ = child.wait();
    }

    /// Stops the server and asserts that the port is closed afterwards.
    fn stop_and_check(&mut self, signal: &str) {
        self.stop(signal);
        let closed = common::eventually(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", self.port))
                .is_err()
                .then_some(())
        });
        assert!(
            closed.is_some(),
            "something still listens on {} once {} is stopped",
            self.port,
            self.name
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop("KILL");
    }
}

/// slapd serving LDAP on 127.0.0.1:`port` with StartTLS offered with `cert`
/// (leaf and intermediate) and `key`. No database: the root DSE and the
/// StartTLS extended operation are all a certificate scan meets.
fn start_slapd(port: u16, cert: &Path, key: &Path) -> Server {
    assert!(
        Path::new(SLAPD).exists(),
        "slapd is not installed; tests/run.sh installs it (apt-get install slapd ldap-utils)"
    );
    let temp = tempfile::tempdir().unwrap();
    let d = temp.path().display();
    let conf = temp.path().join("slapd.conf");
    std::fs::write(
        &conf,
        format!(
            "include /etc/ldap/schema/core.schema\n\
             pidfile {d}/slapd.pid\n\
             argsfile {d}/slapd.args\n\
             TLSCertificateFile {cert}\n\
             TLSCertificateKeyFile {key}\n",
            cert = cert.display(),
            key = key.display()
        ),
    )
    .unwrap();
    let mut command = Command::new(SLAPD);
    // -d 256 (stats): stays in the foreground and logs each operation, so
    // the test can see the StartTLS request. Without -u/-g slapd started by
    // root stays root and can read the temporary directory.
    command
        .args(["-d", "256", "-h"])
        .arg(format!("ldap://127.0.0.1:{port}/"))
        .arg("-f")
        .arg(&conf);
    Server::spawn("slapd", temp, port, command)
}

/// vsftpd listening on 127.0.0.1:`port`, offering `AUTH TLS` with `cert`
/// (leaf and intermediate) and `key`. Nobody can log in: local logins are
/// on (vsftpd refuses to start with neither kind) but only the users of an
/// empty list may try, and anonymous access is off.
fn start_vsftpd(port: u16, cert: &Path, key: &Path) -> Server {
    assert!(
        Path::new(VSFTPD).exists(),
        "vsftpd is not installed; tests/run.sh installs it (apt-get install vsftpd)"
    );
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let d = dir.display();
    // vsftpd insists that its secure_chroot_dir exists and is not writable
    // by its unprivileged user.
    std::fs::create_dir(dir.join("empty")).unwrap();
    std::fs::set_permissions(dir.join("empty"), std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::write(dir.join("users"), "").unwrap();
    let conf = dir.join("vsftpd.conf");
    std::fs::write(
        &conf,
        format!(
            "listen=YES\n\
             listen_ipv6=NO\n\
             listen_address=127.0.0.1\n\
             listen_port={port}\n\
             background=NO\n\
             anonymous_enable=NO\n\
             local_enable=YES\n\
             userlist_enable=YES\n\
             userlist_deny=NO\n\
             userlist_file={d}/users\n\
             write_enable=NO\n\
             pasv_enable=NO\n\
             ssl_enable=YES\n\
             rsa_cert_file={cert}\n\
             rsa_private_key_file={key}\n\
             secure_chroot_dir={d}/empty\n\
             syslog_enable=NO\n\
             xferlog_enable=YES\n\
             xferlog_std_format=NO\n\
             log_ftp_protocol=YES\n\
             vsftpd_log_file={d}/protocol.log\n",
            cert = cert.display(),
            key = key.display()
        ),
    )
    .unwrap();
    let mut command = Command::new(VSFTPD);
    command.arg(&conf);
    Server::spawn("vsftpd", temp, port, command)
}

/// The newest PostgreSQL server binaries Debian installed
/// (`/usr/lib/postgresql/VERSION/bin`).
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!("PostgreSQL is not installed; tests/run.sh installs it (apt-get install postgresql)")
    })
}

/// `command` as the unprivileged `nobody` (65534) when the test runs as
/// root, since initdb and postgres refuse to run as root; as is otherwise.
fn unprivileged(program: &Path, root: bool) -> Command {
    if root {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn running_as_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// A PostgreSQL cluster made by initdb in a temporary directory of its own,
/// owned by the user it runs as.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    root: bool,
}

impl Cluster {
    /// `initdb` with every connection rejected (`--auth=reject`): a
    /// certificate scan never logs in, and nobody else can.
    fn init() -> Cluster {
        let bin = postgres_bin();
        let root = running_as_root();
        let dir = tempfile::tempdir().unwrap();
        if root {
            std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
        }
        let out = unprivileged(&bin.join("initdb"), root)
            .arg("-D")
            .arg(dir.path().join("data"))
            .args([
                "--auth=reject",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Cluster { dir, bin, root }
    }

    /// Copies `cert` and `key` where the server's user can read them (the
    /// key private to it, as postgres demands) and starts `postgres` on
    /// 127.0.0.1:`port` with `ssl = on`, its socket in the cluster's
    /// directory. The returned server holds a directory of its own for its
    /// log; the cluster outlives it, so it can be started again.
    fn start(&self, port: u16, cert: &Path, key: &Path) -> Server {
        let d = self.dir.path();
        let (cert_copy, key_copy) = (d.join(format!("{port}.crt")), d.join(format!("{port}.key")));
        std::fs::copy(cert, &cert_copy).unwrap();
        std::fs::copy(key, &key_copy).unwrap();
        std::fs::set_permissions(&key_copy, std::fs::Permissions::from_mode(0o600)).unwrap();
        if self.root {
            for file in [&cert_copy, &key_copy] {
                std::os::unix::fs::chown(file, Some(65534), Some(65534)).unwrap();
            }
        }
        let mut command = unprivileged(&self.bin.join("postgres"), self.root);
        command
            .arg("-D")
            .arg(d.join("data"))
            .arg("-k")
            .arg(d)
            .arg("-p")
            .arg(port.to_string())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "ssl=on"])
            .arg("-c")
            .arg(format!("ssl_cert_file={}", cert_copy.display()))
            .arg("-c")
            .arg(format!("ssl_key_file={}", key_copy.display()))
            .args(["-c", "log_connections=on"]);
        Server::spawn("postgres", tempfile::tempdir().unwrap(), port, command)
    }
}

/// A private chain for `name` in a directory of its own: root.pem, the
/// leaf's key, and served.pem (leaf then intermediate, as a server should
/// send them).
struct Chain {
    dir: tempfile::TempDir,
}

impl Chain {
    fn new(name: &str, leaf_days: u32) -> Chain {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        make_chain(d, name, leaf_days);
        let served: String = ["leaf.pem", "inter.pem"]
            .iter()
            .map(|f| std::fs::read_to_string(d.join(f)).unwrap())
            .collect();
        std::fs::write(d.join("served.pem"), served).unwrap();
        Chain { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn roots(&self) -> String {
        self.path("root.pem").display().to_string()
    }

    fn leaf_fp(&self) -> String {
        fingerprint(self.dir.path(), "leaf.pem")
    }

    fn inter_fp(&self) -> String {
        fingerprint(self.dir.path(), "inter.pem")
    }

    /// Asserts `record` is a sighting of exactly this chain (leaf then
    /// intermediate, nothing else) on `port` after a `protocol` upgrade.
    fn assert_served(&self, record: &Value, port: u16, protocol: &str) {
        assert_eq!(record["source"], "network", "{record}");
        assert_eq!(record["ip"], "127.0.0.1", "{record}");
        assert_eq!(record["port"], port, "{record}");
        assert_eq!(record["starttls"], protocol, "{record}");
        assert!(record.get("error").is_none(), "{record}");
        assert!(
            ["TLSv1.2", "TLSv1.3"].contains(&record["tls_version"].as_str().unwrap()),
            "{record}"
        );
        let chain = record["chain"].as_array().unwrap();
        assert_eq!(chain.len(), 2, "leaf and intermediate, as served: {record}");
        assert_eq!(chain[0]["fingerprint_sha256"], self.leaf_fp(), "{record}");
        assert_eq!(chain[1]["fingerprint_sha256"], self.inter_fp(), "{record}");
    }
}

/// The checks every server gets, on a server started on `port` with the
/// 90-day `good` chain for `name`: scanned by address (no name to check),
/// the chain as served and no findings; scanned as `name` and as a name
/// the leaf does not cover, no findings and `hostname_mismatch`.
fn check_good_chain(good: &Chain, port: u16, protocol: &str, name: &str) {
    let (port_arg, starttls) = (port.to_string(), format!("{port}:{protocol}"));
    let records = scan(&[
        "127.0.0.1",
        "--ports",
        &port_arg,
        "--starttls",
        &starttls,
        "--trusted-roots",
        &good.roots(),
    ]);
    assert_eq!(records.len(), 1, "one record: {records:#?}");
    good.assert_served(&records[0], port, protocol);
    assert_eq!(
        records[0]["chain"][0]["subject"],
        format!("CN={name}"),
        "{}",
        records[0]
    );
    assert_eq!(codes(&records[0]), Vec::<&str>::new(), "{}", records[0]);

    let records = scan(&[
        "--resolve",
        &format!("{name}:{port}:127.0.0.1"),
        "--resolve",
        &format!("other.test:{port}:127.0.0.1"),
        "--starttls",
        &starttls,
        "--trusted-roots",
        &good.roots(),
    ]);
    assert_eq!(records.len(), 2, "{records:#?}");
    for record in &records {
        good.assert_served(record, port, protocol);
        let expected: &[&str] = match record["sni"].as_str().unwrap() {
            n if n == name => &[],
            "other.test" => &["hostname_mismatch"],
            other => panic!("unexpected record for {other}: {record}"),
        };
        assert_eq!(codes(record), expected, "{record}");
    }
}

/// On a server started on `port` with the 10-day `soon` chain: the chain as
/// served, and `expiring` as the only finding, with the whole days left:
/// 10, or 9 once a second has passed since the leaf was issued for 10 days.
fn check_expiring_chain(soon: &Chain, port: u16, protocol: &str) {
    let records = scan(&[
        "127.0.0.1",
        "--ports",
        &port.to_string(),
        "--starttls",
        &format!("{port}:{protocol}"),
        "--trusted-roots",
        &soon.roots(),
    ]);
    assert_eq!(records.len(), 1, "one record: {records:#?}");
    let record = &records[0];
    soon.assert_served(record, port, protocol);
    assert_eq!(codes(record), ["expiring"], "{record}");
    let days = record["findings"][0]["days"].as_i64();
    assert!(matches!(days, Some(9 | 10)), "{record}");
}

/// Scanning the port without the upgrade (`PORT:none`) sends a client hello
/// to a server that speaks its plain protocol: an error record, no chain.
fn check_without_upgrade(port: u16) {
    let records = scan(&[
        "127.0.0.1",
        "--ports",
        &port.to_string(),
        "--starttls",
        &format!("{port}:none"),
    ]);
    assert_eq!(records.len(), 1, "{records:#?}");
    let record = &records[0];
    assert!(record.get("starttls").is_none(), "{record}");
    assert_eq!(record["chain"].as_array().unwrap().len(), 0, "{record}");
    assert!(
        record["error"]
            .as_str()
            .is_some_and(|e| e.contains("TLS handshake failed")),
        "{record}"
    );
}

#[test]
fn slapd_ldap_starttls_chain_is_read_after_the_extended_operation() {
    let good = Chain::new("ldap.test", 90);
    let port = common::free_port();
    let mut slapd = start_slapd(port, &good.path("served.pem"), &good.path("leaf.key"));
    check_good_chain(&good, port, "ldap", "ldap.test");
    check_without_upgrade(port);
    // slapd itself answered the StartTLS extended operation and finished a
    // TLS handshake on each of the three upgraded connections.
    let log = common::eventually(Duration::from_secs(10), || {
        let log = slapd.log();
        (log.matches("EXT oid=1.3.6.1.4.1.1466.20037").count() >= 3
            && log.matches("TLS established").count() >= 3)
            .then_some(log)
    });
    assert!(log.is_some(), "slapd log:\n{}", slapd.log());
    slapd.stop_and_check("TERM");

    let soon = Chain::new("ldap.test", 10);
    let port = common::free_port();
    let mut slapd = start_slapd(port, &soon.path("served.pem"), &soon.path("leaf.key"));
    check_expiring_chain(&soon, port, "ldap");
    slapd.stop_and_check("TERM");
}

#[test]
fn vsftpd_ftp_auth_tls_chain_is_read_after_the_upgrade() {
    let good = Chain::new("ftp.test", 90);
    let port = common::free_port();
    let mut vsftpd = start_vsftpd(port, &good.path("served.pem"), &good.path("leaf.key"));
    check_good_chain(&good, port, "ftp", "ftp.test");
    check_without_upgrade(port);
    // vsftpd logged the AUTH TLS command of each upgraded connection.
    let protocol_log = vsftpd.dir.path().join("protocol.log");
    let seen = common::eventually(Duration::from_secs(10), || {
        let log = std::fs::read_to_string(&protocol_log).unwrap_or_default();
        (log.matches("\"AUTH TLS\"").count() >= 3).then_some(())
    });
    assert!(
        seen.is_some(),
        "vsftpd protocol log:\n{}\nvsftpd output:\n{}",
        std::fs::read_to_string(&protocol_log).unwrap_or_default(),
        vsftpd.log()
    );
    vsftpd.stop_and_check("TERM");

    let soon = Chain::new("ftp.test", 10);
    let port = common::free_port();
    let mut vsftpd = start_vsftpd(port, &soon.path("served.pem"), &soon.path("leaf.key"));
    check_expiring_chain(&soon, port, "ftp");
    vsftpd.stop_and_check("TERM");
}

#[test]
fn postgres_ssl_request_chain_is_read_after_the_upgrade() {
    let cluster = Cluster::init();
    let good = Chain::new("db.test", 90);
    let port = common::free_port();
    let mut postgres = cluster.start(port, &good.path("served.pem"), &good.path("leaf.key"));
    check_good_chain(&good, port, "postgres", "db.test");
    // "postgresql" is accepted as the same protocol.
    let records = scan(&[
        "127.0.0.1",
        "--ports",
        &port.to_string(),
        "--starttls",
        &format!("{port}:postgresql"),
        "--trusted-roots",
        &good.roots(),
    ]);
    assert_eq!(records.len(), 1, "{records:#?}");
    good.assert_served(&records[0], port, "postgres");
    check_without_upgrade(port);
    // PostgreSQL saw the connections (it logs no more: the scan never
    // authenticates).
    let log = common::eventually(Duration::from_secs(10), || {
        let log = postgres.log();
        (log.matches("connection received: host=127.0.0.1").count() >= 4).then_some(log)
    });
    assert!(log.is_some(), "postgres log:\n{}", postgres.log());
    // SIGINT: fast shutdown.
    postgres.stop_and_check("INT");

    // The same cluster restarted with a leaf that expires in 10 days.
    let soon = Chain::new("db.test", 10);
    let port = common::free_port();
    let mut postgres = cluster.start(port, &soon.path("served.pem"), &soon.path("leaf.key"));
    check_expiring_chain(&soon, port, "postgres");
    postgres.stop_and_check("INT");
}
