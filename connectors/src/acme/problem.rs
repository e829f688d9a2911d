//! How ACME failures become [`ConnectorError`]s the scheduler can act on.
//!
//! ACME problem documents (RFC 8555 section 6.7) name what went wrong; a
//! refusal of the request itself (`badCSR`, `rejectedIdentifier`, `caa`, ...)
//! will fail again, a `rateLimited` one says when to come back through
//! `Retry-After`, and anything on the way (connection, timeout, 5xx) may pass.
//!
//! `instant-acme` drops response headers before it hands back a problem, so
//! the HTTP client notes a refused response's `Retry-After` in a task-local
//! slot that [`scoped`] opens around each connector operation.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use instant_acme::Problem;

use crate::{ConnectorError, ErrorClass};

tokio::task_local! {
    static RETRY_AFTER: Cell<Option<Duration>>;
}

/// Runs `operation` with a slot for the `Retry-After` of a refused request,
/// which [`map`] reads when the CA says `rateLimited`.
pub async fn scoped<T>(
    operation: impl Future<Output = Result<T, ConnectorError>>,
) -> Result<T, ConnectorError> {
    RETRY_AFTER.scope(Cell::new(None), operation).await
}

/// Notes the `Retry-After` of a refused response, when inside [`scoped`].
pub fn note_retry_after(delay: Duration) {
    let _ = RETRY_AFTER.try_with(|slot| slot.set(Some(delay)));
}

/// Maps an `instant-acme` error met while `doing` something.
pub fn map(connector: &str, doing: &str, error: instant_acme::Error) -> ConnectorError {
    let mut class = classify(&error);
    if let instant_acme::Error::Api(problem) = &error
        && problem.r#type.as_deref() == Some("urn:ietf:params:acme:error:rateLimited")
        && let Some(delay) = RETRY_AFTER.try_with(Cell::get).ok().flatten()
    {
        class = ErrorClass::RetryAfter(delay);
    }
    let mut mapped =
        ConnectorError::new(connector, format!("{doing}: {}", describe(&error)), class);
    mapped.already_revoked = matches!(&error, instant_acme::Error::Api(problem)
        if problem.r#type.as_deref() == Some("urn:ietf:params:acme:error:alreadyRevoked"));
    mapped
}

/// The error with its causes, which `hyper`'s errors hide behind "client error".
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Whether retrying after `error` can help.
pub fn classify(error: &instant_acme::Error) -> ErrorClass {
    use instant_acme::Error as E;
    match error {
        E::Api(problem) => problem_class(problem),
        E::Timeout(Some(at)) => {
            ErrorClass::RetryAfter(at.saturating_duration_since(std::time::Instant::now()))
        }
        E::Unsupported(_) | E::Crypto | E::KeyRejected | E::InvalidUri(_) => ErrorClass::Permanent,
        // The address policy refused the CA's address: the operator must
        // change the policy or the URL, retrying will not help.
        E::Other(cause)
            if super::client::refusal(cause.as_ref()).is_some_and(|r| r.is_denied()) =>
        {
            ErrorClass::Permanent
        }
        // Transport failures, timeouts, garbled answers: the next try may pass.
        _ => ErrorClass::Transient,
    }
}

/// The class of a problem document; a compound problem is permanent when
/// any of its subproblems is.
pub fn problem_class(problem: &Problem) -> ErrorClass {
    let own = type_class(problem.r#type.as_deref(), problem.status);
    if problem
        .subproblems
        .iter()
        .any(|sub| type_class(sub.r#type.as_deref(), problem.status) == ErrorClass::Permanent)
    {
        return ErrorClass::Permanent;
    }
    own
}

fn type_class(kind: Option<&str>, status: Option<u16>) -> ErrorClass {
    let short = kind
        .map(|k| k.trim_start_matches("urn:ietf:params:acme:error:"))
        .unwrap_or("");
    match short {
        "badCSR"
        | "rejectedIdentifier"
        | "unsupportedIdentifier"
        | "malformed"
        | "unauthorized"
        | "alreadyRevoked"
        | "caa"
        | "accountDoesNotExist"
        | "badPublicKey"
        | "badRevocationReason"
        | "badSignatureAlgorithm"
        | "invalidContact"
        | "unsupportedContact"
        | "externalAccountRequired"
        | "userActionRequired"
        | "invalidProfile"
        | "incorrectResponse" => ErrorClass::Permanent,
        // Without a Retry-After the scheduler's own backoff applies;
        // `scoped` upgrades this when the CA said how long to wait.
        "rateLimited" | "serverInternal" | "badNonce" | "connection" | "dns" | "tls"
        | "orderNotReady" => ErrorClass::Transient,
        _ => match status {
            Some(500..) | None => ErrorClass::Transient,
            Some(_) => ErrorClass::Permanent,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(kind: &str, status: u16) -> Problem {
        serde_json::from_value(serde_json::json!({
            "type": format!("urn:ietf:params:acme:error:{kind}"),
            "detail": "d",
            "status": status,
        }))
        .expect("problem document")
    }

    #[test]
    fn refusals_are_permanent_and_hiccups_transient() {
        for kind in [
            "badCSR",
            "rejectedIdentifier",
            "unsupportedIdentifier",
            "malformed",
            "unauthorized",
            "alreadyRevoked",
            "caa",
        ] {
            assert_eq!(
                problem_class(&problem(kind, 400)),
                ErrorClass::Permanent,
                "{kind}"
            );
        }
        assert_eq!(
            problem_class(&problem("serverInternal", 500)),
            ErrorClass::Transient
        );
        assert_eq!(
            problem_class(&problem("rateLimited", 429)),
            ErrorClass::Transient
        );
        assert_eq!(
            problem_class(&problem("somethingNew", 503)),
            ErrorClass::Transient
        );
        assert_eq!(
            problem_class(&problem("somethingNew", 403)),
            ErrorClass::Permanent
        );
    }

    #[test]
    fn a_compound_problem_with_a_refused_identifier_is_permanent() {
        let compound: Problem = serde_json::from_value(serde_json::json!({
            "type": "urn:ietf:params:acme:error:compound",
            "status": 500,
            "subproblems": [
                {"type": "urn:ietf:params:acme:error:rejectedIdentifier",
                 "identifier": {"type": "dns", "value": "x.example"}}
            ],
        }))
        .expect("problem document");
        assert_eq!(problem_class(&compound), ErrorClass::Permanent);
    }

    #[tokio::test]
    async fn rate_limit_with_retry_after_becomes_retry_after() {
        let result: Result<(), _> = scoped(async {
            note_retry_after(Duration::from_secs(90));
            Err(map(
                "ca",
                "ordering",
                instant_acme::Error::Api(problem("rateLimited", 429)),
            ))
        })
        .await;
        let err = result.expect_err("error");
        assert_eq!(err.class, ErrorClass::RetryAfter(Duration::from_secs(90)));
    }
}
