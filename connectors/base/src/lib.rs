//! The bottom layer of Certkeeper: the few types every other crate shares.
//!
//! Connectors (how certificates are obtained) and integrations (where events
//! go) may not depend on each other or on the daemon, yet both hold secrets,
//! both classify failures for retry, and both read `Retry-After`. Those live
//! here once: [`Secret`], [`ErrorClass`] and [`parse_retry_after`]. So does
//! the check, at connect time, of which addresses outbound requests may reach
//! ([`AddressGuard`]), which the daemon builds from its address policy.

mod address;
mod retry;
mod secret;

pub use address::{AddressGuard, AddressRefused};
pub use retry::{ErrorClass, parse_retry_after};
pub use secret::Secret;
