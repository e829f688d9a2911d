//! Running the configured program once: spawned directly (no shell) in its
//! own process group with a clean environment, fed the request on stdin,
//! its stdout and stderr read up to a bound, and the whole group killed when
//! it overruns the timeout, answers too much, or the caller gives up.
//!
//! The program is the leader of a new process group, so whatever it starts
//! (an `openssl` child, a `sleep`) is in that group too and one
//! `kill(-pgid, SIGKILL)` ends them all. The group is killed before the
//! leader is reaped, while its pid cannot have been reused.
//!
//! A run ends when the program has exited and stdout and stderr are closed:
//! a background process that keeps either open holds the run until the
//! timeout kills the group. One that closed them and outlives a program
//! which exited normally is left alone: once the leader is reaped, its pid
//! (the group's id) may already belong to an unrelated process, so the
//! group is never signalled then.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::CommandSettings;

/// The `PATH` the program gets unless its settings give one.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// What a program that ran to completion left behind.
#[derive(Debug)]
pub(crate) struct Finished {
    /// How it exited.
    pub status: ExitStatus,
    /// Everything it wrote to stdout (at most `max_output` bytes).
    pub stdout: Vec<u8>,
    /// The first `max_output` bytes it wrote to stderr.
    pub stderr: Vec<u8>,
}

/// Why a run produced no output to interpret.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    /// The program could not be started.
    #[error("cannot start the program: {0}")]
    Spawn(#[source] io::Error),
    /// It did not finish in time; its process group was killed.
    #[error("the program did not answer within {0:?}; it was killed with every process it started")]
    TimedOut(Duration),
    /// It wrote more than `max_output` bytes to stdout; it was killed.
    #[error(
        "the program answered more than {0} bytes (max_output); it was killed with every process it started"
    )]
    TooLarge(usize),
    /// Talking to it failed (a pipe error, waiting for it).
    #[error("talking to the program failed: {0}")]
    Io(#[source] io::Error),
}

/// Kills a process group when dropped, unless disarmed: the program's whole
/// group dies with the future that runs it (a timeout, a cancelled renewal).
///
/// The group is signalled by `kill -KILL -- -PGID` (procps): the standard
/// library has no `killpg` and the workspace forbids `unsafe`; it runs only
/// when a program outlived its caller, which is rare, and takes a few
/// milliseconds.
struct GroupKiller(Option<u32>);

impl GroupKiller {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            // "No such process" (every member gone already) is the good case.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .env_clear()
                .env("PATH", DEFAULT_PATH)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the program once with `input` on its stdin.
pub(crate) async fn run(settings: &CommandSettings, input: &[u8]) -> Result<Finished, RunError> {
    let mut command = tokio::process::Command::new(&settings.program);
    command.args(&settings.args).env_clear();
    if !settings.env.iter().any(|(name, _)| name == "PATH") {
        command.env("PATH", DEFAULT_PATH);
    }
    for (name, value) in &settings.env {
        command.env(name, value.expose());
    }
    if let Some(dir) = &settings.working_dir {
        command.current_dir(dir);
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(RunError::Spawn)?;
    // Declared after `child`, so dropped first: the group is killed while
    // the leader is still unreaped and its pid still ours.
    let mut group = GroupKiller(child.id().filter(|id| *id > 1));
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let max = settings.max_output;

    let talk = async {
        let write = async {
            if let Some(mut stdin) = stdin {
                // A program that answers without reading its input closes
                // the pipe early: not an error of ours.
                let _ = stdin.write_all(input).await;
                let _ = stdin.shutdown().await;
            }
            Ok::<_, RunError>(())
        };
        let (_, stdout, stderr) = tokio::try_join!(
            write,
            read_capped(stdout, max, true),
            read_capped(stderr, max, false)
        )?;
        let status = child.wait().await.map_err(RunError::Io)?;
        Ok(Finished {
            status,
            stdout,
            stderr,
        })
    };
    let outcome = tokio::time::timeout(settings.timeout, talk).await;
    match outcome.unwrap_or(Err(RunError::TimedOut(settings.timeout))) {
        Ok(finished) => {
            // The leader is reaped: its pid may be reused, so never signal it now.
            group.0 = None;
            Ok(finished)
        }
        Err(e) => {
            group.kill();
            // Reap the leader now (SIGKILL is prompt) so no zombie stays.
            let _ = child.wait().await;
            Err(e)
        }
    }
}

/// Reads `reader` to its end, keeping at most `max` bytes. Past that, stdout
/// (`fail_when_over`) is an error at once; stderr is drained and dropped, so a
/// chatty program never blocks on a full pipe.
async fn read_capped<R: AsyncRead + Unpin>(
    reader: Option<R>,
    max: usize,
    fail_when_over: bool,
) -> Result<Vec<u8>, RunError> {
    let mut kept = Vec::new();
    let Some(mut reader) = reader else {
        return Ok(kept);
    };
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut chunk).await.map_err(RunError::Io)?;
        if n == 0 {
            return Ok(kept);
        }
        let room = max.saturating_sub(kept.len());
        if n > room && fail_when_over {
            return Err(RunError::TooLarge(max));
        }
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
}
