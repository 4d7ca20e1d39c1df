//! Signed-in users across nodes, for watchlists: a user comes online with their first
//! signed-in connection anywhere in the cluster and goes offline after their last one anywhere,
//! and a connection signing in is told which of its watched users are online on any node.
//!
//! In Redis, per app: the hash `{prefix}:{{app}}:online` counts, per user, the nodes they are
//! signed in on, and the set `{prefix}:{{app}}:node-users:{node}` holds a node's users (so a
//! reaped node's users go offline). A Lua script updates both at once, so exactly one node sees
//! a user's first sign-in or last sign-out, tells its own watchers and forwards the news to the
//! other nodes ([`Message::Watchlist`]). The changes are applied in order by the presence task
//! (see [`super::presence`]), which also re-registers this node's users after a reconnection
//! and falls back to this node's own users while Redis is away.

use std::sync::Arc;

use crate::channels::ConnectionHandle;
use crate::frame;

use super::{Cluster, Connection, LocalApp, Message};

/// Adds the user to the node's set; returns 1 if they are new to the cluster.
const SIGN_IN: &str = r#"
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  if redis.call('HINCRBY', KEYS[2], ARGV[1], 1) == 1 then return 1 end
end
return 0
"#;
/// Removes the user from the node's set; returns 1 if that was their last node.
const SIGN_OUT: &str = r#"
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 then
  if redis.call('HINCRBY', KEYS[2], ARGV[1], -1) <= 0 then
    redis.call('HDEL', KEYS[2], ARGV[1])
    return 1
  end
end
return 0
"#;

impl Cluster {
    pub(super) fn online_key(&self, app: &str) -> String {
        self.key(app, "online")
    }

    pub(super) fn node_users_key(&self, app: &str, node: &str) -> String {
        self.key(app, &format!("node-users:{node}"))
    }

    /// Registers `user_id` as signed in on this node; true if they are new to the cluster.
    pub(super) async fn sign_in(
        &self,
        conn: &mut Connection,
        app: &str,
        user_id: &str,
    ) -> redis::RedisResult<bool> {
        let first: i64 = redis::cmd("EVAL")
            .arg(SIGN_IN)
            .arg(2)
            .arg(self.node_users_key(app, &self.node))
            .arg(self.online_key(app))
            .arg(user_id)
            .query_async(conn)
            .await?;
        Ok(first == 1)
    }

    /// Unregisters `user_id` from `node`; true if that was their last node.
    pub(super) async fn sign_out(
        &self,
        conn: &mut Connection,
        app: &str,
        node: &str,
        user_id: &str,
    ) -> redis::RedisResult<bool> {
        let last: i64 = redis::cmd("EVAL")
            .arg(SIGN_OUT)
            .arg(2)
            .arg(self.node_users_key(app, node))
            .arg(self.online_key(app))
            .arg(user_id)
            .query_async(conn)
            .await?;
        Ok(last == 1)
    }

    /// Which of `watchlist` are signed in on any node.
    async fn online_among(
        &self,
        conn: &mut Connection,
        app: &str,
        watchlist: &[Arc<str>],
    ) -> redis::RedisResult<Vec<Arc<str>>> {
        if watchlist.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = redis::cmd("HMGET");
        query.arg(self.online_key(app));
        for user in watchlist {
            query.arg(&**user);
        }
        let nodes: Vec<Option<i64>> = query.query_async(conn).await?;
        Ok(watchlist
            .iter()
            .zip(nodes)
            .filter(|(_, n)| n.is_some_and(|n| n > 0))
            .map(|(user, _)| user.clone())
            .collect())
    }

    /// Tells every node's watchers of `user_id` that they came online or went offline.
    pub(super) fn announce_online(&self, app: &dyn LocalApp, user_id: &str, online: bool) {
        app.tell_watchers(user_id, online);
        let message = Message::Watchlist {
            user_id: user_id.into(),
            online,
        };
        self.forward(app.id(), message);
    }

    /// A connection signed in (`first_here`: the user's first connection on this node):
    /// announce the user if they are new to the cluster, and tell the connection which of its
    /// watched users are online anywhere.
    pub(super) async fn apply_sign_in(
        &self,
        conn: &mut Connection,
        app: &dyn LocalApp,
        user_id: &str,
        subscriber: &ConnectionHandle,
        watchlist: &[Arc<str>],
        first_here: bool,
    ) -> redis::RedisResult<()> {
        let id = app.id();
        if first_here && self.sign_in(conn, id, user_id).await? {
            self.announce_online(app, user_id, true);
        }
        let online = self.online_among(conn, id, watchlist).await?;
        if !online.is_empty() {
            let online: Vec<&str> = online.iter().map(|u| &**u).collect();
            subscriber.send(frame::watchlist_event("online", &online));
        }
        Ok(())
    }

    /// A user's last connection on this node signed out.
    pub(super) async fn apply_sign_out(
        &self,
        conn: &mut Connection,
        app: &dyn LocalApp,
        user_id: &str,
    ) -> redis::RedisResult<()> {
        if self.sign_out(conn, app.id(), &self.node, user_id).await? {
            self.announce_online(app, user_id, false);
        }
        Ok(())
    }

    /// Signs out every user of a node that timed out; announces those it was the last node of.
    pub(super) async fn reap_users(
        &self,
        conn: &mut Connection,
        app: &dyn LocalApp,
        node: &str,
    ) -> redis::RedisResult<()> {
        let key = self.node_users_key(app.id(), node);
        let users: Vec<String> = redis::cmd("SMEMBERS").arg(&key).query_async(conn).await?;
        for user_id in users {
            if self.sign_out(conn, app.id(), node, &user_id).await? {
                self.announce_online(app, &user_id, false);
            }
        }
        let _: i64 = redis::cmd("DEL").arg(&key).query_async(conn).await?;
        Ok(())
    }
}
