//! Certificates for the test logs: a [`TestCa`] (OpenSSL, ECDSA P-256)
//! that issues certificates, precertificate/final-certificate pairs (RFC
//! 6962 §3.1: the precertificate carries the critical poison extension
//! 1.3.6.1.4.1.11129.2.4.3, the final certificate an SCT list
//! 1.3.6.1.4.1.11129.2.4.2; otherwise their TBSCertificates are equal),
//! and [`Template`]s whose serial number is patched in place, so a log of a
//! million entries is built without signing a million certificates.

use openssl::asn1::{Asn1Integer, Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509, X509Builder, X509Extension, X509NameBuilder};

/// The first eight bytes of a template's 16-byte serial; the last eight are
/// the entry's serial number, big-endian.
const SERIAL_MARKER: [u8; 8] = [0x01, 0x5e, 0xc7, 0x7e, 0x57, 0xa1, 0x1e, 0x90];

/// A CA issuing test certificates.
pub struct TestCa {
    key: PKey<Private>,
    cert: X509,
    leaf_key: PKey<Private>,
}

/// A precertificate and the final certificate issued from it.
#[derive(Clone, Debug)]
pub struct PrecertPair {
    /// The precertificate (with poison), DER.
    pub precert: Vec<u8>,
    /// The final certificate (with an SCT list), DER.
    pub final_cert: Vec<u8>,
    /// The TBSCertificate the log stores: the precertificate's without the
    /// poison extension, DER.
    pub tbs: Vec<u8>,
    /// SHA-256 of the issuer's SubjectPublicKeyInfo.
    pub issuer_key_hash: [u8; 32],
    /// The chain (the CA certificate).
    pub chain: Vec<Vec<u8>>,
}

/// A certificate or precertificate pair whose serial is patched per entry.
#[derive(Clone, Debug)]
pub enum Template {
    /// One certificate entry per serial.
    Cert {
        /// The certificate DER with the marker serial.
        der: Vec<u8>,
        /// Its chain.
        chain: Vec<Vec<u8>>,
    },
    /// A precertificate entry and a final certificate entry per serial.
    Pair(PrecertPair),
}

fn ec_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
    PKey::from_ec_key(EcKey::generate(&group).expect("EC key")).expect("EC key")
}

/// The offsets of the marker serial in `der`.
pub(crate) fn marker_offsets(der: &[u8]) -> Vec<usize> {
    der.windows(SERIAL_MARKER.len())
        .enumerate()
        .filter(|(_, w)| *w == SERIAL_MARKER)
        .map(|(i, _)| i)
        .collect()
}

/// Writes `serial` into every marker serial of `bytes` (at `offsets`).
pub(crate) fn patch(bytes: &mut [u8], offsets: &[usize], serial: u64) {
    for &at in offsets {
        bytes[at + 8..at + 16].copy_from_slice(&serial.to_be_bytes());
    }
}

/// The serial a template certificate is issued with: the marker and 0.
fn marker_serial() -> Asn1Integer {
    let mut bytes = SERIAL_MARKER.to_vec();
    bytes.extend_from_slice(&[0; 8]);
    BigNum::from_slice(&bytes)
        .and_then(|b| b.to_asn1_integer())
        .expect("serial")
}

/// The first element of a DER SEQUENCE's content (the TBSCertificate of a
/// certificate), whole.
pub fn tbs_of(cert: &[u8]) -> Vec<u8> {
    fn header(d: &[u8]) -> (usize, usize) {
        let first = d[1];
        if first < 0x80 {
            (2, first as usize)
        } else {
            let n = (first & 0x7f) as usize;
            let len = d[2..2 + n]
                .iter()
                .fold(0usize, |v, &b| (v << 8) | b as usize);
            (2 + n, len)
        }
    }
    let (outer, _) = header(cert);
    let inner = &cert[outer..];
    let (h, len) = header(inner);
    inner[..h + len].to_vec()
}

impl TestCa {
    /// A self-signed CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let key = ec_key();
        let mut subject = X509NameBuilder::new().expect("name");
        subject.append_entry_by_text("CN", name).expect("CN");
        subject
            .append_entry_by_text("O", "Certkeeper tests")
            .expect("O");
        let subject = subject.build();
        let mut b = X509Builder::new().expect("builder");
        b.set_version(2).expect("version");
        b.set_serial_number(
            &BigNum::from_u32(1)
                .and_then(|n| n.to_asn1_integer())
                .expect("serial"),
        )
        .expect("serial");
        b.set_subject_name(&subject).expect("subject");
        b.set_issuer_name(&subject).expect("issuer");
        b.set_pubkey(&key).expect("key");
        b.set_not_before(&Asn1Time::from_unix(1_700_000_000).expect("time"))
            .expect("nb");
        b.set_not_after(&Asn1Time::from_unix(2_000_000_000).expect("time"))
            .expect("na");
        b.sign(&key, MessageDigest::sha256()).expect("sign");
        TestCa {
            key,
            cert: b.build(),
            leaf_key: ec_key(),
        }
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> Vec<u8> {
        self.cert.to_der().expect("DER")
    }

    /// The chain a leaf is logged with.
    pub fn chain(&self) -> Vec<Vec<u8>> {
        vec![self.cert_der()]
    }

    /// SHA-256 of the CA's SubjectPublicKeyInfo.
    pub fn key_hash(&self) -> [u8; 32] {
        let spki = self.key.public_key_to_der().expect("SPKI");
        openssl::sha::sha256(&spki)
    }

    /// Builds and signs a leaf; `extra` is `None`, `Some(true)` for the
    /// poison, `Some(false)` for an SCT list.
    fn leaf(&self, names: &[&str], serial: &Asn1Integer, extra: Option<bool>) -> Vec<u8> {
        let mut subject = X509NameBuilder::new().expect("name");
        subject
            .append_entry_by_text("CN", names.first().copied().unwrap_or("none"))
            .expect("CN");
        let subject = subject.build();
        let mut b = X509Builder::new().expect("builder");
        b.set_version(2).expect("version");
        b.set_serial_number(serial).expect("serial");
        b.set_subject_name(&subject).expect("subject");
        b.set_issuer_name(self.cert.subject_name()).expect("issuer");
        b.set_pubkey(&self.leaf_key).expect("key");
        b.set_not_before(&Asn1Time::from_unix(1_760_000_000).expect("time"))
            .expect("nb");
        b.set_not_after(&Asn1Time::from_unix(1_790_000_000).expect("time"))
            .expect("na");
        let mut san = SubjectAlternativeName::new();
        for name in names {
            san.dns(name);
        }
        let san = san
            .build(&b.x509v3_context(Some(&self.cert), None))
            .expect("SAN");
        b.append_extension(san).expect("SAN");
        match extra {
            Some(true) => {
                let oid = Asn1Object::from_str("1.3.6.1.4.1.11129.2.4.3").expect("oid");
                let null = Asn1OctetString::new_from_bytes(&[0x05, 0x00]).expect("null");
                b.append_extension(X509Extension::new_from_der(&oid, true, &null).expect("poison"))
                    .expect("poison");
            }
            Some(false) => {
                let oid = Asn1Object::from_str("1.3.6.1.4.1.11129.2.4.2").expect("oid");
                // An OCTET STRING holding a (fake) SignedCertificateTimestampList.
                let list = Asn1OctetString::new_from_bytes(&[0x04, 0x04, 0x00, 0x02, 0xab, 0xcd])
                    .expect("sct");
                b.append_extension(X509Extension::new_from_der(&oid, false, &list).expect("sct"))
                    .expect("sct");
            }
            None => {}
        }
        b.sign(&self.key, MessageDigest::sha256()).expect("sign");
        b.build().to_der().expect("DER")
    }

    fn serial(serial: u64) -> Asn1Integer {
        let mut bytes = SERIAL_MARKER.to_vec();
        bytes.extend_from_slice(&serial.to_be_bytes());
        BigNum::from_slice(&bytes)
            .and_then(|b| b.to_asn1_integer())
            .expect("serial")
    }

    /// A certificate for `names` (the first is also the CN), DER.
    pub fn issue(&self, names: &[&str], serial: u64) -> Vec<u8> {
        self.leaf(names, &Self::serial(serial), None)
    }

    /// A precertificate and its final certificate for `names`.
    pub fn precert_pair(&self, names: &[&str], serial: u64) -> PrecertPair {
        self.pair_with(names, &Self::serial(serial))
    }

    fn pair_with(&self, names: &[&str], serial: &Asn1Integer) -> PrecertPair {
        let precert = self.leaf(names, serial, Some(true));
        let final_cert = self.leaf(names, serial, Some(false));
        // Without either extension the TBS is the precertificate's minus
        // its poison, as the log stores it.
        let tbs = tbs_of(&self.leaf(names, serial, None));
        PrecertPair {
            precert,
            final_cert,
            tbs,
            issuer_key_hash: self.key_hash(),
            chain: self.chain(),
        }
    }

    /// A template for [`super::Log::add_templated`]: a certificate, or a
    /// precertificate pair, for `names`.
    pub fn template(&self, names: &[&str], pair: bool) -> Template {
        if pair {
            Template::Pair(self.pair_with(names, &marker_serial()))
        } else {
            Template::Cert {
                der: self.leaf(names, &marker_serial(), None),
                chain: self.chain(),
            }
        }
    }
}
