//! `/admin/consumers` (create, list, read, merge-patch, delete; PATCH `{"enabled":false}`
//! disables), their API keys (created with a CSPRNG, shown once, stored as SHA-256) and
//! `/admin/revocations` (one token by issuer + subject + `jti`, or every token of a
//! subject issued before a time).

use actix_web::{HttpResponse, web};
use actors::auth::{
    Consumer, CreateKey, DeleteConsumer, DeleteKey, ListConsumers, PutConsumer, Revocation, Revoke, TokenRef,
};
use serde::Deserialize;
use serde_json::Value;

use super::json::{merge_patch, parse_json, parse_patch, with_path_key};
use super::{ACTOR_WAIT, AdminError, AdminState};

/// How long an admin revocation by `jti` is kept when the token's expiry is not given.
const DEFAULT_REVOCATION_TTL_SECS: u64 = 30 * 24 * 3600;

/// Mounts the consumer, key and revocation routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/consumers").route(web::get().to(list)).route(web::post().to(create)))
        .service(
            web::resource("/consumers/{id}")
                .route(web::get().to(get))
                .route(web::patch().to(patch))
                .route(web::put().to(replace))
                .route(web::delete().to(delete)),
        )
        .route("/consumers/{id}/keys", web::post().to(create_key))
        .route("/consumers/{id}/keys/{key_id}", web::delete().to(delete_key))
        .route("/revocations", web::post().to(revoke));
}

async fn all(state: &AdminState) -> Result<Vec<Consumer>, AdminError> {
    Ok(state.auth.send(ListConsumers).timeout(ACTOR_WAIT).await?)
}

async fn find(state: &AdminState, id: &str) -> Result<Consumer, AdminError> {
    all(state)
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| AdminError::not_found(format!("consumer {id:?} not found")))
}

async fn list(state: web::Data<AdminState>) -> Result<HttpResponse, AdminError> {
    Ok(HttpResponse::Ok().json(all(&state).await?))
}

async fn create(state: web::Data<AdminState>, body: web::Bytes) -> Result<HttpResponse, AdminError> {
    let consumer: Consumer = parse_json(&body)?;
    let c = state.auth.send(PutConsumer { consumer, create: true }).timeout(ACTOR_WAIT).await??;
    Ok(HttpResponse::Created().json(c))
}

async fn get(state: web::Data<AdminState>, id: web::Path<String>) -> Result<HttpResponse, AdminError> {
    Ok(HttpResponse::Ok().json(find(&state, &id).await?))
}

async fn write(state: &AdminState, id: &str, doc: Value) -> Result<Consumer, AdminError> {
    let doc = with_path_key(doc, "id", id)?;
    let consumer: Consumer = parse_json(&serde_json::to_vec(&doc).unwrap_or_default())?;
    Ok(state.auth.send(PutConsumer { consumer, create: false }).timeout(ACTOR_WAIT).await??)
}

async fn patch(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AdminError> {
    let patch = parse_patch(&body)?;
    let current = find(&state, &id).await?;
    let mut doc = serde_json::to_value(current).unwrap_or(Value::Null);
    merge_patch(&mut doc, &patch);
    Ok(HttpResponse::Ok().json(write(&state, &id, doc).await?))
}

async fn replace(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AdminError> {
    let doc: Value = parse_json(&body)?;
    let existed = all(&state).await?.iter().any(|c| c.id == *id);
    let c = write(&state, &id, doc).await?;
    Ok(if existed { HttpResponse::Ok() } else { HttpResponse::Created() }.json(c))
}

async fn delete(state: web::Data<AdminState>, id: web::Path<String>) -> Result<HttpResponse, AdminError> {
    state.auth.send(DeleteConsumer(id.into_inner())).timeout(ACTOR_WAIT).await??;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct NewKey {
    name: Option<String>,
}

async fn create_key(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AdminError> {
    let new: NewKey = if body.iter().all(u8::is_ascii_whitespace) { NewKey::default() } else { parse_json(&body)? };
    if new.name.as_ref().is_some_and(|n| n.len() > 128) {
        return Err(AdminError::validation("name", "at most 128 characters"));
    }
    let (rec, key) =
        state.auth.send(CreateKey { consumer: id.into_inner(), name: new.name }).timeout(ACTOR_WAIT).await??;
    Ok(HttpResponse::Created()
        .insert_header(("cache-control", "no-store"))
        .json(serde_json::json!({"key_id": rec.key_id, "key": key, "consumer": rec.consumer, "name": rec.name, "created_at": rec.created_at})))
}

async fn delete_key(
    state: web::Data<AdminState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AdminError> {
    let (consumer, key_id) = path.into_inner();
    state.auth.send(DeleteKey { consumer, key_id }).timeout(ACTOR_WAIT).await??;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RevocationRequest {
    /// One token: its `jti` (with `sub`, and `iss` unless it is the configured issuer).
    jti: Option<String>,
    /// RFC 3339 expiry of the token (optional; default 30 days).
    exp: Option<String>,
    /// The token's subject (with `jti`), or every token of this subject (without).
    sub: Option<String>,
    /// The token's issuer (with `jti`; default: `[auth.jwt] issuer`, or none).
    iss: Option<String>,
    issued_before: Option<String>,
}

fn unix(field: &str, value: &str) -> Result<u64, AdminError> {
    humantime::parse_rfc3339_weak(value)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .ok_or_else(|| AdminError::validation(field, "must be an RFC 3339 time, e.g. 2026-11-25T12:00:00Z"))
}

async fn revoke(state: web::Data<AdminState>, body: web::Bytes) -> Result<HttpResponse, AdminError> {
    let r: RevocationRequest = parse_json(&body)?;
    let rule = match (r.jti, r.sub, r.issued_before) {
        (Some(jti), sub, None) => {
            if jti.is_empty() {
                return Err(AdminError::validation("jti", "must not be empty"));
            }
            // A `jti` alone would revoke every user's token that reuses it.
            let sub = sub.filter(|s| !s.is_empty()).ok_or_else(|| {
                AdminError::validation("sub", "required with jti: a token is revoked by issuer, subject and jti")
            })?;
            let exp = match r.exp {
                Some(e) => unix("exp", &e)?,
                None => actors::now_unix() + DEFAULT_REVOCATION_TTL_SECS,
            };
            let iss = r.iss.or_else(|| state.jwt_issuer.clone()).unwrap_or_default();
            Revocation::Token { id: TokenRef::of_jti(&iss, &sub, &jti).member(), exp }
        }
        (Some(_), _, Some(_)) => {
            return Err(AdminError::validation("issued_before", "give issued_before with sub only, not with jti"));
        }
        (None, _, _) if r.iss.is_some() => {
            return Err(AdminError::validation("iss", "only with jti"));
        }
        // A subject's revocation has no expiry of its own: refuse the field rather than
        // ignore it (schemathesis: an invalid `exp` was accepted here).
        (None, _, _) if r.exp.is_some() => {
            return Err(AdminError::validation("exp", "only with jti (a subject revocation takes issued_before)"));
        }
        (None, Some(sub), before) if !sub.is_empty() => {
            let before = match before {
                Some(b) => unix("issued_before", &b)?,
                None => actors::now_unix(),
            };
            Revocation::Subject { sub, before }
        }
        _ => return Err(AdminError::validation("jti", "give either jti, or sub with an optional issued_before")),
    };
    state.auth.send(Revoke(rule)).timeout(ACTOR_WAIT).await??;
    Ok(HttpResponse::Created().json(serde_json::json!({"revoked": 1})))
}
