//! `certkeeper admin`, `token` and `audit`: accounts, API tokens and the
//! audit log. Through the running daemon's API (as the caller's token), or
//! on the store of a stopped daemon (as `cli:$USER`, for the first admin and
//! for recovery).

use anyhow::{Context as _, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use super::output::{emit, timestamp};
use super::{Backend, Format};
use certkeeper_model::admin::audit_chain::{AuditEntry, to_cef, to_json_line};
use certkeeper_model::admin::{Role, password, token as tokens};
use certkeeper_store::Store;
use certkeeper_store::accounts::{ApiToken, OrgUnit, User};

/// `certkeeper admin` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an account (the first one: `--role primary_admin`).
    Create {
        /// Account name (e-mail address or login).
        name: String,
        /// primary_admin, department_admin, auditor or subscriber.
        #[arg(long)]
        role: String,
        /// Org unit (repeat for several).
        #[arg(long = "unit")]
        units: Vec<String>,
        /// Read a password (for the web portal) from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change an account's role, units or state.
    Set {
        /// Account name.
        name: String,
        /// New role.
        #[arg(long)]
        role: Option<String>,
        /// New org units (repeat; replaces the old ones).
        #[arg(long = "unit")]
        units: Vec<String>,
        /// Disable the account (its tokens stop working).
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        /// Enable it again.
        #[arg(long)]
        enable: bool,
    },
    /// List accounts.
    Users {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Create an org unit, or move one under another.
    Unit {
        /// Unit name.
        name: String,
        /// The unit it belongs to.
        #[arg(long)]
        parent: Option<String>,
    },
    /// List org units.
    Units {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Say how a contact (a person or alias certificates name, such as
    /// ssladmin@example.com) is reached and what it wants to hear about;
    /// replaces its entry. Needs the running daemon.
    Contact {
        /// The name, as certificates give it.
        name: String,
        /// Where its e-mail goes (default: the name, when it is an address).
        #[arg(long)]
        email: Option<String>,
        /// Its phone for text messages, E.164 (+4915112345678).
        #[arg(long)]
        phone: Option<String>,
        /// Only these event types (repeat; default: all).
        #[arg(long = "event")]
        events: Vec<String>,
        /// Only through these notifiers (repeat; default: the contact channels).
        #[arg(long = "channel")]
        channels: Vec<String>,
        /// Remove the entry instead.
        #[arg(long, conflicts_with_all = ["email", "phone", "events", "channels"])]
        remove: bool,
    },
    /// List contact entries.
    Contacts {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

/// `certkeeper token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token; it is printed once. Use it as
    /// `CERTKEEPER_TOKEN=... certkeeper ...` or `Authorization: Bearer ...`.
    Create {
        /// Whose token (default: the caller; others need a primary admin).
        #[arg(long)]
        user: Option<String>,
        /// What it is for.
        #[arg(long, default_value = "")]
        label: String,
        /// Days until it expires.
        #[arg(long, default_value_t = 90)]
        expires_days: u32,
    },
    /// List tokens (never their secrets).
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token's id (`ckt_<id>_...`, or as `token list` shows it).
        id: String,
    },
}

/// `certkeeper audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain: exit 0 when intact, 1 naming the first entry
    /// edited, deleted or out of place.
    Verify,
    /// Print the log for a SIEM.
    Export {
        /// `jsonl` (one JSON object per line) or `cef` (ArcSight CEF).
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Only entries after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
}

fn local_actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

async fn local_audit(
    store: &Store,
    action: &str,
    object: &str,
    after: Option<Value>,
) -> anyhow::Result<()> {
    store
        .append_audit(AuditEntry {
            source: Some("local".into()),
            after,
            ..AuditEntry::new(local_actor(), action, Some(object.to_owned()))
        })
        .await?;
    Ok(())
}

async fn call(
    backend: &Backend,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let Backend::Api(client) = backend else {
        bail!("internal: API call without a daemon");
    };
    let mut request = client.request(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    if response.status() == reqwest::StatusCode::NO_CONTENT {
        return Ok(Value::Null);
    }
    client.json(response).await
}

/// Runs an `admin` subcommand.
pub async fn admin(command: AdminCommand, backend: &Backend) -> anyhow::Result<()> {
    match command {
        AdminCommand::Create {
            name,
            role,
            units,
            password_stdin,
        } => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                Some(line.trim_end_matches(['\n', '\r']).to_owned())
            } else {
                None
            };
            match backend {
                Backend::Api(_) => {
                    call(
                        backend,
                        reqwest::Method::POST,
                        "/api/v1/users",
                        Some(json!({ "name": name, "role": role, "units": units, "password": password })),
                    )
                    .await?;
                }
                Backend::Local(store, _) => {
                    let role = Role::parse(&role).with_context(|| {
                        format!("--role: `{role}` is not one of primary_admin, department_admin, auditor, subscriber")
                    })?;
                    let known = store.org_units().await?;
                    for u in &units {
                        if !known.iter().any(|k| &k.name == u) {
                            bail!(
                                "--unit: no org unit `{u}` (create it with `certkeeper admin unit {u}`)"
                            );
                        }
                    }
                    if matches!(role, Role::DepartmentAdmin | Role::Subscriber) && units.is_empty()
                    {
                        bail!("--unit: a {role} needs at least one org unit");
                    }
                    let password_hash = match &password {
                        Some(p) => {
                            password::check_policy(p, &name).map_err(anyhow::Error::msg)?;
                            Some(password::hash_password(p)?)
                        }
                        None => None,
                    };
                    if store.user(&name).await?.is_some() {
                        bail!("user `{name}` exists");
                    }
                    let user = User {
                        name: name.to_lowercase(),
                        role,
                        units,
                        password_hash,
                        disabled: false,
                        created: chrono::Utc::now().timestamp(),
                        email: None,
                        phone: None,
                    };
                    store.create_user(&user).await?;
                    local_audit(store, "user_create", &user.name, Some(json!(user.public())))
                        .await?;
                }
            }
            println!(
                "created {name}; make it a token with `certkeeper token create --user {name}`"
            );
            Ok(())
        }
        AdminCommand::Set {
            name,
            role,
            units,
            disable,
            enable,
        } => {
            let Backend::Api(_) = backend else {
                bail!(
                    "this needs the running daemon (start it, then run this with a primary admin's token)"
                );
            };
            let mut body = serde_json::Map::new();
            if let Some(r) = role {
                body.insert("role".into(), json!(r));
            }
            if !units.is_empty() {
                body.insert("units".into(), json!(units));
            }
            if disable || enable {
                body.insert("disabled".into(), json!(disable));
            }
            let path = format!(
                "/api/v1/users/{}",
                url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
            );
            let user = call(
                backend,
                reqwest::Method::POST,
                &path,
                Some(Value::Object(body)),
            )
            .await?;
            println!(
                "{}: {} {}",
                user["name"].as_str().unwrap_or_default(),
                user["role"].as_str().unwrap_or_default(),
                user["units"]
            );
            Ok(())
        }
        AdminCommand::Users { format } => {
            let users: Vec<User> = match backend {
                Backend::Api(_) => serde_json::from_value(
                    call(backend, reqwest::Method::GET, "/api/v1/users", None).await?["items"]
                        .clone(),
                )?,
                Backend::Local(store, _) => store.users().await?.iter().map(User::public).collect(),
            };
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|u| {
                    vec![
                        u.name.clone(),
                        u.role.to_string(),
                        u.units.join(" "),
                        if u.disabled { "disabled" } else { "active" }.into(),
                        timestamp(u.created),
                    ]
                })
                .collect();
            emit(
                format,
                &json!({ "items": users }),
                &["name", "role", "units", "state", "created"],
                &rows,
            )
        }
        AdminCommand::Unit { name, parent } => {
            let unit = OrgUnit { name, parent };
            match backend {
                Backend::Api(_) => {
                    call(
                        backend,
                        reqwest::Method::POST,
                        "/api/v1/org-units",
                        Some(json!(unit)),
                    )
                    .await?;
                }
                Backend::Local(store, _) => {
                    let known = store.org_units().await?;
                    if let Some(p) = &unit.parent
                        && !known.iter().any(|k| &k.name == p)
                    {
                        bail!("--parent: no org unit `{p}`");
                    }
                    if let Some(p) = &unit.parent
                        && certkeeper_store::accounts::OrgUnit::descendants(
                            &known,
                            std::slice::from_ref(&unit.name),
                        )
                        .contains(p)
                    {
                        bail!(
                            "--parent: `{p}` is inside `{}`; that would make a loop",
                            unit.name
                        );
                    }
                    store.put_org_unit(&unit).await?;
                    local_audit(store, "org_unit_put", &unit.name, Some(json!(unit))).await?;
                }
            }
            println!("org unit {} saved", unit.name);
            Ok(())
        }
        AdminCommand::Contact {
            name,
            email,
            phone,
            events,
            channels,
            remove,
        } => {
            if !matches!(backend, Backend::Api(_)) {
                bail!(
                    "contacts are checked against the running daemon's notifiers: start it with `certkeeper run` or `systemctl start certkeeper`"
                );
            }
            if remove {
                let path = format!(
                    "/api/v1/contacts/{}",
                    url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
                );
                call(backend, reqwest::Method::DELETE, &path, None).await?;
                println!("contact {name} removed");
            } else {
                let body = json!({ "name": name, "email": email, "phone": phone, "events": events, "channels": channels });
                let saved = call(
                    backend,
                    reqwest::Method::POST,
                    "/api/v1/contacts",
                    Some(body),
                )
                .await?;
                println!("contact {} saved", saved["name"].as_str().unwrap_or(&name));
            }
            Ok(())
        }
        AdminCommand::Contacts { format } => {
            if !matches!(backend, Backend::Api(_)) {
                bail!("this needs the running daemon: start it with `certkeeper run`");
            }
            let listed = call(backend, reqwest::Method::GET, "/api/v1/contacts", None).await?;
            let items = listed["items"].as_array().cloned().unwrap_or_default();
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&listed)?),
                _ => {
                    for c in &items {
                        let list = |v: &Value| {
                            v.as_array()
                                .map(|a| {
                                    a.iter()
                                        .filter_map(Value::as_str)
                                        .collect::<Vec<_>>()
                                        .join(",")
                                })
                                .filter(|s| !s.is_empty())
                                .unwrap_or_else(|| "all".into())
                        };
                        println!(
                            "{}  email={}  phone={}  events={}  channels={}",
                            c["name"].as_str().unwrap_or_default(),
                            c["email"].as_str().unwrap_or("-"),
                            c["phone"].as_str().unwrap_or("-"),
                            list(&c["events"]),
                            list(&c["channels"])
                        );
                    }
                }
            }
            Ok(())
        }
        AdminCommand::Units { format } => {
            let units: Vec<OrgUnit> = match backend {
                Backend::Api(_) => serde_json::from_value(
                    call(backend, reqwest::Method::GET, "/api/v1/org-units", None).await?["items"]
                        .clone(),
                )?,
                Backend::Local(store, _) => store.org_units().await?,
            };
            let rows: Vec<Vec<String>> = units
                .iter()
                .map(|u| vec![u.name.clone(), u.parent.clone().unwrap_or_default()])
                .collect();
            emit(
                format,
                &json!({ "items": units }),
                &["name", "parent"],
                &rows,
            )
        }
    }
}

/// Runs a `token` subcommand.
pub async fn token(command: TokenCommand, backend: &Backend) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            user,
            label,
            expires_days,
        } => {
            let (id, plaintext) = match backend {
                Backend::Api(_) => {
                    let body = call(
                        backend,
                        reqwest::Method::POST,
                        "/api/v1/tokens",
                        Some(json!({ "user": user, "label": label, "expires_days": expires_days })),
                    )
                    .await?;
                    (
                        body["id"].as_str().unwrap_or_default().to_owned(),
                        body["token"].as_str().unwrap_or_default().to_owned(),
                    )
                }
                Backend::Local(store, _) => {
                    let user = user.context(
                        "--user: name the account (no daemon is running to say who you are)",
                    )?;
                    if store.user(&user).await?.is_none() {
                        bail!("--user: no account `{user}`");
                    }
                    if !(1..=3650).contains(&expires_days) {
                        bail!("--expires-days: expected 1 to 3650");
                    }
                    let new = tokens::generate()?;
                    let now = chrono::Utc::now().timestamp();
                    let record = ApiToken {
                        id: new.id.clone(),
                        user: user.to_lowercase(),
                        secret_hash: new.secret_hash.clone(),
                        label,
                        created: now,
                        expires: Some(now + i64::from(expires_days) * 86_400),
                        revoked: None,
                    };
                    store.create_token(&record).await?;
                    local_audit(
                        store,
                        "token_create",
                        &record.id,
                        Some(json!({ "user": record.user })),
                    )
                    .await?;
                    (new.id.clone(), new.plaintext.clone())
                }
            };
            eprintln!("token {id} (shown once; store it now):");
            println!("{plaintext}");
            Ok(())
        }
        TokenCommand::List { format } => {
            let items: Vec<ApiToken> = match backend {
                Backend::Api(_) => serde_json::from_value(
                    call(backend, reqwest::Method::GET, "/api/v1/tokens", None).await?["items"]
                        .clone(),
                )?,
                Backend::Local(store, _) => store.tokens(None).await?,
            };
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.user.clone(),
                        t.label.clone(),
                        timestamp(t.created),
                        t.expires.map(timestamp).unwrap_or_default(),
                        t.revoked.map(timestamp).unwrap_or_default(),
                    ]
                })
                .collect();
            emit(
                format,
                &json!({ "items": items }),
                &["id", "user", "label", "created", "expires", "revoked"],
                &rows,
            )
        }
        TokenCommand::Revoke { id } => {
            let id = tokens::parse(&id).map(|(i, _)| i.to_owned()).unwrap_or(id);
            match backend {
                Backend::Api(_) => {
                    let path = format!(
                        "/api/v1/tokens/{}",
                        url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
                    );
                    call(backend, reqwest::Method::DELETE, &path, None).await?;
                }
                Backend::Local(store, _) => {
                    if !store
                        .revoke_token(&id, chrono::Utc::now().timestamp())
                        .await?
                    {
                        bail!("no unrevoked token `{id}`");
                    }
                    local_audit(store, "token_revoke", &id, None).await?;
                }
            }
            println!("token {id} revoked");
            Ok(())
        }
    }
}

async fn entries(backend: &Backend, after: u64) -> anyhow::Result<Vec<AuditEntry>> {
    match backend {
        Backend::Api(_) => {
            let body = call(
                backend,
                reqwest::Method::GET,
                &format!("/api/v1/audit?after={after}&limit=1000"),
                None,
            )
            .await?;
            Ok(serde_json::from_value(body["items"].clone())?)
        }
        Backend::Local(store, _) => Ok(store.audit_page(after, 1000).await?),
    }
}

/// Runs an `audit` subcommand.
pub async fn audit(command: AuditCommand, backend: &Backend) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify => {
            let report = match backend {
                Backend::Api(_) => {
                    call(backend, reqwest::Method::GET, "/api/v1/audit/verify", None).await?
                }
                Backend::Local(store, _) => serde_json::to_value(store.verify_audit().await?)?,
            };
            if report["intact"] == true {
                println!(
                    "audit log intact: {} entries, hash chain verified",
                    report["entries"]
                );
                Ok(())
            } else {
                bail!(
                    "audit log broken at entry {}: {}",
                    report["seq"],
                    report["reason"].as_str().unwrap_or("unknown")
                )
            }
        }
        AuditCommand::Export { format, after } => {
            if format != "jsonl" && format != "cef" {
                bail!("--format: `{format}` is not jsonl or cef");
            }
            let version = env!("CARGO_PKG_VERSION");
            let mut after = after;
            loop {
                let page = entries(backend, after).await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for e in &page {
                    if format == "cef" {
                        println!("{}", to_cef(e, version));
                    } else {
                        println!("{}", to_json_line(e));
                    }
                }
                if page.len() < 1000 {
                    break;
                }
            }
            Ok(())
        }
    }
}
