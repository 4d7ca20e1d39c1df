//! Users signed in with `pusher:signin`: each user's connections, so the HTTP API can
//! terminate them, and watchlists: a connection watching a user is told (with
//! `pusher_internal:watchlist_events`) when that user comes online (their first signed-in
//! connection) and goes offline (their last one closed), and on sign-in which of its watched
//! users are online already.
//!
//! On a cluster, online and offline are cluster-wide (a user's first connection anywhere, their
//! last one anywhere): this node keeps its own connections and watchers, and
//! [`crate::cluster::online`] decides what to tell them.

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
    /// Online and offline are the cluster's to announce.
    clustered: bool,
}

impl Users {
    /// The users of a node in a cluster: [`Users::sign_in`] and [`Users::sign_out`] tell no
    /// watcher anything; the cluster does.
    pub fn clustered() -> Users {
        Users {
            clustered: true,
            ..Users::default()
        }
    }

    /// Whether `user_id` has a signed-in connection here.
    pub fn is_signed_in(&self, user_id: &str) -> bool {
        self.connections.contains_key(user_id)
    }

    /// Signs `conn` in as `user_id`, watching `watchlist`; returns whether it is the user's
    /// first connection here. Alone, tells `conn` which watched users are online and the
    /// user's watchers that they came online.
    pub fn sign_in(
        &self,
        user_id: &Arc<str>,
        conn: &ConnectionHandle,
        watchlist: &[Arc<str>],
    ) -> bool {
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
        if !self.clustered {
            self.announce_sign_in(user_id, conn, watchlist, first);
        }
        first
    }

    /// Tells `conn` which of `watchlist` are signed in here, and, on the user's `first`
    /// connection, their watchers that they came online: a lone node's announcements.
    pub fn announce_sign_in(
        &self,
        user_id: &str,
        conn: &ConnectionHandle,
        watchlist: &[Arc<str>],
        first: bool,
    ) {
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

    /// Every user signed in here: what a node re-registers after reconnecting to the cluster.
    pub fn signed_in_here(&self) -> Vec<Arc<str>> {
        self.connections.iter().map(|e| e.key().clone()).collect()
    }

    /// Signs a connection out; returns whether it was the user's last one here. Alone, tells
    /// the user's watchers they went offline.
    pub fn sign_out(&self, user_id: &str, socket_id: &SocketId, watchlist: &[Arc<str>]) -> bool {
        let last = match self.connections.get_mut(user_id) {
            Some(mut own) => own.remove(socket_id).is_some() && own.is_empty(),
            None => false,
        };
        if last {
            self.connections.remove_if(user_id, |_, own| own.is_empty());
            if !self.clustered {
                self.tell_watchers(user_id, "offline");
            }
        }
        for watched in watchlist {
            if let Some(mut watching) = self.watchers.get_mut(&**watched) {
                watching.remove(socket_id);
            }
            self.watchers
                .remove_if(&**watched, |_, watching| watching.is_empty());
        }
        last
    }

    /// Tells the connections here watching `user_id` that they went `online` or `offline`.
    pub fn tell_watchers(&self, user_id: &str, name: &str) {
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
    fn on_a_cluster_sign_in_and_out_report_first_and_last_and_tell_nobody() {
        let users = Users::clustered();
        let (ann, mut ann_rx) = connection("1.1");
        let (bob1, _) = connection("1.2");
        let (bob2, _) = connection("1.3");
        let bob_id: Arc<str> = "bob".into();
        assert!(users.sign_in(&"ann".into(), &ann, std::slice::from_ref(&bob_id)));
        assert!(users.sign_in(&bob_id, &bob1, &[]));
        assert!(!users.sign_in(&bob_id, &bob2, &[]));
        assert!(!users.sign_out("bob", &bob1.socket_id, &[]));
        assert!(users.sign_out("bob", &bob2.socket_id, &[]));
        assert!(
            received(&mut ann_rx).is_empty(),
            "the cluster announces, not this node"
        );
        users.tell_watchers("bob", "online");
        let online = frame::watchlist_event("online", &["bob"]).to_string();
        assert_eq!(received(&mut ann_rx), [online]);
        assert_eq!(users.signed_in_here(), [Arc::<str>::from("ann")]);
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
