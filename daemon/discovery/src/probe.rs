//! The network probe: connect to one TLS endpoint and record what it presents.
//!
//! Discovery calls [`Prober::probe`] for every address and port it scans.
//! The probe opens a TCP connection, optionally speaks a STARTTLS dialogue
//! ([`Starttls`]: SMTP, IMAP, POP3, FTP, LDAP, PostgreSQL), runs a TLS
//! handshake and returns the negotiated protocol, the cipher and the peer's
//! certificate chain as presented ([`Probed`]). Nothing is verified here: the
//! installation check works on the recorded chain later.
//!
//! Most servers are probed with rustls (`modern.rs`), whose handshake costs a
//! fraction of OpenSSL 3's. The probe must still see what legacy peers
//! present, so when rustls cannot complete a handshake the probe connects
//! again with OpenSSL at security level 0: TLS 1.0 and 1.1, RSA-1024, SHA-1
//! signatures, expired and self-signed chains all complete the handshake.
//! Anonymous cipher suites are left out so that a handshake always yields a
//! certificate when the server has one. Timeouts, refusals and byte-cap
//! breaches are final: only a refused handshake is tried again.
//!
//! Peers are untrusted, so every phase is bounded: the TCP connect by
//! [`ProbeOptions::connect_timeout`], the STARTTLS dialogue and handshake
//! together by [`ProbeOptions::handshake_timeout`], each plain-text line by
//! 8 KiB and the dialogue by 64 KiB, and the bytes read during the handshake by
//! [`ProbeOptions::max_handshake_bytes`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use openssl::ssl::{ErrorCode, SslConnector, SslMethod, SslOptions, SslRef, SslVerifyMode};
use openssl::x509::X509;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use crate::Starttls;

/// Longest plain-text line accepted from a STARTTLS server.
const MAX_LINE: usize = 8 * 1024;
/// Most plain-text bytes accepted from a STARTTLS server before the upgrade.
const MAX_DIALOGUE: usize = 64 * 1024;
/// Most characters of server text quoted in an error message.
const MAX_QUOTED: usize = 200;
/// Cipher suites offered (TLS 1.2 and older): everything OpenSSL still has,
/// at security level 0, but no anonymous suites, which carry no certificate.
const CIPHERS: &str = "ALL:!aNULL:@SECLEVEL=0";

/// Limits of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeOptions {
    /// Longest wait for the TCP connection to be established (default 3 s).
    pub connect_timeout: Duration,
    /// Longest wait, once connected, for the STARTTLS dialogue (if any) and
    /// the TLS handshake together (default 5 s).
    pub handshake_timeout: Duration,
    /// Most bytes read from the peer during the TLS handshake (default
    /// 1 MiB); a peer sending more, e.g. a 10 MB chain, is cut off with
    /// [`ProbeError::Handshake`].
    pub max_handshake_bytes: usize,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            handshake_timeout: Duration::from_secs(5),
            max_handshake_bytes: 1024 * 1024,
        }
    }
}

/// What an endpoint presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    /// Negotiated protocol as OpenSSL names it (`TLSv1.3`, `TLSv1.2`, `TLSv1`).
    pub tls_version: String,
    /// Negotiated cipher suite as OpenSSL names it.
    pub cipher: String,
    /// The peer's certificates, DER, in presented order (leaf first); never
    /// empty.
    pub chain_der: Vec<Vec<u8>>,
    /// The same certificates as OpenSSL decoded them in the handshake.
    pub chain: Vec<X509>,
}

/// Why a probe did not yield a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The connection was refused (or reset) at connect: nothing listens.
    #[error("connection refused")]
    Refused,
    /// The TCP connection was not established in time: a silent host or a
    /// filtered port.
    #[error("connect timed out")]
    ConnectTimeout,
    /// Connected, but the STARTTLS dialogue and TLS handshake did not finish
    /// in time (e.g. a peer that accepts and never speaks).
    #[error("STARTTLS dialogue or TLS handshake timed out")]
    Timeout,
    /// The plain-text dialogue before TLS failed: the server does not offer
    /// STARTTLS, or replied unexpectedly. Server text is quoted, truncated
    /// to 200 characters, control characters escaped.
    #[error("STARTTLS failed: {0}")]
    Starttls(String),
    /// The TLS handshake failed: not TLS, reset mid-handshake, no shared
    /// protocol or cipher, no certificate, or too many bytes.
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
    /// Any other I/O error (also: OpenSSL could not be set up).
    #[error("I/O error: {0}")]
    Io(String),
}

impl ProbeError {
    /// True when nothing answers on the port ([`ProbeError::Refused`] or
    /// [`ProbeError::ConnectTimeout`]): common and cheap while scanning,
    /// not worth reporting as a failure.
    pub fn is_closed(&self) -> bool {
        matches!(self, ProbeError::Refused | ProbeError::ConnectTimeout)
    }
}

/// Probes TLS endpoints. Holds the OpenSSL client context, which is costly to
/// build: make one and share it (it is `Send + Sync` and cheap to clone).
#[derive(Clone)]
pub struct Prober {
    connector: SslConnector,
    modern: Option<super::modern::Modern>,
    options: ProbeOptions,
}

impl fmt::Debug for Prober {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prober")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Prober {
    /// Builds the OpenSSL client context for legacy-tolerant, non-verifying
    /// probes.
    pub fn new(options: ProbeOptions) -> Result<Self, ProbeError> {
        let setup = |e: openssl::error::ErrorStack| ProbeError::Io(format!("OpenSSL setup: {e}"));
        let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(setup)?;
        // An empty trust store: we record chains, never trust them here. With
        // the default store OpenSSL's (ignored) chain check rereads
        // /etc/ssl/certs for every issuer it cannot find, on every handshake.
        builder.set_cert_store(
            openssl::x509::store::X509StoreBuilder::new()
                .map_err(setup)?
                .build(),
        );
        builder.set_security_level(0);
        builder.set_cipher_list(CIPHERS).map_err(setup)?;
        // None: the lowest version this OpenSSL build supports.
        builder.set_min_proto_version(None).map_err(setup)?;
        builder.set_max_proto_version(None).map_err(setup)?;
        builder.clear_options(SslOptions::NO_SSLV3);
        // Without this, OpenSSL 3 refuses servers that lack RFC 5746
        // renegotiation_info (old ones do). We never renegotiate.
        builder.set_options(SslOptions::ALLOW_UNSAFE_LEGACY_RENEGOTIATION);
        // We record, we do not trust: verification is the checks' job.
        builder.set_verify(SslVerifyMode::NONE);
        let modern = match super::modern::Modern::new() {
            Ok(modern) => Some(modern),
            Err(e) => {
                tracing::warn!(error = %e, "rustls probing unavailable; every probe uses OpenSSL");
                None
            }
        };
        Ok(Self {
            connector: builder.build(),
            modern,
            options,
        })
    }

    /// Like [`Prober::new`], probing with OpenSSL only (no rustls first).
    pub fn openssl_only(options: ProbeOptions) -> Result<Self, ProbeError> {
        let mut prober = Self::new(options)?;
        prober.modern = None;
        Ok(prober)
    }

    /// Connects to `addr`, speaks `starttls` if given, runs the TLS handshake
    /// (sending `sni` as server name if given) and returns what the peer
    /// presented.
    pub async fn probe(
        &self,
        addr: SocketAddr,
        sni: Option<&str>,
        starttls: Option<Starttls>,
    ) -> Result<Probed, ProbeError> {
        let sni = sni.filter(|name| !name.is_empty());
        if let Some(modern) = &self.modern {
            match self.probe_modern(modern, addr, sni, starttls).await {
                Ok(Some(probed)) => return Ok(probed),
                // Connect failures, timeouts and byte caps are final.
                Err(e) => return Err(e),
                // rustls could not do it: OpenSSL tries.
                Ok(None) => {}
            }
        }
        self.probe_openssl(addr, sni, starttls).await
    }

    /// The rustls attempt: `Ok(None)` when the handshake itself failed and
    /// OpenSSL should try.
    async fn probe_modern(
        &self,
        modern: &super::modern::Modern,
        addr: SocketAddr,
        sni: Option<&str>,
        starttls: Option<Starttls>,
    ) -> Result<Option<Probed>, ProbeError> {
        let tcp = self.connect(addr).await?;
        let limit = self.options.max_handshake_bytes;
        let session = async move {
            let tcp = match starttls {
                Some(protocol) => upgrade(tcp, protocol).await?,
                None => tcp,
            };
            let bounded = Bounded {
                inner: tcp,
                read: 0,
                limit,
            };
            match modern.handshake(bounded, sni, addr.ip()).await {
                None => Ok(None),
                Some(Ok(done)) if !done.chain_der.is_empty() => Ok(Some(Probed {
                    tls_version: done.tls_version,
                    cipher: done.cipher,
                    chain_der: done.chain_der,
                    chain: Vec::new(),
                })),
                Some(Ok(_)) => Ok(None),
                Some(Err(e)) if e.get_ref().is_some_and(|inner| inner.is::<TooManyBytes>()) => {
                    Err(ProbeError::Handshake(format!(
                        "peer sent more than {limit} bytes during the handshake"
                    )))
                }
                Some(Err(_)) => Ok(None),
            }
        };
        tokio::time::timeout(self.options.handshake_timeout, session)
            .await
            .map_err(|_| ProbeError::Timeout)?
    }

    /// Opens the TCP connection within the connect timeout.
    async fn connect(&self, addr: SocketAddr) -> Result<TcpStream, ProbeError> {
        let tcp = match tokio::time::timeout(self.options.connect_timeout, TcpStream::connect(addr))
            .await
        {
            Err(_) => return Err(ProbeError::ConnectTimeout),
            Ok(Err(e)) => return Err(connect_error(e)),
            Ok(Ok(tcp)) => tcp,
        };
        // Dialogue lines are small and wait for replies.
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    /// The OpenSSL handshake at security level 0.
    async fn probe_openssl(
        &self,
        addr: SocketAddr,
        sni: Option<&str>,
        starttls: Option<Starttls>,
    ) -> Result<Probed, ProbeError> {
        let mut config = self
            .connector
            .configure()
            .map_err(|e| ProbeError::Io(format!("OpenSSL setup: {e}")))?;
        config.set_use_server_name_indication(sni.is_some());
        config.set_verify_hostname(false);
        let ssl = config
            .into_ssl(sni.unwrap_or(""))
            .map_err(|e| ProbeError::Io(format!("OpenSSL setup: {e}")))?;

        let tcp = self.connect(addr).await?;
        let limit = self.options.max_handshake_bytes;
        let session = async move {
            let tcp = match starttls {
                Some(protocol) => upgrade(tcp, protocol).await?,
                None => tcp,
            };
            let bounded = Bounded {
                inner: tcp,
                read: 0,
                limit,
            };
            let mut stream = SslStream::new(ssl, bounded)
                .map_err(|e| ProbeError::Io(format!("OpenSSL setup: {e}")))?;
            Pin::new(&mut stream)
                .connect()
                .await
                .map_err(|e| handshake_error(&e, limit))?;
            presented(stream.ssl())
        };
        tokio::time::timeout(self.options.handshake_timeout, session)
            .await
            .map_err(|_| ProbeError::Timeout)?
    }
}

/// Maps a failed TCP connect.
fn connect_error(e: io::Error) -> ProbeError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => ProbeError::Refused,
        io::ErrorKind::TimedOut => ProbeError::ConnectTimeout,
        _ => ProbeError::Io(format!("connect: {e}")),
    }
}

/// Reads the negotiated parameters and the chain off a finished handshake.
fn presented(ssl: &SslRef) -> Result<Probed, ProbeError> {
    let encode = |e: openssl::error::ErrorStack| {
        ProbeError::Handshake(format!("cannot encode a peer certificate: {e}"))
    };
    let mut chain_der = Vec::new();
    let mut decoded = Vec::new();
    // On the client side OpenSSL's peer chain includes the leaf.
    if let Some(chain) = ssl.peer_cert_chain() {
        for cert in chain {
            chain_der.push(cert.to_der().map_err(encode)?);
            decoded.push(cert.to_owned());
        }
    }
    if chain_der.is_empty()
        && let Some(leaf) = ssl.peer_certificate()
    {
        chain_der.push(leaf.to_der().map_err(encode)?);
        decoded.push(leaf);
    }
    if chain_der.is_empty() {
        return Err(ProbeError::Handshake(
            "peer presented no certificate".to_owned(),
        ));
    }
    Ok(Probed {
        tls_version: ssl.version_str().to_owned(),
        cipher: ssl
            .current_cipher()
            .map(|c| c.name().to_owned())
            .unwrap_or_default(),
        chain_der,
        chain: decoded,
    })
}

/// Maps a failed TLS handshake to an error that says what happened.
fn handshake_error(e: &openssl::ssl::Error, limit: usize) -> ProbeError {
    if let Some(io_err) = e.io_error() {
        if io_err
            .get_ref()
            .is_some_and(|inner| inner.is::<TooManyBytes>())
        {
            return ProbeError::Handshake(format!(
                "peer sent more than {limit} bytes during the handshake"
            ));
        }
        return match io_err.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => {
                ProbeError::Handshake(format!("connection lost during the handshake: {io_err}"))
            }
            _ => ProbeError::Io(io_err.to_string()),
        };
    }
    if let Some(stack) = e.ssl_error() {
        let reasons: Vec<&str> = stack.errors().iter().filter_map(|r| r.reason()).collect();
        if !reasons.is_empty() {
            return ProbeError::Handshake(reasons.join("; "));
        }
        return ProbeError::Handshake(stack.to_string());
    }
    if e.code() == ErrorCode::ZERO_RETURN || e.code() == ErrorCode::SYSCALL {
        return ProbeError::Handshake("peer closed the connection during the handshake".to_owned());
    }
    ProbeError::Handshake(e.to_string())
}

/// The error [`Bounded`] returns once the peer has sent too much.
#[derive(Debug)]
struct TooManyBytes;

impl fmt::Display for TooManyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("handshake byte limit exceeded")
    }
}

impl std::error::Error for TooManyBytes {}

/// A stream that fails reads once more than `limit` bytes have been read, so
/// that a peer cannot feed the handshake without end.
struct Bounded<S> {
    inner: S,
    read: usize,
    limit: usize,
}

impl<S: AsyncRead + Unpin> AsyncRead for Bounded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read > this.limit {
            return Poll::Ready(Err(io::Error::other(TooManyBytes)));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.read = this.read.saturating_add(buf.filled().len() - before);
        if this.read > this.limit {
            return Poll::Ready(Err(io::Error::other(TooManyBytes)));
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Bounded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Runs the plain-text dialogue of `protocol`, returning the connection ready
/// for the TLS client hello.
async fn upgrade(tcp: TcpStream, protocol: Starttls) -> Result<TcpStream, ProbeError> {
    let mut d = Dialogue::new(tcp, protocol);
    match protocol {
        Starttls::Smtp => smtp(&mut d).await?,
        Starttls::Imap => imap(&mut d).await?,
        Starttls::Pop3 => pop3(&mut d).await?,
        Starttls::Ftp => ftp(&mut d).await?,
        Starttls::Ldap => ldap(&mut d).await?,
        Starttls::Postgres => postgres(&mut d).await?,
    }
    d.finish()
}

/// SMTP (RFC 3207): greeting, EHLO, STARTTLS.
async fn smtp(d: &mut Dialogue) -> Result<(), ProbeError> {
    d.expect_code(220, "greeting").await?;
    d.send(b"EHLO certkeeper.invalid\r\n").await?;
    let ehlo = d.expect_code(250, "reply to EHLO").await?;
    let offered = ehlo.iter().any(|line| {
        line.get(4..)
            .and_then(|text| text.split(|b| b.is_ascii_whitespace()).next())
            .is_some_and(|keyword| keyword.eq_ignore_ascii_case(b"STARTTLS"))
    });
    if !offered {
        return Err(d.fail(
            "server does not offer STARTTLS; EHLO reply",
            &ehlo.join(&b'\n'),
        ));
    }
    d.send(b"STARTTLS\r\n").await?;
    d.expect_code(220, "reply to STARTTLS").await?;
    Ok(())
}

/// FTP (RFC 4217): greeting, AUTH TLS.
async fn ftp(d: &mut Dialogue) -> Result<(), ProbeError> {
    d.expect_code(220, "greeting").await?;
    d.send(b"AUTH TLS\r\n").await?;
    d.expect_code(234, "reply to AUTH TLS").await?;
    Ok(())
}

/// IMAP (RFC 3501): greeting, tagged STARTTLS.
async fn imap(d: &mut Dialogue) -> Result<(), ProbeError> {
    let greeting = d.line().await?;
    if !starts_with_ignore_case(&greeting, b"* OK") {
        return Err(d.fail("expected \"* OK\" greeting, server said", &greeting));
    }
    d.send(b"a001 STARTTLS\r\n").await?;
    loop {
        let line = d.line().await?;
        if line.starts_with(b"* ") {
            continue; // untagged data, e.g. a CAPABILITY line
        }
        if starts_with_ignore_case(&line, b"a001 OK") {
            return Ok(());
        }
        return Err(d.fail("STARTTLS refused, server said", &line));
    }
}

/// POP3 (RFC 2595): greeting, STLS.
async fn pop3(d: &mut Dialogue) -> Result<(), ProbeError> {
    let greeting = d.line().await?;
    if !greeting.starts_with(b"+OK") {
        return Err(d.fail("expected \"+OK\" greeting, server said", &greeting));
    }
    d.send(b"STLS\r\n").await?;
    let reply = d.line().await?;
    if !reply.starts_with(b"+OK") {
        return Err(d.fail("STLS refused, server said", &reply));
    }
    Ok(())
}

/// PostgreSQL: `SSLRequest` (length 8, code 80877103), answered by one byte.
async fn postgres(d: &mut Dialogue) -> Result<(), ProbeError> {
    d.send(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await?;
    let reply = d.exact(1).await?;
    match reply.first() {
        Some(b'S') => Ok(()),
        Some(b'N') => Err(ProbeError::Starttls(
            "PostgreSQL: server does not offer TLS (answered 'N' to SSLRequest)".to_owned(),
        )),
        _ => Err(d.fail("unexpected answer to SSLRequest", &reply)),
    }
}

/// LDAP StartTLS extended request (RFC 4511 §4.14), messageID 1:
/// `LDAPMessage { 1, [APPLICATION 23] { [0] "1.3.6.1.4.1.1466.20037" } }`.
const LDAP_STARTTLS: &[u8] = b"\x30\x1d\x02\x01\x01\x77\x18\x80\x16\
1.3.6.1.4.1.1466.20037";

/// LDAP: StartTLS extended operation; the reply must be resultCode 0.
async fn ldap(d: &mut Dialogue) -> Result<(), ProbeError> {
    d.send(LDAP_STARTTLS).await?;
    let tag = d.exact(1).await?;
    if tag != [0x30] {
        return Err(ProbeError::Starttls(format!(
            "LDAP: reply is not an LDAPMessage (starts with {:#04x})",
            tag.first().copied().unwrap_or(0)
        )));
    }
    let first = d.exact(1).await?;
    let len = match first.first().copied().unwrap_or(0) {
        short @ 0..=0x7f => usize::from(short),
        long @ 0x81..=0x84 => {
            let bytes = d.exact(usize::from(long & 0x7f)).await?;
            bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b))
        }
        other => {
            return Err(ProbeError::Starttls(format!(
                "LDAP: unsupported BER length byte {other:#04x} in reply"
            )));
        }
    };
    if len > MAX_LINE {
        return Err(ProbeError::Starttls(format!(
            "LDAP: reply of {len} bytes is too long"
        )));
    }
    let body = d.exact(len).await?;
    check_ldap_reply(&body)
}

/// Checks the body of the LDAPMessage answering [`LDAP_STARTTLS`].
fn check_ldap_reply(body: &[u8]) -> Result<(), ProbeError> {
    let bad = |what: &str| ProbeError::Starttls(format!("LDAP: malformed reply ({what})"));
    let (tag, id, rest) = ber_tlv(body).ok_or_else(|| bad("messageID"))?;
    if tag != 0x02 {
        return Err(bad("messageID"));
    }
    let (tag, op, _controls) = ber_tlv(rest).ok_or_else(|| bad("protocolOp"))?;
    if tag != 0x78 {
        return Err(ProbeError::Starttls(format!(
            "LDAP: expected an ExtendedResponse, got protocolOp tag {tag:#04x}"
        )));
    }
    let (tag, code, rest) = ber_tlv(op).ok_or_else(|| bad("resultCode"))?;
    if tag != 0x0a || code.is_empty() || code.len() > 4 {
        return Err(bad("resultCode"));
    }
    let code = code.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b));
    let diagnostic = ber_tlv(rest)
        .and_then(|(_, _, rest)| ber_tlv(rest))
        .map(|(_, text, _)| text)
        .unwrap_or_default();
    if id != [1] {
        // e.g. a Notice of Disconnection (messageID 0).
        return Err(ProbeError::Starttls(format!(
            "LDAP: unsolicited notification, resultCode {code}: {}",
            quote(diagnostic)
        )));
    }
    if code != 0 {
        return Err(ProbeError::Starttls(format!(
            "LDAP: StartTLS refused, resultCode {code}: {}",
            quote(diagnostic)
        )));
    }
    Ok(())
}

/// Splits one BER TLV (single-byte tag, definite length) off `input`:
/// `(tag, content, rest)`.
fn ber_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    let (&first, input) = input.split_first()?;
    let (len, input) = match first {
        0..=0x7f => (usize::from(first), input),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7f);
            let bytes = input.get(..n)?;
            let len = bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
            (len, input.get(n..)?)
        }
        _ => return None,
    };
    Some((tag, input.get(..len)?, input.get(len..)?))
}

/// The plain-text phase: lines read from a buffer we own, bounded in length.
struct Dialogue {
    tcp: TcpStream,
    protocol: Starttls,
    buf: Vec<u8>,
    total: usize,
}

impl Dialogue {
    fn new(tcp: TcpStream, protocol: Starttls) -> Self {
        Self {
            tcp,
            protocol,
            buf: Vec::new(),
            total: 0,
        }
    }

    /// An error quoting what the server said.
    fn fail(&self, what: &str, said: &[u8]) -> ProbeError {
        ProbeError::Starttls(format!("{}: {what} {}", name(self.protocol), quote(said)))
    }

    fn io(&self, e: &io::Error) -> ProbeError {
        ProbeError::Io(format!("{} dialogue: {e}", name(self.protocol)))
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), ProbeError> {
        self.tcp.write_all(bytes).await.map_err(|e| self.io(&e))
    }

    /// Reads more bytes into the buffer; the server closing is an error.
    async fn fill(&mut self) -> Result<(), ProbeError> {
        if self.total >= MAX_DIALOGUE {
            return Err(ProbeError::Starttls(format!(
                "{}: server sent more than {MAX_DIALOGUE} bytes before TLS",
                name(self.protocol)
            )));
        }
        let mut chunk = [0u8; 4096];
        let want = chunk.len().min(MAX_DIALOGUE - self.total);
        let n = self
            .tcp
            .read(&mut chunk[..want])
            .await
            .map_err(|e| self.io(&e))?;
        if n == 0 {
            return Err(self.fail("server closed the connection; it had sent", &self.buf));
        }
        self.total += n;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// One line, without its line ending.
    async fn line(&mut self) -> Result<Vec<u8>, ProbeError> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                if end > MAX_LINE {
                    break;
                }
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.buf.len() > MAX_LINE {
                break;
            }
            self.fill().await?;
        }
        Err(ProbeError::Starttls(format!(
            "{}: server sent a line longer than {MAX_LINE} bytes",
            name(self.protocol)
        )))
    }

    /// Exactly `n` bytes.
    async fn exact(&mut self, n: usize) -> Result<Vec<u8>, ProbeError> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// A reply of numbered lines (SMTP, FTP), multi-line with `NNN-` until
    /// `NNN `; fails unless its code is `code`. Returns its lines.
    async fn expect_code(&mut self, code: u16, what: &str) -> Result<Vec<Vec<u8>>, ProbeError> {
        let first = self.line().await?;
        let prefix: Option<[u8; 3]> = first
            .get(..3)
            .and_then(|p| p.try_into().ok())
            .filter(|p: &[u8; 3]| p.iter().all(u8::is_ascii_digit));
        let Some(prefix) = prefix else {
            return Err(self.fail(&format!("expected {code} {what}, server said"), &first));
        };
        let mut lines = vec![first];
        if lines[0].get(3) == Some(&b'-') {
            // FTP allows continuation lines without the code; both end with
            // the code followed by a space (or nothing).
            loop {
                let line = self.line().await?;
                let last = line.starts_with(&prefix) && matches!(line.get(3), None | Some(b' '));
                lines.push(line);
                if last {
                    break;
                }
            }
        }
        if prefix != *code.to_string().as_bytes() {
            return Err(self.fail(
                &format!("expected {code} {what}, server said"),
                &lines.join(&b'\n'),
            ));
        }
        Ok(lines)
    }

    /// The connection, once the server's reply has been read to its end.
    fn finish(self) -> Result<TcpStream, ProbeError> {
        if !self.buf.is_empty() {
            // TLS is client-first: anything here is not part of the handshake.
            return Err(self.fail("server sent data after its last reply:", &self.buf));
        }
        Ok(self.tcp)
    }
}

/// The protocol's name in messages.
fn name(protocol: Starttls) -> &'static str {
    match protocol {
        Starttls::Smtp => "SMTP",
        Starttls::Imap => "IMAP",
        Starttls::Pop3 => "POP3",
        Starttls::Ftp => "FTP",
        Starttls::Ldap => "LDAP",
        Starttls::Postgres => "PostgreSQL",
    }
}

fn starts_with_ignore_case(line: &[u8], prefix: &[u8]) -> bool {
    line.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

/// Server text for an error message: quoted, at most [`MAX_QUOTED`]
/// characters, control characters escaped.
fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::from("\"");
    for (i, c) in text.chars().enumerate() {
        if i == MAX_QUOTED {
            out.push('…');
            break;
        }
        if c.is_control() || c == '"' || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// How long a probe of a hostile peer may take before the test calls it
    /// stalled: far above the timeouts under test, so a loaded machine does
    /// not flake, far below "forever".
    const BOUNDED: Duration = Duration::from_secs(20);
    use std::net::{Ipv4Addr, TcpListener as StdListener};
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::sync::OnceLock;
    use std::time::Instant;

    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::{PKey, Private};
    use openssl::ssl::SslAcceptor;
    use openssl::x509::{X509, X509NameBuilder};
    use tokio::net::TcpListener;

    use certkeeper_model::inventory::parse::parse_der;

    fn prober(options: ProbeOptions) -> Prober {
        Prober::new(options).unwrap()
    }

    fn quick() -> ProbeOptions {
        ProbeOptions {
            connect_timeout: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(1),
            max_handshake_bytes: 64 * 1024,
        }
    }

    fn fingerprint(der: &[u8]) -> String {
        parse_der(der).unwrap().fingerprint
    }

    /// A port nothing listens on (bound, then released).
    fn free_port() -> u16 {
        StdListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn local(port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    /// An `openssl s_server`, killed on drop.
    struct SServer(Child);

    impl Drop for SServer {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    async fn s_server(args: &[&str]) -> (SServer, SocketAddr) {
        let port = free_port();
        let accept = format!("127.0.0.1:{port}");
        let child = Command::new("openssl")
            .args(["s_server", "-accept", &accept, "-www"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = SServer(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(local(port)).await.is_err() {
            assert!(Instant::now() < deadline, "s_server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (server, local(port))
    }

    /// Writes a self-signed certificate and key with `openssl req`; returns
    /// (cert, key) paths.
    fn openssl_req(dir: &Path, name: &str, extra: &[&str]) -> (String, String) {
        let cert = dir.join(format!("{name}.pem")).display().to_string();
        let key = dir.join(format!("{name}.key")).display().to_string();
        let subject = format!("/CN={name}");
        let status = Command::new("openssl")
            .args(["req", "-x509", "-nodes", "-days", "2", "-subj", &subject])
            .args(["-keyout", &key, "-out", &cert])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl req failed for {name}");
        (cert, key)
    }

    /// SHA-256 fingerprint as `openssl x509 -fingerprint` prints it,
    /// normalised to lowercase hex without colons.
    fn cli_fingerprint(cert: &str) -> String {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in", cert])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let hex = text.trim().rsplit('=').next().unwrap();
        hex.replace(':', "").to_lowercase()
    }

    #[tokio::test]
    async fn s_server_chain_version_cipher_and_sni() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = openssl_req(dir.path(), "default.test", &["-newkey", "rsa:2048"]);
        let (cert2, key2) = openssl_req(
            dir.path(),
            "other.test",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        );
        let (_server, addr) = s_server(&[
            "-cert",
            &cert,
            "-key",
            &key,
            "-servername",
            "other.test",
            "-cert2",
            &cert2,
            "-key2",
            &key2,
        ])
        .await;
        let prober = prober(ProbeOptions::default());

        let plain = prober.probe(addr, None, None).await.unwrap();
        assert_eq!(plain.chain_der.len(), 1);
        assert_eq!(fingerprint(&plain.chain_der[0]), cli_fingerprint(&cert));
        assert_eq!(plain.tls_version, "TLSv1.3");
        assert!(plain.cipher.starts_with("TLS_"), "cipher {}", plain.cipher);

        let named = prober.probe(addr, Some("other.test"), None).await.unwrap();
        assert_eq!(fingerprint(&named.chain_der[0]), cli_fingerprint(&cert2));

        // A name the server does not know gets the default certificate.
        let unknown = prober.probe(addr, Some("nope.test"), None).await.unwrap();
        assert_eq!(fingerprint(&unknown.chain_der[0]), cli_fingerprint(&cert));
    }

    #[tokio::test]
    async fn legacy_tls1_rsa1024_sha1_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = openssl_req(dir.path(), "legacy.test", &["-newkey", "rsa:1024", "-sha1"]);
        // This machine's OpenSSL 3 still has TLS 1.0 when the security level
        // is lowered to 0, as s_server does here.
        let (_server, addr) = s_server(&[
            "-cert",
            &cert,
            "-key",
            &key,
            "-tls1",
            "-cipher",
            "ALL:@SECLEVEL=0",
        ])
        .await;
        let probed = prober(ProbeOptions::default())
            .probe(addr, None, None)
            .await
            .unwrap();
        assert_eq!(probed.tls_version, "TLSv1");
        let leaf = parse_der(&probed.chain_der[0]).unwrap();
        assert_eq!(leaf.fingerprint, cli_fingerprint(&cert));
        assert_eq!(leaf.key_bits, 1024);
        assert_eq!(leaf.signature_algorithm, "sha1WithRSAEncryption");
        assert!(leaf.self_signed);
    }

    /// A listener whose every connection is handed to `serve` (the probe
    /// connects twice when rustls gives up and OpenSSL tries).
    async fn fake<F, Fut>(serve: F) -> SocketAddr
    where
        F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve(tcp));
            }
        });
        addr
    }

    #[tokio::test]
    async fn silent_peer_times_out() {
        let addr = fake(|tcp| async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(tcp);
        })
        .await;
        let start = Instant::now();
        let err = prober(quick()).probe(addr, None, None).await.unwrap_err();
        assert_eq!(err, ProbeError::Timeout);
        assert!(!err.is_closed());
        assert!(
            start.elapsed() < BOUNDED,
            "must end in bounded time, took {:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn silent_starttls_peer_times_out() {
        let addr = fake(|tcp| async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(tcp);
        })
        .await;
        let start = Instant::now();
        let err = prober(quick())
            .probe(addr, None, Some(Starttls::Smtp))
            .await
            .unwrap_err();
        assert_eq!(err, ProbeError::Timeout);
        assert!(
            start.elapsed() < BOUNDED,
            "must end in bounded time, took {:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn garbage_is_a_handshake_error() {
        let addr = fake(|mut tcp| async move {
            let _ = tcp.write_all(&[b'A'; 64 * 1024]).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        })
        .await;
        let start = Instant::now();
        let err = prober(ProbeOptions::default())
            .probe(addr, None, None)
            .await
            .unwrap_err();
        assert!(matches!(err, ProbeError::Handshake(_)), "{err:?}");
        assert!(
            start.elapsed() < BOUNDED,
            "must end in bounded time, took {:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn reset_mid_handshake_is_an_error() {
        let addr = fake(|mut tcp| async move {
            let mut hello = [0u8; 5];
            let _ = tcp.read_exact(&mut hello).await;
            // Zero linger: close with RST rather than FIN.
            let _ = tcp.set_zero_linger();
            drop(tcp);
        })
        .await;
        let err = prober(quick()).probe(addr, None, None).await.unwrap_err();
        assert!(
            matches!(err, ProbeError::Handshake(_) | ProbeError::Io(_)),
            "{err:?}"
        );
    }

    /// A TLS 1.2 ServerHello (TLS_RSA_WITH_AES_128_CBC_SHA) and then a
    /// Certificate message announcing 99,000 bytes (under OpenSSL's own
    /// 100 KiB certificate-list limit), followed by endless 16 KiB handshake
    /// records of junk: 10 MB in all.
    fn endless_handshake() -> Vec<u8> {
        let mut hello = vec![0x02, 0, 0, 38, 0x03, 0x03];
        hello.extend_from_slice(&[0x11; 32]); // server random
        hello.extend_from_slice(&[0, 0x00, 0x2f, 0]); // no session id, cipher, null compression
        let mut out = vec![0x16, 0x03, 0x03, 0, 42];
        out.extend_from_slice(&hello);
        let mut junk = vec![0x0b, 0x01, 0x82, 0xb8]; // Certificate, 99,000 bytes
        junk.resize(16 * 1024, 0x42);
        while out.len() < 10_000_000 {
            out.extend_from_slice(&[0x16, 0x03, 0x03, 0x40, 0x00]);
            out.extend_from_slice(&junk);
            junk.fill(0x42);
        }
        out
    }

    #[tokio::test]
    async fn endless_handshake_is_cut_off() {
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
        let addr = fake(move |mut tcp| {
            let done_tx = done_tx.clone();
            async move {
                let mut hello = [0u8; 5];
                let _ = tcp.read_exact(&mut hello).await;
                let sent = tcp.write_all(&endless_handshake()).await;
                let _ = done_tx.send(sent.is_ok());
            }
        })
        .await;
        let start = Instant::now();
        let err = prober(ProbeOptions {
            handshake_timeout: Duration::from_secs(5),
            ..quick()
        })
        .probe(addr, None, None)
        .await
        .unwrap_err();
        assert_eq!(
            err,
            ProbeError::Handshake("peer sent more than 65536 bytes during the handshake".into())
        );
        assert!(
            start.elapsed() < BOUNDED,
            "must end in bounded time, took {:?}",
            start.elapsed()
        );
        // The server could not deliver its 10 MB: we stopped reading.
        let delivered = tokio::time::timeout(Duration::from_secs(5), done_rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(!delivered);
    }

    #[tokio::test]
    async fn closed_port_is_refused() {
        let err = prober(quick())
            .probe(local(free_port()), None, None)
            .await
            .unwrap_err();
        assert_eq!(err, ProbeError::Refused);
        assert!(err.is_closed());
    }

    #[tokio::test]
    async fn full_accept_queue_is_a_connect_timeout() {
        // Linux drops SYNs while a listener's accept queue is full, which is
        // what a silent (filtered) host looks like to the prober.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(local(0)).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..4 {
            let connect =
                tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr));
            fillers.push(connect.await);
        }
        let start = Instant::now();
        let err = prober(ProbeOptions {
            connect_timeout: Duration::from_millis(500),
            ..quick()
        })
        .probe(addr, None, None)
        .await
        .unwrap_err();
        assert_eq!(err, ProbeError::ConnectTimeout);
        assert!(err.is_closed());
        assert!(
            start.elapsed() < BOUNDED,
            "must end in bounded time, took {:?}",
            start.elapsed()
        );
        drop((fillers, listener));
    }

    /// Certificate and key served by the in-test STARTTLS servers.
    fn identity() -> &'static (X509, PKey<Private>) {
        static IDENTITY: OnceLock<(X509, PKey<Private>)> = OnceLock::new();
        IDENTITY.get_or_init(|| {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
            let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
            let mut name = X509NameBuilder::new().unwrap();
            name.append_entry_by_text("CN", "mail.test").unwrap();
            let name = name.build();
            let mut cert = X509::builder().unwrap();
            cert.set_version(2).unwrap();
            let serial = BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap();
            cert.set_serial_number(&serial).unwrap();
            cert.set_subject_name(&name).unwrap();
            cert.set_issuer_name(&name).unwrap();
            cert.set_pubkey(&key).unwrap();
            cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
                .unwrap();
            cert.set_not_after(&Asn1Time::days_from_now(2).unwrap())
                .unwrap();
            cert.sign(&key, MessageDigest::sha256()).unwrap();
            (cert.build(), key)
        })
    }

    /// One step of a fake server's plain-text script.
    #[derive(Clone)]
    enum Step {
        /// Send these bytes.
        Say(&'static [u8]),
        /// Read exactly these bytes from the client.
        Hear(&'static [u8]),
    }

    /// A fake server that plays `script`, then (if the client followed it)
    /// accepts TLS with [`identity`].
    async fn scripted(script: Vec<Step>) -> SocketAddr {
        fake(move |mut tcp| {
            let script = script.clone();
            async move {
                for step in script {
                    match step {
                        Step::Say(bytes) => tcp.write_all(bytes).await.unwrap(),
                        Step::Hear(expected) => {
                            let mut got = vec![0u8; expected.len()];
                            if tcp.read_exact(&mut got).await.is_err() {
                                return;
                            }
                            assert_eq!(got, expected, "{}", quote(&got));
                        }
                    }
                }
                let (cert, key) = identity();
                let mut acceptor =
                    SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
                acceptor.set_certificate(cert).unwrap();
                acceptor.set_private_key(key).unwrap();
                let ssl = openssl::ssl::Ssl::new(acceptor.build().context()).unwrap();
                let mut tls = SslStream::new(ssl, tcp).unwrap();
                if Pin::new(&mut tls).accept().await.is_ok() {
                    // Hold the connection until the client goes away.
                    let mut sink = [0u8; 64];
                    let _ = tls.read(&mut sink).await;
                }
            }
        })
        .await
    }

    fn script(protocol: Starttls) -> Vec<Step> {
        use Step::{Hear, Say};
        match protocol {
            Starttls::Smtp => vec![
                Say(b"220-mail.test ESMTP\r\n220 ready\r\n"),
                Hear(b"EHLO certkeeper.invalid\r\n"),
                Say(b"250-mail.test\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n"),
                Hear(b"STARTTLS\r\n"),
                Say(b"220 2.0.0 go ahead\r\n"),
            ],
            Starttls::Imap => vec![
                Say(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"),
                Hear(b"a001 STARTTLS\r\n"),
                Say(b"* CAPABILITY IMAP4rev1\r\na001 OK Begin TLS negotiation now\r\n"),
            ],
            Starttls::Pop3 => vec![
                Say(b"+OK POP3 ready\r\n"),
                Hear(b"STLS\r\n"),
                Say(b"+OK go\r\n"),
            ],
            Starttls::Ftp => vec![
                Say(b"220-Welcome\r\n  free-form line\r\n220 FTP ready\r\n"),
                Hear(b"AUTH TLS\r\n"),
                Say(b"234 AUTH TLS OK.\r\n"),
            ],
            // ExtendedResponse, resultCode 0, with the responseName, and a
            // long-form length on the outer SEQUENCE.
            Starttls::Ldap => vec![
                Hear(LDAP_STARTTLS),
                Say(
                    b"\x30\x81\x24\x02\x01\x01\x78\x1f\x0a\x01\x00\x04\x00\x04\x00\x8a\x16\
1.3.6.1.4.1.1466.20037",
                ),
            ],
            Starttls::Postgres => vec![Hear(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]), Say(b"S")],
        }
    }

    #[tokio::test]
    async fn starttls_dialogues_upgrade_and_return_the_chain() {
        let prober = prober(quick());
        let (cert, _) = identity();
        let expected = cert.to_der().unwrap();
        for protocol in [
            Starttls::Smtp,
            Starttls::Imap,
            Starttls::Pop3,
            Starttls::Ftp,
            Starttls::Ldap,
            Starttls::Postgres,
        ] {
            let addr = scripted(script(protocol)).await;
            let probed = prober
                .probe(addr, Some("mail.test"), Some(protocol))
                .await
                .unwrap_or_else(|e| panic!("{protocol:?}: {e}"));
            assert_eq!(probed.chain_der, vec![expected.clone()], "{protocol:?}");
        }
    }

    #[tokio::test]
    async fn smtp_without_starttls_is_reported() {
        let addr = scripted(vec![
            Step::Say(b"220 mail.test ESMTP\r\n"),
            Step::Hear(b"EHLO certkeeper.invalid\r\n"),
            Step::Say(b"250-mail.test\r\n250 SIZE 10240000\r\n"),
        ])
        .await;
        let err = prober(quick())
            .probe(addr, None, Some(Starttls::Smtp))
            .await
            .unwrap_err();
        let ProbeError::Starttls(message) = &err else {
            panic!("{err:?}")
        };
        assert!(
            message.contains("server does not offer STARTTLS"),
            "{message}"
        );
        assert!(message.contains("250 SIZE 10240000"), "{message}");
    }

    #[tokio::test]
    async fn smtp_rejection_is_quoted_truncated_and_escaped() {
        let long = format!("554 no\x1b[31m {}\r\n", "x".repeat(500))
            .into_bytes()
            .leak();
        let addr = scripted(vec![Step::Say(long)]).await;
        let err = prober(quick())
            .probe(addr, None, Some(Starttls::Smtp))
            .await
            .unwrap_err();
        let ProbeError::Starttls(message) = &err else {
            panic!("{err:?}")
        };
        assert!(message.contains("expected 220 greeting"), "{message}");
        assert!(message.contains(r#""554 no\u{1b}[31m xxx"#), "{message}");
        assert!(message.len() < 300, "{message}");
    }

    #[tokio::test]
    async fn postgres_without_tls_is_reported() {
        let addr = scripted(vec![
            Step::Hear(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]),
            Step::Say(b"N"),
        ])
        .await;
        let err = prober(quick())
            .probe(addr, None, Some(Starttls::Postgres))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ProbeError::Starttls(m) if m.contains("'N'")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn ldap_refusal_is_reported() {
        // resultCode 53 (unwillingToPerform) with a diagnostic message.
        let addr = scripted(vec![
            Step::Hear(LDAP_STARTTLS),
            Step::Say(b"\x30\x13\x02\x01\x01\x78\x0e\x0a\x01\x35\x04\x00\x04\x07no keys"),
        ])
        .await;
        let err = prober(quick())
            .probe(addr, None, Some(Starttls::Ldap))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ProbeError::Starttls("LDAP: StartTLS refused, resultCode 53: \"no keys\"".into())
        );
    }

    #[tokio::test]
    async fn imap_refusal_and_early_close_are_reported() {
        let addr = scripted(vec![
            Step::Say(b"* OK ready\r\n"),
            Step::Hear(b"a001 STARTTLS\r\n"),
            Step::Say(b"a001 BAD unknown command\r\n"),
        ])
        .await;
        let err = prober(quick())
            .probe(addr, None, Some(Starttls::Imap))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ProbeError::Starttls(m) if m.contains("a001 BAD unknown command")),
            "{err:?}"
        );

        let addr = fake(|mut tcp| async move {
            let _ = tcp.write_all(b"+OK half a greet").await;
        })
        .await;
        let err = prober(quick())
            .probe(addr, None, Some(Starttls::Pop3))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ProbeError::Starttls(m) if m.contains("closed") && m.contains("half a greet")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn endless_line_is_cut_off() {
        let addr = fake(|mut tcp| async move {
            let _ = tcp.write_all(&vec![b'2'; 1024 * 1024]).await;
        })
        .await;
        let err = prober(quick())
            .probe(addr, None, Some(Starttls::Smtp))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ProbeError::Starttls(m) if m.contains("longer than 8192")),
            "{err:?}"
        );
    }

    #[test]
    fn ldap_request_is_well_formed_ber() {
        let (tag, message, rest) = ber_tlv(LDAP_STARTTLS).unwrap();
        assert_eq!((tag, rest.len()), (0x30, 0));
        let (tag, id, rest) = ber_tlv(message).unwrap();
        assert_eq!((tag, id), (0x02, &[1u8][..]));
        let (tag, op, _) = ber_tlv(rest).unwrap();
        assert_eq!(tag, 0x77);
        let (tag, oid, rest) = ber_tlv(op).unwrap();
        assert_eq!(
            (tag, oid, rest.len()),
            (0x80, &b"1.3.6.1.4.1.1466.20037"[..], 0)
        );
    }

    #[test]
    fn ber_lengths_are_bounded() {
        assert_eq!(
            ber_tlv(&[0x04, 0x81, 0x02, b'a', b'b']),
            Some((0x04, &b"ab"[..], &b""[..]))
        );
        // Declared longer than the input, indefinite, or absurdly long forms.
        assert_eq!(ber_tlv(&[0x04, 0x05, b'a']), None);
        assert_eq!(ber_tlv(&[0x04, 0x80, 0, 0]), None);
        assert_eq!(ber_tlv(&[0x04, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(ber_tlv(&[0x04, 0x89, 1, 2, 3, 4, 5, 6, 7, 8, 9]), None);
        assert!(check_ldap_reply(&[0x02, 0x01]).is_err());
    }

    #[test]
    fn quote_escapes_and_truncates() {
        assert_eq!(quote(b"a\r\n\"b\"\x00"), r#""a\r\n\"b\"\u{0}""#);
        let long = quote(&[b'y'; 1000]);
        assert_eq!(long.chars().count(), 200 + 3);
    }

    #[test]
    fn prober_can_be_shared_across_tasks() {
        fn send_sync<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: T) {}
        let prober = prober(ProbeOptions::default());
        send_sync(&prober);
        send(prober.probe(local(1), None, None));
        assert!(format!("{prober:?}").contains("handshake_timeout"));
    }
}
