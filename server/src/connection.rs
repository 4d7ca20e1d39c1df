//! One WebSocket connection at `/app/{key}`: the handshake checks (app key, enabled, origin,
//! connection quota), the read loop that interprets client frames (subscribe, unsubscribe,
//! sign-in, client events, pings), the writer task that writes what the connection's
//! [`Wire`] could not write at once (its bounded queue), keepalive, and the close codes
//! pusher-js acts on.
//!
//! Backpressure: frames are written straight to the socket while nothing waits; the queue
//! behind it is shared by what is published to the connection and the replies to its own
//! requests. Published frames never wait: a queue that fills is a slow reader (4100).
//! Replies wait instead: the read loop reads the next client frame only while
//! [`REPLY_ROOM`] of the queue is free, so a burst of requests (pusher-js subscribes to every
//! channel at once on each reconnect) is read as fast as the client takes the replies.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use overtone_protocol::channel::{validate_name, ChannelKind, ChannelType, SERVER_TO_USER_PREFIX};
use overtone_protocol::{codes, PROTOCOL_VERSION};
use tokio::sync::{mpsc, Notify};
use tokio::time::{sleep_until, Instant};
use tungstenite::protocol::{Message, WebSocketConfig};

use crate::auth;
use crate::channels::{Closer, ConnectionHandle, HistoryMode, SubscribeError};
use crate::cluster::history::{release_of, Read};
use crate::frame::{self, ClientFrame, SigninData, SubscribeData, UnsubscribeData};
use crate::history::{self, Limits};
use crate::presence::Member;
use crate::reads;
use crate::state::{Admission, App, Shared};
use crate::user_status;
use crate::users::MAX_WATCHLIST;
use crate::webhooks;
use crate::wire::{self, Reader, Sink, Socket, Wire};

/// Frames queued for one connection before it counts as a slow reader (closed with 4100).
const OUTBOX_CAPACITY: usize = 2048;
/// Free queue the read loop needs before it reads a client frame: room for every reply one
/// frame can cause (a resume replays up to [`history::MAX_READ`] events, plus a few frames).
const REPLY_ROOM: usize = 1024;
const _: () = assert!(history::MAX_READ + 16 <= REPLY_ROOM && REPLY_ROOM < OUTBOX_CAPACITY);
/// Largest frame a client may send; a larger one closes the connection with 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Most channels one connection may be subscribed to at once.
const MAX_SUBSCRIPTIONS: usize = 5_000;
/// Most queued frames written to the socket before one flush.
const WRITE_BURST: usize = 64;
/// How long a connection the server closes waits for the client's answering close frame.
const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// tungstenite's read buffer per connection. Its default (128 KiB) is zero-filled up to capacity
/// on the first read, so every idle connection would hold 128 KiB; client frames are small
/// (a larger one grows the buffer as far as [`MAX_FRAME_BYTES`]).
const READ_BUFFER_BYTES: usize = 4096;
/// WebSocket close codes for a broken frame and for one larger than the server accepts.
const PROTOCOL_ERROR: u16 = 1002;
const MESSAGE_TOO_BIG: u16 = 1009;

pub fn routes() -> Router<Shared> {
    Router::new().route("/app/{key}", get(upgrade))
}

async fn upgrade(
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
    State(shared): State<Shared>,
    mut request: Request,
) -> Response {
    let (response, upgrading) = match wire::accept(&mut request) {
        Ok(accepted) => accepted,
        Err(refusal) => return refusal.into_response(),
    };
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(String::from);
    let protocol_supported = supports_protocol(query.as_deref());
    tokio::spawn(async move {
        let socket = match upgrading.await {
            Ok(upgraded) => Socket::new(upgraded),
            Err(err) => return tracing::debug!(%err, "upgrade failed"),
        };
        // pusher-js learns why only from a close code, so every refusal happens after the
        // upgrade.
        if !protocol_supported {
            return refuse(
                socket,
                codes::UNSUPPORTED_PROTOCOL,
                "Unsupported protocol version",
            )
            .await;
        }
        let Some(app) = shared.app_by_key(&key).cloned() else {
            return refuse(socket, codes::APP_NOT_FOUND, "App key not found").await;
        };
        if !app.config.enabled {
            return refuse(socket, codes::APP_DISABLED, "App is disabled").await;
        }
        if origin
            .as_deref()
            .is_some_and(|o| !app.config.allows_origin(o))
        {
            return refuse(socket, codes::UNAUTHORIZED, "Origin not allowed").await;
        }
        match app.admit() {
            Some(admission) => Connection::run(shared, app, admission, socket).await,
            None => {
                refuse(
                    socket,
                    codes::OVER_CONNECTION_QUOTA,
                    "Over the app's connection quota",
                )
                .await
            }
        }
    });
    response
}

/// Whether the `?protocol=` the client asked for is one this server speaks (5 to 7; clients
/// that do not say are let in).
fn supports_protocol(query: Option<&str>) -> bool {
    let asked =
        form_urlencoded::parse(query.unwrap_or("").as_bytes()).find(|(k, _)| k == "protocol");
    asked.is_none_or(|(_, v)| {
        v.parse::<u32>()
            .is_ok_and(|v| (5..=PROTOCOL_VERSION).contains(&v))
    })
}

/// Sends the error frame pusher-js expects, then closes with the same code.
async fn refuse(socket: Socket, code: u16, reason: &'static str) {
    tracing::debug!(code, reason, "connection refused");
    let mut bytes = Vec::new();
    wire::encode(
        &mut bytes,
        wire::TEXT,
        frame::error(Some(code), reason).as_bytes(),
    );
    wire::encode_close(&mut bytes, code, reason);
    socket.write_and_drop(&bytes).await;
}

/// How client frames are read: a 4 KiB read buffer and the frame size limit.
fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES))
}

/// A user signed in with `pusher:signin`.
struct SignedIn {
    id: Arc<str>,
    user_data: String,
    /// The user ids this connection is told about when they come online or go offline.
    watchlist: Vec<Arc<str>>,
}

/// The `watchlist` of a sign-in's `user_data` (none when absent).
fn watchlist_of(user_data: &str) -> Result<Vec<Arc<str>>, &'static str> {
    #[derive(serde::Deserialize)]
    struct WithWatchlist {
        #[serde(default)]
        watchlist: Vec<String>,
    }
    let parsed: WithWatchlist = serde_json::from_str(user_data)
        .map_err(|_| "user_data watchlist must be an array of user ids")?;
    if parsed.watchlist.len() > MAX_WATCHLIST {
        return Err("user_data watchlist has more than 100 user ids");
    }
    Ok(parsed.watchlist.into_iter().map(Arc::from).collect())
}

/// Client events allowed per one-second window.
struct RateWindow {
    started: Instant,
    used: u32,
}

impl RateWindow {
    fn allow(&mut self, per_second: u32) -> bool {
        if self.started.elapsed() >= Duration::from_secs(1) {
            self.started = Instant::now();
            self.used = 0;
        }
        self.used = self.used.saturating_add(1);
        self.used <= per_second
    }
}

/// One client's session: its identity, its subscriptions and how to reach it.
struct Connection {
    shared: Shared,
    app: Arc<App>,
    handle: ConnectionHandle,
    /// Channel -> the presence user id this connection joined it as.
    subscriptions: HashMap<String, Option<Arc<str>>>,
    user: Option<SignedIn>,
    client_events: RateWindow,
}

impl Connection {
    async fn run(shared: Shared, app: Arc<App>, admission: Admission, socket: Socket) {
        let socket_id = shared.next_socket_id();
        let (outbox, queued) = mpsc::channel(OUTBOX_CAPACITY);
        let closer = Arc::new(Closer::default());
        let (mut stream, sink, wire) = socket.split(websocket_config(), shared.clone());
        let handle = ConnectionHandle::new(socket_id.clone(), outbox, closer.clone())
            .with_wire(wire.clone());
        let activity_timeout = shared.config().activity_timeout;
        handle.send(frame::connection_established(
            socket_id.as_str(),
            activity_timeout.as_secs(),
        ));
        tracing::debug!(socket_id = socket_id.as_str(), app = %app.config.id, "connected");

        let drained = Arc::new(Notify::new());
        let mut writer = tokio::spawn(write_loop(
            sink,
            wire,
            queued,
            closer.clone(),
            drained.clone(),
            shared.clone(),
        ));
        let mut conn = Connection {
            shared,
            app,
            handle,
            subscriptions: HashMap::new(),
            user: None,
            client_events: RateWindow {
                started: Instant::now(),
                used: 0,
            },
        };
        let closed_by_server = conn
            .read_loop(&mut stream, &closer, &drained, activity_timeout)
            .await;
        conn.leave_all();
        drop(conn);
        if closed_by_server {
            // The WebSocket closing handshake: let the client answer our close frame before
            // the TCP connection goes, so it sees a clean close with our code.
            let answered = async {
                while let Some(Ok(message)) = stream.next().await {
                    if let Message::Close(_) = message {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(CLOSE_HANDSHAKE_TIMEOUT, answered).await;
        }
        // The writer ends once the close frame is out; a client that stopped reading does not
        // get to hold the connection open.
        if tokio::time::timeout(CLOSE_HANDSHAKE_TIMEOUT, &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
        tracing::debug!(socket_id = socket_id.as_str(), "disconnected");
        // Counted (against the quota, and by shutdown waiting for connections to close) until
        // the close is sent.
        drop(admission);
    }

    /// Reads until the client leaves, the server shuts down, someone asks this connection to
    /// close, or it goes stale: silent for twice the activity timeout, pinged, and silent for
    /// one more activity timeout (4201). Returns whether the server (not the client) ended it.
    /// Reads only while the queue has [`REPLY_ROOM`]; else waits for the writer (`drained`).
    async fn read_loop(
        &mut self,
        stream: &mut Reader,
        closer: &Closer,
        drained: &Notify,
        activity_timeout: Duration,
    ) -> bool {
        // Every future here is created once per connection, not once per frame: the shutdown
        // token is shared by all connections, and registering with it takes its lock.
        let shutdown = self.shared.shutdown().clone();
        let cancelled = shutdown.cancelled();
        let closed = closer.closed();
        let idle_limit = activity_timeout * 2;
        let mut last_seen = Instant::now();
        let timer = sleep_until(last_seen + idle_limit);
        tokio::pin!(cancelled, closed, timer);
        let mut pinged = false;
        let closed_by_server = loop {
            let room = self.handle.room() >= REPLY_ROOM;
            tokio::select! {
                _ = drained.notified(), if !room => {}
                message = stream.next(), if room => {
                    let message = match message {
                        Some(Ok(message)) => message,
                        Some(Err(err)) => {
                            tracing::debug!(socket_id = self.handle.socket_id.as_str(), %err, "read failed");
                            closer.close(close_code_for(err));
                            break false;
                        }
                        None => break false,
                    };
                    // The timer is not moved on every frame; it checks `last_seen` when it fires.
                    last_seen = Instant::now();
                    pinged = false;
                    match message {
                        Message::Text(text) => {
                            self.shared.metrics().received(text.len());
                            self.on_text(text.as_str())
                        }
                        Message::Binary(_) => self.invalid(None, "Binary frames are not part of the protocol"),
                        Message::Close(_) => break false,
                        // tungstenite answers control pings itself (through the wire).
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                    }
                }
                _ = &mut timer => {
                    let quiet_until = last_seen + idle_limit;
                    if pinged {
                        closer.close(codes::PONG_NOT_RECEIVED);
                        break true;
                    } else if Instant::now() < quiet_until {
                        timer.as_mut().reset(quiet_until);
                    } else {
                        pinged = true;
                        timer.as_mut().reset(Instant::now() + activity_timeout);
                        self.handle.send(frame::ping());
                    }
                }
                _ = &mut closed => break true,
                _ = &mut cancelled => {
                    closer.close(codes::GENERIC_RECONNECT);
                    break true;
                }
            }
        };
        // Whatever ended the loop, make sure the writer sends a close and stops.
        closer.close(1000);
        closed_by_server
    }

    fn on_text(&mut self, text: &str) {
        let Ok(frame) = ClientFrame::parse(text) else {
            return self.invalid(Some(codes::GENERIC_RECONNECT), "Invalid message format");
        };
        match &*frame.event {
            "pusher:ping" => {
                self.handle.send(frame::pong());
            }
            "pusher:pong" => {}
            "pusher:subscribe" => match parse_data::<SubscribeData>(&frame) {
                Some(data) => self.subscribe(data),
                None => self.invalid(
                    None,
                    "pusher:subscribe needs data {channel, auth?, channel_data?}",
                ),
            },
            "pusher:unsubscribe" => match parse_data::<UnsubscribeData>(&frame) {
                Some(data) => self.unsubscribe(&data.channel),
                None => self.invalid(None, "pusher:unsubscribe needs data {channel}"),
            },
            "pusher:signin" => match parse_data::<SigninData>(&frame) {
                Some(data) => self.signin(data),
                None => self.invalid(None, "pusher:signin needs data {auth, user_data}"),
            },
            "overtone:read" => self.read(&frame),
            "overtone:status" => self.status(&frame),
            event if event.starts_with("client-") => self.client_event(&frame),
            _ => self.invalid(None, "Unknown event"),
        }
    }

    /// Answers a frame the server will not act on with `pusher:error`; the connection stays.
    fn invalid(&self, code: Option<u16>, message: &str) {
        tracing::debug!(
            socket_id = self.handle.socket_id.as_str(),
            message,
            "refused a client frame"
        );
        self.shared.metrics().error(code);
        self.handle.send(frame::error(code, message));
    }

    fn subscription_error(&self, channel: &str, kind: &str, error: &str, status: u16) {
        tracing::debug!(
            socket_id = self.handle.socket_id.as_str(),
            channel,
            error,
            "subscription refused"
        );
        self.handle
            .send(frame::subscription_error(channel, kind, error, status));
    }

    fn subscribe(&mut self, data: SubscribeData) {
        let channel = data.channel.clone();
        if let Err(err) = validate_name(&channel) {
            return self.subscription_error(&channel, "InvalidChannel", &err.to_string(), 400);
        }
        if self.subscriptions.contains_key(&channel) {
            if self.is_subscribed(&channel) {
                return self.invalid(None, &format!("Already subscribed to {channel}"));
            }
            // The cluster refused it after the fact (its member limit): forget it, try again.
            self.subscriptions.remove(&channel);
        }
        if self.subscriptions.len() >= MAX_SUBSCRIPTIONS {
            return self.subscription_error(
                &channel,
                "LimitReached",
                "Too many subscriptions on one connection",
                400,
            );
        }
        let kind = ChannelType::of(&channel).kind;
        let member = match self.authorize(&channel, kind, &data) {
            Ok(member) => member,
            Err(error) => return self.subscription_error(&channel, "AuthError", &error, 401),
        };
        // A position that is not a string is as unrecoverable as a malformed one.
        let resume = data
            .position
            .as_ref()
            .map(|p| p.as_str().unwrap_or("").to_owned());
        let limits = self.app.history_limits(&channel);
        let cache = ChannelType::of(&channel).cache;
        let clustered = self.app.is_clustered();
        // On a cluster, held subscribers are released once this node receives the channel
        // from Redis and its history was read: by `cluster::presence` on presence channels (it
        // knows the members), else below.
        let mode = if clustered && kind == ChannelKind::Presence && limits.is_none() {
            HistoryMode::Off
        } else if clustered {
            HistoryMode::Held {
                id: fastrand::u64(..),
            }
        } else if let Some(limits) = limits {
            HistoryMode::Local {
                limits,
                resume: resume.as_deref(),
            }
        } else {
            HistoryMode::Off
        };
        let config = &self.app.config;
        match self.app.channels.subscribe_with(
            &channel,
            &self.handle,
            member.as_ref(),
            config.max_presence_members,
            mode,
        ) {
            Ok(change) => {
                let held = match mode {
                    HistoryMode::Held { id } => Some(id),
                    _ => None,
                };
                let presence_hold = match (held, limits, kind) {
                    (Some(id), Some(limits), ChannelKind::Presence) => {
                        Some(crate::cluster::presence::Hold {
                            id,
                            limits,
                            resume: resume.clone(),
                        })
                    }
                    _ => None,
                };
                if let (Some(id), None) = (held, &presence_hold) {
                    self.release_later(&channel, id, limits, resume, cache);
                }
                // Confirmed already, unless held or a cluster's presence (confirmed later).
                if held.is_none() && !(clustered && member.is_some()) {
                    self.app.confirmed(&channel, &self.handle);
                }
                self.shared
                    .metrics()
                    .resumed(change.recovered, change.replayed);
                self.announce_count(&channel, kind);
                self.app.subscriptions_changed(&channel);
                if let Some(member) = &member {
                    self.app.presence_joined(
                        &channel,
                        member,
                        &self.handle,
                        change.member,
                        presence_hold,
                    );
                }
                let user_id = member.map(|m| m.user_id);
                webhooks::subscribed(&self.app, &channel, change, user_id.as_deref());
                self.subscriptions.insert(channel, user_id);
            }
            Err(SubscribeError::AlreadySubscribed) => {
                self.invalid(None, &format!("Already subscribed to {channel}"))
            }
            Err(SubscribeError::MemberLimit) => {
                tracing::debug!(
                    socket_id = self.handle.socket_id.as_str(),
                    channel,
                    "subscription refused: presence member limit"
                );
                let max = config.max_presence_members;
                self.handle.send(frame::member_limit(&channel, max));
            }
        }
    }

    /// On a cluster: waits for this node's subscription to the channel, reads its history (and
    /// a cache channel's last event) from Redis without holding up this connection, then
    /// releases the held subscriber.
    fn release_later(
        &self,
        channel: &str,
        hold_id: u64,
        limits: Option<Limits>,
        resume: Option<String>,
        cache: bool,
    ) {
        let (app, shared) = (self.app.clone(), self.shared.clone());
        let (channel, conn) = (channel.to_owned(), self.handle.clone());
        tokio::spawn(async move {
            let Some(cluster) = app.cluster().cloned() else {
                return;
            };
            let after = resume.as_deref().and_then(history::parse_position);
            let read_limits = limits.unwrap_or(Limits {
                max_events: 0,
                max_age: crate::channels::CACHE_TTL,
            });
            cluster.watch(&app.config.id, &channel).await;
            let read = if limits.is_none() && !cache {
                Ok(None)
            } else {
                cluster
                    .read_history(
                        &app.config.id,
                        &channel,
                        Read {
                            after,
                            limit: read_limits.max_events.max(1),
                            limits: read_limits,
                            create: limits.is_some(),
                            cache,
                        },
                    )
                    .await
            };
            let release = release_of(read, &channel, limits, resume.as_deref(), cache, "{}");
            if let Some(released) =
                app.channels
                    .release(&channel, &conn.socket_id, hold_id, release)
            {
                app.confirmed(&channel, &conn);
                shared
                    .metrics()
                    .resumed(released.recovered, released.replayed);
                if released.cache_miss {
                    webhooks::cache_missed(&app, &channel);
                }
            }
        });
    }

    /// Checks the right to subscribe; on presence channels, returns who joins.
    fn authorize(
        &self,
        channel: &str,
        kind: ChannelKind,
        data: &SubscribeData,
    ) -> Result<Option<Member>, String> {
        let socket_id = self.handle.socket_id.as_str();
        let config = &self.app.config;
        match kind {
            ChannelKind::Public => Ok(None),
            ChannelKind::ServerToUser => match &self.user {
                Some(user) if channel[SERVER_TO_USER_PREFIX.len()..] == *user.id => Ok(None),
                _ => Err("Only the signed-in user may subscribe to their own channel".into()),
            },
            ChannelKind::Private | ChannelKind::PrivateEncrypted | ChannelKind::Presence => {
                let channel_data = data.channel_data.as_deref();
                if !auth::subscription_is_signed(
                    config,
                    socket_id,
                    channel,
                    channel_data,
                    data.auth.as_deref(),
                ) {
                    return Err("Invalid signature".into());
                }
                if kind != ChannelKind::Presence {
                    return Ok(None);
                }
                // Without channel_data, a signed-in user joins as themselves.
                let member = match (channel_data, &self.user) {
                    (Some(json), _) => Member::from_channel_data(json, config.max_user_info_bytes),
                    (None, Some(user)) => {
                        Member::from_user_data(&user.user_data, config.max_user_info_bytes)
                    }
                    (None, None) => {
                        Err("Presence channels need channel_data or a signed-in user".into())
                    }
                };
                member.map(Some)
            }
        }
    }

    /// Sends `pusher_internal:subscription_count` if the app wants it (never on presence). On
    /// a cluster the count is the cluster's, announced by [`crate::cluster::counts`].
    fn announce_count(&self, channel: &str, kind: ChannelKind) {
        let alone = !self.app.is_clustered();
        if alone && self.app.config.subscription_count && kind != ChannelKind::Presence {
            self.app.channels.announce_count(channel, None);
        }
    }

    fn unsubscribe(&mut self, channel: &str) {
        match self.subscriptions.remove(channel) {
            Some(user_id) => self.leave(channel, user_id.as_deref(), false),
            None => self.invalid(None, &format!("Not subscribed to {channel}")),
        }
    }

    /// Leaves a channel this connection joined (as `user_id` on presence channels); `closed`:
    /// because the connection closed, which the app's presence grace may not count yet.
    fn leave(&self, channel: &str, user_id: Option<&str>, closed: bool) {
        let socket_id = &self.handle.socket_id;
        let grace = self.app.config.presence_grace_ms;
        // A node shutting down sees none of its connections come back: they leave at once.
        let linger = closed && grace > 0 && !self.shared.shutdown().is_cancelled();
        if let Some(change) = self.app.channels.unsubscribe(channel, socket_id, linger) {
            if let (true, Some(user_id)) = (linger, user_id) {
                self.app
                    .depart_after(channel, user_id, Duration::from_millis(grace));
            }
            self.announce_count(channel, ChannelType::of(channel).kind);
            self.app.subscriptions_changed(channel);
            if let (true, Some(user_id)) = (change.member, user_id) {
                self.app.presence_left(channel, user_id);
                user_status::left(&self.app, channel, user_id);
            }
            webhooks::unsubscribed(&self.app, channel, change, user_id);
        }
    }

    fn signin(&mut self, data: SigninData) {
        let socket_id = self.handle.socket_id.as_str();
        if !auth::signin_is_signed(&self.app.config, socket_id, &data.user_data, &data.auth) {
            return self.invalid(Some(codes::UNAUTHORIZED), "Invalid signin signature");
        }
        let member =
            match Member::from_user_data(&data.user_data, self.app.config.max_user_info_bytes) {
                Ok(member) => member,
                Err(error) => return self.invalid(Some(codes::UNAUTHORIZED), &error),
            };
        let watchlist = match watchlist_of(&data.user_data) {
            Ok(watchlist) => watchlist,
            Err(error) => return self.invalid(Some(codes::UNAUTHORIZED), error),
        };
        self.sign_out();
        let success = frame::signin_success(&data.user_data);
        self.app
            .sign_in(&member.user_id, &self.handle, &watchlist, success);
        self.user = Some(SignedIn {
            id: member.user_id,
            user_data: data.user_data,
            watchlist,
        });
    }

    /// Forgets the signed-in user, leaving their server-to-user channel.
    fn sign_out(&mut self) {
        if let Some(user) = self.user.take() {
            let last = self
                .app
                .users
                .sign_out(&user.id, &self.handle.socket_id, &user.watchlist);
            if last {
                self.app.signed_out(&user.id);
            }
            let own_channel = format!("{SERVER_TO_USER_PREFIX}{}", user.id);
            if self.subscriptions.remove(&own_channel).is_some() {
                self.leave(&own_channel, None, false);
            }
        }
    }

    fn client_event(&mut self, frame: &ClientFrame<'_>) {
        let config = &self.app.config;
        if !config.client_events {
            return self.invalid(None, "Client events are disabled for this app");
        }
        let Some(channel) = frame.channel.as_deref() else {
            return self.invalid(None, "Client events need a channel");
        };
        if !ChannelType::of(channel).allows_client_events() {
            return self.invalid(
                None,
                "Client events are only allowed on private and presence channels",
            );
        }
        let subscribed = self.is_subscribed(channel);
        let Some(user_id) = self.subscriptions.get(channel).filter(|_| subscribed) else {
            return self.invalid(
                None,
                "Subscribe to the channel before sending client events",
            );
        };
        let data = frame.data.map_or("null", |d| d.get());
        if data.len() > config.max_event_bytes {
            return self.invalid(None, "Client event data is too large");
        }
        if !self
            .client_events
            .allow(config.max_client_events_per_second)
        {
            return self.invalid(
                Some(codes::CLIENT_EVENT_RATE_LIMIT),
                "Client event rate limit reached",
            );
        }
        let user_id = user_id.as_deref();
        let out = frame::channel_event(channel, &frame.event, data, user_id);
        let socket_id = &self.handle.socket_id;
        // Client events get no position and are never stored.
        self.app.relay(channel, &out, Some(socket_id));
        webhooks::client_event(&self.app, channel, &frame.event, data, socket_id, user_id);
    }

    /// `overtone:read`: stores the read marker of this connection's user on a private or
    /// presence channel it is subscribed to.
    fn read(&mut self, frame: &ClientFrame<'_>) {
        let Some(data) = parse_data::<reads::ClientRead>(frame) else {
            return self.invalid(None, "overtone:read needs data {channel, up_to} (strings)");
        };
        let channel = &data.channel;
        if !reads::allowed_on(channel) {
            return self.invalid(
                None,
                "overtone:read is only allowed on private and presence channels",
            );
        }
        if !self.is_subscribed(channel) {
            return self.invalid(
                None,
                &format!("Subscribe to {channel} before overtone:read"),
            );
        }
        let user = self.user.as_ref().map(|u| u.id.clone());
        let Some(user_id) = user.or_else(|| self.subscriptions.get(channel).cloned().flatten())
        else {
            return self.invalid(
                None,
                "overtone:read on a private channel needs a signed-in user (pusher:signin)",
            );
        };
        if let Err(error) = reads::check(channel, &user_id, &data.up_to) {
            return self.invalid(None, &error);
        }
        reads::record(&self.app, channel, &user_id, &data.up_to);
    }

    /// `overtone:status`: sets the status of this connection's user (signed in, else the
    /// one member id it joined its presence channels as).
    fn status(&mut self, frame: &ClientFrame<'_>) {
        let update = match user_status::Update::parse(frame.data.map_or("null", |d| d.get())) {
            Ok(update) => update,
            Err(error) => return self.invalid(None, &error),
        };
        let user = match &self.user {
            Some(user) => Some(user.id.clone()),
            None => {
                let mut ids = self.subscriptions.values().flatten();
                let first = ids.next().cloned();
                if ids.any(|id| Some(id) != first.as_ref()) {
                    return self.invalid(
                        None,
                        "overtone:status: this connection joined presence channels as several users; sign in",
                    );
                }
                first
            }
        };
        let Some(user_id) = user else {
            return self.invalid(
                None,
                "overtone:status needs a signed-in user (pusher:signin) or a presence channel",
            );
        };
        // Each status change reaches every presence channel of the user (on a cluster, after
        // a Redis query): it counts against the client-event rate limit.
        if !self
            .client_events
            .allow(self.app.config.max_client_events_per_second)
        {
            return self.invalid(
                Some(codes::CLIENT_EVENT_RATE_LIMIT),
                "overtone:status rate limit reached",
            );
        }
        user_status::set(&self.app, &user_id, update);
    }

    /// Whether this connection is subscribed to `channel`. On a cluster the registry has the
    /// last word: a presence join the cluster refused (over `max_presence_members`) is taken
    /// out of the registry by the presence task, but stays in `subscriptions` until noticed.
    fn is_subscribed(&self, channel: &str) -> bool {
        self.subscriptions.contains_key(channel)
            && (!self.app.is_clustered()
                || self
                    .app
                    .channels
                    .is_subscribed(channel, &self.handle.socket_id))
    }

    fn leave_all(&mut self) {
        self.sign_out();
        for (channel, user_id) in std::mem::take(&mut self.subscriptions) {
            self.leave(&channel, user_id.as_deref(), true);
        }
    }
}

/// The close code that tells the client why reading its frames failed.
fn close_code_for(err: tungstenite::Error) -> u16 {
    use tungstenite::error::Error;
    match err {
        Error::Capacity(_) => MESSAGE_TOO_BIG,
        Error::Protocol(_) | Error::Utf8(_) => PROTOCOL_ERROR,
        // Pongs piling up for a client that does not read them.
        Error::WriteBufferFull(_) => codes::OVER_CAPACITY,
        _ => 1000,
    }
}

fn parse_data<T: serde::de::DeserializeOwned>(frame: &ClientFrame<'_>) -> Option<T> {
    let raw = frame.data?.get();
    // pusher-js sends an object; some clients send the object as a JSON string.
    serde_json::from_str::<T>(raw).ok().or_else(|| {
        let inner: String = serde_json::from_str(raw).ok()?;
        serde_json::from_str(&inner).ok()
    })
}

/// What the writer task wakes up for.
enum Next {
    /// The socket is its to write: a queued frame, or pending bytes ([`Wire::next_burst`]).
    Write(Option<Utf8Bytes>),
    Close(u16),
}

/// Writes what the [`Wire`] leaves to it (frames queued behind a socket that did not take
/// them at once, the rest of a half-written frame, pongs) until a close is asked for, then
/// sends the close. Tells the read loop after each burst written (`drained`), in case it waits
/// for room.
async fn write_loop(
    mut sink: Sink,
    wire: Arc<Wire>,
    mut queued: mpsc::Receiver<Utf8Bytes>,
    closer: Arc<Closer>,
    drained: Arc<Notify>,
    shared: Shared,
) {
    let code = loop {
        // A close asked for goes ahead of queued frames (a slow reader's 4100 must not wait
        // behind its 2,048 queued frames). One atomic load per wakeup.
        let next = std::future::poll_fn(|cx| {
            if let Some(code) = closer.code() {
                return Poll::Ready(Next::Close(code));
            }
            match queued.poll_recv(cx) {
                Poll::Ready(Some(frame)) => Poll::Ready(Next::Write(Some(frame))),
                Poll::Ready(None) => Poll::Ready(Next::Close(1000)),
                Poll::Pending if wire.poll_pending(cx) => Poll::Ready(Next::Write(None)),
                Poll::Pending => match closer.poll_code(cx) {
                    Some(code) => Poll::Ready(Next::Close(code)),
                    None => Poll::Pending,
                },
            }
        })
        .await;
        let mut first = match next {
            Next::Close(code) => break code,
            Next::Write(first) => first,
        };
        // The socket is the writer's until it finds nothing left; the buffer is dropped then,
        // so a connection that once fell behind does not keep a burst's worth of memory.
        let mut burst = Vec::new();
        while closer.code().is_none() {
            let (frames, bytes) =
                wire.next_burst(first.take(), &mut queued, WRITE_BURST, &mut burst);
            if burst.is_empty() {
                break;
            }
            if sink.write_all(&wire, &burst).await.is_err() {
                // The socket is gone: stop the read loop too, even one waiting for room.
                closer.close(1000);
                return;
            }
            burst.clear();
            // Counted once per burst: the counters are shared by every worker thread.
            shared.metrics().sent(frames, bytes);
            drained.notify_one();
        }
    };
    // Whatever a direct write left half done goes first, so the close lands on a frame boundary.
    let mut last = wire.closing();
    let reason = close_reason(code);
    if code == codes::GENERIC_RECONNECT {
        // Shutdown: as the hosted service does, say so in a frame too, for clients (Pysher)
        // that act on `pusher:error` and not on close codes.
        shared.metrics().error(Some(code));
        wire::encode(
            &mut last,
            wire::TEXT,
            frame::error(Some(code), reason).as_bytes(),
        );
    }
    wire::encode_close(&mut last, code, reason);
    let _ = sink.write_all(&wire, &last).await;
}

/// What pusher-js reports as the message of a close it did not ask for.
fn close_reason(code: u16) -> &'static str {
    match code {
        codes::OVER_CAPACITY => "Over capacity: messages were not read fast enough",
        codes::GENERIC_RECONNECT => "Server is restarting",
        codes::PONG_NOT_RECEIVED => "No activity or pong within the activity timeout",
        codes::UNAUTHORIZED => "Connection terminated by the app",
        MESSAGE_TOO_BIG => "Message too big",
        PROTOCOL_ERROR => "WebSocket protocol error",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchlists() {
        assert!(watchlist_of(r#"{"id":"1"}"#).unwrap().is_empty());
        assert_eq!(
            watchlist_of(r#"{"id":"1","watchlist":["2","3"]}"#)
                .unwrap()
                .len(),
            2
        );
        assert!(watchlist_of(r#"{"id":"1","watchlist":[2]}"#).is_err());
        let too_many: Vec<String> = (0..=MAX_WATCHLIST).map(|i| i.to_string()).collect();
        let user_data = serde_json::json!({"id": "1", "watchlist": too_many}).to_string();
        assert!(watchlist_of(&user_data).is_err());
    }

    #[test]
    fn protocol_versions() {
        assert!(supports_protocol(None));
        assert!(supports_protocol(Some(
            "protocol=7&client=js&version=8.6.0"
        )));
        assert!(supports_protocol(Some("client=js")));
        assert!(!supports_protocol(Some("protocol=4")));
        assert!(!supports_protocol(Some("protocol=8")));
        assert!(!supports_protocol(Some("protocol=seven")));
    }

    /// The direct path and its fallback over a real loopback socket, with the kernel's
    /// buffers made small so writes come back partial.
    mod wire {
        use std::os::fd::AsRawFd;

        use futures_util::{SinkExt, StreamExt};
        use tokio::net::{TcpListener, TcpSocket, TcpStream};
        use tokio_tungstenite::tungstenite::protocol::Role;
        use tokio_tungstenite::tungstenite::Message as Client;
        use tokio_tungstenite::WebSocketStream;
        use tokio_util::sync::CancellationToken;

        use super::*;
        use crate::config::{AppConfig, Config};
        use crate::wire::Sent;

        struct Server {
            handle: ConnectionHandle,
            queued: mpsc::Receiver<Utf8Bytes>,
            closer: Arc<Closer>,
            reader: Reader,
            sink: Sink,
            wire: Arc<Wire>,
            shared: Shared,
        }

        impl Server {
            /// Starts the writer task (tests that look at the queue first start it late).
            fn spawn_writer(self) -> (ConnectionHandle, Arc<Closer>, Reader) {
                let drained = Arc::new(Notify::new());
                let (closer, shared) = (self.closer.clone(), self.shared);
                tokio::spawn(write_loop(
                    self.sink,
                    self.wire,
                    self.queued,
                    closer,
                    drained,
                    shared,
                ));
                (self.handle, self.closer, self.reader)
            }
        }

        fn buffer(tcp: &TcpStream, option: libc::c_int) {
            let size: libc::c_int = 4096;
            // SAFETY: a valid socket and a c_int option value of its size.
            let set = unsafe {
                libc::setsockopt(
                    tcp.as_raw_fd(),
                    libc::SOL_SOCKET,
                    option,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(set, 0);
        }

        /// A server connection (no writer task yet) with a queue of `capacity` frames, and
        /// its client.
        async fn connected(capacity: usize) -> (Server, WebSocketStream<TcpStream>) {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let client = TcpSocket::new_v4().unwrap();
            client.set_recv_buffer_size(4096).unwrap();
            let (client, accepted) = tokio::join!(
                client.connect(listener.local_addr().unwrap()),
                listener.accept()
            );
            let (tcp, _) = accepted.unwrap();
            buffer(&tcp, libc::SO_SNDBUF);
            let shared = Shared::new(
                Config::for_tests(AppConfig::new("a", "k", "s")),
                CancellationToken::new(),
            );
            let (reader, sink, wire) =
                Socket::Tcp(tcp, Vec::new()).split(websocket_config(), shared.clone());
            let (outbox, queued) = mpsc::channel(capacity);
            let closer = Arc::new(Closer::default());
            let handle =
                ConnectionHandle::new("1.1".into(), outbox, closer.clone()).with_wire(wire.clone());
            let client =
                WebSocketStream::from_raw_socket(client.unwrap(), Role::Client, None).await;
            let server = Server {
                handle,
                queued,
                closer,
                reader,
                sink,
                wire,
                shared,
            };
            (server, client)
        }

        /// Frame `n`: its number, padded to sizes that take every header form (7-bit,
        /// 16-bit, 64-bit lengths).
        fn numbered(n: usize) -> Utf8Bytes {
            let len = [10, 200, 3_000, 70_000][n % 4];
            let mut frame = n.to_string();
            frame.push_str(&" ".repeat(len - frame.len()));
            frame.into()
        }

        async fn next(client: &mut WebSocketStream<TcpStream>) -> Client {
            tokio::time::timeout(Duration::from_secs(10), client.next())
                .await
                .expect("a frame in time")
                .expect("not the end")
                .expect("a whole, valid frame")
        }

        fn number_of(message: &Client) -> usize {
            match message {
                Client::Text(text) => text.trim_end().parse().expect("a numbered frame"),
                other => panic!("expected a numbered frame, got {other:?}"),
            }
        }

        #[tokio::test]
        async fn a_frame_goes_straight_to_the_socket_without_the_writer() {
            let (server, mut client) = connected(8).await;
            assert!(server.handle.send(numbered(1)));
            assert!(server.handle.send(numbered(2)));
            assert_eq!(server.queued.len(), 0, "nothing queued");
            // No writer task runs: only a direct write can have put these on the socket.
            assert_eq!(number_of(&next(&mut client).await), 1);
            assert_eq!(number_of(&next(&mut client).await), 2);
        }

        #[tokio::test]
        async fn a_frame_queued_on_purpose_keeps_later_direct_writes_behind_it() {
            let (server, mut client) = connected(8).await;
            // Fanout queues past its direct writes per publish, with the socket idle.
            assert_ne!(server.handle.send_shared(&numbered(0), None), Sent::Refused);
            assert!(server.handle.send(numbered(1)));
            assert_eq!(server.queued.len(), 2, "the second waits behind the first");
            server.spawn_writer();
            assert_eq!(number_of(&next(&mut client).await), 0);
            assert_eq!(number_of(&next(&mut client).await), 1);
        }

        #[tokio::test]
        async fn a_partial_write_leaves_the_rest_and_what_follows_to_the_writer_in_order() {
            let (server, mut client) = connected(4096).await;
            // The client reads nothing: the socket fills and a frame goes in part or not at all.
            let mut sent = 0;
            while server.queued.is_empty() {
                assert!(sent < 2_000, "the socket never filled");
                assert!(server.handle.send(numbered(sent)));
                sent += 1;
            }
            // From then on nothing is written directly, even once the client reads again.
            let queued_before = server.queued.len();
            let mut reader = tokio::spawn(async move {
                let mut seen = 0;
                while seen < sent + 100 {
                    assert_eq!(number_of(&next(&mut client).await), seen, "in order");
                    seen += 1;
                }
            });
            tokio::time::sleep(Duration::from_millis(50)).await;
            for n in sent..sent + 100 {
                assert!(server.handle.send(numbered(n)));
            }
            assert_eq!(server.queued.len(), queued_before + 100, "all queued");
            server.spawn_writer();
            tokio::time::timeout(Duration::from_secs(20), &mut reader)
                .await
                .expect("everything arrives")
                .unwrap();
        }

        #[tokio::test]
        async fn a_reader_over_the_limit_gets_whole_frames_in_order_then_4100() {
            let (server, mut client) = connected(8).await;
            let mut sent = 0;
            while server.handle.send(numbered(sent)) {
                sent += 1;
                assert!(sent < 2_000, "the queue never filled");
            }
            assert_eq!(server.closer.code(), Some(codes::OVER_CAPACITY));
            server.spawn_writer();
            let mut seen = 0;
            loop {
                match next(&mut client).await {
                    Client::Close(Some(close)) => {
                        assert_eq!(u16::from(close.code), codes::OVER_CAPACITY);
                        break;
                    }
                    text => assert_eq!(number_of(&text), seen, "whole frames, in order"),
                }
                seen += 1;
            }
            // The queued frames were dropped for the close; what was on the wire came whole.
            assert!(seen > 0 && seen < sent, "{seen} of {sent}");
        }

        #[tokio::test]
        async fn a_pong_waits_for_the_rest_of_a_half_written_frame() {
            let (server, mut client) = connected(8).await;
            // 70,000 bytes: more than the socket takes at once.
            assert!(server.handle.send(numbered(3)));
            assert_eq!(server.queued.len(), 0, "partly written, the rest pending");
            // The client takes what arrived (not a whole frame yet), which makes room.
            let early = tokio::time::timeout(Duration::from_millis(200), client.next()).await;
            assert!(early.is_err(), "the frame is not whole without the writer");
            let mut pong = Vec::new();
            crate::wire::encode(&mut pong, 0xA, b"pong");
            assert!(server.wire.control(&pong));
            server.spawn_writer();
            assert_eq!(number_of(&next(&mut client).await), 3);
            assert_eq!(
                next(&mut client).await,
                Client::Pong(b"pong".to_vec().into())
            );
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn pongs_land_between_frames_of_a_burst_racing_the_writer() {
            const FRAMES: usize = 3_000;
            const PINGS: u32 = 300;
            let (server, client) = connected(FRAMES).await;
            let (handle, _closer, mut reader) = server.spawn_writer();
            tokio::spawn(async move { while let Some(Ok(_)) = reader.next().await {} });
            let (mut client_tx, mut client_rx) = client.split();
            let pinging = tokio::spawn(async move {
                for n in 0..PINGS {
                    let ping = Client::Ping(n.to_be_bytes().to_vec().into());
                    client_tx.send(ping).await.unwrap();
                    tokio::task::yield_now().await;
                }
                client_tx
            });
            // Another thread publishes, racing the writer for the socket. (The connection
            // holds its handle till the end: the writer closes once every handle is gone.)
            let publisher = handle.clone();
            let publishing =
                std::thread::spawn(move || (0..FRAMES).all(|n| publisher.send(numbered(n))));
            let (mut frames, mut pongs) = (0, 0);
            while frames < FRAMES || pongs < PINGS {
                match next_of(&mut client_rx).await {
                    Client::Pong(payload) => {
                        assert_eq!(payload[..], pongs.to_be_bytes(), "pongs in order");
                        pongs += 1;
                    }
                    text => {
                        assert_eq!(number_of(&text), frames, "frames in order");
                        frames += 1;
                    }
                }
                if frames % 64 == 0 {
                    // Read slower now and then, so the writer takes over.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            assert!(publishing.join().unwrap(), "nothing refused");
            let _ = pinging.await.unwrap();
        }

        /// Frame `n` of publisher `publisher`: both numbers, padded (with the publisher's
        /// letter, so a frame spliced into another shows) to sizes of every header form.
        fn tagged(publisher: usize, n: usize) -> Utf8Bytes {
            let len = [12, 12, 200, 12, 3_000, 12, 200, 70_000][(n + publisher) % 8];
            let mut frame = format!("{publisher} {n} ");
            let pad = char::from(b'a' + publisher as u8);
            frame.extend(std::iter::repeat_n(pad, len - frame.len()));
            frame.into()
        }

        /// Several publishers (direct writes, and now and then a frame queued on purpose, as
        /// fanout does), a sender of pongs and the writer task race for one socket whose
        /// client reads slowly. The publishers hold back while frames wait in the queue, so
        /// the socket goes to the writer and back over and over rather than staying the
        /// writer's. Every text frame must arrive once, whole and in its publisher's order,
        /// every pong whole and in order.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn publishers_pongs_and_the_writer_take_turns_with_the_socket() {
            const PUBLISHERS: usize = 3;
            const FRAMES: usize = 1_200;
            const PONGS: u32 = 300;
            let (server, mut client) = connected(PUBLISHERS * FRAMES).await;
            let capacity = server.handle.room();
            let wire = server.wire.clone();
            let (handle, _closer, _reader) = server.spawn_writer();
            let publishers: Vec<_> = (0..PUBLISHERS)
                .map(|publisher| {
                    let handle = handle.clone();
                    std::thread::spawn(move || {
                        // Frames written directly, and queued behind the writer though
                        // offered for a direct write.
                        let (mut direct, mut behind) = (0, 0);
                        for n in 0..FRAMES {
                            while capacity - handle.room() > 4 {
                                std::thread::sleep(Duration::from_micros(50));
                            }
                            let frame = tagged(publisher, n);
                            // One in 16 queued on purpose (no encoding), as fanout may.
                            let on_purpose = n % 16 == 15;
                            let encoded = crate::wire::Lazy::new();
                            let encoded = Some(&encoded).filter(|_| !on_purpose);
                            match handle.send_shared(&frame, encoded) {
                                Sent::Written => direct += 1,
                                Sent::Queued if !on_purpose => behind += 1,
                                Sent::Queued => {}
                                Sent::Refused => panic!("frame {n} of {publisher} refused"),
                            }
                        }
                        (direct, behind)
                    })
                })
                .collect();
            let pongs = std::thread::spawn(move || {
                for n in 0..PONGS {
                    let mut pong = Vec::new();
                    crate::wire::encode(&mut pong, 0xA, &n.to_be_bytes());
                    while !wire.control(&pong) {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            });
            let mut seen = [0; PUBLISHERS];
            let mut pongs_seen = 0;
            let mut messages = 0usize;
            while seen.iter().any(|&n| n < FRAMES) || pongs_seen < PONGS {
                match next(&mut client).await {
                    Client::Pong(payload) => {
                        assert_eq!(
                            payload[..],
                            pongs_seen.to_be_bytes(),
                            "pongs whole, in order"
                        );
                        pongs_seen += 1;
                    }
                    Client::Text(text) => {
                        let mut fields = text.splitn(3, ' ');
                        let publisher: usize = fields.next().unwrap().parse().expect("a tag");
                        let n: usize = fields.next().unwrap().parse().expect("a number");
                        assert!(publisher < PUBLISHERS, "publisher {publisher}");
                        assert_eq!(
                            n, seen[publisher],
                            "publisher {publisher}'s frames once, in order"
                        );
                        assert_eq!(text.as_str(), tagged(publisher, n).as_str(), "frame whole");
                        seen[publisher] += 1;
                    }
                    other => panic!("unexpected {other:?}"),
                }
                messages += 1;
                if messages % 32 == 0 {
                    // A slow reader: the socket fills and the writer takes over.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            pongs.join().unwrap();
            for publishing in publishers {
                let (direct, behind) = publishing.join().unwrap();
                assert!(
                    direct > 0 && behind > 0,
                    "both paths taken: {direct} direct, {behind} behind the writer"
                );
            }
        }

        async fn next_of(
            client: &mut futures_util::stream::SplitStream<WebSocketStream<TcpStream>>,
        ) -> Client {
            tokio::time::timeout(Duration::from_secs(10), client.next())
                .await
                .expect("a frame in time")
                .expect("not the end")
                .expect("a whole, valid frame")
        }
    }
}
