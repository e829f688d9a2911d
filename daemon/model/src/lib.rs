//! Certkeeper's model: what the store keeps and every layer above reads.
//!
//! Plain types and pure logic, no I/O of its own beyond the clock:
//! [`inventory`] (certificates, sightings, statuses; [`inventory::parse`]
//! turns PEM/DER into [`inventory::ParsedCertificate`]), [`discovery`]
//! (the records a scan produces: origins, findings), [`admin`] (roles,
//! principals and scopes, domain rules, the audit chain, tokens, passwords,
//! sign-in limits, the outbound URL policy), [`request`] (enrollment request
//! states), [`hostname`] (whether a certificate name covers a host name) and
//! [`event`] (the outbox row of a lifecycle event).

pub mod admin;
pub mod discovery;
pub mod event;
pub mod hostname;
pub mod inventory;
pub mod request;
