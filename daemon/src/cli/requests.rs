//! `certkeeper request`, `requests`, `approve`, `reject` and `assign`:
//! enrollment through the running daemon, as the caller's token
//! (`CERTKEEPER_TOKEN`) or `api.token`.

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::{Value, json};

use super::output::{emit, timestamp};
use super::{Backend, Format};

/// `certkeeper request` arguments.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// DNS names and IP addresses (not with --csv).
    #[arg(required_unless_present = "csv", conflicts_with = "csv")]
    pub identifiers: Vec<String>,
    /// The connector (CA account) to issue through.
    #[arg(long, required_unless_present = "csv")]
    pub connector: Option<String>,
    /// The org unit it is for (default: your first unit).
    #[arg(long)]
    pub unit: Option<String>,
    /// Technical contact (default: you).
    #[arg(long)]
    pub contact: Option<String>,
    /// Key type (`ecdsa_p256`, `rsa2048`, ...).
    #[arg(long)]
    pub key_type: Option<String>,
    /// Requested validity in days.
    #[arg(long)]
    pub validity_days: Option<u32>,
    /// Enroll every row of this CSV file instead (header: identifiers,
    /// connector[,org_unit,contact,key_type,validity_days]).
    #[arg(long)]
    pub csv: Option<std::path::PathBuf>,
}

fn client(backend: &Backend) -> anyhow::Result<&super::ApiClient> {
    match backend {
        Backend::Api(c) => Ok(c),
        Backend::Local(..) => bail!(
            "this needs the running daemon (it decides requests and issues certificates); start it with `certkeeper run`"
        ),
    }
}

async fn send(
    backend: &Backend,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    let client = client(backend)?;
    let mut request = client.request(method, path);
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request.send().await?;
    let status = response.status();
    // A rejected request (422) is an answer, not a failure of the command.
    if status == reqwest::StatusCode::UNPROCESSABLE_ENTITY {
        let body: Value = response.json().await.unwrap_or_default();
        if body.get("state").is_some() {
            return Ok((status, body));
        }
        bail!(
            "the daemon answered {status}: {}",
            body["error"]["message"].as_str().unwrap_or_default()
        );
    }
    Ok((status, client.json(response).await?))
}

/// `certkeeper request`.
pub async fn request(args: RequestArgs, backend: &Backend) -> anyhow::Result<()> {
    if let Some(path) = &args.csv {
        let csv = std::fs::read(path)
            .with_context(|| format!("--csv: cannot read {}", path.display()))?;
        let client = client(backend)?;
        let response = client
            .request(reqwest::Method::POST, "/api/v1/requests/bulk")
            .header("Content-Type", "text/csv")
            .body(csv)
            .send()
            .await?;
        let body: Value = client.json(response).await?;
        for row in body["rows"].as_array().into_iter().flatten() {
            let what = row["state"]
                .as_str()
                .map(|s| format!("{s} {}", row["id"].as_str().unwrap_or_default()))
                .unwrap_or_else(|| format!("error: {}", row["error"].as_str().unwrap_or_default()));
            let why = row["reason"]
                .as_str()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            println!("line {}: {what}{why}", row["line"]);
        }
        println!("{}", body["counts"]);
        return Ok(());
    }
    let body = json!({
        "identifiers": args.identifiers,
        "connector": args.connector,
        "org_unit": args.unit,
        "contact": args.contact,
        "key_type": args.key_type,
        "validity_days": args.validity_days,
    });
    let (_, r) = send(
        backend,
        reqwest::Method::POST,
        "/api/v1/requests",
        Some(body),
    )
    .await?;
    let id = r["id"].as_str().unwrap_or_default();
    match r["state"].as_str() {
        Some("approved") => println!(
            "{id} approved by the domain policy; issuing as managed certificate {} (see `certkeeper managed`)",
            r["managed"].as_str().unwrap_or(id)
        ),
        Some("pending") => println!(
            "{id} pending approval: {}",
            r["reason"].as_str().unwrap_or_default()
        ),
        _ => bail!(
            "{id} rejected: {}",
            r["reason"].as_str().unwrap_or_default()
        ),
    }
    Ok(())
}

/// `certkeeper requests`.
pub async fn list(backend: &Backend, state: Option<String>, format: Format) -> anyhow::Result<()> {
    // Every request in scope, newest first, a page at a time.
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = url::form_urlencoded::Serializer::new(String::from("limit=500"));
        if let Some(s) = &state {
            query.append_pair("state", s);
        }
        if let Some(c) = &cursor {
            query.append_pair("cursor", c);
        }
        let path = format!("/api/v1/requests?{}", query.finish());
        let (_, body) = send(backend, reqwest::Method::GET, &path, None).await?;
        items.extend(body["items"].as_array().cloned().unwrap_or_default());
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|r| {
            vec![
                text(&r["id"]),
                text(&r["state"]),
                text(&r["org_unit"]),
                r["identifiers"]
                    .as_array()
                    .map(|a| a.iter().map(text).collect::<Vec<_>>().join(" "))
                    .unwrap_or_default(),
                text(&r["requester"]),
                text(&r["assignee"]),
                r["created"].as_i64().map(timestamp).unwrap_or_default(),
                text(&r["reason"]),
            ]
        })
        .collect();
    emit(
        format,
        &json!({ "items": items }),
        &[
            "id",
            "state",
            "org_unit",
            "identifiers",
            "requester",
            "assignee",
            "created",
            "reason",
        ],
        &rows,
    )
}

/// `certkeeper approve|reject|assign ID`.
pub async fn decide(backend: &Backend, action: &str, id: &str, body: Value) -> anyhow::Result<()> {
    let path = format!(
        "/api/v1/requests/{}/{action}",
        url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    );
    let (_, r) = send(backend, reqwest::Method::POST, &path, Some(body)).await?;
    println!(
        "{id}: {}{}",
        r["state"].as_str().unwrap_or_default(),
        r["managed"]
            .as_str()
            .map(|m| format!(", issuing as {m}"))
            .unwrap_or_default()
    );
    Ok(())
}
