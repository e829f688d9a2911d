//! Chrome's CT log list, version 3 (`log_list.json`, schema
//! `log_list_schema.json` of the Chrome CT policy): `operators[].logs[]`
//! are RFC 6962 logs (`url`), `operators[].tiled_logs[]` static-ct-api logs
//! (`submission_url`, `monitoring_url`; the checkpoint origin is the
//! submission URL without its scheme and trailing slash). Each log has a
//! `description`, a base64 `log_id` (SHA-256 of the key, checked here), a
//! base64 DER `key`, an `mmd` in seconds and a `state` whose one key names
//! it; `retired` and `rejected` logs are skipped.

use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use super::client::{Client, ClientOptions};
use super::{CtError, LogKind, LogSpec};

#[derive(Deserialize)]
struct List {
    operators: Vec<Operator>,
}

#[derive(Deserialize)]
struct Operator {
    #[serde(default)]
    logs: Vec<ListedLog>,
    #[serde(default)]
    tiled_logs: Vec<ListedLog>,
}

#[derive(Deserialize)]
struct ListedLog {
    description: String,
    log_id: String,
    key: String,
    url: Option<String>,
    monitoring_url: Option<String>,
    submission_url: Option<String>,
    mmd: Option<u64>,
    state: Option<serde_json::Map<String, serde_json::Value>>,
}

const LIST: &str = "log list";

/// Reads a v3 log list: the logs to follow.
pub fn parse_log_list(json: &[u8]) -> Result<Vec<LogSpec>, CtError> {
    let list: List = serde_json::from_slice(json).map_err(|e| CtError::Malformed {
        log: LIST.to_owned(),
        what: "log list",
        reason: e.to_string(),
    })?;
    let mut specs = Vec::new();
    for operator in list.operators {
        let logs = operator.logs.into_iter().map(|l| (false, l));
        let tiled = operator.tiled_logs.into_iter().map(|l| (true, l));
        for (is_tiled, log) in logs.chain(tiled) {
            let state = log
                .state
                .as_ref()
                .and_then(|s| s.keys().next().cloned())
                .unwrap_or_default();
            if state == "retired" || state == "rejected" {
                continue;
            }
            let config = |reason: &str| CtError::Config {
                log: log.description.clone(),
                reason: reason.to_owned(),
            };
            let kind = if is_tiled {
                let monitoring_url = log
                    .monitoring_url
                    .clone()
                    .ok_or_else(|| config("a tiled log has no monitoring_url"))?;
                let submission = log
                    .submission_url
                    .clone()
                    .ok_or_else(|| config("a tiled log has no submission_url"))?;
                let origin = submission
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_owned();
                LogKind::Tiled {
                    monitoring_url,
                    origin,
                }
            } else {
                LogKind::Rfc6962 {
                    url: log
                        .url
                        .clone()
                        .ok_or_else(|| config("the log has no url"))?,
                }
            };
            let mut spec = LogSpec::new(&log.description, kind, &log.key)?;
            let listed_id = base64::engine::general_purpose::STANDARD
                .decode(&log.log_id)
                .map_err(|_| config("log_id is not base64"))?;
            if listed_id != spec.id {
                return Err(config("log_id is not the SHA-256 of the key"));
            }
            spec.mmd = log.mmd.map(Duration::from_secs);
            specs.push(spec);
        }
    }
    Ok(specs)
}

/// Fetches and reads a v3 log list.
pub async fn fetch_log_list(url: &str, options: &ClientOptions) -> Result<Vec<LogSpec>, CtError> {
    let body = Client::new(options.clone())
        .get(url)
        .await
        .map_err(|source| CtError::Http {
            log: LIST.to_owned(),
            source,
        })?;
    parse_log_list(&body)
}
