//! Secrets from the config: tokens and passwords that must never be printed.
//!
//! A [`Secret`] holds the value; its `Debug`, `Display` and `Serialize` all print
//! `[redacted]`, so a secret that ends up in a log line, an error or an API
//! response by mistake leaks nothing. The only way to the value is
//! [`Secret::expose`], which makes every use easy to find in review.
//!
//! Config sections take each secret three ways: inline (`password = "..."`),
//! from a file (`password_file = "/run/credentials/certkeeper.service/db"`, the
//! shape systemd's `LoadCredential=` gives), or from the environment
//! (`CERTKEEPER__STORE__PASSWORD`, through the config layer).

pub use certkeeper_connectors::Secret;
