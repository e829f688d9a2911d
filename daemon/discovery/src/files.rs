//! File discovery: walks directory trees and finds every certificate file in
//! them, whatever its format (PEM, DER, PKCS#7, PKCS#12, Java key store),
//! TLS and code-signing certificates alike.
//!
//! [`scan`] walks the configured roots and yields one [`FileHit`] per
//! certificate file, or one [`FileError`] per file that looks like a
//! certificate file but cannot be read (truncated DER, garbage between PEM
//! markers, a PKCS#12 store no configured password opens). Files that are not
//! certificate files at all are skipped quietly, and cheaply: a file is only
//! read in full when its first bytes could start one, so a tree of many
//! thousands of ordinary files is walked quickly.
//!
//! Each hit also says whether a private key matching its leaf certificate is
//! in the file or beside it (`<stem>.key`, `<stem>-key.pem`, certbot's
//! `privkey.pem` / `privkeyN.pem`). Keys are only compared by public key;
//! their bytes are never returned or logged, and an encrypted key counts as
//! "not matching" (nothing ever prompts for a password).
//!
//! [`read_certificates`] is the per-file reader the walk uses, for callers
//! that already hold a file's bytes. The results become
//! [`super::Origin::File`] sightings in the inventory.

use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use openssl::pkcs7::Pkcs7;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use walkdir::WalkDir;

use super::FileFormat;
use certkeeper_base::Secret;
use certkeeper_model::inventory::parse::{
    ParseError, ParsedCertificate, contains_private_key, parse_certificates, parse_der,
};

/// How many bytes are read first to decide whether a file could be a
/// certificate file at all.
const SNIFF_BYTES: u64 = 8 * 1024;

/// First four bytes of a Java key store (JKS).
const JKS_MAGIC: [u8; 4] = [0xfe, 0xed, 0xfe, 0xed];

/// PEM headers of blocks that hold a certificate.
const PEM_CERT_HEADERS: [&[u8]; 3] = [
    b"-----BEGIN CERTIFICATE-----",
    b"-----BEGIN X509 CERTIFICATE-----",
    b"-----BEGIN TRUSTED CERTIFICATE-----",
];

/// PEM header of a PKCS#7 bundle, as `openssl crl2pkcs7` writes it.
const PEM_PKCS7_HEADER: &[u8] = b"-----BEGIN PKCS7-----";

/// DER encoding of OID 1.2.840.113549.1.7.2 (PKCS#7 signedData), with its tag
/// and length.
const OID_PKCS7_SIGNED_DATA: [u8; 11] = [
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
];

/// What to scan and how.
#[derive(Debug, Clone)]
pub struct FileScanOptions {
    /// Directories (or single files) to walk.
    pub roots: Vec<PathBuf>,
    /// Glob patterns a file must match to be read, tried against the path
    /// relative to its root and against the file name (`*.pem`,
    /// `**/ssl/**`); `*` does not cross `/`. Empty: every file is read.
    pub include: Vec<String>,
    /// Glob patterns, matched like `include`, of files to skip and
    /// directories not to enter at all (`**/node_modules`, `cache`).
    pub exclude: Vec<String>,
    /// PKCS#12 passwords tried, in order, after the empty password.
    pub pkcs12_passwords: Vec<Secret>,
    /// Files bigger than this are skipped without being read (debug log).
    /// Default 10 MiB.
    pub max_file_bytes: u64,
    /// When true, symbolic links to directories are walked into (loops are
    /// detected). Symbolic links to files are read either way, since that is
    /// how certbot's `live/` directory and `/etc/ssl/certs` are laid out.
    pub follow_symlinks: bool,
}

impl Default for FileScanOptions {
    fn default() -> Self {
        Self {
            roots: Vec::new(),
            include: Vec::new(),
            exclude: Vec::new(),
            pkcs12_passwords: Vec::new(),
            max_file_bytes: 10 * 1024 * 1024,
            follow_symlinks: false,
        }
    }
}

/// A certificate file found by [`scan`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileHit {
    /// The file's path, as reached from its root.
    pub path: PathBuf,
    /// The file's format.
    pub format: FileFormat,
    /// The certificates in the file, in file order (PKCS#12: the certificate
    /// of the key first, then the CA chain). Empty only for a key store that
    /// holds no certificate.
    pub certificates: Vec<ParsedCertificate>,
    /// Whether a private key matching the leaf is in the file (PEM key block,
    /// PKCS#12 or JKS key entry) or in a key file beside it.
    pub key_beside: bool,
}

/// Why a file, or the scan, could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file or directory could not be read (permissions, vanished,
    /// symlink loop).
    #[error("cannot read {}: {error}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The operating system's reason.
        error: String,
    },
    /// The file is a certificate file of this format but is damaged.
    #[error("{} is a malformed {format:?} file: {reason}", path.display())]
    Malformed {
        /// The damaged file.
        path: PathBuf,
        /// The format it was recognised as.
        format: FileFormat,
        /// What is wrong; never holds key material.
        reason: String,
    },
    /// A PKCS#12 store that neither the empty password nor any configured
    /// password opens.
    #[error("no configured password opens the PKCS#12 file {}", path.display())]
    Pkcs12Password {
        /// The PKCS#12 file.
        path: PathBuf,
    },
    /// An include or exclude pattern is not a valid glob.
    #[error("invalid glob pattern {pattern:?}: {error}")]
    Glob {
        /// The pattern as configured.
        pattern: String,
        /// Why it is invalid.
        error: String,
    },
}

impl FileError {
    /// True when trying again later may succeed without anyone changing the
    /// file or the config (an I/O failure); false for damaged files, missing
    /// passwords and bad patterns.
    pub fn is_transient(&self) -> bool {
        matches!(self, FileError::Io { .. })
    }

    /// The file the error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            FileError::Io { path, .. }
            | FileError::Malformed { path, .. }
            | FileError::Pkcs12Password { path } => Some(path),
            FileError::Glob { .. } => None,
        }
    }
}

/// What one file holds.
struct Contents {
    format: FileFormat,
    certificates: Vec<ParsedCertificate>,
    /// The file itself holds a private key matching the leaf.
    key_inside: bool,
}

/// Reads one file's bytes: `Ok(None)` when it is not a certificate file at
/// all (skip quietly), `Ok(Some((format, certs)))` otherwise, certificates in
/// file order. `path` is only used in errors and logs.
///
/// # Errors
///
/// [`FileError::Malformed`] for a damaged certificate file and
/// [`FileError::Pkcs12Password`] for a PKCS#12 store no password opens.
pub fn read_certificates(
    path: &Path,
    bytes: &[u8],
    pkcs12_passwords: &[Secret],
) -> Result<Option<(FileFormat, Vec<ParsedCertificate>)>, FileError> {
    Ok(read_contents(path, bytes, pkcs12_passwords)?.map(|c| (c.format, c.certificates)))
}

fn read_contents(
    path: &Path,
    bytes: &[u8],
    passwords: &[Secret],
) -> Result<Option<Contents>, FileError> {
    let malformed = |format, reason: String| FileError::Malformed {
        path: path.to_owned(),
        format,
        reason,
    };
    if bytes.starts_with(&JKS_MAGIC) {
        let (certificates, key_inside) =
            read_jks(bytes).map_err(|reason| malformed(FileFormat::Jks, reason))?;
        return Ok(Some(Contents {
            format: FileFormat::Jks,
            certificates,
            key_inside,
        }));
    }
    if bytes.first() == Some(&0x30) {
        return read_der(path, bytes, passwords);
    }
    if !could_be_text(bytes) {
        return Ok(None);
    }
    if PEM_CERT_HEADERS.iter().any(|h| contains(bytes, h)) {
        let certificates = match parse_certificates(bytes) {
            Ok(certs) => certs,
            Err(ParseError::NoCertificates) => return Ok(None),
            Err(e) => return Err(malformed(FileFormat::Pem, e.to_string())),
        };
        let key_inside =
            contains_private_key(bytes) && key_matches(bytes, leaf(&certificates)).unwrap_or(false);
        return Ok(Some(Contents {
            format: FileFormat::Pem,
            certificates,
            key_inside,
        }));
    }
    if contains(bytes, PEM_PKCS7_HEADER) {
        let pkcs7 = Pkcs7::from_pem(bytes)
            .map_err(|e| malformed(FileFormat::Pkcs7, format!("not valid PKCS#7: {e}")))?;
        return pkcs7_contents(path, &pkcs7);
    }
    Ok(None)
}

/// Binary files starting with a SEQUENCE: a DER certificate, a PKCS#7
/// bundle, a PKCS#12 store, or something else (keys, CSRs, CRLs: skipped).
fn read_der(
    path: &Path,
    bytes: &[u8],
    passwords: &[Secret],
) -> Result<Option<Contents>, FileError> {
    if let Ok(cert) = parse_der(bytes) {
        return Ok(Some(Contents {
            format: FileFormat::Der,
            certificates: vec![cert],
            key_inside: false,
        }));
    }
    let body = der_sequence_body(bytes).unwrap_or_default();
    if body.starts_with(&OID_PKCS7_SIGNED_DATA) {
        let pkcs7 = Pkcs7::from_der(bytes).map_err(|e| FileError::Malformed {
            path: path.to_owned(),
            format: FileFormat::Pkcs7,
            reason: format!("not valid PKCS#7: {e}"),
        })?;
        return pkcs7_contents(path, &pkcs7);
    }
    // PFX ::= SEQUENCE { version INTEGER (3), authSafe ContentInfo, ... }
    if body.starts_with(&[0x02, 0x01, 0x03, 0x30]) {
        return read_pkcs12(path, bytes, passwords).map(Some);
    }
    match parse_certificates(bytes) {
        Ok(certificates) => Ok(Some(Contents {
            format: FileFormat::Der,
            certificates,
            key_inside: false,
        })),
        Err(ParseError::NoCertificates) => Ok(None),
        Err(e) => Err(FileError::Malformed {
            path: path.to_owned(),
            format: FileFormat::Der,
            reason: e.to_string(),
        }),
    }
}

fn pkcs7_contents(path: &Path, pkcs7: &Pkcs7) -> Result<Option<Contents>, FileError> {
    let Some(stack) = pkcs7.signed().and_then(|s| s.certificates()) else {
        tracing::debug!(path = %path.display(), "PKCS#7 file holds no certificates, skipped");
        return Ok(None);
    };
    let certificates = stack
        .iter()
        .map(parse_x509)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|reason| FileError::Malformed {
            path: path.to_owned(),
            format: FileFormat::Pkcs7,
            reason,
        })?;
    Ok(Some(Contents {
        format: FileFormat::Pkcs7,
        certificates,
        key_inside: false,
    }))
}

fn read_pkcs12(path: &Path, bytes: &[u8], passwords: &[Secret]) -> Result<Contents, FileError> {
    let malformed = |reason: String| FileError::Malformed {
        path: path.to_owned(),
        format: FileFormat::Pkcs12,
        reason,
    };
    let pkcs12 =
        Pkcs12::from_der(bytes).map_err(|e| malformed(format!("not valid PKCS#12: {e}")))?;
    let candidates = std::iter::once("").chain(
        passwords
            .iter()
            .map(Secret::expose)
            // The openssl crate panics on a NUL inside a password.
            .filter(|p| !p.is_empty() && !p.contains('\0')),
    );
    for password in candidates {
        let parsed = match pkcs12.parse2(password) {
            Ok(parsed) => parsed,
            Err(e) if is_wrong_password(&e) => continue,
            // The MAC matched but the contents do not decode: typically a
            // legacy cipher (RC2-40) OpenSSL 3 only has in its legacy provider.
            Err(e) => {
                let hint = if e.to_string().contains("unsupported") {
                    " (legacy ciphers such as RC2-40 need OpenSSL's legacy provider)"
                } else {
                    ""
                };
                return Err(malformed(format!("cannot decode the contents{hint}: {e}")));
            }
        };
        let mut certificates = Vec::new();
        for x509 in parsed
            .cert
            .iter()
            .map(|c| &**c)
            .chain(parsed.ca.iter().flatten())
        {
            certificates.push(parse_x509(x509).map_err(malformed)?);
        }
        // OpenSSL puts the certificate of the key in `cert`; with no such
        // certificate the key matches none of them.
        let key_inside = match (&parsed.pkey, &parsed.cert) {
            (Some(pkey), Some(cert)) => same_public_key(pkey, cert),
            _ => false,
        };
        return Ok(Contents {
            format: FileFormat::Pkcs12,
            certificates,
            key_inside,
        });
    }
    Err(FileError::Pkcs12Password {
        path: path.to_owned(),
    })
}

fn is_wrong_password(error: &openssl::error::ErrorStack) -> bool {
    error.errors().iter().any(|e| {
        e.reason()
            .is_some_and(|r| r.contains("mac verify") || r.contains("mac absent"))
    })
}

fn parse_x509(x509: &openssl::x509::X509Ref) -> Result<ParsedCertificate, String> {
    let der = x509.to_der().map_err(|e| e.to_string())?;
    parse_der(&der).map_err(|e| e.to_string())
}

/// Reads the certificates of a Java key store. Certificates are stored in
/// the clear in JKS (only private keys are encrypted, and the trailing
/// integrity digest needs the store password, so it is not checked).
/// Returns the certificates in entry order and whether a key entry exists.
fn read_jks(bytes: &[u8]) -> Result<(Vec<ParsedCertificate>, bool), String> {
    let mut r = JksReader { rest: bytes };
    r.take(4)?; // magic, checked by the caller
    let version = r.u32()?;
    if version != 1 && version != 2 {
        return Err(format!("unknown JKS version {version}"));
    }
    let count = r.u32()?;
    let mut certificates = Vec::new();
    let mut has_key = false;
    for entry in 0..count {
        let tag = r.u32()?;
        r.utf()?; // alias
        r.take(8)?; // creation time
        let chain_len = match tag {
            1 => {
                let key_len = r.u32()?;
                r.take(key_len)?;
                has_key = true;
                r.u32()?
            }
            2 => 1,
            other => return Err(format!("entry {entry} has unknown tag {other}")),
        };
        for _ in 0..chain_len {
            let cert_type = if version == 2 { r.utf()? } else { b"X.509" };
            let len = r.u32()?;
            let der = r.take(len)?;
            if cert_type == b"X.509" {
                let cert = parse_der(der).map_err(|e| format!("entry {entry}: {e}"))?;
                certificates.push(cert);
            }
        }
    }
    Ok((certificates, has_key))
}

/// A bounds-checked big-endian reader over the bytes of a JKS file.
struct JksReader<'a> {
    rest: &'a [u8],
}

impl<'a> JksReader<'a> {
    fn take(&mut self, len: u32) -> Result<&'a [u8], String> {
        let len = usize::try_from(len).map_err(|e| e.to_string())?;
        if len > self.rest.len() {
            return Err("the data ends inside an entry (truncated?)".to_owned());
        }
        let (head, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A Java `writeUTF` string: u16 length, then the bytes.
    fn utf(&mut self) -> Result<&'a [u8], String> {
        let b = self.take(2)?;
        self.take(u32::from(u16::from_be_bytes([b[0], b[1]])))
    }
}

/// The contents of the outer DER SEQUENCE, when `bytes` starts with one.
fn der_sequence_body(bytes: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = bytes.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    match len {
        0..0x80 => Some(rest),
        0x81..=0x84 => rest.get(usize::from(len & 0x7f)..),
        // Indefinite length (BER, as some PKCS#12 writers use).
        0x80 => Some(rest),
        _ => None,
    }
}

/// False for files that are clearly binary (a NUL byte early on); PEM may be
/// preceded by any amount of text, so text files are searched for markers.
fn could_be_text(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    !head.is_empty() && !head.contains(&0)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The certificate a key should match: the first that is not a CA, else the
/// first (a CA's own certificate file).
fn leaf(certificates: &[ParsedCertificate]) -> Option<&ParsedCertificate> {
    certificates
        .iter()
        .find(|c| !c.is_ca)
        .or_else(|| certificates.first())
}

/// Whether the first private key in `pem` (unencrypted; encrypted keys never
/// prompt and count as not matching) belongs to `leaf`.
fn key_matches(pem: &[u8], leaf: Option<&ParsedCertificate>) -> Option<bool> {
    let cert = X509::from_pem(leaf?.pem.as_bytes()).ok()?;
    let key = PKey::private_key_from_pem_callback(pem, |_password| Ok(0)).ok()?;
    Some(same_public_key(&key, &cert))
}

fn same_public_key(key: &PKey<Private>, cert: &X509) -> bool {
    let Ok(cert_key) = cert.public_key().and_then(|k| k.public_key_to_der()) else {
        return false;
    };
    key.public_key_to_der().is_ok_and(|der| der == cert_key)
}

/// Key files that may belong to the certificate file at `path`.
fn key_candidates(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(stem)) = (path.parent(), path.file_stem().and_then(|s| s.to_str())) else {
        return Vec::new();
    };
    let mut names = vec![
        format!("{stem}.key"),
        format!("{stem}-key.pem"),
        "privkey.pem".to_owned(),
    ];
    // certbot's archive/: cert3.pem, chain3.pem, fullchain3.pem -> privkey3.pem
    for prefix in ["fullchain", "chain", "cert"] {
        if let Some(n) = stem.strip_prefix(prefix)
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
        {
            names.push(format!("privkey{n}.pem"));
            break;
        }
    }
    names
        .into_iter()
        .map(|name| dir.join(name))
        .filter(|p| p != path)
        .collect()
}

/// Whether a key file beside `path` matches `leaf`.
fn key_file_beside(path: &Path, leaf: &ParsedCertificate, max_bytes: u64) -> bool {
    key_candidates(path).iter().any(|candidate| {
        let Ok(meta) = std::fs::metadata(candidate) else {
            return false;
        };
        if !meta.is_file() || meta.len() > max_bytes {
            return false;
        }
        std::fs::read(candidate)
            .ok()
            .is_some_and(|pem| key_matches(&pem, Some(leaf)) == Some(true))
    })
}

/// Compiled include/exclude patterns.
struct Filters {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

impl Filters {
    fn new(options: &FileScanOptions) -> Result<Self, FileError> {
        Ok(Self {
            include: glob_set(&options.include)?,
            exclude: glob_set(&options.exclude)?,
        })
    }

    /// `rel`: the path relative to its root (empty for the root itself).
    fn excluded(&self, rel: &Path, name: &Path, is_dir: bool) -> bool {
        let Some(set) = &self.exclude else {
            return false;
        };
        if rel.as_os_str().is_empty() {
            return false;
        }
        // `dir/**` matches `dir/` but not `dir`: try both for directories.
        set.is_match(rel)
            || set.is_match(name)
            || (is_dir && set.is_match(format!("{}/", rel.display())))
    }

    fn included(&self, rel: &Path, name: &Path) -> bool {
        self.include
            .as_ref()
            .is_none_or(|set| set.is_match(rel) || set.is_match(name))
    }
}

fn glob_set(patterns: &[String]) -> Result<Option<GlobSet>, FileError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob_error = |e: globset::Error| FileError::Glob {
            pattern: pattern.clone(),
            error: e.kind().to_string(),
        };
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(glob_error)?;
        builder.add(glob);
    }
    builder.build().map(Some).map_err(|e| FileError::Glob {
        pattern: patterns.join(", "),
        error: e.to_string(),
    })
}

/// Walks the roots and yields a hit for every certificate file and an error
/// for every file or directory that could not be read; one bad file never
/// stops the walk. Files are visited in name order within each directory.
/// Blocking: run it on a blocking thread.
///
/// # Errors
///
/// [`FileError::Glob`] when an include or exclude pattern is invalid.
pub fn scan(
    options: &FileScanOptions,
) -> Result<impl Iterator<Item = Result<FileHit, FileError>> + use<>, FileError> {
    let options = options.clone();
    Ok(
        walk(&options)?.filter_map(move |candidate| match candidate {
            Ok(candidate) => visit(&candidate, &options),
            Err(e) => Some(Err(e)),
        }),
    )
}

/// A file the walk found that the filters let through, not yet read.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Its path.
    pub path: PathBuf,
    symlink: bool,
}

/// The walk alone: every file under the roots that the filters let through,
/// in order, for [`visit`] to read (on as many threads as the caller likes).
pub fn walk(
    options: &FileScanOptions,
) -> Result<impl Iterator<Item = Result<Candidate, FileError>> + use<>, FileError> {
    let filters = Filters::new(options)?;
    let follow = options.follow_symlinks;
    let mut walks = options.roots.clone().into_iter().map(move |root| {
        let walk = WalkDir::new(&root)
            .follow_links(follow)
            .sort_by_file_name()
            .into_iter();
        (root, walk)
    });
    let mut current: Option<(PathBuf, walkdir::IntoIter)> = None;
    Ok(std::iter::from_fn(move || {
        loop {
            let (root, walk) = match &mut current {
                Some(c) => c,
                None => current.insert(walks.next()?),
            };
            let Some(entry) = walk.next() else {
                current = None;
                continue;
            };
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    let path = e.path().unwrap_or(root).to_owned();
                    let error = e
                        .io_error()
                        .map_or_else(|| e.to_string(), ToString::to_string);
                    return Some(Err(FileError::Io { path, error }));
                }
            };
            let path = entry.path();
            let rel = path.strip_prefix(&*root).unwrap_or(path);
            let name = Path::new(entry.file_name());
            let file_type = entry.file_type();
            if file_type.is_dir() {
                if filters.excluded(rel, name, true) {
                    tracing::debug!(path = %path.display(), "excluded directory not entered");
                    walk.skip_current_dir();
                }
                continue;
            }
            if filters.excluded(rel, name, false) || !filters.included(rel, name) {
                continue;
            }
            return Some(Ok(Candidate {
                path: path.to_owned(),
                symlink: file_type.is_symlink(),
            }));
        }
    }))
}

/// Reads one file the walk found; `None` when it is skipped (too big, not
/// a certificate file, a dangling link).
pub fn visit(
    candidate: &Candidate,
    options: &FileScanOptions,
) -> Option<Result<FileHit, FileError>> {
    visit_file(
        &candidate.path,
        candidate.symlink,
        &options.pkcs12_passwords,
        options.max_file_bytes,
    )
}

/// Reads one file found by the walk; `None` when it is skipped.
fn visit_file(
    path: &Path,
    symlink: bool,
    passwords: &[Secret],
    max_bytes: u64,
) -> Option<Result<FileHit, FileError>> {
    let io_error = |e: std::io::Error| FileError::Io {
        path: path.to_owned(),
        error: e.to_string(),
    };
    // Symlinks are resolved here: a link to a file is read, a link to a
    // directory (when not following links) or to a device is skipped.
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if symlink => {
            tracing::debug!(path = %path.display(), error = %e, "dangling symlink skipped");
            return None;
        }
        Err(e) => return Some(Err(io_error(e))),
    };
    if !meta.is_file() {
        return None;
    }
    if meta.len() > max_bytes {
        tracing::debug!(path = %path.display(), bytes = meta.len(), max_bytes, "file too big, skipped");
        return None;
    }
    let bytes = match read_if_candidate(path, max_bytes) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return None,
        Err(e) => return Some(Err(io_error(e))),
    };
    let contents = match read_contents(path, &bytes, passwords) {
        Ok(Some(contents)) => contents,
        Ok(None) => return None,
        Err(e) => return Some(Err(e)),
    };
    if contents.format == FileFormat::Jks && contents.certificates.is_empty() {
        tracing::warn!(path = %path.display(), "Java key store holds no certificates");
    }
    let key_beside = contents.key_inside
        || leaf(&contents.certificates).is_some_and(|l| key_file_beside(path, l, max_bytes));
    Some(Ok(FileHit {
        path: path.to_owned(),
        format: contents.format,
        certificates: contents.certificates,
        key_beside,
    }))
}

/// Reads the first bytes of a file and, when they could start a certificate
/// file, the rest (up to `max_bytes`); `None` for files that cannot be one.
fn read_if_candidate(path: &Path, max_bytes: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut file = File::open(path)?;
    let mut bytes = Vec::new();
    (&mut file).take(SNIFF_BYTES).read_to_end(&mut bytes)?;
    let candidate =
        bytes.first() == Some(&0x30) || bytes.starts_with(&JKS_MAGIC) || could_be_text(&bytes);
    if !candidate {
        return Ok(None);
    }
    let remaining = max_bytes.saturating_sub(SNIFF_BYTES);
    file.take(remaining).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;
    use std::process::Command;

    use super::*;

    /// Runs a command in `dir`, panicking with its stderr on failure.
    fn run(dir: &Path, program: &str, args: &[&str]) {
        let out = Command::new(program)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn openssl(dir: &Path, args: &[&str]) {
        run(dir, "openssl", args);
    }

    /// SHA-256 fingerprint as `openssl x509 -fingerprint` prints it, in the
    /// inventory's form (lowercase, no colons).
    fn fingerprint(dir: &Path, pem: &str) -> String {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in", pem])
            .current_dir(dir)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let hex = text.trim().split_once('=').unwrap().1;
        hex.replace(':', "").to_lowercase()
    }

    /// A CA, a leaf it signed (with key), and a code-signing certificate,
    /// generated in a temporary directory.
    struct Fixture {
        dir: tempfile::TempDir,
        ca: String,
        leaf: String,
        codesign: String,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            let ec = [
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ];
            let ca_args = ["req", "-x509", "-keyout", "ca.key", "-out", "ca.pem"];
            let ca_subj = ["-subj", "/CN=Test CA", "-days", "30"];
            openssl(d, &[&ca_args[..], &ec, &ca_subj].concat());
            std::fs::write(
                d.join("leaf.ext"),
                "subjectAltName=DNS:leaf.example\nbasicConstraints=CA:FALSE\n",
            )
            .unwrap();
            std::fs::write(
                d.join("sign.ext"),
                "extendedKeyUsage=codeSigning\nkeyUsage=digitalSignature\n",
            )
            .unwrap();
            for (name, ext) in [("leaf", "leaf.ext"), ("sign", "sign.ext")] {
                let (key, csr, pem) = (
                    format!("{name}.key"),
                    format!("{name}.csr"),
                    format!("{name}.pem"),
                );
                let subj = format!("/CN={name}.example");
                let req = ["req", "-keyout", &key, "-out", &csr, "-subj", &subj];
                openssl(d, &[&req[..], &ec].concat());
                openssl(
                    d,
                    &[
                        "x509",
                        "-req",
                        "-in",
                        &csr,
                        "-CA",
                        "ca.pem",
                        "-CAkey",
                        "ca.key",
                        "-CAcreateserial",
                        "-days",
                        "30",
                        "-extfile",
                        ext,
                        "-out",
                        &pem,
                    ],
                );
            }
            let ca = fingerprint(d, "ca.pem");
            let leaf = fingerprint(d, "leaf.pem");
            let codesign = fingerprint(d, "sign.pem");
            Self {
                dir,
                ca,
                leaf,
                codesign,
            }
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }

        fn read(&self, rel: &str) -> Vec<u8> {
            std::fs::read(self.path(rel)).unwrap()
        }

        /// Writes `bytes` to `rel`, creating its directory.
        fn put(&self, rel: &str, bytes: &[u8]) {
            let path = self.path(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }

        fn copy(&self, from: &str, to: &str) {
            self.put(to, &self.read(from));
        }

        /// A tree under `t/` with one case per directory.
        fn tree(&self) {
            let d = self.dir.path();
            for sub in ["der", "p7", "p12", "junk"] {
                std::fs::create_dir_all(self.path("t").join(sub)).unwrap();
            }
            let (leaf, ca, key) = (
                self.read("leaf.pem"),
                self.read("ca.pem"),
                self.read("leaf.key"),
            );
            self.put("t/pem/bundle.pem", &[&leaf[..], &ca, &key].concat());
            openssl(
                d,
                &[
                    "x509",
                    "-in",
                    "leaf.pem",
                    "-outform",
                    "DER",
                    "-out",
                    "t/der/leaf.der",
                ],
            );
            let p7 = [
                "crl2pkcs7",
                "-nocrl",
                "-certfile",
                "leaf.pem",
                "-certfile",
                "ca.pem",
            ];
            openssl(d, &[&p7[..], &["-out", "t/p7/chain.p7b"]].concat());
            openssl(
                d,
                &[&p7[..], &["-outform", "DER", "-out", "t/p7/chain.p7c"]].concat(),
            );
            let p12 = [
                "pkcs12",
                "-export",
                "-in",
                "leaf.pem",
                "-inkey",
                "leaf.key",
                "-certfile",
                "ca.pem",
            ];
            openssl(
                d,
                &[&p12[..], &["-passout", "pass:", "-out", "t/p12/open.p12"]].concat(),
            );
            openssl(
                d,
                &[
                    &p12[..],
                    &["-passout", "pass:s3cret", "-out", "t/p12/locked.pfx"],
                ]
                .concat(),
            );
            self.copy("sign.pem", "t/codesign/signer.crt");
            self.copy("leaf.pem", "t/pair/server.crt");
            self.copy("leaf.key", "t/pair/server.key");
            self.copy("leaf.pem", "t/dash/web.pem");
            self.copy("leaf.key", "t/dash/web-key.pem");
            self.copy("leaf.pem", "t/certbot/cert.pem");
            self.put("t/certbot/fullchain.pem", &[&leaf[..], &ca].concat());
            self.copy("leaf.key", "t/certbot/privkey.pem");
            self.copy("leaf.pem", "t/mismatch/other.crt");
            self.copy("sign.key", "t/mismatch/other.key");
            // Not certificate files: skipped without a word.
            self.put("t/junk/notes.txt", b"just some text\n");
            self.put("t/junk/empty", b"");
            self.put(
                "t/junk/blob.bin",
                &[0x7f, 0x45, 0x4c, 0x46, 0, 0, 1, 2, 0, 3],
            );
            self.put("t/junk/image.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
            self.copy("leaf.csr", "t/junk/leaf.csr");
            openssl(
                d,
                &[
                    "pkey",
                    "-in",
                    "leaf.key",
                    "-outform",
                    "DER",
                    "-out",
                    "t/junk/key.der",
                ],
            );
        }

        fn scan(&self, options: FileScanOptions) -> (Vec<FileHit>, Vec<FileError>) {
            let mut hits = Vec::new();
            let mut errors = Vec::new();
            for item in scan(&options).unwrap() {
                match item {
                    Ok(hit) => hits.push(hit),
                    Err(e) => errors.push(e),
                }
            }
            (hits, errors)
        }

        fn options(&self, root: &str) -> FileScanOptions {
            FileScanOptions {
                roots: vec![self.path(root)],
                pkcs12_passwords: vec![Secret::new("wrong"), Secret::new("s3cret")],
                ..FileScanOptions::default()
            }
        }
    }

    fn fps(certs: &[ParsedCertificate]) -> Vec<&str> {
        certs.iter().map(|c| c.fingerprint.as_str()).collect()
    }

    /// The hits of a scan as `(path relative to root, format, fingerprints, key_beside)`.
    fn summary<'a>(
        root: &Path,
        hits: &'a [FileHit],
    ) -> Vec<(String, FileFormat, Vec<&'a str>, bool)> {
        hits.iter()
            .map(|h| {
                let rel = h.path.strip_prefix(root).unwrap().display().to_string();
                (rel, h.format, fps(&h.certificates), h.key_beside)
            })
            .collect()
    }

    #[test]
    fn finds_every_format_and_the_keys_beside() {
        let f = Fixture::new();
        f.tree();
        let (hits, errors) = f.scan(f.options("t"));
        assert!(errors.is_empty(), "{errors:?}");
        let (leaf, ca, sign) = (f.leaf.as_str(), f.ca.as_str(), f.codesign.as_str());
        use FileFormat::*;
        let expected = vec![
            ("certbot/cert.pem".to_owned(), Pem, vec![leaf], true),
            (
                "certbot/fullchain.pem".to_owned(),
                Pem,
                vec![leaf, ca],
                true,
            ),
            ("codesign/signer.crt".to_owned(), Pem, vec![sign], false),
            ("dash/web.pem".to_owned(), Pem, vec![leaf], true),
            ("der/leaf.der".to_owned(), Der, vec![leaf], false),
            ("mismatch/other.crt".to_owned(), Pem, vec![leaf], false),
            ("p12/locked.pfx".to_owned(), Pkcs12, vec![leaf, ca], true),
            ("p12/open.p12".to_owned(), Pkcs12, vec![leaf, ca], true),
            ("p7/chain.p7b".to_owned(), Pkcs7, vec![leaf, ca], false),
            ("p7/chain.p7c".to_owned(), Pkcs7, vec![leaf, ca], false),
            ("pair/server.crt".to_owned(), Pem, vec![leaf], true),
            ("pem/bundle.pem".to_owned(), Pem, vec![leaf, ca], true),
        ];
        assert_eq!(summary(&f.path("t"), &hits), expected);
        let signer = hits
            .iter()
            .find(|h| h.path.ends_with("signer.crt"))
            .unwrap();
        assert_eq!(signer.certificates[0].extended_key_usage, ["codeSigning"]);
    }

    #[test]
    fn reads_single_files_by_content_not_name() {
        let f = Fixture::new();
        f.tree();
        let read = |rel: &str| read_certificates(&f.path(rel), &f.read(rel), &[]).unwrap();
        let (format, certs) = read("t/der/leaf.der").unwrap();
        assert_eq!(
            (format, fps(&certs)),
            (FileFormat::Der, vec![f.leaf.as_str()])
        );
        let (format, certs) = read("t/p7/chain.p7c").unwrap();
        assert_eq!(
            (format, fps(&certs)),
            (FileFormat::Pkcs7, vec![f.leaf.as_str(), f.ca.as_str()])
        );
        for rel in [
            "t/junk/notes.txt",
            "t/junk/empty",
            "t/junk/blob.bin",
            "t/junk/image.png",
        ] {
            assert!(read(rel).is_none(), "{rel}");
        }
        // DER that is not a certificate (a private key, a CSR) is not an error.
        assert!(read("t/junk/key.der").is_none());
        assert!(read("t/junk/leaf.csr").is_none());
    }

    #[test]
    fn damaged_files_are_errors_and_the_walk_goes_on() {
        let f = Fixture::new();
        f.tree();
        let der = f.read("t/der/leaf.der");
        f.put("bad/a-truncated.der", &der[..der.len() / 2]);
        let garbage =
            "-----BEGIN CERTIFICATE-----\nthis is not base64 at all!\n-----END CERTIFICATE-----\n";
        f.put("bad/b-garbage.pem", garbage.as_bytes());
        f.copy("leaf.pem", "bad/c-good.pem");
        let (hits, errors) = f.scan(f.options("bad"));
        assert_eq!(hits.len(), 1);
        assert!(hits[0].path.ends_with("c-good.pem"));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            matches!(&errors[0], FileError::Malformed { path, format: FileFormat::Der, reason }
                if path.ends_with("a-truncated.der") && reason.contains("truncated")),
            "{:?}",
            errors[0]
        );
        assert!(
            matches!(&errors[1], FileError::Malformed { path, format: FileFormat::Pem, .. }
                if path.ends_with("b-garbage.pem")),
            "{:?}",
            errors[1]
        );
        assert!(!errors[0].is_transient());
    }

    #[test]
    fn pkcs12_passwords_are_tried_in_order_and_never_shown() {
        let f = Fixture::new();
        f.tree();
        let path = f.path("t/p12/locked.pfx");
        let bytes = f.read("t/p12/locked.pfx");
        let wrong = [Secret::new("nope"), Secret::new("with\0nul")];
        let err = read_certificates(&path, &bytes, &wrong).unwrap_err();
        assert!(
            matches!(&err, FileError::Pkcs12Password { path: p } if *p == path),
            "{err:?}"
        );
        assert!(!err.to_string().contains("nope"));
        let right = [Secret::new("nope"), Secret::new("s3cret")];
        let (format, certs) = read_certificates(&path, &bytes, &right).unwrap().unwrap();
        assert_eq!(
            (format, fps(&certs)),
            (FileFormat::Pkcs12, vec![f.leaf.as_str(), f.ca.as_str()])
        );
        // Right password, but a cipher OpenSSL 3 does not load by default.
        let legacy = ["-legacy", "-passout", "pass:s3cret", "-out", "legacy.p12"];
        let export = ["pkcs12", "-export", "-in", "leaf.pem", "-inkey", "leaf.key"];
        openssl(f.dir.path(), &[&export[..], &legacy].concat());
        let err = read_certificates(&path, &f.read("legacy.p12"), &right).unwrap_err();
        assert!(
            matches!(&err, FileError::Malformed { format: FileFormat::Pkcs12, reason, .. }
                if reason.contains("legacy provider")),
            "{err:?}"
        );
        // A damaged store is malformed, not a password problem.
        let cut = &bytes[..bytes.len() - 40];
        let err = read_certificates(&path, cut, &right).unwrap_err();
        assert!(
            matches!(
                err,
                FileError::Malformed {
                    format: FileFormat::Pkcs12,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn include_and_exclude_globs() {
        let f = Fixture::new();
        f.tree();
        let only_pem = FileScanOptions {
            include: vec!["*.pem".to_owned()],
            ..f.options("t")
        };
        let (hits, _) = f.scan(only_pem);
        assert!(!hits.is_empty());
        assert!(hits.iter().all(|h| h.path.extension().unwrap() == "pem"));
        let by_dir = FileScanOptions {
            include: vec!["**/p7/**".to_owned()],
            ..f.options("t")
        };
        let (hits, _) = f.scan(by_dir);
        assert_eq!(hits.len(), 2);

        // A symlink loop that errors when walked proves an excluded
        // directory is not entered.
        std::os::unix::fs::symlink("..", f.path("t/junk/loop")).unwrap();
        let following = FileScanOptions {
            follow_symlinks: true,
            ..f.options("t")
        };
        let (_, errors) = f.scan(following.clone());
        assert!(
            errors.iter().any(|e| matches!(e, FileError::Io { .. })),
            "{errors:?}"
        );
        for pattern in ["junk", "**/junk/**", "t?nk"] {
            let excluding = FileScanOptions {
                exclude: vec!["mismatch".to_owned(), pattern.to_owned()],
                ..following.clone()
            };
            let (hits, errors) = f.scan(excluding);
            if pattern == "t?nk" {
                assert!(!errors.is_empty());
                continue;
            }
            assert!(errors.is_empty(), "{pattern}: {errors:?}");
            assert_eq!(hits.len(), 11, "{pattern}");
            assert!(
                hits.iter()
                    .all(|h| !h.path.to_string_lossy().contains("mismatch"))
            );
        }

        let bad = FileScanOptions {
            exclude: vec!["a[".to_owned()],
            ..f.options("t")
        };
        assert!(
            matches!(scan(&bad).err(), Some(FileError::Glob { pattern, .. }) if pattern == "a[")
        );
    }

    #[test]
    fn big_files_are_skipped_and_links_to_files_are_read() {
        let f = Fixture::new();
        let mut big = f.read("leaf.pem");
        big.extend(std::iter::repeat_n(b'#', 2000));
        f.put("big/huge.pem", &big);
        f.copy("ca.pem", "big/small.pem");
        std::os::unix::fs::symlink(f.path("leaf.pem"), f.path("big/link.pem")).unwrap();
        std::os::unix::fs::symlink("nowhere", f.path("big/dangling.pem")).unwrap();
        let options = FileScanOptions {
            max_file_bytes: 1500,
            ..f.options("big")
        };
        let (hits, errors) = f.scan(options);
        assert!(errors.is_empty(), "{errors:?}");
        let root = f.path("big");
        let found: Vec<_> = summary(&root, &hits)
            .into_iter()
            .map(|h| (h.0, h.2))
            .collect();
        assert_eq!(
            found,
            [
                ("link.pem".to_owned(), vec![f.leaf.as_str()]),
                ("small.pem".to_owned(), vec![f.ca.as_str()])
            ]
        );
        // A missing root is reported, not fatal.
        let (hits, errors) = f.scan(f.options("no/such/dir"));
        assert!(hits.is_empty());
        assert!(matches!(&errors[..], [FileError::Io { .. }]), "{errors:?}");
    }

    #[test]
    fn java_key_stores_are_read() {
        let f = Fixture::new();
        f.tree();
        // The fixture is made by the JDK's own keytool: a missing one is a
        // broken test machine, not a skipped test (tests/run.sh installs
        // default-jre-headless).
        assert!(
            Command::new("keytool").arg("-help").output().is_ok(),
            "keytool is not installed: run ./tests/run.sh, which installs default-jre-headless"
        );
        let d = f.dir.path();
        let import = [
            "-importkeystore",
            "-srckeystore",
            "t/p12/locked.pfx",
            "-srcstoretype",
            "PKCS12",
            "-srcstorepass",
            "s3cret",
            "-destkeystore",
            "jks/store.jks",
            "-deststoretype",
            "JKS",
            "-deststorepass",
            "changeit",
            "-destkeypass",
            "changeit",
            "-noprompt",
        ];
        std::fs::create_dir_all(f.path("jks")).unwrap();
        run(d, "keytool", &import);
        let trust = [
            "-importcert",
            "-noprompt",
            "-alias",
            "signer",
            "-file",
            "sign.pem",
            "-keystore",
            "jks/store.jks",
            "-storetype",
            "JKS",
            "-storepass",
            "changeit",
        ];
        run(d, "keytool", &trust);
        let (hits, errors) = f.scan(f.options("jks"));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].format, FileFormat::Jks);
        assert!(hits[0].key_beside);
        let got: BTreeSet<_> = fps(&hits[0].certificates).into_iter().collect();
        let want: BTreeSet<_> = [&f.leaf, &f.ca, &f.codesign].map(String::as_str).into();
        assert_eq!(got, want);

        let bytes = f.read("jks/store.jks");
        let err =
            read_certificates(Path::new("cut.jks"), &bytes[..bytes.len() / 2], &[]).unwrap_err();
        assert!(
            matches!(
                err,
                FileError::Malformed {
                    format: FileFormat::Jks,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn encrypted_key_beside_does_not_match() {
        let f = Fixture::new();
        f.copy("leaf.pem", "enc/site.crt");
        let key = ["pkey", "-in", "leaf.key", "-aes256", "-passout", "pass:x"];
        std::fs::create_dir_all(f.path("enc")).unwrap();
        openssl(
            f.dir.path(),
            &[&key[..], &["-out", "enc/site.key"]].concat(),
        );
        let (hits, errors) = f.scan(f.options("enc"));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(hits.len(), 1);
        assert!(!hits[0].key_beside);
    }
}
