//! Validation of a service's per-service policies of SPEC §17 (`methods`, `max_body`,
//! `[services.ip]`, `[services.cors]`), kept out of `service.rs`. Errors name the field
//! relative to the service (`ip.allow[1]`); the config prefixes `services[i]`.

use crate::units::bounds::MAX_BODY;
use crate::units::size_at_most;

use super::{FieldError, ServiceSpec};

/// Checks the policy sections of `spec`.
pub fn check(spec: &ServiceSpec) -> Result<(), FieldError> {
    if let Some(m) = &spec.methods {
        m.validate("methods")?;
    }
    if let Some(max) = spec.max_body {
        if max.bytes() == 0 {
            return Err(FieldError::new("max_body", "must be greater than 0"));
        }
        size_at_most("max_body", max, MAX_BODY)?;
    }
    if let Some(ip) = &spec.ip {
        ip.validate()?;
    }
    if let Some(cors) = &spec.cors {
        cors.validate(spec.methods.as_ref())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field(extra: serde_json::Value) -> Option<String> {
        let mut s = json!({"name": "s", "endpoints": ["http://127.0.0.1:1"]});
        if let (Some(o), serde_json::Value::Object(e)) = (s.as_object_mut(), extra) {
            o.extend(e);
        }
        match serde_json::from_value::<ServiceSpec>(s) {
            Ok(spec) => spec.validate().err().map(|e| e.field),
            Err(e) => Some(format!("parse: {e}")),
        }
    }

    #[test]
    fn each_section_names_its_field() {
        assert_eq!(field(json!({"methods": ["GET"], "max_body": "1MiB", "ip": {"deny": ["10.0.0.0/8"]}})), None);
        assert_eq!(field(json!({"methods": []})), Some("methods".into()));
        assert_eq!(field(json!({"max_body": 0})), Some("max_body".into()));
        assert_eq!(field(json!({"max_body": "2GiB"})), Some("max_body".into()));
        assert_eq!(field(json!({"ip": {}})), Some("ip".into()));
        assert_eq!(
            field(json!({"methods": ["GET"], "cors": {"origins": ["*"], "methods": ["PUT"]}})),
            Some("cors.methods[0]".into())
        );
        assert!(field(json!({"ip": {"allow": ["10.0.0.0/8", "nope"]}})).is_some_and(|e| e.contains("invalid CIDR")));
    }

    #[test]
    fn unset_sections_are_left_out_when_serialized() {
        let spec: ServiceSpec =
            serde_json::from_value(json!({"name": "s", "endpoints": ["http://127.0.0.1:1"]})).expect("spec");
        let v = serde_json::to_value(&spec).expect("json");
        for key in ["methods", "max_body", "ip", "cors"] {
            assert!(v.get(key).is_none(), "{key} in {v}");
        }
        let spec: ServiceSpec = serde_json::from_value(json!({"name": "s", "methods": ["get"], "max_body": "10MiB",
            "ip": {"allow": ["10.0.0.0/8"]}, "cors": {"origins": ["https://a.test"]}}))
        .expect("spec");
        let v = serde_json::to_value(&spec).expect("json");
        assert_eq!((v["methods"].clone(), v["max_body"].clone()), (json!(["GET"]), json!("10MiB")));
        assert_eq!(v["ip"], json!({"allow": ["10.0.0.0/8"], "deny": []}));
        assert_eq!(serde_json::from_value::<ServiceSpec>(v).expect("reads back"), spec);
    }
}
