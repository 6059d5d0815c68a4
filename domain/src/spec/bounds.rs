//! Upper bounds of a service's durations beyond the parse-time cap of one year
//! (`units::bounds`): timeouts at most an hour, periods at most a day.

use crate::units::at_most;
use crate::units::bounds::{MAX_PERIOD, MAX_TIMEOUT};

use super::{FieldError, ServiceSpec};

/// Checks every duration of `spec` against its bound; the error names the field.
pub fn check(spec: &ServiceSpec) -> Result<(), FieldError> {
    at_most("timeout", spec.timeout.get(), MAX_TIMEOUT)?;
    if let Some(h) = &spec.health_check {
        at_most("health_check.interval", h.interval.get(), MAX_PERIOD)?;
        at_most("health_check.timeout", h.timeout.get(), MAX_TIMEOUT)?;
    }
    if let Some(cb) = &spec.circuit_breaker {
        at_most("circuit_breaker.window", cb.window.get(), MAX_PERIOD)?;
        at_most("circuit_breaker.open_for", cb.open_for.get(), MAX_PERIOD)?;
    }
    if let Some(q) = &spec.queue {
        at_most("queue.wait", q.wait.get(), MAX_TIMEOUT)?;
        at_most("queue.rate", q.rate.per.get(), MAX_PERIOD)?;
        at_most("queue.lease", q.lease.get(), MAX_TIMEOUT)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Result<ServiceSpec, FieldError> {
        serde_json::from_value::<ServiceSpec>(json).map_err(|e| FieldError::new("", e.to_string()))?.validate()
    }

    #[test]
    fn durations_above_their_bound_name_the_field() {
        let base = serde_json::json!({"name": "s", "endpoints": ["http://127.0.0.1:1"]});
        let with = |k: &str, v: serde_json::Value| {
            let mut s = base.clone();
            s[k] = v;
            spec(s).err().map(|e| e.field)
        };
        assert_eq!(with("timeout", "2h".into()), Some("timeout".into()));
        assert_eq!(with("timeout", "1h".into()), None);
        assert_eq!(with("health_check", serde_json::json!({"interval": "2d"})), Some("health_check.interval".into()));
        assert_eq!(
            with("circuit_breaker", serde_json::json!({"open_for": "25h"})),
            Some("circuit_breaker.open_for".into())
        );
        assert_eq!(with("queue", serde_json::json!({"match": ["POST /x"], "wait": "90m"})), Some("queue.wait".into()));
        assert_eq!(with("queue", serde_json::json!({"match": ["POST /x"], "rate": "1/2d"})), Some("queue.rate".into()));
        // Above a year, parsing already refuses.
        assert!(with("timeout", "10000000000000000000s".into()).is_some());
    }
}
