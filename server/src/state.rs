//! The one handle every task shares: the configuration, the apps (each with its channel
//! registry, signed-in users and connection count), the link to other nodes, the metrics, and
//! the shutdown signal.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use axum::extract::ws::Utf8Bytes;

/// Kept here too for embedders (`overtone_server::state::SocketId`); the registry owns it.
pub use crate::channels::SocketId;
use crate::channels::{ChannelRegistry, ChannelSummary, ConnectionHandle, Occupancy};
use crate::cluster::{self, Cluster};
use crate::config::{AppConfig, Config};
use crate::fanout::Fanout;
use crate::history::{Limits, Rules};
use crate::metrics::Metrics;
use crate::presence::Member;
use crate::reads::Reads;
use crate::user_status::Statuses;
use crate::users::Users;
use crate::webhooks::{self, Webhooks};

/// Cheap to clone; everything behind it is shared.
#[derive(Clone)]
pub struct Shared(Arc<Inner>);

struct Inner {
    config: Config,
    apps_by_key: HashMap<String, Arc<App>>,
    apps_by_id: HashMap<String, Arc<App>>,
    cluster: Option<Arc<Cluster>>,
    metrics: Metrics,
    shutdown: CancellationToken,
    /// Shutdown was asked for: not ready, though still serving until `shutdown` is cancelled.
    draining: AtomicBool,
    /// Random per process so socket ids do not repeat across restarts.
    socket_id_prefix: u32,
    next_socket: AtomicU64,
}

/// One app at run time: its configuration, its channels and its connections.
pub struct App {
    pub config: AppConfig,
    pub channels: ChannelRegistry,
    connections: AtomicUsize,
    pub users: Users,
    pub webhooks: Webhooks,
    /// Read markers and their announcements (`crate::reads`).
    pub reads: Reads,
    /// Member statuses and departures (`crate::user_status`).
    pub statuses: Statuses,
    /// Which channels keep history (parsed from the config's rules).
    pub history: Rules,
    /// The other nodes, when there are any.
    cluster: Option<Arc<Cluster>>,
    /// Publishes waiting for their sends (`crate::fanout`, where [`App::publish`] is).
    pub fanout: Fanout,
}

/// A connection counted against its app's quota; uncounted when dropped.
pub struct Admission(Arc<App>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

impl App {
    pub fn new(config: AppConfig) -> App {
        App::in_cluster(config, None)
    }

    fn in_cluster(config: AppConfig, cluster: Option<Arc<Cluster>>) -> App {
        App {
            webhooks: Webhooks::new(&config),
            reads: Reads::default(),
            statuses: Statuses::default(),
            // Checked when the config was read (`config::validate_apps`).
            history: Rules::new(&config.history).unwrap_or_default(),
            channels: ChannelRegistry::new(cluster.is_some(), config.history_max_bytes),
            config,
            connections: AtomicUsize::new(0),
            users: match cluster {
                Some(_) => Users::clustered(),
                None => Users::default(),
            },
            cluster,
            fanout: Fanout::default(),
        }
    }

    /// The channel's history limits, or None when it keeps none.
    pub fn history_limits(&self, channel: &str) -> Option<Limits> {
        self.history.for_channel(channel)
    }

    /// The link to the other nodes, when there are any.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    /// Sends `frame` to the channel's subscribers on every node, except the `except` socket,
    /// without a position (client events, and channels without history).
    pub fn relay(&self, channel: &str, frame: &Utf8Bytes, except: Option<&SocketId>) {
        self.channels.publish(channel, frame, except);
        if let Some(cluster) = &self.cluster {
            let message = cluster::Message::Event {
                channel: channel.into(),
                frame: frame.as_str().into(),
                except: except.map(|id| id.as_str().into()),
            };
            cluster.forward(&self.config.id, message);
        }
    }

    /// After `conn` joined a presence channel as `member`: on a cluster, the member is shared
    /// and `subscription_succeeded` (with every node's members) sent, releasing the held
    /// subscriber with its history when the channel keeps some; alone, the registry already
    /// did both.
    pub fn presence_joined(
        self: &Arc<App>,
        channel: &str,
        member: &Member,
        conn: &ConnectionHandle,
        first_here: bool,
        hold: Option<cluster::presence::Hold>,
    ) {
        if let Some(cluster) = &self.cluster {
            cluster.presence(cluster::presence::Op::Join {
                app: self.clone(),
                channel: channel.into(),
                member: member.clone(),
                conn: conn.clone(),
                first_here,
                hold,
            });
        }
    }

    /// After a subscribe or unsubscribe on this node.
    pub fn subscriptions_changed(self: &Arc<App>, channel: &str) {
        if let Some(cluster) = &self.cluster {
            if self.channels.occupancy(channel).subscriptions == 0 {
                cluster.unwatch_if_idle(self.clone(), channel);
            }
            cluster.presence(cluster::presence::Op::Count {
                app: self.clone(),
                channel: channel.into(),
            });
        }
    }

    /// Signs `conn` in as `user_id` watching `watchlist`, and answers it with `success`
    /// (`pusher:signin_success`). A lone node answers first, then announces; a cluster
    /// announces online and the watchlist's online users cluster-wide, and answers once Redis
    /// has the sign-in, so a connection of the user's closing on another node meanwhile cannot
    /// make them seem offline.
    pub fn sign_in(
        self: &Arc<App>,
        user_id: &Arc<str>,
        conn: &ConnectionHandle,
        watchlist: &[Arc<str>],
        success: Utf8Bytes,
    ) {
        let Some(cluster) = &self.cluster else {
            conn.send(success);
            self.users.sign_in(user_id, conn, watchlist);
            return;
        };
        let first = self.users.sign_in(user_id, conn, watchlist);
        if first || !watchlist.is_empty() {
            cluster.presence(cluster::presence::Op::SignIn {
                app: self.clone(),
                user_id: user_id.clone(),
                conn: conn.clone(),
                watchlist: watchlist.to_vec(),
                first_here: first,
                success,
            });
        } else {
            conn.send(success);
        }
    }

    /// After a user's last connection on this node signed out (or closed).
    pub fn signed_out(self: &Arc<App>, user_id: &Arc<str>) {
        if let Some(cluster) = &self.cluster {
            cluster.presence(cluster::presence::Op::SignOut {
                app: self.clone(),
                user_id: user_id.clone(),
            });
        }
    }

    /// After `grace`, removes `user_id` from `channel` (announced, on a cluster told to the
    /// cluster, reported to webhooks) unless a connection of theirs came back meanwhile.
    pub fn depart_after(self: &Arc<App>, channel: &str, user_id: &str, grace: Duration) {
        let (app, channel, user_id) = (self.clone(), channel.to_string(), user_id.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if let Some(change) = app.channels.depart(&channel, &user_id) {
                app.presence_left(&channel, &user_id);
                crate::user_status::left(&app, &channel, &user_id);
                webhooks::unsubscribed(&app, &channel, change, Some(&user_id));
            }
        });
    }

    /// After a subscriber's `subscription_succeeded` is queued: the channel's read markers and,
    /// on presence channels, its members' statuses (README, "Wire extensions").
    pub fn confirmed(self: &Arc<App>, channel: &str, conn: &ConnectionHandle) {
        crate::reads::send_current(self, channel, conn);
        crate::user_status::send_members(self, channel, conn);
    }

    /// After a user's last connection on this node left a presence channel.
    pub fn presence_left(self: &Arc<App>, channel: &str, user_id: &str) {
        if let Some(cluster) = &self.cluster {
            cluster.presence(cluster::presence::Op::Leave {
                app: self.clone(),
                channel: channel.into(),
                user_id: user_id.into(),
            });
        }
    }

    /// Whether this node is one of several (presence and its webhooks are then cluster-wide).
    pub fn is_clustered(&self) -> bool {
        self.cluster.is_some()
    }

    /// The user ids of a presence channel's members, on every node; on a cluster, None when
    /// Redis cannot say (this node's members are not all of them).
    pub async fn user_ids(&self, channel: &str) -> Option<Vec<String>> {
        match &self.cluster {
            Some(cluster) => cluster.user_ids(&self.config.id, channel).await,
            None => Some(self.channels.user_ids(channel)),
        }
    }

    /// A channel's subscriptions and members on every node; None as for [`App::user_ids`].
    pub async fn occupancy(&self, channel: &str) -> Option<Occupancy> {
        let Some(cluster) = &self.cluster else {
            return Some(self.channels.occupancy(channel));
        };
        let (subscriptions, users) = cluster.occupancy(&self.config.id, channel).await?;
        Some(Occupancy {
            subscriptions,
            users,
        })
    }

    /// Occupied channels whose names start with `prefix`, on every node; None as for
    /// [`App::user_ids`].
    pub async fn occupied(&self, prefix: &str) -> Option<Vec<ChannelSummary>> {
        let Some(cluster) = &self.cluster else {
            return Some(self.channels.occupied(prefix));
        };
        let occupied = cluster.occupied(&self.config.id, prefix).await?;
        let summaries = occupied
            .into_iter()
            .map(|(name, subscriptions, users)| ChannelSummary {
                name: name.into(),
                occupancy: Occupancy {
                    subscriptions,
                    users,
                },
            })
            .collect();
        Some(summaries)
    }

    /// Closes every connection signed in as `user_id`, on every node.
    pub fn terminate(&self, user_id: &str, code: u16) {
        let closed = self.users.terminate(user_id, code);
        tracing::debug!(user_id, closed, "terminated a user's connections");
        if let Some(cluster) = &self.cluster {
            let message = cluster::Message::Terminate {
                user_id: user_id.into(),
                code,
            };
            cluster.forward(&self.config.id, message);
        }
    }

    /// Open connections (and ones being refused this instant).
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Counts a new connection, or None if the app is at its `max_connections`.
    pub fn admit(self: &Arc<App>) -> Option<Admission> {
        let before = self.connections.fetch_add(1, Ordering::AcqRel);
        let admission = Admission(self.clone());
        match self.config.max_connections {
            Some(max) if before >= max => None, // dropping `admission` uncounts it
            _ => Some(admission),
        }
    }
}

/// What the cluster reaches of this node (see [`cluster`]'s module doc).
impl cluster::Node for Shared {
    fn apps_here(&self) -> Vec<Arc<dyn cluster::LocalApp>> {
        self.apps()
            .map(|app| app.clone() as Arc<dyn cluster::LocalApp>)
            .collect()
    }

    fn app_here(&self, id: &str) -> Option<Arc<dyn cluster::LocalApp>> {
        self.app_by_id(id)
            .map(|app| app.clone() as Arc<dyn cluster::LocalApp>)
    }

    fn stopping(&self) -> &CancellationToken {
        self.shutdown()
    }

    fn relayed(&self, latency: Duration) {
        self.metrics().cluster_latency.observe(latency);
    }
}

/// What the cluster reaches of one app.
impl cluster::LocalApp for App {
    fn id(&self) -> &str {
        &self.config.id
    }

    fn channels(&self) -> &ChannelRegistry {
        &self.channels
    }

    fn max_presence_members(&self) -> usize {
        self.config.max_presence_members
    }

    fn history_limits(&self, channel: &str) -> Option<Limits> {
        self.history.for_channel(channel)
    }

    /// Never on presence channels: their members are their count.
    fn wants_counts(&self, channel: &str) -> bool {
        use overtone_protocol::channel::{ChannelKind, ChannelType};
        self.config.subscription_count && ChannelType::of(channel).kind != ChannelKind::Presence
    }

    fn relay(&self, channel: &str, frame: &Utf8Bytes, except: Option<&SocketId>) {
        App::relay(self, channel, frame, except);
    }

    fn terminate_here(&self, user_id: &str, code: u16) {
        self.users.terminate(user_id, code);
    }

    fn tell_watchers(&self, user_id: &str, online: bool) {
        let name = if online { "online" } else { "offline" };
        self.users.tell_watchers(user_id, name);
    }

    fn signed_in_here(&self) -> Vec<Arc<str>> {
        self.users.signed_in_here()
    }

    fn announce_sign_in_here(
        &self,
        user_id: &str,
        conn: &ConnectionHandle,
        watchlist: &[Arc<str>],
        first_here: bool,
    ) {
        self.users
            .announce_sign_in(user_id, conn, watchlist, first_here);
    }

    fn webhooks_enabled(&self) -> bool {
        self.webhooks.enabled()
    }

    fn wants_count_webhooks(&self) -> bool {
        webhooks::wants_subscription_count(self)
    }

    fn leave_grace(&self) -> Duration {
        webhooks::LEAVE_GRACE
    }

    fn confirmed(self: Arc<Self>, channel: &str, conn: &ConnectionHandle) {
        App::confirmed(&self, channel, conn);
    }

    fn webhook(&self, hook: cluster::Hook<'_>) {
        use cluster::Hook;
        match hook {
            Hook::ChannelOccupied { channel } => webhooks::channel_occupied(self, channel),
            Hook::ChannelVacated { channel } => webhooks::channel_vacated(self, channel),
            Hook::MemberAdded { channel, user_id } => {
                webhooks::member_added(self, channel, user_id)
            }
            Hook::MemberRemoved { channel, user_id } => {
                webhooks::member_removed(self, channel, user_id)
            }
            Hook::SubscriptionCount { channel, total } => {
                webhooks::cluster_subscription_count(self, channel, total)
            }
        }
    }
}

impl Shared {
    pub fn new(config: Config, shutdown: CancellationToken) -> Shared {
        let cluster = config
            .redis
            .clone()
            .map(|redis| Arc::new(Cluster::new(redis)));
        let apps: Vec<Arc<App>> = config
            .apps
            .iter()
            .map(|app| Arc::new(App::in_cluster(app.clone(), cluster.clone())))
            .collect();
        let apps_by_key = apps
            .iter()
            .map(|a| (a.config.key.clone(), a.clone()))
            .collect();
        let apps_by_id = apps
            .iter()
            .map(|a| (a.config.id.clone(), a.clone()))
            .collect();
        Shared(Arc::new(Inner {
            config,
            apps_by_key,
            apps_by_id,
            cluster,
            metrics: Metrics::default(),
            shutdown,
            draining: AtomicBool::new(false),
            socket_id_prefix: fastrand::u32(1..1_000_000_000),
            next_socket: AtomicU64::new(1),
        }))
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    pub fn app_by_key(&self, key: &str) -> Option<&Arc<App>> {
        self.0.apps_by_key.get(key)
    }

    pub fn app_by_id(&self, id: &str) -> Option<&Arc<App>> {
        self.0.apps_by_id.get(id)
    }

    pub fn apps(&self) -> impl Iterator<Item = &Arc<App>> {
        self.0.apps_by_id.values()
    }

    /// The link to the other nodes, when this node is one of several.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.0.cluster.as_ref()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// Cancelled when the node stops accepting and closes its clients (after the drain).
    pub fn shutdown(&self) -> &CancellationToken {
        &self.0.shutdown
    }

    /// Marks the node as shutting down: `/ready` answers 503 from now on.
    pub fn start_draining(&self) {
        self.0.draining.store(true, Ordering::Release);
    }

    /// Whether shutdown has begun (the drain, or the closing after it).
    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::Acquire) || self.0.shutdown.is_cancelled()
    }

    /// A new socket id in Pusher's `digits.digits` form, unique within this process.
    pub fn next_socket_id(&self) -> SocketId {
        let n = self.0.next_socket.fetch_add(1, Ordering::Relaxed);
        SocketId::from(format!("{}.{}", self.0.socket_id_prefix, n).as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_quota_counts_and_releases() {
        let mut config = AppConfig::new("a", "k", "s");
        config.max_connections = Some(1);
        let app = Arc::new(App::new(config));
        let first = app.admit().expect("first fits");
        assert!(app.admit().is_none());
        drop(first);
        assert!(app.admit().is_some());
    }

    #[test]
    fn presence_channels_and_apps_without_counts_are_not_announced() {
        use cluster::LocalApp;
        let mut config = AppConfig::new("a", "k", "s");
        assert!(!App::new(config.clone()).wants_counts("chat"));
        config.subscription_count = true;
        let app = App::new(config);
        assert!(app.wants_counts("chat"));
        assert!(app.wants_counts("private-chat"));
        assert!(!app.wants_counts("presence-chat"));
    }
}
