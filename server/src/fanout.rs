//! Publishing after the answer: `POST /events` and `/batch_events` (and an embedder's
//! [`App::publish`]) accept their events at once and leave the sends to their app's fanout
//! task, so the HTTP answer never waits for thousands of sockets.
//!
//! Accepting ([`crate::channels::ChannelRegistry::accept`], under each channel's lock) does what a reader may
//! see right after the answer: history positions assigned and stored, a cache channel's event
//! remembered, and the event numbered so that subscribers who come before it is delivered
//! (and got it in their replay or cached event, or subscribed after it as they would have) are
//! skipped. The fanout task then delivers the accepted events in the order they were accepted:
//! every publish of the app is accepted and queued under one lock, so on each channel the
//! queue holds events in position order, and each subscriber sees them in publish order.
//!
//! One task per app rather than per channel: a task (and its queue) per channel would cost
//! memory on every channel, most of which see few events; one per app keeps order across a
//! batch's channels for free, and a huge channel's fanout already spreads its sends over every
//! worker through the subscribers' writer tasks (see [`crate::channels`]).
//!
//! The queue is bounded: at most [`MAX_QUEUED`] publishes wait. An HTTP publish waits for
//! [`Room`] before it accepts anything, so a backend publishing faster than its subscribers can
//! be written to is slowed down, answer by answer, rather than buffered without end or
//! dropped. At shutdown, [`Fanout::flushed`] waits for every publish accepted before it.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::channels::{Accepted, SocketId};
use crate::cluster;
use crate::state::App;

/// Most publishes (one `POST /events` or `/batch_events` each) waiting for their fanout.
pub const MAX_QUEUED: usize = 256;

/// One app's fanout queue and the task delivering it.
pub struct Fanout {
    /// The queue, under the lock that orders accepting and queueing for the whole app.
    queue: Mutex<mpsc::UnboundedSender<Job>>,
    /// The queue's other end until the task takes it, on the first publish.
    jobs: Mutex<Option<mpsc::UnboundedReceiver<Job>>>,
    room: Arc<Semaphore>,
}

/// A place in the fanout queue for one publish, given back (dropped) once it is delivered.
pub struct Room {
    _permit: Option<OwnedSemaphorePermit>,
}

impl Room {
    /// For a publisher that cannot wait (an embedder's own synchronous call): it is queued
    /// even when the queue is full.
    pub fn unbounded() -> Room {
        Room { _permit: None }
    }
}

enum Job {
    Deliver(Vec<Accepted>, Room),
    /// Answered once everything queued before it is delivered.
    Flush(oneshot::Sender<()>),
}

impl Default for Fanout {
    fn default() -> Fanout {
        let (queue, jobs) = mpsc::unbounded_channel();
        Fanout {
            queue: Mutex::new(queue),
            jobs: Mutex::new(Some(jobs)),
            room: Arc::new(Semaphore::new(MAX_QUEUED)),
        }
    }
}

impl Fanout {
    /// Waits until the queue has room for one more publish.
    pub async fn room(&self) -> Room {
        // The semaphore is never closed.
        Room {
            _permit: self.room.clone().acquire_owned().await.ok(),
        }
    }

    /// Waits until every publish queued before now is delivered.
    pub async fn flushed(&self) {
        let (done, delivered) = oneshot::channel();
        if lock(&self.queue).send(Job::Flush(done)).is_ok() && !self.idle() {
            let _ = delivered.await;
        }
    }

    /// No task yet: nothing was ever queued.
    fn idle(&self) -> bool {
        lock(&self.jobs).is_some()
    }
}

/// One publish being accepted: its events, queued together when it is dropped. It holds the
/// app's queue lock meanwhile, so keep it short (no waiting).
pub struct Publishing<'a> {
    app: &'a App,
    queue: MutexGuard<'a, mpsc::UnboundedSender<Job>>,
    accepted: Vec<Accepted>,
    room: Option<Room>,
}

impl App {
    /// Starts a publish that fills `room` (from [`Fanout::room`]).
    pub fn publishing(self: &Arc<App>, room: Room) -> Publishing<'_> {
        if let Some(jobs) = lock(&self.fanout.jobs).take() {
            tokio::spawn(deliver(Arc::downgrade(self), jobs));
        }
        Publishing {
            app: self,
            queue: lock(&self.fanout.queue),
            accepted: Vec::new(),
            room: Some(room),
        }
    }

    /// Publishes one server event now, without waiting for room (see [`Room::unbounded`]);
    /// as [`Publishing::publish`].
    pub fn publish(self: &Arc<App>, channel: &str, frame: &Utf8Bytes, except: Option<&SocketId>) {
        self.publishing(Room::unbounded())
            .publish(channel, frame, except);
    }
}

impl Publishing<'_> {
    /// Publishes a server event (`frame` built by [`crate::frame::channel_event`]) to the
    /// channel's subscribers on every node, except the `except` socket wherever it is
    /// connected. On a channel with history the event gets its position first: here, at once;
    /// on a cluster, from Redis, and every node (this one too) delivers it when Redis hands it
    /// back, in position order.
    pub fn publish(&mut self, channel: &str, frame: &Utf8Bytes, except: Option<&SocketId>) {
        let app = self.app;
        let history = app.history.for_channel(channel);
        if let (Some(limits), Some(cluster)) = (history, app.cluster()) {
            let item = cluster::history::Publish {
                app: app.config.id.clone(),
                channel: channel.into(),
                frame: frame.clone(),
                except: except.cloned(),
                limits,
            };
            // Redis too far behind (an error): this node's clients still get it, positioned
            // here.
            if cluster.publish_history(item).is_ok() {
                return;
            }
        } else if let Some(cluster) = app.cluster() {
            let message = cluster::Message::Event {
                channel: channel.into(),
                frame: frame.as_str().into(),
                except: except.map(|id| id.as_str().into()),
            };
            cluster.forward(&app.config.id, message);
        }
        self.accepted
            .extend(app.channels.accept(channel, frame, except, history));
    }
}

impl Drop for Publishing<'_> {
    fn drop(&mut self) {
        let room = self.room.take().unwrap_or_else(Room::unbounded);
        if !self.accepted.is_empty() {
            let accepted = std::mem::take(&mut self.accepted);
            // The task only ends with the app, and the app is here.
            let _ = self.queue.send(Job::Deliver(accepted, room));
        }
    }
}

/// The fanout task: delivers each publish's events in the order they were queued, until the
/// app is gone.
async fn deliver(app: Weak<App>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = jobs.recv().await {
        match job {
            Job::Deliver(accepted, _room) => {
                let Some(app) = app.upgrade() else { return };
                accepted.iter().for_each(|event| {
                    app.channels.deliver(event);
                });
            }
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use axum::body::Bytes;

    use super::*;
    use crate::channels::{Closer, ConnectionHandle, HistoryMode};
    use crate::config::AppConfig;
    use crate::history::HistoryRule;
    use crate::http_api::{trigger_event, Signed};

    /// An app whose channels `h-*` keep history and others do not.
    fn app() -> Arc<App> {
        let mut config = AppConfig::new("a", "k", "s");
        config.history = vec![
            HistoryRule {
                channel: "h-*".into(),
                ..HistoryRule::default_rule()
            },
            HistoryRule {
                channel: "*".into(),
                max_events: 0,
                max_age_secs: 1,
            },
        ];
        Arc::new(App::new(config))
    }

    fn subscriber(app: &App, id: &str, channel: &str) -> mpsc::Receiver<Utf8Bytes> {
        let (conn, rx) = connection(id);
        app.channels.subscribe(channel, &conn, None, 100).unwrap();
        rx
    }

    fn connection(id: &str) -> (ConnectionHandle, mpsc::Receiver<Utf8Bytes>) {
        let (tx, rx) = mpsc::channel(1024);
        let conn = ConnectionHandle::new(SocketId::from(id), tx, Arc::new(Closer::default()));
        (conn, rx)
    }

    /// `event data position` of each frame received, confirmations left out.
    fn received(rx: &mut mpsc::Receiver<Utf8Bytes>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|f| serde_json::from_str::<serde_json::Value>(&f).unwrap())
            .filter(|v| v["event"] != "pusher_internal:subscription_succeeded")
            .map(|v| format!("{} {} {}", v["event"], v["data"], v["position"]))
            .collect()
    }

    async fn trigger(app: &Arc<App>, channel: &str, data: &str) {
        let body = serde_json::json!({ "name": "e", "channel": channel, "data": data });
        let signed = Signed::trusted(app.clone(), Vec::new(), Bytes::from(body.to_string()));
        let _answer = trigger_event(signed).await.unwrap();
    }

    /// The answer is causally before the sends: on a runtime with one thread, the request's
    /// future completes while the fanout task has not run yet.
    #[tokio::test(flavor = "current_thread")]
    async fn post_events_answers_before_its_fanout() {
        let app = app();
        let mut rx = subscriber(&app, "1.1", "chat");
        trigger(&app, "chat", "1").await;
        assert!(received(&mut rx).is_empty(), "answered before any send");
        app.fanout.flushed().await;
        assert_eq!(received(&mut rx), [r#""e" "1" null"#]);
    }

    /// Positions are assigned when the request is answered (its history is readable at once);
    /// a client that resumes before the event is delivered gets it in its replay, once.
    #[tokio::test(flavor = "current_thread")]
    async fn an_accepted_event_is_in_history_and_reaches_a_resuming_client_once() {
        let app = app();
        let _early = subscriber(&app, "1.1", "h-chat");
        trigger(&app, "h-chat", "1").await;
        let (position, events, _) = app.channels.history("h-chat", None, 10).unwrap();
        assert!(position.ends_with(":1") && events.len() == 1, "{position}");
        let resume = position.replace(":1", ":0");
        let (late, mut rx) = connection("1.2");
        let limits = app.history.for_channel("h-chat").unwrap();
        let mode = HistoryMode::Local {
            limits,
            resume: Some(&resume),
        };
        let change = app
            .channels
            .subscribe_with("h-chat", &late, None, 100, mode);
        assert_eq!(change.unwrap().replayed, 1);
        app.fanout.flushed().await;
        assert_eq!(received(&mut rx), [format!(r#""e" "1" "{position}""#)]);
    }

    /// Many requests at once, on two channels with history: each subscriber gets every event
    /// of its channel once, in position order, and positions have no gaps.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_publishes_keep_positions_in_order_for_every_subscriber() {
        const EVENTS: usize = 200;
        let app = app();
        let channels = ["h-a", "h-b"];
        let mut receivers: Vec<_> = (0..6)
            .map(|i| {
                let channel = channels[i % 2];
                (channel, subscriber(&app, &format!("1.{i}"), channel))
            })
            .collect();
        let requests: Vec<_> = (0..EVENTS)
            .map(|n| {
                let app = app.clone();
                tokio::spawn(async move { trigger(&app, channels[n % 2], &n.to_string()).await })
            })
            .collect();
        for request in requests {
            request.await.unwrap();
        }
        app.fanout.flushed().await;
        for (channel, rx) in &mut receivers {
            let offsets: Vec<u64> = received(rx)
                .iter()
                .map(|e| e.trim_end_matches('"').rsplit(':').next().unwrap())
                .map(|offset| offset.parse().unwrap())
                .collect();
            let expected: Vec<u64> = (1..=EVENTS as u64 / 2).collect();
            assert_eq!(offsets, expected, "{channel}");
        }
    }

    /// The bound: with the queue full, a request waits (before accepting anything) until a
    /// publish is delivered.
    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_holds_the_next_request_until_a_publish_is_delivered() {
        let app = app();
        let mut rx = subscriber(&app, "1.1", "chat");
        // Unconstrained: no yield to the fanout task for tokio's cooperative budget.
        tokio::task::unconstrained(async {
            for n in 0..MAX_QUEUED {
                trigger(&app, "chat", &n.to_string()).await;
            }
        })
        .await;
        let mut waiting = std::pin::pin!(trigger(&app, "chat", "last"));
        let first_poll = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(waiting.as_mut().poll(cx).is_pending())
        });
        assert!(tokio::task::unconstrained(first_poll).await, "no room");
        waiting.await;
        app.fanout.flushed().await;
        assert_eq!(received(&mut rx).len(), MAX_QUEUED + 1, "none lost");
    }
}
