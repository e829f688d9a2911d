//! SurrealDB's own server for the tests where several daemons share one
//! store: `surreal start` (SurrealDB 3.3.5, built from the `surrealdb-server`
//! crate by `tests/run.sh`, see `tests/surrealdb-server`) on a free loopback
//! port with a data directory and root credentials.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{eventually, free_port, http};

/// The server's root password, which the daemons sign in with.
pub const ROOT_PASSWORD: &str = "surreal-root-password-for-tests";

/// The `surreal` binary `tests/run.sh` builds.
fn surreal() -> PathBuf {
    std::env::var_os("CERTKEEPER_TEST_SURREAL")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .expect(
            "the SurrealDB server is needed: ./tests/run.sh builds it from tests/surrealdb-server \
             and sets CERTKEEPER_TEST_SURREAL",
        )
}

/// A running `surreal start`, killed on drop.
pub struct Server {
    child: Child,
    /// Where it listens on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts a server with an empty data directory and waits until
    /// `/health` answers.
    pub fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("surreal.log")).unwrap();
        let child = Command::new(surreal())
            .arg("start")
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .arg("--no-banner")
            .arg(format!("surrealkv://{}", dir.path().join("data").display()))
            .env("SURREAL_USER", "root")
            .env("SURREAL_PASS", ROOT_PASSWORD)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = Server { child, port, dir };
        eventually(Duration::from_secs(60), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
            let (status, _) = http("GET", &format!("http://127.0.0.1:{port}/health"), None, &[]);
            (status == 200).then_some(())
        })
        .unwrap_or_else(|| panic!("surreal did not start: {}", server.log()));
        server
    }

    /// The server's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("surreal.log")).unwrap_or_default()
    }

    /// The `[store]` table of a daemon on this server, sealed with `key`.
    pub fn store_table(&self, key: &Path) -> String {
        format!(
            "[store]\nurl = \"ws://127.0.0.1:{}\"\nusername = \"root\"\npassword = \"{ROOT_PASSWORD}\"\n\
             key_file = {key:?}\n",
            self.port
        )
    }
}

/// Writes a fresh store key (32 random bytes, base64) to `path`.
pub fn make_key(path: &Path) {
    let out = Command::new("openssl")
        .args(["rand", "-base64", "32"])
        .output()
        .unwrap();
    std::fs::write(path, out.stdout).unwrap();
}
