use std::process::Command;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

use super::*;

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Generates a key pair with the openssl CLI: (private PEM, public PEM).
fn keypair(kind: &str) -> (Vec<u8>, Vec<u8>) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("gw-keys-{}-{kind}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let private = dir.join("private.pem");
    let public = dir.join("public.pem");
    let gen_args: Vec<&str> = match kind {
        "rsa" => vec!["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        "p256" => vec!["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "p384" => vec!["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
        "ed25519" => vec!["genpkey", "-algorithm", "ED25519"],
        other => panic!("unknown key kind {other}"),
    };
    let quiet = |c: &mut Command| {
        c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    };
    let mut cmd = Command::new("openssl");
    cmd.args(&gen_args).arg("-out").arg(&private);
    quiet(&mut cmd);
    let ok = cmd.status().expect("openssl").success();
    assert!(ok, "openssl genpkey {kind}");
    let mut cmd = Command::new("openssl");
    cmd.args(["pkey", "-pubout", "-in"]).arg(&private).arg("-out").arg(&public);
    quiet(&mut cmd);
    let ok = cmd.status().expect("openssl").success();
    assert!(ok, "openssl pkey {kind}");
    let out = (std::fs::read(&private).expect("private"), std::fs::read(&public).expect("public"));
    let _ = std::fs::remove_dir_all(dir);
    out
}

fn settings(keys: Vec<KeySpec>, algorithms: &[&str]) -> JwtSettings {
    JwtSettings {
        algorithms: algorithms.iter().map(|s| s.to_string()).collect(),
        issuer: Some("https://issuer.example".into()),
        audience: vec!["api".into()],
        leeway_secs: 5,
        role_claim: "role".into(),
        keys,
    }
}

fn claims() -> serde_json::Value {
    json!({"sub": "alice", "role": "premium", "iss": "https://issuer.example", "aud": "api", "exp": now() + 600, "iat": now(), "jti": "t-1"})
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &serde_json::Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    encode(&h, claims, key).expect("sign")
}

fn secret_key(kid: &str, secret: &[u8]) -> KeySpec {
    KeySpec { kid: Some(kid.into()), material: KeyMaterial::Secret(secret.to_vec()) }
}

#[test]
fn every_hmac_algorithm_verifies_and_yields_the_identity() {
    let v =
        JwtVerifier::new(&settings(vec![secret_key("k1", b"top-secret")], &["HS256", "HS384", "HS512"])).expect("v");
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let t = sign(alg, Some("k1"), &EncodingKey::from_secret(b"top-secret"), &claims());
        let id = v.verify(&t).expect("valid");
        assert_eq!(id.consumer, "alice");
        assert_eq!(id.tier.as_deref(), Some("premium"));
        assert_eq!(id.jti.as_deref(), Some("t-1"));
    }
}

#[test]
fn every_asymmetric_algorithm_verifies_with_generated_keys() {
    let cases = [
        ("rsa", vec![Algorithm::RS256, Algorithm::RS384, Algorithm::RS512]),
        ("p256", vec![Algorithm::ES256]),
        ("p384", vec![Algorithm::ES384]),
        ("ed25519", vec![Algorithm::EdDSA]),
    ];
    for (kind, algs) in cases {
        let (private, public) = keypair(kind);
        let v = JwtVerifier::new(&settings(
            vec![KeySpec { kid: Some(kind.into()), material: KeyMaterial::PublicPem(public) }],
            &["RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA"],
        ))
        .expect("verifier");
        let enc = match kind {
            "rsa" => EncodingKey::from_rsa_pem(&private),
            "ed25519" => EncodingKey::from_ed_pem(&private),
            _ => EncodingKey::from_ec_pem(&private),
        }
        .expect("encoding key");
        for alg in algs {
            let t = sign(alg, Some(kind), &enc, &claims());
            assert_eq!(v.verify(&t).map(|i| i.consumer), Ok("alice".to_string()), "{kind} {alg:?}");
        }
    }
}

#[test]
fn rotation_accepts_both_kids_and_kidless_tokens_only_when_unambiguous() {
    let v = JwtVerifier::new(&settings(
        vec![secret_key("old", b"old-secret"), secret_key("new", b"new-secret")],
        &["HS256"],
    ))
    .expect("v");
    let old = sign(Algorithm::HS256, Some("old"), &EncodingKey::from_secret(b"old-secret"), &claims());
    let new = sign(Algorithm::HS256, Some("new"), &EncodingKey::from_secret(b"new-secret"), &claims());
    assert!(v.verify(&old).is_ok());
    assert!(v.verify(&new).is_ok());
    let crossed = sign(Algorithm::HS256, Some("old"), &EncodingKey::from_secret(b"new-secret"), &claims());
    assert_eq!(v.verify(&crossed), Err(AuthError::InvalidToken("bad signature")));
    let kidless = sign(Algorithm::HS256, None, &EncodingKey::from_secret(b"new-secret"), &claims());
    assert!(matches!(v.verify(&kidless), Err(AuthError::InvalidToken(_))));
    let single = JwtVerifier::new(&settings(vec![secret_key("only", b"s")], &["HS256"])).expect("v");
    let kidless = sign(Algorithm::HS256, None, &EncodingKey::from_secret(b"s"), &claims());
    assert!(single.verify(&kidless).is_ok());
}

#[test]
fn every_kind_of_bad_token_is_refused_with_the_right_code() {
    let key = EncodingKey::from_secret(b"k");
    let v = JwtVerifier::new(&settings(vec![secret_key("k", b"k")], &["HS256"])).expect("v");
    let with = |patch: serde_json::Value| {
        let mut c = claims();
        for (k, val) in patch.as_object().expect("object") {
            if val.is_null() {
                c.as_object_mut().expect("object").remove(k);
            } else {
                c[k] = val.clone();
            }
        }
        sign(Algorithm::HS256, Some("k"), &key, &c)
    };
    let code = |t: &str| v.verify(t).map(|_| "ok").unwrap_or_else(|e| e.code());
    assert_eq!(code(&with(json!({"exp": now() - 3600}))), "token_expired");
    assert_eq!(code(&with(json!({"nbf": now() + 3600}))), "invalid_token");
    assert_eq!(code(&with(json!({"iss": "https://evil.example"}))), "invalid_token");
    assert_eq!(code(&with(json!({"aud": "other"}))), "invalid_token");
    assert_eq!(code(&with(json!({"exp": null}))), "invalid_token");
    assert_eq!(code(&with(json!({"aud": null}))), "invalid_token", "missing aud with an audience configured");
    assert_eq!(code(&with(json!({"iss": null}))), "invalid_token", "missing iss with an issuer configured");
    let mut crit = Header::new(Algorithm::HS256);
    crit.kid = Some("k".into());
    crit.crit = Some(vec!["exp".into()]);
    assert_eq!(code(&encode(&crit, &claims(), &key).expect("sign")), "invalid_token", "crit");
    let good = with(json!({}));
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    parts[2] = sign(Algorithm::HS256, Some("k"), &EncodingKey::from_secret(b"other"), &claims())
        .split('.')
        .nth(2)
        .expect("sig")
        .to_string();
    assert_eq!(code(&parts.join(".")), "invalid_token", "bad signature");
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(
            json!({"sub": "mallory", "exp": now() + 600, "iss": "https://issuer.example", "aud": "api"}).to_string()
        ),
        good.split('.').nth(2).expect("sig")
    );
    assert_eq!(code(&tampered), "invalid_token", "tampered payload");
    let none = format!("{}.{}.", b64.encode(r#"{"alg":"none","typ":"JWT"}"#), good.split('.').nth(1).expect("payload"));
    assert_eq!(code(&none), "invalid_token", "alg none");
    let unknown_kid = sign(Algorithm::HS256, Some("nope"), &key, &claims());
    assert_eq!(code(&unknown_kid), "invalid_token");
    assert_eq!(code(&"a".repeat(MAX_TOKEN_BYTES + 1)), "invalid_token");
    assert_eq!(code("garbage"), "invalid_token");
    assert_eq!(code(&good), "ok");
}

#[test]
fn an_hmac_secret_never_verifies_an_asymmetric_token() {
    // The classic confusion: an RS256 token "signed" with the RSA public key as HMAC secret.
    let (_, public) = keypair("rsa");
    let v = JwtVerifier::new(&settings(
        vec![KeySpec { kid: Some("rsa".into()), material: KeyMaterial::PublicPem(public.clone()) }],
        &["RS256", "HS256"],
    ))
    .expect("v");
    let forged = sign(Algorithm::HS256, Some("rsa"), &EncodingKey::from_secret(&public), &claims());
    assert_eq!(v.verify(&forged).map_err(|e| e.code()), Err("invalid_token"));
}

#[test]
fn key_digests_are_lowercase_hex_sha256() {
    assert_eq!(key_digest(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

#[test]
fn a_verified_token_is_remembered_but_still_expires_and_a_new_key_set_forgets_it() {
    let v = JwtVerifier::new(&settings(vec![secret_key("k1", b"top-secret")], &["HS256"])).expect("v");
    let key = EncodingKey::from_secret(b"top-secret");
    let t = sign(Algorithm::HS256, Some("k1"), &key, &claims());
    let first = v.verify(&t).expect("valid");
    assert_eq!(v.verify(&t), Ok(first.clone()), "the remembered answer is the same identity");
    // A tampered copy is a different string: never served from memory.
    let tampered = format!("{}x", &t[..t.len() - 1]);
    assert!(v.verify(&tampered).is_err());
    // Expiry is checked on every use, remembered or not (leeway 5 s).
    // Expired 3 s ago: still inside the leeway now, outside it 3.5 s later (whole seconds).
    let short = sign(
        Algorithm::HS256,
        Some("k1"),
        &key,
        &json!({"sub": "bob", "iss": "https://issuer.example", "aud": "api", "exp": now() - 3}),
    );
    assert!(v.verify(&short).is_ok());
    std::thread::sleep(std::time::Duration::from_millis(3_500));
    assert_eq!(v.verify(&short), Err(AuthError::TokenExpired));
    // New JWKS keys: nothing remembered from before carries over.
    let fresh = v.with_jwks(Vec::new());
    assert_eq!(fresh.verify(&t), Ok(first));
}

#[test]
fn revocation_by_jti_is_scoped_to_issuer_and_subject() {
    let v = JwtVerifier::new(&settings(vec![secret_key("k1", b"top-secret")], &["HS256"])).expect("v");
    let key = EncodingKey::from_secret(b"top-secret");
    let mut bob_claims = claims();
    bob_claims["sub"] = json!("bob");
    let (alice, bob) =
        (sign(Algorithm::HS256, Some("k1"), &key, &claims()), sign(Algorithm::HS256, Some("k1"), &key, &bob_claims));
    let (a, b) = (v.verify(&alice).expect("alice"), v.verify(&bob).expect("bob"));
    assert_eq!((a.jti.as_deref(), b.jti.as_deref()), (Some("t-1"), Some("t-1")), "the same jti");
    let mut dir = Directory::default();
    let member = a.token_ref.expect("ref").member();
    assert!(member.starts_with("jti:") && member.len() == 68, "{member}");
    dir.apply(&Revocation::Token { id: member, exp: now() + 600 });
    assert_eq!(dir.check_token(a, &alice).map(|_| ()), Err(AuthError::TokenRevoked));
    assert!(dir.check_token(b, &bob).is_ok(), "bob's token with the same jti stays valid");
    // The admin form (iss, sub, jti) names the same token.
    assert_eq!(
        TokenRef::of_jti("https://issuer.example", "alice", "t-1"),
        v.verify(&alice).expect("alice").token_ref.expect("ref")
    );
    // Earlier versions stored a bare jti (ignored now) or a bare token digest (still one token).
    assert_eq!(TokenRef::parse("t-1"), None);
    let digest = key_digest(bob.as_bytes());
    assert_eq!(TokenRef::parse(&digest), Some(TokenRef::of_token(bob.as_bytes())));
    assert_eq!(TokenRef::parse(&TokenRef::of_token(b"x").member()), Some(TokenRef::of_token(b"x")));
    assert_eq!(TokenRef::parse("jti:zz"), None);
}
