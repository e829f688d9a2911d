//! What the benchmark binaries share: the work directory, finding the peer
//! tools, and keys and serials for the certificates they make. Included by
//! each benchmark with `#[path]` (binaries cannot share a module otherwise).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};

/// The work directory: `--dir` (kept), or a temporary one removed on drop
/// unless [`WorkDir::keep`] was called.
pub struct WorkDir {
    /// Its path.
    pub path: PathBuf,
    temporary: bool,
}

impl WorkDir {
    /// `dir` (created if missing), or a fresh temporary `name-PID` directory.
    pub fn new(dir: Option<&Path>, name: &str) -> anyhow::Result<Self> {
        match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("--dir {}", dir.display()))?;
                Ok(Self {
                    path: dir.canonicalize()?,
                    temporary: false,
                })
            }
            None => {
                let path = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
                std::fs::create_dir_all(&path)?;
                Ok(Self {
                    path,
                    temporary: true,
                })
            }
        }
    }

    /// Keeps a temporary directory (its logs say what went wrong).
    #[allow(dead_code)] // not every benchmark keeps its work on failure
    pub fn keep(&mut self) {
        if self.temporary {
            self.temporary = false;
            eprintln!("work dir kept for inspection: {}", self.path.display());
        }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The first of `candidates` that exists, else `name` on `PATH`.
pub fn find_tool(name: &str, candidates: &[&str]) -> anyhow::Result<PathBuf> {
    if let Some(found) = candidates.iter().map(PathBuf::from).find(|p| p.exists()) {
        return Ok(found);
    }
    let paths = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&paths)
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .with_context(|| {
            format!(
                "{name} is not installed (looked for {} and on PATH); apt-get install {name}",
                candidates.join(", ")
            )
        })
}

/// A new P-256 key.
#[allow(dead_code)] // not every benchmark makes certificates
pub fn ec_key() -> anyhow::Result<PKey<Private>> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    Ok(PKey::from_ec_key(EcKey::generate(&group)?)?)
}

/// A random 120-bit certificate serial.
#[allow(dead_code)] // not every benchmark makes certificates
pub fn random_serial() -> anyhow::Result<openssl::asn1::Asn1Integer> {
    let mut serial = BigNum::new()?;
    serial.rand(120, MsbOption::MAYBE_ZERO, false)?;
    Ok(serial.to_asn1_integer()?)
}

/// A process's peak resident set (VmHWM) in KiB.
#[allow(dead_code)] // not every benchmark watches a child
pub fn peak_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// A size `field` (`VmRSS:`, `VmHWM:`, ...) of `/proc/PID/status`, in KiB.
#[allow(dead_code)] // not every benchmark watches a child
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
