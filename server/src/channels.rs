//! Who is subscribed to which channel, and fanout: one serialized frame shared by every
//! subscriber, queued without waiting. A subscriber whose queue is full is closed with 4100
//! so a slow reader costs no one else anything.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use tokio::sync::{mpsc, Notify};

use crate::state::SocketId;

/// The sending half of one connection, as the registry sees it.
#[derive(Clone)]
pub struct ConnectionHandle {
    pub socket_id: SocketId,
    outbox: mpsc::Sender<Utf8Bytes>,
    closer: Arc<Closer>,
}

/// Asks a connection to close with a code; the connection task watches it.
#[derive(Default)]
pub struct Closer {
    code: AtomicU16,
    notify: Notify,
}

impl Closer {
    pub fn close(&self, code: u16) {
        if self.code.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.notify.notify_one();
        }
    }

    /// Waits until someone asks to close, and returns the code they gave.
    pub async fn closed(&self) -> u16 {
        loop {
            let code = self.code.load(Ordering::Acquire);
            if code != 0 {
                return code;
            }
            self.notify.notified().await;
        }
    }
}

impl ConnectionHandle {
    pub fn new(socket_id: SocketId, outbox: mpsc::Sender<Utf8Bytes>, closer: Arc<Closer>) -> Self {
        ConnectionHandle { socket_id, outbox, closer }
    }

    /// Queues a frame without waiting; a full queue closes the connection with 4100.
    pub fn send(&self, frame: Utf8Bytes) -> bool {
        match self.outbox.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.closer.close(overtone_protocol::codes::OVER_CAPACITY);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

#[derive(Default)]
struct Channel {
    subscribers: HashMap<SocketId, ConnectionHandle>,
}

/// Every channel of one app. Sharded, so publishing on one channel never waits on another.
#[derive(Default)]
pub struct ChannelRegistry {
    channels: DashMap<Arc<str>, Channel>,
}

impl ChannelRegistry {
    /// Adds a subscriber; returns false if it was already subscribed.
    pub fn subscribe(&self, channel: &str, conn: ConnectionHandle) -> bool {
        let mut entry = self.channels.entry(Arc::from(channel)).or_default();
        let socket_id = conn.socket_id.clone();
        entry.subscribers.insert(socket_id, conn).is_none()
    }

    /// Removes a subscriber; returns false if it was not subscribed. Empty channels are dropped.
    pub fn unsubscribe(&self, channel: &str, socket_id: &SocketId) -> bool {
        let removed = match self.channels.get_mut(channel) {
            Some(mut entry) => entry.subscribers.remove(socket_id).is_some(),
            None => false,
        };
        self.channels.remove_if(channel, |_, c| c.subscribers.is_empty());
        removed
    }

    pub fn is_subscribed(&self, channel: &str, socket_id: &SocketId) -> bool {
        self.channels.get(channel).is_some_and(|c| c.subscribers.contains_key(socket_id))
    }

    pub fn subscriber_count(&self, channel: &str) -> usize {
        self.channels.get(channel).map_or(0, |c| c.subscribers.len())
    }

    /// Sends `frame` to every subscriber of `channel` except `except`; returns how many got it.
    pub fn publish(&self, channel: &str, frame: &Utf8Bytes, except: Option<&str>) -> usize {
        let Some(entry) = self.channels.get(channel) else { return 0 };
        entry
            .subscribers
            .values()
            .filter(|conn| except != Some(conn.socket_id.as_str()))
            .filter(|conn| conn.send(frame.clone()))
            .count()
    }
}
