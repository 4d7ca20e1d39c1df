//! The `connect` scenario: N idle connections. Measures the server's resident memory per
//! connection (RSS with them open minus before, over N) and how much it gives back once they
//! close. With `--channel`, each connection subscribes to that public channel and counts the
//! events it receives while held (someone else triggers them: on a cluster, any node).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};

use super::procfs::{self, CpuWindow};
use super::server_under_test::Target;
use super::ws::{self, Connection};
use super::{progress, round, Result};

#[derive(Args)]
pub struct ConnectArgs {
    /// Connections to open.
    #[arg(short = 'n', long, default_value_t = 1000)]
    connections: usize,
    /// Seconds to keep them open (idle) before closing.
    #[arg(long, default_value_t = 2)]
    hold: u64,
    /// Connection attempts in flight at once.
    #[arg(long, default_value_t = 100)]
    in_flight: usize,
    /// A public channel every connection subscribes to; events on it are counted.
    #[arg(long)]
    channel: Option<String>,
}

/// Time for the server to finish allocating or freeing before its RSS is read.
const SETTLE: Duration = Duration::from_secs(2);

impl ConnectArgs {
    pub fn bound(&self) -> Duration {
        Duration::from_secs(self.hold) + SETTLE * 2
    }
}

pub async fn run(target: Target, args: ConnectArgs) -> Result<Value> {
    let n = args.connections;
    let rss = |pid: Option<u32>| -> Result<Option<u64>> {
        Ok(pid.map(procfs::sample).transpose()?.map(|s| s.rss_bytes))
    };
    let before = rss(target.server_pid)?;
    let cpu = CpuWindow::start(target.server_pid)?;
    progress(format!("opening {n} connections"));
    let started = Instant::now();
    let events = Arc::new(AtomicU64::new(0));
    let clients = ws::gather("connected", n, args.in_flight, |_| {
        let (target, channel, events) = (target.clone(), args.channel.clone(), events.clone());
        async move {
            let mut connection = Connection::open(&target).await?;
            if let Some(channel) = &channel {
                connection.subscribe(channel, None, None).await?;
            }
            Ok(connection.spawn(move |text| {
                if !text.contains("\"event\":\"pusher") {
                    events.fetch_add(1, Ordering::Relaxed);
                }
            }))
        }
    })
    .await?;
    let open_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(SETTLE.max(Duration::from_secs(args.hold))).await;
    let open = rss(target.server_pid)?;
    let dropped = clients.iter().filter(|c| !c.is_open()).count();
    progress(format!("closing {n} connections"));
    ws::close_all(clients).await;
    tokio::time::sleep(SETTLE).await;
    let closed = rss(target.server_pid)?;
    let spent = cpu.stop()?;

    let kib = |bytes: Option<u64>| bytes.map(|b| b / 1024);
    let per_connection = before
        .zip(open)
        .map(|(b, o)| o.saturating_sub(b) as f64 / 1024.0 / n as f64);
    let returned = before.zip(open).zip(closed).map(|((b, o), c)| {
        if o > b {
            o.saturating_sub(c) as f64 / (o - b) as f64
        } else {
            1.0
        }
    });
    Ok(json!({
        "scenario": "connect",
        "connections": n,
        "open_seconds": round(open_seconds),
        "connects_per_s": round(n as f64 / open_seconds),
        "dropped": dropped,
        "events_received": events.load(Ordering::Relaxed),
        "server_rss_before_kib": kib(before),
        "server_rss_open_kib": kib(open),
        "server_rss_closed_kib": kib(closed),
        "server_kib_per_connection": per_connection.map(round),
        "server_memory_returned": returned.map(round),
        "server_cpu_s": spent.server.map(round),
        "bench_cpu_s": round(spent.bench),
    }))
}
