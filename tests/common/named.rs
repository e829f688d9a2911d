//! BIND 9's `named` for the tests that resolve names: started in the
//! foreground from a config the test writes into a directory of its own, on
//! a loopback port free for UDP and TCP, and killed on drop.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `named`, killed on drop.
pub struct Named {
    child: Child,
    /// Where it answers on 127.0.0.1, UDP and TCP.
    pub port: u16,
    /// Holds the config, zones and log until named is gone.
    dir: tempfile::TempDir,
}

impl Named {
    /// Starts named from the `named.conf` that `write_config(dir, port)`
    /// writes (returning its path) and waits until it serves its zones.
    pub fn start(write_config: impl Fn(&Path, u16) -> PathBuf) -> Named {
        let binary = PathBuf::from("/usr/sbin/named");
        assert!(
            binary.exists(),
            "named is not installed; tests/run.sh installs it (apt-get install bind9)"
        );
        // Another process may take the port between the probe and named's
        // bind; named then exits and the next attempt picks another port.
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_udp_tcp_port();
            let conf = write_config(dir.path(), port);
            let log = fs::File::create(dir.path().join("named.log")).unwrap();
            // -g: foreground, log to stderr. Without -u, named started by
            // root stays root and can read the tempdir.
            let child = Command::new(&binary)
                .args(["-g", "-4", "-n", "1", "-c"])
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            let mut named = Named { child, port, dir };
            if named.wait_until_running() {
                return named;
            }
        }
        panic!("named did not start on any port");
    }

    /// Waits until named says it serves its zones; false if it exited.
    fn wait_until_running(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let text = self.log();
            if text.contains("all zones loaded") && text.contains("running") {
                return true;
            }
            if self.child.try_wait().unwrap().is_some() {
                eprintln!("named exited:\n{text}");
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("named did not start within 15 s:\n{}", self.log());
    }

    /// What named logged.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("named.log")).unwrap_or_default()
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 (just now).
pub fn free_udp_tcp_port() -> u16 {
    loop {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).is_ok() {
            return port;
        }
    }
}
