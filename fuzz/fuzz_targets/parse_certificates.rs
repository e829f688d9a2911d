//! Fuzz target: `certkeeper::inventory::parse::parse_certificates` on
//! arbitrary bytes (PEM, DER, or neither). It must never panic, and every
//! certificate it returns carries a 64-hex-digit SHA-256 fingerprint.
//!
//! ```sh
//! cd fuzz && cargo +nightly fuzz run parse_certificates
//! ```
//!
//! Seed the corpus with real files (`fuzz/corpus/parse_certificates/`), e.g.
//! the PEM chain, DER, PKCS#7 and PKCS#12 files tests/fuzz_parsers.rs makes.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(certificates) = certkeeper::inventory::parse::parse_certificates(data) {
        for cert in certificates {
            assert_eq!(cert.fingerprint.len(), 64, "{}", cert.fingerprint);
            assert!(cert.fingerprint.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }
});
