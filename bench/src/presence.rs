//! The `presence` scenario: N members join one presence channel within a short window, then
//! churn (rounds of some members disconnecting and rejoining). Every member keeps its own view
//! of the channel (from `subscription_succeeded`, then `member_added` / `member_removed`), and
//! the views are compared with the true member set after the joins and at the end.
//! Measures member_added latency (subscribe sent to event received by the others) and
//! member_removed latency (disconnect to event received).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};

use super::latency::{now_micros, Latencies};
use super::procfs::CpuWindow;
use super::server_under_test::Target;
use super::ws::{self, Client, Connection, Frame};
use super::{progress, round, Result};

#[derive(Args)]
pub struct PresenceArgs {
    /// Members (one connection each, distinct user ids). The server's per-channel member limit
    /// must allow them.
    #[arg(short = 'n', long, default_value_t = 1000)]
    members: usize,
    /// Milliseconds over which the joins are spread (0: all at once).
    #[arg(long, default_value_t = 1000)]
    join_window_ms: u64,
    /// Members that disconnect and rejoin in each churn round.
    #[arg(long, default_value_t = 100)]
    churn: usize,
    /// Churn rounds.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Milliseconds over which a round's disconnects (and then its rejoins) are spread
    /// (0: all at once).
    #[arg(long, default_value_t = 1000)]
    churn_window_ms: u64,
    /// Connection attempts in flight at once.
    #[arg(long, default_value_t = 100)]
    in_flight: usize,
}

const CHANNEL: &str = "presence-bench";
/// How long views may take to agree with the truth before the wrong ones are counted.
const SETTLE: Duration = Duration::from_secs(3);
/// Pause between a churn round's disconnects and its rejoins, and between rounds.
const CHURN_PAUSE: Duration = Duration::from_millis(300);

impl PresenceArgs {
    pub fn bound(&self) -> Duration {
        Duration::from_millis(self.join_window_ms)
            + SETTLE * 2
            + (ROUND_BOUND + Duration::from_millis(self.churn_window_ms) * 2) * self.rounds
    }
}

/// A churn round besides its windows: two pauses, closing and rejoining (bounded by timeouts).
const ROUND_BOUND: Duration = Duration::from_secs(5);

/// What every member's handler shares: when each user last joined and left, and latencies.
struct Shared {
    joined_at: Vec<AtomicU64>,
    left_at: Vec<AtomicU64>,
    churning: AtomicBool,
    /// Set once measuring is over: the final disconnects announce removals nobody measures.
    finished: AtomicBool,
    join_added: Latencies,
    churn_added: Latencies,
    removed: Latencies,
    /// member_removed for a user that never left.
    spurious_removals: AtomicU64,
}

/// One member's user ids as it believes them to be on the channel.
type View = Arc<Mutex<HashSet<usize>>>;

struct Member {
    client: Client,
    view: View,
}

fn user_id(i: usize) -> String {
    format!("u{i}")
}

fn user_index(data: &Value) -> Option<usize> {
    data["user_id"].as_str()?.strip_prefix('u')?.parse().ok()
}

/// Subscribes an open connection as member `i` (after `delay`) and starts keeping its view.
async fn join(
    target: Target,
    shared: Arc<Shared>,
    i: usize,
    mut connection: Connection,
    delay: Duration,
) -> Result<Member> {
    tokio::time::sleep(delay).await;
    let channel_data = json!({ "user_id": user_id(i), "user_info": { "n": i } }).to_string();
    let auth = target.channel_auth(&connection.socket_id, CHANNEL, Some(&channel_data));
    shared.joined_at[i].store(now_micros(), Ordering::Relaxed);
    let succeeded = connection
        .subscribe(CHANNEL, Some(auth), Some(&channel_data))
        .await?;
    let ids = succeeded["presence"]["ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let initial: HashSet<usize> = ids
        .iter()
        .filter_map(|id| id.as_str()?.strip_prefix('u')?.parse().ok())
        .collect();
    let view: View = Arc::new(Mutex::new(initial));
    let kept = view.clone();
    let client = connection.spawn(move |text| {
        if shared.finished.load(Ordering::Relaxed) {
            return;
        }
        let Some(frame) = Frame::parse(text) else {
            return;
        };
        let added = match frame.event.as_str() {
            "pusher_internal:member_added" => true,
            "pusher_internal:member_removed" => false,
            _ => return,
        };
        let Some(user) = user_index(&frame.data_json()) else {
            return;
        };
        let mut view = kept.lock().expect("view lock");
        if added {
            view.insert(user);
            let latencies = if shared.churning.load(Ordering::Relaxed) {
                &shared.churn_added
            } else {
                &shared.join_added
            };
            latencies.record_since(shared.joined_at[user].load(Ordering::Relaxed));
        } else {
            view.remove(&user);
            match shared.left_at[user].load(Ordering::Relaxed) {
                0 => _ = shared.spurious_removals.fetch_add(1, Ordering::Relaxed),
                left_at => shared.removed.record_since(left_at),
            }
        }
    });
    Ok(Member { client, view })
}

/// Opens connections for the given members and joins them, spread over `window`.
async fn join_all(
    target: &Target,
    shared: &Arc<Shared>,
    who: &[usize],
    window: Duration,
    in_flight: usize,
) -> Result<Vec<Member>> {
    let connections = ws::gather("connected", who.len(), in_flight, |_| {
        let target = target.clone();
        async move { Connection::open(&target).await }
    })
    .await?;
    let connections = Mutex::new(connections.into_iter().map(Some).collect::<Vec<_>>());
    let spacing = window / who.len().max(1) as u32;
    ws::gather("joined", who.len(), who.len(), |k| {
        let connection = connections.lock().expect("connections lock")[k]
            .take()
            .expect("each once");
        join(
            target.clone(),
            shared.clone(),
            who[k],
            connection,
            spacing * k as u32,
        )
    })
    .await
}

/// Waits up to [`SETTLE`] for every member's view to equal the true set (everyone); returns
/// how many views are still wrong.
async fn wrong_views(members: &[Option<Member>]) -> usize {
    let truth: HashSet<usize> = (0..members.len()).collect();
    let count_wrong = || {
        members
            .iter()
            .flatten()
            .filter(|m| *m.view.lock().expect("view lock") != truth)
            .count()
    };
    let deadline = Instant::now() + SETTLE;
    while count_wrong() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    count_wrong()
}

pub async fn run(target: Target, args: PresenceArgs) -> Result<Value> {
    let n = args.members;
    let shared = Arc::new(Shared {
        joined_at: (0..n).map(|_| AtomicU64::new(0)).collect(),
        left_at: (0..n).map(|_| AtomicU64::new(0)).collect(),
        churning: AtomicBool::new(false),
        finished: AtomicBool::new(false),
        join_added: Latencies::new(),
        churn_added: Latencies::new(),
        removed: Latencies::new(),
        spurious_removals: AtomicU64::new(0),
    });
    let window = Duration::from_millis(args.join_window_ms);
    progress(format!(
        "{n} members joining {CHANNEL} within {} ms",
        args.join_window_ms
    ));
    let cpu = CpuWindow::start(target.server_pid)?;
    let everyone: Vec<usize> = (0..n).collect();
    let joined = Instant::now();
    let mut members: Vec<Option<Member>> =
        join_all(&target, &shared, &everyone, window, args.in_flight)
            .await?
            .into_iter()
            .map(Some)
            .collect();
    let join_seconds = joined.elapsed().as_secs_f64();
    let wrong_after_join = wrong_views(&members).await;
    progress(format!(
        "{wrong_after_join} views wrong after the joins; churning"
    ));

    shared.churning.store(true, Ordering::Relaxed);
    let churn = args.churn.min(n);
    let churn_window = Duration::from_millis(args.churn_window_ms);
    let leave_spacing = churn_window / churn.max(1) as u32;
    for _ in 0..args.rounds {
        let mut leaving = everyone.clone();
        fastrand::shuffle(&mut leaving);
        leaving.truncate(churn);
        let mut closing = tokio::task::JoinSet::new();
        for (k, &i) in leaving.iter().enumerate() {
            let member = members[i].take().expect("present before leaving");
            let shared = shared.clone();
            closing.spawn(async move {
                tokio::time::sleep(leave_spacing * k as u32).await;
                shared.left_at[i].store(now_micros(), Ordering::Relaxed);
                member.client.close().await;
            });
        }
        while closing.join_next().await.is_some() {}
        tokio::time::sleep(CHURN_PAUSE).await;
        for (member, i) in join_all(&target, &shared, &leaving, churn_window, args.in_flight)
            .await?
            .into_iter()
            .zip(&leaving)
        {
            members[*i] = Some(member);
        }
        tokio::time::sleep(CHURN_PAUSE).await;
    }
    let wrong_at_end = wrong_views(&members).await;
    let spent = cpu.stop()?;
    let dropped = members
        .iter()
        .flatten()
        .filter(|m| !m.client.is_open())
        .count();
    shared.finished.store(true, Ordering::Relaxed);
    ws::close_all(members.into_iter().flatten().map(|m| m.client).collect()).await;

    Ok(json!({
        "scenario": "presence",
        "members": n,
        "join_window_ms": args.join_window_ms,
        "join_seconds": round(join_seconds),
        "wrong_views_after_join": wrong_after_join,
        "churn": churn,
        "rounds": args.rounds,
        "churn_window_ms": args.churn_window_ms,
        "spurious_member_removed": shared.spurious_removals.load(Ordering::Relaxed),
        "wrong_views_at_end": wrong_at_end,
        "dropped_connections": dropped,
        "join_member_added": shared.join_added.summary(),
        "churn_member_added": shared.churn_added.summary(),
        "churn_member_removed": shared.removed.summary(),
        "server_cpu_s": spent.server.map(round),
        "bench_cpu_s": round(spent.bench),
    }))
}
