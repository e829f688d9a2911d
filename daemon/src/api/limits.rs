//! Caps on the free text a JSON body may carry.
//!
//! Whatever a client writes into a string field can end up stored: in an org
//! unit, a request's reason, a token's label, and in the audit row that
//! records the change (which is kept forever). Each handler checks what its
//! fields mean (names, domains, roles); this layer bounds what they all
//! share, before any handler runs: every string and every object key in a
//! JSON body is at most [`MAX_TEXT_CHARS`] characters, and the body nests at
//! most [`MAX_DEPTH`] levels. A body breaking either is refused with 400
//! naming the field (as a JSON pointer), and nothing is stored.
//!
//! Bulk uploads are not JSON (`/api/v1/import` takes PEM/DER/PKCS#12 bytes,
//! bulk requests take CSV) and are bounded by their own handlers; the portal's
//! forms reach the API in-process as JSON, so they pass through here too.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::ApiError;

/// Longest string (or object key) in a JSON body, in characters: room for a
/// paragraph of reason or a long distinguished name, not for a file.
pub const MAX_TEXT_CHARS: usize = 4096;

/// Deepest nesting of arrays and objects in a JSON body.
pub const MAX_DEPTH: usize = 32;

/// The middleware: refuses a JSON body whose text breaks the caps.
pub async fn bounded_text(request: Request, next: Next) -> Response {
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            let t = t.trim_start().to_ascii_lowercase();
            t.starts_with("application/json") || t.contains("+json")
        });
    if !json {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    // The API's body limit applies here as it would in the handler.
    let bytes: Bytes = match axum::body::to_bytes(body, super::MAX_IMPORT_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError {
                status: axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                code: "payload_too_large",
                message: format!("the body is larger than {} bytes", super::MAX_IMPORT_BYTES),
            }
            .into_response();
        }
    };
    // A body that is not JSON goes on to the handler, whose extractor
    // explains what is wrong with it.
    if let Ok(value) = serde_json::from_slice::<Value>(&bytes)
        && let Err(message) = check(&value)
    {
        return ApiError::bad_request(message).into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// `Ok` when `value` keeps to the caps, else what breaks them.
pub fn check(value: &Value) -> Result<(), String> {
    walk(value, &mut String::new(), 0)
}

fn walk(value: &Value, pointer: &mut String, depth: usize) -> Result<(), String> {
    let field = |pointer: &str| {
        if pointer.is_empty() {
            "the body".to_owned()
        } else {
            format!("`{pointer}`")
        }
    };
    match value {
        Value::String(s) if s.chars().count() > MAX_TEXT_CHARS => Err(format!(
            "{}: longer than {MAX_TEXT_CHARS} characters",
            field(pointer)
        )),
        Value::Array(_) | Value::Object(_) if depth >= MAX_DEPTH => Err(format!(
            "{}: nested deeper than {MAX_DEPTH} levels",
            field(pointer)
        )),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push_str(&format!("/{i}"));
                walk(item, pointer, depth + 1)?;
                pointer.truncate(len);
            }
            Ok(())
        }
        Value::Object(members) => {
            for (key, item) in members {
                if key.chars().count() > MAX_TEXT_CHARS {
                    return Err(format!(
                        "{}: a member name is longer than {MAX_TEXT_CHARS} characters",
                        field(pointer)
                    ));
                }
                let len = pointer.len();
                // JSON pointer escaping (RFC 6901), so the name is exact.
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                walk(item, pointer, depth + 1)?;
                pointer.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn long_text_is_refused_by_its_pointer() {
        let long = "x".repeat(MAX_TEXT_CHARS + 1);
        let body = json!({ "units": ["ok", long], "label": "fine" });
        assert_eq!(
            check(&body).unwrap_err(),
            format!("`/units/1`: longer than {MAX_TEXT_CHARS} characters")
        );
        let body = json!({ "a/b": { "c": long } });
        assert!(check(&body).unwrap_err().starts_with("`/a~1b/c`"));
        // Exactly the cap, counted in characters (not bytes), passes.
        let body = json!({ "reason": "é".repeat(MAX_TEXT_CHARS) });
        assert_eq!(check(&body), Ok(()));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut v = json!("leaf");
        for _ in 0..MAX_DEPTH {
            v = json!([v]);
        }
        assert_eq!(check(&v), Ok(()));
        let v = json!([v]);
        assert!(check(&v).unwrap_err().contains("nested deeper"));
    }
}
