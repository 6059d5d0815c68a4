//! `GatewayError`: every error the gateway itself answers with, and the single place
//! that chooses its status and code. `Rejected` renders it as the JSON of SPEC §4.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::names;

/// An error the gateway answers itself.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// Missing or bad credentials.
    #[error("{0}")]
    Unauthorized(actors::auth::AuthError),
    /// Authenticated, but not allowed to call this service/method.
    #[error("{0}")]
    Forbidden(String),
    /// The client address is refused by the service's `[services.ip]` rules.
    #[error("{0}")]
    IpForbidden(String),
    /// A CORS preflight from an origin (or for a method or header) the service does not
    /// allow.
    #[error("{0}")]
    CorsForbidden(String),
    /// The service does not accept this method (`methods`).
    #[error("method {method} is not allowed here; allowed: {allow}")]
    MethodNotAllowed {
        /// The request's method.
        method: String,
        /// The `Allow` value.
        allow: String,
    },
    /// Over a rate limit.
    #[error("rate limit exceeded; retry in {retry_after} s")]
    RateLimited {
        /// Seconds until a retry can pass.
        retry_after: u64,
    },
    /// Redis is needed and unreachable (e.g. a `closed` rate-limit policy).
    #[error("{0}")]
    RedisUnavailable(String),
    /// The service's queue holds `max_depth` waiting jobs.
    #[error("the queue of service {service} is full; retry in {retry_after} s")]
    QueueFull {
        /// Service name.
        service: String,
        /// Seconds the client should wait.
        retry_after: u64,
    },
    /// A resource of the main listener that does not exist (or is not the caller's): a job.
    #[error("{0}")]
    NotFound(String),
    /// No service matches the path/host.
    #[error("no route for {0}")]
    RouteNotFound(String),
    /// The request body is larger than `node.max_body`.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(u64),
    /// Too many headers or too many header bytes.
    #[error("{0}")]
    HeadersTooLarge(String),
    /// The client did not send the request within `node.request_timeout`.
    #[error("the request was not received within {0:?}")]
    RequestTimeout(Duration),
    /// Malformed request.
    #[error("{0}")]
    BadRequest(String),
    /// Every endpoint is unhealthy, drained or behind an open breaker.
    #[error("no healthy upstream for service {service}")]
    NoHealthyUpstream {
        /// Service name.
        service: String,
        /// Seconds the client should wait.
        retry_after: u64,
    },
    /// The upstream could not be reached.
    #[error("upstream unavailable: {0}")]
    UpstreamUnavailable(String),
    /// The request already passed through this node (its id is in `Via`): the service
    /// routes back to the gateway itself.
    #[error("request loop: this node ({0}) is already in Via")]
    LoopDetected(String),
    /// The upstream did not answer within the service timeout.
    #[error("upstream did not answer within {0:?}")]
    UpstreamTimeout(Duration),
    /// The service names a policy this node does not define (a service stored by a node
    /// with another config): refused rather than let through unlimited.
    #[error("{0}")]
    PolicyUnavailable(String),
}

impl GatewayError {
    /// Status and machine-readable code, chosen together.
    pub fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            Self::RouteNotFound(_) => (StatusCode::NOT_FOUND, "route_not_found"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::QueueFull { .. } => (StatusCode::SERVICE_UNAVAILABLE, "queue_full"),
            Self::Unauthorized(e) => (StatusCode::UNAUTHORIZED, e.code()),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::IpForbidden(_) => (StatusCode::FORBIDDEN, "ip_forbidden"),
            Self::CorsForbidden(_) => (StatusCode::FORBIDDEN, "cors_forbidden"),
            Self::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::RedisUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "redis_unavailable"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::HeadersTooLarge(_) => (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large"),
            Self::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::NoHealthyUpstream { .. } => (StatusCode::SERVICE_UNAVAILABLE, "no_healthy_upstream"),
            Self::UpstreamUnavailable(_) => (StatusCode::BAD_GATEWAY, "upstream_unavailable"),
            Self::UpstreamTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            Self::LoopDetected(_) => (StatusCode::LOOP_DETECTED, "loop_detected"),
            Self::PolicyUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "policy_unavailable"),
        }
    }

    /// The `message` a client sees. Upstream failures get a generic text: their details
    /// (endpoint ids, addresses, parser findings) go to the log only.
    pub fn client_message(&self) -> String {
        match self {
            Self::UpstreamUnavailable(_) => {
                "the upstream service could not be reached or sent an invalid answer".into()
            }
            Self::UpstreamTimeout(_) => "the upstream service did not answer in time".into(),
            other => other.to_string(),
        }
    }

    /// `Retry-After` seconds, for errors that carry one.
    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::NoHealthyUpstream { retry_after, .. }
            | Self::RateLimited { retry_after }
            | Self::QueueFull { retry_after, .. } => Some((*retry_after).max(1)),
            Self::RedisUnavailable(_) => Some(1),
            _ => None,
        }
    }

    /// Whether the connection should be closed after answering (the request body may be
    /// partly unread, so the connection cannot be reused safely).
    fn closes_connection(&self) -> bool {
        matches!(self, Self::PayloadTooLarge(_) | Self::RequestTimeout(_) | Self::HeadersTooLarge(_))
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: String,
    request_id: &'a str,
}

/// A gateway error with the request id it answers.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Rejected {
    /// The request id (echoed in the body and the header).
    pub request_id: HeaderValue,
    /// What went wrong.
    pub error: GatewayError,
}

impl Rejected {
    /// The JSON error response.
    pub fn to_response(&self) -> HttpResponse {
        let (status, code) = self.error.parts();
        let mut res = json_error(
            status,
            code,
            self.error.client_message(),
            &self.request_id,
            self.error.retry_after(),
            self.error.closes_connection(),
        );
        if let GatewayError::Unauthorized(e) = &self.error {
            // RFC 6750 §3.1: no error attribute when no credentials were sent.
            let challenge = match e {
                actors::auth::AuthError::MissingCredentials => "Bearer realm=\"gateway\"",
                _ => "Bearer realm=\"gateway\", error=\"invalid_token\"",
            };
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        if let GatewayError::MethodNotAllowed { allow, .. } = &self.error
            && let Ok(v) = HeaderValue::from_str(allow)
        {
            res.headers_mut().insert(header::ALLOW, v);
        }
        res
    }
}

impl ResponseError for Rejected {
    fn status_code(&self) -> StatusCode {
        self.error.parts().0
    }
    fn error_response(&self) -> HttpResponse {
        self.to_response()
    }
}

/// Builds `{"error","message","request_id"}` with `X-Request-Id` (and `Retry-After`).
pub fn json_error(
    status: StatusCode,
    code: &str,
    message: String,
    request_id: &HeaderValue,
    retry_after: Option<u64>,
    close: bool,
) -> HttpResponse {
    let body = Body { error: code, message, request_id: request_id.to_str().unwrap_or_default() };
    let mut res = HttpResponse::build(status);
    res.insert_header((names::X_REQUEST_ID.clone(), request_id.clone()));
    res.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    if let Some(secs) = retry_after {
        res.insert_header((header::RETRY_AFTER, secs));
    }
    if close {
        res.force_close();
    }
    res.json(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_failures_show_clients_no_details() {
        let detail = "echo-0 failed: invalid response: conflicting Content-Length";
        let e = GatewayError::UpstreamUnavailable(detail.into());
        assert!(e.to_string().contains(detail), "the log keeps the detail");
        assert!(!e.client_message().contains("echo-0"));
        let t = GatewayError::UpstreamTimeout(Duration::from_secs(7));
        assert!(!t.client_message().contains('7'));
        assert_eq!(GatewayError::RouteNotFound("/x".into()).client_message(), "no route for /x");
    }
}
