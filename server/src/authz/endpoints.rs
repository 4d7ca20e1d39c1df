//! The HTTP side of the authorization service: `POST /broadcasting/auth` (channels) and
//! `POST /broadcasting/user-auth` (sign-in), taking exactly what pusher-js and laravel-echo
//! send (form-encoded `socket_id`, `channel_name`; JSON is accepted too) and answering what they
//! expect (`auth`, `channel_data` on presence, `shared_secret` on private-encrypted channels;
//! `auth`, `user_data` for sign-in). CORS (preflight included) follows the app's
//! `allowed_origins`; credentials are allowed only to origins it names (a session cookie needs
//! such a list: the config is refused without one).
//!
//! Which app: the one whose key is given as `app_key` in the query string (or in the body),
//! else the first app with an `[apps.authz]` table. Browsers on another origin should put it in
//! the query string, the only place a preflight request carries it.
//!
//! A batch: the form field `channel_names[]`, repeated (at most 100), next to `socket_id` (and
//! `channel_name`, the first of them, so an endpoint without batches answers for that one
//! alone). The answer is `{"channels": {"<name>": <that channel's answer>}}`, each answer
//! either what a single request gets or `{"status": 403, "error": "..."}`: one refusal does not
//! fail the others. Identity and app failures still fail the whole request.
//!
//! Failures are JSON `{"error": ...}`: 400 malformed request, 401 missing or invalid
//! credentials, 403 refused by the rules or an origin not allowed, 404 unknown app, 502/504
//! when a delegated rule's upstream fails or is too slow.

use std::sync::Arc;

use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use overtone_protocol::channel::{validate_name, ChannelKind, ChannelType};
use overtone_protocol::signature;
use serde_json::{json, Map, Value};

use super::identity::Identity;
use super::rules::{self, Verdict};
use super::upstream;
use super::AuthzConfig;
use crate::config::{AppConfig, Config};
use crate::state::Shared;

/// Largest request body read; pusher-js sends a few hundred bytes, a batch a few KiB.
const MAX_BODY_BYTES: usize = 16 * 1024;
/// The form field naming each channel of a batch, repeated.
const BATCH_FIELD: &str = "channel_names[]";
/// Most channels in one batch.
const MAX_BATCH_CHANNELS: usize = 100;
/// How long browsers may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE_SECS: &str = "600";

/// The apps that have authorization configured, and the client for delegated rules.
struct Service {
    apps: Vec<(AppConfig, AuthzConfig)>,
    http: reqwest::Client,
}

pub fn routes(config: &Config) -> Router<Shared> {
    let service = Service {
        apps: config
            .apps
            .iter()
            .filter_map(|app| Some((app.clone(), app.authz.clone()?)))
            .collect(),
        // No redirects: a rule names the one URL trusted with users' tokens.
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client without TLS options always builds"),
    };
    Router::new()
        .route("/broadcasting/auth", post(channel_auth).options(preflight))
        .route(
            "/broadcasting/user-auth",
            post(user_auth).options(preflight),
        )
        .with_state(Arc::new(service))
}

/// A failure: a status and a JSON `{"error": ...}` body.
#[derive(Debug)]
pub struct AuthzError(pub StatusCode, pub String);

impl AuthzError {
    fn bad_request(message: impl Into<String>) -> AuthzError {
        AuthzError(StatusCode::BAD_REQUEST, message.into())
    }
}

impl IntoResponse for AuthzError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

/// The parameters of a request: its query string, then its body.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated field, in order.
    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn socket_id(&self) -> Result<&str, AuthzError> {
        let socket_id = self
            .get("socket_id")
            .ok_or_else(|| AuthzError::bad_request("socket_id is missing"))?;
        let is_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        match socket_id.split_once('.') {
            Some((a, b)) if is_digits(a) && is_digits(b) => Ok(socket_id),
            _ => Err(AuthzError::bad_request("socket_id must look like 123.456")),
        }
    }
}

async fn read_params(req: Request) -> Result<(HeaderMap, Params), AuthzError> {
    let (parts, body) = req.into_parts();
    let mut params: Vec<(String, String)> =
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let body = to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        AuthzError(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request body is too large".into(),
        )
    })?;
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if is_json {
        let object: Map<String, Value> = serde_json::from_slice(&body)
            .map_err(|e| AuthzError::bad_request(format!("Invalid JSON body: {e}")))?;
        params.extend(
            object
                .into_iter()
                .filter_map(|(k, v)| Some((k, rules::claim_text(&v)?))),
        );
    } else {
        params.extend(form_urlencoded::parse(&body).into_owned());
    }
    Ok((parts.headers, Params(params)))
}

impl Service {
    fn app(&self, app_key: Option<&str>) -> Result<&(AppConfig, AuthzConfig), AuthzError> {
        let not_found = |message: String| AuthzError(StatusCode::NOT_FOUND, message);
        let found = match app_key {
            Some(key) => self
                .apps
                .iter()
                .find(|(app, _)| app.key == key)
                .ok_or_else(|| {
                    not_found(format!(
                        "No app with key {key} has authorization configured"
                    ))
                })?,
            None => self
                .apps
                .first()
                .ok_or_else(|| not_found("No app has authorization configured".into()))?,
        };
        if !found.0.enabled {
            return Err(AuthzError(StatusCode::FORBIDDEN, "App is disabled".into()));
        }
        Ok(found)
    }
}

/// The CORS headers for a request from `headers`' origin, or 403 if the app does not allow it.
/// Requests without an `Origin` are not from browsers and need none.
fn cors(
    app: &AppConfig,
    headers: &HeaderMap,
) -> Result<Vec<(header::HeaderName, HeaderValue)>, AuthzError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(Vec::new());
    };
    if !origin.to_str().is_ok_and(|o| app.allows_origin(o)) {
        return Err(AuthzError(
            StatusCode::FORBIDDEN,
            "Origin is not allowed for this app".into(),
        ));
    }
    // The origin itself rather than `*`: credentials (cookies) need it. Credentials only for
    // origins the app names: reflected to any site, a user's cookie would sign for that site.
    let mut allowed = vec![
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()),
        (header::VARY, HeaderValue::from_static("Origin")),
    ];
    if app.origins_are_explicit() {
        allowed.push((
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        ));
    }
    Ok(allowed)
}

fn with_headers(
    mut response: Response,
    headers: Vec<(header::HeaderName, HeaderValue)>,
) -> Response {
    response.headers_mut().extend(headers);
    response
}

async fn preflight(State(service): State<Arc<Service>>, req: Request) -> Response {
    let headers = req.headers();
    let app_key = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "app_key")
        .map(|(_, v)| v.into_owned());
    let allowed = service
        .app(app_key.as_deref())
        .and_then(|(app, _)| cors(app, headers));
    match allowed {
        Ok(mut cors_headers) => {
            cors_headers.push((
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("POST, OPTIONS"),
            ));
            cors_headers.push((
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(PREFLIGHT_MAX_AGE_SECS),
            ));
            if let Some(asked) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                cors_headers.push((header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone()));
            }
            with_headers(StatusCode::NO_CONTENT.into_response(), cors_headers)
        }
        Err(err) => err.into_response(),
    }
}

/// Runs `answer` for the request's app and adds the CORS headers to whatever it answers.
async fn handle<F, Fut>(service: Arc<Service>, req: Request, answer: F) -> Response
where
    F: FnOnce(Arc<Service>, HeaderMap, Params) -> Fut,
    Fut: std::future::Future<Output = Result<Value, AuthzError>>,
{
    let (headers, params) = match read_params(req).await {
        Ok(read) => read,
        Err(err) => return err.into_response(),
    };
    let cors_headers = match service
        .app(params.get("app_key"))
        .and_then(|(app, _)| cors(app, &headers))
    {
        Ok(cors_headers) => cors_headers,
        Err(err) => return err.into_response(),
    };
    let response = match answer(service, headers, params).await {
        Ok(body) => Json(body).into_response(),
        Err(err) => err.into_response(),
    };
    with_headers(response, cors_headers)
}

async fn channel_auth(State(service): State<Arc<Service>>, req: Request) -> Response {
    handle(service, req, authorize_channel).await
}

async fn user_auth(State(service): State<Arc<Service>>, req: Request) -> Response {
    handle(service, req, authenticate_user).await
}

fn identify(authz: &AuthzConfig, headers: &HeaderMap) -> Result<Identity, AuthzError> {
    authz
        .verifier
        .identify(headers)
        .map_err(|e| AuthzError(StatusCode::UNAUTHORIZED, e))
}

/// `{auth, channel_data?, shared_secret?}` for a channel the rules allow; for a batch (see the
/// module's docs), `{"channels": {name: that, or {"status", "error"}}}`.
async fn authorize_channel(
    service: Arc<Service>,
    headers: HeaderMap,
    params: Params,
) -> Result<Value, AuthzError> {
    let (app, authz) = service.app(params.get("app_key"))?;
    let socket_id = params.socket_id()?;
    let batch = params.all(BATCH_FIELD);
    if batch.is_empty() {
        let channel = params
            .get("channel_name")
            .ok_or_else(|| AuthzError::bad_request("channel_name is missing"))?;
        checked_channel(channel)?;
        let identity = identify(authz, &headers)?;
        return authorize_one(&service, app, authz, socket_id, &identity, channel).await;
    }
    if batch.len() > MAX_BATCH_CHANNELS {
        return Err(AuthzError::bad_request(format!(
            "at most {MAX_BATCH_CHANNELS} channels in one request"
        )));
    }
    let identity = identify(authz, &headers)?;
    let mut answers = Map::new();
    // One after the other: most rules decide locally; delegated ones each ask the upstream.
    for channel in batch {
        let answer = match checked_channel(channel) {
            Ok(()) => authorize_one(&service, app, authz, socket_id, &identity, channel).await,
            Err(err) => Err(err),
        };
        let answer = answer.unwrap_or_else(
            |AuthzError(status, error)| json!({ "status": status.as_u16(), "error": error }),
        );
        answers.insert(channel.to_string(), answer);
    }
    Ok(json!({ "channels": answers }))
}

/// 400 for a name that is invalid or needs no authorization.
fn checked_channel(channel: &str) -> Result<(), AuthzError> {
    validate_name(channel).map_err(|e| AuthzError::bad_request(e.to_string()))?;
    if !ChannelType::of(channel).needs_auth() {
        return Err(AuthzError::bad_request(format!(
            "{channel} needs no authorization"
        )));
    }
    Ok(())
}

/// One channel's `{auth, channel_data?, shared_secret?}`, or why the rules refuse it.
async fn authorize_one(
    service: &Service,
    app: &AppConfig,
    authz: &AuthzConfig,
    socket_id: &str,
    identity: &Identity,
    channel: &str,
) -> Result<Value, AuthzError> {
    let kind = ChannelType::of(channel).kind;
    let (rule, upstream_info) = match rules::decide(&authz.rules, channel, &identity.claims) {
        Verdict::Deny(reason) => return Err(AuthzError(StatusCode::FORBIDDEN, reason)),
        Verdict::Allow(rule) => (rule, None),
        Verdict::Delegate(rule, to, captures) => {
            let asked = upstream::Question {
                app_id: &app.id,
                socket_id,
                channel,
                identity,
                captures,
            };
            (rule, upstream::ask(&service.http, to, asked).await?)
        }
    };

    let mut reply = Map::new();
    let channel_data = (kind == ChannelKind::Presence).then(|| {
        let names = rule
            .user_info_claims
            .as_ref()
            .unwrap_or(&authz.user_info_claims);
        let user_info = upstream_info.unwrap_or_else(|| rules::user_info(&identity.claims, names));
        json!({ "user_id": identity.user_id, "user_info": user_info }).to_string()
    });
    if kind == ChannelKind::PrivateEncrypted {
        let secret = authz.shared_secret(channel).ok_or_else(|| {
            AuthzError::bad_request(
                "This app has no encryption_master_key_base64: private-encrypted channels are unavailable",
            )
        })?;
        reply.insert("shared_secret".into(), secret.into());
    }
    let message = signature::channel_auth_message(socket_id, channel, channel_data.as_deref());
    reply.insert(
        "auth".into(),
        signature::auth_token(&app.key, &app.secret, &message).into(),
    );
    if let Some(data) = channel_data {
        reply.insert("channel_data".into(), data.into());
    }
    Ok(Value::Object(reply))
}

/// `{auth, user_data}` for `pusher:signin`: any authenticated user may sign in as themselves.
async fn authenticate_user(
    service: Arc<Service>,
    headers: HeaderMap,
    params: Params,
) -> Result<Value, AuthzError> {
    let (app, authz) = service.app(params.get("app_key"))?;
    let socket_id = params.socket_id()?;
    let identity = identify(authz, &headers)?;
    let user_info = rules::user_info(&identity.claims, &authz.user_info_claims);
    let user_data = json!({ "id": identity.user_id, "user_info": user_info }).to_string();
    let message = signature::user_auth_message(socket_id, &user_data);
    Ok(
        json!({ "auth": signature::auth_token(&app.key, &app.secret, &message), "user_data": user_data }),
    )
}
