//! Debian's nginx for the tests that serve certificates or files: one
//! master process (so SIGHUP reloads what Certkeeper deploys) with its
//! prefix, config, pid file (`nginx.pid`), logs and temporary files in a
//! directory of the test's own, serving the `server { }` blocks it is given
//! ([`Nginx::start`]) or one TLS site per port from files Certkeeper deploys
//! ([`sites`]); [`served`] reads back which certificate a site serves.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};

use super::eventually;

/// A running nginx, stopped on drop.
pub struct Nginx {
    child: Child,
}

impl Drop for Nginx {
    /// SIGTERM first: the master stops its workers. A SIGKILL'd master
    /// leaves them running, orphaned, on their ports after the test.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let stopped = eventually(Duration::from_secs(5), || {
            self.child.try_wait().ok().flatten().map(drop)
        });
        if stopped.is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// Starts nginx in `dir` serving `servers` (`server { ... }` blocks) and
    /// waits until every address in `listening` accepts connections.
    pub fn start(dir: &Path, servers: &str, listening: &[(&str, u16)]) -> Nginx {
        let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect(
                "nginx is not installed; tests/run.sh installs it (apt-get install nginx-light)",
            );
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let d = dir.display();
        std::fs::write(
            dir.join("nginx.conf"),
            format!(
                "daemon off; master_process on; worker_processes 1; pid {d}/nginx.pid; \
                 error_log {d}/logs/error.log;\nevents {{ worker_connections 256; }}\n\
                 http {{ access_log {d}/logs/access.log; client_body_temp_path {d}/tmp; \
                 proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; \
                 scgi_temp_path {d}/tmp;\n{servers}}}\n"
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Nginx { child };
        let up = eventually(Duration::from_secs(10), || {
            listening
                .iter()
                .all(|l| std::net::TcpStream::connect(*l).is_ok())
                .then_some(())
        });
        assert!(
            up.is_some(),
            "nginx did not start: {}",
            std::fs::read_to_string(dir.join("logs/error.log")).unwrap_or_default()
        );
        server
    }
}

/// Serves one TLS site per `(port, dir)` from `dir/fullchain.pem` and
/// `dir/key.pem`, which start as a self-signed placeholder.
pub fn sites(root: &Path, sites: &[(u16, &Path)]) -> Nginx {
    let mut servers = String::new();
    for (port, dir) in sites {
        std::fs::create_dir_all(dir).unwrap();
        super::openssl(
            dir,
            &[
                "req",
                "-x509",
                "-nodes",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-keyout",
                "key.pem",
                "-out",
                "fullchain.pem",
                "-subj",
                "/CN=placeholder",
                "-days",
                "1",
            ],
        );
        servers.push_str(&format!(
            "server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {d}/fullchain.pem; \
             ssl_certificate_key {d}/key.pem; return 200 ok; }}\n",
            d = dir.display()
        ));
    }
    let listening: Vec<(&str, u16)> = sites.iter().map(|(port, _)| ("127.0.0.1", *port)).collect();
    Nginx::start(root, &servers, &listening)
}

/// Fingerprint of the leaf `127.0.0.1:port` serves for `sni`.
pub fn served(port: u16, sni: &str) -> Option<String> {
    let mut builder = SslConnector::builder(SslMethod::tls_client()).unwrap();
    builder.set_verify(SslVerifyMode::NONE);
    let connector = builder.build();
    let tcp = TcpStream::connect(("127.0.0.1", port)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let stream = connector.connect(sni, tcp).ok()?;
    let der = stream.ssl().peer_certificate()?.to_der().ok()?;
    Some(hex(&openssl::sha::sha256(&der)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
