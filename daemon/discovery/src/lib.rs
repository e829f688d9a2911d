//! Discovery: finding certificates on the network and on disk, and checking
//! how each is installed. This crate is the engine only: it reads networks,
//! names and files and returns records; it has no store and no HTTP server,
//! so its tests link without SurrealDB. The daemon's scheduler runs the
//! configured sources as jobs and records what they find
//! (`certkeeper::scheduler::discovery`).
//!
//! [`targets`] parses what to scan; [`dns`] resolves names (A/AAAA through
//! CNAMEs, configurable servers); [`probe`] reads one TLS endpoint (rustls
//! first, `modern.rs`, then OpenSSL for legacy peers)
//! (STARTTLS included, legacy peers recorded); [`files`] reads certificate
//! files of every format; [`findings`] is the installation check; [`aia`]
//! fetches an issuer the server did not send (so a missing intermediate is
//! told from an unknown CA) and [`revocation`] asks OCSP responders and CRLs
//! whether a leaf is revoked, both over [`fetch`]'s bounded plain-HTTP
//! client and both off unless the policy turns them on; [`scan`] runs them
//! concurrently and streams [`model::ScanRecord`]s; [`caa`] looks up and
//! evaluates CAA records (RFC 8659); [`ct`] follows Certificate
//! Transparency logs (RFC 6962 and static-ct-api), verifying every tree head
//! and entry, for certificates issued for watched domains. `certkeeper scan` (the daemon's
//! cli/scan.rs) is the one-shot front end.

pub mod aia;
pub mod caa;
pub mod ct;
pub mod dns;
pub mod fetch;
pub mod files;
pub mod findings;
mod modern;
pub mod probe;
pub mod revocation;
pub mod scan;
pub mod targets;

/// Discovery's record types live in the model crate, where the store and the
/// daemon share them; re-exported here under the name the engine uses.
pub use certkeeper_model::discovery as model;
pub use model::{FileFormat, Finding, FindingCode, Origin, Starttls};
