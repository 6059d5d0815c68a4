//! Request ids: keep a valid incoming `X-Request-Id` (1–128 of `[A-Za-z0-9._:-]`),
//! otherwise generate a UUIDv7.

use actix_web::HttpRequest;
use actix_web::http::header::{HeaderMap, HeaderValue};

use crate::names;

/// Whether an incoming id may be kept.
pub fn is_valid(id: &[u8]) -> bool {
    (1..=128).contains(&id.len()) && id.iter().all(|b| b.is_ascii_alphanumeric() || b".:_-".contains(b))
}

/// The request's id: the client's when valid, else a fresh UUIDv7.
pub fn of(req: &HttpRequest) -> HeaderValue {
    of_headers(req.headers())
}

/// `of` over a header map (requests refused before `100 Continue`).
pub fn of_headers(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&names::X_REQUEST_ID)
        && is_valid(v.as_bytes())
    {
        return v.clone();
    }
    generate()
}

/// A fresh UUIDv7 as a header value. Random bits come from the thread-local CSPRNG
/// (`Uuid::now_v7` would make a `getrandom` syscall per request).
pub fn generate() -> HeaderValue {
    let millis = actors::now_unix_ms();
    let random: [u8; 10] = rand::random();
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let s = id.hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_for_charset_and_length() {
        assert!(is_valid(b"abc-123_x.y:z"));
        assert!(!is_valid(b""));
        assert!(!is_valid(b"has space"));
        assert!(!is_valid(b"semi;colon"));
        assert!(!is_valid(&[b'a'; 129]));
        assert!(is_valid(&[b'a'; 128]));
        assert!(is_valid(generate().as_bytes()));
    }
}
