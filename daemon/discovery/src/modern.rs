//! The probe's fast path: a rustls handshake that records the chain.
//!
//! OpenSSL 3's handshake spends most of its time in its provider and decoder
//! framework (fetching algorithms, decoding the server's key through
//! `OSSL_DECODER`), which dominated a network scan's CPU. Most servers speak
//! TLS 1.2 or 1.3 with ECDHE and AEAD suites, which rustls handles at a
//! fraction of that cost; so the probe tries rustls first and falls back to
//! OpenSSL at security level 0 (`probe.rs`) when rustls cannot complete the
//! handshake: TLS 1.0/1.1, RSA key exchange, CBC-only or DHE-only servers,
//! names rustls will not send as SNI, and any other refusal.
//!
//! Nothing is verified: the verifier accepts every certificate and every
//! handshake signature (the installation check judges the recorded chain
//! later), and offers every signature scheme rustls knows, so legacy
//! SHA-1 and PKCS#1 servers still complete here. No session is resumed: a
//! resumed handshake carries no certificate.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CipherSuite, ClientConfig, DigitallySignedStruct, ProtocolVersion, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};

/// A rustls client that records whatever chain the server presents.
#[derive(Clone)]
pub(super) struct Modern {
    connector: tokio_rustls::TlsConnector,
}

/// What a modern handshake yielded.
pub(super) struct Handshake {
    /// `TLSv1.3` or `TLSv1.2`, as OpenSSL names them.
    pub tls_version: String,
    /// The suite, as OpenSSL names it.
    pub cipher: String,
    /// The presented chain, DER, leaf first.
    pub chain_der: Vec<Vec<u8>>,
}

impl Modern {
    /// The client config: TLS 1.3 and 1.2, every scheme, no verification,
    /// no resumption.
    pub(super) fn new() -> Result<Self, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let schemes = provider
            .signature_verification_algorithms
            .supported_schemes();
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Recorder { schemes }))
            .with_no_client_auth();
        config.resumption = Resumption::disabled();
        Ok(Self {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// Runs the handshake over `stream`; `None` when rustls cannot send
    /// `sni` as a server name (OpenSSL then tries).
    pub(super) async fn handshake<S>(
        &self,
        stream: S,
        sni: Option<&str>,
        ip: IpAddr,
    ) -> Option<std::io::Result<Handshake>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let name = match sni {
            Some(name) => ServerName::try_from(name.to_owned()).ok()?,
            // An IP address as server name: rustls sends no SNI.
            None => ServerName::IpAddress(ip.into()),
        };
        let tls = match self.connector.connect(name, stream).await {
            Ok(tls) => tls,
            Err(e) => return Some(Err(e)),
        };
        let (_, connection) = tls.get_ref();
        let chain_der: Vec<Vec<u8>> = connection
            .peer_certificates()
            .map(|certs| certs.iter().map(|c| c.as_ref().to_vec()).collect())
            .unwrap_or_default();
        let tls_version = match connection.protocol_version() {
            Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "unknown",
        };
        let cipher = connection
            .negotiated_cipher_suite()
            .map(|s| openssl_name(s.suite()))
            .unwrap_or_default();
        Some(Ok(Handshake {
            tls_version: tls_version.to_owned(),
            cipher,
            chain_der,
        }))
    }
}

/// OpenSSL's name of a suite rustls negotiates, so records read the same
/// whichever library made the handshake.
fn openssl_name(suite: CipherSuite) -> String {
    match suite {
        CipherSuite::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => {
            "ECDHE-ECDSA-CHACHA20-POLY1305"
        }
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        other => return format!("{other:?}"),
    }
    .to_owned()
}

/// Accepts every certificate and signature: the probe records, the
/// installation check judges.
#[derive(Debug)]
struct Recorder {
    schemes: Vec<SignatureScheme>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        let mut schemes = self.schemes.clone();
        // Old servers sign with these; nothing is verified anyway.
        for legacy in [
            SignatureScheme::RSA_PKCS1_SHA1,
            SignatureScheme::ECDSA_SHA1_Legacy,
        ] {
            if !schemes.contains(&legacy) {
                schemes.push(legacy);
            }
        }
        schemes
    }
}
