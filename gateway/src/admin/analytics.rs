//! `GET /admin/analytics?from=&to=&service=` (SPEC §12): the cluster-wide usage report.
//! Bounds are RFC 3339 (default: the last hour, up to now); bad input is
//! `400 validation_failed` naming the parameter.

use std::time::{Duration, UNIX_EPOCH};

use actix_web::{HttpRequest, HttpResponse, web};
use actors::analytics::Query;

use super::{ACTOR_WAIT, AdminError, AdminState};

/// Default range: the last hour.
const DEFAULT_RANGE_MS: u64 = 3600 * 1000;
/// Longest range one report may cover.
const MAX_RANGE_MS: u64 = 31 * 24 * 3600 * 1000;

/// Mounts the route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/analytics", web::get().to(report));
}

fn unix_ms(field: &str, value: &str) -> Result<u64, AdminError> {
    humantime::parse_rfc3339_weak(value)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .ok_or_else(|| AdminError::validation(field, "must be an RFC 3339 time, e.g. 2026-11-25T12:00:00Z"))
}

/// Parses the query string into a report query.
fn parse(query: &str, now_ms: u64) -> Result<Query, AdminError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|e| AdminError::validation("query", format!("unreadable query string: {e}")))?
        .into_inner();
    let (mut from, mut to, mut service) = (None, None, None);
    for (k, v) in pairs {
        match k.as_str() {
            "from" => from = Some(unix_ms("from", &v)?),
            "to" => to = Some(unix_ms("to", &v)?),
            "service" if !v.is_empty() => service = Some(v),
            "service" => return Err(AdminError::validation("service", "must not be empty")),
            other => return Err(AdminError::validation(other, "unknown parameter; use from, to, service")),
        }
    }
    let to_ms = to.unwrap_or(now_ms);
    let from_ms = from.unwrap_or_else(|| to_ms.saturating_sub(DEFAULT_RANGE_MS));
    if from_ms > to_ms {
        return Err(AdminError::validation("from", "must not be after to"));
    }
    if to_ms - from_ms > MAX_RANGE_MS {
        return Err(AdminError::validation("from", "the range may cover at most 31 days"));
    }
    Ok(Query { from_ms, to_ms, service })
}

async fn report(state: web::Data<AdminState>, req: HttpRequest) -> Result<HttpResponse, AdminError> {
    let q = parse(req.query_string(), actors::now_unix_ms())?;
    if !state.analytics.enabled() {
        return Err(AdminError::not_found("analytics is disabled ([analytics] enabled = false)"));
    }
    let report = state
        .analytics
        .query(q, ACTOR_WAIT + Duration::from_secs(1))
        .await
        .ok_or_else(|| AdminError::unavailable("the analytics actor did not answer"))?;
    Ok(HttpResponse::Ok().json(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn bounds_default_to_the_last_hour_and_bad_ones_name_the_parameter() {
        let q = parse("", 10_000_000).expect("defaults");
        assert_eq!((q.from_ms, q.to_ms), (10_000_000 - DEFAULT_RANGE_MS, 10_000_000));
        let q = parse("from=2026-01-01T00:00:00Z&to=2026-01-01T01:00:00Z&service=users", 0).expect("valid");
        assert_eq!(q.to_ms - q.from_ms, DEFAULT_RANGE_MS);
        assert_eq!(q.service.as_deref(), Some("users"));
        for (query, field) in [
            ("from=yesterday", "from"),
            ("to=1", "to"),
            ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "from"),
            ("bogus=1", "bogus"),
        ] {
            let e = parse(query, 0).expect_err(query);
            let res = e.render(&actix_web::http::header::HeaderValue::from_static("r"));
            assert_eq!(res.status(), 400, "{query}");
            let body = actix_web::body::to_bytes(res.into_body()).await.expect("body");
            let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
            assert_eq!(body["error"], "validation_failed", "{query}");
            assert_eq!(body["field"], field, "{query}");
        }
    }
}
