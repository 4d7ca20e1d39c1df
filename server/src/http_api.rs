//! The Pusher HTTP API under `/apps/{app_id}`: signed requests from app backends (Laravel's
//! broadcaster, the `pusher` SDKs) that publish events and query channels.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use md5::{Digest, Md5};
use overtone_protocol::channel::validate_name;
use overtone_protocol::signature;
use serde::Deserialize;

use crate::frame;
use crate::state::{App, Shared};

/// Largest event payload accepted, in bytes.
const MAX_DATA_BYTES: usize = 10 * 1024;
/// Most channels one event may name.
const MAX_CHANNELS_PER_EVENT: usize = 100;
/// How far a request's `auth_timestamp` may be from the server's clock.
const MAX_CLOCK_SKEW_SECS: u64 = 600;

pub fn routes() -> Router<Shared> {
    Router::new().route("/apps/{app_id}/events", post(trigger_event))
}

/// An API failure: a status and a JSON `{"error": ...}` body.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError(status, message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

/// A request whose signature checked out, with the app it is for.
struct Signed {
    app: std::sync::Arc<App>,
    body: Bytes,
}

/// Checks an API request's signature: key, timestamp window, recomputed body MD5 and HMAC.
fn authenticate(
    shared: &Shared,
    app_id: &str,
    method: &Method,
    uri: &Uri,
    query: Option<&str>,
    body: Bytes,
) -> Result<Signed, ApiError> {
    let app = shared
        .app_by_id(app_id)
        .cloned()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("Unknown app id {app_id}")))?;
    let params: Vec<(String, String)> =
        form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect();
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let unauthorized = |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, message);

    if param("auth_key") != Some(app.config.key.as_str()) {
        return Err(unauthorized("auth_key does not match the app"));
    }
    let timestamp: u64 = param("auth_timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| unauthorized("auth_timestamp is missing"))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if now.abs_diff(timestamp) > MAX_CLOCK_SKEW_SECS {
        return Err(unauthorized("auth_timestamp is more than 600 s from the server's clock"));
    }
    if !body.is_empty() {
        let md5 = hex::encode(Md5::digest(&body));
        if param("body_md5") != Some(md5.as_str()) {
            return Err(unauthorized("body_md5 does not match the body"));
        }
    }
    let signature = param("auth_signature").ok_or_else(|| unauthorized("auth_signature is missing"))?;
    let to_sign = signature::api_string_to_sign(
        method.as_str(),
        uri.path(),
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
    if !signature::verify_hex(&app.config.secret, &to_sign, signature) {
        return Err(unauthorized("Invalid signature"));
    }
    Ok(Signed { app, body })
}

/// `POST /apps/{app_id}/events` body. pusher-http-php sends `channel` for one channel.
#[derive(Deserialize)]
struct TriggerBody {
    name: String,
    data: serde_json::Value,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    socket_id: Option<String>,
}

async fn trigger_event(
    State(shared): State<Shared>,
    Path(app_id): Path<String>,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let signed = authenticate(&shared, &app_id, &method, &uri, query.as_deref(), body)?;
    let mut event: TriggerBody = serde_json::from_slice(&signed.body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("Invalid JSON body: {e}")))?;
    event.channels.extend(event.channel.take());
    if event.channels.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "Name at least one channel"));
    }
    if event.channels.len() > MAX_CHANNELS_PER_EVENT {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "At most 100 channels per event"));
    }
    if let Some(err) = event.channels.iter().find_map(|c| validate_name(c).err()) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, err.to_string()));
    }
    // The protocol carries data as a string; a backend that sent an object gets it encoded.
    let data = match event.data {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    if data.len() > MAX_DATA_BYTES {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Event data is larger than 10 KB"));
    }
    for channel in &event.channels {
        let out = frame::channel_event(channel, &event.name, &data, None);
        signed.app.channels.publish(channel, &out, event.socket_id.as_deref());
    }
    Ok(Json(serde_json::json!({})))
}
