//! The Redis the nodes meet on: one server, or a Redis Cluster (`--redis-url` with several
//! comma-separated seed nodes). Everything else in `cluster` talks to either through the two
//! types here, and never asks which it is:
//!
//! - [`Connection`], for commands and scripts: on one Redis, a multiplexed connection (or the
//!   shared, self-reconnecting manager); on a cluster, the redis crate's cluster connection,
//!   which routes each command to the master owning its keys' slot and follows `MOVED`.
//!   Commands of several slots go through [`Connection::per_slot`].
//! - [`Subscriber`], for pub/sub: `SUBSCRIBE` on one Redis; on a cluster, sharded pub/sub
//!   (`SSUBSCRIBE`, on RESP3, one channel per command since each may live on another shard),
//!   so a channel's messages cross only the shard that owns it. Publishing follows
//!   ([`Broker::publish_command`]).
//!
//! On a cluster every key and channel is hash-tagged (see [`super::Cluster::key`]) so that one
//! script only touches keys of one slot, which Redis Cluster requires.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::try_join_all;
use futures_util::StreamExt;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, FromRedisValue, PushKind, RedisFuture, RedisResult, Value};
use tokio::sync::{mpsc, OnceCell};

/// Where the nodes meet, as `--redis-url` says.
#[derive(Debug, Clone)]
pub enum Broker {
    Single(redis::Client),
    /// A Redis Cluster, by its seed nodes' URLs.
    Cluster(Vec<String>),
}

impl Broker {
    /// One URL is one Redis; several, comma-separated, are a cluster's seed nodes. Checks the
    /// URLs; nothing connects.
    pub fn open(url: &str) -> Result<Broker, String> {
        let seeds: Vec<String> = url.split(',').map(|s| s.trim().to_owned()).collect();
        if seeds.len() == 1 {
            let client = redis::Client::open(url).map_err(|e| format!("redis url {url:?}: {e}"))?;
            return Ok(Broker::Single(client));
        }
        for seed in &seeds {
            redis::Client::open(seed.as_str())
                .map_err(|e| format!("redis cluster seed {seed:?}: {e}"))?;
        }
        Self::cluster_client(&seeds, super::SHARED_RESPONSE_TIMEOUT, None)
            .map_err(|e| format!("redis cluster {url:?}: {e}"))?;
        Ok(Broker::Cluster(seeds))
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Broker::Cluster(_))
    }

    /// The command (and Lua call) that publishes on a channel of this broker.
    pub fn publish_command(&self) -> &'static str {
        match self {
            Broker::Single(_) => "PUBLISH",
            Broker::Cluster(_) => "SPUBLISH",
        }
    }

    fn cluster_client(
        seeds: &[String],
        response_timeout: Duration,
        pushes: Option<mpsc::UnboundedSender<redis::PushInfo>>,
    ) -> RedisResult<ClusterClient> {
        let mut builder = redis::cluster::ClusterClientBuilder::new(seeds.to_vec())
            .connection_timeout(super::SHARED_CONNECT_TIMEOUT)
            .response_timeout(response_timeout)
            // A shard that is away fails its commands fast: callers reconnect and retry on
            // their own schedule (as with one Redis).
            .retries(2)
            .min_retry_wait(50)
            .max_retry_wait(500);
        if let Some(pushes) = pushes {
            builder = builder
                .use_protocol(redis::ProtocolVersion::RESP3)
                .push_sender(pushes);
        }
        builder.build()
    }

    /// The connection a node's queries share: made on first use, and it reconnects by itself.
    pub fn shared(&self) -> RedisResult<Connection> {
        match self {
            Broker::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500))
                    .set_connection_timeout(Some(super::SHARED_CONNECT_TIMEOUT))
                    .set_response_timeout(Some(super::SHARED_RESPONSE_TIMEOUT));
                ConnectionManager::new_lazy_with_config(client.clone(), config)
                    .map(Connection::Shared)
            }
            Broker::Cluster(seeds) => {
                let client = Self::cluster_client(seeds, super::SHARED_RESPONSE_TIMEOUT, None)?;
                Ok(Connection::Cluster(Arc::new(ClusterLink {
                    client,
                    conn: OnceCell::new(),
                })))
            }
        }
    }

    /// A new connection of its own (a task that must notice when Redis went away), connected.
    /// `response_timeout`: how long Redis gets to answer (None: the redis crate's default on
    /// one Redis, [`super::SHARED_RESPONSE_TIMEOUT`] on a cluster).
    pub async fn connect(&self, response_timeout: Option<Duration>) -> RedisResult<Connection> {
        match self {
            Broker::Single(client) => {
                let mut config = redis::AsyncConnectionConfig::new();
                if let Some(timeout) = response_timeout {
                    config = config.set_response_timeout(Some(timeout));
                }
                let conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(Connection::Single(conn))
            }
            Broker::Cluster(seeds) => {
                let timeout = response_timeout.unwrap_or(super::SHARED_RESPONSE_TIMEOUT);
                let client = Self::cluster_client(seeds, timeout, None)?;
                let conn = client.get_async_connection().await?;
                Ok(Connection::Cluster(Arc::new(ClusterLink {
                    client,
                    conn: OnceCell::new_with(Some(conn)),
                })))
            }
        }
    }

    /// A new pub/sub connection, subscribed to nothing yet.
    pub async fn subscriber(&self) -> RedisResult<Subscriber> {
        match self {
            Broker::Single(client) => {
                let (sink, stream) = client.get_async_pubsub().await?.split();
                Ok(Subscriber::Single(sink, stream))
            }
            Broker::Cluster(seeds) => {
                let (pushes, received) = mpsc::unbounded_channel();
                let client =
                    Self::cluster_client(seeds, super::SHARED_RESPONSE_TIMEOUT, Some(pushes))?;
                let conn = client.get_async_connection().await?;
                Ok(Subscriber::Cluster(conn, received))
            }
        }
    }
}

/// A connection for commands and scripts; clones share it.
#[derive(Clone)]
pub enum Connection {
    /// One Redis, reconnecting by itself: the shared connection.
    Shared(ConnectionManager),
    /// One Redis, failing once it is gone: its owner reconnects.
    Single(MultiplexedConnection),
    /// A Redis Cluster.
    Cluster(Arc<ClusterLink>),
}

/// A Redis Cluster connection, made on first use; after that it reconnects to a shard by
/// itself.
pub struct ClusterLink {
    client: ClusterClient,
    conn: OnceCell<ClusterConnection>,
}

impl ClusterLink {
    async fn get(&self) -> RedisResult<ClusterConnection> {
        let conn = self
            .conn
            .get_or_try_init(|| self.client.get_async_connection())
            .await?;
        Ok(conn.clone())
    }
}

impl Connection {
    /// Runs `commands`, each with a key of the slot it touches, and returns their replies in
    /// order: in one pipeline on one Redis; on a cluster (where a pipeline cannot cross slots),
    /// one pipeline per slot, in order within it, side by side. Any command's error is the
    /// whole call's.
    pub async fn per_slot<T: FromRedisValue>(
        &mut self,
        commands: Vec<(String, Cmd)>,
    ) -> RedisResult<T> {
        let replies = self.replies_per_slot(commands, false).await?;
        Ok(T::from_redis_value(Value::Array(replies))?)
    }

    /// As [`Connection::per_slot`], but each command's error (one Redis refused) is its own
    /// reply: only a lost connection fails the call.
    pub async fn per_slot_each(
        &mut self,
        commands: Vec<(String, Cmd)>,
    ) -> RedisResult<Vec<RedisResult<Value>>> {
        let replies = self.replies_per_slot(commands, true).await?;
        Ok(Vec::from_redis_value(Value::Array(replies))?)
    }

    async fn replies_per_slot(
        &mut self,
        commands: Vec<(String, Cmd)>,
        each: bool,
    ) -> RedisResult<Vec<Value>> {
        let pipeline = || {
            let mut pipe = redis::pipe();
            if each {
                pipe.ignore_errors();
            }
            pipe
        };
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        let Connection::Cluster(..) = self else {
            let mut pipe = pipeline();
            commands
                .into_iter()
                .for_each(|(_, cmd)| _ = pipe.add_command(cmd));
            return pipe.query_async(self).await;
        };
        // Each slot's commands, with where their replies go.
        let mut slots: HashMap<u16, (Vec<usize>, redis::Pipeline)> = HashMap::new();
        let count = commands.len();
        for (at, (key, cmd)) in commands.into_iter().enumerate() {
            let (places, pipe) = slots
                .entry(slot(&key))
                .or_insert_with(|| (Vec::new(), pipeline()));
            places.push(at);
            pipe.add_command(cmd);
        }
        let runs = slots.into_values().map(|(places, pipe)| {
            let mut conn = self.clone();
            async move {
                let replies: Vec<Value> = pipe.query_async(&mut conn).await?;
                RedisResult::Ok(places.into_iter().zip(replies))
            }
        });
        let mut replies = vec![Value::Nil; count];
        for (at, reply) in try_join_all(runs).await?.into_iter().flatten() {
            replies[at] = reply;
        }
        Ok(replies)
    }

    /// How many connections subscribe to `channel` (one per node): `PUBSUB NUMSUB` on one
    /// Redis, `PUBSUB SHARDNUMSUB` asked of the shard that owns the channel on a cluster.
    pub async fn subscribers(&mut self, channel: &str) -> RedisResult<u64> {
        if let Connection::Cluster(link) = self {
            let mut conn = link.get().await?;
            let mut count = redis::cmd("PUBSUB");
            count.arg("SHARDNUMSUB").arg(channel);
            let owner = Route::new(slot(channel), SlotAddr::Master);
            let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(owner));
            let counts: HashMap<String, u64> =
                FromRedisValue::from_redis_value(conn.route_command(count, routing).await?)?;
            return Ok(counts.values().sum());
        }
        let (_, count): (String, u64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(self)
            .await?;
        Ok(count)
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Shared(conn) => conn.req_packed_command(cmd),
            Connection::Single(conn) => conn.req_packed_command(cmd),
            Connection::Cluster(link) => Box::pin(async move {
                let mut conn = link.get().await?;
                conn.req_packed_command(cmd).await
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Shared(conn) => conn.req_packed_commands(pipeline, offset, count),
            Connection::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(link) => Box::pin(async move {
                let mut conn = link.get().await?;
                conn.req_packed_commands(pipeline, offset, count).await
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Shared(conn) => conn.get_db(),
            Connection::Single(conn) => conn.get_db(),
            Connection::Cluster(_) => 0,
        }
    }
}

/// A pub/sub connection.
pub enum Subscriber {
    Single(redis::aio::PubSubSink, redis::aio::PubSubStream),
    /// Sharded pub/sub: messages (and the connection's losses) arrive as RESP3 pushes.
    Cluster(ClusterConnection, mpsc::UnboundedReceiver<redis::PushInfo>),
}

impl Subscriber {
    /// Subscribes to `channels` (or unsubscribes), [`super::WATCH_BATCH`] at a time.
    pub async fn subscribe(&mut self, channels: &[String], subscribe: bool) -> RedisResult<()> {
        for chunk in channels.chunks(super::WATCH_BATCH) {
            match self {
                Subscriber::Single(sink, _) if subscribe => sink.subscribe(chunk).await?,
                Subscriber::Single(sink, _) => sink.unsubscribe(chunk).await?,
                // One channel per command: each may be on another shard.
                Subscriber::Cluster(conn, _) => {
                    try_join_all(chunk.iter().map(|channel| {
                        let mut conn = conn.clone();
                        async move {
                            if subscribe {
                                conn.ssubscribe(channel).await
                            } else {
                                conn.sunsubscribe(channel).await
                            }
                        }
                    }))
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// The next message's payload; None once the connection (to any shard) is lost.
    pub async fn next(&mut self) -> Option<RedisResult<String>> {
        match self {
            Subscriber::Single(_, stream) => {
                let message = stream.next().await?;
                Some(message.get_payload::<String>())
            }
            Subscriber::Cluster(_, pushes) => loop {
                let push = pushes.recv().await?;
                match push.kind {
                    PushKind::SMessage | PushKind::Message => {
                        let payload = push.data.into_iter().nth(1).unwrap_or(Value::Nil);
                        return Some(String::from_redis_value(payload).map_err(Into::into));
                    }
                    PushKind::Disconnection => return None,
                    _ => {}
                }
            },
        }
    }
}

/// The Redis Cluster slot of `key`: CRC16 (XMODEM) of its hash tag (the part between the
/// first `{` and the next `}`, if not empty), else of the whole key, modulo 16384.
pub fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &bytes[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16(tagged.unwrap_or(bytes)) % 16_384
}

fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &byte| {
        (0..8).fold(crc ^ (u16::from(byte) << 8), |crc, _| {
            if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_those_redis_computes() {
        // `CLUSTER KEYSLOT` answers, from Redis 7.
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("123456789"), 12739);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("{user1000}.following"), slot("user1000"));
        assert_eq!(slot("foo{}{bar}"), crc16(b"foo{}{bar}") % 16_384);
        assert_eq!(slot("foo{{bar}}zap"), slot("{bar"));
    }

    #[test]
    fn one_url_is_one_redis_and_several_are_a_cluster() {
        assert!(!Broker::open("redis://127.0.0.1:6379").unwrap().is_cluster());
        let cluster = Broker::open("redis://127.0.0.1:7000, redis://127.0.0.1:7001").unwrap();
        assert!(cluster.is_cluster());
        assert_eq!(cluster.publish_command(), "SPUBLISH");
        assert!(Broker::open("redis://127.0.0.1:7000,not a url").is_err());
    }
}
