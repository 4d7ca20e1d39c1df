//! Member statuses and departures in Redis, for [`crate::user_status`] on a cluster: per app
//! and user the string `{prefix}:{{app:user:ID}}:status` (the status as JSON, expiring a while
//! after it was set) and `{prefix}:{{app:user:ID}}:last-seen` (ms); per presence channel the
//! sorted set `{prefix}:{{app:channel}}:left` (user -> left at, ms), trimmed to the most
//! recent few and expiring a while after the last departure ([`Retention`]). Which
//! presence channels a user is in, and whether they are signed in, come from the keys of
//! [`super::presence`] and [`super::online`].
//!
//! Its surface is functions of `&Cluster`, strings and bounds, nothing of the nodes' state.

use std::time::Duration;

use super::Cluster;

/// How long, and how many, departures and last-seen times are kept.
pub struct Retention {
    /// Departures per channel, kept this long after each.
    pub left_for: Duration,
    /// The most recent departures kept per channel.
    pub most_left: usize,
    /// A user's last-seen time, kept this long.
    pub last_seen_for: Duration,
}

/// A user's keys have the user's own hash tag, `{app:user:ID}`.
fn user_key(cluster: &Cluster, app: &str, user: &str, rest: &str) -> String {
    cluster.channel_key(app, &format!("user:{user}"), rest)
}

fn status_key(cluster: &Cluster, app: &str, user: &str) -> String {
    user_key(cluster, app, user, "status")
}

fn last_seen_key(cluster: &Cluster, app: &str, user: &str) -> String {
    user_key(cluster, app, user, "last-seen")
}

fn left_key(cluster: &Cluster, app: &str, channel: &str) -> String {
    cluster.channel_key(app, channel, "left")
}

/// The statuses (JSON) of `users`, in order (None: never set or expired).
pub async fn statuses(
    cluster: &Cluster,
    app: &str,
    users: &[&str],
) -> redis::RedisResult<Vec<Option<String>>> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let gets = users
        .iter()
        .map(|user| {
            let key = status_key(cluster, app, user);
            (key.clone(), redis::cmd("GET").arg(key).clone())
        })
        .collect();
    cluster.redis().per_slot(gets).await
}

/// Sets a user's status (JSON), kept for `keep`.
pub async fn set(
    cluster: &Cluster,
    app: &str,
    user: &str,
    json: &str,
    keep: Duration,
) -> redis::RedisResult<()> {
    redis::cmd("SET")
        .arg(status_key(cluster, app, user))
        .arg(json)
        .arg("PX")
        .arg(keep.as_millis() as u64)
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
    let checks = presence
        .iter()
        .map(|channel| {
            let key = cluster.users_key(app, channel);
            (
                key.clone(),
                redis::cmd("HEXISTS").arg(key).arg(user).clone(),
            )
        })
        .collect();
    let member: Vec<bool> = conn.per_slot(checks).await?;
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
    retention: &Retention,
) -> redis::RedisResult<()> {
    let key = left_key(cluster, app, channel);
    let keep = retention.left_for.as_millis() as u64;
    let seen = last_seen_key(cluster, app, user);
    // One round trip (one per slot on a cluster); not a transaction (the keys are tagged apart).
    let commands = vec![
        redis::cmd("ZADD").arg(&key).arg(at).arg(user).clone(),
        redis::cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(at.saturating_sub(keep))
            .clone(),
        redis::cmd("ZREMRANGEBYRANK")
            .arg(&key)
            .arg(0)
            .arg(-(retention.most_left as i64) - 1)
            .clone(),
        redis::cmd("PEXPIRE").arg(&key).arg(keep).clone(),
    ];
    let mut commands: Vec<(String, redis::Cmd)> =
        commands.into_iter().map(|c| (key.clone(), c)).collect();
    let last_seen_for = retention.last_seen_for.as_millis() as u64;
    let remember = redis::cmd("SET")
        .arg(&seen)
        .arg(at)
        .arg("PX")
        .arg(last_seen_for)
        .clone();
    commands.push((seen, remember));
    let _: redis::Value = cluster.redis().per_slot(commands).await?;
    Ok(())
}

/// Who left `channel` since `since` (ms), with when.
pub async fn recently_left(
    cluster: &Cluster,
    app: &str,
    channel: &str,
    since: u64,
) -> redis::RedisResult<Vec<(String, u64)>> {
    redis::cmd("ZRANGEBYSCORE")
        .arg(left_key(cluster, app, channel))
        .arg(since)
        .arg("+inf")
        .arg("WITHSCORES")
        .query_async(&mut cluster.redis())
        .await
}

/// When `user` last left a presence channel (ms), if known.
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
