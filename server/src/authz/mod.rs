//! The authorization service: `POST /broadcasting/auth` and `POST /broadcasting/user-auth`
//! answered by the server itself, so an app on any backend can authorize private, presence and
//! encrypted channels from a token it already has, with no auth endpoint of its own.
//!
//! Configured per app in an `[apps.authz]` table (see `server/overtone.example.toml`); this
//! module owns that table's shape and its checks at load time. Submodules: [`pattern`]
//! (channel patterns with placeholders), [`rules`] (conditions over claims), [`identity`] (JWT
//! and session-cookie verification), [`upstream`] (rules delegated to the app), [`endpoints`]
//! (the HTTP endpoints and their CORS), [`token_cli`] (`overtone token`).

pub mod endpoints;
pub mod identity;
pub mod pattern;
pub mod rules;
pub mod token_cli;
pub mod upstream;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use endpoints::routes;
pub use token_cli::TokenArgs;

use identity::{KeyFile, SessionCookie, Verifier, VerifyingKey};
use rules::{Rule, RuleFile};

/// The `[apps.authz]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthzFile {
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    audience: Option<String>,
    #[serde(default = "default_user_id_claim")]
    user_id_claim: String,
    #[serde(default)]
    user_info_claims: Vec<String>,
    #[serde(default)]
    encryption_master_key_base64: Option<String>,
    #[serde(default)]
    cookie: Option<SessionCookie>,
    #[serde(default)]
    keys: Vec<KeyFile>,
    #[serde(default)]
    rules: Vec<RuleFile>,
}

fn default_user_id_claim() -> String {
    "sub".into()
}

/// An app's authorization settings, checked when the config file is read.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "AuthzFile")]
pub struct AuthzConfig {
    pub verifier: Verifier,
    pub rules: Vec<Rule>,
    /// Claims copied into presence `user_info` and sign-in `user_data`, unless a rule says otherwise.
    pub user_info_claims: Vec<String>,
    encryption_master_key: Option<MasterKey>,
}

/// The 32-byte key every private-encrypted channel's key is derived from.
#[derive(Clone)]
struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl TryFrom<AuthzFile> for AuthzConfig {
    type Error = String;

    fn try_from(file: AuthzFile) -> Result<AuthzConfig, String> {
        if file.keys.is_empty() && file.cookie.is_none() {
            return Err(
                "[apps.authz] needs at least one [[apps.authz.keys]] or an [apps.authz.cookie]"
                    .into(),
            );
        }
        let encryption_master_key = file
            .encryption_master_key_base64
            .map(|b64| {
                let bytes = STANDARD
                    .decode(b64.trim())
                    .map_err(|e| format!("encryption_master_key_base64: {e}"))?;
                <[u8; 32]>::try_from(bytes.as_slice())
                    .map(MasterKey)
                    .map_err(|_| {
                        format!(
                            "encryption_master_key_base64 must decode to 32 bytes, not {}",
                            bytes.len()
                        )
                    })
            })
            .transpose()?;
        Ok(AuthzConfig {
            verifier: Verifier {
                keys: file
                    .keys
                    .into_iter()
                    .map(VerifyingKey::try_from)
                    .collect::<Result<_, _>>()?,
                issuer: file.issuer,
                audience: file.audience,
                cookie: file.cookie,
                user_id_claim: file.user_id_claim,
            },
            rules: file
                .rules
                .into_iter()
                .map(Rule::try_from)
                .collect::<Result<_, _>>()?,
            user_info_claims: file.user_info_claims,
            encryption_master_key,
        })
    }
}

impl AuthzConfig {
    /// A private-encrypted channel's key, base64, as pusher-http-php and pusher-http-node derive
    /// it: SHA-256 of the channel name followed by the master key. None without a master key.
    pub fn shared_secret(&self, channel: &str) -> Option<String> {
        let MasterKey(master) = self.encryption_master_key.as_ref()?;
        let digest = Sha256::new()
            .chain_update(channel.as_bytes())
            .chain_update(master)
            .finalize();
        Some(STANDARD.encode(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AuthzConfig, String> {
        toml::from_str::<AuthzConfig>(text).map_err(|e| e.to_string())
    }

    const KEY: &str =
        "[[keys]]\nalgorithm = 'HS256'\nsecret = 'a-test-secret-of-at-least-32-bytes!!'\n";

    #[test]
    fn shared_secrets_match_pusher_http_node() {
        // From pusher-http-node 5.3.4: new Pusher({..., encryptionMasterKeyBase64:
        // 'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY='}).authorizeChannel('1.1',
        // 'private-encrypted-x').shared_secret
        let config = parse(&format!(
            "encryption_master_key_base64 = 'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY='\n{KEY}"
        ))
        .unwrap();
        assert_eq!(
            config.shared_secret("private-encrypted-x").as_deref(),
            Some(PUSHER_NODE_SHARED_SECRET)
        );
        assert_eq!(
            parse(KEY).unwrap().shared_secret("private-encrypted-x"),
            None
        );
    }

    const PUSHER_NODE_SHARED_SECRET: &str = "yg0RrojlChIBGKYDax2K5oqaMIaBtMi7HK+TiLLndM0=";

    #[test]
    fn config_mistakes_are_reported_when_the_file_is_read() {
        assert!(parse("").unwrap_err().contains("at least one"));
        assert!(
            parse(&format!("encryption_master_key_base64 = 'c2hvcnQ='\n{KEY}"))
                .unwrap_err()
                .contains("32 bytes")
        );
        assert!(
            parse(&format!("{KEY}[[rules]]\nchannel = 'private-{{id'\n"))
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(parse(&format!("audiences = ['x']\n{KEY}"))
            .unwrap_err()
            .contains("audiences"));
        let config = parse(&format!("{KEY}[[rules]]\nchannel = 'private-a'\n")).unwrap();
        assert_eq!(config.verifier.user_id_claim, "sub");
        assert_eq!(config.rules.len(), 1);
    }
}
