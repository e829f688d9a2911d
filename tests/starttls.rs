//! STARTTLS discovery end to end against real mail servers from Debian:
//! Postfix for SMTP, Dovecot for IMAP and POP3. Each test makes a private
//! root, an intermediate and a leaf for mail.test, starts the server from a
//! config of its own in a temporary directory on free loopback ports (never
//! /etc/postfix or /etc/dovecot, never the system's mail services), and scans
//! it with `certkeeper scan --starttls PORT:PROTOCOL`. The chain read after the
//! upgrade must be the one the server serves, with exactly the expected
//! findings.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{codes, fingerprint, make_chain, scan};
use serde_json::Value;

const POSTFIX: &str = "/usr/sbin/postfix";
const DOVECOT: &str = "/usr/sbin/dovecot";

/// A Postfix instance with its own config, queue and data directories, all
/// in a temporary directory of its own; stopped on drop (also when the test
/// panics) before that directory is removed.
struct Postfix {
    dir: tempfile::TempDir,
    running: bool,
}

impl Postfix {
    /// Writes main.cf and master.cf (one smtpd on 127.0.0.1:`port`, STARTTLS
    /// offered with `cert` and `key`) and runs `postfix start`, which returns
    /// once the master has bound its listeners.
    fn start(port: u16, cert: &Path, key: &Path) -> Postfix {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let d = dir.display();
        std::fs::create_dir_all(dir.join("conf")).unwrap();
        std::fs::create_dir_all(dir.join("queue")).unwrap();
        // The master opens data_directory/master.lock as the postfix user,
        // so that user must be able to traverse the temporary directory.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).unwrap();
        // Empty local_recipient_maps and mydestination: smtpd would otherwise
        // wait for a proxymap service that this instance does not run. Logs
        // go to a file (postlogd) since there is no syslog here.
        std::fs::write(
            dir.join("conf/main.cf"),
            format!(
                "compatibility_level = 3.6\n\
                 myhostname = mail.test\n\
                 queue_directory = {d}/queue\n\
                 data_directory = {d}/data\n\
                 inet_interfaces = 127.0.0.1\n\
                 inet_protocols = ipv4\n\
                 mydestination =\n\
                 local_recipient_maps =\n\
                 maillog_file_prefixes = {d}\n\
                 maillog_file = {d}/maillog\n\
                 smtpd_tls_cert_file = {cert}\n\
                 smtpd_tls_key_file = {key}\n\
                 smtpd_tls_security_level = may\n\
                 smtpd_tls_loglevel = 1\n",
                cert = cert.display(),
                key = key.display()
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("conf/master.cf"),
            format!(
                "127.0.0.1:{port} inet n - n - - smtpd\n\
                 tlsmgr unix - - n 1000? 1 tlsmgr\n\
                 postlog unix-dgram n - n - 1 postlogd\n"
            ),
        )
        .unwrap();
        let postfix = Postfix {
            dir: temp,
            running: true,
        };
        let out = postfix.command("start");
        assert!(
            out.status.success(),
            "postfix start failed: {}{}\nmaillog:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            postfix.log()
        );
        postfix
    }

    fn command(&self, what: &str) -> Output {
        Command::new(POSTFIX)
            .arg("-c")
            .arg(self.dir.path().join("conf"))
            .arg(what)
            .output()
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// `postfix stop`: the master terminates its children and exits; the
    /// script waits for that and kills the process group after 5 s.
    fn stop(&mut self) -> Output {
        self.running = false;
        self.command("stop")
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if self.running {
            let _ = self.stop();
        }
    }
}

/// A Dovecot master (`dovecot -F`, in the foreground) with its own config,
/// runtime and state directories in a temporary directory of its own.
struct Dovecot {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Dovecot {
    /// Serves IMAP on 127.0.0.1:`imap` and POP3 on 127.0.0.1:`pop3`, both
    /// offering STARTTLS with `cert` and `key`; returns once both listen.
    fn start(imap: u16, pop3: u16, cert: &Path, key: &Path) -> Dovecot {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let d = dir.display();
        // Login processes run as dovenull, chrooted under base_dir.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).unwrap();
        // An empty passwd-file: nobody can log in, which a certificate scan
        // never tries anyway.
        std::fs::write(dir.join("passwd"), "").unwrap();
        std::fs::write(
            dir.join("dovecot.conf"),
            format!(
                "base_dir = {d}/run\n\
                 state_dir = {d}/state\n\
                 log_path = {d}/dovecot.log\n\
                 protocols = imap pop3\n\
                 listen = 127.0.0.1\n\
                 ssl = yes\n\
                 ssl_cert = <{cert}\n\
                 ssl_key = <{key}\n\
                 passdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
                 userdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
                 service imap-login {{\n  inet_listener imap {{\n    port = {imap}\n  }}\n  \
                 inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
                 service pop3-login {{\n  inet_listener pop3 {{\n    port = {pop3}\n  }}\n  \
                 inet_listener pop3s {{\n    port = 0\n  }}\n}}\n",
                cert = cert.display(),
                key = key.display()
            ),
        )
        .unwrap();
        let child = Command::new(DOVECOT)
            .arg("-F")
            .arg("-c")
            .arg(dir.join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut dovecot = Dovecot {
            dir: temp,
            child: Some(child),
        };
        let up = common::eventually(Duration::from_secs(10), || {
            [imap, pop3]
                .iter()
                .all(|&p| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok())
                .then_some(())
        });
        if up.is_none() {
            let status = dovecot.child.as_mut().unwrap().try_wait().unwrap();
            panic!(
                "dovecot did not start ({status:?}); log:\n{}",
                dovecot.log()
            );
        }
        dovecot
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// SIGTERM, on which the master stops its processes and exits; SIGKILL
    /// if it has not within 10 s.
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let exited = common::eventually(Duration::from_secs(10), || child.try_wait().ok()?);
        if exited.is_none() {
            let _ = child.kill();
        }
        child.wait().ok()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn postfix_starttls_chain_is_read_after_the_smtp_upgrade() {
    assert!(
        Path::new(POSTFIX).exists(),
        "postfix is not installed; tests/run.sh installs it (apt-get install postfix)"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_chain(d, "mail.test", 90);
    // Postfix serves the leaf and the intermediate, as a mail server should.
    let served: String = ["leaf.pem", "inter.pem"]
        .iter()
        .map(|f| std::fs::read_to_string(d.join(f)).unwrap())
        .collect();
    std::fs::write(d.join("served.pem"), served).unwrap();

    let port = common::free_port();
    let mut postfix = Postfix::start(port, &d.join("served.pem"), &d.join("leaf.key"));
    let roots = d.join("root.pem").display().to_string();
    let (port_arg, starttls) = (port.to_string(), format!("{port}:smtp"));
    let leaf_fp = fingerprint(d, "leaf.pem");
    let inter_fp = fingerprint(d, "inter.pem");

    // A bare address: no name to check, so a good chain has no findings.
    let records = scan(&[
        "127.0.0.1",
        "--ports",
        &port_arg,
        "--starttls",
        &starttls,
        "--trusted-roots",
        &roots,
    ]);
    assert_eq!(records.len(), 1, "one record: {records:#?}");
    let record = &records[0];
    assert_eq!(record["source"], "network", "{record}");
    assert_eq!(record["ip"], "127.0.0.1");
    assert_eq!(record["port"], port);
    assert_eq!(record["starttls"], "smtp");
    assert!(record.get("error").is_none(), "{record}");
    assert!(
        ["TLSv1.2", "TLSv1.3"].contains(&record["tls_version"].as_str().unwrap()),
        "{record}"
    );
    assert!(!record["cipher"].as_str().unwrap().is_empty(), "{record}");
    let chain: Vec<&Value> = record["chain"].as_array().unwrap().iter().collect();
    assert_eq!(chain.len(), 2, "leaf and intermediate, as served: {record}");
    assert_eq!(chain[0]["fingerprint_sha256"], leaf_fp);
    assert_eq!(chain[1]["fingerprint_sha256"], inter_fp);
    assert_eq!(chain[0]["subject"], "CN=mail.test");
    assert_eq!(codes(record), Vec::<&str>::new(), "{record}");

    // By name: mail.test is covered by the leaf, other.test is not.
    let records = scan(&[
        "--resolve",
        &format!("mail.test:{port}:127.0.0.1"),
        "--resolve",
        &format!("other.test:{port}:127.0.0.1"),
        "--starttls",
        &starttls,
        "--trusted-roots",
        &roots,
    ]);
    assert_eq!(records.len(), 2, "{records:#?}");
    for record in &records {
        assert_eq!(record["starttls"], "smtp", "{record}");
        assert_eq!(record["chain"][0]["fingerprint_sha256"], leaf_fp);
        let expected: &[&str] = match record["sni"].as_str().unwrap() {
            "mail.test" => &[],
            "other.test" => &["hostname_mismatch"],
            other => panic!("unexpected record for {other}: {record}"),
        };
        assert_eq!(codes(record), expected, "{record}");
    }

    // Without STARTTLS the port answers in plain SMTP: reported, not dropped.
    let records = scan(&["127.0.0.1", "--ports", &port_arg]);
    assert_eq!(records.len(), 1, "{records:#?}");
    assert!(records[0].get("starttls").is_none(), "{}", records[0]);
    assert!(
        records[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("TLS handshake failed")),
        "{}",
        records[0]
    );

    // Postfix itself saw EHLO and STARTTLS on each upgraded connection.
    let upgraded = common::eventually(Duration::from_secs(10), || {
        let n = postfix.log().matches("ehlo=1 starttls=1").count();
        (n >= 3).then_some(n)
    });
    assert!(upgraded.is_some(), "maillog:\n{}", postfix.log());

    let out = postfix.stop();
    assert!(
        out.status.success(),
        "postfix stop: {}\nmaillog:\n{}",
        String::from_utf8_lossy(&out.stderr),
        postfix.log()
    );
    // `postfix stop` returns once the master is gone; the smtpd processes it
    // signalled on its way out may hold the listener a moment longer.
    let closed = common::eventually(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .is_err()
            .then_some(())
    });
    assert!(closed.is_some(), "nothing listens once Postfix is stopped");
}

#[test]
fn dovecot_imap_and_pop3_starttls_chains_are_read() {
    assert!(
        Path::new(DOVECOT).exists(),
        "dovecot is not installed; tests/run.sh installs it (apt-get install dovecot-imapd dovecot-pop3d)"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_chain(d, "mail.test", 90);
    let served: String = ["leaf.pem", "inter.pem"]
        .iter()
        .map(|f| std::fs::read_to_string(d.join(f)).unwrap())
        .collect();
    std::fs::write(d.join("served.pem"), served).unwrap();
    let (imap, pop3) = (common::free_port(), common::free_port());
    let mut dovecot = Dovecot::start(imap, pop3, &d.join("served.pem"), &d.join("leaf.key"));

    let records = scan(&[
        "127.0.0.1",
        "--ports",
        &format!("{imap},{pop3}"),
        "--starttls",
        &format!("{imap}:imap"),
        "--starttls",
        &format!("{pop3}:pop3"),
        "--trusted-roots",
        &d.join("root.pem").display().to_string(),
    ]);
    assert_eq!(records.len(), 2, "one record per port: {records:#?}");
    let leaf_fp = fingerprint(d, "leaf.pem");
    let inter_fp = fingerprint(d, "inter.pem");
    for record in &records {
        let expected = if record["port"] == imap {
            "imap"
        } else {
            "pop3"
        };
        assert_eq!(record["starttls"], expected, "{record}");
        assert!(record.get("error").is_none(), "{record}");
        assert_eq!(record["chain"][0]["fingerprint_sha256"], leaf_fp);
        assert_eq!(record["chain"][1]["fingerprint_sha256"], inter_fp);
        assert_eq!(record["chain"].as_array().unwrap().len(), 2, "{record}");
        assert_eq!(codes(record), Vec::<&str>::new(), "{record}");
    }
    let ports: Vec<&Value> = records.iter().map(|r| &r["port"]).collect();
    assert!(ports.contains(&&Value::from(imap)) && ports.contains(&&Value::from(pop3)));

    // Dovecot logged both sessions as TLS ones.
    let tls = common::eventually(Duration::from_secs(10), || {
        let log = dovecot.log();
        (log.contains("imap-login: Info: Disconnected")
            && log.contains("pop3-login: Info: Disconnected"))
        .then_some(log.matches(", TLS").count())
    });
    assert!(
        tls.is_some_and(|n| n >= 2),
        "dovecot log:\n{}",
        dovecot.log()
    );

    let status = dovecot.stop().unwrap();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", imap)).is_err(),
        "nothing listens once Dovecot is stopped ({status})"
    );
}
