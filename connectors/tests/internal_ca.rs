//! Tests of the internal CA connector: the shared conformance suite, then
//! what an operator relies on — the CA survives a restart, its keys are
//! encrypted at rest, policy is enforced, and the CRL it publishes is
//! accepted by the real `openssl` command line.

// Helpers outside `#[test]` functions are test code too: a failed unwrap is
// a failed test (see clippy.toml).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use certkeeper_connectors::conformance::{self, Fixture};
use certkeeper_connectors::internal_ca::{
    CaKeyType, CaSource, GenerateCa, ImportCa, InternalCa, InternalCaSettings, NamePolicy,
    PemSource, Secret,
};
use certkeeper_connectors::{
    Connector, ErrorClass, Identifier, IssueRequest, MemoryState, RevocationReason, RevokeRequest,
    StateStore, Usage,
};
use chrono::{DateTime, Utc};
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::stack::Stack;
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509, X509Crl, X509ExtendedKeyUsage, X509KeyUsage, X509NameBuilder, X509Req};

const PASSPHRASE: &str = "correct horse battery staple";

fn dns(name: &str) -> Identifier {
    Identifier::Dns(name.into())
}

fn settings(key_type: CaKeyType) -> InternalCaSettings {
    let mut settings = InternalCaSettings::new(
        "internal",
        Secret::new(PASSPHRASE),
        CaSource::Generate(GenerateCa {
            key_type,
            ..GenerateCa::default()
        }),
    );
    settings.policy.names = NamePolicy {
        dns: vec![".svc.test".into(), "*.web.test".into()],
        allow_wildcards: false,
        ip_networks: vec!["10.0.0.0/8".parse().unwrap()],
        email_domains: vec!["test".into()],
    };
    settings.policy.max_validity = Duration::from_secs(30 * 86_400);
    settings
}

async fn open(store: Arc<dyn StateStore>) -> InternalCa {
    InternalCa::open(settings(CaKeyType::EcdsaP256), store)
        .await
        .unwrap()
}

/// Issues for `ids` with a fresh P-256 key; returns the leaf and the chain.
async fn issue(ca: &InternalCa, ids: &[Identifier], usage: Usage) -> (X509, String) {
    let (_, csr) = conformance::key_and_csr(ids).unwrap();
    let mut request = IssueRequest::new(csr, ids.to_vec());
    request.usage = usage;
    let issued = ca.issue(&request).await.unwrap();
    let chain = X509::stack_from_pem(issued.chain_pem.as_bytes()).unwrap();
    (chain[0].clone(), issued.chain_pem)
}

/// A CSR for `ids` signed by `key` (for key types the suite's helper does not make).
fn csr_with_key(key: &PKey<Private>, ids: &[Identifier], digest: MessageDigest) -> Vec<u8> {
    let mut req = X509Req::builder().unwrap();
    req.set_pubkey(key).unwrap();
    req.set_subject_name(&X509NameBuilder::new().unwrap().build())
        .unwrap();
    let mut san = SubjectAlternativeName::new();
    for id in ids {
        if let Identifier::Dns(d) = id {
            san.dns(d);
        }
    }
    let mut extensions = Stack::new().unwrap();
    extensions
        .push(san.build(&req.x509v3_context(None)).unwrap())
        .unwrap();
    req.add_extensions(&extensions).unwrap();
    req.sign(key, digest).unwrap();
    req.build().to_der().unwrap()
}

fn time(t: &openssl::asn1::Asn1TimeRef) -> DateTime<Utc> {
    let diff = Asn1Time::from_unix(0).unwrap().diff(t).unwrap();
    DateTime::from_timestamp(i64::from(diff.days) * 86_400 + i64::from(diff.secs), 0).unwrap()
}

/// Runs `openssl` with `args`; returns whether it succeeded and its output.
fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A store that records every value saved, to inspect what reaches it.
#[derive(Default)]
struct RecordingState {
    inner: MemoryState,
    saved: Mutex<Vec<(String, Vec<u8>)>>,
}

#[async_trait]
impl StateStore for RecordingState {
    async fn load(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.inner.load(key).await
    }

    async fn save(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.saved
            .lock()
            .unwrap()
            .push((key.to_owned(), value.to_vec()));
        self.inner.save(key, value).await
    }
}

/// A store that can be switched off, as a database that went away.
#[derive(Default)]
struct FlakyState {
    inner: MemoryState,
    down: AtomicBool,
}

#[async_trait]
impl StateStore for FlakyState {
    async fn load(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        if self.down.load(Ordering::SeqCst) {
            return Err("connection refused".into());
        }
        self.inner.load(key).await
    }

    async fn save(&self, key: &str, value: &[u8]) -> Result<(), String> {
        if self.down.load(Ordering::SeqCst) {
            return Err("connection refused".into());
        }
        self.inner.save(key, value).await
    }
}

#[tokio::test]
async fn passes_the_conformance_suite() {
    let ca = open(Arc::new(MemoryState::default())).await;
    let flaky = Arc::new(FlakyState::default());
    let down = open(flaky.clone()).await;
    flaky.down.store(true, Ordering::SeqCst);
    let fixture = Fixture {
        connector: &ca,
        identifiers: vec![
            dns("api.svc.test"),
            dns("a.b.svc.test"),
            dns("www.web.test"),
            Identifier::Ip("10.1.2.3".parse().unwrap()),
        ],
        refused: vec![
            dns("svc.test"),
            dns("a.b.web.test"),
            dns("*.web.test"),
            dns("www.example.com"),
            Identifier::Ip("192.0.2.1".parse().unwrap()),
            Identifier::Email("dev@example.com".into()),
        ],
        unreachable: Some(&down),
    };
    conformance::run(&fixture).await.unwrap();
}

#[tokio::test]
async fn a_restart_with_the_same_store_keeps_the_ca_and_its_records() {
    let store = Arc::new(MemoryState::default());
    let ca = open(store.clone()).await;
    let (leaf, chain) = issue(&ca, &[dns("keep.svc.test")], Usage::Server).await;
    let root = ca.root_pem().to_owned();
    drop(ca);

    let reopened = open(store).await;
    assert_eq!(reopened.root_pem(), root);
    assert!(chain.contains(reopened.intermediate_pem()));
    assert!(
        !chain.contains(&root),
        "the chain must not include the root"
    );
    // The CA still recognises what it issued before the restart.
    let page = reopened.list_issued(None).await.unwrap().unwrap();
    assert!(!page.more);
    let listed = page.records;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].certificate_der, leaf.to_der().unwrap());
    assert!(!listed[0].revoked);
    reopened
        .revoke(&RevokeRequest::new(
            leaf.to_der().unwrap(),
            RevocationReason::Superseded,
        ))
        .await
        .unwrap();
    let listed = reopened.list_issued(None).await.unwrap().unwrap().records;
    assert!(listed[0].revoked);
    // Listing again from where the first listing ended: nothing new.
    let since = reopened
        .list_issued(page.cursor.as_deref())
        .await
        .unwrap()
        .unwrap();
    assert!(since.records.is_empty(), "{} records", since.records.len());
    // A revoked certificate is due for renewal now, not in two months.
    let window = reopened
        .renewal_info(&leaf.to_der().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(window.start <= Utc::now(), "{window:?}");
}

#[tokio::test]
async fn keys_reach_the_store_only_encrypted() {
    for key_type in [CaKeyType::EcdsaP256, CaKeyType::Rsa2048] {
        let store = Arc::new(RecordingState::default());
        let ca = InternalCa::open(settings(key_type), store.clone())
            .await
            .unwrap();
        issue(&ca, &[dns("x.svc.test")], Usage::Server).await;
        let saved = store.saved.lock().unwrap();
        let all: String = saved
            .iter()
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect();
        for plain in [
            "BEGIN PRIVATE KEY",
            "BEGIN EC PRIVATE KEY",
            "BEGIN RSA PRIVATE KEY",
        ] {
            assert!(!all.contains(plain), "{key_type:?}: found {plain}");
        }
        assert_eq!(all.matches("BEGIN ENCRYPTED PRIVATE KEY").count(), 2);
        assert!(!all.contains(PASSPHRASE));
    }
}

#[tokio::test]
async fn a_wrong_passphrase_is_a_clear_permanent_error() {
    let store = Arc::new(MemoryState::default());
    open(store.clone()).await;
    let mut wrong = settings(CaKeyType::EcdsaP256);
    wrong.passphrase = Secret::new("not the passphrase");
    let err = InternalCa::open(wrong, store).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("passphrase"), "{err}");
    assert!(!err.to_string().contains("not the passphrase"));
}

#[tokio::test]
async fn usages_get_their_extended_key_usage() {
    let ca = open(Arc::new(MemoryState::default())).await;
    let cases = [
        (Usage::Server, X509ExtendedKeyUsage::SSL_SERVER),
        (Usage::Client, X509ExtendedKeyUsage::SSL_CLIENT),
        (Usage::CodeSigning, X509ExtendedKeyUsage::CODE_SIGN),
    ];
    for (usage, eku) in cases {
        let (leaf, _) = issue(&ca, &[dns("build.svc.test")], usage).await;
        assert_eq!(leaf.extended_key_usage(), Some(eku), "{usage:?}");
        // An ECDSA key signs; it never encrypts.
        assert_eq!(leaf.key_usage(), Some(X509KeyUsage::DIGITAL_SIGNATURE));
    }
    // A code-signing certificate must not pass as a TLS server certificate.
    let dir = tempfile::tempdir().unwrap();
    let (leaf, _) = issue(&ca, &[dns("build.svc.test")], Usage::CodeSigning).await;
    let root = write(dir.path(), "root.pem", ca.root_pem());
    let int = write(dir.path(), "int.pem", ca.intermediate_pem());
    let leaf = write(dir.path(), "leaf.pem", leaf.to_pem().unwrap());
    let base = ["verify", "-CAfile", &root, "-untrusted", &int];
    let (ok, out) = openssl(&[&base[..], &["-purpose", "sslserver", &leaf]].concat());
    assert!(!ok, "code-signing cert accepted for TLS: {out}");
    let (ok, out) = openssl(&[&base[..], &["-purpose", "any", &leaf]].concat());
    assert!(ok, "{out}");
}

#[tokio::test]
async fn csr_keys_are_checked_against_the_policy() {
    let ca = open(Arc::new(MemoryState::default())).await;
    let ids = [dns("k.svc.test")];
    let request = |csr| IssueRequest::new(csr, ids.to_vec());

    // An RSA server key also gets keyEncipherment, for TLS 1.2 RSA key exchange.
    let rsa = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let issued = ca
        .issue(&request(csr_with_key(&rsa, &ids, MessageDigest::sha256())))
        .await
        .unwrap();
    let leaf = X509::stack_from_pem(issued.chain_pem.as_bytes()).unwrap()[0].clone();
    assert_eq!(
        leaf.key_usage(),
        Some(X509KeyUsage::DIGITAL_SIGNATURE | X509KeyUsage::KEY_ENCIPHERMENT)
    );

    let ed25519 = PKey::generate_ed25519().unwrap();
    ca.issue(&request(csr_with_key(
        &ed25519,
        &ids,
        MessageDigest::null(),
    )))
    .await
    .unwrap();

    let weak = PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap();
    let err = ca
        .issue(&request(csr_with_key(&weak, &ids, MessageDigest::sha256())))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("1024"), "{err}");

    // A CSR whose signature does not match its key proves nothing.
    let mut tampered = csr_with_key(&rsa, &ids, MessageDigest::sha256());
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    let err = ca.issue(&request(tampered)).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("signature"), "{err}");

    let err = ca.issue(&request(b"not a csr".to_vec())).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
}

#[tokio::test]
async fn validity_is_capped_by_the_policy() {
    let ca = open(Arc::new(MemoryState::default())).await;
    let ids = [dns("long.svc.test")];
    let (_, csr) = conformance::key_and_csr(&ids).unwrap();
    let mut request = IssueRequest::new(csr, ids.to_vec());
    request.validity = Some(Duration::from_secs(400 * 86_400));
    let issued = ca.issue(&request).await.unwrap();
    let leaf = X509::stack_from_pem(issued.chain_pem.as_bytes()).unwrap()[0].clone();
    let granted = time(leaf.not_after()) - Utc::now();
    assert!(granted <= chrono::Duration::days(30), "granted {granted}");
    assert!(granted > chrono::Duration::days(29), "granted {granted}");
    // Backdated, so a relying party whose clock is a little slow accepts it.
    assert!(time(leaf.not_before()) < Utc::now() - chrono::Duration::minutes(1));

    // The synthetic renewal window sits at 2/3 to 5/6 of the lifetime.
    let window = ca
        .renewal_info(&leaf.to_der().unwrap())
        .await
        .unwrap()
        .unwrap();
    let lifetime = time(leaf.not_after()) - time(leaf.not_before());
    assert_eq!(window.start, time(leaf.not_before()) + lifetime * 2 / 3);
    assert_eq!(window.end, time(leaf.not_before()) + lifetime * 5 / 6);
}

#[tokio::test]
async fn certificates_of_another_ca_are_refused() {
    let ca = open(Arc::new(MemoryState::default())).await;
    let other = open(Arc::new(MemoryState::default())).await;
    let (foreign, _) = issue(&other, &[dns("f.svc.test")], Usage::Server).await;
    let foreign = foreign.to_der().unwrap();
    let err = ca
        .revoke(&RevokeRequest::new(
            foreign.clone(),
            RevocationReason::KeyCompromise,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("not issued by this CA"), "{err}");
    let err = ca.renewal_info(&foreign).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    let err = ca
        .revoke(&RevokeRequest::new(
            b"junk".to_vec(),
            RevocationReason::Unspecified,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
}

/// The CRL as `openssl` sees it: signature, entries and reasons, and its
/// effect on `openssl verify -crl_check`.
#[tokio::test]
async fn the_crl_satisfies_the_openssl_cli() {
    for key_type in [
        CaKeyType::EcdsaP256,
        CaKeyType::EcdsaP384,
        CaKeyType::Rsa2048,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let crl_path = dir.path().join("issuing.crl");
        let mut settings = settings(key_type);
        settings.crl.distribution_url = Some("http://pki.test/issuing.crl".into());
        settings.crl.path = Some(crl_path.clone());
        let ca = InternalCa::open(settings, Arc::new(MemoryState::default()))
            .await
            .unwrap();
        let (revoked, _) = issue(&ca, &[dns("old.svc.test")], Usage::Server).await;
        let (kept, _) = issue(&ca, &[dns("new.svc.test")], Usage::Server).await;
        let first_crl = X509Crl::from_der(&ca.crl_der()).unwrap();
        assert!(first_crl.get_revoked().is_none());
        ca.revoke(&RevokeRequest::new(
            revoked.to_der().unwrap(),
            RevocationReason::KeyCompromise,
        ))
        .await
        .unwrap();

        // The file on disk is the CRL the API serves.
        assert_eq!(std::fs::read(&crl_path).unwrap(), ca.crl_der());
        let chain = write(
            dir.path(),
            "chain.pem",
            format!("{}{}", ca.root_pem(), ca.intermediate_pem()),
        );
        let crl_der_path = crl_path.to_str().unwrap();
        let (ok, out) = openssl(&[
            "crl",
            "-in",
            crl_der_path,
            "-inform",
            "DER",
            "-CAfile",
            &chain,
            "-verify",
            "-noout",
        ]);
        assert!(ok && out.contains("verify OK"), "{key_type:?}: {out}");
        let (ok, text) = openssl(&[
            "crl",
            "-in",
            crl_der_path,
            "-inform",
            "DER",
            "-text",
            "-noout",
        ]);
        assert!(ok, "{text}");
        assert!(text.contains("Key Compromise"), "{text}");
        assert!(text.contains("X509v3 CRL Number"), "{text}");
        assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
        assert!(text.contains("Next Update"), "{text}");
        let serial = revoked
            .serial_number()
            .to_bn()
            .unwrap()
            .to_hex_str()
            .unwrap();
        assert!(
            text.contains(serial.as_ref() as &str),
            "{serial} missing: {text}"
        );

        let (ok, leaf_text) = openssl(&[
            "x509",
            "-text",
            "-noout",
            "-in",
            &write(dir.path(), "kept.pem", kept.to_pem().unwrap()),
        ]);
        assert!(ok, "{leaf_text}");
        assert!(
            leaf_text.contains("URI:http://pki.test/issuing.crl"),
            "{leaf_text}"
        );
        assert!(leaf_text.contains("CA:FALSE"), "{leaf_text}");

        let root = write(dir.path(), "root.pem", ca.root_pem());
        let int = write(dir.path(), "int.pem", ca.intermediate_pem());
        let crl_pem = write(dir.path(), "crl.pem", ca.crl_pem());
        let verify = |leaf: &X509, name: &str| {
            let leaf = write(dir.path(), name, leaf.to_pem().unwrap());
            openssl(&[
                "verify",
                "-crl_check",
                "-CAfile",
                &root,
                "-untrusted",
                &int,
                "-CRLfile",
                &crl_pem,
                &leaf,
            ])
        };
        let (ok, out) = verify(&revoked, "revoked.pem");
        assert!(
            !ok && out.contains("certificate revoked"),
            "{key_type:?}: {out}"
        );
        let (ok, out) = verify(&kept, "kept.pem");
        assert!(ok && out.contains(": OK"), "{key_type:?}: {out}");
    }
}

#[tokio::test]
async fn the_crl_is_renewed_before_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(CaKeyType::EcdsaP256);
    settings.crl.path = Some(dir.path().join("ca.crl"));
    let store = Arc::new(MemoryState::default());
    let ca = InternalCa::open(settings.clone(), store.clone())
        .await
        .unwrap();
    let crl = X509Crl::from_der(&ca.crl_der()).unwrap();
    let number = |crl: &X509Crl| {
        crl.extension::<openssl::x509::extension::CrlNumber>()
            .unwrap()
            .unwrap()
            .1
            .to_bn()
            .unwrap()
            .to_dec_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(number(&crl), "1");
    let next_update = time(crl.next_update().unwrap());

    // Not yet due: nothing changes.
    assert!(!ca.refresh_crl_if_due(Utc::now()).await.unwrap());
    assert_eq!(ca.crl_der(), crl.to_der().unwrap());

    // A day before nextUpdate it is due: a new CRL with a higher number and
    // a later nextUpdate, also on disk and kept across a restart.
    let later = next_update - chrono::Duration::days(1);
    assert!(ca.crl_due_at() <= later);
    assert!(ca.refresh_crl_if_due(later).await.unwrap());
    let renewed = X509Crl::from_der(&ca.crl_der()).unwrap();
    assert_eq!(number(&renewed), "2");
    assert!(time(renewed.next_update().unwrap()) > next_update);
    assert_eq!(
        std::fs::read(dir.path().join("ca.crl")).unwrap(),
        ca.crl_der()
    );
    drop(ca);
    let reopened = InternalCa::open(settings, store).await.unwrap();
    assert_eq!(reopened.crl_der(), renewed.to_der().unwrap());
}

#[tokio::test]
async fn an_existing_ca_can_be_imported_from_pem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = |name: &str| d.join(name).to_str().unwrap().to_owned();
    let ext = write(
        d,
        "int.ext",
        "basicConstraints=critical,CA:TRUE,pathlen:0\n\
         keyUsage=critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    );
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &path("root.key"),
            "-out",
            &path("root.pem"),
            "-subj",
            "/CN=Imported Root",
            "-days",
            "3650",
        ],
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-keyout",
            &path("int.key"),
            "-passout",
            "pass:file secret",
            "-out",
            &path("int.csr"),
            "-subj",
            "/CN=Imported Issuing CA",
        ],
        &[
            "x509",
            "-req",
            "-in",
            &path("int.csr"),
            "-CA",
            &path("root.pem"),
            "-CAkey",
            &path("root.key"),
            "-set_serial",
            "7",
            "-days",
            "1000",
            "-extfile",
            &ext,
            "-out",
            &path("int.pem"),
        ],
    ];
    for step in steps {
        let (ok, out) = openssl(step);
        assert!(ok, "{step:?}: {out}");
    }

    let import = |int_cert: PemSource| ImportCa {
        root_certificate: PemSource::File(d.join("root.pem")),
        root_key: None,
        intermediate_certificate: int_cert,
        intermediate_key: PemSource::File(d.join("int.key")),
        key_passphrase: Some(Secret::new("file secret")),
    };
    let int_pem = std::fs::read_to_string(d.join("int.pem")).unwrap();
    let mut settings = settings(CaKeyType::EcdsaP256);
    settings.ca = CaSource::Import(import(PemSource::Inline(int_pem.clone())));
    let store = Arc::new(RecordingState::default());
    let ca = InternalCa::open(settings.clone(), store.clone())
        .await
        .unwrap();
    assert_eq!(ca.intermediate_pem(), int_pem);
    let (leaf, _) = issue(&ca, &[dns("i.svc.test")], Usage::Server).await;
    let leaf = write(d, "leaf.pem", leaf.to_pem().unwrap());
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        &path("root.pem"),
        "-untrusted",
        &path("int.pem"),
        &leaf,
    ]);
    assert!(ok, "{out}");
    // Re-sealed under the daemon's passphrase, and no root key stored.
    let all: String = store
        .saved
        .lock()
        .unwrap()
        .iter()
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert_eq!(all.matches("BEGIN ENCRYPTED PRIVATE KEY").count(), 1);
    drop(ca);

    // Reopening with the same import is fine; with another CA it is refused.
    InternalCa::open(settings.clone(), store.clone())
        .await
        .unwrap();
    let other = open(Arc::new(MemoryState::default())).await;
    settings.ca = CaSource::Import(import(PemSource::Inline(other.intermediate_pem().into())));
    let err = InternalCa::open(settings.clone(), store).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("different CA"), "{err}");

    // The wrong file passphrase names the problem.
    if let CaSource::Import(import) = &mut settings.ca {
        import.intermediate_certificate = PemSource::File(d.join("int.pem"));
        import.key_passphrase = None;
    }
    let err = InternalCa::open(settings, Arc::new(MemoryState::default()))
        .await
        .unwrap_err();
    assert!(err.message.contains("key_passphrase"), "{err}");
}

#[tokio::test]
async fn a_failing_store_is_transient_and_fails_nothing_half_way() {
    let store = Arc::new(FlakyState::default());
    let ca = open(store.clone()).await;
    let (leaf, _) = issue(&ca, &[dns("a.svc.test")], Usage::Server).await;
    store.down.store(true, Ordering::SeqCst);
    let request = RevokeRequest::new(leaf.to_der().unwrap(), RevocationReason::KeyCompromise);
    let err = ca.revoke(&request).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Transient);
    assert_eq!(ca.health().await.unwrap_err().class, ErrorClass::Transient);
    // The failed revocation was not half-applied: once the store is back,
    // revoking works (instead of claiming "already revoked").
    store.down.store(false, Ordering::SeqCst);
    ca.revoke(&request).await.unwrap();
    ca.health().await.unwrap();
    let crl = X509Crl::from_der(&ca.crl_der()).unwrap();
    assert_eq!(crl.get_revoked().map(|r| r.len()), Some(1));
}

/// Two daemons sharing one store: each opens the internal CA on the same
/// state (the first to start makes it, the other loads it), and they revoke
/// different certificates at the same moment. The stored CRL, and the one
/// each of them serves after its next refresh, lists both; the CRL number
/// moved on once per revocation.
#[tokio::test]
async fn two_daemons_revoking_at_once_both_reach_the_crl() {
    let shared: Arc<dyn StateStore> = Arc::new(MemoryState::default());
    let (a, b) = tokio::join!(open(shared.clone()), open(shared.clone()));
    assert_eq!(a.root_pem(), b.root_pem(), "one CA, whoever started first");
    let start_number = crl_number(&a.crl_der());

    let mut leaves = Vec::new();
    for i in 0..8 {
        let (leaf, _) = issue(&a, &[dns(&format!("r{i}.svc.test"))], Usage::Server).await;
        leaves.push(leaf);
    }
    let request =
        |leaf: &X509| RevokeRequest::new(leaf.to_der().unwrap(), RevocationReason::Superseded);
    // Pairs at once, one through each daemon.
    for pair in leaves.chunks(2) {
        let (first, second) = (request(&pair[0]), request(&pair[1]));
        let (x, y) = tokio::join!(a.revoke(&first), b.revoke(&second));
        x.unwrap();
        y.unwrap();
    }
    // A certificate revoked through one is already revoked for the other.
    let again = b
        .revoke(&RevokeRequest::new(
            leaves[0].to_der().unwrap(),
            RevocationReason::Superseded,
        ))
        .await
        .unwrap_err();
    assert!(again.to_string().contains("already revoked"), "{again}");

    // Each serves the stored CRL once it refreshes (the daemon does that at
    // every renewal check).
    a.refresh_crl_if_due(Utc::now()).await.unwrap();
    b.refresh_crl_if_due(Utc::now()).await.unwrap();
    for ca in [&a, &b] {
        let crl = X509Crl::from_der(&ca.crl_der()).unwrap();
        let listed: Vec<String> = crl
            .get_revoked()
            .map(|r| {
                r.iter()
                    .map(|e| {
                        e.serial_number()
                            .to_bn()
                            .unwrap()
                            .to_hex_str()
                            .unwrap()
                            .to_string()
                    })
                    .collect()
            })
            .unwrap_or_default();
        for leaf in &leaves {
            let serial = leaf
                .serial_number()
                .to_bn()
                .unwrap()
                .to_hex_str()
                .unwrap()
                .to_string();
            assert!(listed.contains(&serial), "{serial} missing from {listed:?}");
        }
        assert_eq!(crl_number(&ca.crl_der()), start_number + 8);
    }
}

/// The CRL number extension of a DER CRL, read back by `openssl crl`.
fn crl_number(der: &[u8]) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.crl");
    std::fs::write(&path, der).unwrap();
    let (ok, out) = openssl(&[
        "crl",
        "-in",
        path.to_str().unwrap(),
        "-inform",
        "DER",
        "-noout",
        "-crlnumber",
    ]);
    assert!(ok, "{out}");
    let hex = out
        .trim()
        .trim_start_matches("crlNumber=")
        .trim_start_matches("0x");
    u64::from_str_radix(hex, 16).unwrap()
}
