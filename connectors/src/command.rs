//! The command connector: any CA Certkeeper has no connector for, reached
//! through a program the operator writes.
//!
//! Every operation runs the configured program once, directly (never
//! through a shell), with the fixed arguments from the settings. The
//! request is one JSON object on the program's stdin; the answer is one
//! JSON object on its stdout ([`protocol`], specified for program authors in
//! `contrib/command-connector/README.md`, where a worked example that runs a
//! local `openssl ca` lives too). Around that exchange this module enforces
//! what an unattended daemon needs ([`process`]):
//!
//! - a clean environment: only `PATH` (fixed to [`DEFAULT_PATH`] unless the
//!   settings name one) and the configured variables, whose values are
//!   [`Secret`]s and are blanked out of every message that quotes the
//!   program;
//! - a timeout per operation, after which the program's whole process group
//!   is killed (and the program reaped), as it is when the caller gives up;
//! - stdout and stderr read up to [`CommandSettings::max_output`] bytes: a
//!   longer answer is refused and the program killed, a longer stderr cut.
//!
//! How outcomes map to [`ErrorClass`]: the program's own `error` object
//! carries its class; a program that exits non-zero without a valid answer
//! (it crashed, or a dependency was down) is transient and the message
//! quotes the end of its stderr; a timeout is transient; an answer that is
//! not protocol JSON, has the wrong version, or is too large is permanent
//! ("the program answered ..."), as is a program that cannot be started
//! for lack of the file or of permission.

pub mod process;
pub mod protocol;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::{
    Connector, ConnectorError, ErrorClass, IssueRequest, Issued, IssuedPage, RenewalWindow,
    RevokeRequest,
};

pub use crate::Secret;
pub use process::DEFAULT_PATH;
pub use protocol::{Operation, PROTOCOL_VERSION};

use process::{Finished, RunError};
use protocol::Answer;

/// How much of the program's stderr an error message quotes (its end).
const STDERR_QUOTE: usize = 600;
/// How much of an unreadable answer an error message quotes (its start).
const STDOUT_QUOTE: usize = 160;
/// How much of the program's own error message is kept.
const MESSAGE_QUOTE: usize = 1000;

/// Settings of a command connector (`[[connector]] type = "command"`).
#[derive(Debug, Clone)]
pub struct CommandSettings {
    /// The connector's configured name, used in errors and logs and sent to
    /// the program as `connector`.
    pub name: String,
    /// Absolute path of the program to run (no `PATH` search, no shell).
    pub program: PathBuf,
    /// Fixed arguments passed to the program on every run.
    pub args: Vec<String>,
    /// The program's whole environment besides `PATH`: name and value.
    /// Values are secrets (API tokens, key passphrases); none is ever
    /// logged or quoted in an error. Setting `PATH` here replaces
    /// [`DEFAULT_PATH`].
    pub env: Vec<(String, Secret)>,
    /// Directory the program runs in; the daemon's own when `None`.
    pub working_dir: Option<PathBuf>,
    /// How long one run (one operation) may take before the program and
    /// every process it started are killed.
    pub timeout: Duration,
    /// Most bytes read from the program's stdout (a longer answer is an
    /// error) and kept of its stderr (the rest is dropped).
    pub max_output: usize,
}

impl CommandSettings {
    /// Settings to run `program` with no arguments, no environment but
    /// [`DEFAULT_PATH`], two minutes per operation and 1 MiB of output.
    pub fn new(name: impl Into<String>, program: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            working_dir: None,
            timeout: Duration::from_secs(120),
            max_output: 1024 * 1024,
        }
    }

    /// Checks what can be checked without running the program.
    fn validate(&self) -> Result<(), String> {
        if !self.program.is_absolute() {
            return Err(format!(
                "program `{}` must be an absolute path",
                self.program.display()
            ));
        }
        if self.timeout.is_zero() {
            return Err("timeout must be longer than zero".into());
        }
        if self.max_output < 4096 {
            return Err("max_output must be at least 4096 bytes".into());
        }
        if self.args.iter().any(|a| a.contains('\0')) {
            return Err("an argument contains a NUL byte".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (name, value) in &self.env {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(format!("environment variable name `{name}` is not valid"));
            }
            if value.expose().contains('\0') {
                return Err(format!(
                    "the value of environment variable {name} contains a NUL byte"
                ));
            }
            if !seen.insert(name.as_str()) {
                return Err(format!("environment variable {name} is set twice"));
            }
        }
        Ok(())
    }
}

/// A connector that runs a program per operation; see the
/// [module documentation](self).
pub struct CommandConnector {
    settings: CommandSettings,
}

impl fmt::Debug for CommandConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandConnector")
            .field("name", &self.settings.name)
            .field("program", &self.settings.program)
            .finish_non_exhaustive()
    }
}

impl CommandConnector {
    /// A connector from `settings`, checked (a relative program path, a zero
    /// timeout or a malformed variable name is a permanent error). The
    /// program is not run until the first operation.
    pub fn new(settings: CommandSettings) -> Result<Self, ConnectorError> {
        settings
            .validate()
            .map_err(|message| ConnectorError::permanent(&settings.name, message))?;
        Ok(Self { settings })
    }

    /// The settings in use.
    pub fn settings(&self) -> &CommandSettings {
        &self.settings
    }

    fn error(&self, operation: Operation, message: &str, class: ErrorClass) -> ConnectorError {
        ConnectorError::new(
            &self.settings.name,
            format!("{}: {message}", operation.as_str()),
            class,
        )
    }

    /// `text` made fit for a message: secrets blanked, control characters
    /// and runs of blanks turned into one space, cut to `limit` characters
    /// (its start, or its end when `tail`).
    fn quote(&self, text: &[u8], limit: usize, tail: bool) -> String {
        let mut text = String::from_utf8_lossy(text).into_owned();
        for (_, value) in &self.settings.env {
            let value = value.expose();
            if value.chars().count() >= crate::SCRUB_MIN_CHARS {
                text = text.replace(value, "[redacted]");
            }
        }
        let words: Vec<&str> = text
            .split(|c: char| c.is_whitespace() || c.is_control())
            .filter(|w| !w.is_empty())
            .collect();
        let flat = words.join(" ");
        let count = flat.chars().count();
        if count <= limit {
            return flat;
        }
        if tail {
            let cut: String = flat.chars().skip(count - limit).collect();
            format!("…{cut}")
        } else {
            let cut: String = flat.chars().take(limit).collect();
            format!("{cut}…")
        }
    }

    /// Runs one operation and returns its answer's result fields, or the
    /// error to report.
    async fn call(&self, operation: Operation, request: Value) -> Result<Outcome, ConnectorError> {
        let mut input = serde_json::to_vec(&request).map_err(|e| {
            self.error(
                operation,
                &format!("cannot encode the request: {e}"),
                ErrorClass::Permanent,
            )
        })?;
        input.push(b'\n');
        tracing::debug!(
            connector = %self.settings.name, program = %self.settings.program.display(),
            operation = operation.as_str(), "running the command connector's program"
        );
        let finished = process::run(&self.settings, &input)
            .await
            .map_err(|e| self.run_error(operation, e))?;
        self.interpret(operation, finished)
    }

    fn run_error(&self, operation: Operation, error: RunError) -> ConnectorError {
        let class = match &error {
            RunError::Spawn(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                ErrorClass::Permanent
            }
            RunError::TooLarge(_) => ErrorClass::Permanent,
            _ => ErrorClass::Transient,
        };
        let message = match &error {
            RunError::Spawn(e) => format!(
                "cannot start the program {}: {e}",
                self.settings.program.display()
            ),
            other => other.to_string(),
        };
        self.error(operation, &message, class)
    }

    fn interpret(
        &self,
        operation: Operation,
        finished: Finished,
    ) -> Result<Outcome, ConnectorError> {
        let Finished {
            status,
            stdout,
            stderr,
        } = finished;
        if !stderr.is_empty() {
            tracing::debug!(
                connector = %self.settings.name, operation = operation.as_str(),
                stderr = %self.quote(&stderr, STDERR_QUOTE, true), "the program wrote to stderr"
            );
        }
        let answer = protocol::parse_answer(&stdout);
        if !status.success() {
            // Only an error answer is believed from a program that failed.
            if let Ok(Answer::Failed(failure)) = answer {
                return Err(self.failure(operation, failure));
            }
            let how = match status.code() {
                Some(code) => format!("exited with status {code}"),
                None => "was killed by a signal".to_owned(),
            };
            let stderr = self.quote(&stderr, STDERR_QUOTE, true);
            let message = if stderr.is_empty() {
                format!("the program {how} without an answer and wrote nothing to stderr")
            } else {
                format!("the program {how} without an answer; its stderr: {stderr}")
            };
            return Err(self.error(operation, &message, ErrorClass::Transient));
        }
        match answer {
            Ok(Answer::Success(value)) => Ok(Outcome::Done(value)),
            Ok(Answer::Unsupported) => Ok(Outcome::Unsupported),
            Ok(Answer::Failed(failure)) => Err(self.failure(operation, failure)),
            Err(what) => Err(self.malformed(operation, &what, &stdout)),
        }
    }

    fn malformed(&self, operation: Operation, what: &str, stdout: &[u8]) -> ConnectorError {
        let quoted = self.quote(stdout, STDOUT_QUOTE, false);
        let message = if quoted.is_empty() {
            format!("the program answered {what}")
        } else {
            format!("the program answered {what}: `{quoted}`")
        };
        self.error(operation, &message, ErrorClass::Permanent)
    }

    fn failure(&self, operation: Operation, failure: protocol::ProgramError) -> ConnectorError {
        let message = self.quote(failure.message.as_bytes(), MESSAGE_QUOTE, false);
        let mut error = self.error(operation, &message, failure.class);
        error.already_revoked = failure.already_revoked && operation == Operation::Revoke;
        if error.already_revoked {
            error.class = ErrorClass::Permanent;
        }
        error
    }

    /// Reads a success answer with `read`; an answer that does not fit is
    /// a permanent error.
    fn read<T>(
        &self,
        operation: Operation,
        value: Value,
        read: impl FnOnce(Value) -> Result<T, String>,
    ) -> Result<T, ConnectorError> {
        let quoted = serde_json::to_vec(&value).unwrap_or_default();
        read(value).map_err(|what| self.malformed(operation, &what, &quoted))
    }

    /// Runs an operation that must be supported and answers `"ok": true`.
    async fn call_ok(&self, operation: Operation, request: Value) -> Result<(), ConnectorError> {
        match self.call(operation, request).await? {
            Outcome::Done(value) => self.read(operation, value, protocol::ok),
            Outcome::Unsupported => Err(self.unsupported(operation)),
        }
    }

    fn unsupported(&self, operation: Operation) -> ConnectorError {
        self.error(
            operation,
            "the program does not support this operation",
            ErrorClass::Permanent,
        )
    }
}

/// A run that produced a valid answer other than an error.
enum Outcome {
    /// The result fields.
    Done(Value),
    /// `"unsupported": true`.
    Unsupported,
}

#[async_trait]
impl Connector for CommandConnector {
    fn name(&self) -> &str {
        &self.settings.name
    }

    async fn issue(&self, request: &IssueRequest) -> Result<Issued, ConnectorError> {
        let operation = Operation::Issue;
        let body = protocol::issue_request(&self.settings.name, request);
        match self.call(operation, body).await? {
            Outcome::Done(value) => self.read(operation, value, protocol::issued),
            Outcome::Unsupported => Err(self.unsupported(operation)),
        }
    }

    async fn recorded(&self, idempotency_key: &str) {
        let body = protocol::recorded_request(&self.settings.name, idempotency_key);
        match self.call(Operation::Recorded, body).await {
            Ok(Outcome::Done(_) | Outcome::Unsupported) => {}
            // The program keeps its record a little longer: harmless.
            Err(e) => tracing::warn!(
                connector = %self.settings.name, error = %e,
                "the program did not take note that an issuance was recorded"
            ),
        }
    }

    async fn revoke(&self, request: &RevokeRequest) -> Result<(), ConnectorError> {
        let body = protocol::revoke_request(&self.settings.name, request);
        self.call_ok(Operation::Revoke, body).await
    }

    async fn renewal_info(
        &self,
        certificate_der: &[u8],
    ) -> Result<Option<RenewalWindow>, ConnectorError> {
        let operation = Operation::RenewalInfo;
        let body = protocol::renewal_info_request(&self.settings.name, certificate_der);
        match self.call(operation, body).await? {
            Outcome::Done(value) => self.read(operation, value, protocol::renewal_window),
            Outcome::Unsupported => Ok(None),
        }
    }

    async fn list_issued(
        &self,
        cursor: Option<&str>,
    ) -> Result<Option<IssuedPage>, ConnectorError> {
        let operation = Operation::ListIssued;
        let body = protocol::list_request(&self.settings.name, cursor);
        match self.call(operation, body).await? {
            Outcome::Done(value) => self.read(operation, value, protocol::page).map(Some),
            Outcome::Unsupported => Ok(None),
        }
    }

    async fn health(&self) -> Result<(), ConnectorError> {
        let body = protocol::health_request(&self.settings.name);
        self.call_ok(Operation::Health, body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_before_anything_runs() {
        let bad = |change: fn(&mut CommandSettings)| {
            let mut settings = CommandSettings::new("ca", "/usr/bin/true");
            change(&mut settings);
            CommandConnector::new(settings).unwrap_err().message
        };
        assert!(bad(|s| s.program = "bin/ca".into()).contains("absolute"));
        assert!(bad(|s| s.timeout = Duration::ZERO).contains("timeout"));
        assert!(bad(|s| s.env = vec![("A=B".into(), Secret::new("x"))]).contains("A=B"));
        assert!(
            bad(|s| s.env = vec![
                ("A".into(), Secret::new("x")),
                ("A".into(), Secret::new("y"))
            ])
            .contains("twice")
        );
        CommandConnector::new(CommandSettings::new("ca", "/usr/bin/true")).unwrap();
    }

    #[test]
    fn quotes_blank_secrets_and_control_characters() {
        let mut settings = CommandSettings::new("ca", "/usr/bin/true");
        settings.env = vec![("TOKEN".into(), Secret::new("s3cr3t-value"))];
        let connector = CommandConnector::new(settings).unwrap();
        let quoted = connector.quote(b"bad token s3cr3t-value\n\x1b[31mred\t end", 100, false);
        assert_eq!(quoted, "bad token [redacted] [31mred end");
        assert_eq!(connector.quote(b"abcdef", 3, true), "…def");
        assert_eq!(connector.quote(b"abcdef", 3, false), "abc…");
    }
}
