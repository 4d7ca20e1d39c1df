//! Many nodes behind a load balancer, sharing one Redis (`--redis-url`): what one node
//! publishes (API events, client events, terminated users) every other node delivers to its
//! own subscribers, exactly as if they were connected to the publisher.
//!
//! Each node delivers to its local subscribers first, without waiting for Redis, then hands the
//! already serialized frame to [`Cluster::forward`], which queues it without blocking; one task
//! publishes the queue to the app's Redis channel `{prefix}:{app_id}:broadcast` (so two apps, or
//! two deployments with different prefixes, never see each other's events). Another task
//! subscribes to every app's channel and delivers what the other nodes sent. Both reconnect
//! with backoff when Redis goes away, so delivery resumes by itself; meanwhile the node keeps
//! serving its own clients, and what it publishes reaches them only. Presence members are
//! shared through Redis too: see [`presence`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::state::{Shared, SocketId};

pub mod history;
pub mod presence;

/// Messages waiting to be published before new ones are dropped (Redis too slow or away).
const QUEUE_CAPACITY: usize = 10_000;
/// Reconnection waits double from the first to the last.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// What one node tells the others, on its app's Redis channel.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    /// A frame for a channel's subscribers, except one socket (`toOthers()`, client events).
    Event {
        channel: String,
        frame: String,
        except: Option<String>,
    },
    /// Close every connection signed in as this user (`terminate_connections`).
    Terminate { user_id: String, code: u16 },
    /// An event on a channel with history: `frame` without its position; the publish script
    /// appends `epoch` and `offset` (see [`history`]). Every node delivers it, the publisher
    /// too.
    History {
        channel: String,
        frame: String,
        except: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
    },
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    /// The sending node, which already delivered locally and skips its own messages.
    node: String,
    app: String,
    /// When the sender published it (µs since the Unix epoch), for the latency histogram.
    sent_us: u64,
    #[serde(flatten)]
    message: Message,
}

/// Where the nodes meet: `--redis-url` and `--redis-prefix`.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub client: redis::Client,
    /// Starts every Redis key and channel, so deployments sharing a Redis stay apart.
    pub prefix: String,
}

impl RedisConfig {
    /// Checks the URL; nothing connects until the server starts.
    pub fn new(url: &str, prefix: &str) -> Result<RedisConfig, String> {
        let client = redis::Client::open(url).map_err(|e| format!("redis url {url:?}: {e}"))?;
        Ok(RedisConfig {
            client,
            prefix: prefix.into(),
        })
    }
}

/// This node's link to the others.
pub struct Cluster {
    client: redis::Client,
    prefix: String,
    node: String,
    outbound: mpsc::Sender<Envelope>,
    /// Taken by [`start`], which hands it to the publishing task.
    pending: Mutex<Option<mpsc::Receiver<Envelope>>>,
    /// Presence changes, in order; never dropped, or the cluster's member lists would drift.
    presence_ops: mpsc::UnboundedSender<presence::Op>,
    pending_presence: Mutex<Option<mpsc::UnboundedReceiver<presence::Op>>>,
    /// Whether the subscription to the other nodes is up.
    connected: AtomicBool,
    /// Milliseconds since `started` at which Redis was last lost (0: never connected yet).
    started: Instant,
    lost_at_ms: AtomicU64,
    /// Publishes on channels with history, waiting for their positions; see [`history`].
    history_queue: mpsc::Sender<history::Publish>,
    pending_history: Mutex<Option<mpsc::Receiver<history::Publish>>>,
    /// The connection history reads share.
    reader: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
}

impl Cluster {
    /// Nothing connects until [`start`].
    pub fn new(redis: RedisConfig) -> Cluster {
        let (outbound, pending) = mpsc::channel(QUEUE_CAPACITY);
        let (presence_ops, pending_presence) = mpsc::unbounded_channel();
        let (history_queue, pending_history) = mpsc::channel(history::QUEUE_CAPACITY);
        Cluster {
            history_queue,
            pending_history: Mutex::new(Some(pending_history)),
            reader: tokio::sync::Mutex::new(None),
            client: redis.client,
            prefix: redis.prefix,
            node: format!("{:016x}", fastrand::u64(..)),
            outbound,
            pending: Mutex::new(Some(pending)),
            presence_ops,
            pending_presence: Mutex::new(Some(pending_presence)),
            connected: AtomicBool::new(false),
            started: Instant::now(),
            lost_at_ms: AtomicU64::new(0),
        }
    }

    fn channel_of(&self, app_id: &str) -> String {
        format!("{}:{app_id}:broadcast", self.prefix)
    }

    /// Queues `message` for the other nodes without waiting; dropped if Redis is too far behind.
    pub fn forward(&self, app_id: &str, message: Message) {
        let envelope = Envelope {
            node: self.node.clone(),
            app: app_id.into(),
            sent_us: unix_micros(),
            message,
        };
        if self.outbound.try_send(envelope).is_err() {
            tracing::warn!("cluster queue full: an event reaches this node's clients only");
        }
    }

    /// Whether Redis has been unreachable for longer than `grace` (or never reached).
    pub fn disconnected_for(&self, grace: Duration) -> bool {
        if self.connected.load(Ordering::Acquire) {
            return false;
        }
        let lost = Duration::from_millis(self.lost_at_ms.load(Ordering::Acquire));
        self.started.elapsed().saturating_sub(lost) >= grace
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    fn set_connected(&self, up: bool) {
        if !up && self.connected.swap(false, Ordering::AcqRel) {
            let now = self.started.elapsed().as_millis() as u64;
            self.lost_at_ms.store(now, Ordering::Release);
        } else if up {
            self.connected.store(true, Ordering::Release);
        }
    }
}

/// Starts publishing and subscribing, if this node is in a cluster; both stop at shutdown.
pub fn start(shared: &Shared) {
    let Some(cluster) = shared.cluster() else {
        return;
    };
    let pending = cluster.pending.lock().map(|mut p| p.take());
    if let Ok(Some(queue)) = pending {
        tokio::spawn(publish(cluster.clone(), queue, shared.shutdown().clone()));
        tokio::spawn(subscribe(shared.clone(), cluster.clone()));
    }
    let pending = cluster.pending_presence.lock().map(|mut p| p.take());
    if let Ok(Some(ops)) = pending {
        tokio::spawn(presence::run(shared.clone(), cluster.clone(), ops));
    }
    let pending = cluster.pending_history.lock().map(|mut p| p.take());
    if let Ok(Some(queue)) = pending {
        tokio::spawn(history::run(shared.clone(), cluster.clone(), queue));
    }
}

/// Waits before the next reconnection attempt; false if shutdown came first.
async fn back_off(retry: &mut Duration, shutdown: &CancellationToken) -> bool {
    let wait = *retry;
    *retry = (*retry * 2).min(LAST_RETRY);
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = shutdown.cancelled() => false,
    }
}

/// Drains the queue into Redis, reconnecting when the connection fails.
async fn publish(
    cluster: Arc<Cluster>,
    mut queue: mpsc::Receiver<Envelope>,
    shutdown: CancellationToken,
) {
    let mut retry = FIRST_RETRY;
    loop {
        let mut conn = match cluster.client.get_multiplexed_async_connection().await {
            Ok(conn) => conn,
            Err(err) => {
                tracing::debug!(%err, "redis: cannot connect to publish");
                if !back_off(&mut retry, &shutdown).await {
                    return;
                }
                continue;
            }
        };
        retry = FIRST_RETRY;
        loop {
            let envelope = tokio::select! {
                envelope = queue.recv() => match envelope {
                    Some(envelope) => envelope,
                    None => return,
                },
                _ = shutdown.cancelled() => return,
            };
            let Ok(payload) = serde_json::to_string(&envelope) else {
                continue;
            };
            let mut pipe = redis::pipe();
            pipe.cmd("PUBLISH")
                .arg(cluster.channel_of(&envelope.app))
                .arg(payload)
                .ignore();
            // A cache channel's last event, for subscribers on every node.
            if let Message::Event { channel, frame, .. } = &envelope.message {
                if overtone_protocol::channel::ChannelType::of(channel).cache {
                    pipe.cmd("SET")
                        .arg(cluster.cache_key(&envelope.app, channel))
                        .arg(frame)
                        .arg("PX")
                        .arg(crate::channels::CACHE_TTL.as_millis() as u64)
                        .ignore();
                }
            }
            let published: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
            if let Err(err) = published {
                tracing::warn!(%err, "redis: publish failed; reconnecting");
                break;
            }
        }
    }
}

/// Subscribes to every app's channel and delivers what other nodes sent; on a lost connection,
/// reconnects with backoff and subscribes again.
async fn subscribe(shared: Shared, cluster: Arc<Cluster>) {
    let shutdown = shared.shutdown().clone();
    let channels: Vec<String> = shared
        .apps()
        .map(|app| cluster.channel_of(&app.config.id))
        .collect();
    let mut retry = FIRST_RETRY;
    loop {
        let subscribed = async {
            let mut pubsub = cluster.client.get_async_pubsub().await?;
            pubsub.subscribe(&channels).await?;
            redis::RedisResult::Ok(pubsub)
        };
        let mut pubsub = match subscribed.await {
            Ok(pubsub) => pubsub,
            Err(err) => {
                tracing::debug!(%err, "redis: cannot subscribe");
                if !back_off(&mut retry, &shutdown).await {
                    return;
                }
                continue;
            }
        };
        retry = FIRST_RETRY;
        cluster.set_connected(true);
        tracing::info!("redis: subscribed");
        let mut messages = pubsub.on_message();
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                _ = shutdown.cancelled() => return,
            };
            let Some(message) = message else { break };
            match message.get_payload::<String>() {
                Ok(payload) => deliver(&shared, &cluster, &payload),
                Err(err) => tracing::debug!(%err, "redis: unreadable message"),
            }
        }
        drop(messages);
        cluster.set_connected(false);
        tracing::warn!("redis: connection lost; reconnecting");
    }
}

/// Wall-clock microseconds: comparable across nodes (as far as their clocks agree).
fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Delivers another node's message to this node's connections.
fn deliver(shared: &Shared, cluster: &Cluster, payload: &str) {
    let Ok(envelope) = serde_json::from_str::<Envelope>(payload) else {
        return tracing::debug!("redis: malformed cluster message");
    };
    let history = matches!(envelope.message, Message::History { .. });
    if envelope.node == cluster.node && !history {
        return;
    }
    let Some(app) = shared.app_by_id(&envelope.app) else {
        return;
    };
    let elapsed = unix_micros().saturating_sub(envelope.sent_us);
    shared
        .metrics()
        .cluster_latency
        .observe(Duration::from_micros(elapsed));
    match envelope.message {
        Message::Event {
            channel,
            frame,
            except,
        } => {
            let except = except.as_deref().map(SocketId::from);
            app.channels
                .publish(&channel, &Utf8Bytes::from(frame), except.as_ref());
        }
        Message::Terminate { user_id, code } => {
            app.users.terminate(&user_id, code);
        }
        Message::History {
            channel,
            frame,
            except,
            epoch: Some(epoch),
            offset: Some(offset),
        } => {
            let except = except.as_deref().map(SocketId::from);
            let frame = Utf8Bytes::from(frame);
            app.channels
                .deliver_positioned(&channel, &frame, except.as_ref(), &epoch.into(), offset);
        }
        Message::History { .. } => tracing::debug!("redis: history event without a position"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_their_json() {
        let envelope = Envelope {
            node: "n".into(),
            app: "a".into(),
            sent_us: 1,
            message: Message::Event {
                channel: "private-x".into(),
                frame: r#"{"event":"e"}"#.into(),
                except: Some("1.2".into()),
            },
        };
        let text = serde_json::to_string(&envelope).unwrap();
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back.message, envelope.message);
        assert!(serde_json::from_str::<Envelope>(r#"{"node":"n","app":"a","kind":"x"}"#).is_err());
    }

    #[test]
    fn a_bad_url_is_refused() {
        assert!(RedisConfig::new("not a url", "overtone").is_err());
        let cluster = Cluster::new(RedisConfig::new("redis://127.0.0.1:1", "p").unwrap());
        assert_eq!(cluster.channel_of("app"), "p:app:broadcast");
        assert!(!cluster.disconnected_for(Duration::from_secs(60)));
        assert!(cluster.disconnected_for(Duration::ZERO));
    }
}
