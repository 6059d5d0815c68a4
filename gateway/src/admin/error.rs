//! `AdminError`: every admin API error with its status, code and (for validation) field.

use actix_web::http::StatusCode;
use actix_web::http::header::HeaderValue;
use actix_web::{HttpResponse, ResponseError};
use actors::registry::RegistryError;

use crate::pipeline::request_id;

/// An admin API error.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct AdminError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

impl AdminError {
    /// 400 `validation_failed` naming `field` (`body` when no narrower field is known:
    /// every validation error names one).
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "validation_failed",
            message: message.into(),
            field: Some(if field.is_empty() { super::json::WHOLE_BODY.to_string() } else { field }),
        }
    }
    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, code: "not_found", message: message.into(), field: None }
    }
    /// 409 `conflict` naming `field`.
    pub fn conflict(field: &str, message: impl Into<String>) -> Self {
        Self { status: StatusCode::CONFLICT, code: "conflict", message: message.into(), field: Some(field.into()) }
    }
    /// 503 `redis_unavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "redis_unavailable",
            message: message.into(),
            field: None,
        }
    }
}

impl From<RegistryError> for AdminError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Invalid(f) => Self::validation(f.field, f.message),
            RegistryError::Conflict(f) => Self::conflict(&f.field, f.message),
            RegistryError::Exists(name) => Self::conflict("name", format!("service {name:?} already exists")),
            RegistryError::NotFound(name) => Self::not_found(format!("service {name:?} not found")),
            RegistryError::InstanceNotFound(id) => Self::not_found(format!("instance {id:?} not found")),
            RegistryError::Store(s) => Self::unavailable(format!("registry storage unavailable: {s}")),
        }
    }
}

impl From<actors::auth::AuthAdminError> for AdminError {
    fn from(e: actors::auth::AuthAdminError) -> Self {
        use actors::auth::AuthAdminError as E;
        match e {
            E::Invalid(f) => Self::validation(f.field, f.message),
            E::Exists(id) => Self::conflict("id", format!("consumer {id:?} already exists")),
            E::NotFound(what) => Self::not_found(format!("{what} not found")),
            E::Store(s) => Self::unavailable(format!("auth storage unavailable: {s}")),
        }
    }
}

impl From<actix::MailboxError> for AdminError {
    fn from(e: actix::MailboxError) -> Self {
        Self { status: StatusCode::SERVICE_UNAVAILABLE, code: "unavailable", message: e.to_string(), field: None }
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        self.render(&request_id::generate())
    }
}

impl AdminError {
    /// The JSON response for this error, answering request `id`.
    pub fn render(&self, id: &HeaderValue) -> HttpResponse {
        let mut body = serde_json::json!({
            "error": self.code,
            "message": self.message,
            "request_id": id.to_str().unwrap_or_default(),
        });
        if let Some(f) = &self.field {
            body["field"] = serde_json::Value::String(f.clone());
        }
        HttpResponse::build(self.status).insert_header((crate::names::X_REQUEST_ID.clone(), id.clone())).json(body)
    }
}
