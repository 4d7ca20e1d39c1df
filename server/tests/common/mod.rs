//! A live server on a loopback port and a raw WebSocket client, for the integration tests.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use overtone_server::config::{AppConfig, Config};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any single wait in these tests may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(5);

pub struct TestServer {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<std::io::Result<()>>,
}

pub fn app() -> AppConfig {
    AppConfig::new("test-app", "test-key", "test-secret")
}

pub async fn start(config: Config) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(overtone_server::serve_on(
        listener,
        config,
        shutdown.clone(),
    ));
    TestServer {
        addr,
        shutdown,
        task,
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Connects to `/app/{key}`, sending `origin` if given.
pub async fn connect(addr: SocketAddr, key: &str, origin: Option<&str>) -> Ws {
    let mut request = format!("ws://{addr}/app/{key}?protocol=7&client=js&version=8.6.0")
        .into_client_request()
        .unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", origin.parse().unwrap());
    }
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .unwrap()
        .unwrap();
    ws
}

/// Connects and reads `pusher:connection_established`.
pub async fn connect_established(addr: SocketAddr) -> Ws {
    let mut ws = connect(addr, "test-key", None).await;
    assert_eq!(
        next_event(&mut ws).await["event"],
        "pusher:connection_established"
    );
    ws
}

/// Connects to `app` and subscribes to `channel`, signing the subscription with its secret.
pub async fn connect_subscribed(addr: SocketAddr, app: &AppConfig, channel: &str) -> Ws {
    let mut ws = connect(addr, &app.key, None).await;
    let established = next_event(&mut ws).await;
    let data: Value = serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
    let socket_id = data["socket_id"].as_str().unwrap();
    let auth = overtone_protocol::signature::auth_token(
        &app.key,
        &app.secret,
        &format!("{socket_id}:{channel}"),
    );
    let subscribe = serde_json::json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth}});
    send_json(&mut ws, subscribe).await;
    assert_eq!(
        next_event(&mut ws).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    ws
}

pub async fn send_json(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string())).await.unwrap();
}

/// The next protocol frame, skipping control frames; panics on close or after [`WAIT`].
pub async fn next_event(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time");
        match message {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Reads until the server closes; returns the close code (None if the TCP stream just ended).
pub async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a close in time")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}
