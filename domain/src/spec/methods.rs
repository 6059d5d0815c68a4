//! `methods = ["GET", "POST"]`: the request methods a service accepts (SPEC §17); others
//! are answered `405 method_not_allowed` with `Allow`. `GET` implies `HEAD` (RFC 9110
//! §9.3.2: a HEAD is a GET without the body; nginx's `limit_except GET` does the same).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use super::FieldError;

/// One method name: 1–20 ASCII letters, kept upper-case (`get` is read as `GET`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MethodName(String);

impl MethodName {
    /// The upper-case name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for MethodName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphabetic()) {
            Ok(Self(s.to_ascii_uppercase()))
        } else {
            Err(format!("invalid method {s:?}: write an HTTP method such as \"GET\" (1-20 letters)"))
        }
    }
}

impl fmt::Display for MethodName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for MethodName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for MethodName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// The methods a service accepts (a service without the key accepts every method).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MethodList(pub Vec<MethodName>);

impl MethodList {
    /// Whether `method` (as sent, case-sensitive) is accepted; `HEAD` when `GET` is.
    pub fn allows(&self, method: &str) -> bool {
        self.0.iter().any(|m| m.0 == method) || (method == "HEAD" && self.0.iter().any(|m| m.0 == "GET"))
    }

    /// The `Allow` value: the listed methods in order, `HEAD` after `GET` when implied.
    pub fn allow_header(&self) -> String {
        let mut out = String::new();
        for m in &self.0 {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(&m.0);
            if m.0 == "GET" && !self.0.iter().any(|h| h.0 == "HEAD") {
                out.push_str(", HEAD");
            }
        }
        out
    }

    /// At least one method, none twice. Errors name `methods[i]`.
    pub fn validate(&self, field: &str) -> Result<(), FieldError> {
        if self.0.is_empty() {
            return Err(FieldError::new(field, "must list at least one method (leave it out to accept every method)"));
        }
        for (i, m) in self.0.iter().enumerate() {
            if self.0[..i].contains(m) {
                return Err(FieldError::new(format!("{field}[{i}]"), format!("{m} is listed twice")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &[&str]) -> MethodList {
        MethodList(s.iter().map(|m| m.parse().expect("method")).collect())
    }

    #[test]
    fn get_implies_head_and_the_allow_header_says_so() {
        let l = list(&["GET", "post"]);
        assert!(l.allows("GET") && l.allows("HEAD") && l.allows("POST"));
        assert!(!l.allows("DELETE") && !l.allows("OPTIONS") && !l.allows("get"));
        assert_eq!(l.allow_header(), "GET, HEAD, POST");
        assert_eq!(list(&["HEAD", "GET"]).allow_header(), "HEAD, GET");
        assert!(!list(&["POST"]).allows("HEAD"));
    }

    #[test]
    fn bad_lists_name_the_entry() {
        assert!("G ET".parse::<MethodName>().is_err() && "".parse::<MethodName>().is_err());
        assert_eq!(list(&[]).validate("methods").map_err(|e| e.field), Err("methods".into()));
        assert_eq!(list(&["GET", "get"]).validate("methods").map_err(|e| e.field), Err("methods[1]".into()));
        assert!(list(&["GET"]).validate("methods").is_ok());
    }
}
