//! Webhooks, as Pusher sends them: `POST {"time_ms", "events": [..]}` to each of an app's
//! webhook URLs, signed with `X-Pusher-Key` and `X-Pusher-Signature` (HMAC-SHA256 hex of the
//! body with the app secret), retried with exponential backoff on failure.
//!
//! Events: `channel_occupied`, `channel_vacated`, `member_added`, `member_removed`,
//! `client_event`, `cache_miss`, `subscription_count`. `channel_vacated` and `member_removed`
//! wait [`LEAVE_GRACE`] and are dropped if the channel was re-occupied or the member came
//! back meanwhile (a page reload is not a leave); the matching `channel_occupied` and
//! `member_added` are then not sent again either.
//!
//! Nothing here slows the connection that caused an event: events go into a bounded queue
//! (dropped with a warning when it is full) drained by one delivery task per app.
//!
//! Shutdown loses none: once a lone node's connections are gone, the departures the grace
//! period would have reported are reported at once ([`report_departures`]: nobody comes back
//! to a node that stops), and [`Delivery::finish`] delivers everything queued, within the
//! shutdown grace period.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashSet;
use overtone_protocol::signature;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::channels::Change;
use crate::channels::SocketId;
use crate::config::AppConfig;
use crate::metrics::WebhookOutcomes;
use crate::state::App;

/// How long a vacated channel or a departed member waits before it is reported.
pub const LEAVE_GRACE: Duration = Duration::from_secs(3);
/// Events waiting for delivery, per app, before new ones are dropped.
const QUEUE_CAPACITY: usize = 10_000;
/// Most events in one POST.
const MAX_EVENTS_PER_POST: usize = 100;
/// Deliveries in flight at once, per app; a slow endpoint holds the rest in the queue.
const CONCURRENT_DELIVERIES: usize = 8;
/// Attempts per delivery; the waits between them double from one second.
const ATTEMPTS: u32 = 4;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What a webhook can be asked to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    ChannelOccupied,
    ChannelVacated,
    MemberAdded,
    MemberRemoved,
    ClientEvent,
    CacheMiss,
    SubscriptionCount,
}

/// One webhook endpoint of an app.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// An `http://` or `https://` URL.
    pub url: String,
    /// The events sent to it; empty means all.
    #[serde(default)]
    pub event_types: Vec<Kind>,
}

impl WebhookConfig {
    fn wants(&self, kind: Kind) -> bool {
        self.event_types.is_empty() || self.event_types.contains(&kind)
    }

    pub fn validate(&self) -> Result<(), String> {
        match reqwest::Url::parse(&self.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(()),
            _ => Err(format!("webhook url {:?} is not an http(s) URL", self.url)),
        }
    }
}

struct Event {
    kind: Kind,
    body: Value,
}

/// One app's webhook state: the queue to its delivery task and what was last reported.
pub struct Webhooks {
    queue: Option<mpsc::Sender<Event>>,
    /// Taken by [`start`], which hands it to the delivery task.
    pending: Mutex<Option<mpsc::Receiver<Event>>>,
    /// Channels reported occupied and not yet reported vacated.
    occupied: DashSet<Arc<str>>,
    /// `(channel, user_id)` pairs reported added and not yet reported removed.
    members: DashSet<(Arc<str>, Arc<str>)>,
    /// Whether a full queue was already logged (cleared once events flow again).
    overflowing: AtomicBool,
    /// POSTs delivered and failed, for `/metrics` and the console.
    pub outcomes: Arc<WebhookOutcomes>,
}

impl Webhooks {
    pub fn new(config: &AppConfig) -> Webhooks {
        let (queue, pending) = if config.webhooks.is_empty() {
            (None, None)
        } else {
            let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
            (Some(tx), Some(rx))
        };
        Webhooks {
            queue,
            pending: Mutex::new(pending),
            occupied: DashSet::new(),
            members: DashSet::new(),
            overflowing: AtomicBool::new(false),
            outcomes: Arc::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.queue.is_some()
    }

    fn push(&self, app: &AppConfig, kind: Kind, body: Value) {
        let Some(queue) = &self.queue else { return };
        if !app.webhooks.iter().any(|hook| hook.wants(kind)) {
            return;
        }
        match queue.try_send(Event { kind, body }) {
            Ok(()) => self.overflowing.store(false, Ordering::Relaxed),
            Err(_) => {
                if !self.overflowing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(app = %app.id, "webhook queue full: dropping events");
                }
            }
        }
    }
}

/// An app's running delivery task.
pub struct Delivery {
    task: tokio::task::JoinHandle<()>,
    finish: CancellationToken,
}

impl Delivery {
    /// Delivers what is queued, waits for the deliveries in flight (until `deadline` at most)
    /// and stops.
    pub async fn finish(self, deadline: tokio::time::Instant) {
        self.finish.cancel();
        let mut task = self.task;
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            tracing::warn!(
                "shutdown grace period over: webhooks still being delivered are dropped"
            );
            task.abort();
        }
    }
}

/// Starts the app's delivery task, if it has webhooks.
pub fn start(app: &Arc<App>) -> Option<Delivery> {
    let queue = app.webhooks.pending.lock().ok()?.take()?;
    let finish = CancellationToken::new();
    let task = tokio::spawn(deliver(app.clone(), queue, finish.clone()));
    Some(Delivery { task, finish })
}

/// Reports, without waiting out the grace period, every member and channel reported present
/// and now gone. Called on a lone node once its connections are closed for shutdown; on a
/// cluster the other nodes report this node's departures (`cluster::presence`).
pub fn report_departures(app: &App) {
    let hooks = &app.webhooks;
    if !hooks.enabled() || app.is_clustered() {
        return;
    }
    let members: Vec<_> = hooks.members.iter().map(|key| key.clone()).collect();
    for key in members {
        let (channel, user_id) = &key;
        if !app.channels.has_member(channel, user_id) && hooks.members.remove(&key).is_some() {
            member_removed(app, channel, user_id);
        }
    }
    let channels: Vec<_> = hooks
        .occupied
        .iter()
        .map(|channel| channel.clone())
        .collect();
    for channel in channels {
        if app.channels.occupancy(&channel).subscriptions == 0
            && hooks.occupied.remove(&channel).is_some()
        {
            channel_vacated(app, &channel);
        }
    }
}

/// A subscription happened: occupied, member added, cache miss, subscription count.
pub fn subscribed(app: &Arc<App>, channel: &str, change: Change, user_id: Option<&str>) {
    let hooks = &app.webhooks;
    if !hooks.enabled() {
        return;
    }
    let config = &app.config;
    let alone = !app.is_clustered();
    if alone && change.occupancy.subscriptions == 1 && hooks.occupied.insert(channel.into()) {
        channel_occupied(app, channel);
    }
    // On a cluster, members come and go cluster-wide: see `cluster::presence`.
    if let (true, Some(user_id), false) = (change.member, user_id, app.is_clustered()) {
        if hooks.members.insert((channel.into(), user_id.into())) {
            member_added(app, channel, user_id);
        }
    }
    if change.cache_miss {
        hooks.push(
            config,
            Kind::CacheMiss,
            json!({"name": Kind::CacheMiss, "channel": channel}),
        );
    }
    if alone {
        subscription_count(app, channel, change.occupancy.subscriptions as u64);
    }
}

/// A held subscriber on a cluster found no cached event on a cache channel.
pub fn cache_missed(app: &Arc<App>, channel: &str) {
    if app.webhooks.enabled() {
        app.webhooks.push(
            &app.config,
            Kind::CacheMiss,
            json!({"name": Kind::CacheMiss, "channel": channel}),
        );
    }
}

/// An unsubscription happened: vacated and member removed (after the grace period), count.
pub fn unsubscribed(app: &Arc<App>, channel: &str, change: Change, user_id: Option<&str>) {
    if !app.webhooks.enabled() {
        return;
    }
    if change.occupancy.subscriptions == 0 && !app.is_clustered() {
        let (app, channel) = (app.clone(), Arc::<str>::from(channel));
        tokio::spawn(async move {
            tokio::time::sleep(LEAVE_GRACE).await;
            let still_empty = app.channels.occupancy(&channel).subscriptions == 0;
            if still_empty && app.webhooks.occupied.remove(&channel).is_some() {
                channel_vacated(&app, &channel);
            }
        });
    }
    if let (true, Some(user_id), false) = (change.member, user_id, app.is_clustered()) {
        let (app, key) = (
            app.clone(),
            (Arc::<str>::from(channel), Arc::<str>::from(user_id)),
        );
        tokio::spawn(async move {
            tokio::time::sleep(LEAVE_GRACE).await;
            let (channel, user_id) = &key;
            if !app.channels.has_member(channel, user_id)
                && app.webhooks.members.remove(&key).is_some()
            {
                member_removed(&app, channel, user_id);
            }
        });
    }
    if change.occupancy.subscriptions > 0 && !app.is_clustered() {
        subscription_count(app, channel, change.occupancy.subscriptions as u64);
    }
}

/// Reports a channel's first subscriber (the caller made sure it was not reported already).
pub fn channel_occupied(app: &App, channel: &str) {
    let body = json!({"name": Kind::ChannelOccupied, "channel": channel});
    app.webhooks.push(&app.config, Kind::ChannelOccupied, body);
}

/// Reports a channel's last subscriber gone (the caller waited out [`LEAVE_GRACE`]).
pub fn channel_vacated(app: &App, channel: &str) {
    let body = json!({"name": Kind::ChannelVacated, "channel": channel});
    app.webhooks.push(&app.config, Kind::ChannelVacated, body);
}

/// Reports a member's arrival (the caller made sure it is their first connection).
pub fn member_added(app: &App, channel: &str, user_id: &str) {
    let body = json!({"name": Kind::MemberAdded, "channel": channel, "user_id": user_id});
    app.webhooks.push(&app.config, Kind::MemberAdded, body);
}

/// Reports a member's departure (the caller waited out [`LEAVE_GRACE`]).
pub fn member_removed(app: &App, channel: &str, user_id: &str) {
    let body = json!({"name": Kind::MemberRemoved, "channel": channel, "user_id": user_id});
    app.webhooks.push(&app.config, Kind::MemberRemoved, body);
}

/// Whether any of the app's endpoints wants `subscription_count` webhooks.
pub fn wants_subscription_count(app: &App) -> bool {
    app.webhooks.enabled()
        && app
            .config
            .webhooks
            .iter()
            .any(|hook| hook.wants(Kind::SubscriptionCount))
}

/// On a cluster: the channel's count cluster-wide, sent by a node whose change moved it (at
/// most once per [`crate::cluster::counts::WINDOW`] per node, with the total then).
pub fn cluster_subscription_count(app: &App, channel: &str, total: u64) {
    if app.webhooks.enabled() && total > 0 {
        subscription_count(app, channel, total);
    }
}

fn subscription_count(app: &App, channel: &str, subscriptions: u64) {
    let body = json!({
        "name": Kind::SubscriptionCount,
        "channel": channel,
        "subscription_count": subscriptions,
    });
    app.webhooks
        .push(&app.config, Kind::SubscriptionCount, body);
}

/// A client event was relayed; `data` is its JSON text, sent on as a string.
pub fn client_event(
    app: &App,
    channel: &str,
    event: &str,
    data: &str,
    socket_id: &SocketId,
    user_id: Option<&str>,
) {
    if !app.webhooks.enabled() {
        return;
    }
    let mut body = json!({
        "name": Kind::ClientEvent,
        "channel": channel,
        "event": event,
        "data": data,
        "socket_id": socket_id.as_str(),
    });
    if let Some(user_id) = user_id {
        body["user_id"] = user_id.into();
    }
    app.webhooks.push(&app.config, Kind::ClientEvent, body);
}

/// Drains the queue: each batch of waiting events becomes one POST per interested endpoint.
/// Once `finish` is cancelled: what is queued, then the deliveries in flight, then return.
async fn deliver(app: Arc<App>, mut queue: mpsc::Receiver<Event>, finish: CancellationToken) {
    let client = match reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build() {
        Ok(client) => client,
        Err(err) => return tracing::error!(%err, "webhooks disabled: no HTTP client"),
    };
    let in_flight = Arc::new(Semaphore::new(CONCURRENT_DELIVERIES));
    loop {
        let first = tokio::select! {
            event = queue.recv() => match event {
                Some(event) => event,
                None => break,
            },
            _ = finish.cancelled() => match queue.try_recv() {
                Ok(event) => event,
                Err(_) => break,
            },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_EVENTS_PER_POST {
            match queue.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        post_batch(&app, &client, &in_flight, &batch).await;
    }
    let _ = in_flight.acquire_many(CONCURRENT_DELIVERIES as u32).await;
}

/// Sends one batch to every endpoint that wants some of it, once a delivery slot is free.
async fn post_batch(
    app: &App,
    client: &reqwest::Client,
    in_flight: &Arc<Semaphore>,
    batch: &[Event],
) {
    let time_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    for hook in &app.config.webhooks {
        let events: Vec<&Value> = batch
            .iter()
            .filter(|e| hook.wants(e.kind))
            .map(|e| &e.body)
            .collect();
        if events.is_empty() {
            continue;
        }
        let body = json!({ "time_ms": time_ms, "events": events }).to_string();
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let post = Post {
            client: client.clone(),
            url: hook.url.clone(),
            key: app.config.key.clone(),
            signature: signature::hmac_hex(&app.config.secret, &body),
            body,
            outcomes: app.webhooks.outcomes.clone(),
        };
        tokio::spawn(async move {
            post.send_with_retries().await;
            drop(permit);
        });
    }
}

/// One signed POST to one endpoint.
struct Post {
    client: reqwest::Client,
    url: String,
    key: String,
    signature: String,
    body: String,
    outcomes: Arc<WebhookOutcomes>,
}

impl Post {
    async fn send_with_retries(self) {
        let mut wait = Duration::from_secs(1);
        for attempt in 1..=ATTEMPTS {
            let sent = self
                .client
                .post(&self.url)
                .header("Content-Type", "application/json")
                .header("X-Pusher-Key", &self.key)
                .header("X-Pusher-Signature", &self.signature)
                .body(self.body.clone())
                .send()
                .await;
            let delivered = matches!(&sent, Ok(response) if response.status().is_success());
            let outcome = if delivered {
                &self.outcomes.delivered
            } else {
                &self.outcomes.failed
            };
            outcome.fetch_add(1, Ordering::Relaxed);
            match sent {
                Ok(_) if delivered => return,
                Ok(response) => {
                    tracing::debug!(url = %self.url, status = %response.status(), attempt, "webhook refused")
                }
                Err(err) => tracing::debug!(url = %self.url, %err, attempt, "webhook failed"),
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        tracing::warn!(url = %self.url, "webhook dropped after {ATTEMPTS} attempts");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::{Closer, ConnectionHandle};
    use crate::presence::Member;

    fn app_with_webhook() -> (Arc<App>, mpsc::Receiver<Event>) {
        let mut config = AppConfig::new("a", "k", "s");
        config.webhooks = vec![WebhookConfig {
            url: "http://127.0.0.1:9/hook".into(),
            event_types: Vec::new(),
        }];
        let app = Arc::new(App::new(config));
        let queue = app.webhooks.pending.lock().unwrap().take().unwrap();
        (app, queue)
    }

    fn names(queue: &mut mpsc::Receiver<Event>) -> Vec<String> {
        std::iter::from_fn(|| queue.try_recv().ok())
            .map(|e| e.body["name"].as_str().unwrap().to_owned())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn leaving_is_reported_after_the_grace_period_unless_the_client_returns() {
        let (app, mut queue) = app_with_webhook();
        let (tx, _rx) = mpsc::channel(64);
        let conn = ConnectionHandle::new(SocketId::from("1.1"), tx, Arc::new(Closer::default()));
        let member = Member::from_channel_data(r#"{"user_id":"u"}"#, 1024).unwrap();
        let join = || {
            let change = app
                .channels
                .subscribe("presence-x", &conn, Some(&member), 100);
            subscribed(&app, "presence-x", change.unwrap(), Some("u"));
        };
        let leave = || {
            let change = app
                .channels
                .unsubscribe("presence-x", &conn.socket_id, false);
            unsubscribed(&app, "presence-x", change.unwrap(), Some("u"));
        };

        join();
        leave();
        tokio::time::sleep(Duration::from_secs(1)).await;
        join(); // back within the grace period: a reload, not a leave
        tokio::time::sleep(LEAVE_GRACE * 2).await;
        assert_eq!(
            names(&mut queue),
            [
                "channel_occupied",
                "member_added",
                "subscription_count",
                "subscription_count"
            ]
        );

        leave();
        tokio::time::sleep(LEAVE_GRACE * 2).await;
        let mut left = names(&mut queue);
        left.sort();
        assert_eq!(left, ["channel_vacated", "member_removed"]);
    }

    #[test]
    fn only_the_wanted_kinds_are_queued_and_urls_are_checked() {
        let mut config = AppConfig::new("a", "k", "s");
        config.webhooks = vec![WebhookConfig {
            url: "https://example.test/hook".into(),
            event_types: vec![Kind::ClientEvent],
        }];
        let app = App::new(config);
        let mut queue = app.webhooks.pending.lock().unwrap().take().unwrap();
        app.webhooks.push(
            &app.config,
            Kind::CacheMiss,
            json!({"name": Kind::CacheMiss}),
        );
        client_event(
            &app,
            "private-a",
            "client-x",
            "{}",
            &SocketId::from("1.2"),
            None,
        );
        assert_eq!(names(&mut queue), ["client_event"]);
        assert!(app.config.webhooks[0].validate().is_ok());
        let ftp = WebhookConfig {
            url: "ftp://example.test".into(),
            event_types: Vec::new(),
        };
        assert!(ftp.validate().is_err());
    }
}
