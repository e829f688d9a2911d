//! Stable-Rust fuzzing of the certificate parsers, in the normal test suite.
//!
//! cargo-fuzz (`fuzz/`) needs nightly; this runs the same two targets,
//! `inventory::parse::parse_certificates` and
//! `discovery::files::read_certificates`, on 20,000 inputs made by a
//! deterministic xorshift mutator from real seeds the openssl CLI makes in a
//! temporary directory (a PEM chain, PEM with its key, DER, concatenated
//! DER, PKCS#7 in DER and PEM, PKCS#12, a hand-built Java key store) and
//! garbage: bit flips, truncations, insertions, DER length-field corruption,
//! chunk duplication, splices of two seeds, and mutated DER re-wrapped in
//! PEM. Both parsers must not panic, must answer every input within a bound,
//! and every certificate they return must carry a 64-hex-digit fingerprint.
//!
//! A failure names the iteration: `input(seeds, i)` rebuilds that exact
//! input (the mutator is seeded from `i`), and the message says which seed
//! and which mutations made it.

#![allow(clippy::unwrap_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use base64::Engine as _;
use certkeeper_discovery::files;
use certkeeper_model::inventory::ParsedCertificate;
use certkeeper_model::inventory::parse::parse_certificates;
use common::openssl;

/// Inputs tried (each goes to both parsers).
const ITERATIONS: u64 = 20_000;
/// An input slower than this is reported as a failure.
const SLOW: Duration = Duration::from_secs(1);
/// An input still running after this is reported as a hang (the test stops
/// waiting for it).
const HANG: Duration = Duration::from_secs(10);

/// xorshift64*: tiny, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Never zero, and neighbouring seeds far apart.
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// A Java key store (version 2) holding `ders` as trusted-certificate
/// entries, with a (wrong, unchecked) 20-byte integrity digest.
fn jks(ders: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2];
    out.extend_from_slice(&(ders.len() as u32).to_be_bytes());
    for (i, der) in ders.iter().enumerate() {
        out.extend_from_slice(&2u32.to_be_bytes()); // trusted certificate entry
        let alias = format!("cert{i}");
        out.extend_from_slice(&(alias.len() as u16).to_be_bytes());
        out.extend_from_slice(alias.as_bytes());
        out.extend_from_slice(&1_700_000_000_000u64.to_be_bytes());
        out.extend_from_slice(&5u16.to_be_bytes());
        out.extend_from_slice(b"X.509");
        out.extend_from_slice(&(der.len() as u32).to_be_bytes());
        out.extend_from_slice(der);
    }
    out.extend_from_slice(&[0x5a; 20]);
    out
}

/// The seeds, made with the openssl CLI: (name, bytes).
fn seeds(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "3650",
            "-subj",
            "/O=Fuzz/CN=Fuzz Root",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=fuzz.test",
        ],
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:fuzz.test,IP:192.0.2.1,email:a@fuzz.test,URI:https://fuzz.test/\n\
         basicConstraints=critical,CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth,clientAuth\nsubjectKeyIdentifier=hash\n\
         authorityKeyIdentifier=keyid\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "90",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.pem",
        ],
    );
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let (leaf_pem, ca_pem, key_pem) = (read("leaf.pem"), read("ca.pem"), read("leaf.key"));
    std::fs::write(dir.join("chain.pem"), [&leaf_pem[..], &ca_pem[..]].concat()).unwrap();
    openssl(
        dir,
        &[
            "x509", "-in", "leaf.pem", "-outform", "DER", "-out", "leaf.der",
        ],
    );
    openssl(
        dir,
        &["x509", "-in", "ca.pem", "-outform", "DER", "-out", "ca.der"],
    );
    openssl(
        dir,
        &[
            "crl2pkcs7",
            "-nocrl",
            "-certfile",
            "chain.pem",
            "-outform",
            "DER",
            "-out",
            "chain.p7b",
        ],
    );
    openssl(
        dir,
        &[
            "crl2pkcs7",
            "-nocrl",
            "-certfile",
            "chain.pem",
            "-out",
            "chain.p7.pem",
        ],
    );
    // A low iteration count keeps each parse cheap; the structure is the
    // one OpenSSL 3 writes by default (PBES2, AES-256-CBC, SHA-256 MAC).
    openssl(
        dir,
        &[
            "pkcs12",
            "-export",
            "-in",
            "leaf.pem",
            "-inkey",
            "leaf.key",
            "-certfile",
            "ca.pem",
            "-passout",
            "pass:",
            "-iter",
            "16",
            "-out",
            "leaf.p12",
        ],
    );
    let (leaf_der, ca_der) = (read("leaf.der"), read("ca.der"));
    let mut garbage = Vec::new();
    let mut rng = Rng::new(7);
    garbage.extend((0..600).map(|_| rng.byte()));
    vec![
        ("pem_chain", read("chain.pem")),
        ("pem_with_key", [&key_pem[..], &leaf_pem[..]].concat()),
        ("der", leaf_der.clone()),
        ("der_concat", [&leaf_der[..], &ca_der[..]].concat()),
        ("pkcs7_der", read("chain.p7b")),
        ("pkcs7_pem", read("chain.p7.pem")),
        ("pkcs12", read("leaf.p12")),
        ("jks", jks(&[&leaf_der, &ca_der])),
        ("garbage", garbage),
        (
            "text",
            b"# bundle\n-----BEGIN TRUSTED CERTIFICATE-----\nMIIB!!\n-----END TRUSTED CERTIFICATE-----\n"
                .to_vec(),
        ),
    ]
}

/// Bytes that often start a DER element (the byte after is its length).
const DER_TAGS: [u8; 12] = [
    0x30, 0x31, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x17, 0xa0, 0xa3,
];

/// Length encodings that trip parsers: zero, the largest short form,
/// indefinite, long forms claiming far more than there is, too many bytes.
const BAD_LENGTHS: [&[u8]; 7] = [
    &[0x00],
    &[0x7f],
    &[0x80],
    &[0x81, 0xff],
    &[0x82, 0xff, 0xff],
    &[0x84, 0xff, 0xff, 0xff, 0xff],
    &[0x89, 1, 2, 3, 4, 5, 6, 7, 8, 9],
];

/// Applies one random mutation to `data`, returning its name.
fn mutate(data: &mut Vec<u8>, other: &[u8], rng: &mut Rng) -> String {
    let len = data.len();
    match rng.below(8) {
        0 => {
            let flips = 1 + rng.below(8);
            for _ in 0..flips {
                if !data.is_empty() {
                    let at = rng.below(data.len());
                    data[at] ^= 1 << rng.below(8);
                }
            }
            format!("flip {flips} bits")
        }
        1 => {
            let at = rng.below(len + 1);
            data.truncate(at);
            format!("truncate to {at}")
        }
        2 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
            data.splice(at..at, bytes);
            format!("insert {n} bytes at {at}")
        }
        3 => {
            // Corrupt the length of a DER element (for PEM input this hits
            // whatever text matches a tag byte, which is fine too).
            let tags: Vec<usize> = (0..len.saturating_sub(1))
                .filter(|&i| DER_TAGS.contains(&data[i]))
                .collect();
            if tags.is_empty() {
                return "length corruption (no tag)".to_owned();
            }
            let at = tags[rng.below(tags.len())] + 1;
            // Replace the whole old length field, short or long form.
            let old = if data[at] & 0x80 != 0 {
                1 + usize::from(data[at] & 0x7f)
            } else {
                1
            };
            let end = (at + old).min(data.len());
            let new: Vec<u8> = match rng.below(3) {
                0 => BAD_LENGTHS[rng.below(BAD_LENGTHS.len())].to_vec(),
                1 => vec![data[at].wrapping_add(1)],
                _ => vec![data[at].wrapping_sub(1)],
            };
            let described = format!("length at {at} -> {new:02x?}");
            data.splice(at..end, new);
            described
        }
        4 => {
            let cut = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
            format!("splice at {cut} with other[{from}..]")
        }
        5 => {
            let at = rng.below(len + 1);
            let n = (1 + rng.below(8)).min(len - at.min(len));
            let value = [0x00, 0xff, 0x7f, 0x80][rng.below(4)];
            data[at..at + n].fill(value);
            format!("fill {n} bytes at {at} with {value:#04x}")
        }
        6 => {
            let at = rng.below(len + 1);
            let n = rng.below(len - at + 1).min(4096);
            let chunk = data[at..at + n].to_vec();
            data.splice(at..at, chunk);
            format!("duplicate {n} bytes at {at}")
        }
        _ => {
            // Mutate the DER inside the first PEM block, then re-wrap it.
            let Some((start, end, der)) = first_pem_body(data) else {
                return "pem re-wrap (no PEM)".to_owned();
            };
            let mut der = der;
            let inner = mutate(&mut der, other, rng);
            let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
            let lines: Vec<&str> = b64
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            let body = format!("\n{}\n", lines.join("\n"));
            data.splice(start..end, body.into_bytes());
            format!("in PEM body: {inner}")
        }
    }
}

/// The base64 body of the first PEM block: its byte range (between the
/// header line and the footer) and its decoded bytes.
fn first_pem_body(data: &[u8]) -> Option<(usize, usize, Vec<u8>)> {
    let text = std::str::from_utf8(data).ok()?;
    let begin = text.find("-----BEGIN ")?;
    let start = begin + text[begin..].find('\n')?;
    let end = start + text[start..].find("-----END ")?;
    let clean: String = text[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(clean)
        .ok()?;
    Some((start, end, der))
}

/// Input `i`: a seed with one to four stacked mutations, and how it was made.
fn input(seeds: &[(&'static str, Vec<u8>)], i: u64) -> (Vec<u8>, String) {
    let mut rng = Rng::new(i);
    let (name, seed) = &seeds[rng.below(seeds.len())];
    let other = &seeds[rng.below(seeds.len())];
    let mut data = seed.clone();
    let mut steps = Vec::new();
    for _ in 0..1 + rng.below(4) {
        steps.push(mutate(&mut data, &other.1, &mut rng));
    }
    let how = format!("seed {name} (other: {}), {}", other.0, steps.join("; "));
    (data, how)
}

fn check_fingerprints(what: &str, certs: &[ParsedCertificate]) -> Result<(), String> {
    for cert in certs {
        let fp = &cert.fingerprint;
        if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{what} returned a certificate with fingerprint {fp:?}"
            ));
        }
    }
    Ok(())
}

/// Runs both parsers on `data`; `Err` describes a panic or a bad result.
fn run_parsers(data: &[u8]) -> Result<(), String> {
    let panic_message = |payload: Box<dyn std::any::Any + Send>| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "non-string panic".to_owned())
    };
    match catch_unwind(AssertUnwindSafe(|| parse_certificates(data))) {
        Err(payload) => {
            return Err(format!(
                "parse_certificates panicked: {}",
                panic_message(payload)
            ));
        }
        Ok(Ok(certs)) => check_fingerprints("parse_certificates", &certs)?,
        Ok(Err(_)) => {}
    }
    let path = Path::new("fuzz-input");
    match catch_unwind(AssertUnwindSafe(|| {
        files::read_certificates(path, data, &[])
    })) {
        Err(payload) => Err(format!(
            "files::read_certificates panicked: {}",
            panic_message(payload)
        )),
        Ok(Ok(Some((_, certs)))) => check_fingerprints("files::read_certificates", &certs),
        Ok(_) => Ok(()),
    }
}

/// Checks every seed is what it claims to be, so mutations start from real
/// certificate files rather than from inputs the parsers already refuse.
fn check_seeds(seeds: &[(&'static str, Vec<u8>)]) {
    for (name, bytes) in seeds {
        let found = files::read_certificates(Path::new(name), bytes, &[]);
        let count = match &found {
            Ok(Some((_, certs))) => certs.len(),
            _ => 0,
        };
        let expected = match *name {
            "garbage" | "text" => 0,
            "der" | "pem_with_key" => 1,
            _ => 2,
        };
        assert_eq!(count, expected, "seed {name}: {found:?}");
    }
}

#[test]
fn parsers_survive_mutated_certificate_files() {
    let dir = tempfile::tempdir().unwrap();
    let seeds = Arc::new(seeds(dir.path()));
    check_seeds(&seeds);

    // Panics are caught and reported below; keep the default hook from
    // printing each one while the loop runs.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let current = Arc::new(Mutex::new((0u64, String::new())));
    let (tx, rx) = mpsc::channel::<(u64, Duration, Result<(), String>)>();
    let worker = {
        let (seeds, current) = (seeds.clone(), current.clone());
        std::thread::spawn(move || {
            for i in 0..ITERATIONS {
                let (data, how) = input(&seeds, i);
                *current.lock().unwrap() = (i, how);
                let start = Instant::now();
                let result = run_parsers(&data);
                if tx.send((i, start.elapsed(), result)).is_err() {
                    return;
                }
            }
        })
    };

    let started = Instant::now();
    let mut failures = Vec::new();
    let mut slowest = (Duration::ZERO, 0);
    let mut hung = None;
    for _ in 0..ITERATIONS {
        match rx.recv_timeout(HANG) {
            Ok((i, elapsed, result)) => {
                slowest = slowest.max((elapsed, i));
                let problem = match result {
                    Err(e) => Some(e),
                    Ok(()) if elapsed > SLOW => Some(format!("took {elapsed:?}")),
                    Ok(()) => None,
                };
                if let Some(problem) = problem {
                    let (data, how) = input(&seeds, i);
                    failures.push(format!(
                        "input {i} ({} bytes; {how}): {problem}",
                        data.len()
                    ));
                }
            }
            Err(_) => {
                let (i, how) = current.lock().unwrap().clone();
                hung = Some(format!("input {i} ({how}) still running after {HANG:?}"));
                break;
            }
        }
    }
    std::panic::set_hook(hook);
    if hung.is_none() {
        worker.join().unwrap();
    }
    eprintln!(
        "{ITERATIONS} inputs in {:.2?}; slowest: input {} in {:.2?}",
        started.elapsed(),
        slowest.1,
        slowest.0
    );
    if let Some(hung) = hung {
        failures.push(hung);
    }
    assert!(
        failures.is_empty(),
        "{} failing inputs (rebuild one with input(&seeds, i)):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn mutator_is_deterministic_and_mutates() {
    let seeds = vec![("a", b"0123456789abcdef".to_vec()), ("b", vec![0x30; 32])];
    let runs: Vec<(Vec<u8>, String)> = (0..50).map(|i| input(&seeds, i)).collect();
    let again: Vec<(Vec<u8>, String)> = (0..50).map(|i| input(&seeds, i)).collect();
    assert_eq!(runs, again);
    let changed = runs
        .iter()
        .filter(|(data, _)| !seeds.iter().any(|(_, s)| s == data))
        .count();
    assert!(
        changed > 40,
        "{changed} of 50 inputs differ from their seed"
    );
}
