//! Presence across nodes: a member joins when their first connection anywhere in the cluster
//! subscribes and leaves after their last one anywhere, and `here()` lists every node's members.
//!
//! In Redis, per app and presence channel: the hash `{prefix}:{app}:presence:{channel}` holds
//! one field `{node}:{user_id}` (user_info as value) per node the user is connected to, and
//! `{prefix}:{app}:presence-users:{channel}` counts, per user, the nodes they are on; a Lua
//! script updates both at once, so exactly one node sees a user's cluster-wide first join or
//! last leave and announces it to all. The same script enforces `max_presence_members` for the
//! cluster: a user new to a full channel is refused (the connection's local subscription is
//! undone and it gets the `LimitReached` error a lone node sends). Each node remembers its channels in
//! `{prefix}:{app}:node-channels:{node}` and heartbeats in the sorted set `{prefix}:nodes`; a
//! node silent for [`NODE_TIMEOUT`] is reaped by whichever node removes it first, which also
//! sends `member_removed` for the members only it had.
//!
//! Webhooks follow the cluster too: `member_added` is sent by the node that saw the user's
//! cluster-wide first join, `member_removed` by the one that saw their last leave, after
//! [`LEAVE_GRACE`] and only if they did not come back anywhere meanwhile; the hash
//! `{prefix}:{app}:hooked:{channel}` remembers who was reported, so a quick return reports
//! neither a removal nor a second arrival.
//!
//! One task applies this node's joins and leaves in order (a leave never overtakes its join).
//! Without Redis it falls back to this node's own members, and after reconnecting it
//! re-registers them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::channels::ConnectionHandle;
use crate::cluster::history::{Read, Snapshot};
use crate::frame;
use crate::history::{self, Limits};
use crate::presence::Member;
use crate::state::{App, Shared};
use crate::webhooks::{self, LEAVE_GRACE};

use super::Cluster;

/// How often a node heartbeats, and how long a silent node keeps its members.
const HEARTBEAT: Duration = Duration::from_secs(1);
pub const NODE_TIMEOUT: Duration = Duration::from_secs(5);

/// Adds a node's field; returns 1 if the user is new to the channel cluster-wide, 0 if not,
/// and -1 (changing nothing) if they are new and the channel already has ARGV[5] members
/// (`max_presence_members`; empty: no limit).
const JOIN: &str = r#"
local max = tonumber(ARGV[5])
if max and redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 and redis.call('HLEN', KEYS[2]) >= max then
  return -1
end
if redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) == 1 then
  redis.call('SADD', KEYS[3], ARGV[4])
  if redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 then return 1 end
end
return 0
"#;
/// Removes a node's field; returns 1 if that was the user's last node.
const LEAVE: &str = r#"
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  if redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then
    redis.call('HDEL', KEYS[2], ARGV[2])
    return 1
  end
end
return 0
"#;

/// Sets a node's subscription count for a channel and moves the cluster's total by the
/// difference (so applying the same count twice changes nothing); returns the total before
/// and after.
const COUNT: &str = r#"
local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local new = tonumber(ARGV[2])
if new > 0 then redis.call('HSET', KEYS[1], ARGV[1], new) else redis.call('HDEL', KEYS[1], ARGV[1]) end
local after = redis.call('HINCRBY', KEYS[2], ARGV[1], new - old)
if after <= 0 then redis.call('HDEL', KEYS[2], ARGV[1]); after = 0 end
return {after - (new - old), after}
"#;

/// A presence subscriber held until its channel's history is read (see
/// [`crate::channels::HistoryMode::Held`]).
pub struct Hold {
    pub id: u64,
    pub limits: Limits,
    /// The position the client asked to resume after.
    pub resume: Option<String>,
}

/// Sends `subscription_succeeded` with `data`: directly, or by releasing the held subscriber
/// with its history (`read`: what Redis answered, if it was asked).
fn confirm(
    app: &Arc<App>,
    channel: &str,
    subscriber: &ConnectionHandle,
    data: &str,
    hold: Option<&Hold>,
    read: Option<redis::RedisResult<Option<Snapshot>>>,
) {
    let Some(hold) = hold else {
        subscriber.send(frame::subscription_succeeded(channel, data));
        return crate::connection::confirmed(app, channel, subscriber);
    };
    let read = read.unwrap_or_else(|| {
        Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "redis away",
        )))
    });
    let release = crate::connection::release_of(
        read,
        channel,
        Some(hold.limits),
        hold.resume.as_deref(),
        false,
        data,
    );
    if app
        .channels
        .release(channel, &subscriber.socket_id, hold.id, release)
        .is_some()
    {
        crate::connection::confirmed(app, channel, subscriber);
    }
}

/// A presence or occupancy change on this node, in the order it happened.
pub enum Op {
    /// The channel's subscriptions on this node changed. The count is read when the op is
    /// applied: connections queue their ops in no set order, so a count taken at subscribe
    /// time could overwrite a newer one.
    Count { app: Arc<App>, channel: Arc<str> },
    /// `conn` subscribed as `member`; `first_here`: the user's first connection on this node.
    Join {
        app: Arc<App>,
        channel: Arc<str>,
        member: Member,
        conn: ConnectionHandle,
        first_here: bool,
        /// On a channel with history: the subscriber is held until its history is read.
        hold: Option<Hold>,
    },
    /// The user's last connection on this node left the channel.
    Leave {
        app: Arc<App>,
        channel: Arc<str>,
        user_id: Arc<str>,
    },
    /// `conn` signed in as `user_id` watching `watchlist`; `first_here`: the user's first
    /// signed-in connection on this node (see [`super::online`]).
    SignIn {
        app: Arc<App>,
        user_id: Arc<str>,
        conn: ConnectionHandle,
        watchlist: Vec<Arc<str>>,
        first_here: bool,
    },
    /// The user's last signed-in connection on this node is gone.
    SignOut { app: Arc<App>, user_id: Arc<str> },
}

/// What the cluster made of a join.
#[derive(Debug, PartialEq, Eq)]
enum Joined {
    /// The user's first connection anywhere: announce them.
    First,
    /// The user was a member already.
    Again,
    /// The channel has `max_presence_members` members already, and the user is not one.
    Refused,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Cluster {
    fn presence_key(&self, app: &str, channel: &str) -> String {
        format!("{}:{app}:presence:{channel}", self.prefix)
    }
    pub(super) fn users_key(&self, app: &str, channel: &str) -> String {
        format!("{}:{app}:presence-users:{channel}", self.prefix)
    }
    fn node_channels_key(&self, app: &str, node: &str) -> String {
        format!("{}:{app}:node-channels:{node}", self.prefix)
    }
    fn node_counts_key(&self, app: &str, node: &str) -> String {
        format!("{}:{app}:subscriptions:{node}", self.prefix)
    }
    pub(super) fn totals_key(&self, app: &str) -> String {
        format!("{}:{app}:subscriptions", self.prefix)
    }
    fn hooked_channels_key(&self, app: &str) -> String {
        format!("{}:{app}:hooked-channels", self.prefix)
    }
    fn hooked_key(&self, app: &str, channel: &str) -> String {
        format!("{}:{app}:hooked:{channel}", self.prefix)
    }
    fn nodes_key(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// Adds this node's connection of `member`; `max_members`: refuse a user new to the
    /// channel when it is full (None when putting known members back after a reconnection).
    async fn join(
        &self,
        conn: &mut MultiplexedConnection,
        app: &str,
        channel: &str,
        member: &Member,
        max_members: Option<usize>,
    ) -> redis::RedisResult<Joined> {
        let joined: i64 = redis::cmd("EVAL")
            .arg(JOIN)
            .arg(3)
            .arg(self.presence_key(app, channel))
            .arg(self.users_key(app, channel))
            .arg(self.node_channels_key(app, &self.node))
            .arg(format!("{}:{}", self.node, member.user_id))
            .arg(&*member.user_id)
            .arg(member.user_info.get())
            .arg(channel)
            .arg(max_members.map_or(String::new(), |max| max.to_string()))
            .query_async(conn)
            .await?;
        Ok(match joined {
            1 => Joined::First,
            -1 => Joined::Refused,
            _ => Joined::Again,
        })
    }

    async fn leave(
        &self,
        conn: &mut MultiplexedConnection,
        app: &str,
        channel: &str,
        node: &str,
        user_id: &str,
    ) -> redis::RedisResult<bool> {
        let last: i64 = redis::cmd("EVAL")
            .arg(LEAVE)
            .arg(2)
            .arg(self.presence_key(app, channel))
            .arg(self.users_key(app, channel))
            .arg(format!("{node}:{user_id}"))
            .arg(user_id)
            .query_async(conn)
            .await?;
        Ok(last == 1)
    }

    /// Every member of a presence channel cluster-wide, by user id.
    pub async fn members(
        &self,
        conn: &mut impl redis::aio::ConnectionLike,
        app: &str,
        channel: &str,
    ) -> redis::RedisResult<BTreeMap<String, String>> {
        let fields: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(self.presence_key(app, channel))
            .query_async(conn)
            .await?;
        Ok(fields
            .into_iter()
            .filter_map(|(field, info)| {
                let (_node, user) = field.split_once(':')?;
                Some((user.to_owned(), info))
            })
            .collect())
    }

    /// Sets `node`'s count for a channel; reports occupied or (after the grace) vacated when
    /// the cluster's total crosses zero.
    async fn count(
        self: &Arc<Self>,
        conn: &mut MultiplexedConnection,
        app: &Arc<App>,
        node: &str,
        channel: &str,
        subscriptions: usize,
    ) -> redis::RedisResult<()> {
        let id = &app.config.id;
        let (before, after): (i64, i64) = redis::cmd("EVAL")
            .arg(COUNT)
            .arg(2)
            .arg(self.node_counts_key(id, node))
            .arg(self.totals_key(id))
            .arg(channel)
            .arg(subscriptions)
            .query_async(conn)
            .await?;
        if before != after {
            self.count_changed(app, channel);
        }
        if !app.webhooks.enabled() {
            return Ok(());
        }
        if before == 0 && after > 0 {
            let new: i64 = redis::cmd("HSETNX")
                .arg(self.hooked_channels_key(id))
                .arg(channel)
                .arg(1)
                .query_async(conn)
                .await?;
            if new == 1 {
                webhooks::channel_occupied(app, channel);
            }
        } else if before > 0 && after == 0 {
            let (cluster, app, channel) = (self.clone(), app.clone(), channel.to_owned());
            self.leaving.spawn(async move {
                let id = &app.config.id;
                let (present, reported) = (cluster.totals_key(id), cluster.hooked_channels_key(id));
                match cluster.gone_after_grace(present, reported, &channel).await {
                    Ok(true) => webhooks::channel_vacated(&app, &channel),
                    Ok(false) => {}
                    Err(err) => tracing::warn!(%err, "redis: channel_vacated webhook not sent"),
                }
            });
        }
        Ok(())
    }

    /// Occupied channels whose names start with `prefix`, with their subscriptions and
    /// members cluster-wide, in two round trips; None if Redis cannot say (see
    /// [`Cluster::query`]).
    pub async fn occupied(&self, app: &str, prefix: &str) -> Option<Vec<(String, usize, usize)>> {
        self.query(|mut conn| async move {
            let totals: Vec<(String, usize)> = redis::cmd("HGETALL")
                .arg(self.totals_key(app))
                .query_async(&mut conn)
                .await?;
            let totals: Vec<(String, usize)> = totals
                .into_iter()
                .filter(|(name, _)| name.starts_with(prefix))
                .collect();
            let mut members = redis::pipe();
            for (name, _) in &totals {
                members.cmd("HLEN").arg(self.users_key(app, name));
            }
            let users: Vec<usize> = if totals.is_empty() {
                Vec::new()
            } else {
                members.query_async(&mut conn).await?
            };
            Ok(totals
                .into_iter()
                .zip(users)
                .map(|((name, subscriptions), users)| (name, subscriptions, users))
                .collect())
        })
        .await
    }

    /// Subscriptions and members of one channel cluster-wide; None if Redis cannot say.
    pub async fn occupancy(&self, app: &str, channel: &str) -> Option<(usize, usize)> {
        self.query(|mut conn| async move {
            let (subscriptions, users): (Option<usize>, usize) = redis::pipe()
                .cmd("HGET")
                .arg(self.totals_key(app))
                .arg(channel)
                .cmd("HLEN")
                .arg(self.users_key(app, channel))
                .query_async(&mut conn)
                .await?;
            Ok((subscriptions.unwrap_or(0), users))
        })
        .await
    }

    /// The user ids of a presence channel's members cluster-wide; None if Redis cannot say.
    pub async fn user_ids(&self, app: &str, channel: &str) -> Option<Vec<String>> {
        self.query(|mut conn| async move {
            let members = self.members(&mut conn, app, channel).await?;
            Ok(members.into_keys().collect())
        })
        .await
    }

    /// Sends `member_added` unless the user's arrival was reported already (and their
    /// departure not yet).
    async fn hook_added(
        &self,
        conn: &mut MultiplexedConnection,
        app: &App,
        channel: &str,
        user_id: &str,
    ) -> redis::RedisResult<()> {
        if !app.webhooks.enabled() {
            return Ok(());
        }
        let new: i64 = redis::cmd("HSETNX")
            .arg(self.hooked_key(&app.config.id, channel))
            .arg(user_id)
            .arg(1)
            .query_async(conn)
            .await?;
        if new == 1 {
            webhooks::member_added(app, channel, user_id);
        }
        Ok(())
    }

    /// After [`LEAVE_GRACE`]: unless `field` is back in the hash `present` (it returned on some
    /// node), removes it from the hash `reported`; true when this call removed it, so only one
    /// node sends the webhook.
    async fn gone_after_grace(
        &self,
        present: String,
        reported: String,
        field: &str,
    ) -> redis::RedisResult<bool> {
        tokio::time::sleep(LEAVE_GRACE).await;
        let mut conn = self.redis();
        let back: bool = redis::cmd("HEXISTS")
            .arg(present)
            .arg(field)
            .query_async(&mut conn)
            .await?;
        if back {
            return Ok(false);
        }
        let forgotten: i64 = redis::cmd("HDEL")
            .arg(reported)
            .arg(field)
            .query_async(&mut conn)
            .await?;
        Ok(forgotten == 1)
    }

    /// After [`LEAVE_GRACE`], sends `member_removed` if the user is on no node and their
    /// arrival was reported.
    fn hook_removed(self: &Arc<Self>, app: &Arc<App>, channel: &str, user_id: &str) {
        if !app.webhooks.enabled() {
            return;
        }
        let (cluster, app) = (self.clone(), app.clone());
        let (channel, user_id) = (channel.to_owned(), user_id.to_owned());
        self.leaving.spawn(async move {
            let id = &app.config.id;
            let (present, reported) = (
                cluster.users_key(id, &channel),
                cluster.hooked_key(id, &channel),
            );
            match cluster.gone_after_grace(present, reported, &user_id).await {
                Ok(true) => webhooks::member_removed(&app, &channel, &user_id),
                Ok(false) => {}
                Err(err) => tracing::warn!(%err, "redis: member_removed webhook not sent"),
            }
        });
    }

    /// Queues a presence change for the presence task.
    pub fn presence(&self, op: Op) {
        if self.presence_ops.send(op).is_err() {
            tracing::warn!("cluster presence task gone: change not shared");
        }
    }

    /// Removes nodes silent for [`NODE_TIMEOUT`]; the node that wins each removal announces
    /// the departure of the members only it had.
    async fn reap(
        self: &Arc<Self>,
        shared: &Shared,
        conn: &mut MultiplexedConnection,
    ) -> redis::RedisResult<()> {
        let cutoff = now_ms().saturating_sub(NODE_TIMEOUT.as_millis() as u64);
        let dead: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.nodes_key())
            .arg("-inf")
            .arg(cutoff)
            .query_async(conn)
            .await?;
        for node in dead {
            let won: i64 = redis::cmd("ZREM")
                .arg(self.nodes_key())
                .arg(&node)
                .query_async(conn)
                .await?;
            if won != 1 {
                continue;
            }
            tracing::warn!(node, "cluster: node timed out; removing its members");
            for app in shared.apps() {
                self.reap_users(conn, app, &node).await?;
                let key = self.node_channels_key(&app.config.id, &node);
                let channels: Vec<String> =
                    redis::cmd("SMEMBERS").arg(&key).query_async(conn).await?;
                for channel in channels {
                    let fields: Vec<String> = redis::cmd("HKEYS")
                        .arg(self.presence_key(&app.config.id, &channel))
                        .query_async(conn)
                        .await?;
                    let prefix = format!("{node}:");
                    for user_id in fields.iter().filter_map(|f| f.strip_prefix(&prefix)) {
                        if self
                            .leave(conn, &app.config.id, &channel, &node, user_id)
                            .await?
                        {
                            app.relay(&channel, &frame::member_removed(&channel, user_id), None);
                            self.hook_removed(app, &channel, user_id);
                        }
                    }
                }
                let _: i64 = redis::cmd("DEL").arg(&key).query_async(conn).await?;
                let counts: Vec<(String, usize)> = redis::cmd("HGETALL")
                    .arg(self.node_counts_key(&app.config.id, &node))
                    .query_async(conn)
                    .await?;
                for (channel, _) in counts {
                    self.count(conn, app, &node, &channel, 0).await?;
                }
            }
        }
        Ok(())
    }
}

/// Applies presence changes in order and heartbeats, reconnecting to Redis when needed; at
/// shutdown, once `finish` is cancelled (the node's connections are gone), applies the changes
/// still queued (their leaves) and stops.
pub async fn run(
    shared: Shared,
    cluster: Arc<Cluster>,
    mut ops: mpsc::UnboundedReceiver<Op>,
    finish: CancellationToken,
) {
    let mut connection: Option<MultiplexedConnection> = None;
    // Reconnection is tried on each heartbeat and before each change, never behind a backoff,
    // so a join is not kept waiting.
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            op = ops.recv() => match op {
                Some(op) => apply_or_keep_here(&shared, &cluster, &mut connection, &op).await,
                None => return,
            },
            _ = heartbeat.tick() => match connection.as_mut() {
                Some(conn) => {
                    if let Err(err) = beat(&shared, &cluster, conn).await {
                        tracing::warn!(%err, "redis: heartbeat failed; reconnecting");
                        connection = None;
                    }
                }
                None => connection = connect(&shared, &cluster).await,
            },
            _ = finish.cancelled() => {
                while let Ok(op) = ops.try_recv() {
                    apply_or_keep_here(&shared, &cluster, &mut connection, &op).await;
                }
                return;
            }
        }
    }
}

/// Applies one change through Redis, else on this node alone. A connection that Redis dropped
/// (a restart) fails once: reconnect, retry. Every change is idempotent, so a half-applied
/// first try does no harm.
async fn apply_or_keep_here(
    shared: &Shared,
    cluster: &Arc<Cluster>,
    connection: &mut Option<MultiplexedConnection>,
    op: &Op,
) {
    for _ in 0..2 {
        if connection.is_none() {
            *connection = connect(shared, cluster).await;
        }
        let Some(conn) = connection.as_mut() else {
            break;
        };
        match apply(cluster, conn, op).await {
            Ok(()) => break,
            Err(err) => {
                tracing::warn!(%err, "redis: presence update failed; reconnecting");
                *connection = None;
            }
        }
    }
    if connection.is_none() {
        apply_locally(op);
    }
}

/// Connects and puts this node's members and counts back (a Redis restart lost them).
async fn connect(shared: &Shared, cluster: &Arc<Cluster>) -> Option<MultiplexedConnection> {
    let registered = async {
        let mut conn = cluster.client.get_multiplexed_async_connection().await?;
        reregister(shared, cluster, &mut conn).await?;
        redis::RedisResult::Ok(conn)
    };
    match registered.await {
        Ok(conn) => Some(conn),
        Err(err) => {
            tracing::debug!(%err, "redis: cannot connect for presence");
            None
        }
    }
}

async fn beat(
    shared: &Shared,
    cluster: &Arc<Cluster>,
    conn: &mut MultiplexedConnection,
) -> redis::RedisResult<()> {
    let _: i64 = redis::cmd("ZADD")
        .arg(cluster.nodes_key())
        .arg(now_ms())
        .arg(&cluster.node)
        .query_async(conn)
        .await?;
    if let Some(channel) = super::peers_channel(shared, cluster) {
        cluster.note_peers(conn, &channel).await?;
    }
    cluster.reap(shared, conn).await
}

async fn reregister(
    shared: &Shared,
    cluster: &Arc<Cluster>,
    conn: &mut MultiplexedConnection,
) -> redis::RedisResult<()> {
    for app in shared.apps() {
        for (channel, member) in app.channels.local_members() {
            cluster
                .join(conn, &app.config.id, &channel, &member, None)
                .await?;
        }
        for user_id in app.users.signed_in_here() {
            cluster.sign_in(conn, &app.config.id, &user_id).await?;
        }
        for summary in app.channels.occupied("") {
            let subscriptions = summary.occupancy.subscriptions;
            cluster
                .count(conn, app, &cluster.node, &summary.name, subscriptions)
                .await?;
        }
    }
    beat(shared, cluster, conn).await
}

/// Applies one change through Redis.
async fn apply(
    cluster: &Arc<Cluster>,
    conn: &mut MultiplexedConnection,
    op: &Op,
) -> redis::RedisResult<()> {
    match op {
        Op::Count { app, channel } => {
            let subscriptions = app.channels.occupancy(channel).subscriptions;
            cluster
                .count(conn, app, &cluster.node, channel, subscriptions)
                .await
        }
        Op::Join {
            app,
            channel,
            member,
            conn: subscriber,
            first_here: _,
            hold,
        } => {
            let id = &app.config.id;
            // Every join goes to Redis, not only the user's first here: if that first one was
            // refused, a later connection of theirs must be checked against the limit too.
            let max = Some(app.config.max_presence_members);
            match cluster.join(conn, id, channel, member, max).await? {
                Joined::First => {
                    let added =
                        frame::member_added(channel, &member.user_id, member.user_info.get());
                    app.relay(channel, &added, Some(&subscriber.socket_id));
                    cluster
                        .hook_added(conn, app, channel, &member.user_id)
                        .await?;
                }
                Joined::Again => {}
                Joined::Refused => {
                    // Over the cluster's limit: undo the local subscription the connection made
                    // (it notices; see `Connection::is_subscribed`) and refuse it as one node
                    // would have.
                    let socket_id = &subscriber.socket_id;
                    if let Some(change) = app.channels.unsubscribe(channel, socket_id, false) {
                        let subscriptions = change.occupancy.subscriptions;
                        cluster
                            .count(conn, app, &cluster.node, channel, subscriptions)
                            .await?;
                    }
                    let max = app.config.max_presence_members;
                    subscriber.send(frame::member_limit(channel, max));
                    return Ok(());
                }
            }
            let members = cluster.members(conn, id, channel).await?;
            let data = subscription_data(&members);
            let read = match hold {
                Some(hold) => {
                    let after = hold.resume.as_deref().and_then(history::parse_position);
                    let read = Read {
                        after,
                        limit: hold.limits.max_events,
                        limits: hold.limits,
                        create: true,
                        cache: false,
                    };
                    Some(cluster.read_history(id, channel, read).await)
                }
                None => None,
            };
            confirm(app, channel, subscriber, &data, hold.as_ref(), read);
            Ok(())
        }
        Op::Leave {
            app,
            channel,
            user_id,
        } => {
            let (id, node) = (&app.config.id, &cluster.node);
            if cluster.leave(conn, id, channel, node, user_id).await? {
                app.relay(channel, &frame::member_removed(channel, user_id), None);
                cluster.hook_removed(app, channel, user_id);
            }
            Ok(())
        }
        Op::SignIn {
            app,
            user_id,
            conn: subscriber,
            watchlist,
            first_here,
        } => {
            cluster
                .apply_sign_in(conn, app, user_id, subscriber, watchlist, *first_here)
                .await
        }
        Op::SignOut { app, user_id } => cluster.apply_sign_out(conn, app, user_id).await,
    }
}

/// Applies one change from this node's members alone, while Redis is away: local clients
/// keep working; the cluster learns of this node's members when it reconnects.
fn apply_locally(op: &Op) {
    match op {
        Op::Count { app, channel, .. } => super::counts::announce_locally(app, channel),
        Op::Join {
            app,
            channel,
            member,
            conn: subscriber,
            first_here,
            hold,
        } => {
            if *first_here {
                let added = frame::member_added(channel, &member.user_id, member.user_info.get());
                app.channels
                    .publish(channel, &added, Some(&subscriber.socket_id));
            }
            let data = app.channels.local_presence_data(channel);
            confirm(app, channel, subscriber, &data, hold.as_ref(), None);
        }
        Op::Leave {
            app,
            channel,
            user_id,
        } => {
            app.channels
                .publish(channel, &frame::member_removed(channel, user_id), None);
        }
        Op::SignIn {
            app,
            user_id,
            conn: subscriber,
            watchlist,
            first_here,
        } => app
            .users
            .announce_sign_in(user_id, subscriber, watchlist, *first_here),
        Op::SignOut { app, user_id } => app.users.tell_watchers(user_id, "offline"),
    }
}

/// `{"presence":{"ids","hash","count"}}` from cluster-wide members (user_info kept as sent).
fn subscription_data(members: &BTreeMap<String, String>) -> String {
    let null = RawValue::from_string("null".into()).expect("null is JSON");
    let hash: BTreeMap<&str, Box<RawValue>> = members
        .iter()
        .map(|(id, info)| {
            let info = RawValue::from_string(info.clone()).unwrap_or_else(|_| null.clone());
            (id.as_str(), info)
        })
        .collect();
    let ids: Vec<&str> = members.keys().map(String::as_str).collect();
    serde_json::json!({"presence": {"ids": ids, "hash": hash, "count": ids.len()}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_data_keeps_user_info_and_survives_bad_json() {
        let members = BTreeMap::from([
            ("1".to_string(), r#"{"name":"Ann"}"#.to_string()),
            ("2".to_string(), "not json".to_string()),
        ]);
        let v: serde_json::Value = serde_json::from_str(&subscription_data(&members)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"presence":{"ids":["1","2"],"hash":{"1":{"name":"Ann"},"2":null},"count":2}})
        );
    }
}
