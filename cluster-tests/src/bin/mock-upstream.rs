//! A fast mock upstream for benchmarks and manual runs:
//! `mock-upstream [PORT] [WORKERS]` answers every request with `200 ok`.

use std::net::TcpListener;

use cluster_tests::MockUpstream;

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(9000);
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(1);
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mock-upstream: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    let upstream = MockUpstream::start_with(&format!("mock-{port}"), false, workers, listener);
    println!("mock-upstream listening on {}", upstream.url());
    loop {
        std::thread::park();
    }
}
