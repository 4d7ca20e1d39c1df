//! Who is subscribed to which channel, and fanout: one serialized frame shared by every
//! subscriber, queued without waiting. A subscriber whose queue is full is closed with 4100
//! so a slow reader costs no one else anything.
//!
//! The registry is sharded ([`DashMap`]), so publishing on one channel never waits on another,
//! and each channel's subscribe, unsubscribe and presence bookkeeping happen under that
//! channel's shard lock, so joins and leaves are announced in the order they happened. Cache
//! channels keep their last event here too, for 30 minutes, even with nobody subscribed.
//!
//! A server event is *accepted* (under the channel's lock: positioned, stored, remembered,
//! numbered) when its HTTP request is answered and *delivered* later by its app's fanout task
//! ([`crate::fanout`]); a subscriber skips the events accepted before it subscribed, which it
//! got in its replay or cached event, or would not have got at all.
//!
//! Channels with history keep their [`Ring`] in their entry: an event's position is assigned
//! and stored under the channel's lock, and a subscriber resuming from a position is
//! registered and sent what it missed under that same lock. On a cluster, positions come from
//! Redis; a subscriber is then *held* (its live events buffered with their positions) while
//! its connection reads Redis, and *released* with the replay, then the buffered events it did
//! not already get.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use futures_util::task::AtomicWaker;
use overtone_protocol::channel::ChannelType;
use tokio::sync::{mpsc, Notify};

use crate::frame;
use crate::history::{self, Limits, Replay, Ring};
use crate::presence::{Member, Members};
use crate::wire::{self, Sent, Wire};

/// A connection's id as the protocol shows it (`123.456`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SocketId(Arc<str>);

impl SocketId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SocketId {
    fn from(id: &str) -> SocketId {
        SocketId(id.into())
    }
}

impl std::borrow::Borrow<str> for SocketId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// How long a cache channel remembers its last event (Pusher's figure).
pub const CACHE_TTL: Duration = Duration::from_secs(30 * 60);

/// The sending half of one connection, as the registry sees it.
#[derive(Clone)]
pub struct ConnectionHandle {
    pub socket_id: SocketId,
    outbox: mpsc::Sender<Utf8Bytes>,
    closer: Arc<Closer>,
    /// The socket, written directly while nothing waits in `outbox` (None: queued only, as in
    /// tests without a socket).
    wire: Option<Arc<Wire>>,
}

/// Asks a connection to close with a code; the connection's reader and writer watch it.
#[derive(Default)]
pub struct Closer {
    code: AtomicU16,
    notify: Notify,
    /// The writer, which checks [`Closer::code`] with one atomic load per wakeup instead of
    /// polling a `Notified` (which takes the `Notify`'s lock) for every frame it sends.
    writer: AtomicWaker,
}

impl Closer {
    /// Asks for a close; the first code asked for wins.
    pub fn close(&self, code: u16) {
        if self
            .code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.notify.notify_waiters();
            self.writer.wake();
        }
    }

    /// The close code asked for, if any.
    pub fn code(&self) -> Option<u16> {
        match self.code.load(Ordering::Acquire) {
            0 => None,
            code => Some(code),
        }
    }

    /// Wakes the task of `cx` when a close is asked for; returns the code if one already was.
    pub fn poll_code(&self, cx: &mut std::task::Context<'_>) -> Option<u16> {
        self.writer.register(cx.waker());
        self.code()
    }

    /// Waits until someone asks to close, and returns the code they gave.
    pub async fn closed(&self) -> u16 {
        loop {
            let notified = self.notify.notified();
            let code = self.code.load(Ordering::Acquire);
            if code != 0 {
                return code;
            }
            notified.await;
        }
    }
}

impl ConnectionHandle {
    pub fn new(socket_id: SocketId, outbox: mpsc::Sender<Utf8Bytes>, closer: Arc<Closer>) -> Self {
        ConnectionHandle {
            socket_id,
            outbox,
            closer,
            wire: None,
        }
    }

    /// The handle of a connection whose frames go through `wire` ([`Wire::send`]).
    pub fn with_wire(self, wire: Arc<Wire>) -> Self {
        ConnectionHandle {
            wire: Some(wire),
            ..self
        }
    }

    /// Sends a frame without waiting: written to the socket now if nothing is queued, else
    /// queued; a full queue closes the connection with 4100.
    pub fn send(&self, frame: Utf8Bytes) -> bool {
        let sent = self.send_shared(&frame, Some(&wire::Lazy::new()));
        if let (Sent::Written, Some(wire)) = (sent, &self.wire) {
            wire.count_written(1, frame.len());
        }
        sent != Sent::Refused
    }

    /// [`ConnectionHandle::send`] of a frame shared with other connections (fanout), encoded
    /// once for all of them (`encoded`; None: queue it for the writer task even if nothing
    /// waits); its bytes are only cloned (a reference count) when they are queued. A frame
    /// written here is the caller's to count ([`Wire::count_written`]), once per publish.
    pub fn send_shared(&self, frame: &Utf8Bytes, encoded: Option<&wire::Lazy>) -> Sent {
        match &self.wire {
            Some(wire) => wire.send(frame, encoded, |frame| self.queue(frame)),
            None => Sent::queued_if(self.queue(frame.clone())),
        }
    }

    /// Queues a frame for the writer; a full queue closes the connection with 4100.
    fn queue(&self, frame: Utf8Bytes) -> bool {
        match self.outbox.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(overtone_protocol::codes::OVER_CAPACITY);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    pub fn close(&self, code: u16) {
        self.closer.close(code);
    }

    /// How many more frames the queue takes before it is full.
    pub fn room(&self) -> usize {
        self.outbox.capacity()
    }
}

struct Subscriber {
    conn: ConnectionHandle,
    /// The presence member this connection joined as.
    user_id: Option<Arc<str>>,
    /// While its connection reads Redis history: the live events it would have got.
    held: Option<Held>,
    /// After a release: the newest position it was sent. Redis may have counted an event
    /// before this node's pub/sub feed delivered it, so live events up to here are skipped.
    floor: Option<OwnedPosition>,
    /// The registry's [`ChannelRegistry::accepted`] count when it subscribed: events accepted
    /// before then (and delivered after) are not its own.
    since: u64,
}

/// A subscriber not yet live, and what was published for it meanwhile.
struct Held {
    id: u64,
    buffer: Vec<(Option<OwnedPosition>, Utf8Bytes)>,
}

/// Most subscribers of one publish written from one thread: a bigger publish is split over
/// every core ([`send_to`]), so a huge channel's fanout (10,000 loopback sends: ~300 ms on the
/// 2-core bench machine from one thread) holds its channel's lock for less, and the last
/// subscriber of a 1,000 gets it sooner (p99 at 1,000 x 20/s: 17.6 ms with 1,024 here, 13.4
/// with 256, 12.2 with 128, same CPU). Starting a thread (~30 µs) is ~5 % of 128 sends.
const MAX_DIRECT_WRITES: usize = 128;

/// The `accepted` of a frame sent as soon as it is made (announcements, client events, the
/// cluster's): every current subscriber gets it.
const NOW: u64 = u64::MAX;

/// Most events buffered for a held subscriber before it counts as a slow reader.
const MAX_HELD: usize = 1024;

/// An event's position, when its channel has history.
pub type Position<'a> = Option<(&'a Arc<str>, u64)>;
/// An epoch and an offset.
pub type OwnedPosition = (Arc<str>, u64);

/// An event whose position Redis assigned, for [`ChannelRegistry::deliver_positioned`].
#[derive(Clone, Copy)]
pub struct PositionedEvent<'a> {
    /// The frame without its position.
    pub frame: &'a Utf8Bytes,
    pub except: Option<&'a SocketId>,
    pub epoch: &'a Arc<str>,
    pub offset: u64,
}

/// Whether [`ChannelRegistry::deliver_positioned`] may deliver past a gap in the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gaps {
    /// Not yet: answer [`Feed::Gap`] (an event off the live feed).
    Report,
    /// Yes: what was missing is delivered already, or cannot be read.
    Accept,
}

/// What [`ChannelRegistry::deliver_positioned`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    /// Sent to (or buffered for) this many subscribers.
    Delivered(usize),
    /// Delivered before (Redis counted it before the feed brought it, or a read after a gap
    /// held it): dropped.
    Duplicate,
    /// Events after this position are missing here: nothing was delivered.
    Gap(OwnedPosition),
}

/// An event taken for delivery later ([`ChannelRegistry::accept`]).
pub struct Accepted {
    channel: Arc<str>,
    /// With its position, on a channel with history.
    frame: Utf8Bytes,
    except: Option<SocketId>,
    position: Option<OwnedPosition>,
    /// Its place among the registry's accepted events: subscribers since then skip it.
    number: u64,
}

struct CachedEvent {
    frame: Utf8Bytes,
    at: Instant,
}

#[derive(Default)]
struct Channel {
    subscribers: HashMap<SocketId, Subscriber>,
    members: Members,
    cached: Option<CachedEvent>,
    /// This node's history of the channel (on a cluster: only while Redis is away).
    history: Option<Ring>,
    /// On a cluster: the newest Redis position of the channel's live feed here. Every event up
    /// to it was delivered (or came before the first subscriber's release), so the feed's
    /// copies up to it are dropped and one past the next is a gap ([`Feed`]).
    feed: Option<OwnedPosition>,
}

impl Channel {
    fn broadcast(&mut self, frame: &Utf8Bytes, except: Option<&SocketId>) -> usize {
        self.broadcast_at(frame, except, None, NOW)
    }

    /// Sends `frame` to every live subscriber but `except` that subscribed before the event
    /// was accepted (`accepted`, [`NOW`] for every current one), and buffers it (with
    /// `position`) for held ones.
    fn broadcast_at(
        &mut self,
        frame: &Utf8Bytes,
        except: Option<&SocketId>,
        position: Position<'_>,
        accepted: u64,
    ) -> usize {
        let (mut buffered, subscribers) = (0, self.subscribers.len());
        let live = self.subscribers.iter_mut().filter_map(|(id, sub)| {
            if except == Some(id) || sub.since >= accepted {
                return None;
            }
            match &mut sub.held {
                None => {
                    if let (Some((floor_epoch, floor)), Some((epoch, offset))) =
                        (&sub.floor, position)
                    {
                        if floor_epoch == epoch && offset <= *floor {
                            return None; // already replayed to it
                        }
                        sub.floor = None;
                    }
                    Some(&sub.conn)
                }
                Some(held) if held.buffer.len() >= MAX_HELD => {
                    sub.conn.close(overtone_protocol::codes::OVER_CAPACITY);
                    None
                }
                Some(held) => {
                    let position = position.map(|(e, o)| (e.clone(), o));
                    held.buffer.push((position, frame.clone()));
                    buffered += 1;
                    None
                }
            }
        });
        let (taken, written, counter) = send_to(live, subscribers, frame);
        // Counted once per publish, not per frame: every wire counts into the same metrics.
        if let Some(wire) = counter {
            wire.count_written(written, written * frame.len());
        }
        buffered + taken
    }

    fn cached(&self) -> Option<&Utf8Bytes> {
        self.cached
            .as_ref()
            .filter(|c| c.at.elapsed() < CACHE_TTL)
            .map(|c| &c.frame)
    }

    fn occupancy(&self) -> Occupancy {
        Occupancy {
            subscriptions: self.subscribers.len(),
            users: self.members.len(),
        }
    }

    /// Nothing here worth keeping: no subscriber, no live cached event, no live history.
    fn is_idle(&self) -> bool {
        self.subscribers.is_empty()
            && self.members.is_empty()
            && self.cached().is_none()
            && !self
                .history
                .as_ref()
                .is_some_and(|h| h.is_live(Instant::now()))
    }

    /// The ring, created (with a fresh epoch) if the channel has none yet.
    fn ring(&mut self, limits: Limits) -> &mut Ring {
        self.history.get_or_insert_with(|| Ring::new(limits))
    }

    fn remember(&mut self, frame: &Utf8Bytes) {
        self.cached = Some(CachedEvent {
            frame: frame.clone(),
            at: Instant::now(),
        });
    }
}

/// What a publish's sends did: how many subscribers took the frame, how many of those had it
/// written directly, and a wire to count those through.
type Sends = (usize, usize, Option<Arc<Wire>>);

/// Sends `frame` to each of `live`: from every core at once when the channel has more than
/// [`MAX_DIRECT_WRITES`] `subscribers` (one chunk of direct writes per core, the publisher's thread taking the
/// first and a scoped thread each of the others, all joined before the next event), else
/// directly from here as they come.
fn send_to<'a>(
    live: impl Iterator<Item = &'a ConnectionHandle>,
    subscribers: usize,
    frame: &Utf8Bytes,
) -> Sends {
    static CORES: OnceLock<usize> = OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from));
    if subscribers <= MAX_DIRECT_WRITES || cores == 1 {
        return send_each(live, frame, MAX_DIRECT_WRITES);
    }
    let live: Vec<_> = live.collect();
    std::thread::scope(|scope| {
        let mut chunks = live.chunks(live.len().div_ceil(cores));
        let first = chunks.next().unwrap_or_default();
        let others: Vec<_> = chunks
            .map(|chunk| {
                std::thread::Builder::new()
                    .spawn_scoped(scope, move || {
                        send_each(chunk.iter().copied(), frame, chunk.len())
                    })
                    .map_err(|_| chunk)
            })
            .collect();
        let mut total = send_each(first.iter().copied(), frame, first.len());
        for other in others {
            // A thread the system would not start: its chunk is sent from here.
            let (taken, written, counter) = match other {
                Ok(thread) => thread.join().unwrap_or_default(),
                Err(chunk) => send_each(chunk.iter().copied(), frame, chunk.len()),
            };
            total = (total.0 + taken, total.1 + written, total.2.or(counter));
        }
        total
    })
}

/// Sends `frame` to each of `live`, directly to the first `direct` of them (one encoding for
/// all) and queued for the others' writer tasks.
fn send_each<'a>(
    live: impl Iterator<Item = &'a ConnectionHandle>,
    frame: &Utf8Bytes,
    direct: usize,
) -> Sends {
    let encoded = wire::Lazy::new();
    let (mut taken, mut written, mut counter) = (0, 0, None);
    for (i, conn) in live.enumerate() {
        match conn.send_shared(frame, (i < direct).then_some(&encoded)) {
            Sent::Written => {
                written += 1;
                counter.get_or_insert_with(|| conn.wire.clone());
            }
            Sent::Queued => {}
            Sent::Refused => continue,
        }
        taken += 1;
    }
    (taken, written, counter.flatten())
}

/// How a subscribe treats the channel's history.
#[derive(Debug, Clone, Copy)]
pub enum HistoryMode<'a> {
    /// No history: `subscription_succeeded` as Pusher sends it.
    Off,
    /// History in this node's ring: a `position` in `subscription_succeeded` and, if the
    /// client gave one, `recovered` and the replay.
    Local {
        limits: Limits,
        resume: Option<&'a str>,
    },
    /// On a cluster: register the subscriber but hold it until [`ChannelRegistry::release`].
    Held { id: u64 },
}

/// What a held subscriber is released with.
pub struct Release {
    /// The newest position in Redis when it was read, or None if Redis could not be read (or
    /// the channel keeps no history).
    pub position: Option<(Arc<str>, u64)>,
    /// Whether the client asked to resume, and if so, the events it missed (Incomplete when
    /// they are not all there), with their positions.
    pub replay: Option<Replay<(u64, Utf8Bytes)>>,
    /// On cache channels, the cluster's last event (None: ask this node's cache).
    pub cached: Option<Option<Utf8Bytes>>,
    /// The channel's history limits (None: no history, a cache channel held for its cluster
    /// -wide last event); for this node's ring when Redis could not be read.
    pub limits: Option<Limits>,
    /// `subscription_succeeded` data: `{}`, or a presence channel's members.
    pub data: String,
}

/// What a release sent, for metrics and webhooks.
#[derive(Debug, Default, Clone, Copy)]
pub struct Released {
    pub recovered: Option<bool>,
    pub replayed: usize,
    pub cache_miss: bool,
}

/// Why a subscription was not made.
#[derive(Debug, PartialEq, Eq)]
pub enum SubscribeError {
    AlreadySubscribed,
    /// The presence channel already has the app's maximum number of members.
    MemberLimit,
}

/// Counts reported after a subscribe or unsubscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occupancy {
    pub subscriptions: usize,
    pub users: usize,
}

/// What one subscribe or unsubscribe changed, for subscription counts and webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The channel's counts afterwards.
    pub occupancy: Occupancy,
    /// A presence member joined (their first connection) or left (their last).
    pub member: bool,
    /// A cache channel had nothing to replay.
    pub cache_miss: bool,
    /// Whether a client that asked to resume got every event it missed.
    pub recovered: Option<bool>,
    /// Events replayed to it.
    pub replayed: usize,
}

/// One occupied channel, as the HTTP API lists it.
pub struct ChannelSummary {
    pub name: Arc<str>,
    pub occupancy: Occupancy,
}

/// Every channel of one app.
pub struct ChannelRegistry {
    channels: DashMap<Arc<str>, Channel>,
    /// Presence is cluster-wide: joins, leaves and member lists are announced by
    /// [`crate::cluster::presence`], not from this node's members alone.
    clustered: bool,
    /// Bytes held by every channel's ring together, and the most allowed.
    history_bytes: AtomicUsize,
    max_history_bytes: usize,
    /// Events accepted for later delivery so far ([`ChannelRegistry::accept`]): each one's
    /// number, and a new subscriber's [`Subscriber::since`]. Read and bumped under the
    /// channel's lock, so on one channel the two are ordered.
    accepted: AtomicU64,
}

impl Default for ChannelRegistry {
    fn default() -> ChannelRegistry {
        ChannelRegistry::new(false, 64 * 1024 * 1024)
    }
}

impl ChannelRegistry {
    /// `clustered`: presence announcements are left to the cluster.
    pub fn new(clustered: bool, max_history_bytes: usize) -> ChannelRegistry {
        ChannelRegistry {
            channels: DashMap::new(),
            clustered,
            history_bytes: AtomicUsize::new(0),
            max_history_bytes,
            accepted: AtomicU64::new(0),
        }
    }

    /// A registry whose presence announcements are left to the cluster.
    pub fn clustered() -> ChannelRegistry {
        ChannelRegistry::new(true, 64 * 1024 * 1024)
    }

    fn account(&self, delta: isize) {
        if delta >= 0 {
            self.history_bytes
                .fetch_add(delta as usize, Ordering::Relaxed);
        } else {
            self.history_bytes
                .fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
        }
    }

    /// Bytes of history held in memory for the app.
    pub fn history_bytes(&self) -> usize {
        self.history_bytes.load(Ordering::Relaxed)
    }

    /// This node's presence members, as `(channel, member)`: what it re-registers after
    /// reconnecting to the cluster.
    pub fn local_members(&self) -> Vec<(Arc<str>, Member)> {
        self.channels
            .iter()
            .flat_map(|ch| {
                let name = ch.key().clone();
                ch.members
                    .members()
                    .map(|m| (name.clone(), m))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// `pusher_internal:subscription_succeeded` data from this node's members only.
    pub fn local_presence_data(&self, channel: &str) -> String {
        self.channels.get(channel).map_or_else(
            || Members::default().subscription_data(),
            |ch| ch.members.subscription_data(),
        )
    }

    /// Subscribes `conn` (as `member` on presence channels), sends it
    /// `pusher_internal:subscription_succeeded` and, on cache channels, the cached event or
    /// `pusher:cache_miss`, and announces a presence member's first connection to the others.
    /// All under the channel's lock, so no event published meanwhile arrives before the
    /// confirmation.
    pub fn subscribe(
        &self,
        channel: &str,
        conn: &ConnectionHandle,
        member: Option<&Member>,
        max_members: usize,
    ) -> Result<Change, SubscribeError> {
        self.subscribe_with(channel, conn, member, max_members, HistoryMode::Off)
    }

    /// [`ChannelRegistry::subscribe`], with the channel's history as `mode` says: its position
    /// in the confirmation, and the replay of what a resuming client missed, still under the
    /// channel's lock so that no live event is lost or sent twice.
    pub fn subscribe_with(
        &self,
        channel: &str,
        conn: &ConnectionHandle,
        member: Option<&Member>,
        max_members: usize,
        mode: HistoryMode<'_>,
    ) -> Result<Change, SubscribeError> {
        let mut entry = self.channels.entry(Arc::from(channel)).or_default();
        let ch = entry.value_mut();
        if ch.subscribers.contains_key(&conn.socket_id) {
            return Err(SubscribeError::AlreadySubscribed);
        }
        if let Some(member) = member {
            if !ch.members.contains(&member.user_id) && ch.members.len() >= max_members {
                drop(entry);
                self.drop_if_idle(channel);
                return Err(SubscribeError::MemberLimit);
            }
        }
        let held = match mode {
            HistoryMode::Held { id } => Some(Held {
                id,
                buffer: Vec::new(),
            }),
            _ => None,
        };
        let holding = held.is_some();
        let subscriber = Subscriber {
            conn: conn.clone(),
            user_id: member.map(|m| m.user_id.clone()),
            held,
            floor: None,
            since: self.accepted.load(Ordering::Relaxed),
        };
        ch.subscribers.insert(conn.socket_id.clone(), subscriber);
        let (joined, data) = match member {
            Some(member) => {
                let joined = ch.members.join(member);
                if self.clustered {
                    (joined, None)
                } else {
                    if joined {
                        let added =
                            frame::member_added(channel, &member.user_id, member.user_info.get());
                        ch.broadcast(&added, Some(&conn.socket_id));
                    }
                    (joined, Some(ch.members.subscription_data()))
                }
            }
            None => (false, Some("{}".to_owned())),
        };
        let mut change = Change {
            occupancy: ch.occupancy(),
            member: joined,
            cache_miss: false,
            recovered: None,
            replayed: 0,
        };
        if holding {
            return Ok(change);
        }
        if let Some(data) = data {
            match mode {
                HistoryMode::Local { limits, resume } => {
                    let now = Instant::now();
                    let ring = ch.ring(limits);
                    let freed = ring.trim(now);
                    let replay = resume.map(|p| ring.replay(p, now));
                    change.recovered = replay.as_ref().map(|r| matches!(r, Replay::Complete(_)));
                    conn.send(frame::subscription_succeeded_at(
                        channel,
                        &data,
                        &ring.position(),
                        change.recovered,
                    ));
                    if let Some(Replay::Complete(frames)) = replay {
                        change.replayed = frames.len();
                        frames.into_iter().for_each(|f| {
                            conn.send(f);
                        });
                    }
                    self.account(-(freed as isize));
                }
                _ => {
                    conn.send(frame::subscription_succeeded(channel, &data));
                }
            }
        }
        // After a complete recovery the client has the cached event already (or newer ones).
        if ChannelType::of(channel).cache && change.recovered != Some(true) {
            conn.send(match ch.cached() {
                Some(event) => event.clone(),
                None => {
                    change.cache_miss = true;
                    frame::cache_miss(channel)
                }
            });
        }
        Ok(change)
    }

    /// Makes a held subscriber live: sends its confirmation with the channel's position, the
    /// replay, the cached event on cache channels, then the events buffered meanwhile that
    /// the replay did not already hold. Nothing happens if it unsubscribed meanwhile.
    pub fn release(
        &self,
        channel: &str,
        socket_id: &SocketId,
        hold_id: u64,
        release: Release,
    ) -> Option<Released> {
        let mut entry = self.channels.get_mut(channel)?;
        let ch = entry.value_mut();
        let sub = ch.subscribers.get(socket_id)?;
        if sub.held.as_ref().map(|h| h.id) != Some(hold_id) {
            return None;
        }
        let conn = sub.conn.clone();
        let mut out = Released::default();
        // The epoch and newest offset the subscriber has: later buffered events still go.
        let mut seen: Option<OwnedPosition> = None;
        match (release.position, release.limits) {
            (_, None) => {
                conn.send(frame::subscription_succeeded(channel, &release.data));
            }
            (position, Some(limits)) => {
                let (epoch, last, replay) = match position {
                    Some((epoch, last)) => {
                        // The first subscriber's release is where this node's feed starts.
                        ch.feed.get_or_insert_with(|| (epoch.clone(), last));
                        (epoch, last, release.replay)
                    }
                    // Redis could not be read: this node's ring, and nothing recoverable.
                    None => {
                        let ring = ch.ring(limits);
                        let incomplete = release.replay.map(|_| Replay::Incomplete);
                        (ring.epoch().clone(), ring.last(), incomplete)
                    }
                };
                out.recovered = replay.as_ref().map(|r| matches!(r, Replay::Complete(_)));
                conn.send(frame::subscription_succeeded_at(
                    channel,
                    &release.data,
                    &history::format_position(&epoch, last),
                    out.recovered,
                ));
                let mut sent = last;
                if let Some(Replay::Complete(events)) = replay {
                    out.replayed = events.len();
                    for (offset, frame) in events {
                        conn.send(frame::with_position(&frame, &epoch, offset));
                        sent = sent.max(offset);
                    }
                }
                seen = Some((epoch, sent));
            }
        }
        if ChannelType::of(channel).cache && out.recovered != Some(true) {
            let cached = match release.cached {
                Some(cached) => cached,
                None => ch.cached().cloned(),
            };
            conn.send(match cached {
                Some(event) => event,
                None => {
                    out.cache_miss = true;
                    frame::cache_miss(channel)
                }
            });
        }
        let sub = ch.subscribers.get_mut(socket_id)?;
        let held = sub.held.take()?;
        for (position, frame) in held.buffer {
            match (&position, &seen) {
                (Some((e, offset)), Some((epoch, sent))) if e == epoch && offset <= sent => {}
                _ => {
                    conn.send(frame);
                }
            }
        }
        sub.floor = seen;
        Some(out)
    }

    /// Unsubscribes; announces a presence member's last connection leaving to the others, or
    /// with `linger` keeps them a member with no connection (see [`ChannelRegistry::depart`]).
    /// Returns what changed, or None if `socket_id` was not subscribed.
    pub fn unsubscribe(&self, channel: &str, socket_id: &SocketId, linger: bool) -> Option<Change> {
        let change = {
            let mut entry = self.channels.get_mut(channel)?;
            let ch = entry.value_mut();
            let subscriber = ch.subscribers.remove(socket_id)?;
            let left = subscriber.user_id.is_some_and(|user_id| {
                let left = ch.members.leave(&user_id, linger);
                if left {
                    self.announce_removed(ch, channel, &user_id);
                }
                left
            });
            Change {
                occupancy: ch.occupancy(),
                member: left,
                cache_miss: false,
                recovered: None,
                replayed: 0,
            }
        };
        self.drop_if_idle(channel);
        Some(change)
    }

    /// Removes a presence member left lingering by [`ChannelRegistry::unsubscribe`] if no
    /// connection of theirs came back meanwhile, announcing it; what changed if they left.
    pub fn depart(&self, channel: &str, user_id: &str) -> Option<Change> {
        let change = {
            let mut entry = self.channels.get_mut(channel)?;
            let ch = entry.value_mut();
            if !ch.members.depart(user_id) {
                return None;
            }
            self.announce_removed(ch, channel, user_id);
            Change {
                occupancy: ch.occupancy(),
                member: true,
                cache_miss: false,
                recovered: None,
                replayed: 0,
            }
        };
        self.drop_if_idle(channel);
        Some(change)
    }

    fn announce_removed(&self, ch: &mut Channel, channel: &str, user_id: &str) {
        if !self.clustered {
            ch.broadcast(&frame::member_removed(channel, user_id), None);
        }
    }

    fn drop_if_idle(&self, channel: &str) {
        if let Some((_, ch)) = self.channels.remove_if(channel, |_, ch| ch.is_idle()) {
            self.account(-(ch.history.map_or(0, |h| h.bytes()) as isize));
        }
    }

    pub fn is_subscribed(&self, channel: &str, socket_id: &SocketId) -> bool {
        self.channels
            .get(channel)
            .is_some_and(|c| c.subscribers.contains_key(socket_id))
    }

    /// Subscriptions and presence members of a channel (zeros when nobody is there).
    pub fn occupancy(&self, channel: &str) -> Occupancy {
        self.channels.get(channel).map_or(
            Occupancy {
                subscriptions: 0,
                users: 0,
            },
            |c| c.occupancy(),
        )
    }

    /// Whether `user_id` is a member of the presence channel.
    pub fn has_member(&self, channel: &str, user_id: &str) -> bool {
        self.channels
            .get(channel)
            .is_some_and(|c| c.members.contains(user_id))
    }

    /// The presence channels `user_id` is a member of (a scan of the app's channels).
    pub fn member_channels(&self, user_id: &str) -> Vec<Arc<str>> {
        self.channels
            .iter()
            .filter(|c| c.members.contains(user_id))
            .map(|c| c.key().clone())
            .collect()
    }

    /// The user ids of a presence channel's members.
    pub fn user_ids(&self, channel: &str) -> Vec<String> {
        self.channels
            .get(channel)
            .map(|c| c.members.user_ids().map(String::from).collect())
            .unwrap_or_default()
    }

    /// The frame a cache channel would replay, if it has a live one.
    pub fn cached(&self, channel: &str) -> Option<(Utf8Bytes, Duration)> {
        let ch = self.channels.get(channel)?;
        let cached = ch.cached.as_ref()?;
        let age = cached.at.elapsed();
        (age < CACHE_TTL).then(|| (cached.frame.clone(), CACHE_TTL - age))
    }

    /// Occupied channels whose names start with `prefix`.
    pub fn occupied(&self, prefix: &str) -> Vec<ChannelSummary> {
        self.channels
            .iter()
            .filter(|e| !e.subscribers.is_empty() && e.key().starts_with(prefix))
            .map(|e| ChannelSummary {
                name: e.key().clone(),
                occupancy: e.occupancy(),
            })
            .collect()
    }

    /// Sends `frame` to every subscriber of `channel` except `except`; returns how many got it.
    /// On cache channels the frame is also remembered for later subscribers.
    pub fn publish(&self, channel: &str, frame: &Utf8Bytes, except: Option<&SocketId>) -> usize {
        if ChannelType::of(channel).cache {
            let mut entry = self.channels.entry(Arc::from(channel)).or_default();
            entry.remember(frame);
            return entry.broadcast(frame, except);
        }
        match self.channels.get_mut(channel) {
            Some(mut ch) => ch.broadcast(frame, except),
            None => 0,
        }
    }

    /// Tells a channel's subscribers how many they are (`pusher_internal:subscription_count`):
    /// `total` on a cluster, else this node's count, taken under the channel's lock so
    /// concurrent subscribes are heard in order. Never remembered as a cache channel's event.
    pub fn announce_count(&self, channel: &str, total: Option<usize>) {
        if let Some(mut ch) = self.channels.get_mut(channel) {
            let count = total.unwrap_or(ch.subscribers.len());
            if count > 0 {
                ch.broadcast(&frame::subscription_count(channel, count), None);
            }
        }
    }

    /// Takes an event for delivery later, by [`ChannelRegistry::deliver`] (the app's fanout
    /// task, see [`crate::fanout`]). Under the channel's lock, everything a reader of the
    /// channel may see at once is done now: with `history`, the next offset is assigned and the
    /// positioned frame stored; a cache channel remembers it; and it is numbered, so whoever
    /// subscribes from now on (and got it in a replay, a cached event, or not at all as before
    /// its subscription) is skipped when it is delivered. None: nobody to deliver it to.
    pub fn accept(
        &self,
        channel: &str,
        frame: &Utf8Bytes,
        except: Option<&SocketId>,
        history: Option<Limits>,
    ) -> Option<Accepted> {
        let cache = ChannelType::of(channel).cache;
        let mut entry = match history.is_some() || cache {
            true => self.channels.entry(Arc::from(channel)).or_default(),
            false => self.channels.get_mut(channel)?,
        };
        let ch = entry.value_mut();
        if cache {
            // Without a position: a replayed cache event must not move a client's position.
            ch.remember(frame);
        }
        let (frame, position) = match history {
            Some(limits) => {
                let (positioned, position) = self.record(ch, frame, limits);
                (positioned, Some(position))
            }
            None => (frame.clone(), None),
        };
        if ch.subscribers.is_empty() {
            return None;
        }
        Some(Accepted {
            channel: entry.key().clone(),
            frame,
            except: except.cloned(),
            position,
            number: self.accepted.fetch_add(1, Ordering::Relaxed) + 1,
        })
    }

    /// Publishes an event (`frame`, without a position) on a channel with history kept here,
    /// at once: [`ChannelRegistry::accept`] then [`ChannelRegistry::deliver`].
    pub fn publish_recorded(
        &self,
        channel: &str,
        frame: &Utf8Bytes,
        except: Option<&SocketId>,
        limits: Limits,
    ) -> usize {
        self.accept(channel, frame, except, Some(limits))
            .map_or(0, |event| self.deliver(&event))
    }

    /// Delivers an event [`ChannelRegistry::accept`] took, to the subscribers it was accepted
    /// for (not those who came since); how many got it.
    pub fn deliver(&self, event: &Accepted) -> usize {
        let Some(mut ch) = self.channels.get_mut(&*event.channel) else {
            return 0;
        };
        let position = event
            .position
            .as_ref()
            .map(|(epoch, offset)| (epoch, *offset));
        ch.broadcast_at(&event.frame, event.except.as_ref(), position, event.number)
    }

    /// Gives `frame` the channel's next offset and stores it there: the positioned frame and
    /// its position. Over the app's history memory, the channel keeps only this newest event.
    fn record(
        &self,
        ch: &mut Channel,
        frame: &Utf8Bytes,
        limits: Limits,
    ) -> (Utf8Bytes, OwnedPosition) {
        let ring = ch.ring(limits);
        let (positioned, mut delta) = ring.push(frame, Instant::now());
        let epoch = ring.epoch().clone();
        let offset = ring.last();
        if self.history_bytes() > self.max_history_bytes {
            delta -= ring.shrink_to_newest() as isize;
        }
        self.account(delta);
        (positioned, (epoch, offset))
    }

    /// Delivers an event whose position Redis assigned (`frame` without it): builds the
    /// positioned frame once and sends it, buffering it for held subscribers. Redis pub/sub
    /// keeps nothing for a node that is not subscribed (a dropped connection, a publish that
    /// raced a resubscription), so the channel's [`Channel::feed`] says whether this event is
    /// the next one: a copy already delivered is dropped, and with `gaps` reported an event
    /// past a gap is not delivered but answered with [`Feed::Gap`], for the caller to deliver
    /// what is missing (read from Redis) first.
    pub fn deliver_positioned(
        &self,
        channel: &str,
        event: PositionedEvent<'_>,
        gaps: Gaps,
    ) -> Feed {
        let PositionedEvent {
            frame,
            except,
            epoch,
            offset,
        } = event;
        let cache = ChannelType::of(channel).cache;
        let mut ch = match cache {
            true => self.channels.entry(Arc::from(channel)).or_default(),
            false => match self.channels.get_mut(channel) {
                Some(ch) => ch,
                None => return Feed::Delivered(0),
            },
        };
        match &ch.feed {
            Some((fed, last)) if fed == epoch && offset <= *last => return Feed::Duplicate,
            // The next one, or a new epoch's first (Redis lost the channel's history).
            Some((fed, last)) if (fed == epoch && offset == last + 1) || offset == 1 => {}
            Some(fed) if gaps == Gaps::Report => return Feed::Gap(fed.clone()),
            _ => {}
        }
        ch.feed = Some((epoch.clone(), offset));
        if cache {
            ch.remember(frame);
        }
        let positioned = frame::with_position(frame, epoch, offset);
        Feed::Delivered(ch.broadcast_at(&positioned, except, Some((epoch, offset)), NOW))
    }

    /// The channel's newest position from its Redis feed here, if it has one.
    pub fn feed(&self, channel: &str) -> Option<OwnedPosition> {
        self.channels.get(channel)?.feed.clone()
    }

    /// Every channel with a live feed from Redis here, and its newest position: what to read
    /// again after this node's subscription was lost.
    pub fn feeds(&self) -> Vec<(Arc<str>, OwnedPosition)> {
        self.channels
            .iter()
            .filter_map(|ch| Some((ch.key().clone(), ch.feed.clone()?)))
            .collect()
    }

    /// This node's history of a channel: its position, up to `limit` events after `after`
    /// (offset; the newest without it) and whether they are all of them. None when the
    /// channel keeps none here.
    pub fn history(
        &self,
        channel: &str,
        after: Option<(&str, u64)>,
        limit: usize,
    ) -> Option<(String, Vec<Utf8Bytes>, bool)> {
        let ch = self.channels.get(channel)?;
        let ring = ch.history.as_ref()?;
        let now = Instant::now();
        let (events, complete) = match after {
            Some((epoch, offset)) if epoch == &**ring.epoch() => {
                ring.after(Some(offset), limit, now)
            }
            // Another epoch: what is kept, oldest first, and not complete.
            Some(_) => (ring.after(Some(0), limit, now).0, false),
            None => ring.after(None, limit, now),
        };
        let frames = events.into_iter().map(|(_, f)| f).collect();
        Some((ring.position(), frames, complete))
    }

    /// Forgets cached events older than [`CACHE_TTL`] on channels nobody is subscribed to,
    /// trims every ring by age, and drops rings whose events all aged out on channels nobody
    /// is subscribed to.
    pub fn sweep_expired_cache(&self) {
        let now = Instant::now();
        let mut freed = 0;
        self.channels.retain(|_, ch| {
            if let Some(ring) = &mut ch.history {
                freed += ring.trim(now);
                if ch.subscribers.is_empty() && !ring.is_live(now) {
                    freed += ring.bytes();
                    ch.history = None;
                }
            }
            let keep = !ch.is_idle();
            if !keep {
                freed += ch.history.as_ref().map_or(0, |h| h.bytes());
            }
            keep
        });
        self.account(-(freed as isize));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(
        id: &str,
        capacity: usize,
    ) -> (ConnectionHandle, mpsc::Receiver<Utf8Bytes>, Arc<Closer>) {
        let (tx, rx) = mpsc::channel(capacity);
        let closer = Arc::new(Closer::default());
        (
            ConnectionHandle::new(SocketId::from(id), tx, closer.clone()),
            rx,
            closer,
        )
    }

    fn events(rx: &mut mpsc::Receiver<Utf8Bytes>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|f| {
                serde_json::from_str::<serde_json::Value>(&f).unwrap()["event"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn publish_skips_the_excluded_socket_and_counts_deliveries() {
        let registry = ChannelRegistry::default();
        let (a, mut ra, _) = connection("1.1", 8);
        let (b, mut rb, _) = connection("1.2", 8);
        registry.subscribe("chat", &a, None, 100).unwrap();
        registry.subscribe("chat", &b, None, 100).unwrap();
        assert_eq!(
            registry.subscribe("chat", &b, None, 100),
            Err(SubscribeError::AlreadySubscribed)
        );
        let out = frame::channel_event("chat", "msg", "{}", None);
        assert_eq!(registry.publish("chat", &out, Some(&a.socket_id)), 1);
        assert_eq!(events(&mut ra), ["pusher_internal:subscription_succeeded"]);
        assert_eq!(
            events(&mut rb),
            ["pusher_internal:subscription_succeeded", "msg"]
        );
        assert!(registry.unsubscribe("chat", &a.socket_id, false).is_some());
        assert!(registry.unsubscribe("chat", &a.socket_id, false).is_none());
        assert!(registry.unsubscribe("chat", &b.socket_id, false).is_some());
        assert!(registry.occupied("").is_empty());
    }

    /// Past [`MAX_DIRECT_WRITES`] subscribers a publish is split over the cores: each one
    /// still gets it once, the excluded one not at all.
    #[test]
    fn a_publish_split_over_the_cores_reaches_each_subscriber_once() {
        let registry = ChannelRegistry::default();
        let subscribers = 3 * MAX_DIRECT_WRITES;
        let mut receivers: Vec<_> = (0..subscribers)
            .map(|i| {
                let (conn, rx, _) = connection(&format!("1.{i}"), 4);
                registry.subscribe("big", &conn, None, 100).unwrap();
                rx
            })
            .collect();
        let out = frame::channel_event("big", "e", "1", None);
        let except = SocketId::from("1.0");
        assert_eq!(
            registry.publish("big", &out, Some(&except)),
            subscribers - 1
        );
        let got: Vec<_> = receivers.iter_mut().map(|rx| events(rx).len()).collect();
        assert_eq!(got[0], 1, "the excluded one: its confirmation only");
        assert!(got[1..].iter().all(|&n| n == 2), "confirmation and event");
    }

    #[test]
    fn presence_announces_first_join_and_last_leave_only() {
        let registry = ChannelRegistry::default();
        let alice = Member::from_channel_data(r#"{"user_id":"a"}"#, 1024).unwrap();
        let bob = Member::from_channel_data(r#"{"user_id":"b"}"#, 1024).unwrap();
        let (watcher, mut rw, _) = connection("1.1", 16);
        let (a1, _ra1, _) = connection("1.2", 16);
        let (a2, _ra2, _) = connection("1.3", 16);
        let (b1, _rb1, _) = connection("1.4", 16);
        registry
            .subscribe("presence-x", &watcher, Some(&bob), 2)
            .unwrap();
        let first = registry.subscribe("presence-x", &a1, Some(&alice), 2);
        assert!(first.unwrap().member, "alice's first connection joins");
        let second = registry.subscribe("presence-x", &a2, Some(&alice), 2);
        assert!(
            !second.unwrap().member,
            "alice's second connection does not"
        );
        assert_eq!(
            registry.occupancy("presence-x"),
            Occupancy {
                subscriptions: 3,
                users: 2
            }
        );
        let carol = Member::from_channel_data(r#"{"user_id":"c"}"#, 1024).unwrap();
        let (c1, _rc1, _) = connection("1.5", 16);
        assert_eq!(
            registry.subscribe("presence-x", &c1, Some(&carol), 2),
            Err(SubscribeError::MemberLimit)
        );
        registry
            .subscribe("presence-x", &b1, Some(&bob), 2)
            .unwrap();
        assert!(
            !registry
                .unsubscribe("presence-x", &a1.socket_id, false)
                .unwrap()
                .member
        );
        assert!(
            registry
                .unsubscribe("presence-x", &a2.socket_id, false)
                .unwrap()
                .member
        );
        assert_eq!(
            events(&mut rw),
            [
                "pusher_internal:subscription_succeeded",
                "pusher_internal:member_added",
                "pusher_internal:member_removed"
            ]
        );
    }

    #[test]
    fn cache_channels_replay_the_last_event_or_report_a_miss() {
        let registry = ChannelRegistry::default();
        let (a, mut ra, _) = connection("1.1", 8);
        assert!(
            registry
                .subscribe("cache-x", &a, None, 100)
                .unwrap()
                .cache_miss
        );
        registry.unsubscribe("cache-x", &a.socket_id, false);
        registry.publish(
            "cache-x",
            &frame::channel_event("cache-x", "first", "1", None),
            None,
        );
        registry.publish(
            "cache-x",
            &frame::channel_event("cache-x", "last", "2", None),
            None,
        );
        registry.sweep_expired_cache();
        assert!(
            !registry
                .subscribe("cache-x", &a, None, 100)
                .unwrap()
                .cache_miss
        );
        assert_eq!(
            events(&mut ra),
            [
                "pusher_internal:subscription_succeeded",
                "pusher:cache_miss",
                "pusher_internal:subscription_succeeded",
                "last"
            ]
        );
    }

    #[test]
    fn a_full_queue_closes_the_slow_reader_with_4100() {
        let registry = ChannelRegistry::default();
        let (a, _ra, closer) = connection("1.1", 1);
        registry.subscribe("chat", &a, None, 100).unwrap();
        assert_eq!(
            registry.publish("chat", &frame::channel_event("chat", "e", "1", None), None),
            0
        );
        let code = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(closer.closed());
        assert_eq!(code, overtone_protocol::codes::OVER_CAPACITY);
    }

    fn positions(rx: &mut mpsc::Receiver<Utf8Bytes>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|f| {
                let v: serde_json::Value = serde_json::from_str(&f).unwrap();
                format!(
                    "{} {} {}",
                    v["event"].as_str().unwrap(),
                    v["position"].as_str().unwrap_or("-"),
                    v["recovered"]
                )
            })
            .collect()
    }

    #[test]
    fn a_local_resume_replays_what_was_missed_then_goes_live() {
        let registry = ChannelRegistry::default();
        let limits = Limits {
            max_events: 10,
            max_age: Duration::from_secs(60),
        };
        for n in 0..3 {
            let event = frame::channel_event("c", "e", &n.to_string(), None);
            registry.publish_recorded("c", &event, None, limits);
        }
        let (a, mut ra, _) = connection("1.1", 16);
        let mode = HistoryMode::Local {
            limits,
            resume: None,
        };
        registry.subscribe_with("c", &a, None, 100, mode).unwrap();
        let first = positions(&mut ra);
        assert_eq!(first.len(), 1);
        let epoch = first[0]
            .split(' ')
            .nth(1)
            .unwrap()
            .split(':')
            .next()
            .unwrap();
        assert!(first[0].ends_with(":3 null"), "{first:?}");
        registry.unsubscribe("c", &a.socket_id, false);
        let resume = format!("{epoch}:1");
        let mode = HistoryMode::Local {
            limits,
            resume: Some(&resume),
        };
        let change = registry.subscribe_with("c", &a, None, 100, mode).unwrap();
        assert_eq!((change.recovered, change.replayed), (Some(true), 2));
        registry.publish_recorded(
            "c",
            &frame::channel_event("c", "e", "3", None),
            None,
            limits,
        );
        assert_eq!(
            positions(&mut ra),
            [
                format!("pusher_internal:subscription_succeeded {epoch}:3 true"),
                format!("e {epoch}:2 null"),
                format!("e {epoch}:3 null"),
                format!("e {epoch}:4 null"),
            ]
        );
    }

    fn positioned<'a>(
        frame: &'a Utf8Bytes,
        epoch: &'a Arc<str>,
        offset: u64,
    ) -> PositionedEvent<'a> {
        PositionedEvent {
            frame,
            except: None,
            epoch,
            offset,
        }
    }

    #[test]
    fn a_held_subscriber_gets_the_replay_then_only_the_buffered_events_it_lacks() {
        let registry = ChannelRegistry::clustered();
        let limits = Limits {
            max_events: 10,
            max_age: Duration::from_secs(60),
        };
        let (a, mut ra, _) = connection("1.1", 16);
        let mode = HistoryMode::Held { id: 7 };
        registry.subscribe_with("c", &a, None, 100, mode).unwrap();
        let epoch: Arc<str> = "E".into();
        let base = |n: u64| frame::channel_event("c", "e", &n.to_string(), None);
        // Redis hands 4 back while the connection reads history: it is buffered.
        registry.deliver_positioned("c", positioned(&base(4), &epoch, 4), Gaps::Report);
        assert!(ra.try_recv().is_err(), "held: nothing sent yet");
        // The read saw up to 5 (its feed has not delivered 5 here yet): replays 3, 4, 5.
        let release = Release {
            position: Some((epoch.clone(), 5)),
            replay: Some(Replay::Complete(vec![
                (3, base(3)),
                (4, base(4)),
                (5, base(5)),
            ])),
            cached: None,
            limits: Some(limits),
            data: "{}".into(),
        };
        let other_hold = registry.release("c", &a.socket_id, 8, release_copy(&release));
        assert!(other_hold.is_none(), "another hold is not released");
        let released = registry.release("c", &a.socket_id, 7, release).unwrap();
        assert_eq!((released.recovered, released.replayed), (Some(true), 3));
        // 5 arrives from the feed after the release: not sent twice; 6 is new.
        registry.deliver_positioned("c", positioned(&base(5), &epoch, 5), Gaps::Report);
        registry.deliver_positioned("c", positioned(&base(6), &epoch, 6), Gaps::Report);
        assert_eq!(
            positions(&mut ra),
            [
                "pusher_internal:subscription_succeeded E:5 true",
                "e E:3 null",
                "e E:4 null",
                "e E:5 null",
                "e E:6 null",
            ]
        );
    }

    /// The feed from Redis, after a release at E:2: copies already had are dropped, a gap is
    /// reported (nothing sent) until the caller accepts it, a new epoch starts over at 1.
    #[test]
    fn the_feed_drops_copies_and_reports_gaps() {
        let registry = ChannelRegistry::clustered();
        let (a, mut ra, _) = connection("1.1", 16);
        let mode = HistoryMode::Held { id: 1 };
        registry.subscribe_with("c", &a, None, 100, mode).unwrap();
        let (e, f): (Arc<str>, Arc<str>) = ("E".into(), "F".into());
        let base = |n: u64| frame::channel_event("c", "e", &n.to_string(), None);
        let release = Release {
            position: Some((e.clone(), 2)),
            replay: None,
            cached: None,
            limits: Some(Limits {
                max_events: 10,
                max_age: Duration::from_secs(60),
            }),
            data: "{}".into(),
        };
        registry.release("c", &a.socket_id, 1, release).unwrap();
        let deliver = |epoch: &Arc<str>, n: u64, gaps: Gaps| {
            registry.deliver_positioned("c", positioned(&base(n), epoch, n), gaps)
        };
        assert_eq!(deliver(&e, 2, Gaps::Report), Feed::Duplicate);
        assert_eq!(deliver(&e, 3, Gaps::Report), Feed::Delivered(1));
        assert_eq!(deliver(&e, 5, Gaps::Report), Feed::Gap((e.clone(), 3)));
        assert_eq!(deliver(&e, 4, Gaps::Report), Feed::Delivered(1));
        assert_eq!(deliver(&e, 5, Gaps::Report), Feed::Delivered(1));
        assert_eq!(deliver(&f, 2, Gaps::Report), Feed::Gap((e.clone(), 5)));
        assert_eq!(deliver(&f, 1, Gaps::Report), Feed::Delivered(1));
        assert_eq!(deliver(&f, 4, Gaps::Accept), Feed::Delivered(1));
        assert_eq!(deliver(&f, 3, Gaps::Report), Feed::Duplicate);
        assert_eq!(
            positions(&mut ra)[1..],
            [
                "e E:3 null",
                "e E:4 null",
                "e E:5 null",
                "e F:1 null",
                "e F:4 null"
            ]
        );
        assert_eq!(registry.feeds(), [("c".into(), (f, 4))]);
    }

    #[test]
    fn over_the_apps_history_memory_a_channel_keeps_only_its_newest_event() {
        let registry = ChannelRegistry::new(false, 300);
        let limits = Limits {
            max_events: 100,
            max_age: Duration::from_secs(60),
        };
        for n in 0..20 {
            let event = frame::channel_event("c", "e", &n.to_string(), None);
            registry.publish_recorded("c", &event, None, limits);
        }
        assert!(
            registry.history_bytes() <= 300 + 100,
            "{}",
            registry.history_bytes()
        );
        let (position, events, complete) = registry.history("c", None, 100).unwrap();
        assert!(position.ends_with(":20"));
        assert!(!events.is_empty() && events.len() < 20);
        assert!(!complete);
        registry.sweep_expired_cache();
        let (a, _ra, _) = connection("1.1", 4);
        registry.subscribe("c", &a, None, 100).unwrap();
        registry.unsubscribe("c", &a.socket_id, false);
        assert!(
            registry.history("c", None, 1).is_some(),
            "live history outlives subscribers"
        );
    }

    fn release_copy(r: &Release) -> Release {
        Release {
            position: r.position.clone(),
            replay: None,
            cached: None,
            limits: r.limits,
            data: r.data.clone(),
        }
    }
}
