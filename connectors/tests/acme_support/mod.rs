//! Servers the ACME tests run against, each started on free loopback ports
//! and stopped when dropped: Debian's pebble (with pebble-challtestsrv or
//! BIND 9 as its DNS), BIND 9 accepting TSIG-signed updates, a small ACME
//! stub for what pebble 2.4 lacks (ARI, profiles), a CA that accepts
//! connections and never answers, and a static web server for the webroot
//! variant of HTTP-01.

mod stub;

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Builder, X509NameBuilder};

pub use stub::AcmeStub;

/// A loopback port nobody listens on (just now).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn wait_for_port(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    panic!("{what} did not listen on port {port} within 30 s; its log:\n{log}");
}

/// A child process killed when dropped; its output goes to `log`.
pub struct Running {
    child: Child,
    log: PathBuf,
    name: &'static str,
}

impl Running {
    fn spawn(name: &'static str, command: &mut Command, log: PathBuf) -> Self {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self { child, log, name }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last lines of {} ---", self.name);
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn ec_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
    PKey::from_ec_key(EcKey::generate(&group).expect("key")).expect("key")
}

fn name(cn: &str) -> openssl::x509::X509Name {
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_nid(Nid::COMMONNAME, cn).expect("cn");
    name.build()
}

fn builder(subject: &str, key: &PKey<Private>, serial: u32) -> X509Builder {
    let mut cert = X509Builder::new().expect("builder");
    cert.set_version(2).expect("v3");
    let serial = BigNum::from_u32(serial).expect("serial");
    cert.set_serial_number(&Asn1Integer::from_bn(&serial).expect("serial"))
        .expect("serial");
    cert.set_subject_name(&name(subject)).expect("subject");
    cert.set_pubkey(key).expect("key");
    cert.set_not_before(&Asn1Time::days_from_now(0).expect("time"))
        .expect("not before");
    cert.set_not_after(&Asn1Time::days_from_now(2).expect("time"))
        .expect("not after");
    cert
}

/// A throw-away CA and a leaf it signed.
pub struct TestPki {
    /// The CA certificate.
    pub ca: X509,
    /// The leaf: serial 0x1234, AKI = the CA's key id.
    pub leaf: X509,
    /// The leaf's key.
    pub leaf_key: PKey<Private>,
}

impl TestPki {
    /// A CA and a leaf for `127.0.0.1` and `localhost`.
    pub fn new() -> Self {
        let ca_key = ec_key();
        let mut ca = builder("certkeeper test CA", &ca_key, 1);
        ca.set_issuer_name(&name("certkeeper test CA"))
            .expect("issuer");
        ca.append_extension(BasicConstraints::new().critical().ca().build().expect("bc"))
            .expect("bc");
        ca.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .expect("ku"),
        )
        .expect("ku");
        let ski = SubjectKeyIdentifier::new()
            .build(&ca.x509v3_context(None, None))
            .expect("ski");
        ca.append_extension(ski).expect("ski");
        ca.sign(&ca_key, MessageDigest::sha256()).expect("sign");
        let ca = ca.build();

        let leaf_key = ec_key();
        let mut leaf = builder("localhost", &leaf_key, 0x1234);
        leaf.set_issuer_name(ca.subject_name()).expect("issuer");
        let san = SubjectAlternativeName::new()
            .dns("localhost")
            .ip("127.0.0.1")
            .build(&leaf.x509v3_context(Some(&ca), None))
            .expect("san");
        leaf.append_extension(san).expect("san");
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&leaf.x509v3_context(Some(&ca), None))
            .expect("aki");
        leaf.append_extension(aki).expect("aki");
        leaf.sign(&ca_key, MessageDigest::sha256()).expect("sign");
        Self {
            ca,
            leaf: leaf.build(),
            leaf_key,
        }
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        String::from_utf8(self.ca.to_pem().expect("pem")).expect("utf-8")
    }

    /// The RFC 9773 identifier of the leaf, computed here from the CA's key
    /// id and the known serial.
    pub fn leaf_ari_id(&self) -> String {
        let key_id = self.ca.subject_key_id().expect("ski").as_slice().to_vec();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(key_id),
            URL_SAFE_NO_PAD.encode([0x12u8, 0x34])
        )
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

/// Which DNS server pebble asks.
pub enum PebbleDns {
    /// pebble-challtestsrv, answering 127.0.0.1 for every name.
    ChallTestSrv,
    /// Another server (BIND).
    Server(SocketAddr),
}

/// A running pebble (and its challtestsrv, when used).
pub struct Pebble {
    /// The directory URL.
    pub directory_url: String,
    /// PEM of the CA that signed pebble's TLS certificate.
    pub root_pem: String,
    /// Pebble's management interface (`/roots/0`, `/cert-status-by-serial/S`);
    /// the daemon's issuance tests read revocation status from it.
    #[allow(dead_code)]
    pub management_url: String,
    /// Pebble's log: `Added order` once per order it placed.
    #[allow(dead_code)]
    pub log: PathBuf,
    _processes: Vec<Running>,
    _dir: tempfile::TempDir,
}

impl Pebble {
    /// Starts pebble validating HTTP-01 on `http_port`, refusing any name
    /// under `blocked.test`.
    pub fn start(http_port: u16, dns: PebbleDns) -> Self {
        Self::start_with_validity(http_port, dns, None)
    }

    /// Like [`Pebble::start`], issuing certificates valid for
    /// `validity_seconds` (pebble's `certificateValidityPeriod`).
    pub fn start_with_validity(
        http_port: u16,
        dns: PebbleDns,
        validity_seconds: Option<u64>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = TestPki::new();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, pki.leaf.to_pem().expect("pem")).expect("write cert");
        std::fs::write(&key, pki.leaf_key.private_key_to_pem_pkcs8().expect("pem"))
            .expect("write key");
        let port = free_port();
        let management = free_port();
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{port}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": cert,
                "privateKey": key,
                "httpPort": http_port,
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "domainBlocklist": ["blocked.test"],
            }
        });
        let mut config = config;
        if let Some(validity) = validity_seconds {
            config["pebble"]["certificateValidityPeriod"] = serde_json::json!(validity);
        }
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string()).expect("write config");

        let mut processes = Vec::new();
        let dns_server = match dns {
            PebbleDns::Server(addr) => addr.to_string(),
            PebbleDns::ChallTestSrv => {
                let dns_port = free_port();
                let log = dir.path().join("challtestsrv.log");
                processes.push(Running::spawn(
                    "pebble-challtestsrv",
                    Command::new("pebble-challtestsrv").args([
                        "-dns01",
                        &format!("127.0.0.1:{dns_port}"),
                        "-http01",
                        "",
                        "-https01",
                        "",
                        "-tlsalpn01",
                        "",
                        "-management",
                        &format!("127.0.0.1:{}", free_port()),
                        "-defaultIPv6",
                        "",
                    ]),
                    log,
                ));
                format!("127.0.0.1:{dns_port}")
            }
        };
        let log = dir.path().join("pebble.log");
        processes.push(Running::spawn(
            "pebble",
            Command::new("pebble")
                .arg("-config")
                .arg(&config_path)
                .arg("-dnsserver")
                .arg(&dns_server)
                .env("PEBBLE_VA_NOSLEEP", "1"),
            log.clone(),
        ));
        wait_for_port(port, "pebble", &log);
        Self {
            directory_url: format!("https://127.0.0.1:{port}/dir"),
            root_pem: pki.ca_pem(),
            management_url: format!("https://127.0.0.1:{management}"),
            log,
            _processes: processes,
            _dir: dir,
        }
    }
}

/// BIND 9 serving one zone that accepts TXT updates signed with a TSIG key.
pub struct Bind {
    /// Where it listens (UDP and TCP).
    pub addr: SocketAddr,
    /// The zone it serves.
    pub zone: String,
    /// The TSIG key's name.
    pub key_name: String,
    /// The TSIG key, base64.
    pub secret: String,
    _process: Running,
    _dir: tempfile::TempDir,
}

impl Bind {
    /// Starts `named` for `zone`, every name in it resolving to 127.0.0.1.
    pub fn start(zone: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut secret = [0u8; 32];
        openssl::rand::rand_bytes(&mut secret).expect("random");
        let secret = STANDARD.encode(secret);
        let key_name = "certkeeper-test".to_owned();
        let root = dir.path().display();
        let zone_file = dir.path().join("zone.db");
        std::fs::write(
            &zone_file,
            format!(
                "$TTL 60\n\
                 @ IN SOA ns.{zone}. hostmaster.{zone}. 1 60 60 600 60\n\
                 @ IN NS ns.{zone}.\n\
                 ns IN A 127.0.0.1\n\
                 @ IN A 127.0.0.1\n\
                 * IN A 127.0.0.1\n"
            ),
        )
        .expect("zone file");
        let config = dir.path().join("named.conf");
        std::fs::write(
            &config,
            format!(
                "options {{\n\
                   directory \"{root}\";\n\
                   pid-file \"{root}/named.pid\";\n\
                   session-keyfile \"{root}/session.key\";\n\
                   managed-keys-directory \"{root}\";\n\
                   listen-on port {port} {{ 127.0.0.1; }};\n\
                   listen-on-v6 {{ none; }};\n\
                   recursion no;\n\
                   dnssec-validation no;\n\
                 }};\n\
                 controls {{ }};\n\
                 key \"{key_name}\" {{ algorithm hmac-sha256; secret \"{secret}\"; }};\n\
                 zone \"{zone}\" {{\n\
                   type primary;\n\
                   file \"{zone_file}\";\n\
                   update-policy {{ grant {key_name} zonesub TXT; }};\n\
                 }};\n",
                zone_file = zone_file.display(),
            ),
        )
        .expect("named.conf");
        let log = dir.path().join("named.log");
        let process = Running::spawn(
            "named",
            Command::new("/usr/sbin/named")
                .arg("-g")
                .arg("-4")
                .arg("-n")
                .arg("1")
                .arg("-c")
                .arg(&config),
            log.clone(),
        );
        wait_for_port(port, "named", &log);
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            zone: zone.to_owned(),
            key_name,
            secret,
            _process: process,
            _dir: dir,
        }
    }
}

/// A "CA" that accepts TCP connections and never says a word.
pub struct SilentCa {
    /// Its address.
    pub addr: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl SilentCa {
    /// Starts listening.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => held.push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Self { addr, stop }
    }
}

impl Drop for SilentCa {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Serves the files under a directory over plain HTTP, like an existing
/// web server would for the webroot variant of HTTP-01.
pub async fn serve_directory(listen: SocketAddr, root: PathBuf) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let root = root.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let path = request.uri().path().trim_start_matches('/').to_owned();
                    let file = root.join(&path);
                    async move {
                        let found = !path.contains("..");
                        let response = match found.then(|| std::fs::read(&file)) {
                            Some(Ok(bytes)) => Response::new(Full::new(Bytes::from(bytes))),
                            _ => {
                                let mut r = Response::new(Full::new(Bytes::new()));
                                *r.status_mut() = StatusCode::NOT_FOUND;
                                r
                            }
                        };
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
