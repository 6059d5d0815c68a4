//! JSON helpers of the admin API: parsing that names the failing field, the path's
//! identifier filled into bodies, and RFC 7396 merge patches.

use serde_json::Value;

use super::AdminError;

/// The `field` of an error about the body as a whole (not JSON, not an object).
pub const WHOLE_BODY: &str = "body";

/// Parses a JSON body into `T`, naming the field of the first problem (a missing
/// required field included; `body` when the problem is the body as a whole).
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    // Every admin body is an object (serde would read a struct from an array, by position).
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(AdminError::validation(WHOLE_BODY, "the body must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let field = crate::config::error_field(&path, &message);
        let field = if field.is_empty() { WHOLE_BODY.to_string() } else { field };
        AdminError::validation(field, format!("invalid JSON body: {message}"))
    })?;
    de.end().map_err(|e| AdminError::validation(WHOLE_BODY, format!("invalid JSON body: {e}")))?;
    Ok(value)
}

/// A merge-patch body: must be a JSON object.
pub fn parse_patch(body: &[u8]) -> Result<Value, AdminError> {
    let patch: Value = parse_json(body)?;
    if patch.is_object() {
        Ok(patch)
    } else {
        Err(AdminError::validation(WHOLE_BODY, "a merge patch must be a JSON object"))
    }
}

/// Fills `key` from the path when the body omits it; refuses a body naming another one.
pub fn with_path_key(mut body: Value, key: &str, value: &str) -> Result<Value, AdminError> {
    let obj = body.as_object_mut().ok_or_else(|| AdminError::validation(WHOLE_BODY, "expected a JSON object"))?;
    match obj.get(key) {
        None => {
            obj.insert(key.into(), Value::String(value.into()));
        }
        Some(Value::String(v)) if v == value => {}
        Some(_) => return Err(AdminError::validation(key, format!("must be {value:?}, as in the path"))),
    }
    Ok(body)
}

/// RFC 7396 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
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
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut doc = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        merge_patch(&mut doc, &json!({"a": null, "b": {"c": 9}, "e": [2], "f": "x"}));
        assert_eq!(doc, json!({"b": {"c": 9, "d": 3}, "e": [2], "f": "x"}));
    }

    #[test]
    fn the_path_key_fills_or_must_match() {
        assert_eq!(with_path_key(json!({}), "id", "a").ok(), Some(json!({"id": "a"})));
        assert!(with_path_key(json!({"id": "b"}), "id", "a").is_err());
        assert!(with_path_key(json!([1]), "id", "a").is_err());
    }
}
