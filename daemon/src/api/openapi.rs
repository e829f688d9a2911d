//! `/api/v1/openapi.json`: the OpenAPI 3.1 description of the API.
//!
//! Written by hand next to the routes it describes; a test checks that every
//! route of `routes::table` is listed here with its method (and nothing
//! else is), so the two cannot drift apart. What follows from the table is
//! added by [`annotate`] rather than written out: each operation's `x-roles`
//! and the 401/403/429 answers of the authorization middleware.

use axum::Json;
use serde_json::{Value, json};

use certkeeper_model::admin::{Permission, Role, allows};

pub(super) async fn handler() -> Json<Value> {
    Json(document())
}

fn error_response(description: &str) -> Value {
    json!({ "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

/// Adds `from`'s members to the object `into`.
fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

/// Adds to every operation of the route table what the table says about it:
/// `x-roles` (the roles whose permission check passes; scope is checked per
/// object), and the middleware's 401, 429 and (when some role lacks the
/// permission) 403, unless the entry describes them itself.
fn annotate(doc: &mut Value) {
    for spec in super::routes::specs() {
        if spec.permission == Permission::Public {
            continue;
        }
        let method = spec.method.as_str().to_ascii_lowercase();
        let Some(operation) = doc["paths"]
            .get_mut(spec.path)
            .and_then(|item| item.get_mut(method.as_str()))
        else {
            continue;
        };
        let roles: Vec<&str> = Role::ALL
            .into_iter()
            .filter(|r| allows(*r, spec.permission))
            .map(Role::as_str)
            .collect();
        let some_refused = roles.len() < Role::ALL.len();
        operation["x-roles"] = json!(roles);
        let mut answers = vec![
            (
                "401",
                "no token (one is needed once api.token is set or an account exists), or an unknown, expired or revoked one",
            ),
            (
                "429",
                "too many failed sign-ins from this address or with this token id; see Retry-After",
            ),
        ];
        if some_refused {
            answers.push(("403", "the caller's role may not do this (see x-roles)"));
        }
        for (status, description) in answers {
            let responses = &mut operation["responses"];
            if responses.get(status).is_none() {
                responses[status] = error_response(description);
            }
        }
    }
    // What every operation taking a body answers before its handler runs:
    // axum's extractor and `limits::bounded_text`.
    for item in doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|p| p.values_mut())
    {
        for operation in item
            .as_object_mut()
            .into_iter()
            .flat_map(|o| o.values_mut())
        {
            let Some(content) = operation["requestBody"]["content"].as_object() else {
                continue;
            };
            let json_body = content.contains_key("application/json");
            let mut answers = vec![("413", "the body is larger than the API accepts (16 MiB)")];
            if json_body {
                answers.extend([
                    ("400", "the body is not valid JSON, or a string in it is longer than 4096 characters or nested deeper than 32 levels"),
                    ("415", "the body is not sent as Content-Type: application/json"),
                    ("422", "the body is JSON of another shape (unknown or missing field, wrong type); the message names the field"),
                ]);
            } else {
                answers.push((
                    "400",
                    "the body cannot be read as what this operation takes",
                ));
            }
            for (status, description) in answers {
                let responses = &mut operation["responses"];
                if responses.get(status).is_none() {
                    responses[status] = error_response(description);
                }
            }
        }
    }
}

/// The OpenAPI document.
pub fn document() -> Value {
    let mut doc = base_document();
    merge(&mut doc["components"]["schemas"], admin_schemas());
    merge(&mut doc["paths"], admin_paths());
    annotate(&mut doc);
    doc
}

/// Health, inventory, jobs, lifecycle and alerts (the administration routes
/// are in [`admin_paths`], which keeps this literal within the macro's
/// recursion limit).
fn base_document() -> Value {
    let statuses = json!([
        "requested",
        "pending",
        "approved",
        "rejected",
        "valid",
        "expiring",
        "expired",
        "revoked",
        "deactivated"
    ]);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Certkeeper API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Inventory of every TLS and code-signing certificate: list, filter, inspect, import; jobs; issuance, renewal and revocation; alerts; accounts, org units, enrollment requests with approval, and the audit log; health and metrics. Every route but /healthz, /readyz, /crl/{connector} and this document needs `Authorization: Bearer <token>` (see the bearer scheme) once api.token is set or an account exists. Each operation's x-roles lists the roles (primary_admin, department_admin, auditor, subscriber) allowed to call it. Scoped routes answer within the caller's scope: a department admin's org units and every unit below them; for a subscriber, the certificates in its units that list it as a contact and the requests it made. An object outside the scope answers 404, as if it did not exist."
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer",
                "description": "Either the config's api.token (acts as a primary admin named api-token; the CLI on the daemon's machine sends it), or a user's API token `ckt_<id>_<secret>` from `certkeeper token create` or POST /api/v1/tokens (acts as that user, with its role and org units; refused once revoked or expired, or while the user is disabled). Without a token, a call is allowed only while api.token is unset and no account exists, as a primary admin named anonymous; the first account closes the API. Repeated failures from one address (or with one token id) answer 429 with Retry-After until the lockout passes." } },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": {
                    "type": "object", "required": ["code", "message"],
                    "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } } },
                "Status": { "type": "string", "enum": statuses },
                "Certificate": { "type": "object", "properties": {
                    "fingerprint": { "type": "string", "description": "SHA-256 of the DER, lowercase hex" },
                    "subject": { "type": "string" }, "subject_cn": { "type": ["string", "null"] },
                    "issuer": { "type": "string" }, "issuer_cn": { "type": ["string", "null"] },
                    "serial": { "type": "string" },
                    "not_before": { "type": "integer", "description": "Unix seconds" },
                    "not_after": { "type": "integer", "description": "Unix seconds" },
                    "san_dns": { "type": "array", "items": { "type": "string" } },
                    "san_ip": { "type": "array", "items": { "type": "string" } },
                    "san_email": { "type": "array", "items": { "type": "string" } },
                    "san_uri": { "type": "array", "items": { "type": "string" } },
                    "key_algorithm": { "type": "string" }, "key_bits": { "type": "integer" },
                    "key_curve": { "type": ["string", "null"] },
                    "signature_algorithm": { "type": "string" },
                    "key_usage": { "type": "array", "items": { "type": "string" } },
                    "extended_key_usage": { "type": "array", "items": { "type": "string" } },
                    "is_ca": { "type": "boolean" }, "self_signed": { "type": "boolean" },
                    "pem": { "type": "string" },
                    "status": { "$ref": "#/components/schemas/Status" },
                    "org_unit": { "type": ["string", "null"] },
                    "contacts": { "type": "array", "items": { "type": "string" } },
                    "tags": { "type": "array", "items": { "type": "string" } },
                    "replaces": { "type": ["string", "null"] }, "replaced_by": { "type": ["string", "null"] },
                    "first_seen": { "type": "integer" }, "last_seen": { "type": "integer" } } },
                "Sighting": { "type": "object", "properties": {
                    "fingerprint": { "type": "string" },
                    "kind": { "type": "string", "enum": ["endpoint", "file", "connector", "import", "ct"] },
                    "location": { "type": "string" },
                    "first_seen": { "type": "integer" }, "last_seen": { "type": "integer" } } },
                "Job": { "type": "object", "properties": {
                    "name": { "type": "string" }, "schedule": { "type": "string" },
                    "next_due": { "type": "integer" }, "runs": { "type": "integer" },
                    "failures": { "type": "integer" }, "last_status": { "type": ["string", "null"] },
                    "last_error": { "type": ["string", "null"] }, "last_finished": { "type": ["integer", "null"] } } }
            }
        },
        "paths": {
            "/healthz": { "get": { "summary": "Liveness", "responses": { "200": { "description": "alive" } } } },
            "/readyz": { "get": { "summary": "Readiness: the store answers",
                "responses": { "200": { "description": "ready" }, "503": { "description": "store unavailable" } } } },
            "/metrics": { "get": { "summary": "Prometheus metrics. Primary admin, auditor", "security": [{ "bearer": [] }],
                "responses": { "200": { "description": "text exposition format 0.0.4",
                    "content": { "text/plain": {} } } } } },
            "/api/v1/openapi.json": { "get": { "summary": "This document", "responses": { "200": { "description": "OpenAPI 3.1" } } } },
            "/api/v1/certificates": { "get": {
                "summary": "List certificates, soonest to expire first. Any role, scoped",
                "security": [{ "bearer": [] }],
                "parameters": [
                    { "name": "status", "in": "query", "schema": { "$ref": "#/components/schemas/Status" } },
                    { "name": "expiring_within", "in": "query", "description": "e.g. 30d, 12h: certificates in force that expire within this time",
                      "schema": { "type": "string", "pattern": "^[0-9]+[smhdw]?$" } },
                    { "name": "issuer", "in": "query", "description": "case-insensitive substring of the issuer DN", "schema": { "type": "string" } },
                    { "name": "org_unit", "in": "query", "schema": { "type": "string" } },
                    { "name": "q", "in": "query", "description": "text search over names, issuer, serial, fingerprint", "schema": { "type": "string" } },
                    { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "default": 100 } },
                    { "name": "cursor", "in": "query", "description": "next_cursor of the previous page", "schema": { "type": "string" } },
                    { "name": "sort", "in": "query", "description": "expiry (the default), subject or issuer (DN, then fingerprint); keep it across the pages of a walk", "schema": { "type": "string", "enum": ["expiry", "subject", "issuer"] } },
                    { "name": "order", "in": "query", "description": "asc (soonest expiry or A to Z first, the default) or desc; keep it across the pages of a walk", "schema": { "type": "string", "enum": ["asc", "desc"] } }
                ],
                "responses": {
                    "200": { "description": "a page", "content": { "application/json": { "schema": {
                        "type": "object", "properties": {
                            "items": { "type": "array", "items": { "$ref": "#/components/schemas/Certificate" } },
                            "next_cursor": { "type": ["string", "null"] } } } } } },
                    "400": error_response("bad parameter"),
                    "401": error_response("missing or wrong token")
                } } },
            "/api/v1/certificates/{fingerprint}": { "get": {
                "summary": "One certificate and where it was seen. Any role, scoped",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "fingerprint", "in": "path", "required": true,
                    "schema": { "type": "string", "pattern": "^[0-9a-fA-F:]+$" } }],
                "responses": {
                    "200": { "description": "found", "content": { "application/json": { "schema": {
                        "type": "object", "properties": {
                            "certificate": { "$ref": "#/components/schemas/Certificate" },
                            "sightings": { "type": "array", "items": { "$ref": "#/components/schemas/Sighting" } } } } } } },
                    "400": error_response("not a fingerprint"),
                    "404": error_response("unknown fingerprint, or outside the caller's scope")
                } } },
            "/api/v1/counts": { "get": { "summary": "Certificates by status. Any role, scoped", "security": [{ "bearer": [] }],
                "responses": { "200": { "description": "status → count", "content": { "application/json": { "schema": {
                    "type": "object", "additionalProperties": { "type": "integer" } } } } } } } },
            "/api/v1/expiries": { "get": { "summary": "How many certificates in force expire in each of the next weeks (the dashboard's timeline). Any role, scoped", "security": [{ "bearer": [] }],
                "parameters": [{ "name": "weeks", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 104, "default": 13 } }],
                "responses": { "200": { "description": "one item per week from now", "content": { "application/json": { "schema": {
                    "type": "object", "properties": { "items": { "type": "array", "items": { "type": "object", "properties": {
                        "week": { "type": "integer" }, "start": { "type": "string", "format": "date" }, "count": { "type": "integer" } } } } } } } } },
                    "400": error_response("weeks out of range, or an unknown parameter") } } },
            "/api/v1/import": { "post": {
                "summary": "Import PEM (any number of certificates) or DER; imported certificates have no org unit until assigned. Primary admin, department admin",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "location", "in": "query", "description": "label recorded as the sighting's location", "schema": { "type": "string" } }],
                "requestBody": { "required": true, "content": { "application/octet-stream": {}, "application/x-pem-file": {} } },
                "responses": {
                    "200": { "description": "imported", "content": { "application/json": { "schema": {
                        "type": "object", "properties": {
                            "added": { "type": "array", "items": { "type": "string" } },
                            "known": { "type": "array", "items": { "type": "string" } } } } } } },
                    "422": error_response("no certificate in the body, or a malformed one")
                } } },
            "/api/v1/jobs/{name}/runs": { "get": { "summary": "The 50 latest runs of a job, newest first. Primary admin, auditor",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": { "200": { "description": "runs", "content": { "application/json": { "schema": {
                    "type": "array", "items": { "type": "object", "properties": {
                        "job": { "type": "string" }, "due": { "type": "integer" },
                        "state": { "type": "string", "enum": ["running", "succeeded", "failed"] },
                        "lease_holder": { "type": "string" }, "lease_expires": { "type": "integer" },
                        "attempts": { "type": "integer" }, "started": { "type": "integer" },
                        "finished": { "type": ["integer", "null"] }, "error": { "type": ["string", "null"] } } } } } } } } } },
            "/api/v1/ct/logs": { "get": { "summary": "Certificate Transparency monitoring: each followed log's verified tree size, next entry, lag, when it was last read, entries and matches read, and its last error (misbehaved: a fork, a bad signature, entries that do not hash to the tree). Primary admin, auditor",
                "security": [{ "bearer": [] }],
                "responses": { "200": { "description": "logs", "content": { "application/json": { "schema": {
                    "type": "array", "items": { "type": "object", "properties": {
                        "log": { "type": "string" }, "tree_size": { "type": "integer" },
                        "next_index": { "type": "integer" }, "lag": { "type": "integer" },
                        "head_timestamp": { "type": ["integer", "null"] },
                        "read_at": { "type": ["integer", "null"] },
                        "entries": { "type": "integer" }, "matches": { "type": "integer" },
                        "error": { "type": ["string", "null"] },
                        "error_at": { "type": ["integer", "null"] },
                        "misbehaved": { "type": "boolean" } } } } } } } } } },
            "/api/v1/jobs/{name}/shards": { "get": { "summary": "The shards of a network discovery job's latest run (kept until its next run), in plan order: what each scans, who finished it, what it found. Primary admin, auditor",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": { "200": { "description": "shards", "content": { "application/json": { "schema": {
                    "type": "array", "items": { "type": "object", "properties": {
                        "job": { "type": "string" }, "due": { "type": "integer" }, "part": { "type": "integer" },
                        "plan": { "type": "object", "properties": {
                            "targets": { "type": "array", "items": { "type": "string" } },
                            "resolves": { "type": "array", "items": { "type": "string" } } } },
                        "done": { "type": "boolean" }, "holder": { "type": ["string", "null"] },
                        "finished_by": { "type": ["string", "null"] },
                        "attempts": { "type": "integer" },
                        "tally": { "type": "object", "properties": {
                            "places": { "type": "integer" }, "added": { "type": "integer" }, "errors": { "type": "integer" } } },
                        "error": { "type": ["string", "null"] } } } } } } } } } },
            "/api/v1/jobs/{name}/run": { "post": { "summary": "Run a job now (it is claimed through the usual lease). Primary admin",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": { "202": { "description": "due now" }, "404": error_response("no such job") } } },
            "/api/v1/findings": { "get": { "summary": "Installation-check findings, newest first. Any role, scoped",
                "security": [{ "bearer": [] }],
                "parameters": [
                    { "name": "code", "in": "query", "schema": { "type": "string", "enum": ["expired", "not_yet_valid", "expiring", "weak_key", "weak_signature", "self_signed", "incomplete_chain", "untrusted", "hostname_mismatch", "unapproved_issuer", "legacy_protocol", "validity_too_long", "unprotected", "wildcard", "chain_order", "revoked", "issued_not_deployed", "unmanaged_account", "shadow_issuance", "unknown_issuance"] } },
                    { "name": "fingerprint", "in": "query", "schema": { "type": "string" } },
                    { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "default": 100 } }
                ],
                "responses": { "200": { "description": "findings", "content": { "application/json": { "schema": {
                    "type": "array", "items": { "type": "object", "properties": {
                        "fingerprint": { "type": "string" }, "location": { "type": "string" },
                        "code": { "type": "string" }, "days": { "type": ["integer", "null"] },
                        "detail": { "type": ["string", "null"] },
                        "first_seen": { "type": "integer" }, "last_seen": { "type": "integer" } } } } } } },
                    "400": error_response("bad parameter") } } },
            "/api/v1/jobs": { "get": { "summary": "Scheduled jobs and their last runs. Primary admin, auditor", "security": [{ "bearer": [] }],
                "responses": { "200": { "description": "jobs", "content": { "application/json": { "schema": {
                    "type": "array", "items": { "$ref": "#/components/schemas/Job" } } } } } } } },
            "/api/v1/managed": { "get": { "summary": "Managed certificates: what is in service, when it renews, the operation in progress. Any role, scoped", "security": [{ "bearer": [] }],
                "parameters": [
                    { "name": "name", "in": "query", "description": "only the managed certificate of this name", "schema": { "type": "string" } },
                    { "name": "fingerprint", "in": "query", "description": "only the managed certificate holding this certificate, now or before", "schema": { "type": "string" } }],
                "responses": { "200": { "description": "managed certificates", "content": { "application/json": { "schema": {
                    "type": "object", "properties": { "items": { "type": "array", "items": { "type": "object", "properties": {
                        "name": { "type": "string" },
                        "state": { "type": "string", "enum": ["pending", "issuing", "renewing", "replacing", "valid", "failing"] },
                        "fingerprint": { "type": ["string", "null"] }, "not_after": { "type": ["integer", "null"] },
                        "generation": { "type": "integer" }, "renew_at": { "type": ["integer", "null"] },
                        "window": { "type": ["array", "null"], "items": { "type": "integer" } },
                        "operation": { "type": ["object", "null"], "properties": {
                            "kind": { "type": "string", "enum": ["issue", "renew", "replace"] },
                            "step": { "type": "string", "enum": ["ordering", "issued", "deployed", "revoked"] },
                            "reason": { "type": ["string", "null"] }, "new_fingerprint": { "type": ["string", "null"] },
                            "started": { "type": "integer" } } },
                        "attempts": { "type": "integer" }, "next_attempt": { "type": ["integer", "null"] },
                        "last_error": { "type": ["string", "null"] },
                        "previous": { "type": "array", "items": { "type": "string" } } } } } } } } } },
                    "400": error_response("an unknown parameter"), "503": error_response("renewal worker not running") } },
                "post": { "summary": "Create a managed certificate: a [[certificate]] table as JSON, without deploy targets (those stay in the config file); issued at once. Primary admin (others enroll through POST /api/v1/requests)",
                    "security": [{ "bearer": [] }],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object",
                        "required": ["name", "identifiers", "connector"], "properties": {
                            "name": { "type": "string" }, "identifiers": { "type": "array", "items": { "type": "string" } },
                            "connector": { "type": "string" }, "key_type": { "type": "string" }, "rotate_key": { "type": "boolean" },
                            "usage": { "type": "string", "enum": ["server", "client", "code_signing"] },
                            "validity_days": { "type": "integer" }, "validity_seconds": { "type": "integer" },
                            "profile": { "type": "string" }, "renew_before_days": { "type": "integer" },
                            "org_unit": { "type": "string" }, "contacts": { "type": "array", "items": { "type": "string" } } } } } } },
                    "responses": { "201": { "description": "created" }, "409": error_response("name taken"),
                        "422": error_response("invalid certificate") } } },
            "/api/v1/managed/adopt": { "post": { "summary": "Adopt a certificate of the inventory (found by discovery or CA import) as a managed certificate renewing through a connector; nothing is issued now. Answers the config block that deploys it where it was seen. Primary admin",
                "security": [{ "bearer": [] }],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object",
                    "required": ["fingerprint", "connector"], "additionalProperties": false, "properties": {
                        "fingerprint": { "type": "string" }, "connector": { "type": "string" }, "name": { "type": "string" } } } } } },
                "responses": { "201": { "description": "adopted", "content": { "application/json": { "schema": { "type": "object", "properties": {
                        "managed": { "type": "string" }, "renew_at": { "type": "integer" },
                        "endpoints": { "type": "array", "items": { "type": "string" } },
                        "files": { "type": "array", "items": { "type": "string" } },
                        "config": { "type": "string" } } } } } },
                    "400": error_response("a missing or unknown field"), "404": error_response("no such certificate"),
                    "409": error_response("name taken"), "422": error_response("cannot be adopted (a CA, expired, revoked, unknown connector)"),
                    "502": error_response("the store failed"), "503": error_response("renewal worker not running") } } },
            "/api/v1/managed/{name}": { "delete": { "summary": "Stop managing a certificate created through the API (its certificates stay in the inventory). Primary admin",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": { "204": { "description": "removed" }, "404": error_response("no such managed certificate"),
                    "409": error_response("defined in the config file") } } },
            "/api/v1/events": { "get": { "summary": "The newest lifecycle events (issued, renewed, renewal failed, deployment failed, revoked, requests, discovery findings), newest first. Any role, scoped",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } }],
                "responses": { "200": { "description": "events", "content": { "application/json": { "schema": {
                    "type": "object", "properties": { "items": { "type": "array", "items": { "type": "object", "properties": {
                        "id": { "type": "string" }, "at": { "type": "string", "format": "date-time" },
                        "kind": { "type": "object", "properties": { "type": { "type": "string" } } },
                        "certificate": { "type": ["object", "null"] } } } } } } } } },
                    "400": error_response("bad limit") } } },
            "/api/v1/alerts": { "get": { "summary": "The alert ledger (one row per certificate and expiry threshold; threshold 0 is expired), newest first, a page at a time: pass next_cursor back as cursor. Any role, scoped: a scoped page may be short, and only a missing next_cursor means the end",
                "security": [{ "bearer": [] }],
                "parameters": [
                    { "name": "state", "in": "query", "schema": { "type": "string", "enum": ["open", "acknowledged", "resolved"] } },
                    { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } },
                    { "name": "cursor", "in": "query", "description": "next_cursor of the previous page", "schema": { "type": "string" } }],
                "responses": { "200": { "description": "alerts", "content": { "application/json": { "schema": {
                    "type": "object", "properties": { "items": { "type": "array", "items": { "type": "object", "properties": {
                        "id": { "type": "string" }, "fingerprint": { "type": "string" }, "subject": { "type": "string" },
                        "threshold": { "type": "integer" }, "raised_at": { "type": "integer" }, "not_after": { "type": "integer" },
                        "state": { "type": "string" }, "folded": { "type": "boolean" }, "event": { "type": ["string", "null"] },
                        "acked_by": { "type": ["string", "null"] }, "acked_at": { "type": ["integer", "null"] },
                        "escalated_at": { "type": ["integer", "null"] }, "resolved_at": { "type": ["integer", "null"] } } } },
                        "next_cursor": { "type": ["string", "null"], "description": "absent on the last page" } } } } } },
                    "400": error_response("bad state, limit or cursor") } } },
            "/api/v1/alerts/{id}/ack": { "post": { "summary": "Acknowledge an open alert (and the looser-threshold alerts of the same certificate); it stops escalating. Primary admin; department admin in its org units. A user acknowledges as itself; `by` names the person only for api.token",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                "requestBody": { "required": false, "content": { "application/json": { "schema": {
                    "type": "object", "properties": { "by": { "type": "string" } } } } } },
                "responses": { "200": { "description": "the acknowledged alert" }, "404": error_response("no such alert, or outside the caller's scope"),
                    "409": error_response("not open") } } },
            "/api/v1/deliveries": { "get": { "summary": "The notification delivery log: each message to each channel, its state, attempts and the channel's answers, newest first, with counts by state. Primary admin, auditor",
                "security": [{ "bearer": [] }],
                "parameters": [
                    { "name": "state", "in": "query", "schema": { "type": "string", "enum": ["pending", "delivered", "failed"] } },
                    { "name": "event", "in": "query", "schema": { "type": "string" } },
                    { "name": "channel", "in": "query", "schema": { "type": "string" } },
                    { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } }],
                "responses": { "200": { "description": "deliveries", "content": { "application/json": { "schema": {
                    "type": "object", "properties": {
                        "counts": { "type": "object", "additionalProperties": { "type": "integer" } },
                        "items": { "type": "array", "items": { "type": "object", "properties": {
                        "id": { "type": "string" }, "event": { "type": "string" }, "kind": { "type": "string" },
                        "channel": { "type": "string" }, "recipients": { "type": "array", "items": { "type": "string" } },
                        "state": { "type": "string" }, "attempts": { "type": "integer" }, "created": { "type": "integer" },
                        "next_attempt": { "type": "integer" }, "delivered_at": { "type": ["integer", "null"] },
                        "last_error": { "type": ["string", "null"] },
                        "log": { "type": "array", "items": { "type": "object", "properties": {
                            "at": { "type": "integer" }, "outcome": { "type": "string" }, "detail": { "type": ["string", "null"] } } } } } } } } } } } },
                    "400": error_response("bad filter") } } },
            "/api/v1/managed/renew-all": { "post": { "summary": "Renew every managed certificate now (clears backoff). Primary admin", "security": [{ "bearer": [] }],
                "responses": { "202": { "description": "marked for renewal; progress in GET /api/v1/managed" } } } },
            "/api/v1/managed/{name}/renew": { "post": { "summary": "Renew one managed certificate now. Primary admin; department admin in its org units; subscriber for its own certificates", "security": [{ "bearer": [] }],
                "parameters": [{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": { "202": { "description": "marked for renewal" }, "404": error_response("no such managed certificate, or outside the caller's scope") } } },
            "/api/v1/certificates/{fingerprint}/replace": { "post": { "summary": "Revoke and replace: issue a new certificate with a fresh key, deploy and verify it everywhere the old one was seen, then revoke the old one. Primary admin; department admin in its org units; subscriber for its own certificates",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "fingerprint", "in": "path", "required": true, "schema": { "type": "string" } }],
                "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": {
                    "reason": { "type": "string", "enum": ["unspecified", "keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation"], "default": "superseded" } } } } } },
                "responses": { "202": { "description": "replacement started" }, "404": error_response("not a managed certificate in service, or outside the caller's scope"),
                    "409": error_response("another operation is in progress") } } },
            "/api/v1/certificates/{fingerprint}/revoke": { "post": { "summary": "Revoke a certificate issued through Certkeeper that is no longer in service. Primary admin; department admin in its org units; subscriber for its own certificates",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "fingerprint", "in": "path", "required": true, "schema": { "type": "string" } }],
                "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": {
                    "reason": { "type": "string", "default": "cessationOfOperation" } } } } } },
                "responses": { "200": { "description": "revoked" }, "404": error_response("not issued through Certkeeper, or outside the caller's scope"),
                    "409": error_response("in service: use replace"), "502": error_response("the CA refused") } } },
            "/api/v1/certificates/{fingerprint}/deactivate": { "post": { "summary": "Retire a certificate Certkeeper does not manage (its server is gone, its file deleted): status `deactivated`, its alerts end. Audited with the reason. Primary admin; department admin in its org units",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "fingerprint", "in": "path", "required": true, "schema": { "type": "string" } }],
                "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false, "properties": {
                    "reason": { "type": "string", "maxLength": 4096 } } } } } },
                "responses": { "200": { "description": "deactivated (or already was)", "content": { "application/json": { "schema": { "type": "object",
                        "required": ["fingerprint", "status", "was"],
                        "properties": { "fingerprint": { "type": "string" }, "status": { "type": "string" }, "was": { "type": "string" } } } } } },
                    "400": error_response("a malformed body"),
                    "404": error_response("no such certificate, or outside the caller's scope"),
                    "409": error_response("a managed certificate holds it now: stop managing or revoke it instead") } } },
            "/api/v1/certificates/{fingerprint}/reactivate": { "post": { "summary": "Undo a deactivation: the status follows the certificate's dates again. Audited. Primary admin; department admin in its org units",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "fingerprint", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": { "200": { "description": "reactivated", "content": { "application/json": { "schema": { "type": "object",
                        "required": ["fingerprint", "status"],
                        "properties": { "fingerprint": { "type": "string" }, "status": { "type": "string" } } } } } },
                    "404": error_response("no such certificate, or outside the caller's scope"),
                    "409": error_response("the certificate is not deactivated") } } },
            "/api/v1/deactivation-candidates": { "get": { "summary": "Certificates discovery has stopped seeing: every discovery source that saw one has scanned `inventory.candidate_after_missed_scans` times since without seeing it again (uploads and imports never make one). In the caller's scope, oldest first, at most 1000. Any role",
                "security": [{ "bearer": [] }],
                "responses": { "200": { "description": "the candidates", "content": { "application/json": { "schema": { "type": "object",
                    "required": ["items", "missed_scans"],
                    "properties": { "missed_scans": { "type": "integer" }, "items": { "type": "array", "items": { "type": "object",
                        "required": ["fingerprint", "subject", "last_seen", "places"],
                        "properties": { "fingerprint": { "type": "string" }, "subject": { "type": "string" },
                            "org_unit": { "type": ["string", "null"] }, "last_seen": { "type": "integer" },
                            "places": { "type": "array", "items": { "type": "object", "properties": {
                                "source": { "type": "string" }, "location": { "type": "string" }, "last_seen": { "type": "integer" } } } } } } } } } } } } } } },
            "/crl/{connector}": { "get": { "summary": "An internal CA's current CRL (DER, no authentication)",
                "parameters": [{ "name": "connector", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": { "200": { "description": "the CRL", "content": { "application/pkix-crl": {} } },
                    "404": error_response("no such internal CA") } } }
        }
    })
}

/// A 422 from axum's JSON extractor: the body is not JSON of the expected
/// shape (an unknown or missing field, a wrong type). Plain text, not the
/// Error schema.
fn body_refused() -> Value {
    error_response(
        "the body is not JSON of this shape (unknown or missing field, wrong type); the message names the field",
    )
}

/// The schemas of the administration routes.
fn admin_schemas() -> Value {
    let nullable_string = json!({ "type": ["string", "null"] });
    let nullable_integer = json!({ "type": ["integer", "null"] });
    json!({
        "Role": { "type": "string", "enum": ["primary_admin", "department_admin", "auditor", "subscriber"] },
        "User": { "type": "object", "properties": {
            "name": { "type": "string", "description": "lowercase; letters, digits and @ . - _ +" },
            "role": { "$ref": "#/components/schemas/Role" },
            "units": { "type": "array", "items": { "type": "string" } },
            "disabled": { "type": "boolean", "description": "a disabled account's tokens stop working" },
            "created": { "type": "integer", "description": "Unix seconds" },
            "email": { "type": "string", "description": "where the user's alerts go by e-mail" },
            "phone": { "type": "string", "description": "E.164; where the user's text messages go" } } },
        "Contact": { "type": "object", "required": ["name"], "properties": {
            "name": { "type": "string", "minLength": 1, "maxLength": 254, "description": "as certificates name it (an alias like ssladmin@example.com, or a user); stored lowercase" },
            "email": { "type": ["string", "null"], "description": "where e-mail goes; the name itself when it is an address and this is unset" },
            "phone": { "type": ["string", "null"], "description": "E.164, where text messages go" },
            "events": { "type": "array", "items": { "type": "string" }, "description": "event types it gets; empty: all" },
            "channels": { "type": "array", "items": { "type": "string" }, "description": "notifiers it is reached through; empty: alerts.contact_channels" } } },
        "OrgUnit": { "type": "object", "required": ["name"], "properties": {
            "name": { "type": "string", "minLength": 1, "maxLength": 128 },
            "parent": { "type": ["string", "null"], "description": "the unit it belongs to; a unit's scope includes every unit below it" } } },
        "ApiToken": { "type": "object", "description": "a token's record; its secret is never shown again", "properties": {
            "id": { "type": "string", "description": "the public part of ckt_<id>_<secret>" },
            "user": { "type": "string" }, "label": { "type": "string" },
            "created": { "type": "integer" }, "expires": nullable_integer, "revoked": nullable_integer } },
        "Request": { "type": "object", "properties": {
            "id": { "type": "string", "description": "req- and 12 hex digits" },
            "requester": { "type": "string" }, "org_unit": { "type": "string" },
            "identifiers": { "type": "array", "items": { "type": "string" }, "description": "normalised: lowercase, IDNs as xn-- A-labels, no trailing dot" },
            "connector": { "type": "string" }, "key_type": { "type": "string" },
            "validity_days": nullable_integer, "contact": { "type": "string" },
            "state": { "type": "string", "enum": ["pending", "approved", "rejected"] },
            "assignee": nullable_string,
            "decided_by": { "type": ["string", "null"], "description": "the approver, or `rules` when the domain policy decided" },
            "reason": { "type": ["string", "null"], "description": "why it was rejected, or which names need approval" },
            "managed": { "type": ["string", "null"], "description": "the managed certificate issuance started (see GET /api/v1/managed)" },
            "created": { "type": "integer" }, "decided": nullable_integer } },
        "DomainRule": { "type": "object", "required": ["domain", "mode"], "properties": {
            "domain": { "type": "string", "description": "a DNS name (IDNs allowed, no wildcard), an IP address or a CIDR network" },
            "org_unit": { "type": ["string", "null"], "description": "the owning unit (its sub-units share its domains); only a blocked rule may omit it, and blocks apply to every unit" },
            "mode": { "type": "string", "enum": ["pre_approved", "requires_approval", "blocked"] },
            "allow_wildcards": { "type": "boolean", "default": false },
            "include_subdomains": { "type": "boolean", "default": true } } },
        "AuditEntry": { "type": "object", "properties": {
            "seq": { "type": "integer", "description": "from 1, without gaps" },
            "time": { "type": "integer", "description": "Unix milliseconds" },
            "actor": { "type": "string", "description": "a user, api-token, anonymous, or cli:<login> for the CLI on a stopped daemon's store" },
            "source": nullable_string, "action": { "type": "string" }, "object": nullable_string,
            "outcome": { "type": "string" },
            "before": { "description": "the object before the change, when there is one" },
            "after": { "description": "the object after the change" },
            "prev_hash": { "type": "string" },
            "hash": { "type": "string", "description": "SHA-256 (hex) of the entry's canonical JSON without hash; see admin/audit_chain.rs" } } },
        "Units": { "type": "object", "description": "a metered connector's purchased units; a connector without a record is not metered", "properties": {
            "connector": { "type": "string" },
            "purchased": { "type": "integer", "description": "bought, in total" },
            "used": { "type": "integer", "description": "consumed, one per issued certificate" },
            "remaining": { "type": "integer" },
            "threshold": { "type": "integer", "description": "below this many left, units_low fires once until replenished" },
            "low": { "type": "boolean", "description": "whether units_low has fired since the last replenishment" } } },
        "AuditReport": { "type": "object", "properties": {
            "intact": { "type": "boolean" }, "entries": { "type": "integer", "description": "entries checked" },
            "seq": { "type": ["integer", "null"], "description": "the first entry edited, deleted or out of place" },
            "reason": nullable_string } }
    })
}

/// Accounts, org units, tokens, enrollment requests, domains and the audit
/// log.
fn admin_paths() -> Value {
    let bearer = json!([{ "bearer": [] }]);
    let schema = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
    let one = |description: &str, name: &str| json!({ "description": description, "content": { "application/json": { "schema": schema(name) } } });
    let items = |description: &str, name: &str| {
        json!({ "description": description, "content": { "application/json": { "schema": {
            "type": "object", "properties": { "items": { "type": "array", "items": schema(name) } } } } } })
    };
    let body = |schema: Value| json!({ "required": true, "content": { "application/json": { "schema": schema } } });
    let path_param = |name: &str| json!([{ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }]);
    let limit = json!({ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 1000 } });
    json!({
        "/api/v1/whoami": { "get": { "summary": "Who the caller is: user, role and the org units in its scope (null: every unit). Any role",
            "security": bearer,
            "responses": { "200": { "description": "the caller", "content": { "application/json": { "schema": {
                "type": "object", "properties": {
                    "user": { "type": "string" }, "role": schema("Role"),
                    "units": { "type": ["array", "null"], "items": { "type": "string" } } } } } } } } } },
        "/api/v1/users": {
            "get": { "summary": "Every account (never a password hash). Primary admin", "security": bearer,
                "responses": { "200": items("accounts", "User") } },
            "post": { "summary": "Create an account; department admins and subscribers need at least one org unit. Primary admin", "security": bearer,
                "requestBody": body(json!({ "type": "object", "required": ["name", "role"], "properties": {
                    "name": { "type": "string", "minLength": 1, "maxLength": 254 },
                    "role": schema("Role"),
                    "units": { "type": "array", "items": { "type": "string" } },
                    "password": { "type": "string", "description": "for the web portal (at least 12 characters); API tokens work without one" },
                    "email": { "type": "string" }, "phone": { "type": "string", "description": "E.164" } } })),
                "responses": { "201": one("created", "User"),
                    "400": error_response("bad name or role, unknown org unit, no unit for a department admin or subscriber, or a password that fails the policy"),
                    "409": error_response("the name is taken"), "422": body_refused() } } },
        "/api/v1/users/{name}": { "post": { "summary": "Change an account: role, org units, disabled (its tokens stop working) or password; only the fields given change. Primary admin",
            "security": bearer, "parameters": path_param("name"),
            "requestBody": body(json!({ "type": "object", "properties": {
                "role": schema("Role"), "units": { "type": "array", "items": { "type": "string" } },
                "disabled": { "type": "boolean" }, "password": { "type": "string" },
                "email": { "type": "string", "description": "empty: none" }, "phone": { "type": "string", "description": "E.164; empty: none" } } })),
            "responses": { "200": one("the account as it is now", "User"),
                "400": error_response("bad role, unknown org unit, no unit for a department admin or subscriber, or a password that fails the policy"),
                "404": error_response("no such account"), "422": body_refused() } } },
        "/api/v1/contacts": {
            "get": { "summary": "Contact entries: how the people and aliases certificates name are reached, and which events and channels they want. Primary admin", "security": bearer,
                "responses": { "200": items("contacts", "Contact") } },
            "post": { "summary": "Create or replace a contact entry. Primary admin", "security": bearer,
                "requestBody": body(schema("Contact")),
                "responses": { "200": one("saved", "Contact"),
                    "400": error_response("a bad name, e-mail address, phone number, event type or channel"), "422": body_refused() } } },
        "/api/v1/contacts/{name}": { "delete": { "summary": "Remove a contact entry (the name is then reached as written). Primary admin",
            "security": bearer, "parameters": path_param("name"),
            "responses": { "204": { "description": "removed" }, "404": error_response("no such contact entry") } } },
        "/api/v1/org-units": {
            "get": { "summary": "Org units, each with its parent (a tree); scoped callers see their units and those below them. Any role", "security": bearer,
                "responses": { "200": items("org units", "OrgUnit") } },
            "post": { "summary": "Create an org unit, or move one under another parent. Primary admin", "security": bearer,
                "requestBody": body(schema("OrgUnit")),
                "responses": { "200": one("saved", "OrgUnit"),
                    "400": error_response("bad name, unknown parent, or a parent inside the unit (a loop)"), "422": body_refused() } } },
        "/api/v1/tokens": {
            "get": { "summary": "The caller's API tokens (a primary admin's: everyone's), without their secrets. Any role", "security": bearer,
                "responses": { "200": items("tokens", "ApiToken") } },
            "post": { "summary": "Create an API token for the caller's account, or (primary admin) for another; the token is in this answer only. Any role",
                "security": bearer,
                "requestBody": body(json!({ "type": "object", "properties": {
                    "user": { "type": "string", "description": "whose token (default: the caller; another's needs a primary admin)" },
                    "label": { "type": "string" },
                    "expires_days": { "type": "integer", "minimum": 1, "maximum": 3650, "default": 90 } } })),
                "responses": { "201": { "description": "created: store the token now, it cannot be shown again",
                    "content": { "application/json": { "schema": { "type": "object", "properties": {
                        "token": { "type": "string", "description": "ckt_<id>_<secret>" }, "id": { "type": "string" },
                        "user": { "type": "string" }, "expires": { "type": "integer" }, "note": { "type": "string" } } } } } },
                    "400": error_response("no such account (api.token has none: name one in user), or expires_days out of range"),
                    "403": error_response("a token for someone else, asked by other than a primary admin"),
                    "422": body_refused() } } },
        "/api/v1/tokens/{id}": { "delete": { "summary": "Revoke a token at once. Any role for its own tokens; primary admin for any",
            "security": bearer, "parameters": path_param("id"),
            "responses": { "204": { "description": "revoked" },
                "404": error_response("no such token, or another user's"),
                "409": error_response("revoked already") } } },
        "/api/v1/certificates/assign": { "post": {
            "summary": "Set the org unit, contacts or tags of many certificates at once (a merger, a reorganisation), chosen by fingerprint or by the inventory filters, as one audit entry. Primary admin",
            "security": bearer,
            "requestBody": body(json!({ "type": "object", "properties": {
                "fingerprints": { "type": "array", "items": { "type": "string" } },
                "q": { "type": "string", "description": "and/or: text search over names, issuer, serial" },
                "issuer": { "type": "string", "description": "and/or: substring of the issuer DN" },
                "in_org_unit": { "type": "string", "description": "and/or: certificates of this org unit now" },
                "org_unit": { "type": "string", "description": "the new org unit" },
                "contacts": { "type": "array", "items": { "type": "string" }, "description": "the new contacts (replace the old)" },
                "tags": { "type": "array", "items": { "type": "string" }, "description": "the new tags (replace the old)" } } })),
            "responses": { "200": { "description": "how many certificates changed", "content": { "application/json": { "schema": {
                    "type": "object", "properties": { "changed": { "type": "integer" } } } } } },
                "400": error_response("nothing to set, no certificate selected, or an unknown org unit"), "422": body_refused() } } },
        "/api/v1/requests": {
            "get": { "summary": "Enrollment requests, newest first, a page at a time: pass next_cursor back as cursor. Any role, scoped: department admins see their units' requests, subscribers their own",
                "security": bearer,
                "parameters": [{ "name": "state", "in": "query", "schema": { "type": "string", "enum": ["pending", "approved", "rejected"] } },
                    { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 500, "default": 100 } },
                    { "name": "cursor", "in": "query", "description": "next_cursor of the previous page", "schema": { "type": "string" } }],
                "responses": { "200": { "description": "requests", "content": { "application/json": { "schema": {
                    "type": "object", "properties": { "items": { "type": "array", "items": schema("Request") },
                        "next_cursor": { "type": ["string", "null"], "description": "absent on the last page" } } } } } },
                    "400": error_response("bad state, limit or cursor") } },
            "post": { "summary": "Request a certificate. The domain policy of the org unit (and the units above it) decides: every name pre-approved → approved and issued at once; any name needing approval → pending, and a request_pending_approval event tells the approvers; any name blocked, another unit's or unmanaged → rejected with the reason. Primary admin, department admin, subscriber (for their own org units)",
                "security": bearer,
                "requestBody": body(json!({ "type": "object", "required": ["identifiers", "connector"], "properties": {
                    "identifiers": { "type": "array", "minItems": 1, "maxItems": 100, "items": { "type": "string" },
                        "description": "DNS names (IDNs and *.wildcards allowed) and IP addresses" },
                    "org_unit": { "type": "string", "description": "default: the caller's first org unit" },
                    "connector": { "type": "string", "description": "the CA account that issues it" },
                    "key_type": { "type": "string", "default": "ecdsa_p256" },
                    "validity_days": { "type": "integer", "minimum": 0 },
                    "contact": { "type": "string", "description": "technical contact, who gets its alerts (default: the caller)" } } })),
                "responses": {
                    "201": one("approved by the rules; issuance started (managed names the managed certificate)", "Request"),
                    "202": one("pending an approver", "Request"),
                    "400": error_response("a name that is not a host name or IP address, too many or no names, an unknown org unit or connector"),
                    "403": error_response("the org unit is outside the caller's"),
                    "422": { "description": "refused by the domain policy: the request, in state rejected, with one sentence per refused name in reason; or an Error when the connector has no purchased units left or the body is JSON of the wrong shape",
                        "content": { "application/json": { "schema": { "anyOf": [schema("Request"), schema("Error")] } } } },
                    "503": error_response("the renewal worker is not running") } } },
        "/api/v1/requests/{id}": { "get": { "summary": "One enrollment request. Any role, scoped",
            "security": bearer, "parameters": path_param("id"),
            "responses": { "200": one("the request", "Request"), "404": error_response("no such request, or outside the caller's scope") } } },
        "/api/v1/requests/{id}/approve": { "post": { "summary": "Approve a pending request and start its issuance. Primary admin; department admin in its org units",
            "security": bearer, "parameters": path_param("id"),
            "responses": { "200": one("approved; managed names the managed certificate being issued", "Request"),
                "404": error_response("no such request, or outside the caller's scope"),
                "409": error_response("not pending (decided already, perhaps by another approver)"),
                "503": error_response("the renewal worker is not running") } } },
        "/api/v1/requests/{id}/reject": { "post": { "summary": "Reject a pending request, with the reason its requester will read. Primary admin; department admin in its org units",
            "security": bearer, "parameters": path_param("id"),
            "requestBody": body(json!({ "type": "object", "required": ["reason"], "properties": { "reason": { "type": "string", "minLength": 1 } } })),
            "responses": { "200": one("rejected", "Request"), "400": error_response("no reason"),
                "404": error_response("no such request, or outside the caller's scope"),
                "409": error_response("not pending"), "422": body_refused() } } },
        "/api/v1/requests/{id}/assign": { "post": { "summary": "Hand a pending request to a particular approver (a primary admin, or a department admin whose units include the request's). Primary admin; department admin in its org units",
            "security": bearer, "parameters": path_param("id"),
            "requestBody": body(json!({ "type": "object", "required": ["to"], "properties": { "to": { "type": "string", "description": "the approver's account" } } })),
            "responses": { "200": one("assigned", "Request"),
                "400": error_response("no `to`, no such account, or one that cannot approve this request"),
                "404": error_response("no such request, or outside the caller's scope"),
                "409": error_response("not pending"), "422": body_refused() } } },
        "/api/v1/domains": {
            "get": { "summary": "The domain policy: every managed domain or network, its org unit and mode. Any role", "security": bearer,
                "responses": { "200": items("rules", "DomainRule") } },
            "post": { "summary": "Add or replace the rule for a domain. The most specific rule decides a name, except that a block anywhere above it always refuses it. Primary admin",
                "security": bearer, "requestBody": body(schema("DomainRule")),
                "responses": { "200": one("saved", "DomainRule"),
                    "400": error_response("not a host name, address or network, a wildcard, no org unit on a rule that does not block, or an unknown org unit"),
                    "422": body_refused() } } },
        "/api/v1/domains/{domain}": { "delete": { "summary": "Remove the rule for a domain. Primary admin",
            "security": bearer, "parameters": path_param("domain"),
            "responses": { "204": { "description": "removed" }, "404": error_response("no rule for this domain") } } },
        "/api/v1/reports/{kind}": { "get": { "summary": "A report over the caller's scope, streamed: inventory (every certificate, counts by status), expiring (within within_days, default 90; buckets and expiries per week), units (purchased, used, remaining, and the units the next 12 months' renewals need), readiness47 (certificates no connector renews: what breaks if lifetimes drop to 47 days), history (issued, renewed, revoked, expired per month over from..to, default the last 12 months), org-units (each unit with its administrators, certificates by status and requests), findings (discovery findings with each certificate's owner). Any role",
            "security": bearer,
            "parameters": [
                { "name": "kind", "in": "path", "required": true, "schema": { "type": "string", "enum": ["inventory", "expiring", "units", "readiness47", "history", "org-units", "findings"] } },
                { "name": "format", "in": "query", "schema": { "type": "string", "enum": ["csv", "json", "html", "pdf"], "default": "csv" } },
                { "name": "org_unit", "in": "query", "schema": { "type": "string" }, "description": "this unit and those below it (within the caller's scope)" },
                { "name": "issuer", "in": "query", "schema": { "type": "string" } },
                { "name": "status", "in": "query", "schema": { "type": "string" } },
                { "name": "within_days", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 3650 } },
                { "name": "from", "in": "query", "schema": { "type": "string", "format": "date" }, "description": "history: start of the period; other kinds: certificates expiring on or after this day" },
                { "name": "to", "in": "query", "schema": { "type": "string", "format": "date" }, "description": "end of the date range, inclusive" },
                { "name": "administrator", "in": "query", "schema": { "type": "string" }, "description": "only the org units this user administers" }],
            "responses": { "200": { "description": "the report (Content-Disposition names the file)", "content": {
                    "text/csv": { "schema": { "type": "string" } }, "application/json": { "schema": { "type": "object" } },
                    "text/html": { "schema": { "type": "string" } }, "application/pdf": { "schema": { "type": "string", "format": "binary" } } } },
                "400": error_response("bad format, status, within_days, from or to, an unknown administrator, or an unknown parameter"),
                "404": error_response("no such report kind, or an org unit outside the caller's scope") } } },
        "/api/v1/reports/files": { "get": { "summary": "Each scheduled report job the caller may read, with the files it has written, newest first. Primary admin and auditor; department admins see jobs limited to one of their org units",
            "security": bearer,
            "responses": { "200": { "description": "jobs and files", "content": { "application/json": { "schema": {
                "type": "object", "properties": { "items": { "type": "array", "items": { "type": "object", "properties": {
                    "job": { "type": "string" }, "kind": { "type": "string" }, "format": { "type": "string" },
                    "schedule": { "type": "string" }, "org_unit": { "type": ["string", "null"] },
                    "files": { "type": "array", "items": { "type": "object", "properties": {
                        "name": { "type": "string" }, "bytes": { "type": "integer" },
                        "modified": { "type": "integer" }, "url": { "type": "string" } } } } } } } } } } } },
                "403": error_response("subscribers do not get scheduled reports") } } },
        "/api/v1/reports/files/{job}/{file}": { "get": { "summary": "A file a scheduled report job wrote (the url of its report_ready event). Primary admin and auditor; department admins for jobs limited to one of their org units",
            "security": bearer,
            "parameters": [
                { "name": "job", "in": "path", "required": true, "schema": { "type": "string" }, "description": "the [[job]] name" },
                { "name": "file", "in": "path", "required": true, "schema": { "type": "string" }, "description": "JOB-YYYYMMDD-HHMMSS.EXT" }],
            "responses": { "200": { "description": "the file (Content-Disposition names it)", "content": {
                    "text/csv": { "schema": { "type": "string" } }, "application/json": { "schema": { "type": "object" } },
                    "text/html": { "schema": { "type": "string" } }, "application/pdf": { "schema": { "type": "string", "format": "binary" } } } },
                "403": error_response("subscribers do not get scheduled reports"),
                "404": error_response("no such job or file (pruned, or not a name the job writes), or a job outside the caller's scope") } } },
        "/api/v1/login": { "post": { "summary": "Password sign-in for the web portal: sets the ck_session cookie (HttpOnly, SameSite=Strict, Secure over TLS; 12 hours) and answers the CSRF token that requests other than GET with that cookie must send as X-CSRF-Token. Failures are limited per account and source. Anyone",
            "requestBody": body(json!({ "type": "object", "required": ["user", "password"], "properties": {
                "user": { "type": "string" }, "password": { "type": "string" } } })),
            "responses": { "200": { "description": "signed in", "content": { "application/json": { "schema": {
                "type": "object", "properties": { "user": { "type": "string" }, "role": schema("Role"),
                    "csrf_token": { "type": "string" }, "expires": { "type": "integer" } } } } } },
                "401": error_response("wrong user name or password (the same answer for an unknown user)"),
                "429": error_response("too many failed sign-ins for this account or from this address"),
                "422": body_refused() } } },
        "/api/v1/logout": { "post": { "summary": "End the caller's portal session. Any role", "security": bearer,
            "responses": { "204": { "description": "signed out; the cookie is cleared" } } } },
        "/api/v1/requests/bulk": { "post": { "summary": "Enroll many certificates from CSV (RFC 4180, UTF-8, header row; at most 10000 rows): columns identifiers (names separated by spaces or semicolons) and connector, optional org_unit, contact, key_type, validity_days; each row is decided like POST /api/v1/requests. Primary admin, department admin, subscriber",
            "security": bearer,
            "requestBody": { "required": true, "content": { "text/csv": { "schema": { "type": "string" } } } },
            "responses": { "200": { "description": "every row's outcome", "content": { "application/json": { "schema": {
                "type": "object", "properties": {
                    "counts": { "type": "object", "additionalProperties": { "type": "integer" } },
                    "rows": { "type": "array", "items": { "type": "object", "properties": {
                        "line": { "type": "integer" }, "id": { "type": "string" }, "state": { "type": "string" },
                        "reason": { "type": ["string", "null"] }, "managed": { "type": ["string", "null"] },
                        "error": { "type": "string" } } } } } } } } },
                "400": error_response("unreadable CSV, an unknown column, or identifiers/connector missing from the header") } } },
        "/api/v1/domains/caa": { "get": { "summary": "For every managed domain (and its wildcard where allowed), whether each connector's CA may issue by the domain's DNS CAA records (RFC 8659), looked up now through admin.caa_dns_servers. Any role",
            "security": bearer,
            "responses": { "200": { "description": "one row per domain and connector", "content": { "application/json": { "schema": {
                "type": "object", "properties": { "items": { "type": "array", "items": { "type": "object", "properties": {
                    "domain": { "type": "string" }, "connector": { "type": "string" },
                    "verdict": { "type": ["object", "null"], "properties": { "verdict": { "type": "string",
                        "enum": ["allowed", "allowed_no_records", "forbidden", "critical"] } } },
                    "error": { "type": ["string", "null"] },
                    "allowed_cas": { "type": ["array", "null"], "items": { "type": "string" } } } } } } } } } } } } },
        "/api/v1/units": {
            "get": { "summary": "Purchased, used and remaining units of each metered connector. Any role", "security": bearer,
                "responses": { "200": items("metered connectors", "Units") } },
            "post": { "summary": "Record units bought for a connector (which makes it metered) and set its low-units threshold; re-arms units_low when back at or above it. Primary admin",
                "security": bearer,
                "requestBody": body(json!({ "type": "object", "required": ["connector", "add"], "properties": {
                    "connector": { "type": "string" },
                    "add": { "type": "integer", "minimum": 0, "maximum": 10_000_000, "description": "units bought now (0 to change only the threshold)" },
                    "threshold": { "type": "integer", "minimum": 0, "maximum": 10_000_000, "default": 10 } } })),
                "responses": { "200": one("the connector's units now", "Units"),
                    "400": error_response("no such connector, or add or threshold out of range"),
                    "422": body_refused(), "503": error_response("the renewal worker is not running") } } },
        "/api/v1/audit": { "get": {
            "summary": "The audit log: who changed what, with the object before and after. In order after `after` (default: from the start), or with actor/object and no after, newest first. Primary admin, auditor",
            "security": bearer,
            "parameters": [
                { "name": "after", "in": "query", "description": "entries with a higher seq", "schema": { "type": "integer", "minimum": 0 } },
                limit,
                { "name": "actor", "in": "query", "schema": { "type": "string" } },
                { "name": "object", "in": "query", "schema": { "type": "string" } }],
            "responses": { "200": items("entries", "AuditEntry"), "400": error_response("bad after or limit") } } },
        "/api/v1/audit/verify": { "get": {
            "summary": "Check the audit log's hash chain, and that it ends where the last append left it; names the first entry edited, deleted or out of place. Primary admin, auditor",
            "security": bearer,
            "responses": { "200": one("the verdict (200 whether intact or not)", "AuditReport") } } }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use crate::api::routes;
    use certkeeper_model::admin::Permission;

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc = super::document();
        let mut served = HashSet::new();
        for spec in routes::specs() {
            let method = spec.method.as_str().to_ascii_lowercase();
            let operation = &doc["paths"][spec.path][method.as_str()];
            assert!(
                operation["summary"].is_string(),
                "{} {} is not in the OpenAPI document",
                spec.method,
                spec.path
            );
            if spec.permission != Permission::Public {
                assert!(
                    operation["security"].is_array() && operation["x-roles"].is_array(),
                    "{} {} needs a token: say so with security",
                    spec.method,
                    spec.path
                );
            }
            served.insert((method, spec.path.to_owned()));
        }
        let paths = doc["paths"].as_object().expect("paths is an object");
        for (path, item) in paths {
            for method in item.as_object().expect("a path item is an object").keys() {
                assert!(
                    served.contains(&(method.clone(), path.clone())),
                    "{method} {path} is documented but not served"
                );
            }
        }
    }

    #[test]
    fn roles_come_from_the_route_table() {
        let doc = super::document();
        assert_eq!(
            doc["paths"]["/api/v1/audit"]["get"]["x-roles"],
            serde_json::json!(["primary_admin", "auditor"])
        );
        assert_eq!(
            doc["paths"]["/api/v1/requests/{id}/approve"]["post"]["responses"]["403"]["description"],
            "the caller's role may not do this (see x-roles)"
        );
        assert!(
            doc["paths"]["/api/v1/whoami"]["get"]["responses"]
                .get("403")
                .is_none(),
            "every role may ask who it is"
        );
    }
}
