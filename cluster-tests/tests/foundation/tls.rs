use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cluster_tests::{GatewayProcess, client, free_port, wait_until};

/// `openssl s_server -WWW`: an HTTPS server answering files from its directory.
struct TlsServer {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tls_server() -> TlsServer {
    let dir = std::env::temp_dir().join(format!("gw-tls-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    // A private CA and a server certificate it signs (a self-signed leaf is no CA).
    let steps: [&[&str]; 4] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
        &["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "key.pem", "-out", "server.csr"],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "cert.pem",
        ],
        &["version"],
    ];
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    for args in steps {
        let ok = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "openssl {args:?}");
    }
    std::fs::write(dir.join("hello.txt"), "hello over tls").unwrap();
    let port = free_port();
    let child = Command::new("openssl")
        .args(["s_server", "-WWW", "-quiet", "-accept", &port.to_string(), "-cert", "cert.pem", "-key", "key.pem"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()));
    TlsServer { child, port, dir }
}

#[actix_rt::test]
async fn https_upstreams_are_verified_against_the_roots_and_the_configured_ca() {
    let server = tls_server();
    let service = format!("[[services]]\nname = \"tls\"\nendpoints = [\"https://127.0.0.1:{}\"]\n", server.port);

    // Not trusted: a self-signed upstream is refused (502), never proxied blindly.
    let untrusted = GatewayProcess::start(&format!("{}\n{service}", crate::BASE));
    let res = client().get(untrusted.url("/api/tls/hello.txt")).send().await.unwrap();
    assert_eq!(res.status(), 502);

    let trusted = GatewayProcess::start(&format!(
        "{}upstream_ca_file = \"{}\"\n{service}",
        crate::BASE,
        server.dir.join("ca.pem").display()
    ));
    let mut res = client().get(trusted.url("/api/tls/hello.txt")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.body().await.unwrap(), "hello over tls");
}
