//! `certkeeper alerts`: the alert ledger, acknowledgement and the delivery
//! log. Through the running daemon's API, or the store of a stopped one.

use anyhow::bail;
use clap::Subcommand;
use serde_json::{Value, json};

use super::output::{emit, timestamp};
use super::{Backend, Format};
use certkeeper_store::alerts::{AckOutcome, AlertRow, DeliveryFilter, DeliveryRow};

/// `certkeeper alerts` subcommands.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// The alert ledger, newest first.
    List {
        /// Only `open`, `acknowledged` or `resolved` alerts.
        #[arg(long)]
        state: Option<String>,
        /// Most rows.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Acknowledge an alert (and the looser-threshold alerts of the same
    /// certificate): it stops escalating.
    Ack {
        /// The alert's id, as `alerts list` shows it.
        id: String,
        /// Who acknowledges it.
        #[arg(long)]
        by: Option<String>,
    },
    /// The delivery log: every message, its attempts and the channel's answer.
    Deliveries {
        /// Only `pending`, `delivered` or `failed` deliveries.
        #[arg(long)]
        state: Option<String>,
        /// Only this event id.
        #[arg(long)]
        event: Option<String>,
        /// Only this channel (notifier name).
        #[arg(long)]
        channel: Option<String>,
        /// Most rows.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    q.finish()
}

/// Runs an `alerts` subcommand.
pub async fn answer(command: AlertsCommand, backend: &Backend) -> anyhow::Result<()> {
    match command {
        AlertsCommand::List {
            state,
            limit,
            format,
        } => {
            // Newest first, page after page until `limit` rows.
            let mut items: Vec<AlertRow> = Vec::new();
            let mut cursor: Option<String> = None;
            while items.len() < limit {
                let want = (limit - items.len()).min(1000);
                let (rows, next): (Vec<AlertRow>, Option<String>) = match backend {
                    Backend::Api(client) => {
                        let path = format!(
                            "/api/v1/alerts?{}",
                            query(&[
                                ("state", state.clone()),
                                ("limit", Some(want.to_string())),
                                ("cursor", cursor.clone()),
                            ])
                        );
                        let response = client.request(reqwest::Method::GET, &path).send().await?;
                        let body: Value = client.json(response).await?;
                        (
                            serde_json::from_value(body["items"].clone())?,
                            body["next_cursor"].as_str().map(str::to_owned),
                        )
                    }
                    Backend::Local(store, _) => {
                        let page = store
                            .list_alerts(state.as_deref(), want, cursor.as_deref())
                            .await?;
                        (page.items, page.next_cursor)
                    }
                };
                items.extend(rows);
                match next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|a| {
                    vec![
                        a.id.clone(),
                        a.state.clone(),
                        if a.threshold == 0 {
                            "expired".into()
                        } else {
                            format!("{}d", a.threshold)
                        },
                        a.subject.clone(),
                        timestamp(a.not_after),
                        timestamp(a.raised_at),
                        a.acked_by.clone().unwrap_or_default(),
                        a.escalated_at.map(timestamp).unwrap_or_default(),
                        if a.folded { "yes" } else { "" }.into(),
                    ]
                })
                .collect();
            emit(
                format,
                &json!({ "items": items }),
                &[
                    "id",
                    "state",
                    "threshold",
                    "subject",
                    "expires",
                    "raised",
                    "acked_by",
                    "escalated",
                    "folded",
                ],
                &rows,
            )
        }
        AlertsCommand::Ack { id, by } => {
            let by = by.unwrap_or_else(|| {
                std::env::var("USER")
                    .map(|u| format!("cli:{u}"))
                    .unwrap_or_else(|_| "cli".into())
            });
            let outcome: AckOutcome = match backend {
                Backend::Api(client) => {
                    let path = format!(
                        "/api/v1/alerts/{}/ack",
                        url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
                    );
                    let response = client
                        .request(reqwest::Method::POST, &path)
                        .json(&json!({ "by": by }))
                        .send()
                        .await?;
                    if response.status() == reqwest::StatusCode::NOT_FOUND {
                        AckOutcome::Missing
                    } else {
                        AckOutcome::Acknowledged(client.json(response).await?)
                    }
                }
                Backend::Local(store, _) => {
                    store
                        .ack_alert(&id, &by, chrono::Utc::now().timestamp())
                        .await?
                }
            };
            match outcome {
                AckOutcome::Acknowledged(a) => {
                    println!(
                        "{} acknowledged by {}",
                        a.id,
                        a.acked_by.unwrap_or_default()
                    );
                    Ok(())
                }
                AckOutcome::NotOpen(a) => {
                    bail!("{} is {}, not open: nothing to acknowledge", a.id, a.state)
                }
                AckOutcome::Missing => bail!("no alert `{id}` (see `certkeeper alerts list`)"),
            }
        }
        AlertsCommand::Deliveries {
            state,
            event,
            channel,
            limit,
            format,
        } => {
            let items: Vec<DeliveryRow> = match backend {
                Backend::Api(client) => {
                    let path = format!(
                        "/api/v1/deliveries?{}",
                        query(&[
                            ("state", state),
                            ("event", event),
                            ("channel", channel),
                            ("limit", Some(limit.to_string())),
                        ])
                    );
                    let response = client.request(reqwest::Method::GET, &path).send().await?;
                    let body: Value = client.json(response).await?;
                    serde_json::from_value(body["items"].clone())?
                }
                Backend::Local(store, _) => {
                    store
                        .list_deliveries(&DeliveryFilter {
                            state,
                            event,
                            channel,
                            limit,
                        })
                        .await?
                }
            };
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|d| {
                    let last = d.log.last();
                    vec![
                        d.event.clone(),
                        d.channel.clone(),
                        d.state.clone(),
                        d.attempts.to_string(),
                        last.map(|l| timestamp(l.at)).unwrap_or_default(),
                        last.and_then(|l| l.detail.clone())
                            .unwrap_or_else(|| last.map(|l| l.outcome.clone()).unwrap_or_default()),
                    ]
                })
                .collect();
            emit(
                format,
                &json!({ "items": items }),
                &[
                    "event",
                    "channel",
                    "state",
                    "attempts",
                    "last_attempt",
                    "last_answer",
                ],
                &rows,
            )
        }
    }
}
