//! Writing a target's files atomically, and putting the previous ones back.
//!
//! Each file is written to `.NAME.certkeeper-tmp` in its own directory, given
//! its mode and owner, fsynced, renamed over `NAME` and the directory fsynced:
//! a reader (or a crash) sees the old file or the new one, never half of
//! either. All temporary files of a target are prepared before the first
//! rename, so most failures (missing directory, full disk, unknown user)
//! leave every file untouched; the renames then follow back to back, and if
//! one fails the files already renamed are restored.
//!
//! Before anything is replaced, the previous state of each file is kept twice:
//! in memory as a [`Backup`], and on disk next to the file as
//! `.NAME.certkeeper-previous` (a copy with the original mode and owner) or
//! `.NAME.certkeeper-absent` (the file did not exist). The on-disk copy is
//! what makes a deploy interrupted by a crash roll back to the right state:
//! when the deploy runs again, an existing copy wins over the (by then new)
//! file. [`Installed::finish`] and a successful restore remove the copies.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::Rollback;
use super::config::{DeployTarget, Mode};
use super::material::Rendered;

/// The state of one file before a deploy replaced it. `Debug` shows the path
/// and metadata, never the bytes (the previous key is among them).
pub struct Backup {
    path: PathBuf,
    previous: Previous,
}

enum Previous {
    /// The file did not exist: rolling back deletes it.
    Absent,
    /// The file's bytes, permission bits and owner.
    File {
        bytes: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
}

impl Backup {
    /// The file this backup restores (symbolic links resolved).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file existed before the deploy.
    pub fn existed(&self) -> bool {
        matches!(self.previous, Previous::File { .. })
    }

    /// Takes the previous state of `path`: from the on-disk copy an
    /// interrupted deploy left, else from the file itself, which is then
    /// copied (or marked absent) on disk before anything replaces it.
    fn take(path: PathBuf) -> io::Result<Self> {
        let copy = sidecar(&path, SIDE_PREVIOUS);
        let absent = sidecar(&path, SIDE_ABSENT);
        let previous = if let Some(previous) = read_file(&copy)? {
            previous
        } else if absent.exists() {
            Previous::Absent
        } else {
            match read_file(&path)? {
                Some(Previous::File {
                    bytes,
                    mode,
                    uid,
                    gid,
                }) => {
                    write_atomic(&copy, &bytes, mode, Some(uid), Some(gid))?;
                    Previous::File {
                        bytes,
                        mode,
                        uid,
                        gid,
                    }
                }
                _ => {
                    write_atomic(&absent, b"", 0o600, None, None)?;
                    Previous::Absent
                }
            }
        };
        Ok(Self { path, previous })
    }

    /// Puts the previous state back atomically (with its mode and owner, or
    /// by deleting the file), then drops the on-disk copy.
    pub fn restore(&self) -> io::Result<()> {
        match &self.previous {
            Previous::File {
                bytes,
                mode,
                uid,
                gid,
            } => write_atomic(&self.path, bytes, *mode, Some(*uid), Some(*gid))?,
            Previous::Absent => match fs::remove_file(&self.path) {
                Ok(()) => sync_dir(&self.path)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            },
        }
        self.forget()
    }

    /// Drops the on-disk copy: the deploy is over.
    fn forget(&self) -> io::Result<()> {
        for side in [SIDE_PREVIOUS, SIDE_ABSENT] {
            match fs::remove_file(sidecar(&self.path, side)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        sync_dir(&self.path)
    }
}

impl fmt::Debug for Backup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.previous {
            Previous::Absent => write!(f, "Backup({}: absent)", self.path.display()),
            Previous::File {
                bytes,
                mode,
                uid,
                gid,
            } => write!(
                f,
                "Backup({}: {} bytes, mode {mode:04o}, owner {uid}:{gid})",
                self.path.display(),
                bytes.len()
            ),
        }
    }
}

/// A target whose new files are in place; holds what a rollback needs.
#[derive(Debug)]
pub struct Installed {
    backups: Vec<Backup>,
}

impl Installed {
    /// The previous state of every file, in write order.
    pub fn backups(&self) -> &[Backup] {
        &self.backups
    }

    /// The files written.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.backups.iter().map(|b| b.path.clone()).collect()
    }

    /// Restores every file, in reverse order, trying all even when one fails.
    /// The error lists each file that could not be restored.
    pub fn restore(&self) -> Result<(), String> {
        restore_all(&self.backups)
    }

    /// Keeps the new files: drops the on-disk copies of the old ones. A copy
    /// that cannot be removed is only logged; the next deploy would roll
    /// back to it, so the operator is told.
    pub fn finish(self) {
        for backup in &self.backups {
            if let Err(e) = backup.forget() {
                tracing::warn!(
                    path = %backup.path.display(),
                    error = %e,
                    "cannot remove the copy of the previous file"
                );
            }
        }
    }
}

fn restore_all(backups: &[Backup]) -> Result<(), String> {
    let errors: Vec<String> = backups
        .iter()
        .rev()
        .filter_map(|b| {
            b.restore()
                .err()
                .map(|e| format!("{}: {e}", b.path.display()))
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("cannot restore {}", errors.join("; ")))
    }
}

const SIDE_TMP: &str = "tmp";
const SIDE_PREVIOUS: &str = "previous";
const SIDE_ABSENT: &str = "absent";

/// `.NAME.certkeeper-SIDE` next to `path`. Hidden and without a `.pem` or
/// `.conf` suffix, so no server glob picks it up.
fn sidecar(path: &Path, side: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.certkeeper-{side}"))
}

/// Writes every rendered file of `target`, all or nothing. Blocking.
///
/// On failure the error says whether the files had to be restored (and
/// whether that worked); nothing is reloaded here.
pub(super) fn install(
    target: &DeployTarget,
    files: &[Rendered],
) -> Result<Installed, (String, Rollback)> {
    let untouched = |e: String| (e, Rollback::NotNeeded);
    let owner = target
        .owner
        .as_deref()
        .map(|name| lookup_id(name, Database::Passwd))
        .transpose()
        .map_err(untouched)?;
    let group = target
        .group
        .as_deref()
        .map(|name| lookup_id(name, Database::Group))
        .transpose()
        .map_err(untouched)?;
    let paths: Vec<(PathBuf, Mode)> = target
        .files()
        .into_iter()
        .map(|(kind, path)| {
            resolve(path)
                .map(|p| (p, target.mode_for(kind)))
                .map_err(|e| format!("{} ({}): {e}", path.display(), kind.key()))
        })
        .collect::<Result<_, _>>()
        .map_err(untouched)?;

    // Prepare: back up and stage every file. Nothing a reader sees changes.
    let mut backups = Vec::new();
    let mut staged = Vec::new();
    let mut failure = None;
    for ((path, mode), file) in paths.iter().zip(files) {
        let tmp = sidecar(path, SIDE_TMP);
        let step = Backup::take(path.clone()).and_then(|backup| {
            backups.push(backup);
            staged.push(tmp.clone());
            stage(&tmp, &file.bytes, mode.bits(), owner, group)
        });
        if let Err(e) = step {
            failure = Some(format!("{}: {e}", path.display()));
            break;
        }
    }
    if let Some(e) = failure {
        for tmp in &staged {
            let _ = fs::remove_file(tmp);
        }
        // The files are untouched. Drop the copies this run took; copies an
        // interrupted earlier run left no longer match the files and stay
        // for its rollback.
        for backup in &backups {
            let _ = backup.forget_if_current();
        }
        return Err(untouched(e));
    }

    // Commit: rename each temporary file over its target, back to back.
    for (i, ((path, _), tmp)) in paths.iter().zip(&staged).enumerate() {
        if let Err(e) = fs::rename(tmp, path) {
            for tmp in &staged[i..] {
                let _ = fs::remove_file(tmp);
            }
            let message = format!("{}: cannot rename into place: {e}", path.display());
            return match restore_all(&backups[..i]) {
                Ok(()) => {
                    for backup in &backups[i..] {
                        let _ = backup.forget_if_current();
                    }
                    Err((message, Rollback::Done))
                }
                Err(undo) => Err((message, Rollback::Failed(undo))),
            };
        }
    }
    let installed = Installed { backups };
    for (path, _) in &paths {
        if let Err(e) = sync_dir(path) {
            let message = format!("{}: cannot sync the directory: {e}", path.display());
            return Err(match installed.restore() {
                Ok(()) => (message, Rollback::Done),
                Err(undo) => (message, Rollback::Failed(undo)),
            });
        }
    }
    Ok(installed)
}

impl Backup {
    /// Drops the on-disk copy when the file still matches it (this run took
    /// it and changed nothing); keeps it when it came from an interrupted run.
    fn forget_if_current(&self) -> io::Result<()> {
        let current = read_file(&self.path)?;
        let same = match (&self.previous, current) {
            (Previous::Absent, None) => true,
            (Previous::File { bytes, .. }, Some(Previous::File { bytes: now, .. })) => {
                *bytes == now
            }
            _ => false,
        };
        if same { self.forget() } else { Ok(()) }
    }
}

/// Follows a symbolic link at `path` so the link's target is replaced, not
/// the link (certbot-style `live/` links keep working). A directory is refused.
fn resolve(path: &Path) -> io::Result<PathBuf> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => fs::canonicalize(path),
        Ok(meta) if meta.is_dir() => Err(io::Error::other("is a directory, not a file")),
        Ok(_) => Ok(path.to_path_buf()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(path.to_path_buf()),
        Err(e) => Err(e),
    }
}

/// The file's bytes and metadata, or `None` when it does not exist.
fn read_file(path: &Path) -> io::Result<Option<Previous>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut file, &mut bytes)?;
    Ok(Some(Previous::File {
        bytes,
        mode: meta.permissions().mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    }))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to a fresh `tmp` with `mode` and, where given, owner and
/// group, fsynced. The file is created `0600` so a key is never readable by
/// others, even for a moment. Ownership is changed only where it differs
/// from what the new file got, so a daemon that is not root can still write
/// (and restore) files it owns itself.
fn stage(
    tmp: &Path,
    bytes: &[u8],
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> io::Result<()> {
    // A leftover from a crash is ours to replace.
    match fs::remove_file(tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)?;
        file.write_all(bytes)?;
        let meta = file.metadata()?;
        let uid = uid.filter(|&uid| uid != meta.uid());
        let gid = gid.filter(|&gid| gid != meta.gid());
        if uid.is_some() || gid.is_some() {
            // Owner before mode: chown clears setuid/setgid bits.
            std::os::unix::fs::fchown(&file, uid, gid)?;
        }
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

/// Replaces `path` atomically with `bytes`, `mode` and owner.
fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> io::Result<()> {
    let tmp = sidecar(path, SIDE_TMP);
    stage(&tmp, bytes, mode, uid, gid)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(path)
}

/// Makes a rename or removal in `path`'s directory durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(parent(path))?.sync_all()
}

#[derive(Clone, Copy)]
enum Database {
    Passwd,
    Group,
}

impl Database {
    fn name(self) -> &'static str {
        match self {
            Self::Passwd => "passwd",
            Self::Group => "group",
        }
    }
}

/// A numeric id as is, else a user or group name looked up with `getent`,
/// which asks NSS as every other program on the host does (so LDAP, SSSD
/// and systemd-userdb accounts resolve). Where `getent` is missing, the
/// local `/etc/passwd` or `/etc/group` is read instead.
fn lookup_id(name: &str, db: Database) -> Result<u32, String> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok(id);
    }
    let what = match db {
        Database::Passwd => "user",
        Database::Group => "group",
    };
    let line = match std::process::Command::new("getent")
        .args([db.name(), "--", name])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        // Exit status 2: no such key.
        Ok(_) => return Err(format!("no such {what} `{name}`")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let file = format!("/etc/{}", db.name());
            let text = fs::read_to_string(&file).map_err(|e| format!("cannot read {file}: {e}"))?;
            text.lines()
                .find(|line| line.split(':').next() == Some(name))
                .map(str::to_owned)
                .ok_or_else(|| format!("no such {what} `{name}`"))?
        }
        Err(e) => return Err(format!("cannot run getent to look up {what} `{name}`: {e}")),
    };
    // name:password:ID:... in both databases.
    line.trim()
        .split(':')
        .nth(2)
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| {
            format!(
                "cannot read the id of {what} `{name}` from `{}`",
                line.trim()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::config::FileKind;

    fn rendered(kinds: &[(FileKind, &str)]) -> Vec<Rendered> {
        kinds
            .iter()
            .map(|(kind, text)| Rendered {
                kind: *kind,
                bytes: text.as_bytes().to_vec(),
            })
            .collect()
    }

    fn target(toml: &str) -> DeployTarget {
        let t: DeployTarget = toml::from_str(toml).unwrap();
        t.validate().unwrap();
        t
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("certkeeper-"))
            .collect()
    }

    #[test]
    fn ids_resolve_by_name_and_number() {
        assert_eq!(lookup_id("root", Database::Passwd), Ok(0));
        assert_eq!(lookup_id("65534", Database::Group), Ok(65534));
        let err = lookup_id("no-such-user-here", Database::Passwd).unwrap_err();
        assert!(err.contains("no such user"), "{err}");
    }

    #[test]
    fn a_symlink_is_followed_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.pem");
        let link = dir.path().join("link.pem");
        fs::write(&real, "old").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let t = target(&format!("cert = {link:?}\n"));
        let installed = install(&t, &rendered(&[(FileKind::Cert, "new")])).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&real).unwrap(), "new");
        installed.restore().unwrap();
        assert_eq!(fs::read_to_string(&link).unwrap(), "old");
        assert!(
            leftovers(dir.path()).is_empty(),
            "{:?}",
            leftovers(dir.path())
        );
    }

    #[test]
    fn an_interrupted_deploy_rolls_back_to_the_state_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        fs::write(&cert, "old cert").unwrap();
        let t = target(&format!("cert = {cert:?}\nkey = {key:?}\n"));
        let new = rendered(&[(FileKind::Cert, "new cert"), (FileKind::Key, "new key")]);
        // A first run installs, then the daemon dies before verifying.
        let first = install(&t, &new).unwrap();
        drop(first);
        // The deploy runs again after the restart and is rolled back.
        let second = install(&t, &new).unwrap();
        assert_eq!(fs::read_to_string(&cert).unwrap(), "new cert");
        second.restore().unwrap();
        assert_eq!(fs::read_to_string(&cert).unwrap(), "old cert");
        assert!(!key.exists());
        assert!(
            leftovers(dir.path()).is_empty(),
            "{:?}",
            leftovers(dir.path())
        );
    }

    #[test]
    fn a_finished_deploy_leaves_no_copies_and_right_modes() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        let t = target(&format!("cert = {cert:?}\nkey = {key:?}\n"));
        let files = rendered(&[(FileKind::Cert, "c"), (FileKind::Key, "k")]);
        install(&t, &files).unwrap().finish();
        assert_eq!(mode_of(&cert), 0o644);
        assert_eq!(mode_of(&key), 0o600);
        assert!(
            leftovers(dir.path()).is_empty(),
            "{:?}",
            leftovers(dir.path())
        );
    }
}
