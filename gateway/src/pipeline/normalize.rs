//! Path normalization before routing: dot segments (`.`/`..`, also `%2e`-encoded) are
//! resolved so `/api/public/../admin` cannot be routed as `/api/public`.

use std::borrow::Cow;

fn is_dot(seg: &str) -> bool {
    seg == "." || seg.eq_ignore_ascii_case("%2e")
}

fn is_dotdot(seg: &str) -> bool {
    // Case-insensitive without lower-casing into a new string (runs for every segment).
    let s = seg.as_bytes();
    match s.len() {
        2 => s == b"..",
        4 => s.eq_ignore_ascii_case(b".%2e") || s.eq_ignore_ascii_case(b"%2e."),
        6 => s.eq_ignore_ascii_case(b"%2e%2e"),
        _ => false,
    }
}

/// The path with dot segments removed (RFC 3986 §5.2.4); borrowed when already clean.
pub fn path(p: &str) -> Cow<'_, str> {
    let needs = p.split('/').any(|s| is_dot(s) || is_dotdot(s));
    if !needs {
        return Cow::Borrowed(if p.is_empty() { "/" } else { p });
    }
    let mut out: Vec<&str> = Vec::new();
    let segs: Vec<&str> = p.split('/').skip(1).collect();
    let last = segs.len().saturating_sub(1);
    for (i, seg) in segs.iter().enumerate() {
        if is_dot(seg) {
            if i == last {
                out.push("");
            }
        } else if is_dotdot(seg) {
            out.pop();
            if i == last {
                out.push("");
            }
        } else {
            out.push(seg);
        }
    }
    Cow::Owned(format!("/{}", out.join("/")))
}

#[cfg(test)]
mod tests {
    use super::path;

    #[test]
    fn dot_segments_are_resolved() {
        assert_eq!(path("/api/users/7"), "/api/users/7");
        assert_eq!(path("/api/public/../admin/x"), "/api/admin/x");
        assert_eq!(path("/api/./users"), "/api/users");
        assert_eq!(path("/api/%2E%2e/x"), "/x");
        assert_eq!(path("/../../etc"), "/etc");
        assert_eq!(path("/a/b/.."), "/a/");
        assert_eq!(path(""), "/");
    }
}
