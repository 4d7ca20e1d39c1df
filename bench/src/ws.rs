//! WebSocket clients of the server under test: opening a connection (up to
//! `pusher:connection_established`), subscribing, and a task per connection that hands every
//! received frame to a scenario's handler and sends what the scenario asks.

use std::future::Future;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{client_async_with_config, WebSocketStream};

use super::server_under_test::Target;
use super::{progress, Result};

/// How long the server may take to accept a connection or answer a subscription.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing connection waits for the server's close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A protocol frame, for the few the bench has to understand.
#[derive(Deserialize)]
pub struct Frame {
    pub event: String,
    #[serde(default)]
    pub data: Value,
}

impl Frame {
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    /// `data`, decoded once more when the server sent it as a JSON string (the usual case).
    pub fn data_json(&self) -> Value {
        match &self.data {
            Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| self.data.clone()),
            other => other.clone(),
        }
    }
}

/// An open connection that has received `pusher:connection_established`.
pub struct Connection {
    ws: WebSocketStream<TcpStream>,
    pub socket_id: String,
}

impl Connection {
    pub async fn open(target: &Target) -> Result<Self> {
        let unreachable =
            |err: &dyn std::fmt::Display| format!("cannot connect to {}: {err}", target.addr);
        let tcp = tokio::time::timeout(REPLY_TIMEOUT, target.connect())
            .await
            .map_err(|_| unreachable(&"timed out"))?
            .map_err(|err| unreachable(&err))?;
        tcp.set_nodelay(true).map_err(|err| unreachable(&err))?;
        // Small buffers: thousands of clients live in this process next to the server.
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (ws, _) = tokio::time::timeout(
            REPLY_TIMEOUT,
            client_async_with_config(target.ws_url(), tcp, Some(config)),
        )
        .await
        .map_err(|_| unreachable(&"WebSocket handshake timed out"))?
        .map_err(|err| unreachable(&format!("WebSocket handshake failed: {err}")))?;
        let mut connection = Self {
            ws,
            socket_id: String::new(),
        };
        let frame = connection.next_frame().await?;
        if frame.event != "pusher:connection_established" {
            return Err(format!(
                "server refused the connection: {} {}",
                frame.event, frame.data
            ));
        }
        connection.socket_id = frame.data_json()["socket_id"]
            .as_str()
            .ok_or("pusher:connection_established without a socket_id")?
            .to_owned();
        Ok(connection)
    }

    /// Subscribes and waits for `pusher_internal:subscription_succeeded`; returns its data.
    pub async fn subscribe(
        &mut self,
        channel: &str,
        auth: Option<String>,
        channel_data: Option<&str>,
    ) -> Result<Value> {
        let mut data = json!({ "channel": channel });
        if let Some(auth) = auth {
            data["auth"] = auth.into();
        }
        if let Some(channel_data) = channel_data {
            data["channel_data"] = channel_data.into();
        }
        self.send(json!({ "event": "pusher:subscribe", "data": data }).to_string())
            .await?;
        loop {
            let frame = self.next_frame().await?;
            match frame.event.as_str() {
                "pusher_internal:subscription_succeeded" => return Ok(frame.data_json()),
                "pusher:subscription_error" | "pusher:error" => {
                    return Err(format!("subscribing to {channel} failed: {}", frame.data));
                }
                // Anything else (a ping, another channel's event) is not the answer.
                _ => {}
            }
        }
    }

    async fn send(&mut self, text: String) -> Result<()> {
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|err| format!("sending to the server failed: {err}"))
    }

    /// The next text frame, within [`REPLY_TIMEOUT`].
    async fn next_frame(&mut self) -> Result<Frame> {
        loop {
            let message = tokio::time::timeout(REPLY_TIMEOUT, self.ws.next())
                .await
                .map_err(|_| "the server did not answer within 10 s".to_owned())?;
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Frame::parse(&text).ok_or_else(|| format!("unparsable frame: {text}"));
                }
                Some(Ok(Message::Close(close))) => {
                    let why = close
                        .map(|c| format!("{} {}", c.code, c.reason))
                        .unwrap_or_default();
                    return Err(format!("the server closed the connection: {why}"));
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(format!("connection failed: {err}")),
                None => return Err("the server closed the connection".to_owned()),
            }
        }
    }

    /// Hands the connection to a task that calls `on_frame` with every text frame received
    /// (answering `pusher:ping` itself) until told to close or the server closes it.
    pub fn spawn(mut self, mut on_frame: impl FnMut(&str) + Send + 'static) -> Client {
        let (commands, mut inbox) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let command = tokio::select! {
                    message = self.ws.next() => match message {
                        Some(Ok(Message::Text(text))) => {
                            if text.contains("\"pusher:ping\"") {
                                Command::Send(r#"{"event":"pusher:pong","data":{}}"#.to_owned())
                            } else {
                                on_frame(&text);
                                continue;
                            }
                        }
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                        Some(Ok(_)) => continue,
                    },
                    command = inbox.recv() => command.unwrap_or(Command::Close),
                };
                match command {
                    Command::Send(text) => {
                        if self.send(text).await.is_err() {
                            return;
                        }
                    }
                    Command::Close => {
                        let _ = self.ws.close(None).await;
                        // Wait for the server's close frame so it sees a clean disconnect.
                        let drain = async { while self.ws.next().await.is_some() {} };
                        let _ = tokio::time::timeout(CLOSE_TIMEOUT, drain).await;
                        return;
                    }
                }
            }
        });
        Client { commands, task }
    }
}

enum Command {
    Send(String),
    Close,
}

/// A connection running in its own task.
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
}

impl Client {
    pub fn send(&self, text: String) {
        let _ = self.commands.send(Command::Send(text));
    }

    /// False once the server closed the connection (or it failed).
    pub fn is_open(&self) -> bool {
        !self.task.is_finished()
    }

    /// Closes cleanly and waits until the connection is gone.
    pub async fn close(self) {
        let _ = self.commands.send(Command::Close);
        let _ = self.task.await;
    }
}

/// Closes every client at once and waits for all of them.
pub async fn close_all(clients: Vec<Client>) {
    let mut closing: JoinSet<()> = clients.into_iter().map(Client::close).collect();
    while closing.join_next().await.is_some() {}
}

/// Runs `make(i)` for i in 0..n with at most `in_flight` running at once; the results in order,
/// or the first error.
pub async fn gather<T, F, Fut>(what: &str, n: usize, in_flight: usize, make: F) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    let mut results: Vec<Option<T>> = (0..n).map(|_| None).collect();
    let mut running = JoinSet::new();
    let mut next = 0;
    let mut done = 0;
    while done < n {
        while next < n && running.len() < in_flight.max(1) {
            let job = make(next);
            let i = next;
            running.spawn(async move { (i, job.await) });
            next += 1;
        }
        let (i, result) = running
            .join_next()
            .await
            .expect("jobs are running")
            .map_err(|e| e.to_string())?;
        results[i] = Some(result?);
        done += 1;
        if done % 5000 == 0 && done < n {
            progress(format!("{what}: {done}/{n}"));
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every job finished"))
        .collect())
}
