//! API tokens, web-portal session ids and CSRF tokens.
//!
//! An API token reads `ckt_<id>_<secret>`:
//! - `ckt_` marks it as a Certkeeper token, so secret scanners (and people)
//!   can recognise a leaked one;
//! - `<id>` is 12 lowercase hex characters (48 random bits). It is not secret:
//!   the store looks the token up by it, and logs and the audit trail may name it;
//! - `<secret>` is 32 random bytes from OpenSSL's CSPRNG, base64url without
//!   padding (43 characters). Only its SHA-256 is stored.
//!
//! The whole token is shown to its owner once, at creation ([`NewToken`]), and
//! cannot be recovered afterwards. On each request [`parse`] splits the
//! presented token, the store finds the record by id, and [`verify`] compares
//! the secret's hash in constant time.
//!
//! Session ids for the web portal are 32 random bytes as well; the CSRF token
//! of a session is an HMAC of its id under a server key, so it needs no
//! storage of its own and cannot be forged for another session.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

/// What every token starts with.
pub const PREFIX: &str = "ckt_";
/// Length of the public id in characters (lowercase hex).
pub const ID_LEN: usize = 12;
/// Random bytes in a token secret and in a session id.
const SECRET_BYTES: usize = 32;
/// Length of a secret in characters: 32 bytes in base64url without padding.
pub const SECRET_LEN: usize = 43;
/// Length of a whole token: prefix, id, separator, secret.
pub const TOKEN_LEN: usize = PREFIX.len() + ID_LEN + 1 + SECRET_LEN;

/// Why a token could not be made: the only cause is the system's random
/// number generator failing, which is permanent for the process.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// OpenSSL could not produce random bytes.
    #[error("no random bytes for a token: {0}")]
    Random(#[from] openssl::error::ErrorStack),
}

/// A freshly generated API token.
///
/// Store `id` and `secret_hash`; show `plaintext` to the user once and drop
/// it. `Debug` prints `[redacted]` in place of the plaintext, so the value
/// cannot leak through a log line by accident.
pub struct NewToken {
    /// The public lookup key (12 lowercase hex characters).
    pub id: String,
    /// SHA-256 of the secret, lowercase hex: what the store keeps.
    pub secret_hash: String,
    /// The whole token, `ckt_<id>_<secret>`, to show to its owner once.
    pub plaintext: String,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("id", &self.id)
            .field("secret_hash", &self.secret_hash)
            .field("plaintext", &"[redacted]")
            .finish()
    }
}

/// `N` bytes from OpenSSL's CSPRNG.
fn random<const N: usize>() -> Result<[u8; N], openssl::error::ErrorStack> {
    let mut bytes = [0u8; N];
    openssl::rand::rand_bytes(&mut bytes)?;
    Ok(bytes)
}

/// Makes a new API token with a random id and secret.
///
/// Ids are random, not sequential, so they reveal nothing about how many
/// tokens exist; with 48 bits a clash is unlikely but possible, so the store
/// should refuse a duplicate id and the caller generate again.
pub fn generate() -> Result<NewToken, TokenError> {
    let id = hex::encode(random::<{ ID_LEN / 2 }>()?);
    let secret = URL_SAFE_NO_PAD.encode(random::<SECRET_BYTES>()?);
    Ok(NewToken {
        secret_hash: hash_secret(&secret),
        plaintext: format!("{PREFIX}{id}_{secret}"),
        id,
    })
}

/// Splits a presented token into its id and secret, or `None` when it is not
/// exactly the shape [`generate`] makes.
///
/// Strict on purpose: the prefix, both lengths and both alphabets must match,
/// and the secret must decode to 32 bytes, so garbage is refused before any
/// store lookup. Takes arbitrary input (a whole `Authorization` header value
/// may arrive here) and never panics.
pub fn parse(presented: &str) -> Option<(&str, &str)> {
    // All-ASCII and the exact length first, so the byte slicing below always
    // falls on character boundaries.
    if presented.len() != TOKEN_LEN || !presented.is_ascii() {
        return None;
    }
    let rest = presented.strip_prefix(PREFIX)?;
    let (id, rest) = rest.split_at(ID_LEN);
    let secret = rest.strip_prefix('_')?;
    let id_ok = id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let secret_ok = secret
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    // Decoding also refuses a non-canonical last character (stray low bits),
    // so each secret has exactly one spelling.
    let decodes = URL_SAFE_NO_PAD
        .decode(secret)
        .is_ok_and(|bytes| bytes.len() == SECRET_BYTES);
    (id_ok && secret_ok && decodes).then_some((id, secret))
}

/// SHA-256 of a token secret, lowercase hex: the value the store keeps.
///
/// A fast hash is the right tool here, unlike for passwords: the secret is 256
/// random bits, so no amount of guessing speed makes a brute-force search of a
/// stolen hash feasible, and salting or stretching would add nothing but CPU
/// time to every API request (and a way to load the server with bogus tokens).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// True when `secret` hashes to `stored_hash`, compared in constant time.
///
/// Different lengths (for example a damaged record) are simply false.
pub fn verify(secret: &str, stored_hash: &str) -> bool {
    constant_time_eq(hash_secret(secret).as_bytes(), stored_hash.as_bytes())
}

/// Byte strings compared without an early exit, so the time taken does not
/// tell how many leading bytes matched. The length is not secret here.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a, b)
}

/// A new web-portal session id: 32 random bytes, base64url without padding.
///
/// # Panics
///
/// If OpenSSL's random number generator fails, which leaves nothing safe to
/// fall back on (the same contract as the `rand` crate's `OsRng`).
pub fn session_id() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    #[allow(clippy::expect_used)] // documented panic: see above
    openssl::rand::rand_bytes(&mut bytes).expect("the system random number generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The CSRF token for a session: HMAC-SHA256 of the session id under `key`,
/// lowercase hex.
///
/// `key` must be a server secret of at least 32 random bytes, kept for as long
/// as sessions live; a token made for one session is worthless for another.
pub fn csrf_token(session_id: &str, key: &[u8]) -> String {
    hex::encode(hmac_sha256(key, session_id.as_bytes()))
}

/// True when `presented` is the CSRF token of `session_id` under `key`,
/// compared in constant time.
pub fn check_csrf(session_id: &str, key: &[u8], presented: &str) -> bool {
    constant_time_eq(csrf_token(session_id, key).as_bytes(), presented.as_bytes())
}

/// HMAC-SHA256 (RFC 2104) over `sha2`, which cannot fail, unlike OpenSSL's
/// `Signer`; the test vectors of RFC 4231 below keep it honest.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block_key = [0u8; BLOCK];
    if key.len() > BLOCK {
        block_key[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let inner_pad = block_key.map(|b| b ^ 0x36);
    let outer_pad = block_key.map(|b| b ^ 0x5c);
    let inner = Sha256::new()
        .chain_update(inner_pad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(outer_pad)
        .chain_update(inner)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_verify() {
        let token = generate().unwrap();
        assert_eq!(token.plaintext.len(), TOKEN_LEN);
        assert!(token.plaintext.starts_with("ckt_"));
        let (id, secret) = parse(&token.plaintext).unwrap();
        assert_eq!(id, token.id);
        assert_eq!(id.len(), ID_LEN);
        assert_eq!(secret.len(), SECRET_LEN);
        assert!(verify(secret, &token.secret_hash));
        assert_eq!(token.secret_hash, hash_secret(secret));
        assert_eq!(token.secret_hash.len(), 64);
    }

    #[test]
    fn tokens_are_unique() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a.id, b.id);
        assert_ne!(a.plaintext, b.plaintext);
    }

    #[test]
    fn debug_redacts_the_plaintext() {
        let token = generate().unwrap();
        let shown = format!("{token:?}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(shown.contains(&token.id), "{shown}");
        let (_, secret) = parse(&token.plaintext).unwrap();
        assert!(!shown.contains(secret), "{shown}");
    }

    #[test]
    fn verify_refuses_wrong_secret_and_bad_hashes() {
        let token = generate().unwrap();
        let (_, secret) = parse(&token.plaintext).unwrap();
        let other = generate().unwrap();
        let (_, other_secret) = parse(&other.plaintext).unwrap();
        assert!(!verify(other_secret, &token.secret_hash));
        assert!(!verify(secret, ""));
        assert!(!verify(secret, &token.secret_hash[..63]));
        assert!(!verify(secret, &token.secret_hash.to_uppercase()));
        assert!(!verify(secret, &format!("{}0", token.secret_hash)));
    }

    #[test]
    fn hash_secret_is_sha256_hex() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn parse_refuses_anything_else() {
        let token = generate().unwrap().plaintext;
        let (id, secret) = parse(&token).unwrap();
        let bad = [
            String::new(),
            "ckt_".to_owned(),
            token[..TOKEN_LEN - 1].to_owned(),
            format!("{token}A"),
            format!("CKT_{id}_{secret}"),
            format!("ckx_{id}_{secret}"),
            format!("ckt_{}_{secret}", id.to_uppercase()),
            format!("ckt_{}g_{secret}", &id[..11]),
            format!("ckt_{id}-{secret}"),
            format!("ckt_{id}_{}=", &secret[..42]),
            format!("ckt_{id}_{}+", &secret[..42]),
            format!(" {}", &token[..TOKEN_LEN - 1]),
            // Same length, but a multi-byte character.
            format!("ckt_{id}_{}é", &secret[..41]),
            // 42 valid characters plus one that leaves stray low bits set.
            format!("ckt_{id}_{}B", "A".repeat(42)),
        ];
        for presented in &bad {
            assert_eq!(parse(presented), None, "{presented:?}");
        }
        // The canonical spelling of an all-zero secret is accepted.
        let zero = format!("ckt_{id}_{}A", "A".repeat(42));
        assert!(parse(&zero).is_some());
    }

    #[test]
    fn parse_never_panics_on_odd_input() {
        // Every length around the token's, with multi-byte characters placed
        // across the slicing points.
        for len in 0..TOKEN_LEN + 4 {
            for fill in ['a', 'é', '日', '🔑', '_', '\u{0}'] {
                let s: String = "ckt_"
                    .chars()
                    .chain(std::iter::repeat(fill))
                    .take(len)
                    .collect();
                let _ = parse(&s);
                let t: String = std::iter::repeat_n(fill, len).collect();
                let _ = parse(&t);
            }
        }
    }

    #[test]
    fn session_ids_are_random_base64url() {
        let a = session_id();
        let b = session_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), SECRET_LEN);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
    }

    #[test]
    fn csrf_tokens_bind_session_and_key() {
        let key = [7u8; 32];
        let session = session_id();
        let token = csrf_token(&session, &key);
        assert_eq!(token.len(), 64);
        assert!(check_csrf(&session, &key, &token));
        assert!(!check_csrf(&session_id(), &key, &token));
        assert!(!check_csrf(&session, &[8u8; 32], &token));
        assert!(!check_csrf(&session, &key, ""));
        assert!(!check_csrf(&session, &key, &token[..63]));
        assert!(!check_csrf(&session, &key, &token.to_uppercase()));
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 1.
        assert_eq!(
            hex::encode(hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        // Test case 2: a key shorter than the block.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        // And csrf_token is that HMAC, in hex.
        assert_eq!(
            csrf_token("Hi There", &[0x0b; 20]),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }
}
