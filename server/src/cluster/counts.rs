//! `pusher_internal:subscription_count` across nodes: subscribers on every node hear the
//! cluster's total whenever any node's count of a channel changes.
//!
//! When a node's change moves a channel's total in Redis (see `presence::Cluster::count`), the
//! channel is marked; the first mark arms a [`WINDOW`] timer, and when it fires every marked
//! channel gets one announcement. So a burst of 1,000 subscriptions on a node costs each
//! subscriber one frame per window from that node (at most one per window per node that saw
//! changes), not 1,000 frames; a lone change is heard at most [`WINDOW`] later.
//!
//! An announcement is one Lua script: it reads the total and publishes it on the app's Redis
//! channel in the same step, and every node, the announcing one included, delivers what arrives
//! there. Redis orders the publishes, so every node hears the totals in the same order and the
//! last one heard is the latest (a total read before a change is never delivered after one
//! read after it). Nobody hears a total of 0: nobody is subscribed. Without Redis, a node
//! announces its own count to its own subscribers at once, as a lone node does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Cluster, Envelope, Hook, LocalApp, Message, Node};

/// How long a node gathers count changes before announcing them.
pub const WINDOW: Duration = Duration::from_millis(100);

/// Reads a channel's total (KEYS[1] field ARGV[1]) and, if someone is subscribed, publishes
/// it on KEYS[2] with ARGV[4] (`PUBLISH` or `SPUBLISH`) as ARGV[2] .. total .. ARGV[3] (an
/// [`Envelope`] cut around its count); returns the total.
const ANNOUNCE: &str = r#"
local total = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if total > 0 then
  redis.call(ARGV[4], KEYS[2], ARGV[2] .. string.format('%d', total) .. ARGV[3])
end
return total
"#;

/// A channel whose cluster-wide count changed, and its app.
pub(crate) type Changed = (Arc<dyn LocalApp>, Arc<str>);

/// Stands for the count in a serialized [`Message::SubscriptionCount`], to cut it around.
const PLACEHOLDER: u64 = u64::MAX;

/// Channels waiting for their announcement (keyed by app id and channel, with their app
/// `A`), and when it is due.
struct Pending<A> {
    channels: HashMap<(String, Arc<str>), A>,
    due: Option<Instant>,
}

impl<A> Default for Pending<A> {
    fn default() -> Self {
        Pending {
            channels: HashMap::new(),
            due: None,
        }
    }
}

impl<A> Pending<A> {
    /// Marks a channel; the first mark of a window arms it.
    fn mark(&mut self, app_id: &str, app: A, channel: Arc<str>, now: Instant) {
        self.channels.insert((app_id.into(), channel), app);
        self.due.get_or_insert(now + WINDOW);
    }

    /// Every marked channel, once the window is over; the next mark starts a new window.
    fn take(&mut self) -> Vec<(A, Arc<str>)> {
        self.due = None;
        self.channels
            .drain()
            .map(|((_, channel), app)| (app, channel))
            .collect()
    }
}

impl Cluster {
    /// A channel's total changed: announce it (coalesced) if its app wants counts, as frames
    /// or as webhooks.
    pub(crate) fn count_changed(&self, app: &Arc<dyn LocalApp>, channel: &str) {
        if !app.wants_counts(channel) && !app.wants_count_webhooks() {
            return;
        }
        if self.counts.send((app.clone(), channel.into())).is_err() {
            tracing::debug!("subscription count task gone");
        }
    }

    /// The envelope announcing `channel`'s count, cut where the count goes.
    fn count_envelope(&self, app_id: &str, channel: &str) -> Option<(String, String)> {
        let envelope = Envelope {
            node: self.node.clone(),
            app: app_id.into(),
            sent_us: super::unix_micros(),
            message: Message::SubscriptionCount {
                channel: channel.into(),
                count: PLACEHOLDER,
            },
        };
        let text = serde_json::to_string(&envelope).ok()?;
        // The count is serialized last; a channel name can only hold the marker escaped.
        let marker = format!("\"count\":{PLACEHOLDER}");
        let (head, tail) = text.rsplit_once(&marker)?;
        Some((format!("{head}\"count\":"), tail.to_owned()))
    }

    /// Reads the channel's total and publishes it to every node, in one step (only reads it
    /// when the app wants webhooks but no frames).
    async fn announce(&self, app: &dyn LocalApp, channel: &str) -> redis::RedisResult<u64> {
        let id = app.id();
        let mut conn = self.redis();
        if !app.wants_counts(channel) {
            let total: Option<u64> = redis::cmd("HGET")
                .arg(self.totals_key(id))
                .arg(channel)
                .query_async(&mut conn)
                .await?;
            return Ok(total.unwrap_or(0));
        }
        let Some((head, tail)) = self.count_envelope(id, channel) else {
            return Ok(0);
        };
        // The totals are app-wide keys: on a cluster, where a script's keys and channel share
        // one slot, the count goes out on the app's channel (in the app's slot) rather than
        // the channel's own; nodes without its subscribers drop it.
        let destination = if self.broker.is_cluster() {
            self.channel_of(id)
        } else {
            self.topic_of(id, channel)
        };
        redis::cmd("EVAL")
            .arg(ANNOUNCE)
            .arg(2)
            .arg(self.totals_key(id))
            .arg(destination)
            .arg(channel)
            .arg(head)
            .arg(tail)
            .arg(self.publish_command())
            .query_async(&mut conn)
            .await
    }
}

/// This node's own count, to its own subscribers: what a node without Redis announces.
pub(crate) fn announce_locally(app: &dyn LocalApp, channel: &str) {
    if app.wants_counts(channel) {
        app.channels().announce_count(channel, None);
    }
}

/// Gathers changed channels and announces each once per window, until shutdown.
pub(crate) async fn run(
    node: Arc<dyn Node>,
    cluster: Arc<Cluster>,
    mut changed: mpsc::UnboundedReceiver<Changed>,
) {
    let shutdown = node.stopping().clone();
    let mut pending: Pending<Arc<dyn LocalApp>> = Pending::default();
    loop {
        let due = pending.due;
        tokio::select! {
            change = changed.recv() => match change {
                Some((app, channel)) => {
                    let id = app.id().to_owned();
                    pending.mark(&id, app, channel, Instant::now());
                }
                None => return,
            },
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                for (app, channel) in pending.take() {
                    // Each on its own, so a slow or unreachable Redis delays no other.
                    let cluster = cluster.clone();
                    tokio::spawn(async move {
                        match cluster.announce(&*app, &channel).await {
                            Ok(total) => app.webhook(Hook::SubscriptionCount { channel: &channel, total }),
                            Err(err) => {
                                tracing::debug!(%err, "redis: subscription count announced locally");
                                announce_locally(&*app, &channel);
                            }
                        }
                    });
                }
            },
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::RedisConfig;

    #[test]
    fn a_burst_of_changes_is_one_announcement_per_channel_per_window() {
        let mut pending = Pending::default();
        let start = Instant::now();
        for i in 0..1000 {
            let channel = if i % 2 == 0 { "even" } else { "odd" };
            pending.mark("a", (), channel.into(), start + Duration::from_micros(i));
        }
        assert_eq!(
            pending.due,
            Some(start + WINDOW),
            "the first change arms the window"
        );
        let mut due: Vec<String> = pending
            .take()
            .into_iter()
            .map(|(_, c)| c.to_string())
            .collect();
        due.sort();
        assert_eq!(due, ["even", "odd"]);
        assert_eq!(pending.due, None);
        pending.mark("a", (), "even".into(), start + WINDOW * 2);
        assert_eq!(
            pending.due,
            Some(start + WINDOW * 3),
            "a later change starts a new window"
        );
    }

    #[test]
    fn the_announcement_envelope_is_cut_around_its_count() {
        let cluster = Cluster::new(RedisConfig::new("redis://127.0.0.1:1", "p").unwrap());
        let (head, tail) = cluster
            .count_envelope("app", r#"odd "count":18446744073709551615 name"#)
            .unwrap();
        let text = format!("{head}42{tail}");
        assert!(text.ends_with(r#","count":42}"#), "{text}");
        let envelope: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(envelope.app, "app");
        assert_eq!(
            envelope.message,
            Message::SubscriptionCount {
                channel: r#"odd "count":18446744073709551615 name"#.into(),
                count: 42
            }
        );
    }
}
