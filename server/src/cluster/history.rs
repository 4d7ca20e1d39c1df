//! Channel history in Redis, shared by every node: positions are assigned by Redis, so they
//! are one sequence per channel whichever node publishes, and history survives a node's death
//! or restart.
//!
//! Per app and channel: the stream `{prefix}:{{app:channel}}:history` holds the recent events
//! (entry id `{offset}-1`, fields `f`: the frame without its position, `t`: publish time in ms,
//! and `x`: the socket it excludes, if any),
//! and the hash `{prefix}:{{app:channel}}:history-meta` its `epoch`, last `offset` and each
//! publishing node's last sequence number (`sent:{node}`, so a publish made again is run once). One Lua
//! script ([`PUBLISH`]) assigns the next offset, appends the event (`MAXLEN max_events`, and
//! drops a few entries older than `max_age_secs`), sets both keys to expire after
//! `max_age_secs` of silence, remembers cache channels' last event
//! (`{prefix}:{{app:channel}}:cache`, 30 minutes) and publishes the event with its position on
//! the channel's pub/sub channel (see [`super`]), all atomically: every node, the publisher included, receives a
//! channel's events in position order and delivers them then
//! ([`crate::channels::ChannelRegistry::deliver_positioned`]). Pub/sub keeps nothing for a
//! node that is not subscribed, so what a node's feed missed (its subscription was down, or a
//! publish raced its resubscription) is read from the stream and delivered before what follows
//! ([`Cluster::catch_up`]): past a gap in a channel's offsets, and for every channel after each
//! resubscription. When the stream is missing
//! (never written, or expired), the script starts a new epoch: a client's old position is then
//! recognised as lost, never replayed wrongly.
//!
//! One task runs the script for this node's publishes, in order, pipelined ([`run`]). While
//! Redis is away (or this node's pub/sub subscription is down) it holds them, and publishes
//! them in order when Redis is back: every node delivers them then. Past [`OUTAGE_HOLD`] (or
//! [`QUEUE_CAPACITY`] held) it publishes to this node's clients only, with positions from this
//! node's in-memory ring ([`crate::history`]): those have another epoch, so a client resuming
//! from one later is told `recovered: false` instead of getting wrong data. So does a publish
//! Redis refuses for good (a key of another type, no permission): it must not hold up every
//! publish after it.
//!
//! [`HISTORY`] reads a channel's epoch, last offset and events after a position (a subscriber
//! resuming, or `GET .../history`), creating the epoch for a subscriber when there is none yet.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::Utf8Bytes;
use overtone_protocol::channel::ChannelType;
use tokio::sync::mpsc;

use crate::channels::{Feed, Gaps, OwnedPosition, PositionedEvent, Release, SocketId, CACHE_TTL};
use crate::history::{self, Limits, Replay};

use super::{
    back_off, unix_micros, Cluster, Envelope, LocalApp, Message, Node, FIRST_RETRY, OUTAGE_HOLD,
};

/// Publishes waiting for Redis before new ones are published on this node only.
pub const QUEUE_CAPACITY: usize = 10_000;
/// Most publishes sent to Redis in one pipeline.
const BATCH: usize = 256;
/// How long a read or a connection attempt may take before Redis counts as away.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// KEYS: stream, meta, cache, pub/sub channel (all the channel's: one slot). ARGV: fresh
/// epoch, frame, now (ms), max_events, max_age (ms), the publish command (`PUBLISH`, or
/// `SPUBLISH` on a cluster), envelope head (JSON without its closing brace), cache ("1"/"0"),
/// cache ttl (ms), the publishing node, its publish's sequence number, the excluded socket
/// ('' for none: kept as the entry's `x`, for a node that reads the event again after its
/// feed missed it), and the sequence number of the node's publish to the channel just before
/// it in the same pipeline ('0' for none). Returns the offset.
///
/// A publish the channel has seen already (its node's sequence number at or below the last one
/// recorded in the meta hash, `sent:{node}`) changes nothing: a node that timed out waiting for
/// Redis publishes again what Redis may have run meanwhile, and it must not go out twice. For
/// that mark to be exact, a node's publishes to a channel run in order or not at all: one whose
/// predecessor in the same pipeline did not run (refused while a shard came back: the
/// `CLUSTERDOWN` of a prefix of the pipeline) is refused with `BEHIND`, and both are published
/// again, in order. Without it the later one's mark made the earlier one look run: it was lost.
const PUBLISH: &str = r#"
local sent = 'sent:' .. ARGV[10]
local last = tonumber(redis.call('HGET', KEYS[2], sent) or '0')
if last >= tonumber(ARGV[11]) then
  return tonumber(redis.call('HGET', KEYS[2], 'offset') or '0')
end
if ARGV[13] ~= '0' and last ~= tonumber(ARGV[13]) then
  return redis.error_reply('BEHIND an earlier publish of this node to the channel did not run')
end
redis.call('HSET', KEYS[2], sent, ARGV[11])
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if (not epoch) or redis.call('EXISTS', KEYS[1]) == 0 then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'offset', 0)
end
local offset = redis.call('HINCRBY', KEYS[2], 'offset', 1)
local fields = {'f', ARGV[2], 't', ARGV[3]}
if ARGV[12] ~= '' then fields[5] = 'x'; fields[6] = ARGV[12] end
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[4], offset .. '-1', unpack(fields))
local cutoff = tonumber(ARGV[3]) - tonumber(ARGV[5])
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 16)) do
  if tonumber(e[2][4]) < cutoff then redis.call('XDEL', KEYS[1], e[1]) else break end
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
if ARGV[8] == '1' then redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[9]) end
redis.call(ARGV[6], KEYS[4], ARGV[7] .. ',"epoch":"' .. epoch .. '","offset":' .. offset .. '}')
return offset
"#;

/// KEYS: stream, meta, cache. ARGV: a fresh epoch to start if there is none ('' to only read),
/// the client's epoch ('' for none), its offset, limit, max_age (ms), cache ("1"/"0").
/// Returns false when there is no history (unless the cache was asked for: then an empty
/// epoch), else {epoch, last offset, entries, newest-first ("1"/"0"), cached frame or false}.
const HISTORY: &str = r#"
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if (not epoch) or redis.call('EXISTS', KEYS[1]) == 0 then
  if ARGV[1] == '' then
    if ARGV[6] == '1' then return {'', 0, {}, '0', redis.call('GET', KEYS[3])} end
    return false
  end
  epoch = ARGV[1]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'offset', 0)
  redis.call('XADD', KEYS[1], '0-1', 'f', '', 't', '0')
  redis.call('XDEL', KEYS[1], '0-1')
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
local last = tonumber(redis.call('HGET', KEYS[2], 'offset') or '0')
local entries = {}
local newest = '0'
if ARGV[2] == epoch then
  local after = tonumber(ARGV[3])
  if after < last then
    entries = redis.call('XRANGE', KEYS[1], (after + 1) .. '-0', '+', 'COUNT', ARGV[4])
  end
elseif ARGV[2] ~= '' then
  entries = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', ARGV[4])
else
  entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[4])
  newest = '1'
end
local cached = false
if ARGV[6] == '1' then cached = redis.call('GET', KEYS[3]) end
return {epoch, last, entries, newest, cached}
"#;

/// What [`Cluster::read_history`] reads.
#[derive(Debug, Clone, Copy)]
pub struct Read<'a> {
    /// The events after this position (`EPOCH:OFFSET`, parsed); the newest without it.
    pub after: Option<(&'a str, u64)>,
    /// At most this many events.
    pub limit: usize,
    pub limits: Limits,
    /// Start an epoch when there is none (a subscriber needs a position).
    pub create: bool,
    /// Also read a cache channel's last event.
    pub cache: bool,
}

/// One publish on a channel with history, waiting for its position.
pub struct Publish {
    pub app: String,
    pub channel: String,
    /// The event frame, without a position.
    pub frame: Utf8Bytes,
    pub except: Option<SocketId>,
    pub limits: Limits,
}

/// A channel's history as read from Redis.
#[derive(Debug)]
pub struct Snapshot {
    pub epoch: Arc<str>,
    pub last: u64,
    /// Events (offset, frame without position), oldest first.
    pub events: Vec<(u64, Utf8Bytes)>,
    /// Whether `events` are every event after the position asked about.
    pub complete: bool,
    /// The sockets some of `events` exclude (offset, socket).
    pub excluded: Vec<(u64, SocketId)>,
    /// A cache channel's last event, when asked for.
    pub cached: Option<Utf8Bytes>,
}

impl Snapshot {
    /// What a subscriber resuming from `resume` gets.
    pub fn replay(&self, resume: &str) -> Replay<(u64, Utf8Bytes)> {
        match history::parse_position(resume) {
            Some((epoch, _)) if epoch == &*self.epoch && self.complete => {
                Replay::Complete(self.events.clone())
            }
            _ => Replay::Incomplete,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Cluster {
    pub(super) fn stream_key(&self, app: &str, channel: &str) -> String {
        self.channel_key(app, channel, "history")
    }
    pub(super) fn meta_key(&self, app: &str, channel: &str) -> String {
        self.channel_key(app, channel, "history-meta")
    }
    pub(crate) fn cache_key(&self, app: &str, channel: &str) -> String {
        self.channel_key(app, channel, "cache")
    }

    /// Queues a publish for Redis without waiting; gives it back when the queue is full.
    pub fn publish_history(&self, item: Publish) -> Result<(), Publish> {
        self.history_queue.try_send(item).map_err(|e| match e {
            mpsc::error::TrySendError::Full(item) | mpsc::error::TrySendError::Closed(item) => {
                tracing::warn!("history queue full: an event is positioned on this node only");
                item
            }
        })
    }

    /// A cache channel's last event in Redis and how long it is kept yet (None when there is
    /// none, or Redis cannot be read).
    pub async fn cached(&self, app: &str, channel: &str) -> Option<(Utf8Bytes, Duration)> {
        let key = self.cache_key(app, channel);
        let read = self.retried(|mut conn| {
            let key = key.clone();
            async move {
                let (frame, ttl_ms): (Option<String>, i64) = redis::pipe()
                    .cmd("GET")
                    .arg(&key)
                    .cmd("PTTL")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await?;
                redis::RedisResult::Ok(
                    frame.map(|f| (f.into(), Duration::from_millis(ttl_ms.max(0) as u64))),
                )
            }
        });
        match tokio::time::timeout(REDIS_TIMEOUT, read).await {
            Ok(Ok(cached)) => cached,
            _ => None,
        }
    }

    /// Reads a channel's history as `read` says; None when the channel has no history (and
    /// no epoch was to be started).
    pub async fn read_history(
        &self,
        app: &str,
        channel: &str,
        read: Read<'_>,
    ) -> redis::RedisResult<Option<Snapshot>> {
        let Read {
            after,
            limit,
            limits,
            create,
            cache,
        } = read;
        let fresh = if create {
            history::new_epoch()
        } else {
            String::new()
        };
        let max_age_ms = limits.max_age.as_millis() as u64;
        let mut script = redis::cmd("EVAL");
        script
            .arg(HISTORY)
            .arg(3)
            .arg(self.stream_key(app, channel))
            .arg(self.meta_key(app, channel))
            .arg(self.cache_key(app, channel))
            .arg(fresh)
            .arg(after.map_or("", |a| a.0))
            .arg(after.map_or(0, |a| a.1))
            .arg(limit)
            .arg(max_age_ms.max(1))
            .arg(if cache { "1" } else { "0" });
        let read = async {
            let reply: redis::Value = self
                .retried(|mut conn| {
                    let script = script.clone();
                    async move { script.query_async(&mut conn).await }
                })
                .await?;
            parse_history(reply, after, limits)
        };
        tokio::time::timeout(REDIS_TIMEOUT, read)
            .await
            .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "read timed out")))?
    }

    /// Delivers what this node's feed of `channel` missed after `after`, read from Redis, in
    /// order (copies the feed brings later are dropped as delivered). False when Redis could
    /// not be read: the node's subscription is about to be lost too, and caught up again then.
    pub(super) async fn catch_up(
        &self,
        app: &dyn LocalApp,
        channel: &str,
        (epoch, offset): &OwnedPosition,
    ) -> bool {
        let Some(limits) = app.history_limits(channel) else {
            return true;
        };
        let read = Read {
            after: Some((epoch, *offset)),
            limit: limits.max_events,
            limits,
            create: false,
            cache: false,
        };
        let snapshot = match self.read_history(app.id(), channel, read).await {
            Ok(Some(snapshot)) => snapshot,
            // Not in Redis (expired, or Redis restarted empty and nothing published since).
            Ok(None) => return true,
            Err(err) => {
                tracing::warn!(%err, channel, "redis: cannot read what the feed missed");
                return false;
            }
        };
        let mut delivered = 0;
        for (offset, frame) in &snapshot.events {
            let except = snapshot.excluded.iter().find(|(o, _)| o == offset);
            let event = PositionedEvent {
                frame,
                except: except.map(|(_, socket)| socket),
                epoch: &snapshot.epoch,
                offset: *offset,
            };
            let feed = app
                .channels()
                .deliver_positioned(channel, event, Gaps::Accept);
            delivered += usize::from(feed != Feed::Duplicate);
        }
        if delivered > 0 {
            tracing::info!(channel, delivered, "redis: delivered what the feed missed");
        }
        true
    }

    /// After a resubscription: catches up every channel with a feed here, until Redis cannot
    /// be read.
    pub(super) async fn catch_up_all(&self, node: &dyn Node) {
        for app in node.apps_here() {
            for (channel, after) in app.channels().feeds() {
                if !self.catch_up(&*app, &channel, &after).await {
                    return;
                }
            }
        }
    }
}

type Entry = (String, Vec<String>);

fn parse_history(
    reply: redis::Value,
    after: Option<(&str, u64)>,
    limits: Limits,
) -> redis::RedisResult<Option<Snapshot>> {
    if matches!(reply, redis::Value::Nil) {
        return Ok(None);
    }
    let (epoch, last, entries, newest, cached): (String, u64, Vec<Entry>, String, Option<String>) =
        redis::from_redis_value(reply)?;
    let cutoff = now_ms().saturating_sub(limits.max_age.as_millis() as u64);
    let mut excluded = Vec::new();
    let mut events: Vec<(u64, Utf8Bytes)> = entries
        .into_iter()
        .filter_map(|(id, mut fields)| {
            let offset = id.split_once('-')?.0.parse().ok()?;
            let time: u64 = fields.get(3)?.parse().ok()?;
            if let Some(socket) = fields.get(5) {
                excluded.push((offset, SocketId::from(socket.as_str())));
            }
            let frame = Utf8Bytes::from(std::mem::take(fields.get_mut(1)?));
            (time >= cutoff).then_some((offset, frame))
        })
        .collect();
    if newest == "1" {
        events.reverse();
    }
    let complete = match after {
        Some((e, offset)) if e == epoch => {
            offset <= last
                && events.len() as u64 == last - offset
                && events.first().is_none_or(|first| first.0 == offset + 1)
        }
        Some(_) => false,
        None => last == 0 || events.first().is_some_and(|first| first.0 == 1),
    };
    Ok(Some(Snapshot {
        epoch: epoch.into(),
        last,
        events,
        complete,
        excluded,
        cached: cached.map(Utf8Bytes::from),
    }))
}

/// Runs the publish script for this node's publishes, in order, pipelined. While Redis is
/// away they are held, to be published in order (after the nodes are subscribed again) when it
/// is back; held longer than [`OUTAGE_HOLD`], or over [`QUEUE_CAPACITY`], they go to this
/// node's clients alone, positioned by its ring, and so does what follows until Redis is back.
pub async fn run(node: Arc<dyn Node>, cluster: Arc<Cluster>, mut queue: mpsc::Receiver<Publish>) {
    let shutdown = node.stopping().clone();
    let peers_channel = super::peers_channel(&*node, &cluster);
    // Taken from the queue and not yet in Redis, oldest first, each with its sequence number.
    let mut held: VecDeque<(u64, Publish)> = VecDeque::new();
    let mut sequence = 0;
    let mut retry = FIRST_RETRY;
    loop {
        let connected = tokio::time::timeout(REDIS_TIMEOUT, cluster.publishing_connection()).await;
        let mut conn = match connected {
            Ok(Ok(conn)) => conn,
            _ => {
                let wait = tokio::time::sleep(retry);
                retry = (retry * 2).min(super::LAST_RETRY);
                tokio::pin!(wait);
                loop {
                    release_if_outage_is_long(&*node, &cluster, &mut held);
                    tokio::select! {
                        _ = &mut wait => break,
                        item = queue.recv() => match item {
                            Some(item) => held.push_back(numbered(&mut sequence, item)),
                            None => return,
                        },
                        _ = shutdown.cancelled() => return,
                    }
                }
                continue;
            }
        };
        retry = FIRST_RETRY;
        if let (false, Some(channel)) = (held.is_empty(), &peers_channel) {
            cluster.await_peers(&mut conn, channel).await;
        }
        loop {
            if held.is_empty() {
                tokio::select! {
                    item = queue.recv() => match item {
                        Some(item) => held.push_back(numbered(&mut sequence, item)),
                        None => return,
                    },
                    _ = shutdown.cancelled() => return,
                }
            }
            while held.len() < BATCH {
                match queue.try_recv() {
                    Ok(item) => held.push_back(numbered(&mut sequence, item)),
                    Err(_) => break,
                }
            }
            // Without our pub/sub subscription, our own clients would not get these back: wait
            // for it while it is only just lost (or not up yet at start).
            while !cluster.is_connected() && !cluster.disconnected_for(OUTAGE_HOLD) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            release_if_outage_is_long(&*node, &cluster, &mut held);
            if held.is_empty() {
                continue;
            }
            let batch = held.len().min(BATCH);
            // Each publish with the one before it to its channel in this pipeline, if any.
            let mut previous: HashMap<(&str, &str), u64> = HashMap::new();
            let calls = held
                .iter()
                .take(batch)
                .map(|(sequence, item)| {
                    let key = (item.app.as_str(), item.channel.as_str());
                    let before = previous.insert(key, *sequence).unwrap_or(0);
                    script_call(&cluster, (*sequence, before), item)
                })
                .collect();
            let replies = match conn.per_slot_each(calls).await {
                Ok(replies) => replies,
                // Lost: what ran is recorded in Redis, and is not run again.
                Err(err) => {
                    tracing::warn!(%err, "redis: history publish failed; holding it and reconnecting");
                    if !back_off(&mut retry, &shutdown).await {
                        return;
                    }
                    break;
                }
            };
            // What ran is done. What Redis refused for good (a key of another type, no
            // permission) goes to this node's clients alone, rather than holding every later
            // publish of the node. What it may take later (busy, loading, a cluster slot down
            // or moving, `BEHIND`) is held, in order, and published again.
            let mut again = VecDeque::new();
            let mut reason = None;
            for ((sequence, item), reply) in held.drain(..batch).zip(replies) {
                match reply {
                    Ok(_) => {}
                    Err(err) if refused_for_good(&err) => {
                        tracing::error!(%err, channel = %item.channel, "redis: history publish refused; positioned on this node only");
                        publish_here(&*node, item);
                    }
                    Err(err) => {
                        reason.get_or_insert(err);
                        again.push_back((sequence, item));
                    }
                }
            }
            if let Some(err) = reason {
                again.append(&mut held);
                held = again;
                tracing::warn!(%err, "redis: history publish refused for now; holding it");
                if !back_off(&mut retry, &shutdown).await {
                    return;
                }
                break;
            }
        }
    }
}

/// Whether Redis refused a publish for good, so that running it again would fail again: the
/// script failed (`ERR`, a key of another type), the node may not write there, or Redis is out
/// of memory. Anything else (busy, loading, a cluster slot down or moving, a client-side error
/// for a shard the cluster client cannot reach) may pass, and holds the batch.
fn refused_for_good(err: &redis::RedisError) -> bool {
    matches!(err.code(), Some("ERR" | "WRONGTYPE" | "NOPERM" | "OOM"))
}

/// Publishes what is held to this node's clients alone, in order, once Redis has been away
/// for longer than [`OUTAGE_HOLD`] or too much is held.
fn release_if_outage_is_long(
    node: &dyn Node,
    cluster: &Cluster,
    held: &mut VecDeque<(u64, Publish)>,
) {
    if !held.is_empty() && (cluster.disconnected_for(OUTAGE_HOLD) || held.len() >= QUEUE_CAPACITY) {
        held.drain(..)
            .for_each(|(_, item)| publish_here(node, item));
    }
}

/// Gives a publish this node's next sequence number, which tells Redis a publish made again
/// from one it already ran (see [`PUBLISH`]).
fn numbered(sequence: &mut u64, item: Publish) -> (u64, Publish) {
    *sequence += 1;
    (*sequence, item)
}

/// One publish script call, with a key of its slot.
fn script_call(
    cluster: &Cluster,
    (sequence, previous): (u64, u64),
    item: &Publish,
) -> (String, redis::Cmd) {
    let envelope = Envelope {
        node: cluster.node.clone(),
        app: item.app.clone(),
        sent_us: unix_micros(),
        message: Message::History {
            channel: item.channel.clone(),
            frame: item.frame.as_str().into(),
            except: item.except.as_ref().map(|id| id.as_str().into()),
            epoch: None,
            offset: None,
        },
    };
    let head = serde_json::to_string(&envelope).unwrap_or_default();
    let head = head.strip_suffix('}').unwrap_or(&head);
    let cache = ChannelType::of(&item.channel).cache;
    let stream = cluster.stream_key(&item.app, &item.channel);
    let mut call = redis::cmd("EVAL");
    call.arg(PUBLISH)
        .arg(4)
        .arg(&stream)
        .arg(cluster.meta_key(&item.app, &item.channel))
        .arg(cluster.cache_key(&item.app, &item.channel))
        .arg(cluster.topic_of(&item.app, &item.channel))
        .arg(history::new_epoch())
        .arg(item.frame.as_str())
        .arg(now_ms())
        .arg(item.limits.max_events)
        .arg((item.limits.max_age.as_millis() as u64).max(1))
        .arg(cluster.publish_command())
        .arg(head)
        .arg(if cache { "1" } else { "0" })
        .arg(CACHE_TTL.as_millis() as u64)
        .arg(&cluster.node)
        .arg(sequence)
        .arg(item.except.as_ref().map_or("", SocketId::as_str))
        .arg(previous);
    (stream, call)
}

/// Publishes to this node's clients only, positioned by this node's ring.
fn publish_here(node: &dyn Node, item: Publish) {
    if let Some(app) = node.app_here(&item.app) {
        app.channels().publish_recorded(
            &item.channel,
            &item.frame,
            item.except.as_ref(),
            item.limits,
        );
    }
}

/// What a held subscriber is released with, from what Redis answered (this node's ring when
/// it could not be read).
pub fn release_of(
    read: redis::RedisResult<Option<Snapshot>>,
    channel: &str,
    limits: Option<Limits>,
    resume: Option<&str>,
    cache: bool,
    data: &str,
) -> Release {
    match read {
        Ok(Some(snapshot)) => Release {
            replay: resume.map(|r| snapshot.replay(r)),
            position: limits.map(|_| (snapshot.epoch.clone(), snapshot.last)),
            cached: cache.then_some(snapshot.cached),
            limits,
            data: data.into(),
        },
        Ok(None) | Err(_) => {
            if let Err(err) = read {
                tracing::debug!(%err, channel, "redis: history not read; serving this node's");
            }
            Release {
                replay: resume.map(|_| history::Replay::Incomplete),
                position: None,
                cached: None,
                limits,
                data: data.into(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_events: 100,
            max_age: Duration::from_secs(300),
        }
    }

    fn reply(last: u64, offsets: &[u64], newest: bool) -> redis::Value {
        use redis::Value::*;
        let now = now_ms().to_string();
        let entries = offsets
            .iter()
            .map(|o| {
                Array(vec![
                    BulkString(format!("{o}-1").into_bytes()),
                    Array(vec![
                        BulkString(b"f".to_vec()),
                        BulkString(format!(r#"{{"event":"e","data":"{o}"}}"#).into_bytes()),
                        BulkString(b"t".to_vec()),
                        BulkString(now.clone().into_bytes()),
                    ]),
                ])
            })
            .collect();
        Array(vec![
            BulkString(b"ep".to_vec()),
            Int(last as i64),
            Array(entries),
            BulkString(if newest { b"1".to_vec() } else { b"0".to_vec() }),
            Nil,
        ])
    }

    #[test]
    fn completeness_of_what_redis_returned() {
        let s = parse_history(reply(5, &[3, 4, 5], false), Some(("ep", 2)), limits())
            .unwrap()
            .unwrap();
        assert!(s.complete);
        assert_eq!(s.events.iter().map(|e| e.0).collect::<Vec<_>>(), [3, 4, 5]);
        assert!(matches!(s.replay("ep:2"), Replay::Complete(v) if v.len() == 3));
        assert_eq!(s.replay("other:2"), Replay::Incomplete);
        // Trimmed: 2 is missing.
        let s = parse_history(reply(5, &[3, 4, 5], false), Some(("ep", 1)), limits())
            .unwrap()
            .unwrap();
        assert!(!s.complete);
        // Up to date, and from the future.
        let s = parse_history(reply(5, &[], false), Some(("ep", 5)), limits())
            .unwrap()
            .unwrap();
        assert!(s.complete);
        let s = parse_history(reply(5, &[], false), Some(("ep", 9)), limits())
            .unwrap()
            .unwrap();
        assert!(!s.complete);
        // Another epoch.
        let s = parse_history(reply(5, &[4, 5], false), Some(("old", 1)), limits())
            .unwrap()
            .unwrap();
        assert!(!s.complete);
        // Newest first from Redis, oldest first here.
        let s = parse_history(reply(2, &[2, 1], true), None, limits())
            .unwrap()
            .unwrap();
        assert_eq!(s.events.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2]);
        assert!(s.complete);
        assert!(parse_history(redis::Value::Nil, None, limits())
            .unwrap()
            .is_none());
    }
}
