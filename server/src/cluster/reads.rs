//! Read markers in Redis, for [`crate::reads`] on a cluster: per app and channel the hash
//! `{prefix}:{{app:channel}}:reads` (user -> up_to) and the sorted set
//! `{prefix}:{{app:channel}}:reads-order` (user -> when written, ms), hash-tagged by channel
//! so one script updates both. A script applies the monotonic rule, evicts the least
//! recently written user past the channel's bound and sets both keys' expiry; channels per
//! app are bounded by that expiry (a channel nobody writes to goes).
//!
//! Its surface is two functions of `&Cluster`, strings and the bounds, nothing of the nodes'
//! state.

use std::time::Duration;

use super::Cluster;

/// Stores ARGV[2] for user ARGV[1] if it supersedes the stored marker (the rule of
/// `crate::reads::supersedes`); ARGV[3]: most users, ARGV[4]: expiry (ms). Writes are ordered
/// by Redis's clock, one for every node. Returns 1 if stored, 0 if not.
const SET: &str = r#"
local function digits(s) return string.match(s, '^%d+$') ~= nil end
local function supersedes(old, new)
  if old == new then return false end
  local e1, o1 = string.match(old, '^(%w+):(%d+)$')
  local e2, o2 = string.match(new, '^(%w+):(%d+)$')
  if e1 and e2 then
    if e1 ~= e2 then return true end
    old, new = o1, o2
  elseif not (digits(old) and digits(new)) then
    return true
  end
  old = string.gsub(old, '^0+', ''); new = string.gsub(new, '^0+', '')
  if #new ~= #old then return #new > #old end
  return new > old
end
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old and not supersedes(old, ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], t[1] * 1000 + math.floor(t[2] / 1000), ARGV[1])
if redis.call('ZCARD', KEYS[2]) > tonumber(ARGV[3]) then
  local gone = redis.call('ZPOPMIN', KEYS[2])
  redis.call('HDEL', KEYS[1], gone[1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
"#;

pub(super) fn keys(cluster: &Cluster, app: &str, channel: &str) -> (String, String) {
    (
        cluster.channel_key(app, channel, "reads"),
        cluster.channel_key(app, channel, "reads-order"),
    )
}

/// Stores each (user, up_to) of one channel if it supersedes the user's marker, in one
/// round trip, keeping at most `max_readers` users for `ttl` after the last write; returns,
/// in order, whether each was stored.
pub async fn set(
    cluster: &Cluster,
    app: &str,
    channel: &str,
    reads: &[(&str, &str)],
    max_readers: usize,
    ttl: Duration,
) -> redis::RedisResult<Vec<bool>> {
    let (markers, order) = keys(cluster, app, channel);
    let mut pipe = redis::pipe();
    for (user_id, up_to) in reads {
        pipe.cmd("EVAL")
            .arg(SET)
            .arg(2)
            .arg(&markers)
            .arg(&order)
            .arg(*user_id)
            .arg(*up_to)
            .arg(max_readers)
            .arg(ttl.as_millis() as u64);
    }
    let stored: Vec<i64> = pipe.query_async(&mut cluster.redis()).await?;
    Ok(stored.into_iter().map(|s| s == 1).collect())
}

/// Every marker of a channel, as (user, up_to).
pub async fn all(
    cluster: &Cluster,
    app: &str,
    channel: &str,
) -> redis::RedisResult<Vec<(String, String)>> {
    redis::cmd("HGETALL")
        .arg(keys(cluster, app, channel).0)
        .query_async(&mut cluster.redis())
        .await
}
