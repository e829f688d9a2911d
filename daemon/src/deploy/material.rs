//! What is deployed: a leaf certificate, its intermediates and its private key,
//! and how they become the bytes of each file a server reads.
//!
//! Certificates are parsed and written back as canonical PEM (one block each,
//! no "Bag Attributes" preamble), so `fullchain` is exactly the leaf followed
//! by the intermediates as nginx's `ssl_certificate` wants. The key is written
//! as given (PKCS#1 or PKCS#8, never re-encoded) once it has been checked to
//! parse and to match the leaf: a mismatched pair would stop the server at
//! reload, so it is refused before any file is touched.

use std::fmt;

use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::X509;

use super::config::{DeployTarget, FileKind};
use certkeeper_base::Secret;

/// The certificate and key to deploy. `Debug` shows sizes, never the key.
#[derive(Clone)]
pub struct Material {
    /// The leaf certificate, PEM (exactly one certificate).
    pub leaf_pem: String,
    /// The intermediate certificates, PEM, leaf excluded; may be empty.
    pub chain_pem: String,
    /// The private key of the leaf, unencrypted PEM.
    pub key_pem: Secret,
}

impl Material {
    /// Material from its three parts.
    pub fn new(leaf_pem: impl Into<String>, chain_pem: impl Into<String>, key_pem: Secret) -> Self {
        Self {
            leaf_pem: leaf_pem.into(),
            chain_pem: chain_pem.into(),
            key_pem,
        }
    }

    /// Material from a full-chain PEM as ACME hands it out (leaf first, then
    /// intermediates) and the key.
    pub fn from_fullchain(fullchain_pem: &str, key_pem: Secret) -> Result<Self, String> {
        let certs = X509::stack_from_pem(fullchain_pem.as_bytes())
            .map_err(|e| format!("the full-chain PEM cannot be read: {e}"))?;
        let (leaf, chain) = certs
            .split_first()
            .ok_or("the full-chain PEM holds no certificate")?;
        Ok(Self {
            leaf_pem: pem_string(std::slice::from_ref(leaf))?,
            chain_pem: pem_string(chain)?,
            key_pem,
        })
    }
}

impl fmt::Debug for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Material")
            .field("leaf_pem", &format_args!("{} bytes", self.leaf_pem.len()))
            .field("chain_pem", &format_args!("{} bytes", self.chain_pem.len()))
            .field("key_pem", &self.key_pem)
            .finish()
    }
}

/// The bytes of one file to write. `Debug` omits the bytes, which may be a key.
#[derive(Clone)]
pub(super) struct Rendered {
    pub kind: FileKind,
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} bytes)", self.kind.key(), self.bytes.len())
    }
}

/// Checks the material and renders every file `target` configures, in
/// [`DeployTarget::files`] order. Errors never quote the key or password.
pub(super) fn render(target: &DeployTarget, material: &Material) -> Result<Vec<Rendered>, String> {
    let leaf = X509::stack_from_pem(material.leaf_pem.as_bytes())
        .map_err(|e| format!("the leaf PEM cannot be read: {e}"))?;
    let [leaf] = <[X509; 1]>::try_from(leaf).map_err(|certs| {
        format!(
            "the leaf PEM holds {} certificates; expected exactly one",
            certs.len()
        )
    })?;
    let chain = X509::stack_from_pem(material.chain_pem.as_bytes())
        .map_err(|e| format!("the chain PEM cannot be read: {e}"))?;
    // The error stack of a failed key parse names no key bytes, but say
    // nothing more specific than "cannot be read" anyway.
    let key: PKey<Private> = PKey::private_key_from_pem(material.key_pem.expose().as_bytes())
        .map_err(|_| "the private key PEM cannot be read (an unencrypted PEM key is expected)")?;
    let leaf_public = leaf
        .public_key()
        .map_err(|e| format!("the leaf's public key cannot be read: {e}"))?;
    if !key.public_eq(&leaf_public) {
        return Err("the private key does not belong to the leaf certificate".into());
    }
    let leaf_pem = pem_string(std::slice::from_ref(&leaf))?;
    let chain_pem = pem_string(&chain)?;
    target
        .files()
        .into_iter()
        .map(|(kind, _)| {
            let bytes = match kind {
                FileKind::Cert => leaf_pem.clone().into_bytes(),
                FileKind::Chain => chain_pem.clone().into_bytes(),
                FileKind::Fullchain => format!("{leaf_pem}{chain_pem}").into_bytes(),
                FileKind::Key => key_file(material.key_pem.expose()),
                FileKind::Pkcs12 => pkcs12(target, &key, &leaf, &chain)?,
            };
            Ok(Rendered { kind, bytes })
        })
        .collect()
}

/// Concatenated canonical PEM of `certs`.
fn pem_string(certs: &[X509]) -> Result<String, String> {
    let mut out = String::new();
    for cert in certs {
        let pem = cert
            .to_pem()
            .map_err(|e| format!("cannot encode a certificate as PEM: {e}"))?;
        out.push_str(&String::from_utf8_lossy(&pem));
    }
    Ok(out)
}

/// The key as given, trimmed, ending in exactly one newline (some servers
/// refuse a PEM without the final newline).
fn key_file(key_pem: &str) -> Vec<u8> {
    let mut bytes = key_pem.trim().as_bytes().to_vec();
    bytes.push(b'\n');
    bytes
}

/// A PKCS#12 bundle of key, leaf and chain: AES-256-CBC for key and
/// certificates (PBKDF2), SHA-256 MAC.
fn pkcs12(
    target: &DeployTarget,
    key: &PKey<Private>,
    leaf: &X509,
    chain: &[X509],
) -> Result<Vec<u8>, String> {
    let password = target.pkcs12_password().map_err(|e| e.to_string())?;
    let fail = |e: openssl::error::ErrorStack| format!("cannot build the PKCS#12 bundle: {e}");
    let mut ca = Stack::new().map_err(fail)?;
    for cert in chain {
        ca.push(cert.clone()).map_err(fail)?;
    }
    let mut builder = Pkcs12::builder();
    builder
        .pkey(key)
        .cert(leaf)
        .ca(ca)
        .key_algorithm(Nid::AES_256_CBC)
        .cert_algorithm(Nid::AES_256_CBC)
        .mac_md(MessageDigest::sha256());
    if let Some(name) = &target.pkcs12_name {
        builder.name(name);
    }
    builder
        .build2(password.expose())
        .and_then(|p12| p12.to_der())
        .map_err(fail)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::x509::{X509Builder, X509NameBuilder};

    /// A fresh key and a certificate for `cn` signed by `issuer` (self-signed
    /// when `None`).
    pub fn cert(cn: &str, issuer: Option<(&X509, &PKey<Private>)>) -> (X509, PKey<Private>) {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        let serial = BigNum::from_u32(rand_serial())
            .unwrap()
            .to_asn1_integer()
            .unwrap();
        b.set_serial_number(&serial).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(90).unwrap())
            .unwrap();
        match issuer {
            Some((ca, ca_key)) => {
                b.set_issuer_name(ca.subject_name()).unwrap();
                b.sign(ca_key, MessageDigest::sha256()).unwrap();
            }
            None => {
                b.set_issuer_name(&name).unwrap();
                b.sign(&key, MessageDigest::sha256()).unwrap();
            }
        }
        (b.build(), key)
    }

    fn rand_serial() -> u32 {
        let mut bytes = [0u8; 4];
        openssl::rand::rand_bytes(&mut bytes).unwrap();
        u32::from_le_bytes(bytes) >> 1
    }

    /// Material for `cn`: a leaf signed by one intermediate.
    pub fn material(cn: &str) -> Material {
        let (ca, ca_key) = cert("Test Intermediate", None);
        let (leaf, key) = cert(cn, Some((&ca, &ca_key)));
        let pem = |c: &X509| String::from_utf8(c.to_pem().unwrap()).unwrap();
        let key_pem = String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        Material::new(pem(&leaf), pem(&ca), Secret::new(key_pem))
    }

    fn target(toml: &str) -> DeployTarget {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn fullchain_is_leaf_then_chain_and_key_is_as_given() {
        let m = material("www.example.com");
        let t = target("cert = \"/c\"\nchain = \"/ch\"\nfullchain = \"/f\"\nkey = \"/k\"\n");
        let files = render(&t, &m).unwrap();
        let get = |kind| {
            let f = files.iter().find(|f| f.kind == kind).unwrap();
            String::from_utf8(f.bytes.clone()).unwrap()
        };
        assert_eq!(get(FileKind::Cert), m.leaf_pem);
        assert_eq!(get(FileKind::Chain), m.chain_pem);
        assert_eq!(
            get(FileKind::Fullchain),
            format!("{}{}", m.leaf_pem, m.chain_pem)
        );
        assert_eq!(get(FileKind::Key), m.key_pem.expose());
        let full = X509::stack_from_pem(get(FileKind::Fullchain).as_bytes()).unwrap();
        assert_eq!(full.len(), 2);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let mut m = material("a.test");
        m.key_pem = material("b.test").key_pem;
        let err = render(&target("key = \"/k\"\n"), &m).unwrap_err();
        assert!(err.contains("does not belong"), "{err}");
        m.key_pem =
            Secret::new("-----BEGIN PRIVATE KEY-----\nhunter2\n-----END PRIVATE KEY-----\n");
        let err = render(&target("key = \"/k\"\n"), &m).unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn from_fullchain_splits_leaf_and_chain() {
        let m = material("a.test");
        let split =
            Material::from_fullchain(&format!("{}{}", m.leaf_pem, m.chain_pem), m.key_pem.clone())
                .unwrap();
        assert_eq!(split.leaf_pem, m.leaf_pem);
        assert_eq!(split.chain_pem, m.chain_pem);
    }

    #[test]
    fn debug_never_shows_the_key() {
        let m = material("a.test");
        let debug = format!("{m:?}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
        assert!(debug.contains("[redacted]"), "{debug}");
    }
}
