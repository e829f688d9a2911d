//! `/api/v1/openapi.json`: the OpenAPI 3.1 description of the API.
//!
//! Written by hand next to the routes it describes; a test checks that every
//! route the router serves is listed here, so the two cannot drift apart.

use axum::Json;
use serde_json::{Value, json};

pub(super) async fn handler() -> Json<Value> {
    Json(document())
}

fn error_response(description: &str) -> Value {
    json!({ "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

/// The OpenAPI document.
pub fn document() -> Value {
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
            "description": "Inventory of every TLS and code-signing certificate: list, filter, inspect, import; jobs; health and metrics. When api.token is set, /api/ routes and /metrics need `Authorization: Bearer <token>`."
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
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
                    "kind": { "type": "string", "enum": ["endpoint", "file", "connector", "import"] },
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
            "/metrics": { "get": { "summary": "Prometheus metrics", "security": [{ "bearer": [] }],
                "responses": { "200": { "description": "text exposition format 0.0.4",
                    "content": { "text/plain": {} } } } } },
            "/api/v1/openapi.json": { "get": { "summary": "This document", "responses": { "200": { "description": "OpenAPI 3.1" } } } },
            "/api/v1/certificates": { "get": {
                "summary": "List certificates, soonest to expire first",
                "security": [{ "bearer": [] }],
                "parameters": [
                    { "name": "status", "in": "query", "schema": { "$ref": "#/components/schemas/Status" } },
                    { "name": "expiring_within", "in": "query", "description": "e.g. 30d, 12h: certificates in force that expire within this time",
                      "schema": { "type": "string", "pattern": "^[0-9]+[smhdw]?$" } },
                    { "name": "issuer", "in": "query", "description": "case-insensitive substring of the issuer DN", "schema": { "type": "string" } },
                    { "name": "org_unit", "in": "query", "schema": { "type": "string" } },
                    { "name": "q", "in": "query", "description": "text search over names, issuer, serial, fingerprint", "schema": { "type": "string" } },
                    { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "default": 100 } },
                    { "name": "cursor", "in": "query", "description": "next_cursor of the previous page", "schema": { "type": "string" } }
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
                "summary": "One certificate and where it was seen",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "fingerprint", "in": "path", "required": true,
                    "schema": { "type": "string", "pattern": "^[0-9a-fA-F:]+$" } }],
                "responses": {
                    "200": { "description": "found", "content": { "application/json": { "schema": {
                        "type": "object", "properties": {
                            "certificate": { "$ref": "#/components/schemas/Certificate" },
                            "sightings": { "type": "array", "items": { "$ref": "#/components/schemas/Sighting" } } } } } } },
                    "400": error_response("not a fingerprint"),
                    "404": error_response("unknown fingerprint")
                } } },
            "/api/v1/counts": { "get": { "summary": "Certificates by status", "security": [{ "bearer": [] }],
                "responses": { "200": { "description": "status → count", "content": { "application/json": { "schema": {
                    "type": "object", "additionalProperties": { "type": "integer" } } } } } } } },
            "/api/v1/import": { "post": {
                "summary": "Import PEM (any number of certificates) or DER",
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
            "/api/v1/jobs/{name}/runs": { "get": { "summary": "The 50 latest runs of a job, newest first",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": { "200": { "description": "runs", "content": { "application/json": { "schema": {
                    "type": "array", "items": { "type": "object", "properties": {
                        "job": { "type": "string" }, "due": { "type": "integer" },
                        "state": { "type": "string", "enum": ["running", "succeeded", "failed"] },
                        "lease_holder": { "type": "string" }, "lease_expires": { "type": "integer" },
                        "attempts": { "type": "integer" }, "started": { "type": "integer" },
                        "finished": { "type": ["integer", "null"] }, "error": { "type": ["string", "null"] } } } } } } } } } },
            "/api/v1/jobs/{name}/run": { "post": { "summary": "Run a job now (it is claimed through the usual lease)",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": { "202": { "description": "due now" }, "404": error_response("no such job") } } },
            "/api/v1/findings": { "get": { "summary": "Installation-check findings, newest first",
                "security": [{ "bearer": [] }],
                "parameters": [
                    { "name": "code", "in": "query", "schema": { "type": "string", "enum": ["expired", "not_yet_valid", "expiring", "weak_key", "weak_signature", "self_signed", "incomplete_chain", "untrusted", "hostname_mismatch", "unapproved_issuer", "legacy_protocol", "validity_too_long", "unprotected"] } },
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
            "/api/v1/jobs": { "get": { "summary": "Scheduled jobs and their last runs", "security": [{ "bearer": [] }],
                "responses": { "200": { "description": "jobs", "content": { "application/json": { "schema": {
                    "type": "array", "items": { "$ref": "#/components/schemas/Job" } } } } } } } },
            "/api/v1/managed": { "get": { "summary": "Managed certificates: what is in service, when it renews, the operation in progress", "security": [{ "bearer": [] }],
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
                    "503": error_response("renewal worker not running") } },
                "post": { "summary": "Create a managed certificate: a [[certificate]] table as JSON, without deploy targets (those stay in the config file); issued at once",
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
            "/api/v1/managed/{name}": { "delete": { "summary": "Stop managing a certificate created through the API (its certificates stay in the inventory)",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": { "204": { "description": "removed" }, "404": error_response("no such managed certificate"),
                    "409": error_response("defined in the config file") } } },
            "/api/v1/events": { "get": { "summary": "The newest lifecycle events (issued, renewed, renewal failed, deployment failed, revoked, discovery findings), newest first",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } }],
                "responses": { "200": { "description": "events", "content": { "application/json": { "schema": {
                    "type": "object", "properties": { "items": { "type": "array", "items": { "type": "object", "properties": {
                        "id": { "type": "string" }, "at": { "type": "string", "format": "date-time" },
                        "kind": { "type": "object", "properties": { "type": { "type": "string" } } },
                        "certificate": { "type": ["object", "null"] } } } } } } } } },
                    "400": error_response("bad limit") } } },
            "/api/v1/alerts": { "get": { "summary": "The alert ledger (one row per certificate and expiry threshold; threshold 0 is expired), newest first",
                "security": [{ "bearer": [] }],
                "parameters": [
                    { "name": "state", "in": "query", "schema": { "type": "string", "enum": ["open", "acknowledged", "resolved"] } },
                    { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } }],
                "responses": { "200": { "description": "alerts", "content": { "application/json": { "schema": {
                    "type": "object", "properties": { "items": { "type": "array", "items": { "type": "object", "properties": {
                        "id": { "type": "string" }, "fingerprint": { "type": "string" }, "subject": { "type": "string" },
                        "threshold": { "type": "integer" }, "raised_at": { "type": "integer" }, "not_after": { "type": "integer" },
                        "state": { "type": "string" }, "folded": { "type": "boolean" }, "event": { "type": ["string", "null"] },
                        "acked_by": { "type": ["string", "null"] }, "acked_at": { "type": ["integer", "null"] },
                        "escalated_at": { "type": ["integer", "null"] }, "resolved_at": { "type": ["integer", "null"] } } } } } } } } },
                    "400": error_response("bad state or limit") } } },
            "/api/v1/alerts/{id}/ack": { "post": { "summary": "Acknowledge an open alert (and the looser-threshold alerts of the same certificate); it stops escalating",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                "requestBody": { "required": false, "content": { "application/json": { "schema": {
                    "type": "object", "properties": { "by": { "type": "string" } } } } } },
                "responses": { "200": { "description": "the acknowledged alert" }, "404": error_response("no such alert"),
                    "409": error_response("not open") } } },
            "/api/v1/deliveries": { "get": { "summary": "The notification delivery log: each message to each channel, its state, attempts and the channel's answers, newest first, with counts by state",
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
            "/api/v1/managed/renew-all": { "post": { "summary": "Renew every managed certificate now (clears backoff)", "security": [{ "bearer": [] }],
                "responses": { "202": { "description": "marked for renewal; progress in GET /api/v1/managed" } } } },
            "/api/v1/managed/{name}/renew": { "post": { "summary": "Renew one managed certificate now", "security": [{ "bearer": [] }],
                "parameters": [{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": { "202": { "description": "marked for renewal" }, "404": error_response("no such managed certificate") } } },
            "/api/v1/certificates/{fingerprint}/replace": { "post": { "summary": "Revoke and replace: issue a new certificate with a fresh key, deploy and verify it everywhere the old one was seen, then revoke the old one",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "fingerprint", "in": "path", "required": true, "schema": { "type": "string" } }],
                "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": {
                    "reason": { "type": "string", "enum": ["unspecified", "keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation"], "default": "superseded" } } } } } },
                "responses": { "202": { "description": "replacement started" }, "404": error_response("not a managed certificate in service"),
                    "409": error_response("another operation is in progress") } } },
            "/api/v1/certificates/{fingerprint}/revoke": { "post": { "summary": "Revoke a certificate issued through Certkeeper that is no longer in service",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "fingerprint", "in": "path", "required": true, "schema": { "type": "string" } }],
                "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": {
                    "reason": { "type": "string", "default": "cessationOfOperation" } } } } } },
                "responses": { "200": { "description": "revoked" }, "404": error_response("not issued through Certkeeper"),
                    "409": error_response("in service: use replace"), "502": error_response("the CA refused") } } },
            "/crl/{connector}": { "get": { "summary": "An internal CA's current CRL (DER, no authentication)",
                "parameters": [{ "name": "connector", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": { "200": { "description": "the CRL", "content": { "application/pkix-crl": {} } },
                    "404": error_response("no such internal CA") } } }
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_documented() {
        let doc = super::document();
        let source = include_str!("mod.rs");
        for line in source.lines() {
            let line = line.trim();
            let rest = line.strip_prefix(".route(\"").or_else(|| {
                // rustfmt puts a long route's path on a line of its own.
                line.strip_prefix('"')
                    .filter(|r| r.starts_with('/') && r.ends_with("\","))
            });
            if let Some(rest) = rest {
                let path = rest.split('"').next().unwrap();
                assert!(
                    doc["paths"].get(path).is_some(),
                    "{path} is not in the OpenAPI document"
                );
            }
        }
    }
}
