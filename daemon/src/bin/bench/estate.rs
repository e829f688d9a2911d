//! The scan benchmark's TLS estate, made to look like a user's: every
//! endpoint serves a certificate of its own (so nothing the scanner caches
//! per certificate is reused), with the key types and sizes an organisation
//! really has, most leaves from an issuing CA and served with it, some from
//! the root alone, and a few legacy endpoints (TLS 1.0 only, RSA 1024 signed
//! with SHA-1) that a scanner must fall back for and flag.
//!
//! RSA keys are the slow part of building it, so leaves of one RSA size take
//! their keys from a small pool ([`RSA_POOL`] per size): the certificates are
//! still all distinct, and the handshakes cost what that key size costs.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use anyhow::Context as _;
use openssl::asn1::Asn1Time;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509NameBuilder};

use super::common::{ec_key, random_serial};

/// RSA keys made per size; leaves of that size cycle through them.
const RSA_POOL: usize = 16;

/// A key type and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// EC P-256.
    P256,
    /// EC P-384.
    P384,
    /// RSA of this many bits.
    Rsa(u32),
}

/// What endpoint `i` serves: its key, who issued its leaf, and whether it is
/// a legacy endpoint. Out of every 20: 7 P-256, 3 P-384, 5 RSA 2048 and 2
/// RSA 3072 from the issuing CA (served with it), one RSA 2048 and one P-256
/// from the root (leaf only), one legacy.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    /// The leaf's key.
    pub key: KeyKind,
    /// Issued by the intermediate and served with it (else by the root,
    /// leaf alone).
    pub via_intermediate: bool,
    /// TLS 1.0 only, RSA 1024, SHA-1 signature.
    pub legacy: bool,
}

impl Profile {
    /// The profile of endpoint `i`.
    pub fn of(i: usize) -> Profile {
        let (key, via_intermediate, legacy) = match i % 20 {
            0..=6 => (KeyKind::P256, true, false),
            7..=9 => (KeyKind::P384, true, false),
            10..=14 => (KeyKind::Rsa(2048), true, false),
            15 | 16 => (KeyKind::Rsa(3072), true, false),
            17 => (KeyKind::Rsa(2048), false, false),
            18 => (KeyKind::P256, false, false),
            _ => (KeyKind::Rsa(1024), false, true),
        };
        Profile {
            key,
            via_intermediate,
            legacy,
        }
    }

    /// The finding codes a correct scan reports for it (the root is
    /// trusted, leaves are 90-day and name their host).
    pub fn expected_findings(&self) -> &'static [&'static str] {
        if self.legacy {
            &["weak_key", "weak_signature", "legacy_protocol"]
        } else {
            &[]
        }
    }

    /// The nginx directives of its `server` block beyond the certificate.
    pub fn nginx(&self) -> &'static str {
        if self.legacy {
            "ssl_protocols TLSv1; ssl_ciphers ALL:@SECLEVEL=0;"
        } else {
            ""
        }
    }
}

/// How the endpoints sit in the address space.
#[derive(Debug, Clone, Copy)]
pub enum Layout {
    /// 250 endpoints per /24 from 127.20.0.0/24 up (hosts .1 to .250),
    /// even ones on 443 and odd ones on 8443: the /24s hold as many closed
    /// ports as open ones.
    Subnets,
    /// One /16, 127.100.0.0/16, with the endpoints spread evenly across it
    /// (even ones on 443, odd ones on 8443): the rest of its 65,536
    /// addresses × 2 ports are closed.
    Wide,
}

/// Second octet of the first /24 of [`Layout::Subnets`].
const FIRST_SUBNET: usize = 20;
/// Endpoints per /24 of [`Layout::Subnets`].
const PER_SUBNET: usize = 250;

impl Layout {
    /// The most endpoints the layout holds.
    pub fn capacity(self) -> usize {
        match self {
            Layout::Subnets => PER_SUBNET * (256 - FIRST_SUBNET),
            Layout::Wide => 65_534,
        }
    }

    /// The address of endpoint `i` of `n`.
    pub fn endpoint(self, i: usize, n: usize) -> SocketAddr {
        let port = if i.is_multiple_of(2) { 443 } else { 8443 };
        let ip = match self {
            Layout::Subnets => {
                let subnet = FIRST_SUBNET + i / PER_SUBNET;
                let host = 1 + i % PER_SUBNET;
                // Both below 256: n is at most `capacity`.
                Ipv4Addr::new(127, subnet as u8, 0, host as u8)
            }
            Layout::Wide => {
                let stride = (65_534 / n.max(1)).max(1);
                let a = 1 + i * stride;
                Ipv4Addr::new(127, 100, (a >> 8) as u8, (a & 0xff) as u8)
            }
        };
        SocketAddr::new(IpAddr::V4(ip), port)
    }

    /// The ranges to scan for `n` endpoints.
    pub fn ranges(self, n: usize) -> Vec<String> {
        match self {
            Layout::Subnets => (0..n.div_ceil(PER_SUBNET))
                .map(|s| format!("127.{}.0.0/24", FIRST_SUBNET + s))
                .collect(),
            Layout::Wide => vec!["127.100.0.0/16".to_owned()],
        }
    }

    /// Addresses in [`Layout::ranges`].
    pub fn addresses(self, n: usize) -> usize {
        match self {
            Layout::Subnets => n.div_ceil(PER_SUBNET) * 256,
            Layout::Wide => 65_536,
        }
    }
}

/// A CA certificate and its key.
pub struct Signer {
    /// The certificate.
    pub cert: X509,
    key: PKey<Private>,
}

/// The estate's PKI: a root (the scan's trusted root), an issuing CA under
/// it, and the RSA key pool.
pub struct Pki {
    /// The root.
    pub root: Signer,
    /// The issuing CA.
    pub intermediate: Signer,
    rsa: HashMap<u32, Vec<PKey<Private>>>,
    /// Leaves [`Pki::root_leaf`] made.
    issued: usize,
}

/// One endpoint of the estate, written to disk.
pub struct Endpoint {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its profile.
    pub profile: Profile,
    /// Its leaf's SHA-256 fingerprint (lowercase hex).
    pub fingerprint: String,
    /// Its `server` block.
    pub nginx: String,
}

impl Pki {
    /// A new root and issuing CA (EC P-256, as most private PKIs now make).
    pub fn new() -> anyhow::Result<Pki> {
        let root_key = ec_key()?;
        let root = ca_cert("Certkeeper Bench Root", &root_key, None)?;
        let root = Signer {
            cert: root,
            key: root_key,
        };
        let key = ec_key()?;
        let intermediate = ca_cert("Certkeeper Bench Issuing CA 1", &key, Some(&root))?;
        Ok(Pki {
            root,
            intermediate: Signer {
                cert: intermediate,
                key,
            },
            rsa: HashMap::new(),
            issued: 0,
        })
    }

    fn key(&mut self, kind: KeyKind, i: usize) -> anyhow::Result<PKey<Private>> {
        Ok(match kind {
            KeyKind::P256 => ec_key()?,
            KeyKind::P384 => {
                let group = EcGroup::from_curve_name(Nid::SECP384R1)?;
                PKey::from_ec_key(EcKey::generate(&group)?)?
            }
            KeyKind::Rsa(bits) => {
                let pool = self.rsa.entry(bits).or_default();
                if pool.len() < RSA_POOL {
                    pool.push(PKey::from_rsa(Rsa::generate(bits)?)?);
                }
                pool[(i / 20) % pool.len()].clone()
            }
        })
    }

    /// A 90-day leaf for `cn` from the root (EC P-256, or RSA 2048 from the
    /// pool), for the file tree.
    pub fn root_leaf(&mut self, cn: &str, rsa: bool) -> anyhow::Result<X509> {
        let kind = if rsa {
            KeyKind::Rsa(2048)
        } else {
            KeyKind::P256
        };
        let key = self.key(kind, self.issued)?;
        self.issued += 1;
        leaf_cert(cn, &key, &self.root, MessageDigest::sha256())
    }

    /// Makes endpoint `i` of `n`: its leaf for `host{i}.estate.test` and
    /// key in `dir` (`e{i}.pem`, the chain it serves, and `e{i}.key`).
    pub fn endpoint(
        &mut self,
        layout: Layout,
        i: usize,
        n: usize,
        dir: &Path,
    ) -> anyhow::Result<Endpoint> {
        let profile = Profile::of(i);
        let key = self.key(profile.key, i)?;
        let cn = format!("host{i}.estate.test");
        let issuer = if profile.via_intermediate {
            &self.intermediate
        } else {
            &self.root
        };
        let digest = if profile.legacy {
            MessageDigest::sha1()
        } else {
            MessageDigest::sha256()
        };
        let leaf = leaf_cert(&cn, &key, issuer, digest)?;
        let mut chain = leaf.to_pem()?;
        if profile.via_intermediate {
            chain.extend_from_slice(&self.intermediate.cert.to_pem()?);
        }
        let cert_file = dir.join(format!("e{i}.pem"));
        let key_file = dir.join(format!("e{i}.key"));
        std::fs::write(&cert_file, chain).with_context(|| cert_file.display().to_string())?;
        std::fs::write(&key_file, key.private_key_to_pem_pkcs8()?)?;
        let addr = layout.endpoint(i, n);
        Ok(Endpoint {
            addr,
            profile,
            fingerprint: hex::encode(leaf.digest(MessageDigest::sha256())?),
            nginx: format!(
                "server {{ listen {addr} ssl; ssl_certificate {}; ssl_certificate_key {}; {} return 200 ok; }}\n",
                cert_file.display(),
                key_file.display(),
                profile.nginx()
            ),
        })
    }
}

fn name(cn: &str) -> anyhow::Result<openssl::x509::X509Name> {
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("O", "Certkeeper Bench")?;
    name.append_entry_by_text("CN", cn)?;
    Ok(name.build())
}

/// A CA certificate for `cn`, self-signed or issued by `parent`.
fn ca_cert(cn: &str, key: &PKey<Private>, parent: Option<&Signer>) -> anyhow::Result<X509> {
    let subject = name(cn)?;
    let mut cert = X509::builder()?;
    cert.set_version(2)?;
    cert.set_serial_number(&*random_serial()?)?;
    cert.set_subject_name(&subject)?;
    cert.set_issuer_name(parent.map_or(&*subject, |p| p.cert.subject_name()))?;
    cert.set_pubkey(key)?;
    cert.set_not_before(&*Asn1Time::days_from_now(0)?)?;
    cert.set_not_after(&*Asn1Time::days_from_now(3650)?)?;
    let constraints = match parent {
        None => BasicConstraints::new().critical().ca().build()?,
        Some(_) => BasicConstraints::new().critical().ca().pathlen(0).build()?,
    };
    cert.append_extension(constraints)?;
    cert.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()?,
    )?;
    let ski =
        SubjectKeyIdentifier::new().build(&cert.x509v3_context(parent.map(|p| &*p.cert), None))?;
    cert.append_extension(ski)?;
    if let Some(parent) = parent {
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&cert.x509v3_context(Some(&parent.cert), None))?;
        cert.append_extension(aki)?;
    }
    cert.sign(parent.map_or(key, |p| &p.key), MessageDigest::sha256())?;
    Ok(cert.build())
}

/// A 90-day server certificate for `cn` with `key`, issued by `issuer`.
fn leaf_cert(
    cn: &str,
    key: &PKey<Private>,
    issuer: &Signer,
    digest: MessageDigest,
) -> anyhow::Result<X509> {
    let mut cert = X509::builder()?;
    cert.set_version(2)?;
    cert.set_serial_number(&*random_serial()?)?;
    let subject = name(cn)?;
    cert.set_subject_name(&subject)?;
    cert.set_issuer_name(issuer.cert.subject_name())?;
    cert.set_pubkey(key)?;
    cert.set_not_before(&*Asn1Time::days_from_now(0)?)?;
    cert.set_not_after(&*Asn1Time::days_from_now(90)?)?;
    cert.append_extension(BasicConstraints::new().critical().build()?)?;
    let mut usage = KeyUsage::new();
    usage.critical().digital_signature();
    if key.rsa().is_ok() {
        usage.key_encipherment();
    }
    cert.append_extension(usage.build()?)?;
    cert.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
    let context = cert.x509v3_context(Some(&issuer.cert), None);
    let san = SubjectAlternativeName::new().dns(cn).build(&context)?;
    let aki = AuthorityKeyIdentifier::new().keyid(true).build(&context)?;
    cert.append_extension(san)?;
    cert.append_extension(aki)?;
    cert.sign(&issuer.key, digest)?;
    Ok(cert.build())
}
