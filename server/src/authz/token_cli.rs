//! `overtone token`: mints a JWT the app's `[apps.authz]` accepts, for trying private and
//! presence channels locally without a login provider. Signs with the app's first HMAC key
//! (public-key algorithms cannot sign with a public key) and sets `iss`, `aud`, `iat`, `exp`.

use std::path::PathBuf;

use clap::Args;
use jsonwebtoken::Header;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::identity::now;
use super::AuthzConfig;
use crate::config::AppConfig;

/// Flags of `overtone token`.
#[derive(Args, Debug)]
pub struct TokenArgs {
    /// The TOML config file declaring the app and its [apps.authz] keys.
    #[arg(long, env = "OVERTONE_CONFIG")]
    pub config: PathBuf,
    /// The app, by key or id [default: the first app with an [apps.authz] table].
    #[arg(long)]
    pub app: Option<String>,
    /// The user id, as the `sub` claim.
    #[arg(long)]
    pub sub: String,
    /// Another claim, NAME=VALUE (repeatable); VALUE is taken as JSON when it parses
    /// (`rooms=["lobby"]`, `admin=true`), else as a string.
    #[arg(long = "claim", value_name = "NAME=VALUE")]
    pub claims: Vec<String>,
    /// Seconds until the token expires.
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
}

/// Only the apps of a config file; `overtone serve` checks the rest.
#[derive(Deserialize)]
struct AppsOnly {
    #[serde(default)]
    apps: Vec<AppConfig>,
}

impl TokenArgs {
    /// The signed token, or what prevents making one.
    pub fn mint(&self) -> Result<String, String> {
        let text = std::fs::read_to_string(&self.config)
            .map_err(|e| format!("cannot read config file {}: {e}", self.config.display()))?;
        let file: AppsOnly = toml::from_str(&text)
            .map_err(|e| format!("config file {}: {e}", self.config.display()))?;
        let mut with_authz = file
            .apps
            .iter()
            .filter_map(|app| Some((app, app.authz.as_ref()?)));
        let (app, authz) = match &self.app {
            Some(wanted) => with_authz.find(|(app, _)| app.key == *wanted || app.id == *wanted),
            None => with_authz.next(),
        }
        .ok_or("no such app with an [apps.authz] table in the config file")?;
        let mut claims = Map::new();
        for claim in &self.claims {
            let (name, value) = claim
                .split_once('=')
                .ok_or_else(|| format!("--claim {claim}: expected NAME=VALUE"))?;
            let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
            claims.insert(name.into(), value);
        }
        mint(authz, &self.sub, claims, self.ttl).map_err(|e| format!("app {}: {e}", app.id))
    }
}

/// A token `authz` accepts for user `sub` with `claims`, valid for `ttl` seconds: signed with its
/// first HMAC key, with `sub`, `iat`, `exp` and the configured `iss` / `aud` set. Also used by
/// the demo to sign its visitors in.
pub fn mint(
    authz: &AuthzConfig,
    sub: &str,
    mut claims: Map<String, Value>,
    ttl: u64,
) -> Result<String, String> {
    let (key, (algorithm, signing_key)) = authz
        .verifier
        .keys
        .iter()
        .find_map(|k| Some((k, k.signing_key()?)))
        .ok_or("no HS256/HS384/HS512 key to sign with (the other keys are public keys)")?;
    let issued = now();
    claims.insert("sub".into(), sub.into());
    claims.insert("iat".into(), issued.into());
    claims.insert("exp".into(), (issued + ttl).into());
    if let Some(issuer) = &authz.verifier.issuer {
        claims.insert("iss".into(), issuer.clone().into());
    }
    if let Some(audience) = &authz.verifier.audience {
        claims.insert("aud".into(), audience.clone().into());
    }
    let mut header = Header::new(algorithm);
    header.kid = key.kid().map(Into::into);
    jsonwebtoken::encode(&header, &claims, &signing_key)
        .map_err(|e| format!("cannot sign the token: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{header, HeaderMap, HeaderValue};

    #[test]
    fn minted_tokens_pass_the_apps_own_checks() {
        let dir = std::env::temp_dir().join(format!("overtone-token-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("overtone.toml");
        std::fs::write(
            &config,
            "[server]\nport = 0\n[[apps]]\nid = 'a'\nkey = 'k'\nsecret = 's'\n\
             [apps.authz]\nissuer = 'me'\naudience = 'chat'\n\
             [[apps.authz.keys]]\nalgorithm = 'HS384'\nkid = 'dev'\nsecret = 'a-test-secret-of-at-least-32-bytes!!'\n",
        )
        .unwrap();
        let args = TokenArgs {
            config: config.clone(),
            app: Some("k".into()),
            sub: "42".into(),
            claims: vec!["name=Ana".into(), "rooms=[\"lobby\"]".into()],
            ttl: 60,
        };
        let token = args.mint().unwrap();
        let file: AppsOnly = toml::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        let identity = file.apps[0]
            .authz
            .as_ref()
            .unwrap()
            .verifier
            .identify(&headers)
            .unwrap();
        assert_eq!(identity.user_id, "42");
        assert_eq!(identity.claims["name"], "Ana");
        assert_eq!(identity.claims["rooms"], serde_json::json!(["lobby"]));
        assert!(TokenArgs {
            app: Some("other".into()),
            ..args
        }
        .mint()
        .unwrap_err()
        .contains("no such app"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
