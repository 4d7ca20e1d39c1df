//! Users signed in with `pusher:signin`: each user's connections, so the HTTP API can
//! terminate them, and watchlists: a connection watching a user is told (with
//! `pusher_internal:watchlist_events`) when that user comes online (their first signed-in
//! connection) and goes offline (their last one closed), and on sign-in which of its watched
//! users are online already.

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;

use crate::channels::ConnectionHandle;
use crate::frame;
use crate::state::SocketId;

/// Most users one connection may watch (Pusher's limit).
pub const MAX_WATCHLIST: usize = 100;

type Connections = HashMap<SocketId, ConnectionHandle>;

/// The signed-in users of one app.
#[derive(Default)]
pub struct Users {
    /// User id -> that user's signed-in connections.
    connections: DashMap<Arc<str>, Connections>,
    /// Watched user id -> the connections watching them.
    watchers: DashMap<Arc<str>, Connections>,
}

impl Users {
    pub fn sign_in(&self, user_id: &Arc<str>, conn: &ConnectionHandle, watchlist: &[Arc<str>]) {
        let first = {
            let mut own = self.connections.entry(user_id.clone()).or_default();
            own.insert(conn.socket_id.clone(), conn.clone());
            own.len() == 1
        };
        for watched in watchlist {
            self.watchers
                .entry(watched.clone())
                .or_default()
                .insert(conn.socket_id.clone(), conn.clone());
        }
        let online: Vec<&str> = watchlist
            .iter()
            .filter(|w| self.connections.contains_key(&***w))
            .map(|w| &**w)
            .collect();
        if !online.is_empty() {
            conn.send(frame::watchlist_event("online", &online));
        }
        if first {
            self.tell_watchers(user_id, "online");
        }
    }

    pub fn sign_out(&self, user_id: &str, socket_id: &SocketId, watchlist: &[Arc<str>]) {
        let last = match self.connections.get_mut(user_id) {
            Some(mut own) => own.remove(socket_id).is_some() && own.is_empty(),
            None => false,
        };
        if last {
            self.connections.remove_if(user_id, |_, own| own.is_empty());
            self.tell_watchers(user_id, "offline");
        }
        for watched in watchlist {
            if let Some(mut watching) = self.watchers.get_mut(&**watched) {
                watching.remove(socket_id);
            }
            self.watchers
                .remove_if(&**watched, |_, watching| watching.is_empty());
        }
    }

    fn tell_watchers(&self, user_id: &str, name: &str) {
        if let Some(watching) = self.watchers.get(user_id) {
            let event = frame::watchlist_event(name, &[user_id]);
            watching.values().for_each(|conn| {
                conn.send(event.clone());
            });
        }
    }

    /// Closes every connection signed in as `user_id` with `code`; returns how many.
    pub fn terminate(&self, user_id: &str, code: u16) -> usize {
        self.connections.get(user_id).map_or(0, |own| {
            own.values().for_each(|conn| conn.close(code));
            own.len()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::ws::Utf8Bytes;
    use tokio::sync::mpsc;

    fn connection(id: &str) -> (ConnectionHandle, mpsc::Receiver<Utf8Bytes>) {
        let (tx, rx) = mpsc::channel(16);
        (
            ConnectionHandle::new(SocketId::from(id), tx, Default::default()),
            rx,
        )
    }

    fn received(rx: &mut mpsc::Receiver<Utf8Bytes>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|f| f.to_string())
            .collect()
    }

    #[test]
    fn watchers_hear_first_online_and_last_offline_only() {
        let users = Users::default();
        let (ann, mut ann_rx) = connection("1.1");
        let (bob1, _) = connection("1.2");
        let (bob2, _) = connection("1.3");
        let bob_id: Arc<str> = "bob".into();
        users.sign_in(&bob_id, &bob1, &[]);
        users.sign_in(&"ann".into(), &ann, std::slice::from_ref(&bob_id));
        users.sign_in(&bob_id, &bob2, &[]);
        users.sign_out("bob", &bob1.socket_id, &[]);
        users.sign_out("bob", &bob2.socket_id, &[]);
        let online = frame::watchlist_event("online", &["bob"]).to_string();
        let offline = frame::watchlist_event("offline", &["bob"]).to_string();
        assert_eq!(received(&mut ann_rx), [online, offline]);
        assert_eq!(users.terminate("bob", 4009), 0);
    }

    #[test]
    fn sign_out_forgets_the_watcher() {
        let users = Users::default();
        let (ann, mut ann_rx) = connection("1.1");
        let (bob, _) = connection("1.2");
        users.sign_in(&"ann".into(), &ann, &["bob".into()]);
        users.sign_out("ann", &ann.socket_id, &["bob".into()]);
        users.sign_in(&"bob".into(), &bob, &[]);
        assert!(received(&mut ann_rx).is_empty());
        assert!(users.watchers.is_empty());
        assert_eq!(users.terminate("bob", 4009), 1);
    }
}
