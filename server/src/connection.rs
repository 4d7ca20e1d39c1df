//! One WebSocket connection at `/app/{key}`: the handshake checks, the read loop that interprets
//! client frames, the writer that drains the connection's bounded queue, keepalive, and the
//! close codes pusher-js acts on.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use overtone_protocol::channel::{validate_name, ChannelType};
use overtone_protocol::codes;
use overtone_protocol::signature;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::channels::{Closer, ConnectionHandle};
use crate::frame::{self, ClientFrame, SubscribeData, UnsubscribeData};
use crate::state::{App, Shared};

/// Seconds of silence after which pusher-js pings; announced in `connection_established`.
pub const ACTIVITY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server waits for any frame after its own ping before closing with 4201.
const PONG_TIMEOUT: Duration = Duration::from_secs(30);
/// Frames queued for one connection before it counts as a slow reader (closed with 4100).
const OUTBOX_CAPACITY: usize = 1024;
/// Largest frame a client may send.
const MAX_FRAME_BYTES: usize = 64 * 1024;

pub fn routes() -> Router<Shared> {
    Router::new().route("/app/{key}", get(upgrade))
}

async fn upgrade(
    ws: WebSocketUpgrade,
    Path(key): Path<String>,
    State(shared): State<Shared>,
) -> Response {
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| async move {
            match shared.app_by_key(&key).cloned() {
                Some(app) => Connection::run(shared, app, socket).await,
                None => refuse(socket, codes::APP_NOT_FOUND, "App key not found").await,
            }
        })
}

/// Sends the error frame pusher-js expects, then closes with the same code.
async fn refuse(mut socket: WebSocket, code: u16, reason: &'static str) {
    let _ = socket.send(Message::Text(frame::error(Some(code), reason))).await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) })))
        .await;
}

/// One client's session: its identity, its subscriptions and how to reach it.
struct Connection {
    shared: Shared,
    app: Arc<App>,
    handle: ConnectionHandle,
    subscriptions: Vec<String>,
}

impl Connection {
    async fn run(shared: Shared, app: Arc<App>, socket: WebSocket) {
        let socket_id = shared.next_socket_id();
        let (outbox, queued) = mpsc::channel(OUTBOX_CAPACITY);
        let closer = Arc::new(Closer::default());
        let handle = ConnectionHandle::new(socket_id.clone(), outbox, closer.clone());
        handle.send(frame::connection_established(socket_id.as_str(), ACTIVITY_TIMEOUT.as_secs()));
        tracing::debug!(socket_id = socket_id.as_str(), app = %app.config.id, "connected");

        let (sink, stream) = socket.split();
        let writer = tokio::spawn(write_loop(sink, queued, closer.clone()));
        let mut conn = Connection { shared, app, handle, subscriptions: Vec::new() };
        conn.read_loop(stream, &closer).await;
        conn.leave_all();
        // The writer ends once the close frame is out; dropping our handle lets it drain.
        drop(conn);
        let _ = writer.await;
        tracing::debug!(socket_id = socket_id.as_str(), "disconnected");
    }

    async fn read_loop(&mut self, mut stream: SplitStream<WebSocket>, closer: &Closer) {
        let mut deadline = Instant::now() + ACTIVITY_TIMEOUT * 2;
        let mut pinged = false;
        loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(Ok(message)) = message else { break };
                    deadline = Instant::now() + ACTIVITY_TIMEOUT * 2;
                    pinged = false;
                    match message {
                        Message::Text(text) => self.on_text(text.as_str()),
                        Message::Binary(_) => {
                            self.handle.send(frame::error(None, "Binary frames are not part of the protocol"));
                        }
                        Message::Close(_) => break,
                        Message::Ping(_) | Message::Pong(_) => {}
                    }
                }
                _ = sleep_until(deadline) => {
                    if pinged {
                        closer.close(codes::PONG_NOT_RECEIVED);
                    } else {
                        pinged = true;
                        deadline = Instant::now() + PONG_TIMEOUT;
                        self.handle.send(frame::ping());
                    }
                }
                _ = closer.closed() => break,
                _ = self.shared.shutdown().cancelled() => {
                    closer.close(codes::GENERIC_RECONNECT);
                    break;
                }
            }
        }
        // Whatever ended the loop, make sure the writer sends a close and stops.
        closer.close(1000);
    }

    fn on_text(&mut self, text: &str) {
        let frame = match ClientFrame::parse(text) {
            Ok(frame) => frame,
            Err(_) => {
                self.handle.send(frame::error(Some(codes::GENERIC_RECONNECT), "Invalid message format"));
                return;
            }
        };
        match frame.event {
            "pusher:ping" => {
                self.handle.send(frame::pong());
            }
            "pusher:pong" => {}
            "pusher:subscribe" => match parse_data::<SubscribeData>(&frame) {
                Some(data) => self.subscribe(data),
                None => self.invalid("pusher:subscribe needs data {channel, auth?, channel_data?}"),
            },
            "pusher:unsubscribe" => match parse_data::<UnsubscribeData>(&frame) {
                Some(data) => self.unsubscribe(&data.channel),
                None => self.invalid("pusher:unsubscribe needs data {channel}"),
            },
            event if event.starts_with("client-") => self.client_event(&frame),
            _ => self.invalid("Unknown event"),
        }
    }

    fn invalid(&self, message: &str) {
        self.handle.send(frame::error(None, message));
    }

    fn subscribe(&mut self, data: SubscribeData) {
        let channel = data.channel;
        if let Err(err) = validate_name(&channel) {
            return self.invalid(&err.to_string());
        }
        let kind = ChannelType::of(&channel);
        if kind.needs_auth() {
            let message = signature::channel_auth_message(
                self.handle.socket_id.as_str(),
                &channel,
                data.channel_data.as_deref(),
            );
            let valid = data.auth.as_deref().is_some_and(|auth| {
                signature::verify_auth_token(&self.app.config.key, &self.app.config.secret, &message, auth)
            });
            if !valid {
                return self.subscription_error(&channel, "Invalid signature", 401);
            }
        }
        if self.app.channels.subscribe(&channel, self.handle.clone()) {
            self.subscriptions.push(channel.clone());
        }
        self.handle.send(frame::subscription_succeeded(&channel, "{}"));
    }

    fn subscription_error(&self, channel: &str, error: &str, status: u16) {
        let data = serde_json::json!({ "type": "AuthError", "error": error, "status": status });
        self.handle.send(frame::channel_event(channel, "pusher:subscription_error", &data.to_string(), None));
    }

    fn unsubscribe(&mut self, channel: &str) {
        if self.app.channels.unsubscribe(channel, &self.handle.socket_id) {
            self.subscriptions.retain(|c| c != channel);
        }
    }

    fn client_event(&self, frame: &ClientFrame<'_>) {
        let Some(channel) = frame.channel else {
            return self.invalid("Client events need a channel");
        };
        if !self.app.config.client_events || !ChannelType::of(channel).allows_client_events() {
            return self.invalid("Client events are only allowed on private and presence channels");
        }
        if !self.app.channels.is_subscribed(channel, &self.handle.socket_id) {
            return self.invalid("Subscribe to the channel before sending client events");
        }
        let data = frame.data.map_or("null", |d| d.get());
        let out = frame::channel_event(channel, frame.event, data, None);
        self.app.channels.publish(channel, &out, Some(self.handle.socket_id.as_str()));
    }

    fn leave_all(&mut self) {
        for channel in self.subscriptions.drain(..) {
            self.app.channels.unsubscribe(&channel, &self.handle.socket_id);
        }
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

/// Drains the connection's queue into the socket until a close is asked for, then sends it.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut queued: mpsc::Receiver<Utf8Bytes>,
    closer: Arc<Closer>,
) {
    let code = loop {
        tokio::select! {
            biased;
            code = closer.closed() => break code,
            frame = queued.recv() => match frame {
                Some(frame) => {
                    if sink.send(Message::Text(frame)).await.is_err() {
                        return;
                    }
                }
                None => break 1000,
            },
        }
    };
    let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::default() }))).await;
}
