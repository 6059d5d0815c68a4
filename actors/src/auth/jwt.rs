//! JWT verification: keys selected by `kid` (several at once = rotation), algorithms
//! from config only (never `none`, never an HMAC secret for an asymmetric token), `exp`
//! required (and `iss` / `aud` when configured), `nbf` checked with leeway, any `crit`
//! header refused, tokens over 8 KiB refused before parsing.

use std::collections::HashSet;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::Deserialize;

use super::{AuthError, Identity, TokenRef};

/// Largest accepted token.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Key material as configured.
#[derive(Clone)]
pub enum KeyMaterial {
    /// HMAC secret (HS*).
    Secret(Vec<u8>),
    /// PEM public key (RSA, EC or Ed25519).
    PublicPem(Vec<u8>),
}

/// One configured key.
#[derive(Clone)]
pub struct KeySpec {
    /// `kid`, when the key has one.
    pub kid: Option<String>,
    /// The material.
    pub material: KeyMaterial,
}

/// JWT settings as configured.
#[derive(Clone)]
pub struct JwtSettings {
    /// Accepted algorithm names (`HS256`, `RS256`, `ES256`, `EdDSA`, ...).
    pub algorithms: Vec<String>,
    /// Required issuer.
    pub issuer: Option<String>,
    /// Accepted audiences.
    pub audience: Vec<String>,
    /// Clock skew allowed.
    pub leeway_secs: u64,
    /// Claim carrying the tier.
    pub role_claim: String,
    /// Keys.
    pub keys: Vec<KeySpec>,
}

/// A verification key with its id and family.
#[derive(Clone)]
pub struct Key {
    kid: Option<String>,
    family: AlgorithmFamily,
    key: DecodingKey,
}

/// The message of the error for a `kid` no key has (it triggers a JWKS refetch).
pub const UNKNOWN_KID: &str = "unknown key id";

/// Parses a JWKS document into keys (HMAC `oct` keys are ignored: shared secrets do not
/// belong in a published key set).
pub fn parse_jwks(body: &[u8]) -> Result<Vec<Key>, String> {
    use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
    let set: JwkSet = serde_json::from_slice(body).map_err(|e| format!("invalid JWKS: {e}"))?;
    Ok(set
        .keys
        .iter()
        .filter_map(|jwk| {
            let family = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa,
                AlgorithmParameters::EllipticCurve(_) => AlgorithmFamily::Ec,
                AlgorithmParameters::OctetKeyPair(_) => AlgorithmFamily::Ed,
                _ => return None,
            };
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some(Key { kid: jwk.common.key_id.clone(), family, key })
        })
        .collect())
}

/// A ready-to-use verifier (immutable; published in the auth snapshot).
#[derive(Clone)]
pub struct JwtVerifier {
    keys: Vec<Key>,
    /// Keys from the JWKS endpoint (replaced on every fetch).
    jwks: Vec<Key>,
    leeway: u64,
    role_claim: String,
    /// Validation settings per accepted algorithm, built once.
    validations: Vec<(Algorithm, Arc<Validation>)>,
    /// Tokens already verified with these keys → their identity, until `exp` (at most
    /// `VERIFIED_TTL`). A hit skips signature and JSON work; revocation is checked by the
    /// caller on every request either way.
    verified: VerifiedCache,
}

/// How long a verified token is remembered at most.
const VERIFIED_TTL: std::time::Duration = std::time::Duration::from_secs(60);
/// How many verified tokens are remembered per key set.
const VERIFIED_CAPACITY: u64 = 20_000;

/// Verified tokens; only tokens that verified get in, so a fast seeded hash is safe.
type VerifiedCache = moka::sync::Cache<Box<str>, Arc<Identity>, foldhash::quality::RandomState>;

fn verified_cache() -> VerifiedCache {
    moka::sync::Cache::builder()
        .max_capacity(VERIFIED_CAPACITY)
        .time_to_live(VERIFIED_TTL)
        .build_with_hasher(foldhash::quality::RandomState::default())
}

/// Why a key could not be loaded: `(index of the key, message)`.
pub type KeyError = (usize, String);

fn parse_algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "HS256" => Some(Algorithm::HS256),
        "HS384" => Some(Algorithm::HS384),
        "HS512" => Some(Algorithm::HS512),
        "RS256" => Some(Algorithm::RS256),
        "RS384" => Some(Algorithm::RS384),
        "RS512" => Some(Algorithm::RS512),
        "PS256" => Some(Algorithm::PS256),
        "PS384" => Some(Algorithm::PS384),
        "PS512" => Some(Algorithm::PS512),
        "ES256" => Some(Algorithm::ES256),
        "ES384" => Some(Algorithm::ES384),
        "EdDSA" => Some(Algorithm::EdDSA),
        _ => None,
    }
}

impl JwtVerifier {
    /// Loads keys; errors name the key index.
    pub fn new(s: &JwtSettings) -> Result<Self, KeyError> {
        let algorithms = s
            .algorithms
            .iter()
            .enumerate()
            .map(|(i, a)| parse_algorithm(a).ok_or((i, format!("unsupported algorithm {a:?}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let keys = s
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let (family, key) = match &k.material {
                    KeyMaterial::Secret(b) => (AlgorithmFamily::Hmac, DecodingKey::from_secret(b)),
                    KeyMaterial::PublicPem(pem) => {
                        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
                            (AlgorithmFamily::Rsa, key)
                        } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
                            (AlgorithmFamily::Ec, key)
                        } else if let Ok(key) = DecodingKey::from_ed_pem(pem) {
                            (AlgorithmFamily::Ed, key)
                        } else {
                            return Err((
                                i,
                                "public_key_pem is not an RSA, EC or Ed25519 public key in PEM".to_string(),
                            ));
                        }
                    }
                };
                Ok(Key { kid: k.kid.clone(), family, key })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let validations = algorithms
            .iter()
            .map(|alg| {
                let mut v = Validation::new(*alg);
                v.leeway = s.leeway_secs;
                v.validate_exp = true;
                v.validate_nbf = true;
                // A configured issuer or audience is required, not only checked when present.
                v.required_spec_claims = HashSet::from(["exp".to_string()]);
                match &s.issuer {
                    Some(iss) => {
                        v.set_issuer(&[iss]);
                        v.required_spec_claims.insert("iss".into());
                    }
                    None => v.iss = None,
                }
                if s.audience.is_empty() {
                    v.validate_aud = false;
                } else {
                    v.set_audience(&s.audience);
                    v.required_spec_claims.insert("aud".into());
                }
                (*alg, Arc::new(v))
            })
            .collect();
        Ok(Self {
            keys,
            jwks: Vec::new(),
            leeway: s.leeway_secs,
            role_claim: s.role_claim.clone(),
            validations,
            verified: verified_cache(),
        })
    }

    /// The same verifier with `jwks` as its fetched keys (and nothing remembered from the
    /// previous key set).
    pub fn with_jwks(&self, jwks: Vec<Key>) -> Self {
        Self { jwks, verified: verified_cache(), ..self.clone() }
    }

    fn all_keys(&self) -> impl Iterator<Item = &Key> {
        self.keys.iter().chain(self.jwks.iter())
    }

    fn key_for(&self, alg: Algorithm, kid: Option<&str>) -> Result<&Key, AuthError> {
        let family = alg.family();
        match kid {
            Some(kid) => {
                let mut with_kid = self.all_keys().filter(|k| k.kid.as_deref() == Some(kid)).peekable();
                if with_kid.peek().is_none() {
                    return Err(AuthError::InvalidToken(UNKNOWN_KID));
                }
                with_kid
                    .find(|k| k.family == family)
                    .ok_or(AuthError::InvalidToken("key type does not fit the algorithm"))
            }
            None => {
                let mut fitting = self.all_keys().filter(|k| k.family == family);
                match (fitting.next(), fitting.next()) {
                    (Some(k), None) => Ok(k),
                    (None, _) => Err(AuthError::InvalidToken("no key for the token's algorithm")),
                    (Some(_), Some(_)) => Err(AuthError::InvalidToken("token has no kid and several keys fit")),
                }
            }
        }
    }

    /// Verifies a compact JWS and returns the identity it carries.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::InvalidToken("token larger than 8 KiB"));
        }
        if let Some(id) = self.verified.get(token) {
            let now = crate::now_unix();
            return match id.exp {
                Some(exp) if exp.saturating_add(self.leeway) < now => Err(AuthError::TokenExpired),
                _ => Ok((*id).clone()),
            };
        }
        let identity = self.verify_fully(token)?;
        self.verified.insert(token.into(), Arc::new(identity.clone()));
        Ok(identity)
    }

    fn verify_fully(&self, token: &str) -> Result<Identity, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::InvalidToken("malformed token"))?;
        // RFC 7515 §4.1.11: a `crit` extension the recipient does not understand makes the
        // token invalid; this node understands none.
        if header.crit.is_some() {
            return Err(AuthError::InvalidToken("unsupported critical header"));
        }
        let Some((_, v)) = self.validations.iter().find(|(a, _)| *a == header.alg) else {
            return Err(AuthError::InvalidToken("algorithm not accepted"));
        };
        let key = self.key_for(header.alg, header.kid.as_deref())?;
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::TokenExpired,
                ErrorKind::ImmatureSignature => AuthError::InvalidToken("token not yet valid"),
                ErrorKind::InvalidIssuer => AuthError::InvalidToken("wrong issuer"),
                ErrorKind::InvalidAudience => AuthError::InvalidToken("wrong audience"),
                ErrorKind::InvalidSignature => AuthError::InvalidToken("bad signature"),
                ErrorKind::MissingRequiredClaim(c) => AuthError::InvalidToken(match c.as_str() {
                    "aud" => "missing aud",
                    "iss" => "missing iss",
                    _ => "missing exp",
                }),
                _ => AuthError::InvalidToken("invalid token"),
            }
        })?;
        let claims = data.claims;
        let sub = claims.sub.filter(|s| !s.is_empty()).ok_or(AuthError::InvalidToken("token has no sub"))?;
        let tier = claims.extra.get(&self.role_claim).and_then(|v| v.as_str()).map(str::to_string);
        // Revocation by `jti` is scoped to issuer + subject: another user's token may reuse it.
        let token_ref = Some(match &claims.jti {
            Some(jti) => {
                let iss = match &claims.iss {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                TokenRef::of_jti(&iss, &sub, jti)
            }
            None => TokenRef::of_token(token.as_bytes()),
        });
        Ok(Identity { consumer: sub, tier, jti: claims.jti, exp: claims.exp, iat: claims.iat, token_ref })
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    iss: Option<serde_json::Value>,
    jti: Option<String>,
    exp: Option<u64>,
    iat: Option<u64>,
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}
