//! HTTP-01 challenges (RFC 8555 section 8.3): the CA fetches
//! `http://{name}/.well-known/acme-challenge/{token}` and expects the key
//! authorization.
//!
//! Two ways to answer: [`Http01Responder`], a small built-in server bound to
//! the configured address only while orders are in flight (so a reloaded
//! daemon can bind it again) and shared by all of them, or a webroot where
//! [`write_token`] puts the file an existing web server serves.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::CONTENT_TYPE;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const PREFIX: &str = "/.well-known/acme-challenge/";

/// The built-in HTTP-01 responder of one connector.
pub struct Http01Responder {
    shared: Arc<Shared>,
}

struct Shared {
    listen: SocketAddr,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Token to key authorization, for every challenge in flight.
    tokens: HashMap<String, String>,
    server: Option<JoinHandle<()>>,
    leases: usize,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves only a map of strings behind.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Http01Responder {
    /// A responder that will bind `listen` when first needed.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            shared: Arc::new(Shared {
                listen,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Makes sure the server runs and holds it up until the lease drops.
    pub async fn lease(&self) -> Result<Http01Lease, String> {
        // A server just stopped may hold the port for a moment.
        let mut attempts = 50;
        loop {
            attempts -= 1;
            {
                let mut state = self.shared.state();
                if state.server.is_none() {
                    match bind(self.shared.listen) {
                        Ok(listener) => {
                            let shared = self.shared.clone();
                            state.server = Some(tokio::spawn(serve(listener, shared)));
                            tracing::debug!(listen = %self.shared.listen, "HTTP-01 responder up");
                        }
                        Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempts > 0 => {}
                        Err(e) => {
                            return Err(format!(
                                "the HTTP-01 responder cannot listen on {}: {e}",
                                self.shared.listen
                            ));
                        }
                    }
                }
                if state.server.is_some() {
                    state.leases += 1;
                    return Ok(Http01Lease {
                        shared: self.shared.clone(),
                        tokens: Vec::new(),
                    });
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Http01Responder {
    fn drop(&mut self) {
        if let Some(server) = self.shared.state().server.take() {
            server.abort();
        }
    }
}

/// One order's hold on the responder and the tokens it published.
pub struct Http01Lease {
    shared: Arc<Shared>,
    tokens: Vec<String>,
}

impl Http01Lease {
    /// Serves `key_authorization` for `token` until the lease drops.
    pub fn publish(&mut self, token: &str, key_authorization: &str) {
        self.shared
            .state()
            .tokens
            .insert(token.to_owned(), key_authorization.to_owned());
        self.tokens.push(token.to_owned());
    }
}

impl Drop for Http01Lease {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        for token in &self.tokens {
            state.tokens.remove(token);
        }
        state.leases = state.leases.saturating_sub(1);
        if state.leases == 0
            && let Some(server) = state.server.take()
        {
            server.abort();
        }
    }
}

fn bind(listen: SocketAddr) -> io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "HTTP-01 responder: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let answer = respond(&shared, &request);
                async move { Ok::<_, Infallible>(answer) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            // Validation requests are tiny; nobody may hold a task for long.
            let _ = tokio::time::timeout(Duration::from_secs(30), connection).await;
        });
    }
}

fn respond(shared: &Shared, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let found = match (request.method(), request.uri().path().strip_prefix(PREFIX)) {
        (&Method::GET | &Method::HEAD, Some(token)) => shared.state().tokens.get(token).cloned(),
        _ => None,
    };
    let mut response = match found {
        Some(key_authorization) => Response::new(Full::new(Bytes::from(key_authorization))),
        None => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"not found\n")));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    };
    if let Ok(value) = "application/octet-stream".parse() {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

/// Writes the token file under `webroot` and returns its path.
pub async fn write_token(
    webroot: &Path,
    token: &str,
    key_authorization: &str,
) -> Result<PathBuf, String> {
    // The token comes from the CA: keep it from naming any other path.
    if token.is_empty()
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("the CA sent a challenge token that is not base64url".into());
    }
    let directory = webroot.join(".well-known").join("acme-challenge");
    tokio::fs::create_dir_all(&directory)
        .await
        .map_err(|e| format!("cannot create {}: {e}", directory.display()))?;
    let path = directory.join(token);
    tokio::fs::write(&path, key_authorization)
        .await
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// Removes a token file written by [`write_token`].
pub async fn remove_token(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove HTTP-01 token file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn webroot_refuses_tokens_that_are_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = write_token(dir.path(), "../../etc/passwd", "x")
            .await
            .expect_err("a path is not a token");
        assert!(err.contains("base64url"), "{err}");
        let path = write_token(dir.path(), "tok_en-1", "tok_en-1.thumb")
            .await
            .expect("a token is written");
        assert_eq!(
            std::fs::read_to_string(&path).expect("file"),
            "tok_en-1.thumb"
        );
        remove_token(&path).await;
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn the_port_is_free_again_once_the_last_lease_drops() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port");
        let responder = Http01Responder::new(port);
        let first = responder.lease().await.expect("bind");
        let second = responder.lease().await.expect("shared");
        drop(first);
        assert!(std::net::TcpStream::connect(port).is_ok(), "still serving");
        drop(second);
        let mut freed = false;
        for _ in 0..100 {
            if std::net::TcpListener::bind(port).is_ok() {
                freed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(freed, "the port stays bound after the last order");
    }
}
