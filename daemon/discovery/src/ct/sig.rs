//! Tree head signatures.
//!
//! An RFC 6962 signed tree head (§3.5) is a `DigitallySigned` (RFC 5246
//! §4.7) over `version, signature_type = tree_hash, timestamp, tree_size,
//! sha256_root_hash`, made with ECDSA P-256/SHA-256 or RSA/SHA-256
//! (§2.1.4). A static-ct-api checkpoint is a signed note (c2sp.org/
//! signed-note) whose body is a c2sp.org/tlog-checkpoint (origin, size,
//! base64 root); the log's signature line is an `RFC6962NoteSignature`
//! (type 0x05): key ID = first four bytes of SHA-256(origin || 0x0A ||
//! 0x05 || log ID), signature = 8-byte timestamp || the same
//! `DigitallySigned` over the same struct. Ed25519 note signatures (type
//! 0x01, over the note text) are accepted for an Ed25519 key.

use base64::Engine as _;
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Public};
use openssl::sign::Verifier;
use sha2::{Digest, Sha256};

use super::merkle::Hash;

/// A log's public key, ready to verify with.
pub struct LogKey {
    key: PKey<Public>,
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogKey")
            .field("type", &self.key.id())
            .finish()
    }
}

/// A tree head whose signature verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    /// Number of leaves.
    pub tree_size: u64,
    /// Root hash.
    pub root_hash: Hash,
    /// Signing time, ms since the epoch.
    pub timestamp: u64,
}

impl LogKey {
    /// Reads a DER SubjectPublicKeyInfo; only the key types RFC 6962 and
    /// signed notes allow (EC P-256, RSA ≥ 2048 bits, Ed25519).
    pub fn from_der(der: &[u8]) -> Result<LogKey, String> {
        let key = PKey::public_key_from_der(der).map_err(|e| format!("not a public key: {e}"))?;
        match key.id() {
            Id::EC => {
                let ec = key.ec_key().map_err(|e| e.to_string())?;
                let curve = ec.group().curve_name();
                if curve != Some(openssl::nid::Nid::X9_62_PRIME256V1) {
                    return Err("EC keys must be P-256".to_owned());
                }
            }
            Id::RSA => {
                if key.bits() < 2048 {
                    return Err("RSA keys must have at least 2048 bits".to_owned());
                }
            }
            Id::ED25519 => {}
            _ => return Err("unsupported key type".to_owned()),
        }
        Ok(LogKey { key })
    }

    /// Verifies a TLS `DigitallySigned` over `data`.
    pub fn verify_digitally_signed(&self, data: &[u8], signed: &[u8]) -> Result<(), String> {
        let [hash_alg, sig_alg, hi, lo, signature @ ..] = signed else {
            return Err("signature too short".to_owned());
        };
        if usize::from(u16::from_be_bytes([*hi, *lo])) != signature.len() {
            return Err("signature length does not match".to_owned());
        }
        if *hash_alg != 4 {
            return Err(format!("hash algorithm {hash_alg} is not SHA-256"));
        }
        let expected = match self.key.id() {
            Id::EC => 3,
            Id::RSA => 1,
            _ => return Err("an Ed25519 key cannot make a DigitallySigned".to_owned()),
        };
        if *sig_alg != expected {
            return Err(format!(
                "signature algorithm {sig_alg} does not fit the key"
            ));
        }
        let mut verifier =
            Verifier::new(MessageDigest::sha256(), &self.key).map_err(|e| e.to_string())?;
        verifier.update(data).map_err(|e| e.to_string())?;
        match verifier.verify(signature) {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => Err("the signature is wrong".to_owned()),
        }
    }

    /// Verifies an RFC 6962 STH signature over its fields.
    pub fn verify_sth(&self, head: &TreeHead, signed: &[u8]) -> Result<(), String> {
        self.verify_digitally_signed(&tree_head_input(head), signed)
    }

    fn is_ed25519(&self) -> bool {
        self.key.id() == Id::ED25519
    }

    fn raw_ed25519(&self) -> Option<Vec<u8>> {
        self.key.raw_public_key().ok()
    }
}

/// The signed struct of RFC 6962 §3.5 (`TreeHeadSignature`).
pub fn tree_head_input(head: &TreeHead) -> Vec<u8> {
    let mut data = Vec::with_capacity(50);
    data.push(0); // v1
    data.push(1); // tree_hash
    data.extend_from_slice(&head.timestamp.to_be_bytes());
    data.extend_from_slice(&head.tree_size.to_be_bytes());
    data.extend_from_slice(&head.root_hash);
    data
}

/// The first four bytes of SHA-256(name || 0x0A || kind || key), the key
/// ID of a signed-note signature line.
pub fn note_key_id(name: &str, kind: u8, key: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', kind]);
    h.update(key);
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// A checkpoint body (c2sp.org/tlog-checkpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The origin line.
    pub origin: String,
    /// Tree size.
    pub tree_size: u64,
    /// Root hash.
    pub root_hash: Hash,
}

/// Parses a signed-note checkpoint and verifies the log's signature on it:
/// the origin must be `origin` and a signature line by the log's key must
/// verify. The verified tree head (timestamp from the signature, or 0 for
/// an Ed25519 note signature, which carries none).
pub fn verify_checkpoint(
    note: &[u8],
    origin: &str,
    log_id: &Hash,
    key: &LogKey,
) -> Result<TreeHead, CheckpointError> {
    let malformed = |r: &str| CheckpointError::Malformed(r.to_owned());
    let text = std::str::from_utf8(note).map_err(|_| malformed("not UTF-8"))?;
    if text.bytes().any(|b| b < 0x20 && b != b'\n') {
        return Err(malformed("control characters"));
    }
    let split = text
        .rfind("\n\n")
        .ok_or_else(|| malformed("no blank line before the signatures"))?;
    let body = &text[..split + 1];
    let signatures = &text[split + 2..];
    let checkpoint = parse_checkpoint(body)?;
    if checkpoint.origin != origin {
        return Err(malformed(&format!(
            "origin is {:?}, expected {origin:?}",
            checkpoint.origin
        )));
    }
    let (kind, id) = if key.is_ed25519() {
        let raw = key.raw_ed25519().unwrap_or_default();
        (0x01, note_key_id(origin, 0x01, &raw))
    } else {
        (0x05, note_key_id(origin, 0x05, log_id))
    };
    for line in signatures.lines() {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            return Err(malformed("a signature line does not start with an em dash"));
        };
        let Some((name, b64)) = rest.split_once(' ') else {
            return Err(malformed("a signature line has no signature"));
        };
        if name != origin {
            continue;
        }
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            return Err(malformed("a signature is not base64"));
        };
        if bytes.len() < 4 || bytes[..4] != id {
            continue;
        }
        let signature = &bytes[4..];
        if kind == 0x01 {
            let mut verifier = Verifier::new_without_digest(&key.key)
                .map_err(|e| CheckpointError::Signature(e.to_string()))?;
            return match verifier.verify_oneshot(signature, body.as_bytes()) {
                Ok(true) => Ok(TreeHead {
                    tree_size: checkpoint.tree_size,
                    root_hash: checkpoint.root_hash,
                    timestamp: 0,
                }),
                _ => Err(CheckpointError::Signature(
                    "the Ed25519 note signature is wrong".to_owned(),
                )),
            };
        }
        let Some((ts, signed)) = signature.split_first_chunk::<8>() else {
            return Err(malformed("the note signature is too short"));
        };
        let head = TreeHead {
            tree_size: checkpoint.tree_size,
            root_hash: checkpoint.root_hash,
            timestamp: u64::from_be_bytes(*ts),
        };
        key.verify_sth(&head, signed)
            .map_err(CheckpointError::Signature)?;
        return Ok(head);
    }
    Err(CheckpointError::Signature(
        "no signature line by the log's key".to_owned(),
    ))
}

fn parse_checkpoint(body: &str) -> Result<Checkpoint, CheckpointError> {
    let malformed = |r: &str| CheckpointError::Malformed(r.to_owned());
    let mut lines = body.split('\n');
    let origin = lines.next().filter(|o| !o.is_empty());
    let size = lines.next().and_then(|s| {
        // Decimal without leading zeros (tlog-checkpoint).
        (s == "0" || !s.starts_with('0'))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    });
    let root = lines
        .next()
        .and_then(|r| base64::engine::general_purpose::STANDARD.decode(r).ok())
        .and_then(|r| <[u8; 32]>::try_from(r).ok());
    match (origin, size, root) {
        (Some(origin), Some(tree_size), Some(root_hash)) => Ok(Checkpoint {
            origin: origin.to_owned(),
            tree_size,
            root_hash,
        }),
        (None, _, _) => Err(malformed("no origin line")),
        (_, None, _) => Err(malformed("the tree size is not a decimal number")),
        (_, _, None) => Err(malformed("the root hash is not 32 bytes of base64")),
    }
}

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointError {
    /// It does not parse.
    Malformed(String),
    /// No good signature by the log's key.
    Signature(String),
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    use openssl::sign::Signer;

    fn key() -> (PKey<openssl::pkey::Private>, Vec<u8>) {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let private = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let der = private.public_key_to_der().unwrap();
        (private, der)
    }

    fn digitally_signed(private: &PKey<openssl::pkey::Private>, data: &[u8]) -> Vec<u8> {
        let mut signer = Signer::new(MessageDigest::sha256(), private).unwrap();
        signer.update(data).unwrap();
        let sig = signer.sign_to_vec().unwrap();
        let mut out = vec![4, 3];
        out.extend_from_slice(&(sig.len() as u16).to_be_bytes());
        out.extend_from_slice(&sig);
        out
    }

    #[test]
    fn sth_signatures() {
        let (private, der) = key();
        let key = LogKey::from_der(&der).unwrap();
        let head = TreeHead {
            tree_size: 10,
            root_hash: [3; 32],
            timestamp: 99,
        };
        let signed = digitally_signed(&private, &tree_head_input(&head));
        key.verify_sth(&head, &signed).unwrap();
        let other = TreeHead {
            tree_size: 11,
            ..head
        };
        assert!(key.verify_sth(&other, &signed).is_err());
        assert!(key.verify_sth(&head, &signed[..10]).is_err());
        assert!(LogKey::from_der(b"junk").is_err());
    }

    #[test]
    fn checkpoints() {
        let (private, der) = key();
        let id: Hash = Sha256::digest(&der).into();
        let key = LogKey::from_der(&der).unwrap();
        let origin = "ct.example/log";
        let head = TreeHead {
            tree_size: 1234,
            root_hash: [5; 32],
            timestamp: 77,
        };
        let mut sig = note_key_id(origin, 5, &id).to_vec();
        sig.extend_from_slice(&head.timestamp.to_be_bytes());
        sig.extend_from_slice(&digitally_signed(&private, &tree_head_input(&head)));
        let b64 = base64::engine::general_purpose::STANDARD;
        let note = format!(
            "{origin}\n1234\n{}\n\n\u{2014} other.example AAAAAAAA\n\u{2014} {origin} {}\n",
            b64.encode([5u8; 32]),
            b64.encode(&sig)
        );
        assert_eq!(
            verify_checkpoint(note.as_bytes(), origin, &id, &key).unwrap(),
            head
        );
        let wrong = note.replace("\n1234\n", "\n1235\n");
        assert!(matches!(
            verify_checkpoint(wrong.as_bytes(), origin, &id, &key),
            Err(CheckpointError::Signature(_))
        ));
        assert!(matches!(
            verify_checkpoint(note.as_bytes(), "ct.example/other", &id, &key),
            Err(CheckpointError::Malformed(_))
        ));
        assert!(matches!(
            verify_checkpoint(b"garbage", origin, &id, &key),
            Err(CheckpointError::Malformed(_))
        ));
    }

    #[test]
    fn ed25519_note_signatures() {
        let private = PKey::generate_ed25519().unwrap();
        let der = private.public_key_to_der().unwrap();
        let raw = private.raw_public_key().unwrap();
        let key = LogKey::from_der(&der).unwrap();
        let id: Hash = Sha256::digest(&der).into();
        let origin = "tiles.example/ed";
        let b64 = base64::engine::general_purpose::STANDARD;
        let body = format!("{origin}\n7\n{}\n", b64.encode([8u8; 32]));
        let mut signer = Signer::new_without_digest(&private).unwrap();
        let mut sig = note_key_id(origin, 1, &raw).to_vec();
        sig.extend_from_slice(&signer.sign_oneshot_to_vec(body.as_bytes()).unwrap());
        let note = format!("{body}\n\u{2014} {origin} {}\n", b64.encode(&sig));
        let head = verify_checkpoint(note.as_bytes(), origin, &id, &key).unwrap();
        assert_eq!((head.tree_size, head.root_hash), (7, [8; 32]));
        let forged = note.replacen("\n7\n", "\n8\n", 1);
        assert!(matches!(
            verify_checkpoint(forged.as_bytes(), origin, &id, &key),
            Err(CheckpointError::Signature(_))
        ));
    }
}
