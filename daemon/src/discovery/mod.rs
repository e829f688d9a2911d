//! Discovery: finding certificates on the network and on disk, and checking
//! how each is installed.
//!
//! [`targets`] parses what to scan; [`dns`] resolves names (A/AAAA through
//! CNAMEs, configurable servers); [`probe`] reads one TLS endpoint (rustls
//! first, `modern.rs`, then OpenSSL for legacy peers)
//! (STARTTLS included, legacy peers recorded); [`files`] reads certificate
//! files of every format; [`findings`] is the installation check; [`scan`]
//! runs them concurrently and streams [`model::ScanRecord`]s; [`sources`]
//! runs configured sources as jobs and records results into the inventory.
//! `certkeeper scan` (cli/scan.rs) is the one-shot front end.

pub mod dns;
pub mod files;
pub mod findings;
pub mod model;
mod modern;
pub mod probe;
pub mod scan;
pub mod sources;
pub mod targets;

pub use model::{FileFormat, Finding, FindingCode, Origin, Starttls};
