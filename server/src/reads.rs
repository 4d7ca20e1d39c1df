//! Read receipts (README, "Wire extensions"): the latest read marker per (app, channel, user),
//! set by `overtone:read` frames, `POST /apps/{id}/reads` and `overtone-read` events, and
//! announced to the channel's subscribers as coalesced `overtone:reads` frames.
//!
//! A lone node keeps the markers here ([`Markers`], bounded by [`MAX_READERS`] per channel,
//! [`MAX_CHANNELS`] per app and [`TTL`]); on a cluster they live in Redis
//! ([`crate::cluster::reads`]) and this module only coalesces and announces. Announcements go
//! through [`App::relay`], so every node's subscribers get them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use overtone_protocol::channel::{ChannelKind, ChannelType};
use serde::Deserialize;

use crate::channels::ConnectionHandle;
use crate::frame;
use crate::history;
use crate::state::App;

/// Most users with a marker on one channel; a new one past it evicts the least recently written.
pub const MAX_READERS: usize = 1_000;
/// Most channels with markers per app (lone node); past it the least recently written goes.
pub const MAX_CHANNELS: usize = 100_000;
/// A channel's markers are forgotten this long after its last write.
pub const TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Changes to one channel within this window go out as one frame.
pub const WINDOW: Duration = Duration::from_millis(20);
/// Longest `up_to`, in bytes.
pub const MAX_UP_TO: usize = 64;
/// Most markers in one `POST /reads`.
pub const MAX_BATCH: usize = 100;
/// The event name a backend triggers to feed a marker through `POST /events`.
pub const BACKEND_EVENT: &str = "overtone-read";
/// The frame subscribers get.
pub const EVENT: &str = "overtone:reads";

/// One marker as the wire and the HTTP API carry it.
#[derive(Debug, Deserialize)]
pub struct Read {
    #[serde(default)]
    pub channel: String,
    pub user_id: String,
    pub up_to: String,
}

/// `overtone:read` data.
#[derive(Debug, Deserialize)]
pub struct ClientRead {
    pub channel: String,
    pub up_to: String,
}

/// Whether markers may be kept on `channel`: private (not encrypted) and presence channels.
pub fn allowed_on(channel: &str) -> bool {
    matches!(
        ChannelType::of(channel).kind,
        ChannelKind::Private | ChannelKind::Presence
    )
}

/// Checks a marker's parts; the error says what is wrong.
pub fn check(channel: &str, user_id: &str, up_to: &str) -> Result<(), String> {
    if !allowed_on(channel) {
        return Err(format!(
            "Read markers are kept on private- and presence- channels only, not {channel}"
        ));
    }
    if user_id.is_empty() || user_id.len() > 128 {
        return Err("user_id must be 1 to 128 characters".into());
    }
    if up_to.is_empty() || up_to.len() > MAX_UP_TO {
        return Err(format!("up_to must be 1 to {MAX_UP_TO} characters"));
    }
    Ok(())
}

/// Whether `new` replaces the stored `old`: a larger offset of the same epoch, a larger
/// unsigned integer, or anything not comparable (last write wins). Equal markers do not.
pub fn supersedes(old: &str, new: &str) -> bool {
    if old == new {
        return false;
    }
    if let (Some((e1, o1)), Some((e2, o2))) =
        (history::parse_position(old), history::parse_position(new))
    {
        if e1 == e2 {
            return o2 > o1;
        }
        return true;
    }
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if digits(old) && digits(new) {
        let (a, b) = (old.trim_start_matches('0'), new.trim_start_matches('0'));
        return (b.len(), b) > (a.len(), a);
    }
    true
}

/// One channel's markers: user -> (up_to, when written, in the store's clock).
#[derive(Default)]
struct ChannelMarkers {
    users: HashMap<String, (String, u64)>,
    written: u64,
    at: Option<Instant>,
}

/// A lone node's markers for one app, with their bounds.
#[derive(Default)]
struct Markers {
    channels: HashMap<Arc<str>, ChannelMarkers>,
    /// Last write (clock) -> channel: the least recently written channel first.
    order: BTreeMap<u64, Arc<str>>,
    clock: u64,
}

impl Markers {
    /// Stores `up_to` if it supersedes the user's marker; returns whether it did.
    fn set(&mut self, channel: &str, user_id: &str, up_to: &str, now: Instant) -> bool {
        self.expire(now);
        if let Some(ch) = self.channels.get(channel) {
            if let Some((old, _)) = ch.users.get(user_id) {
                if !supersedes(old, up_to) {
                    return false;
                }
            }
        } else if self.channels.len() >= MAX_CHANNELS {
            if let Some((_, oldest)) = self.order.pop_first() {
                self.channels.remove(&oldest);
            }
        }
        self.clock += 1;
        let clock = self.clock;
        let name: Arc<str> = self
            .channels
            .get_key_value(channel)
            .map_or_else(|| Arc::from(channel), |(k, _)| k.clone());
        let ch = self.channels.entry(name.clone()).or_default();
        if !ch.users.contains_key(user_id) && ch.users.len() >= MAX_READERS {
            let oldest = ch
                .users
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(user, _)| user.clone());
            oldest.map(|user| ch.users.remove(&user));
        }
        ch.users.insert(user_id.into(), (up_to.into(), clock));
        self.order.remove(&ch.written);
        ch.written = clock;
        ch.at = Some(now);
        self.order.insert(clock, name);
        true
    }

    /// Drops channels whose last write is older than [`TTL`], oldest first.
    fn expire(&mut self, now: Instant) {
        while let Some((&clock, name)) = self.order.first_key_value() {
            let stale = self
                .channels
                .get(name)
                .and_then(|c| c.at)
                .is_none_or(|at| now.saturating_duration_since(at) >= TTL);
            if !stale {
                break;
            }
            let name = name.clone();
            self.order.remove(&clock);
            self.channels.remove(&name);
        }
    }

    fn map(&self, channel: &str) -> Vec<(String, String)> {
        self.channels.get(channel).map_or_else(Vec::new, |ch| {
            ch.users
                .iter()
                .map(|(u, (up_to, _))| (u.clone(), up_to.clone()))
                .collect()
        })
    }
}

/// One app's read receipts: its markers (lone node) and the changes waiting for their window.
#[derive(Default)]
pub struct Reads {
    markers: Mutex<Markers>,
    /// Channel -> the users whose marker changed in its open window, with the new marker (on
    /// a cluster: not stored yet). Emptied once per window; what a connection adds is bounded
    /// by its subscriptions, as it writes as its own user only.
    pending: Mutex<HashMap<Arc<str>, BTreeMap<String, String>>>,
}

/// `{"reads":{user: up_to, ...}}`.
fn reads_data<'a>(reads: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let map: serde_json::Map<String, serde_json::Value> = reads
        .map(|(u, r)| (u.to_owned(), serde_json::Value::from(r)))
        .collect();
    serde_json::json!({ "reads": map }).to_string()
}

/// Stores a checked marker and, if it moved, announces it within [`WINDOW`]. On a cluster
/// the window's markers are stored in Redis together when it closes, so a burst of reads is
/// one round trip and one task per channel, not one each.
pub fn record(app: &Arc<App>, channel: &str, user_id: &str, up_to: &str) {
    let clustered = app.is_clustered();
    if !clustered {
        let mut markers = app.reads.markers.lock().expect("markers lock");
        if !markers.set(channel, user_id, up_to, Instant::now()) {
            return;
        }
    }
    let opened = {
        let mut pending = app.reads.pending.lock().expect("pending lock");
        let opened = !pending.contains_key(channel);
        let users = pending.entry(Arc::from(channel)).or_default();
        // Stored already when alone; on a cluster the window keeps the newest per user.
        if !clustered || users.get(user_id).is_none_or(|old| supersedes(old, up_to)) {
            users.insert(user_id.into(), up_to.into());
        }
        opened
    };
    if opened {
        let (app, channel) = (app.clone(), channel.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(WINDOW).await;
            let taken = app
                .reads
                .pending
                .lock()
                .expect("pending lock")
                .remove(&*channel);
            let Some(mut changes) = taken else {
                return;
            };
            if let Some(cluster) = app.cluster() {
                let batch: Vec<(&str, &str)> = changes
                    .iter()
                    .map(|(u, r)| (u.as_str(), r.as_str()))
                    .collect();
                let id = &app.config.id;
                let stored =
                    crate::cluster::reads::set(cluster, id, &channel, &batch, MAX_READERS, TTL);
                match stored.await {
                    Ok(moved) => {
                        let mut moved = moved.into_iter();
                        changes.retain(|_, _| moved.next().unwrap_or(false));
                    }
                    Err(err) => {
                        tracing::warn!(%err, channel, "redis: read markers not stored");
                        return;
                    }
                }
            }
            if !changes.is_empty() {
                let data = reads_data(changes.iter().map(|(u, r)| (u.as_str(), r.as_str())));
                let out = frame::channel_event(&channel, EVENT, &data, None);
                app.relay(&channel, &out, None);
            }
        });
    }
}

/// Sends a new subscriber of a private or presence channel the channel's markers (nothing
/// when there are none); call once its `subscription_succeeded` is queued.
pub fn send_current(app: &Arc<App>, channel: &str, conn: &ConnectionHandle) {
    if !allowed_on(channel) {
        return;
    }
    let send = |channel: &str, reads: Vec<(String, String)>, conn: &ConnectionHandle| {
        if !reads.is_empty() {
            let data = reads_data(reads.iter().map(|(u, r)| (u.as_str(), r.as_str())));
            conn.send(frame::channel_event(channel, EVENT, &data, None));
        }
    };
    let Some(cluster) = app.cluster().cloned() else {
        let reads = app.reads.markers.lock().expect("markers lock").map(channel);
        return send(channel, reads, conn);
    };
    let (app, channel, conn) = (app.clone(), channel.to_owned(), conn.clone());
    tokio::spawn(async move {
        match crate::cluster::reads::all(&cluster, &app.config.id, &channel).await {
            Ok(reads) => send(&channel, reads, &conn),
            Err(err) => tracing::warn!(%err, channel, "redis: read markers not read"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_move_forward_when_comparable() {
        assert!(supersedes("e1:5", "e1:6"));
        assert!(!supersedes("e1:6", "e1:5"));
        assert!(!supersedes("e1:6", "e1:6"));
        assert!(supersedes("e1:6", "e2:1"), "a new epoch: last write wins");
        assert!(supersedes("9", "10"));
        assert!(!supersedes("10", "9"));
        assert!(!supersedes("010", "9"));
        assert!(supersedes("msg-b", "msg-a"), "app ids: last write wins");
    }

    #[test]
    fn markers_are_bounded_per_channel_and_per_app() {
        let now = Instant::now();
        let mut m = Markers::default();
        for i in 0..=MAX_READERS {
            assert!(m.set("private-a", &i.to_string(), "1", now));
        }
        let map = m.map("private-a");
        assert_eq!(map.len(), MAX_READERS);
        assert!(
            !map.iter().any(|(u, _)| u == "0"),
            "the least recently written went"
        );
        for i in 0..MAX_CHANNELS {
            m.set(&format!("private-c{i}"), "u", "1", now);
        }
        assert_eq!(m.channels.len(), MAX_CHANNELS);
        assert!(
            m.map("private-a").is_empty(),
            "the least recently written channel went"
        );
        assert_eq!(m.order.len(), MAX_CHANNELS);
    }

    #[test]
    fn markers_expire_after_their_ttl() {
        let now = Instant::now();
        let mut m = Markers::default();
        m.set("private-a", "u", "1", now);
        m.set("private-b", "u", "1", now + TTL / 2);
        m.set("private-b", "v", "1", now + TTL);
        assert!(m.map("private-a").is_empty());
        assert_eq!(m.map("private-b").len(), 2);
    }
}
