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
//! serving its own clients. Presence members are shared through Redis too: see [`presence`].
//!
//! A Redis restart loses nothing a node forwards while Redis is away, up to the queue's
//! capacity: a message whose publish fails is kept and published again on the next
//! connection, in order, once the nodes subscribed before the outage have subscribed again
//! ([`Cluster::await_peers`], at most [`OUTAGE_HOLD`]): Redis pub/sub keeps nothing for a
//! node that is not subscribed yet. Events with history: see [`history`]. For [`SETTLE`]
//! after Redis comes back, cluster-wide queries answer "unavailable" (503) rather than a count
//! some nodes have not put back yet.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::state::{Shared, SocketId};

pub mod counts;
pub mod history;
pub mod online;
pub mod presence;
pub mod reads;
pub mod user_status;

/// Messages waiting to be published before new ones are dropped (Redis too slow or away).
const QUEUE_CAPACITY: usize = 10_000;
/// Reconnection waits double from the first to the last: short, so every node is back on
/// Redis within about a second of its return.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(1);
/// How long after losing Redis a node holds what it publishes for the other nodes (events with
/// history are then held back from its own clients too, to keep one order); past it, events
/// with history reach this node's clients alone, as a lone node's would.
pub const OUTAGE_HOLD: Duration = Duration::from_secs(5);
/// How long after Redis comes back cluster-wide answers wait for every node to have put its
/// members and counts back (each does on its next heartbeat, within a second).
const SETTLE: Duration = Duration::from_secs(2);
/// How long the shared connection tries to connect, and waits for an answer, before a query
/// gives up (and the API answers 503).
pub const SHARED_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
pub const SHARED_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// A channel's subscription count cluster-wide, for its subscribers on every node, the
    /// sender's included (see [`counts`]).
    SubscriptionCount { channel: String, count: u64 },
    /// A user signed in on their first node, or out of their last (watchlists).
    Watchlist { user_id: String, online: bool },
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
    /// The connection queries share (see [`Cluster::redis`]); made on first use, inside the
    /// runtime.
    shared_connection: OnceLock<ConnectionManager>,
    prefix: String,
    node: String,
    outbound: mpsc::Sender<Envelope>,
    /// Taken by [`start`], which hands it to the publishing task.
    pending: Mutex<Option<mpsc::Receiver<Envelope>>>,
    /// Presence changes, in order; never dropped, or the cluster's member lists would drift.
    presence_ops: mpsc::UnboundedSender<presence::Op>,
    pending_presence: Mutex<Option<mpsc::UnboundedReceiver<presence::Op>>>,
    /// Channels whose cluster-wide subscription count changed, for [`counts::run`].
    counts: mpsc::UnboundedSender<counts::Changed>,
    pending_counts: Mutex<Option<mpsc::UnboundedReceiver<counts::Changed>>>,
    /// Whether the subscription to the other nodes is up.
    connected: AtomicBool,
    /// Milliseconds since `started` at which Redis was last lost (0: never connected yet)
    /// and last regained after a loss (0: never lost).
    started: Instant,
    lost_at_ms: AtomicU64,
    regained_at_ms: AtomicU64,
    /// How many nodes were subscribed to the cluster's channels when last settled.
    peers: AtomicU64,
    /// The presence task and the webhook checks that wait out [`crate::webhooks::LEAVE_GRACE`]
    /// after a departure: shutdown waits for them ([`Cluster::finish`]).
    leaving: tokio_util::task::TaskTracker,
    /// Tells the presence task to apply what is queued and stop.
    finish_presence: CancellationToken,
    /// Publishes on channels with history, waiting for their positions; see [`history`].
    history_queue: mpsc::Sender<history::Publish>,
    pending_history: Mutex<Option<mpsc::Receiver<history::Publish>>>,
}

impl Cluster {
    /// Nothing connects until [`start`].
    pub fn new(redis: RedisConfig) -> Cluster {
        let (outbound, pending) = mpsc::channel(QUEUE_CAPACITY);
        let (presence_ops, pending_presence) = mpsc::unbounded_channel();
        let (counts, pending_counts) = mpsc::unbounded_channel();
        let (history_queue, pending_history) = mpsc::channel(history::QUEUE_CAPACITY);
        Cluster {
            history_queue,
            pending_history: Mutex::new(Some(pending_history)),
            client: redis.client,
            shared_connection: OnceLock::new(),
            prefix: redis.prefix,
            node: format!("{:016x}", fastrand::u64(..)),
            outbound,
            pending: Mutex::new(Some(pending)),
            presence_ops,
            pending_presence: Mutex::new(Some(pending_presence)),
            counts,
            pending_counts: Mutex::new(Some(pending_counts)),
            connected: AtomicBool::new(false),
            started: Instant::now(),
            lost_at_ms: AtomicU64::new(0),
            regained_at_ms: AtomicU64::new(0),
            peers: AtomicU64::new(0),
            leaving: tokio_util::task::TaskTracker::new(),
            finish_presence: CancellationToken::new(),
        }
    }

    /// The node's one shared Redis connection, for queries and short scripts: the HTTP API's
    /// channel and user queries, the webhooks' grace checks, subscription counts, and any
    /// other module that needs Redis (clone it; clones share one multiplexed connection,
    /// which reconnects by itself after Redis comes back). Long-lived work that must notice a
    /// reconnection (pub/sub, the presence task) keeps its own connection.
    ///
    /// Commands fail fast while Redis is away ([`SHARED_RESPONSE_TIMEOUT`]), so callers can
    /// answer at once: 503 for cluster-wide queries, this node's ring for history reads.
    pub fn redis(&self) -> ConnectionManager {
        self.shared_connection
            .get_or_init(|| {
                let config = ConnectionManagerConfig::new()
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500))
                    .set_connection_timeout(Some(SHARED_CONNECT_TIMEOUT))
                    .set_response_timeout(Some(SHARED_RESPONSE_TIMEOUT));
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
                    .expect("a connection manager without push subscriptions is valid")
            })
            .clone()
    }

    /// The start of every key and channel of this deployment, for modules adding their own:
    /// `{prefix}:{app_id}:...`.
    pub fn key(&self, app_id: &str, rest: &str) -> String {
        format!("{}:{app_id}:{rest}", self.prefix)
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

    /// Whether cluster-wide answers are whole: Redis is reachable, and it is [`SETTLE`] since
    /// it came back (if it ever went away).
    pub fn is_settled(&self) -> bool {
        let regained = self.regained_at_ms.load(Ordering::Acquire);
        self.is_connected()
            && (regained == 0
                || self.elapsed_ms().saturating_sub(regained) >= SETTLE.as_millis() as u64)
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn set_connected(&self, up: bool) {
        if !up && self.connected.swap(false, Ordering::AcqRel) {
            self.lost_at_ms.store(self.elapsed_ms(), Ordering::Release);
        } else if up && !self.connected.swap(true, Ordering::AcqRel) {
            if self.lost_at_ms.load(Ordering::Acquire) != 0 {
                self.regained_at_ms
                    .store(self.elapsed_ms().max(1), Ordering::Release);
            }
        }
    }

    /// Runs `command` on the shared connection, and once more if it fails: a connection
    /// Redis dropped (a restart) fails once, and the manager reconnects for the second try.
    pub async fn retried<T, F, Fut>(&self, command: F) -> redis::RedisResult<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        match command(self.redis()).await {
            Err(err) if err.is_io_error() || err.is_connection_dropped() || err.is_timeout() => {
                tracing::debug!(%err, "redis: command failed; trying again");
                command(self.redis()).await
            }
            done => done,
        }
    }

    /// A cluster-wide query on the shared connection ([`Cluster::retried`]). None while not
    /// settled or if it fails: callers answer "unavailable", never this node's part as the
    /// whole.
    pub async fn query<T, F, Fut>(&self, query: F) -> Option<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if !self.is_settled() {
            return None;
        }
        self.retried(query)
            .await
            .map_err(|err| tracing::debug!(%err, "redis: query failed"))
            .ok()
    }

    /// Records how many nodes subscribe to `channel` (an app's), while settled.
    pub(crate) async fn note_peers(
        &self,
        conn: &mut impl redis::aio::ConnectionLike,
        channel: &str,
    ) -> redis::RedisResult<()> {
        if self.is_settled() {
            let peers = subscribers(conn, channel).await?;
            self.peers.store(peers, Ordering::Release);
        }
        Ok(())
    }

    /// After a reconnection: waits until as many nodes subscribe to `channel` as did before
    /// (for at most [`OUTAGE_HOLD`]), so what this node held for them reaches them.
    pub(crate) async fn await_peers(
        &self,
        conn: &mut impl redis::aio::ConnectionLike,
        channel: &str,
    ) {
        let expected = self.peers.load(Ordering::Acquire);
        let deadline = tokio::time::Instant::now() + OUTAGE_HOLD;
        while expected > 0 && tokio::time::Instant::now() < deadline {
            match subscribers(conn, channel).await {
                Ok(now) if now < expected => tokio::time::sleep(Duration::from_millis(20)).await,
                _ => return,
            }
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
        tokio::spawn(publish(shared.clone(), cluster.clone(), queue));
        tokio::spawn(subscribe(shared.clone(), cluster.clone()));
    }
    let pending = cluster.pending_presence.lock().map(|mut p| p.take());
    if let Ok(Some(ops)) = pending {
        let finish = cluster.finish_presence.clone();
        let presence = presence::run(shared.clone(), cluster.clone(), ops, finish);
        cluster.leaving.spawn(presence);
    }
    let pending = cluster.pending_counts.lock().map(|mut p| p.take());
    if let Ok(Some(changed)) = pending {
        tokio::spawn(counts::run(shared.clone(), cluster.clone(), changed));
    }
    let pending = cluster.pending_history.lock().map(|mut p| p.take());
    if let Ok(Some(queue)) = pending {
        tokio::spawn(history::run(shared.clone(), cluster.clone(), queue));
    }
}

impl Cluster {
    /// At shutdown, once this node's connections are gone: applies their leaves, then waits
    /// (until `deadline` at most) for the departures' grace checks, so their `member_removed`
    /// and `channel_vacated` webhooks are queued before the webhooks are delivered. Members
    /// who reconnected to another node meanwhile are back, and not reported.
    pub async fn finish(&self, deadline: tokio::time::Instant) {
        self.finish_presence.cancel();
        self.leaving.close();
        if tokio::time::timeout_at(deadline, self.leaving.wait())
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace period over: departures not yet checked are dropped");
        }
    }
}

/// How many connections subscribe to `channel` (one per node).
async fn subscribers(
    conn: &mut impl redis::aio::ConnectionLike,
    channel: &str,
) -> redis::RedisResult<u64> {
    let (_, count): (String, u64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(conn)
        .await?;
    Ok(count)
}

/// The channel every node subscribes to, to count the nodes: the first app's.
pub(crate) fn peers_channel(shared: &Shared, cluster: &Cluster) -> Option<String> {
    shared
        .apps()
        .next()
        .map(|app| cluster.channel_of(&app.config.id))
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

/// Drains the queue into Redis, reconnecting when the connection fails; a message whose
/// publish failed is published again first on the next connection.
async fn publish(shared: Shared, cluster: Arc<Cluster>, mut queue: mpsc::Receiver<Envelope>) {
    let shutdown = shared.shutdown().clone();
    let peers_channel = peers_channel(&shared, &cluster);
    let mut unsent: Option<Envelope> = None;
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
        if unsent.is_some() {
            if let Some(channel) = &peers_channel {
                cluster.await_peers(&mut conn, channel).await;
            }
        }
        loop {
            let envelope = match unsent.take() {
                Some(envelope) => envelope,
                None => tokio::select! {
                    envelope = queue.recv() => match envelope {
                        Some(envelope) => envelope,
                        None => return,
                    },
                    _ = shutdown.cancelled() => return,
                },
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
                tracing::warn!(%err, "redis: publish failed; reconnecting to publish it again");
                unsent = Some(envelope);
                if !back_off(&mut retry, &shutdown).await {
                    return;
                }
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
    // The sender delivered its own messages already, except counts and history events: every
    // node, the sender included, delivers those in the order Redis published them.
    let everywhere = matches!(
        envelope.message,
        Message::SubscriptionCount { .. } | Message::History { .. }
    );
    if envelope.node == cluster.node && !everywhere {
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
        Message::Watchlist { user_id, online } => {
            let name = if online { "online" } else { "offline" };
            app.users.tell_watchers(&user_id, name);
        }
        Message::SubscriptionCount { channel, count } => {
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            app.channels.announce_count(&channel, Some(count));
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
            app.channels.deliver_positioned(
                &channel,
                &frame,
                except.as_ref(),
                &epoch.into(),
                offset,
            );
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
