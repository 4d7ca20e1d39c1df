//! Listener bindings as ids: the shell keeps the callbacks, the core decides which ids an
//! incoming frame reaches.

use crate::prelude::*;

use overtone_protocol::channel::SERVER_TO_USER_PREFIX;

/// A listener registered with the core; the shell maps it to its callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId(pub u32);

/// What a listener listens for on its channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// One event, by wire name (already formatted: see [`super::EventFormatter`]).
    Event(String),
    /// `listenToAll`: every event except `pusher:*` ones, with its name.
    AllEvents,
    /// `subscribed`: every successful (re)subscription.
    Subscribed,
    /// `error`: a failed subscription, with the status.
    Error,
    /// Presence `here`: the whole member list after each (re)subscription.
    Here,
    /// Presence `joining`: a new member.
    Joining,
    /// Presence `leaving`: a member gone.
    Leaving,
}

#[derive(Debug)]
struct Listener {
    id: ListenerId,
    /// The channel name, or the server-to-user prefix for user listeners: the user id, and
    /// so the channel name, is only known after sign-in.
    key: String,
    binding: Binding,
}

/// The key under which listeners for events on `channel` are kept.
pub(crate) fn key_for(channel: &str) -> &str {
    if channel.starts_with(SERVER_TO_USER_PREFIX) {
        SERVER_TO_USER_PREFIX
    } else {
        channel
    }
}

#[derive(Debug, Default)]
pub(crate) struct Listeners {
    list: Vec<Listener>,
    next_id: u32,
}

impl Listeners {
    pub(crate) fn add(&mut self, key: &str, binding: Binding) -> ListenerId {
        let id = ListenerId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        self.list.push(Listener {
            id,
            key: key.to_owned(),
            binding,
        });
        id
    }

    pub(crate) fn remove(&mut self, id: ListenerId) -> bool {
        let before = self.list.len();
        self.remove_ids(&[id]);
        self.list.len() != before
    }

    /// Ids of the listeners on `key` bound with exactly `wanted` (with anything: `None`), in
    /// bind order. Not generic over a predicate: each instance would cost its own wasm.
    pub(crate) fn matching(&self, key: &str, wanted: Option<&Binding>) -> Vec<ListenerId> {
        let mut ids = Vec::new();
        for listener in &self.list {
            if listener.key == key && wanted.is_none_or(|b| *b == listener.binding) {
                ids.push(listener.id);
            }
        }
        ids
    }

    /// Removes the listeners `matching` returns, and returns their ids.
    pub(crate) fn remove_matching(
        &mut self,
        key: &str,
        wanted: Option<&Binding>,
    ) -> Vec<ListenerId> {
        let removed = self.matching(key, wanted);
        self.remove_ids(&removed);
        removed
    }

    fn remove_ids(&mut self, ids: &[ListenerId]) {
        self.list.retain(|l| !ids.contains(&l.id));
    }
}
