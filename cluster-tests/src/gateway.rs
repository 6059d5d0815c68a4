//! `GatewayProcess`: runs the real `gateway` binary with a config, on free ports,
//! capturing its output to a log file; killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::{free_port, wait_until};

/// Path of the `gateway` binary: `$GATEWAY_BIN`, else `target/{debug,release}/gateway`
/// next to this workspace (cargo builds it for the workspace's tests).
pub fn gateway_bin() -> PathBuf {
    if let Ok(p) = std::env::var("GATEWAY_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let bin = target.join(profile).join("gateway");
    assert!(bin.exists(), "{} not found: run `cargo build -p gateway` first (scripts/test.sh does)", bin.display());
    bin
}

/// A running gateway node.
pub struct GatewayProcess {
    child: Option<Child>,
    /// Proxy listener port.
    pub port: u16,
    /// Admin listener port.
    pub admin_port: u16,
    /// Where stdout/stderr go.
    pub log: PathBuf,
    dir: PathBuf,
}

/// Builder for a gateway process.
pub struct GatewayBuilder {
    config: String,
    env: Vec<(String, String)>,
    wait_ready: bool,
}

impl GatewayProcess {
    /// A node running `config` (TOML). Listen addresses are set through env overrides.
    pub fn builder(config: impl Into<String>) -> GatewayBuilder {
        GatewayBuilder { config: config.into(), env: Vec::new(), wait_ready: true }
    }

    /// Starts a node with `config` and waits until `/ready` answers 200.
    pub fn start(config: &str) -> Self {
        Self::builder(config).spawn()
    }

    /// `http://127.0.0.1:<port><path>` on the proxy listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `http://127.0.0.1:<admin_port><path>` on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    /// Whether `/ready` answers 200.
    pub fn is_ready(&self) -> bool {
        http_status(self.admin_port, "/ready") == Some(200)
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        self.child.as_mut().is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// The captured log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends a signal by name (`TERM`, `USR1`, ...).
    pub fn signal(&self, name: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").args([format!("-{name}"), c.id().to_string()]).status();
        }
    }

    /// Kills with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the process to exit, up to `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl GatewayBuilder {
    /// Adds an environment variable for the process.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Do not wait for `/ready` (for tests of failing starts).
    pub fn no_wait(mut self) -> Self {
        self.wait_ready = false;
        self
    }

    /// Starts the process. A port taken between `free_port` and the bind (other tests run
    /// in parallel) makes the node exit at once; it is then started again on new ports.
    pub fn spawn(self) -> GatewayProcess {
        for _ in 0..4 {
            let mut gw = self.spawn_once();
            if !self.wait_ready {
                return gw;
            }
            let settled = wait_until(Duration::from_secs(20), || gw.is_ready() || gw.exited());
            // A `/ready` answered by someone else's process on our port would be followed
            // by our own exit (bind failure) within moments.
            std::thread::sleep(Duration::from_millis(100));
            if settled && !gw.exited() {
                return gw;
            }
            let log = gw.log_text();
            gw.kill();
            if !log.contains("cannot listen") {
                panic!("gateway did not become ready; log:\n{log}");
            }
        }
        panic!("gateway could not bind free ports four times");
    }

    fn spawn_once(&self) -> GatewayProcess {
        let port = free_port();
        // The OS may hand out the same ephemeral port twice in a row.
        let admin_port = std::iter::repeat_with(free_port).find(|p| *p != port).unwrap_or(port + 1);
        let dir = std::env::temp_dir().join(format!("gw-test-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let cfg = dir.join("gateway.toml");
        std::fs::write(&cfg, &self.config).expect("write config");
        let log = dir.join("gateway.log");
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = Command::new(gateway_bin());
        cmd.arg("--config")
            .arg(&cfg)
            .env("GATEWAY__NODE__LISTEN", format!("127.0.0.1:{port}"))
            .env("GATEWAY__NODE__ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn gateway");
        GatewayProcess { child: Some(child), port, admin_port, log, dir }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Status of a plain `GET` over a fresh connection (blocking; no runtime needed).
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).ok()?;
    std::str::from_utf8(&buf[9..12]).ok()?.parse().ok()
}
