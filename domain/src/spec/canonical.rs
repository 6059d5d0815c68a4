//! The canonical form of a request path that queue matching compares (SPEC §9).
//!
//! Upstream frameworks disagree on what counts as "the same path": many match
//! case-insensitively, ignore a trailing slash, merge `//`, drop `;matrix` parameters or
//! decode `%2F` into a separator. A queue is a throttle in front of such an upstream, so
//! it must catch every spelling the upstream would treat as the queued endpoint: matching
//! compares canonical forms, which erase all of those differences. Matching more is the
//! safe side (an odd spelling gets queued); matching less lets a client bypass the queue.

use std::borrow::Cow;

/// The canonical form of `path`: percent-decoded once (`%2F` becomes a separator),
/// `;parameters` cut from every segment, empty and `.` segments dropped, `..` resolved,
/// ASCII lower-cased, no trailing slash (the root stays `/`). Borrowed when `path` is
/// already canonical, which is the common case.
pub fn canonical_path(path: &str) -> Cow<'_, str> {
    if is_canonical(path) {
        return Cow::Borrowed(path);
    }
    let decoded = percent_decode(path.as_bytes());
    let decoded = String::from_utf8_lossy(&decoded);
    let mut segments: Vec<String> = Vec::new();
    for seg in decoded.split('/') {
        let seg = seg.split(';').next().unwrap_or_default();
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s.to_ascii_lowercase()),
        }
    }
    Cow::Owned(format!("/{}", segments.join("/")))
}

/// Whether `canonical_path` would return `path` unchanged.
fn is_canonical(path: &str) -> bool {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    if b.len() > 1 && b.ends_with(b"/") {
        return false;
    }
    if b.iter().any(|&c| c == b'%' || c == b';' || c.is_ascii_uppercase()) {
        return false;
    }
    // `//`, `/./`, `/../` and a final `.` or `..` segment.
    !path.split('/').skip(1).any(|s| s.is_empty() && path.len() > 1 || s == "." || s == "..")
}

/// `%XX` sequences decoded to bytes; a `%` not followed by two hex digits stays as it is.
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%'
            && let (Some(h), Some(l)) =
                (input.get(i + 1).copied().and_then(hex), input.get(i + 2).copied().and_then(hex))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::canonical_path;

    #[test]
    fn every_spelling_of_a_path_has_the_same_canonical_form() {
        for p in [
            "/api/q/heavy",
            "/api/q/heavy/",
            "/API/Q/HEAVY",
            "//api/q//heavy",
            "/api/q/heavy;jsessionid=1",
            "/api/q/heavy%2f",
            "/api/q/heavy%2F",
            "/api/q/%68eavy",
            "/api/q/./heavy",
            "/api/q/x/../heavy",
            "/api/q/x%2f..%2fheavy",
        ] {
            assert_eq!(canonical_path(p), "/api/q/heavy", "{p}");
        }
    }

    #[test]
    fn canonical_paths_are_borrowed_and_different_paths_stay_different() {
        assert!(matches!(canonical_path("/api/q/heavy"), std::borrow::Cow::Borrowed(_)));
        assert!(matches!(canonical_path("/"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(canonical_path("/api/q/heavy2"), "/api/q/heavy2");
        assert_eq!(canonical_path("/api/q/heavy/1"), "/api/q/heavy/1");
        assert_eq!(canonical_path("//"), "/");
        assert_eq!(canonical_path("/%zz"), "/%zz");
        assert_eq!(canonical_path("/a%"), "/a%");
    }
}
