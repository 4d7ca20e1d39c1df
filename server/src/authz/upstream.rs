//! Rules delegated to the app: the server asks the rule's upstream URL and does what it says.
//!
//! The upstream gets `POST` with the user's credential forwarded as it came (the
//! `Authorization: Bearer` header or the session cookie) and a JSON body
//! `{"app_id", "socket_id", "channel_name", "user_id", "claims", "params"}` (`params`: the
//! pattern's placeholders). It answers 2xx `{"allow": true|false, "user_info"?: {..},
//! "message"?: ".."}`; `user_info` replaces the claims-derived one on presence channels. A 401
//! or 403 answer is a denial too. Anything else, or no answer within the rule's timeout, is
//! the upstream's failure (502 / 504), never the client's.

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::endpoints::AuthzError;
use super::identity::{Credential, Identity};
use super::pattern::Captures;
use super::rules::Upstream;

/// What the upstream is asked about.
pub struct Question<'a> {
    pub app_id: &'a str,
    pub socket_id: &'a str,
    pub channel: &'a str,
    pub identity: &'a Identity,
    pub captures: Captures,
}

#[derive(Deserialize)]
struct Answer {
    allow: bool,
    #[serde(default)]
    user_info: Option<Map<String, Value>>,
    #[serde(default)]
    message: Option<String>,
}

/// Asks `upstream`; Ok holds the `user_info` it gave, if any, when it allows.
pub async fn ask(
    http: &reqwest::Client,
    upstream: &Upstream,
    question: Question<'_>,
) -> Result<Option<Map<String, Value>>, AuthzError> {
    let identity = question.identity;
    let params: Map<String, Value> = question
        .captures
        .into_iter()
        .map(|(k, v)| (k, v.into()))
        .collect();
    let body = json!({
        "app_id": question.app_id,
        "socket_id": question.socket_id,
        "channel_name": question.channel,
        "user_id": identity.user_id,
        "claims": identity.claims,
        "params": params,
    });
    let request = http
        .post(upstream.url.clone())
        .timeout(upstream.timeout)
        .json(&body);
    let request = match &identity.credential {
        Credential::Bearer(token) => request.bearer_auth(token),
        Credential::Cookie { name, value } => {
            request.header(reqwest::header::COOKIE, format!("{name}={value}"))
        }
    };
    let failed = |status: StatusCode, what: String| {
        tracing::warn!(url = %upstream.url, "authorization upstream {what}");
        AuthzError(status, format!("The app's authorization upstream {what}"))
    };
    let response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            failed(
                StatusCode::GATEWAY_TIMEOUT,
                format!("did not answer within {} ms", upstream.timeout.as_millis()),
            )
        } else {
            failed(StatusCode::BAD_GATEWAY, "could not be reached".into())
        }
    })?;
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(AuthzError(status, "Denied by the app".into()));
    }
    if !status.is_success() {
        return Err(failed(
            StatusCode::BAD_GATEWAY,
            format!("answered {status}"),
        ));
    }
    let answer: Answer = response.json().await.map_err(|e| {
        let what = if e.is_timeout() {
            "was too slow to answer"
        } else {
            "answered something other than {\"allow\": ..}"
        };
        failed(
            if e.is_timeout() {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::BAD_GATEWAY
            },
            what.into(),
        )
    })?;
    if answer.allow {
        Ok(answer.user_info)
    } else {
        Err(AuthzError(
            StatusCode::FORBIDDEN,
            answer.message.unwrap_or_else(|| "Denied by the app".into()),
        ))
    }
}
