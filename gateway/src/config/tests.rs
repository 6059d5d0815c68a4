use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, std::iter::empty())
}

fn parse_env(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_toml(text, env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

const FULL: &str = r#"
[node]
id = "gw-1"
listen = "0.0.0.0:8080"
admin_listen = "127.0.0.1:9901"
trusted_proxies = ["10.0.0.0/8"]
max_body = "10MiB"
request_timeout = "30s"

[redis]
url = "redis://127.0.0.1:6379/0"
pool_size = 16
command_timeout = "250ms"

[auth.jwt]
algorithms = ["HS256", "RS256"]
issuer = "https://issuer.example"
audience = ["api"]
[[auth.jwt.keys]]
kid = "2026-11"
secret = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t"

[rate_limit.policies.default]
algorithm = "sliding_window"
limit = 100
window = "1m"
key = "consumer+route"
[rate_limit.tiers]
free = "default"

[cache]
l1_capacity = "64MiB"

[[services]]
name = "users"
endpoints = ["http://10.0.0.5:3000", { url = "http://10.0.0.6:3000", weight = 3 }]
balancer = "weighted"
auth = "jwt"
rate_limit = "default"
[services.cache]
ttl = "30s"
[services.health_check]
path = "/health"
[services.circuit_breaker]
failure_ratio = 0.5
[services.queue]
match = ["POST /api/users/import"]
rate = "100/10s"
"#;

#[test]
fn the_documented_example_config_is_valid() {
    let c = parse(FULL).expect("valid");
    assert_eq!(c.node.id.as_deref(), Some("gw-1"));
    assert_eq!(c.node.max_body, ByteSize::mib(10));
    assert_eq!(c.services[0].prefix.as_deref(), Some("/api/users"));
    assert_eq!(c.services[0].endpoints[1].weight, 3);
    assert!(c.redis.is_some());
}

#[test]
fn an_empty_file_is_memory_mode_with_defaults() {
    let c = parse("").expect("valid");
    assert!(c.redis.is_none());
    assert_eq!(c.node.listen.port(), 8080);
    assert_eq!(c.node.max_headers, 100);
}

#[test]
fn unknown_keys_name_the_field_and_line() {
    let e = parse("[node]\nlisten = \"0.0.0.0:1\"\nlisten_port = 3\n").expect_err("unknown");
    assert_eq!(e.field, "node.listen_port");
    assert_eq!(e.line, Some(3));
    let e = parse("[[services]]\nname = \"a\"\nendpoint = []\n").expect_err("unknown");
    assert_eq!(e.field, "services[0].endpoint");
    assert_eq!(e.line, Some(3));
}

#[test]
fn bad_values_name_the_field_and_line() {
    let e = parse("[[services]]\nname = \"a\"\n\n[[services]]\nname = \"b\"\nendpoints = [\"htp://x\"]\n")
        .expect_err("bad url");
    assert_eq!(e.field, "services[1].endpoints[0]");
    assert_eq!(e.line, Some(6));
    assert!(e.to_string().contains("scheme"), "{e}");

    let e = parse("[node]\nrequest_timeout = \"soon\"\n").expect_err("bad duration");
    assert_eq!((e.field.as_str(), e.line), ("node.request_timeout", Some(2)));

    let e = parse("[node]\nmax_body = \"ten\"\n").expect_err("bad size");
    assert_eq!(e.field, "node.max_body");

    let e = parse("[[services]]\nname = \"a\"\nbalancer = \"random\"\n").expect_err("bad balancer");
    assert_eq!((e.field.as_str(), e.line), ("services[0].balancer", Some(3)));

    let e = parse("[[services]]\nname = \"a\"\nretries = \"x\"\n").expect_err("wrong type");
    assert_eq!(e.field, "services[0].retries");
}

#[test]
fn cross_field_rules_name_the_field() {
    let e = parse("[[services]]\nname = \"a\"\n[[services]]\nname = \"a\"\n").expect_err("dup");
    assert_eq!((e.field.as_str(), e.line), ("services[1].name", Some(4)));

    let e = parse("[[services]]\nname = \"a\"\nrate_limit = \"nope\"\n").expect_err("unknown policy");
    assert_eq!((e.field.as_str(), e.line), ("services[0].rate_limit", Some(3)));

    let e = parse("[node]\nadmin_listen = \"0.0.0.0:9901\"\n").expect_err("token needed");
    assert_eq!(e.field, "admin.token");

    let e = parse("[[services]]\nname = \"a\"\nauth = \"jwt\"\n").expect_err("no jwt config");
    assert_eq!(e.field, "services[0].auth");

    let e = parse("[[services]]\nname = \"a\"\nprefix = \"/x\"\n[[services]]\nname = \"b\"\nprefix = \"/x\"\n")
        .expect_err("clash");
    assert_eq!(e.field, "services[1].prefix");

    let e = parse("[auth.jwt]\nalgorithms = [\"none\"]\n[[auth.jwt.keys]]\nsecret = \"x\"\n").expect_err("alg none");
    assert_eq!(e.field, "auth.jwt.algorithms[0]");
}

#[test]
fn syntax_errors_give_the_line() {
    let e = parse("[node]\nlisten = \n").expect_err("syntax");
    assert!(e.field.is_empty());
    assert_eq!(e.line, Some(2));
}

#[test]
fn environment_overrides_any_key() {
    let c = parse_env(
        FULL,
        &[
            ("GATEWAY__REDIS__URL", "redis://10.1.1.1:6380/1"),
            ("GATEWAY__NODE__WORKERS", "2"),
            ("GATEWAY__SERVICES__0__TIMEOUT", "3s"),
            ("GATEWAY__CACHE__MAX_OBJECT", "2MiB"),
            ("UNRELATED", "x"),
        ],
    )
    .expect("valid");
    assert_eq!(c.redis.as_ref().map(|r| r.url.expose()), Some("redis://10.1.1.1:6380/1"));
    assert_eq!(c.node.workers, 2);
    assert_eq!(c.services[0].timeout, HumanDuration::secs(3));
    assert_eq!(c.cache.max_object, ByteSize::mib(2));

    let e = parse_env("", &[("GATEWAY__NODE__WORKERS", "many")]).expect_err("bad override");
    assert_eq!((e.field.as_str(), e.line), ("node.workers", None));
}

#[test]
fn secrets_come_from_env_or_file_and_never_print() {
    let dir = std::env::temp_dir().join(format!("gw-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let file = dir.join("token");
    std::fs::write(&file, "from-file\n").expect("write");
    let text = format!("[admin]\ntoken = {{ file = \"{}\" }}\n", file.display());
    let c = parse(&text).expect("valid");
    let token = c.admin.token.expect("token");
    assert_eq!(token.expose(), "from-file");
    assert!(!format!("{token:?}").contains("from-file"));
    assert!(token.matches(b"from-file") && !token.matches(b"from-fil"));

    let e = parse("[admin]\ntoken = { env = \"GW_TEST_SURELY_UNSET_VAR\" }\n").expect_err("unset");
    assert_eq!((e.field.as_str(), e.line), ("admin.token", Some(2)));
    assert!(e.message.contains("GW_TEST_SURELY_UNSET_VAR"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn redis_deployments_parse_into_store_settings_and_bad_ones_name_the_field() {
    let c = parse(
        "[redis]\nmode = \"sentinel\"\nurl = \"rediss://gw:pw@x/2\"\nsentinels = [\"10.0.0.1:26379\", \"redis://s2:26379\"]\n\
         sentinel_password = \"sp\"\ntls_ca_file = \"/ca.pem\"\n",
    )
    .expect("valid sentinel config");
    let store = c.redis.expect("redis section").store_config();
    assert!(matches!(
        store.topology,
        actors::redis::Topology::Sentinel { ref sentinels, ref sentinel_password, .. }
            if sentinels.len() == 2 && sentinel_password.as_deref() == Some("sp")
    ));
    assert_eq!(store.tls.ca_file.as_deref(), Some(std::path::Path::new("/ca.pem")));
    assert!(!format!("{store:?}").contains("pw@"), "credentials in Debug: {store:?}");

    let e = parse("[redis]\nmode = \"cluster\"\nnodes = [\"10.0.0.1:6379\"]\n").expect_err("node without scheme");
    assert_eq!(e.field, "redis.nodes[0]");
    let e = parse("[redis]\ntls_cert_file = \"/c.pem\"\n").expect_err("certificate without key");
    assert_eq!(e.field, "redis.tls_cert_file");
    let e = parse("[redis]\nmode = \"sentinel\"\nsentinels = [\"http://s:1\"]\n").expect_err("not redis");
    assert_eq!(e.field, "redis.sentinels[0]");
}

#[test]
fn analytics_and_telemetry_sections_default_and_name_bad_fields() {
    let c = parse("").expect("valid");
    assert!(c.analytics.enabled);
    assert_eq!(c.analytics.stream_max_len, 100_000);
    assert_eq!(c.analytics.batch, 256);
    assert!(c.telemetry.otlp_endpoint.is_none());

    let c = parse(
        "[analytics]\nenabled = false\nretention = \"1h\"\n[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\n",
    )
    .expect("valid");
    assert!(!c.analytics.enabled);
    assert_eq!(c.telemetry.otlp_endpoint.as_deref(), Some("http://127.0.0.1:4318"));

    for (text, field) in [
        ("[analytics]\nbatch = 0\n", "analytics.batch"),
        ("[analytics]\nretention = \"10s\"\n", "analytics.retention"),
        ("[analytics]\nflush_interval = \"30s\"\n", "analytics.flush_interval"),
        ("[analytics]\nstream_max_len = 0\n", "analytics.stream_max_len"),
        ("[analytics]\nbatchsize = 3\n", "analytics.batchsize"),
        ("[telemetry]\notlp_endpoint = \"grpc://x\"\n", "telemetry.otlp_endpoint"),
    ] {
        let e = parse(text).expect_err(text);
        assert_eq!(e.field, field, "{text}");
        assert!(e.line.is_some(), "{text}: {e}");
    }
}

#[test]
fn a_missing_required_field_is_named() {
    let e = parse("[[services]]\nendpoints = [\"http://127.0.0.1:1\"]\n").expect_err("no name");
    assert_eq!(e.field, "services[0].name");
    let e = parse("[rate_limit.policies.p]\nwindow = \"1s\"\n").expect_err("no limit");
    assert_eq!(e.field, "rate_limit.policies.p.limit");
    assert_eq!(super::error_field(".", "missing field `id`"), "id");
}

#[test]
fn access_log_settings_default_to_json_on_stdout_and_name_bad_fields() {
    let c = parse("").expect("valid");
    assert!(c.log.access_log);
    assert_eq!(c.log.access_log_format, AccessLogFormat::Json);
    assert!(c.log.access_log_file.is_empty() && !c.log.access_log_query);

    let dir = std::env::temp_dir();
    let file = dir.join("gateway-access.log").display().to_string();
    let text =
        format!("[log]\naccess_log_format = \"combined\"\naccess_log_file = \"{file}\"\naccess_log_query = true\n");
    let c = parse(&text).expect("valid");
    assert_eq!(c.log.access_log_format, AccessLogFormat::Combined);
    assert_eq!(c.log.access_log_file, file);
    assert!(c.log.access_log_query);

    let dir = dir.display().to_string();
    for (text, field) in [
        ("[log]\naccess_log_format = \"apache\"\n".to_string(), "log.access_log_format"),
        ("[log]\naccess_log_file = \"/nonexistent-dir/access.log\"\n".to_string(), "log.access_log_file"),
        (format!("[log]\naccess_log_file = \"{dir}\"\n"), "log.access_log_file"),
        ("[log]\naccess_log_query = \"yes\"\n".to_string(), "log.access_log_query"),
    ] {
        let e = parse(&text).expect_err(&text);
        assert_eq!(e.field, field, "{text}");
        assert!(e.line.is_some(), "{text}: {e}");
    }
    let e = parse_env("", &[("GATEWAY__LOG__ACCESS_LOG_FILE", "/nonexistent-dir/a.log")]).expect_err("env");
    assert_eq!((e.field.as_str(), e.line), ("log.access_log_file", None));
}
