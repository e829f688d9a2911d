//! A private Postfix for the e-mail tests, with Dovecot as its SASL server
//! when SMTP AUTH is wanted.
//!
//! [`Mta::start`] writes a `main.cf`/`master.cf` of its own in a temporary
//! directory (config, queue, data, mailboxes and logs all inside it; never
//! /etc/postfix, never the system's mail service, which may be running on
//! port 25), with submission (STARTTLS offered) and SMTPS (implicit TLS)
//! listeners on free loopback ports. Mail for `certkeeper.test` is accepted
//! for the users it is given and delivered by Postfix's `virtual` agent to a
//! Maildir per user; other domains are refused (`reject_unauth_destination`,
//! no `permit_mynetworks`, so a 5xx even from 127.0.0.1). The server
//! certificate is issued by a CA made for the test ([`Mta::ca_file`]). With
//! [`Sasl`], a Dovecot auth service checks the one account and Postfix
//! accepts mail only from clients that authenticated over TLS.

// Test scaffolding: a failed unwrap is a failed test (see clippy.toml), and
// helper functions are outside the reach of `allow-unwrap-in-tests`.
#![allow(dead_code, clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};

/// Postfix's control program, as Debian installs it.
pub const POSTFIX: &str = "/usr/sbin/postfix";
/// Dovecot's master, as Debian installs it.
pub const DOVECOT: &str = "/usr/sbin/dovecot";
/// The mail domain the instance delivers locally.
pub const DOMAIN: &str = "certkeeper.test";

/// An SMTP AUTH account, checked by Dovecot.
pub struct Sasl<'a> {
    /// The user name.
    pub user: &'a str,
    /// Its password.
    pub password: &'a str,
}

/// A running private Postfix (and Dovecot, with [`Sasl`]); both are stopped
/// on drop, also when the test panics, before the directory is removed.
pub struct Mta {
    dir: tempfile::TempDir,
    /// Submission port: plain SMTP offering STARTTLS.
    pub smtp_port: u16,
    /// SMTPS port: TLS from the first byte.
    pub smtps_port: u16,
    dovecot: Option<Child>,
    running: bool,
}

/// Fails the test with what to do when a server is not installed.
pub fn require(binary: &str, package: &str) {
    assert!(
        Path::new(binary).exists(),
        "{binary} is missing: run tests/run.sh, which installs the Debian packages the \
         tests need (here: {package})"
    );
}

/// A loopback port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Mta {
    /// Starts an instance delivering mail for `users` (local parts in
    /// [`DOMAIN`]); returns once both listeners accept connections.
    pub fn start(users: &[&str], sasl: Option<Sasl<'_>>) -> Mta {
        require(POSTFIX, "postfix");
        if sasl.is_some() {
            require(DOVECOT, "dovecot-imapd");
        }
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let d = dir.display();
        // Postfix's daemons (user postfix) and the virtual agent (user
        // nobody) must traverse the temporary directory.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).unwrap();
        for sub in ["conf", "queue", "tls"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        make_certificates(&dir.join("tls"));

        // Maildirs belong to nobody, as whom `virtual` delivers (it refuses
        // root, and the test runs as root).
        let (uid, gid) = nobody();
        let mail = dir.join("mail");
        std::fs::create_dir(&mail).unwrap();
        std::os::unix::fs::chown(&mail, Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(&mail, std::fs::Permissions::from_mode(0o700)).unwrap();
        let vmailbox: String = users
            .iter()
            .map(|u| format!("{u}@{DOMAIN} {u}/\n"))
            .collect();
        std::fs::write(dir.join("vmailbox"), vmailbox).unwrap();

        let mut sasl_cf = String::new();
        let mut relay = "reject_unauth_destination".to_owned();
        let mut dovecot = None;
        if let Some(sasl) = &sasl {
            dovecot = Some(start_dovecot(dir, sasl));
            sasl_cf = format!(
                "smtpd_sasl_auth_enable = yes\n\
                 smtpd_sasl_type = dovecot\n\
                 smtpd_sasl_path = {d}/sasl/auth\n\
                 smtpd_tls_auth_only = yes\n"
            );
            // Only authenticated clients may send, even to local mailboxes.
            relay = "permit_sasl_authenticated, reject".into();
        }
        let (smtp_port, smtps_port) = (free_port(), free_port());
        // Empty mydestination and local_recipient_maps: nothing is delivered
        // locally (and smtpd would otherwise wait for a proxymap lookup of
        // the system's passwd). Logs go to a file (postlogd): no syslog here.
        std::fs::write(
            dir.join("conf/main.cf"),
            format!(
                "compatibility_level = 3.6\n\
                 myhostname = mx.{DOMAIN}\n\
                 mydomain = {DOMAIN}\n\
                 myorigin = {DOMAIN}\n\
                 queue_directory = {d}/queue\n\
                 data_directory = {d}/data\n\
                 inet_interfaces = 127.0.0.1\n\
                 inet_protocols = ipv4\n\
                 mydestination =\n\
                 local_recipient_maps =\n\
                 alias_maps =\n\
                 alias_database =\n\
                 biff = no\n\
                 mynetworks = 127.0.0.0/8\n\
                 smtpd_relay_restrictions = {relay}\n\
                 smtpd_recipient_restrictions =\n\
                 virtual_mailbox_domains = {DOMAIN}\n\
                 virtual_mailbox_base = {d}/mail\n\
                 virtual_mailbox_maps = texthash:{d}/vmailbox\n\
                 virtual_uid_maps = static:{uid}\n\
                 virtual_gid_maps = static:{gid}\n\
                 maillog_file_prefixes = {d}\n\
                 maillog_file = {d}/maillog\n\
                 smtpd_tls_cert_file = {d}/tls/server.pem\n\
                 smtpd_tls_key_file = {d}/tls/server.key\n\
                 smtpd_tls_security_level = may\n\
                 smtpd_tls_loglevel = 1\n\
                 {sasl_cf}"
            ),
        )
        .unwrap();
        // The services of Debian's master.cf that mail through smtpd to
        // virtual needs, none chrooted.
        std::fs::write(
            dir.join("conf/master.cf"),
            format!(
                "127.0.0.1:{smtp_port} inet n - n - - smtpd\n\
                 127.0.0.1:{smtps_port} inet n - n - - smtpd\n  \
                 -o smtpd_tls_wrappermode=yes\n  -o smtpd_tls_security_level=encrypt\n\
                 cleanup unix n - n - 0 cleanup\n\
                 qmgr unix n - n 300 1 qmgr\n\
                 tlsmgr unix - - n 1000? 1 tlsmgr\n\
                 rewrite unix - - n - - trivial-rewrite\n\
                 bounce unix - - n - 0 bounce\n\
                 defer unix - - n - 0 bounce\n\
                 trace unix - - n - 0 bounce\n\
                 verify unix - - n - 1 verify\n\
                 flush unix n - n 1000? 0 flush\n\
                 proxymap unix - - n - - proxymap\n\
                 showq unix n - n - - showq\n\
                 error unix - - n - - error\n\
                 retry unix - - n - - error\n\
                 discard unix - - n - - discard\n\
                 smtp unix - - n - - smtp\n\
                 relay unix - - n - - smtp\n\
                 virtual unix - n n - - virtual\n\
                 anvil unix - - n - 1 anvil\n\
                 scache unix - - n - 1 scache\n\
                 postlog unix-dgram n - n - 1 postlogd\n"
            ),
        )
        .unwrap();
        let mta = Mta {
            dir: temp,
            smtp_port,
            smtps_port,
            dovecot,
            running: true,
        };
        let out = mta.postfix("start");
        assert!(
            out.status.success(),
            "postfix start failed: {}{}\nmaillog:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            mta.log()
        );
        let up = eventually(Duration::from_secs(10), || {
            [smtp_port, smtps_port]
                .iter()
                .all(|&p| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok())
                .then_some(())
        });
        assert!(
            up.is_some(),
            "postfix does not listen; maillog:\n{}",
            mta.log()
        );
        mta
    }

    /// The CA that issued the server certificate (PEM), for `ca_file`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("tls/ca.pem")
    }

    /// Postfix's log of this instance.
    pub fn log(&self) -> String {
        let mut log = std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default();
        if self.dovecot.is_some() {
            log.push_str("\n--- dovecot ---\n");
            log.push_str(
                &std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default(),
            );
        }
        log
    }

    /// The messages delivered to `user` so far, oldest first.
    pub fn mailbox(&self, user: &str) -> Vec<Vec<u8>> {
        let new = self.dir.path().join("mail").join(user).join("new");
        let Ok(entries) = std::fs::read_dir(new) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        // Maildir names start with the delivery time in seconds, then a
        // per-delivery counter; the modification time orders them well enough.
        files.sort_by_key(|p| (std::fs::metadata(p).unwrap().modified().unwrap(), p.clone()));
        files.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    /// Waits (up to 30 s, looking every 100 ms) until `user` has `count`
    /// messages, and returns them; fails with the log if they do not come.
    pub fn wait_for_mail(&self, user: &str, count: usize) -> Vec<Vec<u8>> {
        let got = eventually(Duration::from_secs(30), || {
            let mail = self.mailbox(user);
            (mail.len() >= count).then_some(mail)
        });
        got.unwrap_or_else(|| {
            panic!(
                "{user}@{DOMAIN} did not get {count} message(s): it has {}; maillog:\n{}",
                self.mailbox(user).len(),
                self.log()
            )
        })
    }

    fn postfix(&self, what: &str) -> Output {
        Command::new(POSTFIX)
            .arg("-c")
            .arg(self.dir.path().join("conf"))
            .arg(what)
            .output()
            .unwrap()
    }
}

impl Drop for Mta {
    fn drop(&mut self) {
        if self.running {
            self.running = false;
            // `postfix stop` waits for the master to exit.
            let _ = self.postfix("stop");
        }
        if let Some(mut child) = self.dovecot.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            if eventually(Duration::from_secs(10), || child.try_wait().ok()?).is_none() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// `check` every 100 ms until it gives a value or `timeout` has passed.
pub fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Uid and gid of `nobody`, from /etc/passwd.
fn nobody() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let fields: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("nobody:"))
        .expect("a nobody user")
        .split(':')
        .collect();
    (fields[2].parse().unwrap(), fields[3].parse().unwrap())
}

/// Dovecot as an auth service only (`protocols = none`): one account in a
/// passwd-file, its client socket at `dir/sasl/auth` for Postfix.
fn start_dovecot(dir: &Path, sasl: &Sasl<'_>) -> Child {
    let d = dir.display();
    std::fs::create_dir_all(dir.join("sasl")).unwrap();
    std::fs::set_permissions(dir.join("sasl"), std::fs::Permissions::from_mode(0o755)).unwrap();
    // user:password:uid:gid:gecos:home:shell; no userdb lookup happens for
    // SMTP AUTH, but Dovecot wants one configured.
    std::fs::write(
        dir.join("sasl-users"),
        format!(
            "{}:{{PLAIN}}{}:65534:65534::/nonexistent::\n",
            sasl.user, sasl.password
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("dovecot.conf"),
        format!(
            "base_dir = {d}/dovecot-run\n\
             state_dir = {d}/dovecot-state\n\
             log_path = {d}/dovecot.log\n\
             protocols = none\n\
             ssl = no\n\
             disable_plaintext_auth = no\n\
             auth_mechanisms = plain login\n\
             auth_failure_delay = 0\n\
             passdb {{\n  driver = passwd-file\n  args = {d}/sasl-users\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {d}/sasl-users\n}}\n\
             service auth {{\n  unix_listener {d}/sasl/auth {{\n    mode = 0666\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(DOVECOT)
        .arg("-F")
        .arg("-c")
        .arg(dir.join("dovecot.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let socket = dir.join("sasl/auth");
    if eventually(Duration::from_secs(10), || socket.exists().then_some(())).is_none() {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "dovecot did not start ({}): {}\nlog:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.join("dovecot.log")).unwrap_or_default()
        );
    }
    child
}

fn ec_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn serial() -> openssl::asn1::Asn1Integer {
    let mut bn = BigNum::new().unwrap();
    bn.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    bn.to_asn1_integer().unwrap()
}

/// A CA (`ca.pem`) and the server's certificate (`server.pem`,
/// `server.key`) for `mx.certkeeper.test`, `localhost` and 127.0.0.1.
fn make_certificates(dir: &Path) {
    let name = |cn: &str| {
        let mut b = X509NameBuilder::new().unwrap();
        b.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
        b.build()
    };
    let ca_key = ec_key();
    let ca_name = name("Certkeeper test mail CA");
    let mut ca = X509::builder().unwrap();
    ca.set_version(2).unwrap();
    ca.set_serial_number(&serial()).unwrap();
    ca.set_subject_name(&ca_name).unwrap();
    ca.set_issuer_name(&ca_name).unwrap();
    ca.set_pubkey(&ca_key).unwrap();
    ca.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    ca.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    ca.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    ca.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()
            .unwrap(),
    )
    .unwrap();
    ca.sign(&ca_key, MessageDigest::sha256()).unwrap();
    let ca = ca.build();

    let key = ec_key();
    let mut leaf = X509::builder().unwrap();
    leaf.set_version(2).unwrap();
    leaf.set_serial_number(&serial()).unwrap();
    leaf.set_subject_name(&name(&format!("mx.{DOMAIN}")))
        .unwrap();
    leaf.set_issuer_name(ca.subject_name()).unwrap();
    leaf.set_pubkey(&key).unwrap();
    leaf.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    leaf.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .dns(&format!("mx.{DOMAIN}"))
        .dns("localhost")
        .ip("127.0.0.1")
        .build(&leaf.x509v3_context(Some(&ca), None))
        .unwrap();
    leaf.append_extension(san).unwrap();
    leaf.sign(&ca_key, MessageDigest::sha256()).unwrap();
    let leaf = leaf.build();

    std::fs::write(dir.join("ca.pem"), ca.to_pem().unwrap()).unwrap();
    std::fs::write(dir.join("server.pem"), leaf.to_pem().unwrap()).unwrap();
    let key_path = dir.join("server.key");
    std::fs::write(&key_path, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
}
