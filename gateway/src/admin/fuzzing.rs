//! Hooks for the fuzz targets (`fuzz/`): the admin API's body parsing and validation,
//! the same calls the handlers make, without an actor or a listener. Not an API.

use actors::auth::Consumer;
use actors::spec::ServiceSpec;
use serde_json::Value;

use super::AdminError;
use super::json::{merge_patch, parse_json, parse_patch, with_path_key};

/// A `POST /admin/services` body: parsed and validated (the node-config checks aside).
pub fn service(body: &[u8]) -> Result<ServiceSpec, AdminError> {
    let spec: ServiceSpec = parse_json(body)?;
    spec.validate().map_err(|e| AdminError::validation(e.field, e.message))
}

/// A `PUT /admin/services/{name}` body (the name filled from the path).
pub fn service_put(name: &str, body: &[u8]) -> Result<ServiceSpec, AdminError> {
    let raw: Value = parse_json(body)?;
    let doc = with_path_key(raw, "name", name)?;
    service(&serde_json::to_vec(&doc).unwrap_or_default())
}

/// A `PATCH /admin/services/{name}` body merged into `current`.
pub fn service_patch(current: &ServiceSpec, body: &[u8]) -> Result<ServiceSpec, AdminError> {
    let patch = parse_patch(body)?;
    let mut doc = serde_json::to_value(current).unwrap_or(Value::Null);
    merge_patch(&mut doc, &patch);
    let doc = with_path_key(doc, "name", current.name.as_str())?;
    service(&serde_json::to_vec(&doc).unwrap_or_default())
}

/// A consumer body (`POST`, or `PUT /admin/consumers/{id}` with `id`), validated as the
/// auth actor does.
pub fn consumer(id: Option<&str>, body: &[u8]) -> Result<Consumer, AdminError> {
    let c: Consumer = match id {
        None => parse_json(body)?,
        Some(id) => {
            let doc = with_path_key(parse_json(body)?, "id", id)?;
            parse_json(&serde_json::to_vec(&doc).unwrap_or_default())?
        }
    };
    c.validate().map_err(|e| AdminError::validation(e.field, e.message))
}

/// A `PATCH /admin/consumers/{id}` body merged into `current`.
pub fn consumer_patch(current: &Consumer, body: &[u8]) -> Result<Consumer, AdminError> {
    let patch = parse_patch(body)?;
    let mut doc = serde_json::to_value(current).unwrap_or(Value::Null);
    merge_patch(&mut doc, &patch);
    consumer(Some(&current.id), &serde_json::to_vec(&doc).unwrap_or_default())
}

/// A `POST /admin/consumers/{id}/keys` body.
pub fn key(body: &[u8]) -> Result<(), AdminError> {
    parse_json::<super::consumers::NewKey>(body).map(drop)
}

/// A `POST /admin/services/{name}/instances` body.
pub fn instance(body: &[u8]) -> Result<(), AdminError> {
    parse_json::<super::instances::NewInstance>(body).map(drop)
}

/// A `POST /admin/revocations` body.
pub fn revocation(body: &[u8]) -> Result<(), AdminError> {
    parse_json::<super::consumers::RevocationRequest>(body).map(drop)
}
