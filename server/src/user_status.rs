//! Member status (README, "Wire extensions"): a user's status, message and device, set by
//! `overtone:status` and announced to every presence channel they are a member of as
//! `overtone:member_updated`; who left each presence channel recently (`last_seen_at`); the
//! `overtone:members` snapshot a new presence subscriber gets; a user's presence for the
//! HTTP API.
//!
//! A lone node keeps statuses and departures here ([`Statuses`]: at most [`MAX_USERS`] users,
//! each kept [`KEEP`] after it was last set; at most [`MAX_LEFT`] departures per channel for
//! [`LEFT_KEEP`], on at most [`MAX_LEFT_CHANNELS`] channels); on a cluster they live in Redis
//! ([`crate::cluster::user_status`]), with the same bounds.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use overtone_protocol::channel::{ChannelKind, ChannelType};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::channels::ConnectionHandle;
use crate::frame;
use crate::state::App;

/// Longest status message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 100;
/// Longest status or device token.
pub const MAX_TOKEN: usize = 16;
/// A status is kept this long after it was last set.
pub const KEEP: Duration = Duration::from_secs(24 * 3600);
/// Most users with a status (or a last-seen time) per app on a lone node.
pub const MAX_USERS: usize = 100_000;
/// Departures are kept this long for `overtone:members`' `left`.
pub const LEFT_KEEP: Duration = Duration::from_secs(3600);
/// Most departures kept per channel (the most recent).
pub const MAX_LEFT: usize = 100;
/// Most channels with departures kept per app on a lone node.
pub const MAX_LEFT_CHANNELS: usize = 100_000;

pub const UPDATED: &str = "overtone:member_updated";
pub const MEMBERS: &str = "overtone:members";

/// A user's status as members see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub status: String,
    pub message: Option<String>,
    pub device: Option<String>,
    pub away_since: Option<u64>,
}

impl Default for Status {
    fn default() -> Status {
        Status {
            status: "online".into(),
            message: None,
            device: None,
            away_since: None,
        }
    }
}

/// `overtone:status` data: each field absent (None) keeps its value; `message: Some(None)`
/// clears it.
#[derive(Debug, Default, PartialEq)]
pub struct Update {
    status: Option<String>,
    message: Option<Option<String>>,
    device: Option<String>,
}

fn token(value: &Value, field: &str) -> Result<Option<String>, String> {
    match value.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s))
            if (1..=MAX_TOKEN).contains(&s.len())
                && s.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                }) =>
        {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(format!(
            "overtone:status {field} must be 1 to {MAX_TOKEN} characters of a-z, 0-9, - and _"
        )),
    }
}

impl Update {
    /// Parses `overtone:status` data (an object, or a JSON string holding one).
    pub fn parse(raw: &str) -> Result<Update, String> {
        let mut value: Value =
            serde_json::from_str(raw).map_err(|_| "overtone:status data must be JSON")?;
        if let Value::String(inner) = &value {
            value = serde_json::from_str(inner).map_err(|_| "overtone:status data must be JSON")?;
        }
        if !value.is_object() {
            return Err(
                "overtone:status data must be an object {status?, message?, device?}".into(),
            );
        }
        let message = match value.get("message") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(s)) if s.chars().count() <= MAX_MESSAGE_CHARS => {
                Some((!s.is_empty()).then(|| s.clone()))
            }
            Some(_) => {
                return Err(format!(
                    "overtone:status message must be a string of at most {MAX_MESSAGE_CHARS} characters"
                ))
            }
        };
        Ok(Update {
            status: token(&value, "status")?,
            message,
            device: token(&value, "device")?,
        })
    }

    /// The status after this update at `now_ms`: `away_since` set when it becomes away.
    pub fn apply(&self, old: &Status, now_ms: u64) -> Status {
        let status = self.status.clone().unwrap_or_else(|| old.status.clone());
        let away_since = match (status == "away", old.status == "away") {
            (true, true) => old.away_since.or(Some(now_ms)),
            (true, false) => Some(now_ms),
            (false, _) => None,
        };
        Status {
            status,
            message: self.message.clone().unwrap_or_else(|| old.message.clone()),
            device: self.device.clone().or_else(|| old.device.clone()),
            away_since,
        }
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// (user, left at ms), oldest first.
type Departures = VecDeque<(Arc<str>, u64)>;

#[derive(Default)]
struct UserEntry {
    /// The status and when it was set.
    status: Option<(Status, Instant)>,
    last_seen: Option<u64>,
    /// Last set or departed: the least recently touched go first at the bound.
    touched: Option<Instant>,
}

impl UserEntry {
    /// The status at `now`, unless it was set longer than [`KEEP`] before.
    fn current(&self, now: Instant) -> Option<&Status> {
        let (status, at) = self.status.as_ref()?;
        (now.saturating_duration_since(*at) < KEEP).then_some(status)
    }
}

/// At `bound` entries, drops the least recent tenth (by `recency`) in one pass, so the scan
/// is paid once per `bound / 10` new entries, not once each.
fn make_room<V, R: Ord + Copy>(
    map: &mut HashMap<Arc<str>, V>,
    bound: usize,
    recency: impl Fn(&V) -> R,
) {
    if map.len() < bound {
        return;
    }
    let mut all: Vec<R> = map.values().map(&recency).collect();
    let cut = all.len() / 10;
    let threshold = *all.select_nth_unstable(cut).1;
    map.retain(|_, v| recency(v) > threshold);
}

/// A lone node's statuses and departures for one app.
#[derive(Default)]
pub struct Statuses {
    users: Mutex<HashMap<Arc<str>, UserEntry>>,
    /// Channel -> who left it and when.
    left: Mutex<HashMap<Arc<str>, Departures>>,
}

impl Statuses {
    fn with_user<T>(&self, user_id: &str, f: impl FnOnce(&mut UserEntry) -> T) -> T {
        let mut users = self.users.lock().expect("statuses lock");
        let now = Instant::now();
        if !users.contains_key(user_id) {
            make_room(&mut users, MAX_USERS, |e| e.touched);
        }
        let entry = users.entry(Arc::from(user_id)).or_default();
        entry.touched = Some(now);
        f(entry)
    }

    /// Applies `update` to the user's status; the new status if it changed.
    fn set(&self, user_id: &str, update: &Update) -> Option<Status> {
        self.with_user(user_id, |e| {
            let now = Instant::now();
            let old = e.current(now).cloned();
            let new = update.apply(old.as_ref().unwrap_or(&Status::default()), now_ms());
            e.status = Some((new.clone(), now));
            (old.as_ref() != Some(&new)).then_some(new)
        })
    }

    fn status(&self, user_id: &str) -> Option<Status> {
        let users = self.users.lock().expect("statuses lock");
        users.get(user_id)?.current(Instant::now()).cloned()
    }

    fn last_seen(&self, user_id: &str) -> Option<u64> {
        self.users
            .lock()
            .expect("statuses lock")
            .get(user_id)?
            .last_seen
    }

    fn record_left(&self, channel: &str, user_id: &str, at: u64) {
        self.with_user(user_id, |e| e.last_seen = Some(at));
        let mut left = self.left.lock().expect("left lock");
        if !left.contains_key(channel) {
            make_room(&mut left, MAX_LEFT_CHANNELS, |q| q.back().map(|(_, t)| *t));
        }
        let q = left.entry(Arc::from(channel)).or_default();
        q.retain(|(u, _)| **u != *user_id);
        q.push_back((Arc::from(user_id), at));
        while q.len() > MAX_LEFT {
            q.pop_front();
        }
    }

    fn recently_left(&self, channel: &str, now: u64) -> Vec<(String, u64)> {
        let cutoff = now.saturating_sub(LEFT_KEEP.as_millis() as u64);
        self.left
            .lock()
            .expect("left lock")
            .get(channel)
            .map_or_else(Vec::new, |q| {
                q.iter()
                    .filter(|(_, t)| *t >= cutoff)
                    .map(|(u, t)| (u.to_string(), *t))
                    .collect()
            })
    }
}

/// How long, and how many, departures are kept in Redis: as here.
const RETENTION: crate::cluster::user_status::Retention = crate::cluster::user_status::Retention {
    left_for: LEFT_KEEP,
    most_left: MAX_LEFT,
    last_seen_for: KEEP,
};

/// Statuses from Redis, in order; one that does not parse counts as never set.
async fn statuses_in_redis(
    cluster: &crate::cluster::Cluster,
    app: &str,
    users: &[&str],
) -> redis::RedisResult<Vec<Option<Status>>> {
    let raw = crate::cluster::user_status::statuses(cluster, app, users).await?;
    Ok(raw
        .into_iter()
        .map(|json| json.and_then(|j| serde_json::from_str(&j).ok()))
        .collect())
}

/// `overtone:member_updated` data.
fn updated_data(user_id: &str, status: &Status) -> String {
    let mut data = serde_json::to_value(status).expect("statuses serialize");
    data["user_id"] = user_id.into();
    data.to_string()
}

/// Sets `user_id`'s status and, if it changed, tells every presence channel they are a
/// member of, on every node.
pub fn set(app: &Arc<App>, user_id: &str, update: Update) {
    let Some(cluster) = app.cluster().cloned() else {
        let changed = app.statuses.set(user_id, &update);
        if let Some(new) = changed {
            announce(app, user_id, &new, app.channels.member_channels(user_id));
        }
        return;
    };
    let (app, user_id) = (app.clone(), user_id.to_owned());
    tokio::spawn(async move {
        use crate::cluster::user_status as redis_side;
        let id = &app.config.id;
        let set = async {
            let old = statuses_in_redis(&cluster, id, &[&user_id]).await?;
            let old = old.into_iter().flatten().next();
            let new = update.apply(old.as_ref().unwrap_or(&Status::default()), now_ms());
            if old.as_ref() == Some(&new) {
                return Ok(None);
            }
            let json = serde_json::to_string(&new).expect("statuses serialize");
            redis_side::set(&cluster, id, &user_id, &json, KEEP).await?;
            let channels = redis_side::member_channels(&cluster, id, &user_id).await?;
            Ok::<_, redis::RedisError>(Some((new, channels)))
        };
        match set.await {
            Ok(Some((new, channels))) => announce(&app, &user_id, &new, channels),
            Ok(None) => {}
            Err(err) => tracing::warn!(%err, "redis: status not set"),
        }
    });
}

fn announce(app: &App, user_id: &str, status: &Status, channels: Vec<impl AsRef<str>>) {
    let data = updated_data(user_id, status);
    for channel in channels {
        let channel = channel.as_ref();
        app.relay(
            channel,
            &frame::channel_event(channel, UPDATED, &data, None),
            None,
        );
    }
}

/// Remembers that `user_id`'s last connection (here) left `channel` now.
pub fn left(app: &Arc<App>, channel: &str, user_id: &str) {
    let at = now_ms();
    let Some(cluster) = app.cluster().cloned() else {
        return app.statuses.record_left(channel, user_id, at);
    };
    let (app, channel, user_id) = (app.clone(), channel.to_owned(), user_id.to_owned());
    tokio::spawn(async move {
        let id = &app.config.id;
        if let Err(err) =
            crate::cluster::user_status::left(&cluster, id, &channel, &user_id, at, &RETENTION)
                .await
        {
            tracing::warn!(%err, "redis: departure not recorded");
        }
    });
}

/// `overtone:members` data.
fn members_data(members: &[String], statuses: &[Option<Status>], left: &[(String, u64)]) -> String {
    let mut out = Map::new();
    for (user, status) in members.iter().zip(statuses) {
        let status = status.clone().unwrap_or_default();
        out.insert(
            user.clone(),
            serde_json::to_value(status).expect("statuses serialize"),
        );
    }
    let left: Map<String, Value> = left
        .iter()
        .filter(|(u, _)| !out.contains_key(u))
        .map(|(u, t)| (u.clone(), (*t).into()))
        .collect();
    serde_json::json!({ "members": out, "left": left }).to_string()
}

/// Sends a new subscriber of a presence channel `overtone:members`; call once its
/// `subscription_succeeded` is queued.
pub fn send_members(app: &Arc<App>, channel: &str, conn: &ConnectionHandle) {
    if ChannelType::of(channel).kind != ChannelKind::Presence {
        return;
    }
    let Some(cluster) = app.cluster().cloned() else {
        let members = app.channels.user_ids(channel);
        let statuses: Vec<_> = members.iter().map(|u| app.statuses.status(u)).collect();
        let left = app.statuses.recently_left(channel, now_ms());
        let data = members_data(&members, &statuses, &left);
        conn.send(frame::channel_event(channel, MEMBERS, &data, None));
        return;
    };
    let (app, channel, conn) = (app.clone(), channel.to_owned(), conn.clone());
    tokio::spawn(async move {
        use crate::cluster::user_status as redis_side;
        let id = &app.config.id;
        let read = async {
            let members: Vec<String> = cluster
                .members(&mut cluster.redis(), id, &channel)
                .await?
                .into_keys()
                .collect();
            let ids: Vec<&str> = members.iter().map(String::as_str).collect();
            let statuses = statuses_in_redis(&cluster, id, &ids).await?;
            let since = now_ms().saturating_sub(LEFT_KEEP.as_millis() as u64);
            let left = redis_side::recently_left(&cluster, id, &channel, since).await?;
            Ok::<_, redis::RedisError>(members_data(&members, &statuses, &left))
        };
        match read.await {
            Ok(data) => {
                conn.send(frame::channel_event(&channel, MEMBERS, &data, None));
            }
            Err(err) => tracing::warn!(%err, channel, "redis: members' statuses not read"),
        }
    });
}

/// A user's presence for `GET /apps/{id}/users/{user_id}/presence`; None when a cluster
/// cannot say (Redis away).
pub async fn presence(app: &App, user_id: &str) -> Option<Value> {
    let (channels, signed_in, status, last_seen) = match app.cluster() {
        None => (
            app.channels
                .member_channels(user_id)
                .iter()
                .map(|c| c.to_string())
                .collect(),
            app.users.is_signed_in(user_id),
            app.statuses.status(user_id),
            app.statuses.last_seen(user_id),
        ),
        Some(cluster) => {
            use crate::cluster::user_status as redis_side;
            let id = &app.config.id;
            let read = async {
                let channels = redis_side::member_channels(cluster, id, user_id).await?;
                let signed_in = redis_side::is_signed_in(cluster, id, user_id).await?;
                let status = statuses_in_redis(cluster, id, &[user_id])
                    .await?
                    .into_iter()
                    .flatten()
                    .next();
                let last_seen = redis_side::last_seen(cluster, id, user_id).await?;
                Ok::<_, redis::RedisError>((channels, signed_in, status, last_seen))
            };
            read.await
                .map_err(|err| tracing::debug!(%err, "redis: presence not read"))
                .ok()?
        }
    };
    let mut channels: Vec<String> = channels;
    channels.sort();
    let online = signed_in || !channels.is_empty();
    let status = status.unwrap_or_default();
    Some(serde_json::json!({
        "user_id": user_id,
        "online": online,
        "status": status.status,
        "message": status.message,
        "device": status.device,
        "away_since": status.away_since,
        "last_seen_at": if online { None } else { last_seen },
        "channels": channels,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_keep_absent_fields_and_date_away() {
        let u = Update::parse(r#"{"status":"busy","message":"In a meeting","device":"desktop"}"#)
            .unwrap();
        let s = u.apply(&Status::default(), 5);
        assert_eq!(
            (
                s.status.as_str(),
                s.message.as_deref(),
                s.device.as_deref(),
                s.away_since
            ),
            ("busy", Some("In a meeting"), Some("desktop"), None)
        );
        let away = Update::parse(r#"{"status":"away"}"#).unwrap().apply(&s, 7);
        assert_eq!(
            (away.message.as_deref(), away.away_since),
            (Some("In a meeting"), Some(7))
        );
        let still = Update::parse(r#"{"device":"mobile"}"#)
            .unwrap()
            .apply(&away, 9);
        assert_eq!(still.away_since, Some(7), "away since it became away");
        let back = Update::parse(r#""{\"status\":\"online\",\"message\":null}""#)
            .unwrap()
            .apply(&still, 11);
        assert_eq!((back.message, back.away_since), (None, None));
    }

    #[test]
    fn bad_updates_say_why() {
        for bad in [
            r#"{"status":"BUSY"}"#,
            r#"{"status":"aaaaaaaaaaaaaaaaa"}"#,
            r#"{"message":1}"#,
            r#"[1]"#,
            "nope",
        ] {
            assert!(Update::parse(bad).is_err(), "{bad}");
        }
        let long = format!(r#"{{"message":"{}"}}"#, "é".repeat(MAX_MESSAGE_CHARS + 1));
        assert!(Update::parse(&long).unwrap_err().contains("100"));
    }

    #[test]
    fn a_status_is_kept_for_its_time_after_it_was_set() {
        let s = Statuses::default();
        s.set("ann", &Update::parse(r#"{"status":"busy"}"#).unwrap());
        s.record_left("presence-a", "ann", 5);
        let users = s.users.lock().unwrap();
        let ann = &users["ann"];
        let set_at = ann.status.as_ref().unwrap().1;
        assert_eq!(ann.current(set_at + KEEP / 2).unwrap().status, "busy");
        assert!(
            ann.current(set_at + KEEP).is_none(),
            "a departure does not extend it"
        );
    }

    #[test]
    fn users_are_bounded() {
        let s = Statuses::default();
        for i in 0..=MAX_USERS {
            s.with_user(&i.to_string(), |e| e.last_seen = Some(i as u64));
        }
        let users = s.users.lock().unwrap();
        assert!(users.len() <= MAX_USERS && users.len() > MAX_USERS * 8 / 10);
        assert!(users.contains_key(MAX_USERS.to_string().as_str()));
        assert!(!users.contains_key("0"), "the least recently touched went");
    }

    #[test]
    fn departures_are_bounded_and_forgotten() {
        let s = Statuses::default();
        for i in 0..=MAX_LEFT {
            s.record_left("presence-a", &i.to_string(), 1_000_000 + i as u64);
        }
        let left = s.recently_left("presence-a", 1_000_000);
        assert_eq!(left.len(), MAX_LEFT);
        assert!(!left.iter().any(|(u, _)| u == "0"));
        let later = 1_000_000 + LEFT_KEEP.as_millis() as u64 + 1_000;
        assert!(s.recently_left("presence-a", later).is_empty());
        assert_eq!(s.last_seen("7"), Some(1_000_007));
    }
}
