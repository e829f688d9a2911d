//! Certificate parsing for the inventory: turns PEM or DER bytes into
//! [`ParsedCertificate`] records.
//!
//! Input may be a PEM file holding any number of `CERTIFICATE`,
//! `X509 CERTIFICATE` or `TRUSTED CERTIFICATE` blocks (mixed with private
//! keys, parameters, CSRs or explanatory text such as OpenSSL's `-text`
//! dump, as found in `/etc/ssl/certs` bundles), or raw DER. Blocks that are
//! not certificates are skipped without their content being decoded or
//! copied; private keys are only ever *detected* ([`contains_private_key`]),
//! never returned.
//!
//! Every record carries the fields the inventory indexes on: SHA-256
//! fingerprint, names, serial, validity, subject alternative names, key and
//! signature algorithms, key usages, CA flag, a self-signed heuristic and a
//! normalised PEM copy of the certificate.

use std::borrow::Cow;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use sha2::{Digest as _, Sha256};
use x509_parser::asn1_rs::{Any, FromDer as _, Oid, Tag};
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::der::parse_der_integer;
use x509_parser::error::X509Error;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::public_key::{PublicKey, RSAPublicKey};
use x509_parser::x509::{AttributeTypeAndValue, SubjectPublicKeyInfo, X509Name};

/// One certificate as the inventory records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ParsedCertificate {
    /// Lowercase hex SHA-256 of the DER encoding, without colons.
    pub fingerprint: String,
    /// Subject DN as x509-parser's `X509Name` `Display` prints it
    /// (e.g. `CN=example.org, O=Example`).
    pub subject: String,
    /// First common name (CN) of the subject, if any.
    pub subject_cn: Option<String>,
    /// Issuer DN, formatted like [`ParsedCertificate::subject`].
    pub issuer: String,
    /// First common name (CN) of the issuer, if any.
    pub issuer_cn: Option<String>,
    /// Serial number in lowercase hex without colons, as `openssl x509 -serial`
    /// prints it (leading zero bytes kept as OpenSSL keeps them, a DER sign
    /// byte dropped, `-` in front of a negative serial).
    pub serial: String,
    /// Start of validity, in Unix seconds.
    pub not_before: i64,
    /// End of validity, in Unix seconds.
    pub not_after: i64,
    /// DNS names of the subject alternative name extension.
    pub san_dns: Vec<String>,
    /// IP addresses of the subject alternative name extension, in
    /// `std::net::IpAddr` textual form.
    pub san_ip: Vec<String>,
    /// E-mail addresses (rfc822Name) of the subject alternative name extension.
    pub san_email: Vec<String>,
    /// URIs of the subject alternative name extension.
    pub san_uri: Vec<String>,
    /// Public key algorithm: `RSA`, `EC`, `Ed25519`, `Ed448`, `DSA`, else the
    /// dotted OID.
    pub key_algorithm: String,
    /// Key size in bits: RSA modulus bits, EC curve bits (256/384/521),
    /// 256 for Ed25519, 456 for Ed448, DSA `p` bits; 0 when unknown.
    pub key_bits: u32,
    /// Named curve of an EC key: `P-256`, `P-384`, `P-521`, `secp256k1`,
    /// else the dotted OID; `None` for other key types (and for EC keys with
    /// explicit curve parameters).
    pub key_curve: Option<String>,
    /// Signature algorithm under OpenSSL's long name
    /// (`sha256WithRSAEncryption`, `ecdsa-with-SHA256`, `ED25519`,
    /// `rsassaPss`, ...), else the dotted OID.
    pub signature_algorithm: String,
    /// Key usage bits set, named as in OpenSSL configuration files
    /// (`digitalSignature`, `keyCertSign`, ...), in bit order.
    pub key_usage: Vec<String>,
    /// Extended key usages in certificate order (`serverAuth`, `clientAuth`,
    /// `codeSigning`, `emailProtection`, `timeStamping`, `OCSPSigning`,
    /// `any`, else the dotted OID), duplicates removed.
    pub extended_key_usage: Vec<String>,
    /// True when basicConstraints says `CA:TRUE`.
    pub is_ca: bool,
    /// True when subject equals issuer and the authority key identifier (if
    /// any) does not point at another key. The signature itself is not
    /// verified.
    pub self_signed: bool,
    /// Policy OIDs of the certificatePolicies extension, dotted (the CA/B
    /// Forum's 2.23.140.1.* say DV/OV/IV/EV).
    #[serde(default)]
    pub certificate_policies: Vec<String>,
    /// The certificate re-encoded as PEM: `-----BEGIN CERTIFICATE-----`, the
    /// base64 DER in 64-character lines, `-----END CERTIFICATE-----`, each
    /// line ending in `\n`. Empty when read without it (reports).
    #[serde(default)]
    pub pem: String,
}

/// What was wrong with input that was supposed to hold certificates.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The input holds no certificate at all (no PEM certificate block and
    /// not DER-encoded certificate data).
    #[error("input holds no certificate (no PEM CERTIFICATE block and not a DER certificate)")]
    NoCertificates,
    /// A certificate (PEM block or DER element) was found but does not parse.
    #[error("certificate at index {index} is malformed: {reason}")]
    Malformed {
        /// Position of the bad certificate among the certificates of the
        /// input, counting from 0 (other PEM blocks are not counted).
        index: usize,
        /// Human-readable cause; never contains key material.
        reason: String,
    },
}

/// Parses every certificate in `input`: PEM (any number of CERTIFICATE / X509
/// CERTIFICATE / TRUSTED CERTIFICATE blocks, mixed with private keys and other
/// blocks, which are skipped and never copied anywhere) or a single DER
/// certificate. Order is preserved (a chain file keeps leaf-first order).
///
/// Text around and between PEM blocks is ignored, as are CR line endings and
/// indentation. Raw DER input may also be several certificates concatenated;
/// NUL or whitespace padding after DER data is ignored. Trust settings that
/// follow the certificate in a TRUSTED CERTIFICATE block are ignored.
///
/// # Errors
///
/// [`ParseError::NoCertificates`] when the input holds no certificate, and
/// [`ParseError::Malformed`] naming the first certificate that does not parse
/// (even when others do: the caller decides what to make of it).
pub fn parse_certificates(input: &[u8]) -> Result<Vec<ParsedCertificate>, ParseError> {
    if input.first() == Some(&0x30)
        && let Ok(certs) = parse_der_sequence_of_certs(input)
    {
        return Ok(certs);
    }
    if contains_subslice(input, b"-----BEGIN ") {
        let blocks = certificate_blocks(input);
        if !blocks.is_empty() {
            return blocks
                .into_iter()
                .enumerate()
                .map(|(index, block)| parse_pem_block(index, block))
                .collect();
        }
    }
    if looks_like_der_certificate(input) {
        // Something shaped like a certificate that did not parse: report why.
        return parse_der_sequence_of_certs(input);
    }
    Err(ParseError::NoCertificates)
}

/// Parses one DER certificate.
///
/// # Errors
///
/// [`ParseError::NoCertificates`] for empty input, [`ParseError::Malformed`]
/// (index 0) when the bytes are not one well-formed certificate, including
/// when bytes follow the certificate.
pub fn parse_der(der: &[u8]) -> Result<ParsedCertificate, ParseError> {
    if der.is_empty() {
        return Err(ParseError::NoCertificates);
    }
    let (cert, rest) = decode_certificate(der, 0)?;
    if !rest.is_empty() {
        return Err(malformed(
            0,
            format!("{} unexpected bytes after the certificate", rest.len()),
        ));
    }
    Ok(cert)
}

/// True when the input looks like it holds a private key (PEM "PRIVATE KEY"
/// block of any kind). Used to record that a key sits beside a certificate;
/// the key itself is never returned.
///
/// Recognises `PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`, `RSA PRIVATE KEY`,
/// `EC PRIVATE KEY`, `DSA PRIVATE KEY`, `OPENSSH PRIVATE KEY` and any other
/// `-----BEGIN ... PRIVATE KEY-----` header, wherever it stands in the input.
pub fn contains_private_key(input: &[u8]) -> bool {
    const BEGIN: &[u8] = b"-----BEGIN ";
    let mut rest = input;
    while let Some(pos) = find_subslice(rest, BEGIN) {
        rest = &rest[pos + BEGIN.len()..];
        // The label runs up to the next dashes; keep it short and on one line.
        let Some(end) = find_subslice(rest, b"-----") else {
            return false;
        };
        let label = &rest[..end];
        if label.len() <= 64 && !label.contains(&b'\n') && label.ends_with(b"PRIVATE KEY") {
            return true;
        }
    }
    false
}

// ---------------------------------------------------------------------------
// PEM

/// Base64 as found in PEM bodies: standard alphabet, padding optional.
const PEM_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Labels of PEM blocks that hold a certificate.
const CERT_LABELS: [&[u8]; 3] = [b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE"];

/// The base64 body of one PEM certificate block (whitespace removed).
struct CertBlock {
    /// Base64 text of the body, without whitespace or header lines.
    base64: Vec<u8>,
    /// False when the input ended (or another block began) before the END line.
    terminated: bool,
}

/// Collects the certificate blocks of a PEM text, in order. Bodies of other
/// blocks (keys in particular) are never copied.
fn certificate_blocks(input: &[u8]) -> Vec<CertBlock> {
    let mut blocks = Vec::new();
    // Label of the block being read, and the certificate body if it is one.
    let mut open: Option<(&[u8], Option<CertBlock>)> = None;

    for raw_line in input.split(|b| *b == b'\n') {
        let line = raw_line.trim_ascii();
        if let Some(label) = pem_marker(line, b"-----BEGIN ") {
            if let Some((_, Some(unterminated))) = open.take() {
                blocks.push(unterminated);
            }
            let body = CERT_LABELS.contains(&label).then(|| CertBlock {
                base64: Vec::new(),
                terminated: false,
            });
            open = Some((label, body));
            continue;
        }
        let Some((label, body)) = open.as_mut() else {
            continue;
        };
        if let Some(end_label) = pem_marker(line, b"-----END ") {
            if end_label == *label {
                if let Some(mut block) = body.take() {
                    block.terminated = true;
                    blocks.push(block);
                }
                open = None;
            }
            continue;
        }
        if let Some(block) = body.as_mut() {
            // Skip RFC 1421 style header lines ("Name: value"); base64 has no ':'.
            if !line.contains(&b':') {
                block
                    .base64
                    .extend(line.iter().filter(|b| !b.is_ascii_whitespace()));
            }
        }
    }
    if let Some((_, Some(unterminated))) = open {
        blocks.push(unterminated);
    }
    blocks
}

/// The label of a `-----BEGIN LABEL-----` / `-----END LABEL-----` line.
fn pem_marker<'a>(line: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    line.strip_prefix(prefix)?
        .strip_suffix(b"-----")
        .map(<[u8]>::trim_ascii)
}

fn parse_pem_block(index: usize, block: CertBlock) -> Result<ParsedCertificate, ParseError> {
    if !block.terminated {
        return Err(malformed(index, "PEM block has no matching END line"));
    }
    if block.base64.is_empty() {
        return Err(malformed(index, "PEM block is empty"));
    }
    let der = PEM_BASE64
        .decode(&block.base64)
        .map_err(|e| malformed(index, format!("PEM body is not valid base64: {e}")))?;
    // Anything after the certificate (the trust settings of a TRUSTED
    // CERTIFICATE block, or stray bytes) is ignored, as OpenSSL does.
    decode_certificate(&der, index).map(|(cert, _rest)| cert)
}

// ---------------------------------------------------------------------------
// DER

/// Parses one or more concatenated DER certificates; trailing NUL/whitespace
/// padding is ignored.
fn parse_der_sequence_of_certs(input: &[u8]) -> Result<Vec<ParsedCertificate>, ParseError> {
    let mut certs = Vec::new();
    let mut rest = input;
    while !is_padding(rest) {
        let (cert, next) = decode_certificate(rest, certs.len())?;
        certs.push(cert);
        rest = next;
    }
    if certs.is_empty() {
        return Err(ParseError::NoCertificates);
    }
    Ok(certs)
}

fn is_padding(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == 0 || b.is_ascii_whitespace())
}

/// Whether `input` starts like a DER v2/v3 certificate: SEQUENCE { SEQUENCE
/// { [0] INTEGER version ... — used to tell a damaged certificate from
/// unrelated binary data (keys, CSRs and CRLs start differently).
fn looks_like_der_certificate(input: &[u8]) -> bool {
    fn skip_header(bytes: &[u8]) -> Option<&[u8]> {
        let (&tag, rest) = bytes.split_first()?;
        if tag != 0x30 {
            return None;
        }
        let (&len, rest) = rest.split_first()?;
        if len < 0x80 {
            return Some(rest);
        }
        let extra = usize::from(len & 0x7f);
        if extra == 0 || extra > 4 {
            return None;
        }
        rest.get(extra..)
    }
    let Some(tbs) = skip_header(input).and_then(skip_header) else {
        return false;
    };
    // v2/v3 certificates start with [0] EXPLICIT version.
    matches!(tbs, [0xa0, 0x03, 0x02, 0x01, ..])
}

/// Decodes the certificate at the start of `der`; returns it with the bytes
/// that follow it.
fn decode_certificate(der: &[u8], index: usize) -> Result<(ParsedCertificate, &[u8]), ParseError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| {
        malformed(
            index,
            format!("not a valid X.509 certificate: {}", describe_x509_error(&e)),
        )
    })?;
    Ok((record(&cert), rest))
}

/// A readable cause for a certificate decoding failure.
fn describe_x509_error(err: &x509_parser::nom::Err<X509Error>) -> String {
    use x509_parser::nom::Err;
    use x509_parser::nom::error::ErrorKind;
    match err {
        Err::Incomplete(_) | Err::Error(X509Error::NomError(ErrorKind::Eof)) => {
            "the data ends inside the certificate (truncated?)".to_owned()
        }
        Err::Error(e) | Err::Failure(e) => e.to_string(),
    }
}

fn malformed(index: usize, reason: impl Into<String>) -> ParseError {
    ParseError::Malformed {
        index,
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------
// Building the record

fn record(cert: &X509Certificate<'_>) -> ParsedCertificate {
    let tbs = &cert.tbs_certificate;
    let der = cert.as_raw();
    let san = subject_alt_names(cert);
    let key = key_info(&tbs.subject_pki);
    ParsedCertificate {
        fingerprint: hex::encode(Sha256::digest(der)),
        subject: tbs.subject.to_string(),
        subject_cn: first_common_name(&tbs.subject),
        issuer: tbs.issuer.to_string(),
        issuer_cn: first_common_name(&tbs.issuer),
        serial: openssl_serial(tbs.raw_serial()),
        not_before: tbs.validity.not_before.timestamp(),
        not_after: tbs.validity.not_after.timestamp(),
        san_dns: san.dns,
        san_ip: san.ip,
        san_email: san.email,
        san_uri: san.uri,
        key_algorithm: key.algorithm,
        key_bits: key.bits,
        key_curve: key.curve,
        signature_algorithm: signature_algorithm_name(&cert.signature_algorithm.algorithm),
        key_usage: key_usage(cert),
        extended_key_usage: extended_key_usage(cert),
        is_ca: is_ca(cert),
        self_signed: is_self_signed(cert),
        certificate_policies: certificate_policies(cert),
        pem: to_pem(der),
    }
}

/// First parsed extension of the certificate matching `pick`.
fn find_extension<'c, T>(
    cert: &'c X509Certificate<'_>,
    pick: impl Fn(&'c ParsedExtension<'_>) -> Option<T>,
) -> Option<T> {
    cert.tbs_certificate
        .extensions()
        .iter()
        .find_map(|ext| pick(ext.parsed_extension()))
}

fn certificate_policies(cert: &X509Certificate<'_>) -> Vec<String> {
    find_extension(cert, |ext| match ext {
        ParsedExtension::CertificatePolicies(policies) => Some(
            policies
                .iter()
                .map(|p| p.policy_id.to_id_string())
                .collect(),
        ),
        _ => None,
    })
    .unwrap_or_default()
}

fn first_common_name(name: &X509Name<'_>) -> Option<String> {
    name.iter_common_name().next().map(attribute_text)
}

/// Text of a name attribute, decoding the ASN.1 string types met in practice.
fn attribute_text(attr: &AttributeTypeAndValue<'_>) -> String {
    let value: &Any<'_> = attr.attr_value();
    let data = value.data;
    match value.tag() {
        Tag::BmpString => {
            let units = data
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
            char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        }
        Tag::UniversalString => data
            .chunks_exact(4)
            .map(|quad| {
                char::from_u32(u32::from_be_bytes([quad[0], quad[1], quad[2], quad[3]]))
                    .unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect(),
        Tag::T61String => match std::str::from_utf8(data) {
            Ok(s) => s.to_owned(),
            // Treat non-UTF-8 TeletexString as Latin-1, as most software does.
            Err(_) => data.iter().map(|&b| char::from(b)).collect(),
        },
        _ => String::from_utf8_lossy(data).into_owned(),
    }
}

/// Serial as `openssl x509 -serial` prints it, lowercase: the INTEGER's
/// magnitude bytes (DER sign-padding byte removed) in hex, `-` in front when
/// negative.
fn openssl_serial(raw: &[u8]) -> String {
    let Some(&first) = raw.first() else {
        return "00".to_owned();
    };
    if first & 0x80 == 0 {
        let magnitude = if raw.len() > 1 && first == 0 {
            &raw[1..]
        } else {
            raw
        };
        return hex::encode(magnitude);
    }
    // Negative: two's complement magnitude, leading zero bytes dropped.
    let mut magnitude: Vec<u8> = raw.iter().map(|b| !b).collect();
    for byte in magnitude.iter_mut().rev() {
        let (sum, carry) = byte.overflowing_add(1);
        *byte = sum;
        if !carry {
            break;
        }
    }
    let start = magnitude
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(magnitude.len().saturating_sub(1));
    format!("-{}", hex::encode(&magnitude[start..]))
}

#[derive(Default)]
struct SubjectAltNames {
    dns: Vec<String>,
    ip: Vec<String>,
    email: Vec<String>,
    uri: Vec<String>,
}

fn subject_alt_names(cert: &X509Certificate<'_>) -> SubjectAltNames {
    let mut out = SubjectAltNames::default();
    let Some(san) = find_extension(cert, |ext| match ext {
        ParsedExtension::SubjectAlternativeName(san) => Some(san),
        _ => None,
    }) else {
        return out;
    };
    for name in &san.general_names {
        match name {
            GeneralName::DNSName(dns) => out.dns.push((*dns).to_owned()),
            GeneralName::RFC822Name(email) => out.email.push((*email).to_owned()),
            GeneralName::URI(uri) => out.uri.push((*uri).to_owned()),
            GeneralName::IPAddress(bytes) => {
                if let Some(ip) = ip_from_bytes(bytes) {
                    out.ip.push(ip.to_string());
                }
            }
            _ => {}
        }
    }
    out
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::from(v4));
    }
    <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from)
}

struct KeyInfo {
    algorithm: String,
    bits: u32,
    curve: Option<String>,
}

fn key_info(spki: &SubjectPublicKeyInfo<'_>) -> KeyInfo {
    let oid = spki.algorithm.algorithm.to_id_string();
    let parsed = spki.parsed().ok();
    let (algorithm, bits, curve) = match oid.as_str() {
        "1.2.840.113549.1.1.1" => {
            let bits = match &parsed {
                Some(PublicKey::RSA(rsa)) => unsigned_bits(rsa.modulus),
                _ => 0,
            };
            ("RSA".to_owned(), bits, None)
        }
        // RSASSA-PSS keys carry an ordinary RSA public key.
        "1.2.840.113549.1.1.10" => {
            let bits = RSAPublicKey::from_der(&spki.subject_public_key.data)
                .map(|(_, rsa)| unsigned_bits(rsa.modulus))
                .unwrap_or(0);
            (oid.clone(), bits, None)
        }
        "1.2.840.10045.2.1" => {
            let curve_oid = spki
                .algorithm
                .parameters
                .as_ref()
                .filter(|p| p.tag() == Tag::Oid)
                .map(|p| Oid::new(Cow::Borrowed(p.data)).to_id_string());
            let named = curve_oid.as_deref().and_then(named_curve);
            let point_bits = match &parsed {
                Some(PublicKey::EC(point)) => u32::try_from(point.key_size()).unwrap_or(0),
                _ => 0,
            };
            let bits = named.map_or(point_bits, |(_, bits)| bits);
            let curve = match (named, curve_oid) {
                (Some((Some(name), _)), _) => Some(name.to_owned()),
                (_, dotted) => dotted,
            };
            ("EC".to_owned(), bits, curve)
        }
        "1.3.101.112" => ("Ed25519".to_owned(), 256, None),
        "1.3.101.113" => ("Ed448".to_owned(), 456, None),
        "1.2.840.10040.4.1" => {
            let p_bits = spki
                .algorithm
                .parameters
                .as_ref()
                .filter(|p| p.tag() == Tag::Sequence)
                .and_then(|p| parse_der_integer(p.data).ok())
                .and_then(|(_, p)| p.as_slice().ok().map(unsigned_bits));
            let bits = match (p_bits, &parsed) {
                (Some(bits), _) => bits,
                (None, Some(PublicKey::DSA(y))) => unsigned_bits(y),
                (None, _) => 0,
            };
            ("DSA".to_owned(), bits, None)
        }
        _ => (oid.clone(), 0, None),
    };
    KeyInfo {
        algorithm,
        bits,
        curve,
    }
}

/// Name (when the inventory has one) and size in bits of a named EC curve.
fn named_curve(oid: &str) -> Option<(Option<&'static str>, u32)> {
    Some(match oid {
        "1.2.840.10045.3.1.7" => (Some("P-256"), 256),
        "1.3.132.0.34" => (Some("P-384"), 384),
        "1.3.132.0.35" => (Some("P-521"), 521),
        "1.3.132.0.10" => (Some("secp256k1"), 256),
        "1.2.840.10045.3.1.1" => (None, 192),   // P-192
        "1.3.132.0.33" => (None, 224),          // P-224
        "1.3.36.3.3.2.8.1.1.7" => (None, 256),  // brainpoolP256r1
        "1.3.36.3.3.2.8.1.1.11" => (None, 384), // brainpoolP384r1
        "1.3.36.3.3.2.8.1.1.13" => (None, 512), // brainpoolP512r1
        _ => return None,
    })
}

/// Bit length of a big-endian unsigned integer (leading zero bytes ignored).
fn unsigned_bits(bytes: &[u8]) -> u32 {
    let Some(start) = bytes.iter().position(|b| *b != 0) else {
        return 0;
    };
    let significant = &bytes[start..];
    let leading = significant.first().map_or(0, |b| b.leading_zeros());
    u32::try_from(significant.len())
        .unwrap_or(u32::MAX / 8)
        .saturating_mul(8)
        .saturating_sub(leading)
}

/// OpenSSL's long name for a signature algorithm OID, else the dotted OID.
fn signature_algorithm_name(oid: &Oid<'_>) -> String {
    let dotted = oid.to_id_string();
    let name = match dotted.as_str() {
        "1.2.840.113549.1.1.2" => "md2WithRSAEncryption",
        "1.2.840.113549.1.1.3" => "md4WithRSAEncryption",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.14" => "sha224WithRSAEncryption",
        "1.2.840.113549.1.1.15" => "sha512-224WithRSAEncryption",
        "1.2.840.113549.1.1.16" => "sha512-256WithRSAEncryption",
        "1.3.14.3.2.29" => "sha1WithRSA",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.1" => "ecdsa-with-SHA224",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.3.101.112" => "ED25519",
        "1.3.101.113" => "ED448",
        "1.2.840.10040.4.3" => "dsaWithSHA1",
        "2.16.840.1.101.3.4.3.1" => "dsa_with_SHA224",
        "2.16.840.1.101.3.4.3.2" => "dsa_with_SHA256",
        "2.16.840.1.101.3.4.3.3" => "dsa_with_SHA384",
        "2.16.840.1.101.3.4.3.4" => "dsa_with_SHA512",
        "2.16.840.1.101.3.4.3.9" => "ecdsa_with_SHA3-224",
        "2.16.840.1.101.3.4.3.10" => "ecdsa_with_SHA3-256",
        "2.16.840.1.101.3.4.3.11" => "ecdsa_with_SHA3-384",
        "2.16.840.1.101.3.4.3.12" => "ecdsa_with_SHA3-512",
        "2.16.840.1.101.3.4.3.13" => "RSA-SHA3-224",
        "2.16.840.1.101.3.4.3.14" => "RSA-SHA3-256",
        "2.16.840.1.101.3.4.3.15" => "RSA-SHA3-384",
        "2.16.840.1.101.3.4.3.16" => "RSA-SHA3-512",
        "1.2.156.10197.1.501" => "SM2-with-SM3",
        _ => return dotted,
    };
    name.to_owned()
}

fn key_usage(cert: &X509Certificate<'_>) -> Vec<String> {
    let Some(ku) = find_extension(cert, |ext| match ext {
        ParsedExtension::KeyUsage(ku) => Some(ku),
        _ => None,
    }) else {
        return Vec::new();
    };
    [
        (ku.digital_signature(), "digitalSignature"),
        (ku.non_repudiation(), "nonRepudiation"),
        (ku.key_encipherment(), "keyEncipherment"),
        (ku.data_encipherment(), "dataEncipherment"),
        (ku.key_agreement(), "keyAgreement"),
        (ku.key_cert_sign(), "keyCertSign"),
        (ku.crl_sign(), "cRLSign"),
        (ku.encipher_only(), "encipherOnly"),
        (ku.decipher_only(), "decipherOnly"),
    ]
    .into_iter()
    .filter(|(set, _)| *set)
    .map(|(_, name)| name.to_owned())
    .collect()
}

fn extended_key_usage(cert: &X509Certificate<'_>) -> Vec<String> {
    const EKU_OID: &str = "2.5.29.37";
    let Some(ext) = cert
        .tbs_certificate
        .extensions()
        .iter()
        .find(|ext| ext.oid.to_id_string() == EKU_OID)
    else {
        return Vec::new();
    };
    // Read the OIDs ourselves to keep the certificate's order.
    let Ok((_, oids)) = <Vec<Oid<'_>>>::from_der(ext.value) else {
        return Vec::new();
    };
    let mut names: Vec<String> = Vec::with_capacity(oids.len());
    for oid in &oids {
        let dotted = oid.to_id_string();
        let name = match dotted.as_str() {
            "1.3.6.1.5.5.7.3.1" => "serverAuth".to_owned(),
            "1.3.6.1.5.5.7.3.2" => "clientAuth".to_owned(),
            "1.3.6.1.5.5.7.3.3" => "codeSigning".to_owned(),
            "1.3.6.1.5.5.7.3.4" => "emailProtection".to_owned(),
            "1.3.6.1.5.5.7.3.8" => "timeStamping".to_owned(),
            "1.3.6.1.5.5.7.3.9" => "OCSPSigning".to_owned(),
            "2.5.29.37.0" => "any".to_owned(),
            _ => dotted,
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

fn is_ca(cert: &X509Certificate<'_>) -> bool {
    find_extension(cert, |ext| match ext {
        ParsedExtension::BasicConstraints(bc) => Some(bc.ca),
        _ => None,
    })
    .unwrap_or(false)
}

/// Subject equals issuer, and the authority key identifier (when present)
/// names this certificate's own key: the same test OpenSSL applies before it
/// checks the signature (which is not checked here).
fn is_self_signed(cert: &X509Certificate<'_>) -> bool {
    let tbs = &cert.tbs_certificate;
    if !names_equal(&tbs.subject, &tbs.issuer) {
        return false;
    }
    let aki_oid = "2.5.29.35";
    let Some(aki_ext) = tbs
        .extensions()
        .iter()
        .find(|ext| ext.oid.to_id_string() == aki_oid)
    else {
        return true;
    };
    let ParsedExtension::AuthorityKeyIdentifier(aki) = aki_ext.parsed_extension() else {
        // An AKI we cannot read: do not claim the certificate is self-signed.
        return false;
    };
    let ski = find_extension(cert, |ext| match ext {
        ParsedExtension::SubjectKeyIdentifier(ski) => Some(ski.0),
        _ => None,
    });
    let keyid_matches = match (&aki.key_identifier, ski) {
        (Some(keyid), Some(ski)) => keyid.0 == ski,
        _ => true,
    };
    let serial_matches = aki
        .authority_cert_serial
        .is_none_or(|serial| serial == tbs.raw_serial());
    keyid_matches && serial_matches
}

/// DN equality: identical encoding, or the same text up to case and spacing.
fn names_equal(a: &X509Name<'_>, b: &X509Name<'_>) -> bool {
    if a.as_raw() == b.as_raw() {
        return true;
    }
    // Names that cannot be rendered as text never compare equal.
    let canon = |name: &X509Name<'_>| -> Option<String> {
        let text = name
            .to_string_with_registry(x509_parser::objects::oid_registry())
            .ok()?;
        Some(
            text.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase(),
        )
    };
    matches!((canon(a), canon(b)), (Some(x), Some(y)) if x == y)
}

fn to_pem(der: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::with_capacity(encoded.len() + encoded.len() / 64 + 64);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

// ---------------------------------------------------------------------------
// Byte helpers

fn find_subslice(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn contains_subslice(haystack: &[u8], needle: &[u8]) -> bool {
    find_subslice(haystack, needle).is_some()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;
    use std::sync::OnceLock;

    /// What `openssl x509` says about one certificate.
    #[derive(Debug, Clone)]
    struct OpensslFacts {
        fingerprint: String,
        serial: String,
        not_before: i64,
        not_after: i64,
        subject: String,
        issuer: String,
        text: String,
    }

    /// One generated certificate: its PEM text, DER and openssl's view of it.
    #[derive(Debug, Clone)]
    struct Generated {
        pem: String,
        der: Vec<u8>,
        facts: OpensslFacts,
    }

    /// All certificates the tests use, generated once with the openssl CLI.
    struct Fixture {
        ca: Generated,
        ca_key_pem: String,
        leaf: Generated,
        leaf_key_pem: String,
        ed25519: Generated,
        code: Generated,
        p384: Generated,
        p521: Generated,
        same_name_as_ca: Generated,
        ca_trusted_pem: String,
        ca_text_pem: String,
    }

    const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyAgreement
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:www.example.test,DNS:example.test,IP:192.0.2.10,IP:2001:db8::1,\
email:admin@example.test,URI:https://example.test/inventory
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[code]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = codeSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[selfsigned]
basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature,keyCertSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[plain]
basicConstraints = CA:FALSE
keyUsage = digitalSignature
";

    /// Runs `openssl` in `dir` with the whitespace-separated words of `cmd`
    /// followed by `tail` (for arguments holding spaces); returns stdout.
    fn openssl(dir: &Path, cmd: &str, tail: &[&str]) -> String {
        let args: Vec<&str> = cmd.split_whitespace().chain(tail.iter().copied()).collect();
        let out = Command::new("openssl")
            .args(&args)
            .current_dir(dir)
            .output()
            .expect("the openssl command-line tool is needed to run these tests");
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A directory holding the openssl configuration used by the tests.
    fn workdir() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("openssl.cnf"), OPENSSL_CNF).unwrap();
        tmp
    }

    fn openssl_date(value: &str) -> i64 {
        // "Nov 24 06:52:56 2036 GMT" (day space-padded)
        let normalized = value.split_whitespace().collect::<Vec<_>>().join(" ");
        chrono::NaiveDateTime::parse_from_str(&normalized, "%b %d %H:%M:%S %Y GMT")
            .unwrap_or_else(|e| panic!("bad openssl date {value:?}: {e}"))
            .and_utc()
            .timestamp()
    }

    fn generated(dir: &Path, pem_file: &str) -> Generated {
        let pem = std::fs::read_to_string(dir.join(pem_file)).unwrap();
        openssl(
            dir,
            &format!("x509 -in {pem_file} -outform DER -out {pem_file}.der"),
            &[],
        );
        let der = std::fs::read(dir.join(format!("{pem_file}.der"))).unwrap();
        let summary = openssl(
            dir,
            &format!(
                "x509 -in {pem_file} -noout -serial -dates -subject -issuer -fingerprint -sha256"
            ),
            &[],
        );
        let field = |prefix: &str| -> String {
            summary
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("no {prefix} in {summary}"))
                .trim()
                .to_owned()
        };
        let facts = OpensslFacts {
            fingerprint: field("sha256 Fingerprint=").replace(':', "").to_lowercase(),
            serial: field("serial=").to_lowercase(),
            not_before: openssl_date(&field("notBefore=")),
            not_after: openssl_date(&field("notAfter=")),
            subject: field("subject=").replace(" = ", "="),
            issuer: field("issuer=").replace(" = ", "="),
            text: openssl(dir, &format!("x509 -in {pem_file} -noout -text"), &[]),
        };
        Generated { pem, der, facts }
    }

    const CA_SUBJECT: &str = "/CN=Certkeeper Test Root CA/O=Certkeeper/C=DE";

    fn fixture() -> &'static Fixture {
        static FIXTURE: OnceLock<Fixture> = OnceLock::new();
        FIXTURE.get_or_init(|| {
            let tmp = workdir();
            let dir = tmp.path();
            let run = |cmd: &str, tail: &[&str]| openssl(dir, cmd, tail);

            // RSA-2048 self-signed CA (random 20-byte serial).
            run(
                "req -x509 -config openssl.cnf -extensions ca -newkey rsa:2048 -nodes \
                 -keyout ca.key -out ca.pem -days 3650 -sha256",
                &["-subj", CA_SUBJECT],
            );

            // EC P-256 leaf signed by the CA; serial with the high bit set.
            run(
                "req -new -config openssl.cnf -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
                 -nodes -keyout leaf.key -out leaf.csr -subj /CN=www.example.test/O=Example",
                &[],
            );
            run(
                "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -set_serial 0xC0FFEE12 \
                 -days 90 -sha256 -extfile openssl.cnf -extensions leaf -out leaf.pem",
                &[],
            );

            // Ed25519 self-signed.
            run(
                "req -x509 -config openssl.cnf -extensions selfsigned -newkey ed25519 -nodes \
                 -keyout ed.key -out ed.pem -days 30 -subj /CN=ed25519.example.test",
                &[],
            );

            // RSA-3072 code-signing certificate with a one-byte serial.
            run(
                "req -new -config openssl.cnf -newkey rsa:3072 -nodes -keyout code.key \
                 -out code.csr",
                &["-subj", "/CN=Certkeeper Code Signing/O=Certkeeper"],
            );
            run(
                "x509 -req -in code.csr -CA ca.pem -CAkey ca.key -set_serial 15 -days 365 \
                 -sha384 -extfile openssl.cnf -extensions code -out code.pem",
                &[],
            );

            // Self-signed P-384 and P-521 certificates.
            for (curve, digest, name) in [("P-384", "sha384", "p384"), ("P-521", "sha512", "p521")]
            {
                run(
                    &format!(
                        "req -x509 -config openssl.cnf -extensions plain -newkey ec \
                         -pkeyopt ec_paramgen_curve:{curve} -nodes -keyout {name}.key \
                         -out {name}.pem -days 10 -{digest} -subj /CN={name}.example.test"
                    ),
                    &[],
                );
            }

            // Same subject as the CA but its own key, issued by the CA: not self-signed.
            run(
                "req -new -config openssl.cnf -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
                 -nodes -keyout twin.key -out twin.csr",
                &["-subj", CA_SUBJECT],
            );
            run(
                "x509 -req -in twin.csr -CA ca.pem -CAkey ca.key -set_serial 4242 -days 30 \
                 -sha256 -extfile openssl.cnf -extensions code -out twin.pem",
                &[],
            );

            Fixture {
                ca: generated(dir, "ca.pem"),
                ca_key_pem: std::fs::read_to_string(dir.join("ca.key")).unwrap(),
                leaf: generated(dir, "leaf.pem"),
                leaf_key_pem: std::fs::read_to_string(dir.join("leaf.key")).unwrap(),
                ed25519: generated(dir, "ed.pem"),
                code: generated(dir, "code.pem"),
                p384: generated(dir, "p384.pem"),
                p521: generated(dir, "p521.pem"),
                same_name_as_ca: generated(dir, "twin.pem"),
                // The CA as a TRUSTED CERTIFICATE, and with openssl's -text dump in front.
                ca_trusted_pem: run("x509 -in ca.pem -trustout -addtrust serverAuth", &[]),
                ca_text_pem: run("x509 -in ca.pem -text", &[]),
            }
        })
    }

    fn parse_one(pem: &str) -> ParsedCertificate {
        let mut certs = parse_certificates(pem.as_bytes()).unwrap();
        assert_eq!(certs.len(), 1);
        certs.remove(0)
    }

    /// Checks the fields every certificate shares against openssl's output.
    fn assert_matches_openssl(cert: &ParsedCertificate, generated: &Generated) {
        let facts = &generated.facts;
        assert_eq!(cert.fingerprint, facts.fingerprint);
        assert_eq!(cert.serial, facts.serial);
        assert_eq!(cert.not_before, facts.not_before);
        assert_eq!(cert.not_after, facts.not_after);
        assert_eq!(cert.subject, facts.subject);
        assert_eq!(cert.issuer, facts.issuer);
        let sig_line = facts
            .text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Signature Algorithm: "))
            .unwrap();
        assert_eq!(cert.signature_algorithm, sig_line.trim());
        if let Some(bits) = facts
            .text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Public-Key: ("))
            .and_then(|rest| rest.strip_suffix(" bit)"))
        {
            assert_eq!(cert.key_bits.to_string(), bits);
        }
        // The re-encoded PEM is exactly what openssl writes.
        assert_eq!(cert.pem, generated.pem);
        assert_eq!(cert.pem.lines().map(str::len).max(), Some(64));
    }

    #[test]
    fn rsa_ca_matches_openssl() {
        let fx = fixture();
        let ca = parse_one(&fx.ca.pem);
        assert_matches_openssl(&ca, &fx.ca);
        assert_eq!(ca.subject, "CN=Certkeeper Test Root CA, O=Certkeeper, C=DE");
        assert_eq!(ca.subject_cn.as_deref(), Some("Certkeeper Test Root CA"));
        assert_eq!(ca.issuer_cn.as_deref(), Some("Certkeeper Test Root CA"));
        assert_eq!(ca.key_algorithm, "RSA");
        assert_eq!(ca.key_bits, 2048);
        assert_eq!(ca.key_curve, None);
        assert_eq!(ca.signature_algorithm, "sha256WithRSAEncryption");
        assert_eq!(ca.key_usage, ["keyCertSign", "cRLSign"]);
        assert!(ca.extended_key_usage.is_empty());
        assert!(ca.is_ca);
        assert!(ca.self_signed);
        assert!(ca.san_dns.is_empty() && ca.san_ip.is_empty());
        assert_eq!(ca.fingerprint.len(), 64);
        assert!(
            ca.fingerprint
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }

    #[test]
    fn ec_leaf_with_sans_and_eku() {
        let fx = fixture();
        let leaf = parse_one(&fx.leaf.pem);
        assert_matches_openssl(&leaf, &fx.leaf);
        assert_eq!(leaf.serial, "c0ffee12");
        assert_eq!(leaf.subject_cn.as_deref(), Some("www.example.test"));
        assert_eq!(leaf.issuer_cn.as_deref(), Some("Certkeeper Test Root CA"));
        assert_eq!(leaf.issuer, parse_one(&fx.ca.pem).subject);
        assert_eq!(leaf.key_algorithm, "EC");
        assert_eq!(leaf.key_bits, 256);
        assert_eq!(leaf.key_curve.as_deref(), Some("P-256"));
        assert!(fx.leaf.facts.text.contains("NIST CURVE: P-256"));
        assert_eq!(leaf.signature_algorithm, "sha256WithRSAEncryption");
        assert_eq!(leaf.san_dns, ["www.example.test", "example.test"]);
        assert_eq!(leaf.san_ip, ["192.0.2.10", "2001:db8::1"]);
        assert_eq!(leaf.san_email, ["admin@example.test"]);
        assert_eq!(leaf.san_uri, ["https://example.test/inventory"]);
        assert_eq!(leaf.extended_key_usage, ["serverAuth", "clientAuth"]);
        assert_eq!(leaf.key_usage, ["digitalSignature", "keyAgreement"]);
        assert!(!leaf.is_ca);
        assert!(!leaf.self_signed);
    }

    #[test]
    fn ed25519_self_signed() {
        let fx = fixture();
        let ed = parse_one(&fx.ed25519.pem);
        assert_matches_openssl(&ed, &fx.ed25519);
        assert_eq!(ed.key_algorithm, "Ed25519");
        assert_eq!(ed.key_bits, 256);
        assert_eq!(ed.key_curve, None);
        assert_eq!(ed.signature_algorithm, "ED25519");
        assert!(ed.is_ca);
        assert!(ed.self_signed);
    }

    #[test]
    fn code_signing_certificate() {
        let fx = fixture();
        let code = parse_one(&fx.code.pem);
        assert_matches_openssl(&code, &fx.code);
        assert_eq!(code.serial, "0f");
        assert_eq!(code.key_algorithm, "RSA");
        assert_eq!(code.key_bits, 3072);
        assert_eq!(code.signature_algorithm, "sha384WithRSAEncryption");
        assert_eq!(code.extended_key_usage, ["codeSigning"]);
        assert_eq!(code.key_usage, ["digitalSignature"]);
        assert!(!code.is_ca);
        assert!(!code.self_signed);
    }

    #[test]
    fn ec_p384_and_p521_curves() {
        let fx = fixture();
        let p384 = parse_one(&fx.p384.pem);
        assert_matches_openssl(&p384, &fx.p384);
        assert_eq!(p384.key_bits, 384);
        assert_eq!(p384.key_curve.as_deref(), Some("P-384"));
        assert_eq!(p384.signature_algorithm, "ecdsa-with-SHA384");
        assert!(p384.self_signed);
        assert!(!p384.is_ca);

        let p521 = parse_one(&fx.p521.pem);
        assert_matches_openssl(&p521, &fx.p521);
        assert_eq!(p521.key_bits, 521);
        assert_eq!(p521.key_curve.as_deref(), Some("P-521"));
        assert_eq!(p521.signature_algorithm, "ecdsa-with-SHA512");
        assert!(p521.self_signed);
    }

    #[test]
    fn same_subject_as_issuer_but_other_key_is_not_self_signed() {
        let fx = fixture();
        let twin = parse_one(&fx.same_name_as_ca.pem);
        assert_matches_openssl(&twin, &fx.same_name_as_ca);
        assert_eq!(twin.subject, twin.issuer);
        assert!(!twin.self_signed);
    }

    #[test]
    fn chain_file_with_key_keeps_order_and_drops_key() {
        let fx = fixture();
        let bundle = format!(
            "Chain for www.example.test\n{}\nintermediate follows\n{}{}",
            fx.leaf.pem, fx.ca.pem, fx.leaf_key_pem
        );
        let certs = parse_certificates(bundle.as_bytes()).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[0].fingerprint, fx.leaf.facts.fingerprint);
        assert_eq!(certs[1].fingerprint, fx.ca.facts.fingerprint);
        assert!(contains_private_key(bundle.as_bytes()));

        // No line of the key's body shows up anywhere in the records.
        let dump = format!("{certs:?}");
        for line in fx.leaf_key_pem.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!dump.contains(line), "key material leaked into the records");
        }

        // Key first, CA key too, then the certificates: same result.
        let key_first = format!(
            "{}{}{}{}",
            fx.ca_key_pem, fx.leaf_key_pem, fx.leaf.pem, fx.ca.pem
        );
        assert_eq!(parse_certificates(key_first.as_bytes()).unwrap(), certs);
    }

    #[test]
    fn crlf_text_dump_and_trusted_certificate() {
        let fx = fixture();
        let ca = parse_one(&fx.ca.pem);

        // /etc/ssl/certs style: openssl -text output in front of the PEM.
        assert!(fx.ca_text_pem.starts_with("Certificate:"));
        assert_eq!(parse_one(&fx.ca_text_pem), ca);

        // Windows line endings and indentation.
        let crlf = fx.ca_text_pem.replace('\n', "\r\n");
        assert_eq!(parse_one(&crlf), ca);
        let indented: String = fx.ca.pem.lines().map(|l| format!("    {l}  \n")).collect();
        assert_eq!(parse_one(&indented), ca);

        // TRUSTED CERTIFICATE: trust settings after the certificate are ignored.
        assert!(fx.ca_trusted_pem.contains("BEGIN TRUSTED CERTIFICATE"));
        assert_eq!(parse_one(&fx.ca_trusted_pem), ca);

        // X509 CERTIFICATE label.
        let x509_label = fx
            .ca
            .pem
            .replace(" CERTIFICATE-----", " X509 CERTIFICATE-----");
        assert_eq!(parse_one(&x509_label), ca);
    }

    #[test]
    fn der_input() {
        let fx = fixture();
        for generated in [&fx.ca, &fx.leaf, &fx.ed25519] {
            let from_pem = parse_one(&generated.pem);
            let certs = parse_certificates(&generated.der).unwrap();
            assert_eq!(certs, std::slice::from_ref(&from_pem));
            assert_eq!(parse_der(&generated.der).unwrap(), from_pem);
            assert_eq!(certs[0].fingerprint, generated.facts.fingerprint);
        }

        // Concatenated DER keeps order.
        let mut two = fx.leaf.der.clone();
        two.extend_from_slice(&fx.ca.der);
        let certs = parse_certificates(&two).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[0].fingerprint, fx.leaf.facts.fingerprint);
        assert_eq!(certs[1].fingerprint, fx.ca.facts.fingerprint);

        // parse_der wants exactly one certificate.
        assert!(matches!(
            parse_der(&two),
            Err(ParseError::Malformed { index: 0, .. })
        ));
        assert!(matches!(parse_der(b""), Err(ParseError::NoCertificates)));

        // A truncated DER certificate is reported as malformed, not as absent.
        let truncated = &fx.ca.der[..fx.ca.der.len() / 2];
        assert!(matches!(
            parse_certificates(truncated),
            Err(ParseError::Malformed { index: 0, .. })
        ));
        assert!(matches!(
            parse_der(truncated),
            Err(ParseError::Malformed { index: 0, .. })
        ));
    }

    #[test]
    fn no_certificates() {
        let fx = fixture();
        for input in [
            &b""[..],
            b"hello, this is not a certificate\n",
            b"\x00\x01\x02\x03\xff\xfe",
            b"\x30\x03\x02\x01\x00",
            fx.leaf_key_pem.as_bytes(),
        ] {
            let err = parse_certificates(input).unwrap_err();
            assert!(matches!(err, ParseError::NoCertificates), "{err:?}");
            assert!(err.to_string().contains("no certificate"));
        }
    }

    #[test]
    fn corrupted_block_is_malformed_with_index() {
        let fx = fixture();

        // Truncated body: the DER inside is cut short.
        let lines: Vec<&str> = fx.leaf.pem.lines().collect();
        let mut cut: Vec<&str> = lines[..lines.len() / 2].to_vec();
        cut.push("-----END CERTIFICATE-----");
        let truncated = cut.join("\n");
        let input = format!("{}{}\n{}", fx.ca.pem, truncated, fx.leaf_key_pem);
        let err = parse_certificates(input.as_bytes()).unwrap_err();
        assert!(
            matches!(err, ParseError::Malformed { index: 1, .. }),
            "{err:?}"
        );
        // The message names the block and never carries key material.
        let message = err.to_string();
        assert!(message.contains("index 1"), "{message}");
        for line in fx.leaf_key_pem.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!message.contains(line));
        }

        // Invalid base64.
        let bad_base64 = fx.ca.pem.replacen('M', "!", 1);
        assert!(matches!(
            parse_certificates(bad_base64.as_bytes()),
            Err(ParseError::Malformed { index: 0, .. })
        ));

        // Missing END line, followed by a good certificate.
        let unterminated = format!(
            "{}\n{}",
            fx.leaf.pem.replace("-----END CERTIFICATE-----", ""),
            fx.ca.pem
        );
        assert!(matches!(
            parse_certificates(unterminated.as_bytes()),
            Err(ParseError::Malformed { index: 0, .. })
        ));

        // Empty block.
        let empty = "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            parse_certificates(empty.as_bytes()),
            Err(ParseError::Malformed { index: 0, .. })
        ));
    }

    #[test]
    fn private_key_detection() {
        let fx = fixture();
        assert!(contains_private_key(fx.leaf_key_pem.as_bytes()));
        assert!(contains_private_key(fx.ca_key_pem.as_bytes()));
        for label in [
            "RSA PRIVATE KEY",
            "EC PRIVATE KEY",
            "ENCRYPTED PRIVATE KEY",
            "OPENSSH PRIVATE KEY",
        ] {
            let pem = format!("-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n");
            assert!(contains_private_key(pem.as_bytes()), "{label}");
        }
        assert!(!contains_private_key(fx.ca.pem.as_bytes()));
        assert!(!contains_private_key(fx.ca_text_pem.as_bytes()));
        assert!(!contains_private_key(&fx.ca.der));
        assert!(!contains_private_key(b""));
        assert!(!contains_private_key(
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
        ));
    }

    #[test]
    fn serial_formatting_follows_openssl() {
        assert_eq!(openssl_serial(&[0x00]), "00");
        assert_eq!(openssl_serial(&[0x0f]), "0f");
        assert_eq!(openssl_serial(&[0x00, 0xc0, 0xff, 0xee]), "c0ffee");
        assert_eq!(openssl_serial(&[0x01, 0x00]), "0100");
        assert_eq!(openssl_serial(&[0xfb]), "-05");
        assert_eq!(openssl_serial(&[0xff, 0x00]), "-0100");
        assert_eq!(openssl_serial(&[0xff, 0x7f]), "-81");
        assert_eq!(openssl_serial(&[]), "00");
    }

    #[test]
    fn serials_match_openssl() {
        let tmp = workdir();
        let dir = tmp.path();
        openssl(dir, "genpkey -algorithm ed25519 -out k.pem", &[]);
        for serial in [
            "0",
            "1",
            "127",
            "128",
            "255",
            "256",
            "0x00ff00",
            "-5",
            "0x0102030405060708090a0b0c0d0e0f1011121314",
        ] {
            openssl(
                dir,
                "req -x509 -config openssl.cnf -extensions plain -key k.pem -out s.pem -days 1 \
                 -subj /CN=serial -set_serial",
                &[serial],
            );
            let generated = generated(dir, "s.pem");
            let cert = parse_one(&generated.pem);
            assert_eq!(cert.serial, generated.facts.serial, "serial {serial}");
            assert_matches_openssl(&cert, &generated);
        }
    }

    #[test]
    fn bit_lengths() {
        assert_eq!(unsigned_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(unsigned_bits(&[0x01, 0xff]), 9);
        assert_eq!(unsigned_bits(&[0x00]), 0);
        assert_eq!(unsigned_bits(&[]), 0);
    }
}
