//! Local stand-ins for vendor CAs that cannot run here, and the small
//! servers the REST connectors' failure tests need.
//!
//! - [`bao`]: a real OpenBao server (`bao server -dev`), not a fake;
//! - [`digicert`]: DigiCert CertCentral's Services API v2, following
//!   DigiCert's public API documentation;
//! - [`moto`]: a real `moto_server` (the AWS mock) for AWS Private CA;
//! - [`sectigo`]: Sectigo Certificate Manager's SSL REST API, following
//!   Sectigo's public documentation;
//! - [`TestCa`]: the two-tier CA (made with OpenSSL) both fakes issue real
//!   certificates from;
//! - [`answering`] / [`answering_chunked`]: a loopback server that answers
//!   every request with the same bytes (garbage, 10 MB), [`silent`], one
//!   that never answers, and [`closed_port`], a port nothing listens on.
//!
//! Each test binary uses some of this, so unused items are expected.

#![allow(dead_code)]

pub mod bao;
pub mod digicert;
pub mod moto;
pub mod sectigo;

use std::net::TcpListener;

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509Builder, X509NameBuilder, X509Req};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A fake's answer body.
pub type Body = http_body_util::Full<hyper::body::Bytes>;

/// Serves `handler` on a free loopback port (hyper, one task per
/// connection) until the runtime stops; answers its URL base
/// `http://127.0.0.1:PORT`. The handler gets the method, URI, headers and
/// the whole request body.
pub async fn serve<F>(handler: F) -> String
where
    F: Fn(hyper::Method, hyper::Uri, hyper::HeaderMap, hyper::body::Bytes) -> hyper::Response<Body>
        + Send
        + Sync
        + 'static,
{
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handler = std::sync::Arc::new(handler);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let handler = handler.clone();
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            Ok::<_, std::convert::Infallible>(handler(
                                parts.method,
                                parts.uri,
                                parts.headers,
                                body,
                            ))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    free_port()
}

/// A complete HTTP/1.1 answer with `status`, `content_type` and `body`.
pub fn http_answer(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut answer = format!(
        "HTTP/1.1 {status} Whatever\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(body);
    answer
}

/// A loopback server answering every request with `answer`; its port.
pub async fn answering(answer: Vec<u8>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let answer = std::sync::Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                read_request(&mut stream).await;
                let _ = stream.write_all(&answer).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    port
}

/// A loopback server answering every request with 200 and `size` bytes of
/// JSON-looking spaces, chunked (no Content-Length); its port.
pub async fn answering_chunked(size: usize) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                read_request(&mut stream).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                            transfer-encoding: chunked\r\nconnection: close\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b' '; 64 * 1024];
                let mut sent = 0;
                while sent < size {
                    let frame = format!("{:x}\r\n", chunk.len());
                    if stream.write_all(frame.as_bytes()).await.is_err()
                        || stream.write_all(&chunk).await.is_err()
                        || stream.write_all(b"\r\n").await.is_err()
                    {
                        return;
                    }
                    sent += chunk.len();
                }
                let _ = stream.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    port
}

/// A loopback server that accepts connections and never answers; its port.
pub async fn silent() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    port
}

/// Reads one request's head (and whatever body came with it).
async fn read_request(stream: &mut tokio::net::TcpStream) {
    let mut request = Vec::new();
    let mut buf = [0u8; 8192];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    // Give a small body time to arrive so closing does not reset it.
    let _ = tokio::time::timeout(std::time::Duration::from_millis(50), stream.read(&mut buf)).await;
}

/// A root and an issuing intermediate, P-256, made fresh for a fake CA.
pub struct TestCa {
    pub root: X509,
    pub intermediate: X509,
    key: PKey<Private>,
}

fn p256() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn random_serial() -> Asn1Integer {
    let mut bn = BigNum::new().unwrap();
    bn.rand(127, MsbOption::MAYBE_ZERO, false).unwrap();
    bn.to_asn1_integer().unwrap()
}

fn name(cn: &str) -> openssl::x509::X509Name {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    name.build()
}

impl TestCa {
    /// A CA whose names start with `vendor` ("Fake DigiCert Root").
    pub fn new(vendor: &str) -> Self {
        let root_key = p256();
        let mut root = X509Builder::new().unwrap();
        root.set_version(2).unwrap();
        root.set_serial_number(&random_serial()).unwrap();
        let root_name = name(&format!("{vendor} Root"));
        root.set_subject_name(&root_name).unwrap();
        root.set_issuer_name(&root_name).unwrap();
        root.set_pubkey(&root_key).unwrap();
        root.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        root.set_not_after(&Asn1Time::days_from_now(3650).unwrap())
            .unwrap();
        root.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        root.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .unwrap(),
        )
        .unwrap();
        root.sign(&root_key, MessageDigest::sha256()).unwrap();
        let root = root.build();

        let key = p256();
        let mut int = X509Builder::new().unwrap();
        int.set_version(2).unwrap();
        int.set_serial_number(&random_serial()).unwrap();
        int.set_subject_name(&name(&format!("{vendor} Issuing CA")))
            .unwrap();
        int.set_issuer_name(root.subject_name()).unwrap();
        int.set_pubkey(&key).unwrap();
        int.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        int.set_not_after(&Asn1Time::days_from_now(1825).unwrap())
            .unwrap();
        int.append_extension(
            BasicConstraints::new()
                .critical()
                .ca()
                .pathlen(0)
                .build()
                .unwrap(),
        )
        .unwrap();
        int.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .unwrap(),
        )
        .unwrap();
        int.sign(&root_key, MessageDigest::sha256()).unwrap();
        Self {
            root,
            intermediate: int.build(),
            key,
        }
    }

    /// Signs the key of the PEM CSR `csr_pem` for `names` (DNS names or IP
    /// addresses) for `days`; `None` when the CSR is unreadable.
    pub fn sign(&self, csr_pem: &str, names: &[String], days: u32) -> Option<X509> {
        let csr = X509Req::from_pem(csr_pem.as_bytes()).ok()?;
        let public = csr.public_key().ok()?;
        if !csr.verify(&public).ok()? || names.is_empty() {
            return None;
        }
        let mut leaf = X509Builder::new().ok()?;
        leaf.set_version(2).ok()?;
        leaf.set_serial_number(&random_serial()).ok()?;
        leaf.set_subject_name(&name(&names[0])).ok()?;
        leaf.set_issuer_name(self.intermediate.subject_name())
            .ok()?;
        leaf.set_pubkey(&public).ok()?;
        let not_before = Asn1Time::days_from_now(0).ok()?;
        let not_after = Asn1Time::days_from_now(days.max(1)).ok()?;
        leaf.set_not_before(&not_before).ok()?;
        leaf.set_not_after(&not_after).ok()?;
        let mut san = SubjectAlternativeName::new();
        for n in names {
            if n.parse::<std::net::IpAddr>().is_ok() {
                san.ip(n);
            } else {
                san.dns(n);
            }
        }
        let san = san
            .build(&leaf.x509v3_context(Some(&self.intermediate), None))
            .ok()?;
        leaf.append_extension(san).ok()?;
        leaf.sign(&self.key, MessageDigest::sha256()).ok()?;
        Some(leaf.build())
    }

    /// `leaf` followed by the intermediate and the root, PEM.
    pub fn pem_all(&self, leaf: &X509) -> String {
        [leaf, &self.intermediate, &self.root]
            .iter()
            .map(|c| String::from_utf8(c.to_pem().unwrap()).unwrap())
            .collect()
    }
}

/// A certificate's serial as uppercase hex without separators, as
/// DigiCert and Sectigo print serials.
pub fn serial_upper(cert: &X509) -> String {
    cert.serial_number()
        .to_bn()
        .unwrap()
        .to_vec()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}
