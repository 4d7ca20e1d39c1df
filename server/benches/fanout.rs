//! The publish path: one event built once and queued to every subscriber of a channel, as
//! `POST /events` does it, for 1k and 10k in-process subscribers; and with history (the
//! position assigned, the positioned frame built and kept in the channel's ring) for 1 and 1k.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use overtone_server::channels::{ChannelRegistry, Closer, ConnectionHandle};
use overtone_server::frame;
use overtone_server::history::Limits;
use overtone_server::state::SocketId;
use tokio::sync::mpsc;

/// Publishes per batch before the queues are drained (outside the timing); below their capacity.
const PUBLISHES_PER_DRAIN: u64 = 512;

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish");
    let limits = Limits {
        max_events: 100,
        max_age: Duration::from_secs(300),
    };
    for (subscribers, history) in [
        (1usize, false),
        (1, true),
        (1_000, false),
        (1_000, true),
        (10_000, false),
    ] {
        let registry = ChannelRegistry::default();
        let mut queues: Vec<mpsc::Receiver<Utf8Bytes>> = (0..subscribers)
            .map(|i| {
                let (tx, rx) = mpsc::channel(1024);
                let conn = ConnectionHandle::new(
                    SocketId::from(format!("1.{i}").as_str()),
                    tx,
                    Arc::new(Closer::default()),
                );
                registry
                    .subscribe("orders", &conn, None, 100)
                    .expect("fresh subscriber");
                rx
            })
            .collect();
        let data = r#"{"order":{"id":12345,"status":"shipped","items":3}}"#;
        group.throughput(Throughput::Elements(subscribers as u64));
        let name = match history {
            false => "one_event_to_subscribers",
            true => "one_event_with_history_to_subscribers",
        };
        group.bench_function(BenchmarkId::new(name, subscribers), |b| {
            b.iter_custom(|iterations| {
                let mut measured = Duration::ZERO;
                let mut left = iterations;
                while left > 0 {
                    let batch = left.min(PUBLISHES_PER_DRAIN);
                    let start = Instant::now();
                    for _ in 0..batch {
                        let out =
                            frame::channel_event("orders", "App\\Events\\OrderShipped", data, None);
                        let delivered = match history {
                            false => registry.publish("orders", &out, None),
                            true => registry.publish_recorded("orders", &out, None, limits),
                        };
                        assert_eq!(delivered, subscribers);
                    }
                    measured += start.elapsed();
                    queues
                        .iter_mut()
                        .for_each(|q| while q.try_recv().is_ok() {});
                    left -= batch;
                }
                measured
            })
        });
    }
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
