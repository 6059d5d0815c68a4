//! Redis deployments beyond one plain server, as real processes on free ports (never the
//! shared 6379), killed on drop: `TestRedisCluster` (six cluster-enabled nodes, three
//! masters with one replica each), `TestSentinel` (a master, a replica and three
//! sentinels) and `TestTlsRedis` (TLS only, certificates made with openssl, clients must
//! present a certificate of the same CA).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, wait_until};

/// A child process killed (and reaped) on drop.
struct Proc(Option<Child>);

impl Proc {
    fn spawn(cmd: &mut Command) -> Self {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        Self(Some(child))
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh temporary directory for one deployment.
fn temp_dir(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gw-{kind}-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// `redis-cli -p <port> <args>`; its stdout when it ran.
pub fn redis_cli(port: u16, args: &[&str]) -> Option<String> {
    let out =
        Command::new("redis-cli").arg("-p").arg(port.to_string()).args(args).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn plain_server(port: u16, dir: &Path, extra: &[String]) -> Proc {
    Proc::spawn(
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .args(extra),
    )
}

fn answers_ping(port: u16) -> bool {
    redis_cli(port, &["PING"]).as_deref() == Some("PONG")
}

/// Starts one `--cluster-enabled` node in `dir`. A free port can be taken by another
/// test's outgoing connection before the server binds it, so a node that does not come
/// up (or exits) is started again on fresh ports.
fn start_cluster_node(dir: &Path) -> (Proc, u16) {
    for _ in 0..4 {
        // The bus port is explicit: port + 10000 may not exist for a high free port.
        let (port, bus) = (free_port(), free_port());
        let extra: Vec<String> = [
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            &bus.to_string(),
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let _ = std::fs::remove_file(dir.join("nodes.conf"));
        let mut node = plain_server(port, dir, &extra);
        let exited = |n: &mut Proc| n.0.as_mut().is_none_or(|c| c.try_wait().ok().flatten().is_some());
        if wait_until(Duration::from_secs(10), || exited(&mut node) || answers_ping(port)) && !exited(&mut node) {
            return (node, port);
        }
    }
    panic!("a cluster node in {} did not start on four pairs of ports", dir.display());
}

/// Six `--cluster-enabled` nodes joined by `redis-cli --cluster create --cluster-replicas 1`.
pub struct TestRedisCluster {
    nodes: Vec<Proc>,
    ports: Vec<u16>,
    dir: PathBuf,
}

impl TestRedisCluster {
    /// Starts the nodes, creates the cluster and waits until every node reports it ok.
    pub fn start() -> Self {
        let dir = temp_dir("cluster");
        let mut nodes = Vec::new();
        let mut ports = Vec::new();
        for i in 0..6 {
            let node_dir = dir.join(format!("n{i}"));
            std::fs::create_dir_all(&node_dir).expect("node dir");
            let (node, port) = start_cluster_node(&node_dir);
            nodes.push(node);
            ports.push(port);
        }
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli must be installed with redis-server");
        assert!(created.success(), "redis-cli --cluster create failed");
        let ok = |p: u16| redis_cli(p, &["CLUSTER", "INFO"]).is_some_and(|i| i.contains("cluster_state:ok"));
        assert!(
            wait_until(Duration::from_secs(30), || ports.iter().all(|&p| ok(p))),
            "the cluster did not reach cluster_state:ok"
        );
        Self { nodes, ports, dir }
    }

    /// `redis://127.0.0.1:<port>` of every node (the seeds for `nodes = [...]`).
    pub fn urls(&self) -> Vec<String> {
        self.ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect()
    }

    /// Ports of the nodes.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Master ports, as the first node sees them.
    pub fn master_ports(&self) -> Vec<u16> {
        let nodes = redis_cli(self.ports[0], &["CLUSTER", "NODES"]).unwrap_or_default();
        nodes
            .lines()
            .filter(|l| l.contains("master"))
            .filter_map(|l| l.split_whitespace().nth(1)?.split('@').next()?.rsplit(':').next()?.parse().ok())
            .collect()
    }

    /// Kills node `i` (a crash).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }
}

impl Drop for TestRedisCluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A master, one replica and three sentinels watching it as `mymaster`.
pub struct TestSentinel {
    master: Proc,
    replica: Proc,
    sentinels: Vec<Proc>,
    /// Port of the server that was master at start.
    pub master_port: u16,
    /// Port of the server that was replica at start.
    pub replica_port: u16,
    sentinel_ports: Vec<u16>,
    dir: PathBuf,
}

impl TestSentinel {
    /// The master name the sentinels monitor.
    pub const MASTER: &'static str = "mymaster";

    /// Starts everything and waits until every sentinel knows the master and the replica.
    pub fn start() -> Self {
        let dir = temp_dir("sentinel");
        let (master_port, replica_port) = (free_port(), free_port());
        let master = plain_server(master_port, &dir, &[]);
        let replica =
            plain_server(replica_port, &dir, &["--replicaof".into(), "127.0.0.1".into(), master_port.to_string()]);
        for p in [master_port, replica_port] {
            assert!(wait_until(Duration::from_secs(10), || answers_ping(p)), "redis {p} did not start");
        }
        let synced =
            || redis_cli(replica_port, &["INFO", "replication"]).is_some_and(|i| i.contains("master_link_status:up"));
        assert!(wait_until(Duration::from_secs(10), synced), "the replica did not sync");
        let mut sentinels = Vec::new();
        let mut sentinel_ports = Vec::new();
        for i in 0..3 {
            let port = free_port();
            let conf = dir.join(format!("sentinel-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {m} 127.0.0.1 {master_port} 2\n\
                     sentinel down-after-milliseconds {m} 1000\nsentinel failover-timeout {m} 5000\n\
                     sentinel parallel-syncs {m} 1\n",
                    dir.display(),
                    m = Self::MASTER
                ),
            )
            .expect("sentinel config");
            sentinels.push(Proc::spawn(Command::new("redis-server").arg(&conf).arg("--sentinel")));
            sentinel_ports.push(port);
        }
        let knows_replica = |p: u16| {
            redis_cli(p, &["SENTINEL", "REPLICAS", Self::MASTER])
                .is_some_and(|r| r.contains(&replica_port.to_string()) && !r.contains("s_down"))
        };
        assert!(
            wait_until(Duration::from_secs(30), || sentinel_ports.iter().all(|&p| knows_replica(p))),
            "the sentinels did not discover the replica"
        );
        Self { master, replica, sentinels, master_port, replica_port, sentinel_ports, dir }
    }

    /// `127.0.0.1:<port>` of every sentinel.
    pub fn addresses(&self) -> Vec<String> {
        self.sentinel_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect()
    }

    /// The master's port as the first sentinel names it.
    pub fn current_master_port(&self) -> Option<u16> {
        let out = redis_cli(self.sentinel_ports[0], &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::MASTER])?;
        out.lines().nth(1)?.trim().parse().ok()
    }

    /// `SENTINEL FAILOVER`, then waits until the replica is the master and the old master
    /// its replica (until then the old master still takes writes the resync discards).
    pub fn failover(&self) {
        let port = self.sentinel_ports[0];
        let asked = wait_until(Duration::from_secs(20), || {
            redis_cli(port, &["SENTINEL", "FAILOVER", Self::MASTER]).is_some_and(|r| r == "OK")
        });
        assert!(asked, "SENTINEL FAILOVER was refused");
        let promoted = || {
            self.current_master_port() == Some(self.replica_port)
                && redis_cli(self.replica_port, &["ROLE"]).is_some_and(|r| r.starts_with("master"))
                && redis_cli(self.master_port, &["ROLE"]).is_some_and(|r| r.starts_with("slave"))
        };
        assert!(wait_until(Duration::from_secs(30), promoted), "the replica was not promoted");
    }

    /// Kills the server that was master at start.
    pub fn kill_master(&mut self) {
        self.master.kill();
    }

    /// Kills the server that was replica at start.
    pub fn kill_replica(&mut self) {
        self.replica.kill();
    }
}

impl Drop for TestSentinel {
    fn drop(&mut self) {
        self.sentinels.clear();
        self.master.kill();
        self.replica.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A redis-server listening with TLS only; clients must present a certificate signed by
/// the same CA. `ca.pem`, `client.pem` and `client.key` are in `dir()`.
pub struct TestTlsRedis {
    server: Proc,
    /// The TLS port.
    pub port: u16,
    dir: PathBuf,
}

impl TestTlsRedis {
    /// Makes a CA, a server certificate for 127.0.0.1 and a client certificate, then
    /// starts the server and waits until it answers over TLS.
    pub fn start() -> Self {
        let dir = temp_dir("redis-tls");
        make_ca(&dir, "ca");
        issue(&dir, "ca", "server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
        issue(&dir, "ca", "client", "extendedKeyUsage=clientAuth\n");
        let port = free_port();
        let server = Proc::spawn(
            Command::new("redis-server")
                .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
                .args(["--appendonly", "no", "--tls-auth-clients", "yes"])
                .arg("--tls-cert-file")
                .arg(dir.join("server.pem"))
                .arg("--tls-key-file")
                .arg(dir.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(dir.join("ca.pem"))
                .arg("--dir")
                .arg(&dir),
        );
        let tls = Self { server, port, dir };
        assert!(wait_until(Duration::from_secs(10), || tls.ping()), "TLS redis-server did not answer on {port}");
        tls
    }

    /// The folder with `ca.pem`, `client.pem`, `client.key`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `rediss://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/0", self.port)
    }

    /// A PEM file of another CA, which did not sign the server's certificate.
    pub fn other_ca(&self) -> PathBuf {
        make_ca(&self.dir, "other-ca");
        self.dir.join("other-ca.pem")
    }

    fn ping(&self) -> bool {
        let d = &self.dir;
        let out = Command::new("redis-cli")
            .args(["--tls", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("--cacert")
            .arg(d.join("ca.pem"))
            .arg("--cert")
            .arg(d.join("client.pem"))
            .arg("--key")
            .arg(d.join("client.key"))
            .arg("PING")
            .stderr(Stdio::null())
            .output();
        out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
    }
}

impl Drop for TestTlsRedis {
    fn drop(&mut self) {
        self.server.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let ok = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "openssl {args:?} failed");
}

fn make_ca(dir: &Path, name: &str) {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    let subj = format!("/CN={name}");
    openssl(
        dir,
        &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", &subj, "-keyout", &key, "-out", &pem],
    );
}

fn issue(dir: &Path, ca: &str, name: &str, ext: &str) {
    let (key, csr, pem, extfile) =
        (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.ext"));
    std::fs::write(dir.join(&extfile), format!("basicConstraints=CA:FALSE\n{ext}")).expect("ext file");
    let subj = format!("/CN={name}");
    openssl(dir, &["req", "-newkey", "rsa:2048", "-nodes", "-subj", &subj, "-keyout", &key, "-out", &csr]);
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &extfile,
            "-out",
            &pem,
        ],
    );
}
