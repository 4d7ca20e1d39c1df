//! The operator's console (`overtone serve --console`): one page at `/console`, its files built
//! into the binary (`server/console/`), and its JSON API under `/console/api/`.
//!
//! Owns: the admin-token and origin checks in front of that API, and the last 15 minutes of
//! this node's counters ([`crate::metrics::Totals`], the ones `/metrics` serves), one sample a
//! second; on a cluster each node shares its latest sample in Redis and keeps the sum over
//! every node, so the charts are cluster-wide. What the page shows of an app is read through
//! the same code as the HTTP API (`App`'s cluster-wide queries and the API's own handlers),
//! and its two actions, publishing an event and terminating a user's connections, are the API's
//! handlers themselves: only the signature check is replaced by the admin token.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use overtone_protocol::channel::{ChannelKind, ChannelType};
use redis::AsyncCommands;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http_api::{self, Signed};
use crate::metrics::Totals;
use crate::state::{App, Shared};

const PAGE: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/console.js");
const STYLE: &str = include_str!("../console/console.css");

/// Samples kept: 15 minutes at one a second.
const SAMPLES: usize = 15 * 60;
/// Busiest channels listed per app.
const BUSIEST: usize = 20;
/// Last events of a channel's history shown.
const HISTORY_SHOWN: &str = "20";
/// A node's sample in Redis older than this is a node gone, left out of the sum.
const STALE_SECS: u64 = 5;
/// A node's sample older than this is deleted from Redis.
const FORGOTTEN_SECS: u64 = 60;

/// One second's sample: the counters (summed over the cluster's nodes when `nodes` > 1).
#[derive(Clone, Copy)]
struct Sample {
    time: u64,
    totals: Totals,
    /// Whether this node is subscribed to Redis (None: not a cluster).
    redis: Option<bool>,
    /// Nodes whose counters are in `totals`.
    nodes: usize,
}

#[derive(Clone)]
struct Console {
    shared: Shared,
    series: Arc<Mutex<VecDeque<Sample>>>,
}

/// The console's routes when it is on (an admin token is configured), none otherwise; starts
/// the sampling task, which ends at shutdown.
pub fn routes(shared: &Shared) -> Router<Shared> {
    if shared.config().console_token.is_none() {
        return Router::new();
    }
    let console = Console {
        shared: shared.clone(),
        series: Arc::new(Mutex::new(VecDeque::with_capacity(SAMPLES))),
    };
    tokio::spawn(sample_every_second(console.clone()));
    let api = Router::new()
        .route("/console/api/overview", get(overview))
        .route("/console/api/series", get(series))
        .route("/console/api/apps/{app_id}/channels", get(busiest_channels))
        .route(
            "/console/api/apps/{app_id}/channels/{channel}",
            get(channel_view),
        )
        .route("/console/api/apps/{app_id}/events", post(publish))
        .route(
            "/console/api/apps/{app_id}/users/{user_id}/terminate_connections",
            post(terminate),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            console.clone(),
            admitted,
        ))
        .with_state(console);
    Router::new()
        .route("/console", get(|| file(PAGE, "text/html; charset=utf-8")))
        .route(
            "/console/console.js",
            get(|| file(SCRIPT, "text/javascript; charset=utf-8")),
        )
        .route(
            "/console/console.css",
            get(|| file(STYLE, "text/css; charset=utf-8")),
        )
        .merge(api)
}

/// One of the page's files. The page loads nothing from elsewhere, and no other site may
/// frame it (its buttons act on the server).
async fn file(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; frame-ancestors 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn refused(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// In front of every API route: the admin token as `Authorization: Bearer`, and, from a
/// browser, the console's own page only (its origin is this server's).
async fn admitted(State(console): State<Console>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if !same_origin(headers) {
        return refused(
            StatusCode::FORBIDDEN,
            "The console's API answers the console's own page only",
        );
    }
    let token = console.shared.config().console_token.as_deref();
    if !token.is_some_and(|token| crate::metrics::bears(headers, token)) {
        return refused(
            StatusCode::UNAUTHORIZED,
            "The console needs Authorization: Bearer {admin token}",
        );
    }
    next.run(request).await
}

/// No `Origin` (not a cross-site browser request), or one whose host is the `Host` asked for.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, host)| host);
    matches!((origin_host, host), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn sample_every_second(console: Console) {
    let mut every_second = tokio::time::interval(Duration::from_secs(1));
    every_second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Names this node's sample in Redis.
    let node = format!("{:016x}", fastrand::u64(..));
    loop {
        tokio::select! {
            _ = every_second.tick() => {}
            _ = console.shared.shutdown().cancelled() => return,
        }
        let shared = &console.shared;
        let time = now_secs();
        let own = shared.metrics().totals(shared);
        let sample = match shared.cluster() {
            None => Sample {
                time,
                totals: own,
                redis: None,
                nodes: 1,
            },
            Some(cluster) => {
                let summed = cluster_totals(cluster, &node, time, own).await;
                let (totals, nodes) = summed.unwrap_or((own, 1));
                Sample {
                    time,
                    totals,
                    redis: Some(cluster.is_connected()),
                    nodes,
                }
            }
        };
        let mut series = console.series.lock().unwrap_or_else(|e| e.into_inner());
        if series.len() == SAMPLES {
            series.pop_front();
        }
        series.push_back(sample);
    }
}

/// Shares this node's counters in Redis and sums every live node's: the cluster's counters and
/// how many nodes they are from; None while Redis cannot say.
async fn cluster_totals(
    cluster: &crate::cluster::Cluster,
    node: &str,
    time: u64,
    own: Totals,
) -> Option<(Totals, usize)> {
    let key = cluster.key("", "console-samples");
    let mine = serde_json::to_string(&(time, own)).ok()?;
    let all: Vec<(String, String)> = cluster
        .query(|mut conn| {
            let (key, mine) = (key.clone(), mine.clone());
            async move {
                let ((), (), all): ((), (), Vec<(String, String)>) = redis::pipe()
                    .hset(&key, node, mine)
                    .expire(&key, FORGOTTEN_SECS as i64)
                    .hgetall(&key)
                    .query_async(&mut conn)
                    .await?;
                Ok(all)
            }
        })
        .await?;
    let (mut sum, mut nodes, mut gone) = (Totals::default(), 0, Vec::new());
    for (field, text) in &all {
        match serde_json::from_str::<(u64, Totals)>(text) {
            Ok((at, totals)) if at + STALE_SECS >= time => {
                sum = sum.plus(&totals);
                nodes += 1;
            }
            Ok((at, _)) if at + FORGOTTEN_SECS >= time => {}
            _ => gone.push(field.clone()),
        }
    }
    if !gone.is_empty() {
        // Nodes stopped long ago: their fields would otherwise pile up over restarts.
        let _: Option<()> = cluster
            .query(|mut conn| {
                let (key, gone) = (key.clone(), gone.clone());
                async move { conn.hdel(key, gone).await }
            })
            .await;
    }
    Some((sum, nodes))
}

/// The apps and the cluster's state.
async fn overview(State(console): State<Console>) -> Json<Value> {
    let shared = &console.shared;
    let apps: Vec<Value> = shared
        .apps()
        .map(|app| json!({ "id": app.config.id, "connections": app.connection_count() }))
        .collect();
    let cluster = shared
        .cluster()
        .map(|cluster| json!({ "connected": cluster.is_connected() }));
    Json(json!({ "apps": apps, "cluster": cluster }))
}

#[derive(Deserialize)]
struct After {
    /// Only samples taken after this second (all without it).
    after: Option<u64>,
}

/// The samples, as rows of `fields`, oldest first.
async fn series(
    State(console): State<Console>,
    query: Result<Query<After>, QueryRejection>,
) -> Result<Json<Value>, Response> {
    let Query(query) = query.map_err(|_| {
        refused(
            StatusCode::BAD_REQUEST,
            "after must be a time in seconds since 1970",
        )
    })?;
    let after = query.after.unwrap_or(0);
    let series = console.series.lock().unwrap_or_else(|e| e.into_inner());
    let rows: Vec<Value> = series
        .iter()
        .filter(|s| s.time > after)
        .map(|s| {
            let t = &s.totals;
            json!([
                s.time,
                t.connections,
                t.frames_in,
                t.frames_out,
                t.api_requests,
                t.api_errors,
                t.webhooks_delivered,
                t.webhooks_failed,
                t.relayed,
                t.relay_micros,
                s.redis,
                s.nodes
            ])
        })
        .collect();
    Ok(Json(json!({
        "fields": [
            "time", "connections", "frames_in", "frames_out", "api_requests", "api_errors",
            "webhooks_delivered", "webhooks_failed", "relayed", "relay_micros", "redis", "nodes"
        ],
        "samples": rows,
    })))
}

/// The app a `/console/api/apps/{app_id}/...` request is about.
struct AppOf(Arc<App>);

impl FromRequestParts<Console> for AppOf {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        let app_id = parts
            .uri
            .path()
            .strip_prefix("/console/api/apps/")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("");
        match console.shared.app_by_id(app_id) {
            Some(app) => Ok(AppOf(app.clone())),
            None => Err(refused(StatusCode::NOT_FOUND, "Unknown app id")),
        }
    }
}

fn unavailable() -> Response {
    refused(
        StatusCode::SERVICE_UNAVAILABLE,
        "Cluster-wide channel data is unavailable (Redis away or just back); retry shortly",
    )
}

/// The app's occupied channels with the most subscribers, cluster-wide.
async fn busiest_channels(AppOf(app): AppOf) -> Result<Json<Value>, Response> {
    let mut channels = app.occupied("").await.ok_or_else(unavailable)?;
    channels.sort_by(|a, b| {
        (b.occupancy.subscriptions, &a.name).cmp(&(a.occupancy.subscriptions, &b.name))
    });
    let total = channels.len();
    let busiest: Vec<Value> = channels
        .iter()
        .take(BUSIEST)
        .map(|c| {
            json!({
                "name": &*c.name,
                "subscriptions": c.occupancy.subscriptions,
                "users": c.occupancy.users,
            })
        })
        .collect();
    Ok(Json(json!({ "occupied": total, "channels": busiest })))
}

/// One channel: what `GET /channels/{name}?info=...` says (subscribers, members, cache), its
/// presence members with their user info, and its last events if it keeps history.
async fn channel_view(
    AppOf(app): AppOf,
    Path((app_id, channel)): Path<(String, String)>,
) -> Result<Json<Value>, Response> {
    let presence = ChannelType::of(&channel).kind == ChannelKind::Presence;
    let info = if presence {
        "subscription_count,user_count,cache"
    } else {
        "subscription_count,cache"
    };
    let ask = |params: &[(&str, &str)]| {
        let params = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Signed::trusted(app.clone(), params, Bytes::new())
    };
    let path = || Path((app_id.clone(), channel.clone()));
    let Json(info) = http_api::channel_info(path(), ask(&[("info", info)]))
        .await
        .map_err(IntoResponse::into_response)?;
    let history = match app.history_limits(&channel) {
        Some(_) => {
            let read = http_api::channel_history(path(), ask(&[("limit", HISTORY_SHOWN)])).await;
            match read.map_err(IntoResponse::into_response) {
                Ok(Json(history)) => Some(history),
                // A channel that may keep history but has published nothing yet.
                Err(refusal) if refusal.status() == StatusCode::NOT_FOUND => {
                    Some(json!({ "events": [] }))
                }
                Err(refusal) => return Err(refusal),
            }
        }
        None => None,
    };
    let members = if presence {
        Some(members(&app, &channel).await.ok_or_else(unavailable)?)
    } else {
        None
    };
    Ok(Json(
        json!({ "info": info, "members": members, "history": history }),
    ))
}

/// A presence channel's members cluster-wide, each `{id, info}`.
async fn members(app: &App, channel: &str) -> Option<Vec<Value>> {
    let by_user: Vec<(String, Value)> = match app.cluster() {
        Some(cluster) => {
            let id = &app.config.id;
            let found = cluster
                .query(|mut conn| async move { cluster.members(&mut conn, id, channel).await })
                .await?;
            found
                .into_iter()
                .map(|(user, info)| (user, serde_json::from_str(&info).unwrap_or(Value::Null)))
                .collect()
        }
        None => {
            let data: Value =
                serde_json::from_str(&app.channels.local_presence_data(channel)).ok()?;
            let hash = data["presence"]["hash"].as_object()?.clone();
            hash.into_iter().collect()
        }
    };
    Some(
        by_user
            .into_iter()
            .map(|(id, info)| json!({ "id": id, "info": info }))
            .collect(),
    )
}

/// `POST /apps/{app_id}/events`'s handler, with the console's body (`{channel, name, data}`).
async fn publish(AppOf(app): AppOf, body: Bytes) -> Result<Json<Value>, Response> {
    http_api::trigger_event(Signed::trusted(app, Vec::new(), body))
        .await
        .map_err(IntoResponse::into_response)
}

/// `POST /apps/{app_id}/users/{user_id}/terminate_connections`'s handler.
async fn terminate(
    AppOf(app): AppOf,
    Path((app_id, user_id)): Path<(String, String)>,
) -> Result<Json<Value>, Response> {
    let signed = Signed::trusted(app, Vec::new(), Bytes::new());
    http_api::terminate_connections(Path((app_id, user_id)), signed)
        .await
        .map_err(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn only_the_servers_own_origin_is_admitted() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.test")
        ])));
        assert!(!same_origin(&headers(&[(
            "origin",
            "http://127.0.0.1:8080"
        )])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null")
        ])));
    }
}
