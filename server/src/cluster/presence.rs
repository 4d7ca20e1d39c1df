//! Presence across nodes: a member joins when their first connection anywhere in the cluster
//! subscribes and leaves after their last one anywhere, and `here()` lists every node's members.
//!
//! In Redis, per app and presence channel: the hash `{prefix}:{{app:channel}}:presence` holds
//! one field `{node}:{user_id}` (user_info as value) per node the user is connected to, and
//! `{prefix}:{{app:channel}}:presence-users` counts, per user, the nodes they are on; a Lua
//! script updates both at once, so exactly one node sees a user's cluster-wide first join or
//! last leave and announces it to all. The same script enforces `max_presence_members` for the
//! cluster: a user new to a full channel is refused (the connection's local subscription is
//! undone and it gets the `LimitReached` error a lone node sends). Each node remembers its channels in
//! `{prefix}:{{app}}:node-channels:{node}` and heartbeats in the sorted set `{prefix}:nodes`; a
//! node silent for [`NODE_TIMEOUT`] is reaped by whichever node removes it first, which also
//! sends `member_removed` for the members only it had.
//!
//! Webhooks follow the cluster too: `member_added` is sent by the node that saw the user's
//! cluster-wide first join, `member_removed` by the one that saw their last leave, after
//! [`LocalApp::leave_grace`] and only if they did not come back anywhere meanwhile; the hash
//! `{prefix}:{{app:channel}}:hooked` remembers who was reported, so a quick return reports
//! neither a removal nor a second arrival.
//!
//! One task applies this node's joins and leaves in order (a leave never overtakes its join).
//! Without Redis it falls back to this node's own members, and after reconnecting it
//! re-registers them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::Utf8Bytes;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::channels::ConnectionHandle;
use crate::frame;
use crate::history::{self, Limits};
use crate::presence::Member;

use super::history::{release_of, Read, Snapshot};
use super::{Cluster, Connection, Hook, LocalApp, Node};

/// How often a node heartbeats, and how long a silent node keeps its members.
const HEARTBEAT: Duration = Duration::from_secs(1);
pub const NODE_TIMEOUT: Duration = Duration::from_secs(5);

/// Adds a node's field; returns 1 if the user is new to the channel cluster-wide, 0 if not,
/// and -1 (changing nothing) if they are new and the channel already has ARGV[4] members
/// (`max_presence_members`; empty: no limit). KEYS: the channel's, one slot.
const JOIN: &str = r#"
local max = tonumber(ARGV[4])
if max and redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 and redis.call('HLEN', KEYS[2]) >= max then
  return -1
end
if redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) == 1 then
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
    app: &Arc<dyn LocalApp>,
    channel: &str,
    subscriber: &ConnectionHandle,
    data: &str,
    hold: Option<&Hold>,
    read: Option<redis::RedisResult<Option<Snapshot>>>,
) {
    let Some(hold) = hold else {
        subscriber.send(frame::subscription_succeeded(channel, data));
        return app.clone().confirmed(channel, subscriber);
    };
    let read = read.unwrap_or_else(|| {
        Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "redis away",
        )))
    });
    let release = release_of(
        read,
        channel,
        Some(hold.limits),
        hold.resume.as_deref(),
        false,
        data,
    );
    if app
        .channels()
        .release(channel, &subscriber.socket_id, hold.id, release)
        .is_some()
    {
        app.clone().confirmed(channel, subscriber);
    }
}

/// A presence or occupancy change on this node, in the order it happened.
pub enum Op {
    /// The channel's subscriptions on this node changed. The count is read when the op is
    /// applied: connections queue their ops in no set order, so a count taken at subscribe
    /// time could overwrite a newer one.
    Count {
        app: Arc<dyn LocalApp>,
        channel: Arc<str>,
    },
    /// `conn` subscribed as `member`; `first_here`: the user's first connection on this node.
    Join {
        app: Arc<dyn LocalApp>,
        channel: Arc<str>,
        member: Member,
        conn: ConnectionHandle,
        first_here: bool,
        /// On a channel with history: the subscriber is held until its history is read.
        hold: Option<Hold>,
    },
    /// The user's last connection on this node left the channel.
    Leave {
        app: Arc<dyn LocalApp>,
        channel: Arc<str>,
        user_id: Arc<str>,
    },
    /// `conn` signed in as `user_id` watching `watchlist`; `first_here`: the user's first
    /// signed-in connection on this node (see [`super::online`]).
    SignIn {
        app: Arc<dyn LocalApp>,
        user_id: Arc<str>,
        conn: ConnectionHandle,
        watchlist: Vec<Arc<str>>,
        first_here: bool,
        /// `pusher:signin_success`, sent once the sign-in is applied: a client that acts on it
        /// (closes its other connection, on another node) cannot make the user seem offline
        /// meanwhile.
        success: Utf8Bytes,
    },
    /// The user's last signed-in connection on this node is gone.
    SignOut {
        app: Arc<dyn LocalApp>,
        user_id: Arc<str>,
    },
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
    pub(super) fn presence_key(&self, app: &str, channel: &str) -> String {
        self.channel_key(app, channel, "presence")
    }
    pub(super) fn users_key(&self, app: &str, channel: &str) -> String {
        self.channel_key(app, channel, "presence-users")
    }
    fn node_channels_key(&self, app: &str, node: &str) -> String {
        self.key(app, &format!("node-channels:{node}"))
    }
    pub(super) fn node_counts_key(&self, app: &str, node: &str) -> String {
        self.key(app, &format!("subscriptions:{node}"))
    }
    pub(super) fn totals_key(&self, app: &str) -> String {
        self.key(app, "subscriptions")
    }
    fn hooked_channels_key(&self, app: &str) -> String {
        self.key(app, "hooked-channels")
    }
    fn hooked_key(&self, app: &str, channel: &str) -> String {
        self.channel_key(app, channel, "hooked")
    }
    fn nodes_key(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// Adds this node's connection of `member`; `max_members`: refuse a user new to the
    /// channel when it is full (None when putting known members back after a reconnection).
    async fn join(
        &self,
        conn: &mut Connection,
        app: &str,
        channel: &str,
        member: &Member,
        max_members: Option<usize>,
    ) -> redis::RedisResult<Joined> {
        // The node's channels first, in another slot: a node that dies between the two leaves
        // a channel to reap with none of its members in it, which is harmless.
        let _: i64 = redis::cmd("SADD")
            .arg(self.node_channels_key(app, &self.node))
            .arg(channel)
            .query_async(conn)
            .await?;
        let joined: i64 = redis::cmd("EVAL")
            .arg(JOIN)
            .arg(2)
            .arg(self.presence_key(app, channel))
            .arg(self.users_key(app, channel))
            .arg(format!("{}:{}", self.node, member.user_id))
            .arg(&*member.user_id)
            .arg(member.user_info.get())
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
        conn: &mut Connection,
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
        conn: &mut Connection,
        app: &Arc<dyn LocalApp>,
        node: &str,
        channel: &str,
        subscriptions: usize,
    ) -> redis::RedisResult<()> {
        let id = app.id();
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
        if !app.webhooks_enabled() {
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
                app.webhook(Hook::ChannelOccupied { channel });
            }
        } else if before > 0 && after == 0 {
            let (cluster, app, channel) = (self.clone(), app.clone(), channel.to_owned());
            self.leaving.spawn(async move {
                let id = app.id();
                let (present, reported) = (cluster.totals_key(id), cluster.hooked_channels_key(id));
                let grace = app.leave_grace();
                match cluster
                    .gone_after_grace(grace, present, reported, &channel)
                    .await
                {
                    Ok(true) => app.webhook(Hook::ChannelVacated { channel: &channel }),
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
            let members = totals
                .iter()
                .map(|(name, _)| {
                    let key = self.users_key(app, name);
                    (key.clone(), redis::cmd("HLEN").arg(key).clone())
                })
                .collect();
            let users: Vec<usize> = conn.per_slot(members).await?;
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
            let (totals, users) = (self.totals_key(app), self.users_key(app, channel));
            let subscriptions = redis::cmd("HGET").arg(&totals).arg(channel).clone();
            let members = redis::cmd("HLEN").arg(&users).clone();
            let (subscriptions, users): (Option<usize>, usize) = conn
                .per_slot(vec![(totals, subscriptions), (users, members)])
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
        conn: &mut Connection,
        app: &dyn LocalApp,
        channel: &str,
        user_id: &str,
    ) -> redis::RedisResult<()> {
        if !app.webhooks_enabled() {
            return Ok(());
        }
        let new: i64 = redis::cmd("HSETNX")
            .arg(self.hooked_key(app.id(), channel))
            .arg(user_id)
            .arg(1)
            .query_async(conn)
            .await?;
        if new == 1 {
            app.webhook(Hook::MemberAdded { channel, user_id });
        }
        Ok(())
    }

    /// After `grace`: unless `field` is back in the hash `present` (it returned on some
    /// node), removes it from the hash `reported`; true when this call removed it, so only one
    /// node sends the webhook.
    async fn gone_after_grace(
        &self,
        grace: Duration,
        present: String,
        reported: String,
        field: &str,
    ) -> redis::RedisResult<bool> {
        tokio::time::sleep(grace).await;
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

    /// After the app's leave grace, sends `member_removed` if the user is on no node and
    /// their arrival was reported.
    fn hook_removed(self: &Arc<Self>, app: &Arc<dyn LocalApp>, channel: &str, user_id: &str) {
        if !app.webhooks_enabled() {
            return;
        }
        let (cluster, app) = (self.clone(), app.clone());
        let (channel, user_id) = (channel.to_owned(), user_id.to_owned());
        self.leaving.spawn(async move {
            let id = app.id();
            let (present, reported) = (
                cluster.users_key(id, &channel),
                cluster.hooked_key(id, &channel),
            );
            let grace = app.leave_grace();
            match cluster
                .gone_after_grace(grace, present, reported, &user_id)
                .await
            {
                Ok(true) => app.webhook(Hook::MemberRemoved {
                    channel: &channel,
                    user_id: &user_id,
                }),
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
        here: &dyn Node,
        conn: &mut Connection,
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
            for app in here.apps_here() {
                self.reap_users(conn, &*app, &node).await?;
                let key = self.node_channels_key(app.id(), &node);
                let channels: Vec<String> =
                    redis::cmd("SMEMBERS").arg(&key).query_async(conn).await?;
                for channel in channels {
                    let fields: Vec<String> = redis::cmd("HKEYS")
                        .arg(self.presence_key(app.id(), &channel))
                        .query_async(conn)
                        .await?;
                    let prefix = format!("{node}:");
                    for user_id in fields.iter().filter_map(|f| f.strip_prefix(&prefix)) {
                        if self.leave(conn, app.id(), &channel, &node, user_id).await? {
                            app.relay(&channel, &frame::member_removed(&channel, user_id), None);
                            self.hook_removed(&app, &channel, user_id);
                        }
                    }
                }
                let _: i64 = redis::cmd("DEL").arg(&key).query_async(conn).await?;
                let counts: Vec<(String, usize)> = redis::cmd("HGETALL")
                    .arg(self.node_counts_key(app.id(), &node))
                    .query_async(conn)
                    .await?;
                for (channel, _) in counts {
                    self.count(conn, &app, &node, &channel, 0).await?;
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
    node: Arc<dyn Node>,
    cluster: Arc<Cluster>,
    mut ops: mpsc::UnboundedReceiver<Op>,
    finish: CancellationToken,
) {
    let mut connection: Option<Connection> = None;
    // Nothing of this node's is in Redis or kept here alone yet: the first connection has
    // nothing to put back, and must not put back a member whose join is still queued (its
    // join would then find them there already, and announce nothing).
    let mut fresh = true;
    // Reconnection is tried on each heartbeat and before each change, never behind a backoff,
    // so a join is not kept waiting.
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            op = ops.recv() => match op {
                Some(op) => {
                    apply_or_keep_here(&*node, &cluster, &mut connection, &mut fresh, &op).await
                }
                None => return,
            },
            _ = heartbeat.tick() => match connection.as_mut() {
                Some(conn) => {
                    // A Redis Cluster's connection reconnects to a restarted shard by itself,
                    // without failing a command here: register again once the subscription
                    // noticed the loss.
                    let beaten = if cluster.is_registered() {
                        beat(&*node, &cluster, conn).await
                    } else {
                        reregister(&*node, &cluster, conn).await
                    };
                    if let Err(err) = beaten {
                        tracing::warn!(%err, "redis: heartbeat failed; reconnecting");
                        connection = None;
                    }
                }
                None => connection = connect(&*node, &cluster, &mut fresh).await,
            },
            _ = finish.cancelled() => {
                while let Ok(op) = ops.try_recv() {
                    apply_or_keep_here(&*node, &cluster, &mut connection, &mut fresh, &op).await;
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
    node: &dyn Node,
    cluster: &Arc<Cluster>,
    connection: &mut Option<Connection>,
    fresh: &mut bool,
    op: &Op,
) {
    for _ in 0..2 {
        if connection.is_none() {
            *connection = connect(node, cluster, fresh).await;
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
        *fresh = false;
        apply_locally(op);
    }
    if let Op::SignIn { conn, success, .. } = op {
        conn.send(success.clone());
    }
}

/// Connects and, unless `fresh` (see [`run`]), puts this node's members and counts back (a
/// Redis restart lost them).
async fn connect(node: &dyn Node, cluster: &Arc<Cluster>, fresh: &mut bool) -> Option<Connection> {
    let registered = async {
        let mut conn = cluster.broker.connect(None).await?;
        if *fresh {
            beat(node, cluster, &mut conn).await?;
        } else {
            reregister(node, cluster, &mut conn).await?;
        }
        redis::RedisResult::Ok(conn)
    };
    match registered.await {
        Ok(conn) => {
            *fresh = false;
            Some(conn)
        }
        Err(err) => {
            tracing::debug!(%err, "redis: cannot connect for presence");
            None
        }
    }
}

async fn beat(
    node: &dyn Node,
    cluster: &Arc<Cluster>,
    conn: &mut Connection,
) -> redis::RedisResult<()> {
    let _: i64 = redis::cmd("ZADD")
        .arg(cluster.nodes_key())
        .arg(now_ms())
        .arg(&cluster.node)
        .query_async(conn)
        .await?;
    if let Some(channel) = super::peers_channel(node, cluster) {
        cluster.note_peers(conn, &channel).await?;
    }
    cluster.reap(node, conn).await
}

async fn reregister(
    node: &dyn Node,
    cluster: &Arc<Cluster>,
    conn: &mut Connection,
) -> redis::RedisResult<()> {
    let regained = cluster.regained();
    for app in node.apps_here() {
        for (channel, member) in app.channels().local_members() {
            cluster
                .join(conn, app.id(), &channel, &member, None)
                .await?;
        }
        for user_id in app.signed_in_here() {
            cluster.sign_in(conn, app.id(), &user_id).await?;
        }
        for summary in app.channels().occupied("") {
            let subscriptions = summary.occupancy.subscriptions;
            cluster
                .count(conn, &app, &cluster.node, &summary.name, subscriptions)
                .await?;
        }
    }
    beat(node, cluster, conn).await?;
    cluster.registered(regained);
    Ok(())
}

/// Applies one change through Redis.
async fn apply(cluster: &Arc<Cluster>, conn: &mut Connection, op: &Op) -> redis::RedisResult<()> {
    match op {
        Op::Count { app, channel } => {
            let subscriptions = app.channels().occupancy(channel).subscriptions;
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
            let id = app.id();
            // Every join goes to Redis, not only the user's first here: if that first one was
            // refused, a later connection of theirs must be checked against the limit too.
            let max = Some(app.max_presence_members());
            match cluster.join(conn, id, channel, member, max).await? {
                Joined::First => {
                    let added =
                        frame::member_added(channel, &member.user_id, member.user_info.get());
                    app.relay(channel, &added, Some(&subscriber.socket_id));
                    cluster
                        .hook_added(conn, &**app, channel, &member.user_id)
                        .await?;
                }
                Joined::Again => {}
                Joined::Refused => {
                    // Over the cluster's limit: undo the local subscription the connection made
                    // (it notices; see `Connection::is_subscribed`) and refuse it as one node
                    // would have.
                    let socket_id = &subscriber.socket_id;
                    if let Some(change) = app.channels().unsubscribe(channel, socket_id, false) {
                        cluster.unwatch_if_idle(app.clone(), channel);
                        let subscriptions = change.occupancy.subscriptions;
                        cluster
                            .count(conn, app, &cluster.node, channel, subscriptions)
                            .await?;
                    }
                    let max = app.max_presence_members();
                    subscriber.send(frame::member_limit(channel, max));
                    return Ok(());
                }
            }
            cluster.watch(id, channel).await;
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
            let (id, node) = (app.id(), &cluster.node);
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
            success: _,
        } => {
            cluster
                .apply_sign_in(conn, &**app, user_id, subscriber, watchlist, *first_here)
                .await
        }
        Op::SignOut { app, user_id } => cluster.apply_sign_out(conn, &**app, user_id).await,
    }
}

/// Applies one change from this node's members alone, while Redis is away: local clients
/// keep working; the cluster learns of this node's members when it reconnects.
fn apply_locally(op: &Op) {
    match op {
        Op::Count { app, channel, .. } => super::counts::announce_locally(&**app, channel),
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
                app.channels()
                    .publish(channel, &added, Some(&subscriber.socket_id));
            }
            let data = app.channels().local_presence_data(channel);
            confirm(app, channel, subscriber, &data, hold.as_ref(), None);
        }
        Op::Leave {
            app,
            channel,
            user_id,
        } => {
            app.channels()
                .publish(channel, &frame::member_removed(channel, user_id), None);
        }
        Op::SignIn {
            app,
            user_id,
            conn: subscriber,
            watchlist,
            first_here,
            success: _,
        } => app.announce_sign_in_here(user_id, subscriber, watchlist, *first_here),
        Op::SignOut { app, user_id } => app.tell_watchers(user_id, false),
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
