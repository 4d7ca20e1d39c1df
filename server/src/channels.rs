//! Who is subscribed to which channel, and fanout: one serialized frame shared by every
//! subscriber, queued without waiting. A subscriber whose queue is full is closed with 4100
//! so a slow reader costs no one else anything.
//!
//! The registry is sharded ([`DashMap`]), so publishing on one channel never waits on another,
//! and each channel's subscribe, unsubscribe and presence bookkeeping happen under that
//! channel's shard lock, so joins and leaves are announced in the order they happened. Cache
//! channels keep their last event here too, for 30 minutes, even with nobody subscribed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use futures_util::task::AtomicWaker;
use overtone_protocol::channel::ChannelType;
use tokio::sync::{mpsc, Notify};

use crate::frame;
use crate::presence::{Member, Members};
use crate::state::SocketId;

/// How long a cache channel remembers its last event (Pusher's figure).
pub const CACHE_TTL: Duration = Duration::from_secs(30 * 60);

/// The sending half of one connection, as the registry sees it.
#[derive(Clone)]
pub struct ConnectionHandle {
    pub socket_id: SocketId,
    outbox: mpsc::Sender<Utf8Bytes>,
    closer: Arc<Closer>,
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
        }
    }

    /// Queues a frame without waiting; a full queue closes the connection with 4100.
    pub fn send(&self, frame: Utf8Bytes) -> bool {
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
}

struct Subscriber {
    conn: ConnectionHandle,
    /// The presence member this connection joined as.
    user_id: Option<Arc<str>>,
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
}

impl Channel {
    fn broadcast(&self, frame: &Utf8Bytes, except: Option<&SocketId>) -> usize {
        self.subscribers
            .iter()
            .filter(|(id, _)| except != Some(*id))
            .filter(|(_, sub)| sub.conn.send(frame.clone()))
            .count()
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

    /// Nothing here worth keeping: no subscriber and no live cached event.
    fn is_idle(&self) -> bool {
        self.subscribers.is_empty() && self.cached().is_none()
    }
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
}

/// One occupied channel, as the HTTP API lists it.
pub struct ChannelSummary {
    pub name: Arc<str>,
    pub occupancy: Occupancy,
}

/// Every channel of one app.
#[derive(Default)]
pub struct ChannelRegistry {
    channels: DashMap<Arc<str>, Channel>,
    /// Presence is cluster-wide: joins, leaves and member lists are announced by
    /// [`crate::cluster::presence`], not from this node's members alone.
    clustered: bool,
}

impl ChannelRegistry {
    /// A registry whose presence announcements are left to the cluster.
    pub fn clustered() -> ChannelRegistry {
        ChannelRegistry {
            clustered: true,
            ..ChannelRegistry::default()
        }
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
        let subscriber = Subscriber {
            conn: conn.clone(),
            user_id: member.map(|m| m.user_id.clone()),
        };
        ch.subscribers.insert(conn.socket_id.clone(), subscriber);
        let joined = match member {
            Some(member) => {
                let joined = ch.members.join(member);
                if !self.clustered {
                    if joined {
                        let added =
                            frame::member_added(channel, &member.user_id, member.user_info.get());
                        ch.broadcast(&added, Some(&conn.socket_id));
                    }
                    conn.send(frame::subscription_succeeded(
                        channel,
                        &ch.members.subscription_data(),
                    ));
                }
                joined
            }
            None => {
                conn.send(frame::subscription_succeeded(channel, "{}"));
                false
            }
        };
        let mut cache_miss = false;
        if ChannelType::of(channel).cache {
            conn.send(match ch.cached() {
                Some(event) => event.clone(),
                None => {
                    cache_miss = true;
                    frame::cache_miss(channel)
                }
            });
        }
        Ok(Change {
            occupancy: ch.occupancy(),
            member: joined,
            cache_miss,
        })
    }

    /// Unsubscribes; announces a presence member's last connection leaving to the others.
    /// Returns what changed, or None if `socket_id` was not subscribed.
    pub fn unsubscribe(&self, channel: &str, socket_id: &SocketId) -> Option<Change> {
        let change = {
            let mut entry = self.channels.get_mut(channel)?;
            let ch = entry.value_mut();
            let subscriber = ch.subscribers.remove(socket_id)?;
            let left = subscriber.user_id.is_some_and(|user_id| {
                let left = ch.members.leave(&user_id);
                if left && !self.clustered {
                    ch.broadcast(&frame::member_removed(channel, &user_id), None);
                }
                left
            });
            Change {
                occupancy: ch.occupancy(),
                member: left,
                cache_miss: false,
            }
        };
        self.drop_if_idle(channel);
        Some(change)
    }

    fn drop_if_idle(&self, channel: &str) {
        self.channels.remove_if(channel, |_, ch| ch.is_idle());
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
            entry.cached = Some(CachedEvent {
                frame: frame.clone(),
                at: Instant::now(),
            });
            return entry.broadcast(frame, except);
        }
        match self.channels.get(channel) {
            Some(ch) => ch.broadcast(frame, except),
            None => 0,
        }
    }

    /// Forgets cached events older than [`CACHE_TTL`] on channels nobody is subscribed to.
    pub fn sweep_expired_cache(&self) {
        self.channels.retain(|_, ch| !ch.is_idle());
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
        assert!(registry.unsubscribe("chat", &a.socket_id).is_some());
        assert!(registry.unsubscribe("chat", &a.socket_id).is_none());
        assert!(registry.unsubscribe("chat", &b.socket_id).is_some());
        assert!(registry.occupied("").is_empty());
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
                .unsubscribe("presence-x", &a1.socket_id)
                .unwrap()
                .member
        );
        assert!(
            registry
                .unsubscribe("presence-x", &a2.socket_id)
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
        registry.unsubscribe("cache-x", &a.socket_id);
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
}
