//! `gateway demo`: one node in memory mode in front of a built-in echo upstream, with a
//! sample service and ready-to-paste curl lines.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

use crate::config::Config;

/// A config ready to run, plus the demo's echo upstream when there is one.
pub struct Prepared {
    /// The node configuration.
    pub config: Config,
    echo: Option<TcpListener>,
    banner: Option<String>,
}

impl Prepared {
    /// A plain node: no demo upstream, no banner.
    pub fn plain(config: Config) -> Self {
        Self { config, echo: None, banner: None }
    }

    /// The text to print once the node listens (demo curl lines).
    pub fn banner(&self) -> Option<String> {
        self.banner.clone()
    }

    /// Starts the echo upstream (if any). The returned handle keeps it alive.
    pub async fn start_demo(&self) -> Result<Option<ServerHandle>, String> {
        let Some(listener) = &self.echo else {
            return Ok(None);
        };
        let listener = listener.try_clone().map_err(|e| format!("demo upstream: {e}"))?;
        let server = HttpServer::new(|| App::new().default_service(web::to(echo)))
            .workers(1)
            .disable_signals()
            .listen(listener)
            .map_err(|e| format!("demo upstream: {e}"))?
            .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Ok(Some(handle))
    }
}

/// Builds the demo node: binds the echo upstream on a free port and writes the config.
pub fn prepare(listen: SocketAddr, admin_listen: SocketAddr) -> Result<Prepared, String> {
    let echo = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("demo upstream: {e}"))?;
    let echo_port = echo.local_addr().map_err(|e| format!("demo upstream: {e}"))?.port();
    // A fresh HS256 secret per run: the printed token works only against this demo.
    let secret = actors::hex(&rand::random::<[u8; 32]>());
    let text = format!(
        r#"
[node]
id = "demo"
listen = "{listen}"
admin_listen = "{admin_listen}"
workers = 2

[log]
format = "pretty"

[auth.jwt]
algorithms = ["HS256"]
issuer = "gateway-demo"
[[auth.jwt.keys]]
kid = "demo"
secret = "{secret}"

[[services]]
name = "echo"
endpoints = ["http://127.0.0.1:{echo_port}"]

[[services]]
name = "secure"
auth = "jwt"
endpoints = ["http://127.0.0.1:{echo_port}"]
"#
    );
    let config = Config::from_toml(&text, std::iter::empty()).map_err(|e| format!("demo config: {e}"))?;
    let token = demo_token(&secret)?;
    let base = format!("http://{listen}");
    let admin = format!("http://{admin_listen}");
    let banner = format!(
        "\nGateway demo: one node in memory mode in front of a built-in echo upstream.\n\
         Services: \"echo\" at {base}/api/echo (no auth), \"secure\" at {base}/api/secure (JWT).\n\
         Demo token (HS256, sub=demo-user, role=free, valid 24h):\n{token}\n\
         Try:\n\
         curl -i {base}/api/echo/hello?name=world\n\
         curl -i -X POST -H 'Content-Type: application/json' -d '{{\"order\":42}}' {base}/api/echo/orders\n\
         curl -i -H 'Authorization: Bearer {token}' {base}/api/secure/profile\n\
         curl -i {base}/api/secure/profile\n\
         curl -i {base}/api/nowhere\n\
         curl -s {admin}/health\n\
         curl -s {admin}/admin/services\n\
         curl -s {admin}/metrics\n\
         Stop with Ctrl-C.\n"
    );
    Ok(Prepared { config, echo: Some(echo), banner: Some(banner) })
}

/// A 24-hour HS256 token for the demo's `secure` service.
fn demo_token(secret: &str) -> Result<String, String> {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({
        "sub": "demo-user", "role": "free", "iss": "gateway-demo", "iat": now, "exp": now + 24 * 3600,
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("demo".into());
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()))
        .map_err(|e| format!("demo token: {e}"))
}

/// Echoes the request back as JSON.
async fn echo(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    HttpResponse::Ok().insert_header(("x-upstream", "demo-echo")).json(serde_json::json!({
        "method": req.method().as_str(),
        "path": req.path(),
        "query": req.query_string(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    }))
}
