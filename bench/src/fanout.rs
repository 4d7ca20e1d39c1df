//! The `fanout` scenario: N subscribers spread over C public channels; events triggered at
//! R/s through the signed HTTP API, each to every channel, so every subscriber should receive
//! every event. Measures trigger-to-delivery latency, deliveries/s, loss, and CPU seconds per
//! 100k deliveries of the server and of the bench itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};

use super::api::Api;
use super::latency::{read_stamp, stamp_now, Latencies};
use super::procfs::CpuWindow;
use super::server_under_test::Target;
use super::ws::{self, Connection};
use super::{per_100k, progress, round, Result};

#[derive(Args)]
pub struct FanoutArgs {
    /// Subscribing connections.
    #[arg(short = 'n', long, default_value_t = 1000)]
    subscribers: usize,
    /// Channels the subscribers are spread over (every event goes to all of them; at most 100,
    /// the Pusher limit per event).
    #[arg(short = 'c', long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
    channels: u16,
    /// Events per second.
    #[arg(long, default_value_t = 20)]
    rate: u32,
    /// Seconds of triggering.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Connection attempts in flight at once.
    #[arg(long, default_value_t = 100)]
    in_flight: usize,
}

/// How long deliveries may trail the last trigger before the missing ones count as lost.
const DRAIN: Duration = Duration::from_secs(5);

impl FanoutArgs {
    pub fn bound(&self) -> Duration {
        Duration::from_secs(self.duration) + DRAIN
    }
}

pub async fn run(target: Target, args: FanoutArgs) -> Result<Value> {
    let n = args.subscribers;
    let channels: Vec<String> = (0..args.channels)
        .map(|c| format!("bench-fanout-{c}"))
        .collect();
    let latencies = Arc::new(Latencies::new());
    progress(format!(
        "connecting {n} subscribers over {} channels",
        channels.len()
    ));
    let clients = ws::gather("subscribed", n, args.in_flight, |i| {
        let target = target.clone();
        let channel = channels[i % channels.len()].clone();
        let latencies = latencies.clone();
        async move {
            let mut connection = Connection::open(&target).await?;
            connection.subscribe(&channel, None, None).await?;
            Ok(connection.spawn(move |frame| {
                if let Some(sent) = read_stamp(frame) {
                    latencies.record_since(sent);
                }
            }))
        }
    })
    .await?;

    let events = (args.rate as u64 * args.duration).max(1);
    let expected = events * n as u64;
    progress(format!(
        "triggering {events} events at {}/s ({expected} deliveries expected)",
        args.rate
    ));
    let mut api = Api::new(&target);
    let trigger_round_trips = Latencies::new();
    // Opens the keep-alive connection outside the measurement: a first request's setup is not
    // what the latency figures are about.
    api.trigger("bench-warmup", &["bench-warmup".to_owned()], "warmup")
        .await?;
    let cpu = CpuWindow::start(target.server_pid)?;
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate.max(1) as f64));
    for _ in 0..events {
        ticks.tick().await;
        let sent = stamp_now();
        api.trigger("bench-event", &channels, &sent).await?;
        trigger_round_trips.record_since(read_stamp(&sent).expect("a stamp"));
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

    Ok(json!({
        "scenario": "fanout",
        "subscribers": n,
        "channels": channels.len(),
        "rate": args.rate,
        "events": events,
        "expected": expected,
        "received": received,
        "loss": expected.saturating_sub(received),
        "dropped_connections": dropped,
        "latency": latencies.summary(),
        "trigger_round_trip": trigger_round_trips.summary(),
        "deliveries_per_s": round(received as f64 / elapsed),
        "server_cpu_s": spent.server.map(round),
        "server_cpu_s_per_100k": spent.server.and_then(|s| per_100k(s, received)),
        "server_kernel_s_per_100k": spent.server_kernel.and_then(|s| per_100k(s, received)),
        "softirq_s_per_100k": per_100k(spent.softirq, received),
        "bench_cpu_s": round(spent.bench),
        "bench_cpu_s_per_100k": per_100k(spent.bench, received),
        "seconds": round(elapsed),
    }))
}
