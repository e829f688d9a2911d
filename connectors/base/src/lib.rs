//! The bottom layer of Certkeeper: the few types every other crate shares.
//!
//! Connectors (how certificates are obtained) and integrations (where events
//! go) may not depend on each other or on the daemon, yet both hold secrets,
//! both classify failures for retry, and both read `Retry-After`. Those live
//! here once: [`Secret`], [`ErrorClass`] and [`parse_retry_after`].

mod retry;
mod secret;

pub use retry::{ErrorClass, parse_retry_after};
pub use secret::Secret;
