//! The Pusher HTTP API under `/apps/{app_id}`: signed requests from app backends (Laravel's
//! broadcaster, the `pusher` SDKs) that publish events, query channels and presence members,
//! and terminate a user's connections. Every reply has the shape pusher-http-php expects;
//! every failure is a status with a JSON `{"error": ...}` body.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use overtone_protocol::channel::{validate_name, ChannelKind, ChannelType};
use overtone_protocol::codes;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::auth;
use crate::channels::SocketId;
use crate::fanout::Publishing;
use crate::frame;
use crate::history::{self, MAX_READ};
use crate::reads;
use crate::state::{App, Shared};
use crate::user_status;

/// Longest event name accepted, in bytes (Pusher's limit).
const MAX_EVENT_NAME_BYTES: usize = 200;
/// Request body allowance per event beyond its data: channel names, event name, JSON syntax.
const BODY_OVERHEAD_PER_EVENT: usize = 20 * 1024;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/apps/{app_id}/events", post(trigger_event))
        .route("/apps/{app_id}/batch_events", post(trigger_batch))
        .route("/apps/{app_id}/channels", get(list_channels))
        .route("/apps/{app_id}/channels/{channel}", get(channel_info))
        .route(
            "/apps/{app_id}/channels/{channel}/users",
            get(channel_users),
        )
        .route(
            "/apps/{app_id}/channels/{channel}/history",
            get(channel_history),
        )
        .route(
            "/apps/{app_id}/users/{user_id}/terminate_connections",
            post(terminate_connections),
        )
        .route("/apps/{app_id}/reads", post(post_reads))
        .route(
            "/apps/{app_id}/users/{user_id}/presence",
            get(user_presence),
        )
}

/// What unknown paths get when nothing embedding the server answers them: a JSON 404.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Not found")
}

/// An API failure: a status and a JSON `{"error": ...}` body.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError(status, message.into())
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// A cluster-wide answer Redis cannot give (away, or just back and not every node's
    /// members and counts in it yet): 503, never this node's part as if it were the whole.
    fn unavailable() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Cluster-wide channel data is unavailable (Redis away or just back); retry shortly",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

/// A request whose signature checked out: the app it is for, its query and its body.
pub(crate) struct Signed {
    app: Arc<App>,
    params: Vec<(String, String)>,
    body: Bytes,
}

impl Signed {
    /// A request for `app` already authorized otherwise (the operator's console, behind its
    /// admin token), so the console's actions run the API's own handlers.
    pub(crate) fn trusted(app: Arc<App>, params: Vec<(String, String)>, body: Bytes) -> Signed {
        Signed { app, params, body }
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `info` attributes asked for in the query.
    fn info(&self) -> Vec<&str> {
        info_attributes(self.param("info")).collect()
    }

    fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::bad_request(format!("Invalid JSON body: {e}")))
    }
}

impl FromRequest<Shared> for Signed {
    type Rejection = ApiError;

    async fn from_request(req: Request, shared: &Shared) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path();
        let app_id = path
            .strip_prefix("/apps/")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("");
        let app = shared.app_by_id(app_id).cloned().ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, format!("Unknown app id {app_id}"))
        })?;
        let params: Vec<(String, String)> =
            form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let config = &app.config;
        // The signature first: an unsigned request is answered before any of its body is read.
        auth::verify_api_query(config, parts.method.as_str(), path, &params)
            .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e))?;
        if !config.enabled {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "App is disabled"));
        }
        let limit = (config
            .max_event_bytes
            .saturating_add(BODY_OVERHEAD_PER_EVENT))
        .saturating_mul(config.max_batch_size.max(1));
        let body = axum::body::to_bytes(body, limit).await.map_err(|_| {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request body is too large")
        })?;
        auth::verify_api_body(&params, &body)
            .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e))?;
        Ok(Signed { app, params, body })
    }
}

/// One event as `POST /events` and each `batch` item carry it. pusher-http-php sends
/// `channel` for one channel and `channels` for several.
#[derive(Deserialize)]
struct EventBody {
    name: String,
    data: Value,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    socket_id: Option<String>,
    #[serde(default)]
    info: Option<String>,
}

/// An event that passed every check, ready to publish.
struct Event {
    name: String,
    data: String,
    channels: Vec<String>,
    except: Option<SocketId>,
    info: Vec<String>,
}

impl Event {
    fn checked(body: EventBody, app: &App) -> Result<Event, ApiError> {
        let limits = &app.config;
        if body.name.is_empty() || body.name.len() > MAX_EVENT_NAME_BYTES {
            return Err(ApiError::bad_request(
                "Event name must be 1 to 200 characters",
            ));
        }
        let mut channels = body.channels;
        channels.extend(body.channel);
        if channels.is_empty() {
            return Err(ApiError::bad_request("Name at least one channel"));
        }
        if channels.len() > limits.max_channels_per_event {
            let max = limits.max_channels_per_event;
            return Err(ApiError::bad_request(format!(
                "At most {max} channels per event"
            )));
        }
        if let Some(err) = channels.iter().find_map(|c| validate_name(c).err()) {
            return Err(ApiError::bad_request(err.to_string()));
        }
        if let Some(socket_id) = &body.socket_id {
            if !is_socket_id(socket_id) {
                return Err(ApiError::bad_request("socket_id must look like 123.456"));
            }
        }
        // The protocol carries data as a string; a backend that sent JSON gets it encoded.
        let data = match body.data {
            Value::String(s) => s,
            other => other.to_string(),
        };
        if data.len() > limits.max_event_bytes {
            let max = limits.max_event_bytes;
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Event data is larger than {max} bytes"),
            ));
        }
        let info: Vec<String> = info_attributes(body.info.as_deref())
            .map(String::from)
            .collect();
        check_info(&info, &["user_count", "subscription_count"])?;
        if body.name == reads::BACKEND_EVENT {
            let read = backend_read(&data)?;
            channels
                .iter()
                .try_for_each(|c| reads::check(c, &read.user_id, &read.up_to))
                .map_err(ApiError::bad_request)?;
        }
        Ok(Event {
            name: body.name,
            data,
            channels,
            except: body.socket_id.as_deref().map(SocketId::from),
            info,
        })
    }

    /// Publishes to every channel (delivered by the app's fanout task, see [`crate::fanout`]):
    /// one frame built per channel, shared by its subscribers. An `overtone-read` event
    /// (checked already) is stored and announced as `overtone:reads` instead.
    fn publish(&self, app: &Arc<App>, publishing: &mut Publishing<'_>) {
        if self.name == reads::BACKEND_EVENT {
            if let Ok(read) = backend_read(&self.data) {
                for channel in &self.channels {
                    reads::record(app, channel, &read.user_id, &read.up_to);
                }
            }
            return;
        }
        for channel in &self.channels {
            let out = frame::channel_event(channel, &self.name, &self.data, None);
            publishing.publish(channel, &out, self.except.as_ref());
        }
    }

    /// The `info` attributes asked for, per channel.
    async fn channel_attributes(&self, app: &App, channel: &str) -> Result<Value, ApiError> {
        let info = self.info.iter().map(String::as_str);
        Ok(Value::Object(attributes(app, channel, info).await?))
    }
}

/// An `overtone-read` event's data: `{"user_id","up_to"}`.
fn backend_read(data: &str) -> Result<reads::Read, ApiError> {
    serde_json::from_str(data).map_err(|_| {
        ApiError::bad_request(format!(
            "{} data must be {{\"user_id\":\"..\",\"up_to\":\"..\"}}",
            reads::BACKEND_EVENT
        ))
    })
}

/// `POST /reads`: one marker, or `{"reads":[...]}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum ReadsBody {
    Many { reads: Vec<reads::Read> },
    One(reads::Read),
}

/// Stores read markers from a backend (README, "Wire extensions"): all of them, or none
/// when one is bad.
async fn post_reads(signed: Signed) -> Result<Json<Value>, ApiError> {
    let body: ReadsBody = signed.json()?;
    let all = match body {
        ReadsBody::Many { reads } => reads,
        ReadsBody::One(read) => vec![read],
    };
    if all.len() > reads::MAX_BATCH {
        let max = reads::MAX_BATCH;
        return Err(ApiError::bad_request(format!(
            "At most {max} reads per call"
        )));
    }
    for read in &all {
        validate_name(&read.channel).map_err(|e| ApiError::bad_request(e.to_string()))?;
        reads::check(&read.channel, &read.user_id, &read.up_to).map_err(ApiError::bad_request)?;
    }
    for read in &all {
        reads::record(&signed.app, &read.channel, &read.user_id, &read.up_to);
    }
    Ok(Json(json!({})))
}

/// `GET /users/{user_id}/presence`: status, device, last seen and presence channels.
async fn user_presence(
    Path((_, user_id)): Path<(String, String)>,
    signed: Signed,
) -> Result<Json<Value>, ApiError> {
    user_status::presence(&signed.app, &user_id)
        .await
        .map(Json)
        .ok_or_else(ApiError::unavailable)
}

/// The attributes of a comma-separated `info` parameter.
fn info_attributes(info: Option<&str>) -> impl Iterator<Item = &str> {
    info.unwrap_or("").split(',').filter(|a| !a.is_empty())
}

/// `digits.digits`, the only socket id form pusher-http-php accepts.
pub fn is_socket_id(id: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    id.split_once('.')
        .is_some_and(|(a, b)| digits(a) && digits(b))
}

fn check_info(info: &[impl AsRef<str>], known: &[&str]) -> Result<(), ApiError> {
    match info.iter().find(|a| !known.contains(&a.as_ref())) {
        Some(unknown) => Err(ApiError::bad_request(format!(
            "Unknown info attribute {}",
            unknown.as_ref()
        ))),
        None => Ok(()),
    }
}

/// `user_count` (presence channels only) and `subscription_count` of a channel, as asked.
async fn attributes<'a>(
    app: &App,
    channel: &str,
    info: impl Iterator<Item = &'a str>,
) -> Result<Map<String, Value>, ApiError> {
    let occupancy = app
        .occupancy(channel)
        .await
        .ok_or_else(ApiError::unavailable)?;
    let presence = ChannelType::of(channel).kind == ChannelKind::Presence;
    let mut out = Map::new();
    for attribute in info {
        match attribute {
            "user_count" if presence => out.insert("user_count".into(), occupancy.users.into()),
            "subscription_count" => {
                out.insert("subscription_count".into(), occupancy.subscriptions.into())
            }
            _ => None,
        };
    }
    Ok(out)
}

pub(crate) async fn trigger_event(signed: Signed) -> Result<Json<Value>, ApiError> {
    let event = Event::checked(signed.json()?, &signed.app)?;
    // The attributes are read before publishing: a 503 means nothing was sent, so a retry
    // sends the event once.
    let answer = if event.info.is_empty() {
        json!({})
    } else {
        let mut channels = Map::new();
        for channel in &event.channels {
            let attributes = event.channel_attributes(&signed.app, channel).await?;
            channels.insert(channel.clone(), attributes);
        }
        json!({ "channels": channels })
    };
    // Answered once accepted: the sends are the fanout task's.
    let app = &signed.app;
    event.publish(app, &mut app.publishing(app.fanout.room().await));
    Ok(Json(answer))
}

#[derive(Deserialize)]
struct BatchBody {
    batch: Vec<EventBody>,
}

async fn trigger_batch(signed: Signed) -> Result<Json<Value>, ApiError> {
    let body: BatchBody = signed.json()?;
    let max = signed.app.config.max_batch_size;
    if body.batch.len() > max {
        return Err(ApiError::bad_request(format!(
            "At most {max} events per batch"
        )));
    }
    // Every event is checked before any is sent: a batch is published whole or not at all.
    let events = body
        .batch
        .into_iter()
        .map(|e| Event::checked(e, &signed.app))
        .collect::<Result<Vec<_>, _>>()?;
    // As for one event: attributes first, so a 503 sent nothing.
    let answer = if events.iter().all(|e| e.info.is_empty()) {
        json!({})
    } else {
        let mut batch = Vec::with_capacity(events.len());
        for event in &events {
            let channel = &event.channels[0];
            batch.push(event.channel_attributes(&signed.app, channel).await?);
        }
        json!({ "batch": batch })
    };
    let app = &signed.app;
    let mut publishing = app.publishing(app.fanout.room().await);
    events.iter().for_each(|e| e.publish(app, &mut publishing));
    Ok(Json(answer))
}

async fn list_channels(signed: Signed) -> Result<Json<Value>, ApiError> {
    let prefix = signed.param("filter_by_prefix").unwrap_or("");
    let info = signed.info();
    check_info(&info, &["user_count", "subscription_count"])?;
    if info.contains(&"user_count") && !prefix.starts_with("presence-") {
        return Err(ApiError::bad_request(
            "info=user_count needs filter_by_prefix=presence-",
        ));
    }
    let channels: Map<String, Value> = signed
        .app
        .occupied(prefix)
        .await
        .ok_or_else(ApiError::unavailable)?
        .into_iter()
        .map(|summary| {
            let mut attrs = Map::new();
            for attribute in &info {
                let value = match *attribute {
                    "user_count" => summary.occupancy.users,
                    _ => summary.occupancy.subscriptions,
                };
                attrs.insert((*attribute).into(), value.into());
            }
            (summary.name.to_string(), Value::Object(attrs))
        })
        .collect();
    Ok(Json(json!({ "channels": channels })))
}

fn checked_channel(channel: &str) -> Result<ChannelKind, ApiError> {
    validate_name(channel).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(ChannelType::of(channel).kind)
}

pub(crate) async fn channel_info(
    Path((_, channel)): Path<(String, String)>,
    signed: Signed,
) -> Result<Json<Value>, ApiError> {
    let kind = checked_channel(&channel)?;
    let info = signed.info();
    check_info(&info, &["user_count", "subscription_count", "cache"])?;
    if info.contains(&"user_count") && kind != ChannelKind::Presence {
        return Err(ApiError::bad_request(
            "info=user_count is only for presence channels",
        ));
    }
    let app = &signed.app;
    let mut reply = attributes(app, &channel, info.iter().copied()).await?;
    let occupancy = app.occupancy(&channel).await;
    let occupied = occupancy.ok_or_else(ApiError::unavailable)?.subscriptions > 0;
    reply.insert("occupied".into(), occupied.into());
    if info.contains(&"cache") {
        let cluster_wide = match app.cluster() {
            Some(cluster) => cluster.cached(&app.config.id, &channel).await,
            None => None,
        };
        if let Some((cached, ttl)) = cluster_wide.or_else(|| app.channels.cached(&channel)) {
            let event: Value = serde_json::from_str(cached.as_str()).unwrap_or_default();
            let cache =
                json!({ "event": event["event"], "data": event["data"], "ttl": ttl.as_secs() });
            reply.insert("cache".into(), cache);
        }
    }
    Ok(Json(Value::Object(reply)))
}

async fn channel_users(
    Path((_, channel)): Path<(String, String)>,
    signed: Signed,
) -> Result<Json<Value>, ApiError> {
    if checked_channel(&channel)? != ChannelKind::Presence {
        return Err(ApiError::bad_request(
            "Users can only be listed on presence channels",
        ));
    }
    let users: Vec<Value> = signed
        .app
        .user_ids(&channel)
        .await
        .ok_or_else(ApiError::unavailable)?
        .into_iter()
        .map(|id| json!({ "id": id }))
        .collect();
    Ok(Json(json!({ "users": users })))
}

/// Events in a reply when the request does not say (`limit`).
const DEFAULT_HISTORY_LIMIT: usize = 100;

/// `GET channels/{name}/history?after=EPOCH:OFFSET&limit=N`: the channel's position, up to
/// `limit` events after `after` (the newest without it), and whether they are all of them.
pub(crate) async fn channel_history(
    Path((_, channel)): Path<(String, String)>,
    signed: Signed,
) -> Result<Json<Value>, ApiError> {
    checked_channel(&channel)?;
    let limit = match signed.param("limit") {
        None => DEFAULT_HISTORY_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_READ).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit must be a number from 1 to {MAX_READ}"
                )))
            }
        },
    };
    let after = match signed.param("after") {
        None => None,
        Some(text) => Some(
            history::parse_position(text)
                .ok_or_else(|| ApiError::bad_request("after must be a position EPOCH:OFFSET"))?,
        ),
    };
    let app = &signed.app;
    let no_history = || ApiError::new(StatusCode::NOT_FOUND, "The channel has no history");
    let limits = app.history_limits(&channel).ok_or_else(no_history)?;
    let (position, frames, complete) = match app.cluster() {
        Some(cluster) => {
            let snapshot = cluster
                .read_history(
                    &app.config.id,
                    &channel,
                    crate::cluster::history::Read {
                        after,
                        limit,
                        limits,
                        create: false,
                        cache: false,
                    },
                )
                .await
                .map_err(|err| {
                    tracing::warn!(%err, "redis: history not read");
                    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "History is unavailable")
                })?
                .ok_or_else(no_history)?;
            let frames = snapshot
                .events
                .iter()
                .map(|(offset, f)| frame::with_position(f, &snapshot.epoch, *offset))
                .collect();
            let position = history::format_position(&snapshot.epoch, snapshot.last);
            (position, frames, snapshot.complete)
        }
        None => app
            .channels
            .history(&channel, after, limit)
            .ok_or_else(no_history)?,
    };
    let events: Vec<Value> = frames
        .iter()
        .filter_map(|f| serde_json::from_str(f.as_str()).ok())
        .collect();
    Ok(Json(
        json!({ "position": position, "complete": complete, "events": events }),
    ))
}

pub(crate) async fn terminate_connections(
    Path((_, user_id)): Path<(String, String)>,
    signed: Signed,
) -> Result<Json<Value>, ApiError> {
    signed.app.terminate(&user_id, codes::UNAUTHORIZED);
    Ok(Json(json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_id_form() {
        assert!(is_socket_id("123.456"));
        assert!(!is_socket_id("123"));
        assert!(!is_socket_id(".1"));
        assert!(!is_socket_id("1.2.3"));
        assert!(!is_socket_id("a.1"));
    }
}
