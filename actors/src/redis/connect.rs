//! Building clients for the three deployments (standalone, Sentinel, Cluster), TLS
//! material for `rediss://`, and the connection types the `Store` hands out.
//!
//! Invariant: a URL with credentials is never logged or put in an error; `redact` is the
//! only way a target address reaches a log line.

use std::path::PathBuf;

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisFuture, TlsCertificates, Value};

use super::StoreError;

/// PEM files for `rediss://`: a private CA and, for mutual TLS, a client certificate.
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    /// CA bundle that signs the servers' certificates (default: the system roots).
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (mutual TLS); needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// Client private key (mutual TLS); needs `cert_file`.
    pub key_file: Option<PathBuf>,
}

impl TlsFiles {
    /// Reads the files; `None` when none is configured.
    pub(crate) fn load(&self) -> Result<Option<TlsCertificates>, StoreError> {
        let read = |what: &str, p: &PathBuf| {
            std::fs::read(p).map_err(|e| StoreError::Config(format!("cannot read {what} {}: {e}", p.display())))
        };
        let root_cert = self.ca_file.as_ref().map(|p| read("tls_ca_file", p)).transpose()?;
        let client_tls = match (&self.cert_file, &self.key_file) {
            (Some(c), Some(k)) => Some(redis::ClientTlsConfig {
                client_cert: read("tls_cert_file", c)?,
                client_key: read("tls_key_file", k)?,
            }),
            (None, None) => None,
            _ => return Err(StoreError::Config("tls_cert_file and tls_key_file go together".into())),
        };
        if root_cert.is_none() && client_tls.is_none() {
            return Ok(None);
        }
        Ok(Some(TlsCertificates { client_tls, root_cert }))
    }
}

/// Parses a `redis://` / `rediss://` URL (or `host:port`) without echoing it in errors.
pub(crate) fn parse(url: &str) -> Result<ConnectionInfo, StoreError> {
    let full = if url.contains("://") { url.to_string() } else { format!("redis://{url}") };
    full.as_str()
        .into_connection_info()
        .map_err(|e| StoreError::Config(format!("invalid redis URL {} ({})", redact(url), e.category())))
}

/// A client for `info`, with the TLS material when the address is `rediss://`.
pub(crate) fn client(info: ConnectionInfo, certs: Option<&TlsCertificates>) -> Result<redis::Client, StoreError> {
    let tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
    match certs {
        Some(c) if tls => Ok(redis::Client::build_with_tls(info, c.clone())?),
        _ => Ok(redis::Client::open(info)?),
    }
}

/// `info` pointed at another host and port, keeping credentials, database and TLS.
pub(crate) fn retarget(info: &ConnectionInfo, host: &str, port: u16) -> ConnectionInfo {
    let addr = match info.addr() {
        ConnectionAddr::TcpTls { insecure, .. } => {
            ConnectionAddr::TcpTls { host: host.to_string(), port, insecure: *insecure, tls_params: None }
        }
        _ => ConnectionAddr::Tcp(host.to_string(), port),
    };
    info.clone().set_addr(addr)
}

/// A Cluster client from seed URLs; credentials missing from the seeds come from `base`
/// (the `[redis] url`), and `response_timeout` bounds each node's answer (`None`: no bound,
/// for blocking commands).
pub(crate) fn cluster_client(
    seeds: &[ConnectionInfo],
    base: &ConnectionInfo,
    certs: Option<&TlsCertificates>,
    connect_timeout: std::time::Duration,
    response_timeout: Option<std::time::Duration>,
) -> Result<ClusterClient, StoreError> {
    let first = seeds.first().ok_or_else(|| StoreError::Config("mode = \"cluster\" needs seed nodes".into()))?;
    let mut b = ClusterClientBuilder::new(seeds.to_vec()).connection_timeout(connect_timeout).retries(2);
    let settings = first.redis_settings();
    if settings.password().is_none() {
        if let Some(u) = base.redis_settings().username() {
            b = b.username(u);
        }
        if let Some(p) = base.redis_settings().password() {
            b = b.password(p);
        }
    }
    if let Some(t) = response_timeout {
        b = b.response_timeout(t);
    } else {
        b = b.overall_response_timeout(None);
    }
    if let (Some(c), ConnectionAddr::TcpTls { .. }) = (certs, first.addr()) {
        b = b.certs(c.clone());
    }
    Ok(b.build()?)
}

/// A URL with its password (and user) replaced by `***`, fit for a log line.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{path}"),
        None => format!("{scheme}://{authority}{path}"),
    }
}

/// The shared command connection: a self-reconnecting manager (standalone, Sentinel
/// master) or a Cluster connection that routes each command to its slot's owner.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A connection of its own for blocking commands (`BLMOVE`, `BRPOP`, ...); see
/// `Store::dedicated` for the contract. Use it with `cmd.query_async(&mut dedicated)`.
pub struct Dedicated(pub(crate) DedicatedConn);

pub(crate) enum DedicatedConn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Dedicated {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.0 {
            DedicatedConn::Single(c) => c.req_packed_command(cmd),
            DedicatedConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.0 {
            DedicatedConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            DedicatedConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            DedicatedConn::Single(c) => c.get_db(),
            DedicatedConn::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_user_and_password_but_keeps_the_address() {
        assert_eq!(redact("redis://gw:s3cret@10.0.0.1:6379/0"), "redis://***@10.0.0.1:6379/0");
        assert_eq!(redact("rediss://:pw@h:6380"), "rediss://***@h:6380");
        assert_eq!(redact("redis://h:6379/0"), "redis://h:6379/0");
    }

    #[test]
    fn retarget_keeps_credentials_and_tls() {
        let info = parse("rediss://gw:pw@old:1/2").expect("valid url");
        let moved = retarget(&info, "new", 7);
        assert!(matches!(moved.addr(), ConnectionAddr::TcpTls { host, port: 7, .. } if host == "new"));
        assert_eq!(moved.redis_settings().password(), Some("pw"));
        assert_eq!(moved.redis_settings().db(), 2);
    }

    #[test]
    fn a_client_certificate_without_its_key_is_refused() {
        let files = TlsFiles { cert_file: Some("/nonexistent".into()), ..TlsFiles::default() };
        assert!(matches!(files.load(), Err(StoreError::Config(_))));
    }
}
