//! Cache keys (SPEC §7): the URL id (client path and query with parameters sorted), the
//! primary key (plus host and, for `scope = consumer`, the consumer) and the variant key
//! (plus the request's values of the headers the response's `Vary` names). Keys are
//! stored as SHA-256 prefixes, so no client input ends up raw in a Redis key.

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// `path` plus `?` and the query with its parameters sorted, when there is a query.
pub fn url_id(path: &str, query: &str) -> String {
    if query.is_empty() {
        return path.to_string();
    }
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    params.sort_unstable();
    format!("{path}?{}", params.join("&"))
}

fn digest(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u32).to_le_bytes());
        h.update(p);
    }
    crate::hex(&h.finalize()[..16])
}

/// Hash of a URL id (names its index set).
pub fn url_hash(url: &str) -> String {
    digest(&[url.as_bytes()])
}

/// The primary key hash: consumer (empty when shared), `Host` as sent, URL id.
pub fn primary(consumer: Option<&str>, host: &str, url: &str) -> String {
    digest(&[consumer.unwrap_or("").as_bytes(), host.as_bytes(), url.as_bytes()])
}

/// The variant key hash under `primary` for the request's values of the Vary headers.
pub fn variant(primary: &str, values: &[(String, Option<Bytes>)]) -> String {
    let mut parts: Vec<&[u8]> = vec![primary.as_bytes()];
    for (name, value) in values {
        parts.push(name.as_bytes());
        parts.push(value.as_deref().unwrap_or(b"\0absent"));
    }
    digest(&parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_sorted() {
        assert_eq!(url_id("/a", "b=2&a=1"), "/a?a=1&b=2");
        assert_eq!(url_id("/a", ""), "/a");
        assert_eq!(url_id("/a", "b=2&a=1"), url_id("/a", "a=1&b=2"));
    }

    #[test]
    fn consumer_and_host_separate_keys() {
        let u = url_id("/x", "");
        assert_ne!(primary(Some("alice"), "h", &u), primary(Some("bob"), "h", &u));
        assert_ne!(primary(None, "h1", &u), primary(None, "h2", &u));
        assert_eq!(primary(None, "h", &u), primary(None, "h", &u));
        assert_eq!(primary(None, "h", &u).len(), 32);
    }

    #[test]
    fn variants_differ_by_vary_values_and_absence() {
        let p = primary(None, "h", "/x");
        let en = variant(&p, &[("accept-language".into(), Some(Bytes::from_static(b"en")))]);
        let fr = variant(&p, &[("accept-language".into(), Some(Bytes::from_static(b"fr")))]);
        let none = variant(&p, &[("accept-language".into(), None)]);
        let empty = variant(&p, &[("accept-language".into(), Some(Bytes::new()))]);
        assert_ne!(en, fr);
        assert_ne!(none, empty);
    }
}
