//! ACME Renewal Information (RFC 9773): when the CA suggests renewing a
//! certificate, and which certificate a new order replaces.
//!
//! Both are offered only when the directory lists `renewalInfo`;
//! `instant-acme` reports `Unsupported` otherwise, which here means "no
//! window" and "order without `replaces`".

use std::time::Duration;

use chrono::{DateTime, Utc};
use instant_acme::{Account, CertificateIdentifier};
use rustls::pki_types::CertificateDer;

use super::problem;
use crate::{ConnectorError, RenewalWindow};

/// The RFC 9773 identifier of a DER certificate (AKI key id and serial), or
/// `None` when the certificate has no Authority Key Identifier.
pub fn certificate_id(certificate_der: &[u8]) -> Option<CertificateIdentifier<'static>> {
    let der = CertificateDer::from(certificate_der);
    CertificateIdentifier::try_from(&der)
        .ok()
        .map(CertificateIdentifier::into_owned)
}

/// The CA's suggested renewal window for a certificate, or `None` when the
/// CA offers no renewal information.
pub async fn renewal_info(
    connector: &str,
    account: &Account,
    certificate_der: &[u8],
) -> Result<Option<RenewalWindow>, ConnectorError> {
    let der = CertificateDer::from(certificate_der);
    let id = CertificateIdentifier::try_from(&der).map_err(|e| {
        ConnectorError::permanent(connector, format!("no renewal information: {e}"))
    })?;
    match account.renewal_info(&id).await {
        Ok((info, retry_after)) => {
            let window = info.suggested_window;
            Ok(Some(RenewalWindow {
                start: to_chrono(connector, window.start.unix_timestamp_nanos())?,
                end: to_chrono(connector, window.end.unix_timestamp_nanos())?,
                retry_after: Some(retry_after).filter(|d| *d > Duration::ZERO),
            }))
        }
        Err(instant_acme::Error::Unsupported(_)) => Ok(None),
        Err(e) => Err(problem::map(connector, "fetching renewal information", e)),
    }
}

/// A time given as nanoseconds since the Unix epoch.
fn to_chrono(connector: &str, nanos: i128) -> Result<DateTime<Utc>, ConnectorError> {
    let seconds = i64::try_from(nanos.div_euclid(1_000_000_000)).ok();
    let subsec = u32::try_from(nanos.rem_euclid(1_000_000_000)).ok();
    seconds
        .zip(subsec)
        .and_then(|(s, n)| DateTime::from_timestamp(s, n))
        .ok_or_else(|| {
            ConnectorError::transient(connector, "the CA's renewal window is out of range")
        })
}
