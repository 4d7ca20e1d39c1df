//! Member statuses and departures in Redis, for [`crate::user_status`] on a cluster: per app
//! and user the string `{prefix}:{app}:status:{{user}}` (the status as JSON, expiring
//! [`KEEP`] after it was set) and `{prefix}:{app}:last-seen:{{user}}` (ms); per presence
//! channel the sorted set `{prefix}:{app}:left:{{channel}}` (user -> left at, ms), trimmed to
//! the [`MAX_LEFT`] most recent and expiring [`LEFT_KEEP`] after the last departure. Which
//! presence channels a user is in, and whether they are signed in, come from the keys of
//! [`super::presence`] and [`super::online`].
//!
//! Its surface is functions of `&Cluster` and strings, nothing of the nodes' state.

use crate::user_status::{Status, KEEP, LEFT_KEEP, MAX_LEFT};

use super::Cluster;

fn status_key(cluster: &Cluster, app: &str, user: &str) -> String {
    cluster.key(app, &format!("status:{{{user}}}"))
}

fn last_seen_key(cluster: &Cluster, app: &str, user: &str) -> String {
    cluster.key(app, &format!("last-seen:{{{user}}}"))
}

fn left_key(cluster: &Cluster, app: &str, channel: &str) -> String {
    cluster.key(app, &format!("left:{{{channel}}}"))
}

/// The statuses of `users`, in order (None: never set, expired or unreadable).
pub async fn statuses(
    cluster: &Cluster,
    app: &str,
    users: &[&str],
) -> redis::RedisResult<Vec<Option<Status>>> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for user in users {
        pipe.cmd("GET").arg(status_key(cluster, app, user));
    }
    let raw: Vec<Option<String>> = pipe.query_async(&mut cluster.redis()).await?;
    Ok(raw
        .into_iter()
        .map(|json| json.and_then(|j| serde_json::from_str(&j).ok()))
        .collect())
}

pub async fn set(
    cluster: &Cluster,
    app: &str,
    user: &str,
    status: &Status,
) -> redis::RedisResult<()> {
    let json = serde_json::to_string(status).expect("statuses serialize");
    redis::cmd("SET")
        .arg(status_key(cluster, app, user))
        .arg(json)
        .arg("PX")
        .arg(KEEP.as_millis() as u64)
        .query_async(&mut cluster.redis())
        .await
}

/// The presence channels `user` is a member of on any node: the app's occupied channels,
/// then one membership check each, in two round trips.
pub async fn member_channels(
    cluster: &Cluster,
    app: &str,
    user: &str,
) -> redis::RedisResult<Vec<String>> {
    let mut conn = cluster.redis();
    let channels: Vec<String> = redis::cmd("HKEYS")
        .arg(cluster.totals_key(app))
        .query_async(&mut conn)
        .await?;
    let presence: Vec<String> = channels
        .into_iter()
        .filter(|c| c.starts_with("presence-"))
        .collect();
    if presence.is_empty() {
        return Ok(presence);
    }
    let mut pipe = redis::pipe();
    for channel in &presence {
        pipe.cmd("HEXISTS")
            .arg(cluster.users_key(app, channel))
            .arg(user);
    }
    let member: Vec<bool> = pipe.query_async(&mut conn).await?;
    Ok(presence
        .into_iter()
        .zip(member)
        .filter_map(|(c, m)| m.then_some(c))
        .collect())
}

/// Whether `user` is signed in on any node.
pub async fn is_signed_in(cluster: &Cluster, app: &str, user: &str) -> redis::RedisResult<bool> {
    redis::cmd("HEXISTS")
        .arg(cluster.online_key(app))
        .arg(user)
        .query_async(&mut cluster.redis())
        .await
}

/// Records that `user` left `channel` at `at` (ms).
pub async fn left(
    cluster: &Cluster,
    app: &str,
    channel: &str,
    user: &str,
    at: u64,
) -> redis::RedisResult<()> {
    let key = left_key(cluster, app, channel);
    let keep = LEFT_KEEP.as_millis() as u64;
    redis::pipe()
        .atomic()
        .cmd("ZADD")
        .arg(&key)
        .arg(at)
        .arg(user)
        .ignore()
        .cmd("ZREMRANGEBYSCORE")
        .arg(&key)
        .arg("-inf")
        .arg(at.saturating_sub(keep))
        .ignore()
        .cmd("ZREMRANGEBYRANK")
        .arg(&key)
        .arg(0)
        .arg(-(MAX_LEFT as i64) - 1)
        .ignore()
        .cmd("PEXPIRE")
        .arg(&key)
        .arg(keep)
        .ignore()
        .cmd("SET")
        .arg(last_seen_key(cluster, app, user))
        .arg(at)
        .arg("PX")
        .arg(KEEP.as_millis() as u64)
        .ignore()
        .query_async(&mut cluster.redis())
        .await
}

/// Who left `channel` in the last [`LEFT_KEEP`] before `now` (ms), with when.
pub async fn recently_left(
    cluster: &Cluster,
    app: &str,
    channel: &str,
    now: u64,
) -> redis::RedisResult<Vec<(String, u64)>> {
    redis::cmd("ZRANGEBYSCORE")
        .arg(left_key(cluster, app, channel))
        .arg(now.saturating_sub(LEFT_KEEP.as_millis() as u64))
        .arg("+inf")
        .arg("WITHSCORES")
        .query_async(&mut cluster.redis())
        .await
}

pub async fn last_seen(
    cluster: &Cluster,
    app: &str,
    user: &str,
) -> redis::RedisResult<Option<u64>> {
    redis::cmd("GET")
        .arg(last_seen_key(cluster, app, user))
        .query_async(&mut cluster.redis())
        .await
}
