//! The demo's site and backend: the page at `/`, the built npm package at `/pkg/`,
//! `/demo/config.json` (which app key to connect with) and the API under `/demo/api/`: sign-in
//! ([`session`]), a chat room ([`crate::chat`]), direct messages ([`crate::direct`]), an event
//! hall's seats ([`crate::seats`]) and each visitor's notifications ([`notifications`]), sent on
//! their private channel.
//!
//! The backend is an app like any other: visitors get a JWT minted by the authorization
//! service's own code, channels are authorized by that service (`/broadcasting/auth`) under the
//! rules [`configure_first_app`] gives the first app, and events go out through the channel
//! registry's `publish`, the path the HTTP API uses. The notification list is the history of
//! the visitor's private channel, which the server keeps a day of.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use overtone_server::authz::AuthzConfig;
use overtone_server::config::AppConfig;
use overtone_server::frame;
use overtone_server::history::{HistoryRule, MAX_READ};
use overtone_server::http_api::is_socket_id;
use overtone_server::state::{App, Shared, SocketId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tower_http::services::ServeDir;

use crate::{chat, direct, seats};

/// The chat room (a presence channel: members, typing, away).
pub const CHAT_CHANNEL: &str = "presence-demo.chat";
/// The event hall (a presence channel: its members are the viewers, and hold seats).
pub const HALL_CHANNEL: &str = "presence-demo.hall";
/// Each visitor's notifications arrive on `private-demo.user.{id}`.
const USER_CHANNEL_PREFIX: &str = "private-demo.user.";
/// How many notifications, and for how long, each visitor's channel keeps (the bell's list).
const NOTIFICATIONS_KEPT: usize = 50;
const NOTIFICATIONS_KEPT_SECS: u64 = 24 * 60 * 60;
/// Laravel's broadcast notification event, which the SDK's `notification()` and badges read.
const NOTIFICATION_EVENT: &str = "Illuminate\\Notifications\\Events\\BroadcastNotificationCreated";
/// Visitors stay signed in for a day.
const SESSION_TTL_SECS: u64 = 24 * 60 * 60;
const MAX_NAME_CHARS: usize = 24;
/// People remembered for mentions since the server started; past this, newcomers can still
/// chat, and be mentioned while they are in the chat or the hall.
const MAX_PEOPLE: usize = 10_000;
/// Member colours, all readable as text on white (WCAG AA) and distinct from each other.
const COLORS: [&str; 8] = [
    "#b42318", "#b54708", "#027a48", "#026aa2", "#5925dc", "#c11574", "#344054", "#0e7090",
];

/// The `[apps.authz]` the demo gives the first app when it has none: any visitor may join the
/// demo's presence channels, only its own notification channel, and a direct-message channel
/// only when the demo's backend says they are one of its two people (`{origin}`: where it
/// listens). `{secret}` is derived from the app secret, so tokens survive a restart (the demo
/// hands tokens to anyone who asks anyway).
const DEMO_AUTHZ: &str = r#"
user_info_claims = ["id", "name", "color"]
[[keys]]
algorithm = "HS256"
secret = "{secret}"
[[rules]]
channel = "presence-demo.{room}"
[[rules]]
channel = "private-demo.user.{id}"
claim_equals = { id = "sub" }
[[rules]]
channel = "private-chat.{a}.{b}"
upstream = "{origin}{authorize}"
"#;

/// Gives the first app the demo's authorization rules (unless the config already has some) and
/// a day of history on the visitors' notification channels (the other channels keep what the
/// config says, by default the server's). `origin`: where the demo listens
/// (`http://127.0.0.1:8080`), which the server asks about direct-message channels.
pub fn configure_first_app(apps: &mut [AppConfig], origin: &str) {
    let Some(app) = apps.first_mut() else {
        return;
    };
    if app.history.is_empty() {
        app.history.push(HistoryRule::default_rule());
    }
    app.history.insert(
        0,
        HistoryRule {
            channel: format!("{USER_CHANNEL_PREFIX}*"),
            max_events: NOTIFICATIONS_KEPT,
            max_age_secs: NOTIFICATIONS_KEPT_SECS,
        },
    );
    if app.authz.is_some() {
        return;
    }
    let secret = hex::encode(
        Sha256::new()
            .chain_update(b"overtone demo tokens\0")
            .chain_update(&app.secret)
            .finalize(),
    );
    let text = DEMO_AUTHZ
        .replace("{secret}", &secret)
        .replace("{origin}", origin)
        .replace("{authorize}", direct::AUTHORIZE_PATH);
    match toml::from_str::<AuthzConfig>(&text) {
        Ok(authz) => app.authz = Some(authz),
        // Fixed text with a hex secret: only a change to the constant above can get here.
        Err(err) => tracing::error!(%err, "the demo's authorization rules do not parse"),
    }
}

/// Where the files served come from.
pub struct Files {
    /// Served at `/`.
    pub site: PathBuf,
    /// The built npm package, served at `/pkg/`.
    pub package: PathBuf,
}

/// The demo's routes next to the server's; its site answers every other path.
pub fn routes(files: &Files, shared: &Shared) -> Router<Shared> {
    let site = Router::new()
        .route("/demo/config.json", get(config))
        .nest_service("/pkg", ServeDir::new(&files.package))
        .fallback_service(ServeDir::new(&files.site));
    match Demo::new(shared) {
        Some(demo) => site.merge(api(Arc::new(demo))),
        None => site,
    }
}

fn api(demo: Arc<Demo>) -> Router<Shared> {
    Router::new()
        .route("/demo/api/session", post(session))
        .route(
            "/demo/api/chat/messages",
            get(chat::history).post(chat::send),
        )
        .route("/demo/api/notifications", get(notifications))
        .route(direct::AUTHORIZE_PATH, post(direct::authorize))
        .route(
            "/demo/api/dm/{peer}",
            get(direct::history).post(direct::send),
        )
        .route("/demo/api/seats", get(seats::list))
        .route("/demo/api/seats/buy", post(seats::buy))
        .route(
            "/demo/api/seats/{seat}/hold",
            post(seats::hold).delete(seats::release),
        )
        .route("/demo/api/seats/{seat}/watch", post(seats::watch))
        .route(
            "/demo/api/{*rest}",
            any(|| async { DemoError::new(StatusCode::NOT_FOUND, "Not found") }),
        )
        .with_state(demo)
}

async fn config(State(shared): State<Shared>) -> Json<Value> {
    let key = shared
        .config()
        .apps
        .first()
        .map(|app| app.key.as_str())
        .unwrap_or_default();
    Json(json!({ "key": key }))
}

/// A failure of the demo API: a status and a JSON `{"error": ...}` body.
#[derive(Debug)]
pub struct DemoError(pub(crate) StatusCode, pub(crate) String);

impl DemoError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> DemoError {
        DemoError(status, message.into())
    }

    pub fn bad_request(message: impl Into<String>) -> DemoError {
        DemoError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for DemoError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

/// A visitor as the page and the other visitors see them (also their presence `user_info`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Person {
    pub id: String,
    pub name: String,
    pub color: String,
}

/// The demo's backend state, shared by its handlers and its clock.
pub struct Demo {
    pub(crate) app: Arc<App>,
    pub(crate) shared: Shared,
    pub(crate) chat: Mutex<chat::History>,
    pub(crate) direct: Mutex<direct::Conversations>,
    pub(crate) hall: Mutex<seats::Hall>,
    /// Everyone who signed in or used the API since start, by id.
    people: Mutex<HashMap<String, Person>>,
    clock: Once,
    /// Notification ids: random per process (tabs remember ids across a restart), then a count.
    notification_prefix: u32,
    next_notification: AtomicU64,
}

impl Demo {
    fn new(shared: &Shared) -> Option<Demo> {
        let app = shared
            .app_by_key(&shared.config().apps.first()?.key)?
            .clone();
        Some(Demo {
            app,
            shared: shared.clone(),
            chat: Mutex::default(),
            direct: Mutex::default(),
            hall: Mutex::new(seats::Hall::new()),
            people: Mutex::default(),
            clock: Once::new(),
            notification_prefix: fastrand::u32(..),
            next_notification: AtomicU64::new(1),
        })
    }

    fn authz(&self) -> Result<&AuthzConfig, DemoError> {
        self.app.config.authz.as_ref().ok_or_else(|| {
            DemoError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The demo app has no [apps.authz] to sign visitors in with",
            )
        })
    }

    /// Who sent the request, from its bearer token; remembered for mentions. The first
    /// authenticated request also starts the hall's clock (it needs a runtime and a visitor).
    pub(crate) fn visitor(self: &Arc<Self>, headers: &HeaderMap) -> Result<Person, DemoError> {
        let identity = self
            .authz()?
            .verifier
            .identify(headers)
            .map_err(|e| DemoError::new(StatusCode::UNAUTHORIZED, e))?;
        let claim = |name: &str| {
            identity
                .claims
                .get(name)
                .and_then(Value::as_str)
                .map(String::from)
        };
        let person = Person {
            name: claim("name").unwrap_or_else(|| identity.user_id.clone()),
            color: claim("color").unwrap_or_else(|| color_of(&identity.user_id).into()),
            id: identity.user_id,
        };
        self.remember(&person);
        self.clock.call_once(|| {
            tokio::spawn(seats::run_clock(self.clone()));
        });
        Ok(person)
    }

    fn remember(&self, person: &Person) {
        let mut people = lock(&self.people);
        if people.len() < MAX_PEOPLE || people.contains_key(&person.id) {
            people.insert(person.id.clone(), person.clone());
        }
    }

    /// Whether `id` can be mentioned: signed in since the server started, or in the chat or the
    /// hall now (a page that outlived a restart is back in them, though the server forgot it).
    pub(crate) fn knows(&self, id: &str) -> bool {
        lock(&self.people).contains_key(id)
            || [CHAT_CHANNEL, HALL_CHANNEL]
                .iter()
                .any(|channel| self.app.channels.has_member(channel, id))
    }

    /// Sends an event to a channel's subscribers (but `except`) as the HTTP API does.
    pub(crate) fn publish(
        &self,
        channel: &str,
        event: &str,
        data: &Value,
        except: Option<&SocketId>,
    ) {
        let out = frame::channel_event(channel, event, &data.to_string(), None);
        self.app.publish(channel, &out, except);
    }

    /// A Laravel-style broadcast notification to one visitor; `category` groups the badge.
    pub(crate) fn notify(&self, user_id: &str, category: &str, text: &str) {
        let n = self.next_notification.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:08x}-{n}", self.notification_prefix);
        let data = json!({
            "id": id,
            "type": format!("demo.{category}"),
            "category": category,
            "text": text,
            "at": unix_ms(),
        });
        self.publish(
            &format!("{USER_CHANNEL_PREFIX}{user_id}"),
            NOTIFICATION_EVENT,
            &data,
            None,
        );
    }
}

/// The `X-Socket-ID` of a request (the sender's connection, left out of the broadcast).
pub(crate) fn sender_socket(headers: &HeaderMap) -> Result<Option<SocketId>, DemoError> {
    match headers.get("x-socket-id").map(|v| v.to_str()) {
        None => Ok(None),
        Some(Ok(id)) if is_socket_id(id) => Ok(Some(SocketId::from(id))),
        Some(_) => Err(DemoError::bad_request("X-Socket-ID must look like 123.456")),
    }
}

/// A JSON request body, or a 400 saying what is wrong with it.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, DemoError> {
    serde_json::from_slice(body)
        .map_err(|e| DemoError::bad_request(format!("Invalid JSON body: {e}")))
}

/// A poisoned lock only means a handler panicked mid-update; the demo's state stays usable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn color_of(id: &str) -> &'static str {
    let hash = id
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
    COLORS[hash % COLORS.len()]
}

/// A user id from a display name: lowercase letters and digits, other runs become one `-`
/// (ids appear in channel names and `@mentions`).
fn id_from_name(name: &str) -> String {
    let mut id = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            id.push(c);
        } else if !id.is_empty() && !id.ends_with('-') {
            id.push('-');
        }
    }
    id.trim_end_matches('-').to_string()
}

#[derive(Deserialize)]
struct SessionRequest {
    name: String,
}

/// `POST /demo/api/session {name}` -> `{token, user}`: signs a visitor in under a name.
async fn session(State(demo): State<Arc<Demo>>, body: Bytes) -> Result<Json<Value>, DemoError> {
    let SessionRequest { name } = parse_body(&body)?;
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(DemoError::bad_request(format!(
            "A name is 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    let id = id_from_name(name);
    if id.is_empty() {
        return Err(DemoError::bad_request(
            "A name needs at least one letter or digit (a-z, 0-9)",
        ));
    }
    let user = Person {
        name: name.into(),
        color: color_of(&id).into(),
        id,
    };
    let mut claims = Map::new();
    claims.insert("id".into(), user.id.clone().into());
    claims.insert("name".into(), user.name.clone().into());
    claims.insert("color".into(), user.color.clone().into());
    let token =
        overtone_server::authz::token_cli::mint(demo.authz()?, &user.id, claims, SESSION_TTL_SECS)
            .map_err(|e| DemoError::new(StatusCode::SERVICE_UNAVAILABLE, e))?;
    // Mentionable from now on, before they say or do anything.
    demo.remember(&user);
    Ok(Json(json!({ "token": token, "user": user })))
}

/// `GET /demo/api/notifications` -> `{notifications}`, oldest first: what the visitor's private
/// channel kept, so every tab, a reload and a reconnect show the same list. (With Redis, this
/// reads the node's own copy, which is what it has while Redis is away.)
async fn notifications(
    State(demo): State<Arc<Demo>>,
    headers: HeaderMap,
) -> Result<Json<Value>, DemoError> {
    let me = demo.visitor(&headers)?;
    let channel = format!("{USER_CHANNEL_PREFIX}{}", me.id);
    let frames = demo
        .app
        .channels
        .history(&channel, None, MAX_READ)
        .map(|(_, frames, _)| frames)
        .unwrap_or_default();
    let list: Vec<Value> = frames
        .iter()
        .filter_map(|f| serde_json::from_str::<Value>(f.as_str()).ok())
        .filter(|event| event["event"] == NOTIFICATION_EVENT)
        .filter_map(|event| serde_json::from_str(event["data"].as_str()?).ok())
        .collect();
    Ok(Json(json!({ "notifications": list })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_names() {
        assert_eq!(id_from_name("Ana"), "ana");
        assert_eq!(id_from_name("  Mary Jane!! O'Neil "), "mary-jane-o-neil");
        assert_eq!(id_from_name("Zoë"), "zo");
        assert_eq!(id_from_name("!!!"), "");
    }

    #[test]
    fn the_demo_rules_allow_the_demo_channels_only() {
        let mut apps = vec![AppConfig::new("a", "k", "s")];
        configure_first_app(&mut apps, "http://127.0.0.1:8080");
        let authz = apps[0].authz.as_ref().expect("demo rules parse");
        let mut claims = Map::new();
        claims.insert("name".into(), "Ana".into());
        let token = overtone_server::authz::token_cli::mint(authz, "ana", claims, 60).unwrap();
        let claims = authz.verifier.verify_jwt(&token).unwrap();
        use overtone_server::authz::rules::{decide, Verdict};
        let allowed = |channel| matches!(decide(&authz.rules, channel, &claims), Verdict::Allow(_));
        assert!(allowed(CHAT_CHANNEL) && allowed(HALL_CHANNEL));
        assert!(allowed("private-demo.user.ana"));
        assert!(!allowed("private-demo.user.bob"));
        assert!(!allowed("private-other"));
        let asks_the_demo = |channel| match decide(&authz.rules, channel, &claims) {
            Verdict::Delegate(_, upstream, _) => upstream.url.as_str().to_owned(),
            _ => String::new(),
        };
        assert_eq!(
            asks_the_demo("private-chat.ana.bob"),
            "http://127.0.0.1:8080/demo/api/dm/authorize"
        );
    }

    #[test]
    fn notifications_keep_a_day_and_other_channels_keep_what_they_did() {
        let mut apps = vec![AppConfig::new("a", "k", "s")];
        configure_first_app(&mut apps, "http://127.0.0.1:8080");
        let rules = overtone_server::history::Rules::new(&apps[0].history).unwrap();
        let day = std::time::Duration::from_secs(NOTIFICATIONS_KEPT_SECS);
        assert_eq!(
            rules.for_channel("private-demo.user.ana").unwrap().max_age,
            day
        );
        let default = HistoryRule::default_rule();
        let chat = rules.for_channel(CHAT_CHANNEL).unwrap();
        assert_eq!(chat.max_events, default.max_events);
    }
}
