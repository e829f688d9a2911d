//! Deploying a certificate to a server: write its files, reload the service,
//! let the caller check the live endpoint, and put everything back if any of
//! that fails.
//!
//! A [`DeployTarget`] (`[[certificate.deploy]]`) names the files (`cert`,
//! `key`, `chain`, `fullchain`, `pkcs12`), their owner and mode, the `reload`
//! command and the `verify` endpoints. [`deploy`] runs the steps in order:
//!
//! 1. **write** ([`install`]): every file is replaced atomically (temporary
//!    file in the same directory, fsync, mode and owner, rename, directory
//!    fsync), all files of the target together or none, and the previous
//!    state of each is kept as a [`Backup`];
//! 2. **reload** ([`reload()`]): the command runs without a shell under a
//!    deadline; on timeout its whole process group is killed;
//! 3. **verify**: the caller's probe, typically a TLS handshake with each
//!    `verify` endpoint checking that the new certificate is served.
//!
//! If reload or verify fails, [`rollback`] restores every file (original
//! bytes, mode and owner; files that did not exist are deleted) and reloads
//! again. A [`DeployError`] says which step failed and whether the rollback
//! worked; when it did not, the server may serve anything and an operator
//! must act. No error or `Debug` output holds key material or a password.
//!
//! # Crash safety
//!
//! The caller records "deploying" in the store before calling [`deploy`] and
//! calls it again with the same material after a restart, so a deploy must be
//! idempotent: running it twice leaves the same files as running it once, and
//! the reload runs each time (a crash may have come between write and reload).
//! Each file is at any moment either old or new, never torn. What a crash
//! would otherwise lose is the old content, since after a restart the files
//! on disk may already be the new ones; so the previous state is also kept on
//! disk next to each file (`.NAME.certkeeper-previous`, or
//! `.NAME.certkeeper-absent` when there was none) until the deploy ends, and
//! a re-run takes its backup from there. A rollback after a restart therefore
//! restores what was there before the interrupted deploy, not what it wrote.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

mod config;
mod files;
mod material;
#[cfg(test)]
pub(crate) use material::tests::cert as test_cert;
mod reload;

pub use config::{DeployTarget, Endpoint, FileKind, InvalidTarget, Mode};
pub use files::{Backup, Installed};
pub use material::Material;
pub use reload::ReloadError;

/// The step of a deploy that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Checking the material and rendering the files (nothing was touched).
    Prepare,
    /// Writing the files.
    Write,
    /// Running the reload command.
    Reload,
    /// The caller's check of the live endpoints.
    Verify,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Prepare => "prepare",
            Self::Write => "write",
            Self::Reload => "reload",
            Self::Verify => "verify",
        })
    }
}

/// What became of the previous files after a failed step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollback {
    /// No file had been replaced: the server is as it was.
    NotNeeded,
    /// The previous files are back, and the service was reloaded if it had
    /// been reloaded with the new ones.
    Done,
    /// Restoring or the reload after it failed: the server may serve the new
    /// files, the old ones or a mix. An operator must look.
    Failed(String),
}

impl fmt::Display for Rollback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotNeeded => f.write_str("no file was changed"),
            Self::Done => f.write_str("the previous files were restored"),
            Self::Failed(e) => write!(f, "rollback failed too: {e}"),
        }
    }
}

/// A failed deploy: the step, its cause and the rollback's outcome. Never
/// holds key material or the PKCS#12 password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("deploy to {target}: {step} failed: {cause}; {rollback}")]
pub struct DeployError {
    /// The target, by one of its paths ([`DeployTarget::label`]).
    pub target: String,
    /// The step that failed.
    pub step: Step,
    /// Why it failed, for the operator.
    pub cause: String,
    /// What became of the previous files.
    pub rollback: Rollback,
}

impl DeployError {
    /// Whether the server is back where it was (or never left).
    pub fn rolled_back(&self) -> bool {
        !matches!(self.rollback, Rollback::Failed(_))
    }

    /// Whether the scheduler may try the deploy again later. Not when the
    /// material itself is unusable, nor when the rollback failed: then an
    /// operator must act first.
    pub fn is_retryable(&self) -> bool {
        self.step != Step::Prepare && self.rolled_back()
    }
}

/// A successful deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    /// The files written, symbolic links resolved, in write order.
    pub files: Vec<PathBuf>,
    /// Whether a reload command ran.
    pub reloaded: bool,
}

/// Deploys `material` to `target`: write, reload, `verify`, and roll back if
/// reload or `verify` fails. `verify` is the caller's check of the live
/// endpoints (`target.verify`), called after every successful reload even
/// when `target.verify` is empty; its error text ends up in the
/// [`DeployError`]. Safe to call again after a crash with the same material.
pub async fn deploy(
    target: &DeployTarget,
    material: &Material,
    verify: impl AsyncFnOnce() -> Result<(), String>,
) -> Result<Deployed, DeployError> {
    let installed = {
        let (owned_target, material) = (target.clone(), material.clone());
        tokio::task::spawn_blocking(move || install(&owned_target, &material))
            .await
            .map_err(|e| DeployError {
                target: target.label(),
                step: Step::Write,
                cause: format!("the write task ended abnormally: {e}"),
                rollback: Rollback::Failed("unknown which files were written".into()),
            })??
    };
    let failed = match reload(target).await {
        Err(e) => Some((Step::Reload, e.to_string())),
        Ok(()) => verify().await.err().map(|e| (Step::Verify, e)),
    };
    if let Some((step, cause)) = failed {
        let rollback = match rollback(target, installed).await {
            Ok(()) => Rollback::Done,
            Err(e) => Rollback::Failed(e),
        };
        let error = DeployError {
            target: target.label(),
            step,
            cause,
            rollback,
        };
        if error.rolled_back() {
            tracing::warn!(target_path = %error.target, %step, cause = %error.cause, "deploy failed and was rolled back");
        } else {
            tracing::error!(target_path = %error.target, %step, cause = %error.cause, rollback = %error.rollback, "deploy and its rollback failed");
        }
        return Err(error);
    }
    let files = installed.paths();
    // Dropping the copies of the old files is a few unlinks; a failure is
    // only logged (inside finish), and the new files stay either way.
    let _ = tokio::task::spawn_blocking(move || installed.finish()).await;
    tracing::info!(target_path = %target.label(), files = files.len(), "certificate deployed");
    Ok(Deployed {
        files,
        reloaded: target.reload.is_some(),
    })
}

/// Step 1: checks `material` and writes every file of `target`, all or
/// nothing. Blocking file I/O: call it from `spawn_blocking`.
pub fn install(target: &DeployTarget, material: &Material) -> Result<Installed, DeployError> {
    let error = |step, cause, rollback| DeployError {
        target: target.label(),
        step,
        cause,
        rollback,
    };
    let rendered = material::render(target, material)
        .map_err(|cause| error(Step::Prepare, cause, Rollback::NotNeeded))?;
    files::install(target, &rendered)
        .map_err(|(cause, rollback)| error(Step::Write, cause, rollback))
}

/// Step 2: runs `target.reload`, if any, under `reload_timeout_seconds`.
pub async fn reload(target: &DeployTarget) -> Result<(), ReloadError> {
    match &target.reload {
        Some(argv) => {
            reload::run(
                argv,
                &target.reload_environment,
                Duration::from_secs(target.reload_timeout_seconds),
            )
            .await
        }
        None => Ok(()),
    }
}

/// Restores the files `installed` replaced, then reloads so the service
/// drops the new ones. If a file cannot be restored the reload is skipped:
/// the service then keeps what it loaded last rather than a mix of old and
/// new files. The error names every file and command that failed.
pub async fn rollback(target: &DeployTarget, installed: Installed) -> Result<(), String> {
    tokio::task::spawn_blocking(move || installed.restore())
        .await
        .map_err(|e| format!("the restore task ended abnormally: {e}"))?
        .map_err(|e| format!("{e}; not reloaded"))?;
    reload(target)
        .await
        .map_err(|e| format!("files restored, but the reload failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::material::tests::material;
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::Path;

    use openssl::pkcs12::Pkcs12;
    use openssl::x509::X509;

    /// A target in `dir` whose reload appends a line to `dir/reloads` and
    /// runs `then` in `sh` (e.g. `exit 1`).
    fn target(dir: &Path, extra: &str, then: &str) -> DeployTarget {
        let log = dir.join("reloads");
        let script = format!("echo reload >> '{}'; {then}", log.display());
        let toml = format!("reload = [\"sh\", \"-c\", {script:?}]\n{extra}");
        let t: DeployTarget = toml::from_str(&toml).unwrap();
        t.validate().unwrap();
        t
    }

    fn paths(dir: &Path) -> String {
        format!(
            "fullchain = {:?}\nkey = {:?}\n",
            dir.join("site.pem"),
            dir.join("site.key")
        )
    }

    fn reloads(dir: &Path) -> usize {
        fs::read_to_string(dir.join("reloads"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn no_leftovers(dir: &Path) {
        let left: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".certkeeper-"))
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    async fn ok() -> Result<(), String> {
        Ok(())
    }

    /// Existing files with their own content, mode and owner, to be replaced.
    fn old_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let old = vec![
            (dir.join("site.pem"), b"old fullchain\n".to_vec()),
            (dir.join("site.key"), b"old key\n".to_vec()),
        ];
        for (path, bytes) in &old {
            fs::write(path, bytes).unwrap();
            fs::set_permissions(path, fs::Permissions::from_mode(0o640)).unwrap();
            std::os::unix::fs::chown(path, Some(65534), Some(65534)).unwrap();
        }
        old
    }

    fn assert_restored(old: &[(PathBuf, Vec<u8>)]) {
        for (path, bytes) in old {
            assert_eq!(&fs::read(path).unwrap(), bytes, "{}", path.display());
            let meta = fs::metadata(path).unwrap();
            assert_eq!(mode_of(path), 0o640, "{}", path.display());
            assert_eq!(
                (meta.uid(), meta.gid()),
                (65534, 65534),
                "{}",
                path.display()
            );
        }
    }

    #[tokio::test]
    async fn files_are_written_as_a_web_server_expects() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let extra = format!(
            "{}cert = {:?}\nchain = {:?}\npkcs12 = {:?}\npkcs12_password = \"hunter2\"\npkcs12_name = \"site\"\n",
            paths(d),
            d.join("leaf.pem"),
            d.join("chain.pem"),
            d.join("site.p12")
        );
        let t = target(d, &extra, "true");
        let m = material("www.example.com");
        let done = deploy(&t, &m, ok).await.unwrap();
        assert_eq!(done.files.len(), 5);
        assert!(done.reloaded);
        assert_eq!(reloads(d), 1);

        let read = |name: &str| fs::read_to_string(d.join(name)).unwrap();
        assert_eq!(read("site.pem"), format!("{}{}", m.leaf_pem, m.chain_pem));
        assert_eq!(read("leaf.pem"), m.leaf_pem);
        assert_eq!(read("chain.pem"), m.chain_pem);
        assert_eq!(read("site.key"), m.key_pem.expose());
        assert_eq!(mode_of(&d.join("site.key")), 0o600);
        assert_eq!(mode_of(&d.join("site.p12")), 0o600);
        assert_eq!(mode_of(&d.join("site.pem")), 0o644);
        assert_eq!(mode_of(&d.join("leaf.pem")), 0o644);
        no_leftovers(d);

        // openssl can load the pair as nginx would.
        let leaf = X509::from_pem(read("site.pem").as_bytes()).unwrap();
        let key = openssl::pkey::PKey::private_key_from_pem(read("site.key").as_bytes()).unwrap();
        assert!(key.public_eq(&leaf.public_key().unwrap()));

        let der = fs::read(d.join("site.p12")).unwrap();
        let p12 = Pkcs12::from_der(&der).unwrap();
        assert!(p12.parse2("wrong").is_err());
        let parsed = p12.parse2("hunter2").unwrap();
        let p12_cert = parsed.cert.unwrap();
        assert_eq!(p12_cert.to_pem().unwrap(), leaf.to_pem().unwrap());
        assert!(parsed.pkey.unwrap().public_eq(&key));
        assert_eq!(parsed.ca.map(|ca| ca.len()), Some(1));
        if let Ok(out) = std::process::Command::new("openssl")
            .args([
                "pkcs12",
                "-info",
                "-noout",
                "-passin",
                "pass:hunter2",
                "-in",
            ])
            .arg(d.join("site.p12"))
            .output()
        {
            let info = String::from_utf8_lossy(&out.stderr);
            assert!(info.contains("AES-256-CBC"), "{info}");
        }
    }

    #[tokio::test]
    async fn owner_group_and_mode_are_applied() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let extra = format!(
            "{}owner = \"nobody\"\ngroup = \"nogroup\"\nmode = \"0640\"\n",
            paths(d)
        );
        let t = target(d, &extra, "true");
        deploy(&t, &material("a.test"), ok).await.unwrap();
        for name in ["site.pem", "site.key"] {
            let meta = fs::metadata(d.join(name)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "{name}");
            assert_eq!(mode_of(&d.join(name)), 0o640, "{name}");
        }
    }

    #[tokio::test]
    async fn deploying_twice_is_harmless() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let t = target(d, &paths(d), "true");
        let m = material("a.test");
        deploy(&t, &m, ok).await.unwrap();
        let first = fs::read(d.join("site.pem")).unwrap();
        deploy(&t, &m, ok).await.unwrap();
        assert_eq!(fs::read(d.join("site.pem")).unwrap(), first);
        assert_eq!(reloads(d), 2, "each run reloads");
        no_leftovers(d);
    }

    #[tokio::test]
    async fn a_failing_reload_restores_the_files_and_reloads_again() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let old = old_files(d);
        let chain = d.join("chain.pem");
        let extra = format!("{}chain = {chain:?}\n", paths(d));
        // Fails the first time only, so the rollback's reload succeeds.
        let marker = d.join("failed-once");
        let then = format!(
            "if [ -e '{0}' ]; then exit 0; fi; touch '{0}'; echo 'emerg: bad cert' >&2; exit 1",
            marker.display()
        );
        let t = target(d, &extra, &then);
        let err = deploy(&t, &material("a.test"), ok).await.unwrap_err();
        assert_eq!(err.step, Step::Reload);
        assert_eq!(err.rollback, Rollback::Done);
        assert!(err.is_retryable());
        let msg = err.to_string();
        assert!(
            msg.contains("exited with status 1") && msg.contains("emerg: bad cert"),
            "{msg}"
        );
        assert_restored(&old);
        assert!(
            !chain.exists(),
            "a file that did not exist is deleted again"
        );
        assert_eq!(reloads(d), 2);
        no_leftovers(d);
    }

    #[tokio::test]
    async fn a_hanging_reload_is_killed_and_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let old = old_files(d);
        let marker = d.join("hung-once");
        let then = format!(
            "if [ -e '{0}' ]; then exit 0; fi; touch '{0}'; sleep 1000",
            marker.display()
        );
        let extra = format!("{}reload_timeout_seconds = 1\n", paths(d));
        let t = target(d, &extra, &then);
        let err = deploy(&t, &material("a.test"), ok).await.unwrap_err();
        assert_eq!(err.step, Step::Reload);
        assert!(err.cause.contains("did not finish within 1s"), "{err}");
        assert_eq!(err.rollback, Rollback::Done);
        assert_restored(&old);
        assert_eq!(reloads(d), 2);
    }

    #[tokio::test]
    async fn a_failed_verify_rolls_back_and_a_passed_one_keeps_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let old = old_files(d);
        let extra = format!(
            "{}pkcs12 = {:?}\npkcs12_password = \"hunter2\"\nverify = [\"127.0.0.1:443\"]\n",
            paths(d),
            d.join("site.p12")
        );
        let t = target(d, &extra, "true");
        let m = material("a.test");
        let err = deploy(&t, &m, async || {
            Err("127.0.0.1:443 serves the old certificate".to_string())
        })
        .await
        .unwrap_err();
        assert_eq!(err.step, Step::Verify);
        assert_eq!(err.rollback, Rollback::Done);
        assert!(
            err.to_string().contains("serves the old certificate"),
            "{err}"
        );
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(
                !shown.contains("hunter2") && !shown.contains("PRIVATE KEY"),
                "{shown}"
            );
        }
        assert_restored(&old);
        assert!(!d.join("site.p12").exists());
        assert_eq!(reloads(d), 2);
        no_leftovers(d);

        deploy(&t, &m, ok).await.unwrap();
        assert_eq!(
            fs::read_to_string(d.join("site.key")).unwrap(),
            m.key_pem.expose()
        );
        assert_eq!(mode_of(&d.join("site.key")), 0o600);
        no_leftovers(d);
    }

    #[tokio::test]
    async fn a_write_failure_midway_leaves_every_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let old = old_files(d);
        let missing = d.join("no-such-dir").join("site.p12");
        let cert = d.join("leaf.pem");
        // Written in order chain, cert, fullchain, pkcs12, key: fullchain and
        // cert come before the file that cannot be written.
        let extra = format!(
            "{}cert = {cert:?}\npkcs12 = {missing:?}\npkcs12_password = \"pw\"\n",
            paths(d)
        );
        let t = target(d, &extra, "true");
        let err = deploy(&t, &material("a.test"), ok).await.unwrap_err();
        assert_eq!(err.step, Step::Write);
        assert_eq!(err.rollback, Rollback::NotNeeded);
        assert!(err.cause.contains("no-such-dir"), "{err}");
        assert_restored(&old);
        assert!(!cert.exists());
        assert_eq!(reloads(d), 0, "nothing changed, nothing to reload");
        no_leftovers(d);
    }

    #[tokio::test]
    async fn bad_material_touches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let old = old_files(d);
        let t = target(d, &paths(d), "true");
        let mut m = material("a.test");
        m.key_pem = material("b.test").key_pem;
        let err = deploy(&t, &m, ok).await.unwrap_err();
        assert_eq!(err.step, Step::Prepare);
        assert!(!err.is_retryable());
        assert_restored(&old);
        assert_eq!(reloads(d), 0);
    }

    #[tokio::test]
    async fn a_deploy_can_run_on_another_task() {
        let dir = tempfile::tempdir().unwrap();
        let t = target(dir.path(), &paths(dir.path()), "true");
        let m = material("a.test");
        let done = tokio::spawn(async move { deploy(&t, &m, ok).await })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(done.files.len(), 2);
    }
}
