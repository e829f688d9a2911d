//! Fuzz target: `certkeeper::discovery::files::read_certificates`, the
//! per-file reader of file discovery (PEM, DER, PKCS#7, PKCS#12, Java key
//! store), on arbitrary bytes with no PKCS#12 passwords. It must never panic,
//! and every certificate it returns carries a 64-hex-digit fingerprint.
//!
//! ```sh
//! cd fuzz && cargo +nightly fuzz run read_certificates
//! ```
//!
//! A PKCS#12 input may declare a huge MAC iteration count; run with
//! `-timeout=` to have libFuzzer report such inputs as slow units.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz-input");
    if let Ok(Some((_format, certificates))) =
        certkeeper::discovery::files::read_certificates(path, data, &[])
    {
        for cert in certificates {
            assert_eq!(cert.fingerprint.len(), 64, "{}", cert.fingerprint);
            assert!(cert.fingerprint.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }
});
