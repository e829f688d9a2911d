//! Plain-HTTP fetches of what CAs publish for relying parties: issuer
//! certificates (AIA caIssuers), CRLs and OCSP answers.
//!
//! These URLs come from certificates, so from whoever issued the certificate
//! a scan happened upon: every fetch is bounded (one timeout for resolving,
//! connecting and reading; a byte cap on the answer), follows no redirect,
//! and goes only to addresses the caller's [`AddressFilter`] allows. The host
//! is resolved here, every address it resolves to is checked, and the
//! connection goes to a checked address, so a name cannot be checked once and
//! connected to elsewhere. Only `http://` is fetched: CAs publish these over
//! plain HTTP (RFC 5280 §4.2.2.1, RFC 6960 appendix A), since the answers are
//! signed and fetching them over TLS would need revocation checks of its own.
//!
//! The client is a minimal HTTP/1.1 one (`Connection: close`, one request a
//! connection; `Content-Length`, chunked or read-to-close bodies): the crate
//! has no HTTP client, and these answers need nothing more.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Decides whether an address may be connected to; the daemon passes its
/// outbound-URL (SSRF) policy here. Called for every address a host
/// resolves to.
pub type AddressFilter = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// A filter that allows every address: the default of the engine, which
/// scans internal networks anyway. The daemon should pass its own.
pub fn allow_all() -> AddressFilter {
    Arc::new(|_| true)
}

/// Longest response head accepted (status line and headers).
const MAX_HEAD: usize = 16 * 1024;

/// Why a fetch failed. Cheap to clone, so that a cache can keep failures.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// The URL is not `http://host[:port]/path`.
    #[error("{url}: not fetched: {reason}")]
    Url {
        /// The URL as found in the certificate.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The host name did not resolve.
    #[error("{host}: cannot resolve: {reason}")]
    Resolve {
        /// The host.
        host: String,
        /// The resolver's reason.
        reason: String,
    },
    /// The host resolves to an address the address filter refuses.
    #[error("{host} resolves to {addr}, which the outbound address policy refuses")]
    Refused {
        /// The host.
        host: String,
        /// The refused address.
        addr: IpAddr,
    },
    /// No complete answer within the timeout.
    #[error("{url}: no complete answer within {secs} s")]
    Timeout {
        /// The URL fetched.
        url: String,
        /// The timeout, in seconds.
        secs: u64,
    },
    /// Connecting, writing or reading failed.
    #[error("{url}: {source}")]
    Io {
        /// The URL fetched.
        url: String,
        /// The I/O error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The server answered with a status other than 200 and not a redirect.
    #[error("{url}: the server answered HTTP {status}")]
    Status {
        /// The URL fetched.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The server redirected; redirects are not followed (they could lead
    /// anywhere the address filter did not see).
    #[error("{url}: the server redirects to {location}; redirects are not followed")]
    Redirect {
        /// The URL fetched.
        url: String,
        /// The `Location` header.
        location: String,
    },
    /// The answer is larger than the cap.
    #[error("{url}: the answer is larger than the {max} byte cap")]
    TooLarge {
        /// The URL fetched.
        url: String,
        /// The cap, in bytes.
        max: usize,
    },
    /// The answer is not HTTP/1.x as this client reads it.
    #[error("{url}: malformed HTTP answer: {reason}")]
    Protocol {
        /// The URL fetched.
        url: String,
        /// What was wrong.
        reason: &'static str,
    },
}

impl FetchError {
    /// Whether trying again later may succeed: network trouble, timeouts and
    /// 5xx answers; not a bad URL, a refused address, a redirect or an
    /// oversized answer.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Resolve { .. }
            | FetchError::Timeout { .. }
            | FetchError::Io { .. }
            | FetchError::Protocol { .. } => true,
            FetchError::Status { status, .. } => *status >= 500,
            FetchError::Url { .. }
            | FetchError::Refused { .. }
            | FetchError::Redirect { .. }
            | FetchError::TooLarge { .. } => false,
        }
    }
}

/// Bounds and address policy of one fetch.
#[derive(Clone)]
pub(crate) struct Limits {
    /// Resolving, connecting, sending and reading, all together.
    pub timeout: Duration,
    /// Largest body accepted.
    pub max_bytes: usize,
    /// Addresses that may be connected to.
    pub filter: AddressFilter,
}

impl fmt::Debug for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limits")
            .field("timeout", &self.timeout)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

/// `GET url`; the body of a 200 answer.
pub(crate) async fn get(url: &str, limits: &Limits) -> Result<Vec<u8>, FetchError> {
    request(url, None, limits).await
}

/// `POST url` with `body` as `content_type`; the body of a 200 answer.
pub(crate) async fn post(
    url: &str,
    content_type: &str,
    body: &[u8],
    limits: &Limits,
) -> Result<Vec<u8>, FetchError> {
    request(url, Some((content_type, body)), limits).await
}

async fn request(
    url: &str,
    body: Option<(&str, &[u8])>,
    limits: &Limits,
) -> Result<Vec<u8>, FetchError> {
    let timeout = || FetchError::Timeout {
        url: url.to_owned(),
        secs: limits.timeout.as_secs().max(1),
    };
    tokio::time::timeout(limits.timeout, exchange(url, body, limits))
        .await
        .map_err(|_| timeout())?
}

/// A URL split into what the request needs.
struct Target {
    host: String,
    port: u16,
    /// Path and query, as sent on the request line.
    path: String,
    /// The `Host` header.
    authority: String,
}

fn parse_url(url: &str) -> Result<Target, FetchError> {
    let bad = |reason| FetchError::Url {
        url: url.to_owned(),
        reason,
    };
    let parsed = url::Url::parse(url).map_err(|_| bad("not a URL"))?;
    if parsed.scheme() != "http" {
        return Err(bad("only http:// URLs are fetched"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("URLs with credentials are not fetched"));
    }
    let host = match parsed.host() {
        Some(url::Host::Domain(name)) => name.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(bad("no host")),
    };
    let port = parsed.port_or_known_default().unwrap_or(80);
    let authority = match parsed.port() {
        Some(port) => format!("{}:{port}", parsed.host_str().unwrap_or(&host)),
        None => parsed.host_str().unwrap_or(&host).to_owned(),
    };
    let path = parsed[url::Position::BeforePath..url::Position::AfterQuery].to_owned();
    Ok(Target {
        host,
        port,
        path: if path.is_empty() {
            "/".to_owned()
        } else {
            path
        },
        authority,
    })
}

/// Resolves the host and checks every address; the addresses to try.
async fn checked_addresses(
    target: &Target,
    filter: &AddressFilter,
) -> Result<Vec<SocketAddr>, FetchError> {
    let addrs: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| FetchError::Resolve {
                host: target.host.clone(),
                reason: e.to_string(),
            })?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(FetchError::Resolve {
            host: target.host.clone(),
            reason: "no addresses".to_owned(),
        });
    }
    // All or nothing: a name that resolves partly inward is refused rather
    // than connected to on its outward addresses only.
    if let Some(refused) = addrs.iter().find(|a| !filter(a.ip())) {
        return Err(FetchError::Refused {
            host: target.host.clone(),
            addr: refused.ip(),
        });
    }
    Ok(addrs)
}

async fn exchange(
    url: &str,
    body: Option<(&str, &[u8])>,
    limits: &Limits,
) -> Result<Vec<u8>, FetchError> {
    let target = parse_url(url)?;
    let io = |source: std::io::Error| FetchError::Io {
        url: url.to_owned(),
        source: Arc::new(source),
    };
    let mut last = None;
    let mut stream = None;
    for addr in checked_addresses(&target, &limits.filter).await? {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some(mut stream) = stream else {
        return Err(io(
            last.unwrap_or_else(|| std::io::ErrorKind::NotConnected.into())
        ));
    };

    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: certkeeper\r\nAccept: */*\r\nConnection: close\r\n",
        if body.is_some() { "POST" } else { "GET" },
        target.path,
        target.authority
    );
    if let Some((content_type, bytes)) = body {
        head.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            bytes.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.map_err(io)?;
    if let Some((_, bytes)) = body {
        stream.write_all(bytes).await.map_err(io)?;
    }
    stream.flush().await.map_err(io)?;
    read_response(url, &mut stream, limits.max_bytes).await
}

/// The parts of a response head this client uses.
struct Head {
    status: u16,
    content_length: Option<usize>,
    chunked: bool,
    location: Option<String>,
}

async fn read_response<R: AsyncRead + Unpin>(
    url: &str,
    stream: &mut R,
    max_bytes: usize,
) -> Result<Vec<u8>, FetchError> {
    let io = |source: std::io::Error| FetchError::Io {
        url: url.to_owned(),
        source: Arc::new(source),
    };
    let protocol = |reason| FetchError::Protocol {
        url: url.to_owned(),
        reason,
    };
    let too_large = || FetchError::TooLarge {
        url: url.to_owned(),
        max: max_bytes,
    };

    // The head, and whatever of the body came with it.
    let mut buffer = Vec::with_capacity(4096);
    let end = loop {
        if let Some(at) = find(&buffer, b"\r\n\r\n") {
            break at;
        }
        if buffer.len() > MAX_HEAD {
            return Err(protocol("response head over 16 KiB"));
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            return Err(protocol("connection closed before the response head ended"));
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = parse_head(&buffer[..end]).ok_or_else(|| protocol("bad status line or header"))?;
    let mut rest = buffer.split_off(end + 4);

    if (300..400).contains(&head.status) {
        return Err(FetchError::Redirect {
            url: url.to_owned(),
            location: head.location.unwrap_or_else(|| "(no Location)".to_owned()),
        });
    }
    if head.status != 200 {
        return Err(FetchError::Status {
            url: url.to_owned(),
            status: head.status,
        });
    }

    if head.chunked {
        return read_chunked(stream, rest, max_bytes, url).await;
    }
    if let Some(length) = head.content_length {
        // Refused before reading a byte of it.
        if length > max_bytes {
            return Err(too_large());
        }
        while rest.len() < length {
            let mut chunk = vec![0u8; (length - rest.len()).min(64 * 1024)];
            let n = stream.read(&mut chunk).await.map_err(io)?;
            if n == 0 {
                return Err(protocol("connection closed before the body ended"));
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        rest.truncate(length);
        return Ok(rest);
    }
    // Neither length nor chunks: the body ends when the server closes.
    loop {
        if rest.len() > max_bytes {
            return Err(too_large());
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = stream.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            return Ok(rest);
        }
        rest.extend_from_slice(&chunk[..n]);
    }
}

fn parse_head(head: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    let mut parsed = Head {
        status,
        content_length: None,
        chunked: false,
        location: None,
    };
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            parsed.content_length = Some(value.parse().ok()?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            parsed.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("location") {
            parsed.location = Some(value.to_owned());
        }
    }
    Some(parsed)
}

/// Decodes a chunked body (RFC 9112 §7.1), `buffered` being what was read
/// past the head already.
async fn read_chunked<R: AsyncRead + Unpin>(
    stream: &mut R,
    mut buffered: Vec<u8>,
    max_bytes: usize,
    url: &str,
) -> Result<Vec<u8>, FetchError> {
    let io = |source: std::io::Error| FetchError::Io {
        url: url.to_owned(),
        source: Arc::new(source),
    };
    let protocol = |reason| FetchError::Protocol {
        url: url.to_owned(),
        reason,
    };
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        // Enough buffered for the size line?
        let Some(line_end) = find(&buffered[at..], b"\r\n").map(|i| at + i) else {
            if buffered.len() - at > 1024 {
                return Err(protocol("chunk size line too long"));
            }
            fill(stream, &mut buffered, &io, &protocol).await?;
            continue;
        };
        let line =
            std::str::from_utf8(&buffered[at..line_end]).map_err(|_| protocol("bad chunk size"))?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| protocol("bad chunk size"))?;
        if size == 0 {
            return Ok(body);
        }
        if body.len().saturating_add(size) > max_bytes {
            return Err(FetchError::TooLarge {
                url: url.to_owned(),
                max: max_bytes,
            });
        }
        let data = line_end + 2;
        while buffered.len() < data + size + 2 {
            fill(stream, &mut buffered, &io, &protocol).await?;
        }
        body.extend_from_slice(&buffered[data..data + size]);
        at = data + size + 2;
        // Keep the buffer from growing with the whole body.
        buffered.drain(..at);
        at = 0;
    }
}

async fn fill<R: AsyncRead + Unpin>(
    stream: &mut R,
    buffered: &mut Vec<u8>,
    io: &impl Fn(std::io::Error) -> FetchError,
    protocol: &impl Fn(&'static str) -> FetchError,
) -> Result<(), FetchError> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await.map_err(io)?;
    if n == 0 {
        return Err(protocol("connection closed inside a chunked body"));
    }
    buffered.extend_from_slice(&chunk[..n]);
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn read(raw: &[u8], max: usize) -> Result<Vec<u8>, FetchError> {
        let mut input = raw;
        read_response("http://ca.test/x", &mut input, max).await
    }

    #[tokio::test]
    async fn bodies_by_length_chunks_and_close() {
        let length = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(read(length, 100).await.unwrap(), b"hello");
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\n\r\n";
        assert_eq!(read(chunked, 100).await.unwrap(), b"hello");
        let close = b"HTTP/1.0 200 OK\r\nContent-Type: x\r\n\r\nhello";
        assert_eq!(read(close, 100).await.unwrap(), b"hello");
    }

    #[tokio::test]
    async fn caps_redirects_and_statuses() {
        let big = b"HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n";
        assert!(matches!(
            read(big, 100).await,
            Err(FetchError::TooLarge { max: 100, .. })
        ));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n";
        assert!(matches!(
            read(chunked, 100).await,
            Err(FetchError::TooLarge { .. })
        ));
        let close = [b"HTTP/1.1 200 OK\r\n\r\n".as_slice(), &[b'x'; 200]].concat();
        assert!(matches!(
            read(&close, 100).await,
            Err(FetchError::TooLarge { .. })
        ));
        let moved = b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\n\r\n";
        let error = read(moved, 100).await.unwrap_err();
        assert!(error.to_string().contains("169.254.169.254"), "{error}");
        assert!(!error.is_transient());
        let missing = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(
            read(missing, 100).await,
            Err(FetchError::Status { status: 404, .. })
        ));
        assert!(matches!(
            read(b"SSH-2.0-OpenSSH\r\n\r\n", 100).await,
            Err(FetchError::Protocol { .. })
        ));
    }

    #[test]
    fn only_plain_http_urls() {
        let target = parse_url("http://[2001:db8::1]:8080/ca.crt?x=1").unwrap();
        assert_eq!(target.host, "2001:db8::1");
        assert_eq!(target.port, 8080);
        assert_eq!(target.path, "/ca.crt?x=1");
        assert_eq!(target.authority, "[2001:db8::1]:8080");
        let target = parse_url("http://crl.example.test").unwrap();
        assert_eq!((target.port, target.path.as_str()), (80, "/"));
        for bad in [
            "https://crl.example.test/a.crl",
            "ldap://ldap.example.test/cn=CA",
            "http://user:pw@crl.example.test/",
            "not a url",
        ] {
            assert!(
                matches!(parse_url(bad), Err(FetchError::Url { .. })),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn every_address_is_checked() {
        let limits = Limits {
            timeout: Duration::from_secs(5),
            max_bytes: 100,
            filter: Arc::new(|ip: IpAddr| !ip.is_loopback()),
        };
        let error = get("http://127.0.0.1:9/", &limits).await.unwrap_err();
        assert!(matches!(error, FetchError::Refused { .. }), "{error}");
        let error = get("http://localhost:9/", &limits).await.unwrap_err();
        assert!(matches!(error, FetchError::Refused { .. }), "{error}");
    }
}
