//! Certkeeper: discovers, inventories, renews and reports on every TLS and
//! code-signing certificate of an organisation.
//!
//! This crate is the top of the house. Below it, in their own crates:
//! `certkeeper-model` (the inventory model, roles, domain rules, the audit
//! chain), `certkeeper-discovery` (the prober, DNS, files, findings) and
//! `certkeeper-store` (SurrealDB). Its own modules are layered one way, each
//! using only those before it: [`systemd`] → [`deploy`] → [`config`] →
//! [`alerts`], [`renewal`] → [`reports`] → [`scheduler`] → [`api`] →
//! [`portal`] → [`daemon`] → [`cli`]. `tests/layers.rs` holds that list and
//! fails on an import against it; `docs/ARCHITECTURE.md` shows the data flow
//! and where to add things.

// The hand-written OpenAPI document (api/openapi.rs) is one large json! literal.
#![recursion_limit = "512"]

pub mod alerts;
pub mod api;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod deploy;
pub mod portal;
pub mod renewal;
pub mod reports;
pub mod scheduler;
pub mod systemd;
