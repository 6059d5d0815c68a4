//! `TestRedis`: a private `redis-server` on a free port (never the shared 6379), with no
//! persistence, killed on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, wait_until};

/// A running redis-server.
pub struct TestRedis {
    child: Option<Child>,
    port: u16,
}

impl TestRedis {
    /// Starts a server and waits until it answers PING. A free port can be taken by
    /// another test's outgoing connection before the server binds it, so a server that
    /// exits at once is started again on a fresh port.
    pub fn start() -> Self {
        for _ in 0..4 {
            if let Some(redis) = Self::try_start_on(free_port()) {
                return redis;
            }
        }
        panic!("redis-server did not start on four free ports");
    }

    /// Starts a server on `port` (used to restart on the same address).
    pub fn start_on(port: u16) -> Self {
        Self::try_start_on(port).unwrap_or_else(|| panic!("redis-server did not answer PING on {port}"))
    }

    fn try_start_on(port: u16) -> Option<Self> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        let mut redis = Self { child: Some(child), port };
        let exited = |r: &mut Self| r.child.as_mut().is_none_or(|c| c.try_wait().ok().flatten().is_some());
        let up = wait_until(Duration::from_secs(10), || exited(&mut redis) || redis.ping());
        (up && !exited(&mut redis)).then_some(redis)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Whether the server answers PING.
    pub fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// Freezes the server with SIGSTOP: connections stay open, nothing answers (slow,
    /// not dead).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Resumes a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = std::process::Command::new("kill").args([sig, &c.id().to_string()]).status();
        }
    }

    /// Kills the server (simulates a crash).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An `actors::redis::Store` (key prefix `gw:`) for tests that drive actors directly.
pub fn test_store(url: String, topology: actors::redis::Topology, command_timeout: Duration) -> actors::redis::Store {
    let cfg = actors::redis::StoreConfig {
        url,
        topology,
        tls: actors::redis::TlsFiles::default(),
        connect_timeout: Duration::from_millis(500),
        command_timeout,
        key_prefix: "gw:".into(),
        pool_size: actors::redis::DEFAULT_POOL_SIZE,
    };
    actors::redis::Store::new(cfg, actors::status::NodeStatus::redis()).expect("valid settings")
}
