//! AWS Signature Version 4 (header-based), as every AWS API request needs:
//! a canonical form of the request is hashed, and an HMAC-SHA256 chain keyed
//! by the secret access key, the date, the region and the service signs it.
//!
//! Written here rather than pulled in with an AWS SDK, whose dependency
//! tree dwarfs this crate; the unit tests check it against AWS's published
//! Signature Version 4 test suite (`get-vanilla`, `post-vanilla`,
//! `get-vanilla-query-order-key-case`). HMAC and SHA-256 are OpenSSL's.

use chrono::{DateTime, Utc};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

use crate::Secret;

/// The algorithm name in the string to sign and the `Authorization` header.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// AWS credentials: an access key, optionally temporary (STS).
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The access key id (`AKIA…`, `ASIA…` for temporary keys); not secret.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token that comes with temporary credentials.
    pub session_token: Option<Secret>,
}

/// The parts of an HTTP request that are signed.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The canonical URI: the path as sent, already percent-encoded (`/`).
    pub path: &'a str,
    /// Query parameters, not encoded; they are sorted and encoded here.
    pub query: &'a [(&'a str, &'a str)],
    /// The `Host` header's value exactly as sent (`host:port` when the
    /// port is not the scheme's).
    pub host: &'a str,
    /// Other headers to sign (`content-type`, `x-amz-target`), any case.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub body: &'a [u8],
}

/// What signing adds to a request. No `Debug`: the headers carry the
/// session token of temporary credentials.
#[derive(Clone)]
pub struct Signed {
    /// Headers to send besides the request's own: `x-amz-date`,
    /// `x-amz-security-token` (temporary credentials) and `authorization`.
    /// The last holds the signature, never the secret key.
    pub headers: Vec<(String, String)>,
    /// The canonical request that was signed (for tests and debugging).
    pub canonical_request: String,
    /// The string to sign.
    pub string_to_sign: String,
    /// The hex signature.
    pub signature: String,
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// SHA-256 of `data`, lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&openssl::sha::sha256(data))
}

fn hmac(key: &[u8], data: &[u8]) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    let key = PKey::hmac(key)?;
    let mut signer = Signer::new(MessageDigest::sha256(), &key)?;
    signer.sign_oneshot_to_vec(data)
}

/// RFC 3986 percent-encoding of everything but the unreserved characters,
/// as SigV4 encodes query names and values.
fn uri_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A header value as SigV4 canonicalises it: trimmed, inner runs of spaces
/// made one.
fn canonical_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Signs `request` for `service` in `region` at `time`.
pub fn sign(
    credentials: &Credentials,
    region: &str,
    service: &str,
    time: DateTime<Utc>,
    request: &Request<'_>,
) -> Result<Signed, openssl::error::ErrorStack> {
    let amz_date = time.format("%Y%m%dT%H%M%SZ").to_string();
    let date = time.format("%Y%m%d").to_string();

    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), canonical_value(value)))
        .collect();
    headers.push(("host".into(), canonical_value(request.host)));
    headers.push(("x-amz-date".into(), amz_date.clone()));
    if let Some(token) = &credentials.session_token {
        headers.push(("x-amz-security-token".into(), token.expose().to_owned()));
    }
    headers.sort();
    let canonical_headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect();
    let signed_headers = headers
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";");

    let mut query: Vec<(String, String)> = request
        .query
        .iter()
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    query.sort();
    let canonical_query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");

    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        request.path,
        canonical_query,
        canonical_headers,
        signed_headers,
        sha256_hex(request.body)
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );

    let secret = format!("AWS4{}", credentials.secret_access_key.expose());
    let key = hmac(secret.as_bytes(), date.as_bytes())?;
    let key = hmac(&key, region.as_bytes())?;
    let key = hmac(&key, service.as_bytes())?;
    let key = hmac(&key, b"aws4_request")?;
    let signature = hex(&hmac(&key, string_to_sign.as_bytes())?);

    let mut added = vec![("x-amz-date".to_owned(), amz_date)];
    if let Some(token) = &credentials.session_token {
        added.push(("x-amz-security-token".into(), token.expose().to_owned()));
    }
    added.push((
        "authorization".into(),
        format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.access_key_id
        ),
    ));
    Ok(Signed {
        headers: added,
        canonical_request,
        string_to_sign,
        signature,
    })
}

#[cfg(test)]
mod tests {
    //! Vectors of AWS's Signature Version 4 test suite (the `aws4_testsuite`
    //! also shipped with botocore): credentials `AKIDEXAMPLE`, region
    //! `us-east-1`, service `service`, 2015-08-30T12:36:00Z, host
    //! `example.amazonaws.com`.

    use super::*;

    fn credentials(session_token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: session_token.map(Secret::new),
        }
    }

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2015-08-30T12:36:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn vector(method: &str, query: &[(&str, &str)]) -> Signed {
        let request = Request {
            method,
            path: "/",
            query,
            host: "example.amazonaws.com",
            headers: &[],
            body: b"",
        };
        sign(&credentials(None), "us-east-1", "service", at(), &request).unwrap()
    }

    #[test]
    fn get_vanilla() {
        let signed = vector("GET", &[]);
        assert_eq!(
            signed.canonical_request,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
             host;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            signed.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
             bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        let authorization = &signed.headers.last().unwrap().1;
        assert_eq!(
            authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn post_vanilla() {
        assert_eq!(
            vector("POST", &[]).signature,
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
    }

    #[test]
    fn get_vanilla_query_order_key_case() {
        let signed = vector("GET", &[("Param2", "value2"), ("Param1", "value1")]);
        assert!(
            signed
                .canonical_request
                .contains("\nParam1=value1&Param2=value2\n")
        );
        assert_eq!(
            signed.signature,
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
    }

    #[test]
    fn a_session_token_is_sent_and_signed_and_the_secret_never_shows() {
        let request = Request {
            method: "POST",
            path: "/",
            query: &[],
            host: "acm-pca.eu-west-1.amazonaws.com",
            headers: &[
                ("Content-Type", "application/x-amz-json-1.1"),
                ("X-Amz-Target", "ACMPrivateCA.GetCertificate"),
            ],
            body: b"{}",
        };
        let signed = sign(
            &credentials(Some("session-token")),
            "eu-west-1",
            "acm-pca",
            at(),
            &request,
        )
        .unwrap();
        let names: Vec<&str> = signed.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["x-amz-date", "x-amz-security-token", "authorization"]
        );
        let authorization = &signed.headers[2].1;
        assert!(
            authorization.contains(
                "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target,"
            ),
            "{authorization}"
        );
        assert!(authorization.contains("/20150830/eu-west-1/acm-pca/aws4_request,"));
        for (_, value) in &signed.headers {
            assert!(!value.contains("EXAMPLEKEY"), "{value}");
        }
    }
}
