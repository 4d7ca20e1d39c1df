//! Who is asking: the user's claims, proven by `Authorization: Bearer <JWT>` or, failing that,
//! by a signed session cookie.
//!
//! JWTs go through `jsonwebtoken`. Each configured key pins one algorithm: a token is only
//! checked against keys of the algorithm its header names, so `alg: none` (which the crate does
//! not even parse) and algorithm confusion (an HS256 token "signed" with an RS256 public key)
//! are refused. `exp` is required; `nbf`, and `iss` / `aud` when configured, are checked.
//!
//! Session cookie format (for apps that keep a login cookie on the realtime domain):
//! `base64url(claims JSON, no padding) "." hex(HMAC-SHA256(cookie secret, first part))`, the
//! same lowercase-hex HMAC as Pusher's signatures. The claims need `exp` (seconds since the
//! epoch); `nbf` is honoured when present.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use overtone_protocol::signature;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::rules::claim_text;

/// Clock difference tolerated between the token's issuer and this server.
pub const LEEWAY_SECS: u64 = 30;
const DEFAULT_COOKIE_NAME: &str = "overtone_session";

/// A key as the config file writes it (`[[apps.authz.keys]]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    algorithm: Algorithm,
    /// With a `kid`, the key only checks tokens whose header names that `kid` (for rotation);
    /// without, it checks every token of its algorithm.
    #[serde(default)]
    kid: Option<String>,
    /// The shared secret of HS256/384/512 keys.
    #[serde(default)]
    secret: Option<String>,
    /// The PEM public key of RS*, PS*, ES* and EdDSA keys.
    #[serde(default)]
    public_key_pem: Option<String>,
}

/// A key tokens may be signed with, and the one algorithm it accepts.
#[derive(Debug, Clone)]
pub struct VerifyingKey {
    algorithm: Algorithm,
    kid: Option<String>,
    key: DecodingKey,
    /// Kept for HMAC keys only, so `overtone token` can mint tokens for local testing.
    hmac_secret: Option<String>,
}

impl TryFrom<KeyFile> for VerifyingKey {
    type Error = String;

    fn try_from(file: KeyFile) -> Result<VerifyingKey, String> {
        use Algorithm::*;
        let alg = file.algorithm;
        let key = match (alg, &file.secret, &file.public_key_pem) {
            (HS256 | HS384 | HS512, Some(secret), None) => {
                if secret.len() < 32 {
                    return Err(format!("{alg:?} key secret must be at least 32 bytes long"));
                }
                Ok(DecodingKey::from_secret(secret.as_bytes()))
            }
            (HS256 | HS384 | HS512, _, _) => {
                return Err(format!(
                    "an {alg:?} key needs `secret` (and no public_key_pem)"
                ));
            }
            (_, Some(_), _) | (_, _, None) => {
                return Err(format!(
                    "an {alg:?} key needs `public_key_pem` (and no secret)"
                ));
            }
            (RS256 | RS384 | RS512 | PS256 | PS384 | PS512, None, Some(pem)) => {
                DecodingKey::from_rsa_pem(pem.as_bytes())
            }
            (ES256 | ES384, None, Some(pem)) => DecodingKey::from_ec_pem(pem.as_bytes()),
            (EdDSA, None, Some(pem)) => DecodingKey::from_ed_pem(pem.as_bytes()),
        }
        .map_err(|e| format!("{alg:?} key: public_key_pem is not a usable PEM public key: {e}"))?;
        Ok(VerifyingKey {
            algorithm: alg,
            kid: file.kid,
            key,
            hmac_secret: file.secret,
        })
    }
}

impl VerifyingKey {
    /// The key and algorithm to sign test tokens with (HMAC keys only: others are public keys).
    pub fn signing_key(&self) -> Option<(Algorithm, EncodingKey)> {
        let secret = self.hmac_secret.as_ref()?;
        Some((self.algorithm, EncodingKey::from_secret(secret.as_bytes())))
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}

/// The session cookie as the config file writes it (`[apps.authz.cookie]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionCookie {
    #[serde(default = "default_cookie_name")]
    name: String,
    secret: String,
}

fn default_cookie_name() -> String {
    DEFAULT_COOKIE_NAME.into()
}

/// Everything needed to check a request's credentials.
#[derive(Debug, Clone)]
pub struct Verifier {
    pub keys: Vec<VerifyingKey>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub cookie: Option<SessionCookie>,
    /// The claim holding the user id (presence `user_id`, sign-in `id`).
    pub user_id_claim: String,
}

/// The credential a request carried, forwarded as is to an upstream.
#[derive(Debug, Clone)]
pub enum Credential {
    Bearer(String),
    Cookie { name: String, value: String },
}

/// An authenticated user.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: String,
    pub claims: Map<String, Value>,
    pub credential: Credential,
}

impl Verifier {
    /// Checks the request's bearer token, else its session cookie; the error (a 401) says why.
    pub fn identify(&self, headers: &HeaderMap) -> Result<Identity, String> {
        let (claims, credential) = if let Some(value) = headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or("The Authorization header must be `Bearer <token>`")?;
            (
                self.verify_jwt(token)?,
                Credential::Bearer(token.to_string()),
            )
        } else if let Some((cookie, value)) = self
            .cookie
            .as_ref()
            .and_then(|c| find_cookie(headers, &c.name).map(|v| (c, v)))
        {
            let claims = verify_cookie(&cookie.secret, &value, now())?;
            (
                claims,
                Credential::Cookie {
                    name: cookie.name.clone(),
                    value,
                },
            )
        } else {
            return Err("No credentials: send `Authorization: Bearer <token>`".into());
        };
        let user_id = claims
            .get(&self.user_id_claim)
            .and_then(claim_text)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                format!(
                    "The token has no {} claim (the user id)",
                    self.user_id_claim
                )
            })?;
        Ok(Identity {
            user_id,
            claims,
            credential,
        })
    }

    /// Verifies a JWT with the configured keys of the algorithm its header names.
    pub fn verify_jwt(&self, token: &str) -> Result<Map<String, Value>, String> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("Invalid token: {e}"))?;
        let candidates: Vec<&VerifyingKey> = self
            .keys
            .iter()
            .filter(|k| k.algorithm == header.alg)
            .filter(|k| k.kid.is_none() || k.kid == header.kid)
            .collect();
        if candidates.is_empty() {
            return Err(format!(
                "Tokens signed with {:?} are not accepted",
                header.alg
            ));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let mut last_error = None;
        for key in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => last_error = Some(e),
            }
        }
        Err(match last_error.as_ref().map(|e| e.kind()) {
            Some(ErrorKind::ExpiredSignature) => "The token has expired".into(),
            Some(ErrorKind::ImmatureSignature) => "The token is not valid yet (nbf)".into(),
            Some(ErrorKind::InvalidAudience) => "The token is for another audience".into(),
            Some(ErrorKind::InvalidIssuer) => "The token is from another issuer".into(),
            Some(ErrorKind::InvalidSignature) => "The token's signature is invalid".into(),
            Some(ErrorKind::MissingRequiredClaim(claim)) => {
                format!("The token has no {claim} claim")
            }
            _ => format!(
                "Invalid token: {}",
                last_error.map_or_else(String::new, |e| e.to_string())
            ),
        })
    }
}

/// The value of cookie `name` among the request's `Cookie` headers.
fn find_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_string())
}

/// Checks a session cookie's signature and lifetime (see the module doc) at time `now`.
fn verify_cookie(secret: &str, value: &str, now: u64) -> Result<Map<String, Value>, String> {
    let invalid = || "The session cookie is invalid".to_string();
    let (payload, signature_hex) = value.split_once('.').ok_or_else(invalid)?;
    if !signature::verify_hex(secret, payload, signature_hex) {
        return Err(invalid());
    }
    let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?;
    let claims: Map<String, Value> = serde_json::from_slice(&json).map_err(|_| invalid())?;
    let exp = claims
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or("The session cookie has no exp claim")?;
    if exp + LEEWAY_SECS <= now {
        return Err("The session has expired".into());
    }
    if claims
        .get("nbf")
        .and_then(Value::as_u64)
        .is_some_and(|nbf| nbf > now + LEEWAY_SECS)
    {
        return Err("The session is not valid yet (nbf)".into());
    }
    Ok(claims)
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use jsonwebtoken::{encode, Header};
    use serde_json::json;

    const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";
    const RSA_PRIVATE: &str = include_str!("testdata/rsa-private.pem");
    const RSA_PUBLIC: &str = include_str!("testdata/rsa-public.pem");

    fn key(toml_text: &str) -> Result<VerifyingKey, String> {
        VerifyingKey::try_from(toml::from_str::<KeyFile>(toml_text).map_err(|e| e.to_string())?)
    }

    fn verifier() -> Verifier {
        Verifier {
            keys: vec![
                key(&format!("algorithm = 'HS256'\nsecret = '{SECRET}'")).unwrap(),
                key(&format!(
                    "algorithm = 'RS256'\nkid = 'rsa-1'\npublic_key_pem = '''{RSA_PUBLIC}'''"
                ))
                .unwrap(),
            ],
            issuer: Some("https://login.test".into()),
            audience: Some("chat".into()),
            cookie: Some(SessionCookie {
                name: "sess".into(),
                secret: SECRET.into(),
            }),
            user_id_claim: "sub".into(),
        }
    }

    fn claims(extra: Value) -> Value {
        let mut claims =
            json!({"sub": "42", "iss": "https://login.test", "aud": "chat", "exp": now() + 600});
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        claims
    }

    fn hs256(claims: &Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        headers
    }

    #[test]
    fn valid_hs256_and_rs256_tokens_identify_the_user() {
        let identity = verifier()
            .identify(&bearer(&hs256(&claims(json!({"name": "Ana"})))))
            .unwrap();
        assert_eq!(identity.user_id, "42");
        assert_eq!(identity.claims["name"], "Ana");
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("rsa-1".into());
        let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
        let token = encode(&header, &claims(json!({})), &rsa).unwrap();
        assert_eq!(verifier().identify(&bearer(&token)).unwrap().user_id, "42");
        for other_kid in [Some("rsa-2".to_string()), None] {
            header.kid = other_kid;
            let token = encode(&header, &claims(json!({})), &rsa).unwrap();
            assert!(verifier()
                .identify(&bearer(&token))
                .unwrap_err()
                .contains("RS256"));
        }
    }

    #[test]
    fn lifetime_issuer_and_audience_are_checked() {
        let v = verifier();
        let err = |extra: Value| v.verify_jwt(&hs256(&claims(extra))).unwrap_err();
        assert!(err(json!({"exp": now() - 120})).contains("expired"));
        assert!(err(json!({"nbf": now() + 120})).contains("not valid yet"));
        assert!(err(json!({"aud": "billing"})).contains("audience"));
        assert!(err(json!({"iss": "https://evil.test"})).contains("issuer"));
        // A claim of the wrong type is refused, not skipped (CVE-2026-25537 in jsonwebtoken < 10.3).
        assert!(v
            .verify_jwt(&hs256(&claims(
                json!({"nbf": (now() + 999_999).to_string()})
            )))
            .is_err());
        assert!(v
            .verify_jwt(&hs256(&claims(json!({"exp": "9999999999"}))))
            .is_err());
        let mut no_exp = claims(json!({}));
        no_exp.as_object_mut().unwrap().remove("exp");
        assert!(v.verify_jwt(&hs256(&no_exp)).unwrap_err().contains("exp"));
        let mut no_aud = claims(json!({}));
        no_aud.as_object_mut().unwrap().remove("aud");
        assert!(v.verify_jwt(&hs256(&no_aud)).unwrap_err().contains("aud"));
    }

    #[test]
    fn wrong_keys_alg_none_and_algorithm_confusion_are_refused() {
        let v = verifier();
        let hs256_with = |secret: &[u8]| {
            encode(
                &Header::new(Algorithm::HS256),
                &claims(json!({})),
                &EncodingKey::from_secret(secret),
            )
            .unwrap()
        };
        let other = hs256_with(b"another-secret-another-secret-xx");
        assert!(v.verify_jwt(&other).unwrap_err().contains("signature"));
        // alg none: a header naming "none" and an empty signature.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims(json!({})).to_string())
        );
        assert!(v.verify_jwt(&none).is_err());
        // An HS256 token whose "secret" is the RS256 public key.
        let confused = hs256_with(RSA_PUBLIC.as_bytes());
        let rsa_only = Verifier {
            keys: vec![v.keys[1].clone()],
            ..v.clone()
        };
        assert!(rsa_only
            .verify_jwt(&confused)
            .unwrap_err()
            .contains("HS256"));
        assert!(v.verify_jwt(&confused).is_err());
    }

    #[test]
    fn keys_are_checked_when_the_config_is_read() {
        assert!(key("algorithm = 'HS256'\nsecret = 'short'")
            .unwrap_err()
            .contains("32 bytes"));
        assert!(key("algorithm = 'RS256'\nsecret = 'x'").is_err());
        assert!(key("algorithm = 'RS256'\npublic_key_pem = 'not a pem'")
            .unwrap_err()
            .contains("PEM"));
        assert!(key(&format!(
            "algorithm = 'HS256'\npublic_key_pem = '''{RSA_PUBLIC}'''"
        ))
        .is_err());
        assert!(key("algorithm = 'none'\nsecret = 'x'").is_err());
    }

    fn cookie(claims: &Value, secret: &str) -> String {
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        format!("{payload}.{}", signature::hmac_hex(secret, &payload))
    }

    #[test]
    fn session_cookies_are_signed_and_expire() {
        let good = cookie(&json!({"sub": 7, "exp": now() + 60}), SECRET);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("theme=dark; sess={good}")).unwrap(),
        );
        let identity = verifier().identify(&headers).unwrap();
        assert_eq!(identity.user_id, "7");
        assert!(matches!(identity.credential, Credential::Cookie { .. }));

        assert!(verify_cookie(
            SECRET,
            &cookie(&json!({"sub": 7, "exp": now() + 60}), "wrong-secret"),
            now()
        )
        .is_err());
        let expired = cookie(&json!({"sub": 7, "exp": now() - 60}), SECRET);
        assert!(verify_cookie(SECRET, &expired, now())
            .unwrap_err()
            .contains("expired"));
        assert!(
            verify_cookie(SECRET, &cookie(&json!({"sub": 7}), SECRET), now())
                .unwrap_err()
                .contains("exp")
        );
        let (_, signature) = good.split_once('.').unwrap();
        let forged_claims =
            URL_SAFE_NO_PAD.encode(json!({"sub": 1, "exp": now() + 60}).to_string());
        assert!(verify_cookie(SECRET, &format!("{forged_claims}.{signature}"), now()).is_err());
        assert!(verify_cookie(SECRET, "no-dot", now()).is_err());
    }

    #[test]
    fn requests_without_usable_credentials_are_refused() {
        assert!(verifier()
            .identify(&HeaderMap::new())
            .unwrap_err()
            .contains("No credentials"));
        let mut basic = HeaderMap::new();
        basic.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(verifier().identify(&basic).unwrap_err().contains("Bearer"));
        let no_sub = hs256(&json!({"iss": "https://login.test", "aud": "chat", "exp": now() + 60}));
        assert!(verifier()
            .identify(&bearer(&no_sub))
            .unwrap_err()
            .contains("sub"));
    }
}
