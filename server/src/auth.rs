//! Checking what an app signed: channel subscriptions (`socket_id:channel[:channel_data]`),
//! user sign-ins (`socket_id::user::user_data`) and HTTP API requests (key, timestamp window,
//! HMAC of method, path and sorted query, checked before the body is read; then the body's
//! MD5 against the signed `body_md5`). All comparisons of secrets
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

/// Checks an API request's query: key, timestamp window and the HMAC of method, path and
/// sorted query; the error says what was wrong (answered with 401). Checked before the body is
/// read, so an unsigned request costs no body; the body is then held to the `body_md5` the
/// signature covers ([`verify_api_body`]).
pub fn verify_api_query(
    app: &AppConfig,
    method: &str,
    path: &str,
    params: &[(String, String)],
) -> Result<(), &'static str> {
    if param(params, "auth_key") != Some(app.key.as_str()) {
        return Err("auth_key does not match the app");
    }
    let timestamp: u64 = param(params, "auth_timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or("auth_timestamp is missing")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if now.abs_diff(timestamp) > MAX_CLOCK_SKEW_SECS {
        return Err("auth_timestamp is more than 600 s from the server's clock");
    }
    let signature = param(params, "auth_signature").ok_or("auth_signature is missing")?;
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

/// Checks a body against the signed query's `body_md5` (a non-empty body needs one).
pub fn verify_api_body(params: &[(String, String)], body: &[u8]) -> Result<(), &'static str> {
    if body.is_empty() {
        return Ok(());
    }
    let md5 = hex::encode(Md5::digest(body));
    if param(params, "body_md5") == Some(md5.as_str()) {
        Ok(())
    } else {
        Err("body_md5 does not match the body")
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
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

    /// Both checks, in the order the HTTP API makes them.
    fn verify(
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: &[u8],
    ) -> Result<(), &'static str> {
        verify_api_query(&app(), method, path, query)?;
        verify_api_body(query, body)
    }

    #[test]
    fn api_requests_are_checked_in_full() {
        let body = br#"{"name":"e","data":"{}","channel":"a"}"#;
        let query = signed_query("POST", "/apps/3/events", body, now());
        assert_eq!(verify("POST", "/apps/3/events", &query, body), Ok(()));
        // Another body, path, method or an old timestamp all fail.
        assert!(verify("POST", "/apps/3/events", &query, b"{}").is_err());
        assert!(verify("POST", "/apps/4/events", &query, body).is_err());
        assert!(verify("GET", "/apps/3/events", &query, body).is_err());
        let stale = signed_query("POST", "/apps/3/events", body, now() - 601);
        assert!(verify("POST", "/apps/3/events", &stale, body)
            .unwrap_err()
            .contains("600"));
        assert!(verify("GET", "/apps/3/channels", &[], b"").is_err());
        // A body needs the body_md5 the signature covers.
        let bodiless = signed_query("POST", "/apps/3/events", b"", now());
        assert_eq!(
            verify_api_query(&app(), "POST", "/apps/3/events", &bodiless),
            Ok(())
        );
        assert!(verify_api_body(&bodiless, body).is_err());
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
