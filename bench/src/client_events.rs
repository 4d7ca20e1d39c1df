//! The `client-events` scenario: connections in groups on private channels, each sending
//! client events ("whispers") at a steady rate to the rest of its group. Measures sender-to-
//! receiver latency, loss and refusals (`pusher:error`, e.g. 4301 over the rate limit).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};

use super::latency::{read_stamp, stamp_now, Latencies};
use super::procfs::CpuWindow;
use super::server_under_test::Target;
use super::ws::{self, Connection};
use super::{per_100k, progress, round, Result};

#[derive(Args)]
pub struct ClientEventsArgs {
    /// Connections.
    #[arg(short = 'n', long, default_value_t = 100)]
    connections: usize,
    /// Connections per private channel: each whisper reaches the other group - 1.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(2..))]
    group: u32,
    /// Whispers per second sent by each connection (servers commonly allow 10).
    #[arg(long, default_value_t = 5)]
    rate: u32,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Connection attempts in flight at once.
    #[arg(long, default_value_t = 100)]
    in_flight: usize,
}

/// How long deliveries may trail the last whisper before the missing ones count as lost.
const DRAIN: Duration = Duration::from_secs(3);

impl ClientEventsArgs {
    pub fn bound(&self) -> Duration {
        Duration::from_secs(self.duration) + DRAIN
    }
}

/// What receivers saw besides whispers: refusals from the server.
#[derive(Default)]
struct Refusals {
    count: u64,
    first: Option<String>,
}

pub async fn run(target: Target, args: ClientEventsArgs) -> Result<Value> {
    let n = args.connections;
    let group = args.group as usize;
    let channel_of = |i: usize| format!("private-bench-whisper-{}", i / group);
    let latencies = Arc::new(Latencies::new());
    let refusals = Arc::new(Mutex::new(Refusals::default()));
    progress(format!("connecting {n} clients in groups of {group}"));
    let clients = ws::gather("subscribed", n, args.in_flight, |i| {
        let target = target.clone();
        let channel = channel_of(i);
        let (latencies, refusals) = (latencies.clone(), refusals.clone());
        async move {
            let mut connection = Connection::open(&target).await?;
            let auth = target.channel_auth(&connection.socket_id, &channel, None);
            connection.subscribe(&channel, Some(auth), None).await?;
            Ok(connection.spawn(move |frame| {
                if let Some(sent) = read_stamp(frame) {
                    latencies.record_since(sent);
                } else if frame.contains("\"pusher:error\"") {
                    let mut refusals = refusals.lock().expect("refusals lock");
                    refusals.count += 1;
                    refusals.first.get_or_insert_with(|| frame.to_owned());
                }
            }))
        }
    })
    .await?;

    let per_client = (args.rate as u64 * args.duration).max(1);
    let sent = per_client * n as u64;
    // Every sender reaches the others in its group; the last group may be smaller.
    let expected: u64 = (0..n)
        .map(|i| {
            let start = i / group * group;
            per_client * ((start + group).min(n) - start - 1) as u64
        })
        .sum();
    progress(format!(
        "sending {sent} whispers ({expected} deliveries expected)"
    ));
    let cpu = CpuWindow::start(target.server_pid)?;
    let started = Instant::now();
    // One schedule for all senders, spread evenly so whispers do not arrive in bursts.
    let slot = Duration::from_secs_f64(1.0 / (args.rate.max(1) as f64 * n as f64));
    let mut ticks = tokio::time::interval(slot);
    for k in 0..sent as usize {
        ticks.tick().await;
        let i = k % n;
        let whisper =
            json!({ "event": "client-bench", "channel": channel_of(i), "data": stamp_now() });
        clients[i].send(whisper.to_string());
    }
    let drain_until = Instant::now() + DRAIN;
    while latencies.count() < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let spent = cpu.stop()?;
    let received = latencies.count();
    let dropped = clients.iter().filter(|c| !c.is_open()).count();
    ws::close_all(clients).await;
    let refusals = refusals.lock().expect("refusals lock");

    Ok(json!({
        "scenario": "client-events",
        "connections": n,
        "group": group,
        "rate": args.rate,
        "sent": sent,
        "expected": expected,
        "received": received,
        "loss": expected.saturating_sub(received),
        "refusals": refusals.count,
        "first_refusal": refusals.first,
        "dropped_connections": dropped,
        "latency": latencies.summary(),
        "server_cpu_s": spent.server.map(round),
        "server_cpu_s_per_100k": spent.server.and_then(|s| per_100k(s, received)),
        "bench_cpu_s": round(spent.bench),
        "seconds": round(elapsed),
    }))
}
