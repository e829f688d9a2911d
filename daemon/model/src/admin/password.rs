//! Account passwords for the web portal and the API: hashing, verifying and
//! the policy a new password must meet.
//!
//! Passwords are stored as argon2id [PHC strings]
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) with the OWASP minimum
//! parameters: 19 MiB of memory, two passes, one lane. A PHC string carries its
//! own algorithm, parameters and salt, so [`verify_password`] checks a hash made
//! with older parameters just as well, and the parameters can be raised later
//! without a migration.
//!
//! A login for an account that does not exist must cost as much as one for an
//! account that does, or the response time tells an attacker which user names
//! are real: call [`dummy_verify`] on that path.
//!
//! Neither the password nor the hash ever appears in a [`PasswordError`].
//!
//! [PHC strings]: https://github.com/P-H-C/phc-string-format/blob/master/phc-sf-spec.md

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Memory cost in KiB: 19 MiB, the OWASP minimum for argon2id.
const M_COST_KIB: u32 = 19 * 1024;
/// Number of passes over the memory (OWASP minimum with 19 MiB).
const T_COST: u32 = 2;
/// Degree of parallelism (lanes).
const P_COST: u32 = 1;
/// Salt length in bytes: 128 bits, as the PHC format and RFC 9106 recommend.
const SALT_LEN: usize = 16;

/// Fewest characters a password may have.
pub const MIN_CHARS: usize = 12;
/// Most characters a password may have: enough for any passphrase, and keeps
/// a request from making the server hash megabytes.
pub const MAX_CHARS: usize = 1024;
/// User names shorter than this are only refused as the whole password, not as
/// a part of it: a user called "al" must still be able to pick "totally
/// secret horse".
const MIN_NAME_CHARS_FOR_CONTAINS: usize = 3;

/// An argon2id hash of 24 random bytes that were thrown away (so of a
/// password nobody knows), made with the same parameters
/// as [`hash_password`], for [`dummy_verify`]. A test checks that the
/// parameters match, so raising them here cannot be forgotten.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$\
                          SySo219J15hwaNE7kgpI5Q$fD0W9UXnyKAI5quylotEKScs2VR+dJZwCbzpuQjBwSw";

/// Why a password could not be hashed. Every variant is permanent for the
/// process: retrying the same call will not help.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The system's random number generator failed to produce a salt.
    #[error("no random salt could be made: {0}")]
    Random(#[from] openssl::error::ErrorStack),
    /// argon2 refused the input or its parameters (for example a password
    /// longer than it can take).
    #[error("hashing the password failed: {0}")]
    Hash(argon2::password_hash::Error),
}

/// The argon2id hasher with this module's parameters.
fn hasher() -> Result<Argon2<'static>, PasswordError> {
    let params =
        Params::new(M_COST_KIB, T_COST, P_COST, None).map_err(|e| PasswordError::Hash(e.into()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes `password` with argon2id and a fresh random salt, and returns the
/// PHC string to store (`$argon2id$v=19$m=19456,t=2,p=1$...`).
///
/// This takes tens of milliseconds and 19 MiB of memory on purpose: call it
/// from a blocking task (`tokio::task::spawn_blocking`), not on the runtime.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    // The salt comes from OpenSSL's CSPRNG, which the daemon already uses for
    // keys, rather than pulling in a second random number generator.
    let mut salt = [0u8; SALT_LEN];
    openssl::rand::rand_bytes(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(PasswordError::Hash)?;
    let hash = hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(PasswordError::Hash)?;
    Ok(hash.to_string())
}

/// True when `password` matches the stored PHC string `phc`.
///
/// False for a wrong password and for anything that is not an argon2id PHC
/// string (an empty, truncated or foreign hash): a damaged record locks the
/// account rather than opening it. Never panics. The comparison of the hash
/// outputs is constant time. Blocking, like [`hash_password`].
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return false;
    }
    // The algorithm, version and parameters come from the PHC string itself.
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Spends as long as one [`verify_password`] of a current hash, and discards
/// the result.
///
/// Call it when a login names an account that does not exist (or has no
/// password), so that such a login takes as long as a wrong password for a
/// real account and the response time does not reveal which user names exist.
pub fn dummy_verify() {
    let _ = std::hint::black_box(verify_password(
        "certkeeper dummy password that matches nothing",
        DUMMY_HASH,
    ));
}

/// Checks a new password against the password policy, and says what is wrong
/// in a sentence fit to show the user.
///
/// The policy, following NIST SP 800-63B (length over composition rules):
/// - at least [`MIN_CHARS`] and at most [`MAX_CHARS`] characters (Unicode
///   scalar values, not bytes: "ü" is one character);
/// - not the user name, nor containing it, ignoring case (names shorter than
///   three characters are only refused as the whole password);
/// - not one character repeated.
pub fn check_policy(password: &str, user_name: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(format!(
            "the password is too short: it has {chars} characters and needs at least {MIN_CHARS}"
        ));
    }
    if chars > MAX_CHARS {
        return Err(format!(
            "the password is too long: it has {chars} characters and may have at most {MAX_CHARS}"
        ));
    }
    let lower_password = password.to_lowercase();
    let lower_name = user_name.trim().to_lowercase();
    if !lower_name.is_empty() {
        if lower_password == lower_name {
            return Err("the password must not be the user name".to_owned());
        }
        if lower_name.chars().count() >= MIN_NAME_CHARS_FOR_CONTAINS
            && lower_password.contains(&lower_name)
        {
            return Err("the password must not contain the user name".to_owned());
        }
    }
    let mut all = password.chars();
    if let Some(first) = all.next()
        && all.all(|c| c == first)
    {
        return Err("the password must not be a single character repeated".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_argon2id_phc_with_owasp_parameters() {
        let phc = hash_password("correct horse battery staple").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("correct horse battery staple", &phc));
        assert!(!verify_password("correct horse battery stapl", &phc));
        assert!(!verify_password("", &phc));
    }

    #[test]
    fn salts_are_random() {
        let a = hash_password("same password here").unwrap();
        let b = hash_password("same password here").unwrap();
        assert_ne!(a, b);
        assert!(verify_password("same password here", &a));
        assert!(verify_password("same password here", &b));
    }

    #[test]
    fn unicode_passwords_round_trip() {
        let phc = hash_password("pässwörd-日本語-🔑🔑").unwrap();
        assert!(verify_password("pässwörd-日本語-🔑🔑", &phc));
        assert!(!verify_password("passwort-日本語-🔑🔑", &phc));
    }

    #[test]
    fn malformed_hashes_verify_false_without_panicking() {
        let good = hash_password("a fine long password").unwrap();
        let mut cases = vec![
            String::new(),
            "$".to_owned(),
            "$argon2id$".to_owned(),
            "$argon2id$v=19$m=19456,t=2,p=1$".to_owned(),
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$".to_owned(),
            "$argon2id$v=19$m=0,t=0,p=0$c2FsdHNhbHQ$aGFzaA".to_owned(),
            "$2b$12$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234".to_owned(),
            "plaintext-password".to_owned(),
            "\u{0}\u{ffff}$$$$$$".to_owned(),
        ];
        // Every truncation of a real hash, on char boundaries.
        for end in 0..good.len() {
            cases.push(good[..end].to_owned());
        }
        for phc in &cases {
            assert!(!verify_password("a fine long password", phc), "{phc:?}");
        }
    }

    #[test]
    fn other_argon2_variants_are_refused() {
        // A valid argon2i hash of "password": well formed, but not what we store.
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        );
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let phc = argon2i
            .hash_password(b"some long password", &salt)
            .unwrap()
            .to_string();
        assert!(!verify_password("some long password", &phc));
    }

    #[test]
    fn dummy_hash_uses_current_parameters() {
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        let current = hash_password("another long password").unwrap();
        let current = PasswordHash::new(&current).unwrap();
        assert_eq!(dummy.algorithm, current.algorithm);
        assert_eq!(dummy.version, current.version);
        assert_eq!(dummy.params, current.params);
        assert_eq!(dummy.hash.map(|h| h.len()), current.hash.map(|h| h.len()));
        dummy_verify();
    }

    #[test]
    fn policy_length_counts_characters_not_bytes() {
        // 11 characters but 22 bytes: too short.
        let err = check_policy("ääääääääääb", "alice").unwrap_err();
        assert!(err.contains("11 characters"), "{err}");
        assert!(err.contains("at least 12"), "{err}");
        // 12 characters.
        assert_eq!(check_policy("äääääääääääb", "alice"), Ok(()));
        assert_eq!(check_policy("correct horse", "alice"), Ok(()));
    }

    #[test]
    fn policy_refuses_too_long() {
        let long: String = "ab".repeat(MAX_CHARS / 2) + "c";
        let err = check_policy(&long, "alice").unwrap_err();
        assert!(err.contains("at most 1024"), "{err}");
        let max: String = "ab".repeat(MAX_CHARS / 2);
        assert_eq!(check_policy(&max, "alice"), Ok(()));
    }

    #[test]
    fn policy_refuses_user_name_ignoring_case() {
        let err = check_policy("Administrator", "administrator").unwrap_err();
        assert_eq!(err, "the password must not be the user name");
        let err = check_policy("my-ALICE-password", "Alice").unwrap_err();
        assert_eq!(err, "the password must not contain the user name");
        // A very short name is only refused as the whole password.
        assert_eq!(check_policy("totally secret horse", "al"), Ok(()));
        // An empty name refuses nothing.
        assert_eq!(check_policy("totally secret horse", ""), Ok(()));
    }

    #[test]
    fn policy_refuses_one_repeated_character() {
        let err = check_policy("aaaaaaaaaaaaaaaa", "bob").unwrap_err();
        assert_eq!(err, "the password must not be a single character repeated");
        assert_eq!(check_policy("aaaaaaaaaaaaaaab", "bob"), Ok(()));
    }
}
