//! Running a target's `reload` command: no shell, a deadline, and the tail
//! of stderr for the error message.
//!
//! The command starts in a process group of its own, so on timeout (or when
//! the deploy is cancelled) the whole group is killed: a `sh -c` wrapper's
//! children do not outlive it. The group is killed with the `kill` program
//! (`kill -s KILL -- -PGID`), since the daemon forbids `unsafe` and so calls
//! no `kill(2)` itself; if that fails the leader alone is killed.
//!
//! The command gets a clean environment: `PATH` (the daemon's, or the
//! usual system one), `LANG=C.UTF-8`, and what the target names in
//! `reload_environment`; never the daemon's own variables, which may hold
//! the store password, API tokens (`CERTKEEPER__*`) or systemd's
//! `NOTIFY_SOCKET`.

use std::collections::BTreeMap;
use std::fmt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// How much of the end of stderr an error quotes.
const STDERR_TAIL: usize = 4096;

/// How long stderr is still read after the command exits: a daemon it
/// started may hold the pipe open for ever.
const STDERR_GRACE: Duration = Duration::from_secs(1);

/// A reload command that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{command}` {reason}{}", stderr_suffix(.stderr))]
pub struct ReloadError {
    /// The command line, for the operator.
    pub command: String,
    /// What went wrong: did not start, exit status, or timeout.
    pub reason: String,
    /// The last bytes of its stderr, lossily decoded and trimmed.
    pub stderr: String,
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; stderr: {stderr}")
    }
}

/// Shows an argv as a shell-like line, quoting arguments with spaces.
struct CommandLine<'a>(&'a [String]);

impl fmt::Display for CommandLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, arg) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '\'') {
                write!(f, "{arg:?}")?;
            } else {
                f.write_str(arg)?;
            }
        }
        Ok(())
    }
}

/// `PATH` for a reload command when the daemon has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs `argv` without a shell, in a clean environment plus `env`; kills it
/// and its process group after `timeout`. Success is exit status 0.
pub async fn run(
    argv: &[String],
    env: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<(), ReloadError> {
    let command = CommandLine(argv).to_string();
    let fail = |reason: String, stderr: String| ReloadError {
        command: command.clone(),
        reason,
        stderr,
    };
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| fail("is empty".into(), String::new()))?;
    let path = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", path)
        .env("LANG", "C.UTF-8")
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot start: {e}"), String::new()))?;
    let mut group = GroupGuard(child.id());
    let tail = Arc::new(Mutex::new(Vec::new()));
    let reader = child
        .stderr
        .take()
        .map(|stderr| tokio::spawn(read_tail(stderr, Arc::clone(&tail))));
    let waited = tokio::time::timeout(timeout, child.wait()).await;
    let outcome = match waited {
        Ok(Ok(status)) => {
            // Exited: whatever it left running is the service's business.
            group.disarm();
            Ok(status)
        }
        Ok(Err(e)) => Err(format!("cannot be waited for: {e}")),
        Err(_) => {
            group.kill(&mut child);
            let _ = child.wait().await;
            Err(format!(
                "did not finish within {}s and was killed",
                timeout.as_secs()
            ))
        }
    };
    if let Some(mut reader) = reader
        && tokio::time::timeout(STDERR_GRACE, &mut reader)
            .await
            .is_err()
    {
        reader.abort();
    }
    let stderr = tail
        .lock()
        .map(|tail| String::from_utf8_lossy(&tail).trim().to_string())
        .unwrap_or_default();
    match outcome {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(fail(describe(status), stderr)),
        Err(reason) => Err(fail(reason, stderr)),
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => format!("ended with {status}"),
    }
}

/// Reads `stderr` to its end into `tail`, keeping the last [`STDERR_TAIL`]
/// bytes. Shared so that what was read is kept if reading is cut short.
async fn read_tail(mut stderr: tokio::process::ChildStderr, tail: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 4096];
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let Ok(mut tail) = tail.lock() else { break };
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > STDERR_TAIL {
                    let excess = tail.len() - STDERR_TAIL;
                    tail.drain(..excess);
                }
            }
        }
    }
}

/// Kills the command's process group unless disarmed: on timeout, and when
/// the deploy future is dropped mid-reload (cancellation, shutdown).
struct GroupGuard(Option<u32>);

impl GroupGuard {
    fn disarm(&mut self) {
        self.0 = None;
    }

    fn kill(&mut self, child: &mut Child) {
        if let Some(pgid) = self.0.take() {
            kill_group(pgid);
        }
        // The leader at least, should `kill` be missing.
        let _ = child.start_kill();
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            kill_group(pgid);
        }
    }
}

fn kill_group(pgid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        tracing::warn!(pgid, "cannot kill the reload command's process group");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`super::run`] with nothing added to the clean environment.
    async fn run(argv: &[String], timeout: Duration) -> Result<(), ReloadError> {
        super::run(argv, &BTreeMap::new(), timeout).await
    }

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[tokio::test]
    async fn the_command_gets_a_clean_environment_plus_its_own() {
        // cargo sets CARGO_MANIFEST_DIR for the test process: like the
        // daemon's own variables, it must not reach the command.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        let script = format!("env > '{}'", out.display());
        let env = BTreeMap::from([("KUBECONFIG".to_owned(), "/etc/k".to_owned())]);
        super::run(&argv(&["sh", "-c", &script]), &env, Duration::from_secs(10))
            .await
            .unwrap();
        let seen = std::fs::read_to_string(&out).unwrap();
        let names: Vec<&str> = seen.lines().filter_map(|l| l.split('=').next()).collect();
        assert!(!names.contains(&"CARGO_MANIFEST_DIR"), "{seen}");
        assert!(seen.lines().any(|l| l == "KUBECONFIG=/etc/k"), "{seen}");
        assert!(seen.lines().any(|l| l.starts_with("PATH=")), "{seen}");
        // The shell adds PWD, SHLVL and `_` itself; nothing else came along.
        for name in names {
            assert!(
                ["PATH", "LANG", "KUBECONFIG", "PWD", "SHLVL", "_", "OLDPWD"].contains(&name),
                "`{name}` leaked into the reload command: {seen}"
            );
        }
    }

    #[tokio::test]
    async fn success_and_failure_with_stderr() {
        run(&argv(&["true"]), Duration::from_secs(10))
            .await
            .unwrap();
        let err = run(
            &argv(&["sh", "-c", "echo 'bad config' >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
        assert_eq!(err.reason, "exited with status 3");
        assert_eq!(err.stderr, "bad config");
        let msg = err.to_string();
        assert!(
            msg.contains("`sh -c \"echo 'bad config' >&2; exit 3\"`"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn stderr_is_bounded_to_its_tail() {
        let err = run(
            &argv(&[
                "sh",
                "-c",
                "head -c 100000 /dev/zero | tr '\\0' a >&2; echo END >&2; exit 1",
            ]),
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
        assert!(err.stderr.len() <= STDERR_TAIL, "{}", err.stderr.len());
        assert!(err.stderr.ends_with("aEND") || err.stderr.ends_with("a\nEND"));
    }

    #[tokio::test]
    async fn a_missing_program_is_named() {
        let err = run(&argv(&["/nonexistent/reload"]), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/reload"), "{err}");
        assert!(err.reason.contains("cannot start"), "{err}");
    }

    #[tokio::test]
    async fn a_hanging_command_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("sleep 1000 & echo $! > {}; wait", pid_file.display());
        let err = run(&argv(&["sh", "-c", &script]), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(err.reason.contains("killed"), "{err}");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        assert!(
            gone(pid.trim()).await,
            "the background sleep {pid} survived"
        );
    }

    /// Whether process `pid` has ended (or is a zombie nobody reaps here),
    /// waiting for the kernel to finish delivering SIGKILL.
    async fn gone(pid: &str) -> bool {
        for _ in 0..100 {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => return true,
                Ok(stat)
                    if stat
                        .rsplit(')')
                        .next()
                        .is_some_and(|s| s.trim_start().starts_with('Z')) =>
                {
                    return true;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        false
    }
}
