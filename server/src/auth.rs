//! Checking what an app signed: channel subscriptions (`socket_id:channel[:channel_data]`),
//! user sign-ins (`socket_id::user::user_data`) and HTTP API requests (key, timestamp window,
//! recomputed body MD5, HMAC of method, path and sorted query). All comparisons of secrets
//! are constant time (the protocol crate's `signature` module).

use std::time::{SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};
use overtone_protocol::signature;

use crate::config::AppConfig;

/// How far a request's `auth_timestamp` may be from the server's clock.
const MAX_CLOCK_SKEW_SECS: u64 = 600;

/// Whether `auth` signs a subscription of `socket_id` to `channel` (with `channel_data` on
/// presence channels).
pub fn subscription_is_signed(
    app: &AppConfig,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
    auth: Option<&str>,
) -> bool {
    let message = signature::channel_auth_message(socket_id, channel, channel_data);
    auth.is_some_and(|auth| signature::verify_auth_token(&app.key, &app.secret, &message, auth))
}

/// Whether `auth` signs `user_data` for `socket_id`.
pub fn signin_is_signed(app: &AppConfig, socket_id: &str, user_data: &str, auth: &str) -> bool {
    let message = signature::user_auth_message(socket_id, user_data);
    signature::verify_auth_token(&app.key, &app.secret, &message, auth)
}

/// Checks an API request's signature given its decoded query parameters; the error says what
/// was wrong (answered with 401).
pub fn verify_api_request(
    app: &AppConfig,
    method: &str,
    path: &str,
    params: &[(String, String)],
    body: &[u8],
) -> Result<(), &'static str> {
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };

    if param("auth_key") != Some(app.key.as_str()) {
        return Err("auth_key does not match the app");
    }
    let timestamp: u64 = param("auth_timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or("auth_timestamp is missing")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if now.abs_diff(timestamp) > MAX_CLOCK_SKEW_SECS {
        return Err("auth_timestamp is more than 600 s from the server's clock");
    }
    if !body.is_empty() {
        let md5 = hex::encode(Md5::digest(body));
        if param("body_md5") != Some(md5.as_str()) {
            return Err("body_md5 does not match the body");
        }
    }
    let signature = param("auth_signature").ok_or("auth_signature is missing")?;
    let to_sign = signature::api_string_to_sign(
        method,
        path,
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
    if signature::verify_hex(&app.secret, &to_sign, signature) {
        Ok(())
    } else {
        Err("Invalid signature")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> AppConfig {
        AppConfig::new("3", "278d425bdf160c739803", "7ad3773142a6692b25b8")
    }

    /// The query parameters a correct signer sends, `auth_signature` included.
    fn signed_query(
        method: &str,
        path: &str,
        body: &[u8],
        timestamp: u64,
    ) -> Vec<(String, String)> {
        let mut params = vec![
            ("auth_key".to_string(), app().key),
            ("auth_timestamp".to_string(), timestamp.to_string()),
            ("auth_version".to_string(), "1.0".to_string()),
        ];
        if !body.is_empty() {
            params.push(("body_md5".to_string(), hex::encode(Md5::digest(body))));
        }
        let to_sign = signature::api_string_to_sign(
            method,
            path,
            params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let sig = signature::hmac_hex(&app().secret, &to_sign);
        params.push(("auth_signature".to_string(), sig));
        params
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn api_requests_are_checked_in_full() {
        let body = br#"{"name":"e","data":"{}","channel":"a"}"#;
        let query = signed_query("POST", "/apps/3/events", body, now());
        assert_eq!(
            verify_api_request(&app(), "POST", "/apps/3/events", &query, body),
            Ok(())
        );
        // Another body, path, method or an old timestamp all fail.
        assert!(verify_api_request(&app(), "POST", "/apps/3/events", &query, b"{}").is_err());
        assert!(verify_api_request(&app(), "POST", "/apps/4/events", &query, body).is_err());
        assert!(verify_api_request(&app(), "GET", "/apps/3/events", &query, body).is_err());
        let stale = signed_query("POST", "/apps/3/events", body, now() - 601);
        assert!(
            verify_api_request(&app(), "POST", "/apps/3/events", &stale, body)
                .unwrap_err()
                .contains("600")
        );
        assert!(verify_api_request(&app(), "GET", "/apps/3/channels", &[], b"").is_err());
    }

    #[test]
    fn subscriptions_and_signins_need_the_apps_signature() {
        let auth = signature::auth_token(&app().key, &app().secret, "1.2:private-a");
        assert!(subscription_is_signed(
            &app(),
            "1.2",
            "private-a",
            None,
            Some(&auth)
        ));
        assert!(!subscription_is_signed(
            &app(),
            "1.3",
            "private-a",
            None,
            Some(&auth)
        ));
        assert!(!subscription_is_signed(
            &app(),
            "1.2",
            "private-a",
            None,
            None
        ));
        let user = r#"{"id":"9"}"#;
        let auth = signature::auth_token(&app().key, &app().secret, &format!("1.2::user::{user}"));
        assert!(signin_is_signed(&app(), "1.2", user, &auth));
        assert!(!signin_is_signed(&app(), "1.2", r#"{"id":"10"}"#, &auth));
    }
}
