//! How the CLI prints results: aligned tables for people, JSON and RFC 4180
//! CSV for scripts.

use super::Format;
use certkeeper_model::inventory::CertificateRecord;
use certkeeper_store::ct::CtLogState;
use certkeeper_store::findings::CertificateDetail;
use certkeeper_store::jobs::{JobRun, JobState};
use certkeeper_store::shards::Shard;

pub(super) fn timestamp(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string())
}

pub(super) use crate::reports::csv_field;

fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

fn print_csv(header: &[&str], rows: &[Vec<String>]) {
    println!("{}", header.join(","));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| csv_field(c)).collect();
        println!("{}", cells.join(","));
    }
}

pub(super) fn print_certificates(
    items: &[CertificateRecord],
    format: Format,
    next: Option<&str>,
) -> anyhow::Result<()> {
    match format {
        Format::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({ "items": items, "next_cursor": next })
                )?
            );
            return Ok(());
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|c| {
                    vec![
                        c.cert.fingerprint[..16].to_string(),
                        c.status.to_string(),
                        timestamp(c.cert.not_after),
                        c.cert
                            .subject_cn
                            .clone()
                            .unwrap_or_else(|| c.cert.subject.clone()),
                        c.cert
                            .issuer_cn
                            .clone()
                            .unwrap_or_else(|| c.cert.issuer.clone()),
                    ]
                })
                .collect();
            print_table(
                &["FINGERPRINT", "STATUS", "NOT AFTER", "SUBJECT", "ISSUER"],
                &rows,
            );
        }
        Format::Csv => {
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|c| {
                    vec![
                        c.cert.fingerprint.clone(),
                        c.status.to_string(),
                        timestamp(c.cert.not_before),
                        timestamp(c.cert.not_after),
                        c.cert.subject.clone(),
                        c.cert.issuer.clone(),
                        c.cert.serial.clone(),
                        c.cert.san_dns.join(" "),
                        c.cert.key_algorithm.clone(),
                        c.cert.key_bits.to_string(),
                        c.org_unit.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            print_csv(
                &[
                    "fingerprint",
                    "status",
                    "not_before",
                    "not_after",
                    "subject",
                    "issuer",
                    "serial",
                    "dns_names",
                    "key_algorithm",
                    "key_bits",
                    "org_unit",
                ],
                &rows,
            );
        }
    }
    if let Some(next) = next {
        eprintln!("more certificates: --cursor {next} (or --all)");
    }
    Ok(())
}

pub(super) fn print_certificate(detail: &CertificateDetail, format: Format) -> anyhow::Result<()> {
    let (cert, sightings) = (&detail.certificate, &detail.sightings);
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(detail)?),
        Format::Csv => {
            let rows: Vec<Vec<String>> = sightings
                .iter()
                .map(|s| {
                    vec![
                        s.fingerprint.clone(),
                        s.kind.as_str().to_string(),
                        s.location.clone(),
                        timestamp(s.first_seen),
                        timestamp(s.last_seen),
                    ]
                })
                .collect();
            print_csv(
                &["fingerprint", "kind", "location", "first_seen", "last_seen"],
                &rows,
            );
        }
        Format::Table => {
            let c = &cert.cert;
            let field = |k: &str, v: String| println!("{k:<20} {v}");
            field("Fingerprint", c.fingerprint.clone());
            field("Status", cert.status.to_string());
            field("Subject", c.subject.clone());
            field("Issuer", c.issuer.clone());
            field("Serial", c.serial.clone());
            field("Not before", timestamp(c.not_before));
            field("Not after", timestamp(c.not_after));
            let mut sans: Vec<String> = c.san_dns.iter().map(|s| format!("DNS:{s}")).collect();
            sans.extend(c.san_ip.iter().map(|s| format!("IP:{s}")));
            sans.extend(c.san_email.iter().map(|s| format!("email:{s}")));
            sans.extend(c.san_uri.iter().map(|s| format!("URI:{s}")));
            field("Names", sans.join(", "));
            let curve = c
                .key_curve
                .as_deref()
                .map(|k| format!(" ({k})"))
                .unwrap_or_default();
            field(
                "Key",
                format!("{} {} bits{curve}", c.key_algorithm, c.key_bits),
            );
            field("Signature", c.signature_algorithm.clone());
            field("Key usage", c.key_usage.join(", "));
            field("Extended key usage", c.extended_key_usage.join(", "));
            field("CA", c.is_ca.to_string());
            field("Self-signed", c.self_signed.to_string());
            let name = |v: serde_json::Value| v.as_str().unwrap_or("-").to_string();
            field("Type", name(serde_json::to_value(cert.usage)?));
            field(
                "Validation",
                name(serde_json::to_value(cert.validation_level)?),
            );
            field(
                "Org unit",
                cert.org_unit.clone().unwrap_or_else(|| "-".into()),
            );
            field("Contacts", cert.contacts.join(", "));
            println!("\nSeen at:");
            let rows: Vec<Vec<String>> = sightings
                .iter()
                .map(|s| {
                    vec![
                        s.kind.as_str().to_string(),
                        s.location.clone(),
                        timestamp(s.first_seen),
                        timestamp(s.last_seen),
                    ]
                })
                .collect();
            print_table(&["KIND", "LOCATION", "FIRST SEEN", "LAST SEEN"], &rows);
            if !detail.findings.is_empty() {
                println!("\nFindings:");
                let rows: Vec<Vec<String>> = detail
                    .findings
                    .iter()
                    .map(|f| {
                        vec![
                            serde_json::to_value(f.code)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_string))
                                .unwrap_or_default(),
                            f.location.clone(),
                            f.detail.clone().unwrap_or_default(),
                            timestamp(f.last_seen),
                        ]
                    })
                    .collect();
                print_table(&["CODE", "LOCATION", "DETAIL", "LAST SEEN"], &rows);
            }
        }
    }
    Ok(())
}

/// Prints `rows` under `columns` (snake_case; the table shows them in capitals),
/// or `json` as JSON.
pub(super) fn emit(
    format: Format,
    json: &impl serde::Serialize,
    columns: &[&str],
    rows: &[Vec<String>],
) -> anyhow::Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(json)?),
        Format::Csv => print_csv(columns, rows),
        Format::Table => {
            let header: Vec<String> = columns
                .iter()
                .map(|c| c.replace('_', " ").to_uppercase())
                .collect();
            let header: Vec<&str> = header.iter().map(String::as_str).collect();
            print_table(&header, rows);
        }
    }
    Ok(())
}

pub(super) fn print_where(details: &[CertificateDetail], format: Format) -> anyhow::Result<()> {
    let rows: Vec<Vec<String>> = details
        .iter()
        .flat_map(|d| {
            let c = &d.certificate.cert;
            d.sightings.iter().map(move |s| {
                vec![
                    c.fingerprint[..16].to_string(),
                    c.subject_cn.clone().unwrap_or_else(|| c.subject.clone()),
                    timestamp(c.not_after),
                    s.kind.as_str().to_string(),
                    s.location.clone(),
                    timestamp(s.last_seen),
                ]
            })
        })
        .collect();
    let columns = [
        "fingerprint",
        "subject",
        "not_after",
        "kind",
        "location",
        "last_seen",
    ];
    emit(format, &details, &columns, &rows)
}

pub(super) fn print_jobs(jobs: &[JobState], format: Format) -> anyhow::Result<()> {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                j.name.clone(),
                j.schedule.clone(),
                timestamp(j.next_due),
                j.runs.to_string(),
                j.failures.to_string(),
                j.last_status.clone().unwrap_or_else(|| "-".into()),
                j.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let columns = [
        "name",
        "schedule",
        "next_run",
        "runs",
        "failures",
        "last_status",
        "last_error",
    ];
    emit(format, &jobs, &columns, &rows)
}

pub(super) fn print_job_runs(runs: &[JobRun], format: Format) -> anyhow::Result<()> {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.job.clone(),
                timestamp(r.due),
                r.state.clone(),
                r.attempts.to_string(),
                r.lease_holder.clone(),
                r.finished.map(timestamp).unwrap_or_else(|| "-".into()),
                r.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let columns = [
        "job", "due", "state", "attempts", "holder", "finished", "error",
    ];
    emit(format, &runs, &columns, &rows)
}

pub(super) fn print_ct_logs(logs: &[CtLogState], format: Format) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp();
    let rows: Vec<Vec<String>> = logs
        .iter()
        .map(|log| {
            vec![
                log.log.clone(),
                log.tree_size.to_string(),
                log.next_index.to_string(),
                log.lag().to_string(),
                log.read_at
                    .map(|at| format!("{}s ago", (now - at).max(0)))
                    .unwrap_or_else(|| "never".into()),
                log.entries.to_string(),
                log.matches.to_string(),
                match (&log.error, log.misbehaved) {
                    (Some(e), true) => format!("MISBEHAVED: {e}"),
                    (Some(e), false) => e.clone(),
                    (None, _) => String::new(),
                },
            ]
        })
        .collect();
    let columns = [
        "log",
        "tree_size",
        "next",
        "lag",
        "read",
        "entries",
        "matches",
        "error",
    ];
    let views: Vec<serde_json::Value> = logs.iter().map(CtLogState::view).collect();
    emit(format, &views, &columns, &rows)
}

pub(super) fn print_job_shards(shards: &[Shard], format: Format) -> anyhow::Result<()> {
    let rows: Vec<Vec<String>> = shards
        .iter()
        .map(|s| {
            let targets = match s.plan.targets.as_slice() {
                [] => "-".to_owned(),
                [one] => one.clone(),
                [first, .., last] => format!("{first} … {last} ({})", s.plan.targets.len()),
            };
            vec![
                s.index.to_string(),
                targets,
                if s.done { "done" } else { "pending" }.to_owned(),
                s.attempts.to_string(),
                s.finished_by.clone().unwrap_or_else(|| "-".into()),
                s.tally.places.to_string(),
                s.tally.added.to_string(),
                s.tally.errors.to_string(),
                s.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let columns = [
        "part",
        "targets",
        "state",
        "attempts",
        "by",
        "places",
        "added",
        "unreadable",
        "error",
    ];
    emit(format, &shards, &columns, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_per_rfc4180() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("CN=a, O=b"), "\"CN=a, O=b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn csv_cells_that_would_be_formulas_are_text() {
        assert_eq!(csv_field("=1+2"), "'=1+2");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("+cmd|' /C calc'!A0"), "'+cmd|' /C calc'!A0");
        assert_eq!(csv_field("-2+3"), "'-2+3");
        assert_eq!(
            csv_field("=HYPERLINK(\"http://x.test\",\"y\")"),
            "\"'=HYPERLINK(\"\"http://x.test\"\",\"\"y\"\")\""
        );
        assert_eq!(csv_field("\t=1"), "'\t=1");
        // Numbers stay numbers; an `=` inside a value is harmless.
        assert_eq!(csv_field("-3"), "-3");
        assert_eq!(csv_field("+5"), "+5");
        assert_eq!(csv_field("CN=a"), "CN=a");
    }
}
