//! Cache keys (SPEC §7): the URL id (client path and query with parameters sorted by
//! name, repeated names in their order), the
//! primary key (plus host and, for `scope = consumer`, the consumer) and the variant key
//! (plus the request's values of the headers the response's `Vary` names). Keys are
//! stored as SHA-256 prefixes, so no client input ends up raw in a Redis key.

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// `path` plus `?` and the query with its parameters sorted by name, when there is a
/// query. The sort is stable: parameters of one name keep their relative order, so
/// `x=1&x=2` and `x=2&x=1` (which an origin may read as different lists) stay apart.
pub fn url_id(path: &str, query: &str) -> String {
    if query.is_empty() {
        return path.to_string();
    }
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    params.sort_by_key(|p| param_name(p));
    format!("{path}?{}", params.join("&"))
}

/// The name of a `name=value` query item (all of it without `=`).
fn param_name(item: &str) -> &str {
    item.split_once('=').map_or(item, |(name, _)| name)
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
        assert_eq!(url_id("/a", "x=2&b&x=1&a=3"), "/a?a=3&b&x=2&x=1", "repeated names keep their order");
        assert_ne!(url_id("/a", "x=1&x=2"), url_id("/a", "x=2&x=1"));
    }

    mod permutations {
        use super::super::{primary, url_id};
        use proptest::prelude::*;

        /// Query items over few names and values, so names repeat often.
        fn items() -> impl Strategy<Value = Vec<(u8, u8)>> {
            proptest::collection::vec((0u8..4, 0u8..3), 1..8)
        }

        fn query(items: &[(u8, u8)]) -> String {
            items.iter().map(|(n, v)| format!("{}={v}", char::from(b'a' + n))).collect::<Vec<_>>().join("&")
        }

        /// The values of each name, in order: what an origin can tell apart.
        fn per_name(items: &[(u8, u8)]) -> Vec<Vec<u8>> {
            (0u8..4).map(|n| items.iter().filter(|(m, _)| *m == n).map(|(_, v)| *v).collect()).collect()
        }

        proptest! {
            /// Two orders of the same items share a URL id exactly when every name keeps
            /// its sequence of values: reordering distinct names is free, reordering a
            /// repeated name's values is another URL.
            #[test]
            fn url_id_is_equal_iff_each_names_values_keep_their_order(
                (items, shuffled) in items().prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
            ) {
                let same = per_name(&items) == per_name(&shuffled);
                let (u, v) = (url_id("/p", &query(&items)), url_id("/p", &query(&shuffled)));
                prop_assert_eq!(u == v, same);
                prop_assert_eq!(primary(None, "h", &u) == primary(None, "h", &v), same, "the cache key too");
            }

            /// Reordering only distinct names never changes the URL id.
            #[test]
            fn reordering_distinct_names_keeps_the_url_id(
                (items, shuffled) in items().prop_flat_map(|v| {
                    let mut seen = [false; 4];
                    let distinct: Vec<(u8, u8)> =
                        v.into_iter().filter(|(n, _)| !std::mem::replace(&mut seen[*n as usize], true)).collect();
                    (Just(distinct.clone()), Just(distinct).prop_shuffle())
                })
            ) {
                prop_assert_eq!(url_id("/p", &query(&items)), url_id("/p", &query(&shuffled)));
            }

            /// Swapping two different values of a repeated name always changes the URL id.
            #[test]
            fn swapping_a_repeated_names_values_changes_the_url_id(
                items in items(), name in 0u8..4, first in 0u8..3, second in 0u8..3, at in 0usize..8
            ) {
                prop_assume!(first != second);
                let mut a = items.clone();
                let at = at.min(a.len());
                a.insert(at, (name, first));
                a.push((name, second));
                let mut b = items;
                b.insert(at, (name, second));
                b.push((name, first));
                prop_assert_ne!(url_id("/p", &query(&a)), url_id("/p", &query(&b)));
            }
        }
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
