//! The HTTP client CT logs are read with: HTTP/1.1 over hyper, `http://`
//! or `https://` (rustls), one connection a request, every request bounded
//! by one timeout (connect, send, read the whole body) and a byte cap on
//! the body, checked before it is read when the length is announced.
//! Addresses go through the same [`AddressFilter`] as the crate's other
//! outbound fetches ([`crate::fetch`]): the host is resolved here and every
//! address checked before connecting to one of them. Redirects are not
//! followed.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::BodyExt as _;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::fetch::{AddressFilter, allow_all};

/// How requests to logs are made.
#[derive(Clone)]
pub struct ClientOptions {
    /// Per request: resolving, connecting, sending and reading the body.
    pub timeout: Duration,
    /// Largest body accepted (after gzip decoding too), in bytes.
    pub max_body: usize,
    /// Addresses that may be connected to (the daemon's outbound policy).
    pub filter: AddressFilter,
    /// TLS settings for `https://` logs; `None` uses the system's trust
    /// roots.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(30),
            max_body: 8 * 1024 * 1024,
            filter: allow_all(),
            tls: None,
        }
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("timeout", &self.timeout)
            .field("max_body", &self.max_body)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The URL cannot be fetched (scheme, syntax, credentials).
    #[error("{url}: not fetched: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The host resolves to an address the outbound policy refuses.
    #[error("{url}: {addr} is refused by the outbound address policy")]
    Refused {
        /// The URL.
        url: String,
        /// The refused address.
        addr: IpAddr,
    },
    /// No complete answer within the timeout.
    #[error("{url}: no complete answer within {millis} ms")]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout.
        millis: u128,
    },
    /// Resolving, connecting, TLS or HTTP failed.
    #[error("{url}: {reason}")]
    Io {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The server answered with a status other than 200.
    #[error("{url}: the server answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The body is larger than the cap.
    #[error("{url}: the answer is larger than the {max} byte cap")]
    TooLarge {
        /// The URL.
        url: String,
        /// The cap.
        max: usize,
    },
}

impl ClientError {
    /// Whether trying again may succeed: network trouble, timeouts, 429 and
    /// 5xx answers.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Timeout { .. } | ClientError::Io { .. } => true,
            ClientError::Status { status, .. } => *status == 429 || *status >= 500,
            ClientError::Url { .. }
            | ClientError::Refused { .. }
            | ClientError::TooLarge { .. } => false,
        }
    }

    /// Whether the server said the thing asked for is not there (404, or
    /// 400 as RFC 6962 logs answer for entries beyond what they serve).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Status { status, .. } if *status == 404 || *status == 400)
    }
}

/// A client for one log (cheap to clone).
#[derive(Clone, Debug)]
pub struct Client {
    options: ClientOptions,
}

fn system_tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                // A system root rustls cannot read is skipped, not fatal.
                let _ = roots.add(cert);
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = match rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
            {
                Ok(builder) => builder.with_root_certificates(roots).with_no_client_auth(),
                // ring supports the default versions; this is the same
                // config through the process-wide provider.
                Err(_) => rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            };
            Arc::new(config)
        })
        .clone()
}

impl Client {
    /// A client with these options.
    pub fn new(options: ClientOptions) -> Client {
        Client { options }
    }

    /// The options.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// `GET url`: the body of a 200 answer, bounded in time and size.
    pub async fn get(&self, url: &str) -> Result<Vec<u8>, ClientError> {
        let timeout = self.options.timeout;
        match tokio::time::timeout(timeout, self.exchange(url)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout {
                url: url.to_owned(),
                millis: timeout.as_millis(),
            }),
        }
    }

    async fn exchange(&self, url: &str) -> Result<Vec<u8>, ClientError> {
        let bad = |reason: &str| ClientError::Url {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let io = |reason: String| ClientError::Io {
            url: url.to_owned(),
            reason,
        };
        let parsed = url::Url::parse(url).map_err(|_| bad("not a URL"))?;
        let https = match parsed.scheme() {
            "http" => false,
            "https" => true,
            _ => return Err(bad("only http:// and https:// are fetched")),
        };
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad("URLs with credentials are not fetched"));
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(name)) => name.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(bad("no host")),
        };
        let port = parsed
            .port_or_known_default()
            .unwrap_or(if https { 443 } else { 80 });
        let authority = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => host.clone(),
        };
        let path = &parsed[url::Position::BeforePath..url::Position::AfterQuery];
        let path = if path.is_empty() { "/" } else { path };

        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| io(format!("cannot resolve {host}: {e}")))?
                .collect(),
        };
        if let Some(refused) = addrs.iter().find(|a| !(self.options.filter)(a.ip())) {
            return Err(ClientError::Refused {
                url: url.to_owned(),
                addr: refused.ip(),
            });
        }
        let mut last = None;
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(stream) = stream else {
            return Err(io(match last {
                Some(e) => format!("cannot connect: {e}"),
                None => format!("{host} has no addresses"),
            }));
        };
        let _ = stream.set_nodelay(true);
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::USER_AGENT, "certkeeper")
            .header(hyper::header::ACCEPT_ENCODING, "gzip, identity")
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|e| bad(&e.to_string()))?;
        if https {
            let config = self.options.tls.clone().unwrap_or_else(system_tls);
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|_| bad("the host is not a valid TLS server name"))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, stream)
                .await
                .map_err(|e| io(format!("TLS: {e}")))?;
            self.send(url, tls, request).await
        } else {
            self.send(url, stream, request).await
        }
    }

    async fn send<S>(
        &self,
        url: &str,
        stream: S,
        request: hyper::Request<http_body_util::Empty<Bytes>>,
    ) -> Result<Vec<u8>, ClientError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = |reason: String| ClientError::Io {
            url: url.to_owned(),
            reason,
        };
        let max = self.options.max_body;
        let too_large = || ClientError::TooLarge {
            url: url.to_owned(),
            max,
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| io(format!("HTTP: {e}")))?;
        let exchange = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| io(format!("HTTP: {e}")))?;
            let status = response.status().as_u16();
            if status != 200 {
                return Err(ClientError::Status {
                    url: url.to_owned(),
                    status,
                });
            }
            let length = response
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if length.is_some_and(|l| l > max as u64) {
                return Err(too_large());
            }
            let gzip = response
                .headers()
                .get(hyper::header::CONTENT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
            let mut body = response.into_body();
            let mut out = Vec::with_capacity(length.unwrap_or(0).min(max as u64) as usize);
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| io(format!("HTTP body: {e}")))?;
                if let Ok(data) = frame.into_data() {
                    if out.len() + data.len() > max {
                        return Err(too_large());
                    }
                    out.extend_from_slice(&data);
                }
            }
            if gzip {
                out = super::tiles::gunzip(&out, max).map_err(|reason| io(reason.to_owned()))?;
            }
            Ok(out)
        };
        tokio::select! {
            result = exchange => result,
            closed = connection => Err(io(match closed {
                Ok(()) => "the connection closed early".to_owned(),
                Err(e) => format!("HTTP: {e}"),
            })),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves one connection with `head` and then `chunks` of body (each
    /// written as it is, so chunked encoding is the caller's), then stalls.
    async fn raw_server(head: &'static str, chunk: Vec<u8>, repeat: usize) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(head.as_bytes()).await;
            for _ in 0..repeat {
                if stream.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        url
    }

    fn client() -> Client {
        Client::new(ClientOptions {
            timeout: Duration::from_millis(800),
            max_body: 64 * 1024,
            ..ClientOptions::default()
        })
    }

    #[tokio::test]
    async fn chunked_bodies_past_the_cap_are_refused() {
        let chunk = format!("1000\r\n{}\r\n", "A".repeat(0x1000)).into_bytes();
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let url = raw_server(head, chunk, 1000).await;
        let error = client().get(&url).await.unwrap_err();
        assert!(matches!(error, ClientError::TooLarge { .. }), "{error}");
        assert!(!error.is_transient());
    }

    #[tokio::test]
    async fn gzip_bombs_are_refused() {
        let data = vec![0u8; 10 * 1024 * 1024];
        let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
        gz.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(&data, 9));
        gz.extend_from_slice(&[0; 8]);
        assert!(gz.len() < 64 * 1024);
        let head: &'static str = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
                gz.len()
            )
            .into_boxed_str(),
        );
        let url = raw_server(head, gz, 1).await;
        let error = client().get(&url).await.unwrap_err();
        assert!(error.to_string().contains("size cap"), "{error}");
    }

    #[tokio::test]
    async fn a_body_that_stops_coming_times_out() {
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n";
        let url = raw_server(head, b"partial".to_vec(), 1).await;
        let error = client().get(&url).await.unwrap_err();
        assert!(matches!(error, ClientError::Timeout { .. }), "{error}");
        assert!(error.is_transient());
    }
}
