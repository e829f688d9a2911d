//! Certkeeper: discovers, inventories, renews and reports on every TLS and
//! code-signing certificate of an organisation.
//!
//! The daemon's parts, layered one way (each uses only those above it):
//! [`config`] and [`secret`] → [`store`] (SurrealDB: schema, inventory, job
//! leases) → [`inventory`] (the model and imports) → [`scheduler`] (cron jobs
//! with leases) → [`api`] (HTTP) → [`daemon`] (lifecycle) and [`cli`]. See
//! `docs/ARCHITECTURE.md` for the data flow and where to add things.

// The hand-written OpenAPI document (api/openapi.rs) is one large json! literal.
#![recursion_limit = "512"]

pub mod admin;
pub mod alerts;
pub mod api;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod deploy;
pub mod discovery;
pub mod inventory;
pub mod portal;
pub mod renewal;
pub mod reports;
pub mod scheduler;
pub mod secret;
pub mod store;
