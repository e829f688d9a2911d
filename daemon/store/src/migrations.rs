//! The store's schema, as numbered migrations applied in order at start.
//!
//! Each migration runs once, in a transaction together with the row in
//! `migration` that records it, so a crash mid-migration leaves nothing half
//! applied. Definitions use `IF NOT EXISTS`, so two daemons starting at once on
//! one remote store cannot trip over each other. Add a schema change by
//! appending to [`MIGRATIONS`]; never edit one that has shipped.

use super::{Store, StoreError};

/// `(version, description, SurrealQL)`, applied in order.
pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (1, "inventory, sightings, jobs", V1),
    (2, "installation-check findings", V2),
    (3, "managed certificates, connector state, event outbox", V3),
    (4, "alert ledger and delivery outbox", V4),
    (
        5,
        "accounts, org units, tokens, requests, domains, audit log",
        V5,
    ),
    (
        6,
        "inventory sorted by subject and issuer; ledger order",
        V6,
    ),
    (
        7,
        "retired certificates; which source saw a sighting; contacts; the store key check",
        V7,
    ),
    (
        8,
        "leases with fencing epochs; keys of audit entries appended once",
        V8,
    ),
    (9, "alert ledger state (first pass done)", V9),
    (10, "discovery shards; CA import positions", V10),
    (
        11,
        "Certificate Transparency: ct sightings, log positions, certificates by serial",
        V11,
    ),
];

const V1: &str = r#"
DEFINE TABLE IF NOT EXISTS certificate SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS fingerprint ON certificate TYPE string;
DEFINE FIELD IF NOT EXISTS subject ON certificate TYPE string;
DEFINE FIELD IF NOT EXISTS subject_cn ON certificate TYPE option<string>;
DEFINE FIELD IF NOT EXISTS issuer ON certificate TYPE string;
DEFINE FIELD IF NOT EXISTS issuer_cn ON certificate TYPE option<string>;
DEFINE FIELD IF NOT EXISTS serial ON certificate TYPE string;
DEFINE FIELD IF NOT EXISTS not_before ON certificate TYPE int;
DEFINE FIELD IF NOT EXISTS not_after ON certificate TYPE int;
DEFINE FIELD IF NOT EXISTS san_dns ON certificate TYPE array<string>;
DEFINE FIELD IF NOT EXISTS san_ip ON certificate TYPE array<string>;
DEFINE FIELD IF NOT EXISTS san_email ON certificate TYPE array<string>;
DEFINE FIELD IF NOT EXISTS san_uri ON certificate TYPE array<string>;
DEFINE FIELD IF NOT EXISTS key_algorithm ON certificate TYPE string;
DEFINE FIELD IF NOT EXISTS key_bits ON certificate TYPE int;
DEFINE FIELD IF NOT EXISTS key_curve ON certificate TYPE option<string>;
DEFINE FIELD IF NOT EXISTS signature_algorithm ON certificate TYPE string;
DEFINE FIELD IF NOT EXISTS key_usage ON certificate TYPE array<string>;
DEFINE FIELD IF NOT EXISTS extended_key_usage ON certificate TYPE array<string>;
DEFINE FIELD IF NOT EXISTS is_ca ON certificate TYPE bool;
DEFINE FIELD IF NOT EXISTS self_signed ON certificate TYPE bool;
DEFINE FIELD IF NOT EXISTS certificate_policies ON certificate TYPE array<string>;
DEFINE FIELD IF NOT EXISTS usage ON certificate TYPE string
    ASSERT $value IN ['server', 'client', 'code_signing', 'ca', 'other'];
DEFINE FIELD IF NOT EXISTS validation_level ON certificate TYPE option<string>;
DEFINE FIELD IF NOT EXISTS pem ON certificate TYPE string;
DEFINE FIELD IF NOT EXISTS status ON certificate TYPE string
    ASSERT $value IN ['requested', 'pending', 'approved', 'rejected', 'valid', 'expiring', 'expired', 'revoked', 'deactivated'];
DEFINE FIELD IF NOT EXISTS org_unit ON certificate TYPE option<string>;
DEFINE FIELD IF NOT EXISTS contacts ON certificate TYPE array<string>;
DEFINE FIELD IF NOT EXISTS tags ON certificate TYPE array<string>;
DEFINE FIELD IF NOT EXISTS replaces ON certificate TYPE option<string>;
DEFINE FIELD IF NOT EXISTS replaced_by ON certificate TYPE option<string>;
DEFINE FIELD IF NOT EXISTS first_seen ON certificate TYPE int;
DEFINE FIELD IF NOT EXISTS last_seen ON certificate TYPE int;
DEFINE FIELD IF NOT EXISTS search ON certificate TYPE string;
-- Lists are ordered by (not_after, fingerprint); each index ends with that
-- order so the planner streams pages straight off the index with the LIMIT
-- pushed down, instead of sorting every match.
DEFINE INDEX IF NOT EXISTS certificate_expiry ON certificate FIELDS not_after, fingerprint;
DEFINE INDEX IF NOT EXISTS certificate_status_expiry ON certificate FIELDS status, not_after, fingerprint;
DEFINE INDEX IF NOT EXISTS certificate_org_unit_expiry ON certificate FIELDS org_unit, not_after, fingerprint;

DEFINE TABLE IF NOT EXISTS sighting SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS fingerprint ON sighting TYPE string;
DEFINE FIELD IF NOT EXISTS kind ON sighting TYPE string
    ASSERT $value IN ['endpoint', 'file', 'connector', 'import'];
DEFINE FIELD IF NOT EXISTS location ON sighting TYPE string;
DEFINE FIELD IF NOT EXISTS first_seen ON sighting TYPE int;
DEFINE FIELD IF NOT EXISTS last_seen ON sighting TYPE int;
DEFINE INDEX IF NOT EXISTS sighting_fingerprint ON sighting FIELDS fingerprint;

DEFINE TABLE IF NOT EXISTS status_count SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS n ON status_count TYPE int;

DEFINE TABLE IF NOT EXISTS job SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS name ON job TYPE string;
DEFINE FIELD IF NOT EXISTS schedule ON job TYPE string;
DEFINE FIELD IF NOT EXISTS next_due ON job TYPE int;
DEFINE FIELD IF NOT EXISTS runs ON job TYPE int;
DEFINE FIELD IF NOT EXISTS failures ON job TYPE int;
DEFINE FIELD IF NOT EXISTS last_status ON job TYPE option<string>;
DEFINE FIELD IF NOT EXISTS last_error ON job TYPE option<string>;
DEFINE FIELD IF NOT EXISTS last_finished ON job TYPE option<int>;

DEFINE TABLE IF NOT EXISTS job_run SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS job ON job_run TYPE string;
DEFINE FIELD IF NOT EXISTS due ON job_run TYPE int;
DEFINE FIELD IF NOT EXISTS state ON job_run TYPE string
    ASSERT $value IN ['running', 'succeeded', 'failed'];
DEFINE FIELD IF NOT EXISTS lease_holder ON job_run TYPE string;
DEFINE FIELD IF NOT EXISTS lease_expires ON job_run TYPE int;
DEFINE FIELD IF NOT EXISTS attempts ON job_run TYPE int;
DEFINE FIELD IF NOT EXISTS started ON job_run TYPE int;
DEFINE FIELD IF NOT EXISTS finished ON job_run TYPE option<int>;
DEFINE FIELD IF NOT EXISTS error ON job_run TYPE option<string>;
DEFINE INDEX IF NOT EXISTS job_run_state ON job_run FIELDS state, lease_expires;
DEFINE INDEX IF NOT EXISTS job_run_job ON job_run FIELDS job, due;

DEFINE TABLE IF NOT EXISTS migration SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS version ON migration TYPE int;
DEFINE FIELD IF NOT EXISTS description ON migration TYPE string;
DEFINE FIELD IF NOT EXISTS applied_at ON migration TYPE int;
"#;

const V2: &str = r#"
DEFINE TABLE IF NOT EXISTS finding SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS fingerprint ON finding TYPE string;
DEFINE FIELD IF NOT EXISTS location ON finding TYPE string;
DEFINE FIELD IF NOT EXISTS code ON finding TYPE string;
DEFINE FIELD IF NOT EXISTS days ON finding TYPE option<int>;
DEFINE FIELD IF NOT EXISTS detail ON finding TYPE option<string>;
DEFINE FIELD IF NOT EXISTS first_seen ON finding TYPE int;
DEFINE FIELD IF NOT EXISTS last_seen ON finding TYPE int;
DEFINE INDEX IF NOT EXISTS finding_fingerprint ON finding FIELDS fingerprint;
DEFINE INDEX IF NOT EXISTS finding_location ON finding FIELDS location;
DEFINE INDEX IF NOT EXISTS finding_code ON finding FIELDS code, fingerprint;
DEFINE INDEX IF NOT EXISTS sighting_kind ON sighting FIELDS kind;
"#;

const V3: &str = r#"
DEFINE TABLE IF NOT EXISTS managed SCHEMALESS;
DEFINE TABLE IF NOT EXISTS managed_spec SCHEMALESS;
DEFINE TABLE IF NOT EXISTS connector_state SCHEMALESS;
DEFINE TABLE IF NOT EXISTS event SCHEMALESS;
DEFINE INDEX IF NOT EXISTS event_time ON event FIELDS time;
"#;

const V4: &str = r#"
DEFINE TABLE IF NOT EXISTS alert SCHEMALESS;
DEFINE INDEX IF NOT EXISTS alert_fingerprint ON alert FIELDS fingerprint;
DEFINE INDEX IF NOT EXISTS alert_state ON alert FIELDS state, raised_at;
DEFINE TABLE IF NOT EXISTS delivery SCHEMALESS;
DEFINE INDEX IF NOT EXISTS delivery_due ON delivery FIELDS state, next_attempt;
DEFINE INDEX IF NOT EXISTS delivery_event ON delivery FIELDS event;
DEFINE INDEX IF NOT EXISTS delivery_created ON delivery FIELDS created;
DEFINE INDEX IF NOT EXISTS event_routed ON event FIELDS routed, time;
UPDATE event SET routed = true WHERE routed = NONE RETURN NONE;
"#;

const V5: &str = r#"
DEFINE TABLE IF NOT EXISTS org_unit SCHEMALESS;
DEFINE TABLE IF NOT EXISTS user SCHEMALESS;
DEFINE TABLE IF NOT EXISTS api_token SCHEMALESS;
DEFINE INDEX IF NOT EXISTS api_token_user ON api_token FIELDS user;
DEFINE TABLE IF NOT EXISTS request SCHEMALESS;
DEFINE INDEX IF NOT EXISTS request_unit ON request FIELDS org_unit, created;
DEFINE INDEX IF NOT EXISTS request_state ON request FIELDS state, created;
DEFINE TABLE IF NOT EXISTS domain_rule SCHEMALESS;
DEFINE TABLE IF NOT EXISTS audit SCHEMALESS;
DEFINE INDEX IF NOT EXISTS audit_seq ON audit FIELDS seq UNIQUE;
DEFINE INDEX IF NOT EXISTS audit_actor ON audit FIELDS actor, seq;
DEFINE TABLE IF NOT EXISTS audit_head SCHEMALESS;
DEFINE INDEX IF NOT EXISTS certificate_contacts ON certificate FIELDS contacts;
DEFINE TABLE IF NOT EXISTS units SCHEMALESS;
DEFINE TABLE IF NOT EXISTS session SCHEMALESS;
DEFINE TABLE IF NOT EXISTS unit_use SCHEMALESS;
"#;

const V6: &str = r#"
DEFINE INDEX IF NOT EXISTS certificate_subject ON certificate FIELDS subject, fingerprint;
DEFINE INDEX IF NOT EXISTS certificate_issuer ON certificate FIELDS issuer, fingerprint;
DEFINE INDEX IF NOT EXISTS alert_raised ON alert FIELDS raised_at;
DEFINE INDEX IF NOT EXISTS request_created ON request FIELDS created;
"#;

const V7: &str = r#"
DEFINE FIELD IF NOT EXISTS source ON sighting TYPE option<string>;
DEFINE INDEX IF NOT EXISTS sighting_location ON sighting FIELDS location;
DEFINE FIELD IF NOT EXISTS deactivated ON certificate TYPE option<object>;
DEFINE FIELD IF NOT EXISTS deactivated.at ON certificate TYPE int;
DEFINE FIELD IF NOT EXISTS deactivated.by ON certificate TYPE string;
DEFINE FIELD IF NOT EXISTS deactivated.reason ON certificate TYPE option<string>;
DEFINE TABLE IF NOT EXISTS contact SCHEMALESS;
DEFINE TABLE IF NOT EXISTS vault_check SCHEMALESS;
"#;

const V8: &str = r#"
DEFINE TABLE IF NOT EXISTS lease SCHEMALESS;
DEFINE TABLE IF NOT EXISTS audit_key SCHEMALESS;
"#;

const V9: &str = r#"
DEFINE TABLE IF NOT EXISTS ledger_state SCHEMALESS;
"#;

const V10: &str = r#"
DEFINE TABLE IF NOT EXISTS discovery_shard SCHEMALESS;
DEFINE INDEX IF NOT EXISTS discovery_shard_pending ON discovery_shard FIELDS done, due, part;
DEFINE INDEX IF NOT EXISTS discovery_shard_run ON discovery_shard FIELDS job, due, part;
DEFINE TABLE IF NOT EXISTS ca_import SCHEMALESS;
"#;

const V11: &str = r#"
DEFINE FIELD OVERWRITE kind ON sighting TYPE string
    ASSERT $value IN ['endpoint', 'file', 'connector', 'import', 'ct'];
DEFINE TABLE IF NOT EXISTS ct_log SCHEMALESS;
DEFINE INDEX IF NOT EXISTS certificate_serial ON certificate FIELDS serial, issuer;
"#;

/// Applies every migration the store has not recorded; returns how many ran.
pub async fn apply(store: &Store) -> Result<usize, StoreError> {
    let applied = applied_versions(store).await?;
    let mut ran = 0;
    for (version, description, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        let statement = format!(
            "BEGIN TRANSACTION;\n{sql}\nUPSERT type::record('migration', $version) CONTENT {{ version: $version, description: $description, applied_at: time::unix(time::now()) }};\nCOMMIT TRANSACTION;"
        );
        super::with_conflict_retry(|| {
            store.run(
                &statement,
                serde_json::json!({ "version": version, "description": description }),
            )
        })
        .await?;
        tracing::info!(version, description, "applied store migration");
        ran += 1;
    }
    Ok(ran)
}

/// Versions recorded in the `migration` table.
pub async fn applied_versions(store: &Store) -> Result<Vec<u32>, StoreError> {
    // The table does not exist before the first migration; SurrealDB answers
    // an empty result for a missing table in a schemaless read.
    let rows: Vec<u32> = match store
        .rows(
            "SELECT VALUE version FROM migration",
            serde_json::json!({}),
            0,
        )
        .await
    {
        Ok(rows) => rows,
        Err(StoreError::Db(e)) if e.to_string().to_lowercase().contains("does not exist") => {
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn migrations_are_idempotent() {
        let store = Store::memory().await.unwrap();
        let latest: Vec<u32> = MIGRATIONS.iter().map(|m| m.0).collect();
        assert_eq!(applied_versions(&store).await.unwrap(), latest);
        assert_eq!(apply(&store).await.unwrap(), 0, "nothing left to apply");
        assert_eq!(applied_versions(&store).await.unwrap(), latest);
    }
}
