//! Many nodes behind a load balancer, sharing one Redis or a Redis Cluster (`--redis-url`;
//! [`broker`] hides which, and every key is hash-tagged so each script stays in one slot: see
//! [`Cluster::key`] and [`Cluster::channel_key`]): what one node
//! publishes (API events, client events, terminated users) every other node delivers to its
//! own subscribers, exactly as if they were connected to the publisher.
//!
//! Each node delivers to its local subscribers first, without waiting for Redis, then hands the
//! already serialized frame to [`Cluster::forward`], which queues it without blocking; one task
//! publishes the queue to Redis (so two apps, or two deployments with different prefixes, never
//! see each other's events). Another task subscribes and delivers what the other nodes sent.
//! Both reconnect with backoff when Redis goes away, so delivery resumes by itself; meanwhile
//! the node keeps serving its own clients. Presence members are shared through Redis too: see
//! [`presence`].
//!
//! Routing is by interest: what concerns one channel (its events, positioned or not, and its
//! subscription counts) goes to that channel's own Redis channel,
//! `{prefix}:{{app_id:name}}:channel`, which a node subscribes to only while it has local
//! subscribers of it ([`Cluster::watch`], [`Cluster::unwatch_if_idle`]); what concerns the whole
//! app (terminations, watchlists) goes to `{prefix}:{{app_id}}:broadcast`, which every node
//! subscribes to. An event on a channel no node watches costs one `PUBLISH` that Redis hands to
//! nobody (on a channel with history, inside the script that also records it for later
//! resumes). A subscriber on a cluster is confirmed only once its node's subscription is in
//! place (the connection, or the presence task, awaits [`Cluster::watch`] first), so nothing
//! published after its `subscription_succeeded` can miss it; history channels read their
//! history after that too, so the replay and the live feed meet without a gap.
//!
//! On a Redis Cluster, pub/sub is sharded: a channel's Redis channel lives on the shard owning
//! its slot, and the app's on its own. A shard lost (its connection dropped) counts as Redis
//! lost: the subscribing task reconnects and subscribes to everything again, so what follows
//! holds for a shard restart as for a Redis restart.
//!
//! A Redis restart loses nothing a node forwards while Redis is away, up to the queue's
//! capacity: a message whose publish fails is kept and published again on the next
//! connection, in order, once the nodes subscribed before the outage have subscribed again
//! ([`Cluster::await_peers`], at most [`OUTAGE_HOLD`]): Redis pub/sub keeps nothing for a
//! node that is not subscribed yet. Events with history: see [`history`] (what a node's feed
//! missed is read from Redis). For [`SETTLE`] after Redis comes back, cluster-wide queries
//! answer "unavailable" (503) rather than a count some nodes have not put back yet.
//!
//! # The interface
//!
//! `cluster` sits below `state`: it knows the channel registry ([`ChannelRegistry`],
//! [`ConnectionHandle`], [`SocketId`]), the wire frames ([`crate::frame`]) and history's
//! positions ([`crate::history`]), and reaches the rest of the node only through two traits
//! the state side implements: [`Node`] (the apps, the shutdown token, the relay latency
//! metric) and [`LocalApp`] (one app: its id and registry, relaying to every node, its users
//! here, its webhooks). A new cluster feature follows that shape: its own file under
//! `cluster/` with `impl Cluster { .. }` for its Redis keys and scripts, ops queued to the
//! presence task ([`presence::Op`], holding `Arc<dyn LocalApp>`) when they must stay in order,
//! a [`Message`] variant when other nodes must act, and a method on [`LocalApp`] when it needs
//! something of the app that the registry does not hold.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::channels::{
    ChannelRegistry, ConnectionHandle, Feed, Gaps, OwnedPosition, PositionedEvent, SocketId,
};

pub use broker::{Broker, Connection};

pub mod broker;
pub mod counts;
pub mod history;
pub mod online;
pub mod presence;
pub mod reads;
pub mod user_status;

/// This node, as the cluster sees it; `state::Shared` implements it.
pub trait Node: Send + Sync + 'static {
    /// Every app this node serves.
    fn apps_here(&self) -> Vec<Arc<dyn LocalApp>>;
    fn app_here(&self, id: &str) -> Option<Arc<dyn LocalApp>>;
    /// Cancelled when the node stops: the cluster's tasks stop with it.
    fn stopping(&self) -> &CancellationToken;
    /// Another node's message arrived `latency` after it was sent (for the metrics).
    fn relayed(&self, latency: Duration);
}

/// One app on this node, as the cluster sees it; `state::App` implements it.
pub trait LocalApp: Send + Sync + 'static {
    /// Names the app's keys and channels in Redis.
    fn id(&self) -> &str;
    /// This node's subscribers, members and history of the app's channels.
    fn channels(&self) -> &ChannelRegistry;
    /// The most members a presence channel may have, cluster-wide.
    fn max_presence_members(&self) -> usize;
    /// The channel's history limits, or None when it keeps none.
    fn history_limits(&self, channel: &str) -> Option<crate::history::Limits>;
    /// Whether subscribers of `channel` are told its subscription count.
    fn wants_counts(&self, channel: &str) -> bool;
    /// Sends `frame` to the channel's subscribers on every node, this one's at once.
    fn relay(&self, channel: &str, frame: &Utf8Bytes, except: Option<&SocketId>);
    /// Closes the connections signed in here as `user_id`.
    fn terminate_here(&self, user_id: &str, code: u16);
    /// Tells the connections here watching `user_id` that they came online or went offline.
    fn tell_watchers(&self, user_id: &str, online: bool);
    /// Every user signed in here (put back in Redis after a reconnection).
    fn signed_in_here(&self) -> Vec<Arc<str>>;
    /// A sign-in as a lone node announces it (Redis away).
    fn announce_sign_in_here(
        &self,
        user_id: &str,
        conn: &ConnectionHandle,
        watchlist: &[Arc<str>],
        first_here: bool,
    );
    /// Whether the app sends webhooks at all, and `subscription_count` ones.
    fn webhooks_enabled(&self) -> bool;
    fn wants_count_webhooks(&self) -> bool;
    /// How long a departure waits for the member (or channel) to come back before its webhook.
    fn leave_grace(&self) -> Duration;
    /// Queues a webhook this node is the one to send.
    fn webhook(&self, hook: Hook<'_>);
    /// After a subscriber's `subscription_succeeded` went out: what follows it (read markers,
    /// members' statuses).
    fn confirmed(self: Arc<Self>, channel: &str, conn: &ConnectionHandle);
}

/// A webhook one node sends for the whole cluster (the one whose change Redis saw first).
#[derive(Debug, PartialEq, Eq)]
pub enum Hook<'a> {
    ChannelOccupied { channel: &'a str },
    ChannelVacated { channel: &'a str },
    MemberAdded { channel: &'a str, user_id: &'a str },
    MemberRemoved { channel: &'a str, user_id: &'a str },
    SubscriptionCount { channel: &'a str, total: u64 },
}

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
/// How long a subscriber waits for its node's subscription to a channel before it is confirmed
/// anyway (Redis slow: its events reach it once the subscription is in place).
const WATCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Most channels subscribed to, or unsubscribed from, in one command.
const WATCH_BATCH: usize = 1_024;
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
    pub broker: Broker,
    /// Starts every Redis key and channel, so deployments sharing a Redis stay apart.
    pub prefix: String,
}

impl RedisConfig {
    /// Checks the URL (or a cluster's comma-separated seed URLs); nothing connects until the
    /// server starts.
    pub fn new(url: &str, prefix: &str) -> Result<RedisConfig, String> {
        Ok(RedisConfig {
            broker: Broker::open(url)?,
            prefix: prefix.into(),
        })
    }
}

/// This node's link to the others.
pub struct Cluster {
    broker: Broker,
    /// The connection queries share (see [`Cluster::redis`]); made on first use, inside the
    /// runtime.
    shared_connection: OnceLock<Connection>,
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
    /// `regained_at_ms` as of this node's last registration of its members in Redis.
    registered_at_ms: AtomicU64,
    /// How many nodes were subscribed to the cluster's channels when last settled.
    peers: AtomicU64,
    /// The presence task and the webhook checks that wait out [`LocalApp::leave_grace`]
    /// after a departure: shutdown waits for them ([`Cluster::finish`]).
    leaving: tokio_util::task::TaskTracker,
    /// Tells the presence task to apply what is queued and stop.
    finish_presence: CancellationToken,
    /// Changes of this node's interest in channels, for the subscribing task.
    interest: mpsc::UnboundedSender<Interest>,
    pending_interest: Mutex<Option<mpsc::UnboundedReceiver<Interest>>>,
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
        let (interest, pending_interest) = mpsc::unbounded_channel();
        Cluster {
            interest,
            pending_interest: Mutex::new(Some(pending_interest)),
            history_queue,
            pending_history: Mutex::new(Some(pending_history)),
            broker: redis.broker,
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
            registered_at_ms: AtomicU64::new(0),
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
    pub fn redis(&self) -> Connection {
        self.shared_connection
            .get_or_init(|| {
                self.broker
                    .shared()
                    .expect("the URL was checked, and the connection has no push subscriptions")
            })
            .clone()
    }

    /// A connection for publishing. Redis gets [`OUTAGE_HOLD`] to answer, not the redis
    /// crate's default 500 ms: a publish whose answer timed out is made again, and when Redis
    /// was only slow (a long script, a loaded machine) the first one went out too, so the event
    /// would arrive twice (with two positions, on a channel with history).
    async fn publishing_connection(&self) -> redis::RedisResult<Connection> {
        self.broker.connect(Some(OUTAGE_HOLD)).await
    }

    /// An app-wide key or channel of this deployment, for modules adding their own:
    /// `{prefix}:{{app_id}}:{rest}`. The braces are a Redis Cluster hash tag: every app-wide key
    /// of an app is in one slot, so a script may take several.
    pub fn key(&self, app_id: &str, rest: &str) -> String {
        format!("{}:{{{app_id}}}:{rest}", self.prefix)
    }

    /// A key or channel of one channel of an app: `{prefix}:{{app_id:channel}}:{rest}`, every
    /// one of them in the channel's slot (channel names hold no braces), so one script takes
    /// them all, and publishes on the channel's own Redis channel in the same slot.
    pub fn channel_key(&self, app_id: &str, channel: &str, rest: &str) -> String {
        format!("{}:{{{app_id}:{channel}}}:{rest}", self.prefix)
    }

    /// The app's Redis channel, which every node subscribes to (app-wide messages).
    fn channel_of(&self, app_id: &str) -> String {
        self.key(app_id, "broadcast")
    }

    /// One channel's Redis channel, which a node subscribes to while it has its subscribers.
    fn topic_of(&self, app_id: &str, channel: &str) -> String {
        self.channel_key(app_id, channel, "channel")
    }

    /// The command that publishes on a Redis channel (`SPUBLISH` on a cluster).
    pub(crate) fn publish_command(&self) -> &'static str {
        self.broker.publish_command()
    }

    /// Where a message goes: its channel's Redis channel, or the app's.
    fn destination(&self, envelope: &Envelope) -> String {
        match &envelope.message {
            Message::Event { channel, .. }
            | Message::History { channel, .. }
            | Message::SubscriptionCount { channel, .. } => self.topic_of(&envelope.app, channel),
            Message::Terminate { .. } | Message::Watchlist { .. } => self.channel_of(&envelope.app),
        }
    }

    /// Makes this node receive `channel`'s messages from the other nodes, and returns once
    /// Redis confirmed the subscription (at once if it was in place; after [`WATCH_TIMEOUT`] at
    /// most). Call it after registering the subscriber and before confirming it. While Redis is
    /// away it returns at once, but still asks: a (re)connection under way may have listed the
    /// channels with subscribers before this one came, and must subscribe to it too.
    pub async fn watch(&self, app_id: &str, channel: &str) {
        let (ready, done) = oneshot::channel();
        let watch = Interest::Watch {
            app_id: app_id.into(),
            channel: channel.into(),
            ready,
        };
        if self.interest.send(watch).is_err() || !self.is_connected() {
            return;
        }
        if tokio::time::timeout(WATCH_TIMEOUT, done).await.is_err() {
            tracing::warn!(channel, "redis: subscription not confirmed in time");
        }
    }

    /// After an unsubscribe here: stops receiving `channel`'s messages if nobody here is
    /// subscribed any more (checked by the subscribing task, in order with [`Cluster::watch`]).
    pub fn unwatch_if_idle(&self, app: Arc<dyn LocalApp>, channel: &str) {
        let check = Interest::Check {
            app,
            channel: channel.into(),
        };
        if self.interest.send(check).is_err() {
            tracing::debug!("cluster subscribing task gone");
        }
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
    /// it came back (if it ever went away) and this node put its own part back.
    pub fn is_settled(&self) -> bool {
        let regained = self.regained();
        self.is_connected()
            && (regained == 0
                || (self.is_registered()
                    && self.elapsed_ms().saturating_sub(regained) >= SETTLE.as_millis() as u64))
    }

    /// When Redis was last regained after a loss (ms since start; 0: never lost).
    fn regained(&self) -> u64 {
        self.regained_at_ms.load(Ordering::Acquire)
    }

    /// This node's members, users and counts are in Redis again since it was `regained`.
    fn registered(&self, regained: u64) {
        self.registered_at_ms.store(regained, Ordering::Release);
    }

    /// Whether this node's members, users and counts were put back since Redis was regained.
    fn is_registered(&self) -> bool {
        self.registered_at_ms.load(Ordering::Acquire) == self.regained()
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn set_connected(&self, up: bool) {
        if !up && self.connected.swap(false, Ordering::AcqRel) {
            self.lost_at_ms.store(self.elapsed_ms(), Ordering::Release);
        } else if up
            && !self.connected.swap(true, Ordering::AcqRel)
            && self.lost_at_ms.load(Ordering::Acquire) != 0
        {
            self.regained_at_ms
                .store(self.elapsed_ms().max(1), Ordering::Release);
        }
    }

    /// Runs `command` on the shared connection, and once more if it fails: a connection
    /// Redis dropped (a restart) fails once, and the manager reconnects for the second try.
    pub async fn retried<T, F, Fut>(&self, command: F) -> redis::RedisResult<T>
    where
        F: Fn(Connection) -> Fut,
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
        F: Fn(Connection) -> Fut,
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
        conn: &mut Connection,
        channel: &str,
    ) -> redis::RedisResult<()> {
        if self.is_settled() {
            let peers = conn.subscribers(channel).await?;
            self.peers.store(peers, Ordering::Release);
        }
        Ok(())
    }

    /// After a reconnection: waits until as many nodes subscribe to `channel` as did before
    /// (for at most [`OUTAGE_HOLD`]), so what this node held for them reaches them.
    pub(crate) async fn await_peers(&self, conn: &mut Connection, channel: &str) {
        let expected = self.peers.load(Ordering::Acquire);
        let deadline = tokio::time::Instant::now() + OUTAGE_HOLD;
        while expected > 0 && tokio::time::Instant::now() < deadline {
            match conn.subscribers(channel).await {
                Ok(now) if now < expected => tokio::time::sleep(Duration::from_millis(20)).await,
                _ => return,
            }
        }
    }
}

/// Starts publishing and subscribing; every task stops when `node` stops.
pub fn start(cluster: &Arc<Cluster>, node: Arc<dyn Node>) {
    let pending = cluster.pending.lock().map(|mut p| p.take());
    if let Ok(Some(queue)) = pending {
        tokio::spawn(publish(node.clone(), cluster.clone(), queue));
    }
    let pending = cluster.pending_interest.lock().map(|mut p| p.take());
    if let Ok(Some(interest)) = pending {
        tokio::spawn(subscribe(node.clone(), cluster.clone(), interest));
    }
    let pending = cluster.pending_presence.lock().map(|mut p| p.take());
    if let Ok(Some(ops)) = pending {
        let finish = cluster.finish_presence.clone();
        let presence = presence::run(node.clone(), cluster.clone(), ops, finish);
        cluster.leaving.spawn(presence);
    }
    let pending = cluster.pending_counts.lock().map(|mut p| p.take());
    if let Ok(Some(changed)) = pending {
        tokio::spawn(counts::run(node.clone(), cluster.clone(), changed));
    }
    let pending = cluster.pending_history.lock().map(|mut p| p.take());
    if let Ok(Some(queue)) = pending {
        tokio::spawn(history::run(node.clone(), cluster.clone(), queue));
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

/// A change of this node's interest in one channel.
enum Interest {
    /// A subscriber arrived: subscribe to the topic if not yet, then answer.
    Watch {
        app_id: String,
        channel: String,
        ready: oneshot::Sender<()>,
    },
    /// A subscriber left: unsubscribe if nobody here is subscribed any more.
    Check {
        app: Arc<dyn LocalApp>,
        channel: Arc<str>,
    },
}

/// The topics this node subscribes to, besides the apps' own.
#[derive(Default)]
struct Watched(HashSet<String>);

/// What a batch of [`Interest`] changes: topics to unsubscribe from and to subscribe to, the
/// subscribers waiting for it, and the channels (app id, name) newly subscribed to whose
/// subscriber did not wait (confirmed while Redis was away), to be caught up.
struct Applied {
    gone: Vec<String>,
    new: Vec<String>,
    waiting: Vec<oneshot::Sender<()>>,
    unconfirmed: Vec<(String, String)>,
}

impl Watched {
    /// Applies `batch` in order; returns the topics to unsubscribe from, those to subscribe
    /// to, who waits for the subscriptions, and the new channels nobody waits for. The registry is read when the batch is
    /// applied, after each subscriber it answers registered, so a channel is never dropped
    /// while someone here is subscribed.
    fn apply(&mut self, cluster: &Cluster, batch: Vec<Interest>) -> Applied {
        // What changed over the batch (a topic dropped then taken again is neither).
        let (mut gone, mut new) = (HashSet::new(), HashSet::new());
        let (mut waiting, mut unconfirmed) = (Vec::new(), Vec::new());
        for request in batch {
            match request {
                Interest::Watch {
                    app_id,
                    channel,
                    ready,
                } => {
                    let topic = cluster.topic_of(&app_id, &channel);
                    if self.0.insert(topic.clone()) && !gone.remove(&topic) {
                        new.insert(topic);
                        // Its subscriber was confirmed without waiting (Redis away): what was
                        // published before this subscription is read back once it is made.
                        if ready.is_closed() {
                            unconfirmed.push((app_id, channel));
                        }
                    }
                    waiting.push(ready);
                }
                Interest::Check { app, channel } => {
                    let topic = cluster.topic_of(app.id(), &channel);
                    if app.channels().occupancy(&channel).subscriptions == 0
                        && self.0.remove(&topic)
                        && !new.remove(&topic)
                    {
                        gone.insert(topic);
                    }
                }
            }
        }
        Applied {
            gone: gone.into_iter().collect(),
            new: new.into_iter().collect(),
            waiting,
            unconfirmed,
        }
    }

    /// Every channel with subscribers here now: what a new connection subscribes to.
    fn occupied(node: &dyn Node, cluster: &Cluster) -> Watched {
        let topics = node.apps_here().into_iter().flat_map(|app| {
            app.channels()
                .occupied("")
                .into_iter()
                .map(|summary| cluster.topic_of(app.id(), &summary.name))
                .collect::<Vec<_>>()
        });
        Watched(topics.collect())
    }
}

/// The channel every node subscribes to, to count the nodes: the first app's.
pub(crate) fn peers_channel(node: &dyn Node, cluster: &Cluster) -> Option<String> {
    node.apps_here()
        .first()
        .map(|app| cluster.channel_of(app.id()))
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
async fn publish(node: Arc<dyn Node>, cluster: Arc<Cluster>, mut queue: mpsc::Receiver<Envelope>) {
    let shutdown = node.stopping().clone();
    let peers_channel = peers_channel(&*node, &cluster);
    let mut unsent: Option<Envelope> = None;
    let mut retry = FIRST_RETRY;
    loop {
        let mut conn = match cluster.publishing_connection().await {
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
            pipe.cmd(cluster.publish_command())
                .arg(cluster.destination(&envelope))
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

/// Subscribes to every app's channel, and to each channel's while it has subscribers here, and
/// delivers what other nodes sent; on a lost connection, reconnects with backoff and subscribes
/// again (to the channels with subscribers then).
async fn subscribe(
    node: Arc<dyn Node>,
    cluster: Arc<Cluster>,
    mut interest: mpsc::UnboundedReceiver<Interest>,
) {
    let shutdown = node.stopping().clone();
    let channels: Vec<String> = node
        .apps_here()
        .iter()
        .map(|app| cluster.channel_of(app.id()))
        .collect();
    let mut retry = FIRST_RETRY;
    loop {
        let subscribed = async {
            let mut subscriber = cluster.broker.subscriber().await?;
            let watched = Watched::occupied(&*node, &cluster);
            let topics: Vec<String> = watched.0.iter().cloned().collect();
            subscriber.subscribe(&topics, true).await?;
            // The apps' channels last: other nodes count them to know this node is back
            // ([`Cluster::await_peers`]), so its channels must be in place by then.
            subscriber.subscribe(&channels, true).await?;
            redis::RedisResult::Ok((subscriber, watched))
        };
        let (mut subscriber, mut watched) = match subscribed.await {
            Ok(subscribed) => subscribed,
            Err(err) => {
                tracing::debug!(%err, "redis: cannot subscribe");
                if !back_off(&mut retry, &shutdown).await {
                    return;
                }
                continue;
            }
        };
        retry = FIRST_RETRY;
        // Subscribed: from here the feed brings every event; what it missed while this node
        // was not subscribed is in Redis (the feed waits meanwhile, so order holds).
        cluster.catch_up_all(&*node).await;
        cluster.set_connected(true);
        tracing::info!("redis: subscribed");
        loop {
            tokio::select! {
                message = subscriber.next() => {
                    let Some(message) = message else { break };
                    match message {
                        Ok(payload) => {
                            if let Some(past_gap) = deliver(&*node, &cluster, &payload) {
                                past_gap.catch_up(&cluster).await;
                            }
                        }
                        Err(err) => tracing::debug!(%err, "redis: unreadable message"),
                    }
                }
                request = interest.recv() => {
                    let Some(request) = request else { return };
                    let mut batch = vec![request];
                    while batch.len() < WATCH_BATCH {
                        match interest.try_recv() {
                            Ok(request) => batch.push(request),
                            Err(_) => break,
                        }
                    }
                    let applied = watched.apply(&cluster, batch);
                    let changed = async {
                        subscriber.subscribe(&applied.gone, false).await?;
                        subscriber.subscribe(&applied.new, true).await
                    };
                    if let Err(err) = changed.await {
                        tracing::debug!(%err, "redis: cannot change subscriptions");
                        break;
                    }
                    // Dropped senders tell the waiting subscribers too.
                    applied.waiting.into_iter().for_each(|ready| _ = ready.send(()));
                    for (app_id, channel) in applied.unconfirmed {
                        let Some(app) = node.app_here(&app_id) else { continue };
                        if let Some(after) = app.channels().feed(&channel) {
                            cluster.catch_up(&*app, &channel, &after).await;
                        }
                    }
                }
                _ = shutdown.cancelled() => return,
            }
        }
        drop(subscriber);
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

/// An event with history that arrived past a gap in this node's feed of its channel: to be
/// delivered once what is missing is ([`Cluster::catch_up`]).
struct PastGap {
    app: Arc<dyn LocalApp>,
    channel: String,
    frame: Utf8Bytes,
    except: Option<SocketId>,
    epoch: Arc<str>,
    offset: u64,
    /// The feed's newest position here.
    after: OwnedPosition,
}

impl PastGap {
    /// Delivers what the feed missed, then the event itself.
    async fn catch_up(self, cluster: &Cluster) {
        cluster
            .catch_up(&*self.app, &self.channel, &self.after)
            .await;
        let event = PositionedEvent {
            frame: &self.frame,
            except: self.except.as_ref(),
            epoch: &self.epoch,
            offset: self.offset,
        };
        let channels = self.app.channels();
        channels.deliver_positioned(&self.channel, event, Gaps::Accept);
    }
}

/// Delivers another node's message to this node's connections; an event past a gap in the
/// feed is handed back instead.
fn deliver(node: &dyn Node, cluster: &Cluster, payload: &str) -> Option<PastGap> {
    let Ok(envelope) = serde_json::from_str::<Envelope>(payload) else {
        tracing::debug!("redis: malformed cluster message");
        return None;
    };
    // The sender delivered its own messages already, except counts and history events: every
    // node, the sender included, delivers those in the order Redis published them.
    let everywhere = matches!(
        envelope.message,
        Message::SubscriptionCount { .. } | Message::History { .. }
    );
    if envelope.node == cluster.node && !everywhere {
        return None;
    }
    let app = node.app_here(&envelope.app)?;
    let elapsed = unix_micros().saturating_sub(envelope.sent_us);
    node.relayed(Duration::from_micros(elapsed));
    match envelope.message {
        Message::Event {
            channel,
            frame,
            except,
        } => {
            let except = except.as_deref().map(SocketId::from);
            app.channels()
                .publish(&channel, &Utf8Bytes::from(frame), except.as_ref());
        }
        Message::Terminate { user_id, code } => {
            app.terminate_here(&user_id, code);
        }
        Message::Watchlist { user_id, online } => {
            app.tell_watchers(&user_id, online);
        }
        Message::SubscriptionCount { channel, count } => {
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            app.channels().announce_count(&channel, Some(count));
        }
        Message::History {
            channel,
            frame,
            except,
            epoch: Some(epoch),
            offset: Some(offset),
        } => {
            let except = except.as_deref().map(SocketId::from);
            let (frame, epoch) = (Utf8Bytes::from(frame), Arc::<str>::from(epoch));
            let event = PositionedEvent {
                frame: &frame,
                except: except.as_ref(),
                epoch: &epoch,
                offset,
            };
            if let Feed::Gap(after) =
                app.channels()
                    .deliver_positioned(&channel, event, Gaps::Report)
            {
                return Some(PastGap {
                    app,
                    channel,
                    frame,
                    except,
                    epoch,
                    offset,
                    after,
                });
            }
        }
        Message::History { .. } => tracing::debug!("redis: history event without a position"),
    }
    None
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
    fn channel_messages_go_to_their_channel_and_user_messages_to_the_app() {
        let cluster = Cluster::new(RedisConfig::new("redis://127.0.0.1:1", "p").unwrap());
        let envelope = |message| Envelope {
            node: "n".into(),
            app: "a".into(),
            sent_us: 0,
            message,
        };
        let event = envelope(Message::Event {
            channel: "c".into(),
            frame: "{}".into(),
            except: None,
        });
        let count = envelope(Message::SubscriptionCount {
            channel: "c".into(),
            count: 1,
        });
        let terminate = envelope(Message::Terminate {
            user_id: "u".into(),
            code: 4009,
        });
        assert_eq!(cluster.destination(&event), "p:{a:c}:channel");
        assert_eq!(cluster.destination(&count), "p:{a:c}:channel");
        assert_eq!(cluster.destination(&terminate), "p:{a}:broadcast");
    }

    #[test]
    fn every_script_takes_keys_of_one_slot_and_channels_spread_over_slots() {
        let seeds = "redis://127.0.0.1:7000,redis://127.0.0.1:7001";
        let cluster = Cluster::new(RedisConfig::new(seeds, "overtone").unwrap());
        let one_slot = |what: &str, keys: &[String]| {
            let slots: HashSet<u16> = keys.iter().map(|key| broker::slot(key)).collect();
            assert_eq!(slots.len(), 1, "{what}: {keys:?}");
        };
        let channels = [
            ("app", "presence-room"),
            ("1234", "private-encrypted-x=@,.;_-"),
            ("a:b", "c"),
            // App ids are not empty, but may hold braces: the tag is then shorter, still one.
            ("a}b{", "-"),
        ];
        for (app, channel) in channels {
            let (topic, cache) = (
                cluster.topic_of(app, channel),
                cluster.cache_key(app, channel),
            );
            // history::PUBLISH and HISTORY, and an event's publish with a cache channel's SET.
            let stream = cluster.stream_key(app, channel);
            let meta = cluster.meta_key(app, channel);
            one_slot("history", &[stream, meta, cache.clone(), topic.clone()]);
            one_slot("event", &[topic, cache]);
            // presence::JOIN and LEAVE.
            let presence = cluster.presence_key(app, channel);
            one_slot("presence", &[presence, cluster.users_key(app, channel)]);
            let (markers, order) = reads::keys(&cluster, app, channel);
            one_slot("reads", &[markers, order]);
            // presence::COUNT, and counts::ANNOUNCE publishing on the app's channel.
            let node_counts = cluster.node_counts_key(app, &cluster.node);
            let totals = cluster.totals_key(app);
            one_slot("counts", &[node_counts, totals, cluster.channel_of(app)]);
            // online::SIGN_IN and SIGN_OUT.
            let node_users = cluster.node_users_key(app, &cluster.node);
            one_slot("sign-in", &[node_users, cluster.online_key(app)]);
        }
        let slots: HashSet<u16> = (0..100)
            .map(|i| broker::slot(&cluster.topic_of("app", &format!("room-{i}"))))
            .collect();
        assert!(
            slots.len() > 90,
            "one app's channels in {} slots",
            slots.len()
        );
    }

    #[test]
    fn a_bad_url_is_refused() {
        assert!(RedisConfig::new("not a url", "overtone").is_err());
        let cluster = Cluster::new(RedisConfig::new("redis://127.0.0.1:1", "p").unwrap());
        assert_eq!(cluster.channel_of("app"), "p:{app}:broadcast");
        assert_eq!(
            cluster.topic_of("app", "private-x"),
            "p:{app:private-x}:channel"
        );
        assert!(!cluster.disconnected_for(Duration::from_secs(60)));
        assert!(cluster.disconnected_for(Duration::ZERO));
    }
}
