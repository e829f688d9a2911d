//! `[[connector]] type = "command"`: any other CA, through a program that
//! speaks the JSON protocol of `contrib/command-connector/README.md`. The
//! program's environment is only what is configured here (values are
//! secrets, inline or read from files) plus `PATH`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::vendors::default_max_orders;
use certkeeper_base::Secret;
use certkeeper_connectors::command::CommandSettings;

/// `[[connector]] type = "command"`: a program answers the CA's part, with
/// the JSON protocol of `contrib/command-connector/README.md`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConnectorConfig {
    /// Unique name of the connector.
    pub name: String,
    /// Absolute path of the program (run without a shell).
    pub program: PathBuf,
    /// Fixed arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// The program's environment besides `PATH`, name to value; values are
    /// secrets (never logged).
    #[serde(default)]
    pub env: BTreeMap<String, Secret>,
    /// Environment variables read from files, name to file (a token in a
    /// systemd credential).
    #[serde(default)]
    pub env_files: BTreeMap<String, PathBuf>,
    /// Directory the program runs in. Default: the daemon's.
    pub working_dir: Option<PathBuf>,
    /// Longest run of one operation before the program (and every process
    /// it started) is killed. Default 120.
    #[serde(default = "default_command_timeout")]
    pub timeout_seconds: u64,
    /// Most bytes of the program's answer (a longer one is an error).
    /// Default 1048576.
    #[serde(default = "default_max_output")]
    pub max_output_bytes: usize,
    /// Most issuances at once. Default 16.
    #[serde(default = "default_max_orders")]
    pub max_concurrent_orders: usize,
    /// The CA's issuer domain names in DNS CAA records, for the CAA report.
    #[serde(default)]
    pub caa_identities: Vec<String>,
}

fn default_command_timeout() -> u64 {
    120
}

fn default_max_output() -> usize {
    1024 * 1024
}

impl CommandConnectorConfig {
    /// The connector crate's settings.
    pub fn settings(&self) -> Result<CommandSettings, String> {
        let mut settings = CommandSettings::new(&self.name, &self.program);
        settings.args = self.args.clone();
        settings.env = self
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        settings.working_dir = self.working_dir.clone();
        settings.timeout = Duration::from_secs(self.timeout_seconds);
        settings.max_output = self.max_output_bytes;
        Ok(settings)
    }

    pub(super) fn check(
        &mut self,
        path: &Path,
        key: &dyn Fn(&str) -> String,
    ) -> Result<(), ConfigError> {
        for (name, file) in &self.env_files {
            if self.env.contains_key(name) {
                return Err(ConfigError::new(
                    path,
                    Some(key("env_files")),
                    format!("`{name}` is in env and env_files; give it once"),
                ));
            }
            let value = Secret::from_file(file).map_err(|e| {
                ConfigError::new(
                    path,
                    Some(key("env_files")),
                    format!("{name}: cannot read {}: {e}", file.display()),
                )
            })?;
            self.env.insert(name.clone(), value);
        }
        self.env_files.clear();
        if self.timeout_seconds == 0 || self.max_output_bytes == 0 {
            return Err(ConfigError::new(
                path,
                Some(key("timeout_seconds")),
                "timeout_seconds and max_output_bytes must be above 0",
            ));
        }
        let settings = self
            .settings()
            .map_err(|e| ConfigError::new(path, Some(key("program")), e))?;
        certkeeper_connectors::command::CommandConnector::new(settings)
            .map(drop)
            .map_err(|e| ConfigError::new(path, Some(key("program")), e.message))
    }
}
