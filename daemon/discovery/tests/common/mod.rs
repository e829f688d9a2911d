//! What the online tests share: a test CA made with the `openssl` crate,
//! a tiny HTTP server on a free loopback port (static answers, request
//! counts, or a peer that accepts and never answers), and an OCSP responder
//! that is the `openssl ocsp` CLI answering each request the server gets.
//!
//! The `openssl ocsp` server mode binds every interface (`-port` takes only
//! a number), so the CLI is run per request (`-reqin`/`-respout`) behind the
//! loopback server instead: the same responder logic, reachable only on
//! 127.0.0.1.

#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{
    X509, X509Builder, X509Crl, X509CrlBuilder, X509Extension, X509NameBuilder, X509RevokedBuilder,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use certkeeper_model::inventory::ParsedCertificate;
use certkeeper_model::inventory::parse::parse_der;

pub const DAY: i64 = 86_400;

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A certificate with its key.
pub struct Issued {
    pub x509: X509,
    pub key: PKey<Private>,
    pub parsed: ParsedCertificate,
}

impl Issued {
    pub fn der(&self) -> Vec<u8> {
        self.x509.to_der().unwrap()
    }

    pub fn pem(&self) -> Vec<u8> {
        self.x509.to_pem().unwrap()
    }

    /// The serial as `openssl ca`'s index file spells it.
    pub fn serial_hex(&self) -> String {
        self.x509
            .serial_number()
            .to_bn()
            .unwrap()
            .to_hex_str()
            .unwrap()
            .to_string()
    }
}

/// URLs to put in a leaf.
#[derive(Default, Clone)]
pub struct Urls {
    pub crl: Option<String>,
    pub ocsp: Option<String>,
    pub ca_issuers: Option<String>,
}

fn ec_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

/// Issues a certificate named `cn`, signed by `issuer` (self-signed when
/// `None`), a CA when `ca`, with `urls` in it.
pub fn issue(cn: &str, issuer: Option<&Issued>, ca: bool, serial: u32, urls: &Urls) -> Issued {
    let key = ec_key();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "Certkeeper Online Tests")
        .unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    let name = name.build();
    let mut builder = X509Builder::new().unwrap();
    builder.set_version(2).unwrap();
    builder
        .set_serial_number(&BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    builder.set_subject_name(&name).unwrap();
    builder
        .set_issuer_name(issuer.map_or(&*name, |i| i.x509.subject_name()))
        .unwrap();
    builder.set_pubkey(&key).unwrap();
    builder
        .set_not_before(&Asn1Time::from_unix(now() - DAY).unwrap())
        .unwrap();
    builder
        .set_not_after(&Asn1Time::from_unix(now() + if ca { 900 } else { 80 } * DAY).unwrap())
        .unwrap();
    let mut constraints = BasicConstraints::new();
    constraints.critical();
    if ca {
        constraints.ca();
    }
    builder
        .append_extension(constraints.build().unwrap())
        .unwrap();
    let mut usage = KeyUsage::new();
    usage.critical().digital_signature();
    if ca {
        usage.key_cert_sign().crl_sign();
    }
    builder.append_extension(usage.build().unwrap()).unwrap();
    let issuer_x509 = issuer.map(|i| &*i.x509);
    let ski = SubjectKeyIdentifier::new()
        .build(&builder.x509v3_context(issuer_x509, None))
        .unwrap();
    builder.append_extension(ski).unwrap();
    if let Some(issuer) = issuer {
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&builder.x509v3_context(Some(&issuer.x509), None))
            .unwrap();
        builder.append_extension(aki).unwrap();
    }
    if !ca {
        let san = SubjectAlternativeName::new()
            .dns(cn)
            .build(&builder.x509v3_context(issuer_x509, None))
            .unwrap();
        builder.append_extension(san).unwrap();
    }
    if let Some(crl) = &urls.crl {
        #[allow(deprecated)]
        let ext = X509Extension::new_nid(
            None,
            None,
            Nid::CRL_DISTRIBUTION_POINTS,
            &format!("URI:{crl}"),
        )
        .unwrap();
        builder.append_extension(ext).unwrap();
    }
    let mut access = Vec::new();
    if let Some(ocsp) = &urls.ocsp {
        access.push(format!("OCSP;URI:{ocsp}"));
    }
    if let Some(ca_issuers) = &urls.ca_issuers {
        access.push(format!("caIssuers;URI:{ca_issuers}"));
    }
    if !access.is_empty() {
        #[allow(deprecated)]
        let ext = X509Extension::new_nid(None, None, Nid::INFO_ACCESS, &access.join(",")).unwrap();
        builder.append_extension(ext).unwrap();
    }
    builder
        .sign(issuer.map_or(&key, |i| &i.key), MessageDigest::sha256())
        .unwrap();
    let x509 = builder.build();
    let parsed = parse_der(&x509.to_der().unwrap()).unwrap();
    Issued { x509, key, parsed }
}

/// A CRL of `ca` (signed with `signer`'s key) revoking `revoked`.
pub fn crl(ca: &Issued, signer: &PKey<Private>, revoked: &[&Issued]) -> X509Crl {
    let mut builder = X509CrlBuilder::new().unwrap();
    builder.set_issuer_name(ca.x509.subject_name()).unwrap();
    builder
        .set_last_update(&Asn1Time::from_unix(now() - 3600).unwrap())
        .unwrap();
    builder
        .set_next_update(&Asn1Time::from_unix(now() + 7 * DAY).unwrap())
        .unwrap();
    for cert in revoked {
        let mut entry = X509RevokedBuilder::new().unwrap();
        entry.set_serial_number(cert.x509.serial_number()).unwrap();
        entry
            .set_revocation_date(&Asn1Time::from_unix(now() - 2 * 3600).unwrap())
            .unwrap();
        builder.add_revoked(entry.build()).unwrap();
    }
    // RFC 5280 §5.2: the authority key identifier and the CRL number,
    // which the builder insists on.
    let keyid = ca.x509.subject_key_id().unwrap().as_slice().to_vec();
    let mut aki = vec![0x30, u8::try_from(keyid.len() + 2).unwrap(), 0x80];
    aki.push(u8::try_from(keyid.len()).unwrap());
    aki.extend(keyid);
    for (oid, der) in [("2.5.29.35", aki), ("2.5.29.20", vec![0x02, 0x01, 0x01])] {
        let ext = X509Extension::new_from_der(
            &Asn1Object::from_str(oid).unwrap(),
            false,
            &Asn1OctetString::new_from_bytes(&der).unwrap(),
        )
        .unwrap();
        builder.append_extension(ext).unwrap();
    }
    builder.sign(signer, MessageDigest::sha256()).unwrap();
    builder.build().unwrap()
}

/// What the server does with a request to a path.
#[derive(Clone)]
pub enum Answer {
    /// 200 with these bytes.
    Body(Vec<u8>),
    /// The `openssl ocsp` CLI's answer to the posted request.
    Ocsp(Arc<OcspResponder>),
}

/// A tiny HTTP/1.1 server on 127.0.0.1, counting requests by path. Routes
/// are set after it starts, since what it serves often names its port.
pub struct Server {
    pub port: u16,
    routes: Arc<Mutex<HashMap<String, Answer>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Server {
    pub async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let routes: Arc<Mutex<HashMap<String, Answer>>> = Arc::default();
        let (served, counter) = (routes.clone(), hits.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (routes, counter) = (served.clone(), counter.clone());
                tokio::spawn(async move {
                    let Some((path, body)) = read_request(&mut socket).await else {
                        return;
                    };
                    *counter.lock().unwrap().entry(path.clone()).or_default() += 1;
                    let route = routes.lock().unwrap().get(&path).cloned();
                    let answer = match route {
                        Some(Answer::Body(bytes)) => Some(bytes),
                        Some(Answer::Ocsp(responder)) => {
                            tokio::task::spawn_blocking(move || responder.answer(&body))
                                .await
                                .unwrap()
                        }
                        None => None,
                    };
                    let response = match answer {
                        Some(bytes) => [
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                bytes.len()
                            )
                            .into_bytes(),
                            bytes,
                        ]
                        .concat(),
                        None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                    };
                    let _ = socket.write_all(&response).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Server { port, routes, hits }
    }

    pub fn route(&self, path: &str, answer: Answer) {
        self.routes.lock().unwrap().insert(path.to_owned(), answer);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// A peer on 127.0.0.1 that accepts connections, reads, and never answers.
pub async fn stalling_peer() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buffer = Vec::new();
    let end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 || buffer.len() > 65_536 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..end]).to_string();
    let path = head.split_whitespace().nth(1)?.to_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = buffer[end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((path, body))
}

/// The `openssl ocsp` CLI as a responder for `ca`, from an index file in
/// `openssl ca`'s format.
pub struct OcspResponder {
    dir: PathBuf,
}

impl OcspResponder {
    /// `revoked` are (certificate, reason) pairs; `good` are valid ones.
    pub fn new(
        dir: &Path,
        ca: &Issued,
        good: &[&Issued],
        revoked: &[(&Issued, &str)],
    ) -> OcspResponder {
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(
            dir.join("ca.key"),
            ca.key.private_key_to_pem_pkcs8().unwrap(),
        )
        .unwrap();
        let when = |t: i64| {
            chrono::DateTime::from_timestamp(t, 0)
                .unwrap()
                .format("%y%m%d%H%M%SZ")
                .to_string()
        };
        let subject = |c: &Issued| {
            format!(
                "/O=Certkeeper Online Tests/CN={}",
                c.parsed.subject_cn.clone().unwrap()
            )
        };
        let mut index = String::new();
        for cert in good {
            index.push_str(&format!(
                "V\t{}\t\t{}\tunknown\t{}\n",
                when(cert.parsed.not_after),
                cert.serial_hex(),
                subject(cert)
            ));
        }
        for (cert, reason) in revoked {
            index.push_str(&format!(
                "R\t{}\t{},{reason}\t{}\tunknown\t{}\n",
                when(cert.parsed.not_after),
                when(now() - 3 * 3600),
                cert.serial_hex(),
                subject(cert)
            ));
        }
        std::fs::write(dir.join("index.txt"), index).unwrap();
        OcspResponder {
            dir: dir.to_owned(),
        }
    }

    /// The DER response to a DER request, as `openssl ocsp` makes it.
    fn answer(&self, request: &[u8]) -> Option<Vec<u8>> {
        let id = std::thread::current().id();
        let req = self.dir.join(format!("req-{id:?}.der"));
        let resp = self.dir.join(format!("resp-{id:?}.der"));
        std::fs::write(&req, request).ok()?;
        let status = Command::new("openssl")
            .arg("ocsp")
            .args([
                "-index",
                "index.txt",
                "-CA",
                "ca.pem",
                "-rsigner",
                "ca.pem",
                "-rkey",
                "ca.key",
                "-ndays",
                "1",
            ])
            .arg("-reqin")
            .arg(&req)
            .arg("-respout")
            .arg(&resp)
            .current_dir(&self.dir)
            .output()
            .ok()?;
        if !status.status.success() {
            eprintln!(
                "openssl ocsp failed: {}",
                String::from_utf8_lossy(&status.stderr)
            );
            return None;
        }
        std::fs::read(&resp).ok()
    }
}
