//! A private `redis-server` for this crate's unit tests: a free port (never the shared
//! 6379), no persistence, killed on drop. The black-box harness is
//! `cluster-tests/src/redis_server.rs`; this crate cannot use it (cluster-tests depends
//! on actors), so this is the few lines an actor test against real Redis needs.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis::{Store, StoreConfig, TlsFiles, Topology};
use crate::status::NodeStatus;

/// A running redis-server.
pub struct TestRedis {
    child: Child,
    port: u16,
}

impl TestRedis {
    /// Starts a server and waits until it answers PING (a fresh port if one was taken
    /// before the server bound it).
    pub fn start() -> Self {
        for _ in 0..4 {
            let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed (scripts/test.sh installs it)");
            let mut redis = Self { child, port };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && redis.child.try_wait().ok().flatten().is_none() {
                if redis.ping() {
                    return redis;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("redis-server did not start on four free ports");
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// A connected store on this server (key prefix `gw:`).
    pub async fn store(&self, status: NodeStatus) -> Store {
        let cfg = StoreConfig {
            url: format!("redis://127.0.0.1:{}/0", self.port),
            topology: Topology::Standalone,
            tls: TlsFiles::default(),
            connect_timeout: Duration::from_millis(500),
            command_timeout: Duration::from_secs(2),
            key_prefix: "gw:".into(),
            pool_size: crate::redis::DEFAULT_POOL_SIZE,
        };
        let store = Store::new(cfg, status).expect("valid settings");
        store.connect().await.expect("redis connects");
        store
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
