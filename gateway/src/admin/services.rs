//! `/admin/services`: create, read, replace, merge-patch and delete services. Bodies are
//! the JSON form of a `[[services]]` table; responses show every field's effective value.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use actors::registry::{CreateService, DeleteService, GetService, ListServices, UpsertService};
use actors::spec::{AuthMode, ServiceSpec};
use serde_json::Value;

use super::error::parse_json;
use super::{ACTOR_WAIT, AdminError, AdminState};

/// Mounts the service routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/services").route(web::get().to(list)).route(web::post().to(create))).service(
        web::resource("/services/{name}")
            .route(web::get().to(get))
            .route(web::put().to(replace))
            .route(web::patch().to(patch))
            .route(web::delete().to(delete)),
    );
}

/// Rules that depend on the node's config (policies, JWT) rather than on the service.
fn check_against_config(spec: &ServiceSpec, state: &AdminState) -> Result<(), AdminError> {
    for (i, p) in spec.rate_limit.0.iter().enumerate() {
        if !state.policies.contains(p) {
            let field =
                if spec.rate_limit.0.len() == 1 { "rate_limit".to_string() } else { format!("rate_limit[{i}]") };
            return Err(AdminError::validation(field, format!("unknown rate-limit policy {p:?}")));
        }
    }
    if matches!(spec.auth, AuthMode::Jwt | AuthMode::Any) && !state.jwt_configured {
        return Err(AdminError::validation("auth", "this gateway has no [auth.jwt] configuration"));
    }
    Ok(())
}

fn validated(spec: ServiceSpec, state: &AdminState) -> Result<ServiceSpec, AdminError> {
    let spec = spec.validate().map_err(|e| AdminError::validation(e.field, e.message))?;
    check_against_config(&spec, state)?;
    Ok(spec)
}

async fn list(state: web::Data<AdminState>) -> Result<HttpResponse, AdminError> {
    let services = state.registry.send(ListServices).timeout(ACTOR_WAIT).await?;
    Ok(HttpResponse::Ok().json(services.iter().map(|s| &**s).collect::<Vec<_>>()))
}

async fn create(state: web::Data<AdminState>, body: web::Bytes) -> Result<HttpResponse, AdminError> {
    let spec = validated(parse_json(&body)?, &state)?;
    let created = state.registry.send(CreateService(spec)).timeout(ACTOR_WAIT).await??;
    Ok(HttpResponse::Created().json(&*created))
}

async fn get(state: web::Data<AdminState>, name: web::Path<String>) -> Result<HttpResponse, AdminError> {
    let spec = current(&state, &name).await?;
    Ok(HttpResponse::Ok().json(&*spec))
}

async fn current(state: &AdminState, name: &str) -> Result<Arc<ServiceSpec>, AdminError> {
    state
        .registry
        .send(GetService(name.to_string()))
        .timeout(ACTOR_WAIT)
        .await?
        .ok_or_else(|| AdminError::not_found(format!("service {name:?} not found")))
}

/// The body must name the same service as the path (or no name at all).
fn with_path_name(mut body: Value, name: &str) -> Result<Value, AdminError> {
    let obj = body.as_object_mut().ok_or_else(|| AdminError::validation("", "expected a JSON object"))?;
    match obj.get("name") {
        None => {
            obj.insert("name".into(), Value::String(name.into()));
        }
        Some(Value::String(n)) if n == name => {}
        Some(_) => return Err(AdminError::validation("name", format!("must be {name:?}, the name in the path"))),
    }
    Ok(body)
}

async fn replace(
    state: web::Data<AdminState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AdminError> {
    let raw: Value = parse_json(&body)?;
    let spec: ServiceSpec = parse_json(&serde_json::to_vec(&with_path_name(raw, &name)?).unwrap_or_default())?;
    let spec = validated(spec, &state)?;
    let (spec, created) = state.registry.send(UpsertService(spec)).timeout(ACTOR_WAIT).await??;
    Ok(if created { HttpResponse::Created() } else { HttpResponse::Ok() }.json(&*spec))
}

async fn patch(
    state: web::Data<AdminState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AdminError> {
    let patch: Value = parse_json(&body)?;
    if !patch.is_object() {
        return Err(AdminError::validation("", "a merge patch must be a JSON object"));
    }
    let existing = current(&state, &name).await?;
    let mut doc = serde_json::to_value(&*existing).unwrap_or(Value::Null);
    merge_patch(&mut doc, &patch);
    let doc = with_path_name(doc, &name)?;
    let spec: ServiceSpec = parse_json(&serde_json::to_vec(&doc).unwrap_or_default())?;
    let spec = validated(spec, &state)?;
    let (spec, _) = state.registry.send(UpsertService(spec)).timeout(ACTOR_WAIT).await??;
    Ok(HttpResponse::Ok().json(&*spec))
}

async fn delete(state: web::Data<AdminState>, name: web::Path<String>) -> Result<HttpResponse, AdminError> {
    state.registry.send(DeleteService(name.into_inner())).timeout(ACTOR_WAIT).await??;
    Ok(HttpResponse::NoContent().finish())
}

/// RFC 7396 JSON merge patch.
pub(super) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::merge_patch;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut doc = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        merge_patch(&mut doc, &json!({"a": null, "b": {"c": 9}, "e": [2], "f": "x"}));
        assert_eq!(doc, json!({"b": {"c": 9, "d": 3}, "e": [2], "f": "x"}));
    }
}
