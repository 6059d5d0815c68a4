//! JWT verification (`actors/src/auth/jwt.rs`) on any token string, with an HMAC key
//! (kid `hmac-1`) and an RSA key (no kid) configured, issuer and audience required.
//!
//! Input forms (text):
//! - `sign\n<header JSON>\n<claims JSON>`: encoded and signed with HMAC. An `HS*` header
//!   is signed with the configured secret (claims handling gets exercised past the
//!   signature); any other `alg` is signed with the RSA public key's PEM as the HMAC
//!   secret (the algorithm-confusion attack), which must never verify.
//! - anything else: the token as given.
//!
//! A result must not change when the same token is verified again (the verified-token
//! cache), and an accepted token always names its consumer and carries `exp`.
#![no_main]

use std::sync::LazyLock;

use actors::auth::{JwtSettings, JwtVerifier, KeyMaterial, KeySpec};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-secret-0123456789-abcdefghij";
const RSA_PUBLIC: &[u8] = include_bytes!("../keys/rsa-public.pem");

static VERIFIER: LazyLock<JwtVerifier> = LazyLock::new(|| {
    let settings = JwtSettings {
        algorithms: ["HS256", "HS384", "RS256", "PS256"].map(String::from).to_vec(),
        issuer: Some("https://issuer.example".into()),
        audience: vec!["gateway".into()],
        leeway_secs: 30,
        role_claim: "tier".into(),
        keys: vec![
            KeySpec { kid: Some("hmac-1".into()), material: KeyMaterial::Secret(SECRET.to_vec()) },
            KeySpec { kid: None, material: KeyMaterial::PublicPem(RSA_PUBLIC.to_vec()) },
        ],
    };
    match JwtVerifier::new(&settings) {
        Ok(v) => v,
        Err((i, m)) => panic!("fuzz verifier key {i}: {m}"),
    }
});

/// Builds `header.claims.signature`; the flag says whether it must be refused.
fn signed(header: &str, claims: &str) -> (String, bool) {
    let alg = serde_json::from_str::<serde_json::Value>(header)
        .ok()
        .and_then(|h| h.get("alg").and_then(|a| a.as_str()).map(str::to_string));
    let (alg, secret, confusion) = match alg.as_deref() {
        Some("HS256") => (Algorithm::HS256, SECRET, false),
        Some("HS384") => (Algorithm::HS384, SECRET, false),
        Some("HS512") => (Algorithm::HS512, SECRET, false),
        _ => (Algorithm::HS256, RSA_PUBLIC, true),
    };
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(secret), alg).unwrap_or_default();
    (format!("{input}.{sig}"), confusion)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (token, must_fail) = match text.strip_prefix("sign\n").and_then(|rest| rest.split_once('\n')) {
        Some((header, claims)) => signed(header, claims),
        None => (text.to_string(), false),
    };
    let first = VERIFIER.verify(&token);
    let again = VERIFIER.verify(&token);
    assert_eq!(first, again, "a second verification of the same token differs");
    if let Ok(id) = first {
        assert!(!must_fail, "a token HMAC-signed with the RSA public key verified: {token}");
        assert!(!id.consumer.is_empty(), "accepted token without sub");
        assert!(id.exp.is_some(), "accepted token without exp");
    }
});
